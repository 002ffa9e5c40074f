//! Warp collectives on per-lane arrays of 32: `shfl.sync`, `vote.sync`, `match.sync`,
//! `redux.sync` (PTX ISA 9.0 §9.7.13 "Parallel Synchronization and Communication Instructions").
//!
//! `members` is the instruction's `membermask` intersected with the lanes that execute it; lanes
//! outside it neither contribute nor receive (their outputs are left as the input value / zero).

/// `shfl.sync` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    /// `.up`: read from lane - b.
    Up,
    /// `.down`: read from lane + b.
    Down,
    /// `.bfly`: read from lane ^ b.
    Bfly,
    /// `.idx`: read from lane b (within the segment).
    Idx,
}

/// The source lane and the in-range predicate of one lane, exactly as the pseudo-code of PTX ISA
/// 9.0 §9.7.13.7 "shfl.sync" computes them:
/// ```text
/// bval = b[4:0]; cval = c[4:0]; segmask = c[12:8];
/// maxLane = (lane & segmask) | (cval & ~segmask); minLane = lane & segmask;
/// up:   j = lane - bval; pval = (j >= maxLane)
/// down: j = lane + bval; pval = (j <= maxLane)
/// bfly: j = lane ^ bval; pval = (j <= maxLane)
/// idx:  j = minLane | (bval & ~segmask); pval = (j <= maxLane)
/// if (!pval) j = lane;
/// ```
pub fn shfl_source(mode: ShflMode, lane: u32, b: u32, c: u32) -> (u32, bool) {
    let lane = lane as i32;
    let bval = (b & 0x1f) as i32;
    let cval = (c & 0x1f) as i32;
    let segmask = ((c >> 8) & 0x1f) as i32;
    let max_lane = (lane & segmask) | (cval & !segmask);
    let min_lane = lane & segmask;
    let (j, pval) = match mode {
        ShflMode::Up => {
            let j = lane - bval;
            (j, j >= max_lane)
        }
        ShflMode::Down => {
            let j = lane + bval;
            (j, j <= max_lane)
        }
        ShflMode::Bfly => {
            let j = lane ^ bval;
            (j, j <= max_lane)
        }
        ShflMode::Idx => {
            let j = min_lane | (bval & !segmask);
            (j, j <= max_lane)
        }
    };
    if pval {
        (j as u32, true)
    } else {
        (lane as u32, false)
    }
}

/// `shfl.sync.mode.b32 d|p, a, b, c, membermask` for the whole warp. `vals` is `a` per lane, `b`
/// and `c` per lane (they may differ between lanes). Returns `d` and `p` per lane; lanes outside
/// `members` get their own `a` and `p = false`. A member reading from a non-member lane gets
/// that lane's `a` as it is (the ISA leaves it undefined; see [`shfl_undefined_reads`]).
pub fn shfl_sync(
    mode: ShflMode,
    vals: &[u32; 32],
    b: &[u32; 32],
    c: &[u32; 32],
    members: u32,
) -> ([u32; 32], [bool; 32]) {
    let mut d = *vals;
    let mut p = [false; 32];
    for lane in 0..32u32 {
        if members >> lane & 1 == 0 {
            continue;
        }
        let (j, pval) = shfl_source(mode, lane, b[lane as usize], c[lane as usize]);
        d[lane as usize] = vals[j as usize];
        p[lane as usize] = pval;
    }
    (d, p)
}

/// Mask of member lanes whose in-range source lane is not a member: their result is undefined
/// in the ISA ("results are undefined ... if an active thread sources a register from an
/// inactive thread", PTX ISA 9.0 §9.7.13.7), so a sanitizer reports them.
pub fn shfl_undefined_reads(mode: ShflMode, b: &[u32; 32], c: &[u32; 32], members: u32) -> u32 {
    let mut bad = 0;
    for lane in 0..32u32 {
        if members >> lane & 1 == 0 {
            continue;
        }
        let (j, _) = shfl_source(mode, lane, b[lane as usize], c[lane as usize]);
        if members >> j & 1 == 0 {
            bad |= 1 << lane;
        }
    }
    bad
}

/// `vote.sync` mode (PTX ISA 9.0 §9.7.13.9 "vote.sync").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    /// `.all`: true when the predicate is true in every member.
    All,
    /// `.any`: true when the predicate is true in some member.
    Any,
    /// `.uni`: true when the predicate is the same in every member.
    Uni,
    /// `.ballot.b32`: bit i set when member lane i has the predicate true.
    Ballot,
}

/// `vote.sync.mode`; the result is the same for every member (a 0/1 value for the predicate
/// modes, the mask for `.ballot`).
pub fn vote_sync(mode: VoteMode, preds: &[bool; 32], members: u32) -> u32 {
    let ballot = (0..32).filter(|&l| members >> l & 1 == 1 && preds[l as usize]).fold(0u32, |m, l| m | 1 << l);
    match mode {
        VoteMode::Ballot => ballot,
        VoteMode::All => (ballot == members) as u32,
        VoteMode::Any => (ballot != 0) as u32,
        VoteMode::Uni => (ballot == 0 || ballot == members) as u32,
    }
}

