//! candle tensors through scaling-kernels without a copy: q/k/v and logits are candle `Tensor`s on a
//! CUDA device; their `CudaSlice`s and candle's stream go to `attention_fwd` and `sample` as they are;
//! the outputs come back as candle tensors and are compared with candle's own matmul/softmax
//! attention and log-softmax. Exits non-zero on any mismatch.
//!
//! `cargo run --release` in this folder (nvcc on PATH; a CUDA GPU to run). The seed is printed and
//! can be fixed with `SEED=<u64>`.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::DevicePtr;
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::{bail, DType, Device, Layout, Storage, Tensor, D};
use half::bf16;
use scaling_kernels::attention::{attention_fwd, AttnOptions, AttnShape};
use scaling_kernels::device::Element;
use scaling_kernels::sampling::{sample, RowParams, SampleOutput, SamplingParams, SamplingPlan};
use scaling_kernels::{Buffer, View};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A contiguous candle CUDA tensor's memory as a scaling-kernels view: the same device memory,
/// borrowed for as long as the tensor's storage guard lives.
fn cuda_view<'a, T: CudaDType + Element>(storage: &'a Storage, layout: &Layout) -> candle_core::Result<View<'a, T>> {
    let Storage::Cuda(cuda) = storage else { bail!("expected a CUDA tensor, got {:?}", storage.device()) };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("expected a contiguous tensor") };
    Ok(View::from(cuda.as_cuda_slice::<T>()?.slice(start..end)))
}

/// A buffer our kernels wrote, handed to candle as a tensor of `shape`: the `CudaSlice` moves, the
/// memory stays where it is.
fn into_tensor<T: CudaDType + Element>(buf: Buffer<T>, dev: &CudaDevice, shape: &[usize]) -> Result<Tensor> {
    let slice = buf.into_cuda().ok_or("a CUDA device's buffer holds a CudaSlice")?;
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone()));
    Ok(Tensor::from_storage(storage, shape, BackpropOp::none(), false))
}

/// The device address of a CUDA tensor's first element, to show that no copy was made.
fn device_addr(t: &Tensor, dev: &CudaDevice) -> Result<u64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else { return Err("expected a CUDA tensor".into()) };
    let stream = dev.cuda_stream();
    let (addr, _sync) = match cuda.dtype() {
        DType::BF16 => cuda.as_cuda_slice::<bf16>()?.device_ptr(&stream),
        DType::I32 => cuda.as_cuda_slice::<i32>()?.device_ptr(&stream),
        dt => return Err(format!("unexpected dtype {dt:?}").into()),
    };
    Ok(addr + (layout.start_offset() * cuda.dtype().size_in_bytes()) as u64)
}

