//! The counters' and sanitizer's view of each instruction: before and after hooks, per-lane
//! global and shared accesses, findings.

use super::*;

/// Which warp and instruction an access comes from.
#[derive(Clone, Copy)]
pub(super) struct Site {
    pub(super) warp: u32,
    pub(super) pc: u32,
}

impl Block<'_, '_> {
    /// Counts an instruction's class and, for memory instructions, takes the lanes' addresses before
    /// the instruction runs (a load may overwrite its own address register).
    #[inline(never)]
    pub(super) fn before(&mut self, warp: &Warp, ins: &Inst, exec: u32) -> Option<[u64; 32]> {
        self.counters.count(ins.class, exec.count_ones());
        if exec == 0 {
            return None;
        }
        self.st_changed = 0;
        let (addr, off, space) = match &ins.op {
            Op::Ld { addr, off, space, .. } | Op::St { addr, off, space, .. } | Op::Atom { addr, off, space, .. } => {
                (*addr, *off, *space)
            }
            Op::CpAsync { dst, doff, .. } => (*dst, *doff, Space::Shared),
            _ => return None,
        };
        let r = &warp.regs[addr as usize];
        // `eff` with the space hoisted out of the lanes: the global case is a plain add.
        Some(if matches!(space, Space::Shared | Space::Local) {
            std::array::from_fn(|l| eff(r[l], off, Space::Shared))
        } else {
            std::array::from_fn(|l| r[l].wrapping_add(off as u64))
        })
    }

    /// Feeds a memory instruction that completed to the counters and the sanitizer.
    #[inline(never)]
    pub(super) fn after(&mut self, warp: &Warp, pc: u32, ins: &Inst, exec: u32, addrs: &[u64; 32]) {
        match &ins.op {
            Op::Ld { space, size, n, .. } => self.access(
                Site { warp: warp.id, pc },
                exec,
                addrs,
                *space,
                u32::from(*size) * u32::from(*n),
                AccessKind::Read,
                0,
            ),
            Op::St { space, size, n, .. } => self.access(
                Site { warp: warp.id, pc },
                exec,
                addrs,
                *space,
                u32::from(*size) * u32::from(*n),
                AccessKind::Write,
                exec & !self.st_changed,
            ),
            Op::Atom { space, ty, .. } => {
                let size = u32::from(ty.bytes());
                self.access(Site { warp: warp.id, pc }, exec, addrs, *space, size, AccessKind::Atomic, 0)
            }
            Op::CpAsync { size, src_size, src, soff, .. } => {
                let width = u32::from(*size);
                // The shared destination is written in full (the tail past src-size is zero-filled).
                self.access(Site { warp: warp.id, pc }, exec, addrs, Space::Shared, width, AccessKind::Write, 0);
                self.counters.cp_async_bytes += u64::from(width) * u64::from(exec.count_ones());
                let mut reads = std::mem::take(&mut self.scratch);
                reads.clear();
                for l in lanes_of(exec) {
                    let s = warp.regs[*src as usize][l].wrapping_add(*soff as u64);
                    let n = (warp.regs[*src_size as usize][l] as u32).min(width);
                    if n > 0 {
                        self.global_touch(warp.id, l as u32, pc, s, n as usize, AccessKind::Read);
                        reads.push((l as u32, s));
                    }
                }
                // cp.async reads global memory through the L1 like a load (LDGSTS).
                if !reads.is_empty() {
                    let (req, sec) = ctr::global_sectors(&reads, width);
                    self.counters.global_load_requests += req;
                    self.counters.global_load_sectors += sec;
                    self.counters.global_load_bytes += u64::from(width) * reads.len() as u64;
                }
                self.scratch = reads;
            }
            _ => {}
        }
        if self.ctx.definedness {
            self.def_post(warp, ins, exec, addrs);
        }
    }

