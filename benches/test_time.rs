//! Test-time scaling benchmarks: decode attention over paged KV caches at 32k and 128k contexts
//! (one sequence, a serving batch, 16 samples of one prompt with and without the shared-prefix
//! cascade, speculative verification of 4 tokens, an fp8 cache), majority vote over many samples per
//! prompt and chain speculative verification. On a GPU: measured with CUDA events; without one: the
//! PTX VM's counters through a speed-of-light model (see `benches/common/mod.rs`).
//! `cargo bench --bench test_time [-- filter]`.

mod common;

use common::{uniform, Case, Launcher, Metric, VmScale, Work};
use half::bf16;
use scaling_kernels::attention::{
    cascade_attention, cascade_prefix_pass, decode_attention, decode_attention_fp8, CascadePlan, DecodeOptions,
    DecodePlan, DecodeShape, PagedLayout,
};
use scaling_kernels::device::Buffer;
use scaling_kernels::sampling::{chain_speculative, majority_vote};
use scaling_kernels::{Device, Result};

/// Registers per thread (sm_80, `scripts/resource-report`), for the model's occupancy. Rerun it after
/// editing the kernels.
const MAJORITY_VOTE_REGISTERS: u32 = 29;
const CHAIN_SPECULATIVE_REGISTERS: u32 = 32;
/// decode_attention_bf16_d128, decode_attention_fp8_bf16_d128 and decode_merge_bf16.
const DECODE_D128_REGISTERS: u32 = 164;
const DECODE_FP8_D128_REGISTERS: u32 = 159;
const DECODE_MERGE_REGISTERS: u32 = 32;

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

/// Llama-3-8B attention: 32 query heads, 8 KV heads, head dim 128 (Meta-Llama-3-8B config.json).
const HEADS: usize = 32;
const KV_HEADS: usize = 8;
/// Query heads per KV head: the rows one decode CTA holds per query token.
const GROUP: usize = HEADS / KV_HEADS;
const HEAD_DIM: usize = 128;
/// Tokens per KV page (vLLM's default block size).
const PAGE: usize = 16;
/// Keys per split are a multiple of this (`decode.rs`'s split alignment, one K/V tile).
const SPLIT_ALIGN: usize = 64;

/// The SM count decode splits are planned for: the GPU's own, or on the VM the modelled device's
/// (132 for the default H100), so the VM shape keeps the real launch's keys per CTA.
fn plan_sms(dev: &Device) -> usize {
    if dev.is_vm() {
        common::device_model().sms as usize
    } else {
        dev.sm_count()
    }
}

/// A permutation of the cache's pages (a prime stride): a serving engine's allocator scatters a
/// sequence's pages, and the kernel's page walk should not see them in order.
fn scattered(num_pages: usize) -> Vec<i32> {
    (0..num_pages).map(|i| ((i * 7919) % num_pages) as i32).collect()
}

/// K and V caches of `num_pages` pages, every byte `fill` (the kernel's work does not depend on the
/// values, and a cache of 4 GB is too much to generate on the host).
fn kv_cache<E: scaling_kernels::device::Element>(
    dev: &Device,
    num_pages: usize,
    kv_heads: usize,
    fill: u8,
) -> Result<(Buffer<E>, Buffer<E>)> {
    let n = num_pages * PAGE * kv_heads * HEAD_DIM;
    let (mut k, mut v) = (dev.alloc_zeros::<E>(n)?, dev.alloc_zeros::<E>(n)?);
    dev.fill_bytes(&mut k.view_mut(), fill)?;
    dev.fill_bytes(&mut v.view_mut(), fill)?;
    Ok((k, v))
}

