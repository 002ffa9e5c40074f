//! Speed-of-light table for every kernel of the crate: each runs once on the PTX VM with exact
//! counters, and a device model (H100 SXM, H200 SXM, A100 SXM) turns the counts, the launch shape
//! and the registers ptxas allocates into per-unit time floors (CTAs per SM, waves, the busiest
//! SM's floors) next to the kernel's own floor (its FLOPs and fewest bytes). A model, not a
//! measurement.
//!
//! `cargo run --release --example sol_report`

use half::bf16;
use half::f16;
use ptx_vm::sol::SolRow;
use ptx_vm::{format_table, speed_of_light_with, DeviceModel, KernelFloor, LaunchResources};
use scaling_kernels::attention::{merge_states, MergeShape};
use scaling_kernels::device::{Counters, VmConfig};
use scaling_kernels::{Device, Float, Result};

/// Registers per thread of every merge_states entry point (bf16, f16, f32), on sm_80 and sm_90a
/// alike, as `scripts/resource-report` (`ptxas -v`) prints them. Rerun it after editing
/// kernels/attention/merge.cu.
const MERGE_STATES_REGISTERS: u32 = 32;

/// Registers per thread of attention_fwd_bf16_d128 on sm_80 (the most of its sm_80 and sm_90a
/// builds), as `scripts/resource-report` prints them. Rerun it after editing
/// kernels/attention/fwd.cu.
const ATTENTION_FWD_D128_REGISTERS: u32 = 255;

/// Runs one merge of `shape` in `T` and returns the launch's counters.
fn merge_counters<T: Float>(dev: &Device, shape: MergeShape) -> Result<Counters> {
    let rows = shape.tokens * shape.heads;
    let n = rows * shape.head_dim;
    // Two distinct parts, so that the kernel's reads are the reads a real merge does.
    let o_a = dev.upload(&vec![T::from_f64(0.25); n])?;
    let o_b = dev.upload(&vec![T::from_f64(-0.5); n])?;
    let lse_a = dev.upload(&(0..rows).map(|r| (r % 5) as f32 - 2.0).collect::<Vec<_>>())?;
    let lse_b = dev.upload(&(0..rows).map(|r| (r % 3) as f32 - 1.0).collect::<Vec<_>>())?;
    let mut out = dev.alloc_zeros::<T>(n)?;
    let mut lse_out = dev.alloc_zeros::<f32>(rows)?;
    let (a, la, b, lb) = (o_a.view(), lse_a.view(), o_b.view(), lse_b.view());
    merge_states(dev, shape, &a, &la, &b, &lb, &mut out.view_mut(), Some(&mut lse_out.view_mut()))?;
    Ok(dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default())
}

fn main() -> Result<()> {
    let dev = Device::vm_with(VmConfig { sanitizer: false, counters: true, ..VmConfig::default() });
    let models = [DeviceModel::h100_sxm(), DeviceModel::h200_sxm(), DeviceModel::a100_sxm()];
    let resources = LaunchResources { registers_per_thread: Some(MERGE_STATES_REGISTERS) };
    let mut rows: Vec<SolRow> = Vec::new();
    let mut add = |name: String, c: &Counters, shape: MergeShape, elem_bytes: usize| {
        let floor =
            KernelFloor { flops: shape.flops() as f64, min_bytes: shape.min_bytes(elem_bytes) as f64, tensor: false };
        for m in &models {
            rows.push(speed_of_light_with(&name, c, m, Some(floor), resources));
        }
        println!(
            "{name}: {} thread-instr, {} warp-instr, global ld {} req / {} sectors, unique bytes {} read + {} written (fewest {}), shared conflicts {}",
            c.thread_instructions(),
            c.warp_instructions(),
            c.global_load_requests,
            c.global_load_sectors,
            c.unique_bytes_read,
            c.unique_bytes_written,
            shape.min_bytes(elem_bytes),
            c.bank_conflicts()
        );
    };
    // Split-KV decode: 64 sequences x 32 heads x d128; and a prefill chunk of 512 tokens.
    for (label, shape) in [
        ("decode 64x32xd128", MergeShape { tokens: 64, heads: 32, head_dim: 128 }),
        ("prefill 512x32xd128", MergeShape { tokens: 512, heads: 32, head_dim: 128 }),
    ] {
        add(format!("merge_states bf16 {label}"), &merge_counters::<bf16>(&dev, shape)?, shape, 2);
        add(format!("merge_states f16 {label}"), &merge_counters::<f16>(&dev, shape)?, shape, 2);
        add(format!("merge_states f32 {label}"), &merge_counters::<f32>(&dev, shape)?, shape, 4);
    }
    println!("\n{}", format_table(&rows));
    attention_fwd_report(&dev, &models)?;
    Ok(())
}

