//! Decode attention over a paged KV cache, from the definition, in float64.

/// The options of a decode step as plain values (see [`crate::attention::DecodeOptions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeSpec {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` reads kv head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
    /// New tokens per sequence (the last `q_len` positions).
    pub q_len: usize,
    /// The new tokens see each other causally.
    pub causal: bool,
    /// A query at position `i` sees keys `j >= i - window_left`; -1 = unbounded.
    pub window_left: i64,
    /// Logit softcap, 0 = off.
    pub softcap: f64,
    /// Softmax scale.
    pub scale: f64,
    /// One ALiBi slope per query head.
    pub alibi_slopes: Option<Vec<f64>>,
    /// One sink logit per query head.
    pub sinks: Option<Vec<f64>>,
}

/// The cache rows (`page * page_size + offset`) of a sequence's first `len` keys, looked up in its
/// block-table row one key at a time.
pub fn gather_rows(table_row: &[i32], len: usize, page_size: usize) -> Vec<usize> {
    (0..len).map(|j| table_row[j / page_size] as usize * page_size + j % page_size).collect()
}

/// Decode attention: sequence `b`'s keys are cache rows `rows[b]` of `k_cache` / `v_cache`
/// (`[cache rows, kv_heads, head_dim]`); `q` is `[batch, q_len, heads, head_dim]`. Query token `i`
/// of a sequence of `n` keys is at position `a = n - q_len + i`; key `j` is visible when `j <= a`
/// (causal) and `j >= a - window_left` (window_left >= 0). Logit: `scale q.k`, then `softcap
/// tanh(./softcap)`, then `- slope |a - j|`; `lse = ln(sum e^logit + e^sink)`. `round` is applied
/// where a naive 16-bit implementation stores (scores after each step, probabilities, output), as
/// in [`super::attention::attention_fwd_rounded`]. Returns `(out like q, lse [batch, q_len, heads])`;
/// a row with nothing visible gets 0 and `-inf` (or the sink).
pub fn decode_attention(
    q: &[f64],
    k_cache: &[f64],
    v_cache: &[f64],
    rows: &[Vec<usize>],
    spec: &DecodeSpec,
    round: &dyn Fn(f64) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let (h_q, h_kv, d, ql) = (spec.heads, spec.kv_heads, spec.head_dim, spec.q_len);
    let batch = rows.len();
    assert_eq!(q.len(), batch * ql * h_q * d);
    let mut out = vec![0.0; q.len()];
    let mut lse = vec![f64::NEG_INFINITY; batch * ql * h_q];
    let group = h_q / h_kv;
    for (b, keys) in rows.iter().enumerate() {
        let n = keys.len() as i64;
        for i in 0..ql {
            let a = n - ql as i64 + i as i64;
            let tok = b * ql + i;
            for h in 0..h_q {
                let kvh = h / group;
                let qi = &q[(tok * h_q + h) * d..][..d];
                let mut logits = Vec::new();
                for (j, &row) in keys.iter().enumerate() {
                    let j = j as i64;
                    if (spec.causal && j > a) || (spec.window_left >= 0 && j < a - spec.window_left) {
                        continue;
                    }
                    let kj = &k_cache[(row * h_kv + kvh) * d..][..d];
                    let mut s = round(spec.scale * qi.iter().zip(kj).map(|(x, y)| x * y).sum::<f64>());
                    if spec.softcap > 0.0 {
                        s = round(spec.softcap * (s / spec.softcap).tanh());
                    }
                    if let Some(sl) = &spec.alibi_slopes {
                        s = round(s - sl[h] * (a - j).abs() as f64);
                    }
                    logits.push((row, s));
                }
                let sink = spec.sinks.as_ref().map_or(f64::NEG_INFINITY, |s| s[h]);
                let m = logits.iter().map(|&(_, s)| s).fold(sink, f64::max);
                if m == f64::NEG_INFINITY {
                    continue;
                }
                let denom: f64 = logits.iter().map(|&(_, s)| (s - m).exp()).sum::<f64>() + (sink - m).exp();
                lse[tok * h_q + h] = m + denom.ln();
                let o = &mut out[(tok * h_q + h) * d..][..d];
                for &(row, s) in &logits {
                    let p = round((s - m).exp() / denom);
                    let vj = &v_cache[(row * h_kv + kvh) * d..][..d];
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

/// The value of an fp8 e4m3 byte (OCP FP8 E4M3: bias 7, no infinities, 0x7f / 0xff are NaN).
pub fn e4m3_to_f64(b: u8) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let (e, m) = ((b >> 3) & 0xf, b & 7);
    if e == 0xf && m == 7 {
        return f64::NAN;
    }
    if e == 0 {
        sign * m as f64 * 2f64.powi(-9)
    } else {
        sign * (1.0 + m as f64 / 8.0) * 2f64.powi(e as i32 - 7)
    }
}
