//! `wgmma.mma_async` (PTX ISA 9.7.15.5.2), computed at issue. Descriptor operands are read through
//! `semantics::wgmma`, K-major or MN-major (imm-trans-a/b).
//!
//! Each warp of the warpgroup owns rows 16 q .. 16 q + 16 of A and D (q = its rank in the
//! warpgroup, 9.7.15.5.1.1 "Register Fragments"): A's registers are the m16n8k16 A fragment of
//! those rows, D's registers hold, for each block j of 8 columns, the m16n8 C fragment
//! (`d[4 j + i]`). A warp's rows of D depend only on its own rows of A and on all of B, so each
//! warp computes its part when it issues the instruction, with no rendezvous of the four. The
//! arithmetic is that of `mma.sync`: D (or 0 when scale-d is false), then each product added in
//! f64 in k order, then one rounding to the accumulator type, to nearest even.
//!
//! f16 accumulators (`.f16.f16.f16`, 9.7.15.5.1.1: N / 4 `.f16x2` registers holding d0..d(N/2-1),
//! low half first, each element at the position of the f32 layout's element of the same index):
//! the ISA does not say at which precision the products are summed or when the sum is rounded to
//! f16. The model's choice: C (exact in f64) plus the 16 exact products in k order in f64, then a
//! single rounding to f16 (to nearest even, overflow to infinity) per `mma_async`, i.e. once per
//! k16 step; a chain of k16 steps on the same accumulators rounds after each step. Hardware that
//! keeps more (or fewer) bits between the products differs by at most an f16 ulp or so per step,
//! which is what the differential check's `mma:` tolerance covers.
//!
//! Asynchrony (9.7.15.6-7): the operands are read at issue, but the results stay pending until a
//! `wgmma.wait_group` retires their group; only then are they written to the accumulator
//! registers. Until then the registers keep their old values and, with definedness tracking, are
//! undefined with the `mma_async` as their origin, so a premature read that reaches a store,
//! address or branch is a finding naming that instruction, and a missing wait shows in the
//! results. A later `mma_async` on the same accumulator registers chains on the pending values,
//! as the ISA allows.
//!
//! Sanitizer (9.7.15.7: the operands must not change before the wait): each pending `mma_async`
//! keeps the shared bytes it read ([`PendingReads`], in the block, so that any warp's write is
//! seen) and its A-fragment and accumulator registers. A write to those bytes by a store, atomic,
//! `cp.async`, bulk or tensor copy (through `shared_touch`, the one hook of every shared access)
//! or an instruction writing those registers (another `mma_async` on the same accumulators
//! excepted) is a finding naming the writer and the `mma_async`, until the `wait_group` that
//! retires it. Cost: nothing without the sanitizer; with it, one emptiness test per shared write
//! and one flag test per instruction while no `mma_async` is pending.
//!
//! Not modelled yet: definedness of the inputs (the retired accumulators are defined), and the
//! shared-memory wavefronts of the descriptor reads.

/// One `mma_async`'s pending results: its accumulator registers, their new values per lane, and
/// its group (`u32::MAX` until a `commit_group`); for the sanitizer, its instruction, its number
/// in the block, and its A-fragment registers (`NO_REG` for A from a descriptor).
pub(super) struct Pending {
    group: u32,
    d: Vec<R>,
    vals: Vec<[u64; 32]>,
    pc: u32,
    seq: u32,
    a_regs: [R; 4],
}

/// Sanitizer: the shared-memory bytes a pending `mma_async` of warp `warp` reads, as the sorted
/// addresses of its 2-byte elements, until the `wait_group` that retires it.
pub(super) struct PendingReads {
    warp: u32,
    seq: u32,
    pc: u32,
    addrs: Vec<u32>,
}

