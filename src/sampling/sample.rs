//! Batched seeded sampling with min-p, top-k, top-p, logprobs and ranks (`kernels/sampling/sample.cu`).

use crate::device::{kernels, Buffer, Device, LaunchDims, View};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::SampleParams;

/// Threads per CTA (`kRowThreads` in kernels/sampling/row.cuh); one CTA per row.
const THREADS: u32 = 256;
/// Most samples per row in one launch (`kMaxSamples` in sample.cu): the draw keeps every sample's
/// target in shared memory.
pub const MAX_SAMPLES: usize = 64;
/// Dynamic shared memory of the sampler: `sizeof(CellHist)` in sample.cu (a static_assert there
/// holds the two together), the cells of the two-pass path for plain, min-p and top-p rows.
const CELL_HIST_BYTES: u32 = 33_024;
/// Largest vocab: the kernels sum per-token masses of up to 2^40 in 64-bit integers, so 2^23
/// tokens at most (8,388,608; the largest vocabularies in use are about 262,144).
pub const MAX_VOCAB: usize = 1 << 23;

/// Row status bit: the row has no finite logit (all `-inf`).
pub const STATUS_NO_FINITE: u32 = 1;
/// Row status bit: a NaN or `+inf` logit, or a processed logit that overflowed to `+inf`.
pub const STATUS_NON_FINITE: u32 = 2;

/// One row's sampling settings, as the host describes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowParams {
    /// Divides the logits; 0 means greedy (argmax, lowest index on ties). `>= 0`, finite.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off. At most the vocab.
    pub top_k: u32,
    /// Keep the shortest most-likely prefix with at least this share of the mass; in (0, 1], 1 = off.
    pub top_p: f32,
    /// Keep tokens with probability >= min_p times the largest; in [0, 1], 0 = off.
    pub min_p: f32,
    /// The request's seed.
    pub seed: u64,
    /// The position (decode step) of this row in its request.
    pub position: u64,
}

impl Default for RowParams {
    /// Plain sampling at temperature 1, no filters, seed 0, position 0.
    fn default() -> Self {
        RowParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 0, position: 0 }
    }
}

impl RowParams {
    /// Checks every field; errors name the field (`rows[3].top_p`).
    fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::invalid("temperature", ">= 0 and finite (0 = greedy)", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::invalid("top_p", "in (0, 1] (1 = off)", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(Error::invalid("min_p", "in [0, 1] (0 = off)", self.min_p));
        }
        Ok(())
    }
}

/// Per-row parameters of a batch on the device, as a struct of arrays.
pub struct SamplingParams {
    temperature: Buffer<f32>,
    top_k: Buffer<u32>,
    top_p: Buffer<f32>,
    min_p: Buffer<f32>,
    seed: Buffer<u64>,
    position: Buffer<u64>,
    max_top_k: u32,
}

impl SamplingParams {
    /// Validates `rows` (one per logits row) and uploads them. Errors: temperature < 0, NaN or
    /// infinite; top_p outside (0, 1]; min_p outside [0, 1].
    pub fn upload(dev: &Device, rows: &[RowParams]) -> Result<Self> {
        for r in rows {
            r.validate()?;
        }
        Ok(SamplingParams {
            temperature: dev.upload(&rows.iter().map(|r| r.temperature).collect::<Vec<_>>())?,
            top_k: dev.upload(&rows.iter().map(|r| r.top_k).collect::<Vec<_>>())?,
            top_p: dev.upload(&rows.iter().map(|r| r.top_p).collect::<Vec<_>>())?,
            min_p: dev.upload(&rows.iter().map(|r| r.min_p).collect::<Vec<_>>())?,
            seed: dev.upload(&rows.iter().map(|r| r.seed).collect::<Vec<_>>())?,
            position: dev.upload(&rows.iter().map(|r| r.position).collect::<Vec<_>>())?,
            max_top_k: rows.iter().map(|r| r.top_k).max().unwrap_or(0),
        })
    }

    /// Rows described.
    pub fn rows(&self) -> usize {
        self.temperature.len()
    }
}

/// The shape of one sampling call: decides the launch and the outputs' sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplingPlan {
    batch: usize,
    vocab: usize,
    n: usize,
}

impl SamplingPlan {
    /// `n` samples from each of `batch` rows of `vocab` logits. Errors: vocab 0 or above [`MAX_VOCAB`],
    /// n outside `1..=`[`MAX_SAMPLES`], batch above `u32`.
    pub fn new(batch: usize, vocab: usize, n: usize) -> Result<Self> {
        if vocab == 0 || vocab > MAX_VOCAB {
            return Err(Error::invalid("vocab", format!("1..={MAX_VOCAB}"), vocab));
        }
        if n == 0 || n > MAX_SAMPLES {
            return Err(Error::invalid("n", format!("1..={MAX_SAMPLES} samples per row"), n));
        }
        if u32::try_from(batch).is_err() || batch.checked_mul(vocab).is_none() {
            return Err(Error::invalid("batch", "at most u32::MAX rows, batch * vocab within usize", batch));
        }
        Ok(SamplingPlan { batch, vocab, n })
    }

