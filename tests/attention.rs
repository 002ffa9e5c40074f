//! Attention kernels against the float64 references, on every available backend.

mod common;

use common::{backends, max_abs_err, rng};
use half::{bf16, f16};
use rand::Rng;
use scaling_kernels::attention::{merge_states, MergeShape};
use scaling_kernels::reference;
use scaling_kernels::{Device, Float};

// ---------------------------------------------------------------------------------------------
// The reference itself, proven against attention computed directly.

fn random_vec(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-2.0..2.0)).collect()
}

#[test]
fn reference_merge_of_two_key_halves_equals_attention_over_all_keys() {
    let mut rng = rng("reference_merge_of_two_key_halves_equals_attention_over_all_keys");
    let d = 16;
    for n_keys in [2usize, 5, 33] {
        let q = random_vec(&mut rng, d);
        let keys: Vec<Vec<f64>> = (0..n_keys).map(|_| random_vec(&mut rng, d)).collect();
        let values: Vec<Vec<f64>> = (0..n_keys).map(|_| random_vec(&mut rng, d)).collect();
        let split = rng.random_range(1..n_keys);
        let (full_o, full_lse) = reference::attention::attention_row(&q, &keys, &values, 0.25);
        let (oa, la) = reference::attention::attention_row(&q, &keys[..split], &values[..split], 0.25);
        let (ob, lb) = reference::attention::attention_row(&q, &keys[split..], &values[split..], 0.25);
        let (o, lse) = reference::attention::merge_states(&oa, &[la], &ob, &[lb], d);
        assert!(max_abs_err(&o, &full_o) < 1e-12, "n_keys {n_keys}");
        assert!((lse[0] - full_lse).abs() < 1e-12);
    }
}

#[test]
fn reference_merge_with_an_empty_part_returns_the_other_exactly() {
    let mut rng = rng("reference_merge_with_an_empty_part_returns_the_other_exactly");
    let a = random_vec(&mut rng, 8);
    let garbage = vec![f64::NAN; 8];
    let (o, lse) = reference::attention::merge_states(&a, &[0.7], &garbage, &[f64::NEG_INFINITY], 8);
    assert_eq!((o, lse), (a.clone(), vec![0.7]));
    let (o, lse) = reference::attention::merge_states(&garbage, &[f64::NEG_INFINITY], &a, &[-3.0], 8);
    assert_eq!((o, lse), (a, vec![-3.0]));
    let (o, lse) =
        reference::attention::merge_states(&garbage, &[f64::NEG_INFINITY], &garbage, &[f64::NEG_INFINITY], 8);
    assert_eq!((o, lse), (vec![0.0; 8], vec![f64::NEG_INFINITY]));
}

// ---------------------------------------------------------------------------------------------
// merge_states on the backends.

/// Inputs of one merge case, kept in T (what the device sees) and widened exactly to f64.
struct MergeCase<T> {
    shape: MergeShape,
    o_a: Vec<T>,
    o_b: Vec<T>,
    lse_a: Vec<f32>,
    lse_b: Vec<f32>,
}

/// Random O in [-4, 4] and LSE in [-6, 6], with special rows: b empty (its O set to NaN to prove it is
/// never read), a empty, both empty, equal LSEs, a NaN LSE, and a part whose weight underflows.
fn merge_case<T: Float>(rng: &mut impl Rng, shape: MergeShape) -> MergeCase<T> {
    let rows = shape.tokens * shape.heads;
    let n = rows * shape.head_dim;
    let mut o_a: Vec<T> = (0..n).map(|_| T::from_f64(rng.random_range(-4.0..4.0))).collect();
    let mut o_b: Vec<T> = (0..n).map(|_| T::from_f64(rng.random_range(-4.0..4.0))).collect();
    let mut lse_a: Vec<f32> = (0..rows).map(|_| rng.random_range(-6.0..6.0)).collect();
    let mut lse_b: Vec<f32> = (0..rows).map(|_| rng.random_range(-6.0..6.0)).collect();
    let d = shape.head_dim;
    for r in 0..rows {
        match r % 7 {
            1 => {
                lse_b[r] = f32::NEG_INFINITY;
                o_b[r * d..(r + 1) * d].fill(T::from_f64(f64::NAN));
            }
            2 => {
                lse_a[r] = f32::NEG_INFINITY;
                o_a[r * d..(r + 1) * d].fill(T::from_f64(f64::NAN));
            }
            3 if r % 2 == 1 => {
                lse_a[r] = f32::NEG_INFINITY;
                lse_b[r] = f32::NEG_INFINITY;
            }
            4 => lse_b[r] = lse_a[r],
            5 if rows > 5 => lse_a[r] = f32::NAN,
            6 => lse_b[r] = lse_a[r] - 120.0, // exp(-120) underflows f32: b's weight is 0
            _ => {}
        }
    }
    MergeCase { shape, o_a, o_b, lse_a, lse_b }
}