/// A plain decode step: `lens[b]` keys for sequence `b` (its new `q_len` tokens included), `heads`
/// query heads over `kv_heads`, split-KV as `DecodePlan::new` plans it for the device (or at most
/// `splits`), bf16 or fp8 (e4m3, unit scales) cache. The launcher is the whole call: the split
/// kernel and, with more than one split, the merge.
#[allow(clippy::too_many_arguments)]
fn decode_launcher(
    dev: &Device,
    lens: Vec<i32>,
    q_len: usize,
    heads: usize,
    kv_heads: usize,
    fp8: bool,
    splits: Option<usize>,
) -> Result<Launcher> {
    let batch = lens.len();
    let pages_per_seq = (lens.iter().copied().max().unwrap_or(0) as usize).div_ceil(PAGE).max(1);
    let num_pages = batch * pages_per_seq;
    let layout = PagedLayout { num_pages, page_size: PAGE, kv_heads, head_dim: HEAD_DIM, pages_per_seq };
    let shape = DecodeShape { batch, q_len, heads };
    let plan = match splits {
        Some(s) => DecodePlan::with_splits(shape, layout, &lens, s)?,
        None => DecodePlan::new(plan_sms(dev), shape, layout, &lens)?,
    };
    let table = dev.upload(&scattered(num_pages))?;
    let seq_lens = dev.upload(&lens)?;
    let q = dev.upload(&common::bf16s(batch * q_len * heads * HEAD_DIM, 61, -2.0, 2.0))?;
    let mut out = dev.alloc_zeros::<bf16>(batch * q_len * heads * HEAD_DIM)?;
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1))?;
    let dev = dev.clone();
    if fp8 {
        // e4m3 0x38 = 1.0.
        let (k, v) = kv_cache::<u8>(&dev, num_pages, kv_heads, 0x38)?;
        let scale = dev.upload(&vec![0.05f32; kv_heads])?;
        Ok(Box::new(move || {
            decode_attention_fp8(
                &dev,
                &plan,
                &q.view(),
                &k.view(),
                &v.view(),
                (&scale.view(), &scale.view()),
                &table.view(),
                &seq_lens.view(),
                None,
                &mut out.view_mut(),
                Some(&mut ws.view_mut()),
                DecodeOptions::default(),
            )
        }))
    } else {
        // bf16 0x3C3C = 0.0115.
        let (k, v) = kv_cache::<bf16>(&dev, num_pages, kv_heads, 0x3C)?;
        Ok(Box::new(move || {
            decode_attention(
                &dev,
                &plan,
                &q.view(),
                &k.view(),
                &v.view(),
                &table.view(),
                &seq_lens.view(),
                None,
                &mut out.view_mut(),
                Some(&mut ws.view_mut()),
                DecodeOptions::default(),
            )
        }))
    }
}

/// The split kernel of a bf16 decode step on its own (VM only): `cascade_prefix_pass` of a cascade
/// of one sample per sequence whose prefix is the whole sequence and whose suffix is empty, with
/// `splits` forced, launches the same kernel over the same keys per CTA (same chunk: same length,
/// same split count) and leaves its partial O and LSE in the workspace, as the split launch of
/// `decode_attention` does.
fn split_pass_launcher(dev: &Device, lens: Vec<i32>, q_len: usize, heads: usize, splits: usize) -> Result<Launcher> {
    let batch = lens.len();
    let pages_per_seq = (lens.iter().copied().max().unwrap_or(0) as usize).div_ceil(PAGE).max(1);
    let num_pages = batch * pages_per_seq;
    let layout = PagedLayout { num_pages, page_size: PAGE, kv_heads: 1, head_dim: HEAD_DIM, pages_per_seq };
    let shape = DecodeShape { batch, q_len, heads };
    let zero = vec![0i32; batch];
    let plan = CascadePlan::new(plan_sms(dev), shape, 1, layout, &lens, layout, &zero, Some((splits, 1)))?;
    let table = dev.upload(&scattered(num_pages))?;
    let (seq_lens, zl) = (dev.upload(&lens)?, dev.upload(&zero)?);
    let q = dev.upload(&common::bf16s(batch * q_len * heads * HEAD_DIM, 62, -2.0, 2.0))?;
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len())?;
    let (k, v) = kv_cache::<bf16>(dev, num_pages, 1, 0x3C)?;
    let dev = dev.clone();
    Ok(Box::new(move || {
        cascade_prefix_pass(
            &dev,
            &plan,
            &q.view(),
            &k.view(),
            &v.view(),
            (&table.view(), &seq_lens.view(), None),
            (&table.view(), &zl.view(), None),
            &mut ws.view_mut(),
            DecodeOptions::default(),
        )
    }))
}

