//! Grouping routed tokens by expert and gathering their activations (`kernels/moe/permute.cu`).

use crate::device::{kernels, Buffer, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::{AlignParams, AlignWeightParams, GatherParams};
use super::route::MAX_EXPERTS;

const ALIGN_THREADS: u32 = 256;
/// Entries per block of the two align launches: a multiple of `ALIGN_THREADS`. Larger chunks mean a
/// smaller histogram workspace (`chunks * (experts + 1)` i32, read by every block of the second
/// launch) but fewer blocks.
const ALIGN_CHUNK: usize = 2048;
const GATHER_THREADS: u32 = 256;
const GATHER_ROWS_PER_BLOCK: u64 = (GATHER_THREADS / 32) as u64;
const MAX_BLOCKS: u64 = 1 << 16;

/// The options of [`permute`]. The default: no padding, no capacity, one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermuteOptions {
    /// Each expert's rows padded up to a multiple of this (a power of two; 1 = no padding), for a
    /// grouped GEMM that takes whole blocks (vLLM's `moe_align_block_size`).
    pub block_size: usize,
    /// Most rows kept per expert; `None` keeps all. Drop policy: token order with [`permute`], i.e.
    /// an expert keeps its entries with the lowest (token, slot); by weight with
    /// [`permute_by_weight`]. Dropped entries get inverse -1 and contribute nothing to combine.
    pub capacity: Option<usize>,
    /// Experts per expert-parallel rank (must divide the expert count); `None` = one rank.
    pub experts_per_rank: Option<usize>,
}

impl Default for PermuteOptions {
    fn default() -> Self {
        PermuteOptions { block_size: 1, capacity: None, experts_per_rank: None }
    }
}

impl PermuteOptions {
    /// Sets the block size.
    pub fn block_size(mut self, b: usize) -> Self {
        self.block_size = b;
        self
    }
    /// Sets the capacity per expert.
    pub fn capacity(mut self, c: usize) -> Self {
        self.capacity = Some(c);
        self
    }
    /// Sets the experts per rank.
    pub fn experts_per_rank(mut self, n: usize) -> Self {
        self.experts_per_rank = Some(n);
        self
    }
}

/// A validated permutation problem and the size of every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermutePlan {
    /// Tokens.
    pub tokens: usize,
    /// Experts per token (the ids are `[tokens, k]`).
    pub k: usize,
    /// Experts.
    pub experts: usize,
    /// The options, checked.
    pub options: PermuteOptions,
    /// Entries `tokens * k`; also the sentinel of padding rows in `sorted_ids`.
    pub entries: usize,
    /// Rows the permuted layout can need: `min(entries, experts * capacity)` plus
    /// `experts * (block_size - 1)` of padding.
    pub max_rows: usize,
    /// Blocks of `block_size` rows: `max_rows / block_size` rounded up.
    pub max_blocks: usize,
    /// Expert-parallel ranks.
    pub ranks: usize,
    /// Blocks of the align launches: chunks of 2048 entries (at least one).
    pub chunks: usize,
}

impl PermutePlan {
    /// Checks the shape and options.
    pub fn new(tokens: usize, k: usize, experts: usize, options: PermuteOptions) -> Result<PermutePlan> {
        if experts == 0 || experts > MAX_EXPERTS {
            return Err(Error::invalid("experts", format!("1..={MAX_EXPERTS}"), experts));
        }
        if k == 0 || k > experts {
            return Err(Error::invalid("k", format!("1..=experts ({experts})"), k));
        }
        let b = options.block_size;
        if b == 0 || !b.is_power_of_two() || b > 1 << 16 {
            return Err(Error::invalid("options.block_size", "a power of two up to 65536", b));
        }
        if options.capacity == Some(0) {
            return Err(Error::invalid("options.capacity", "at least 1 (or None)", 0));
        }
        let epr = options.experts_per_rank.unwrap_or(experts);
        if epr == 0 || !experts.is_multiple_of(epr) {
            return Err(Error::invalid("options.experts_per_rank", format!("a divisor of experts ({experts})"), epr));
        }
        let too_big = || Error::invalid("tokens", "tokens * k plus padding to fit in i32", tokens);
        let entries = tokens.checked_mul(k).filter(|&n| n < i32::MAX as usize).ok_or_else(too_big)?;
        let kept = match options.capacity {
            Some(c) => entries.min(experts.saturating_mul(c)),
            None => entries,
        };
        let max_rows = kept.checked_add(experts * (b - 1)).filter(|&n| n <= i32::MAX as usize).ok_or_else(too_big)?;
        Ok(PermutePlan {
            tokens,
            k,
            experts,
            options,
            entries,
            max_rows,
            max_blocks: max_rows.div_ceil(b),
            ranks: experts / epr,
            chunks: entries.div_ceil(ALIGN_CHUNK).max(1),
        })
    }

