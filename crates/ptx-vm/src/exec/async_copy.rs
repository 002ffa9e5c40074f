//! Asynchronous copies: `cp.async` and its groups.

use super::*;

/// `cp.async.commit_group`.
#[inline(always)]
pub(super) fn exec_cp_commit(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::CpCommit = op else { return };
    for l in lanes_of(exec) {
        warp.committed[l] += 1;
    }
}

impl Block<'_, '_> {
    /// `cp.async` global -> shared, with zero-fill past `src-size`.
    #[inline(always)]
    pub(super) fn exec_cp_async(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::CpAsync { size, src_size, dst, doff, src, soff } = op else { return Ok(()) };
        // The copy is performed at issue; cp.async.wait_group then has nothing left to
        // wait for, which is one of the orders the PTX memory model allows.
        for l in lanes_of(exec) {
            let d = eff(warp.regs[*dst as usize][l], *doff, Space::Shared);
            let s = warp.regs[*src as usize][l].wrapping_add(*soff as u64);
            let n = (warp.regs[*src_size as usize][l] as u32).min(*size as u32);
            if (d | s) & (*size as u64 - 1) != 0 {
                return Err(fault(
                    pc,
                    Some(l as u32),
                    format!("misaligned cp.async of {size} bytes ({s:#x} -> {d:#x})"),
                ));
            }
            let size = *size as usize;
            let mut bytes = [0u8; 16];
            if n > 0 {
                let (buf, off) = self.ctx.global.find_cached(s, n as usize, &self.gcache).ok_or_else(|| {
                    let msg = format!(
                        "cp.async reads {n} bytes at global address {s:#x}, outside every allocation; {}",
                        self.ctx.global.describe(s, n as usize)
                    );
                    fault(pc, Some(l as u32), msg)
                })?;
                if n as usize == size {
                    for w in 0..size / 4 {
                        let v = buf.load(off + 4 * w, 4) as u32;
                        bytes[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
                    }
                } else {
                    for (i, b) in bytes.iter_mut().enumerate().take(n as usize) {
                        *b = buf.load(off + i, 1) as u8;
                    }
                }
            }
            let len = self.smem.len();
            match self.smem.get_mut(d as usize..(d as usize).saturating_add(size)) {
                Some(dst) => dst.copy_from_slice(&bytes[..size]),
                None => {
                    let msg = format!(
                        "cp.async writes {size} bytes at shared address {d:#x}, outside the block's {len} bytes"
                    );
                    return Err(fault(pc, Some(l as u32), msg));
                }
            }
        }
        Ok(())
    }
}

/// The shared destination of a `cp.async.bulk` global -> shared copy, for racecheck: bytes
/// `lo..hi`, written at `pc`, complete on the mbarrier at `mbar`. Reads of them are findings in
/// every warp not in `observed` (those that saw the phase's completion with a wait, or met such a
/// warp at a barrier).
pub(super) struct BulkInflight {
    pub(super) lo: u64,
    pub(super) hi: u64,
    pub(super) mbar: u64,
    pub(super) pc: u32,
    pub(super) tid: u32,
    pub(super) completed: bool,
    pub(super) observed: u32,
}

impl Block<'_, '_> {
    /// `cp.async.bulk`, one copy per executing thread (PTX ISA 9.7.9.25.4.1). The copy is done at
    /// issue, as `cp.async` is, which is one of the executions the memory model allows; what the
    /// VM cannot show by timing it checks instead: a read of a global -> shared destination by a
    /// warp that has not observed the completion of the mbarrier phase is a racecheck finding
    /// ([`FindingKind::SharedReadBeforeBulkCopyComplete`]). Size and both addresses must be
    /// multiples of 16 (9.7.9.25.4.1: "size ... multiple of 16", 16-byte aligned operands).
    pub(super) fn exec_bulk_copy(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::BulkCopy { to_shared, dst, doff, src, soff, size, mbar, moff } = *op else { return Ok(()) };
        for l in lanes_of(exec) {
            let lane = Some(l as u32);
            let d = warp.regs[dst as usize][l].wrapping_add(doff as u64);
            let s = warp.regs[src as usize][l].wrapping_add(soff as u64);
            let n = warp.regs[size as usize][l] as u32 as u64;
            let (g, sh) = if to_shared { (s, shared_addr(d)) } else { (d, shared_addr(s)) };
            let what = if to_shared { "global -> shared" } else { "shared -> global" };
            if n % 16 != 0 || g % 16 != 0 || sh % 16 != 0 {
                return Err(fault(
                    pc,
                    lane,
                    format!(
                        "cp.async.bulk {what} of {n} bytes ({s:#x} -> {d:#x}): the size and both addresses must be \
                         multiples of 16"
                    ),
                ));
            }
            let len = self.smem.len();
            if sh.checked_add(n).is_none_or(|e| e > len as u64) {
                let msg = format!(
                    "cp.async.bulk {what} of {n} bytes at shared address {sh:#x}, outside the block's {len} bytes"
                );
                return Err(fault(pc, lane, msg));
            }
            let Some((buf, off)) = self.ctx.global.find_cached(g, n as usize, &self.gcache) else {
                let msg = format!(
                    "cp.async.bulk {what} of {n} bytes at global address {g:#x}, outside every allocation; {}",
                    self.ctx.global.describe(g, n as usize)
                );
                return Err(fault(pc, lane, msg));
            };
            let (sh, n) = (sh as usize, n as usize);
            if to_shared {
                for i in (0..n).step_by(8) {
                    let v = buf.load(off + i, 8);
                    self.smem[sh + i..sh + i + 8].copy_from_slice(&v.to_le_bytes());
                }
            } else {
                for i in (0..n).step_by(8) {
                    let v = rd(self.smem, sh + i, 8).unwrap_or(0);
                    buf.store(off + i, 8, v);
                }
            }
            if self.instrument {
                self.bulk_counts(warp.id, l as u32, pc, to_shared, g, sh as u64, n);
            }
            if to_shared {
                let m = shared_addr(warp.regs[mbar as usize][l].wrapping_add(moff as u64));
                let tid = warp.id * 32 + l as u32;
                self.bulk_complete(tid, pc, sh as u64..(sh + n) as u64, m, n as u64)
                    .map_err(|e| fault(pc, lane, format!("cp.async.bulk completing on its mbarrier: {e}")))?;
            }
        }
        Ok(())
    }

