//! Sampling kernels against the float64 references and the statistics of their draws, on every
//! available backend.

mod common;

use common::{backends, rng};
use half::{bf16, f16};
use rand::Rng;
use scaling_kernels::device::VmConfig;
use scaling_kernels::reference::sampling as refs;
use scaling_kernels::sampling::{
    log_softmax_gather, philox_bits64, sample, RowParams, SampleOutput, SamplingParams, SamplingPlan,
    STATUS_BAD_TARGET, STATUS_NON_FINITE, STATUS_NO_FINITE,
};
use scaling_kernels::{Device, Float};

/// Everything a sampling call returned, on the host.
#[derive(Debug, Clone, PartialEq)]
struct Drawn {
    token: Vec<i32>,
    raw: Vec<f32>,
    processed: Vec<f32>,
    truncated: Vec<f32>,
    rank: Vec<i32>,
    status: Vec<u32>,
}

/// Samples `n` per row of `logits` (`rows.len()` rows) with outputs poisoned first; asserts the
/// launch was clean on the VM.
fn run<T: Float>(dev: &Device, logits: &[T], rows: &[RowParams], n: usize) -> Drawn {
    let batch = rows.len();
    let vocab = logits.len() / batch;
    let plan = SamplingPlan::new(batch, vocab, n).unwrap();
    let x = dev.upload(logits).unwrap();
    let params = SamplingParams::upload(dev, rows).unwrap();
    let mut out = SampleOutput::alloc(dev, &plan).unwrap();
    dev.fill_poison(&mut out.token.view_mut()).unwrap();
    dev.fill_poison(&mut out.logprob_raw.view_mut()).unwrap();
    dev.fill_poison(&mut out.logprob_processed.view_mut()).unwrap();
    dev.fill_poison(&mut out.logprob_truncated.view_mut()).unwrap();
    dev.fill_poison(&mut out.rank.view_mut()).unwrap();
    dev.fill_poison(&mut out.status.view_mut()).unwrap();
    sample(dev, &plan, &x.view(), &params, &mut out).unwrap();
    Drawn {
        token: dev.download(&out.token).unwrap(),
        raw: dev.download(&out.logprob_raw).unwrap(),
        processed: dev.download(&out.logprob_processed).unwrap(),
        truncated: dev.download(&out.logprob_truncated).unwrap(),
        rank: dev.download(&out.rank).unwrap(),
        status: dev.download(&out.status).unwrap(),
    }
}

fn widen<T: Float>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64()).collect()
}

/// Chi-square statistic of `counts` against `probs` (bins with expected count below 5 pooled) and
/// its degrees of freedom; infinite when a draw landed where `probs` is 0.
fn chi_square(counts: &[u64], probs: &[f64]) -> (f64, usize) {
    let draws: u64 = counts.iter().sum();
    let (mut stat, mut bins) = (0.0, 0usize);
    let (mut pool_obs, mut pool_exp) = (0.0, 0.0);
    for (&c, &p) in counts.iter().zip(probs) {
        if p == 0.0 {
            if c != 0 {
                return (f64::INFINITY, 1);
            }
            continue;
        }
        let e = p * draws as f64;
        if e < 5.0 {
            pool_obs += c as f64;
            pool_exp += e;
        } else {
            stat += (c as f64 - e).powi(2) / e;
            bins += 1;
        }
    }
    if pool_exp > 0.0 {
        stat += (pool_obs - pool_exp).powi(2) / pool_exp.max(1e-300);
        bins += 1;
    }
    (stat, bins.saturating_sub(1).max(1))
}

/// The chi-square quantile with upper tail 1e-5 (Wilson-Hilferty), the test's rejection threshold:
/// with fixed seeds the test is deterministic, and a correct sampler passes it by a wide margin.
fn chi_square_critical(df: usize) -> f64 {
    let d = df as f64;
    let z = 4.265; // standard normal upper 1e-5 quantile
    d * (1.0 - 2.0 / (9.0 * d) + z * (2.0 / (9.0 * d)).sqrt()).powi(3)
}

/// Histogram of at least `draws` draws from one row (`logits`, `p`): launches of up to 2048
/// copies of the row with different seeds and 64 samples each (the n-samples path shares a row's
/// passes among its samples, so a draw costs little more than its Philox call).
fn histogram<T: Float>(dev: &Device, logits: &[T], p: RowParams, draws: u64) -> Vec<u64> {
    let rows_per = draws.div_ceil(64).min(2048);
    let vocab = logits.len();
    let mut counts = vec![0u64; vocab];
    let all: Vec<T> = (0..rows_per).flat_map(|_| logits.iter().copied()).collect();
    for l in 0..draws.div_ceil(rows_per * 64) {
        let rows: Vec<RowParams> =
            (0..rows_per).map(|r| RowParams { seed: 1000 + l * rows_per + r, position: r * 3, ..p }).collect();
        let d = run(dev, &all, &rows, 64);
        assert!(d.status.iter().all(|&s| s == 0));
        for t in d.token {
            counts[t as usize] += 1;
        }
    }
    counts
}

/// The backends for the draw statistics: the VM without the sanitizer and counters (several
/// times faster; every kernel path they take runs sanitized in the other tests), and CUDA.
fn stat_backends() -> Vec<Device> {
    let mut devs = backends();
    devs[0] = Device::vm_with(VmConfig { sanitizer: false, counters: false, ..VmConfig::default() });
    devs
}

fn fixed_rng(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}

/// Skewed logits (normal-ish, spread 2.5) of length `v`, from a fixed seed.
fn skewed(v: usize, seed: u64) -> Vec<f32> {
    let mut r = fixed_rng(seed);
    (0..v).map(|_| (0..4).map(|_| r.random_range(-1.0f32..1.0)).sum::<f32>() * 2.5).collect()
}

// ---------------------------------------------------------------------------------------------
// Randomness.

