//! Attention forward for pretraining and prefill (`kernels/attention/fwd.cu`): FlashAttention-2-style
//! on mma.sync tensor cores, fixed-length and packed variable-length batches.

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::AttnFwdParams;

/// Threads per CTA (`AttnFwdTraits::kThreads`: 4 warps).
const THREADS: u32 = 128;
/// Query rows per CTA (`kBlockM`): 128 for d <= 128, 64 for d = 256.
fn block_m(kernel_dim: usize) -> usize {
    if kernel_dim <= 128 {
        128
    } else {
        64
    }
}
/// Largest grid y / z extent (heads, sequences).
const MAX_GRID_YZ: usize = 65535;
/// Largest head dim of an instantiation.
const MAX_HEAD_DIM: usize = 256;

/// The shape of a fixed-length batch: `q` is `[batch * seqlen_q, heads, head_dim]`, `k` and `v` are
/// `[batch * seqlen_k, kv_heads, head_dim]`, `out` is like `q` (token rows may be strided, see
/// [`AttnOptions::row_strides`]). The names are `flash_attn_func`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Sequences.
    pub batch: usize,
    /// Query tokens per sequence.
    pub seqlen_q: usize,
    /// Key/value tokens per sequence (may differ from `seqlen_q` either way).
    pub seqlen_k: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads: `heads % kv_heads == 0` (GQA; `kv_heads == 1` is MQA). When `seqlen_q` is
    /// below the kernel's query tile (128 rows for d <= 128, 64 for d = 256), the query heads of a
    /// group share one tile, so each K/V tile is read once per group.
    pub kv_heads: usize,
    /// Elements per head: a multiple of 8 up to 256. 64, 128 and 256 have their own kernels; any
    /// other value runs on the next larger one with the extra columns masked (zero-filled, never
    /// read or written).
    pub head_dim: usize,
}

/// The heads and head dim of a packed variable-length batch; the sequence boundaries are the
/// `cu_seqlens` arguments of [`attention_fwd_varlen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarlenShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads % kv_heads == 0`).
    pub kv_heads: usize,
    /// Elements per head (as [`AttnShape::head_dim`]).
    pub head_dim: usize,
}

/// Elements between consecutive token rows of each tensor. The default (`None` in
/// [`AttnOptions`]) is contiguous: `heads * head_dim` for q and out, `kv_heads * head_dim` for k and
/// v. A fused QKV buffer `[tokens, 3, heads, head_dim]` is three views at offsets 0, `heads *
/// head_dim` and `2 * heads * head_dim`, each with row stride `3 * heads * head_dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowStrides {
    /// Row stride of q.
    pub q: usize,
    /// Row stride of k.
    pub k: usize,
    /// Row stride of v.
    pub v: usize,
    /// Row stride of out.
    pub out: usize,
}

/// Options of [`attention_fwd`] and [`attention_fwd_varlen`], named as in FlashAttention's
/// `flash_attn_func`. Build with `AttnOptions::default()` and the setters.
pub struct AttnOptions<'a> {
    /// Causal masking, aligned to the bottom right: query row `i` of a sequence sees keys
    /// `j <= i + seqlen_k - seqlen_q` (FlashAttention >= 2.1). Same as `window.1 = 0`.
    pub causal: bool,
    /// Sliding window `(left, right)`: row `i` sees keys `i' - left <= j <= i' + right` with
    /// `i' = i + seqlen_k - seqlen_q`; `-1` leaves that side unbounded. With `causal`, `right` must be
    /// `-1` or `0`.
    pub window: (i32, i32),
    /// Logit softcap `c > 0`: scores become `c * tanh(scale * q.k / c)`; `0` disables it.
    pub softcap: f32,
    /// Softmax scale; `None` is `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// ALiBi slopes, one fp32 per query head: score(i, j) gets `-slope * |i' - j|` added after scale
    /// and softcap.
    pub alibi_slopes: Option<View<'a, f32>>,
    /// Attention sinks, one fp32 logit per query head: `e^sink` joins every row's softmax
    /// denominator but carries no value (as gpt-oss uses them).
    pub sinks: Option<View<'a, f32>>,
    /// Log-sum-exp out, `[heads, total_q]` fp32, natural log, including the sink when there is one.
    /// A row with no visible key gets `-inf` (or the sink logit).
    pub lse: Option<ViewMut<'a, f32>>,
    /// Token row strides; `None` is contiguous.
    pub row_strides: Option<RowStrides>,
}

