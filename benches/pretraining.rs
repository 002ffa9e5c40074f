//! Pretraining benchmarks: attention forward and backward on packed long sequences (Llama-3-8B and
//! -70B heads) and MoE routing, permutation and combine at 16k and 64k tokens (DeepSeek-V3, Qwen3-MoE,
//! Mixtral). On a GPU: measured with CUDA events; without one: the PTX VM's counters through a
//! speed-of-light model (see `benches/common/mod.rs`). `cargo bench --bench pretraining [-- filter]`.
//!
//! Adding a kernel: a function returning its `Case`s (work at the real shape, the VM shape and its
//! factor, a build closure), called from `cases()`.

mod common;

use common::{bf16s, uniform, Case, DumpDir, Launcher, VmScale, Work};
use half::bf16;
use scaling_kernels::attention::{
    attention_bwd_flops, attention_bwd_min_bytes, attention_bwd_varlen, attention_fwd_flops, attention_fwd_min_bytes,
    attention_fwd_varlen, AttnBwdInputs, AttnBwdPlan, AttnBwdStage, AttnGradsMut, AttnOptions, VarlenShape,
};
use scaling_kernels::device::Counters;
use scaling_kernels::moe::{
    combine, gather, permute, permute_count, route, PermuteOptions, PermutePlan, RouteOptions, RoutePlan, Scoring,
};
use scaling_kernels::{Device, Result};

/// Registers per thread (sm_80, `scripts/resource-report`), for the model's occupancy. Rerun it after
/// editing the kernels; `examples/sol_report.rs` holds the same figures for its rows.
const ATTENTION_FWD_D128_REGISTERS: u32 = 255;
/// attention_bwd_dot_do_o_bf16, attention_bwd_dq_bf16_d128, attention_bwd_dkv_bf16_d128.
const ATTENTION_BWD_DOT_REGISTERS: u32 = 17;
const ATTENTION_BWD_DQ_D128_REGISTERS: u32 = 174;
const ATTENTION_BWD_DKV_D128_REGISTERS: u32 = 240;
/// moe_route_bf16_e{1,2,4,8,16} (the instantiation is `experts.div_ceil(32).next_power_of_two()`).
const MOE_ROUTE_REGISTERS: [(usize, u32); 5] = [(1, 28), (2, 37), (4, 36), (8, 44), (16, 64)];
/// moe_permute_count and moe_permute_scatter, the two launches of `permute`.
const MOE_PERMUTE_COUNT_REGISTERS: u32 = 22;
const MOE_PERMUTE_SCATTER_REGISTERS: u32 = 48;
const MOE_GATHER_V16_REGISTERS: u32 = 32;
const MOE_COMBINE_BF16_REGISTERS: u32 = 35;

/// Tokens in one packed attention batch: 8 x 4k, 4 x 8k or 2 x 16k sequences.
const PACKED_TOKENS: usize = 32_768;
const HEAD_DIM: usize = 128;

/// A dense model's attention heads.
struct AttnModel {
    name: &'static str,
    heads: usize,
    kv_heads: usize,
}

/// Llama-3-8B: 32 query heads, 8 KV heads, head dim 128 (Meta-Llama-3-8B config.json).
const LLAMA3_8B: AttnModel = AttnModel { name: "llama3_8b", heads: 32, kv_heads: 8 };
/// Llama-3-70B: 64 query heads, 8 KV heads, head dim 128 (Meta-Llama-3-70B config.json).
const LLAMA3_70B: AttnModel = AttnModel { name: "llama3_70b", heads: 64, kv_heads: 8 };