    /// Rows.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Logits per row.
    pub fn vocab(&self) -> usize {
        self.vocab
    }
    /// Samples per row.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Workspace the call needs: none, every per-row state lives in the CTA's shared memory.
    pub fn workspace_bytes(&self) -> usize {
        0
    }
    /// The FLOPs the arithmetic needs at least: per logit a division by the temperature, an
    /// exponential, an add and a compare (4), whatever the passes.
    pub fn flops(&self) -> u64 {
        4 * self.batch as u64 * self.vocab as u64
    }
    /// The fewest bytes a call must move: read the logits once, the per-row parameters, write the
    /// outputs.
    pub fn min_bytes(&self, elem_bytes: usize) -> u64 {
        let (b, v, n) = (self.batch as u64, self.vocab as u64, self.n as u64);
        b * v * elem_bytes as u64 + b * (4 * 4 + 2 * 8 + 4) + b * n * 5 * 4
    }
}

/// The outputs of a sampling call, `[batch, n]` (samples of a row adjacent) except `status`.
pub struct SampleOutput {
    /// The drawn token ids.
    pub token: Buffer<i32>,
    /// `log softmax(raw logits)[token]`, where the raw logits are the ones `sample` read: after
    /// [`super::apply_penalties`], the penalised logits (take the model's from
    /// [`super::log_softmax_gather`] on the original logits, the same arithmetic).
    pub logprob_raw: Buffer<f32>,
    /// `log softmax(logits / temperature)[token]`, before any filter (0 for greedy rows).
    pub logprob_processed: Buffer<f32>,
    /// The log probability the token was drawn with: under the filtered, renormalised distribution
    /// (0 for greedy rows).
    pub logprob_truncated: Buffer<f32>,
    /// 1 + the number of raw logits strictly above the token's.
    pub rank: Buffer<i32>,
    /// Per row: 0, or [`STATUS_NO_FINITE`] / [`STATUS_NON_FINITE`] bits; such a row's samples are
    /// token 0, NaN logprobs, rank 0.
    pub status: Buffer<u32>,
}

impl SampleOutput {
    /// Allocates the outputs for `plan`.
    pub fn alloc(dev: &Device, plan: &SamplingPlan) -> Result<Self> {
        let m = plan.batch * plan.n;
        Ok(SampleOutput {
            token: dev.alloc_zeros(m)?,
            logprob_raw: dev.alloc_zeros(m)?,
            logprob_processed: dev.alloc_zeros(m)?,
            logprob_truncated: dev.alloc_zeros(m)?,
            rank: dev.alloc_zeros(m)?,
            status: dev.alloc_zeros(plan.batch)?,
        })
    }
}

fn check_len(name: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{want} elements ({what})"), format!("{len} elements")))
    }
}

