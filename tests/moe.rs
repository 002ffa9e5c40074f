//! Mixture-of-experts routing against the float64 references, on every available backend.

mod common;

use common::{backends, rng};
use half::bf16;
use half::f16;
use rand::Rng;
use scaling_kernels::device::VmConfig;
use scaling_kernels::moe::{
    combine, combine_backward, gather, permute, permute_by_weight, permute_gather, route, route_backward, stats,
    stats_backward, GroupScore, Permutation, PermuteOptions, PermutePlan, RouteOptions, RoutePlan, RouteStatus,
    Scoring, StatsPlan,
};
use scaling_kernels::reference;
use scaling_kernels::{Device, Float};

// ---------------------------------------------------------------------------------------------
// route

/// Inputs of one route case, in the logits' own type and widened exactly to f64.
struct RouteCase<T> {
    logits: Vec<T>,
    bias: Option<Vec<f32>>,
}

impl<T: Float> RouteCase<T> {
    fn logits_f64(&self) -> Vec<f64> {
        self.logits.iter().map(|x| x.to_f64()).collect()
    }
    fn bias_f64(&self) -> Option<Vec<f64>> {
        self.bias.as_ref().map(|b| b.iter().map(|&x| x as f64).collect())
    }
}

/// Distinct deciding scores closer than this (relative) are a near-tie that float32 may order either way;
/// such rows are drawn again, so ids compare exactly and every tie in a case is an exact one.
const NEAR_TIE: f64 = 1e-5;

/// Logits on a grid of 1/16 in [-4, 4] (exact in bf16, so equal draws are exact ties, which happen
/// often), the bias from 8 values, a few rows made of one repeated value (all ties), and special
/// rows: a NaN (every 5th), and +inf (every 7th; undefined under softmax, fine under sigmoid).
fn route_case<T: Float>(
    rng: &mut impl Rng,
    tokens: usize,
    experts: usize,
    bias: bool,
    o: &RouteOptions,
) -> RouteCase<T> {
    let bias = bias.then(|| (0..experts).map(|_| rng.random_range(-4..4) as f32 / 32.0).collect::<Vec<_>>());
    let bias64: Option<Vec<f64>> = bias.as_ref().map(|b| b.iter().map(|&x| x as f64).collect());
    let mut logits = Vec::with_capacity(tokens * experts);
    for t in 0..tokens {
        loop {
            let mut row: Vec<f64> = (0..experts).map(|_| rng.random_range(-64..=64) as f64 / 16.0).collect();
            if t % 11 == 3 {
                row.fill(0.25);
            }
            if t % 5 == 4 {
                row[rng.random_range(0..experts)] = f64::NAN;
            }
            if t % 7 == 6 {
                row[rng.random_range(0..experts)] = f64::INFINITY;
            }
            let r = reference::moe::route(&row, experts, bias64.as_deref(), o);
            if r.margin[0] > NEAR_TIE {
                logits.extend(row.iter().map(|&x| T::from_f64(x)));
                break;
            }
        }
    }
    RouteCase { logits, bias }
}

struct RouteOut {
    ids: Vec<i32>,
    weights: Vec<f32>,
    status: Vec<i32>,
}

fn run_route<T: Float>(dev: &Device, plan: &RoutePlan, c: &RouteCase<T>) -> RouteOut {
    let logits = dev.upload(&c.logits).unwrap();
    let bias = c.bias.as_ref().map(|b| dev.upload(b).unwrap());
    let mut ids = dev.alloc_zeros::<i32>(plan.ids_len()).unwrap();
    let mut weights = dev.alloc_zeros::<f32>(plan.ids_len()).unwrap();
    let mut status = dev.alloc_zeros::<i32>(plan.status_len()).unwrap();
    dev.fill_poison(&mut ids.view_mut()).unwrap();
    dev.fill_poison(&mut weights.view_mut()).unwrap();
    dev.fill_poison(&mut status.view_mut()).unwrap();
    let bias_view = bias.as_ref().map(|b| b.view());
    route(
        dev,
        plan,
        &logits.view(),
        bias_view.as_ref(),
        &mut ids.view_mut(),
        &mut weights.view_mut(),
        &mut status.view_mut(),
    )
    .unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    RouteOut {
        ids: dev.download(&ids).unwrap(),
        weights: dev.download(&weights).unwrap(),
        status: dev.download(&status).unwrap(),
    }
}

fn check_route<T: Float>(dev: &Device, rng: &mut impl Rng, tokens: usize, experts: usize, bias: bool, o: RouteOptions) {
    let plan = RoutePlan::new(tokens, experts, o).unwrap();
    let c = route_case::<T>(rng, tokens, experts, bias, &o);
    let want = reference::moe::route(&c.logits_f64(), experts, c.bias_f64().as_deref(), &o);
    let got = run_route(dev, &plan, &c);
    let what = format!("{} tokens {tokens} experts {experts} bias {bias} {o:?} on {}", T::NAME, dev.describe());
    let status: Vec<RouteStatus> = got.status.iter().map(|&s| RouteStatus::from_code(s)).collect();
    assert_eq!(status, want.status, "{what}: status");
    assert_eq!(got.ids, want.ids, "{what}: ids");
    for (i, (&g, &w)) in got.weights.iter().zip(&want.weights).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(err <= 1e-5 * w.abs().max(1.0), "{what}: weight {i}: got {g}, want {w}");
    }
}

