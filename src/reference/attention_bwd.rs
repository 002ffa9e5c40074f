//! Attention backward reference: the gradients of [`super::attention::attention_fwd`] from the
//! chain rule, in float64.
//!
//! For one query row `i` of head `h` (keys `j` visible to it, `p_j = e^(logit_j - lse)`,
//! `p_sink = e^(sink - lse)`, `o = sum_j p_j v_j`):
//! - `dv_j += p_j do`, `dp_j = do . v_j`, `D = do . o` (equal to `sum_j p_j dp_j`);
//! - `ds_j = p_j (dp_j - D)`, the gradient of the logit;
//! - the logit is `scale x` (`x = q . k_j`), or `softcap tanh(scale x / softcap)` with
//!   `d logit / dx = scale (1 - tanh^2)`; ALiBi adds a constant;
//! - `dq += ds_j dlogit/dx k_j`, `dk_j += ds_j dlogit/dx q`; a kv head sums over its query heads;
//! - `dsink_h -= p_sink D` summed over the head's rows (the sink joins the denominator only).

use super::attention::AttnSpec;

/// Gradients of attention: `dq` like q, `dk` and `dv` like k and v, `dsinks` one per query head
/// when the spec has sinks.
#[derive(Debug, Clone, PartialEq)]
pub struct AttnGrads {
    /// Gradient of q, `[total_q, heads, head_dim]`.
    pub dq: Vec<f64>,
    /// Gradient of k, `[total_k, kv_heads, head_dim]`.
    pub dk: Vec<f64>,
    /// Gradient of v, `[total_k, kv_heads, head_dim]`.
    pub dv: Vec<f64>,
    /// Gradient of the sink logits, `[heads]`, when the spec has sinks.
    pub dsinks: Option<Vec<f64>>,
}

/// The backward of [`super::attention::attention_fwd`] for the upstream gradient `dout` (like the
/// output), in float64. Layouts and options as the forward; rows that see no key (and no sink) get
/// zero gradients.
pub fn attention_bwd(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dout: &[f64],
    cu_q: &[usize],
    cu_k: &[usize],
    spec: &AttnSpec,
) -> AttnGrads {
    attention_bwd_rounded(q, k, v, dout, cu_q, cu_k, spec, &|x| x)
}

