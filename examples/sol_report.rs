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
use scaling_kernels::sampling::{sample, RowParams, SampleOutput, SamplingParams, SamplingPlan};
use scaling_kernels::{Device, Float, Result};

/// Registers per thread of every merge_states entry point (bf16, f16, f32), on sm_80 and sm_90a
/// alike, as `scripts/resource-report` (`ptxas -v`) prints them. Rerun it after editing
/// kernels/attention/merge.cu.
const MERGE_STATES_REGISTERS: u32 = 32;

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
    sampling_rows(&dev, &models, &mut rows)?;
    println!("\n{}", format_table(&rows));
    Ok(())
}

/// Registers per thread of sampling_sample_{f32,f16,bf16} on sm_80 (`scripts/resource-report`;
/// 64 on sm_90a). Rerun it after editing kernels/sampling/.
const SAMPLE_REGISTERS: u32 = 62;

/// One sampling launch of `batch` rows of `vocab` random logits in `T` with `row` for every row
/// (seeds differ), `n` samples each; returns its counters.
fn sample_counters<T: Float>(dev: &Device, batch: usize, vocab: usize, n: usize, row: RowParams) -> Result<Counters> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let logits: Vec<T> = (0..batch * vocab)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            T::from_f64((state >> 11) as f64 / (1u64 << 53) as f64 * 16.0 - 8.0)
        })
        .collect();
    let x = dev.upload(&logits)?;
    let plan = SamplingPlan::new(batch, vocab, n)?;
    let rows: Vec<RowParams> = (0..batch as u64).map(|s| RowParams { seed: s, ..row }).collect();
    let params = SamplingParams::upload(dev, &rows)?;
    let mut out = SampleOutput::alloc(dev, &plan)?;
    sample(dev, &plan, &x.view(), &params, &mut out)?;
    Ok(dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default())
}

/// Sampling: passes over the logits per row for each filter (32-byte sectors requested / row bytes,
/// one row of vocab 131,072), then speed-of-light rows at batch 256 and 1024. A batch's counters are
/// a 4-row launch's merged batch/4 times: every CTA is one independent row doing the same passes, so
/// this scales exactly as long as the rows' filters are the same, at a fraction of the VM time.
fn sampling_rows(dev: &Device, models: &[DeviceModel], rows: &mut Vec<SolRow>) -> Result<()> {
    let base = RowParams::default();
    let vocab = 131_072;
    for (label, row) in [
        ("top-k 50 + top-p 0.9", RowParams { top_k: 50, top_p: 0.9, ..base }),
        ("top-k 1", RowParams { top_k: 1, ..base }),
        ("top-p 0.9", RowParams { top_p: 0.9, ..base }),
        ("min-p 0.1", RowParams { min_p: 0.1, ..base }),
        ("plain", base),
        ("greedy", RowParams { temperature: 0.0, ..base }),
    ] {
        let c = sample_counters::<bf16>(dev, 1, vocab, 1, row)?;
        let row_bytes = (vocab * 2) as f64;
        println!(
            "sampling bf16 vocab {vocab} {label}: {:.2} row reads (32-byte sectors requested / row bytes), \
             {} thread-instr",
            (c.global_load_sectors * 32) as f64 / row_bytes,
            c.thread_instructions()
        );
    }
    let resources = LaunchResources { registers_per_thread: Some(SAMPLE_REGISTERS) };
    for vocab in [128_256usize, 151_936] {
        let row = RowParams { top_k: 50, top_p: 0.9, ..base };
        let four = sample_counters::<bf16>(dev, 4, vocab, 1, row)?;
        for batch in [256usize, 1024] {
            let mut c = Counters::default();
            for _ in 0..batch / 4 {
                c.merge(&four);
            }
            let plan = SamplingPlan::new(batch, vocab, 1)?;
            let floor = KernelFloor { flops: plan.flops() as f64, min_bytes: plan.min_bytes(2) as f64, tensor: false };
            let name = format!("sampling_sample bf16 top-k+top-p b{batch} v{vocab}");
            for m in models {
                rows.push(speed_of_light_with(&name, &c, m, Some(floor), resources));
            }
        }
    }
    Ok(())
}
