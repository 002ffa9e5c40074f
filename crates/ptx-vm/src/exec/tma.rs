//! Bulk tensor copies: `cp.async.bulk.tensor` in tile mode, driven by a tensor map in the VM's
//! encoding ([`semantics::tensor_map`]).

use super::*;
use semantics::tensor_map::{TensorMap, MAX_RANK, TENSOR_MAP_ALIGN, TENSOR_MAP_BYTES};
use semantics::wgmma::Swizzle;

/// The shared-memory alignment of a bulk tensor copy's box (PTX ISA 9.7.9.25.5.1).
const BOX_ALIGN: u64 = 128;

/// Splits the shared bytes `a..a+len` at 16-byte boundaries, the swizzle's unit: each piece's
/// offset from `a`, its swizzled address and its length.
fn pieces(swz: Swizzle, a: u64, len: u64) -> impl Iterator<Item = (usize, usize, usize)> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= len {
            return None;
        }
        let x = a + i;
        let take = (16 - x % 16).min(len - i);
        let p = (i as usize, swz.apply(x) as usize, take as usize);
        i += take;
        Some(p)
    })
}

impl Block<'_, '_> {
    /// Reads and decodes the tensor map at generic address `a`.
    fn tensor_map(&self, warp: &Warp, lane: usize, a: u64) -> Result<TensorMap, String> {
        if a % TENSOR_MAP_ALIGN != 0 {
            return Err(format!("the tensor map at {a:#x} is not {TENSOR_MAP_ALIGN}-byte aligned"));
        }
        let mut b = [0u8; TENSOR_MAP_BYTES];
        for (i, w) in b.chunks_exact_mut(8).enumerate() {
            let v = self.load(warp, lane, Space::Generic, a + 8 * i as u64, 8)?;
            w.copy_from_slice(&v.to_le_bytes());
        }
        TensorMap::decode(&b).map_err(|e| format!("the tensor map at {a:#x} is not valid: {e}"))
    }

    /// `cp.async.bulk.tensor`, one copy per executing thread. Like `cp.async.bulk` the copy is done
    /// at issue, racecheck standing in for the timing the VM does not show; a global -> shared copy
    /// performs complete-tx of the whole box's bytes on its mbarrier, the part outside the tensor
    /// (zeros) included, as the hardware counts them.
    pub(super) fn exec_tensor_copy(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::TensorCopy(t) = op else { return Ok(()) };
        for l in lanes_of(exec) {
            let lane = Some(l as u32);
            let what = if t.to_shared { "global -> shared" } else { "shared -> global" };
            let name = format!("cp.async.bulk.tensor.{}d {what}", t.rank);
            let bad = |msg: String| fault(pc, lane, format!("{name}: {msg}"));
            let ma = warp.regs[t.map as usize][l].wrapping_add(t.map_off as u64);
            let map = self.tensor_map(warp, l, ma).map_err(|e| bad(format!("the tensor-map operand: {e}")))?;
            if map.rank != t.rank {
                return Err(bad(format!(
                    "the tensor-map operand at {ma:#x} describes a rank-{} tensor, the instruction a rank-{} box",
                    map.rank, t.rank
                )));
            }
            let mut c = [0i32; MAX_RANK];
            for (ci, r) in c.iter_mut().zip(&t.coords).take(t.rank as usize) {
                *ci = warp.regs[*r as usize][l] as u32 as i32;
            }
            let sh = shared_addr(warp.regs[t.smem as usize][l].wrapping_add(t.smem_off as u64));
            let smem_name = if t.to_shared { "destination" } else { "source" };
            if sh % BOX_ALIGN != 0 {
                return Err(bad(format!("the shared-memory {smem_name} {sh:#x} is not {BOX_ALIGN}-byte aligned")));
            }
            let n = map.box_bytes();
            // Swizzled chunks stay within their 128-byte line.
            let span = if map.swizzle == Swizzle::None { n } else { n.next_multiple_of(128) };
            let len = self.smem.len() as u64;
            if sh + span > len {
                return Err(bad(format!(
                    "the shared-memory {smem_name} {sh:#x}..{:#x} (a box of {n} bytes) is outside the block's {len} bytes",
                    sh + span
                )));
            }
            self.tensor_rows(warp.id, l as u32, pc, &map, c, sh, t.to_shared).map_err(&bad)?;
            if self.instrument {
                let c = &mut self.counters;
                c.bulk_copy_bytes += n;
                c.shared_requests += 1;
                c.shared_wavefronts += n.div_ceil(128);
                c.shared_ideal_wavefronts += n.div_ceil(128);
                if t.to_shared {
                    c.global_load_requests += 1;
                } else {
                    c.global_store_requests += 1;
                }
            }
            if t.to_shared {
                let m = shared_addr(warp.regs[t.mbar as usize][l].wrapping_add(t.mbar_off as u64));
                self.bulk_complete(warp.id * 32 + l as u32, pc, sh..sh + span, m, n)
                    .map_err(|e| bad(format!("completing on its mbarrier: {e}")))?;
            }
        }
        Ok(())
    }

