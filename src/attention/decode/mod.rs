//! Decode attention over a paged KV cache (`kernels/attention/decode.cu`): GQA-packed tensor-core
//! tiles, split-KV (flash-decoding) planned on the host, a shared-prefix cascade, and the append of
//! new K/V rows into their pages.
//!
//! The cache: K and V pages `[num_pages, page_size, kv_heads, head_dim]` of `T`, page sizes
//! [`PAGE_SIZES`]. Entry `b`'s key `j` is row `j % page_size` of page `block_table[b, j /
//! page_size]`; the block table is `[batch, pages_per_seq]` i32 and `seq_lens[b]` counts entry `b`'s
//! keys, the new tokens included (append them first with [`append_kv`]). Queries are `[batch,
//! q_len, heads, head_dim]`: the last `q_len` tokens of each sequence, causal among themselves.
//!
//! Device-side arrays the host cannot see (block tables, `seq_lens`) are the caller's contract: the
//! host copies passed with them are validated (page ids in range, lengths within the table's pages)
//! and, in debug builds, compared with the device arrays. Whatever the device arrays hold, the
//! kernels clamp each length to its block-table row (no page id outside the row is read) and treat
//! a page id outside `[0, num_pages)` as zeros (decode) or skip it (append).
//!
//! Counted on the PTX VM (examples/sol_report.rs, `decode_report`): the K/V bytes a decode requests
//! are 1.01-1.05 x each kv head's keys once (GQA heads share the tile, while `q_len x heads /
//! kv_heads <= 64`; more rows take more tiles, each reading the keys again), a cascade's prefix is
//! read once per group, and an fp8 cache halves the bytes; the figures are in the doc comment of
//! kernels/attention/decode.cu.

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};
use bytemuck::{Pod, Zeroable};

mod append;
mod cascade;
mod plan;

pub use append::append_kv;
pub use cascade::{cascade_attention, cascade_prefix_pass, CascadePlan};
pub use plan::DecodePlan;
use plan::{choose_splits, workspace_elems};

/// The page sizes the decode kernels take (powers of two: the page of key `j` is a shift).
pub const PAGE_SIZES: [usize; 7] = [1, 8, 16, 32, 64, 128, 256];
/// The most query tokens per sequence and step (multi-token decode, speculative verification).
pub const MAX_Q_LEN: usize = 8;
/// Threads per decode CTA (`DecodeTraits::kThreads`).
const THREADS: u32 = 128;
/// Rows (query token x query head of a kv group) per CTA (`kBlockM`).
const BLOCK_M: usize = 64;
const MAX_GRID_YZ: usize = 65535;

/// `sk::DecodeParams` (kernels/attention/decode.cu): pointers as `u64` (0 = null).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct DecodeParams {
    pub q: u64,
    pub k_cache: u64,
    pub v_cache: u64,
    pub block_table: u64,
    pub seq_lens: u64,
    pub q_extra: u64,
    pub alibi_slopes: u64,
    pub sinks: u64,
    pub k_scale: u64,
    pub v_scale: u64,
    pub o: u64,
    pub lse: u64,
    pub part_o: u64,
    pub part_lse: u64,
    pub pages_per_seq: i64,
    pub num_pages: i32,
    pub page_shift: i32,
    pub q_len: i32,
    pub samples: i32,
    pub tokens: i32,
    pub heads: i32,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub group: i32,
    pub row_tiles: i32,
    pub chunk: i32,
    pub slot_offset: i32,
    pub causal: i32,
    pub window_left: i32,
    pub scale_log2: f32,
    pub softcap_prescale: f32,
    pub alibi_unit: f32,
    pub pad: i32,
}

/// `sk::DecodeMergeParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct DecodeMergeParams {
    pub part_o: u64,
    pub part_lse: u64,
    pub sinks: u64,
    pub o: u64,
    pub lse: u64,
    pub rows: i64,
    pub slots: i32,
    pub heads: i32,
    pub head_dim: i32,
    pub pad: i32,
}