#[test]
fn draws_follow_the_philox_stream_exactly() {
    // Equal logits, no filter: every token has mass 2^40, so the kernel's target
    // floor(V 2^40 bits / 2^64) picks token target >> 40, predictable from the host's Philox.
    let v = 37usize;
    for dev in backends() {
        let rows: Vec<RowParams> = (0..5u64)
            .map(|r| RowParams { seed: 0x9e37_79b9_7f4a_7c15 ^ r, position: r << 33 | r, ..RowParams::default() })
            .collect();
        let check = |d: &Drawn| {
            for (r, row) in rows.iter().enumerate() {
                for s in 0..8 {
                    let bits = philox_bits64(row.seed, row.position, s as u32);
                    let target = ((u128::from(v as u64) << 40) * u128::from(bits)) >> 64;
                    assert_eq!(d.token[r * 8 + s] as u128, target >> 40, "row {r} sample {s}");
                }
            }
        };
        check(&run(&dev, &vec![0.5f32; v * 5], &rows, 8));
        check(&run(&dev, &vec![bf16::from_f32(-3.0); v * 5], &rows, 8));
        check(&run(&dev, &vec![f16::from_f32(2.0); v * 5], &rows, 8));
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics: the draws follow the exact filtered distribution.

#[test]
fn each_filter_matches_the_exact_distribution() {
    let skew = skewed(50, 1);
    let flat: Vec<f32> = (0..120).map(|i| 0.01 * (i % 13) as f32).collect();
    let base = RowParams::default();
    let cases = [
        ("plain skewed", &skew, base),
        ("temperature 0.7", &skew, RowParams { temperature: 0.7, ..base }),
        ("top_k 7", &skew, RowParams { top_k: 7, ..base }),
        ("top_p 0.6", &skew, RowParams { top_p: 0.6, ..base }),
        ("min_p 0.05", &skew, RowParams { min_p: 0.05, ..base }),
        ("flat top_k 40 top_p 0.5", &flat, RowParams { top_k: 40, top_p: 0.5, ..base }),
    ];
    for dev in stat_backends() {
        for (name, logits, p) in &cases {
            let x = widen(logits);
            let want = refs::filtered_distribution(&x, p).unwrap();
            let counts = histogram(&dev, logits, *p, 100_000);
            let (stat, df) = chi_square(&counts, &want);
            let crit = chi_square_critical(df);
            eprintln!("{name}: chi2 {stat:.1} on {df} df (reject above {crit:.1})");
            assert!(stat < crit, "{name}: chi2 {stat:.1} on {df} df, threshold {crit:.1}");
        }
    }
}

#[test]
fn combined_filters_match_the_exact_distribution_and_a_wrong_one_fails() {
    // 100,032 draws of one skewed row under all filters at once, in bf16.
    let logits: Vec<bf16> = skewed(64, 2).iter().map(|&v| bf16::from_f32(v)).collect();
    let p = RowParams { temperature: 0.9, top_k: 20, top_p: 0.8, min_p: 0.01, ..RowParams::default() };
    let x = widen(&logits);
    let want = refs::filtered_distribution(&x, &p).unwrap();
    for dev in stat_backends() {
        let counts = histogram(&dev, &logits, p, 100_000);
        let (stat, df) = chi_square(&counts, &want);
        let crit = chi_square_critical(df);
        assert!(stat < crit, "chi2 {stat:.1} on {df} df, threshold {crit:.1}");
        // The same check rejects a distribution that is only slightly off: temperature 1.0
        // instead of 0.9 with the same filters.
        let wrong = refs::filtered_distribution(&x, &RowParams { temperature: 1.0, ..p }).unwrap();
        let (bad, bad_df) = chi_square(&counts, &wrong);
        eprintln!("right: chi2 {stat:.1} on {df} df; wrong: {bad:.1} on {bad_df} df");
        assert!(bad > chi_square_critical(bad_df), "the wrong distribution passed: chi2 {bad:.1}");
    }
}

// ---------------------------------------------------------------------------------------------
// Support.

#[test]
fn support_never_leaves_the_allowed_set_on_adversarial_rows() {
    let v = 24;
    let mut cases: Vec<(Vec<f32>, RowParams)> = Vec::new();
    let base = RowParams::default();
    let mut huge = vec![0.0f32; v];
    huge[17] = 1e30;
    cases.push((huge, base));
    cases.push((vec![1.5; v], RowParams { top_k: 3, ..base })); // ties: exactly tokens 0, 1, 2
    cases.push((vec![1.5; v], RowParams { top_p: 0.25, ..base })); // first 6 by index
    let mut one = vec![f32::NEG_INFINITY; v];
    one[9] = -3.0;
    cases.push((one, RowParams { top_p: 0.3, ..base }));
    let mut boundary: Vec<f32> = (0..v).map(|i| -(i as f32)).collect();
    for i in [4, 9, 12, 20] {
        boundary[i] = -2.0; // ties with token 2 straddle the top-k boundary
    }
    cases.push((boundary.clone(), RowParams { top_k: 4, ..base }));
    cases.push((boundary, RowParams { top_k: 5, top_p: 0.999, min_p: 0.0, temperature: 0.3, ..base }));
    cases.push((vec![0.0; v], RowParams { min_p: 1.0, top_k: 2, ..base }));
    for dev in stat_backends() {
        // 1,048,576 draws over the adversarial rows: 65,536 on each tie row below and 131,072 on
        // each of the 7 cases. 1100 tied logits: top-k 3 keeps exactly tokens 0, 1, 2 (the streaming list drops later
        // ties); top-p 0.95 keeps the first 1045 by index, a set past the list's 1024 entries, so
        // the full-row radix path splits the tie.
        let ties = vec![0.25f32; 1100];
        for (p, allowed) in [(RowParams { top_k: 3, ..base }, 3), (RowParams { top_p: 0.95, ..base }, 1045)] {
            let counts = histogram(&dev, &ties, p, 65_536);
            assert!(counts[allowed..].iter().all(|&c| c == 0), "{p:?}");
            assert!(counts[..allowed].iter().all(|&c| c > 0), "{p:?}");
        }
        for (logits, p) in &cases {
            let want = refs::filtered_distribution(&widen(logits), p).unwrap();
            let counts = histogram(&dev, logits, *p, 131_072);
            for (t, &c) in counts.iter().enumerate() {
                assert!(c == 0 || want[t] > 0.0, "token {t} drawn {c} times outside the allowed set, {p:?}");
            }
            // Every allowed token shows up (each has probability >= 1/24 here).
            for (t, &w) in want.iter().enumerate() {
                assert!(w == 0.0 || counts[t] > 0, "allowed token {t} never drawn, {p:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batch invariance.

fn mixed_rows(rng: &mut impl Rng, count: usize, vocab: usize) -> (Vec<f32>, Vec<RowParams>) {
    let logits: Vec<f32> = (0..count * vocab).map(|_| rng.random_range(-6.0f32..6.0)).collect();
    let rows = (0..count)
        .map(|r| RowParams {
            temperature: [1.0, 0.6, 0.0, 1.3][r % 4],
            top_k: [0, 5, 40, 0, 1][r % 5],
            top_p: [1.0, 0.9, 0.5][r % 3],
            min_p: [0.0, 0.0, 0.05][r % 3],
            seed: rng.random(),
            position: rng.random_range(0..100_000),
        })
        .collect();
    (logits, rows)
}

#[test]
fn seeded_row_is_batch_invariant() {
    let mut rng = rng("seeded_row_is_batch_invariant");
    let vocab = 300;
    let (logits, rows) = mixed_rows(&mut rng, 64, vocab);
    let n = 3;
    for dev in backends() {
        let full = run(&dev, &logits, &rows, n);
        let pick = |d: &Drawn, slot: usize| {
            let r = slot * n..(slot + 1) * n;
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (d.token[r.clone()].to_vec(), bits(&d.raw[r.clone()]), bits(&d.truncated[r.clone()]), d.rank[r].to_vec())
        };
        for &r in &[0usize, 13, 38, 63] {
            let alone = run(&dev, &logits[r * vocab..(r + 1) * vocab], &rows[r..r + 1], n);
            assert_eq!(pick(&alone, 0), pick(&full, r), "row {r} alone");
            // In a batch of 7, at slot r % 7, among other rows.
            let slot = r % 7;
            let mut idx: Vec<usize> = (0..7).map(|i| (r + 1 + i * 5) % 64).collect();
            idx[slot] = r;
            let l7: Vec<f32> = idx.iter().flat_map(|&i| logits[i * vocab..(i + 1) * vocab].iter().copied()).collect();
            let p7: Vec<RowParams> = idx.iter().map(|&i| rows[i]).collect();
            let seven = run(&dev, &l7, &p7, n);
            assert_eq!(pick(&seven, slot), pick(&full, r), "row {r} at slot {slot} of 7");
        }
        assert_eq!(run(&dev, &logits, &rows, n), full, "a second run differs");
    }
}

// ---------------------------------------------------------------------------------------------
// Logprobs, ranks, greedy, status.

fn check_against_reference<T: Float>(dev: &Device, logits: &[T], rows: &[RowParams], n: usize, what: &str) {
    let vocab = logits.len() / rows.len();
    let d = run(dev, logits, rows, n);
    for (r, p) in rows.iter().enumerate() {
        let x = widen(&logits[r * vocab..(r + 1) * vocab]);
        assert_eq!(d.status[r], 0, "{what} row {r}");
        let dist = refs::filtered_distribution(&x, p).unwrap();
        for s in 0..n {
            let i = r * n + s;
            let t = d.token[i] as usize;
            assert!(dist[t] > 0.0, "{what} row {r}: token {t} outside the allowed set");
            let (raw, proc, trunc, rank) = refs::token_logprobs(&x, p, t).unwrap();
            let close = |got: f32, want: f64, tol: f64, name: &str| {
                assert!((got as f64 - want).abs() <= tol, "{what} row {r} sample {s} {name}: {got} vs {want}");
            };
            close(d.raw[i], raw, 2e-5 * (1.0 + raw.abs()), "raw logprob");
            close(d.processed[i], proc, 2e-5 * (1.0 + proc.abs()), "processed logprob");
            close(d.truncated[i], trunc, 2e-5 * (1.0 + trunc.abs()), "truncated logprob");
            assert_eq!(d.rank[i] as usize, rank, "{what} row {r} sample {s} rank");
        }
    }
}

#[test]
fn logprobs_and_rank_match_the_reference() {
    let mut rng = rng("logprobs_and_rank_match_the_reference");
    let vocab = 1000;
    let (logits, rows) = mixed_rows(&mut rng, 20, vocab);
    for dev in backends() {
        check_against_reference(&dev, &logits, &rows, 4, "f32");
        let b: Vec<bf16> = logits.iter().map(|&v| bf16::from_f32(v)).collect();
        check_against_reference(&dev, &b, &rows, 4, "bf16");
        let h: Vec<f16> = logits.iter().map(|&v| f16::from_f32(v)).collect();
        check_against_reference(&dev, &h, &rows, 4, "f16");
    }
}

#[test]
fn large_vocab_top_k_top_p_is_exact() {
    // One row of 262,144 bf16 logits and one of 151,936 f32 (not a multiple of the CTA).
    let mut rng = rng("large_vocab_top_k_top_p_is_exact");
    for dev in backends() {
        let v = 262_144;
        let logits: Vec<bf16> = (0..v).map(|_| bf16::from_f32(rng.random_range(-8.0f32..8.0))).collect();
        let p = RowParams { top_k: 50, top_p: 0.9, seed: rng.random(), ..RowParams::default() };
        check_against_reference(&dev, &logits, &[p], 8, "bf16 262144");
        let v = 151_936;
        let logits: Vec<f32> = (0..v).map(|_| rng.random_range(-8.0f32..8.0)).collect();
        let p = RowParams { top_p: 0.95, temperature: 0.8, seed: rng.random(), ..RowParams::default() };
        check_against_reference(&dev, &logits, &[p], 4, "f32 151936");
        // k above the top-k list's capacity (1024): top-k and top-p both by radix select over the row.
        let logits: Vec<f32> = (0..4000).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let p = RowParams { top_k: 2000, top_p: 0.7, seed: rng.random(), ..RowParams::default() };
        check_against_reference(&dev, &logits, &[p], 16, "f32 4000 k 2000");
    }
}

#[test]
fn greedy_takes_the_argmax_lowest_index_on_ties() {
    for dev in backends() {
        let logits = [1.0f32, 4.0, -1.0, 4.0, 2.0, f32::NEG_INFINITY, 0.0, 4.0, 3.0];
        let rows = [RowParams { temperature: 0.0, top_k: 2, top_p: 0.1, seed: 3, ..RowParams::default() }];
        let d = run(&dev, &logits, &rows, 5);
        assert_eq!(d.token, vec![1; 5]);
        assert_eq!(d.rank, vec![1; 5]);
        assert_eq!((d.processed[0], d.truncated[0]), (0.0, 0.0));
        let want = refs::log_softmax(&widen(&logits)).unwrap()[1];
        assert!((d.raw[0] as f64 - want).abs() < 1e-6);
    }
}

#[test]
fn bad_rows_report_their_status_and_a_defined_token() {
    for dev in backends() {
        let v = 6;
        let mut logits = vec![0.5f32; 4 * v];
        logits[2] = f32::NAN; // row 0
        logits[v..2 * v].fill(f32::NEG_INFINITY); // row 1
        logits[2 * v + 5] = f32::INFINITY; // row 2; row 3 is fine
        let rows = vec![RowParams { top_k: 2, ..RowParams::default() }; 4];
        let d = run(&dev, &logits, &rows, 2);
        assert_eq!(d.status, vec![STATUS_NON_FINITE, STATUS_NO_FINITE, STATUS_NON_FINITE, 0]);
        assert_eq!(&d.token[..6], &[0; 6]);
        assert_eq!(&d.rank[..6], &[0; 6]);
        assert!(d.raw[..6].iter().chain(&d.truncated[..6]).all(|x| x.is_nan()));
        assert!(d.token[6..].iter().all(|&t| t == 0 || t == 1));
    }
}

// ---------------------------------------------------------------------------------------------
// log_softmax_gather.

fn gather<T: Float>(dev: &Device, logits: &[T], target: &[i32], vocab: usize) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let x = dev.upload(logits).unwrap();
    let t = dev.upload(target).unwrap();
    let mut lp = dev.alloc_zeros::<f32>(target.len()).unwrap();
    let mut ent = dev.alloc_zeros::<f32>(target.len()).unwrap();
    let mut st = dev.alloc_zeros::<u32>(target.len()).unwrap();
    dev.fill_poison(&mut lp.view_mut()).unwrap();
    dev.fill_poison(&mut ent.view_mut()).unwrap();
    dev.fill_poison(&mut st.view_mut()).unwrap();
    log_softmax_gather(
        dev,
        vocab,
        &x.view(),
        &t.view(),
        &mut lp.view_mut(),
        Some(&mut ent.view_mut()),
        &mut st.view_mut(),
    )
    .unwrap();
    (dev.download(&lp).unwrap(), dev.download(&ent).unwrap(), dev.download(&st).unwrap())
}

#[test]
fn log_softmax_gather_equals_the_samplers_raw_logprob_bit_for_bit() {
    let mut rng = rng("log_softmax_gather_equals_the_samplers_raw_logprob_bit_for_bit");
    let vocab = 777;
    let (logits, rows) = mixed_rows(&mut rng, 12, vocab);
    let h: Vec<bf16> = logits.iter().map(|&v| bf16::from_f32(v)).collect();
    for dev in backends() {
        for bf in [false, true] {
            let d = if bf { run(&dev, &h, &rows, 2) } else { run(&dev, &logits, &rows, 2) };
            // The trainer sees each sample's row once per sampled token.
            let twice =
                |v: &[bf16]| (0..24).flat_map(|i| v[(i / 2) * vocab..(i / 2 + 1) * vocab].to_vec()).collect::<Vec<_>>();
            let twice32 =
                |v: &[f32]| (0..24).flat_map(|i| v[(i / 2) * vocab..(i / 2 + 1) * vocab].to_vec()).collect::<Vec<_>>();
            let (lp, ent, st) = if bf {
                gather(&dev, &twice(&h), &d.token, vocab)
            } else {
                gather(&dev, &twice32(&logits), &d.token, vocab)
            };
            for i in 0..d.token.len() {
                let r = i / 2;
                assert_eq!(st[i], 0);
                assert_eq!(lp[i].to_bits(), d.raw[i].to_bits(), "bf16 {bf} row {r}");
                let x: Vec<f64> =
                    if bf { widen(&h[r * vocab..(r + 1) * vocab]) } else { widen(&logits[r * vocab..(r + 1) * vocab]) };
                let want = refs::entropy(&x).unwrap();
                assert!((ent[i] as f64 - want).abs() < 1e-4, "entropy row {r}: {} vs {want}", ent[i]);
            }
        }
    }
}

#[test]
fn log_softmax_gather_flags_bad_targets_and_rows() {
    for dev in backends() {
        let mut logits = vec![0.0f32; 4 * 5];
        logits[5 + 1] = f32::NAN;
        logits[10..15].fill(f32::NEG_INFINITY);
        let (lp, ent, st) = gather(&dev, &logits, &[5, 0, 1, -1], 5);
        assert_eq!(st, vec![STATUS_BAD_TARGET, STATUS_NON_FINITE, STATUS_NO_FINITE, STATUS_BAD_TARGET]);
        assert!(lp.iter().chain(&ent).all(|x| x.is_nan()));
        let (lp, ent, st) = gather(&dev, &logits[..5], &[3], 5);
        assert_eq!(st, vec![0]);
        assert!((lp[0] - (0.2f32).ln()).abs() < 1e-6 && (ent[0] - (5.0f32).ln()).abs() < 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn bad_input_is_rejected_with_the_argument_named() {
    let name = |e: scaling_kernels::Error| match e {
        scaling_kernels::Error::InvalidArgument { name, .. } => name,
        other => panic!("{other}"),
    };
    let dev = Device::vm();
    let ok = RowParams::default();
    assert_eq!(
        name(SamplingParams::upload(&dev, &[RowParams { temperature: -1.0, ..ok }]).err().unwrap()),
        "temperature"
    );
    assert_eq!(name(SamplingParams::upload(&dev, &[RowParams { top_p: 0.0, ..ok }]).err().unwrap()), "top_p");
    assert_eq!(name(SamplingParams::upload(&dev, &[RowParams { min_p: 2.0, ..ok }]).err().unwrap()), "min_p");
    assert_eq!(name(SamplingPlan::new(1, 0, 1).unwrap_err()), "vocab");
    assert_eq!(name(SamplingPlan::new(1, 4, 0).unwrap_err()), "n");
    let plan = SamplingPlan::new(2, 4, 1).unwrap();
    let x = dev.upload(&[0.0f32; 8]).unwrap();
    let mut out = SampleOutput::alloc(&dev, &plan).unwrap();
    let too_big_k = SamplingParams::upload(&dev, &[ok, RowParams { top_k: 5, ..ok }]).unwrap();
    assert_eq!(name(sample(&dev, &plan, &x.view(), &too_big_k, &mut out).unwrap_err()), "top_k");
    let one_row = SamplingParams::upload(&dev, &[ok]).unwrap();
    assert_eq!(name(sample(&dev, &plan, &x.view(), &one_row, &mut out).unwrap_err()), "params");
    let two = SamplingParams::upload(&dev, &[ok, ok]).unwrap();
    let short = dev.upload(&[0.0f32; 7]).unwrap();
    assert_eq!(name(sample(&dev, &plan, &short.view(), &two, &mut out).unwrap_err()), "logits");
    let mut small = SampleOutput::alloc(&dev, &SamplingPlan::new(1, 4, 1).unwrap()).unwrap();
    assert_eq!(name(sample(&dev, &plan, &x.view(), &two, &mut small).unwrap_err()), "out.token");

    // log_softmax_gather and chain_speculative check their lengths too.
    let t = dev.upload(&[0i32, 1]).unwrap();
    let (mut lp, mut st) = (dev.alloc_zeros::<f32>(2).unwrap(), dev.alloc_zeros::<u32>(2).unwrap());
    let e = log_softmax_gather(&dev, 3, &x.view(), &t.view(), &mut lp.view_mut(), None, &mut st.view_mut());
    assert_eq!(name(e.unwrap_err()), "logits");
    let e = log_softmax_gather(&dev, 0, &x.view(), &t.view(), &mut lp.view_mut(), None, &mut st.view_mut());
    assert_eq!(name(e.unwrap_err()), "vocab");
    use scaling_kernels::sampling::chain_speculative;
    let seeds = dev.upload(&[0u64]).unwrap();
    let (mut acc, mut em) = (dev.alloc_zeros::<i32>(1).unwrap(), dev.alloc_zeros::<i32>(2).unwrap());
    let (sv, tv) = (seeds.view(), t.view());
    let spec = |k: usize,
                target: &scaling_kernels::View<'_, f32>,
                acc: &mut scaling_kernels::Buffer<i32>,
                em: &mut scaling_kernels::Buffer<i32>| {
        chain_speculative(
            &dev,
            k,
            4,
            &tv.slice(..k).unwrap(),
            None,
            target,
            &sv,
            &sv,
            &mut acc.view_mut(),
            &mut em.view_mut(),
        )
    };
    assert_eq!(name(spec(0, &x.view(), &mut acc, &mut em).unwrap_err()), "k");
    assert_eq!(name(spec(1, &x.slice(..7).unwrap(), &mut acc, &mut em).unwrap_err()), "target_probs");
    assert!(spec(1, &x.view(), &mut acc, &mut em).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Answer selection.

#[test]
fn majority_vote_and_best_of_n_match_the_reference_with_ties_and_ragged_groups() {
    use scaling_kernels::sampling::{best_of_n, majority_vote};
    let mut rng = rng("majority_vote_and_best_of_n_match_the_reference_with_ties_and_ragged_groups");
    // Ragged sizes, including empty groups, a single sample and groups longer than a warp.
    let sizes = [0usize, 1, 5, 32, 33, 64, 100, 0, 7, 2, 2, 77];
    let mut offsets = vec![0u32];
    for s in sizes {
        offsets.push(offsets.last().unwrap() + s as u32);
    }
    let len = *offsets.last().unwrap() as usize;
    // Few distinct answers so that ties happen; rewards on a coarse grid for the same reason.
    let mut answers: Vec<u64> = (0..len).map(|_| rng.random_range(0..4u64) * 0x1000_0000_0001).collect();
    let mut reward: Vec<f32> = (0..len).map(|_| rng.random_range(0..5) as f32 * 0.25).collect();
    // A forced tie: group 9 (size 2) gets two different answers once each, group 10 two equal rewards.
    let g9 = offsets[9] as usize;
    answers[g9] = 9;
    answers[g9 + 1] = 4;
    let g10 = offsets[10] as usize;
    reward[g10] = 0.5;
    reward[g10 + 1] = 0.5;
    reward[offsets[2] as usize] = f32::NAN; // a NaN at the front of a group
    let groups = sizes.len();
    for dev in backends() {
        let a = dev.upload(&answers).unwrap();
        let r = dev.upload(&reward).unwrap();
        let mut ans = dev.alloc_zeros::<u64>(groups).unwrap();
        let mut votes = dev.alloc_zeros::<u32>(groups).unwrap();
        let mut idx = dev.alloc_zeros::<i32>(groups).unwrap();
        let mut best = dev.alloc_zeros::<f32>(groups).unwrap();
        dev.fill_poison(&mut ans.view_mut()).unwrap();
        dev.fill_poison(&mut votes.view_mut()).unwrap();
        dev.fill_poison(&mut idx.view_mut()).unwrap();
        dev.fill_poison(&mut best.view_mut()).unwrap();
        majority_vote(&dev, &a.view(), &offsets, &mut ans.view_mut(), &mut votes.view_mut()).unwrap();
        best_of_n(&dev, &r.view(), &offsets, &mut idx.view_mut(), &mut best.view_mut()).unwrap();
        let (ans, votes) = (dev.download(&ans).unwrap(), dev.download(&votes).unwrap());
        let want = refs::majority_vote(&answers, &offsets);
        assert_eq!(ans.iter().copied().zip(votes.iter().copied()).collect::<Vec<_>>(), want);
        assert_eq!(want[9], (4, 1));
        let (idx, best) = (dev.download(&idx).unwrap(), dev.download(&best).unwrap());
        let want = refs::best_of_n(&reward, &offsets);
        for g in 0..groups {
            assert_eq!(idx[g], want[g].0, "group {g}");
            assert!(best[g] == want[g].1 || best[g].is_nan() && want[g].1.is_nan(), "group {g}");
        }
        assert_eq!(want[10].0, 0);
        assert_eq!(want[0].0, -1);
    }
}

// ---------------------------------------------------------------------------------------------
// Speculative verification.

/// A random distribution over `v` tokens (some zeros, to exercise the residual's support).
fn random_dist(rng: &mut impl Rng, v: usize) -> Vec<f32> {
    let w: Vec<f64> = (0..v).map(|i| if i % 5 == 4 { 0.0 } else { rng.random_range(0.05..1.0) }).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|x| (x / s) as f32).collect()
}

#[test]
fn chain_speculative_emits_the_target_distribution() {
    use scaling_kernels::sampling::chain_speculative;
    let mut rng = fixed_rng(21);
    let (k, v, batch) = (2usize, 12usize, 4096usize);
    let p: Vec<Vec<f32>> = (0..=k).map(|_| random_dist(&mut rng, v)).collect();
    let q: Vec<Vec<f32>> = (0..k).map(|_| random_dist(&mut rng, v)).collect();
    // Drafts drawn from q on the host; every row shares p and q and has its own seed.
    let draw = |rng: &mut rand::rngs::StdRng, d: &[f32]| {
        let u: f32 = rng.random_range(0.0..1.0);
        let mut acc = 0.0;
        d.iter()
            .position(|&x| {
                acc += x;
                u < acc
            })
            .unwrap_or(v - 1) as i32
    };
    let draft: Vec<i32> = (0..batch).flat_map(|_| (0..k).map(|j| draw(&mut rng, &q[j])).collect::<Vec<_>>()).collect();
    let q_all: Vec<f32> = (0..batch).flat_map(|_| q.concat()).collect();
    let p_all: Vec<f32> = (0..batch).flat_map(|_| p.concat()).collect();
    let seeds: Vec<u64> = (0..batch as u64).map(|r| r * 7919 + 1).collect();
    let pos: Vec<u64> = (0..batch as u64).map(|r| r % 13).collect();
    for dev in backends() {
        let (d, qd, pd) = (dev.upload(&draft).unwrap(), dev.upload(&q_all).unwrap(), dev.upload(&p_all).unwrap());
        let (sd, ps) = (dev.upload(&seeds).unwrap(), dev.upload(&pos).unwrap());
        let mut acc = dev.alloc_zeros::<i32>(batch).unwrap();
        let mut out = dev.alloc_zeros::<i32>(batch * (k + 1)).unwrap();
        dev.fill_poison(&mut acc.view_mut()).unwrap();
        dev.fill_poison(&mut out.view_mut()).unwrap();
        let qv = qd.view();
        chain_speculative(
            &dev,
            k,
            v,
            &d.view(),
            Some(&qv),
            &pd.view(),
            &sd.view(),
            &ps.view(),
            &mut acc.view_mut(),
            &mut out.view_mut(),
        )
        .unwrap();
        let (acc, out) = (dev.download(&acc).unwrap(), dev.download(&out).unwrap());
        // Position 0 is always emitted, and distributed as p_0; position 1, when emitted (draft 0
        // accepted), as p_1 (the target here ignores the prefix).
        let mut h0 = vec![0u64; v];
        let mut h1 = vec![0u64; v];
        for r in 0..batch {
            let row = &out[r * (k + 1)..(r + 1) * (k + 1)];
            assert!((0..=k as i32).contains(&acc[r]));
            for j in 0..acc[r] as usize {
                assert_eq!(row[j], draft[r * k + j], "accepted tokens are the drafts");
            }
            assert!(row[acc[r] as usize + 1..].iter().all(|&t| t == -1));
            h0[row[0] as usize] += 1;
            if row[1] >= 0 {
                h1[row[1] as usize] += 1;
            }
        }
        let to64 = |d: &[f32]| d.iter().map(|&x| x as f64).collect::<Vec<_>>();
        for (h, want, name) in [(&h0, to64(&p[0]), "position 0"), (&h1, to64(&p[1]), "position 1")] {
            let (stat, df) = chi_square(h, &want);
            assert!(stat < chi_square_critical(df), "{name}: chi2 {stat:.1} on {df} df");
        }
        // The drafts' own distribution is rejected by the same test.
        let (bad, df) = chi_square(&h0, &to64(&q[0]));
        assert!(bad > chi_square_critical(df), "q_0 passed: chi2 {bad:.1}");
    }
}

#[test]
fn greedy_chain_speculative_matches_the_reference() {
    use scaling_kernels::sampling::chain_speculative;
    let mut rng = rng("greedy_chain_speculative_matches_the_reference");
    let (k, v, batch) = (4usize, 300usize, 24usize);
    let target: Vec<f32> = (0..batch * (k + 1)).flat_map(|_| random_dist(&mut rng, v)).collect();
    // Drafts that agree with the target's argmax for a random number of steps; one out of range.
    let mut draft = Vec::new();
    for r in 0..batch {
        let agree = r % (k + 1);
        for j in 0..k {
            let (_, out) =
                refs::chain_speculative_greedy(&[], &target[(r * (k + 1) + j) * v..(r * (k + 1) + j + 1) * v], v);
            draft.push(if j < agree { out[0] } else { (out[0] + 1) % v as i32 });
        }
    }
    draft[5] = v as i32 + 3;
    for dev in backends() {
        let (d, t) = (dev.upload(&draft).unwrap(), dev.upload(&target).unwrap());
        let zeros = dev.upload(&vec![0u64; batch]).unwrap();
        let mut acc = dev.alloc_zeros::<i32>(batch).unwrap();
        let mut out = dev.alloc_zeros::<i32>(batch * (k + 1)).unwrap();
        dev.fill_poison(&mut acc.view_mut()).unwrap();
        dev.fill_poison(&mut out.view_mut()).unwrap();
        chain_speculative(
            &dev,
            k,
            v,
            &d.view(),
            None,
            &t.view(),
            &zeros.view(),
            &zeros.view(),
            &mut acc.view_mut(),
            &mut out.view_mut(),
        )
        .unwrap();
        let (acc, out) = (dev.download(&acc).unwrap(), dev.download(&out).unwrap());
        for r in 0..batch {
            let want = refs::chain_speculative_greedy(
                &draft[r * k..(r + 1) * k],
                &target[r * (k + 1) * v..(r + 1) * (k + 1) * v],
                v,
            );
            assert_eq!((acc[r], out[r * (k + 1)..(r + 1) * (k + 1)].to_vec()), want, "row {r}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The VM's host threads.

#[test]
fn sampler_is_bit_identical_for_any_vm_host_thread_count() {
    // The crate's PTX run straight on ptx_vm machines with 1, 2 and 5 host threads: same bytes out.
    use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};
    let ptx = scaling_kernels::device::MODULES.iter().find(|m| m.name == "sampling_sample").unwrap().ptx;
    let module = Module::parse(ptx).unwrap();
    let mut r = fixed_rng(33);
    let (batch, vocab, n) = (9usize, 500usize, 3usize);
    let logits: Vec<f32> = (0..batch * vocab).map(|_| r.random_range(-5.0f32..5.0)).collect();
    let (_, rows) = mixed_rows(&mut r, batch, 1);
    let bytes = |v: &[u8]| v.to_vec();
    let f32b = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u32b = |v: Vec<u32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u64b = |v: Vec<u64>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let inputs = [
        f32b(logits.clone()),
        f32b(rows.iter().map(|p| p.temperature).collect()),
        u32b(rows.iter().map(|p| p.top_k).collect()),
        f32b(rows.iter().map(|p| p.top_p).collect()),
        f32b(rows.iter().map(|p| p.min_p).collect()),
        u64b(rows.iter().map(|p| p.seed).collect()),
        u64b(rows.iter().map(|p| p.position).collect()),
    ];
    let out_bytes = [4 * batch * n, 4 * batch * n, 4 * batch * n, 4 * batch * n, 4 * batch * n, 4 * batch];
    let run = |threads: usize| -> Vec<Vec<u8>> {
        let mut m = Machine::new(Arch::Sm80).with_threads(threads);
        let mut pb = ParamBuilder::new();
        for inp in &inputs {
            let p = m.alloc(inp.len()).unwrap();
            m.write(p, &bytes(inp)).unwrap();
            pb = pb.ptr(p);
        }
        let mut outs = Vec::new();
        for &len in &out_bytes {
            let p = m.alloc(len).unwrap();
            m.fill_poison(p, len).unwrap();
            pb = pb.ptr(p);
            outs.push((p, len));
        }
        let params = pb.u32(batch as u32).u32(vocab as u32).u32(n as u32).u32(0).finish();
        let cfg = LaunchConfig { grid: [batch as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
        m.launch(&module, "sampling_sample_f32", &cfg, &params).unwrap().assert_clean().unwrap();
        outs.iter()
            .map(|&(p, len)| {
                let mut b = vec![0u8; len];
                m.read(p, &mut b).unwrap();
                b
            })
            .collect()
    };
    let one = run(1);
    for threads in [2, 5] {
        assert!(run(threads) == one, "{threads} host threads differ from 1");
    }
}

// ---------------------------------------------------------------------------------------------
// Top-n logprobs.

#[test]
fn top_logprobs_match_the_reference_and_the_samplers_arithmetic() {
    use scaling_kernels::sampling::top_logprobs;
    let mut rng = rng("top_logprobs_match_the_reference_and_the_samplers_arithmetic");
    let (rows, vocab) = (6usize, 2500usize);
    // Coarse values so that ties straddle the n-th place; one row of all-equal logits; one with -inf.
    let mut logits: Vec<bf16> =
        (0..rows * vocab).map(|_| bf16::from_f32(rng.random_range(-40i32..40) as f32 * 0.125)).collect();
    logits[2 * vocab..3 * vocab].fill(bf16::from_f32(1.0));
    for v in &mut logits[4 * vocab..4 * vocab + 2000] {
        *v = bf16::NEG_INFINITY;
    }
    for dev in backends() {
        for n in [1usize, 7, 20] {
            let x = dev.upload(&logits).unwrap();
            let mut ids = dev.alloc_zeros::<i32>(rows * n).unwrap();
            let mut lps = dev.alloc_zeros::<f32>(rows * n).unwrap();
            let mut st = dev.alloc_zeros::<u32>(rows).unwrap();
            dev.fill_poison(&mut ids.view_mut()).unwrap();
            dev.fill_poison(&mut lps.view_mut()).unwrap();
            dev.fill_poison(&mut st.view_mut()).unwrap();
            top_logprobs(&dev, vocab, n, &x.view(), &mut ids.view_mut(), &mut lps.view_mut(), &mut st.view_mut())
                .unwrap();
            let (ids, lps, st) = (dev.download(&ids).unwrap(), dev.download(&lps).unwrap(), dev.download(&st).unwrap());
            assert!(st.iter().all(|&s| s == 0));
            // The same ids through log_softmax_gather give the same bits.
            let rows_again: Vec<bf16> =
                (0..rows * n).flat_map(|i| logits[(i / n) * vocab..(i / n + 1) * vocab].to_vec()).collect();
            let (glp, _, _) = gather(&dev, &rows_again, &ids, vocab);
            for r in 0..rows {
                let want = refs::top_logprobs(&widen(&logits[r * vocab..(r + 1) * vocab]), n).unwrap();
                for (s, &(i, lp)) in want.iter().enumerate() {
                    assert_eq!(ids[r * n + s] as usize, i, "n {n} row {r} place {s}");
                    assert!((lps[r * n + s] as f64 - lp).abs() < 1e-5 * (1.0 + lp.abs()), "n {n} row {r} place {s}");
                    assert_eq!(lps[r * n + s].to_bits(), glp[r * n + s].to_bits(), "n {n} row {r} place {s}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Penalties and bias.

#[test]
fn penalties_and_bias_match_the_reference_and_flag_bad_ids() {
    use scaling_kernels::sampling::{apply_penalties, PenaltyBatch, STATUS_BAD_ID};
    let mut rng = rng("penalties_and_bias_match_the_reference_and_flag_bad_ids");
    let (rows, vocab) = (5usize, 700usize);
    let logits: Vec<f16> = (0..rows * vocab).map(|_| f16::from_f32(rng.random_range(-6.0f32..6.0))).collect();
    let mut pen = PenaltyBatch {
        repetition: (0..rows).map(|r| [1.0, 1.3, 0.8, 2.0, 1.1][r]).collect(),
        frequency: (0..rows).map(|r| [0.0, 0.5, 0.1, 0.0, 0.3][r]).collect(),
        presence: (0..rows).map(|r| [0.0, 0.2, 0.0, 1.0, 0.4][r]).collect(),
        history_offsets: vec![0],
        bias_offsets: vec![0],
        ..PenaltyBatch::default()
    };
    let mut hist: Vec<Vec<(i32, u32)>> = Vec::new();
    let mut bias: Vec<Vec<(i32, f64)>> = Vec::new();
    for r in 0..rows {
        // Unique history ids (a stride walk), some with count 0; row 3 has one id out of range.
        let h: Vec<(i32, u32)> = (0..40 * r).map(|j| (((j * 37 + r) % vocab) as i32, (j % 4) as u32)).collect();
        let mut h = h.into_iter().collect::<std::collections::BTreeMap<_, _>>().into_iter().collect::<Vec<_>>();
        if r == 3 {
            h.push((vocab as i32, 2));
        }
        let b: Vec<(i32, f64)> =
            (0..r).map(|j| ((j * 101 % vocab) as i32, [-100.0, 2.5, f64::NEG_INFINITY][j % 3])).collect();
        for &(id, c) in &h {
            pen.history_ids.push(id);
            pen.history_counts.push(c);
        }
        for &(id, v) in &b {
            pen.bias_ids.push(id);
            pen.bias_values.push(v as f32);
        }
        pen.history_offsets.push(pen.history_ids.len() as u32);
        pen.bias_offsets.push(pen.bias_ids.len() as u32);
        hist.push(h);
        bias.push(b);
    }
    for dev in backends() {
        let x = dev.upload(&logits).unwrap();
        let mut out = dev.alloc_zeros::<f32>(rows * vocab).unwrap();
        let mut st = dev.alloc_zeros::<u32>(rows).unwrap();
        dev.fill_poison(&mut out.view_mut()).unwrap();
        dev.fill_poison(&mut st.view_mut()).unwrap();
        apply_penalties(&dev, vocab, &x.view(), &pen, &mut out.view_mut(), &mut st.view_mut()).unwrap();
        let (out, st) = (dev.download(&out).unwrap(), dev.download(&st).unwrap());
        assert_eq!(st, vec![0, 0, 0, STATUS_BAD_ID, 0]);
        for r in 0..rows {
            let coef = (pen.repetition[r] as f64, pen.frequency[r] as f64, pen.presence[r] as f64);
            let want = refs::apply_penalties(&widen(&logits[r * vocab..(r + 1) * vocab]), &hist[r], coef, &bias[r]);
            for i in 0..vocab {
                let g = out[r * vocab + i] as f64;
                assert!(
                    g == want[i] || (g - want[i]).abs() <= 1e-6 * (1.0 + want[i].abs()),
                    "row {r} token {i}: {g} vs {}",
                    want[i]
                );
            }
        }
    }
    // Host-side rules.
    let bad = PenaltyBatch { repetition: vec![0.0; rows], ..pen.clone() };
    let name = |r: scaling_kernels::Result<()>| match r {
        Err(scaling_kernels::Error::InvalidArgument { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    let dev = Device::vm();
    let x = dev.upload(&logits).unwrap();
    let (mut out, mut st) = (dev.alloc_zeros::<f32>(rows * vocab).unwrap(), dev.alloc_zeros::<u32>(rows).unwrap());
    let mut call =
        |p: &PenaltyBatch| apply_penalties(&dev, vocab, &x.view(), p, &mut out.view_mut(), &mut st.view_mut());
    assert_eq!(name(call(&bad)), "repetition");
    assert_eq!(name(call(&PenaltyBatch { history_offsets: vec![0, 1], ..pen.clone() })), "history_offsets");
    assert_eq!(
        name(call(&PenaltyBatch { bias_values: vec![f32::NAN; pen.bias_ids.len()], ..pen.clone() })),
        "bias_values"
    );
}

// ---------------------------------------------------------------------------------------------
// Passes over the logits (VM counters).

/// Row reads of one launch of one row: 32-byte global sectors requested / row bytes, less
/// `PARAM_SECTORS` (each warp reads the row's six parameters; the draw reads seed and position).
fn row_reads<T: Float>(dev: &Device, logits: &[T], p: RowParams, n: usize) -> f64 {
    run(dev, logits, &[p], n);
    let c = dev.vm_last_launch().unwrap().counters.unwrap();
    (c.global_load_sectors.saturating_sub(PARAM_SECTORS) * 32) as f64 / std::mem::size_of_val(logits) as f64
}

/// Sectors of per-row parameters a launch of one row may request besides the logits: 6 parameters
/// by 8 warps, 2 by the sampling warps, and the drawn tokens' logits (greedy).
const PARAM_SECTORS: u64 = 64;

#[test]
fn passes_over_the_logits_stay_within_two_reads_on_every_row() {
    // Vocab 131,072 in bf16, every row alone in its launch, so each count is that row's worst.
    let v = 131_072usize;
    let mut r = fixed_rng(31);
    let uniform: Vec<f32> = (0..v).map(|_| r.random_range(-8.0f32..8.0)).collect();
    // A decoding-like row: 64 likely tokens (99% of the mass) above a long flat tail.
    let mut peaked: Vec<f32> = (0..v).map(|_| r.random_range(-8.0f32..4.0)).collect();
    for _ in 0..64 {
        peaked[r.random_range(0..v)] = r.random_range(12.0f32..16.0);
    }
    let mut huge = vec![0.0f32; v];
    huge[v / 3] = 1e4;
    // Rising rows make every tile beat the list so far (a compaction every 1024-odd tokens).
    let rising: Vec<f32> = (0..v).map(|i| -8.0 + 16.0 * i as f32 / v as f32).collect();
    let falling: Vec<f32> = rising.iter().rev().copied().collect();
    let rows: [(&str, Vec<f32>); 6] = [
        ("uniform", uniform),
        ("peaked", peaked),
        ("all equal", vec![0.5; v]),
        ("one huge", huge),
        ("rising", rising),
        ("falling", falling),
    ];
    let base = RowParams { seed: 5, ..RowParams::default() };
    let list_configs = [
        ("top-k 50 + top-p 0.9", RowParams { top_k: 50, top_p: 0.9, ..base }),
        ("top-k 1", RowParams { top_k: 1, ..base }),
        ("top-k 1024 + top-p 0.95", RowParams { top_k: 1024, top_p: 0.95, ..base }),
        ("all filters, T 0.7", RowParams { temperature: 0.7, top_k: 40, top_p: 0.8, min_p: 0.05, ..base }),
    ];
    let dev = Device::vm();
    for (ri, (name, x)) in rows.iter().enumerate() {
        let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        // Every config on the adversarial rows; the two usual ones on the random rows.
        for (label, p) in
            list_configs.iter().filter(|(l, _)| ri >= 2 || l.starts_with("top-k 50") || l.starts_with("all"))
        {
            let reads = row_reads(&dev, &b, *p, 4);
            eprintln!("{label} on {name}: {reads:.3} row reads");
            assert!(reads <= 2.0, "{label} on {name}: {reads:.3} row reads");
        }
    }
    // top-p or min-p alone: two reads when their set fits the 1024-entry list (a decoding-like
    // row), one when min-p's set ends inside it (sets past the list: the next test).
    let b: Vec<bf16> = rows[1].1.iter().map(|&v| bf16::from_f32(v)).collect();
    for (label, p) in [("top-p 0.9", RowParams { top_p: 0.9, ..base }), ("min-p 0.1", RowParams { min_p: 0.1, ..base })]
    {
        let reads = row_reads(&dev, &b, p, 4);
        eprintln!("{label} on peaked: {reads:.3} row reads");
        assert!(reads <= 2.0, "{label} on peaked: {reads:.3} row reads");
    }
    // The stream's compactions on the rising row keep the exact top-k: tokens, logprobs and ranks
    // against the reference.
    let w = 20_000;
    let rising: Vec<bf16> = (0..w).map(|i| bf16::from_f32(-8.0 + 16.0 * i as f32 / w as f32)).collect();
    check_against_reference(&dev, &rising, &[RowParams { top_k: 1000, top_p: 0.97, ..base }], 8, "rising k 1000");
    let rising: Vec<f32> = (0..w).map(|i| -8.0 + 16.0 * i as f32 / w as f32).collect();
    check_against_reference(&dev, &rising, &[RowParams { top_k: 700, temperature: 1.3, ..base }], 8, "rising f32");
}

#[test]
fn plain_min_p_and_top_p_rows_read_the_logits_at_most_twice() {
    // The two-pass path (no top-k, sets past the 1024-entry list): pass 1 finds the maximum and
    // predicts the cells of the cut and the draws, pass 2 sums the exact cell masses and collects
    // those cells. Vocab 131,072 in bf16, every row alone in its launch.
    let v = 131_072usize;
    let mut r = fixed_rng(37);
    let uniform: Vec<f32> = (0..v).map(|_| r.random_range(-8.0f32..8.0)).collect();
    let mut peaked: Vec<f32> = (0..v).map(|_| r.random_range(-8.0f32..4.0)).collect();
    for _ in 0..64 {
        peaked[r.random_range(0..v)] = r.random_range(12.0f32..16.0);
    }
    // A flat tail that holds most of the mass under a few large logits (plain draws land in both).
    let mut heavy_tail: Vec<f32> = (0..v).map(|_| r.random_range(-4.0f32..4.0)).collect();
    for _ in 0..16 {
        heavy_tail[r.random_range(0..v)] = 12.0;
    }
    let mut huge = vec![0.0f32; v];
    huge[v / 3] = 1e4;
    // Rising rows move the maximum's cell on every tile of pass 1.
    let rising: Vec<f32> = (0..v).map(|i| -8.0 + 16.0 * i as f32 / v as f32).collect();
    let falling: Vec<f32> = rising.iter().rev().copied().collect();
    let rows: [(&str, Vec<f32>); 6] = [
        ("uniform", uniform),
        ("peaked", peaked),
        ("heavy tail", heavy_tail),
        ("one huge", huge),
        ("rising", rising),
        ("falling", falling),
    ];
    let base = RowParams { seed: 9, ..RowParams::default() };
    let configs = [
        ("plain", base),
        ("min-p 0.1", RowParams { min_p: 0.1, ..base }),
        ("top-p 0.9", RowParams { top_p: 0.9, ..base }),
        ("T 0.7 top-p 0.95 min-p 0.02", RowParams { temperature: 0.7, top_p: 0.95, min_p: 0.02, ..base }),
    ];
    let dev = Device::vm();
    for (ri, (name, x)) in rows.iter().enumerate() {
        let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        // Every config on the random rows; plain and the combination on the ordered ones.
        for (label, p) in configs.iter().filter(|(l, _)| ri < 3 || *l == "plain" || l.starts_with('T')) {
            let reads = row_reads(&dev, &b, *p, 4);
            eprintln!("{label} on {name}: {reads:.3} row reads");
            assert!(reads <= 2.0, "{label} on {name}: {reads:.3} row reads");
        }
    }
    // The fallback (the radix path after pass 2's exact mass) when the cells to collect exceed
    // shared memory: all-equal logits put the whole row in one cell, and 64 draws on a flat row
    // want about 64 cells of ~128 tokens. Measured, bounded, and exact (tests below).
    let equal = vec![bf16::from_f32(0.5); v];
    for (label, p) in configs.iter().filter(|(l, _)| *l == "plain" || *l == "top-p 0.9") {
        let reads = row_reads(&dev, &equal, *p, 4);
        eprintln!("{label} on all equal: {reads:.3} row reads (fallback)");
        assert!(reads <= 8.0, "{label} on all equal: {reads:.3} row reads");
    }
    let b: Vec<bf16> = rows[0].1.iter().map(|&v| bf16::from_f32(v)).collect();
    for (label, p) in configs.iter().filter(|(l, _)| *l == "plain" || *l == "top-p 0.9") {
        let reads = row_reads(&dev, &b, *p, 64);
        eprintln!("{label} on uniform, 64 samples: {reads:.3} row reads");
        assert!(reads <= 8.0, "{label} on uniform, 64 samples: {reads:.3} row reads");
    }
}

#[test]
fn two_pass_path_matches_the_reference() {
    // Plain, min-p and top-p rows whose sets pass the 1024-entry list (and a few that fall back),
    // in every dtype, against the float64 reference: tokens in the allowed set, logprobs, ranks.
    let mut rng = rng("two_pass_path_matches_the_reference");
    let v = 6_007usize;
    let uniform: Vec<f32> = (0..v).map(|_| rng.random_range(-3.0f32..3.0)).collect();
    let mut peaked: Vec<f32> = (0..v).map(|_| rng.random_range(-6.0f32..2.0)).collect();
    for _ in 0..40 {
        peaked[rng.random_range(0..v)] = rng.random_range(4.0f32..7.0);
    }
    // Few distinct values (ties inside every cell and at the cut once rounded to 16 bits).
    let coarse: Vec<f32> = (0..v).map(|_| (rng.random_range(0.0f32..3.0) * 16.0).floor() / 16.0).collect();
    let mut mostly_inf = vec![f32::NEG_INFINITY; v];
    for x in mostly_inf.iter_mut().skip(1000).take(2000) {
        *x = rng.random_range(-1.0f32..1.0);
    }
    let rising: Vec<f32> = (0..v).map(|i| -8.0 + 16.0 * i as f32 / v as f32).collect();
    let mut huge = vec![0.0f32; v];
    huge[v / 2] = 1e4;
    let mut p = |t: f32, top_p: f32, min_p: f32| RowParams {
        temperature: t,
        top_p,
        min_p,
        seed: rng.random(),
        position: rng.random(),
        ..RowParams::default()
    };
    let configs = [p(1.0, 1.0, 0.0), p(1.0, 1.0, 0.1), p(1.0, 0.9, 0.0), p(0.7, 0.95, 0.02), p(1.6, 0.5, 0.0)];
    let shapes = [
        ("uniform", uniform),
        ("peaked", peaked),
        ("coarse", coarse),
        ("mostly -inf", mostly_inf),
        ("rising", rising),
        ("one huge", huge),
        ("all equal", vec![0.25f32; v]),
    ];
    for dev in backends() {
        for (name, x) in &shapes {
            let logits: Vec<f32> = configs.iter().flat_map(|_| x.iter().copied()).collect();
            check_against_reference(&dev, &logits, &configs, 8, &format!("f32 {name}"));
            let b: Vec<bf16> = logits.iter().map(|&v| bf16::from_f32(v)).collect();
            check_against_reference(&dev, &b, &configs, 8, &format!("bf16 {name}"));
        }
        let h: Vec<f16> = configs.iter().flat_map(|_| shapes[0].1.iter().map(|&v| f16::from_f32(v))).collect();
        check_against_reference(&dev, &h, &configs, 8, "f16 uniform");
        // 64 samples of one row: the collection overflows on some, not on others.
        let b: Vec<bf16> = shapes[0].1.iter().map(|&v| bf16::from_f32(v)).collect();
        check_against_reference(&dev, &b, &configs[2..3], 64, "bf16 uniform 64 samples");
        let b: Vec<bf16> = shapes[1].1.iter().map(|&v| bf16::from_f32(v)).collect();
        check_against_reference(&dev, &b, &configs[..1], 64, "bf16 peaked 64 samples");
    }
}

#[test]
fn two_pass_draws_match_the_exact_distribution() {
    // 1,500 tokens in [-1, 1): plain, and temperature 0.8 with top-p 0.95 and min-p 0.1 (~1,160
    // tokens), both past the 1024-entry list, so they take the two-pass path (64 draws per row).
    let mut r = fixed_rng(41);
    let flat: Vec<f32> = (0..1500).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let base = RowParams::default();
    let cases = [
        ("plain", base),
        ("T 0.8 top_p 0.95 min_p 0.1", RowParams { temperature: 0.8, top_p: 0.95, min_p: 0.1, ..base }),
    ];
    for dev in stat_backends() {
        for (name, p) in &cases {
            let want = refs::filtered_distribution(&widen(&flat), p).unwrap();
            let counts = histogram(&dev, &flat, *p, 100_000);
            let (stat, df) = chi_square(&counts, &want);
            let crit = chi_square_critical(df);
            eprintln!("{name}: chi2 {stat:.1} on {df} df (reject above {crit:.1})");
            assert!(stat < crit, "{name}: chi2 {stat:.1} on {df} df, threshold {crit:.1}");
        }
    }
}