/// Calls `f` with every register `op` writes (calls, whose results go through the parameter
/// area, excepted).
fn for_each_written(op: &Op, mut f: impl FnMut(R)) {
    let mut regs = |rs: &[R]| rs.iter().filter(|&&r| r != NO_REG).for_each(|&r| f(r));
    match op {
        Op::Un { d, .. }
        | Op::Bin { d, .. }
        | Op::Tern { d, .. }
        | Op::Quad { d, .. }
        | Op::Set { d, .. }
        | Op::Pack { d, .. }
        | Op::Atom { d, .. }
        | Op::Clock { d, .. }
        | Op::Activemask { d }
        | Op::VoteSync { d, .. }
        | Op::ReduxSync { d, .. }
        | Op::Mbarrier { d, .. }
        | Op::Slow { d, .. } => regs(&[*d]),
        Op::Carry { d, cc, .. } => regs(&[*d, *cc]),
        Op::Setp { d, dn, .. } => regs(&[*d, *dn]),
        Op::Bar { d, p, .. } | Op::ShflSync { d, p, .. } | Op::MatchSync { d, p, .. } | Op::ElectSync { d, p, .. } => {
            regs(&[*d, *p])
        }
        Op::Unpack { dsts, n, .. } | Op::Ld { dsts, n, .. } => regs(&dsts[..*n as usize]),
        Op::Mma { d, .. } | Op::Ldmatrix { d, .. } => regs(d),
        Op::Wgmma(w) => regs(&w.d),
        _ => {}
    }
}

/// `wgmma.commit_group`: the uncommitted `mma_async`s form the next group.
pub(super) fn exec_wgmma_commit(warp: &mut Warp, exec: u32) {
    if exec == 0 {
        return;
    }
    // An empty commit still makes an (empty) group, which a wait_group counts.
    let id = warp.wgmma_next_group;
    for p in warp.wgmma.iter_mut().filter(|p| p.group == u32::MAX) {
        p.group = id;
    }
    warp.wgmma_next_group = id.wrapping_add(1);
}

impl Block<'_, '_> {
    /// `wgmma.wait_group n`: retires every committed group but the `n` most recent, writing their
    /// results in issue order (and ending the sanitizer's watch of their operands).
    pub(super) fn exec_wgmma_wait(&mut self, warp: &mut Warp, exec: u32, n: u32) {
        if exec == 0 {
            return;
        }
        let keep_from = warp.wgmma_next_group.saturating_sub(n);
        let mut i = 0;
        while i < warp.wgmma.len() {
            let p = &warp.wgmma[i];
            if p.group != u32::MAX && p.group < keep_from {
                let p = warp.wgmma.remove(i);
                if !self.wgmma_reads.is_empty() {
                    self.wgmma_reads.retain(|r| r.warp != warp.id || r.seq != p.seq);
                }
                for (&r, v) in p.d.iter().zip(&p.vals) {
                    warp.regs[r as usize] = *v;
                    if let Some(u) = warp.undef.get_mut(r as usize) {
                        *u = 0;
                    }
                }
            } else {
                i += 1;
            }
        }
        warp.wgmma_watch = self.ctx.sanitize && !warp.wgmma.is_empty();
    }

    /// Sanitizer: a write to shared bytes `a .. a + len` by lane `lane` of warp `w` at `pc`
    /// while a pending `mma_async` reads any of them.
    pub(super) fn check_wgmma_reads(&mut self, w: u32, lane: u32, pc: u32, a: u64, len: usize) {
        let hit = self.wgmma_reads.iter().find(|r| {
            // The first 2-byte element ending after `a`: it overlaps if it starts before a + len.
            let i = r.addrs.partition_point(|&e| e as u64 + 2 <= a);
            r.addrs.get(i).is_some_and(|&e| (e as u64) < a + len as u64)
        });
        if let Some(r) = hit {
            let other = (r.warp * 32, r.pc);
            self.finding(FindingKind::WgmmaSharedOperandOverwritten, w * 32 + lane, pc, a, Some(other));
        }
    }

    /// Sanitizer: `ins` (executed by lanes `exec`) writes an A-fragment or accumulator register of
    /// one of the warp's pending `mma_async`s. Another `mma_async` on the same accumulators (a
    /// chain, which the ISA allows) does not count as a write of them.
    pub(super) fn check_wgmma_regs(&mut self, warp: &Warp, pc: u32, ins: &Inst, exec: u32) {
        if exec == 0 {
            return;
        }
        let chain = match &ins.op {
            Op::Wgmma(w) => Some(&w.d),
            _ => None,
        };
        let mut hit = None;
        for_each_written(&ins.op, |r| {
            if hit.is_some() {
                return;
            }
            hit = warp
                .wgmma
                .iter()
                .find(|p| p.a_regs.contains(&r) || (p.d.contains(&r) && chain != Some(&p.d)))
                .map(|p| p.pc);
        });
        if let Some(mma) = hit {
            let tid = warp.id * 32 + exec.trailing_zeros();
            self.finding(FindingKind::WgmmaRegisterWrittenBeforeWait, tid, pc, 0, Some((tid, mma)));
        }
    }
}

