//! Mixture-of-experts references.

use crate::moe::{GroupScore, RouteOptions, RouteStatus, Scoring};

/// The result of [`route`] for all tokens, plus what a test needs to judge near-ties.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// `[tokens, k]` expert ids, -1 for a token that is not routed.
    pub ids: Vec<i32>,
    /// `[tokens, k]` weights, 0 for a token that is not routed.
    pub weights: Vec<f64>,
    /// `[tokens]` statuses.
    pub status: Vec<RouteStatus>,
    /// `[tokens, experts]` selection scores (score + bias); NaN for a token that is not routed.
    pub sel: Vec<f64>,
    /// `[tokens, n_group]` group scores (empty rows when `n_group == 1`).
    pub group_scores: Vec<f64>,
    /// `[tokens]` the smallest relative gap between two distinct values whose order decided the
    /// result (the kept groups' boundary, the first k + 1 selection scores of the kept experts);
    /// infinite when no decision compared distinct values. Tests redraw rows with a tiny margin,
    /// which float32 may order either way.
    pub margin: Vec<f64>,
}

/// The smallest relative gap between adjacent distinct values of `sorted` (descending).
fn min_gap(sorted: &[f64]) -> f64 {
    sorted
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| (w[0] - w[1]) / w[0].abs().max(w[1].abs()))
        .fold(f64::INFINITY, f64::min)
}

/// Routes `tokens = logits.len() / experts` tokens by the rule of [`crate::moe::route`]:
/// `score = softmax(x)` or `sigmoid(x)`, `sel = score + bias`; with groups, keep the `topk_group`
/// groups of highest group score (max, or sum of the top two `sel`); take the `k` highest `sel`
/// (ties to the lower id); `w = score` of each, optionally divided by their sum, times `scale`.
pub fn route(logits: &[f64], experts: usize, bias: Option<&[f64]>, o: &RouteOptions) -> Routed {
    let tokens = logits.len() / experts;
    let k = o.k;
    let mut out = Routed {
        ids: vec![-1; tokens * k],
        weights: vec![0.0; tokens * k],
        status: vec![RouteStatus::Ok; tokens],
        sel: vec![f64::NAN; tokens * experts],
        group_scores: vec![f64::NAN; if o.n_group > 1 { tokens * o.n_group } else { 0 }],
        margin: vec![f64::INFINITY; tokens],
    };
    let bias_ok = bias.is_none_or(|b| b.iter().all(|v| v.is_finite()));
    for t in 0..tokens {
        let x = &logits[t * experts..(t + 1) * experts];
        if !bias_ok || x.iter().any(|v| v.is_nan()) {
            out.status[t] = RouteStatus::NanLogit;
            continue;
        }
        let score: Vec<f64> = match o.scoring {
            Scoring::Softmax => {
                let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if m.is_infinite() {
                    out.status[t] = RouteStatus::SoftmaxUndefined;
                    continue;
                }
                let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.iter().map(|v| v / s).collect()
            }
            Scoring::Sigmoid => x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        };
        let sel: Vec<f64> = (0..experts).map(|e| score[e] + bias.map_or(0.0, |b| b[e])).collect();
        out.sel[t * experts..(t + 1) * experts].copy_from_slice(&sel);

        let mut allowed = vec![true; experts];
        if o.n_group > 1 {
            let gs = experts / o.n_group;
            let gscore: Vec<f64> = (0..o.n_group)
                .map(|g| {
                    let mut v = sel[g * gs..(g + 1) * gs].to_vec();
                    v.sort_by(|a, b| b.total_cmp(a));
                    match o.group_score {
                        GroupScore::Top2Sum if gs > 1 => v[0] + v[1],
                        _ => v[0],
                    }
                })
                .collect();
            out.group_scores[t * o.n_group..(t + 1) * o.n_group].copy_from_slice(&gscore);
            let mut order: Vec<usize> = (0..o.n_group).collect();
            // Descending score, ties to the lower group (the sort is stable).
            order.sort_by(|&a, &b| gscore[b].total_cmp(&gscore[a]));
            for (e, a) in allowed.iter_mut().enumerate() {
                *a = order[..o.topk_group].contains(&(e / gs));
            }
            let n = (o.topk_group + 1).min(o.n_group);
            let boundary: Vec<f64> = order[o.topk_group - 1..n].iter().map(|&g| gscore[g]).collect();
            out.margin[t] = min_gap(&boundary);
        }
        let mut order: Vec<usize> = (0..experts).filter(|&e| allowed[e]).collect();
        order.sort_by(|&a, &b| sel[b].total_cmp(&sel[a]));
        let chosen = &order[..k];
        let top: Vec<f64> = order.iter().take(k + 1).map(|&e| sel[e]).collect();
        out.margin[t] = out.margin[t].min(min_gap(&top));
        let mut w: Vec<f64> = chosen.iter().map(|&e| score[e]).collect();
        if o.renormalize {
            let s: f64 = w.iter().sum();
            if s == 0.0 {
                out.status[t] = RouteStatus::ZeroWeightSum;
                continue;
            }
            w.iter_mut().for_each(|v| *v /= s);
        }
        for j in 0..k {
            out.ids[t * k + j] = chosen[j] as i32;
            out.weights[t * k + j] = w[j] * o.scale as f64;
        }
    }
    out
}

