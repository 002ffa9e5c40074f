//! Attention backward (`kernels/attention/bwd.cu`): dQ, dK, dV (and the sinks' gradient) of
//! [`super::attention_fwd`], deterministic: bit-identical gradients across runs and schedules.
//!
//! Four launches per call: `D = rowsum(dout * out)` into the caller's fp32 workspace, the sinks'
//! gradient (with sinks), a dQ kernel per (64 query rows, head) walking the key tiles, and a dK/dV
//! kernel per (64 keys, kv head) walking the query tiles of its group's heads. No atomics: dQ
//! recomputes the scores instead of adding per-key-tile shares (see the kernel's header).
//!
//! VM counters (`cargo run --release --example sol_report`, bf16, d = 128, batch 1, 16 heads, seq
//! 1024, causal): 24.20 M warp instructions in all (dQ 10.09 M, dK/dV 12.30 M, preprocess 1.82 M),
//! 16.1% of them mma; 11.56 M shared wavefronts with 0 bank conflicts; tensor-core FLOPs 1.486 x
//! the useful [`attention_bwd_flops`] (10.75 G); 42.2 MB read + 12.6 MB written against the fewest
//! 33.6 MB ([`attention_bwd_min_bytes`]). Zero spills on sm_80 and sm_90a.

use bytemuck::{Pod, Zeroable};

use crate::device::{kernels, ArgPtr, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::fwd::{AttnOptions, AttnShape, RowStrides, VarlenShape};

/// `sk::AttnBwdParams` (kernels/attention/bwd_params.cuh): device pointers as `u64` (0 for null).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct AttnBwdParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub o: u64,
    pub dout: u64,
    pub lse: u64,
    pub dq: u64,
    pub dk: u64,
    pub dv: u64,
    pub dsinks: u64,
    pub dot_do_o: u64,
    pub cu_seqlens_q: u64,
    pub cu_seqlens_k: u64,
    pub alibi_slopes: u64,
    pub sinks: u64,
    pub q_row_stride: i64,
    pub k_row_stride: i64,
    pub v_row_stride: i64,
    pub o_row_stride: i64,
    pub do_row_stride: i64,
    pub dq_row_stride: i64,
    pub dk_row_stride: i64,
    pub dv_row_stride: i64,
    pub seqlen_q: i32,
    pub seqlen_k: i32,
    pub total_q: i32,
    pub heads: i32,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub window_left: i32,
    pub window_right: i32,
    pub scale_log2: f32,
    pub softcap_prescale: f32,
    pub grad_scale: f32,
    pub batch: i32,
}

/// Own rows (queries of the dQ kernel, keys of the dK/dV kernel) per CTA.
const BLOCK_ROWS: usize = 64;
/// Warps of the preprocess kernel's CTA (one (token, head) row each).
const DOT_WARPS: usize = 8;
const MAX_GRID_YZ: usize = 65535;
const MAX_HEAD_DIM: usize = 256;

/// Rows per streamed tile (`AttnBwdTraits::kStreamRows`).
fn stream_rows(kernel_dim: usize) -> usize {
    if kernel_dim <= 64 {
        64
    } else {
        32
    }
}

/// Dynamic shared memory of the dQ and dK/dV kernels (`kDqSmem`, `kDkvSmem`).
fn smem_bytes(kernel_dim: usize) -> (u32, u32) {
    let n = stream_rows(kernel_dim);
    let dq = 2 * BLOCK_ROWS * kernel_dim * 2 + 2 * 2 * n * kernel_dim * 2;
    (dq as u32, (dq + 2 * 2 * n * 4) as u32)
}

/// Threads of the dK/dV kernel: 4 warps, 8 at d = 256 (two per key row tile).
fn dkv_threads(kernel_dim: usize) -> u32 {
    if kernel_dim > 128 {
        256
    } else {
        128
    }
}

/// A validated backward problem: the shape of the batch and the workspace it needs. Build it with
/// [`AttnBwdPlan::new`] (fixed length) or [`AttnBwdPlan::varlen`]; the caller allocates
/// [`AttnBwdPlan::workspace_len`] fp32 elements and passes them to every call with this plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttnBwdPlan {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    kernel_dim: usize,
    batch: usize,
    /// Fixed length: the sequence lengths; varlen: 0.
    seqlen: (usize, usize),
    max_seqlen: (usize, usize),
    total: (usize, usize),
    /// Varlen: the host copies of the offsets.
    cu: Option<(Vec<i32>, Vec<i32>)>,
    only: Option<AttnBwdStage>,
}

