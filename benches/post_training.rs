//! Post-training (RL rollouts) benchmarks: batched sampling with top-p and temperature and the
//! chosen tokens' logprobs at batch 256 and 1024, and the trainer's `log_softmax_gather` over
//! `[tokens, vocab]`, for the vocabularies of Llama-3 (128,256), Qwen2.5/Qwen3 (151,936) and
//! DeepSeek-V3 (129,280). On a GPU: measured with CUDA events; without one: the PTX VM's counters
//! through a speed-of-light model (see `benches/common/mod.rs`).
//! `cargo bench --bench post_training [-- filter]`.
//!
//! Adding a kernel: a function returning its `Case`s, called from `cases()`.

mod common;

use common::{bf16s, uniform, Case, DumpDir, VmScale, Work};
use scaling_kernels::sampling::{log_softmax_gather, sample, RowParams, SampleOutput, SamplingParams, SamplingPlan};
use scaling_kernels::{Device, Result};

/// Registers per thread (sm_80, `scripts/resource-report`), for the model's occupancy. Rerun it after
/// editing the kernels.
const SAMPLE_BF16_REGISTERS: u32 = 64;
const LOG_SOFTMAX_GATHER_BF16_REGISTERS: u32 = 24;

/// Vocabularies: Llama-3 (config.json vocab_size 128256), Qwen2.5 / Qwen3 (151936) and DeepSeek-V3
/// (129280).
const VOCABS: [(&str, usize); 3] = [("llama3", 128_256), ("qwen3", 151_936), ("deepseek_v3", 129_280)];

/// Rows the VM runs of a per-row kernel: every CTA is one independent row, so the real batch is
/// this launch `batch / VM_ROWS` times over (the rows' data differ, their passes are the same kind).
const VM_ROWS: usize = 4;

/// Logits with the spread of a language model's (uniform in [-8, 8): many tokens within a few
/// nats of the top, as after a softmax temperature), the same pattern `examples/sol_report.rs` uses.
fn logits(rows: usize, vocab: usize, seed: u64) -> Vec<half::bf16> {
    bf16s(rows * vocab, seed, -8.0, 8.0)
}

/// A rollout step: one token per row with temperature 0.7 and top-p 0.9, and its logprobs (raw,
/// processed, truncated) and rank, as the sampler always writes them.
fn sample_case(vocab_name: &'static str, vocab: usize, batch: usize) -> Case {
    let plan = SamplingPlan::new(batch, vocab, 1).expect("valid plan");
    Case {
        family: "sampling_top_p",
        id: format!("{vocab_name}_v{vocab}/b{batch}_t0.7_p0.9"),
        work: Work::memory(plan.flops(), plan.min_bytes(2)),
        registers: Some(SAMPLE_BF16_REGISTERS),
        vm: VmScale::new((batch / VM_ROWS) as u64, format!("{VM_ROWS} rows")).share(format!("sample v{vocab}")),
        build: Box::new(move |dev, real| {
            let rows = if real { batch } else { VM_ROWS };
            let plan = SamplingPlan::new(rows, vocab, 1)?;
            let x = dev.upload(&logits(rows, vocab, 21))?;
            let params: Vec<RowParams> = (0..rows as u64)
                .map(|s| RowParams { temperature: 0.7, top_p: 0.9, seed: s, position: 17, ..RowParams::default() })
                .collect();
            let params = SamplingParams::upload(dev, &params)?;
            let mut out = SampleOutput::alloc(dev, &plan)?;
            let dev = dev.clone();
            Ok(Box::new(move || sample(&dev, &plan, &x.view(), &params, &mut out)))
        }),
    }
}

/// The trainer's side: the target tokens' logprobs and the entropy over `[tokens, vocab]` (8192
/// tokens: e.g. 8 responses of 1k tokens per micro-batch).
fn log_softmax_gather_case(vocab_name: &'static str, vocab: usize, tokens: usize) -> Case {
    Case {
        family: "log_softmax_gather",
        id: format!("{vocab_name}_v{vocab}/{}k_tokens_entropy", tokens / 1024),
        // logprobs.cu: ~5 FLOPs per logit with entropy; fewest bytes vocab * 2 + 12 per row.
        work: Work::memory(5 * (tokens * vocab) as u64, (tokens * (vocab * 2 + 12)) as u64),
        registers: Some(LOG_SOFTMAX_GATHER_BF16_REGISTERS),
        vm: VmScale::new((tokens / VM_ROWS) as u64, format!("{VM_ROWS} rows")),
        build: Box::new(move |dev, real| {
            let rows = if real { tokens } else { VM_ROWS };
            let x = dev.upload(&logits(rows, vocab, 22))?;
            let target: Vec<i32> = uniform(rows, 23, 0.0, vocab as f64).map(|t| t as i32).collect();
            let target = dev.upload(&target)?;
            let mut lp = dev.alloc_zeros::<f32>(rows)?;
            let mut ent = dev.alloc_zeros::<f32>(rows)?;
            let mut st = dev.alloc_zeros::<u32>(rows)?;
            let dev = dev.clone();
            Ok(Box::new(move || {
                log_softmax_gather(
                    &dev,
                    vocab,
                    &x.view(),
                    &target.view(),
                    &mut lp.view_mut(),
                    Some(&mut ent.view_mut()),
                    &mut st.view_mut(),
                )
            }))
        }),
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, vocab) in VOCABS {
        for batch in [256, 1024] {
            cases.push(sample_case(name, vocab, batch));
        }
    }
    for (name, vocab) in VOCABS {
        cases.push(log_softmax_gather_case(name, vocab, 8192));
    }
    cases
}

/// A small problem for `scripts/compare_torch.py`: 64 rows of the Llama-3 vocabulary sampled with
/// temperature 0.7 and top-p 0.9; the tokens and their raw logprobs.
fn dump(dev: &Device, d: &DumpDir) -> Result<()> {
    let (rows, vocab) = (64, 128_256);
    let x = logits(rows, vocab, 61);
    let plan = SamplingPlan::new(rows, vocab, 1)?;
    let params: Vec<RowParams> =
        (0..rows as u64).map(|s| RowParams { temperature: 0.7, top_p: 0.9, seed: s, ..RowParams::default() }).collect();
    let params = SamplingParams::upload(dev, &params)?;
    let mut out = SampleOutput::alloc(dev, &plan)?;
    sample(dev, &plan, &dev.upload(&x)?.view(), &params, &mut out)?;
    d.write("sample_logits", "bf16", &[rows, vocab], &x);
    d.write("sample_token", "i32", &[rows], &dev.download(&out.token)?);
    d.write("sample_logprob_raw", "f32", &[rows], &dev.download(&out.logprob_raw)?);
    Ok(())
}

fn main() {
    common::main_with_dump("post_training", cases, Some(dump));
}