/// Attention forward at batch 1, 16 heads, seq 1024, d 128 (bf16), causal and not: the shape of the
/// issue's FlashAttention-2 anchor. Prints the instruction mix, shared wavefronts and conflicts, the
/// tensor-core share of the useful FLOPs and how often K/V bytes were re-read, then the model table.
fn attention_fwd_report(dev: &Device, models: &[DeviceModel]) -> Result<()> {
    use ptx_vm::InstClass;
    use scaling_kernels::attention::{
        attention_fwd, attention_fwd_flops, attention_fwd_min_bytes, AttnOptions, AttnShape,
    };
    let shape = AttnShape { batch: 1, seqlen_q: 1024, seqlen_k: 1024, heads: 16, kv_heads: 16, head_dim: 128 };
    let n = shape.seqlen_q * shape.heads * shape.head_dim;
    // Distinct, non-zero inputs: a fixed pattern is enough for counters (the control flow does not
    // depend on the values).
    let data: Vec<bf16> = (0..n).map(|i| bf16::from_f32(((i * 7919) % 17) as f32 / 17.0 - 0.5)).collect();
    let (q, k, v) = (dev.upload(&data)?, dev.upload(&data)?, dev.upload(&data)?);
    let mut out = dev.alloc_zeros::<bf16>(n)?;
    let mut lse = dev.alloc_zeros::<f32>(shape.heads * shape.seqlen_q)?;
    let resources = LaunchResources { registers_per_thread: Some(ATTENTION_FWD_D128_REGISTERS) };
    let mut rows = Vec::new();
    for causal in [false, true] {
        let opts = AttnOptions::default().causal(causal).lse(lse.view_mut());
        attention_fwd(dev, &q.view(), &k.view(), &v.view(), &mut out.view_mut(), shape, opts)?;
        let c = dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default();
        let flops = attention_fwd_flops(1024, 1024, 16, 128, causal, (-1, -1));
        let min_bytes = attention_fwd_min_bytes(1024, 1024, 16, 16, 128, 2, true);
        let name = format!("attention_fwd bf16 b1 h16 s1024 d128{}", if causal { " causal" } else { "" });
        let warp = c.warp_instructions() as f64;
        let share = |cl: InstClass| 100.0 * c.class(cl).warps as f64 / warp;
        let kv_bytes = 2.0 * (1024 * 16 * 128 * 2) as f64;
        println!(
            "{name}: {:.2} M warp-instr ({:.1}% mma, {:.1}% fp32, {:.1}% shared ld, {:.1}% special fn, {:.1}% integer), \
             {:.2} M shared wavefronts, {} bank conflicts, mma FLOPs / useful FLOPs {:.3}, \
             cp.async bytes / (q + K/V) bytes {:.2} (K/V read {:.2}x), unique bytes {} read + {} written (fewest {min_bytes})",
            warp / 1e6,
            share(InstClass::Tensor),
            share(InstClass::Fp32),
            share(InstClass::SharedLoad),
            share(InstClass::Sfu),
            share(InstClass::Integer),
            c.shared_wavefronts as f64 / 1e6,
            c.bank_conflicts(),
            c.mma_flops as f64 / flops as f64,
            c.cp_async_bytes as f64 / (kv_bytes * 1.5),
            (c.cp_async_bytes as f64 - kv_bytes / 2.0) / kv_bytes,
            c.unique_bytes_read,
            c.unique_bytes_written,
        );
        let floor = KernelFloor { flops: flops as f64, min_bytes: min_bytes as f64, tensor: true };
        for m in models {
            rows.push(speed_of_light_with(&name, &c, m, Some(floor), resources));
        }
    }
    println!("\n{}", format_table(&rows));
    Ok(())
}