/// `sk::DecodeAppendParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct DecodeAppendParams {
    pub k_new: u64,
    pub v_new: u64,
    pub k_cache: u64,
    pub v_cache: u64,
    pub block_table: u64,
    pub seq_lens: u64,
    pub pages_per_seq: i64,
    pub chunks: i64,
    pub row_chunks: i32,
    pub num_pages: i32,
    pub page_shift: i32,
    pub n_new: i32,
}

/// The geometry of a paged KV cache: K and V are each `[num_pages, page_size, kv_heads, head_dim]`,
/// and a block table row holds `pages_per_seq` page ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedLayout {
    /// Pages in the cache.
    pub num_pages: usize,
    /// Tokens per page: one of [`PAGE_SIZES`].
    pub page_size: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Elements per head: a multiple of 8 up to 256 (64, 128 and 256 have kernels; others run on
    /// the next larger one with the extra columns masked).
    pub head_dim: usize,
    /// Page ids per block-table row (the most pages one sequence may use).
    pub pages_per_seq: usize,
}

impl PagedLayout {
    /// Elements of the K (or V) cache.
    pub fn cache_len(&self) -> usize {
        self.num_pages * self.page_size * self.kv_heads * self.head_dim
    }

    fn validate(&self) -> Result<()> {
        if !PAGE_SIZES.contains(&self.page_size) {
            return Err(Error::invalid("layout.page_size", format!("one of {PAGE_SIZES:?}"), self.page_size));
        }
        if self.num_pages == 0 || self.num_pages > i32::MAX as usize {
            return Err(Error::invalid("layout.num_pages", "1..=i32::MAX", self.num_pages));
        }
        if self.kv_heads == 0 || self.kv_heads > 65535 {
            return Err(Error::invalid("layout.kv_heads", "1..=65535", self.kv_heads));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(8) || self.head_dim > 256 {
            return Err(Error::invalid("layout.head_dim", "a multiple of 8 in 8..=256", self.head_dim));
        }
        if self.pages_per_seq == 0
            || self.pages_per_seq.checked_mul(self.page_size).is_none_or(|k| k > i32::MAX as usize)
        {
            return Err(Error::invalid(
                "layout.pages_per_seq",
                "at least 1, with pages_per_seq * page_size <= i32::MAX",
                self.pages_per_seq,
            ));
        }
        self.num_pages
            .checked_mul(self.page_size * self.kv_heads * self.head_dim)
            .ok_or_else(|| Error::invalid("layout", "a cache size that fits in usize", format!("{self:?}")))?;
        Ok(())
    }
}

/// The queries of one decode step: `[batch, q_len, heads, head_dim]` (head_dim is the layout's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeShape {
    /// Sequences (block-table rows).
    pub batch: usize,
    /// New tokens per sequence, 1..=[`MAX_Q_LEN`], causal among themselves.
    pub q_len: usize,
    /// Query heads (a multiple of the layout's `kv_heads`).
    pub heads: usize,
}

/// Options of [`decode_attention`] and [`cascade_attention`] (as [`super::AttnOptions`]; positions
/// count from each sequence's first token, the new tokens being its last `q_len`).
pub struct DecodeOptions<'a> {
    /// The new tokens see each other causally (on by default); off, every new token sees all keys.
    pub causal: bool,
    /// Sliding window: a query at position `i` sees keys `j >= i - window_left`; `-1` = unbounded.
    pub window_left: i32,
    /// Logit softcap `c > 0` (`c tanh(scale q.k / c)`); 0 = off.
    pub softcap: f32,
    /// Softmax scale; `None` is `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// ALiBi slopes, one per query head: logits get `-slope |i - j|`.
    pub alibi_slopes: Option<View<'a, f32>>,
    /// Sink logits, one per query head: join the denominator, carry no value.
    pub sinks: Option<View<'a, f32>>,
    /// LSE out, `[batch, q_len, heads]` fp32, natural log, sink included; `-inf` for a row that
    /// sees nothing (its output is 0).
    pub lse: Option<ViewMut<'a, f32>>,
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        DecodeOptions {
            causal: true,
            window_left: -1,
            softcap: 0.0,
            scale: None,
            alibi_slopes: None,
            sinks: None,
            lse: None,
        }
    }
}