    /// Moves the box row by row between the tensor and shared memory at `sh`: a load writes every
    /// row (zeros outside the tensor), a store writes only the elements inside it.
    #[allow(clippy::too_many_arguments)]
    fn tensor_rows(
        &mut self,
        w: u32,
        lane: u32,
        pc: u32,
        map: &TensorMap,
        c: [i32; MAX_RANK],
        sh: u64,
        to_shared: bool,
    ) -> Result<(), String> {
        let eb = map.element_bytes as usize;
        let gstep = map.element_strides[0] as usize * eb;
        let row_bytes = map.row_bytes();
        let mut row = vec![0u8; row_bytes as usize];
        let defined = self.ctx.definedness && self.shadow.is_some();
        for r in map.rows(c) {
            let base = sh + r.box_offset;
            let span = r.inside.map(|(first, k, g)| (first as usize, k as usize, g, (k as usize - 1) * gstep + eb));
            let found = match span {
                Some((_, _, g, glen)) => match self.ctx.global.find_cached(g, glen, &self.gcache) {
                    Some(x) => Some(x),
                    None => {
                        let dir = if to_shared { "reads" } else { "writes" };
                        return Err(format!(
                            "the box {dir} {glen} bytes at global address {g:#x}, outside every allocation; {}",
                            self.ctx.global.describe(g, glen)
                        ));
                    }
                },
                None => None,
            };
            if to_shared {
                row.fill(0);
                if let (Some((first, k, _, _)), Some((buf, off))) = (span, found) {
                    for j in 0..k {
                        let v = buf.load(off + j * gstep, eb as u8);
                        row[(first + j) * eb..(first + j + 1) * eb].copy_from_slice(&v.to_le_bytes()[..eb]);
                    }
                }
                for (i, d, take) in pieces(map.swizzle, base, row_bytes) {
                    self.smem[d..d + take].copy_from_slice(&row[i..i + take]);
                }
            } else {
                for (i, d, take) in pieces(map.swizzle, base, row_bytes) {
                    row[i..i + take].copy_from_slice(&self.smem[d..d + take]);
                }
                if let (Some((first, k, _, _)), Some((buf, off))) = (span, found) {
                    for j in 0..k {
                        let mut v = [0u8; 8];
                        v[..eb].copy_from_slice(&row[(first + j) * eb..(first + j + 1) * eb]);
                        buf.store(off + j * gstep, eb as u8, u64::from_le_bytes(v));
                    }
                }
            }
            if !self.instrument {
                continue;
            }
            let (gk, sk) =
                if to_shared { (AccessKind::Read, AccessKind::Write) } else { (AccessKind::Write, AccessKind::Read) };
            if let Some((first, k, g, _)) = span {
                // The elements inside the tensor, as runs of contiguous bytes in global memory.
                let (runs, run) = if gstep == eb { (1, k * eb) } else { (k, eb) };
                let mut sectors = 0;
                let mut last = u64::MAX;
                for j in 0..runs {
                    let ga = g + (j * gstep) as u64;
                    let (lo, hi) = (ga / ctr::SECTOR_BYTES, (ga + run as u64 - 1) / ctr::SECTOR_BYTES);
                    sectors += hi - lo + 1 - u64::from(lo == last);
                    last = hi;
                    self.global_touch(w, lane, pc, ga, run, gk);
                }
                let c = &mut self.counters;
                if to_shared {
                    c.global_load_sectors += sectors;
                    c.global_load_bytes += (k * eb) as u64;
                } else {
                    c.global_store_sectors += sectors;
                    c.global_store_bytes += (k * eb) as u64;
                }
                if defined && !to_shared {
                    // Storing undefined shared bytes to global memory is a definedness sink.
                    let undef = (0..k).find(|&j| {
                        let a = base + ((first + j) * eb) as u64;
                        pieces(map.swizzle, a, eb as u64)
                            .any(|(_, d, t)| self.shadow.as_deref().is_some_and(|s| !s.is_initialized(d, t)))
                    });
                    if let Some(j) = undef {
                        let at = g + (j * gstep) as u64;
                        self.finding(FindingKind::UndefinedValueStoredToGlobal, w * 32 + lane, pc, at, None);
                    }
                }
            }
            for (_, d, take) in pieces(map.swizzle, base, row_bytes) {
                self.shared_touch(w, lane, pc, d as u64, take, sk, false);
            }
            if defined && to_shared {
                // Copied elements carry their source's definedness; the zeros outside are defined.
                if let Some((first, k, g, _)) = span {
                    for j in 0..k {
                        let ga = g + (j * gstep) as u64;
                        let undef = match self.ctx.global.find_cached(ga, eb, &self.gcache) {
                            Some((buf, off)) => buf.tracking().is_some_and(|t| !t.shadow.is_initialized(off, eb)),
                            None => false,
                        };
                        if undef {
                            let a = base + ((first + j) * eb) as u64;
                            let ps: Vec<_> = pieces(map.swizzle, a, eb as u64).collect();
                            if let Some(s) = self.shadow.as_deref_mut() {
                                for (_, d, t) in ps {
                                    s.mark_undefined(d, t);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
