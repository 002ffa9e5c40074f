//! Test-time scaling benchmarks: majority vote over many samples per prompt and chain speculative
//! verification. On a GPU: measured with CUDA events; without one: the PTX VM's counters through a
//! speed-of-light model (see `benches/common/mod.rs`). `cargo bench --bench test_time [-- filter]`.
//!
//! Decode attention goes here when it lands (see `cases()`): 32k and 128k contexts, 16 parallel
//! samples per prompt with and without the shared-prefix path.

mod common;

use common::{uniform, Case, VmScale, Work};
use scaling_kernels::sampling::{chain_speculative, majority_vote};

/// Registers per thread (sm_80, `scripts/resource-report`), for the model's occupancy. Rerun it after
/// editing the kernels.
const MAJORITY_VOTE_REGISTERS: u32 = 29;
const CHAIN_SPECULATIVE_REGISTERS: u32 = 32;

/// Groups the VM runs of majority vote: one warp per group, so the real launch is this one
/// `groups / VM_GROUPS` times over (every group holds the same number of samples).
const VM_GROUPS: usize = 64;
/// Rows the VM runs of speculative verification (one CTA per row).
const VM_ROWS: usize = 4;

/// Self-consistency: `groups` prompts with `n` sampled answers each (answer ids: hashes of the
/// extracted final answers, a few distinct per prompt so that votes coincide).
fn majority_vote_case(groups: usize, n: usize) -> Case {
    let answers = groups * n;
    Case {
        family: "majority_vote",
        id: format!("{groups}_prompts_x{n}_samples"),
        // select.cu: each answer read once, two words written per group (plus the offsets).
        work: Work::memory(0, (answers * 8 + groups * (8 + 4 + 4) + 4) as u64),
        registers: Some(MAJORITY_VOTE_REGISTERS),
        vm: VmScale::new((groups / VM_GROUPS) as u64, format!("{VM_GROUPS} prompts")),
        build: Box::new(move |dev, real| {
            let g = if real { groups } else { VM_GROUPS };
            // Up to 8 distinct answers per prompt.
            let ids: Vec<u64> = uniform(g * n, 31, 0.0, 8.0)
                .enumerate()
                .map(|(i, a)| ((i / n) as u64) << 8 | a as u64)
                .map(|h| h.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            let offsets: Vec<u32> = (0..=g).map(|i| (i * n) as u32).collect();
            let answers = dev.upload(&ids)?;
            let mut answer = dev.alloc_zeros::<u64>(g)?;
            let mut votes = dev.alloc_zeros::<u32>(g)?;
            let dev = dev.clone();
            // The wrapper checks and uploads `offsets` on every call: that copy is part of the call.
            Ok(Box::new(move || {
                majority_vote(&dev, &answers.view(), &offsets, &mut answer.view_mut(), &mut votes.view_mut())
            }))
        }),
    }
}

/// `rows` distributions over `vocab`: the softmax of uniform logits in [-8, 8) plus `noise` times
/// a second pattern, so a draft model's rows can sit near the target's.
fn probs(rows: usize, vocab: usize, seed: u64, noise: f64) -> Vec<f32> {
    let base: Vec<f64> = uniform(rows * vocab, seed, -8.0, 8.0).collect();
    let jitter: Vec<f64> = uniform(rows * vocab, seed + 1, -1.0, 1.0).collect();
    let mut out = Vec::with_capacity(rows * vocab);
    for r in 0..rows {
        let x: Vec<f64> = (0..vocab).map(|i| base[r * vocab + i] + noise * jitter[r * vocab + i]).collect();
        let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        out.extend(x.iter().map(|v| ((v - m).exp() / s) as f32));
    }
    out
}

/// Chain speculative verification of `k` = 4 draft tokens per row against the target's `k + 1`
/// distributions over the Llama-3 vocabulary (a small Llama drafting for a large one), sampled
/// (draft distributions given) or greedy.
fn speculative_case(batch: usize, greedy: bool) -> Case {
    const K: usize = 4;
    const VOCAB: usize = 128_256;
    let per_row_bytes = (VOCAB * 4 + K * 12 + (K + 1) * 4 + 4 + 16) as u64;
    Case {
        family: "chain_speculative",
        id: format!("llama3_v{VOCAB}/b{batch}_k{K}_{}", if greedy { "greedy" } else { "sampled" }),
        // The fewest bytes any outcome needs: one pass over one distribution per row, the drafts,
        // and the outputs; a rejection reads p_j and q_j (twice that).
        work: Work::memory(2 * (batch * VOCAB) as u64, batch as u64 * per_row_bytes),
        registers: Some(CHAIN_SPECULATIVE_REGISTERS),
        vm: VmScale::new((batch / VM_ROWS) as u64, format!("{VM_ROWS} rows")),
        build: Box::new(move |dev, real| {
            let rows = if real { batch } else { VM_ROWS };
            let target = probs(rows * (K + 1), VOCAB, 41, 0.0);
            // Draft rows: the target's first k distributions, perturbed.
            let draft_p: Vec<f32> = {
                let t = probs(rows * (K + 1), VOCAB, 41, 0.5);
                (0..rows).flat_map(|r| t[r * (K + 1) * VOCAB..(r * (K + 1) + K) * VOCAB].to_vec()).collect()
            };
            // Draft tokens drawn from the draft distributions.
            let mut u = uniform(rows * K, 43, 0.0, 1.0);
            let draft: Vec<i32> = draft_p
                .chunks(VOCAB)
                .map(|row| {
                    let mut left = u.next().unwrap_or(0.5) as f32;
                    row.iter()
                        .position(|&p| {
                            left -= p;
                            left <= 0.0
                        })
                        .unwrap_or(VOCAB - 1) as i32
                })
                .collect();
            let (draft, target) = (dev.upload(&draft)?, dev.upload(&target)?);
            let draft_p = dev.upload(&draft_p)?;
            let seed = dev.upload(&(0..rows as u64).collect::<Vec<_>>())?;
            let pos = dev.upload(&vec![100u64; rows])?;
            let mut acc = dev.alloc_zeros::<i32>(rows)?;
            let mut emitted = dev.alloc_zeros::<i32>(rows * (K + 1))?;
            let dev = dev.clone();
            Ok(Box::new(move || {
                let q = draft_p.view();
                chain_speculative(
                    &dev,
                    K,
                    VOCAB,
                    &draft.view(),
                    (!greedy).then_some(&q),
                    &target.view(),
                    &seed.view(),
                    &pos.view(),
                    &mut acc.view_mut(),
                    &mut emitted.view_mut(),
                )
            }))
        }),
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![majority_vote_case(1024, 64), majority_vote_case(256, 256)];
    for batch in [64, 256] {
        for greedy in [false, true] {
            cases.push(speculative_case(batch, greedy));
        }
    }
    // Decode attention (32k and 128k contexts, 16 samples per prompt, with and without the
    // shared-prefix path) joins here as `cases.extend(decode_cases())` once `attention::decode`
    // lands: its Work is the KV cache read once (bytes) and its VM shape one sequence per head group.
    cases
}

fn main() {
    common::main_for("test_time", cases);
}