fn widen<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// The same merge done naively in T's precision: every intermediate rounded to T. The
/// FlashAttention rule: the kernel's error must stay within 2x this one's.
fn naive_in<T: Float>(c: &MergeCase<T>) -> Vec<f64> {
    let r = |x: f64| T::from_f64(x).to_f64();
    let d = c.shape.head_dim;
    let mut out = Vec::with_capacity(c.o_a.len());
    for row in 0..c.lse_a.len() {
        let (la, lb) = (c.lse_a[row] as f64, c.lse_b[row] as f64);
        for i in row * d..(row + 1) * d {
            let (a, b) = (c.o_a[i].to_f64(), c.o_b[i].to_f64());
            out.push(if la.is_nan() || lb.is_nan() {
                f64::NAN
            } else if la == f64::NEG_INFINITY && lb == f64::NEG_INFINITY {
                0.0
            } else if lb == f64::NEG_INFINITY {
                a
            } else if la == f64::NEG_INFINITY {
                b
            } else {
                let m = la.max(lb);
                let (wa, wb) = (r(r(la - m).exp()), r(r(lb - m).exp()));
                r(r(r(wa * a) + r(wb * b)) / r(wa + wb))
            });
        }
    }
    out
}

fn check_merge<T: Float>(dev: &Device, rng: &mut impl Rng, shape: MergeShape, offset: usize) {
    let c = merge_case::<T>(rng, shape);
    let rows = shape.tokens * shape.heads;
    let (want_o, want_lse) = reference::attention::merge_states(
        &widen(&c.o_a),
        &c.lse_a.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &widen(&c.o_b),
        &c.lse_b.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        shape.head_dim,
    );

    // `offset` shifts every O tensor inside its buffer, so misaligned views take the scalar path.
    let pad = |v: &[T]| {
        let mut p = vec![T::from_f64(0.5); offset];
        p.extend_from_slice(v);
        p
    };
    let n = c.o_a.len();
    let o_a = dev.upload(&pad(&c.o_a)).unwrap();
    let o_b = dev.upload(&pad(&c.o_b)).unwrap();
    let lse_a = dev.upload(&c.lse_a).unwrap();
    let lse_b = dev.upload(&c.lse_b).unwrap();
    let mut o = dev.alloc_zeros::<T>(n + offset).unwrap();
    let mut lse = dev.alloc_zeros::<f32>(rows).unwrap();
    dev.fill_poison(&mut o.view_mut()).unwrap();
    dev.fill_poison(&mut lse.view_mut()).unwrap();
    merge_states(
        dev,
        shape,
        &o_a.slice(offset..).unwrap(),
        &lse_a.view(),
        &o_b.slice(offset..).unwrap(),
        &lse_b.view(),
        &mut o.slice_mut(offset..).unwrap(),
        Some(&mut lse.view_mut()),
    )
    .unwrap();
    let got_o = widen(&dev.download(o.slice(offset..).unwrap()).unwrap());
    let got_lse: Vec<f64> = dev.download(&lse).unwrap().iter().map(|&x| x as f64).collect();

    let what = format!("{} {shape:?} offset {offset} on {}", T::NAME, dev.describe());
    // Rows with an empty part must be the other part bit for bit.
    let d = shape.head_dim;
    for row in 0..rows {
        let (la, lb) = (c.lse_a[row], c.lse_b[row]);
        if la.is_nan() || lb.is_nan() {
            continue;
        }
        let got = &got_o[row * d..(row + 1) * d];
        if lb == f32::NEG_INFINITY && la != f32::NEG_INFINITY {
            assert_eq!(got, &widen(&c.o_a[row * d..(row + 1) * d])[..], "{what}: row {row} (b empty)");
        } else if la == f32::NEG_INFINITY && lb != f32::NEG_INFINITY {
            assert_eq!(got, &widen(&c.o_b[row * d..(row + 1) * d])[..], "{what}: row {row} (a empty)");
        }
    }
    let err = max_abs_err(&got_o, &want_o);
    let naive = max_abs_err(&naive_in(&c), &want_o);
    let eps = 1e-6;
    assert!(err <= 2.0 * naive + eps, "{what}: max |o - ref| = {err:e} > 2 x naive {naive:e} + {eps:e}");
    let lse_err = got_lse
        .iter()
        .zip(&want_lse)
        .map(|(g, w)| if g.is_nan() && w.is_nan() || g == w { 0.0 } else { (g - w).abs() / w.abs().max(1.0) })
        .fold(0.0, f64::max);
    assert!(lse_err <= 1e-6, "{what}: lse relative error {lse_err:e}");
}