/// The fewest bytes of a decode step: `keys` K/V rows (all sequences) once per kv head, the queries
/// read and the outputs written once (bf16), and the fp8 scales.
fn decode_bytes(keys: usize, tokens: usize, fp8: bool) -> u64 {
    let elem = if fp8 { 1 } else { 2 };
    let scales = if fp8 { 2 * KV_HEADS * 4 } else { 0 };
    (2 * keys * KV_HEADS * HEAD_DIM * elem + 2 * tokens * HEADS * HEAD_DIM * 2 + scales) as u64
}

/// Decode attention, Llama-3-8B heads, `batch` sequences of `ctx` keys (the new `q_len` tokens
/// included), paged (16), bf16 or fp8 cache, split-KV as `DecodePlan::new` plans it for the device.
/// `min_bytes` replaces the step's own fewest bytes where the same problem has a smaller floor (16
/// samples of one prompt: the prompt once).
///
/// Work: 4 x batch x q_len x 32 heads x ctx x 128 FLOPs on tensor cores; throughput in GB/s of the
/// fewest bytes (the K/V cache once per kv head), against the DRAM peak.
///
/// VM shape: one sequence and one kv head (its 4 query heads), the context whole (the inner loop),
/// with the real launch's split count forced, so every CTA walks the same keys as at the real shape;
/// x batch x 8 kv heads. With more than one split the split kernel and the merge are modelled as two
/// launches (the split kernel through `cascade_prefix_pass`, which is that launch alone; fp8 has no
/// such entry, so its VM run is one sequence per split range, each one CTA over that range's keys,
/// writing bf16 out instead of an fp32 partial: 1 KB less per CTA of 1 MB) and their times added.
fn decode_case(id: String, batch: usize, ctx: usize, q_len: usize, fp8: bool, min_bytes: Option<u64>) -> Case {
    let sms = common::device_model().sms as usize;
    let lens = vec![ctx as i32; batch];
    let pages_per_seq = ctx.div_ceil(PAGE);
    let layout = PagedLayout {
        num_pages: batch * pages_per_seq,
        page_size: PAGE,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        pages_per_seq,
    };
    let plan =
        DecodePlan::new(sms, DecodeShape { batch, q_len, heads: HEADS }, layout, &lens).expect("a valid decode shape");
    let (splits, chunk) = (plan.splits(), plan.chunk());
    let flops = 4 * (batch * q_len * HEADS * ctx * HEAD_DIM) as u64;
    let bytes = min_bytes.unwrap_or_else(|| decode_bytes(batch * ctx, batch * q_len, fp8));
    let factor = (batch * KV_HEADS) as u64;
    let mut vm = VmScale::new(
        factor,
        format!(
            "1 seq of {ctx}, 1 kv head ({GROUP} q heads), {splits} split(s) of {chunk} keys as planned for {sms} SMs"
        ),
    );
    if splits > 1 {
        // The merge reads `splits` partials per row; its work does not depend on the keys, so its
        // VM run takes `splits` tiles of keys, one per split.
        vm = vm.then("decode_merge", factor, Some(DECODE_MERGE_REGISTERS), move |dev| {
            decode_launcher(dev, vec![(splits * SPLIT_ALIGN) as i32], q_len, GROUP, 1, false, Some(splits))
        });
    }
    Case {
        family: "decode_attention",
        id,
        work: Work { flops: flops as f64, min_bytes: bytes as f64, tensor: true, metric: Metric::Bytes },
        registers: Some(if fp8 { DECODE_FP8_D128_REGISTERS } else { DECODE_D128_REGISTERS }),
        vm,
        build: Box::new(move |dev, real| {
            if real {
                return decode_launcher(dev, vec![ctx as i32; batch], q_len, HEADS, KV_HEADS, fp8, None);
            }
            if splits == 1 {
                return decode_launcher(dev, vec![ctx as i32], q_len, GROUP, 1, fp8, Some(1));
            }
            if fp8 {
                let mut ranges = vec![chunk as i32; splits - 1];
                ranges.push((ctx - (splits - 1) * chunk) as i32);
                return decode_launcher(dev, ranges, q_len, GROUP, 1, true, Some(1));
            }
            split_pass_launcher(dev, vec![ctx as i32], q_len, GROUP, splits)
        }),
    }
}

