//! CTA barriers (`bar`/`barrier`, with exited threads counted as arrived) and mbarrier objects.

use super::*;

impl Block<'_, '_> {
    /// An mbarrier instruction, one lane after the other.
    #[inline(always)]
    pub(super) fn exec_mbarrier(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Mbarrier { k, d, addr, off, b } = op else { return Ok(()) };
        for l in lanes_of(exec) {
            let a = shared_addr(eff(warp.regs[*addr as usize][l], *off, Space::Shared));
            let bv = warp.regs[*b as usize][l];
            let before = if self.shadow.is_some() { rd(self.smem, a as usize, 8) } else { None };
            let v = self.mbarrier(*k, a, bv).map_err(|m| fault(pc, Some(l as u32), m))?;
            warp.regs[*d as usize][l] = v;
            if let Some(before) = before {
                self.mbarrier_arrival(warp.id, *k, a, before);
            }
        }
        Ok(())
    }

    /// Releases lanes whose barrier completed since they arrived.
    pub(super) fn release_barriers(&self, warp: &mut Warp) -> bool {
        if warp.wait_bar == 0 {
            return false;
        }
        let mut any = false;
        for l in lanes_of(warp.wait_bar) {
            let id = warp.bar_id[l] as usize;
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

    /// One thread's mbarrier operation. The object's layout is the VM's own (the ISA leaves it
    /// opaque): bits 0-20 pending arrivals, 21-41 expected arrivals, bit 63 the phase parity. A
    /// state token is the object's value at the arrival, so its bit 63 names the phase it joined.
    pub(super) fn mbarrier(&mut self, k: Mbar, a: u64, b: u64) -> Result<u64, String> {
        const M: u64 = (1 << 21) - 1;
        let pack = |pending: u64, expected: u64, phase: u64| pending | (expected << 21) | (phase << 63);
        if k == Mbar::PendingCount {
            return Ok(b & M);
        }
        if a % 8 != 0 {
            return Err(format!("mbarrier object at shared address {a:#x} is not 8-byte aligned"));
        }
        let len = self.smem.len();
        let oob = || format!("mbarrier object at shared address {a:#x} outside the block's {len} bytes");
        let cur = rd(self.smem, a as usize, 8).ok_or_else(oob)?;
        let (pending, expected, phase) = (cur & M, (cur >> 21) & M, cur >> 63);
        let (new, ret) = match k {
            Mbar::Init => {
                let n = b & 0xffff_ffff;
                if n == 0 || n > M {
                    return Err(format!("mbarrier.init count {n} outside 1..={M}"));
                }
                (pack(n, n, 0), 0)
            }
            Mbar::Inval => (0, 0),
            Mbar::Arrive { drop, no_complete } => {
                let n = b & 0xffff_ffff;
                if n > pending {
                    return Err(format!("mbarrier arrive of {n} with only {pending} arrivals pending"));
                }
                let expected = if drop { expected.saturating_sub(n) } else { expected };
                let left = pending - n;
                if left == 0 && !no_complete {
                    // The phase completes: the next one expects the (possibly dropped) count again.
                    (pack(expected, expected, phase ^ 1), cur)
                } else {
                    (pack(left, expected, phase), cur)
                }
            }
            Mbar::CpAsyncArrive { noinc } => {
                if !noinc {
                    // Increment then arrive: no net change.
                    (cur, 0)
                } else if pending == 0 {
                    return Err("cp.async.mbarrier.arrive.noinc with no arrivals pending".into());
                } else if pending == 1 {
                    (pack(expected, expected, phase ^ 1), 0)
                } else {
                    (pack(pending - 1, expected, phase), 0)
                }
            }
            Mbar::TestWait { parity } => {
                let waited = if parity { b & 1 } else { b >> 63 };
                (cur, (phase != waited) as u64)
            }
            Mbar::PendingCount => (cur, 0),
        };
        wr(self.smem, a as usize, 8, new);
        Ok(ret)
    }

    /// Racecheck's view of an mbarrier (PTX ISA 9.7.13.15.1: the completion of a phase makes the
    /// arrivals' prior memory accesses visible to the threads that observe it): the warps that
    /// arrived in the phase form a barrier when the phase completes. Accesses a warp makes between
    /// its arrival and the completion count as before it, which can hide a race but never invents one.
    pub(super) fn mbarrier_arrival(&mut self, w: u32, k: Mbar, a: u64, before: u64) {
        let arrives = matches!(k, Mbar::Arrive { .. } | Mbar::CpAsyncArrive { .. });
        if !arrives {
            if k == Mbar::Init || k == Mbar::Inval {
                self.mbar_warps.retain(|(obj, _)| *obj != a);
            }
            return;
        }
        let bit = 1u32.checked_shl(w).unwrap_or(0);
        let i = match self.mbar_warps.iter().position(|(obj, _)| *obj == a) {
            Some(i) => i,
            None => {
                self.mbar_warps.push((a, 0));
                self.mbar_warps.len() - 1
            }
        };
        self.mbar_warps[i].1 |= bit;
        let after = rd(self.smem, a as usize, 8).unwrap_or(before);
        if (after ^ before) >> 63 == 1 {
            let took_part = self.mbar_warps[i].1;
            self.mbar_warps[i].1 = 0;
            self.barrier_done(took_part);
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
        if let Some(sh) = self.shadow.as_deref_mut() {
            let parts: Vec<bool> = (0..nwarps).map(|w| took_part >> w & 1 == 1).collect();
            sh.barrier(&parts);
        }
    }
}
