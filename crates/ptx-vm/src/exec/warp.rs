//! Warp collectives: the member-mask rendezvous, and `shfl`, `vote`, `match`, `redux`, `elect`,
//! `activemask`.

use super::*;

/// Register `x`'s low 32 bits in every lane.
#[inline(always)]
fn col(r: &[Lanes], x: R) -> [u32; 32] {
    std::array::from_fn(|l| r[x as usize][l] as u32)
}

/// `activemask`: the lanes executing this instruction together.
#[inline(always)]
pub(super) fn exec_activemask(warp: &mut Warp, exec: u32, mask: u32, op: &Op) {
    let Op::Activemask { d } = op else { return };
    for l in lanes_of(exec) {
        warp.regs[*d as usize][l] = mask as u64;
    }
}

/// `shfl.sync` over the lanes that arrived.
#[inline(always)]
pub(super) fn exec_shfl(warp: &mut Warp, act: u32, op: &Op) {
    let Op::ShflSync { mode, d, p, a, b, c, .. } = op else { return };
    let r = &mut warp.regs;
    let (vals, bs, cs) = (col(r, *a), col(r, *b), col(r, *c));
    let (out, pv) = semantics::warp::shfl_sync(*mode, &vals, &bs, &cs, act);
    for l in lanes_of(act) {
        r[*d as usize][l] = out[l] as u64;
        if *p != NO_REG {
            r[*p as usize][l] = pv[l] as u64;
        }
    }
}

/// `vote.sync` over the lanes that arrived.
#[inline(always)]
pub(super) fn exec_vote(warp: &mut Warp, act: u32, op: &Op) {
    let Op::VoteSync { mode, d, a, neg, .. } = op else { return };
    let r = &mut warp.regs;
    let preds: [bool; 32] = std::array::from_fn(|l| (r[*a as usize][l] & 1 == 1) != *neg);
    let v = semantics::warp::vote_sync(*mode, &preds, act);
    for l in lanes_of(act) {
        r[*d as usize][l] = v as u64;
    }
}

/// `match.any.sync` / `match.all.sync` over the lanes that arrived.
#[inline(always)]
pub(super) fn exec_match(warp: &mut Warp, act: u32, op: &Op) {
    let Op::MatchSync { all, wide, d, p, a, .. } = op else { return };
    let r = &mut warp.regs;
    let m = if *wide { u64::MAX } else { 0xffff_ffff };
    let vals: [u64; 32] = std::array::from_fn(|l| r[*a as usize][l] & m);
    if *all {
        let (v, ok) = semantics::warp::match_all(&vals, act);
        for l in lanes_of(act) {
            r[*d as usize][l] = v as u64;
            if *p != NO_REG {
                r[*p as usize][l] = ok as u64;
            }
        }
    } else {
        let v = semantics::warp::match_any(&vals, act);
        for l in lanes_of(act) {
            r[*d as usize][l] = v[l] as u64;
        }
    }
}

/// `redux.sync` over the lanes that arrived.
#[inline(always)]
pub(super) fn exec_redux(warp: &mut Warp, act: u32, op: &Op) {
    let Op::ReduxSync { op, d, a, .. } = op else { return };
    let r = &mut warp.regs;
    let v = semantics::warp::redux_sync(*op, &col(r, *a), act);
    for l in lanes_of(act) {
        r[*d as usize][l] = v as u64;
    }
}

/// `elect.sync`: the lowest arrived lane is the leader.
#[inline(always)]
pub(super) fn exec_elect(warp: &mut Warp, act: u32, op: &Op) {
    let Op::ElectSync { d, p, .. } = op else { return };
    let r = &mut warp.regs;
    let leader = act.trailing_zeros();
    for l in lanes_of(act) {
        r[*d as usize][l] = leader as u64;
        if *p != NO_REG {
            r[*p as usize][l] = (l as u32 == leader) as u64;
        }
    }
}