/// Causal attention forward (bf16, with the LSE a backward needs) over a packed batch of
/// `PACKED_TOKENS` tokens in sequences of `seqlen`.
///
/// VM shape: one sequence of `seqlen` with one query and one KV head. The grid is one CTA per
/// (128-row query tile, head, sequence) and a CTA's work depends only on its tile's position in
/// its sequence, so the real launch is this one `sequences x heads` times over; only the unique
/// K/V bytes do not multiply by the query heads (a group of `heads / kv_heads` query heads reads
/// one K/V head), and the adjustment takes them back to once per KV head.
fn attention_case(m: &AttnModel, seqlen: usize) -> Case {
    let seqs = PACKED_TOKENS / seqlen;
    let (heads, kv_heads) = (m.heads, m.kv_heads);
    let flops = seqs as u64 * attention_fwd_flops(seqlen, seqlen, heads, HEAD_DIM, true, (-1, -1));
    let min_bytes = seqs as u64 * attention_fwd_min_bytes(seqlen, seqlen, heads, kv_heads, HEAD_DIM, 2, true);
    let factor = (seqs * heads) as u64;
    // K and V of one sequence and one head, in 32-byte sectors and bytes.
    let kv_bytes = (2 * seqlen * HEAD_DIM * 2) as u64;
    let extra = (seqs * (heads - kv_heads)) as u64;
    let vm = VmScale::new(factor, format!("1 sequence of {seqlen}, 1 q / 1 kv head"))
        .share(format!("attention_fwd causal d128 s{seqlen} h1"))
        .adjust(move |c: &mut Counters| {
            c.unique_bytes_read -= extra * kv_bytes;
            c.unique_sectors_read -= extra * kv_bytes / 32;
        });
    Case {
        family: "attention_fwd",
        id: format!("{}/packed_{}k_causal", m.name, seqlen / 1024),
        work: Work::tensor(flops, min_bytes),
        registers: Some(ATTENTION_FWD_D128_REGISTERS),
        vm,
        build: Box::new(move |dev, real| {
            let (seqs, heads, kv_heads) = if real { (seqs, heads, kv_heads) } else { (1, 1, 1) };
            attention_launcher(dev, seqs, seqlen, heads, kv_heads)
        }),
    }
}

fn attention_launcher(dev: &Device, seqs: usize, seqlen: usize, heads: usize, kv_heads: usize) -> Result<Launcher> {
    let tokens = seqs * seqlen;
    let q = dev.upload(&bf16s(tokens * heads * HEAD_DIM, 1, -1.0, 1.0))?;
    let k = dev.upload(&bf16s(tokens * kv_heads * HEAD_DIM, 2, -1.0, 1.0))?;
    let v = dev.upload(&bf16s(tokens * kv_heads * HEAD_DIM, 3, -1.0, 1.0))?;
    let mut out = dev.alloc_zeros::<bf16>(tokens * heads * HEAD_DIM)?;
    let mut lse = dev.alloc_zeros::<f32>(tokens * heads)?;
    let cu: Vec<i32> = (0..=seqs).map(|i| (i * seqlen) as i32).collect();
    let cu_dev = dev.upload(&cu)?;
    let shape = VarlenShape { heads, kv_heads, head_dim: HEAD_DIM };
    let dev = dev.clone();
    Ok(Box::new(move || {
        let opts = AttnOptions::default().causal(true).lse(lse.view_mut());
        let cu_view = cu_dev.view();
        attention_fwd_varlen(
            &dev,
            &q.view(),
            &k.view(),
            &v.view(),
            &mut out.view_mut(),
            &cu_view,
            &cu_view,
            &cu,
            &cu,
            shape,
            opts,
        )
    }))
}