impl Default for AttnOptions<'_> {
    fn default() -> Self {
        AttnOptions {
            causal: false,
            window: (-1, -1),
            softcap: 0.0,
            scale: None,
            alibi_slopes: None,
            sinks: None,
            lse: None,
            row_strides: None,
        }
    }
}

impl<'a> AttnOptions<'a> {
    /// Sets [`AttnOptions::causal`].
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }
    /// Sets [`AttnOptions::window`] (`-1` = unbounded).
    pub fn window(mut self, left: i32, right: i32) -> Self {
        self.window = (left, right);
        self
    }
    /// Sets [`AttnOptions::softcap`].
    pub fn softcap(mut self, softcap: f32) -> Self {
        self.softcap = softcap;
        self
    }
    /// Sets [`AttnOptions::scale`].
    pub fn scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }
    /// Sets [`AttnOptions::alibi_slopes`].
    pub fn alibi_slopes(mut self, slopes: View<'a, f32>) -> Self {
        self.alibi_slopes = Some(slopes);
        self
    }
    /// Sets [`AttnOptions::sinks`].
    pub fn sinks(mut self, sinks: View<'a, f32>) -> Self {
        self.sinks = Some(sinks);
        self
    }
    /// Sets [`AttnOptions::lse`].
    pub fn lse(mut self, lse: ViewMut<'a, f32>) -> Self {
        self.lse = Some(lse);
        self
    }
    /// Sets [`AttnOptions::row_strides`].
    pub fn row_strides(mut self, strides: RowStrides) -> Self {
        self.row_strides = Some(strides);
        self
    }
}

/// Everything the launch needs, decided by validation alone (no device involved).
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    /// The instantiated head dim (64, 128 or 256).
    kernel_dim: usize,
    strides: RowStrides,
    total_q: usize,
    max_seqlen_q: usize,
    batch: usize,
    window: (i32, i32),
    scale: f32,
}

/// The view lengths and scalar options validation looks at.
#[derive(Debug, Clone, Copy)]
struct Lens {
    q: usize,
    k: usize,
    v: usize,
    out: usize,
    lse: Option<usize>,
    alibi: Option<usize>,
    sinks: Option<usize>,
}

fn lens<T: crate::device::Element>(
    q: &View<'_, T>,
    k: &View<'_, T>,
    v: &View<'_, T>,
    out: &ViewMut<'_, T>,
    o: &AttnOptions<'_>,
) -> Lens {
    Lens {
        q: q.len(),
        k: k.len(),
        v: v.len(),
        out: out.len(),
        lse: o.lse.as_ref().map(|l| l.len()),
        alibi: o.alibi_slopes.as_ref().map(|l| l.len()),
        sinks: o.sinks.as_ref().map(|l| l.len()),
    }
}

/// Scalar options as validation sees them.
#[derive(Debug, Clone, Copy)]
struct Scalars {
    causal: bool,
    window: (i32, i32),
    softcap: f32,
    scale: Option<f32>,
    strides: Option<RowStrides>,
}

impl Scalars {
    fn of(o: &AttnOptions<'_>) -> Self {
        Scalars { causal: o.causal, window: o.window, softcap: o.softcap, scale: o.scale, strides: o.row_strides }
    }
}

/// Elements a tensor of `rows` token rows of `width` elements, `stride` apart, spans.
fn span(rows: usize, stride: usize, width: usize) -> Option<usize> {
    if rows == 0 {
        Some(0)
    } else {
        (rows - 1).checked_mul(stride)?.checked_add(width)
    }
}