/// The outputs of [`permute`], as plain vectors (see [`crate::moe::Permutation`] for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permuted {
    /// Entries routed to each expert, before capacity.
    pub counts: Vec<i32>,
    /// First row of each expert, plus the total.
    pub offsets: Vec<i32>,
    /// Entry of each of `max_rows` rows, `entries` for padding.
    pub sorted_ids: Vec<i32>,
    /// Expert of each of `max_blocks` blocks, -1 past the total.
    pub block_expert: Vec<i32>,
    /// Row of each entry, -1 when dropped, unrouted or bad.
    pub inverse: Vec<i32>,
    /// Kept rows per rank.
    pub rank_counts: Vec<i32>,
    /// First row of each rank, plus the total.
    pub rank_offsets: Vec<i32>,
    /// Ids outside `0..experts` other than -1.
    pub bad: i32,
}

/// Groups the entries of `ids` by expert: walk the entries in order (token, then slot) and give
/// each valid one the next row of its expert while the expert has fewer than `capacity`; each
/// expert's rows start where the previous expert's, padded up to `block_size`, end.
pub fn permute(
    ids: &[i32],
    experts: usize,
    block_size: usize,
    capacity: Option<usize>,
    experts_per_rank: usize,
    max_rows: usize,
) -> Permuted {
    let entries = ids.len();
    let valid = |e: i32| e >= 0 && (e as usize) < experts;
    let mut counts = vec![0i32; experts];
    let mut bad = 0;
    for &e in ids {
        if valid(e) {
            counts[e as usize] += 1;
        } else if e != -1 {
            bad += 1;
        }
    }
    let cap = capacity.unwrap_or(usize::MAX);
    let kept: Vec<usize> = counts.iter().map(|&c| (c as usize).min(cap)).collect();
    let mut offsets = vec![0i32; experts + 1];
    for e in 0..experts {
        offsets[e + 1] = offsets[e] + kept[e].div_ceil(block_size) as i32 * block_size as i32;
    }
    let total = offsets[experts] as usize;
    let mut sorted_ids = vec![entries as i32; max_rows];
    let mut inverse = vec![-1i32; entries];
    let mut next = vec![0usize; experts];
    for (i, &e) in ids.iter().enumerate() {
        if valid(e) && next[e as usize] < cap {
            let row = offsets[e as usize] as usize + next[e as usize];
            sorted_ids[row] = i as i32;
            inverse[i] = row as i32;
            next[e as usize] += 1;
        }
    }
    let max_blocks = max_rows.div_ceil(block_size);
    let block_expert = (0..max_blocks)
        .map(|b| {
            if b * block_size >= total {
                -1
            } else {
                (0..experts).find(|&e| (offsets[e + 1] as usize) > b * block_size).map_or(-1, |e| e as i32)
            }
        })
        .collect();
    let ranks = experts / experts_per_rank;
    let rank_counts = (0..ranks)
        .map(|r| kept[r * experts_per_rank..(r + 1) * experts_per_rank].iter().sum::<usize>() as i32)
        .collect();
    let rank_offsets = (0..=ranks).map(|r| offsets[r * experts_per_rank]).collect();
    Permuted { counts, offsets, sorted_ids, block_expert, inverse, rank_counts, rank_offsets, bad }
}