impl<'a> DecodeOptions<'a> {
    /// Sets [`DecodeOptions::causal`].
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }
    /// Sets [`DecodeOptions::window_left`].
    pub fn window_left(mut self, left: i32) -> Self {
        self.window_left = left;
        self
    }
    /// Sets [`DecodeOptions::softcap`].
    pub fn softcap(mut self, softcap: f32) -> Self {
        self.softcap = softcap;
        self
    }
    /// Sets [`DecodeOptions::scale`].
    pub fn scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }
    /// Sets [`DecodeOptions::alibi_slopes`].
    pub fn alibi_slopes(mut self, slopes: View<'a, f32>) -> Self {
        self.alibi_slopes = Some(slopes);
        self
    }
    /// Sets [`DecodeOptions::sinks`].
    pub fn sinks(mut self, sinks: View<'a, f32>) -> Self {
        self.sinks = Some(sinks);
        self
    }
    /// Sets [`DecodeOptions::lse`].
    pub fn lse(mut self, lse: ViewMut<'a, f32>) -> Self {
        self.lse = Some(lse);
        self
    }
}

/// The instantiated head dim for `head_dim`.
fn kernel_dim(head_dim: usize) -> usize {
    [64, 128, 256].into_iter().find(|&d| d >= head_dim).unwrap_or(256)
}

/// Keys per split are a multiple of this: every instantiation's K/V tile (`kBlockN`: 64, or 32 for
/// 16-bit d = 256) divides it, so split boundaries fall on tile boundaries.
const SPLIT_ALIGN: usize = 64;

/// Keys per K/V tile (`kBlockN`).
fn block_n(kernel_dim: usize, fp8: bool) -> usize {
    if kernel_dim <= 128 || fp8 {
        64
    } else {
        32
    }
}

/// Dynamic shared memory of a decode instantiation (`DecodeTraits::kSmemBytes`).
fn smem_bytes(kernel_dim: usize, fp8: bool) -> u32 {
    let elem = if fp8 { 1 } else { 2 };
    let tiles = BLOCK_M * kernel_dim * 2 + 2 * 2 * block_n(kernel_dim, fp8) * kernel_dim * elem;
    (tiles + 4 * 16 * 2 * 4 + 4 * BLOCK_M * 4) as u32
}

fn check_shape(shape: DecodeShape, layout: &PagedLayout) -> Result<()> {
    layout.validate()?;
    if shape.q_len == 0 || shape.q_len > MAX_Q_LEN {
        return Err(Error::invalid("shape.q_len", format!("1..={MAX_Q_LEN}"), shape.q_len));
    }
    if shape.heads == 0 || !shape.heads.is_multiple_of(layout.kv_heads) || shape.heads > 65535 {
        return Err(Error::invalid(
            "shape.heads",
            format!("a multiple of kv_heads ({}) up to 65535", layout.kv_heads),
            shape.heads,
        ));
    }
    if shape.batch > MAX_GRID_YZ {
        return Err(Error::invalid("shape.batch", format!("at most {MAX_GRID_YZ}"), shape.batch));
    }
    let tokens = shape.batch * shape.q_len;
    if tokens.checked_mul(shape.heads * (layout.head_dim + 1)).is_none_or(|n| n > i32::MAX as usize) {
        return Err(Error::invalid(
            "shape",
            "batch * q_len * heads * (head_dim + 1) <= i32::MAX",
            format!("{shape:?}"),
        ));
    }
    Ok(())
}

/// Checks host lengths against the block table's capacity; returns the longest.
fn check_lens(name: &'static str, lens: &[i32], batch: usize, layout: &PagedLayout) -> Result<usize> {
    if lens.len() != batch {
        return Err(Error::invalid(name, format!("{batch} lengths (one per sequence)"), lens.len()));
    }
    let cap = layout.pages_per_seq * layout.page_size;
    let mut max = 0;
    for (b, &l) in lens.iter().enumerate() {
        if l < 0 || l as usize > cap {
            return Err(Error::invalid(
                name,
                format!(
                    "lengths in 0..={cap} (pages_per_seq {} x page_size {})",
                    layout.pages_per_seq, layout.page_size
                ),
                format!("[{b}] = {l}"),
            ));
        }
        max = max.max(l as usize);
    }
    Ok(max)
}