/// Draws `plan.n()` tokens from each row of `logits` (`[batch, vocab]`, row-major) with the row's
/// [`RowParams`], and writes ids, logprobs, ranks and a status per row into `out`.
///
/// Processing order (vLLM's): temperature `z = fl32(x / T)`, then min-p (`z - max z >= ln min_p`),
/// then top-k, then top-p over the renormalised top-k set. Ties are broken by (value, lower index
/// first), so top-k keeps exactly k tokens. The draw is exact over 2^-40 fixed-point masses, with 64
/// bits from Philox 4x32-10 keyed by (seed, position, sample index): the same row gives the same
/// tokens in any batch slot and batch size. See kernels/sampling/sample.cu for the passes.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::sampling::{sample, RowParams, SampleOutput, SamplingParams, SamplingPlan};
/// use scaling_kernels::Device;
/// let dev = Device::default();
/// let logits = dev.upload(&[0.0f32, 5.0, 1.0, 5.0, -2.0])?;
/// let plan = SamplingPlan::new(1, 5, 4)?;
/// let params = SamplingParams::upload(&dev, &[RowParams { top_k: 2, seed: 7, ..RowParams::default() }])?;
/// let mut out = SampleOutput::alloc(&dev, &plan)?;
/// sample(&dev, &plan, &logits.view(), &params, &mut out)?;
/// assert!(dev.download(&out.token)?.iter().all(|&t| t == 1 || t == 3)); // the two largest
/// # Ok(()) }
/// ```
pub fn sample<T: Float>(
    dev: &Device,
    plan: &SamplingPlan,
    logits: &View<'_, T>,
    params: &SamplingParams,
    out: &mut SampleOutput,
) -> Result<()> {
    let (batch, vocab, n) = (plan.batch, plan.vocab, plan.n);
    check_len("logits", logits.len(), batch * vocab, "batch * vocab")?;
    check_len("params", params.rows(), batch, "one per row")?;
    if params.max_top_k as usize > vocab {
        return Err(Error::invalid("top_k", format!("at most the vocab ({vocab})"), params.max_top_k));
    }
    let m = batch * n;
    check_len("out.token", out.token.len(), m, "batch * n")?;
    check_len("out.logprob_raw", out.logprob_raw.len(), m, "batch * n")?;
    check_len("out.logprob_processed", out.logprob_processed.len(), m, "batch * n")?;
    check_len("out.logprob_truncated", out.logprob_truncated.len(), m, "batch * n")?;
    check_len("out.rank", out.rank.len(), m, "batch * n")?;
    check_len("out.status", out.status.len(), batch, "batch")?;
    if batch == 0 {
        return Ok(());
    }
    let (t, tk, tp, mp, sd, ps) = (
        params.temperature.view(),
        params.top_k.view(),
        params.top_p.view(),
        params.min_p.view(),
        params.seed.view(),
        params.position.view(),
    );
    let p_logits = dev.ptr("logits", logits)?;
    let (p_t, p_tk, p_tp) = (dev.ptr("temperature", &t)?, dev.ptr("top_k", &tk)?, dev.ptr("top_p", &tp)?);
    let (p_mp, p_sd, p_ps) = (dev.ptr("min_p", &mp)?, dev.ptr("seed", &sd)?, dev.ptr("position", &ps)?);
    let mut v_tok = out.token.view_mut();
    let mut v_raw = out.logprob_raw.view_mut();
    let mut v_proc = out.logprob_processed.view_mut();
    let mut v_trunc = out.logprob_truncated.view_mut();
    let mut v_rank = out.rank.view_mut();
    let mut v_status = out.status.view_mut();
    let p_tok = dev.ptr_mut("out.token", &mut v_tok)?;
    let p_raw = dev.ptr_mut("out.logprob_raw", &mut v_raw)?;
    let p_proc = dev.ptr_mut("out.logprob_processed", &mut v_proc)?;
    let p_trunc = dev.ptr_mut("out.logprob_truncated", &mut v_trunc)?;
    let p_rank = dev.ptr_mut("out.rank", &mut v_rank)?;
    let p_status = dev.ptr_mut("out.status", &mut v_status)?;
    let params = SampleParams {
        logits: p_logits.addr,
        temperature: p_t.addr,
        top_k: p_tk.addr,
        top_p: p_tp.addr,
        min_p: p_mp.addr,
        seed: p_sd.addr,
        position: p_ps.addr,
        token: p_tok.addr,
        logprob_raw: p_raw.addr,
        logprob_processed: p_proc.addr,
        logprob_truncated: p_trunc.addr,
        rank: p_rank.addr,
        status: p_status.addr,
        batch: batch as u32,
        vocab: vocab as u32,
        n: n as u32,
        pad: 0,
    };
    let dims = LaunchDims { grid: [batch as u32, 1, 1], block: [THREADS, 1, 1], dynamic_smem: CELL_HIST_BYTES };
    dev.launch(&kernels::SAMPLING_SAMPLE, &format!("sampling_sample_{}", T::NAME), dims, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name<T>(r: Result<T>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            Err(other) => panic!("expected InvalidArgument, got {other}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn plan_rejects_vocab_zero_and_bad_n() {
        assert_eq!(err_name(SamplingPlan::new(1, 0, 1)), "vocab");
        assert_eq!(err_name(SamplingPlan::new(1, MAX_VOCAB + 1, 1)), "vocab");
        assert!(SamplingPlan::new(1, MAX_VOCAB, 1).is_ok());
        assert_eq!(err_name(SamplingPlan::new(1, 8, 0)), "n");
        assert_eq!(err_name(SamplingPlan::new(1, 8, MAX_SAMPLES + 1)), "n");
        assert!(SamplingPlan::new(0, 8, MAX_SAMPLES).is_ok());
    }

    #[test]
    fn row_params_reject_each_bad_field() {
        let ok = RowParams::default();
        assert!(ok.validate().is_ok());
        for (r, name) in [
            (RowParams { temperature: -0.5, ..ok }, "temperature"),
            (RowParams { temperature: f32::NAN, ..ok }, "temperature"),
            (RowParams { top_p: 0.0, ..ok }, "top_p"),
            (RowParams { top_p: 1.5, ..ok }, "top_p"),
            (RowParams { top_p: f32::NAN, ..ok }, "top_p"),
            (RowParams { min_p: -0.1, ..ok }, "min_p"),
            (RowParams { min_p: 1.1, ..ok }, "min_p"),
        ] {
            assert_eq!(err_name(r.validate()), name, "{r:?}");
        }
        let e = RowParams { top_p: 1.5, ..ok }.validate().unwrap_err();
        assert_eq!(e.to_string(), "top_p: expected in (0, 1] (1 = off), got 1.5");
    }
}