/// Causal attention backward (bf16; dq, dk, dv from q, k, v, out, dout and the forward's LSE) over
/// the same packed batches as [`attention_case`]: three launches on one stream (`D = rowsum(dout *
/// out)`, then dq, then dk/dv), modelled one by one and their times added. The work is the
/// backward's useful FLOPs (2.5x the forward's: five products where the forward has two) and its
/// fewest bytes; the deterministic kernels do seven products (dq recomputes S and dP), which the
/// model's tensor time counts.
///
/// VM shape: one sequence of `seqlen` with one query and one KV head, as the forward's; a dq CTA
/// (64 rows of one head) walks its keys and a dk/dv CTA (64 keys) walks the rows of its group's
/// query heads, so the real launches are these `sequences x heads` times over, the dk/dv one in
/// `heads / kv_heads` times fewer, longer CTAs (the model's wave count is the only figure that
/// differs). The adjustment takes K and V (read) and dK and dV (written) back to once per KV head.
/// The LSE is filled with ln(visible keys) instead of running the forward at the VM shape: the
/// kernels' instruction counts and bytes do not depend on its values.
fn attention_bwd_case(m: &AttnModel, seqlen: usize) -> Case {
    let seqs = PACKED_TOKENS / seqlen;
    let (heads, kv_heads) = (m.heads, m.kv_heads);
    let flops = seqs as u64 * attention_bwd_flops(seqlen, seqlen, heads, HEAD_DIM, true, (-1, -1));
    let min_bytes = seqs as u64 * attention_bwd_min_bytes(seqlen, seqlen, heads, kv_heads, HEAD_DIM, 2);
    let factor = (seqs * heads) as u64;
    let kv_bytes = (2 * seqlen * HEAD_DIM * 2) as u64;
    let extra = (seqs * (heads - kv_heads)) as u64;
    let share = move |stage: &str| format!("attention_bwd {stage} causal d128 s{seqlen} h1");
    // K and V are read by both kernels, dK and dV written by the second.
    let reads_once = move |c: &mut Counters| {
        c.unique_bytes_read = c.unique_bytes_read.saturating_sub(extra * kv_bytes);
        c.unique_sectors_read = c.unique_sectors_read.saturating_sub(extra * kv_bytes / 32);
    };
    let writes_once = move |c: &mut Counters| {
        reads_once(c);
        c.unique_bytes_written = c.unique_bytes_written.saturating_sub(extra * kv_bytes);
        c.unique_sectors_written = c.unique_sectors_written.saturating_sub(extra * kv_bytes / 32);
    };
    let vm = VmScale::new(factor, format!("1 sequence of {seqlen}, 1 q / 1 kv head"))
        .share(share("dot_do_o"))
        .then_shared(
            "attention_bwd dq",
            factor,
            Some(ATTENTION_BWD_DQ_D128_REGISTERS),
            share("dq"),
            Some(Box::new(reads_once)),
            move |dev| attention_bwd_launcher(dev, 1, seqlen, 1, 1, Some(AttnBwdStage::Dq)),
        )
        .then_shared(
            "attention_bwd dk/dv",
            factor,
            Some(ATTENTION_BWD_DKV_D128_REGISTERS),
            share("dkv"),
            Some(Box::new(writes_once)),
            move |dev| attention_bwd_launcher(dev, 1, seqlen, 1, 1, Some(AttnBwdStage::Dkv)),
        );
    Case {
        family: "attention_bwd",
        id: format!("{}/packed_{}k_causal", m.name, seqlen / 1024),
        work: Work::tensor(flops, min_bytes),
        registers: Some(ATTENTION_BWD_DOT_REGISTERS),
        vm,
        build: Box::new(move |dev, real| {
            if real {
                return attention_bwd_launcher(dev, seqs, seqlen, heads, kv_heads, None);
            }
            attention_bwd_launcher(dev, 1, seqlen, 1, 1, Some(AttnBwdStage::DotDoO))
        }),
    }
}