/// The launches of a backward, in order; [`AttnBwdPlan::only`] runs one of them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttnBwdStage {
    /// `D = rowsum(dout * out)` into the workspace.
    DotDoO,
    /// The sinks' gradient from `D` and the LSE (only with sinks).
    Dsinks,
    /// dq, per (64 query rows, head), walking the key tiles.
    Dq,
    /// dk and dv, per (64 keys, kv head), walking the query tiles of the group's heads.
    Dkv,
}

impl AttnBwdPlan {
    /// A fixed-length batch (as [`super::attention_fwd`]'s `shape`).
    pub fn new(shape: AttnShape) -> Result<AttnBwdPlan> {
        let AttnShape { batch, seqlen_q, seqlen_k, heads, kv_heads, head_dim } = shape;
        if batch > MAX_GRID_YZ {
            return Err(Error::invalid("shape.batch", format!("at most {MAX_GRID_YZ}"), batch));
        }
        let total = |s: usize, what: &'static str| {
            batch
                .checked_mul(s)
                .filter(|&t| t <= i32::MAX as usize)
                .ok_or_else(|| Error::invalid("shape", format!("batch * {what} <= {}", i32::MAX), format!("{shape:?}")))
        };
        let total = (total(seqlen_q, "seqlen_q")?, total(seqlen_k, "seqlen_k")?);
        let kernel_dim = check_heads(heads, kv_heads, head_dim)?;
        Ok(AttnBwdPlan {
            heads,
            kv_heads,
            head_dim,
            kernel_dim,
            batch,
            seqlen: (seqlen_q, seqlen_k),
            max_seqlen: (seqlen_q, seqlen_k),
            total,
            cu: None,
            only: None,
        })
    }

    /// A packed variable-length batch: the host copies of `cu_seqlens_q` / `cu_seqlens_k` (as
    /// [`super::attention_fwd_varlen`]'s), checked to start at 0 and never decrease.
    pub fn varlen(host_cu_seqlens_q: &[i32], host_cu_seqlens_k: &[i32], shape: VarlenShape) -> Result<AttnBwdPlan> {
        let max_q = check_cu_seqlens("host_cu_seqlens_q", host_cu_seqlens_q)?;
        let max_k = check_cu_seqlens("host_cu_seqlens_k", host_cu_seqlens_k)?;
        if host_cu_seqlens_k.len() != host_cu_seqlens_q.len() {
            return Err(Error::invalid(
                "host_cu_seqlens_k",
                format!("{} offsets (as host_cu_seqlens_q)", host_cu_seqlens_q.len()),
                host_cu_seqlens_k.len(),
            ));
        }
        let batch = host_cu_seqlens_q.len() - 1;
        if batch > MAX_GRID_YZ {
            return Err(Error::invalid("host_cu_seqlens_q", format!("at most {MAX_GRID_YZ} sequences"), batch));
        }
        let VarlenShape { heads, kv_heads, head_dim } = shape;
        let kernel_dim = check_heads(heads, kv_heads, head_dim)?;
        let last = |c: &[i32]| *c.last().unwrap_or(&0) as usize;
        Ok(AttnBwdPlan {
            heads,
            kv_heads,
            head_dim,
            kernel_dim,
            batch,
            seqlen: (0, 0),
            max_seqlen: (max_q, max_k),
            total: (last(host_cu_seqlens_q), last(host_cu_seqlens_k)),
            cu: Some((host_cu_seqlens_q.to_vec(), host_cu_seqlens_k.to_vec())),
            only: None,
        })
    }

    /// fp32 elements of the workspace every call with this plan needs: one per (query row, head),
    /// where `D = rowsum(dout * out)` is kept between the launches.
    pub fn workspace_len(&self) -> usize {
        self.heads * self.total.0
    }

    /// The same plan, running only `stage` (for profiling one kernel, e.g. its VM counters): the
    /// gradients are complete only when every stage ran since the inputs last changed, in order,
    /// with the same workspace.
    pub fn only(mut self, stage: AttnBwdStage) -> AttnBwdPlan {
        self.only = Some(stage);
        self
    }

    /// Query rows and key rows of the whole batch.
    pub fn total_rows(&self) -> (usize, usize) {
        self.total
    }
}