impl Block<'_, '_> {
    /// A warp collective reached by the lanes `exec` of group `mask` at `pc`. Returns the group
    /// to continue with (at pc + 1), or None when the lanes must wait for other members.
    pub(super) fn collective(
        &mut self,
        warp: &mut Warp,
        pc: u32,
        exec: u32,
        mask: u32,
        ins: &Inst,
    ) -> Res<Option<u32>> {
        if exec == 0 {
            return Ok(Some(mask));
        }
        let member_reg = match &ins.op {
            Op::ShflSync { mask, .. }
            | Op::VoteSync { mask, .. }
            | Op::MatchSync { mask, .. }
            | Op::ReduxSync { mask, .. }
            | Op::BarWarp { mask }
            | Op::ElectSync { mask, .. } => Some(*mask),
            _ => None,
        };
        // Lanes already waiting at this instruction join the ones arriving now.
        let mut waiting_here = 0u32;
        for l in lanes_of(warp.wait_coll) {
            if warp.pc[l] == pc {
                waiting_here |= 1 << l;
            }
        }
        let arrived = exec | waiting_here;
        if let Some(r) = member_reg {
            let first = warp.regs[r as usize][arrived.trailing_zeros() as usize] as u32;
            if lanes_of(arrived).any(|l| warp.regs[r as usize][l] as u32 != first) {
                return self.collective_split(warp, pc, exec, mask, waiting_here, r, ins);
            }
        }
        let members = match member_reg {
            Some(r) => {
                let mut m = 0u32;
                for l in lanes_of(arrived) {
                    m |= warp.regs[r as usize][l] as u32;
                }
                m
            }
            // mma/ldmatrix/stmatrix are `.aligned`: the whole warp takes part.
            None => warp.valid,
        };
        if members & !warp.valid != 0 {
            return Err(fault(
                pc,
                None,
                format!(
                    "member mask {members:#010x} names lanes that do not exist in this block (valid {:#010x})",
                    warp.valid
                ),
            ));
        }
        if members & !arrived != 0 {
            if members & warp.exited != 0 {
                return Err(fault(
                    pc,
                    None,
                    format!("member mask {members:#010x} includes exited lanes {:#010x}", members & warp.exited),
                ));
            }
            warp.wait_coll |= exec;
            for l in lanes_of(mask) {
                warp.pc[l] = if exec >> l & 1 == 1 { pc } else { pc + 1 };
            }
            return Ok(None);
        }
        if arrived & !members != 0 && member_reg.is_some() {
            return Err(fault(
                pc,
                Some((arrived & !members).trailing_zeros()),
                format!("executing lane is not in member mask {members:#010x}"),
            ));
        }
        warp.wait_coll &= !arrived;
        let act = arrived;
        if let Some(sh) = self.shadow.as_deref_mut() {
            // Every `.sync` collective orders the accesses of the lanes in its member mask.
            sh.warp_sync(warp.id as usize, members);
        }
        if self.ctx.definedness {
            self.def_collective(warp, pc, ins, act);
        }
        match &ins.op {
            Op::ShflSync { .. } => warp::exec_shfl(warp, act, &ins.op),
            Op::VoteSync { .. } => warp::exec_vote(warp, act, &ins.op),
            Op::MatchSync { .. } => warp::exec_match(warp, act, &ins.op),
            Op::ReduxSync { .. } => warp::exec_redux(warp, act, &ins.op),
            Op::ElectSync { .. } => warp::exec_elect(warp, act, &ins.op),
            Op::BarWarp { .. } => {}
            Op::Mma { .. } => self.exec_mma(warp, act, &ins.op),
            Op::Ldmatrix { .. } => self.exec_ldmatrix(warp, pc, act, &ins.op)?,
            Op::Stmatrix { .. } => self.exec_stmatrix(warp, pc, &ins.op)?,
            _ => {}
        }
        Ok(Some(mask | waiting_here))
    }

    /// A `.sync` collective whose arrived lanes name different member masks: each mask is its own
    /// collective (the tiles of a `cg::tiled_partition` each reduce or vote over their own lanes;
    /// PTX ISA 9.7.8 `redux.sync`, `vote.sync`, `match.sync`: the operation is over the lanes of
    /// the executing thread's `membermask`). The groups whose members have all arrived run now, one
    /// after the other, through `collective`; the other lanes of `exec` wait at `pc`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn collective_split(
        &mut self,
        warp: &mut Warp,
        pc: u32,
        exec: u32,
        mask: u32,
        waiting_here: u32,
        member_reg: R,
        ins: &Inst,
    ) -> Res<Option<u32>> {
        let arrived = exec | waiting_here;
        let own = |warp: &Warp, l: usize| warp.regs[member_reg as usize][l] as u32;
        let saved = warp.wait_coll;
        let mut ran = 0u32;
        let mut todo = arrived;
        while todo != 0 {
            let m = own(warp, todo.trailing_zeros() as usize);
            let lanes = lanes_of(todo).filter(|&l| own(warp, l) == m).fold(0u32, |a, l| a | 1 << l);
            todo &= !lanes;
            // A group still missing live members waits; one naming exited or absent lanes goes
            // through `collective`, which reports it.
            if m & !arrived & !warp.exited & warp.valid != 0 {
                continue;
            }
            warp.wait_coll = saved & !arrived;
            // Masks that overlap without being equal (undefined in the ISA) can leave a group waiting.
            if self.collective(warp, pc, lanes, lanes, ins)?.is_some() {
                ran |= lanes;
            }
        }
        let waiting = arrived & !ran;
        warp.wait_coll = (saved & !arrived) | waiting;
        for l in lanes_of(waiting) {
            warp.pc[l] = pc;
        }
        if ran == 0 {
            for l in lanes_of(mask) {
                warp.pc[l] = if exec >> l & 1 == 1 { pc } else { pc + 1 };
            }
            return Ok(None);
        }
        // The group goes on at pc + 1 with the lanes that skipped the instruction or completed it.
        Ok(Some((mask & !exec) | ran))
    }
}