    /// Allocates every output of [`permute`] on `dev`.
    pub fn alloc(&self, dev: &Device) -> Result<Permutation> {
        Ok(Permutation {
            counts: dev.alloc_zeros(self.experts)?,
            offsets: dev.alloc_zeros(self.experts + 1)?,
            sorted_ids: dev.alloc_zeros(self.max_rows)?,
            block_expert: dev.alloc_zeros(self.max_blocks)?,
            inverse: dev.alloc_zeros(self.entries)?,
            rank_counts: dev.alloc_zeros(self.ranks)?,
            rank_offsets: dev.alloc_zeros(self.ranks + 1)?,
            status: dev.alloc_zeros(1)?,
            workspace: dev.alloc_zeros(self.workspace_len())?,
        })
    }

    /// Elements of [`Permutation::workspace`]: one histogram of `experts + 1` counters per chunk,
    /// then 3 per expert for [`permute_by_weight`]'s thresholds.
    pub fn workspace_len(&self) -> usize {
        self.hist_len() + 3 * self.experts
    }

    fn hist_len(&self) -> usize {
        self.chunks * (self.experts + 1)
    }

    /// Bytes the align pass must move at least: the ids read, every output written once.
    pub fn align_min_bytes(&self) -> u64 {
        4 * (2 * self.entries + self.max_rows + self.max_blocks + 2 * self.experts + 2 * self.ranks + 2) as u64
    }

    /// Bytes the two align launches move beyond [`Self::align_min_bytes`] by design: the ids read a
    /// second time and the histogram workspace written once and read.
    pub fn align_extra_bytes(&self) -> u64 {
        4 * (self.entries + 2 * self.hist_len()) as u64
    }
}

/// The outputs of [`permute`], in the layout vLLM's `moe_align_block_size` and Megatron's permute
/// use. All i32.
pub struct Permutation {
    /// `[experts]` entries routed to each expert, before capacity.
    pub counts: Buffer<i32>,
    /// `[experts + 1]` first row of each expert in the permuted layout (padded);
    /// `offsets[experts]` is the total number of rows.
    pub offsets: Buffer<i32>,
    /// `[max_rows]` the entry (`token * k + slot`) of each row; `entries` (the sentinel) for
    /// padding rows and rows past the total.
    pub sorted_ids: Buffer<i32>,
    /// `[max_blocks]` the expert of each block of `block_size` rows; -1 past the total.
    pub block_expert: Buffer<i32>,
    /// `[entries]` the row of each entry; -1 when dropped by capacity, unrouted (id -1) or bad.
    pub inverse: Buffer<i32>,
    /// `[ranks]` rows kept per rank, without padding.
    pub rank_counts: Buffer<i32>,
    /// `[ranks + 1]` first row of each rank's slice of the permuted layout.
    pub rank_offsets: Buffer<i32>,
    /// `[1]` ids outside `0..experts` other than -1 (treated as unrouted).
    pub status: Buffer<i32>,
    /// `[plan.workspace_len()]` scratch of the two launches (per-chunk histograms); no meaning
    /// after [`permute`] returns.
    pub workspace: Buffer<i32>,
}

fn check_len(name: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{want} elements ({what})"), format!("{len} elements")))
    }
}

/// Groups the entries of `ids` (`[tokens, k]`, as [`super::route`] writes them; -1 = unrouted)
/// by expert, stably (by token, then slot), into `out`. Two launches over `plan.chunks` blocks (a
/// histogram per chunk, then every block derives the offsets from all histograms and places its
/// chunk); no atomic's order reaches the layout, so it is the same bits on every run.
pub fn permute(dev: &Device, plan: &PermutePlan, ids: &View<'_, i32>, out: &mut Permutation) -> Result<()> {
    permute_count(dev, plan, ids, out)?;
    permute_scatter(dev, plan, ids, out)
}