/// Validates heads, head dim, options and every length; `total_q` / `total_k` are token rows.
fn validate(
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    total_q: usize,
    total_k: usize,
    lens: Lens,
    s: Scalars,
) -> Result<(usize, RowStrides, (i32, i32), f32)> {
    if heads == 0 || heads > MAX_GRID_YZ {
        return Err(Error::invalid("heads", format!("1..={MAX_GRID_YZ}"), heads));
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(Error::invalid("kv_heads", format!("a divisor of heads ({heads})"), kv_heads));
    }
    if head_dim == 0 || !head_dim.is_multiple_of(8) || head_dim > MAX_HEAD_DIM {
        return Err(Error::invalid("head_dim", "a multiple of 8 in 8..=256", head_dim));
    }
    let kernel_dim = [64, 128, 256].into_iter().find(|&d| d >= head_dim).unwrap_or(MAX_HEAD_DIM);
    let (left, right) = s.window;
    if left < -1 || right < -1 {
        return Err(Error::invalid("window", "each side -1 (unbounded) or >= 0", format!("{:?}", s.window)));
    }
    if s.causal && right > 0 {
        return Err(Error::invalid("window", "a right side of -1 or 0 with causal", format!("{:?}", s.window)));
    }
    if !(s.softcap.is_finite() && s.softcap >= 0.0) {
        return Err(Error::invalid("softcap", "a finite value >= 0 (0 = off)", s.softcap));
    }
    let scale = s.scale.unwrap_or(1.0 / (head_dim as f32).sqrt());
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid("scale", "a finite value > 0", scale));
    }
    let rows_max = i32::MAX as usize;
    if total_q > rows_max {
        return Err(Error::invalid("q", format!("at most {rows_max} token rows"), total_q));
    }
    if total_k > rows_max {
        return Err(Error::invalid("k", format!("at most {rows_max} token rows"), total_k));
    }
    let (qw, kw) = (heads * head_dim, kv_heads * head_dim);
    let strides = s.strides.unwrap_or(RowStrides { q: qw, k: kw, v: kw, out: qw });
    for (name, stride, width) in [
        ("row_strides.q", strides.q, qw),
        ("row_strides.k", strides.k, kw),
        ("row_strides.v", strides.v, kw),
        ("row_strides.out", strides.out, qw),
    ] {
        if stride < width || !stride.is_multiple_of(8) || stride > i64::MAX as usize {
            return Err(Error::invalid(
                name,
                format!("a multiple of 8 elements >= {width} (heads * head_dim)"),
                stride,
            ));
        }
    }
    for (name, len, rows, stride, width) in [
        ("q", lens.q, total_q, strides.q, qw),
        ("k", lens.k, total_k, strides.k, kw),
        ("v", lens.v, total_k, strides.v, kw),
        ("out", lens.out, total_q, strides.out, qw),
    ] {
        let need = span(rows, stride, width).ok_or_else(|| {
            Error::invalid(name, "a size that fits in usize", format!("{rows} rows of stride {stride}"))
        })?;
        if len < need {
            return Err(Error::invalid(
                name,
                format!("at least {need} elements ({rows} token rows, row stride {stride}, {width} per row)"),
                format!("{len} elements"),
            ));
        }
    }
    if let Some(len) = lens.lse {
        if len != heads * total_q {
            return Err(Error::invalid("lse", format!("{} elements (heads * total_q)", heads * total_q), len));
        }
    }
    for (name, len) in [("alibi_slopes", lens.alibi), ("sinks", lens.sinks)] {
        if let Some(len) = len {
            if len != heads {
                return Err(Error::invalid(name, format!("{heads} elements (one per query head)"), len));
            }
        }
    }
    let window = if s.causal { (left, 0) } else { (left, right) };
    Ok((kernel_dim, strides, window, scale))
}

