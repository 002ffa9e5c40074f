//! Planning a decode step on the host: the split-KV count and chunk ([`DecodePlan`]).

use super::*;

/// How a decode step splits its keys: computed on the host from the host-side lengths, once per
/// step, before [`decode_attention`]. Split `z` covers keys `[z chunk, (z + 1) chunk)` of every
/// sequence; with more than one split each CTA writes a partial O (fp32) and LSE into the caller's
/// workspace ([`DecodePlan::workspace_len`]) and an n-way merge by LSE combines them.
///
/// [`DecodePlan::new`] picks the split count flash-decoding's way: enough CTAs (kv heads x row tiles
/// x batch x splits) for two per SM, never a split below one K/V tile (64 keys; 32 at d = 256). So
/// batch 1 with 8 kv heads at 128k context on 132 SMs takes 33 splits of 4 032 keys, and batch 64
/// at 4k takes 1. It is O(batch): 0.03 us at batch 1, 0.07 us at batch 64 and 0.8 us at batch 1024
/// on this (busy, 2-core) machine (examples/sol_report.rs times it), cheap enough for every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodePlan {
    pub(super) shape: DecodeShape,
    pub(super) layout: PagedLayout,
    pub(super) lens: Vec<i32>,
    pub(super) kernel_dim: usize,
    pub(super) row_tiles: usize,
    pub(super) splits: usize,
    pub(super) chunk: usize,
}

/// The split count and chunk for `max_len` keys with `ctas` CTAs per split.
pub(super) fn choose_splits(
    sm_count: usize,
    ctas: usize,
    max_len: usize,
    tile: usize,
    forced: Option<usize>,
) -> (usize, usize) {
    let tiles = max_len.div_ceil(tile).max(1);
    let want = forced.unwrap_or_else(|| (2 * sm_count.max(1)).div_ceil(ctas.max(1)));
    let want = want.clamp(1, tiles.min(MAX_GRID_YZ));
    let chunk = tiles.div_ceil(want) * tile;
    (max_len.div_ceil(chunk).max(1), chunk)
}

impl DecodePlan {
    /// Plans a step for `shape` over `layout` with the host copy of `seq_lens` (keys per sequence,
    /// new tokens included), for a device of `sm_count` SMs ([`Device::sm_count`]).
    pub fn new(sm_count: usize, shape: DecodeShape, layout: PagedLayout, host_seq_lens: &[i32]) -> Result<DecodePlan> {
        Self::build(sm_count, shape, layout, host_seq_lens, None)
    }

    /// As [`DecodePlan::new`] with the split count forced to at most `splits` (fewer when the
    /// longest sequence has fewer K/V tiles): 1 writes the output directly.
    pub fn with_splits(
        shape: DecodeShape,
        layout: PagedLayout,
        host_seq_lens: &[i32],
        splits: usize,
    ) -> Result<DecodePlan> {
        if splits == 0 {
            return Err(Error::invalid("splits", "at least 1", splits));
        }
        Self::build(1, shape, layout, host_seq_lens, Some(splits))
    }

    pub(super) fn build(
        sm_count: usize,
        shape: DecodeShape,
        layout: PagedLayout,
        lens: &[i32],
        forced: Option<usize>,
    ) -> Result<DecodePlan> {
        check_shape(shape, &layout)?;
        let max_len = check_lens("host_seq_lens", lens, shape.batch, &layout)?;
        let kernel_dim = kernel_dim(layout.head_dim);
        let rows = shape.q_len * (shape.heads / layout.kv_heads);
        let row_tiles = rows.div_ceil(BLOCK_M);
        let ctas = layout.kv_heads * row_tiles * shape.batch;
        let (splits, chunk) = choose_splits(sm_count, ctas, max_len, SPLIT_ALIGN, forced);
        Ok(DecodePlan { shape, layout, lens: lens.to_vec(), kernel_dim, row_tiles, splits, chunk })
    }

    /// The number of splits (1: no workspace, the output is written directly).
    pub fn splits(&self) -> usize {
        self.splits
    }

    /// Keys per split.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// The shape planned for.
    pub fn shape(&self) -> DecodeShape {
        self.shape
    }

    /// fp32 elements of workspace [`decode_attention`] needs: `splits x tokens x heads x (head_dim
    /// + 1)` with more than one split, else 0.
    pub fn workspace_len(&self) -> usize {
        if self.splits > 1 {
            workspace_elems(self.splits, self.shape.batch * self.shape.q_len, self.shape.heads, self.layout.head_dim)
        } else {
            0
        }
    }
}

pub(super) fn workspace_elems(slots: usize, tokens: usize, heads: usize, head_dim: usize) -> usize {
    slots * tokens * heads * (head_dim + 1)
}