fn check_heads(heads: usize, kv_heads: usize, head_dim: usize) -> Result<usize> {
    if heads == 0 || heads > MAX_GRID_YZ {
        return Err(Error::invalid("heads", format!("1..={MAX_GRID_YZ}"), heads));
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(Error::invalid("kv_heads", format!("a divisor of heads ({heads})"), kv_heads));
    }
    if head_dim == 0 || !head_dim.is_multiple_of(8) || head_dim > MAX_HEAD_DIM {
        return Err(Error::invalid("head_dim", "a multiple of 8 in 8..=256", head_dim));
    }
    Ok([64, 128, 256].into_iter().find(|&d| d >= head_dim).unwrap_or(MAX_HEAD_DIM))
}

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

/// The gradients a backward writes, in the input dtype `T`: `dq` `[total_q, heads, head_dim]`, `dk`
/// and `dv` `[total_k, kv_heads, head_dim]`, contiguous whatever the inputs' row strides, and the
/// sinks' gradient `[heads]` fp32 when the options have sinks. All pairwise disjoint.
pub struct AttnGradsMut<'a, 'b, T> {
    /// Gradient of q.
    pub dq: &'b mut ViewMut<'a, T>,
    /// Gradient of k, summed over the query heads of each kv head.
    pub dk: &'b mut ViewMut<'a, T>,
    /// Gradient of v, summed over the query heads of each kv head.
    pub dv: &'b mut ViewMut<'a, T>,
    /// Gradient of the sink logits, one per query head; required exactly when `opts.sinks` is set.
    pub dsinks: Option<&'b mut ViewMut<'a, f32>>,
}

/// The tensors a backward reads besides the options: the forward's inputs, its output and LSE, and
/// the upstream gradient.
pub struct AttnBwdInputs<'a, 'b, T> {
    /// Queries, as given to the forward.
    pub q: &'b View<'a, T>,
    /// Keys, as given to the forward.
    pub k: &'b View<'a, T>,
    /// Values, as given to the forward.
    pub v: &'b View<'a, T>,
    /// The forward's output.
    pub out: &'b View<'a, T>,
    /// The upstream gradient of `out` (same layout and row stride as `out`).
    pub dout: &'b View<'a, T>,
    /// The forward's LSE, `[heads, total_q]` fp32 natural log (the forward's `lse` option).
    pub lse: &'b View<'a, f32>,
}