/// Checks a host copy of `cu_seqlens`: starts at 0, never decreases, every length fits the kernel.
fn check_cu_seqlens(name: &'static str, cu: &[i32]) -> Result<usize> {
    if cu.is_empty() {
        return Err(Error::invalid(name, "at least one offset (batch + 1)", "an empty array"));
    }
    if cu[0] != 0 {
        return Err(Error::invalid(name, "a first offset of 0", cu[0]));
    }
    let mut max = 0usize;
    for (b, w) in cu.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(Error::invalid(
                name,
                "non-decreasing offsets",
                format!("[{b}] = {} > [{}] = {}", w[0], b + 1, w[1]),
            ));
        }
        max = max.max((w[1] - w[0]) as usize);
    }
    Ok(max)
}

/// Attention forward over a fixed-length batch: `out = softmax(scale q k^T + masks) v` per query
/// head, fp32 accumulation, in `T` = `bf16` or `f16`. See [`AttnOptions`] for causal, window,
/// softcap, ALiBi, sinks, the LSE output and strided rows; `kv_heads < heads` is GQA/MQA.
///
/// A query row that sees no key (all masked, or `seqlen_k = 0`) gets `out = 0` and `lse = -inf`
/// (with a sink: `lse` = the sink logit), never NaN. Every argument is checked before launch.
/// Needs 16-byte aligned views (row strides are multiples of 8 elements).
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use half::bf16;
/// use scaling_kernels::attention::{attention_fwd, AttnOptions, AttnShape};
/// use scaling_kernels::Device;
/// let dev = Device::default();
/// let shape = AttnShape { batch: 1, seqlen_q: 3, seqlen_k: 3, heads: 2, kv_heads: 1, head_dim: 64 };
/// let q = dev.upload(&vec![bf16::from_f32(0.5); 3 * 2 * 64])?;
/// let kv = dev.upload(&vec![bf16::ONE; 3 * 64])?;
/// let mut out = dev.alloc_zeros::<bf16>(3 * 2 * 64)?;
/// let mut lse = dev.alloc_zeros::<f32>(2 * 3)?;
/// let opts = AttnOptions::default().causal(true).lse(lse.view_mut());
/// attention_fwd(&dev, &q.view(), &kv.view(), &kv.view(), &mut out.view_mut(), shape, opts)?;
/// assert_eq!(dev.download(&out)?[0], bf16::ONE); // every value row is all ones
/// # Ok(()) }
/// ```
pub fn attention_fwd<T: Float>(
    dev: &Device,
    q: &View<'_, T>,
    k: &View<'_, T>,
    v: &View<'_, T>,
    out: &mut ViewMut<'_, T>,
    shape: AttnShape,
    opts: AttnOptions<'_>,
) -> Result<()> {
    let AttnShape { batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim } = shape;
    if batch > MAX_GRID_YZ {
        return Err(Error::invalid("shape.batch", format!("at most {MAX_GRID_YZ}"), batch));
    }
    let total_q = batch
        .checked_mul(seqlen_q)
        .ok_or_else(|| Error::invalid("shape", "batch * seqlen_q to fit in usize", format!("{shape:?}")))?;
    let total_k = batch
        .checked_mul(seqlen_k)
        .ok_or_else(|| Error::invalid("shape", "batch * seqlen_k to fit in usize", format!("{shape:?}")))?;
    let (kernel_dim, strides, window, scale) =
        validate(heads, kv_heads, head_dim, total_q, total_k, lens(q, k, v, out, &opts), Scalars::of(&opts))?;
    let plan = Plan { kernel_dim, strides, total_q, max_seqlen_q: seqlen_q, batch, window, scale };
    launch(dev, q, k, v, out, (heads, kv_heads, head_dim), (seqlen_q, seqlen_k), None, &plan, opts)
}

