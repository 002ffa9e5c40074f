//! Target log-probabilities and entropy for the trainer (`kernels/sampling/logprobs.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::{LogSoftmaxGatherParams, TopLogprobsParams};

/// Most top logprobs per row ([`top_logprobs`]).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Row status bit of [`log_softmax_gather`]: the target id is outside `[0, vocab)` (it is never read).
pub const STATUS_BAD_TARGET: u32 = 4;

/// For each row of `logits` (`[tokens, vocab]`): `logprob[r] = log softmax(logits[r])[target[r]]`,
/// and the entropy of `softmax(logits[r])` when `entropy` is given; `status[r]` as the sampler's
/// ([`super::STATUS_NO_FINITE`], [`super::STATUS_NON_FINITE`]) plus [`STATUS_BAD_TARGET`]; a row with
/// a status gets NaN.
///
/// The arithmetic of the logprob is the sampler's own (same reduction shape and order), so on the
/// same logits it equals [`super::sample`]'s `logprob_raw` bit for bit.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{sampling::log_softmax_gather, Device};
/// let dev = Device::default();
/// let logits = dev.upload(&[0.0f32, 0.0, 0.0, 0.0])?;
/// let target = dev.upload(&[2i32])?;
/// let (mut lp, mut st) = (dev.alloc_zeros::<f32>(1)?, dev.alloc_zeros::<u32>(1)?);
/// log_softmax_gather(&dev, 4, &logits.view(), &target.view(), &mut lp.view_mut(), None, &mut st.view_mut())?;
/// assert!((dev.download(&lp)?[0] - (0.25f32).ln()).abs() < 1e-6);
/// # Ok(()) }
/// ```
pub fn log_softmax_gather<T: Float>(
    dev: &Device,
    vocab: usize,
    logits: &View<'_, T>,
    target: &View<'_, i32>,
    logprob: &mut ViewMut<'_, f32>,
    entropy: Option<&mut ViewMut<'_, f32>>,
    status: &mut ViewMut<'_, u32>,
) -> Result<()> {
    if vocab == 0 || u32::try_from(vocab).is_err() {
        return Err(Error::invalid("vocab", "1..=u32::MAX", vocab));
    }
    let tokens = target.len();
    if u32::try_from(tokens).is_err() {
        return Err(Error::invalid("target", "at most u32::MAX rows", tokens));
    }
    let want =
        tokens.checked_mul(vocab).ok_or_else(|| Error::invalid("logits", "tokens * vocab within usize", tokens))?;
    if logits.len() != want {
        return Err(Error::invalid("logits", format!("{want} elements (tokens * vocab)"), logits.len()));
    }
    if logprob.len() != tokens {
        return Err(Error::invalid("logprob", format!("{tokens} elements (one per target)"), logprob.len()));
    }
    if status.len() != tokens {
        return Err(Error::invalid("status", format!("{tokens} elements (one per target)"), status.len()));
    }
    if let Some(e) = &entropy {
        if e.len() != tokens {
            return Err(Error::invalid("entropy", format!("{tokens} elements (one per target)"), e.len()));
        }
    }
    if tokens == 0 {
        return Ok(());
    }
    let pl = dev.ptr("logits", logits)?;
    let pt = dev.ptr("target", target)?;
    let plp = dev.ptr_mut("logprob", logprob)?;
    let mut entropy = entropy;
    let pe = match entropy.as_mut() {
        Some(e) => Some(dev.ptr_mut("entropy", e)?),
        None => None,
    };
    let ps = dev.ptr_mut("status", status)?;
    let params = LogSoftmaxGatherParams {
        logits: pl.addr,
        target: pt.addr,
        logprob: plp.addr,
        entropy: pe.as_ref().map_or(0, |p| p.addr),
        status: ps.addr,
        tokens: tokens as u32,
        vocab: vocab as u32,
    };
    let dims = LaunchDims { grid: [tokens as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::SAMPLING_LOGPROBS, &format!("sampling_log_softmax_gather_{}", T::NAME), dims, &params)
}

/// The `n` largest raw logits of each row of `logits` (`[rows, vocab]`), ordered by (value
/// descending, index ascending), as ids and log-softmax values (`[rows, n]` each), and a status per
/// row as the sampler's (a row with a status gets ids -1 and NaN). `n` is `1..=`[`MAX_TOP_LOGPROBS`]
/// and at most `vocab`. The logprobs equal [`super::sample`]'s `logprob_raw` and
/// [`log_softmax_gather`] bit for bit on the same logits.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{sampling::top_logprobs, Device};
/// let dev = Device::default();
/// let logits = dev.upload(&[0.5f32, 2.0, -1.0, 2.0, 1.0])?;
/// let (mut ids, mut lps, mut st) = (dev.alloc_zeros::<i32>(3)?, dev.alloc_zeros::<f32>(3)?, dev.alloc_zeros::<u32>(1)?);
/// top_logprobs(&dev, 5, 3, &logits.view(), &mut ids.view_mut(), &mut lps.view_mut(), &mut st.view_mut())?;
/// assert_eq!(dev.download(&ids)?, vec![1, 3, 4]); // the tie at 2.0 in index order
/// # Ok(()) }
/// ```
pub fn top_logprobs<T: Float>(
    dev: &Device,
    vocab: usize,
    n: usize,
    logits: &View<'_, T>,
    ids: &mut ViewMut<'_, i32>,
    logprobs: &mut ViewMut<'_, f32>,
    status: &mut ViewMut<'_, u32>,
) -> Result<()> {
    if vocab == 0 || vocab > super::MAX_VOCAB {
        return Err(Error::invalid("vocab", format!("1..={}", super::MAX_VOCAB), vocab));
    }
    if n == 0 || n > MAX_TOP_LOGPROBS || n > vocab {
        return Err(Error::invalid("n", format!("1..={MAX_TOP_LOGPROBS} and at most the vocab ({vocab})"), n));
    }
    if !logits.len().is_multiple_of(vocab) {
        return Err(Error::invalid("logits", format!("a multiple of vocab ({vocab}) elements"), logits.len()));
    }
    let rows = logits.len() / vocab;
    if u32::try_from(rows).is_err() {
        return Err(Error::invalid("logits", "at most u32::MAX rows", rows));
    }
    if ids.len() != rows * n {
        return Err(Error::invalid("ids", format!("{} elements (rows * n)", rows * n), ids.len()));
    }
    if logprobs.len() != rows * n {
        return Err(Error::invalid("logprobs", format!("{} elements (rows * n)", rows * n), logprobs.len()));
    }
    if status.len() != rows {
        return Err(Error::invalid("status", format!("{rows} elements (one per row)"), status.len()));
    }
    if rows == 0 {
        return Ok(());
    }
    let pl = dev.ptr("logits", logits)?;
    let (pi, plp, ps) = (dev.ptr_mut("ids", ids)?, dev.ptr_mut("logprobs", logprobs)?, dev.ptr_mut("status", status)?);
    let params = TopLogprobsParams {
        logits: pl.addr,
        ids: pi.addr,
        logprobs: plp.addr,
        status: ps.addr,
        rows: rows as u32,
        vocab: vocab as u32,
        n: n as u32,
        pad: 0,
    };
    let dims = LaunchDims { grid: [rows as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::SAMPLING_SAMPLE, &format!("sampling_top_logprobs_{}", T::NAME), dims, &params)
}