/// Attention backward over a fixed-length batch: the gradients of [`super::attention_fwd`] with the
/// same `opts` (causal, window, softcap, scale, ALiBi, sinks, row strides; `opts.lse` must be
/// `None`: the forward's LSE is an input here). `T` = bf16 or f16, fp32 accumulation; gradients
/// are written in `T` (dsinks in fp32). Rows that saw no key get zero gradients; keys no row saw
/// get zero dk, dv. Bit-identical across runs. `workspace` holds at least
/// [`AttnBwdPlan::workspace_len`] fp32 elements; outputs must not overlap any input.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use half::bf16;
/// use scaling_kernels::attention::{attention_bwd, attention_fwd, AttnBwdInputs, AttnBwdPlan, AttnGradsMut, AttnOptions, AttnShape};
/// use scaling_kernels::Device;
/// let dev = Device::default();
/// let shape = AttnShape { batch: 1, seqlen_q: 3, seqlen_k: 3, heads: 1, kv_heads: 1, head_dim: 64 };
/// let x = dev.upload(&vec![bf16::from_f32(0.5); 3 * 64])?;
/// let (mut out, mut lse) = (dev.alloc_zeros::<bf16>(3 * 64)?, dev.alloc_zeros::<f32>(3)?);
/// let opts = || AttnOptions::default().causal(true);
/// attention_fwd(&dev, &x.view(), &x.view(), &x.view(), &mut out.view_mut(), shape, opts().lse(lse.view_mut()))?;
/// let plan = AttnBwdPlan::new(shape)?;
/// let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len())?;
/// let (mut dq, mut dk, mut dv) = (dev.alloc_zeros::<bf16>(3 * 64)?, dev.alloc_zeros::<bf16>(3 * 64)?, dev.alloc_zeros::<bf16>(3 * 64)?);
/// let (xv, ov, lv) = (x.view(), out.view(), lse.view());
/// let inputs = AttnBwdInputs { q: &xv, k: &xv, v: &xv, out: &ov, dout: &xv, lse: &lv };
/// let grads = AttnGradsMut { dq: &mut dq.view_mut(), dk: &mut dk.view_mut(), dv: &mut dv.view_mut(), dsinks: None };
/// attention_bwd(&dev, &plan, inputs, grads, &mut ws.view_mut(), opts())?;
/// // Equal keys: every probability row is uniform, so dq is 0.
/// assert!(dev.download(&dq)?.iter().all(|g| g.to_f32() == 0.0));
/// # Ok(()) }
/// ```
pub fn attention_bwd<T: Float>(
    dev: &Device,
    plan: &AttnBwdPlan,
    inputs: AttnBwdInputs<'_, '_, T>,
    grads: AttnGradsMut<'_, '_, T>,
    workspace: &mut ViewMut<'_, f32>,
    opts: AttnOptions<'_>,
) -> Result<()> {
    if plan.cu.is_some() {
        return Err(Error::invalid("plan", "a fixed-length plan (AttnBwdPlan::new)", "a varlen plan"));
    }
    run(dev, plan, inputs, grads, workspace, None, opts)
}

/// Attention backward over a packed variable-length batch (the gradients of
/// [`super::attention_fwd_varlen`]). `plan` comes from [`AttnBwdPlan::varlen`] with the host copies
/// of the offsets; `cu_seqlens_q` / `cu_seqlens_k` are the device arrays the kernels read, which
/// must hold the same offsets (the caller's contract, checked by a download in debug builds).
/// Everything else as [`attention_bwd`].
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_varlen<T: Float>(
    dev: &Device,
    plan: &AttnBwdPlan,
    inputs: AttnBwdInputs<'_, '_, T>,
    grads: AttnGradsMut<'_, '_, T>,
    workspace: &mut ViewMut<'_, f32>,
    cu_seqlens_q: &View<'_, i32>,
    cu_seqlens_k: &View<'_, i32>,
    opts: AttnOptions<'_>,
) -> Result<()> {
    let Some((hq, hk)) = &plan.cu else {
        return Err(Error::invalid("plan", "a varlen plan (AttnBwdPlan::varlen)", "a fixed-length plan"));
    };
    for (name, view, host) in [("cu_seqlens_q", cu_seqlens_q, hq), ("cu_seqlens_k", cu_seqlens_k, hk)] {
        if view.len() != host.len() {
            return Err(Error::invalid(name, format!("{} offsets (as the plan's host copy)", host.len()), view.len()));
        }
        if cfg!(debug_assertions) && &dev.download(view.slice(..)?)? != host {
            return Err(Error::invalid(name, "the same offsets as the plan's host copy", "different offsets"));
        }
    }
    run(dev, plan, inputs, grads, workspace, Some((cu_seqlens_q, cu_seqlens_k)), opts)
}

/// Elements a tensor of `rows` token rows of `width` elements, `stride` apart, spans.
fn span(rows: usize, stride: usize, width: usize) -> Option<usize> {
    if rows == 0 {
        Some(0)
    } else {
        (rows - 1).checked_mul(stride)?.checked_add(width)
    }
}