const MERGE_SHAPES: [MergeShape; 6] = [
    MergeShape { tokens: 1, heads: 1, head_dim: 1 },
    MergeShape { tokens: 1, heads: 1, head_dim: 128 },
    MergeShape { tokens: 3, heads: 5, head_dim: 7 },
    MergeShape { tokens: 17, heads: 4, head_dim: 64 },
    MergeShape { tokens: 5, heads: 8, head_dim: 130 },
    MergeShape { tokens: 2, heads: 3, head_dim: 256 },
];

fn merge_matches_reference<T: Float>(test: &str) {
    let mut rng = rng(test);
    for dev in backends() {
        for shape in MERGE_SHAPES {
            check_merge::<T>(&dev, &mut rng, shape, 0);
            check_merge::<T>(&dev, &mut rng, shape, 1);
        }
    }
}

#[test]
fn merge_states_bf16_matches_reference() {
    merge_matches_reference::<bf16>("merge_states_bf16_matches_reference");
}

#[test]
fn merge_states_f16_matches_reference() {
    merge_matches_reference::<f16>("merge_states_f16_matches_reference");
}

#[test]
fn merge_states_f32_matches_reference() {
    merge_matches_reference::<f32>("merge_states_f32_matches_reference");
}

#[test]
fn merge_states_with_zero_tokens_launches_nothing_and_succeeds() {
    for dev in backends() {
        let shape = MergeShape { tokens: 0, heads: 4, head_dim: 64 };
        let e = dev.alloc_zeros::<f32>(0).unwrap();
        let mut o = dev.alloc_zeros::<f32>(0).unwrap();
        merge_states(&dev, shape, &e.view(), &e.view(), &e.view(), &e.view(), &mut o.view_mut(), None).unwrap();
    }
}

#[test]
fn merge_states_rejects_a_wrong_length_before_launching() {
    for dev in backends() {
        let shape = MergeShape { tokens: 2, heads: 2, head_dim: 8 };
        let o_a = dev.alloc_zeros::<bf16>(32).unwrap();
        let short = dev.alloc_zeros::<bf16>(31).unwrap();
        let lse = dev.alloc_zeros::<f32>(4).unwrap();
        let mut o = dev.alloc_zeros::<bf16>(32).unwrap();
        let err =
            merge_states(&dev, shape, &o_a.view(), &lse.view(), &short.view(), &lse.view(), &mut o.view_mut(), None)
                .unwrap_err();
        assert_eq!(err.to_string(), "o_b: expected 32 elements (tokens * heads * head_dim), got 31 elements");
    }
}

#[test]
fn merge_states_on_the_vm_is_sanitizer_clean_and_moves_exactly_its_fewest_bytes() {
    let mut rng = rng("merge_states_on_the_vm_is_sanitizer_clean_and_moves_exactly_its_fewest_bytes");
    let dev = Device::vm();
    // Every LSE finite, so every row reads both parts: the kernel must touch each input byte once.
    let shape = MergeShape { tokens: 7, heads: 3, head_dim: 128 };
    let rows = shape.tokens * shape.heads;
    let n = rows * shape.head_dim;
    let o_a: Vec<bf16> = (0..n).map(|_| bf16::from_f64(rng.random_range(-1.0..1.0))).collect();
    let lse: Vec<f32> = (0..rows).map(|_| rng.random_range(-3.0..3.0)).collect();
    let (a, b) = (dev.upload(&o_a).unwrap(), dev.upload(&o_a).unwrap());
    let (la, lb) = (dev.upload(&lse).unwrap(), dev.upload(&lse).unwrap());
    let mut o = dev.alloc_zeros::<bf16>(n).unwrap();
    let mut l = dev.alloc_zeros::<f32>(rows).unwrap();
    merge_states(&dev, shape, &a.view(), &la.view(), &b.view(), &lb.view(), &mut o.view_mut(), Some(&mut l.view_mut()))
        .unwrap();
    let report = dev.vm_last_launch().expect("a VM launch leaves a report");
    report.assert_clean().unwrap();
    let c = report.counters.expect("the sanitizer counts");
    assert_eq!(c.unique_bytes_read + c.unique_bytes_written, shape.min_bytes(2));
    assert_eq!(c.unique_bytes_written, (n * 2 + rows * 4) as u64);
    // 16-byte accesses of consecutive chunks: every O request is 4 sectors; the LSE loads add one
    // request each per warp (the 32 lanes of a warp cover 2 rows of 16 chunks: 1 sector).
    assert_eq!(c.bank_conflicts(), 0);
    assert!(c.global_load_sectors <= 4 * c.global_load_requests, "{c:?}");
}
