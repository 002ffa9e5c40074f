//! Repetition, frequency and presence penalties and a sparse logit bias (`kernels/sampling/penalties.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::PenaltiesParams;

/// Row status bit of [`apply_penalties`]: a history or bias id outside `[0, vocab)` (never read or
/// written).
pub const STATUS_BAD_ID: u32 = 8;

/// Per-row penalties and bias of a batch, on the host (struct of arrays; CSR for the sparse parts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PenaltyBatch {
    /// Repetition penalty per row (> 0; 1 = off): a seen token's logit x becomes x / r if x > 0,
    /// else x * r.
    pub repetition: Vec<f32>,
    /// Frequency penalty per row (0 = off): subtracted once per occurrence.
    pub frequency: Vec<f32>,
    /// Presence penalty per row (0 = off): subtracted once from every seen token.
    pub presence: Vec<f32>,
    /// Row r's history is entries `history_offsets[r]..history_offsets[r + 1]` (rows + 1 entries).
    pub history_offsets: Vec<u32>,
    /// Token ids of the history, unique within a row.
    pub history_ids: Vec<i32>,
    /// How often each history id occurred (0 = not seen).
    pub history_counts: Vec<u32>,
    /// Row r's bias is entries `bias_offsets[r]..bias_offsets[r + 1]`.
    pub bias_offsets: Vec<u32>,
    /// Biased token ids (duplicates add up).
    pub bias_ids: Vec<i32>,
    /// The values added (`-inf` bans a token; NaN is rejected).
    pub bias_values: Vec<f32>,
}

fn check_csr(name: &'static str, offsets: &[u32], rows: usize, len: usize) -> Result<()> {
    if offsets.len() != rows + 1 || offsets[0] != 0 {
        return Err(Error::invalid(name, format!("{} entries starting at 0 (rows + 1)", rows + 1), offsets.len()));
    }
    if let Some(w) = offsets.windows(2).position(|w| w[0] > w[1]) {
        return Err(Error::invalid(name, "non-decreasing", format!("entry {w} > entry {}", w + 1)));
    }
    if offsets[rows] as usize != len {
        return Err(Error::invalid(name, format!("a last entry equal to the entries' count ({len})"), offsets[rows]));
    }
    Ok(())
}

impl PenaltyBatch {
    /// Checks every field against `rows` (ids are checked on the device, see [`STATUS_BAD_ID`]).
    fn validate(&self, rows: usize) -> Result<()> {
        for (name, v) in
            [("repetition", &self.repetition), ("frequency", &self.frequency), ("presence", &self.presence)]
        {
            if v.len() != rows {
                return Err(Error::invalid(name, format!("{rows} elements (one per row)"), v.len()));
            }
        }
        if let Some(r) = self.repetition.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(Error::invalid("repetition", "> 0 and finite (1 = off)", r));
        }
        if let Some(f) = self.frequency.iter().chain(&self.presence).find(|f| !f.is_finite()) {
            return Err(Error::invalid("frequency/presence", "finite", f));
        }
        check_csr("history_offsets", &self.history_offsets, rows, self.history_ids.len())?;
        if self.history_counts.len() != self.history_ids.len() {
            return Err(Error::invalid(
                "history_counts",
                format!("{} elements (one per history id)", self.history_ids.len()),
                self.history_counts.len(),
            ));
        }
        check_csr("bias_offsets", &self.bias_offsets, rows, self.bias_ids.len())?;
        if self.bias_values.len() != self.bias_ids.len() {
            return Err(Error::invalid(
                "bias_values",
                format!("{} elements (one per bias id)", self.bias_ids.len()),
                self.bias_values.len(),
            ));
        }
        if let Some(b) = self.bias_values.iter().find(|b| b.is_nan()) {
            return Err(Error::invalid("bias_values", "not NaN", b));
        }
        Ok(())
    }
}