/// Checks the pages a host block table gives the first `lens[b]` keys of each row.
fn check_table(name: &'static str, table: &[i32], lens: &[i32], layout: &PagedLayout) -> Result<()> {
    let need = lens.len() * layout.pages_per_seq;
    if table.len() != need {
        return Err(Error::invalid(name, format!("{need} page ids (batch x pages_per_seq)"), table.len()));
    }
    for (b, &l) in lens.iter().enumerate() {
        let pages = (l.max(0) as usize).div_ceil(layout.page_size);
        let row = &table[b * layout.pages_per_seq..][..pages];
        if let Some((i, &p)) = row.iter().enumerate().find(|(_, &p)| p < 0 || p as usize >= layout.num_pages) {
            return Err(Error::invalid(
                name,
                format!("page ids in 0..{} for the pages a length uses", layout.num_pages),
                format!("[{b}, {i}] = {p}"),
            ));
        }
    }
    Ok(())
}

/// Validated scalar options.
struct Scalars {
    causal: bool,
    window_left: i32,
    softcap: f32,
    scale: f32,
}

fn check_options(opts: &DecodeOptions<'_>, heads: usize, tokens: usize, head_dim: usize) -> Result<Scalars> {
    if opts.window_left < -1 {
        return Err(Error::invalid("window_left", "-1 (unbounded) or >= 0", opts.window_left));
    }
    if !(opts.softcap.is_finite() && opts.softcap >= 0.0) {
        return Err(Error::invalid("softcap", "a finite value >= 0 (0 = off)", opts.softcap));
    }
    let scale = opts.scale.unwrap_or(1.0 / (head_dim as f32).sqrt());
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid("scale", "a finite value > 0", scale));
    }
    for (name, len) in
        [("alibi_slopes", opts.alibi_slopes.as_ref().map(|v| v.len())), ("sinks", opts.sinks.as_ref().map(|v| v.len()))]
    {
        if let Some(len) = len {
            if len != heads {
                return Err(Error::invalid(name, format!("{heads} elements (one per query head)"), len));
            }
        }
    }
    if let Some(l) = &opts.lse {
        if l.len() != tokens * heads {
            return Err(Error::invalid("lse", format!("{} elements (batch x q_len x heads)", tokens * heads), l.len()));
        }
    }
    Ok(Scalars { causal: opts.causal, window_left: opts.window_left, softcap: opts.softcap, scale })
}

fn check_len(name: &'static str, got: usize, want: usize, what: &str) -> Result<()> {
    if got != want {
        return Err(Error::invalid(name, format!("{want} elements ({what})"), got));
    }
    Ok(())
}

fn check_dtype<T: Float>() -> Result<()> {
    if !matches!(T::NAME, "bf16" | "f16") {
        return Err(Error::invalid("q", "bf16 or f16 elements", T::NAME));
    }
    Ok(())
}

fn aligned(name: &'static str, addr: u64) -> Result<()> {
    if !addr.is_multiple_of(16) {
        return Err(Error::invalid(name, "a 16-byte aligned start", format!("address {addr:#x}")));
    }
    Ok(())
}

/// In debug builds: the device array equals its host copy.
fn debug_same(dev: &Device, name: &'static str, view: &View<'_, i32>, host: &[i32]) -> Result<()> {
    if cfg!(debug_assertions) && dev.download(view.slice(..)?)? != host {
        return Err(Error::invalid(name, "the same values as its host copy", "different values"));
    }
    Ok(())
}

