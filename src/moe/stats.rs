//! Router statistics: expert counts, load-balancing loss, z-loss, load-error signs
//! (`kernels/moe/stats.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::{StatsBwdParams, StatsParams};
use super::route::MAX_EXPERTS;

const THREADS: u32 = 256;
/// Tokens per block of the first pass, and the most blocks (the workspace is `blocks * (E + 1)`).
const TOKENS_PER_BLOCK: usize = 64;
const MAX_BLOCKS: usize = 1024;

/// A validated statistics problem and its workspace size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsPlan {
    /// Tokens.
    pub tokens: usize,
    /// Experts (1..=512).
    pub experts: usize,
    /// Experts per token (the ids are `[tokens, k]`).
    pub k: usize,
    /// Blocks of the first pass; a function of `tokens` alone, so the summation order (and the
    /// bits of the losses) is fixed by the shape.
    pub blocks: usize,
}

impl StatsPlan {
    /// Checks the shape.
    pub fn new(tokens: usize, experts: usize, k: usize) -> Result<StatsPlan> {
        if experts == 0 || experts > MAX_EXPERTS {
            return Err(Error::invalid("experts", format!("1..={MAX_EXPERTS}"), experts));
        }
        if k == 0 || k > experts {
            return Err(Error::invalid("k", format!("1..=experts ({experts})"), k));
        }
        if tokens.checked_mul(experts).is_none() || tokens.checked_mul(k).is_none_or(|n| n > i64::MAX as usize) {
            return Err(Error::invalid("tokens", "tokens * experts to fit", tokens));
        }
        let blocks = tokens.div_ceil(TOKENS_PER_BLOCK).clamp(1, MAX_BLOCKS);
        Ok(StatsPlan { tokens, experts, k, blocks })
    }

    /// f32 elements of the workspace: `blocks * (experts + 1)`.
    pub fn workspace_len(&self) -> usize {
        self.blocks * (self.experts + 1)
    }
}

/// Router statistics of one batch: `counts[e]` (ids equal to e), `load_sign[e]` (+1 when e has
/// fewer than the mean `tokens * k / experts`, -1 more, 0 equal: the direction of a DeepSeek-V3
/// bias update), and `losses = [aux, z]` with `aux = E * sum_e f_e P_e` (`f_e = counts[e] /
/// (tokens * k)`, `P_e` the mean softmax probability of e: Switch/GShard) and `z` the mean of
/// `logsumexp(x_t)^2` (ST-MoE). Every row of `logits` counts (a NaN row makes both losses NaN);
/// ids -1 or out of range are not counted. Two launches; bit-identical across runs.
#[allow(clippy::too_many_arguments)]
pub fn stats<T: Float>(
    dev: &Device,
    plan: &StatsPlan,
    logits: &View<'_, T>,
    ids: &View<'_, i32>,
    workspace: &mut ViewMut<'_, f32>,
    counts: &mut ViewMut<'_, i32>,
    load_sign: &mut ViewMut<'_, i32>,
    losses: &mut ViewMut<'_, f32>,
) -> Result<()> {
    if T::NAME == "f16" {
        return Err(Error::invalid("logits", "f32 or bf16 elements", "f16"));
    }
    let want = |name: &'static str, len: usize, n: usize, what: &str| {
        if len == n {
            Ok(())
        } else {
            Err(Error::invalid(name, format!("{n} elements ({what})"), format!("{len} elements")))
        }
    };
    want("logits", logits.len(), plan.tokens * plan.experts, "tokens * experts")?;
    want("ids", ids.len(), plan.tokens * plan.k, "tokens * k")?;
    want("workspace", workspace.len(), plan.workspace_len(), "plan.workspace_len()")?;
    want("counts", counts.len(), plan.experts, "experts")?;
    want("load_sign", load_sign.len(), plan.experts, "experts")?;
    want("losses", losses.len(), 2, "aux, z")?;
    let params = StatsParams {
        logits: dev.ptr("logits", logits)?.addr,
        ids: dev.ptr("ids", ids)?.addr,
        partial: dev.ptr_mut("workspace", workspace)?.addr,
        counts: dev.ptr_mut("counts", counts)?.addr,
        load_sign: dev.ptr_mut("load_sign", load_sign)?.addr,
        losses: dev.ptr_mut("losses", losses)?.addr,
        tokens: plan.tokens as u64,
        experts: plan.experts as u32,
        k: plan.k as u32,
        blocks: plan.blocks as u32,
        pad: 0,
    };
    let dims = LaunchDims { grid: [plan.blocks as u32, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_STATS, &format!("moe_stats_partial_{}", T::NAME), dims, &params)?;
    let dims = LaunchDims { grid: [1, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_STATS, "moe_stats_final", dims, &params)
}

/// The backward of the two losses of [`stats`]: `dlogits = g_aux * d aux / d logits + g_z *
/// d z / d logits` (added to `dlogits` when `accumulate`, e.g. onto [`super::route_backward`]'s
/// result), with `counts` (from [`stats`]) held constant: `d aux / d x_te = E / (T^2 k) p_te
/// (counts_e - sum_f p_tf counts_f)`, `d z / d x_te = 2 / T * lse_t * p_te`, `p_t = softmax(x_t)`.
#[allow(clippy::too_many_arguments)]
pub fn stats_backward<T: Float>(
    dev: &Device,
    plan: &StatsPlan,
    logits: &View<'_, T>,
    counts: &View<'_, i32>,
    g_aux: f32,
    g_z: f32,
    accumulate: bool,
    dlogits: &mut ViewMut<'_, f32>,
) -> Result<()> {
    if T::NAME == "f16" {
        return Err(Error::invalid("logits", "f32 or bf16 elements", "f16"));
    }
    let n = plan.tokens * plan.experts;
    for (name, len, want) in
        [("logits", logits.len(), n), ("counts", counts.len(), plan.experts), ("dlogits", dlogits.len(), n)]
    {
        if len != want {
            return Err(Error::invalid(name, format!("{want} elements"), format!("{len} elements")));
        }
    }
    if plan.tokens == 0 {
        return Ok(());
    }
    let params = StatsBwdParams {
        logits: dev.ptr("logits", logits)?.addr,
        counts: dev.ptr("counts", counts)?.addr,
        dlogits: dev.ptr_mut("dlogits", dlogits)?.addr,
        tokens: plan.tokens as u64,
        experts: plan.experts as u32,
        k: plan.k as u32,
        g_aux,
        g_z,
        accumulate: accumulate as u32,
        pad: 0,
    };
    let warps = (THREADS / 32) as usize;
    let blocks = plan.tokens.div_ceil(warps).min(1 << 16) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_STATS, &format!("moe_stats_bwd_{}", T::NAME), dims, &params)
}