/// The options' scalars, checked: (window with causal applied, scale, strides).
fn check_options(plan: &AttnBwdPlan, opts: &AttnOptions<'_>) -> Result<((i32, i32), f32, RowStrides)> {
    let (left, right) = opts.window;
    if left < -1 || right < -1 {
        return Err(Error::invalid("window", "each side -1 (unbounded) or >= 0", format!("{:?}", opts.window)));
    }
    if opts.causal && right > 0 {
        return Err(Error::invalid("window", "a right side of -1 or 0 with causal", format!("{:?}", opts.window)));
    }
    if !(opts.softcap.is_finite() && opts.softcap >= 0.0) {
        return Err(Error::invalid("softcap", "a finite value >= 0 (0 = off)", opts.softcap));
    }
    let scale = opts.scale.unwrap_or(1.0 / (plan.head_dim as f32).sqrt());
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid("scale", "a finite value > 0", scale));
    }
    if opts.lse.is_some() {
        return Err(Error::invalid("opts.lse", "None (the forward's LSE is the `lse` input)", "an output view"));
    }
    let (qw, kw) = (plan.heads * plan.head_dim, plan.kv_heads * plan.head_dim);
    let strides = opts.row_strides.unwrap_or(RowStrides { q: qw, k: kw, v: kw, out: qw });
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
    let window = if opts.causal { (left, 0) } else { (left, right) };
    Ok((window, scale, strides))
}

