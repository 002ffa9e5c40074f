//! Target log-probabilities and entropy for the trainer (`kernels/sampling/logprobs.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::LogSoftmaxGatherParams;

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
