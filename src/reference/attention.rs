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

/// The options of an attention forward, as plain values (see
/// [`crate::attention::AttnOptions`] for their meaning).
#[derive(Debug, Clone, PartialEq)]
pub struct AttnSpec {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` reads kv head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
    /// Causal, aligned bottom-right.
    pub causal: bool,
    /// Sliding window `(left, right)`, `-1` unbounded.
    pub window: (i64, i64),
    /// Logit softcap, 0 = off.
    pub softcap: f64,
    /// Softmax scale.
    pub scale: f64,
    /// One ALiBi slope per query head.
    pub alibi_slopes: Option<Vec<f64>>,
    /// One sink logit per query head.
    pub sinks: Option<Vec<f64>>,
}

/// Attention forward from the definition, in float64. `q` is `[total_q, heads, head_dim]`, `k` and
/// `v` are `[total_k, kv_heads, head_dim]`, contiguous; sequence `b` has query rows
/// `cu_q[b]..cu_q[b + 1]` and key rows `cu_k[b]..cu_k[b + 1]`. Returns `(out, lse)` with `out` like
/// `q` and `lse` `[heads, total_q]` (natural log).
///
/// For query row `i` and key `j` of a sequence with `sq` queries and `sk` keys, `i' = i + sk - sq`;
/// key `j` is visible when `j <= i'` (causal), `j >= i' - left` (left >= 0) and `j <= i' + right`
/// (right >= 0). The logit is `scale q.k`, then `softcap tanh(logit / softcap)` when softcap > 0,
/// then `- slope |i' - j|` with ALiBi. `lse = ln(sum_visible e^logit + e^sink)`, `out = sum_visible
/// e^(logit - lse) v`. No visible key: `out = 0`, `lse = -inf` (or the sink).
pub fn attention_fwd(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    cu_q: &[usize],
    cu_k: &[usize],
    spec: &AttnSpec,
) -> (Vec<f64>, Vec<f64>) {
    attention_fwd_rounded(q, k, v, cu_q, cu_k, spec, &|x| x)
}

/// [`attention_fwd`] with `round` applied where a naive implementation in a 16-bit type stores an
/// intermediate: the scores (after the scale, the softcap and the bias, each), the normalised
/// probabilities and the output. With `round` = rounding to bf16 or f16 this is the baseline of
/// FlashAttention's error rule (a kernel's error may be at most twice this one's). The LSE is not
/// rounded.
pub fn attention_fwd_rounded(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    cu_q: &[usize],
    cu_k: &[usize],
    spec: &AttnSpec,
    round: &dyn Fn(f64) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let (h_q, h_kv, d) = (spec.heads, spec.kv_heads, spec.head_dim);
    let total_q = *cu_q.last().unwrap_or(&0);
    assert_eq!(q.len(), total_q * h_q * d);
    assert_eq!(cu_q.len(), cu_k.len());
    let mut out = vec![0.0; q.len()];
    let mut lse = vec![f64::NEG_INFINITY; h_q * total_q];
    let group = h_q / h_kv;
    let right = if spec.causal { 0 } else { spec.window.1 };
    for b in 0..cu_q.len().saturating_sub(1) {
        let (q0, sq) = (cu_q[b], cu_q[b + 1] - cu_q[b]);
        let (k0, sk) = (cu_k[b], cu_k[b + 1] - cu_k[b]);
        for h in 0..h_q {
            let kvh = h / group;
            for i in 0..sq {
                let qi = &q[((q0 + i) * h_q + h) * d..][..d];
                let al = i as i64 + sk as i64 - sq as i64;
                let mut logits = Vec::new();
                for j in 0..sk {
                    let rel = j as i64 - al;
                    if (right >= 0 && rel > right) || (spec.window.0 >= 0 && -rel > spec.window.0) {
                        continue;
                    }
                    let kj = &k[((k0 + j) * h_kv + kvh) * d..][..d];
                    let mut s = round(spec.scale * qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>());
                    if spec.softcap > 0.0 {
                        s = round(spec.softcap * (s / spec.softcap).tanh());
                    }
                    if let Some(slopes) = &spec.alibi_slopes {
                        s = round(s - slopes[h] * rel.abs() as f64);
                    }
                    logits.push((j, s));
                }
                let sink = spec.sinks.as_ref().map_or(f64::NEG_INFINITY, |s| s[h]);
                let m = logits.iter().map(|&(_, s)| s).fold(sink, f64::max);
                if m == f64::NEG_INFINITY {
                    continue; // out stays 0, lse -inf
                }
                let denom: f64 = logits.iter().map(|&(_, s)| (s - m).exp()).sum::<f64>() + (sink - m).exp();
                lse[h * total_q + q0 + i] = m + denom.ln();
                let o = &mut out[((q0 + i) * h_q + h) * d..][..d];
                for &(j, s) in &logits {
                    let p = round((s - m).exp() / denom);
                    let vj = &v[((k0 + j) * h_kv + kvh) * d..][..d];
                    for (oi, vi) in o.iter_mut().zip(vj) {
                        *oi += p * vi;
                    }
                }
                for oi in o.iter_mut() {
                    *oi = round(*oi);
                }
            }
        }
    }
    (out, lse)
}
