//! Attention forward counters only (the fwd rows of sol_report without the rest of the table): bf16,
//! batch 1, 16 heads, seq 1024, d 64/128/256 (or the head dims given as arguments), causal and not.
//!
//! `cargo run --release --example attn_fwd_counters [64 128 256]`

use half::bf16;
use ptx_vm::InstClass;
use scaling_kernels::attention::{attention_fwd, attention_fwd_flops, AttnOptions, AttnShape};
use scaling_kernels::device::VmConfig;
use scaling_kernels::{Device, Result};

fn main() -> Result<()> {
    let dev = Device::vm_with(VmConfig { sanitizer: false, counters: true, ..VmConfig::default() });
    let mut dims: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if dims.is_empty() {
        dims = vec![64, 128, 256];
    }
    for d in dims {
        let shape = AttnShape { batch: 1, seqlen_q: 1024, seqlen_k: 1024, heads: 16, kv_heads: 16, head_dim: d };
        let n = shape.seqlen_q * shape.heads * d;
        let data: Vec<bf16> = (0..n).map(|i| bf16::from_f32(((i * 7919) % 17) as f32 / 17.0 - 0.5)).collect();
        let (q, k, v) = (dev.upload(&data)?, dev.upload(&data)?, dev.upload(&data)?);
        let mut out = dev.alloc_zeros::<bf16>(n)?;
        let mut lse = dev.alloc_zeros::<f32>(shape.heads * shape.seqlen_q)?;
        for causal in [false, true] {
            let opts = AttnOptions::default().causal(causal).lse(lse.view_mut());
            attention_fwd(&dev, &q.view(), &k.view(), &v.view(), &mut out.view_mut(), shape, opts)?;
            let c = dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default();
            let flops = attention_fwd_flops(1024, 1024, 16, d, causal, (-1, -1));
            let warp = c.warp_instructions() as f64;
            let share = |cl: InstClass| 100.0 * c.class(cl).warps as f64 / warp;
            println!(
                "d{d}{}: {:.3} M warp-instr ({:.1}% mma, {:.1}% fp32, {:.1}% shared ld, {:.1}% sfu, {:.1}% int), \
                 {:.3} M wavefronts, {} conflicts, mma/useful {:.3}",
                if causal { " causal" } else { "" },
                warp / 1e6,
                share(InstClass::Tensor),
                share(InstClass::Fp32),
                share(InstClass::SharedLoad),
                share(InstClass::Sfu),
                share(InstClass::Integer),
                c.shared_wavefronts as f64 / 1e6,
                c.bank_conflicts(),
                c.mma_flops as f64 / flops as f64,
            );
        }
    }
    Ok(())
}