/// Which launch of a cascade step a launcher makes.
#[derive(Clone, Copy)]
enum CascadeRun {
    /// The whole call: prefix pass, suffix pass, merge.
    Whole,
    /// The prefix pass alone, (prefix, suffix) splits forced.
    Prefix(usize, usize),
    /// The merge last (a prefix of one K/V tile per split: the merge does not depend on the keys).
    Merge(usize, usize),
}

/// 16 samples of one prompt through the shared-prefix cascade: the prompt's `prompt` keys in
/// pages stored once, each sample's `gen` keys (its new token included) in its own pages.
fn cascade_launcher(
    dev: &Device,
    samples: usize,
    (prompt, gen): (usize, usize),
    (heads, kv_heads): (usize, usize),
    run: CascadeRun,
) -> Result<Launcher> {
    let (prompt, forced) = match run {
        CascadeRun::Whole => (prompt, None),
        CascadeRun::Prefix(p, s) => (prompt, Some((p, s))),
        CascadeRun::Merge(p, s) => (p * SPLIT_ALIGN, Some((p, s))),
    };
    let (pp, sp) = (prompt.div_ceil(PAGE), gen.div_ceil(PAGE));
    let num_pages = pp + samples * sp;
    let pages = scattered(num_pages);
    let layout =
        |pages_per_seq| PagedLayout { num_pages, page_size: PAGE, kv_heads, head_dim: HEAD_DIM, pages_per_seq };
    let (plens, slens) = (vec![prompt as i32], vec![gen as i32; samples]);
    let shape = DecodeShape { batch: samples, q_len: 1, heads };
    let plan = CascadePlan::new(plan_sms(dev), shape, samples, layout(pp), &plens, layout(sp), &slens, forced)?;
    let (pt, st) = (dev.upload(&pages[..pp])?, dev.upload(&pages[pp..])?);
    let (pl, sl) = (dev.upload(&plens)?, dev.upload(&slens)?);
    let q = dev.upload(&common::bf16s(samples * heads * HEAD_DIM, 63, -2.0, 2.0))?;
    let mut out = dev.alloc_zeros::<bf16>(samples * heads * HEAD_DIM)?;
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len())?;
    let (k, v) = kv_cache::<bf16>(dev, num_pages, kv_heads, 0x3C)?;
    let dev = dev.clone();
    Ok(Box::new(move || {
        let (p, s) = ((&pt.view(), &pl.view(), None), (&st.view(), &sl.view(), None));
        let opts = DecodeOptions::default();
        match run {
            CascadeRun::Prefix(..) => {
                cascade_prefix_pass(&dev, &plan, &q.view(), &k.view(), &v.view(), p, s, &mut ws.view_mut(), opts)
            }
            _ => cascade_attention(
                &dev,
                &plan,
                &q.view(),
                &k.view(),
                &v.view(),
                p,
                s,
                &mut out.view_mut(),
                &mut ws.view_mut(),
                opts,
            ),
        }
    }))
}