/// Buffers for a packed causal backward and a launcher of the whole backward (`stage` `None`) or of
/// one of its launches.
fn attention_bwd_launcher(
    dev: &Device,
    seqs: usize,
    seqlen: usize,
    heads: usize,
    kv_heads: usize,
    stage: Option<AttnBwdStage>,
) -> Result<Launcher> {
    let tokens = seqs * seqlen;
    let (nq, nk) = (tokens * heads * HEAD_DIM, tokens * kv_heads * HEAD_DIM);
    let q = dev.upload(&bf16s(nq, 11, -1.0, 1.0))?;
    let k = dev.upload(&bf16s(nk, 12, -1.0, 1.0))?;
    let v = dev.upload(&bf16s(nk, 13, -1.0, 1.0))?;
    let out = dev.upload(&bf16s(nq, 14, -0.5, 0.5))?;
    let dout = dev.upload(&bf16s(nq, 15, -1.0, 1.0))?;
    // [heads, total_q]: row i of a sequence sees i + 1 keys.
    let lse_host: Vec<f32> = (0..heads * tokens).map(|r| (((r % tokens) % seqlen) as f32 + 1.0).ln()).collect();
    let lse = dev.upload(&lse_host)?;
    let (mut dq, mut dk, mut dv) =
        (dev.alloc_zeros::<bf16>(nq)?, dev.alloc_zeros::<bf16>(nk)?, dev.alloc_zeros::<bf16>(nk)?);
    let cu: Vec<i32> = (0..=seqs).map(|i| (i * seqlen) as i32).collect();
    let cu_dev = dev.upload(&cu)?;
    let shape = VarlenShape { heads, kv_heads, head_dim: HEAD_DIM };
    let mut plan = AttnBwdPlan::varlen(&cu, &cu, shape)?;
    if let Some(stage) = stage {
        plan = plan.only(stage);
    }
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len())?;
    let dev = dev.clone();
    Ok(Box::new(move || {
        let (qv, kv, vv, ov, dov, lv) = (q.view(), k.view(), v.view(), out.view(), dout.view(), lse.view());
        let inputs = AttnBwdInputs { q: &qv, k: &kv, v: &vv, out: &ov, dout: &dov, lse: &lv };
        let grads =
            AttnGradsMut { dq: &mut dq.view_mut(), dk: &mut dk.view_mut(), dv: &mut dv.view_mut(), dsinks: None };
        let cu_view = cu_dev.view();
        let opts = AttnOptions::default().causal(true);
        attention_bwd_varlen(&dev, &plan, inputs, grads, &mut ws.view_mut(), &cu_view, &cu_view, opts)
    }))
}

/// An MoE model's router.
#[derive(Clone, Copy)]
struct MoeModel {
    name: &'static str,
    experts: usize,
    hidden: usize,
    options: fn() -> RouteOptions,
}

/// DeepSeek-V3: 256 routed experts, top-8, sigmoid scores with selection bias, 8 groups of which 4
/// are kept, renormalised and scaled by 2.5, hidden 7168 (DeepSeek-V3 config.json:
/// n_routed_experts, num_experts_per_tok, n_group, topk_group, routed_scaling_factor, hidden_size).
const DEEPSEEK_V3: MoeModel = MoeModel {
    name: "deepseek_v3",
    experts: 256,
    hidden: 7168,
    options: || RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4).renormalize(true).scale(2.5),
};
/// Qwen3-235B-A22B: 128 experts, top-8, softmax, renormalised (norm_topk_prob), hidden 4096
/// (Qwen/Qwen3-235B-A22B config.json: num_experts 128, num_experts_per_tok 8, hidden_size 4096).
const QWEN3_MOE: MoeModel = MoeModel {
    name: "qwen3_235b",
    experts: 128,
    hidden: 4096,
    options: || RouteOptions::default().k(8).renormalize(true),
};
/// Mixtral-8x7B: 8 experts, top-2, softmax over the top 2 (renormalised), hidden 4096
/// (mistralai/Mixtral-8x7B-v0.1 config.json: num_local_experts 8, num_experts_per_tok 2).
const MIXTRAL: MoeModel = MoeModel {
    name: "mixtral_8x7b",
    experts: 8,
    hidden: 4096,
    options: || RouteOptions::default().k(2).renormalize(true),
};