/// Attention forward over a packed variable-length batch (`flash_attn_varlen_func`): sequence `b`
/// has query rows `cu_seqlens_q[b]..cu_seqlens_q[b + 1]` of `q` and `out`, and key rows
/// `cu_seqlens_k[b]..cu_seqlens_k[b + 1]` of `k` and `v`; a sequence may be empty and its query and
/// key lengths may differ. Options as [`attention_fwd`].
///
/// `cu_seqlens_q` / `cu_seqlens_k` are the device arrays the kernel reads; `host_cu_seqlens_q` /
/// `host_cu_seqlens_k` are the caller's host copies, which are validated (start at 0, never
/// decrease) and decide the grid. The two must hold the same offsets: that is the caller's
/// contract, checked by a download in debug builds.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd_varlen<T: Float>(
    dev: &Device,
    q: &View<'_, T>,
    k: &View<'_, T>,
    v: &View<'_, T>,
    out: &mut ViewMut<'_, T>,
    cu_seqlens_q: &View<'_, i32>,
    cu_seqlens_k: &View<'_, i32>,
    host_cu_seqlens_q: &[i32],
    host_cu_seqlens_k: &[i32],
    shape: VarlenShape,
    opts: AttnOptions<'_>,
) -> Result<()> {
    let max_seqlen_q = check_cu_seqlens("host_cu_seqlens_q", host_cu_seqlens_q)?;
    check_cu_seqlens("host_cu_seqlens_k", host_cu_seqlens_k)?;
    if host_cu_seqlens_k.len() != host_cu_seqlens_q.len() {
        return Err(Error::invalid(
            "host_cu_seqlens_k",
            format!("{} offsets (as host_cu_seqlens_q)", host_cu_seqlens_q.len()),
            host_cu_seqlens_k.len(),
        ));
    }
    for (name, dev_len) in [("cu_seqlens_q", cu_seqlens_q.len()), ("cu_seqlens_k", cu_seqlens_k.len())] {
        if dev_len != host_cu_seqlens_q.len() {
            return Err(Error::invalid(
                name,
                format!("{} offsets (as the host copy)", host_cu_seqlens_q.len()),
                dev_len,
            ));
        }
    }
    let batch = host_cu_seqlens_q.len() - 1;
    if batch > MAX_GRID_YZ {
        return Err(Error::invalid("host_cu_seqlens_q", format!("at most {MAX_GRID_YZ} sequences"), batch));
    }
    let total_q = *host_cu_seqlens_q.last().unwrap_or(&0) as usize;
    let total_k = *host_cu_seqlens_k.last().unwrap_or(&0) as usize;
    let VarlenShape { heads, kv_heads, head_dim } = shape;
    let (kernel_dim, strides, window, scale) =
        validate(heads, kv_heads, head_dim, total_q, total_k, lens(q, k, v, out, &opts), Scalars::of(&opts))?;
    if cfg!(debug_assertions) {
        for (name, view, host) in
            [("cu_seqlens_q", cu_seqlens_q, host_cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k, host_cu_seqlens_k)]
        {
            if dev.download(view.slice(..)?)? != host {
                return Err(Error::invalid(name, "the same offsets as its host copy", "different offsets"));
            }
        }
    }
    let plan = Plan { kernel_dim, strides, total_q, max_seqlen_q, batch, window, scale };
    launch(dev, q, k, v, out, (heads, kv_heads, head_dim), (0, 0), Some((cu_seqlens_q, cu_seqlens_k)), &plan, opts)
}

