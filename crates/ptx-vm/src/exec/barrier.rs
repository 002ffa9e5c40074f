//! CTA barriers (`bar`/`barrier`, with exited threads counted as arrived) and mbarrier objects.

use super::*;

/// `bar_id` of a lane suspended in `mbarrier.try_wait` (CTA barriers are 0..16).
pub(super) const MBAR_WAIT: u8 = u8::MAX;
/// The largest arrival count and |tx-count| of an mbarrier (PTX ISA 9.7.13.15.1: 2^20 - 1).
pub(super) const MBAR_MAX_COUNT: u64 = (1 << 20) - 1;
/// One 21-bit field of the object.
const MBAR_FIELD: u64 = (1 << 21) - 1;

/// An mbarrier object in the VM's own layout (the ISA leaves it opaque): bits 0-20 the pending
/// arrivals, 21-41 the expected arrivals, 42-62 the tx-count (two's complement), bit 63 the
/// phase parity. A state token is the object's value at the arrival, so its bit 63 names the
/// phase it joined; `pending_count` reads bits 0-20 of the token.
pub(super) struct MbarState {
    pub(super) pending: u64,
    pub(super) expected: u64,
    pub(super) tx: i64,
    pub(super) phase: u64,
}

impl MbarState {
    pub(super) fn unpack(v: u64) -> Self {
        let tx = ((((v >> 42) & MBAR_FIELD) as i64) << 43) >> 43;
        MbarState { pending: v & MBAR_FIELD, expected: (v >> 21) & MBAR_FIELD, tx, phase: v >> 63 }
    }

    fn pack(&self) -> u64 {
        self.pending | self.expected << 21 | ((self.tx as u64) & MBAR_FIELD) << 42 | self.phase << 63
    }
}

/// Racecheck's record of one mbarrier object: the releases joined into its current phase and into
/// its completed phases (vector clocks, see `BlockShadow::release`), and the warps that made them.
pub(super) struct MbarSync {
    obj: u64,
    phase: Vec<u32>,
    phase_warps: u32,
    done: Vec<u32>,
    done_warps: u32,
}

impl MbarSync {
    fn new(obj: u64, nwarps: usize) -> Self {
        MbarSync { obj, phase: vec![0; nwarps], phase_warps: 0, done: vec![0; nwarps], done_warps: 0 }
    }
}

