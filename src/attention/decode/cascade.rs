//! Shared-prefix (cascade) decode: the prefix pages are read once per group of samples; see
//! [`CascadePlan`].

use super::*;

/// Shared-prefix (cascade) decode: `groups` prompts whose KV pages are stored once (one prefix
/// block-table row per group) and `samples` sequences per group, each with its own suffix pages
/// (one suffix row per sequence, `batch = groups x samples`, sample-major within a group). The
/// prefix pass puts every sample's query rows of a group into one tile (so the prefix is read once
/// per group and kv head while `samples x q_len x heads / kv_heads <= 64`); the suffix pass is a
/// plain decode over the suffix pages; an n-way merge by LSE combines their splits. Equals
/// attention over prefix + suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadePlan {
    prefix: DecodePlan,
    suffix: DecodePlan,
    samples: usize,
}

impl CascadePlan {
    /// Plans a cascade step: `shape.batch = groups x samples` sequences; `prefix_layout` /
    /// `host_prefix_lens` (one per group) describe the shared pages, `suffix_layout` /
    /// `host_suffix_lens` (one per sequence, the new tokens included) each sample's own. The two
    /// layouts share the cache (pages, page size, heads, head dim) but may differ in
    /// `pages_per_seq`. `splits` forces (at most) that many prefix and suffix splits.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sm_count: usize,
        shape: DecodeShape,
        samples: usize,
        prefix_layout: PagedLayout,
        host_prefix_lens: &[i32],
        suffix_layout: PagedLayout,
        host_suffix_lens: &[i32],
        splits: Option<(usize, usize)>,
    ) -> Result<CascadePlan> {
        if samples == 0 || !shape.batch.is_multiple_of(samples) {
            return Err(Error::invalid("samples", format!("a divisor of shape.batch ({})", shape.batch), samples));
        }
        let same = |a: &PagedLayout, b: &PagedLayout| {
            (a.num_pages, a.page_size, a.kv_heads, a.head_dim) == (b.num_pages, b.page_size, b.kv_heads, b.head_dim)
        };
        if !same(&prefix_layout, &suffix_layout) {
            return Err(Error::invalid(
                "suffix_layout",
                format!("the prefix layout's cache ({prefix_layout:?}) with its own pages_per_seq"),
                format!("{suffix_layout:?}"),
            ));
        }
        let groups = shape.batch / samples;
        let pshape = DecodeShape { batch: groups, q_len: shape.q_len * samples, heads: shape.heads };
        // The prefix pass's rows: samples x q_len tokens per group (q_len's own limit is per sample).
        check_shape(shape, &suffix_layout)?;
        prefix_layout.validate()?;
        let max_p = check_lens("host_prefix_lens", host_prefix_lens, groups, &prefix_layout)?;
        let kd = kernel_dim(prefix_layout.head_dim);
        let group = shape.heads / prefix_layout.kv_heads;
        let row_tiles = (pshape.q_len * group).div_ceil(BLOCK_M);
        let (ps, pchunk) = choose_splits(
            sm_count,
            prefix_layout.kv_heads * row_tiles * groups,
            max_p,
            SPLIT_ALIGN,
            splits.map(|s| s.0.max(1)),
        );
        let prefix = DecodePlan {
            shape: pshape,
            layout: prefix_layout,
            lens: host_prefix_lens.to_vec(),
            kernel_dim: kd,
            row_tiles,
            splits: ps,
            chunk: pchunk,
        };
        let suffix = DecodePlan::build(sm_count, shape, suffix_layout, host_suffix_lens, splits.map(|s| s.1.max(1)))?;
        if ps + suffix.splits > MAX_GRID_YZ {
            return Err(Error::invalid("splits", format!("at most {MAX_GRID_YZ} in all"), ps + suffix.splits));
        }
        Ok(CascadePlan { prefix, suffix, samples })
    }

    /// (prefix splits, suffix splits).
    pub fn splits(&self) -> (usize, usize) {
        (self.prefix.splits, self.suffix.splits)
    }

    /// fp32 elements of workspace [`cascade_attention`] needs (every split is a partial).
    pub fn workspace_len(&self) -> usize {
        let s = self.suffix.shape;
        workspace_elems(
            self.prefix.splits + self.suffix.splits,
            s.batch * s.q_len,
            s.heads,
            self.suffix.layout.head_dim,
        )
    }
}