#[allow(clippy::too_many_arguments)]
fn launch<T: Float>(
    dev: &Device,
    q: &View<'_, T>,
    k: &View<'_, T>,
    v: &View<'_, T>,
    out: &mut ViewMut<'_, T>,
    (heads, kv_heads, head_dim): (usize, usize, usize),
    (seqlen_q, seqlen_k): (usize, usize),
    cu: Option<(&View<'_, i32>, &View<'_, i32>)>,
    plan: &Plan,
    mut opts: AttnOptions<'_>,
) -> Result<()> {
    if !matches!(T::NAME, "bf16" | "f16") {
        return Err(Error::invalid("q", "bf16 or f16 elements", T::NAME));
    }
    if plan.batch == 0 || plan.max_seqlen_q == 0 {
        return Ok(());
    }
    let pq = dev.ptr("q", q)?;
    let pk = dev.ptr("k", k)?;
    let pv = dev.ptr("v", v)?;
    let po = dev.ptr_mut("out", out)?;
    for (name, addr) in [("q", pq.addr), ("k", pk.addr), ("v", pv.addr), ("out", po.addr)] {
        if !addr.is_multiple_of(16) {
            return Err(Error::invalid(name, "a 16-byte aligned start", format!("address {addr:#x}")));
        }
    }
    let pl = match opts.lse.as_mut() {
        Some(l) => Some(dev.ptr_mut("lse", l)?),
        None => None,
    };
    let pa = match opts.alibi_slopes.as_ref() {
        Some(a) => Some(dev.ptr("alibi_slopes", a)?),
        None => None,
    };
    let ps = match opts.sinks.as_ref() {
        Some(s) => Some(dev.ptr("sinks", s)?),
        None => None,
    };
    let (pcq, pck) = match cu {
        Some((cq, ck)) => (Some(dev.ptr("cu_seqlens_q", cq)?), Some(dev.ptr("cu_seqlens_k", ck)?)),
        None => (None, None),
    };
    let addr = |p: &Option<crate::device::ArgPtr<'_>>| p.as_ref().map_or(0, |p| p.addr);
    // GQA with short queries: a query tile would be mostly empty, so the group's heads share it as
    // extra rows and each K/V tile is loaded once per group instead of once per head.
    let bm = block_m(plan.kernel_dim);
    let group = heads / kv_heads;
    let pack = if group > 1 && plan.max_seqlen_q < bm { group } else { 1 };
    let log2e = std::f32::consts::LOG2_E;
    let softcap = opts.softcap;
    let unit = if softcap > 0.0 { softcap } else { plan.scale };
    let params = AttnFwdParams {
        q: pq.addr,
        k: pk.addr,
        v: pv.addr,
        o: po.addr,
        lse: addr(&pl),
        cu_seqlens_q: addr(&pcq),
        cu_seqlens_k: addr(&pck),
        alibi_slopes: addr(&pa),
        sinks: addr(&ps),
        q_row_stride: plan.strides.q as i64,
        k_row_stride: plan.strides.k as i64,
        v_row_stride: plan.strides.v as i64,
        o_row_stride: plan.strides.out as i64,
        seqlen_q: seqlen_q as i32,
        seqlen_k: seqlen_k as i32,
        total_q: plan.total_q as i32,
        heads: heads as i32,
        kv_heads: kv_heads as i32,
        head_dim: head_dim as i32,
        window_left: plan.window.0,
        window_right: plan.window.1,
        scale_log2: unit * log2e,
        softcap_prescale: if softcap > 0.0 { plan.scale / softcap } else { 0.0 },
        alibi_unit: 1.0 / unit,
        pack: pack as i32,
    };
    let dims = LaunchDims {
        grid: [(plan.max_seqlen_q * pack).div_ceil(bm) as u32, (heads / pack) as u32, plan.batch as u32],
        block: [THREADS, 1, 1],
        dynamic_smem: smem_bytes(plan.kernel_dim),
    };
    let kernel = format!("attention_fwd_{}_d{}", T::NAME, plan.kernel_dim);
    dev.launch(&kernels::ATTENTION_FWD, &kernel, dims, &params)
}

/// Dynamic shared memory of an instantiation: the Q tile plus two stages of K and V tiles
/// (`AttnFwdTraits::kSmemBytes`). At d = 128 (64-key tiles) that is 96 KiB: two CTAs per SM on
/// H100/H200 (228 KiB), one on A100 (164 KiB), where single-buffered K/V would fit two.
fn smem_bytes(kernel_dim: usize) -> u32 {
    let block_n = if kernel_dim <= 128 { 64 } else { 32 };
    // + 32 bytes per warp (4 warps) of per-warp key bounds and scalars.
    (2 * (block_m(kernel_dim) * kernel_dim + 2 * 2 * block_n * kernel_dim) + 4 * 32) as u32
}

