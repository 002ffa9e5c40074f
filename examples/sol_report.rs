//! Speed-of-light table for every kernel of the crate: each runs once on the PTX VM with exact
//! counters, and a device model (H100 SXM, H200 SXM, A100 SXM) turns the counts, the launch shape
//! and the registers ptxas allocates into per-unit time floors (CTAs per SM, waves, the busiest
//! SM's floors) next to the kernel's own floor (its FLOPs and fewest bytes). A model, not a
//! measurement.
//!
//! `cargo run --release --example sol_report` (`-- sampling`: only the sampling section and its
//! table rows)

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
    if std::env::args().nth(1).as_deref() == Some("sampling") {
        let mut rows: Vec<SolRow> = Vec::new();
        sampling_rows(&dev, &models, &mut rows)?;
        println!("\n{}", format_table(&rows));
        return Ok(());
    }
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
    moe_rows(&dev, &models, &mut rows)?;
    println!("\n{}", format_table(&rows));
    attention_fwd_report(&dev, &models)?;
    decode_report(&dev, &models)?;
    attention_bwd_report(&dev, &models)?;
    Ok(())
}

/// Registers per thread of decode_attention_bf16_d128 and decode_merge_bf16 on sm_80 (the most of
/// their sm_80 and sm_90a builds), as `scripts/resource-report` prints them. Rerun it after
/// editing kernels/attention/decode.cu.
const DECODE_D128_REGISTERS: u32 = 164;
const DECODE_MERGE_REGISTERS: u32 = 32;

