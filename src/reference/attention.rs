//! Attention references.

/// Merges two partial attention states per row (see [`crate::attention::merge_states`]).
///
/// `o_a`, `o_b` are `rows x head_dim`, `lse_a`, `lse_b` have `rows` natural-log LSEs. Returns
/// `(o, lse)`. A part with LSE `-inf` is empty and contributes nothing (its O is not read); both
/// empty gives `o = 0`, `lse = -inf`; any NaN LSE gives NaN.
pub fn merge_states(o_a: &[f64], lse_a: &[f64], o_b: &[f64], lse_b: &[f64], head_dim: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = lse_a.len();
    assert_eq!(lse_b.len(), rows);
    assert_eq!(o_a.len(), rows * head_dim);
    assert_eq!(o_b.len(), rows * head_dim);
    let mut o = vec![0.0; rows * head_dim];
    let mut lse = vec![0.0; rows];
    for r in 0..rows {
        let (la, lb) = (lse_a[r], lse_b[r]);
        let out = &mut o[r * head_dim..(r + 1) * head_dim];
        let a = &o_a[r * head_dim..(r + 1) * head_dim];
        let b = &o_b[r * head_dim..(r + 1) * head_dim];
        if la.is_nan() || lb.is_nan() {
            out.fill(f64::NAN);
            lse[r] = f64::NAN;
        } else if la == f64::NEG_INFINITY && lb == f64::NEG_INFINITY {
            lse[r] = f64::NEG_INFINITY;
        } else if lb == f64::NEG_INFINITY {
            out.copy_from_slice(a);
            lse[r] = la;
        } else if la == f64::NEG_INFINITY {
            out.copy_from_slice(b);
            lse[r] = lb;
        } else {
            // e^la + e^lb without overflow: factor out the larger exponent.
            let m = la.max(lb);
            let (wa, wb) = ((la - m).exp(), (lb - m).exp());
            for i in 0..head_dim {
                out[i] = (wa * a[i] + wb * b[i]) / (wa + wb);
            }
            lse[r] = m + (wa + wb).ln();
        }
    }
    (o, lse)
}

/// Softmax attention of one query row over `keys` (each `d` long) and `values` (each `dv` long),
/// with scale `scale`: returns `(o, lse)` with the natural-log LSE of the scaled scores. No keys
/// gives `o = 0`, `lse = -inf`.
pub fn attention_row(q: &[f64], keys: &[Vec<f64>], values: &[Vec<f64>], scale: f64) -> (Vec<f64>, f64) {
    let dv = values.first().map_or(0, |v| v.len());
    if keys.is_empty() {
        return (vec![0.0; dv], f64::NEG_INFINITY);
    }
    let scores: Vec<f64> = keys.iter().map(|k| scale * k.iter().zip(q).map(|(a, b)| a * b).sum::<f64>()).collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut o = vec![0.0; dv];
    for (w, v) in weights.iter().zip(values) {
        for (oi, vi) in o.iter_mut().zip(v) {
            *oi += w * vi / total;
        }
    }
    (o, m + total.ln())
}