fn run<T: Float>(
    dev: &Device,
    plan: &AttnBwdPlan,
    inputs: AttnBwdInputs<'_, '_, T>,
    grads: AttnGradsMut<'_, '_, T>,
    workspace: &mut ViewMut<'_, f32>,
    cu: Option<(&View<'_, i32>, &View<'_, i32>)>,
    opts: AttnOptions<'_>,
) -> Result<()> {
    if !matches!(T::NAME, "bf16" | "f16") {
        return Err(Error::invalid("q", "bf16 or f16 elements", T::NAME));
    }
    let (window, scale, strides) = check_options(plan, &opts)?;
    let (heads, kv_heads, d) = (plan.heads, plan.kv_heads, plan.head_dim);
    let (total_q, total_k) = plan.total;
    let (qw, kw) = (heads * d, kv_heads * d);
    let AttnBwdInputs { q, k, v, out, dout, lse } = inputs;
    let AttnGradsMut { dq, dk, dv, mut dsinks } = grads;
    for (name, len, rows, stride, width) in [
        ("q", q.len(), total_q, strides.q, qw),
        ("k", k.len(), total_k, strides.k, kw),
        ("v", v.len(), total_k, strides.v, kw),
        ("out", out.len(), total_q, strides.out, qw),
        ("dout", dout.len(), total_q, strides.out, qw),
        ("dq", dq.len(), total_q, qw, qw),
        ("dk", dk.len(), total_k, kw, kw),
        ("dv", dv.len(), total_k, kw, kw),
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
    if lse.len() != heads * total_q {
        return Err(Error::invalid("lse", format!("{} elements (heads * total_q)", heads * total_q), lse.len()));
    }
    if workspace.len() < plan.workspace_len() {
        return Err(Error::invalid(
            "workspace",
            format!("at least {} fp32 elements (AttnBwdPlan::workspace_len)", plan.workspace_len()),
            workspace.len(),
        ));
    }
    for (name, len) in
        [("alibi_slopes", opts.alibi_slopes.as_ref().map(|a| a.len())), ("sinks", opts.sinks.as_ref().map(|s| s.len()))]
    {
        if let Some(len) = len {
            if len != heads {
                return Err(Error::invalid(name, format!("{heads} elements (one per query head)"), len));
            }
        }
    }
    match (&opts.sinks, &dsinks) {
        (Some(_), None) => return Err(Error::invalid("dsinks", "a [heads] view when opts.sinks is set", "None")),
        (None, Some(_)) => return Err(Error::invalid("dsinks", "None when opts.sinks is not set", "a view")),
        (Some(_), Some(ds)) if ds.len() != heads => {
            return Err(Error::invalid("dsinks", format!("{heads} elements (one per query head)"), ds.len()))
        }
        _ => {}
    }

    // Addresses, alignment and aliasing: every output must be disjoint from every input.
    let elem = std::mem::size_of::<T>() as u64;
    let pq = dev.ptr("q", q)?;
    let pk = dev.ptr("k", k)?;
    let pv = dev.ptr("v", v)?;
    let po = dev.ptr("out", out)?;
    let pdo = dev.ptr("dout", dout)?;
    let pl = dev.ptr("lse", lse)?;
    let (dq_len, dk_len, dv_len, ws_len) = (dq.len(), dk.len(), dv.len(), workspace.len());
    let pdq = dev.ptr_mut("dq", dq)?;
    let pdk = dev.ptr_mut("dk", dk)?;
    let pdv = dev.ptr_mut("dv", dv)?;
    let pws = dev.ptr_mut("workspace", workspace)?;
    let ds_len = dsinks.as_ref().map_or(0, |d| d.len());
    let pds = match dsinks.as_mut() {
        Some(d) => Some(dev.ptr_mut("dsinks", &mut **d)?),
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
    for (name, addr) in
        [("q", pq.addr), ("k", pk.addr), ("v", pv.addr), ("out", po.addr), ("dout", pdo.addr), ("dq", pdq.addr)]
            .into_iter()
            .chain([("dk", pdk.addr), ("dv", pdv.addr)])
    {
        if !addr.is_multiple_of(16) {
            return Err(Error::invalid(name, "a 16-byte aligned start", format!("address {addr:#x}")));
        }
    }
    let range = |p: &ArgPtr<'_>, len: usize, size: u64| (p.addr, p.addr + len as u64 * size);
    let opt_range = |p: &Option<ArgPtr<'_>>, len: usize| p.as_ref().map(|p| range(p, len, 4));
    let mut reads = vec![
        ("q", range(&pq, q.len(), elem)),
        ("k", range(&pk, k.len(), elem)),
        ("v", range(&pv, v.len(), elem)),
        ("out", range(&po, out.len(), elem)),
        ("dout", range(&pdo, dout.len(), elem)),
        ("lse", range(&pl, lse.len(), 4)),
    ];
    for (name, r) in [
        ("alibi_slopes", opt_range(&pa, heads)),
        ("sinks", opt_range(&ps, heads)),
        ("cu_seqlens_q", opt_range(&pcq, plan.batch + 1)),
        ("cu_seqlens_k", opt_range(&pck, plan.batch + 1)),
    ] {
        if let Some(r) = r {
            reads.push((name, r));
        }
    }
    let mut writes = vec![
        ("dq", range(&pdq, dq_len, elem)),
        ("dk", range(&pdk, dk_len, elem)),
        ("dv", range(&pdv, dv_len, elem)),
        ("workspace", range(&pws, ws_len, 4)),
    ];
    if let Some(r) = opt_range(&pds, ds_len) {
        writes.push(("dsinks", r));
    }
    check_disjoint(&reads, &writes)?;

    let addr = |p: &Option<ArgPtr<'_>>| p.as_ref().map_or(0, |p| p.addr);
    let softcap = opts.softcap;
    let unit = if softcap > 0.0 { softcap } else { scale };
    let params = AttnBwdParams {
        q: pq.addr,
        k: pk.addr,
        v: pv.addr,
        o: po.addr,
        dout: pdo.addr,
        lse: pl.addr,
        dq: pdq.addr,
        dk: pdk.addr,
        dv: pdv.addr,
        dsinks: addr(&pds),
        dot_do_o: pws.addr,
        cu_seqlens_q: addr(&pcq),
        cu_seqlens_k: addr(&pck),
        alibi_slopes: addr(&pa),
        sinks: addr(&ps),
        q_row_stride: strides.q as i64,
        k_row_stride: strides.k as i64,
        v_row_stride: strides.v as i64,
        o_row_stride: strides.out as i64,
        do_row_stride: strides.out as i64,
        dq_row_stride: qw as i64,
        dk_row_stride: kw as i64,
        dv_row_stride: kw as i64,
        seqlen_q: plan.seqlen.0 as i32,
        seqlen_k: plan.seqlen.1 as i32,
        total_q: total_q as i32,
        heads: heads as i32,
        kv_heads: kv_heads as i32,
        head_dim: d as i32,
        window_left: window.0,
        window_right: window.1,
        scale_log2: unit * std::f32::consts::LOG2_E,
        softcap_prescale: if softcap > 0.0 { scale / softcap } else { 0.0 },
        grad_scale: scale,
        batch: plan.batch as i32,
    };
    let m = &kernels::ATTENTION_BWD;
    let on = |s: AttnBwdStage| plan.only.is_none_or(|o| o == s);
    if total_q > 0 && on(AttnBwdStage::DotDoO) {
        let dims = LaunchDims {
            grid: [total_q.div_ceil(DOT_WARPS) as u32, heads as u32, 1],
            block: [32 * DOT_WARPS as u32, 1, 1],
            dynamic_smem: 0,
        };
        dev.launch(m, &format!("attention_bwd_dot_do_o_{}", T::NAME), dims, &params)?;
    }
    if pds.is_some() && on(AttnBwdStage::Dsinks) {
        let dims = LaunchDims { grid: [heads as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
        dev.launch(m, "attention_bwd_dsinks", dims, &params)?;
    }
    let (dq_smem, dkv_smem) = smem_bytes(plan.kernel_dim);
    let (max_q, max_k) = plan.max_seqlen;
    if plan.batch > 0 && max_q > 0 && on(AttnBwdStage::Dq) {
        let dims = LaunchDims {
            grid: [max_q.div_ceil(BLOCK_ROWS) as u32, heads as u32, plan.batch as u32],
            block: [128, 1, 1],
            dynamic_smem: dq_smem,
        };
        dev.launch(m, &format!("attention_bwd_dq_{}_d{}", T::NAME, plan.kernel_dim), dims, &params)?;
    }
    if plan.batch > 0 && max_k > 0 && on(AttnBwdStage::Dkv) {
        let dims = LaunchDims {
            grid: [max_k.div_ceil(BLOCK_ROWS) as u32, kv_heads as u32, plan.batch as u32],
            block: [dkv_threads(plan.kernel_dim), 1, 1],
            dynamic_smem: dkv_smem,
        };
        dev.launch(m, &format!("attention_bwd_dkv_{}_d{}", T::NAME, plan.kernel_dim), dims, &params)?;
    }
    Ok(())
}

/// Byte ranges `[start, end)` of named buffers.
type Ranges<'n> = [(&'n str, (u64, u64))];

/// Every written range must be disjoint from every read range and from every other written one
/// (a kernel reading what another writes, or two writers of one byte, would race).
fn check_disjoint(reads: &Ranges<'static>, writes: &Ranges<'static>) -> Result<()> {
    let overlap = |a: (u64, u64), b: (u64, u64)| a.0 < b.1 && b.0 < a.1;
    for (i, &(w, wr)) in writes.iter().enumerate() {
        for &(r, rr) in reads.iter().chain(&writes[..i]) {
            if overlap(wr, rr) {
                return Err(Error::invalid(w, format!("memory disjoint from {r}"), "overlapping address ranges"));
            }
        }
    }
    Ok(())
}

/// Useful FLOPs of one sequence's attention backward in FlashAttention's convention: 2.5 x
/// [`super::attention_fwd_flops`], i.e. `10 * head_dim` per visible (query, key) pair and head (five
/// matrix products of `2 d`: `q k`, `do v`, `p^T do`, `ds k`, `ds^T q`). The kernels execute
/// `14 d` per pair on tensor cores (`18 d` at head dims above 128), because dQ recomputes the
/// scores instead of adding per-key-tile shares with atomics.
pub fn attention_bwd_flops(
    seqlen_q: usize,
    seqlen_k: usize,
    heads: usize,
    head_dim: usize,
    causal: bool,
    window: (i32, i32),
) -> u64 {
    // 4 d per pair forward, so an exact multiple of 2.
    super::attention_fwd_flops(seqlen_q, seqlen_k, heads, head_dim, causal, window) / 2 * 5
}

/// The fewest bytes one sequence's backward moves: q, k, v, out, dout and the fp32 LSE read once,
/// dq, dk, dv written once; `elem_bytes` is 2 for bf16/f16.
pub fn attention_bwd_min_bytes(
    seqlen_q: usize,
    seqlen_k: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    elem_bytes: usize,
) -> u64 {
    let q_side = 4 * seqlen_q * heads * head_dim * elem_bytes; // q, out, dout, dq
    let kv_side = 4 * seqlen_k * kv_heads * head_dim * elem_bytes; // k, v, dk, dv
    (q_side + kv_side + 4 * seqlen_q * heads) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn attn_bwd_params_match_the_c_struct_and_the_ptx() {
        // The same numbers are static_asserts in kernels/attention/bwd_params.cuh.
        assert_eq!(size_of::<AttnBwdParams>(), 232);
        assert_eq!(offset_of!(AttnBwdParams, q_row_stride), 120);
        assert_eq!(offset_of!(AttnBwdParams, seqlen_q), 184);
        assert_eq!(offset_of!(AttnBwdParams, scale_log2), 216);
        assert_eq!(offset_of!(AttnBwdParams, batch), 228);
        let module = ptx_vm::Module::parse(kernels::ATTENTION_BWD.ptx).unwrap();
        let mut names = vec!["attention_bwd_dsinks".to_string()];
        for t in ["bf16", "f16"] {
            names.push(format!("attention_bwd_dot_do_o_{t}"));
            for d in [64, 128, 256] {
                names.push(format!("attention_bwd_dq_{t}_d{d}"));
                names.push(format!("attention_bwd_dkv_{t}_d{d}"));
            }
        }
        for kernel in names {
            assert_eq!(module.param_size(&kernel), Some(size_of::<AttnBwdParams>()), "{kernel}");
        }
    }

    #[test]
    fn plans_validate_shapes_and_size_the_workspace() {
        let shape = AttnShape { batch: 2, seqlen_q: 5, seqlen_k: 7, heads: 4, kv_heads: 2, head_dim: 80 };
        let plan = AttnBwdPlan::new(shape).unwrap();
        assert_eq!((plan.workspace_len(), plan.kernel_dim, plan.total_rows()), (40, 128, (10, 14)));
        let name = |r: Result<AttnBwdPlan>| match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(name(AttnBwdPlan::new(AttnShape { kv_heads: 3, ..shape })), "kv_heads");
        assert_eq!(name(AttnBwdPlan::new(AttnShape { head_dim: 12, ..shape })), "head_dim");
        assert_eq!(name(AttnBwdPlan::new(AttnShape { seqlen_q: usize::MAX, ..shape })), "shape");
        let vs = VarlenShape { heads: 2, kv_heads: 1, head_dim: 64 };
        let plan = AttnBwdPlan::varlen(&[0, 1, 38, 38], &[0, 5, 42, 50], vs).unwrap();
        assert_eq!((plan.workspace_len(), plan.max_seqlen), (76, (37, 37)));
        assert_eq!(name(AttnBwdPlan::varlen(&[0, 3, 2], &[0, 3, 4], vs)), "host_cu_seqlens_q");
        assert_eq!(name(AttnBwdPlan::varlen(&[0, 3], &[0, 3, 4], vs)), "host_cu_seqlens_k");
        assert_eq!(smem_bytes(64), (49152, 50176));
        assert_eq!(smem_bytes(256), (131072, 131584));
    }

    #[test]
    fn outputs_aliasing_inputs_or_each_other_are_rejected() {
        let reads = [("q", (0, 100)), ("lse", (200, 240))];
        assert!(check_disjoint(&reads, &[("dq", (100, 200)), ("dk", (240, 300))]).is_ok());
        let name = |r: Result<()>| match r {
            Err(Error::InvalidArgument { name, expected, .. }) => (name, expected),
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(name(check_disjoint(&reads, &[("dq", (99, 150))])), ("dq", "memory disjoint from q".into()));
        assert_eq!(name(check_disjoint(&reads, &[("dv", (239, 250))])), ("dv", "memory disjoint from lse".into()));
        let writes = [("dq", (300, 400)), ("workspace", (350, 360))];
        assert_eq!(name(check_disjoint(&reads, &writes)), ("workspace", "memory disjoint from dq".into()));
    }

    #[test]
    fn flops_are_two_and_a_half_forwards() {
        use super::super::attention_fwd_flops;
        for (sq, sk, causal, window) in [(4, 4, false, (-1, -1)), (5, 2, true, (-1, -1)), (9, 9, false, (2, 1))] {
            assert_eq!(
                2 * attention_bwd_flops(sq, sk, 3, 64, causal, window),
                5 * attention_fwd_flops(sq, sk, 3, 64, causal, window)
            );
        }
        assert_eq!(attention_bwd_min_bytes(3, 5, 4, 2, 64, 2), (4 * 3 * 4 * 64 * 2 + 4 * 5 * 2 * 64 * 2 + 48) as u64);
    }
}