/// [`permute`] with the drop-by-weight policy: an expert with more than `capacity` entries keeps
/// the `capacity` with the largest weight (weights in `f32::total_cmp` order; equal weights: the
/// lower entry stays); the kept ones take rows in (token, slot) order. `counts` stay the counts
/// before capacity.
pub fn permute_by_weight(
    ids: &[i32],
    weights: &[f32],
    experts: usize,
    block_size: usize,
    capacity: usize,
    experts_per_rank: usize,
    max_rows: usize,
) -> Permuted {
    let mut kept_ids = ids.to_vec();
    for e in 0..experts as i32 {
        let mut mine: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == e).collect();
        // Best first: larger weight, then lower entry.
        mine.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        for &i in mine.iter().skip(capacity) {
            kept_ids[i] = -1;
        }
    }
    let mut out = permute(&kept_ids, experts, block_size, Some(capacity), experts_per_rank, max_rows);
    for (e, c) in out.counts.iter_mut().enumerate() {
        *c = ids.iter().filter(|&&x| x == e as i32).count() as i32;
    }
    out
}

/// `out[t] = sum_j weights[t, j] * y[inverse[t, j]]` over `hidden` columns, skipping -1 and
/// positions outside `y`'s rows.
pub fn combine(y: &[f64], hidden: usize, weights: &[f64], inverse: &[i32], k: usize) -> Vec<f64> {
    let tokens = inverse.len() / k;
    let rows = y.len() / hidden;
    let mut out = vec![0.0; tokens * hidden];
    for t in 0..tokens {
        for j in 0..k {
            let p = inverse[t * k + j];
            if p < 0 || p as usize >= rows {
                continue;
            }
            for h in 0..hidden {
                out[t * hidden + h] += weights[t * k + j] * y[p as usize * hidden + h];
            }
        }
    }
    out
}

/// Router statistics (see [`crate::moe::stats`]): `(counts, load_sign, aux, z)`.
pub fn stats(logits: &[f64], experts: usize, ids: &[i32], k: usize) -> (Vec<i32>, Vec<i32>, f64, f64) {
    let tokens = logits.len() / experts;
    let mut counts = vec![0i32; experts];
    for &e in ids {
        if e >= 0 && (e as usize) < experts {
            counts[e as usize] += 1;
        }
    }
    let mut p = vec![0.0; experts];
    let mut z = 0.0;
    for t in 0..tokens {
        let x = &logits[t * experts..(t + 1) * experts];
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        for e in 0..experts {
            p[e] += (x[e] - m).exp() / s / tokens as f64;
        }
        let lse = m + s.ln();
        z += lse * lse / tokens as f64;
    }
    let n = (tokens * k) as f64;
    let aux = experts as f64 * (0..experts).map(|e| counts[e] as f64 / n * p[e]).sum::<f64>();
    let mean = n / experts as f64;
    let sign = counts
        .iter()
        .map(|&c| {
            if (c as f64) < mean {
                1
            } else if (c as f64) > mean {
                -1
            } else {
                0
            }
        })
        .collect();
    (counts, sign, aux, z)
}

