//! Definedness tracking, as Valgrind's memcheck and MemorySanitizer do it: an undefined bit that
//! flows from uninitialised memory through registers, and a finding only where an undefined value
//! can change what the kernel does or leaves behind.
//!
//! Granularity: one bit per register per lane (`Warp::undef[reg]`, bit l for lane l), and per byte
//! in shared memory and global memory (the sanitizer's initialised flags). A register holding
//! packed halves is undefined as a whole when either half is. Local memory and `.func` parameters
//! are not tracked: a value that passes through them comes back defined, which can hide a finding
//! but never invents one.
//!
//! Propagation (the instruction's destination shadow, per executing lane):
//! - by default, the OR of the source registers' shadows;
//! - `selp`/`slct` with a defined condition: the shadow of the operand it chose;
//! - loads and `cp.async`: undefined when any byte read is uninitialised;
//! - `shfl`: the source lane's shadow moves with its value; `ldmatrix`: each 4-byte piece carries
//!   the shadow of the shared bytes it came from;
//! - `mma`: element (i, j) of D is undefined when row i of A, column j of B or element (i, j) of
//!   C holds an undefined element (from the fragment layouts of `semantics::mma`), so K rows past
//!   a sequence's end make only their columns of S = Q K^T undefined;
//! - `match`/`redux`: undefined everywhere when any member's input is;
//! - a guarded instruction whose guard is undefined leaves its destination undefined.
//!
//! - an atomic's old value is undefined when the bytes it read were, and a read-modify-write
//!   (all but `exch`) then stores an undefined value back.
//!
//! Not tracked: `stmatrix` stores its registers' values as defined, and a barrier's or vote's
//! result is defined (an undefined input is reported instead).
//!
//! Stores of undefined data to shared memory mark the bytes undefined (no finding). Findings, all
//! errors: an undefined value stored to global memory (or given to an atomic there), used as an
//! address, deciding control flow (a branch, the guard of an instruction with side effects, a
//! barrier's id, count or predicate) or fed to a warp vote. A read of uninitialised memory whose
//! value is discarded is no finding at all.

use super::*;

/// Lanes of `m` as a bit mask over `u`: the shadow of register `r` (0 for `NO_REG`).
#[inline(always)]
fn sh(u: &[u32], r: R) -> u32 {
    if r == NO_REG {
        0
    } else {
        u.get(r as usize).copied().unwrap_or(0)
    }
}

/// The register shadow file of a warp.
trait Put {
    /// Sets the shadow of `d` for lanes `m` to `v` (bits outside `m` are kept).
    fn put(&mut self, d: R, m: u32, v: u32);
}

impl Put for Vec<u32> {
    #[inline(always)]
    fn put(&mut self, d: R, m: u32, v: u32) {
        if d != NO_REG {
            if let Some(x) = self.get_mut(d as usize) {
                *x = (*x & !m) | (v & m);
            }
        }
    }
}

/// The registers an instruction reads (besides its guard) whose shadows its results take, and
/// the registers it writes, for origin tracking. Loads and collectives are handled where their
/// shadows are computed.
fn flow(op: &Op) -> ([R; 5], [R; 4]) {
    const N: R = NO_REG;
    match op {
        Op::Un { d, a, .. } => ([*a, N, N, N, N], [*d, N, N, N]),
        Op::Bin { d, a, b, .. } | Op::Set { d, a, b, .. } => ([*a, *b, N, N, N], [*d, N, N, N]),
        Op::Tern { d, a, b, c, .. } | Op::Slow { d, a, b, c, .. } => ([*c, *a, *b, N, N], [*d, N, N, N]),
        Op::Quad { d, a, b, c, e, .. } => ([*a, *b, *c, *e, N], [*d, N, N, N]),
        Op::Carry { d, a, b, c, cc, .. } => ([*a, *b, *c, *cc, N], [*d, *cc, N, N]),
        Op::Setp { d, dn, a, b, comb, .. } => ([*a, *b, comb.map_or(N, |(_, c, _)| c), N, N], [*d, *dn, N, N]),
        Op::Pack { d, srcs, .. } => ([srcs[0], srcs[1], srcs[2], srcs[3], N], [*d, N, N, N]),
        Op::Unpack { dsts, s, .. } => ([*s, N, N, N, N], *dsts),
        Op::Atom { d, b, c, .. } => ([*b, *c, N, N, N], [*d, N, N, N]),
        _ => ([N; 5], [N; 4]),
    }
}