/// Keys row `i` (of `seqlen_q`) sees among `seqlen_k`, under `causal` and `window` as in
/// [`AttnOptions`].
pub fn visible_keys(i: usize, seqlen_q: usize, seqlen_k: usize, causal: bool, window: (i32, i32)) -> usize {
    let aligned = i as i64 + seqlen_k as i64 - seqlen_q as i64;
    let right = if causal { 0 } else { window.1 };
    let lo = if window.0 >= 0 { (aligned - window.0 as i64).max(0) } else { 0 };
    let hi = if right >= 0 { (aligned + right as i64).min(seqlen_k as i64 - 1) } else { seqlen_k as i64 - 1 };
    (hi - lo + 1).max(0) as usize
}

/// FLOPs of one sequence's attention forward in FlashAttention's convention: `4 * head_dim` per
/// visible (query, key) pair and head (`2 d` for `q.k`, `2 d` for `p v`), so `4 Sq Sk d` per head
/// without masks, and the exact visible count with causal or window masks (about half for causal
/// at `Sq = Sk`; FlashAttention's benchmarks halve exactly). Sum over a varlen batch's sequences.
pub fn attention_fwd_flops(
    seqlen_q: usize,
    seqlen_k: usize,
    heads: usize,
    head_dim: usize,
    causal: bool,
    window: (i32, i32),
) -> u64 {
    let pairs: u64 = (0..seqlen_q).map(|i| visible_keys(i, seqlen_q, seqlen_k, causal, window) as u64).sum();
    4 * head_dim as u64 * heads as u64 * pairs
}