/// Applies vLLM's logits processing before temperature to each row of `logits` (`[rows, vocab]`):
/// repetition, frequency and presence penalties on the row's history, then the logit bias, writing
/// fp32 logits to `out` and a status per row (0 or [`STATUS_BAD_ID`]).
///
/// Sample from `out` with [`super::sample`]; its `logprob_raw` and `rank` then refer to the
/// penalised logits, so take the logprob under the raw logits from [`super::log_softmax_gather`]
/// on `logits` (the same arithmetic).
///
/// Cost: a separate pass, not fused into the sampler: it reads `logits` once and writes fp32, which
/// the sampler then reads (for bf16 logits, 2 + 4 + 4 bytes per token against the sampler's 2).
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{sampling::{apply_penalties, PenaltyBatch}, Device};
/// let dev = Device::default();
/// let logits = dev.upload(&[2.0f32, -1.0, 0.5, 1.0])?;
/// let pen = PenaltyBatch {
///     repetition: vec![2.0], frequency: vec![0.0], presence: vec![0.0],
///     history_offsets: vec![0, 2], history_ids: vec![0, 1], history_counts: vec![1, 3],
///     bias_offsets: vec![0, 1], bias_ids: vec![3], bias_values: vec![f32::NEG_INFINITY],
/// };
/// let (mut out, mut st) = (dev.alloc_zeros::<f32>(4)?, dev.alloc_zeros::<u32>(1)?);
/// apply_penalties(&dev, 4, &logits.view(), &pen, &mut out.view_mut(), &mut st.view_mut())?;
/// assert_eq!(dev.download(&out)?, vec![1.0, -2.0, 0.5, f32::NEG_INFINITY]);
/// # Ok(()) }
/// ```
pub fn apply_penalties<T: Float>(
    dev: &Device,
    vocab: usize,
    logits: &View<'_, T>,
    pen: &PenaltyBatch,
    out: &mut ViewMut<'_, f32>,
    status: &mut ViewMut<'_, u32>,
) -> Result<()> {
    if vocab == 0 || vocab > super::MAX_VOCAB {
        return Err(Error::invalid("vocab", format!("1..={}", super::MAX_VOCAB), vocab));
    }
    if !logits.len().is_multiple_of(vocab) {
        return Err(Error::invalid("logits", format!("a multiple of vocab ({vocab}) elements"), logits.len()));
    }
    let rows = logits.len() / vocab;
    if u32::try_from(rows).is_err() {
        return Err(Error::invalid("logits", "at most u32::MAX rows", rows));
    }
    pen.validate(rows)?;
    if out.len() != logits.len() {
        return Err(Error::invalid("out", format!("{} elements (as logits)", logits.len()), out.len()));
    }
    if status.len() != rows {
        return Err(Error::invalid("status", format!("{rows} elements (one per row)"), status.len()));
    }
    if rows == 0 {
        return Ok(());
    }
    // Empty CSR arrays still need an address; a one-element placeholder is never read.
    let nonempty_i32 = |v: &[i32]| if v.is_empty() { vec![0] } else { v.to_vec() };
    let nonempty_u32 = |v: &[u32]| if v.is_empty() { vec![0] } else { v.to_vec() };
    let nonempty_f32 = |v: &[f32]| if v.is_empty() { vec![0.0] } else { v.to_vec() };
    let bufs_u32 = [
        dev.upload(&pen.history_offsets)?,
        dev.upload(&nonempty_u32(&pen.history_counts))?,
        dev.upload(&pen.bias_offsets)?,
    ];
    let bufs_i32 = [dev.upload(&nonempty_i32(&pen.history_ids))?, dev.upload(&nonempty_i32(&pen.bias_ids))?];
    let bufs_f32 = [
        dev.upload(&pen.repetition)?,
        dev.upload(&pen.frequency)?,
        dev.upload(&pen.presence)?,
        dev.upload(&nonempty_f32(&pen.bias_values))?,
    ];
    let vu: Vec<View<'_, u32>> = bufs_u32.iter().map(|b| b.view()).collect();
    let vi: Vec<View<'_, i32>> = bufs_i32.iter().map(|b| b.view()).collect();
    let vf: Vec<View<'_, f32>> = bufs_f32.iter().map(|b| b.view()).collect();
    let pl = dev.ptr("logits", logits)?;
    let (pho, phc, pbo) =
        (dev.ptr("history_offsets", &vu[0])?, dev.ptr("history_counts", &vu[1])?, dev.ptr("bias_offsets", &vu[2])?);
    let (phi, pbi) = (dev.ptr("history_ids", &vi[0])?, dev.ptr("bias_ids", &vi[1])?);
    let (pr, pf, pp, pbv) = (
        dev.ptr("repetition", &vf[0])?,
        dev.ptr("frequency", &vf[1])?,
        dev.ptr("presence", &vf[2])?,
        dev.ptr("bias_values", &vf[3])?,
    );
    let (po, ps) = (dev.ptr_mut("out", out)?, dev.ptr_mut("status", status)?);
    let params = PenaltiesParams {
        logits: pl.addr,
        out: po.addr,
        hist_offsets: pho.addr,
        hist_ids: phi.addr,
        hist_counts: phc.addr,
        repetition: pr.addr,
        frequency: pf.addr,
        presence: pp.addr,
        bias_offsets: pbo.addr,
        bias_ids: pbi.addr,
        bias_values: pbv.addr,
        status: ps.addr,
        batch: rows as u32,
        vocab: vocab as u32,
    };
    let dims = LaunchDims { grid: [rows as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::SAMPLING_PENALTIES, &format!("sampling_apply_penalties_{}", T::NAME), dims, &params)
}
