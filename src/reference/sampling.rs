//! Sampling references: the exact filtered distribution of a row, its logprobs and ranks.
//!
//! Float64 throughout, except the processed logit, which is defined as the fp32 quotient
//! `fl32(x / T)` (as the kernel computes it) so that ties after temperature are the same ties.

use crate::sampling::RowParams;

/// log softmax of a row in float64 (`-inf` entries get `-inf`). `None` when the row has a NaN or
/// `+inf`, or no finite entry.
pub fn log_softmax(x: &[f64]) -> Option<Vec<f64>> {
    if x.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return None;
    }
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return None;
    }
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    Some(x.iter().map(|v| v - lse).collect())
}

/// Entropy of softmax(x) in nats (`None` as for [`log_softmax`]).
pub fn entropy(x: &[f64]) -> Option<f64> {
    let lp = log_softmax(x)?;
    Some(-lp.iter().filter(|l| l.is_finite()).map(|l| l.exp() * l).sum::<f64>())
}

/// The processed logits `fl32(x / T)` widened to f64 (the raw logits for a greedy row).
pub fn processed(x: &[f64], p: &RowParams) -> Vec<f64> {
    if p.temperature == 0.0 {
        return x.to_vec();
    }
    x.iter().map(|&v| ((v as f32) / p.temperature) as f64).collect()
}

/// The distribution a row is sampled from: probability per token after temperature, min-p, top-k
/// and top-p (see [`crate::sampling::sample`]), renormalised. Greedy rows put all mass on the
/// argmax (lowest index on ties). `None` for rows with a NaN, `+inf` or no finite logit.
pub fn filtered_distribution(x: &[f64], p: &RowParams) -> Option<Vec<f64>> {
    log_softmax(x)?;
    let v = x.len();
    if p.temperature == 0.0 {
        let mut best = 0;
        for i in 1..v {
            if x[i] > x[best] {
                best = i;
            }
        }
        let mut d = vec![0.0; v];
        d[best] = 1.0;
        return Some(d);
    }
    let z = processed(x, p);
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = z.iter().map(|zi| (zi - m).exp()).collect();
    let log_minp = if p.min_p > 0.0 { (p.min_p as f64).ln() } else { f64::NEG_INFINITY };
    // The total order: value descending, index ascending.
    let mut order: Vec<usize> = (0..v).filter(|&i| z[i] - m >= log_minp).collect();
    order.sort_by(|&a, &b| z[b].partial_cmp(&z[a]).unwrap().then(a.cmp(&b)));
    if p.top_k > 0 {
        order.truncate(p.top_k as usize);
    }
    if p.top_p < 1.0 {
        let total: f64 = order.iter().map(|&i| w[i]).sum();
        let need = p.top_p as f64 * total;
        let mut acc = 0.0;
        let mut keep = 0;
        for &i in &order {
            keep += 1;
            acc += w[i];
            if acc >= need {
                break;
            }
        }
        order.truncate(keep);
    }
    let total: f64 = order.iter().map(|&i| w[i]).sum();
    let mut d = vec![0.0; v];
    for &i in &order {
        d[i] = w[i] / total;
    }
    Some(d)
}

/// What the sampler reports for `token` of a row: (raw logprob, processed logprob, truncated
/// logprob, rank), with the greedy conventions (processed and truncated 0, rank 1).
pub fn token_logprobs(x: &[f64], p: &RowParams, token: usize) -> Option<(f64, f64, f64, usize)> {
    let raw = log_softmax(x)?;
    let rank = 1 + x.iter().filter(|&&v| v > x[token]).count();
    if p.temperature == 0.0 {
        return Some((raw[token], 0.0, 0.0, rank));
    }
    let proc = log_softmax(&processed(x, p))?;
    let d = filtered_distribution(x, p)?;
    Some((raw[token], proc[token], d[token].ln(), rank))
}

/// Majority vote per group of `answers` split by CSR `offsets`: (most frequent id, its count), ties
/// to the lowest id; an empty group gives (0, 0).
pub fn majority_vote(answers: &[u64], offsets: &[u32]) -> Vec<(u64, u32)> {
    offsets
        .windows(2)
        .map(|w| {
            let g = &answers[w[0] as usize..w[1] as usize];
            let mut best = (0u64, 0u32);
            for &a in g {
                let c = g.iter().filter(|&&b| b == a).count() as u32;
                if c > best.1 || (c == best.1 && a < best.0) {
                    best = (a, c);
                }
            }
            best
        })
        .collect()
}

/// Best-of-n per group: (index within the group of the largest reward, ties to the lowest index,
/// NaN below every number; the reward). An empty group gives (-1, NaN).
pub fn best_of_n(reward: &[f32], offsets: &[u32]) -> Vec<(i32, f32)> {
    offsets
        .windows(2)
        .map(|w| {
            let g = &reward[w[0] as usize..w[1] as usize];
            let mut best: Option<usize> = None;
            for (i, &r) in g.iter().enumerate() {
                best = match best {
                    None => Some(i),
                    Some(b) if g[b].is_nan() && !r.is_nan() => Some(i),
                    Some(b) if r > g[b] => Some(i),
                    keep => keep,
                };
            }
            best.map_or((-1, f32::NAN), |b| (b as i32, g[b]))
        })
        .collect()
}

/// Greedy chain verification of one row: `draft` (k ids) against `target` (k + 1 distributions of
/// `vocab`): (accepted count, emitted tokens padded with -1 to k + 1).
pub fn chain_speculative_greedy(draft: &[i32], target: &[f32], vocab: usize) -> (i32, Vec<i32>) {
    let k = draft.len();
    let argmax = |j: usize| {
        let p = &target[j * vocab..(j + 1) * vocab];
        (0..vocab).fold(0, |b, i| if p[i] > p[b] { i } else { b }) as i32
    };
    let mut out = vec![-1; k + 1];
    for j in 0..k {
        let a = argmax(j);
        if draft[j] != a {
            out[j] = a;
            return (j as i32, out);
        }
        out[j] = draft[j];
    }
    out[k] = argmax(k);
    (k as i32, out)
}

/// The `n` largest entries of a row by (value descending, index ascending) with their log-softmax
/// values (`None` as for [`log_softmax`]).
pub fn top_logprobs(x: &[f64], n: usize) -> Option<Vec<(usize, f64)>> {
    let lp = log_softmax(x)?;
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
    Some(order.into_iter().take(n).map(|i| (i, lp[i])).collect())
}

/// vLLM's penalties and bias on one row: for each (id, count > 0) of the history, x / r if x > 0
/// else x * r, minus frequency * count and presence; then each (id, value) bias entry added.
/// Ids outside the row are skipped.
pub fn apply_penalties(
    x: &[f64],
    history: &[(i32, u32)],
    (repetition, frequency, presence): (f64, f64, f64),
    bias: &[(i32, f64)],
) -> Vec<f64> {
    let mut y = x.to_vec();
    for &(id, c) in history {
        if id >= 0 && (id as usize) < x.len() && c > 0 {
            let v = x[id as usize];
            let v = if v > 0.0 { v / repetition } else { v * repetition };
            y[id as usize] = v - frequency * c as f64 - presence;
        }
    }
    for &(id, b) in bias {
        if id >= 0 && (id as usize) < x.len() {
            y[id as usize] += b;
        }
    }
    y
}