/// candle's attention in f32: `softmax(scale q k^T + causal mask) v` with the kv heads repeated for
/// GQA, and the log-sum-exp of each row. Inputs `[batch * seq, heads, dim]`; out `[batch * seq,
/// heads, dim]`, lse `[heads, batch * seq]`.
fn candle_attention(q: &Tensor, k: &Tensor, v: &Tensor, s: AttnShape) -> Result<(Tensor, Tensor)> {
    let AttnShape { batch: b, seqlen_q: sq, seqlen_k: sk, heads: h, kv_heads: hk, head_dim: d } = s;
    let bhsd = |t: &Tensor, seq: usize, heads: usize| -> candle_core::Result<Tensor> {
        let t = t.to_dtype(DType::F32)?.reshape((b, seq, heads, 1, d))?;
        t.broadcast_as((b, seq, heads, h / heads, d))?.reshape((b, seq, h, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (bhsd(q, sq, h)?, bhsd(k, sk, hk)?, bhsd(v, sk, hk)?);
    let scale = 1.0 / (d as f64).sqrt();
    // Bottom-right aligned causal mask, as FlashAttention >= 2.1 (and our AttnOptions::causal).
    let mask: Vec<f32> =
        (0..sq * sk).map(|ij| if ij % sk <= ij / sk + sk - sq { 0.0 } else { f32::NEG_INFINITY }).collect();
    let mask = Tensor::from_vec(mask, (sq, sk), q.device())?;
    let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
    let max = scores.max_keepdim(D::Minus1)?;
    let e = scores.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    let out = e.broadcast_div(&sum)?.matmul(&v)?.transpose(1, 2)?.reshape((b * sq, h, d))?;
    let lse = (sum.log()? + max)?.squeeze(D::Minus1)?.transpose(0, 1)?.reshape((h, b * sq))?;
    Ok((out, lse))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?.flatten_all()?.max(0)?;
    Ok(d.to_scalar::<f32>()?)
}

fn main() -> Result<()> {
    let seed: u64 = match std::env::var("SEED") {
        Ok(s) => s.parse()?,
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    println!("seed {seed} (rerun with SEED={seed})");
    let device = Device::new_cuda(0)?;
    device.set_seed(seed)?;
    let cuda = device.as_cuda_device()?.clone();
    // Our kernels launch on candle's stream: ordered with candle's own work, no synchronisation.
    let dev = scaling_kernels::Device::from_cuda_stream(cuda.cuda_stream())?;
    println!("candle {:?} and scaling-kernels on {}", device.location(), dev.describe());

    // Attention forward: 2 sequences of 300 tokens, 8 query heads over 2 kv heads (GQA), d = 128.
    let shape = AttnShape { batch: 2, seqlen_q: 300, seqlen_k: 300, heads: 8, kv_heads: 2, head_dim: 128 };
    let rows = shape.batch * shape.seqlen_q;
    let q = Tensor::randn(0f32, 1.0, (rows, shape.heads, shape.head_dim), &device)?.to_dtype(DType::BF16)?;
    let k = Tensor::randn(0f32, 1.0, (rows, shape.kv_heads, shape.head_dim), &device)?.to_dtype(DType::BF16)?;
    let v = Tensor::randn(0f32, 1.0, (rows, shape.kv_heads, shape.head_dim), &device)?.to_dtype(DType::BF16)?;
    let mut out = dev.alloc_zeros::<bf16>(rows * shape.heads * shape.head_dim)?;
    let mut lse = dev.alloc_zeros::<f32>(shape.heads * rows)?;
    let stream = cuda.cuda_stream();
    let out_addr = {
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (qv, kv, vv) = (cuda_view::<bf16>(&qs, ql)?, cuda_view::<bf16>(&ks, kl)?, cuda_view::<bf16>(&vs, vl)?);
        let opts = AttnOptions::default().causal(true).lse(lse.view_mut());
        attention_fwd(&dev, &qv, &kv, &vv, &mut out.view_mut(), shape, opts)?;
        out.as_cuda().ok_or("a CUDA device's buffer holds a CudaSlice")?.device_ptr(&stream).0
    };
    let out = into_tensor(out, &cuda, &[rows, shape.heads, shape.head_dim])?;
    let lse = into_tensor(lse, &cuda, &[shape.heads, rows])?;
    if device_addr(&out, &cuda)? != out_addr {
        return Err("the output tensor does not alias the buffer the kernel wrote".into());
    }
    let (want_out, want_lse) = candle_attention(&q, &k, &v, shape)?;
    let (err_out, err_lse) = (max_abs_diff(&out, &want_out)?, max_abs_diff(&lse, &want_lse)?);
    println!("attention_fwd (causal, GQA 8/2, d128, 2 x 300): max |out - candle| = {err_out:.2e}, max |lse - candle| = {err_lse:.2e}");
    // bf16 output of values |v| < ~5: one rounding is <= 2^-9 * 5 ~ 1e-2; fp32 LSE agrees far closer.
    if !(err_out <= 2e-2 && err_lse <= 1e-3) {
        return Err(format!("attention differs from candle's (seed {seed})").into());
    }

    // Sampling: 4 rows of a 32000-token vocab; rows 0 and 1 greedy, rows 2 and 3 top-k 50, seeded.
    let (batch, vocab) = (4usize, 32000usize);
    let logits = (Tensor::randn(0f32, 1.0, (batch, vocab), &device)? * 3.0)?;
    let plan = SamplingPlan::new(batch, vocab, 1)?;
    let row =
        |temperature: f32, top_k: u32, i: u64| RowParams { temperature, top_k, seed: seed ^ i, ..RowParams::default() };
    let params = SamplingParams::upload(&dev, &[row(0.0, 0, 0), row(0.0, 0, 1), row(1.0, 50, 2), row(0.8, 50, 3)])?;
    let mut sampled = SampleOutput::alloc(&dev, &plan)?;
    {
        let (ls, ll) = logits.storage_and_layout();
        sample(&dev, &plan, &cuda_view::<f32>(&ls, ll)?, &params, &mut sampled)?;
    }
    let tokens = into_tensor(sampled.token, &cuda, &[batch])?;
    let logprob_raw = into_tensor(sampled.logprob_raw, &cuda, &[batch])?;
    let rank = into_tensor(sampled.rank, &cuda, &[batch])?;

    // candle's side: argmax and log-softmax of the same logits.
    let max = logits.max_keepdim(D::Minus1)?;
    let log_softmax =
        logits.broadcast_sub(&(logits.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()? + &max)?)?;
    let argmax = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let (tokens, logprob_raw, rank) = (tokens.to_vec1::<i32>()?, logprob_raw.to_vec1::<f32>()?, rank.to_vec1::<i32>()?);
    let (log_softmax, logits_host) = (log_softmax.to_vec2::<f32>()?, logits.to_vec2::<f32>()?);
    for r in 0..batch {
        let t = usize::try_from(tokens[r]).map_err(|_| format!("row {r}: token {}", tokens[r]))?;
        let above = logits_host[r].iter().filter(|&&x| x > logits_host[r][t]).count() as i32;
        println!(
            "sample row {r}: token {t} (candle argmax {}), logprob {:.5} (candle {:.5}), rank {} (counted {})",
            argmax[r],
            logprob_raw[r],
            log_softmax[r][t],
            rank[r],
            above + 1
        );
        let greedy_ok = r >= 2 || t as u32 == argmax[r];
        let in_top_k = rank[r] <= 50;
        if !(greedy_ok && in_top_k && rank[r] == above + 1 && (logprob_raw[r] - log_softmax[r][t]).abs() <= 1e-4) {
            return Err(format!("sampling row {r} disagrees with candle (seed {seed})").into());
        }
    }
    println!("candle-interop: attention and sampling match candle, no copies");
    Ok(())
}