/// The fewest bytes one sequence's forward moves: q, k, v read once, out written once, and the
/// fp32 LSE when asked for; `elem_bytes` is 2 for bf16/f16.
pub fn attention_fwd_min_bytes(
    seqlen_q: usize,
    seqlen_k: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    elem_bytes: usize,
    lse: bool,
) -> u64 {
    let q_out = 2 * seqlen_q * heads * head_dim * elem_bytes;
    let kv = 2 * seqlen_k * kv_heads * head_dim * elem_bytes;
    (q_out + kv + if lse { 4 * seqlen_q * heads } else { 0 }) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    const LENS: Lens =
        Lens { q: 4 * 2 * 64, k: 5 * 64, v: 5 * 64, out: 4 * 2 * 64, lse: None, alibi: None, sinks: None };
    const S: Scalars = Scalars { causal: false, window: (-1, -1), softcap: 0.0, scale: None, strides: None };

    fn check(
        heads: usize,
        kv: usize,
        d: usize,
        lens: Lens,
        s: Scalars,
    ) -> Result<(usize, RowStrides, (i32, i32), f32)> {
        validate(heads, kv, d, 4, 5, lens, s)
    }

    #[test]
    fn valid_arguments_pick_the_instantiation() {
        let (dim, strides, window, scale) = check(2, 1, 64, LENS, S).unwrap();
        assert_eq!((dim, window, scale), (64, (-1, -1), 0.125));
        assert_eq!(strides, RowStrides { q: 128, k: 64, v: 64, out: 128 });
        let lens = Lens { q: 4 * 160, k: 5 * 80, v: 5 * 80, out: 4 * 160, ..LENS };
        assert_eq!(check(2, 1, 80, lens, S).unwrap().0, 128);
        assert_eq!(check(2, 1, 80, lens, Scalars { causal: true, window: (3, -1), ..S }).unwrap().2, (3, 0));
    }

    #[test]
    fn each_bad_argument_is_named() {
        assert_eq!(err_name(check(0, 1, 64, LENS, S)), "heads");
        assert_eq!(err_name(check(2, 3, 64, LENS, S)), "kv_heads");
        assert_eq!(err_name(check(2, 1, 60, LENS, S)), "head_dim");
        assert_eq!(err_name(check(2, 1, 264, LENS, S)), "head_dim");
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { window: (-2, 0), ..S })), "window");
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { causal: true, window: (-1, 4), ..S })), "window");
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { softcap: -1.0, ..S })), "softcap");
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { softcap: f32::NAN, ..S })), "softcap");
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { scale: Some(0.0), ..S })), "scale");
        assert_eq!(err_name(check(2, 1, 64, Lens { q: 511, ..LENS }, S)), "q");
        assert_eq!(err_name(check(2, 1, 64, Lens { k: 5 * 64 - 1, ..LENS }, S)), "k");
        assert_eq!(err_name(check(2, 1, 64, Lens { v: 0, ..LENS }, S)), "v");
        assert_eq!(err_name(check(2, 1, 64, Lens { out: 1, ..LENS }, S)), "out");
        assert_eq!(err_name(check(2, 1, 64, Lens { lse: Some(7), ..LENS }, S)), "lse");
        assert_eq!(err_name(check(2, 1, 64, Lens { alibi: Some(1), ..LENS }, S)), "alibi_slopes");
        assert_eq!(err_name(check(2, 1, 64, Lens { sinks: Some(3), ..LENS }, S)), "sinks");
        let strides = |q, k| Some(RowStrides { q, k, v: 64, out: 128 });
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { strides: strides(120, 64), ..S })), "row_strides.q");
        assert_eq!(err_name(check(2, 1, 64, LENS, Scalars { strides: strides(128, 68), ..S })), "row_strides.k");
    }

    #[test]
    fn error_messages_say_what_was_expected() {
        let e = check(2, 1, 64, Lens { q: 511, ..LENS }, S).unwrap_err();
        assert_eq!(
            e.to_string(),
            "q: expected at least 512 elements (4 token rows, row stride 128, 128 per row), got 511 elements"
        );
        let e = check(2, 1, 72, LENS, Scalars { causal: true, window: (-1, 2), ..S }).unwrap_err();
        assert_eq!(e.to_string(), "window: expected a right side of -1 or 0 with causal, got (-1, 2)");
    }

    #[test]
    fn cu_seqlens_must_start_at_zero_and_not_decrease() {
        assert_eq!(check_cu_seqlens("c", &[0, 3, 3, 10]), Ok(7));
        assert_eq!(check_cu_seqlens("c", &[0]), Ok(0));
        assert_eq!(err_name(check_cu_seqlens("c", &[])), "c");
        assert_eq!(err_name(check_cu_seqlens("c", &[1, 3])), "c");
        let e = check_cu_seqlens("host_cu_seqlens_k", &[0, 4, 2]).unwrap_err();
        assert_eq!(e.to_string(), "host_cu_seqlens_k: expected non-decreasing offsets, got [1] = 4 > [2] = 2");
    }

    #[test]
    fn flops_count_visible_pairs() {
        assert_eq!(attention_fwd_flops(4, 4, 1, 8, false, (-1, -1)), 4 * 8 * 16);
        // Causal, square: 1 + 2 + 3 + 4 pairs.
        assert_eq!(attention_fwd_flops(4, 4, 2, 8, true, (-1, -1)), 4 * 8 * 2 * 10);
        // Bottom-right alignment: 2 queries over 5 keys see 4 and 5 keys.
        assert_eq!(attention_fwd_flops(2, 5, 1, 8, true, (-1, -1)), 4 * 8 * 9);
        // 5 queries over 2 keys: the first three see nothing.
        assert_eq!(attention_fwd_flops(5, 2, 1, 8, true, (-1, -1)), 4 * 8 * 3);
        // Window (1, 1) over 4x4: 2 + 3 + 3 + 2.
        assert_eq!(attention_fwd_flops(4, 4, 1, 8, false, (1, 1)), 4 * 8 * 10);
        assert_eq!(
            attention_fwd_min_bytes(3, 5, 4, 2, 64, 2, true),
            (2 * 3 * 4 * 64 * 2 + 2 * 5 * 2 * 64 * 2 + 48) as u64
        );
        assert_eq!(smem_bytes(64), 49152 + 128);
        assert_eq!(smem_bytes(128), 98304 + 128);
        assert_eq!(smem_bytes(256), 98304 + 128);
    }
}
