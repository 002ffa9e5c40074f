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