/// Decode attention of one step: `out[b, i, h] = softmax(scale q k^T + masks) v` over sequence
/// `b`'s cached keys, for the `q_len` new tokens `i` (the last of the sequence, causal among
/// themselves), in `T` = bf16 or f16 with fp32 accumulation; GQA when the layout has fewer kv heads.
///
/// `q` and `out` are `[batch, q_len, heads, head_dim]`; `k_cache` / `v_cache` are the layout's
/// pages; `block_table` (`[batch, pages_per_seq]`) and `seq_lens` (`[batch]`) are the device arrays
/// whose host copies the plan (lengths) and `host_block_table` (checked when given) hold. With
/// `plan.splits() > 1`, `workspace` must hold [`DecodePlan::workspace_len`] fp32 elements. A row
/// that sees no key gets `out = 0`, `lse = -inf` (with a sink: lse = the sink logit).
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use half::bf16;
/// use scaling_kernels::attention::{decode_attention, DecodeOptions, DecodePlan, DecodeShape, PagedLayout};
/// use scaling_kernels::Device;
/// let dev = Device::default();
/// // One sequence of 3 keys in page 1 of a 2-page cache (page size 16), 2 query heads, 1 kv head.
/// let layout = PagedLayout { num_pages: 2, page_size: 16, kv_heads: 1, head_dim: 64, pages_per_seq: 1 };
/// let shape = DecodeShape { batch: 1, q_len: 1, heads: 2 };
/// let plan = DecodePlan::new(dev.sm_count(), shape, layout, &[3])?;
/// let kv = dev.upload(&vec![bf16::ONE; layout.cache_len()])?;
/// let q = dev.upload(&vec![bf16::from_f32(0.5); 2 * 64])?;
/// let (table, lens) = (dev.upload(&[1i32])?, dev.upload(&[3i32])?);
/// let mut out = dev.alloc_zeros::<bf16>(2 * 64)?;
/// decode_attention(&dev, &plan, &q.view(), &kv.view(), &kv.view(), &table.view(), &lens.view(),
///     Some(&[1]), &mut out.view_mut(), None, DecodeOptions::default())?;
/// assert_eq!(dev.download(&out)?[0], bf16::ONE);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn decode_attention<T: Float>(
    dev: &Device,
    plan: &DecodePlan,
    q: &View<'_, T>,
    k_cache: &View<'_, T>,
    v_cache: &View<'_, T>,
    block_table: &View<'_, i32>,
    seq_lens: &View<'_, i32>,
    host_block_table: Option<&[i32]>,
    out: &mut ViewMut<'_, T>,
    workspace: Option<&mut ViewMut<'_, f32>>,
    opts: DecodeOptions<'_>,
) -> Result<()> {
    decode::<T, T>(dev, plan, q, k_cache, v_cache, None, block_table, seq_lens, host_block_table, out, workspace, opts)
}

/// [`decode_attention`] over an fp8 (e4m3) cache: `k_cache` / `v_cache` hold one e4m3 byte per
/// element (append them with [`append_kv`] as `u8`), and key/value element `x` of kv head `h`
/// stands for `k_scale[h] x` / `v_scale[h] x` (fp32, one per kv head). The bytes are dequantised in
/// registers to `T` (exact: every e4m3 value fits f16 and bf16) and the scales are applied in fp32
/// to the scores and the output, so the K/V bytes read are half those of a 16-bit cache. e4m3 NaN
/// bytes (0x7f, 0xff) are not supported (they read as 1.875 x 2^-8 x 256). `head_dim` must be a
/// multiple of 16; head dims up to 128 run on the 128 instantiation, larger on the 256 one.
#[allow(clippy::too_many_arguments)]
pub fn decode_attention_fp8<T: Float>(
    dev: &Device,
    plan: &DecodePlan,
    q: &View<'_, T>,
    k_cache: &View<'_, u8>,
    v_cache: &View<'_, u8>,
    (k_scale, v_scale): (&View<'_, f32>, &View<'_, f32>),
    block_table: &View<'_, i32>,
    seq_lens: &View<'_, i32>,
    host_block_table: Option<&[i32]>,
    out: &mut ViewMut<'_, T>,
    workspace: Option<&mut ViewMut<'_, f32>>,
    opts: DecodeOptions<'_>,
) -> Result<()> {
    if !plan.layout.head_dim.is_multiple_of(16) {
        return Err(Error::invalid("layout.head_dim", "a multiple of 16 with an fp8 cache", plan.layout.head_dim));
    }
    for (name, v) in [("k_scale", k_scale), ("v_scale", v_scale)] {
        check_len(name, v.len(), plan.layout.kv_heads, "one per kv head")?;
    }
    let scales = Some((k_scale, v_scale));
    decode::<T, u8>(
        dev,
        plan,
        q,
        k_cache,
        v_cache,
        scales,
        block_table,
        seq_lens,
        host_block_table,
        out,
        workspace,
        opts,
    )
}