use super::*;
use crate::semantics::float::{bf16_to_f32, f16_to_f32, f64_to_f32, f64_to_fmt, Fmt, Rnd};
use crate::semantics::mma::{a_coord, c_coord, MmaInput, MmaShape};
use crate::semantics::wgmma::Descriptor;

impl Block<'_, '_> {
    pub(super) fn exec_wgmma(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Wgmma(w) = op else { return Ok(()) };
        if exec == 0 {
            return Ok(());
        }
        let nwarps = self.nthreads.div_ceil(32);
        if exec != FULL || warp.id / 4 * 4 + 4 > nwarps {
            return Err(fault(
                pc,
                None,
                format!(
                    "wgmma.mma_async needs all 128 threads of a warpgroup (.sync.aligned); warp {} runs it with \
                     lanes {exec:#010x} in a block of {} threads",
                    warp.id, self.nthreads
                ),
            ));
        }
        let half = |h: u16| -> f64 {
            match w.input {
                MmaInput::Bf16 => bf16_to_f32(h) as f64,
                _ => f16_to_f32(h) as f64,
            }
        };
        let q = (warp.id % 4) as u64;
        let n = w.n as usize;
        let len = self.smem.len();
        // Operand element (row, k) of a descriptor operand (row along M for A, N for B), K-major
        // or MN-major (`trans`), read as warp `warp.id`.
        // With the sanitizer, every element address read is logged in `log`.
        let sanitize = self.ctx.sanitize;
        let mut log: Vec<u32> = Vec::new();
        let read =
            |blk: &mut Self, log: &mut Vec<u32>, desc: u64, trans: bool, row: u64, k: u64, what: &str| -> Res<f64> {
                let d = Descriptor::decode(desc);
                let a = if trans { d.mn_major_address(row, k) } else { d.k_major_address(row, 2 * k) };
                let a = a.ok_or_else(|| {
                    fault(
                        pc,
                        None,
                        format!(
                        "wgmma.mma_async: {what}'s descriptor {desc:#018x} has no layout the VM models (a non-zero \
                         base offset, or a K slice past its swizzle atom)"
                    ),
                    )
                })?;
                let v =
                    rd(blk.smem, a as usize, 2).ok_or_else(|| {
                        fault(
                    pc,
                    None,
                    format!("wgmma.mma_async reads {what} at shared address {a:#x}, outside the block's {len} bytes"),
                )
                    })?;
                if blk.instrument {
                    blk.shared_touch(warp.id, 0, pc, a, 2, AccessKind::Read, false);
                }
                if sanitize {
                    log.push(a as u32);
                }
                Ok(half(v as u16))
            };
        let mut a = [[0f64; 16]; 16];
        match w.a {
            WgmmaA::Regs(r) => {
                for l in 0..32 {
                    for i in 0..8 {
                        let (row, col) = a_coord(MmaShape::M16N8K16, w.input, l, i);
                        let bits = (warp.regs[r[i / 2] as usize][l] >> (16 * (i & 1))) as u16;
                        a[row][col] = half(bits);
                    }
                }
            }
            WgmmaA::Desc(rd_) => {
                let desc = warp.regs[rd_ as usize][0];
                for (row, ar) in a.iter_mut().enumerate() {
                    for (k, x) in ar.iter_mut().enumerate() {
                        *x = read(self, &mut log, desc, w.trans_a, 16 * q + row as u64, k as u64, "A")?;
                    }
                }
            }
        }
        let bdesc = warp.regs[w.b_desc as usize][0];
        let mut b = vec![[0f64; 16]; n];
        for (col, bc) in b.iter_mut().enumerate() {
            for (k, x) in bc.iter_mut().enumerate() {
                *x = read(self, &mut log, bdesc, w.trans_b, col as u64, k as u64, "B")?;
            }
        }
        let (sa, sb) = (if w.neg_a { -1.0 } else { 1.0 }, if w.neg_b { -1.0 } else { 1.0 });
        // The accumulator input: the latest pending result of the same registers (a chain of
        // mma_asyncs on one accumulator), else the registers.
        let chained = warp.wgmma.iter().rposition(|p| p.d == w.d);
        let mut vals = match chained {
            Some(i) => warp.wgmma[i].vals.clone(),
            None => w.d.iter().map(|&r| warp.regs[r as usize]).collect(),
        };
        // Element idx (0..N/2) of a thread's accumulator fragment sits at (row, 8 j + c) with
        // (j, i) = (idx / 4, idx % 4) and (row, c) the m16n8 C position of i; with f32 it is
        // register idx, with f16 the half idx % 2 (low first) of register idx / 2.
        let acc_f16 = w.acc_f16;
        let keep: [bool; 32] = std::array::from_fn(|l| (warp.regs[w.scale_d as usize][l] & 1 == 1) != w.scale_d_neg);
        for idx in 0..n / 2 {
            let (j, i) = (idx / 4, idx % 4);
            let (reg, sh) = if acc_f16 { (idx / 2, 16 * (idx % 2)) } else { (idx, 0) };
            for (l, v) in vals[reg].iter_mut().enumerate() {
                let (row, c) = c_coord(l, i);
                let col = 8 * j + c;
                let mut acc = 0.0;
                if keep[l] {
                    acc = if acc_f16 { f16_to_f32((*v >> sh) as u16) as f64 } else { f32::from_bits(*v as u32) as f64 };
                }
                for k in 0..16 {
                    acc += (sa * a[row][k]) * (sb * b[col][k]);
                }
                if acc_f16 {
                    *v = (*v & !(0xffff << sh)) | f64_to_fmt(acc, Fmt::F16, Rnd::Rn) << sh;
                } else {
                    *v = f64_to_f32(acc, Rnd::Rn) as u64;
                }
            }
        }
        if !warp.undef.is_empty() {
            for &dr in &w.d {
                warp.undef[dr as usize] = FULL;
                warp.undef_from[dr as usize] = pc + 1;
            }
            warp.undef_any = true;
        }
        let seq = self.wgmma_seq;
        self.wgmma_seq = seq.wrapping_add(1);
        let a_regs = match w.a {
            WgmmaA::Regs(r) => r,
            WgmmaA::Desc(_) => [NO_REG; 4],
        };
        warp.wgmma.push(Pending { group: u32::MAX, d: w.d.clone(), vals, pc, seq, a_regs });
        if sanitize {
            warp.wgmma_watch = true;
            log.sort_unstable();
            log.dedup();
            self.wgmma_reads.push(PendingReads { warp: warp.id, seq, pc, addrs: log });
        }
        if self.instrument {
            self.counters.mma_flops += 2 * 16 * n as u64 * 16;
            if let WgmmaA::Desc(rd_) = w.a {
                self.count_core_matrices(warp.regs[rd_ as usize][0], w.trans_a, 16 * q, 16);
            }
            if q == 0 {
                self.count_core_matrices(bdesc, w.trans_b, 0, n as u64);
            }
        }
        Ok(())
    }