/// The origin recorded for `r` (pc + 1, or 0).
#[inline(always)]
fn from(o: &[u32], r: R) -> u32 {
    if r == NO_REG {
        0
    } else {
        o.get(r as usize).copied().unwrap_or(0)
    }
}

/// Whether an instruction has effects beyond its destination registers (memory, control flow,
/// synchronisation): an undefined guard on it is a finding, not just an undefined result.
fn has_effects(op: &Op) -> bool {
    !matches!(
        op,
        Op::Nop
            | Op::Un { .. }
            | Op::Bin { .. }
            | Op::Tern { .. }
            | Op::Quad { .. }
            | Op::Carry { .. }
            | Op::Setp { .. }
            | Op::Set { .. }
            | Op::Pack { .. }
            | Op::Unpack { .. }
            | Op::Ld { .. }
            | Op::Slow { .. }
            | Op::Clock { .. }
            | Op::Activemask { .. }
    )
}

/// The destination shadows of an `mma` from the fragments' shadows (bit l of `a[i]`: lane l's
/// register i of A is undefined). Returns per destination register the lanes it is undefined in.
pub(crate) fn mma_shadow(
    shape: MmaShape,
    input: MmaInput,
    ctype: MmaAcc,
    a: [u32; 4],
    b: [u32; 4],
    c: [u32; 4],
) -> [u32; 4] {
    use semantics::mma::{a_coord, b_coord, c_coord, fragment_regs};
    if a == [0; 4] && b == [0; 4] && c == [0; 4] {
        return [0; 4];
    }
    let (na, nb, _) = fragment_regs(shape, input, ctype);
    let per = if input == MmaInput::Tf32 { 1 } else { 2 };
    let (mut rows, mut cols, mut cm) = (0u16, 0u8, [0u8; 16]);
    for lane in 0..32 {
        for i in 0..na * per {
            if a[i / per] >> lane & 1 == 1 {
                rows |= 1 << a_coord(shape, input, lane, i).0;
            }
        }
        for i in 0..nb * per {
            if b[i / per] >> lane & 1 == 1 {
                cols |= 1 << b_coord(shape, input, lane, i).1;
            }
        }
        for i in 0..4 {
            let reg = if ctype == MmaAcc::F32 { i } else { i / 2 };
            if c[reg] >> lane & 1 == 1 {
                let (r, col) = c_coord(lane, i);
                cm[r] |= 1 << col;
            }
        }
    }
    let mut d = [0u32; 4];
    for lane in 0..32 {
        for i in 0..4 {
            let (r, col) = c_coord(lane, i);
            if rows >> r & 1 == 1 || cols >> col & 1 == 1 || cm[r] >> col & 1 == 1 {
                // An f16 accumulator packs elements 2j and 2j + 1 into register j.
                d[if ctype == MmaAcc::F32 { i } else { i / 2 }] |= 1 << lane;
            }
        }
    }
    d
}

impl Block<'_, '_> {
    /// Whether `len` bytes at `a` in `space` (generic resolved) hold defined data.
    fn mem_defined(&self, space: Space, a: u64, len: usize) -> bool {
        let (space, a) = if space == Space::Generic { generic(a) } else { (space, a) };
        match space {
            Space::Global => match self.ctx.global.find_cached(a, len, &self.gcache) {
                Some((buf, off)) => buf.tracking().is_none_or(|t| t.shadow.is_initialized(off, len)),
                None => true,
            },
            Space::Shared => self.shadow.as_deref().is_none_or(|s| s.is_initialized(a as usize, len)),
            _ => true,
        }
    }

    /// One finding per lane of `lanes` (they fold into one entry with a count, as races do).
    /// `origin`: pc + 1 of the read of uninitialised memory the value comes from (0: unknown).
    #[allow(clippy::too_many_arguments)]
    fn undefined_use(
        &mut self,
        kind: FindingKind,
        lanes: u32,
        warp: u32,
        pc: u32,
        origin: u32,
        addr: impl Fn(usize) -> u64,
    ) {
        for l in lanes_of(lanes) {
            let tid = warp * 32 + l as u32;
            self.finding(kind, tid, pc, addr(l), origin.checked_sub(1).map(|o| (tid, o)));
        }
    }