impl Block<'_, '_> {
    /// An mbarrier instruction, one lane after the other. Returns the lanes of a `try_wait` whose
    /// phase has not completed: they are suspended at the instruction (`wait_bar` with
    /// [`MBAR_WAIT`]) until it completes or the block can do nothing else.
    #[inline(always)]
    pub(super) fn exec_mbarrier(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<u32> {
        let Op::Mbarrier { k, d, addr, off, b } = op else { return Ok(0) };
        let mut suspended = 0u32;
        for l in lanes_of(exec) {
            let a = shared_addr(eff(warp.regs[*addr as usize][l], *off, Space::Shared));
            let bv = warp.regs[*b as usize][l];
            let (v, flipped) = self.mbarrier(*k, a, bv).map_err(|m| fault(pc, Some(l as u32), m))?;
            if let Mbar::TestWait { blocking, parity, .. } = *k {
                if v == 0 {
                    warp.mbar_poll = Some((pc, a, if parity { bv & 1 } else { bv >> 63 }));
                    if blocking {
                        suspended |= 1 << l;
                        warp.bar_id[l] = MBAR_WAIT;
                        continue;
                    }
                } else {
                    warp.mbar_poll = None;
                }
            }
            warp.regs[*d as usize][l] = v;
            if self.shadow.is_some() {
                self.mbarrier_sync(warp.id, *k, a, flipped, v, false);
            }
        }
        Ok(suspended)
    }

    /// For a lane suspended in `mbarrier.try_wait`: its object's address, the phase parity it
    /// waits for, and whether that phase has completed.
    fn mbarrier_wait_state(&self, warp: &Warp, l: usize) -> Option<(u64, u64, bool)> {
        let Some(Inst { op: Op::Mbarrier { k: Mbar::TestWait { parity, .. }, addr, off, b, .. }, .. }) =
            self.ctx.kernel.code.get(warp.pc[l] as usize)
        else {
            return None;
        };
        let a = shared_addr(warp.regs[*addr as usize][l].wrapping_add(*off as u64));
        let bv = warp.regs[*b as usize][l];
        let waited = if *parity { bv & 1 } else { bv >> 63 };
        let cur = rd(self.smem, a as usize, 8)?;
        Some((a, waited, cur >> 63 != waited))
    }

    /// Releases the lanes suspended in `mbarrier.try_wait` whose phase has completed.
    fn release_mbarrier_waits(&mut self, warp: &mut Warp) -> bool {
        let mut any = false;
        for l in lanes_of(warp.wait_bar) {
            if warp.bar_id[l] != MBAR_WAIT {
                continue;
            }
            let Some((a, _, done)) = self.mbarrier_wait_state(warp, l) else { continue };
            if !done {
                continue;
            }
            let pc = warp.pc[l];
            if let Some(Inst { op: Op::Mbarrier { d, k, .. }, .. }) = self.ctx.kernel.code.get(pc as usize) {
                warp.regs[*d as usize][l] = 1;
                if self.shadow.is_some() {
                    self.mbarrier_sync(warp.id, *k, a, false, 1, false);
                }
            }
            warp.wait_bar &= !(1 << l);
            warp.pc[l] = pc + 1;
            any = true;
        }
        any
    }

    /// When no warp of the block can move: the `try_wait`s suspended on an incomplete phase reach
    /// their time limit and return false (PTX ISA 9.7.13.15.16: the suspension ends at the phase's
    /// completion or a system-dependent time limit), so a kernel that polls with `try_wait` and
    /// then arrives itself still runs. If no mbarrier changed since the last such time-out, the
    /// waits could only time out forever: returns false and the block deadlocks.
    pub(super) fn time_out_mbarrier_waits(&mut self, warps: &mut [Warp]) -> bool {
        if self.mbar_epoch == self.mbar_timeout_epoch {
            return false;
        }
        self.mbar_timeout_epoch = self.mbar_epoch;
        let mut any = false;
        for warp in warps.iter_mut() {
            for l in lanes_of(warp.wait_bar) {
                if warp.bar_id[l] != MBAR_WAIT {
                    continue;
                }
                let pc = warp.pc[l];
                if let Some((a, waited, _)) = self.mbarrier_wait_state(warp, l) {
                    warp.mbar_poll = Some((pc, a, waited));
                }
                if let Some(Inst { op: Op::Mbarrier { d, .. }, .. }) = self.ctx.kernel.code.get(pc as usize) {
                    warp.regs[*d as usize][l] = 0;
                }
                warp.wait_bar &= !(1 << l);
                warp.pc[l] = pc + 1;
                any = true;
            }
        }
        any
    }

    /// The deadlock report's words for lanes suspended in `mbarrier.try_wait`: the object, the
    /// phase awaited and what it still lacks.
    pub(super) fn describe_mbarrier_wait(&self, warp: &Warp, l: usize) -> String {
        let Some((a, waited, _)) = self.mbarrier_wait_state(warp, l) else { return "wait at an mbarrier".into() };
        format!("wait at {}", self.describe_mbarrier(a, waited))
    }

    /// The mbarrier object at shared address `a`, named by its variable, and its phase of parity
    /// `waited`: whether it completed, else the arrivals and transaction bytes it still lacks.
    pub(super) fn describe_mbarrier(&self, a: u64, waited: u64) -> String {
        let cur = rd(self.smem, a as usize, 8).unwrap_or(0);
        let s = MbarState::unpack(cur);
        let name = self.shared_name(a);
        if s.phase != waited {
            return format!("mbarrier [shared {a:#x}] ({name}), whose phase of parity {waited} has completed");
        }
        let tx = match s.tx {
            0 => "no transaction bytes outstanding".to_string(),
            t if t > 0 => format!("{t} transaction bytes expected (expect_tx) but not completed"),
            t => format!(
                "{} transaction bytes completed beyond those expected, which no expect_tx announced: a missing \
                 expect_tx, without which the phase cannot complete",
                -t
            ),
        };
        format!(
            "mbarrier [shared {a:#x}] ({name}) for its phase of parity {waited} to complete ({} of {} arrivals \
             missing, {tx})",
            s.pending, s.expected
        )
    }

    /// Shared address `a` in the kernel's own terms: `` `var`+offset `` within the static shared
    /// variable that holds it, or within the dynamic shared array.
    pub(super) fn shared_name(&self, a: u64) -> String {
        let k = self.ctx.kernel;
        let a = a as usize;
        if let Some((n, off, _)) = k.shared_vars.iter().find(|(_, off, size)| (*off..off + size).contains(&a)) {
            return format!("`{n}`+{}", a - off);
        }
        let dyn_base = k.static_smem.div_ceil(k.dyn_smem_align) * k.dyn_smem_align;
        match &k.dyn_smem_name {
            Some(n) if a >= dyn_base => format!("`{n}`+{} (dynamic shared memory)", a - dyn_base),
            _ => "no shared variable".to_string(),
        }
    }

    /// Releases lanes whose barrier completed since they arrived.
    pub(super) fn release_barriers(&mut self, warp: &mut Warp) -> bool {
        if warp.wait_bar == 0 {
            return false;
        }
        let mut any = self.release_mbarrier_waits(warp);
        for l in lanes_of(warp.wait_bar) {
            let id = warp.bar_id[l] as usize;
            if id == MBAR_WAIT as usize {
                continue;
            }
            if self.bars[id].gen != warp.bar_gen[l] {
                warp.wait_bar &= !(1 << l);
                let pc = warp.pc[l];
                if let Some(Inst { op: Op::Bar { kind, d, .. }, .. }) = self.ctx.kernel.code.get(pc as usize) {
                    let b = &self.bars[id];
                    match kind {
                        BarKind::RedPopc => warp.regs[*d as usize][l] = b.result_popc as u64,
                        BarKind::RedAnd => warp.regs[*d as usize][l] = b.result_and as u64,
                        BarKind::RedOr => warp.regs[*d as usize][l] = b.result_or as u64,
                        _ => {}
                    }
                }
                warp.pc[l] = pc + 1;
                any = true;
            }
        }
        any
    }

    /// One thread's mbarrier operation (PTX ISA 9.7.13.15): returns the result for `d` (state
    /// token, completion predicate or count) and whether the operation completed the phase.
    ///
    /// A phase completes when its pending arrival count and its transaction count (tx-count) are
    /// both zero (9.7.13.15.1-2): `arrive` lowers the first, `expect_tx` raises and `complete_tx`
    /// lowers the second; the next phase then expects the init count again (less the
    /// `arrive_drop`s) and a tx-count of zero. Every use the ISA leaves undefined is an error:
    /// an object that is not 8-byte aligned or not initialised (or invalidated), an init count
    /// outside 1..=2^20-1, more arrivals than are pending, a `.noComplete` arrival that would
    /// complete the phase, a tx-count leaving -(2^20-1)..=2^20-1.
    pub(super) fn mbarrier(&mut self, k: Mbar, a: u64, b: u64) -> Result<(u64, bool), String> {
        if k == Mbar::PendingCount {
            return Ok((b & MBAR_FIELD, false));
        }
        if a % 8 != 0 {
            return Err(format!("mbarrier object at shared address {a:#x} is not 8-byte aligned"));
        }
        let len = self.smem.len();
        let oob = || format!("mbarrier object at shared address {a:#x} outside the block's {len} bytes");
        let cur = rd(self.smem, a as usize, 8).ok_or_else(oob)?;
        let mut s = MbarState::unpack(cur);
        let valid = (1..=MBAR_MAX_COUNT).contains(&s.expected) && s.pending <= s.expected;
        let named = |k: Mbar| match k {
            Mbar::Init => "init",
            Mbar::Inval => "inval",
            Mbar::Arrive { drop: true, .. } => "arrive_drop",
            Mbar::Arrive { tx: true, .. } => "arrive.expect_tx",
            Mbar::Arrive { .. } => "arrive",
            Mbar::Tx { complete: false } => "expect_tx",
            Mbar::Tx { complete: true } => "complete_tx",
            Mbar::TestWait { blocking: true, .. } => "try_wait",
            Mbar::TestWait { .. } => "test_wait",
            Mbar::PendingCount => "pending_count",
            Mbar::CpAsyncArrive { .. } => "cp.async.mbarrier.arrive",
        };
        if !valid && !matches!(k, Mbar::Init | Mbar::Inval) {
            return Err(format!(
                "mbarrier.{} on shared address {a:#x}, which holds no initialised mbarrier (no mbarrier.init \
                 since the block started or since its mbarrier.inval)",
                named(k)
            ));
        }
        let tx_in = |s: &mut MbarState, delta: i64| -> Result<(), String> {
            let t = s.tx + delta;
            if delta.unsigned_abs() > MBAR_MAX_COUNT || t.unsigned_abs() > MBAR_MAX_COUNT {
                return Err(format!(
                    "mbarrier.{} of {} bytes on shared address {a:#x} takes its tx-count from {} to {t}, \
                     outside -(2^20-1)..=2^20-1",
                    named(k),
                    delta.unsigned_abs(),
                    s.tx
                ));
            }
            s.tx = t;
            Ok(())
        };
        let mut ret = 0;
        match k {
            Mbar::Init => {
                let n = b & 0xffff_ffff;
                if n == 0 || n > MBAR_MAX_COUNT {
                    return Err(format!("mbarrier.init count {n} outside 1..={MBAR_MAX_COUNT}"));
                }
                s = MbarState { pending: n, expected: n, tx: 0, phase: 0 };
            }
            Mbar::Inval => s = MbarState { pending: 0, expected: 0, tx: 0, phase: 0 },
            Mbar::Arrive { drop, no_complete, tx, .. } => {
                ret = cur;
                let n = if tx {
                    tx_in(&mut s, (b & 0xffff_ffff) as i64)?;
                    1
                } else {
                    b & 0xffff_ffff
                };
                if n == 0 || n > s.pending {
                    return Err(format!(
                        "mbarrier.{} of {n} on shared address {a:#x} with {} of {} arrivals pending",
                        named(k),
                        s.pending,
                        s.expected
                    ));
                }
                if drop {
                    s.expected -= n;
                }
                s.pending -= n;
                if no_complete && s.pending == 0 && s.tx == 0 {
                    return Err(format!(
                        "mbarrier.arrive.noComplete of {n} on shared address {a:#x} completes the phase, which \
                         the ISA leaves undefined"
                    ));
                }
            }
            Mbar::Tx { complete } => {
                let n = (b & 0xffff_ffff) as i64;
                tx_in(&mut s, if complete { -n } else { n })?;
            }
            Mbar::CpAsyncArrive { noinc } => {
                // Without .noinc the pending count is incremented, then the arrive decrements it:
                // no net change (9.7.9.25.3.3).
                if noinc {
                    if s.pending == 0 {
                        return Err(format!(
                            "cp.async.mbarrier.arrive.noinc on shared address {a:#x} with no arrivals pending"
                        ));
                    }
                    s.pending -= 1;
                }
            }
            Mbar::TestWait { parity, .. } => {
                let waited = if parity { b & 1 } else { b >> 63 };
                return Ok(((s.phase != waited) as u64, false));
            }
            Mbar::PendingCount => {}
        }
        let flipped = s.pending == 0 && s.tx == 0 && s.expected > 0;
        if flipped {
            s = MbarState { pending: s.expected, expected: s.expected, tx: 0, phase: s.phase ^ 1 };
        }
        let new = s.pack();
        if new != cur {
            self.mbar_epoch += 1;
        }
        wr(self.smem, a as usize, 8, new);
        Ok((ret, flipped))
    }

    /// Racecheck's view of an mbarrier operation of warp `w` on the object at `a` (`flipped`: it
    /// completed the phase; `v`: its result, 1 for a wait that saw the phase complete; `copy`: the
    /// complete-tx of a bulk copy that warp issued).
    ///
    /// The memory model's edges, no more: an `arrive` (every form, `cp.async.mbarrier.arrive`
    /// included) releases the warp's accesses made before it, and a bulk copy's complete-tx
    /// releases the copy's writes (PTX ISA 9.7.13.15: arrive-on has release semantics; 9.7.9.25:
    /// the copy's writes are made visible to the threads that observe the phase's completion); a
    /// `test_wait`/`try_wait` that returns true acquires the releases of every completed phase.
    /// The waiter's own earlier accesses are not ordered before the arriving warps' later ones,
    /// the arriving warps are not ordered among themselves, and what a warp does after its
    /// arrival is not released by it (`expect_tx` and an explicit `complete_tx` are relaxed, as
    /// are the `.relaxed` forms of `arrive` and of the waits).
    pub(super) fn mbarrier_sync(&mut self, w: u32, k: Mbar, a: u64, flipped: bool, v: u64, copy: bool) {
        let Block { shadow: Some(sh), mbar_sync, bulk_inflight, .. } = self else { return };
        let n = sh.warps();
        let bit = 1u32.checked_shl(w).unwrap_or(0);
        let i = match mbar_sync.iter().position(|m| m.obj == a) {
            Some(i) => i,
            None => {
                mbar_sync.push(MbarSync::new(a, n));
                mbar_sync.len() - 1
            }
        };
        let m = &mut mbar_sync[i];
        match k {
            Mbar::Init | Mbar::Inval => {
                *m = MbarSync::new(a, n);
                bulk_inflight.retain(|c| c.mbar != a);
                return;
            }
            Mbar::Arrive { relaxed: false, .. } | Mbar::CpAsyncArrive { .. } => {
                sh.release(w as usize, &mut m.phase);
                m.phase_warps |= bit;
            }
            Mbar::Tx { complete: true } if copy => {
                sh.release(w as usize, &mut m.phase);
                m.phase_warps |= bit;
            }
            Mbar::TestWait { relaxed: true, .. } => return,
            Mbar::TestWait { .. } if v == 1 => {
                // A warp that acquires from one that observed a bulk copy's completion observes it too.
                for c in bulk_inflight.iter_mut() {
                    if (c.mbar == a && c.completed) || c.observed & m.done_warps != 0 {
                        c.observed |= bit;
                    }
                }
                sh.acquire(w as usize, &m.done);
                return;
            }
            _ => {}
        }
        if flipped {
            for c in bulk_inflight.iter_mut().filter(|c| c.mbar == a) {
                c.completed = true;
            }
            for (d, p) in m.done.iter_mut().zip(m.phase.iter_mut()) {
                *d = (*d).max(std::mem::take(p));
            }
            m.done_warps |= std::mem::take(&mut m.phase_warps);
        }
    }

    /// A thread group of `warp` at barrier instruction `ins` (pc `pc`, lanes `exec` of the
    /// group `mask`). Returns whether the group's lanes now wait (the warp picks its next group);
    /// otherwise (`bar.arrive`) the group goes on.
    #[inline(never)]
    pub(super) fn bar(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32, ins: &Inst) -> Res<bool> {
        let Op::Bar { kind, id, count, d: _, p, pneg } = &ins.op else { return Ok(false) };
        let l0 = exec.trailing_zeros() as usize;
        let bid = warp.regs[*id as usize][l0];
        if bid >= 16 {
            return Err(fault(pc, Some(l0 as u32), format!("barrier id {bid} out of range 0..16")));
        }
        let expected = if *count == NO_REG { self.nthreads } else { warp.regs[*count as usize][l0] as u32 };
        let b = &mut self.bars[bid as usize];
        if b.arrived == 0 {
            b.warps = 0;
            b.all = *count == NO_REG;
            b.lanes = [0; 32];
            b.expected = expected;
            b.acc_popc = 0;
            b.acc_and = true;
            b.acc_or = false;
            b.pc = pc;
        } else if *count == NO_REG && b.pc != pc {
            // A block-wide barrier (`__syncthreads`) must be reached by all threads at
            // the same instruction (CUDA: undefined in divergent code); named barriers
            // with a thread count may legitimately be reached from different code.
            let first = self.ctx.kernel.code.get(b.pc as usize).map(|i| i.line).unwrap_or(0);
            return Err(fault(
                pc,
                Some(l0 as u32),
                format!("barrier {bid} is awaited at two different instructions (also at PTX line {first})"),
            ));
        } else if b.expected != expected {
            return Err(fault(
                pc,
                Some(l0 as u32),
                format!("barrier {bid} used with thread counts {} and {expected}", b.expected),
            ));
        }
        b.arrived += exec.count_ones();
        b.warps |= 1u32.checked_shl(warp.id).unwrap_or(0);
        if let Some(m) = b.lanes.get_mut(warp.id as usize) {
            *m |= exec;
        }
        if *p != NO_REG {
            for l in lanes_of(exec) {
                let v = (warp.regs[*p as usize][l] & 1 == 1) != *pneg;
                b.acc_popc += v as u32;
                b.acc_and &= v;
                b.acc_or |= v;
            }
        }
        let gen = b.gen;
        if self.instrument {
            self.counters.barriers += 1;
        }
        let done = self.barrier_arrivals(bid as usize) >= self.bars[bid as usize].expected;
        if done {
            self.complete_barrier(bid as usize);
        }
        if *kind != BarKind::Arrive {
            for l in lanes_of(exec) {
                warp.bar_id[l] = bid as u8;
                warp.bar_gen[l] = gen;
                warp.pc[l] = pc;
            }
            warp.wait_bar |= exec;
            for l in lanes_of(mask & !exec) {
                warp.pc[l] = pc + 1;
            }
            if done {
                self.release_barriers(warp);
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Threads that count as arrived at barrier `bid` in its current round: those that arrived,
    /// plus the exited threads it no longer waits for. PTX ISA 9.7.13.1 (`barrier`/`bar`): without
    /// a thread count the barrier waits for all non-exited threads of the CTA, and the `exit` rules
    /// release a barrier that only exited threads held up. With a count, arrivals are counted per
    /// warp (the warp size, not its active threads, for `bar`), so exited lanes of a warp that takes
    /// part count as arrived.
    #[inline]
    pub(super) fn barrier_arrivals(&self, bid: usize) -> u32 {
        if self.n_exited == 0 {
            return self.bars[bid].arrived;
        }
        self.arrivals_with_exits(bid)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn arrivals_with_exits(&self, bid: usize) -> u32 {
        let b = &self.bars[bid];
        let nwarps = self.nthreads.div_ceil(32) as usize;
        let mut n = b.arrived;
        for (w, (&gone, &came)) in self.exited.iter().zip(b.lanes.iter()).enumerate().take(nwarps) {
            if b.all || b.warps >> w & 1 == 1 {
                n += (gone & !came).count_ones();
            }
        }
        n
    }

    /// Completes barrier `bid`'s round: waiting lanes see the new generation and are released on
    /// their warp's next turn.
    #[inline(never)]
    pub(super) fn complete_barrier(&mut self, bid: usize) {
        let b = &mut self.bars[bid];
        b.gen = b.gen.wrapping_add(1);
        b.arrived = 0;
        b.result_popc = b.acc_popc;
        b.result_and = b.acc_and;
        b.result_or = b.acc_or;
        let took_part = b.warps;
        if self.instrument {
            self.barrier_done(took_part);
        }
    }

    /// Lanes `lanes` of warp `w` have exited (some perhaps earlier): barriers that now wait only
    /// for exited threads complete.
    #[inline(never)]
    pub(super) fn lanes_exited(&mut self, w: u32, lanes: u32) {
        let Some(gone) = self.exited.get_mut(w as usize) else { return };
        let new = lanes & !*gone;
        if new == 0 {
            return;
        }
        *gone |= new;
        self.n_exited += new.count_ones();
        for bid in 0..self.bars.len() {
            if self.bars[bid].arrived > 0 && self.barrier_arrivals(bid) >= self.bars[bid].expected {
                self.complete_barrier(bid);
            }
        }
    }

    /// A barrier completed with the warps of `took_part` (bit per warp).
    pub(super) fn barrier_done(&mut self, took_part: u32) {
        let nwarps = self.nthreads.div_ceil(32) as usize;
        // A warp that synchronises with one that observed a bulk copy's completion observes it too.
        for c in self.bulk_inflight.iter_mut() {
            if c.observed & took_part != 0 {
                c.observed |= took_part;
            }
        }
        if let Some(sh) = self.shadow.as_deref_mut() {
            let parts: Vec<bool> = (0..nwarps).map(|w| took_part >> w & 1 == 1).collect();
            sh.barrier(&parts);
        }
    }
}