#[allow(clippy::too_many_arguments)]
fn decode<T: Float, E: crate::device::Element>(
    dev: &Device,
    plan: &DecodePlan,
    q: &View<'_, T>,
    k_cache: &View<'_, E>,
    v_cache: &View<'_, E>,
    scales: Option<(&View<'_, f32>, &View<'_, f32>)>,
    block_table: &View<'_, i32>,
    seq_lens: &View<'_, i32>,
    host_block_table: Option<&[i32]>,
    out: &mut ViewMut<'_, T>,
    workspace: Option<&mut ViewMut<'_, f32>>,
    mut opts: DecodeOptions<'_>,
) -> Result<()> {
    check_dtype::<T>()?;
    let DecodePlan { shape, layout, .. } = *plan;
    let (tokens, hd) = (shape.batch * shape.q_len, layout.head_dim);
    let sc = check_options(&opts, shape.heads, tokens, hd)?;
    check_len("q", q.len(), tokens * shape.heads * hd, "batch x q_len x heads x head_dim")?;
    check_len("out", out.len(), tokens * shape.heads * hd, "batch x q_len x heads x head_dim")?;
    check_len("k_cache", k_cache.len(), layout.cache_len(), "num_pages x page_size x kv_heads x head_dim")?;
    check_len("v_cache", v_cache.len(), layout.cache_len(), "num_pages x page_size x kv_heads x head_dim")?;
    check_len("block_table", block_table.len(), shape.batch * layout.pages_per_seq, "batch x pages_per_seq")?;
    check_len("seq_lens", seq_lens.len(), shape.batch, "one per sequence")?;
    if let Some(t) = host_block_table {
        check_table("host_block_table", t, &plan.lens, &layout)?;
        debug_same(dev, "block_table", block_table, t)?;
    }
    debug_same(dev, "seq_lens", seq_lens, &plan.lens)?;
    let need = plan.workspace_len();
    let ws_len = workspace.as_ref().map_or(0, |w| w.len());
    if ws_len < need {
        return Err(Error::invalid(
            "workspace",
            format!("at least {need} fp32 elements (DecodePlan::workspace_len)"),
            ws_len,
        ));
    }
    if shape.batch == 0 {
        return Ok(());
    }
    let pq = dev.ptr("q", q)?;
    let pk = dev.ptr("k_cache", k_cache)?;
    let pv = dev.ptr("v_cache", v_cache)?;
    let pt = dev.ptr("block_table", block_table)?;
    let pl = dev.ptr("seq_lens", seq_lens)?;
    let po = dev.ptr_mut("out", out)?;
    for (name, addr) in [("q", pq.addr), ("k_cache", pk.addr), ("v_cache", pv.addr), ("out", po.addr)] {
        aligned(name, addr)?;
    }
    let (plse, pa, ps) = option_ptrs(dev, &mut opts)?;
    let addr = |p: &Option<crate::device::ArgPtr<'_>>| p.as_ref().map_or(0, |p| p.addr);
    let (pks, pvs) = match scales {
        Some((k, v)) => (Some(dev.ptr("k_scale", k)?), Some(dev.ptr("v_scale", v)?)),
        None => (None, None),
    };
    let base = DecodeParams {
        k_scale: addr(&pks),
        v_scale: addr(&pvs),
        ..base_params(plan, &sc, pq.addr, pk.addr, pv.addr, addr(&pa))
    };
    if plan.splits == 1 {
        let params = DecodeParams {
            block_table: pt.addr,
            seq_lens: pl.addr,
            sinks: addr(&ps),
            o: po.addr,
            lse: addr(&plse),
            ..base
        };
        return launch_decode::<T>(dev, plan, &params);
    }
    let Some(ws) = workspace else { unreachable!("checked above: need > 0") };
    let pw = dev.ptr_mut("workspace", ws)?;
    let rows = tokens * shape.heads;
    let (part_o, part_lse) = (pw.addr, pw.addr + (plan.splits * rows * hd * 4) as u64);
    aligned("workspace", part_o)?;
    let params = DecodeParams { block_table: pt.addr, seq_lens: pl.addr, part_o, part_lse, ..base };
    launch_decode::<T>(dev, plan, &params)?;
    launch_merge::<T>(dev, (part_o, part_lse), plan.splits, rows, shape.heads, hd, addr(&ps), (po.addr, addr(&plse)))
}