    /// One warp-level access of `width` bytes per lane: the sanitizer per lane, then the warp's
    /// global requests and sectors or shared wavefronts. `same`: the lanes of a store that left
    /// the bytes as they were.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn access(
        &mut self,
        site: Site,
        exec: u32,
        addrs: &[u64; 32],
        space: Space,
        width: u32,
        kind: AccessKind,
        same: u32,
    ) {
        let Site { warp: w, pc } = site;
        let mut global = std::mem::take(&mut self.scratch);
        global.clear();
        let mut shared = [(0u32, 0u64); 32];
        let mut nshared = 0;
        for l in lanes_of(exec) {
            let (sp, a) = if space == Space::Generic { generic(addrs[l]) } else { (space, addrs[l]) };
            match sp {
                Space::Global => {
                    self.global_touch(w, l as u32, pc, a, width as usize, kind);
                    global.push((l as u32, a));
                }
                Space::Shared => {
                    self.shared_touch(w, l as u32, pc, a, width as usize, kind, same >> l & 1 == 1);
                    shared[nshared] = (l as u32, a);
                    nshared += 1;
                }
                _ => {}
            }
        }
        // Atomics are served by the L2 / the shared-memory atomic unit, not as L1 requests.
        if kind != AccessKind::Atomic {
            let c = &mut self.counters;
            if !global.is_empty() {
                let (req, sec) = ctr::global_sectors(&global, width);
                let bytes = u64::from(width) * global.len() as u64;
                if kind == AccessKind::Read {
                    c.global_load_requests += req;
                    c.global_load_sectors += sec;
                    c.global_load_bytes += bytes;
                } else {
                    c.global_store_requests += req;
                    c.global_store_sectors += sec;
                    c.global_store_bytes += bytes;
                }
            }
            if nshared > 0 {
                let (wf, ideal) = ctr::shared_wavefronts(&shared[..nshared], width);
                c.shared_requests += 1;
                c.shared_wavefronts += wf;
                c.shared_ideal_wavefronts += ideal;
            }
        }
        self.scratch = global;
    }

    /// One lane's global access: first-touch bytes for the counters; initcheck and the cross-block
    /// write-conflict check for the sanitizer.
    pub(super) fn global_touch(&mut self, w: u32, lane: u32, pc: u32, a: u64, len: usize, kind: AccessKind) {
        let sanitize = self.ctx.sanitize;
        let Some((buf, off)) = self.ctx.global.find_cached(a, len, &self.gcache) else { return };
        let Some(t) = buf.tracking() else { return };
        let mut found = None;
        if kind != AccessKind::Write {
            // With definedness tracking a read of uninitialised bytes yields undefined values and
            // is a finding only where they escape.
            if sanitize && !self.ctx.definedness && !t.shadow.is_initialized(off, len) {
                found = Some(FindingKind::UninitializedGlobalRead);
            }
            t.touch_read(off, len);
        }
        if kind != AccessKind::Read {
            if sanitize && t.shadow.write(off, len, self.block_index, kind == AccessKind::Atomic).is_some() {
                found = found.or(Some(FindingKind::GlobalWriteConflict));
            }
            t.touch_write(off, len);
        }
        if let Some(k) = found {
            self.finding(k, w * 32 + lane, pc, a, None);
        }
    }

    /// One lane's shared access, checked against the block's shadow. Inlined into the per-lane
    /// loops: the call's register saves cost about as much as the shadow's fast path.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn shared_touch(
        &mut self,
        w: u32,
        lane: u32,
        pc: u32,
        a: u64,
        len: usize,
        kind: AccessKind,
        same: bool,
    ) {
        let tid = w * 32 + lane;
        if !self.bulk_inflight.is_empty() && kind != AccessKind::Write {
            self.check_bulk_inflight(w, lane, pc, a, len);
        }
        if !self.wgmma_reads.is_empty() && kind != AccessKind::Read {
            self.check_wgmma_reads(w, lane, pc, a, len);
        }
        let Some(sh) = self.shadow.as_deref_mut() else { return };
        if let Some(hit) = sh.access_same(tid, a as usize, len, kind, pc, same) {
            let other = if hit.kind == FindingKind::UninitializedSharedRead {
                None
            } else {
                Some((hit.other_tid, hit.other_line))
            };
            self.finding(hit.kind, tid, pc, a, other);
        }
    }

    pub(super) fn location(&self, pc: u32) -> Location {
        let k = self.ctx.kernel;
        match k.code.get(pc as usize) {
            Some(i) => Location {
                ptx_line: i.line,
                source: if i.loc == 0 { None } else { self.ctx.locs.get(i.loc as usize).cloned() },
            },
            None => Location::default(),
        }
    }

    /// Records a finding at linear thread `tid` and instruction `pc`; `other` is the earlier
    /// conflicting access (thread, instruction) for races.
    pub(super) fn finding(&mut self, kind: FindingKind, tid: u32, pc: u32, address: u64, other: Option<(u32, u32)>) {
        let place =
            |b: &Self, t: u32, pc: u32| Place { block: b.ctaid, thread: b.tid(t), line: b.location(pc).to_string() };
        let f = Finding {
            kind,
            kernel: self.ctx.kernel.name.clone(),
            at: place(self, tid, pc),
            other: other.map(|(t, p)| place(self, t, p)),
            address,
            count: 1,
        };
        self.report.add(f);
    }
}
