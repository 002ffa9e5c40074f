//! Weighting expert outputs back into token order (`kernels/moe/combine.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::{CombineBwdParams, CombineParams};
use super::permute::{Permutation, PermutePlan};

const THREADS: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

fn check_len(name: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{want} elements ({what})"), format!("{len} elements")))
    }
}

/// `out[t] = sum over j of weights[t, j] * y[inverse[t, j]]` for `tokens` rows of `hidden`, in j
/// order with fp32 accumulation (bit-identical across runs and schedules). `y` is
/// `[rows, hidden]` in the permuted layout; `inverse` (`[tokens, k]`, [`super::Permutation`]'s)
/// -1 contributes nothing; a position outside `0..rows` contributes nothing and is counted in
/// `status[t]` (`[tokens]`, 0 when every position was valid).
#[allow(clippy::too_many_arguments)]
pub fn combine<T: Float>(
    dev: &Device,
    tokens: usize,
    k: usize,
    hidden: usize,
    y: &View<'_, T>,
    weights: &View<'_, f32>,
    inverse: &View<'_, i32>,
    out: &mut ViewMut<'_, T>,
    status: &mut ViewMut<'_, i32>,
) -> Result<()> {
    if hidden == 0 || hidden > u32::MAX as usize {
        return Err(Error::invalid("hidden", "1..=u32::MAX", hidden));
    }
    if k == 0 || k > 32 {
        return Err(Error::invalid("k", "1..=32", k));
    }
    if !y.len().is_multiple_of(hidden) || y.len() / hidden > i32::MAX as usize {
        return Err(Error::invalid("y", format!("rows * hidden ({hidden}) elements, rows < 2^31"), y.len()));
    }
    let entries = tokens.checked_mul(k).ok_or_else(|| Error::invalid("tokens", "tokens * k to fit", tokens))?;
    check_len("weights", weights.len(), entries, "tokens * k")?;
    check_len("inverse", inverse.len(), entries, "tokens * k")?;
    check_len("out", out.len(), tokens * hidden, "tokens * hidden")?;
    check_len("status", status.len(), tokens, "tokens")?;
    if tokens == 0 {
        return Ok(());
    }
    let py = dev.ptr("y", y)?.addr;
    let po = dev.ptr_mut("out", out)?.addr;
    let wide = (16 / size_of::<T>()) as u32;
    let vec = if (hidden * size_of::<T>()).is_multiple_of(16) && py.is_multiple_of(16) && po.is_multiple_of(16) {
        wide
    } else {
        1
    };
    let params = CombineParams {
        y: py,
        weights: dev.ptr("weights", weights)?.addr,
        inverse: dev.ptr("inverse", inverse)?.addr,
        out: po,
        status: dev.ptr_mut("status", status)?.addr,
        tokens: tokens as u64,
        k: k as u32,
        hidden: hidden as u32,
        rows: (y.len() / hidden) as u32,
        vec,
    };
    // One block per token (grid-stride beyond MAX_BLOCKS), its threads over the row's chunks.
    let blocks = (tokens as u64).min(MAX_BLOCKS) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_COMBINE, &format!("moe_combine_{}", T::NAME), dims, &params)
}

/// The backward of [`combine`] in the permuted layout of `perm` (which must be the [`Permutation`]
/// the forward's `inverse` came from): `dy[r] = weights[i] * dout[t]` and `dweights[i] =
/// <dout[t], y[r]>` for each row r holding entry `i = t * k + j`; padding rows of `dy` are zero,
/// rows past the total are not written, and entries without a row (dropped, unrouted) get
/// `dweights` 0. Deterministic. 16-byte accesses when `hidden * size_of::<T>()` is a multiple of 16
/// and `dout`, `y` and `dy` are 16-byte aligned, else one element per access. The backward of
/// [`super::gather`] is [`combine`] with unit weights.
#[allow(clippy::too_many_arguments)]
pub fn combine_backward<T: Float>(
    dev: &Device,
    plan: &PermutePlan,
    hidden: usize,
    dout: &View<'_, T>,
    y: &View<'_, T>,
    weights: &View<'_, f32>,
    perm: &Permutation,
    dy: &mut ViewMut<'_, T>,
    dweights: &mut ViewMut<'_, f32>,
) -> Result<()> {
    if hidden == 0 || hidden > u32::MAX as usize {
        return Err(Error::invalid("hidden", "1..=u32::MAX", hidden));
    }
    check_len("dout", dout.len(), plan.tokens * hidden, "tokens * hidden")?;
    check_len("y", y.len(), plan.max_rows * hidden, "plan.max_rows * hidden")?;
    check_len("weights", weights.len(), plan.entries, "tokens * k")?;
    check_len("dy", dy.len(), plan.max_rows * hidden, "plan.max_rows * hidden")?;
    check_len("dweights", dweights.len(), plan.entries, "tokens * k")?;
    check_len("perm.sorted_ids", perm.sorted_ids.len(), plan.max_rows, "plan.max_rows")?;
    check_len("perm.inverse", perm.inverse.len(), plan.entries, "tokens * k")?;
    if plan.max_rows == 0 && plan.entries == 0 {
        return Ok(());
    }
    let (pg, py, pd) = (dev.ptr("dout", dout)?.addr, dev.ptr("y", y)?.addr, dev.ptr_mut("dy", dy)?.addr);
    let wide = (16 / size_of::<T>()) as u32;
    let vec = if (hidden * size_of::<T>()).is_multiple_of(16) && (pg | py | pd).is_multiple_of(16) { wide } else { 1 };
    let params = CombineBwdParams {
        dout: pg,
        y: py,
        weights: dev.ptr("weights", weights)?.addr,
        sorted_ids: dev.ptr("perm.sorted_ids", &perm.sorted_ids.view())?.addr,
        offsets: dev.ptr("perm.offsets", &perm.offsets.view())?.addr,
        inverse: dev.ptr("perm.inverse", &perm.inverse.view())?.addr,
        dy: pd,
        dweights: dev.ptr_mut("dweights", dweights)?.addr,
        entries: plan.entries as u32,
        k: plan.k as u32,
        hidden: hidden as u32,
        experts: plan.experts as u32,
        vec,
        pad: 0,
    };
    let rows_per_block = (THREADS / 32) as u64;
    let blocks = (plan.max_rows.max(plan.entries) as u64).div_ceil(rows_per_block).clamp(1, MAX_BLOCKS) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_COMBINE, &format!("moe_combine_bwd_{}", T::NAME), dims, &params)
}