/// The fields every decode launch of `plan` shares; pointers to tables, lengths and outputs are 0.
fn base_params(plan: &DecodePlan, sc: &Scalars, q: u64, k: u64, v: u64, alibi: u64) -> DecodeParams {
    let (shape, layout) = (plan.shape, plan.layout);
    let unit = if sc.softcap > 0.0 { sc.softcap } else { sc.scale };
    DecodeParams {
        q,
        k_cache: k,
        v_cache: v,
        block_table: 0,
        seq_lens: 0,
        q_extra: 0,
        alibi_slopes: alibi,
        sinks: 0,
        k_scale: 0,
        v_scale: 0,
        o: 0,
        lse: 0,
        part_o: 0,
        part_lse: 0,
        pages_per_seq: layout.pages_per_seq as i64,
        num_pages: layout.num_pages as i32,
        page_shift: layout.page_size.trailing_zeros() as i32,
        q_len: shape.q_len as i32,
        samples: 1,
        tokens: (shape.batch * shape.q_len) as i32,
        heads: shape.heads as i32,
        kv_heads: layout.kv_heads as i32,
        head_dim: layout.head_dim as i32,
        group: (shape.heads / layout.kv_heads) as i32,
        row_tiles: plan.row_tiles as i32,
        chunk: plan.chunk as i32,
        slot_offset: 0,
        causal: sc.causal as i32,
        window_left: sc.window_left,
        scale_log2: unit * std::f32::consts::LOG2_E,
        softcap_prescale: if sc.softcap > 0.0 { sc.scale / sc.softcap } else { 0.0 },
        alibi_unit: 1.0 / unit,
        pad: 0,
    }
}

fn launch_decode<T: Float>(dev: &Device, plan: &DecodePlan, params: &DecodeParams) -> Result<()> {
    let fp8 = params.k_scale != 0;
    // fp8 caches have 128 and 256 instantiations (their byte tiles need 128-byte rows).
    let kd = if fp8 { plan.kernel_dim.max(128) } else { plan.kernel_dim };
    let dims = LaunchDims {
        grid: [(plan.layout.kv_heads * plan.row_tiles) as u32, plan.shape.batch as u32, plan.splits as u32],
        block: [THREADS, 1, 1],
        dynamic_smem: smem_bytes(kd, fp8),
    };
    let kernel = format!("decode_attention_{}{}_d{kd}", if fp8 { "fp8_" } else { "" }, T::NAME);
    dev.launch(&kernels::ATTENTION_DECODE, &kernel, dims, params)
}