/// Token ids routed like a balanced router: `k` distinct experts per token, uniformly at random.
fn routed_ids(tokens: usize, experts: usize, k: usize, seed: u64) -> Vec<i32> {
    let mut r = uniform(usize::MAX, seed, 0.0, 1.0);
    let mut ids = Vec::with_capacity(tokens * k);
    for _ in 0..tokens {
        let start = ids.len();
        while ids.len() < start + k {
            let e = (r.next().unwrap_or(0.0) * experts as f64) as i32;
            if !ids[start..].contains(&e) {
                ids.push(e);
            }
        }
    }
    ids
}

/// The permutation the benchmarks use: unpadded (block size 1: the Megatron / DeepEP layout a
/// grouped GEMM with per-expert counts takes), so that the rows, and the gather and combine work,
/// are exactly `tokens * k` at every size.
fn permute_plan(tokens: usize, m: &MoeModel) -> Result<PermutePlan> {
    PermutePlan::new(tokens, (m.options)().k, m.experts, PermuteOptions::default())
}

fn moe_cases(m: MoeModel, tokens: usize) -> Vec<Case> {
    let o = (m.options)();
    let k = o.k;
    let tag = format!("{}/{}k_tokens", m.name, tokens / 1024);
    let sigmoid = o.scoring == Scoring::Sigmoid;
    let entries = (tokens * k) as u64;
    let row = (m.hidden * 2) as u64;
    let mut cases = Vec::new();

    // Route: one warp per token, four per CTA; VM at 1024 tokens.
    let vm_tokens = 1024;
    let rp = RoutePlan::new(tokens, m.experts, o).expect("valid route options");
    cases.push(Case {
        family: "moe_route",
        id: tag.clone(),
        work: Work::memory(rp.flops(), rp.min_bytes(2, sigmoid)),
        registers: MOE_ROUTE_REGISTERS
            .iter()
            .find(|&&(per, _)| per == m.experts.div_ceil(32).next_power_of_two())
            .map(|&(_, r)| r),
        vm: VmScale::new((tokens / vm_tokens) as u64, format!("{vm_tokens} tokens")),
        build: Box::new(move |dev, real| {
            let t = if real { tokens } else { vm_tokens };
            let plan = RoutePlan::new(t, m.experts, o)?;
            let logits = dev.upload(&bf16s(t * m.experts, 7, -4.0, 4.0))?;
            let bias = dev.upload(&uniform(m.experts, 8, -0.05, 0.05).map(|x| x as f32).collect::<Vec<_>>())?;
            let mut ids = dev.alloc_zeros::<i32>(plan.ids_len())?;
            let mut w = dev.alloc_zeros::<f32>(plan.ids_len())?;
            let mut st = dev.alloc_zeros::<i32>(plan.status_len())?;
            let dev = dev.clone();
            Ok(Box::new(move || {
                let b = bias.view();
                route(
                    &dev,
                    &plan,
                    &logits.view(),
                    sigmoid.then_some(&b),
                    &mut ids.view_mut(),
                    &mut w.view_mut(),
                    &mut st.view_mut(),
                )
            }))
        }),
    });

    // Permute (align): two launches over chunks of 2048 entries, a histogram per chunk, then every
    // block derives its offsets from ALL the histograms and places its chunk. A block's work grows
    // with the chunk count, so the VM runs the real size (64 or 256 blocks): the count launch,
    // then the scatter launch (the last of `permute`'s two), their model times added.
    let pp = permute_plan(tokens, &m).expect("valid permute plan");
    let permute_build = move |dev: &Device, count_only: bool| -> Result<Launcher> {
        let plan = permute_plan(tokens, &m)?;
        let ids = dev.upload(&routed_ids(tokens, m.experts, k, 9))?;
        let mut perm = plan.alloc(dev)?;
        let dev = dev.clone();
        Ok(Box::new(move || {
            if count_only {
                permute_count(&dev, &plan, &ids.view(), &mut perm)
            } else {
                permute(&dev, &plan, &ids.view(), &mut perm)
            }
        }))
    };
    cases.push(Case {
        family: "moe_permute_align",
        id: tag.clone(),
        work: Work::memory(0, pp.align_min_bytes()),
        registers: Some(MOE_PERMUTE_COUNT_REGISTERS),
        vm: VmScale::new(1, format!("the real size ({} blocks): moe_permute_count", pp.chunks)).then(
            "moe_permute_scatter",
            1,
            Some(MOE_PERMUTE_SCATTER_REGISTERS),
            move |dev| permute_build(dev, false),
        ),
        build: Box::new(move |dev, real| permute_build(dev, !real)),
    });

    // Gather: one warp per permuted row, eight per CTA; VM at 512 tokens.
    let vm_tokens = 512;
    cases.push(Case {
        family: "moe_gather",
        id: tag.clone(),
        work: Work::memory(0, entries * row + tokens as u64 * row + 4 * entries),
        registers: Some(MOE_GATHER_V16_REGISTERS),
        vm: VmScale::new((tokens / vm_tokens) as u64, format!("{vm_tokens} tokens")).grid_cap(1 << 16),
        build: Box::new(move |dev, real| {
            let t = if real { tokens } else { vm_tokens };
            let plan = permute_plan(t, &m)?;
            let ids = dev.upload(&routed_ids(t, m.experts, k, 10))?;
            let mut perm = plan.alloc(dev)?;
            permute(dev, &plan, &ids.view(), &mut perm)?;
            // Activations by memset (bf16 0x3C3C = 0.0115): the copy does not depend on the values,
            // and 64k tokens x 7168 are too many to generate on the host.
            let mut x = dev.alloc_zeros::<bf16>(t * m.hidden)?;
            dev.fill_bytes(&mut x.view_mut(), 0x3C)?;
            let mut y = dev.alloc_zeros::<bf16>(plan.max_rows * m.hidden)?;
            let dev = dev.clone();
            Ok(Box::new(move || gather(&dev, &plan, m.hidden, &x.view(), &perm, &mut y.view_mut())))
        }),
    });

    // Combine: one CTA per token; VM at 256 tokens.
    let vm_tokens = 256;
    cases.push(Case {
        family: "moe_combine",
        id: tag,
        work: Work::memory(
            2 * entries * m.hidden as u64,
            entries * row + tokens as u64 * row + 8 * entries + 4 * tokens as u64,
        ),
        registers: Some(MOE_COMBINE_BF16_REGISTERS),
        vm: VmScale::new((tokens / vm_tokens) as u64, format!("{vm_tokens} tokens")).grid_cap(1 << 16),
        build: Box::new(move |dev, real| {
            let t = if real { tokens } else { vm_tokens };
            let plan = permute_plan(t, &m)?;
            let ids = dev.upload(&routed_ids(t, m.experts, k, 12))?;
            let mut perm = plan.alloc(dev)?;
            permute(dev, &plan, &ids.view(), &mut perm)?;
            let mut y = dev.alloc_zeros::<bf16>(plan.max_rows * m.hidden)?;
            dev.fill_bytes(&mut y.view_mut(), 0x3C)?;
            let w = dev.upload(&uniform(t * k, 14, 0.0, 0.5).map(|x| x as f32).collect::<Vec<_>>())?;
            let mut out = dev.alloc_zeros::<bf16>(t * m.hidden)?;
            let mut status = dev.alloc_zeros::<i32>(t)?;
            let dev = dev.clone();
            Ok(Box::new(move || {
                combine(
                    &dev,
                    t,
                    k,
                    m.hidden,
                    &y.view(),
                    &w.view(),
                    &perm.inverse.view(),
                    &mut out.view_mut(),
                    &mut status.view_mut(),
                )
            }))
        }),
    });
    cases
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for m in [&LLAMA3_8B, &LLAMA3_70B] {
        for seqlen in [4096, 8192, 16_384] {
            cases.push(attention_case(m, seqlen));
        }
    }
    for m in [&LLAMA3_8B, &LLAMA3_70B] {
        for seqlen in [4096, 8192, 16_384] {
            cases.push(attention_bwd_case(m, seqlen));
        }
    }
    for m in [DEEPSEEK_V3, QWEN3_MOE, MIXTRAL] {
        for tokens in [16_384, 65_536] {
            cases.extend(moe_cases(m, tokens));
        }
    }
    cases
}