fn route_matches_reference<T: Float>(test: &str) {
    let mut rng = rng(test);
    for dev in backends() {
        for experts in [8usize, 60, 64, 256, 512] {
            for k in [1usize, 2, 8] {
                for (n_group, topk_group) in [(1, 1), (8, 4)] {
                    if experts % n_group != 0 || k > experts || topk_group * experts / n_group < k {
                        continue;
                    }
                    for scoring in [Scoring::Softmax, Scoring::Sigmoid] {
                        for bias in [false, true] {
                            let o = RouteOptions::default()
                                .k(k)
                                .scoring(scoring)
                                .groups(n_group, topk_group)
                                .group_score(if bias { GroupScore::Top2Sum } else { GroupScore::Max })
                                .renormalize(bias || k == 2)
                                .scale(if scoring == Scoring::Sigmoid { 2.5 } else { 1.0 });
                            check_route::<T>(&dev, &mut rng, 13, experts, bias, o);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn route_f32_matches_reference() {
    route_matches_reference::<f32>("route_f32_matches_reference");
}

#[test]
fn route_bf16_matches_reference() {
    route_matches_reference::<bf16>("route_bf16_matches_reference");
}

#[test]
fn route_odd_expert_counts_and_k_up_to_32_match_reference() {
    let mut rng = rng("route_odd_expert_counts_and_k_up_to_32_match_reference");
    for dev in backends() {
        for (experts, k) in [(1usize, 1usize), (3, 3), (33, 32), (100, 17), (511, 32), (512, 32)] {
            let o = RouteOptions::default().k(k).renormalize(true);
            check_route::<f32>(&dev, &mut rng, 7, experts, false, o);
            check_route::<f32>(&dev, &mut rng, 7, experts, true, o.scoring(Scoring::Sigmoid));
        }
    }
}

#[test]
fn route_ties_go_to_the_lower_expert_id() {
    for dev in backends() {
        // Every logit equal: the top-k must be experts 0..k in order, for any scoring and groups.
        for (experts, o) in [
            (64usize, RouteOptions::default().k(8)),
            (256, RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4)),
            (60, RouteOptions::default().k(5).groups(4, 2).group_score(GroupScore::Max)),
        ] {
            let plan = RoutePlan::new(3, experts, o).unwrap();
            let c = RouteCase::<f32> { logits: vec![1.5; 3 * experts], bias: None };
            let got = run_route(&dev, &plan, &c);
            let want: Vec<i32> = (0..3).flat_map(|_| 0..o.k as i32).collect();
            assert_eq!(got.ids, want, "experts {experts} {o:?}");
            assert!(got.status.iter().all(|&s| s == 0));
        }
    }
}

#[test]
fn route_flags_nan_rows_and_never_routes_them() {
    for dev in backends() {
        let experts = 64;
        let plan = RoutePlan::new(4, experts, RouteOptions::default().k(2)).unwrap();
        let mut logits = vec![0.5f32; 4 * experts];
        logits[experts + 63] = f32::NAN; // token 1
        logits[2 * experts] = f32::INFINITY; // token 2: softmax undefined
        logits[3 * experts..].fill(f32::NEG_INFINITY); // token 3: softmax undefined
        let got = run_route(&dev, &plan, &RouteCase { logits, bias: None });
        assert_eq!(got.status, vec![0, 1, 2, 2]);
        assert_eq!(&got.ids[2..], &[-1; 6]);
        assert_eq!(&got.weights[2..], &[0.0; 6]);
        // A NaN in the bias poisons every token.
        let c = RouteCase { logits: vec![0.5f32; 4 * experts], bias: Some(vec![0.0; experts]) };
        let mut c = c;
        c.bias.as_mut().unwrap()[5] = f32::NAN;
        let got = run_route(&dev, &plan, &c);
        assert_eq!(got.status, vec![1; 4]);
        assert_eq!(got.ids, vec![-1; 8]);
    }
}

#[test]
fn route_is_bit_identical_across_runs_and_vm_thread_counts() {
    let mut rng = rng("route_is_bit_identical_across_runs_and_vm_thread_counts");
    let o = RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4).renormalize(true).scale(2.5);
    let plan = RoutePlan::new(1000, 256, o).unwrap();
    let c = route_case::<bf16>(&mut rng, 1000, 256, true, &o);
    let one = Device::vm_with(VmConfig { threads: 1, ..VmConfig::default() });
    let two = Device::vm_with(VmConfig { threads: 2, ..VmConfig::default() });
    let a = run_route(&one, &plan, &c);
    let b = run_route(&two, &plan, &c);
    let b2 = run_route(&two, &plan, &c);
    for (x, y) in [(&a, &b), (&b, &b2)] {
        assert_eq!(x.ids, y.ids);
        assert_eq!(x.status, y.status);
        assert_eq!(
            x.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>(),
            y.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn route_on_the_vm_reads_the_logits_once_and_writes_each_output_once() {
    let dev = Device::vm();
    let mut rng = rng("route_on_the_vm_reads_the_logits_once_and_writes_each_output_once");
    let o = RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4).renormalize(true);
    let plan = RoutePlan::new(100, 256, o).unwrap();
    let c = route_case::<bf16>(&mut rng, 100, 256, true, &o);
    run_route(&dev, &plan, &c);
    let counters = dev.vm_last_launch().unwrap().counters.unwrap();
    assert_eq!(counters.unique_bytes_read + counters.unique_bytes_written, plan.min_bytes(2, true));
}

#[test]
fn route_rejects_bad_shapes_and_f16_logits() {
    for dev in backends() {
        let plan = RoutePlan::new(2, 8, RouteOptions::default().k(2)).unwrap();
        let logits = dev.alloc_zeros::<f32>(15).unwrap();
        let mut ids = dev.alloc_zeros::<i32>(4).unwrap();
        let mut w = dev.alloc_zeros::<f32>(4).unwrap();
        let mut s = dev.alloc_zeros::<i32>(2).unwrap();
        let e = route(&dev, &plan, &logits.view(), None, &mut ids.view_mut(), &mut w.view_mut(), &mut s.view_mut())
            .unwrap_err();
        assert_eq!(e.to_string(), "logits: expected 16 elements (tokens * experts), got 15 elements");
        let h = dev.alloc_zeros::<half::f16>(16).unwrap();
        let e =
            route(&dev, &plan, &h.view(), None, &mut ids.view_mut(), &mut w.view_mut(), &mut s.view_mut()).unwrap_err();
        assert_eq!(e.to_string(), "logits: expected f32 or bf16 elements, got f16");
    }
}

// ---------------------------------------------------------------------------------------------
// permute, gather, combine

/// Random ids of `tokens x k` slots: distinct experts per token as route writes them, with a few
/// unrouted tokens (-1) and, when `bad`, ids outside 0..experts.
fn random_ids(rng: &mut impl Rng, tokens: usize, k: usize, experts: usize, bad: bool) -> Vec<i32> {
    let mut ids = Vec::with_capacity(tokens * k);
    for t in 0..tokens {
        let mut row: Vec<i32> = Vec::new();
        while row.len() < k {
            // Skewed towards low experts so that capacity drops happen.
            let e = (rng.random_range(0.0f64..1.0).powi(2) * experts as f64) as i32;
            if !row.contains(&e) {
                row.push(e);
            }
        }
        if t % 9 == 5 {
            row.fill(-1);
        }
        if bad && t % 13 == 7 {
            row[0] = if t % 2 == 0 { experts as i32 + 3 } else { -7 };
        }
        ids.extend(row);
    }
    ids
}

struct PermuteOut {
    counts: Vec<i32>,
    offsets: Vec<i32>,
    sorted_ids: Vec<i32>,
    block_expert: Vec<i32>,
    inverse: Vec<i32>,
    rank_counts: Vec<i32>,
    rank_offsets: Vec<i32>,
    status: Vec<i32>,
}

fn run_permute(dev: &Device, plan: &PermutePlan, ids: &[i32]) -> (Permutation, PermuteOut) {
    let d_ids = dev.upload(ids).unwrap();
    let mut p = plan.alloc(dev).unwrap();
    for b in [
        &mut p.counts,
        &mut p.offsets,
        &mut p.sorted_ids,
        &mut p.block_expert,
        &mut p.inverse,
        &mut p.rank_counts,
        &mut p.rank_offsets,
        &mut p.status,
    ] {
        dev.fill_poison(&mut b.view_mut()).unwrap();
    }
    permute(dev, plan, &d_ids.view(), &mut p).unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    let out = PermuteOut {
        counts: dev.download(&p.counts).unwrap(),
        offsets: dev.download(&p.offsets).unwrap(),
        sorted_ids: dev.download(&p.sorted_ids).unwrap(),
        block_expert: dev.download(&p.block_expert).unwrap(),
        inverse: dev.download(&p.inverse).unwrap(),
        rank_counts: dev.download(&p.rank_counts).unwrap(),
        rank_offsets: dev.download(&p.rank_offsets).unwrap(),
        status: dev.download(&p.status).unwrap(),
    };
    (p, out)
}

fn check_permute(dev: &Device, rng: &mut impl Rng, tokens: usize, k: usize, experts: usize, o: PermuteOptions) {
    let plan = PermutePlan::new(tokens, k, experts, o).unwrap();
    let ids = random_ids(rng, tokens, k, experts, true);
    let epr = o.experts_per_rank.unwrap_or(experts);
    let want = reference::moe::permute(&ids, experts, o.block_size, o.capacity, epr, plan.max_rows);
    let (_, got) = run_permute(dev, &plan, &ids);
    let what = format!("tokens {tokens} k {k} experts {experts} {o:?} on {}", dev.describe());
    assert_eq!(got.counts, want.counts, "{what}: counts");
    assert_eq!(got.offsets, want.offsets, "{what}: offsets");
    assert_eq!(got.sorted_ids, want.sorted_ids, "{what}: sorted_ids");
    assert_eq!(got.block_expert, want.block_expert, "{what}: block_expert");
    assert_eq!(got.inverse, want.inverse, "{what}: inverse");
    assert_eq!(got.rank_counts, want.rank_counts, "{what}: rank_counts");
    assert_eq!(got.rank_offsets, want.rank_offsets, "{what}: rank_offsets");
    assert_eq!(got.status, vec![want.bad], "{what}: status");
}

#[test]
fn permute_matches_reference_with_padding_capacity_and_ranks() {
    let mut rng = rng("permute_matches_reference_with_padding_capacity_and_ranks");
    for dev in backends() {
        for (experts, ranks) in [(8usize, 1usize), (60, 4), (64, 8), (256, 8), (512, 4)] {
            // 700 x 8 entries span three chunks of the align launches.
            for (tokens, k) in [(1usize, 1usize), (7, 2), (100, 8), (1000, 2), (700, 8)] {
                for block_size in [1usize, 16, 64, 128] {
                    // Capacity 97 drops within and across chunks only at 700 x 8.
                    let caps: &[Option<usize>] =
                        if tokens == 700 { &[None, Some(3), Some(97)] } else { &[None, Some(3)] };
                    for &capacity in caps {
                        let mut o = PermuteOptions::default().block_size(block_size).experts_per_rank(experts / ranks);
                        o.capacity = capacity;
                        check_permute(&dev, &mut rng, tokens, k, experts, o);
                    }
                }
            }
        }
    }
}

#[test]
fn permute_drops_by_token_order_past_capacity() {
    for dev in backends() {
        // Every token picks experts 0 and 1: with capacity 2, tokens 0 and 1 keep both, the rest drop.
        let plan = PermutePlan::new(5, 2, 4, PermuteOptions::default().capacity(2)).unwrap();
        let ids: Vec<i32> = (0..5).flat_map(|_| [1, 0]).collect();
        let (_, got) = run_permute(&dev, &plan, &ids);
        assert_eq!(got.counts, vec![5, 5, 0, 0]);
        assert_eq!(got.offsets, vec![0, 2, 4, 4, 4]);
        assert_eq!(&got.sorted_ids[..4], &[1, 3, 0, 2]);
        assert_eq!(got.inverse, vec![2, 0, 3, 1, -1, -1, -1, -1, -1, -1]);
    }
}

/// Drop by weight against the reference: weights on a grid of 8 values so ties are common, with
/// -0.0 and +0.0 both present; every output exact, across chunks, block sizes and ranks.
#[test]
fn permute_by_weight_keeps_the_heaviest_and_breaks_ties_by_entry() {
    let mut rng = rng("permute_by_weight_keeps_the_heaviest_and_breaks_ties_by_entry");
    for dev in backends() {
        for (tokens, k, experts, ranks) in [(7usize, 2usize, 8usize, 1usize), (100, 8, 64, 8), (700, 8, 60, 4)] {
            for block_size in [1usize, 16] {
                for capacity in [1usize, 3, 97] {
                    let o = PermuteOptions::default()
                        .block_size(block_size)
                        .capacity(capacity)
                        .experts_per_rank(experts / ranks);
                    let plan = PermutePlan::new(tokens, k, experts, o).unwrap();
                    let ids = random_ids(&mut rng, tokens, k, experts, true);
                    let w: Vec<f32> = (0..plan.entries)
                        .map(|i| if i % 11 == 3 { -0.0 } else { rng.random_range(0..8) as f32 / 8.0 })
                        .collect();
                    let want = reference::moe::permute_by_weight(
                        &ids,
                        &w,
                        experts,
                        block_size,
                        capacity,
                        experts / ranks,
                        plan.max_rows,
                    );
                    let (d_ids, d_w) = (dev.upload(&ids).unwrap(), dev.upload(&w).unwrap());
                    let mut p = plan.alloc(&dev).unwrap();
                    for b in [&mut p.counts, &mut p.offsets, &mut p.sorted_ids, &mut p.block_expert, &mut p.inverse] {
                        dev.fill_poison(&mut b.view_mut()).unwrap();
                    }
                    permute_by_weight(&dev, &plan, &d_ids.view(), &d_w.view(), &mut p).unwrap();
                    if let Some(report) = dev.vm_last_launch() {
                        report.assert_clean().unwrap();
                    }
                    let what = format!("tokens {tokens} k {k} experts {experts} {o:?} on {}", dev.describe());
                    assert_eq!(dev.download(&p.counts).unwrap(), want.counts, "{what}: counts");
                    assert_eq!(dev.download(&p.offsets).unwrap(), want.offsets, "{what}: offsets");
                    assert_eq!(dev.download(&p.sorted_ids).unwrap(), want.sorted_ids, "{what}: sorted_ids");
                    assert_eq!(dev.download(&p.block_expert).unwrap(), want.block_expert, "{what}: block_expert");
                    assert_eq!(dev.download(&p.inverse).unwrap(), want.inverse, "{what}: inverse");
                    assert_eq!(dev.download(&p.rank_counts).unwrap(), want.rank_counts, "{what}: rank_counts");
                    assert_eq!(dev.download(&p.rank_offsets).unwrap(), want.rank_offsets, "{what}: rank_offsets");
                    assert_eq!(dev.download(&p.status).unwrap(), vec![want.bad], "{what}: status");
                }
            }
        }
        // By hand: expert 0 gets entries 0, 2, 4, 6 with weights 0.5, 0.9, 0.9, 0.1; capacity 2 keeps
        // 2 and 4 (the two 0.9s), in entry order.
        let plan = PermutePlan::new(4, 2, 2, PermuteOptions::default().capacity(2)).unwrap();
        let ids = [0, 1, 0, 1, 0, 1, 0, 1];
        let w = [0.5f32, 1.0, 0.9, 1.0, 0.9, 1.0, 0.1, 1.0];
        let (d_ids, d_w) = (dev.upload(&ids).unwrap(), dev.upload(&w).unwrap());
        let mut p = plan.alloc(&dev).unwrap();
        permute_by_weight(&dev, &plan, &d_ids.view(), &d_w.view(), &mut p).unwrap();
        assert_eq!(dev.download(&p.counts).unwrap(), vec![4, 4]);
        assert_eq!(&dev.download(&p.sorted_ids).unwrap()[..4], &[2, 4, 1, 3]);
        assert_eq!(dev.download(&p.inverse).unwrap(), vec![-1, 2, 0, 3, 1, -1, -1, -1]);
    }
}

fn random_rows<T: Float>(rng: &mut impl Rng, n: usize) -> Vec<T> {
    (0..n).map(|_| T::from_f64(rng.random_range(-2.0..2.0))).collect()
}

fn check_gather<T: Float>(
    dev: &Device,
    rng: &mut impl Rng,
    tokens: usize,
    k: usize,
    experts: usize,
    hidden: usize,
    o: PermuteOptions,
) {
    let plan = PermutePlan::new(tokens, k, experts, o).unwrap();
    let ids = random_ids(rng, tokens, k, experts, false);
    let (perm, got) = run_permute(dev, &plan, &ids);
    let x: Vec<T> = random_rows(rng, tokens * hidden);
    let dx = dev.upload(&x).unwrap();
    let mut out = dev.alloc_zeros::<T>(plan.max_rows * hidden).unwrap();
    dev.fill_poison(&mut out.view_mut()).unwrap();
    gather(dev, &plan, hidden, &dx.view(), &perm, &mut out.view_mut()).unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    let out = dev.download(&out).unwrap();
    // The fused path: the same layout and, on every row up to the total, the same bits; rows past
    // the total keep their poison.
    let mut perm2 = plan.alloc(dev).unwrap();
    let mut out2 = dev.alloc_zeros::<T>(plan.max_rows * hidden).unwrap();
    dev.fill_poison(&mut out2.view_mut()).unwrap();
    let d_ids = dev.upload(&ids).unwrap();
    permute_gather(dev, &plan, &d_ids.view(), hidden, &dx.view(), &mut perm2, &mut out2.view_mut()).unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    assert_eq!(dev.download(&perm2.sorted_ids).unwrap(), got.sorted_ids, "fused sorted_ids");
    assert_eq!(dev.download(&perm2.inverse).unwrap(), got.inverse, "fused inverse");
    let out2 = dev.download(&out2).unwrap();
    let total = got.offsets[experts] as usize;
    let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out2[..total * hidden]), bits(&out[..total * hidden]), "fused gather rows (hidden {hidden})");
    let mut poison = dev.alloc_zeros::<T>(1).unwrap();
    dev.fill_poison(&mut poison.view_mut()).unwrap();
    let poison = dev.download(&poison).unwrap()[0].to_f64().to_bits();
    assert!(
        out2[total * hidden..].iter().all(|v| v.to_f64().to_bits() == poison),
        "fused: rows past the total untouched"
    );
    for r in 0..total {
        let row = &out[r * hidden..(r + 1) * hidden];
        let entry = got.sorted_ids[r] as usize;
        if entry == plan.entries {
            assert!(row.iter().all(|v| v.to_f64() == 0.0), "padding row {r} is zero");
        } else {
            let t = entry / k;
            assert_eq!(row, &x[t * hidden..(t + 1) * hidden], "row {r} is token {t} (hidden {hidden})");
        }
    }
}

#[test]
fn gather_copies_each_row_of_its_token_with_wide_and_scalar_accesses() {
    let mut rng = rng("gather_copies_each_row_of_its_token_with_wide_and_scalar_accesses");
    for dev in backends() {
        for hidden in [1usize, 7, 64, 136] {
            check_gather::<bf16>(&dev, &mut rng, 7, 2, 8, hidden, PermuteOptions::default());
            check_gather::<f16>(
                &dev,
                &mut rng,
                33,
                8,
                64,
                hidden,
                PermuteOptions::default().block_size(16).capacity(5),
            );
            check_gather::<f32>(&dev, &mut rng, 5, 1, 60, hidden, PermuteOptions::default().block_size(64));
        }
        // Three chunks of the align launches, with capacity drops across them.
        let o = PermuteOptions::default().block_size(16).capacity(300);
        check_gather::<bf16>(&dev, &mut rng, 600, 8, 64, 24, o);
    }
}

fn run_combine<T: Float>(
    dev: &Device,
    tokens: usize,
    k: usize,
    hidden: usize,
    y: &[T],
    w: &[f32],
    inverse: &[i32],
) -> (Vec<T>, Vec<i32>) {
    let (dy, dw, di) = (dev.upload(y).unwrap(), dev.upload(w).unwrap(), dev.upload(inverse).unwrap());
    let mut out = dev.alloc_zeros::<T>(tokens * hidden).unwrap();
    let mut status = dev.alloc_zeros::<i32>(tokens).unwrap();
    dev.fill_poison(&mut out.view_mut()).unwrap();
    dev.fill_poison(&mut status.view_mut()).unwrap();
    combine(dev, tokens, k, hidden, &dy.view(), &dw.view(), &di.view(), &mut out.view_mut(), &mut status.view_mut())
        .unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    (dev.download(&out).unwrap(), dev.download(&status).unwrap())
}

fn check_combine<T: Float>(dev: &Device, rng: &mut impl Rng, tokens: usize, k: usize, hidden: usize) {
    let rows = tokens * k + 5;
    let y: Vec<T> = random_rows(rng, rows * hidden);
    let w: Vec<f32> = (0..tokens * k).map(|_| rng.random_range(0.0..1.0)).collect();
    // Positions: valid rows, -1 (dropped) and, for every 11th entry, a bad position.
    let inverse: Vec<i32> = (0..tokens * k)
        .map(|i| match i % 11 {
            3 => -1,
            7 => rows as i32 + i as i32,
            9 => -4,
            _ => rng.random_range(0..rows as i32),
        })
        .collect();
    let (out, status) = run_combine(dev, tokens, k, hidden, &y, &w, &inverse);
    let y64: Vec<f64> = y.iter().map(|v| v.to_f64()).collect();
    let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let want = reference::moe::combine(&y64, hidden, &w64, &inverse, k);
    let ulp = match T::NAME {
        "f32" => 1e-6,
        "f16" => 1e-3,
        _ => 8e-3,
    };
    for (i, (g, w)) in out.iter().zip(&want).enumerate() {
        let g = g.to_f64();
        assert!((g - w).abs() <= ulp * w.abs().max(1.0), "{} out[{i}] = {g}, want {w}", T::NAME);
    }
    let want_status: Vec<i32> =
        (0..tokens).map(|t| (0..k).filter(|j| matches!((t * k + j) % 11, 7 | 9)).count() as i32).collect();
    assert_eq!(status, want_status);
}

#[test]
fn combine_matches_reference_and_counts_bad_positions() {
    let mut rng = rng("combine_matches_reference_and_counts_bad_positions");
    for dev in backends() {
        for (tokens, k, hidden) in [(1usize, 1usize, 1usize), (7, 2, 64), (13, 8, 136), (5, 3, 7)] {
            check_combine::<bf16>(&dev, &mut rng, tokens, k, hidden);
            check_combine::<f16>(&dev, &mut rng, tokens, k, hidden);
            check_combine::<f32>(&dev, &mut rng, tokens, k, hidden);
        }
    }
}

/// Logits to experts and back: route, permute, gather, an identity expert, combine. With
/// renormalised weights the result is the input (within the rounding of the weighted sum), and the
/// whole pipeline is bit-identical across runs and VM thread counts.
#[test]
fn route_permute_gather_combine_round_trip_is_identity_and_deterministic() {
    let mut rng = rng("route_permute_gather_combine_round_trip_is_identity_and_deterministic");
    // 300 x 8 entries: two chunks of the align launches.
    let (tokens, experts, hidden) = (300, 64, 64);
    let o = RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4).renormalize(true);
    let logits: Vec<bf16> = (0..tokens * experts).map(|_| bf16::from_f64(rng.random_range(-3.0..3.0))).collect();
    let x: Vec<bf16> = random_rows(&mut rng, tokens * hidden);
    // `fused`: permute_gather instead of permute, then gather.
    let run = |dev: &Device, fused: bool| {
        let rp = RoutePlan::new(tokens, experts, o).unwrap();
        let pp = PermutePlan::new(tokens, 8, experts, PermuteOptions::default().block_size(16)).unwrap();
        let dl = dev.upload(&logits).unwrap();
        let mut ids = dev.alloc_zeros::<i32>(rp.ids_len()).unwrap();
        let mut w = dev.alloc_zeros::<f32>(rp.ids_len()).unwrap();
        let mut st = dev.alloc_zeros::<i32>(rp.status_len()).unwrap();
        route(dev, &rp, &dl.view(), None, &mut ids.view_mut(), &mut w.view_mut(), &mut st.view_mut()).unwrap();
        let mut perm = pp.alloc(dev).unwrap();
        let dx = dev.upload(&x).unwrap();
        let mut y = dev.alloc_zeros::<bf16>(pp.max_rows * hidden).unwrap();
        if fused {
            permute_gather(dev, &pp, &ids.view(), hidden, &dx.view(), &mut perm, &mut y.view_mut()).unwrap();
        } else {
            permute(dev, &pp, &ids.view(), &mut perm).unwrap();
            gather(dev, &pp, hidden, &dx.view(), &perm, &mut y.view_mut()).unwrap();
        }
        let mut out = dev.alloc_zeros::<bf16>(tokens * hidden).unwrap();
        let mut cs = dev.alloc_zeros::<i32>(tokens).unwrap();
        combine(
            dev,
            tokens,
            8,
            hidden,
            &y.view(),
            &w.view(),
            &perm.inverse.view(),
            &mut out.view_mut(),
            &mut cs.view_mut(),
        )
        .unwrap();
        assert_eq!(dev.download(&cs).unwrap(), vec![0; tokens]);
        let out: Vec<u16> = dev.download(&out).unwrap().iter().map(|v| v.to_bits()).collect();
        (out, dev.download(&perm.sorted_ids).unwrap(), dev.download(&perm.inverse).unwrap())
    };
    let one = run(&Device::vm_with(VmConfig { threads: 1, ..VmConfig::default() }), false);
    let two = run(&Device::vm_with(VmConfig { threads: 2, ..VmConfig::default() }), true);
    assert_eq!(one, two, "threads 1 unfused vs threads 2 fused");
    for (&g, w) in one.0.iter().zip(&x) {
        let g = bf16::from_bits(g);
        assert!((g.to_f64() - w.to_f64()).abs() <= 1e-2 * w.to_f64().abs().max(0.1), "{g} vs {w}");
    }
    for dev in backends() {
        assert_eq!(run(&dev, false), one);
        assert_eq!(run(&dev, true), one);
    }
}

// ---------------------------------------------------------------------------------------------
// stats

fn run_stats<T: Float>(dev: &Device, plan: &StatsPlan, logits: &[T], ids: &[i32]) -> (Vec<i32>, Vec<i32>, Vec<f32>) {
    let (dl, di) = (dev.upload(logits).unwrap(), dev.upload(ids).unwrap());
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len()).unwrap();
    let mut counts = dev.alloc_zeros::<i32>(plan.experts).unwrap();
    let mut sign = dev.alloc_zeros::<i32>(plan.experts).unwrap();
    let mut losses = dev.alloc_zeros::<f32>(2).unwrap();
    dev.fill_poison(&mut ws.view_mut()).unwrap();
    dev.fill_poison(&mut counts.view_mut()).unwrap();
    dev.fill_poison(&mut sign.view_mut()).unwrap();
    dev.fill_poison(&mut losses.view_mut()).unwrap();
    stats(
        dev,
        plan,
        &dl.view(),
        &di.view(),
        &mut ws.view_mut(),
        &mut counts.view_mut(),
        &mut sign.view_mut(),
        &mut losses.view_mut(),
    )
    .unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    (dev.download(&counts).unwrap(), dev.download(&sign).unwrap(), dev.download(&losses).unwrap())
}

#[test]
fn stats_match_reference_and_are_bit_identical_across_thread_counts() {
    let mut rng = rng("stats_match_reference_and_are_bit_identical_across_thread_counts");
    for dev in backends() {
        for (tokens, experts, k) in
            [(1usize, 8usize, 2usize), (7, 60, 2), (100, 64, 8), (1000, 8, 2), (13, 256, 8), (5, 512, 8)]
        {
            let plan = StatsPlan::new(tokens, experts, k).unwrap();
            let logits: Vec<bf16> =
                (0..tokens * experts).map(|_| bf16::from_f64(rng.random_range(-4.0..4.0))).collect();
            let ids = random_ids(&mut rng, tokens, k, experts, true);
            let l64: Vec<f64> = logits.iter().map(|v| v.to_f64()).collect();
            let (wc, ws, aux, z) = reference::moe::stats(&l64, experts, &ids, k);
            let (c, s, losses) = run_stats(&dev, &plan, &logits, &ids);
            let what = format!("tokens {tokens} experts {experts} k {k}");
            assert_eq!(c, wc, "{what}: counts");
            assert_eq!(s, ws, "{what}: load_sign");
            assert!((losses[0] as f64 - aux).abs() <= 1e-5 * aux.abs().max(1.0), "{what}: aux {} vs {aux}", losses[0]);
            assert!((losses[1] as f64 - z).abs() <= 1e-5 * z.abs().max(1.0), "{what}: z {} vs {z}", losses[1]);
        }
    }
    let plan = StatsPlan::new(1000, 256, 8).unwrap();
    let logits: Vec<f32> = (0..1000 * 256).map(|_| rng.random_range(-4.0..4.0)).collect();
    let ids = random_ids(&mut rng, 1000, 8, 256, false);
    let one = run_stats(&Device::vm_with(VmConfig { threads: 1, ..VmConfig::default() }), &plan, &logits, &ids);
    let two = run_stats(&Device::vm_with(VmConfig { threads: 2, ..VmConfig::default() }), &plan, &logits, &ids);
    assert_eq!((&one.0, &one.1), (&two.0, &two.1));
    assert_eq!(
        one.2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        two.2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// backward

#[test]
fn combine_backward_matches_reference_and_finite_differences() {
    let mut rng = rng("combine_backward_matches_reference_and_finite_differences");
    for dev in backends() {
        for (tokens, k, experts, hidden, o) in [
            (7usize, 2usize, 8usize, 5usize, PermuteOptions::default()),
            (33, 8, 64, 64, PermuteOptions::default().block_size(16).capacity(5)),
        ] {
            let plan = PermutePlan::new(tokens, k, experts, o).unwrap();
            let ids = random_ids(&mut rng, tokens, k, experts, false);
            let (perm, got) = run_permute(&dev, &plan, &ids);
            let y: Vec<f32> = random_rows(&mut rng, plan.max_rows * hidden);
            let dout: Vec<f32> = random_rows(&mut rng, tokens * hidden);
            let w: Vec<f32> = (0..plan.entries).map(|_| rng.random_range(0.0..1.0)).collect();
            let (dy_, dout_, w_) = (dev.upload(&y).unwrap(), dev.upload(&dout).unwrap(), dev.upload(&w).unwrap());
            let mut dy = dev.alloc_zeros::<f32>(plan.max_rows * hidden).unwrap();
            let mut dw = dev.alloc_zeros::<f32>(plan.entries).unwrap();
            dev.fill_poison(&mut dy.view_mut()).unwrap();
            dev.fill_poison(&mut dw.view_mut()).unwrap();
            combine_backward(
                &dev,
                &plan,
                hidden,
                &dout_.view(),
                &dy_.view(),
                &w_.view(),
                &perm,
                &mut dy.view_mut(),
                &mut dw.view_mut(),
            )
            .unwrap();
            if let Some(report) = dev.vm_last_launch() {
                report.assert_clean().unwrap();
            }
            let (dy, dw) = (dev.download(&dy).unwrap(), dev.download(&dw).unwrap());
            let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let (want_dy, want_dw) =
                reference::moe::combine_backward(&f(&dout), &f(&y), hidden, &f(&w), &got.inverse, k);
            let total = got.offsets[experts] as usize * hidden;
            for i in 0..total {
                assert!((dy[i] as f64 - want_dy[i]).abs() <= 1e-6 * want_dy[i].abs().max(1.0), "dy[{i}]");
            }
            for i in 0..plan.entries {
                assert!((dw[i] as f64 - want_dw[i]).abs() <= 1e-5 * want_dw[i].abs().max(1.0), "dw[{i}]");
            }
            // The reference's dweights by central differences of the reference combine's loss
            // L = <dout, combine(y, w)>, on the first few entries.
            let loss = |w: &[f64]| -> f64 {
                let out = reference::moe::combine(&f(&y), hidden, w, &got.inverse, k);
                out.iter().zip(f(&dout)).map(|(a, b)| a * b).sum()
            };
            for i in 0..plan.entries.min(6) {
                let (mut wp, mut wm) = (f(&w), f(&w));
                wp[i] += 1e-4;
                wm[i] -= 1e-4;
                let fd = (loss(&wp) - loss(&wm)) / 2e-4;
                assert!((fd - want_dw[i]).abs() <= 1e-6 * fd.abs().max(1.0), "fd dw[{i}] {fd} vs {}", want_dw[i]);
            }
        }
    }
}

/// combine_backward in 16-bit types against the float64 reference on the rounded inputs: the
/// 16-byte path (hidden a multiple of 8) and the scalar one (hidden 13), padding and drops included.
fn check_combine_backward_16bit<T: Float>(dev: &Device, rng: &mut impl Rng, hidden: usize) {
    let (tokens, k, experts) = (37usize, 8usize, 64usize);
    let plan = PermutePlan::new(tokens, k, experts, PermuteOptions::default().block_size(16).capacity(6)).unwrap();
    let ids = random_ids(rng, tokens, k, experts, false);
    let (perm, got) = run_permute(dev, &plan, &ids);
    let y: Vec<T> = random_rows(rng, plan.max_rows * hidden);
    let dout: Vec<T> = random_rows(rng, tokens * hidden);
    let w: Vec<f32> = (0..plan.entries).map(|_| rng.random_range(0.0..1.0)).collect();
    let (y_, dout_, w_) = (dev.upload(&y).unwrap(), dev.upload(&dout).unwrap(), dev.upload(&w).unwrap());
    let mut dy = dev.alloc_zeros::<T>(plan.max_rows * hidden).unwrap();
    let mut dw = dev.alloc_zeros::<f32>(plan.entries).unwrap();
    dev.fill_poison(&mut dy.view_mut()).unwrap();
    dev.fill_poison(&mut dw.view_mut()).unwrap();
    combine_backward(
        dev,
        &plan,
        hidden,
        &dout_.view(),
        &y_.view(),
        &w_.view(),
        &perm,
        &mut dy.view_mut(),
        &mut dw.view_mut(),
    )
    .unwrap();
    if let Some(report) = dev.vm_last_launch() {
        report.assert_clean().unwrap();
    }
    let (dy, dw) = (dev.download(&dy).unwrap(), dev.download(&dw).unwrap());
    let f = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
    let w64: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let (want_dy, want_dw) = reference::moe::combine_backward(&f(&dout), &f(&y), hidden, &w64, &got.inverse, k);
    let what = format!("{} hidden {hidden}", T::NAME);
    let total = got.offsets[experts] as usize * hidden;
    // dy: one product rounded once to T (its half-ulp, 2^-8 relative for bf16, 2^-11 for f16).
    let ulp = if T::NAME == "bf16" { 1.0 / 256.0 } else { 1.0 / 2048.0 };
    for i in 0..total {
        assert!((dy[i].to_f64() - want_dy[i]).abs() <= ulp * want_dy[i].abs() + 1e-7, "{what}: dy[{i}]");
    }
    // dweights: an fp32 sum of `hidden` exact products (|g y| < 4): fp32 rounding only.
    for i in 0..plan.entries {
        assert!(
            (dw[i] as f64 - want_dw[i]).abs() <= 4e-6 * hidden as f64,
            "{what}: dw[{i}] {} vs {}",
            dw[i],
            want_dw[i]
        );
    }
}

#[test]
fn combine_backward_16bit_wide_and_scalar_paths_match_reference() {
    let mut rng = rng("combine_backward_16bit_wide_and_scalar_paths_match_reference");
    for dev in backends() {
        for hidden in [8usize, 136, 13] {
            check_combine_backward_16bit::<bf16>(&dev, &mut rng, hidden);
            check_combine_backward_16bit::<f16>(&dev, &mut rng, hidden);
        }
    }
}

#[test]
fn gather_backward_is_combine_with_unit_weights() {
    let mut rng = rng("gather_backward_is_combine_with_unit_weights");
    let dev = Device::vm();
    let (tokens, k, experts, hidden) = (20usize, 4usize, 16usize, 24usize);
    let plan = PermutePlan::new(tokens, k, experts, PermuteOptions::default().block_size(16).capacity(6)).unwrap();
    let ids = random_ids(&mut rng, tokens, k, experts, false);
    let (_, got) = run_permute(&dev, &plan, &ids);
    let dy: Vec<f32> = random_rows(&mut rng, plan.max_rows * hidden);
    let ones = vec![1.0f32; plan.entries];
    let (dx, status) = run_combine(&dev, tokens, k, hidden, &dy, &ones, &got.inverse);
    assert_eq!(status, vec![0; tokens]);
    // dx[t] = sum of dy over the rows token t was gathered into.
    for t in 0..tokens {
        for h in 0..hidden {
            let want: f64 = (0..k)
                .filter(|&j| got.inverse[t * k + j] >= 0)
                .map(|j| dy[got.inverse[t * k + j] as usize * hidden + h] as f64)
                .sum();
            assert!((dx[t * hidden + h] as f64 - want).abs() <= 1e-5 * want.abs().max(1.0));
        }
    }
}

#[test]
fn route_backward_matches_reference_and_finite_differences() {
    let mut rng = rng("route_backward_matches_reference_and_finite_differences");
    for dev in backends() {
        for (experts, o) in [
            (8usize, RouteOptions::default().k(2).renormalize(true)),
            (60, RouteOptions::default().k(8)),
            (256, RouteOptions::default().k(8).scoring(Scoring::Sigmoid).groups(8, 4).renormalize(true).scale(2.5)),
            (512, RouteOptions::default().k(32).scoring(Scoring::Sigmoid)),
        ] {
            let tokens = 9;
            let plan = RoutePlan::new(tokens, experts, o).unwrap();
            let c = route_case::<f32>(&mut rng, tokens, experts, false, &o);
            let fwd = run_route(&dev, &plan, &c);
            let dw: Vec<f32> = (0..plan.ids_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let (dl, di, ds, ddw) = (
                dev.upload(&c.logits).unwrap(),
                dev.upload(&fwd.ids).unwrap(),
                dev.upload(&fwd.status).unwrap(),
                dev.upload(&dw).unwrap(),
            );
            let mut dx = dev.alloc_zeros::<f32>(plan.logits_len()).unwrap();
            dev.fill_poison(&mut dx.view_mut()).unwrap();
            route_backward(&dev, &plan, &dl.view(), &di.view(), &ds.view(), &ddw.view(), &mut dx.view_mut()).unwrap();
            if let Some(report) = dev.vm_last_launch() {
                report.assert_clean().unwrap();
            }
            let dx = dev.download(&dx).unwrap();
            let x64 = c.logits_f64();
            let dw64: Vec<f64> = dw.iter().map(|&v| v as f64).collect();
            let status: Vec<RouteStatus> = fwd.status.iter().map(|&s| RouteStatus::from_code(s)).collect();
            let want = reference::moe::route_backward(&x64, experts, &o, &fwd.ids, &status, &dw64);
            for (i, (&g, &w)) in dx.iter().zip(&want).enumerate() {
                assert!((g as f64 - w).abs() <= 1e-5 * w.abs().max(0.1), "experts {experts}: dx[{i}] = {g}, want {w}");
            }
            // The reference gradient by central differences of L = <dw, weights(x)>, on a row of
            // continuous logits (no ties, so a small step keeps the selection and its order).
            let row: Vec<f64> = (0..experts).map(|_| rng.random_range(-3.0..3.0)).collect();
            let r0 = reference::moe::route(&row, experts, None, &o);
            let g0 = reference::moe::route_backward(&row, experts, &o, &r0.ids, &r0.status, &dw64[..o.k]);
            let loss = |x: &[f64]| -> f64 {
                let r = reference::moe::route(x, experts, None, &o);
                assert_eq!(r.ids, r0.ids, "the perturbation changed the selection");
                r.weights.iter().zip(&dw64[..o.k]).map(|(a, b)| a * b).sum()
            };
            for e in [0, experts / 2, experts - 1, r0.ids[0] as usize] {
                let h = 1e-6;
                let (mut xp, mut xm) = (row.clone(), row.clone());
                xp[e] += h;
                xm[e] -= h;
                let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
                assert!(
                    (fd - g0[e]).abs() <= 1e-6 * g0[e].abs().max(1.0),
                    "experts {experts} e {e}: fd {fd} vs {}",
                    g0[e]
                );
            }
        }
    }
}

#[test]
fn stats_backward_matches_reference_and_finite_differences() {
    let mut rng = rng("stats_backward_matches_reference_and_finite_differences");
    for dev in backends() {
        for (tokens, experts, k) in [(7usize, 8usize, 2usize), (33, 60, 4), (5, 512, 8)] {
            let plan = StatsPlan::new(tokens, experts, k).unwrap();
            let logits: Vec<f32> = (0..tokens * experts).map(|_| rng.random_range(-3.0..3.0)).collect();
            let ids = random_ids(&mut rng, tokens, k, experts, false);
            let l64: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
            let (counts, _, _, _) = reference::moe::stats(&l64, experts, &ids, k);
            let (g_aux, g_z) = (0.7f32, 0.3f32);
            let want = reference::moe::stats_backward(&l64, experts, &counts, k, g_aux as f64, g_z as f64);
            let (dl, dc) = (dev.upload(&logits).unwrap(), dev.upload(&counts).unwrap());
            let mut dx = dev.alloc_zeros::<f32>(tokens * experts).unwrap();
            dev.fill_poison(&mut dx.view_mut()).unwrap();
            stats_backward(&dev, &plan, &dl.view(), &dc.view(), g_aux, g_z, false, &mut dx.view_mut()).unwrap();
            if let Some(report) = dev.vm_last_launch() {
                report.assert_clean().unwrap();
            }
            // Accumulating adds the same gradient again.
            let once = dev.download(&dx).unwrap();
            stats_backward(&dev, &plan, &dl.view(), &dc.view(), g_aux, g_z, true, &mut dx.view_mut()).unwrap();
            let twice = dev.download(&dx).unwrap();
            for i in 0..once.len() {
                assert!(
                    (once[i] as f64 - want[i]).abs() <= 1e-5 * want[i].abs().max(1e-2),
                    "dx[{i}] {} vs {}",
                    once[i],
                    want[i]
                );
                assert_eq!(twice[i], once[i] + once[i]);
            }
            // The reference by central differences of g_aux * aux + g_z * z on a few logits.
            let loss = |x: &[f64]| {
                let (_, _, aux, z) = reference::moe::stats(x, experts, &ids, k);
                g_aux as f64 * aux + g_z as f64 * z
            };
            for i in [0, experts / 2, tokens * experts - 1] {
                let h = 1e-6;
                let (mut xp, mut xm) = (l64.clone(), l64.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
                assert!((fd - want[i]).abs() <= 1e-6 * want[i].abs().max(1.0), "fd {fd} vs {}", want[i]);
            }
        }
    }
}

#[test]
fn zero_tokens_is_valid_everywhere() {
    for dev in backends() {
        let rp = RoutePlan::new(0, 64, RouteOptions::default().k(2)).unwrap();
        let empty_f = dev.alloc_zeros::<f32>(0).unwrap();
        let (mut ids, mut w, mut st) = (
            dev.alloc_zeros::<i32>(0).unwrap(),
            dev.alloc_zeros::<f32>(0).unwrap(),
            dev.alloc_zeros::<i32>(0).unwrap(),
        );
        route(&dev, &rp, &empty_f.view(), None, &mut ids.view_mut(), &mut w.view_mut(), &mut st.view_mut()).unwrap();
        // permute of nothing: every offset 0, every block past the total.
        let pp = PermutePlan::new(0, 2, 64, PermuteOptions::default().block_size(16)).unwrap();
        let (_, got) = run_permute(&dev, &pp, &[]);
        assert_eq!(got.offsets, vec![0; 65]);
        assert!(got.block_expert.iter().all(|&b| b == -1));
        assert_eq!(got.sorted_ids, vec![0; pp.max_rows]); // the sentinel is entries = 0
        let sp = StatsPlan::new(0, 64, 2).unwrap();
        let (c, _, losses) = run_stats::<f32>(&dev, &sp, &[], &[]);
        assert_eq!(c, vec![0; 64]);
        assert_eq!(losses, vec![0.0, 0.0]);
    }
}