/// The backward of [`combine`] in the permuted layout: for each entry `i = t * k + j` with row
/// `r = inverse[i] >= 0`, `dy[r] = weights[i] * dout[t]` and `dweights[i] = <dout[t], y[r]>`;
/// other rows of `dy` are zero, other entries' `dweights` 0. Returns `(dy, dweights)`.
pub fn combine_backward(
    dout: &[f64],
    y: &[f64],
    hidden: usize,
    weights: &[f64],
    inverse: &[i32],
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut dy = vec![0.0; y.len()];
    let mut dw = vec![0.0; inverse.len()];
    for (i, &r) in inverse.iter().enumerate() {
        if r < 0 {
            continue;
        }
        let (t, r) = (i / k, r as usize);
        for h in 0..hidden {
            dy[r * hidden + h] = weights[i] * dout[t * hidden + h];
            dw[i] += dout[t * hidden + h] * y[r * hidden + h];
        }
    }
    (dy, dw)
}

/// The backward of [`route`] with the selection held fixed: `dlogits` (`[tokens, experts]`) from
/// `dweights` (`[tokens, k]`) and the forward's `ids` and `status`.
pub fn route_backward(
    logits: &[f64],
    experts: usize,
    o: &RouteOptions,
    ids: &[i32],
    status: &[RouteStatus],
    dweights: &[f64],
) -> Vec<f64> {
    let tokens = logits.len() / experts;
    let k = o.k;
    let mut dx = vec![0.0; logits.len()];
    for t in 0..tokens {
        if status[t] != RouteStatus::Ok {
            continue;
        }
        let x = &logits[t * experts..(t + 1) * experts];
        let s: Vec<f64> = match o.scoring {
            Scoring::Softmax => {
                let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = x.iter().map(|v| (v - m).exp()).sum();
                x.iter().map(|v| (v - m).exp() / sum).collect()
            }
            Scoring::Sigmoid => x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        };
        let id: Vec<usize> = ids[t * k..(t + 1) * k].iter().map(|&e| e as usize).collect();
        let dw = &dweights[t * k..(t + 1) * k];
        let scale = o.scale as f64;
        let mut ds = vec![0.0; experts];
        if o.renormalize {
            let total: f64 = id.iter().map(|&e| s[e]).sum();
            let dot: f64 = (0..k).map(|j| dw[j] * s[id[j]]).sum();
            for j in 0..k {
                ds[id[j]] = scale * (dw[j] - dot / total) / total;
            }
        } else {
            for j in 0..k {
                ds[id[j]] = scale * dw[j];
            }
        }
        let dot: f64 = (0..experts).map(|e| ds[e] * s[e]).sum();
        for e in 0..experts {
            dx[t * experts + e] = match o.scoring {
                Scoring::Softmax => s[e] * (ds[e] - dot),
                Scoring::Sigmoid => ds[e] * s[e] * (1.0 - s[e]),
            };
        }
    }
    dx
}

/// `g_aux * d aux / d logits + g_z * d z / d logits` for the losses of [`stats`], the counts held
/// constant.
pub fn stats_backward(logits: &[f64], experts: usize, counts: &[i32], k: usize, g_aux: f64, g_z: f64) -> Vec<f64> {
    let tokens = logits.len() / experts;
    let tf = tokens as f64;
    let mut dx = vec![0.0; logits.len()];
    for t in 0..tokens {
        let x = &logits[t * experts..(t + 1) * experts];
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        let p: Vec<f64> = x.iter().map(|v| (v - m).exp() / s).collect();
        let lse = m + s.ln();
        let pc: f64 = (0..experts).map(|e| p[e] * counts[e] as f64).sum();
        for e in 0..experts {
            let daux = experts as f64 / (tf * tf * k as f64) * p[e] * (counts[e] as f64 - pc);
            let dz = 2.0 / tf * lse * p[e];
            dx[t * experts + e] = g_aux * daux + g_z * dz;
        }
    }
    dx
}