/// Small problems for `scripts/compare_torch.py`: causal GQA attention (one sequence of 1024, 8 q /
/// 2 kv heads, d 128, bf16) and the Mixtral and DeepSeek-V3 routers on 4096 tokens.
fn dump(dev: &Device, d: &DumpDir) -> Result<()> {
    let (s, h, kvh) = (1024, 8, 2);
    let q = bf16s(s * h * HEAD_DIM, 51, -2.0, 2.0);
    let k = bf16s(s * kvh * HEAD_DIM, 52, -2.0, 2.0);
    let v = bf16s(s * kvh * HEAD_DIM, 53, -1.0, 1.0);
    let (dq, dk, dv) = (dev.upload(&q)?, dev.upload(&k)?, dev.upload(&v)?);
    let mut out = dev.alloc_zeros::<bf16>(s * h * HEAD_DIM)?;
    let mut lse = dev.alloc_zeros::<f32>(s * h)?;
    let cu = [0, s as i32];
    let cu_dev = dev.upload(&cu)?;
    let opts = AttnOptions::default().causal(true).lse(lse.view_mut());
    let shape = VarlenShape { heads: h, kv_heads: kvh, head_dim: HEAD_DIM };
    let cv = cu_dev.view();
    attention_fwd_varlen(
        dev,
        &dq.view(),
        &dk.view(),
        &dv.view(),
        &mut out.view_mut(),
        &cv,
        &cv,
        &cu,
        &cu,
        shape,
        opts,
    )?;
    d.write("attn_q", "bf16", &[s, h, HEAD_DIM], &q);
    d.write("attn_k", "bf16", &[s, kvh, HEAD_DIM], &k);
    d.write("attn_v", "bf16", &[s, kvh, HEAD_DIM], &v);
    d.write("attn_out", "bf16", &[s, h, HEAD_DIM], &dev.download(&out)?);
    d.write("attn_lse", "f32", &[h, s], &dev.download(&lse)?);
    let tokens = 4096;
    for m in [MIXTRAL, DEEPSEEK_V3] {
        let o = (m.options)();
        let plan = RoutePlan::new(tokens, m.experts, o)?;
        let logits = bf16s(tokens * m.experts, 54, -4.0, 4.0);
        let bias: Vec<f32> = uniform(m.experts, 55, -0.05, 0.05).map(|x| x as f32).collect();
        let (dl, db) = (dev.upload(&logits)?, dev.upload(&bias)?);
        let mut ids = dev.alloc_zeros::<i32>(plan.ids_len())?;
        let mut w = dev.alloc_zeros::<f32>(plan.ids_len())?;
        let mut st = dev.alloc_zeros::<i32>(plan.status_len())?;
        let sigmoid = o.scoring == Scoring::Sigmoid;
        let bv = db.view();
        let (mut iv, mut wv, mut sv) = (ids.view_mut(), w.view_mut(), st.view_mut());
        route(dev, &plan, &dl.view(), sigmoid.then_some(&bv), &mut iv, &mut wv, &mut sv)?;
        let n = m.name;
        d.write(&format!("route_{n}_logits"), "bf16", &[tokens, m.experts], &logits);
        d.write(&format!("route_{n}_bias"), "f32", &[m.experts], &bias);
        d.write(&format!("route_{n}_ids"), "i32", &[tokens, o.k], &dev.download(&ids)?);
        d.write(&format!("route_{n}_weights"), "f32", &[tokens, o.k], &dev.download(&w)?);
    }
    Ok(())
}

fn main() {
    common::main_with_dump("pretraining", cases, Some(dump));
}
