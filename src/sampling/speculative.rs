//! Chain speculative verification, sampled and greedy (`kernels/sampling/speculative.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::error::{Error, Result};

use super::params::ChainSpecParams;

fn check_len(name: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{want} elements ({what})"), format!("{len} elements")))
    }
}

/// Verifies `k` draft tokens per row against the target model (chain speculative sampling).
///
/// Row `r` has `draft[r, 0..k]` drawn from the draft distributions `draft_probs[r, j, ..]` and the
/// target distributions `target_probs[r, 0..=k, ..]` (probabilities over `vocab`). Draft `j` is
/// accepted with probability `min(1, p_j / q_j)` at the draft token; the first rejection emits a
/// token from the residual `max(0, p_j - q_j)` renormalised and stops; all accepted emits a bonus
/// token from `p_k`. Each emitted token is then distributed as the target says. With `draft_probs`
/// `None` the check is greedy: accept while the draft equals `argmax p_j` (lowest index on ties),
/// then emit that argmax (or `argmax p_k` as the bonus). A draft id outside `[0, vocab)` is rejected.
///
/// Writes `accepted[r]` (accepted drafts, `0..=k`) and `emitted[r, 0..=k]`: the accepted drafts,
/// then the correction or bonus token, then -1. Randomness is Philox 4x32-10 keyed by `seed[r]`
/// and `position[r]`, independent of the batch.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{sampling::chain_speculative, Device};
/// let dev = Device::default();
/// // Greedy, k = 2, vocab 3: the target's argmaxes are 1, 2, 0; the drafts are 1, 0.
/// let draft = dev.upload(&[1i32, 0])?;
/// let target = dev.upload(&[0.1f32, 0.8, 0.1, 0.2, 0.2, 0.6, 0.5, 0.3, 0.2])?;
/// let (seed, pos) = (dev.upload(&[0u64])?, dev.upload(&[0u64])?);
/// let (mut acc, mut out) = (dev.alloc_zeros::<i32>(1)?, dev.alloc_zeros::<i32>(3)?);
/// chain_speculative(&dev, 2, 3, &draft.view(), None, &target.view(), &seed.view(), &pos.view(),
///                   &mut acc.view_mut(), &mut out.view_mut())?;
/// assert_eq!(dev.download(&acc)?, vec![1]);
/// assert_eq!(dev.download(&out)?, vec![1, 2, -1]);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn chain_speculative(
    dev: &Device,
    k: usize,
    vocab: usize,
    draft: &View<'_, i32>,
    draft_probs: Option<&View<'_, f32>>,
    target_probs: &View<'_, f32>,
    seed: &View<'_, u64>,
    position: &View<'_, u64>,
    accepted: &mut ViewMut<'_, i32>,
    emitted: &mut ViewMut<'_, i32>,
) -> Result<()> {
    if vocab == 0 || vocab > super::MAX_VOCAB {
        return Err(Error::invalid("vocab", format!("1..={} (64-bit sums of 2^40 masses)", super::MAX_VOCAB), vocab));
    }
    if k == 0 || u32::try_from(k).is_err() {
        return Err(Error::invalid("k", "at least 1 draft token", k));
    }
    let batch = seed.len();
    if u32::try_from(batch).is_err() {
        return Err(Error::invalid("seed", "at most u32::MAX rows", batch));
    }
    let big = || Error::invalid("target_probs", "batch * (k + 1) * vocab within usize", batch);
    let per_row = (k + 1).checked_mul(vocab).ok_or_else(big)?;
    check_len(
        "target_probs",
        target_probs.len(),
        batch.checked_mul(per_row).ok_or_else(big)?,
        "batch * (k + 1) * vocab",
    )?;
    check_len("draft", draft.len(), batch * k, "batch * k")?;
    if let Some(q) = draft_probs {
        check_len("draft_probs", q.len(), batch * k * vocab, "batch * k * vocab")?;
    }
    check_len("position", position.len(), batch, "one per row, as seed")?;
    check_len("accepted", accepted.len(), batch, "one per row")?;
    check_len("emitted", emitted.len(), batch * (k + 1), "batch * (k + 1)")?;
    if batch == 0 {
        return Ok(());
    }
    let pd = dev.ptr("draft", draft)?;
    let pq = match draft_probs {
        Some(q) => Some(dev.ptr("draft_probs", q)?),
        None => None,
    };
    let pt = dev.ptr("target_probs", target_probs)?;
    let (ps, pp) = (dev.ptr("seed", seed)?, dev.ptr("position", position)?);
    let (pa, pe) = (dev.ptr_mut("accepted", accepted)?, dev.ptr_mut("emitted", emitted)?);
    let params = ChainSpecParams {
        draft: pd.addr,
        draft_probs: pq.as_ref().map_or(0, |p| p.addr),
        target_probs: pt.addr,
        seed: ps.addr,
        position: pp.addr,
        accepted: pa.addr,
        emitted: pe.addr,
        batch: batch as u32,
        k: k as u32,
        vocab: vocab as u32,
        greedy: u32::from(draft_probs.is_none()),
    };
    let dims = LaunchDims { grid: [batch as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::SAMPLING_SPECULATIVE, "sampling_chain_speculative", dims, &params)
}