    /// Counts the shared-memory traffic of one descriptor operand's `rows` rows (M or N) from
    /// `row0`, k 0..16, in the model's unit: a core matrix (8 rows of 16 bytes, 8 x 8 16-bit
    /// elements: 8 M/N rows of 8 k for K-major, 8 k rows of 8 M/N for MN-major) is one pass, like
    /// an `ldmatrix` matrix, costing one wavefront per distinct bank set ([`ctr::ldmatrix_wavefronts`]).
    /// One request per operand. A is counted per warp (its own 16 rows), B once per warpgroup (at
    /// its first warp: the four warps read the same B). In every swizzle mode the canonical layouts
    /// put a core matrix's 8 rows in distinct banks, so this is mostly the operand's wavefront count
    /// (its share of the shared-memory bandwidth floor); a layout that put two rows of a core
    /// matrix in the same banks would show as conflicts. Called after the operand's elements were
    /// read, so every address exists (the model's choice of unit: the ISA does not say how the
    /// hardware reads the operands).
    fn count_core_matrices(&mut self, desc: u64, trans: bool, row0: u64, rows: u64) {
        let d = Descriptor::decode(desc);
        let mut starts = [0u64; 8];
        let (mut wf, mut ideal) = (0, 0);
        for mn in (row0..row0 + rows).step_by(8) {
            for k0 in [0u64, 8] {
                for (r, a) in starts.iter_mut().enumerate() {
                    let r = r as u64;
                    let at = if trans { d.mn_major_address(mn, k0 + r) } else { d.k_major_address(mn + r, 2 * k0) };
                    *a = at.unwrap_or(0);
                }
                let (w, i) = ctr::ldmatrix_wavefronts(&starts, 1);
                wf += w;
                ideal += i;
            }
        }
        self.counters.shared_requests += 1;
        self.counters.shared_wavefronts += wf;
        self.counters.shared_ideal_wavefronts += ideal;
    }
}