/// `samples` parallel samples of one `prompt`-key prompt, each `gen` keys in (its new token
/// included), through the shared-prefix cascade: three launches (prefix pass, suffix pass, merge),
/// the prompt's K/V read once per kv head for all samples (their 16 x 4 query rows fill one tile).
/// Its plain-decode twin is `decode_case` over `samples` sequences of `prompt + gen` keys, each
/// holding its own copy of the prompt (no prefix sharing); both report against the same floor,
/// the prompt once and each sample's own keys.
///
/// VM shape: all samples, one kv head; each launch alone, with the real (prefix, suffix) split
/// counts forced (the suffix pass through `cascade_prefix_pass` over the suffix pages); x 8.
fn cascade_case(samples: usize, prompt: usize, gen: usize) -> Case {
    let sms = common::device_model().sms as usize;
    let (pp, sp) = (prompt.div_ceil(PAGE), gen.div_ceil(PAGE));
    let num_pages = pp + samples * sp;
    let layout = |pages_per_seq| PagedLayout {
        num_pages,
        page_size: PAGE,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        pages_per_seq,
    };
    let plan = CascadePlan::new(
        sms,
        DecodeShape { batch: samples, q_len: 1, heads: HEADS },
        samples,
        layout(pp),
        &[prompt as i32],
        layout(sp),
        &vec![gen as i32; samples],
        None,
    )
    .expect("a valid cascade shape");
    let (ps, ss) = plan.splits();
    let flops = 4 * (samples * HEADS * (prompt + gen) * HEAD_DIM) as u64;
    let factor = KV_HEADS as u64;
    let vm = VmScale::new(
        factor,
        format!("{samples} samples, 1 kv head; prefix pass {ps} split(s), suffix pass {ss}, planned for {sms} SMs"),
    )
    .then("decode suffix pass", factor, Some(DECODE_D128_REGISTERS), move |dev| {
        split_pass_launcher(dev, vec![gen as i32; samples], 1, GROUP, ss)
    })
    .then("decode_merge", factor, Some(DECODE_MERGE_REGISTERS), move |dev| {
        cascade_launcher(dev, samples, (prompt, gen), (GROUP, 1), CascadeRun::Merge(ps, ss))
    });
    Case {
        family: "decode_attention",
        id: format!("llama3_8b/{samples}_samples_prompt{}k_gen{gen}/cascade", prompt / 1024),
        work: Work {
            flops: flops as f64,
            min_bytes: decode_bytes(prompt + samples * gen, samples, false) as f64,
            tensor: true,
            metric: Metric::Bytes,
        },
        registers: Some(DECODE_D128_REGISTERS),
        vm,
        build: Box::new(move |dev, real| {
            if real {
                cascade_launcher(dev, samples, (prompt, gen), (HEADS, KV_HEADS), CascadeRun::Whole)
            } else {
                cascade_launcher(dev, samples, (prompt, gen), (GROUP, 1), CascadeRun::Prefix(ps, ss))
            }
        }),
    }
}

/// Decode at test-time scaling's shapes, Llama-3-8B heads, page 16.
fn decode_cases() -> Vec<Case> {
    const K32: usize = 32 * 1024;
    const K128: usize = 128 * 1024;
    let id = |b: usize, ctx: usize, q: usize, kv: &str| format!("llama3_8b/b{b}_ctx{}k_q{q}_{kv}", ctx / 1024);
    let mut cases = Vec::new();
    // One long sequence (split-KV fills the GPU) and a serving batch (one split), bf16 and fp8.
    for (b, ctx) in [(1, K32), (1, K128), (64, K32)] {
        cases.push(decode_case(id(b, ctx, 1, "bf16"), b, ctx, 1, false, None));
    }
    for (b, ctx) in [(1, K128), (64, K32)] {
        cases.push(decode_case(id(b, ctx, 1, "fp8"), b, ctx, 1, true, None));
    }
    // Speculative verification: 4 tokens per sequence (multi-token decode, causal among them).
    for b in [1, 64] {
        cases.push(decode_case(id(b, K32, 4, "bf16"), b, K32, 4, false, None));
    }
    // 16 samples of one 32k prompt, 256 tokens generated: shared-prefix cascade vs plain decode.
    let (samples, gen) = (16, 256);
    cases.push(cascade_case(samples, K32, gen));
    cases.push(decode_case(
        format!("llama3_8b/{samples}_samples_prompt32k_gen{gen}/plain"),
        samples,
        K32 + gen,
        1,
        false,
        Some(decode_bytes(K32 + samples * gen, samples, false)),
    ));
    cases
}

fn cases() -> Vec<Case> {
    let mut cases = decode_cases();
    cases.extend([majority_vote_case(1024, 64), majority_vote_case(256, 256)]);
    for batch in [64, 256] {
        for greedy in [false, true] {
            cases.push(speculative_case(batch, greedy));
        }
    }
    cases
}

fn main() {
    common::main_for("test_time", cases);
}
