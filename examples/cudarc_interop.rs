//! Your own cudarc code: memory and a stream you already hold go to a kernel as they are, no copy.
//! Needs a CUDA GPU: `cargo run --release --example cudarc_interop`. The README's "Use it from your
//! own cudarc code" is this file's core; it checks the result against `reference::attention`.

use cudarc::driver::CudaContext;
use half::bf16;
use scaling_kernels::attention::{attention_fwd, AttnOptions, AttnShape};
use scaling_kernels::reference::attention::{attention_fwd as reference_fwd, AttnSpec};
use scaling_kernels::{Device, View, ViewMut};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // cudarc panics on the first driver call without libcuda; Device::cuda says so as an error.
    Device::cuda(0)?;

    let ctx = CudaContext::new(0)?;
    let stream = ctx.new_stream()?; // any stream you own
    let shape = AttnShape { batch: 1, seqlen_q: 200, seqlen_k: 200, heads: 4, kv_heads: 2, head_dim: 64 };
    let (nq, nk) = (200 * 4 * 64, 200 * 2 * 64);
    let host = |n: usize, salt: usize| -> Vec<bf16> {
        (0..n).map(|i| bf16::from_f32((((i * 7919 + salt) % 2001) as f32 - 1000.0) / 500.0)).collect()
    };
    let (q_host, k_host, v_host) = (host(nq, 1), host(nk, 2), host(nk, 3));
    let q = stream.clone_htod(&q_host)?; // CudaSlice<bf16>: your tensors
    let k = stream.clone_htod(&k_host)?;
    let v = stream.clone_htod(&v_host)?;
    let mut out = stream.alloc_zeros::<bf16>(nq)?;

    let dev = Device::from_cuda_stream(stream.clone())?; // launches go to your stream
    let opts = AttnOptions::default().causal(true);
    attention_fwd(
        &dev,
        &View::from(q.as_view()),
        &View::from(k.as_view()),
        &View::from(v.as_view()),
        &mut ViewMut::from(out.as_view_mut()),
        shape,
        opts,
    )?;
    let got = stream.clone_dtoh(&out)?; // stream-ordered after the kernel

    let f64s = |x: &[bf16]| x.iter().map(|v| v.to_f64()).collect::<Vec<_>>();
    let spec = AttnSpec {
        heads: 4,
        kv_heads: 2,
        head_dim: 64,
        causal: true,
        window: (-1, -1),
        softcap: 0.0,
        scale: 1.0 / 8.0,
        alibi_slopes: None,
        sinks: None,
    };
    let (want, _) = reference_fwd(&f64s(&q_host), &f64s(&k_host), &f64s(&v_host), &[0, 200], &[0, 200], &spec);
    let err = got.iter().zip(&want).map(|(g, w)| (g.to_f64() - w).abs()).fold(0.0, f64::max);
    println!("{}: attention_fwd on your stream, max |out - reference| = {err:.2e}", dev.describe());
    // Values |v| <= 2 in bf16: one output rounding is <= 2^-8, the fp32 accumulation far less.
    if err > 1e-2 {
        return Err(format!("attention_fwd differs from the reference by {err}").into());
    }
    Ok(())
}