/// Decode attention (bf16, d 128, page size 16, q_len 1, one kv head with 8 query heads: a
/// Llama-70B kv group) at batch 1 with 32k context and batch 64 with 4k, with the splits the plan
/// picks for the VM's 108 SMs. The split kernel's counters come from a one-sample cascade's prefix
/// pass over the whole context (the same launch without the merge), the merge's from the full call.
/// Prints requested and unique K/V bytes against the floor (each kv head's keys once) and the plan's
/// host time, then the model table.
fn decode_report(dev: &Device, models: &[DeviceModel]) -> Result<()> {
    use scaling_kernels::attention::{
        cascade_prefix_pass, decode_attention, decode_kv_bytes, decode_min_bytes, CascadePlan, DecodeOptions,
        DecodePlan, DecodeShape, PagedLayout,
    };
    let mut rows = Vec::new();
    for (label, batch, ctx) in [("b1 ctx32k", 1usize, 32768usize), ("b64 ctx4k", 64, 4096)] {
        let (heads, kv_heads, d, ps) = (8usize, 1usize, 128usize, 16usize);
        let pages_per_seq = ctx / ps;
        let num_pages = batch * pages_per_seq;
        let layout = PagedLayout { num_pages, page_size: ps, kv_heads, head_dim: d, pages_per_seq };
        // Pages of a sequence scattered over the cache (a fixed stride permutation).
        let table: Vec<i32> = (0..num_pages).map(|i| ((i * 7919) % num_pages) as i32).collect();
        let lens = vec![ctx as i32; batch];
        let shape = DecodeShape { batch, q_len: 1, heads };
        let plan = DecodePlan::new(dev.sm_count(), shape, layout, &lens)?;
        let data: Vec<bf16> =
            (0..layout.cache_len()).map(|i| bf16::from_f32(((i * 7919) % 17) as f32 / 17.0 - 0.5)).collect();
        let (k, v) =
            (dev.upload(&data)?, dev.upload(&data[1..].iter().chain([data[0]].iter()).copied().collect::<Vec<_>>())?);
        let q = dev.upload(&data[..batch * heads * d])?;
        let (t, l) = (dev.upload(&table)?, dev.upload(&lens)?);
        let mut out = dev.alloc_zeros::<bf16>(batch * heads * d)?;
        let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1))?;
        decode_attention(
            dev,
            &plan,
            &q.view(),
            &k.view(),
            &v.view(),
            &t.view(),
            &l.view(),
            None,
            &mut out.view_mut(),
            Some(&mut ws.view_mut()),
            DecodeOptions::default(),
        )?;
        let merge = dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default();
        // The split kernel alone: a cascade of one sample whose prefix is the context, no suffix.
        let zero = vec![0i32; batch];
        let cplan = CascadePlan::new(dev.sm_count(), shape, 1, layout, &lens, layout, &zero, Some((plan.splits(), 1)))?;
        let mut cws = dev.alloc_zeros::<f32>(cplan.workspace_len())?;
        let zl = dev.upload(&zero)?;
        cascade_prefix_pass(
            dev,
            &cplan,
            &q.view(),
            &k.view(),
            &v.view(),
            (&t.view(), &l.view(), None),
            (&t.view(), &zl.view(), None),
            &mut cws.view_mut(),
            DecodeOptions::default(),
        )?;
        let c = dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default();
        let floor_kv = decode_kv_bytes(&layout, &lens, 2);
        let min_bytes = decode_min_bytes(shape, &layout, &lens, 2, false);
        let flops = 4 * (batch * heads * ctx * d) as u64;
        let q_bytes = (batch * heads * d * 2) as u64;
        let name = format!("decode bf16 {label} h{heads} kvh{kv_heads} d{d} p{ps} ({} splits)", plan.splits());
        println!(
            "{name}: {:.2} M warp-instr, mma FLOPs {} (useful {flops}, rows padded to 16), K/V requested {} B = {:.3}x the floor {floor_kv} B \
             (each kv head's keys once; per query head would be {}x), unique bytes {} read + {} written (fewest {min_bytes}); \
             merge: {:.3} M warp-instr, unique {} read + {} written",
            c.warp_instructions() as f64 / 1e6,
            c.mma_flops,
            c.global_load_bytes - q_bytes,
            (c.global_load_bytes - q_bytes) as f64 / floor_kv as f64,
            heads / kv_heads,
            c.unique_bytes_read,
            c.unique_bytes_written,
            merge.warp_instructions() as f64 / 1e6,
            merge.unique_bytes_read,
            merge.unique_bytes_written,
        );
        let floor = KernelFloor { flops: flops as f64, min_bytes: min_bytes as f64, tensor: true };
        for m in models {
            rows.push(speed_of_light_with(
                &name,
                &c,
                m,
                Some(floor),
                LaunchResources { registers_per_thread: Some(DECODE_D128_REGISTERS) },
            ));
        }
        let mname = format!("decode_merge bf16 {label} ({} splits)", plan.splits());
        for m in models {
            rows.push(speed_of_light_with(
                &mname,
                &merge,
                m,
                None,
                LaunchResources { registers_per_thread: Some(DECODE_MERGE_REGISTERS) },
            ));
        }
    }
    // The plan is computed on the host every step: time it.
    for batch in [1usize, 64, 1024] {
        let layout = PagedLayout { num_pages: 1 << 20, page_size: 16, kv_heads: 8, head_dim: 128, pages_per_seq: 8192 };
        let lens: Vec<i32> = (0..batch).map(|b| 1000 + (b as i32 * 977) % 100_000).collect();
        let shape = DecodeShape { batch, q_len: 1, heads: 64 };
        let reps = 2000;
        let t0 = std::time::Instant::now();
        let mut splits = 0;
        for _ in 0..reps {
            splits += std::hint::black_box(DecodePlan::new(132, shape, layout, std::hint::black_box(&lens))?).splits();
        }
        println!(
            "DecodePlan::new batch {batch}: {:.2} us per plan on this host ({} splits)",
            t0.elapsed().as_secs_f64() * 1e6 / reps as f64,
            splits / reps
        );
    }
    println!("\n{}", format_table(&rows));
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

/// Registers per thread (sm_80, `scripts/resource-report`) of the moe kernels these rows run.
/// Rerun it after editing kernels/moe/.
const MOE_REGISTERS: [(&str, u32); 8] = [
    ("moe_route_e1", 29),
    ("moe_route_e8", 56),
    ("moe_permute_count", 18),
    ("moe_permute_scatter", 48),
    ("moe_gather_v16", 32),
    ("moe_combine_bf16", 35),
    ("moe_combine_bwd_bf16", 40),
    ("moe_stats_final", 32),
];

