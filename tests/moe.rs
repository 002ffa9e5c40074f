//! Mixture-of-experts routing against the float64 references, on every available backend.

mod common;

use common::{backends, rng};
use half::bf16;
use rand::Rng;
use scaling_kernels::device::VmConfig;
use scaling_kernels::moe::{route, GroupScore, RouteOptions, RoutePlan, RouteStatus, Scoring};
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