/// The first of [`permute`]'s two launches on its own: each chunk's histogram into
/// `out.workspace`. Exposed so a profile can count each launch; [`permute_scatter`] must follow
/// with the same `ids` and `out`.
pub fn permute_count(dev: &Device, plan: &PermutePlan, ids: &View<'_, i32>, out: &mut Permutation) -> Result<()> {
    align(dev, plan, ids, out, None, "moe_permute_count")
}

/// The second of [`permute`]'s two launches on its own: every output from the histograms
/// [`permute_count`] left in `out.workspace` for the same `ids`.
pub fn permute_scatter(dev: &Device, plan: &PermutePlan, ids: &View<'_, i32>, out: &mut Permutation) -> Result<()> {
    align(dev, plan, ids, out, None, "moe_permute_scatter")
}

/// [`permute`] with the other documented drop policy, by weight: an expert over capacity keeps
/// its `capacity` entries of largest `weights` (`[tokens, k]`, as [`super::route`] writes them;
/// equal weights: the lower entry `token * k + slot` stays; weights ordered by their bits as
/// floats, so NaN is deterministic too). The kept entries keep (token, slot) order in their
/// expert's rows; `counts` are still before capacity. Without a capacity this is [`permute`].
/// Three launches: a threshold per expert (one block each, radix select over the weight bits),
/// then the two of [`permute`] with entries below it seen as unrouted.
pub fn permute_by_weight(
    dev: &Device,
    plan: &PermutePlan,
    ids: &View<'_, i32>,
    weights: &View<'_, f32>,
    out: &mut Permutation,
) -> Result<()> {
    check_len("weights", weights.len(), plan.entries, "tokens * k")?;
    if plan.options.capacity.is_none() {
        return permute(dev, plan, ids, out);
    }
    check_len("out.workspace", out.workspace.len(), plan.workspace_len(), "plan.workspace_len()")?;
    let a = align_params(dev, plan, ids, out, None)?;
    let hist = plan.hist_len();
    let params = AlignWeightParams {
        a,
        weights: dev.ptr("weights", weights)?.addr,
        select: dev.ptr_mut("out.workspace", &mut out.workspace.slice_mut(hist..)?)?.addr,
    };
    let block = [ALIGN_THREADS, 1, 1];
    let per_expert = LaunchDims { grid: [plan.experts as u32, 1, 1], block, dynamic_smem: 0 };
    dev.launch(&kernels::MOE_PERMUTE, "moe_permute_select", per_expert, &params)?;
    let dims = LaunchDims { grid: [plan.chunks as u32, 1, 1], block, dynamic_smem: 0 };
    dev.launch(&kernels::MOE_PERMUTE, "moe_permute_count_w", dims, &params)?;
    dev.launch(&kernels::MOE_PERMUTE, "moe_permute_scatter_w", dims, &params)
}

/// [`permute`] and [`gather`] in the same two launches: the second also copies each placed entry's
/// activation row of `x` (`[tokens, hidden]`) into `gathered` (`[plan.max_rows, hidden]`) and zeroes
/// the padding rows; rows past `offsets[experts]` are not written. Route, then this, is the whole
/// forward routing in three launches. Same access width rule as [`gather`].
pub fn permute_gather<T: Float>(
    dev: &Device,
    plan: &PermutePlan,
    ids: &View<'_, i32>,
    hidden: usize,
    x: &View<'_, T>,
    out: &mut Permutation,
    gathered: &mut ViewMut<'_, T>,
) -> Result<()> {
    let row_bytes = check_rows(plan, hidden, x, "gathered", gathered)?;
    permute_count(dev, plan, ids, out)?;
    if plan.max_rows == 0 {
        return permute_scatter(dev, plan, ids, out);
    }
    let px = dev.ptr("x", x)?.addr;
    let po = dev.ptr_mut("gathered", gathered)?.addr;
    let vec = if row_bytes.is_multiple_of(16) && px.is_multiple_of(16) && po.is_multiple_of(16) {
        16
    } else {
        size_of::<T>() as u32
    };
    align(dev, plan, ids, out, Some((px, po, row_bytes, vec)), "moe_permute_scatter")
}