/// MoE routing rows: DeepSeek-V3 (256 experts, top-8, 8 groups keep 4, sigmoid with bias,
/// hidden 7168) and Mixtral (8 experts, top-2, softmax, hidden 4096) at the 16k tokens for
/// route, both permute launches and stats. gather and combine run at 1024 tokens: each of their
/// blocks copies or sums a fixed number of rows whatever the token count, so their per-byte ratios
/// hold at 16k, while 16k DeepSeek-V3 rows (1.9 GB gathered) would take the VM minutes.
fn moe_rows(dev: &Device, models: &[DeviceModel], rows: &mut Vec<SolRow>) -> Result<()> {
    use scaling_kernels::moe::{
        combine, combine_backward, gather, permute_count, permute_scatter, route, stats, PermuteOptions, PermutePlan,
        RouteOptions, RoutePlan, Scoring, StatsPlan,
    };
    let tokens = 16384;
    let small = 1024;
    let deepseek = RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4).renormalize(true).scale(2.5);
    let mixtral = RouteOptions::default().k(2).renormalize(true);
    for (label, experts, hidden, o) in [("deepseek_v3", 256usize, 7168usize, deepseek), ("mixtral", 8, 4096, mixtral)] {
        let k = o.k;
        let mut push = |kernel: &str, what: &str, tokens: usize, flops: u64, min_bytes: u64| {
            let c = dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default();
            let regs = MOE_REGISTERS.iter().find(|(n, _)| *n == kernel).map(|&(_, r)| r);
            let floor = KernelFloor { flops: flops as f64, min_bytes: min_bytes as f64, tensor: false };
            let name = format!("{what} {label} {tokens}t");
            for m in models {
                rows.push(speed_of_light_with(
                    &name,
                    &c,
                    m,
                    Some(floor),
                    LaunchResources { registers_per_thread: regs },
                ));
            }
            println!(
                "{name}: {} warp-instr, unique bytes {} read + {} written (fewest {min_bytes}), global ld {} req / {} sectors",
                c.warp_instructions(),
                c.unique_bytes_read,
                c.unique_bytes_written,
                c.global_load_requests,
                c.global_load_sectors
            );
            c.unique_bytes_read + c.unique_bytes_written
        };
        // Logits with a spread like a trained router's, bias small.
        let logits: Vec<bf16> =
            (0..tokens * experts).map(|i| bf16::from_f64(((i * 7919) % 97) as f64 / 24.0 - 2.0)).collect();
        let bias: Vec<f32> = (0..experts).map(|e| (e % 5) as f32 * 0.01).collect();
        let rp = RoutePlan::new(tokens, experts, o)?;
        let (dl, db) = (dev.upload(&logits)?, dev.upload(&bias)?);
        let mut ids = dev.alloc_zeros::<i32>(rp.ids_len())?;
        let mut w = dev.alloc_zeros::<f32>(rp.ids_len())?;
        let mut st = dev.alloc_zeros::<i32>(rp.status_len())?;
        let with_bias = o.scoring == Scoring::Sigmoid;
        let bview = db.view();
        route(
            dev,
            &rp,
            &dl.view(),
            with_bias.then_some(&bview),
            &mut ids.view_mut(),
            &mut w.view_mut(),
            &mut st.view_mut(),
        )?;
        let route_kernel = if experts > 32 { "moe_route_e8" } else { "moe_route_e1" };
        let route_bytes = push(route_kernel, "moe route", tokens, rp.flops(), rp.min_bytes(2, with_bias));

        let pp = PermutePlan::new(tokens, k, experts, PermuteOptions::default().block_size(64))?;
        let mut perm = pp.alloc(dev)?;
        permute_count(dev, &pp, &ids.view(), &mut perm)?;
        let ws = 4 * (pp.chunks * (experts + 1)) as u64; // the histograms (not the by-weight thresholds)
        let count_bytes = push("moe_permute_count", "moe permute count", tokens, 0, 4 * pp.entries as u64 + ws);
        permute_scatter(dev, &pp, &ids.view(), &mut perm)?;
        let scatter_bytes = push("moe_permute_scatter", "moe permute scatter", tokens, 0, pp.align_min_bytes() + ws);
        let align = pp.align_min_bytes();
        let route_floor = rp.min_bytes(2, with_bias);
        println!(
            "moe permute {label} {tokens}t ({} blocks): unique bytes {} over both launches = {:.3}x its fewest {align} \
             (ids read twice + histograms {ws} B written and read: {:.3}x); route + permute, 3 launches: {} = {:.3}x \
             the fewest {} (logits read once, ids and weights written once, the layout written once)",
            pp.chunks,
            count_bytes + scatter_bytes,
            (count_bytes + scatter_bytes) as f64 / align as f64,
            (align + pp.align_extra_bytes()) as f64 / align as f64,
            route_bytes + count_bytes + scatter_bytes,
            (route_bytes + count_bytes + scatter_bytes) as f64 / (route_floor + align) as f64,
            route_floor + align,
        );

        // gather and combine at `small` tokens (see the doc above).
        let tokens = small;
        let pp = PermutePlan::new(tokens, k, experts, PermuteOptions::default().block_size(64))?;
        let mut perm = pp.alloc(dev)?;
        let ids_small = ids.slice(0..tokens * k)?;
        permute_count(dev, &pp, &ids_small, &mut perm)?;
        permute_scatter(dev, &pp, &ids_small, &mut perm)?;
        let w = w.slice(0..tokens * k)?;
        let x = dev.upload(&vec![bf16::from_f64(0.5); tokens * hidden])?;
        let mut y = dev.alloc_zeros::<bf16>(pp.max_rows * hidden)?;
        gather(dev, &pp, hidden, &x.view(), &perm, &mut y.view_mut())?;
        let total = dev.download(&perm.offsets)?[experts] as u64;
        let row = (hidden * 2) as u64;
        push("moe_gather_v16", "moe gather", tokens, 0, total * row + tokens as u64 * row + 4 * total);

        let mut out = dev.alloc_zeros::<bf16>(tokens * hidden)?;
        let mut cs = dev.alloc_zeros::<i32>(tokens)?;
        combine(dev, tokens, k, hidden, &y.view(), &w, &perm.inverse.view(), &mut out.view_mut(), &mut cs.view_mut())?;
        let entries = (tokens * k) as u64;
        push(
            "moe_combine_bf16",
            "moe combine",
            tokens,
            2 * entries * hidden as u64,
            entries * row + tokens as u64 * row + 8 * entries + 4 * tokens as u64,
        );

        // combine_backward: the 16-byte path, then (printed only) the scalar path it replaced, forced
        // by a dout view one element off 16-byte alignment.
        let dout = dev.upload(&vec![bf16::from_f64(0.25); tokens * hidden + 1])?;
        let mut dy = dev.alloc_zeros::<bf16>(pp.max_rows * hidden)?;
        let mut dw = dev.alloc_zeros::<f32>(tokens * k)?;
        // dout and the rows holding an entry read (no drops here), every row of dy written.
        let bwd_bytes = tokens as u64 * row + entries * row + total * row + 12 * entries + 4 * total;
        for (start, kernel, what) in
            [(0, "moe_combine_bwd_bf16", "moe combine_backward"), (1, "", "moe combine_backward (scalar path)")]
        {
            let dout = dout.slice(start..start + tokens * hidden)?;
            combine_backward(dev, &pp, hidden, &dout, &y.view(), &w, &perm, &mut dy.view_mut(), &mut dw.view_mut())?;
            if kernel.is_empty() {
                let c = dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default();
                println!(
                    "{what} {label} {tokens}t: {} warp-instr, global ld {} req / {} sectors, st {} req",
                    c.warp_instructions(),
                    c.global_load_requests,
                    c.global_load_sectors,
                    c.global_store_requests
                );
            } else {
                push(kernel, what, tokens, 3 * total * hidden as u64, bwd_bytes);
            }
        }

        let tokens = 16384;
        let entries = (tokens * k) as u64;
        let sp = StatsPlan::new(tokens, experts, k)?;
        let mut ws = dev.alloc_zeros::<f32>(sp.workspace_len())?;
        let (mut c, mut sign, mut losses) =
            (dev.alloc_zeros::<i32>(experts)?, dev.alloc_zeros::<i32>(experts)?, dev.alloc_zeros::<f32>(2)?);
        stats(
            dev,
            &sp,
            &dl.view(),
            &ids.view(),
            &mut ws.view_mut(),
            &mut c.view_mut(),
            &mut sign.view_mut(),
            &mut losses.view_mut(),
        )?;
        // The last launch is moe_stats_final; the row is the pair's second pass.
        push(
            "moe_stats_final",
            "moe stats (final pass)",
            tokens,
            0,
            4 * (sp.workspace_len() as u64 + entries) + 12 * experts as u64 + 8,
        );
    }
    Ok(())
}