    /// Before `ins` runs for lanes `exec` of group `mask`: reports undefined values reaching a sink
    /// and computes the destination shadows (the sources' shadows are not changed by running it).
    /// Collectives get their results' shadows in [`Block::def_collective`], once all members arrived.
    pub(super) fn def_pre(&mut self, warp: &mut Warp, pc: u32, ins: &Inst, exec: u32, mask: u32) {
        // With every register defined, only a read of memory can make a value undefined (and a
        // skipped store leaves `def_store_undef` empty, as its bookkeeping always takes it).
        if !warp.undef_any && !matches!(ins.op, Op::Ld { .. } | Op::Atom { .. }) {
            return;
        }
        let wid = warp.id;
        let guard_undef = sh(&warp.undef, ins.guard) & mask;
        if guard_undef != 0 && has_effects(&ins.op) {
            self.undefined_use(
                FindingKind::UndefinedControlFlow,
                guard_undef,
                wid,
                pc,
                from(&warp.undef_from, ins.guard),
                |_| 0,
            );
        }
        // Lanes whose result is written (or, with an undefined guard, may be).
        let wm = exec | guard_undef;
        // Where an undefined result of a plain operation comes from: its first undefined source's
        // origin, else its guard's.
        let (fsrc, fdst) = flow(&ins.op);
        let mut origin = 0;
        for &r in &fsrc {
            if origin == 0 && sh(&warp.undef, r) & wm != 0 {
                origin = from(&warp.undef_from, r);
            }
        }
        if origin == 0 && guard_undef != 0 {
            origin = from(&warp.undef_from, ins.guard);
        }
        let regs = &warp.regs;
        let u = &mut warp.undef;
        match &ins.op {
            Op::Un { d, a, .. } => u.put(*d, wm, sh(u, *a) | guard_undef),
            Op::Bin { f, d, a, b, flags } if flags & BITWISE != 0 => {
                let (ua, ub) = (sh(u, *a), sh(u, *b));
                let mut v = (ua & ub) | guard_undef;
                // Lanes where exactly one operand is undefined: the result is defined when the
                // defined operand decides it, i.e. when all-zero and all-one bits in place of the
                // undefined operand give the same result (exact for and/or: bits are independent).
                let one = (ua ^ ub) & !v & wm;
                if one != 0 {
                    let ones = if flags & PRED_OP != 0 { 1 } else { u64::MAX };
                    let (mut a0, mut b0) = (regs[*a as usize], regs[*b as usize]);
                    let (mut a1, mut b1) = (a0, b0);
                    for l in (0..32).filter(|l| one >> l & 1 == 1) {
                        if ua >> l & 1 == 1 {
                            (a0[l], a1[l]) = (0, ones);
                        } else {
                            (b0[l], b1[l]) = (0, ones);
                        }
                    }
                    let (mut r0, mut r1) = ([0u64; 32], [0u64; 32]);
                    f(&a0, &b0, &mut r0);
                    f(&a1, &b1, &mut r1);
                    for l in (0..32).filter(|l| one >> l & 1 == 1) {
                        if r0[l] != r1[l] {
                            v |= 1 << l;
                        }
                    }
                }
                u.put(*d, wm, v);
            }
            Op::Bin { d, a, b, .. } | Op::Set { d, a, b, .. } => u.put(*d, wm, sh(u, *a) | sh(u, *b) | guard_undef),
            Op::Tern { f, d, a, b, c, flags } if flags & SELECT != 0 => {
                // Which operand each lane chose: run the select on probes 0 (a) and 1 (b).
                let mut chose_b = [0u64; 32];
                f(&[0; 32], &[1; 32], &regs[*c as usize], &mut chose_b);
                let (ua, ub, uc) = (sh(u, *a), sh(u, *b), sh(u, *c));
                let mut v = uc | guard_undef;
                for (l, &pick) in chose_b.iter().enumerate() {
                    v |= (if pick & 1 == 1 { ub } else { ua }) & (1 << l);
                }
                u.put(*d, wm, v);
            }
            Op::Tern { d, a, b, c, .. } | Op::Slow { d, a, b, c, .. } => {
                u.put(*d, wm, sh(u, *a) | sh(u, *b) | sh(u, *c) | guard_undef)
            }
            Op::Quad { d, a, b, c, e, .. } => {
                u.put(*d, wm, sh(u, *a) | sh(u, *b) | sh(u, *c) | sh(u, *e) | guard_undef)
            }
            Op::Carry { k, d, a, b, c, cc } => {
                let cin = if k.carry_in { sh(u, *cc) } else { 0 };
                let v = sh(u, *a) | sh(u, *b) | sh(u, *c) | cin | guard_undef;
                u.put(*d, wm, v);
                if k.carry_out {
                    u.put(*cc, wm, v);
                }
            }
            Op::Setp { d, dn, a, b, comb, .. } => {
                let v = sh(u, *a) | sh(u, *b) | comb.map_or(0, |(_, c, _)| sh(u, c)) | guard_undef;
                u.put(*d, wm, v);
                u.put(*dn, wm, v);
            }
            Op::Pack { d, srcs, n, .. } => {
                let v = srcs.iter().take(*n as usize).fold(guard_undef, |v, &s| v | sh(u, s));
                u.put(*d, wm, v);
            }
            Op::Unpack { dsts, n, s, .. } => {
                let v = sh(u, *s) | guard_undef;
                for &d in dsts.iter().take(*n as usize) {
                    u.put(d, wm, v);
                }
            }
            Op::Clock { d, .. } | Op::Activemask { d } => u.put(*d, wm, guard_undef),
            Op::Ld { space, size, n, dsts, addr, off, .. } => {
                let bad = sh(u, *addr) & exec;
                let mut undef = [guard_undef; 4];
                for l in lanes_of(exec) {
                    let base = eff(regs[*addr as usize][l], *off, *space);
                    for (k, x) in undef.iter_mut().enumerate().take(*n as usize) {
                        if !self.mem_defined(*space, base + k as u64 * *size as u64, *size as usize) {
                            *x |= 1 << l;
                        }
                    }
                }
                let u = &mut warp.undef;
                warp.undef_any |= undef.iter().any(|&x| x & wm != 0);
                for (k, &d) in dsts.iter().enumerate().take(*n as usize) {
                    u.put(d, wm, undef[k]);
                    if undef[k] & wm != 0 && d != NO_REG {
                        warp.undef_from[d as usize] = pc + 1;
                    }
                }
                let a = warp.regs[*addr as usize];
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, from(&warp.undef_from, *addr), |l| {
                    a[l].wrapping_add(*off as u64)
                });
            }
            Op::St { space, size, n, srcs, addr, off } => {
                let a = regs[*addr as usize];
                let at = |l: usize| eff(a[l], *off, *space);
                let bad = sh(u, *addr) & exec;
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, from(&warp.undef_from, *addr), at);
                let mut to_global = 0u32;
                let mut shared = [0u32; 4];
                for (k, &s) in srcs.iter().enumerate().take(*n as usize) {
                    let data = sh(&warp.undef, s) & exec;
                    for l in lanes_of(data) {
                        let (sp, _) = if *space == Space::Generic { generic(at(l)) } else { (*space, 0) };
                        match sp {
                            Space::Global => to_global |= 1 << l,
                            Space::Shared => shared[k] |= 1 << l,
                            _ => {}
                        }
                    }
                }
                self.def_store_undef = shared;
                let _ = size;
                let o = srcs
                    .iter()
                    .take(*n as usize)
                    .filter(|&&r| sh(&warp.undef, r) & to_global != 0)
                    .map(|&r| from(&warp.undef_from, r))
                    .max()
                    .unwrap_or(0);
                self.undefined_use(FindingKind::UndefinedValueStoredToGlobal, to_global, wid, pc, o, at);
            }
            Op::Atom { space, op, ty, d, addr, off, b, c } => {
                let a = regs[*addr as usize];
                let at = |l: usize| eff(a[l], *off, *space);
                let bad = sh(u, *addr) & exec;
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, from(&warp.undef_from, *addr), at);
                let size = if matches!(ty, AtomTy::U64 | AtomTy::S64 | AtomTy::F64 | AtomTy::B64) { 8 } else { 4 };
                // The old value read from uninitialised memory is undefined, and so is what a
                // read-modify-write (all but exch) stores back.
                let mut old = 0u32;
                for l in lanes_of(exec) {
                    if !self.mem_defined(*space, at(l), size) {
                        old |= 1 << l;
                    }
                }
                let u = &mut warp.undef;
                warp.undef_any |= old != 0;
                let mut data = (sh(u, *b) | sh(u, *c)) & exec;
                u.put(*d, wm, data | old | guard_undef);
                if *op != AtomOp::Exch {
                    data |= old;
                }
                let mut to_global = 0u32;
                let mut shared = 0u32;
                for l in lanes_of(data) {
                    let (sp, _) = if *space == Space::Generic { generic(at(l)) } else { (*space, 0) };
                    match sp {
                        Space::Shared => shared |= 1 << l,
                        _ => to_global |= 1 << l,
                    }
                }
                self.def_store_undef = [shared, 0, 0, 0];
                if old != 0 && *d != NO_REG {
                    warp.undef_from[*d as usize] = pc + 1;
                }
                let o = if old & to_global != 0 { pc + 1 } else { origin };
                self.undefined_use(FindingKind::UndefinedValueStoredToGlobal, to_global, wid, pc, o, at);
            }
            Op::Bar { id, count, p, d, .. } => {
                let bad = (sh(u, *id) | sh(u, *count) | sh(u, *p)) & exec;
                u.put(*d, wm, guard_undef);
                let f = &warp.undef_from;
                let o = from(f, *id).max(from(f, *count)).max(from(f, *p));
                self.undefined_use(FindingKind::UndefinedControlFlow, bad, wid, pc, o, |_| 0);
            }
            Op::VoteSync { a, mask: m, .. } => {
                let bad_mask = sh(u, *m) & exec;
                let bad = sh(u, *a) & exec;
                self.undefined_use(
                    FindingKind::UndefinedControlFlow,
                    bad_mask,
                    wid,
                    pc,
                    from(&warp.undef_from, *m),
                    |_| 0,
                );
                self.undefined_use(FindingKind::UndefinedVote, bad, wid, pc, from(&warp.undef_from, *a), |_| 0);
            }
            Op::ShflSync { mask: m, .. }
            | Op::MatchSync { mask: m, .. }
            | Op::ReduxSync { mask: m, .. }
            | Op::BarWarp { mask: m }
            | Op::ElectSync { mask: m, .. } => {
                let bad = sh(u, *m) & exec;
                self.undefined_use(FindingKind::UndefinedControlFlow, bad, wid, pc, from(&warp.undef_from, *m), |_| 0);
            }
            Op::Ldmatrix { addr, off, .. } | Op::Stmatrix { addr, off, .. } => {
                let a = regs[*addr as usize];
                let bad = sh(u, *addr) & exec;
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, from(&warp.undef_from, *addr), |l| {
                    a[l].wrapping_add(*off as u64)
                });
            }
            Op::Mbarrier { d, addr, off, .. } => {
                let a = regs[*addr as usize];
                let bad = sh(u, *addr) & exec;
                u.put(*d, wm, guard_undef);
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, from(&warp.undef_from, *addr), |l| {
                    a[l].wrapping_add(*off as u64)
                });
            }
            Op::CpAsync { src_size, dst, doff, src, .. } => {
                let (d, s) = (regs[*dst as usize], regs[*src as usize]);
                let bad_d = sh(u, *dst) & exec;
                let bad_s = (sh(u, *src) | sh(u, *src_size)) & exec & !bad_d;
                let od = from(&warp.undef_from, *dst);
                self.undefined_use(FindingKind::UndefinedAddress, bad_d, wid, pc, od, |l| {
                    d[l].wrapping_add(*doff as u64)
                });
                let os = from(&warp.undef_from, *src).max(from(&warp.undef_from, *src_size));
                self.undefined_use(FindingKind::UndefinedAddress, bad_s, wid, pc, os, |l| s[l]);
            }
            Op::BulkCopy { dst, doff, src, size, mbar, .. } => {
                let rs = [*dst, *src, *size, *mbar];
                let bad = rs.iter().fold(0, |b, &r| b | sh(u, r)) & exec;
                let o = rs.iter().map(|&r| from(&warp.undef_from, r)).max().unwrap_or(0);
                let a = regs[*dst as usize];
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, o, |l| a[l].wrapping_add(*doff as u64));
            }
            Op::TensorCopy(t) => {
                // The shared address, the map's, the mbarrier's and the box coordinates together
                // address the copy.
                let mut rs = [NO_REG; 8];
                rs[..3].copy_from_slice(&[t.smem, t.map, t.mbar]);
                rs[3..3 + t.rank as usize].copy_from_slice(&t.coords[..t.rank as usize]);
                let bad = rs.iter().fold(0, |b, &r| b | sh(u, r)) & exec;
                let o = rs.iter().map(|&r| from(&warp.undef_from, r)).max().unwrap_or(0);
                let a = regs[t.smem as usize];
                self.undefined_use(FindingKind::UndefinedAddress, bad, wid, pc, o, |l| {
                    a[l].wrapping_add(t.smem_off as u64)
                });
            }
            _ => {}
        }
        if origin != 0 {
            for &d in &fdst {
                if d != NO_REG && sh(&warp.undef, d) & wm != 0 {
                    warp.undef_from[d as usize] = origin;
                }
            }
        }
    }

    /// A collective completed for lanes `act`: sets its results' shadows. Runs before the results
    /// are written, while every source register still holds its input.
    pub(super) fn def_collective(&mut self, warp: &mut Warp, pc: u32, ins: &Inst, act: u32) {
        if !warp.undef_any && !matches!(ins.op, Op::Ldmatrix { .. }) {
            return;
        }
        let mut became_undef = false;
        let (regs, u, o) = (&warp.regs, &mut warp.undef, &mut warp.undef_from);
        // Results that become undefined take their origin from the first undefined input.
        let set_from = |o: &mut Vec<u32>, d: R, v: u32, origin: u32| {
            if d != NO_REG && v & act != 0 && origin != 0 {
                if let Some(x) = o.get_mut(d as usize) {
                    *x = origin;
                }
            }
        };
        let col = |x: R| -> [u32; 32] { std::array::from_fn(|l| regs[x as usize][l] as u32) };
        match &ins.op {
            Op::ShflSync { mode, d, p, a, b, c, .. } => {
                let ua = sh(u, *a);
                let bits: [u32; 32] = std::array::from_fn(|l| ua >> l & 1);
                let (moved, _) = semantics::warp::shfl_sync(*mode, &bits, &col(*b), &col(*c), act);
                let lane_undef = sh(u, *b) | sh(u, *c);
                let v = moved.iter().enumerate().fold(lane_undef, |v, (l, &x)| v | x << l);
                u.put(*d, act, v);
                let origin = [*a, *b, *c].iter().map(|&r| from(o, r)).max().unwrap_or(0);
                set_from(o, *d, v, origin);
                u.put(*p, act, lane_undef);
            }
            Op::MatchSync { d, p, a, .. } => {
                let v = if sh(u, *a) & act != 0 { u32::MAX } else { 0 };
                u.put(*d, act, v);
                u.put(*p, act, v);
            }
            Op::ReduxSync { d, a, .. } => {
                let v = if sh(u, *a) & act != 0 { u32::MAX } else { 0 };
                u.put(*d, act, v);
            }
            Op::VoteSync { d, .. } => u.put(*d, act, 0),
            Op::ElectSync { d, p, .. } => {
                u.put(*d, act, 0);
                u.put(*p, act, 0);
            }
            Op::Mma { shape, input, ctype, d, a, b, c, .. } => {
                let f = |x: &[R; 4]| x.map(|r| sh(u, r));
                let out = mma_shadow(*shape, *input, *ctype, f(a), f(b), f(c));
                let origin =
                    a.iter().chain(b).chain(c).filter(|&&r| sh(u, r) != 0).map(|&r| from(o, r)).max().unwrap_or(0);
                for (i, &r) in d.iter().enumerate() {
                    u.put(r, act, out[i]);
                    set_from(o, r, out[i], origin);
                }
            }
            Op::Ldmatrix { num, trans, d, addr, off } => {
                let addrs: [u64; 32] =
                    std::array::from_fn(|l| shared_addr(eff(regs[*addr as usize][l], *off, Space::Shared)));
                let shadow = self.shadow.as_deref();
                // Each byte of a row as 0xff where undefined: a register's 4 bytes then say
                // whether any of them was.
                let out = semantics::ldmatrix::ldmatrix(*num as usize, *trans, &addrs, |a| {
                    let mut row = [0u8; 16];
                    if let Some(s) = shadow.filter(|s| !s.is_initialized(a as usize, 16)) {
                        for (i, b) in row.iter_mut().enumerate() {
                            if !s.is_initialized(a as usize + i, 1) {
                                *b = 0xff;
                            }
                        }
                    }
                    Ok::<_, ()>(row)
                });
                if let Ok(out) = out {
                    for (i, &r) in d.iter().enumerate().take(*num as usize) {
                        let v = out.iter().enumerate().fold(0u32, |v, (l, x)| v | u32::from(x[i] != 0) << l);
                        u.put(r, act, v);
                        set_from(o, r, v, pc + 1);
                        became_undef |= v & act != 0;
                    }
                }
            }
            _ => {}
        }
        warp.undef_any |= became_undef;
    }

    /// After a memory instruction's sanitizer bookkeeping (which marks written bytes initialised):
    /// shared bytes that received undefined data become undefined again.
    pub(super) fn def_post(&mut self, warp: &Warp, ins: &Inst, exec: u32, addrs: &[u64; 32]) {
        match &ins.op {
            Op::St { .. } | Op::Atom { .. } if self.def_store_undef != [0; 4] => {
                let (size, n) = match &ins.op {
                    Op::St { size, n, .. } => (*size as usize, *n as usize),
                    Op::Atom { ty, .. } => {
                        (if matches!(ty, AtomTy::U64 | AtomTy::S64 | AtomTy::F64 | AtomTy::B64) { 8 } else { 4 }, 1)
                    }
                    _ => return,
                };
                let undef = std::mem::take(&mut self.def_store_undef);
                let space = match &ins.op {
                    Op::St { space, .. } | Op::Atom { space, .. } => *space,
                    _ => return,
                };
                let Some(s) = self.shadow.as_deref_mut() else { return };
                for (k, &lanes) in undef.iter().enumerate().take(n) {
                    for l in lanes_of(lanes & exec) {
                        let (sp, a) = if space == Space::Generic { generic(addrs[l]) } else { (space, addrs[l]) };
                        if sp == Space::Shared {
                            s.mark_undefined(a as usize + k * size, size);
                        }
                    }
                }
            }
            Op::CpAsync { size, src_size, src, soff, .. } => {
                for l in lanes_of(exec) {
                    let s = warp.regs[*src as usize][l].wrapping_add(*soff as u64);
                    let n = (warp.regs[*src_size as usize][l] as usize).min(*size as usize);
                    if n == 0 || self.mem_defined(Space::Global, s, n) {
                        continue;
                    }
                    // Copied bytes carry their source's definedness; the zero-filled tail is defined.
                    let undef: Vec<usize> =
                        (0..n).filter(|&i| !self.mem_defined(Space::Global, s + i as u64, 1)).collect();
                    if let Some(sh) = self.shadow.as_deref_mut() {
                        for i in undef {
                            sh.mark_undefined(addrs[l] as usize + i, 1);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mma_shadow_marks_the_rows_of_a_and_the_columns_of_b_that_hold_undefined_elements() {
        let (shape, input, acc) = (MmaShape::M16N8K16, MmaInput::Bf16, MmaAcc::F32);
        assert_eq!(mma_shadow(shape, input, acc, [0; 4], [0; 4], [0; 4]), [0; 4]);
        // Lane 4g + t holds columns g of B: lanes 20..24 hold key row 5.
        let b = [0xf0_0000, 0, 0, 0];
        let d = mma_shadow(shape, input, acc, [0; 4], b, [0; 4]);
        for lane in 0..32 {
            for (i, &reg) in d.iter().enumerate() {
                let (_, col) = semantics::mma::c_coord(lane, i);
                assert_eq!(reg >> lane & 1 == 1, col == 5, "lane {lane} element {i}");
            }
        }
        // A's register 1 of lane 0 holds row 8: D's rows 8 only (registers 2 and 3 of lanes 0..4).
        let d = mma_shadow(shape, input, acc, [0, 1, 0, 0], [0; 4], [0; 4]);
        assert_eq!(d, [0, 0, 0xf, 0xf]);
        // C's element 0 of lane 7 is D's element 0 of lane 7 only.
        let d = mma_shadow(shape, input, acc, [0; 4], [0; 4], [1 << 7, 0, 0, 0]);
        assert_eq!(d, [1 << 7, 0, 0, 0]);
        // With an f16 accumulator, elements 0 and 1 share register 0.
        let d = mma_shadow(shape, input, MmaAcc::F16, [0; 4], [0; 4], [1 << 7, 0, 0, 0]);
        assert_eq!(d, [1 << 7, 0, 0, 0]);
    }
}