    /// The end of a global -> shared bulk copy by thread `tid` at `pc` into the shared bytes
    /// `dst`: complete-tx(`bytes`) on the mbarrier at shared address `m`, and, for racecheck, the
    /// destination in flight until a warp observes the phase's completion.
    pub(super) fn bulk_complete(
        &mut self,
        tid: u32,
        pc: u32,
        dst: std::ops::Range<u64>,
        m: u64,
        bytes: u64,
    ) -> Result<(), String> {
        if self.shadow.is_some() {
            self.bulk_inflight.retain(|c| c.hi <= dst.start || c.lo >= dst.end);
            self.bulk_inflight.push(BulkInflight {
                lo: dst.start,
                hi: dst.end,
                mbar: m,
                pc,
                tid,
                completed: false,
                observed: 0,
            });
        }
        let k = Mbar::Tx { complete: true };
        let (_, flipped) = self.mbarrier(k, m, bytes)?;
        if self.shadow.is_some() {
            self.mbarrier_sync(tid / 32, k, m, flipped, 0, true);
        }
        Ok(())
    }

    /// Counters and sanitizer for one bulk copy of `n` bytes between global `g` and shared `sh`.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn bulk_counts(&mut self, w: u32, lane: u32, pc: u32, to_shared: bool, g: u64, sh: u64, n: usize) {
        let sectors = if n == 0 { 0 } else { (g + n as u64).div_ceil(ctr::SECTOR_BYTES) - g / ctr::SECTOR_BYTES };
        let c = &mut self.counters;
        c.bulk_copy_bytes += n as u64;
        c.shared_requests += 1;
        c.shared_wavefronts += (n as u64).div_ceil(128);
        c.shared_ideal_wavefronts += (n as u64).div_ceil(128);
        if to_shared {
            c.global_load_requests += 1;
            c.global_load_sectors += sectors;
            c.global_load_bytes += n as u64;
        } else {
            c.global_store_requests += 1;
            c.global_store_sectors += sectors;
            c.global_store_bytes += n as u64;
        }
        if n == 0 {
            return;
        }
        let (gk, sk) =
            if to_shared { (AccessKind::Read, AccessKind::Write) } else { (AccessKind::Write, AccessKind::Read) };
        self.global_touch(w, lane, pc, g, n, gk);
        self.shared_touch(w, lane, pc, sh, n, sk, false);
        if !to_shared && self.ctx.definedness {
            // Storing undefined shared bytes to global memory is a definedness sink, as `st.global` is.
            let first = self.shadow.as_deref().and_then(|s| (0..n).find(|&i| !s.is_initialized(sh as usize + i, 1)));
            if let Some(i) = first {
                self.finding(FindingKind::UndefinedValueStoredToGlobal, w * 32 + lane, pc, g + i as u64, None);
            }
        }
        if to_shared && self.ctx.definedness {
            // Copied bytes carry their source's definedness.
            if !self.global_defined(g, n) {
                let undef: Vec<usize> = (0..n).filter(|&i| !self.global_defined(g + i as u64, 1)).collect();
                if let Some(s) = self.shadow.as_deref_mut() {
                    for i in undef {
                        s.mark_undefined(sh as usize + i, 1);
                    }
                }
            }
        }
    }

    /// Whether the `len` global bytes at `a` hold defined data.
    fn global_defined(&self, a: u64, len: usize) -> bool {
        match self.ctx.global.find_cached(a, len, &self.gcache) {
            Some((buf, off)) => buf.tracking().is_none_or(|t| t.shadow.is_initialized(off, len)),
            None => true,
        }
    }

    /// Racecheck: a read by warp `w` of shared bytes `a..a+len` that a bulk copy whose completion
    /// the warp has not observed writes.
    #[cold]
    #[inline(never)]
    pub(super) fn check_bulk_inflight(&mut self, w: u32, lane: u32, pc: u32, a: u64, len: usize) {
        let bit = 1u32.checked_shl(w).unwrap_or(0);
        let hit = self
            .bulk_inflight
            .iter()
            .find(|c| c.observed & bit == 0 && c.lo < a + len as u64 && a < c.hi)
            .map(|c| (c.tid, c.pc));
        if let Some(other) = hit {
            self.finding(FindingKind::SharedReadBeforeBulkCopyComplete, w * 32 + lane, pc, a, Some(other));
        }
    }
}