/// Registers per thread of sampling_sample_{f32,f16,bf16} on sm_80 (`scripts/resource-report`;
/// 80 on sm_90a). Rerun it after editing kernels/sampling/.
const SAMPLE_REGISTERS: u32 = 79;

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

/// Thread and warp instructions per logit of one launch over `logits` logits, then the largest
/// classes' thread instructions per logit.
fn instruction_mix(c: &Counters, logits: f64) -> String {
    use ptx_vm::InstClass;
    let mut classes: Vec<(InstClass, f64)> =
        InstClass::ALL.iter().map(|&cl| (cl, c.class(cl).threads as f64 / logits)).filter(|&(_, v)| v >= 0.5).collect();
    classes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mix: Vec<String> = classes.iter().map(|(cl, v)| format!("{} {v:.1}", cl.name())).collect();
    format!(
        "{:.1} thread-instr / logit, {:.2} warp-instr / logit ({})",
        c.thread_instructions() as f64 / logits,
        c.warp_instructions() as f64 / logits,
        mix.join(", ")
    )
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
    // Instructions per logit and their mix for the common paths (one row of uniform logits in
    // [-8, 8), one sample): the integer-bound rows of the table below.
    for (label, row) in [
        ("plain", base),
        ("temperature 0.7", RowParams { temperature: 0.7, ..base }),
        ("min-p 0.1", RowParams { min_p: 0.1, ..base }),
        ("top-p 0.9", RowParams { top_p: 0.9, ..base }),
        ("top-k 50 + top-p 0.9", RowParams { top_k: 50, top_p: 0.9, ..base }),
    ] {
        let c = sample_counters::<bf16>(dev, 1, vocab, 1, row)?;
        println!("sampling bf16 vocab {vocab} {label}: {}", instruction_mix(&c, vocab as f64));
    }
    let resources = LaunchResources { registers_per_thread: Some(SAMPLE_REGISTERS) };
    // The list path (top-k + top-p) and the two-pass path (top-p alone, plain sampling).
    for (label, tag, row) in [
        ("top-k 50 + top-p 0.9", "top-k+top-p", RowParams { top_k: 50, top_p: 0.9, ..base }),
        ("top-p 0.9", "top-p", RowParams { top_p: 0.9, ..base }),
        ("plain", "plain", base),
    ] {
        for vocab in [128_256usize, 151_936] {
            let four = sample_counters::<bf16>(dev, 4, vocab, 1, row)?;
            println!(
                "sampling bf16 vocab {vocab} {label}, 4 rows: {:.3} row reads per row",
                (four.global_load_sectors * 32) as f64 / (4 * vocab * 2) as f64
            );
            for batch in [256usize, 1024] {
                let mut c = Counters::default();
                for _ in 0..batch / 4 {
                    c.merge(&four);
                }
                let plan = SamplingPlan::new(batch, vocab, 1)?;
                let floor =
                    KernelFloor { flops: plan.flops() as f64, min_bytes: plan.min_bytes(2) as f64, tensor: false };
                let name = format!("sampling_sample bf16 {tag} b{batch} v{vocab}");
                for m in models {
                    rows.push(speed_of_light_with(&name, &c, m, Some(floor), resources));
                }
            }
        }
    }
    Ok(())
}