/// `match.any.sync.b{32,64} d, a, membermask`: per member lane, the mask of members holding the
/// same value (PTX ISA 9.0 §9.7.13.10 "match.sync"). Non-members get 0.
pub fn match_any(vals: &[u64; 32], members: u32) -> [u32; 32] {
    let mut out = [0u32; 32];
    for lane in 0..32 {
        if members >> lane & 1 == 0 {
            continue;
        }
        out[lane] = (0..32).filter(|&l| members >> l & 1 == 1 && vals[l] == vals[lane]).fold(0u32, |m, l| m | 1 << l);
    }
    out
}

/// `match.all.sync.b{32,64} d|p, a, membermask`: `d = membermask` and `p = true` when every
/// member holds the same value, else `d = 0`, `p = false` (the same for every member).
pub fn match_all(vals: &[u64; 32], members: u32) -> (u32, bool) {
    let mut it = (0..32).filter(|&l| members >> l & 1 == 1);
    let all = match it.next() {
        Some(first) => it.all(|l| vals[l] == vals[first]),
        None => true,
    };
    if all {
        (members, true)
    } else {
        (0, false)
    }
}

/// `redux.sync` operation (PTX ISA 9.0 §9.7.13.11 "redux.sync").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduxOp {
    /// `.add.{u32,s32}` (wrapping: the same bits for both).
    Add,
    /// `.min.u32`
    MinU,
    /// `.max.u32`
    MaxU,
    /// `.min.s32`
    MinS,
    /// `.max.s32`
    MaxS,
    /// `.and.b32`
    And,
    /// `.or.b32`
    Or,
    /// `.xor.b32`
    Xor,
}

