//! Test-time answer selection over ragged groups of samples (`kernels/sampling/select.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::error::{Error, Result};

use super::params::{BestOfNParams, MajorityVoteParams};

/// Groups per CTA (`kSelectWarps`: one warp per group).
const GROUPS_PER_BLOCK: u32 = 4;

/// Checks CSR `offsets` (`groups + 1` entries, starting at 0, non-decreasing, ending at `len`);
/// returns the number of groups.
fn check_offsets(offsets: &[u32], len: usize, what: &'static str) -> Result<usize> {
    if offsets.first() != Some(&0) {
        return Err(Error::invalid("offsets", "groups + 1 entries starting at 0", format!("{:?}", offsets.first())));
    }
    if let Some(w) = offsets.windows(2).position(|w| w[0] > w[1]) {
        return Err(Error::invalid("offsets", "non-decreasing", format!("offsets[{w}] > offsets[{}]", w + 1)));
    }
    let last = *offsets.last().unwrap_or(&0) as usize;
    if last != len {
        return Err(Error::invalid(what, format!("{last} elements (the last offset)"), len));
    }
    let groups = offsets.len() - 1;
    if u32::try_from(groups).is_err() {
        return Err(Error::invalid("offsets", "at most u32::MAX groups", groups));
    }
    Ok(groups)
}

fn dims(groups: usize) -> LaunchDims {
    let blocks = (groups as u32).div_ceil(GROUPS_PER_BLOCK);
    LaunchDims { grid: [blocks, 1, 1], block: [32 * GROUPS_PER_BLOCK, 1, 1], dynamic_smem: 0 }
}

/// Majority vote per group: group `g` holds `answers[offsets[g]..offsets[g + 1]]` (answer ids, e.g.
/// hashes of the extracted final answers). Writes the most frequent id (ties to the lowest id) to
/// `answer[g]` and its count to `votes[g]`; an empty group gives answer 0 with 0 votes. `offsets` are
/// checked on the host (starting at 0, non-decreasing, ending at `answers.len()`).
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{sampling::majority_vote, Device};
/// let dev = Device::default();
/// let answers = dev.upload(&[7u64, 3, 7, 3, 9, 5, 5])?;
/// let (mut answer, mut votes) = (dev.alloc_zeros::<u64>(2)?, dev.alloc_zeros::<u32>(2)?);
/// majority_vote(&dev, &answers.view(), &[0, 5, 7], &mut answer.view_mut(), &mut votes.view_mut())?;
/// assert_eq!(dev.download(&answer)?, vec![3, 5]); // 3 and 7 tie at 2 votes: the lower id wins
/// assert_eq!(dev.download(&votes)?, vec![2, 2]);
/// # Ok(()) }
/// ```
pub fn majority_vote(
    dev: &Device,
    answers: &View<'_, u64>,
    offsets: &[u32],
    answer: &mut ViewMut<'_, u64>,
    votes: &mut ViewMut<'_, u32>,
) -> Result<()> {
    let groups = check_offsets(offsets, answers.len(), "answers")?;
    if answer.len() != groups {
        return Err(Error::invalid("answer", format!("{groups} elements (one per group)"), answer.len()));
    }
    if votes.len() != groups {
        return Err(Error::invalid("votes", format!("{groups} elements (one per group)"), votes.len()));
    }
    if groups == 0 {
        return Ok(());
    }
    let off = dev.upload(offsets)?;
    let off_view = off.view();
    let (pa, po) = (dev.ptr("answers", answers)?, dev.ptr("offsets", &off_view)?);
    let (pout, pv) = (dev.ptr_mut("answer", answer)?, dev.ptr_mut("votes", votes)?);
    let params = MajorityVoteParams {
        answers: pa.addr,
        offsets: po.addr,
        answer: pout.addr,
        votes: pv.addr,
        groups: groups as u32,
        pad: 0,
    };
    dev.launch(&kernels::SAMPLING_SELECT, "sampling_majority_vote", dims(groups), &params)
}

/// Best-of-n per group: the index within group `g` (`reward[offsets[g]..offsets[g + 1]]`) of the
/// largest reward, ties to the lowest index, into `index[g]`, and the reward into `best[g]`. A NaN
/// reward never beats a number; an all-NaN group gives index 0 and NaN; an empty group -1 and NaN.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{sampling::best_of_n, Device};
/// let dev = Device::default();
/// let reward = dev.upload(&[0.1f32, 0.9, 0.9, f32::NAN, -1.0])?;
/// let (mut index, mut best) = (dev.alloc_zeros::<i32>(2)?, dev.alloc_zeros::<f32>(2)?);
/// best_of_n(&dev, &reward.view(), &[0, 3, 5], &mut index.view_mut(), &mut best.view_mut())?;
/// assert_eq!(dev.download(&index)?, vec![1, 1]);
/// assert_eq!(dev.download(&best)?, vec![0.9, -1.0]);
/// # Ok(()) }
/// ```
pub fn best_of_n(
    dev: &Device,
    reward: &View<'_, f32>,
    offsets: &[u32],
    index: &mut ViewMut<'_, i32>,
    best: &mut ViewMut<'_, f32>,
) -> Result<()> {
    let groups = check_offsets(offsets, reward.len(), "reward")?;
    if index.len() != groups {
        return Err(Error::invalid("index", format!("{groups} elements (one per group)"), index.len()));
    }
    if best.len() != groups {
        return Err(Error::invalid("best", format!("{groups} elements (one per group)"), best.len()));
    }
    if groups == 0 {
        return Ok(());
    }
    let off = dev.upload(offsets)?;
    let off_view = off.view();
    let (pr, po) = (dev.ptr("reward", reward)?, dev.ptr("offsets", &off_view)?);
    let (pi, pb) = (dev.ptr_mut("index", index)?, dev.ptr_mut("best", best)?);
    let params = BestOfNParams {
        reward: pr.addr,
        offsets: po.addr,
        index: pi.addr,
        best: pb.addr,
        groups: groups as u32,
        pad: 0,
    };
    dev.launch(&kernels::SAMPLING_SELECT, "sampling_best_of_n", dims(groups), &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_checked() {
        assert_eq!(check_offsets(&[0, 2, 2, 5], 5, "answers"), Ok(3));
        assert_eq!(check_offsets(&[0], 0, "answers"), Ok(0));
        let name = |r: Result<usize>| match r {
            Err(Error::InvalidArgument { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(name(check_offsets(&[], 0, "answers")), "offsets");
        assert_eq!(name(check_offsets(&[1, 2], 2, "answers")), "offsets");
        assert_eq!(name(check_offsets(&[0, 3, 2], 2, "answers")), "offsets");
        assert_eq!(name(check_offsets(&[0, 3], 4, "answers")), "answers");
    }
}