fn check_rows<T: Float>(
    plan: &PermutePlan,
    hidden: usize,
    x: &View<'_, T>,
    out_name: &'static str,
    out: &ViewMut<'_, T>,
) -> Result<u32> {
    if hidden == 0 {
        return Err(Error::invalid("hidden", "at least 1", 0));
    }
    let row_bytes = hidden
        .checked_mul(size_of::<T>())
        .filter(|&b| b <= u32::MAX as usize)
        .ok_or_else(|| Error::invalid("hidden", "a row of at most u32::MAX bytes", hidden))?;
    check_len("x", x.len(), plan.tokens * hidden, "tokens * hidden")?;
    check_len(out_name, out.len(), plan.max_rows * hidden, "plan.max_rows * hidden")?;
    Ok(row_bytes as u32)
}

/// One align launch, `kernel`; `fused` = (x, out, row bytes, access bytes) to gather as well.
fn align(
    dev: &Device,
    plan: &PermutePlan,
    ids: &View<'_, i32>,
    out: &mut Permutation,
    fused: Option<(u64, u64, u32, u32)>,
    kernel: &str,
) -> Result<()> {
    let params = align_params(dev, plan, ids, out, fused)?;
    let dims = LaunchDims { grid: [plan.chunks as u32, 1, 1], block: [ALIGN_THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_PERMUTE, kernel, dims, &params)
}

/// The align launches' parameters, every length checked.
fn align_params(
    dev: &Device,
    plan: &PermutePlan,
    ids: &View<'_, i32>,
    out: &mut Permutation,
    fused: Option<(u64, u64, u32, u32)>,
) -> Result<AlignParams> {
    check_len("ids", ids.len(), plan.entries, "tokens * k")?;
    check_len("out.counts", out.counts.len(), plan.experts, "experts")?;
    check_len("out.offsets", out.offsets.len(), plan.experts + 1, "experts + 1")?;
    check_len("out.sorted_ids", out.sorted_ids.len(), plan.max_rows, "plan.max_rows")?;
    check_len("out.block_expert", out.block_expert.len(), plan.max_blocks, "plan.max_blocks")?;
    check_len("out.inverse", out.inverse.len(), plan.entries, "tokens * k")?;
    check_len("out.rank_counts", out.rank_counts.len(), plan.ranks, "ranks")?;
    check_len("out.rank_offsets", out.rank_offsets.len(), plan.ranks + 1, "ranks + 1")?;
    check_len("out.status", out.status.len(), 1, "one counter")?;
    check_len("out.workspace", out.workspace.len(), plan.workspace_len(), "plan.workspace_len()")?;
    let o = plan.options;
    let (x, gathered, row_bytes, vec) = fused.unwrap_or((0, 0, 0, 0));
    let params = AlignParams {
        ids: dev.ptr("ids", ids)?.addr,
        counts: dev.ptr_mut("out.counts", &mut out.counts.view_mut())?.addr,
        offsets: dev.ptr_mut("out.offsets", &mut out.offsets.view_mut())?.addr,
        sorted_ids: dev.ptr_mut("out.sorted_ids", &mut out.sorted_ids.view_mut())?.addr,
        block_expert: dev.ptr_mut("out.block_expert", &mut out.block_expert.view_mut())?.addr,
        inverse: dev.ptr_mut("out.inverse", &mut out.inverse.view_mut())?.addr,
        rank_counts: dev.ptr_mut("out.rank_counts", &mut out.rank_counts.view_mut())?.addr,
        rank_offsets: dev.ptr_mut("out.rank_offsets", &mut out.rank_offsets.view_mut())?.addr,
        status: dev.ptr_mut("out.status", &mut out.status.view_mut())?.addr,
        hist: dev.ptr_mut("out.workspace", &mut out.workspace.view_mut())?.addr,
        x,
        out: gathered,
        entries: plan.entries as u32,
        experts: plan.experts as u32,
        block_size: o.block_size as u32,
        capacity: o.capacity.map_or(u32::MAX, |c| c.min(u32::MAX as usize) as u32),
        max_rows: plan.max_rows as u32,
        max_blocks: plan.max_blocks as u32,
        experts_per_rank: (plan.experts / plan.ranks) as u32,
        chunk: ALIGN_CHUNK as u32,
        k: plan.k as u32,
        row_bytes,
        vec,
        pad: 0,
    };
    Ok(params)
}

/// Gathers the activations `x` (`[tokens, hidden]`) into the permuted layout `out`
/// (`[plan.max_rows, hidden]`): row r is `x[sorted_ids[r] / k]`, padding rows are zero, rows
/// past `offsets[experts]` are not written. 16-byte accesses when `hidden * size_of::<T>()` is a
/// multiple of 16 and both views are 16-byte aligned, else one element per access.
pub fn gather<T: Float>(
    dev: &Device,
    plan: &PermutePlan,
    hidden: usize,
    x: &View<'_, T>,
    perm: &Permutation,
    out: &mut ViewMut<'_, T>,
) -> Result<()> {
    let row_bytes = check_rows(plan, hidden, x, "out", out)?;
    check_len("perm.sorted_ids", perm.sorted_ids.len(), plan.max_rows, "plan.max_rows")?;
    check_len("perm.offsets", perm.offsets.len(), plan.experts + 1, "experts + 1")?;
    if plan.max_rows == 0 {
        return Ok(());
    }
    let px = dev.ptr("x", x)?.addr;
    let po = dev.ptr_mut("out", out)?.addr;
    let vec = if row_bytes.is_multiple_of(16) && px.is_multiple_of(16) && po.is_multiple_of(16) {
        16
    } else {
        size_of::<T>() as u32
    };
    let params = GatherParams {
        x: px,
        sorted_ids: dev.ptr("perm.sorted_ids", &perm.sorted_ids.view())?.addr,
        offsets: dev.ptr("perm.offsets", &perm.offsets.view())?.addr,
        out: po,
        max_rows: plan.max_rows as u32,
        experts: plan.experts as u32,
        k: plan.k as u32,
        entries: plan.entries as u32,
        row_bytes,
        vec,
    };
    let blocks = (plan.max_rows as u64).div_ceil(GATHER_ROWS_PER_BLOCK).min(MAX_BLOCKS) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [GATHER_THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_PERMUTE, &format!("moe_gather_v{vec}"), dims, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name(e: Error) -> &'static str {
        match e {
            Error::InvalidArgument { name, .. } => name,
            other => panic!("expected InvalidArgument, got {other}"),
        }
    }

    #[test]
    fn bad_permute_options_are_typed_errors() {
        let o = PermuteOptions::default();
        assert_eq!(err_name(PermutePlan::new(4, 2, 0, o).unwrap_err()), "experts");
        assert_eq!(err_name(PermutePlan::new(4, 0, 8, o).unwrap_err()), "k");
        assert_eq!(err_name(PermutePlan::new(4, 9, 8, o).unwrap_err()), "k");
        assert_eq!(err_name(PermutePlan::new(4, 2, 8, o.block_size(48)).unwrap_err()), "options.block_size");
        assert_eq!(err_name(PermutePlan::new(4, 2, 8, o.block_size(0)).unwrap_err()), "options.block_size");
        assert_eq!(err_name(PermutePlan::new(4, 2, 8, o.capacity(0)).unwrap_err()), "options.capacity");
        assert_eq!(err_name(PermutePlan::new(4, 2, 8, o.experts_per_rank(3)).unwrap_err()), "options.experts_per_rank");
        assert_eq!(err_name(PermutePlan::new(1 << 30, 8, 8, o).unwrap_err()), "tokens");
    }

    #[test]
    fn plan_sizes_pad_every_expert_and_cap_by_capacity() {
        let p = PermutePlan::new(100, 8, 64, PermuteOptions::default().block_size(16).experts_per_rank(8)).unwrap();
        assert_eq!((p.entries, p.max_rows, p.max_blocks, p.ranks), (800, 800 + 64 * 15, 110, 8));
        let p = PermutePlan::new(100, 8, 64, PermuteOptions::default().capacity(2)).unwrap();
        assert_eq!(p.max_rows, 128);
    }
}