/// `redux.sync.op.type d, a, membermask`: the reduction over members, the same for each.
/// With no members the identity of the operation is returned.
pub fn redux_sync(op: ReduxOp, vals: &[u32; 32], members: u32) -> u32 {
    let it = (0..32).filter(|&l| members >> l & 1 == 1).map(|l| vals[l]);
    match op {
        ReduxOp::Add => it.fold(0u32, u32::wrapping_add),
        ReduxOp::MinU => it.fold(u32::MAX, u32::min),
        ReduxOp::MaxU => it.fold(0, u32::max),
        ReduxOp::MinS => it.fold(i32::MAX, |m, v| m.min(v as i32)) as u32,
        ReduxOp::MaxS => it.fold(i32::MIN, |m, v| m.max(v as i32)) as u32,
        ReduxOp::And => it.fold(u32::MAX, |m, v| m & v),
        ReduxOp::Or => it.fold(0, |m, v| m | v),
        ReduxOp::Xor => it.fold(0, |m, v| m ^ v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(f: impl Fn(u32) -> u32) -> [u32; 32] {
        std::array::from_fn(|i| f(i as u32))
    }

    /// The CUDA intrinsics encode width w as c = ((32 - w) << 8) | clamp with clamp = 31 for
    /// down/bfly/idx and 0 for up. The expectations below are the intrinsics' documented
    /// behaviour, written out per lane, independently of the pseudo-code.
    fn c_for(mode: ShflMode, width: u32) -> u32 {
        let clamp = if mode == ShflMode::Up { 0 } else { 0x1f };
        ((32 - width) << 8) | clamp
    }

    #[test]
    fn shfl_down_within_segments_keeps_own_value_past_segment_end() {
        let vals = lanes(|l| 100 + l);
        for width in [32, 16, 8, 4, 2] {
            for delta in [1u32, 3, 5] {
                let (d, p) =
                    shfl_sync(ShflMode::Down, &vals, &[delta; 32], &[c_for(ShflMode::Down, width); 32], u32::MAX);
                for lane in 0..32 {
                    let seg_end = (lane / width + 1) * width;
                    let in_range = lane + delta < seg_end;
                    let expect = if in_range { 100 + lane + delta } else { 100 + lane };
                    assert_eq!(d[lane as usize], expect, "w{width} d{delta} lane{lane}");
                    assert_eq!(p[lane as usize], in_range);
                }
            }
        }
    }

    #[test]
    fn shfl_up_within_segments() {
        let vals = lanes(|l| 7 * l);
        for width in [32, 8] {
            let (d, p) = shfl_sync(ShflMode::Up, &vals, &[2; 32], &[c_for(ShflMode::Up, width); 32], u32::MAX);
            for lane in 0..32 {
                let in_range = lane % width >= 2;
                assert_eq!(d[lane as usize], if in_range { 7 * (lane - 2) } else { 7 * lane });
                assert_eq!(p[lane as usize], in_range);
            }
        }
    }

    #[test]
    fn shfl_bfly_and_idx_segments() {
        let vals = lanes(|l| l * l);
        let (d, p) = shfl_sync(ShflMode::Bfly, &vals, &[5; 32], &[c_for(ShflMode::Bfly, 32); 32], u32::MAX);
        for lane in 0..32 {
            assert_eq!(d[lane as usize], (lane ^ 5) * (lane ^ 5));
            assert!(p[lane as usize]);
        }
        // xor 5 in segments of 4 takes lane ^ 5 only when it stays in the segment: (lane ^ 5)
        // leaves the segment of 4 (bit 2 flips), so every lane keeps its own value.
        let (d, p) = shfl_sync(ShflMode::Bfly, &vals, &[5; 32], &[c_for(ShflMode::Bfly, 4); 32], u32::MAX);
        for lane in 0..32u32 {
            let j = lane ^ 5;
            let same_seg = j / 4 == lane / 4;
            // __shfl_xor_sync with width 4: sources outside the lane's own or lower segments
            // return the own value; a source in a *lower* segment is still read (j <= maxLane).
            let ok = same_seg || j < lane;
            assert_eq!(p[lane as usize], ok, "lane {lane}");
            assert_eq!(d[lane as usize], if ok { j * j } else { lane * lane });
        }
        // idx with width 8: lane reads segment_base + (src % 8), any src (out of range too).
        let srcs = lanes(|l| (l * 13 + 40) % 64);
        let (d, p) = shfl_sync(ShflMode::Idx, &vals, &srcs, &[c_for(ShflMode::Idx, 8); 32], u32::MAX);
        for lane in 0..32u32 {
            let j = lane / 8 * 8 + srcs[lane as usize] % 8;
            assert_eq!(d[lane as usize], j * j);
            assert!(p[lane as usize]);
        }
    }

    #[test]
    fn shfl_partial_mask_and_undefined_sources() {
        let vals = lanes(|l| l + 1000);
        let members = 0x0000_ffff;
        let (d, p) = shfl_sync(ShflMode::Down, &vals, &[4; 32], &[0x1f; 32], members);
        for lane in 0..32u32 {
            if lane < 16 {
                assert_eq!(d[lane as usize], 1000 + lane + 4);
                assert!(p[lane as usize]);
            } else {
                assert_eq!(d[lane as usize], 1000 + lane);
                assert!(!p[lane as usize]);
            }
        }
        // Lanes 12..15 read lanes 16..19, which are not members.
        assert_eq!(shfl_undefined_reads(ShflMode::Down, &[4; 32], &[0x1f; 32], members), 0xf000);
        // In-range reads of non-members are undefined (lanes 0..11 read 20..31)...
        assert_eq!(shfl_undefined_reads(ShflMode::Down, &[20; 32], &[0x1f; 32], 0xffff), 0x0fff);
        // ...but out-of-range reads (segments of 16) read the own lane and are defined.
        let c16 = (16 << 8) | 0x1f;
        assert_eq!(shfl_undefined_reads(ShflMode::Down, &[20; 32], &[c16; 32], 0xffff), 0);
    }

    #[test]
    fn vote_match_redux() {
        let preds: [bool; 32] = std::array::from_fn(|l| l % 3 == 0);
        let ballot = (0..32).filter(|l| l % 3 == 0).fold(0u32, |m, l| m | 1 << l);
        assert_eq!(vote_sync(VoteMode::Ballot, &preds, u32::MAX), ballot);
        assert_eq!(vote_sync(VoteMode::Ballot, &preds, 0xff), ballot & 0xff);
        assert_eq!(vote_sync(VoteMode::All, &preds, u32::MAX), 0);
        assert_eq!(vote_sync(VoteMode::All, &preds, 0x9 | 1 << 30), 1);
        assert_eq!(vote_sync(VoteMode::Any, &preds, 0x6), 0);
        assert_eq!(vote_sync(VoteMode::Uni, &preds, 0x6), 1);
        assert_eq!(vote_sync(VoteMode::Uni, &preds, 0x3), 0);

        let vals: [u64; 32] = std::array::from_fn(|l| (l % 4) as u64);
        let m = match_any(&vals, 0x0000_00ff);
        assert_eq!(m[0], 0x11);
        assert_eq!(m[3], 0x88);
        assert_eq!(m[8], 0);
        assert_eq!(match_all(&vals, 0x11), (0x11, true));
        assert_eq!(match_all(&vals, 0x13), (0, false));

        let v: [u32; 32] = std::array::from_fn(|l| (l as u32).wrapping_sub(5));
        assert_eq!(redux_sync(ReduxOp::Add, &v, u32::MAX), (0..32u32).sum::<u32>().wrapping_sub(160));
        assert_eq!(redux_sync(ReduxOp::MinS, &v, u32::MAX), (-5i32) as u32);
        assert_eq!(redux_sync(ReduxOp::MinU, &v, u32::MAX), 0);
        assert_eq!(redux_sync(ReduxOp::MaxU, &v, u32::MAX), (-1i32) as u32);
        assert_eq!(redux_sync(ReduxOp::MaxS, &v, u32::MAX), 26);
        assert_eq!(redux_sync(ReduxOp::Or, &v, 0b110), 0xffff_fffc | 0xffff_fffd);
        assert_eq!(redux_sync(ReduxOp::And, &v, 0b110), 0xffff_fffc & 0xffff_fffd);
        assert_eq!(redux_sync(ReduxOp::Xor, &v, 0b110), 0xffff_fffc ^ 0xffff_fffd);
    }
}