/// Registers per thread (sm_80, `scripts/resource-report`) of the attention backward's d128 kernels:
/// attention_bwd_dq_bf16_d128, attention_bwd_dkv_bf16_d128, attention_bwd_dot_do_o_bf16. Rerun it
/// after editing kernels/attention/bwd.cu.
const ATTENTION_BWD_D128_REGISTERS: [u32; 3] = [174, 240, 17];

/// Attention backward at batch 1, 16 heads, seq 1024, d 128 (bf16), causal: per kernel (the
/// preprocess, dQ and dK/dV launches, each run alone after a full backward filled the workspace) the
/// instruction mix, shared wavefronts and conflicts and the tensor-core FLOPs, then the total and
/// the model table.
fn attention_bwd_report(dev: &Device, models: &[DeviceModel]) -> Result<()> {
    use ptx_vm::InstClass;
    use scaling_kernels::attention::{
        attention_bwd, attention_bwd_flops, attention_bwd_min_bytes, attention_fwd, AttnBwdInputs, AttnBwdPlan,
        AttnBwdStage, AttnGradsMut, AttnOptions, AttnShape,
    };
    let shape = AttnShape { batch: 1, seqlen_q: 1024, seqlen_k: 1024, heads: 16, kv_heads: 16, head_dim: 128 };
    let n = shape.seqlen_q * shape.heads * shape.head_dim;
    let pattern =
        |m: usize| -> Vec<bf16> { (0..n).map(|i| bf16::from_f32(((i * m) % 17) as f32 / 17.0 - 0.5)).collect() };
    let (q, k, v, dout) = (
        dev.upload(&pattern(7919))?,
        dev.upload(&pattern(7907))?,
        dev.upload(&pattern(31))?,
        dev.upload(&pattern(101))?,
    );
    let mut out = dev.alloc_zeros::<bf16>(n)?;
    let mut lse = dev.alloc_zeros::<f32>(shape.heads * shape.seqlen_q)?;
    let opts = || AttnOptions::default().causal(true);
    attention_fwd(dev, &q.view(), &k.view(), &v.view(), &mut out.view_mut(), shape, opts().lse(lse.view_mut()))?;
    let plan = AttnBwdPlan::new(shape)?;
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len())?;
    let (mut dq, mut dk, mut dv) =
        (dev.alloc_zeros::<bf16>(n)?, dev.alloc_zeros::<bf16>(n)?, dev.alloc_zeros::<bf16>(n)?);
    let (qv, kv, vv, ov, dov, lv) = (q.view(), k.view(), v.view(), out.view(), dout.view(), lse.view());
    let mut run = |plan: &AttnBwdPlan| -> Result<Counters> {
        let inputs = AttnBwdInputs { q: &qv, k: &kv, v: &vv, out: &ov, dout: &dov, lse: &lv };
        let grads =
            AttnGradsMut { dq: &mut dq.view_mut(), dk: &mut dk.view_mut(), dv: &mut dv.view_mut(), dsinks: None };
        attention_bwd(dev, plan, inputs, grads, &mut ws.view_mut(), opts())?;
        Ok(dev.vm_last_launch().and_then(|r| r.counters).unwrap_or_default())
    };
    run(&plan)?;
    let flops = attention_bwd_flops(1024, 1024, 16, 128, true, (-1, -1));
    let min_bytes = attention_bwd_min_bytes(1024, 1024, 16, 16, 128, 2);
    let mut total = Counters::default();
    let mut rows = Vec::new();
    for ((stage, label), regs) in
        [(AttnBwdStage::DotDoO, "dot_do_o"), (AttnBwdStage::Dq, "dq"), (AttnBwdStage::Dkv, "dkv")].into_iter().zip([
            ATTENTION_BWD_D128_REGISTERS[2],
            ATTENTION_BWD_D128_REGISTERS[0],
            ATTENTION_BWD_D128_REGISTERS[1],
        ])
    {
        let c = run(&plan.clone().only(stage))?;
        total.merge(&c);
        let warp = c.warp_instructions() as f64;
        let share = |cl: InstClass| 100.0 * c.class(cl).warps as f64 / warp.max(1.0);
        let name = format!("attention_bwd {label} bf16 b1 h16 s1024 d128 causal");
        println!(
            "{name}: {:.2} M warp-instr ({:.1}% mma, {:.1}% fp32, {:.1}% shared ld, {:.1}% special fn, {:.1}% integer), \
             {:.2} M shared wavefronts, {} bank conflicts, mma FLOPs {:.3} G, unique bytes {} read + {} written",
            warp / 1e6,
            share(InstClass::Tensor),
            share(InstClass::Fp32),
            share(InstClass::SharedLoad),
            share(InstClass::Sfu),
            share(InstClass::Integer),
            c.shared_wavefronts as f64 / 1e6,
            c.bank_conflicts(),
            c.mma_flops as f64 / 1e9,
            c.unique_bytes_read,
            c.unique_bytes_written,
        );
        if stage != AttnBwdStage::DotDoO {
            let floor = KernelFloor { flops: flops as f64, min_bytes: min_bytes as f64, tensor: true };
            let resources = LaunchResources { registers_per_thread: Some(regs) };
            for m in models {
                rows.push(speed_of_light_with(&name, &c, m, Some(floor), resources));
            }
        }
    }
    let warp = total.warp_instructions() as f64;
    println!(
        "attention_bwd total bf16 b1 h16 s1024 d128 causal: {:.2} M warp-instr ({:.1}% mma), {:.2} M shared wavefronts, \
         {} bank conflicts, mma FLOPs / useful FLOPs {:.3} (useful = 2.5 x forward = {:.3} G), \
         unique bytes {} read + {} written (fewest {min_bytes})",
        warp / 1e6,
        100.0 * total.class(InstClass::Tensor).warps as f64 / warp,
        total.shared_wavefronts as f64 / 1e6,
        total.bank_conflicts(),
        total.mma_flops as f64 / flops as f64,
        flops as f64 / 1e9,
        total.unique_bytes_read,
        total.unique_bytes_written,
    );
    println!("\n{}", format_table(&rows));
    Ok(())
}