/// [`attention_bwd`] with `round` applied where a naive backward in a 16-bit type stores an
/// intermediate: the logits (after scale, softcap and bias, each), the probabilities, the output
/// (whose dot with `dout` gives `D`), `dp`, `ds` and the three gradients. With rounding to bf16 or
/// f16 it is the baseline of the error rule (a kernel may err at most twice as much).
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_rounded(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dout: &[f64],
    cu_q: &[usize],
    cu_k: &[usize],
    spec: &AttnSpec,
    round: &dyn Fn(f64) -> f64,
) -> AttnGrads {
    let (h_q, h_kv, d) = (spec.heads, spec.kv_heads, spec.head_dim);
    assert_eq!(q.len(), dout.len());
    assert_eq!(cu_q.len(), cu_k.len());
    let mut dq = vec![0.0; q.len()];
    let mut dk = vec![0.0; k.len()];
    let mut dv = vec![0.0; v.len()];
    let mut dsinks = vec![0.0; h_q];
    let group = h_q / h_kv;
    let right = if spec.causal { 0 } else { spec.window.1 };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for b in 0..cu_q.len().saturating_sub(1) {
        let (q0, sq) = (cu_q[b], cu_q[b + 1] - cu_q[b]);
        let (k0, sk) = (cu_k[b], cu_k[b + 1] - cu_k[b]);
        for h in 0..h_q {
            let kvh = h / group;
            for i in 0..sq {
                let row = ((q0 + i) * h_q + h) * d;
                let qi = &q[row..][..d];
                let doi = &dout[row..][..d];
                let al = i as i64 + sk as i64 - sq as i64;
                // (key, logit, d logit / d (q . k))
                let mut logits = Vec::new();
                for j in 0..sk {
                    let rel = j as i64 - al;
                    if (right >= 0 && rel > right) || (spec.window.0 >= 0 && -rel > spec.window.0) {
                        continue;
                    }
                    let kj = &k[((k0 + j) * h_kv + kvh) * d..][..d];
                    let mut s = round(spec.scale * dot(qi, kj));
                    let mut dx = spec.scale;
                    if spec.softcap > 0.0 {
                        let t = (s / spec.softcap).tanh();
                        s = round(spec.softcap * t);
                        dx = spec.scale * (1.0 - t * t);
                    }
                    if let Some(slopes) = &spec.alibi_slopes {
                        s = round(s - slopes[h] * rel.abs() as f64);
                    }
                    logits.push((j, s, dx));
                }
                let sink = spec.sinks.as_ref().map_or(f64::NEG_INFINITY, |s| s[h]);
                let m = logits.iter().map(|&(_, s, _)| s).fold(sink, f64::max);
                if m == f64::NEG_INFINITY {
                    continue; // no key, no sink: the output is the constant 0
                }
                let lse = m + (logits.iter().map(|&(_, s, _)| (s - m).exp()).sum::<f64>() + (sink - m).exp()).ln();
                let p: Vec<f64> = logits.iter().map(|&(_, s, _)| round((s - lse).exp())).collect();
                let mut o = vec![0.0; d];
                for (&(j, _, _), &pj) in logits.iter().zip(&p) {
                    let vj = &v[((k0 + j) * h_kv + kvh) * d..][..d];
                    for (oi, vi) in o.iter_mut().zip(vj) {
                        *oi += pj * vi;
                    }
                }
                let o: Vec<f64> = o.into_iter().map(round).collect();
                let big_d = dot(doi, &o);
                dsinks[h] -= (sink - lse).exp() * big_d;
                for (&(j, _, dx), &pj) in logits.iter().zip(&p) {
                    let kv_row = ((k0 + j) * h_kv + kvh) * d;
                    let dp = round(dot(doi, &v[kv_row..][..d]));
                    let ds = round(pj * (dp - big_d));
                    let g = ds * dx;
                    for c in 0..d {
                        dq[row + c] += g * k[kv_row + c];
                        dk[kv_row + c] += g * qi[c];
                        dv[kv_row + c] += pj * doi[c];
                    }
                }
            }
        }
    }
    for x in dq.iter_mut().chain(dk.iter_mut()).chain(dv.iter_mut()) {
        *x = round(*x);
    }
    AttnGrads { dq, dk, dv, dsinks: spec.sinks.as_ref().map(|_| dsinks.into_iter().map(round).collect()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::attention::attention_fwd;

    /// A small deterministic pseudo-random sequence in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    /// Loss = sum(dout * out): its gradient is the backward of `dout`.
    fn loss(q: &[f64], k: &[f64], v: &[f64], dout: &[f64], cu_q: &[usize], cu_k: &[usize], spec: &AttnSpec) -> f64 {
        let (out, _) = attention_fwd(q, k, v, cu_q, cu_k, spec);
        out.iter().zip(dout).map(|(a, b)| a * b).sum()
    }

    /// Central differences of the loss against every input element and sink.
    fn check(cu_q: &[usize], cu_k: &[usize], spec: &AttnSpec, seed: u64) {
        let (tq, tk) = (*cu_q.last().unwrap(), *cu_k.last().unwrap());
        let (hq, hk, d) = (spec.heads, spec.kv_heads, spec.head_dim);
        let q = values(tq * hq * d, seed);
        let k = values(tk * hk * d, seed + 1);
        let v = values(tk * hk * d, seed + 2);
        let dout = values(tq * hq * d, seed + 3);
        let g = attention_bwd(&q, &k, &v, &dout, cu_q, cu_k, spec);
        let eps = 1e-6;
        let fd = |f: &dyn Fn(f64) -> f64| (f(eps) - f(-eps)) / (2.0 * eps);
        let close = |what: &str, i: usize, got: f64, want: f64| {
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{what}[{i}]: analytic {got}, finite difference {want} ({spec:?})"
            );
        };
        for i in 0..q.len() {
            let want = fd(&|e| {
                let mut x = q.clone();
                x[i] += e;
                loss(&x, &k, &v, &dout, cu_q, cu_k, spec)
            });
            close("dq", i, g.dq[i], want);
        }
        for i in 0..k.len() {
            let want = fd(&|e| {
                let mut x = k.clone();
                x[i] += e;
                loss(&q, &x, &v, &dout, cu_q, cu_k, spec)
            });
            close("dk", i, g.dk[i], want);
            let want = fd(&|e| {
                let mut x = v.clone();
                x[i] += e;
                loss(&q, &k, &x, &dout, cu_q, cu_k, spec)
            });
            close("dv", i, g.dv[i], want);
        }
        if let Some(sinks) = &spec.sinks {
            for h in 0..hq {
                let want = fd(&|e| {
                    let mut s = spec.clone();
                    let mut x = sinks.clone();
                    x[h] += e;
                    s.sinks = Some(x);
                    loss(&q, &k, &v, &dout, cu_q, cu_k, &s)
                });
                close("dsinks", h, g.dsinks.as_ref().unwrap()[h], want);
            }
        }
    }

    fn spec(heads: usize, kv_heads: usize, d: usize) -> AttnSpec {
        AttnSpec {
            heads,
            kv_heads,
            head_dim: d,
            causal: false,
            window: (-1, -1),
            softcap: 0.0,
            scale: 0.7,
            alibi_slopes: None,
            sinks: None,
        }
    }

    #[test]
    fn plain_backward_matches_finite_differences() {
        check(&[0, 3], &[0, 4], &spec(1, 1, 3), 1);
    }

    #[test]
    fn every_option_alone_matches_finite_differences() {
        let causal = AttnSpec { causal: true, ..spec(1, 1, 2) };
        check(&[0, 4], &[0, 3], &causal, 2); // first row sees no key: zero gradients
        check(&[0, 2, 5], &[0, 4, 6], &AttnSpec { window: (1, 0), ..spec(2, 1, 2) }, 3);
        check(&[0, 3], &[0, 3], &AttnSpec { softcap: 1.5, scale: 2.0, ..spec(1, 1, 3) }, 4);
        check(&[0, 3], &[0, 4], &AttnSpec { alibi_slopes: Some(vec![0.5, 0.25]), ..spec(2, 2, 2) }, 5);
        check(&[0, 3], &[0, 2], &AttnSpec { sinks: Some(vec![0.3, -1.0]), ..spec(2, 1, 2) }, 6);
    }

    #[test]
    fn every_option_combined_with_gqa_matches_finite_differences() {
        let all = AttnSpec {
            causal: true,
            window: (2, 0),
            softcap: 2.0,
            alibi_slopes: Some(vec![0.5, 0.25, 0.125, 0.0625]),
            sinks: Some(vec![0.1, -0.4, 0.9, 0.0]),
            ..spec(4, 2, 2)
        };
        // Two sequences, one with more queries than keys (rows with the sink alone).
        check(&[0, 3, 7], &[0, 4, 6], &all, 7);
    }
}