/// Cascade decode ([`CascadePlan`]): sequence `b` of group `b / samples` attends to the group's
/// prefix (`prefix_table` row, `prefix_lens` keys) followed by its own suffix (`suffix_table` row,
/// `suffix_lens` keys, the new tokens included), exactly as [`decode_attention`] over the
/// concatenation would. `q`, `out` and the options as there; `workspace` holds
/// [`CascadePlan::workspace_len`] fp32 elements. Host copies of the tables are checked when given.
#[allow(clippy::too_many_arguments)]
pub fn cascade_attention<T: Float>(
    dev: &Device,
    plan: &CascadePlan,
    q: &View<'_, T>,
    k_cache: &View<'_, T>,
    v_cache: &View<'_, T>,
    prefix: (&View<'_, i32>, &View<'_, i32>, Option<&[i32]>),
    suffix: (&View<'_, i32>, &View<'_, i32>, Option<&[i32]>),
    out: &mut ViewMut<'_, T>,
    workspace: &mut ViewMut<'_, f32>,
    opts: DecodeOptions<'_>,
) -> Result<()> {
    cascade(dev, plan, q, k_cache, v_cache, prefix, suffix, Some(out), workspace, opts)
}

/// The first of [`cascade_attention`]'s three launches alone: the prefix pass, which leaves the
/// prefix splits' partial O and LSE in `workspace` (slots `0..prefix splits`). Same arguments and
/// checks, minus `out`; for callers that schedule the passes themselves or measure the prefix read
/// (on the PTX VM, [`Device::vm_last_launch`] is then this launch).
#[allow(clippy::too_many_arguments)]
pub fn cascade_prefix_pass<T: Float>(
    dev: &Device,
    plan: &CascadePlan,
    q: &View<'_, T>,
    k_cache: &View<'_, T>,
    v_cache: &View<'_, T>,
    prefix: (&View<'_, i32>, &View<'_, i32>, Option<&[i32]>),
    suffix: (&View<'_, i32>, &View<'_, i32>, Option<&[i32]>),
    workspace: &mut ViewMut<'_, f32>,
    opts: DecodeOptions<'_>,
) -> Result<()> {
    cascade(dev, plan, q, k_cache, v_cache, prefix, suffix, None, workspace, opts)
}