#[allow(clippy::too_many_arguments)]
fn launch_merge<T: Float>(
    dev: &Device,
    (part_o, part_lse): (u64, u64),
    slots: usize,
    rows: usize,
    heads: usize,
    head_dim: usize,
    sinks: u64,
    (o, lse): (u64, u64),
) -> Result<()> {
    let params = DecodeMergeParams {
        part_o,
        part_lse,
        sinks,
        o,
        lse,
        rows: rows as i64,
        slots: slots as i32,
        heads: heads as i32,
        head_dim: head_dim as i32,
        pad: 0,
    };
    let dims = LaunchDims { grid: [rows.div_ceil(4) as u32, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::ATTENTION_DECODE, &format!("decode_merge_{}", T::NAME), dims, &params)
}

/// The fewest bytes a decode step moves: each sequence's K and V rows once per kv head
/// (`2 x len x kv_heads x head_dim x elem_bytes`), q read and out written once, and the fp32 LSE
/// when asked for. [`decode_kv_bytes`] is the K/V part alone.
pub fn decode_min_bytes(shape: DecodeShape, layout: &PagedLayout, lens: &[i32], elem_bytes: usize, lse: bool) -> u64 {
    let q_out = 2 * shape.batch * shape.q_len * shape.heads * layout.head_dim * elem_bytes;
    decode_kv_bytes(layout, lens, elem_bytes)
        + (q_out + if lse { 4 * shape.batch * shape.q_len * shape.heads } else { 0 }) as u64
}

/// K/V bytes of `lens` keys per sequence read once per kv head.
pub fn decode_kv_bytes(layout: &PagedLayout, lens: &[i32], elem_bytes: usize) -> u64 {
    let keys: u64 = lens.iter().map(|&l| l.max(0) as u64).sum();
    2 * keys * (layout.kv_heads * layout.head_dim * elem_bytes) as u64
}

/// Device pointers of the options' optional arrays: the LSE output, the ALiBi slopes, the sinks.
#[allow(clippy::type_complexity)]
fn option_ptrs<'p>(
    dev: &'p Device,
    opts: &'p mut DecodeOptions<'_>,
) -> Result<(Option<crate::device::ArgPtr<'p>>, Option<crate::device::ArgPtr<'p>>, Option<crate::device::ArgPtr<'p>>)> {
    let DecodeOptions { lse, alibi_slopes, sinks, .. } = opts;
    Ok((
        lse.as_mut().map(|l| dev.ptr_mut("lse", l)).transpose()?,
        alibi_slopes.as_ref().map(|a| dev.ptr("alibi_slopes", a)).transpose()?,
        sinks.as_ref().map(|x| dev.ptr("sinks", x)).transpose()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn params_match_the_c_structs_and_the_ptx() {
        assert_eq!(size_of::<DecodeParams>(), 192);
        assert_eq!(std::mem::offset_of!(DecodeParams, pages_per_seq), 112);
        assert_eq!(std::mem::offset_of!(DecodeParams, scale_log2), 176);
        assert_eq!(size_of::<DecodeMergeParams>(), 64);
        assert_eq!(size_of::<DecodeAppendParams>(), 80);
        let module = ptx_vm::Module::parse(kernels::ATTENTION_DECODE.ptx).unwrap();
        for t in ["bf16", "f16"] {
            for d in [64, 128, 256] {
                let k = format!("decode_attention_{t}_d{d}");
                assert_eq!(module.param_size(&k), Some(size_of::<DecodeParams>()), "{k}");
                if d > 64 {
                    let k = format!("decode_attention_fp8_{t}_d{d}");
                    assert_eq!(module.param_size(&k), Some(size_of::<DecodeParams>()), "{k}");
                }
            }
            let k = format!("decode_merge_{t}");
            assert_eq!(module.param_size(&k), Some(size_of::<DecodeMergeParams>()), "{k}");
        }
        assert_eq!(module.param_size("decode_append"), Some(size_of::<DecodeAppendParams>()));
    }

    #[test]
    fn the_plan_fills_the_gpu_at_long_context_and_not_at_large_batch() {
        let layout = PagedLayout { num_pages: 1 << 14, page_size: 16, kv_heads: 8, head_dim: 128, pages_per_seq: 8192 };
        let p = DecodePlan::new(132, DecodeShape { batch: 1, q_len: 1, heads: 64 }, layout, &[128 * 1024]).unwrap();
        assert!(8 * p.splits() >= 2 * 132, "{p:?}");
        assert_eq!(p.chunk() % 64, 0);
        assert!(p.splits() * p.chunk() >= 128 * 1024);
        let layout = PagedLayout { pages_per_seq: 256, ..layout };
        let p = DecodePlan::new(132, DecodeShape { batch: 64, q_len: 1, heads: 64 }, layout, &[4096; 64]).unwrap();
        assert_eq!(p.splits(), 1);
        assert_eq!(p.workspace_len(), 0);
        // Forced: never more splits than tiles.
        let p = DecodePlan::with_splits(DecodeShape { batch: 1, q_len: 1, heads: 8 }, layout, &[100], 50).unwrap();
        assert_eq!((p.splits(), p.chunk()), (2, 64));
        assert_eq!(p.workspace_len(), 2 * 8 * 129);
    }

    #[test]
    fn smem_fits_sm80() {
        assert!(smem_bytes(256, false) <= 163 * 1024);
        assert!(smem_bytes(256, true) <= 163 * 1024);
        assert_eq!(smem_bytes(128, false), 16384 + 65536 + 512 + 1024);
    }
}