#[allow(clippy::too_many_arguments)]
fn cascade<T: Float>(
    dev: &Device,
    plan: &CascadePlan,
    q: &View<'_, T>,
    k_cache: &View<'_, T>,
    v_cache: &View<'_, T>,
    (prefix_table, prefix_lens, host_prefix_table): (&View<'_, i32>, &View<'_, i32>, Option<&[i32]>),
    (suffix_table, suffix_lens, host_suffix_table): (&View<'_, i32>, &View<'_, i32>, Option<&[i32]>),
    mut out: Option<&mut ViewMut<'_, T>>,
    workspace: &mut ViewMut<'_, f32>,
    mut opts: DecodeOptions<'_>,
) -> Result<()> {
    check_dtype::<T>()?;
    let (pp, sp) = (&plan.prefix, &plan.suffix);
    let shape = sp.shape;
    let (tokens, hd) = (shape.batch * shape.q_len, sp.layout.head_dim);
    let sc = check_options(&opts, shape.heads, tokens, hd)?;
    check_len("q", q.len(), tokens * shape.heads * hd, "batch x q_len x heads x head_dim")?;
    if let Some(out) = &out {
        check_len("out", out.len(), tokens * shape.heads * hd, "batch x q_len x heads x head_dim")?;
    }
    check_len("k_cache", k_cache.len(), sp.layout.cache_len(), "num_pages x page_size x kv_heads x head_dim")?;
    check_len("v_cache", v_cache.len(), sp.layout.cache_len(), "num_pages x page_size x kv_heads x head_dim")?;
    let groups = pp.shape.batch;
    check_len("prefix_table", prefix_table.len(), groups * pp.layout.pages_per_seq, "groups x pages_per_seq")?;
    check_len("prefix_lens", prefix_lens.len(), groups, "one per group")?;
    check_len("suffix_table", suffix_table.len(), shape.batch * sp.layout.pages_per_seq, "batch x pages_per_seq")?;
    check_len("suffix_lens", suffix_lens.len(), shape.batch, "one per sequence")?;
    if let Some(t) = host_prefix_table {
        check_table("host_prefix_table", t, &pp.lens, &pp.layout)?;
        debug_same(dev, "prefix_table", prefix_table, t)?;
    }
    if let Some(t) = host_suffix_table {
        check_table("host_suffix_table", t, &sp.lens, &sp.layout)?;
        debug_same(dev, "suffix_table", suffix_table, t)?;
    }
    debug_same(dev, "prefix_lens", prefix_lens, &pp.lens)?;
    debug_same(dev, "suffix_lens", suffix_lens, &sp.lens)?;
    let need = plan.workspace_len();
    if workspace.len() < need {
        return Err(Error::invalid(
            "workspace",
            format!("at least {need} fp32 elements (CascadePlan::workspace_len)"),
            workspace.len(),
        ));
    }
    if shape.batch == 0 {
        return Ok(());
    }
    let pq = dev.ptr("q", q)?;
    let pk = dev.ptr("k_cache", k_cache)?;
    let pv = dev.ptr("v_cache", v_cache)?;
    let ppt = dev.ptr("prefix_table", prefix_table)?;
    let ppl = dev.ptr("prefix_lens", prefix_lens)?;
    let pst = dev.ptr("suffix_table", suffix_table)?;
    let psl = dev.ptr("suffix_lens", suffix_lens)?;
    let po = match out.as_mut() {
        Some(o) => Some(dev.ptr_mut("out", o)?),
        None => None,
    };
    for (name, addr) in
        [("q", pq.addr), ("k_cache", pk.addr), ("v_cache", pv.addr), ("out", po.as_ref().map_or(0, |p| p.addr))]
    {
        aligned(name, addr)?;
    }
    let (plse, pa, ps) = option_ptrs(dev, &mut opts)?;
    let addr = |p: &Option<crate::device::ArgPtr<'_>>| p.as_ref().map_or(0, |p| p.addr);
    let pw = dev.ptr_mut("workspace", workspace)?;
    let slots = pp.splits + sp.splits;
    let rows = tokens * shape.heads;
    let (part_o, part_lse) = (pw.addr, pw.addr + (slots * rows * hd * 4) as u64);
    aligned("workspace", part_o)?;
    // Prefix: the group's samples' tokens are the rows; each sample's position adds its suffix.
    let prefix = DecodeParams {
        block_table: ppt.addr,
        seq_lens: ppl.addr,
        q_extra: psl.addr,
        samples: plan.samples as i32,
        q_len: shape.q_len as i32,
        part_o,
        part_lse,
        ..base_params(pp, &sc, pq.addr, pk.addr, pv.addr, addr(&pa))
    };
    launch_decode::<T>(dev, pp, &prefix)?;
    let Some(po) = po else { return Ok(()) };
    let suffix = DecodeParams {
        block_table: pst.addr,
        seq_lens: psl.addr,
        part_o,
        part_lse,
        slot_offset: pp.splits as i32,
        ..base_params(sp, &sc, pq.addr, pk.addr, pv.addr, addr(&pa))
    };
    launch_decode::<T>(dev, sp, &suffix)?;
    launch_merge::<T>(dev, (part_o, part_lse), slots, rows, shape.heads, hd, addr(&ps), (po.addr, addr(&plse)))
}
