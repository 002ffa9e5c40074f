//! Loads and stores in every state space, generic addressing, and memcheck's messages.

use super::*;

/// Resolves a generic address to its state space and the address within it (PTX ISA 6.4.1).
#[inline(always)]
pub(super) fn generic(addr: u64) -> (Space, u64) {
    if addr < SHARED_WIN {
        return (Space::Global, addr);
    }
    match addr >> WIN_BITS {
        0x71 => (Space::Shared, addr - SHARED_WIN),
        0x72 => (Space::Local, addr - LOCAL_WIN),
        0x73 => (Space::Const, addr - CONST_WIN),
        0x74 | 0x75 => (Space::Param, addr),
        _ => (Space::Global, addr),
    }
}

/// Where an out-of-bounds offset lies relative to the end of its window, for memcheck messages.
pub(super) fn past_end(a: u64, len: usize) -> String {
    match a.checked_sub(len as u64) {
        Some(d) => format!(", {d} bytes past its end"),
        None => String::new(),
    }
}

pub(super) fn space_name(s: Space) -> &'static str {
    match s {
        Space::Global => "global",
        Space::Shared => "shared",
        Space::Local => "local",
        Space::Const => "const",
        Space::Param => "param",
        Space::Generic => "generic",
    }
}

/// ldmatrix/stmatrix take shared addresses; a generic one is mapped into the shared window.
/// The address `[base+off]` of an access to `space`. Shared and local addresses are 32 bits wide
/// (PTX ISA 6.4.1, the .shared and .local windows; ptxas computes them in 32-bit registers), so
/// a base that fits in 32 bits plus its immediate offset wraps modulo 2^32 as the hardware's
/// address arithmetic does. nvcc relies on it: a register may hold an address minus the
/// immediate ("negative" as u32) that only the `[reg+imm]` addition brings back into range.
#[inline(always)]
pub(super) fn eff(base: u64, off: i64, space: Space) -> u64 {
    let a = base.wrapping_add(off as u64);
    if matches!(space, Space::Shared | Space::Local) && base >> 32 == 0 {
        a & 0xFFFF_FFFF
    } else {
        a
    }
}

pub(super) fn shared_addr(a: u64) -> u64 {
    if (SHARED_WIN..LOCAL_WIN).contains(&a) {
        a - SHARED_WIN
    } else {
        a
    }
}

impl Block<'_, '_> {
    /// A 4-byte scalar shared-memory load: the common case, kept free of the general path's dispatch.
    #[inline(always)]
    pub(super) fn exec_ld_shared_u32(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Ld { dsts, addr, off, .. } = op else { return Ok(()) };
        // The common case, kept free of the general path's dispatch.
        let len = self.smem.len();
        for l in lanes_of(exec) {
            let a = eff(warp.regs[*addr as usize][l], *off, Space::Shared);
            match self.smem.get(a as usize..(a as usize).wrapping_add(4)) {
                Some(b) if a % 4 == 0 => {
                    warp.regs[dsts[0] as usize][l] = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
                }
                _ => {
                    let msg = if a % 4 != 0 {
                        format!("misaligned 4-byte access at {a:#x}")
                    } else {
                        format!(
                            "4-byte load from shared address {a:#x} outside the block's shared memory ({len} bytes){}",
                            past_end(a, len)
                        )
                    };
                    return Err(fault(pc, Some(l as u32), msg));
                }
            }
        }
        Ok(())
    }

    /// `ld`/`ldu` in any state space, scalar or vector.
    #[inline(always)]
    pub(super) fn exec_ld(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Ld { space, size, n, signed, dsts, addr, off } = op else { return Ok(()) };
        for l in lanes_of(exec) {
            let base = eff(warp.regs[*addr as usize][l], *off, *space);
            let total = *size as u64 * *n as u64;
            if base & (total - 1) != 0 {
                let msg = format!("misaligned {total}-byte access at {base:#x}{}", self.locate(*space, base, total));
                return Err(fault(pc, Some(l as u32), msg));
            }
            for (k, dreg) in dsts.iter().take(*n as usize).enumerate() {
                let a = base + (k as u64) * *size as u64;
                let mut v = self.load(warp, l, *space, a, *size).map_err(|m| fault(pc, Some(l as u32), m))?;
                if *signed && *size < 8 {
                    let sh = 64 - 8 * *size as u32;
                    v = (((v << sh) as i64) >> sh) as u64;
                }
                warp.regs[*dreg as usize][l] = v;
            }
        }
        Ok(())
    }

    /// `st` in any state space, scalar or vector.
    #[inline(always)]
    pub(super) fn exec_st(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::St { space, size, n, srcs, addr, off } = op else { return Ok(()) };
        for l in lanes_of(exec) {
            let base = eff(warp.regs[*addr as usize][l], *off, *space);
            if base & (*size as u64 * *n as u64 - 1) != 0 {
                let total = *size as u64 * *n as u64;
                let msg = format!("misaligned {total}-byte store at {base:#x}{}", self.locate(*space, base, total));
                return Err(fault(pc, Some(l as u32), msg));
            }
            for (k, sreg) in srcs.iter().take(*n as usize).enumerate() {
                let a = base + (k as u64) * *size as u64;
                let v = warp.regs[*sreg as usize][l];
                self.store(warp, l, *space, a, *size, v).map_err(|m| fault(pc, Some(l as u32), m))?;
            }
        }
        Ok(())
    }

    // Inlined into the interpreter loop as it was when that was its only caller (printf calls it too).
    #[inline(always)]
    pub(super) fn load(&self, warp: &Warp, lane: usize, space: Space, addr: u64, size: u8) -> Result<u64, String> {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        let oob = |what: &str, len: usize| {
            format!(
                "{size}-byte load from {} address {a:#x} outside {what} ({len} bytes){}",
                space_name(space),
                past_end(a, len)
            )
        };
        match space {
            Space::Global => match self.ctx.global.find_cached(a, size as usize, &self.gcache) {
                Some((buf, off)) => Ok(buf.load(off, size)),
                None => Err(format!(
                    "{size}-byte load from global address {a:#x}, which is outside every allocation; {}",
                    self.ctx.global.describe(a, size as usize)
                )),
            },
            Space::Shared => {
                rd(self.smem, a as usize, size).ok_or_else(|| oob("the block's shared memory", self.smem.len()))
            }
            Space::Local => {
                let ls = self.ctx.kernel.local_size;
                if a as usize + size as usize > ls {
                    return Err(oob("the thread's local memory", ls));
                }
                rd(&warp.local, lane * ls + a as usize, size).ok_or_else(|| oob("local memory", ls))
            }
            Space::Const => rd(self.ctx.const_bank, a as usize, size)
                .ok_or_else(|| oob("the constant bank", self.ctx.const_bank.len())),
            Space::Param | Space::Generic => {
                if (PARAM_WIN..FPARAM_WIN).contains(&a) {
                    rd(self.ctx.params, (a - PARAM_WIN) as usize, size)
                        .ok_or_else(|| oob("the kernel parameters", self.ctx.params.len()))
                } else if a >= FPARAM_WIN {
                    let fs = self.ctx.kernel.fparam_size;
                    let o = (a - FPARAM_WIN) as usize;
                    if o + size as usize > fs {
                        return Err(oob("the call parameters", fs));
                    }
                    rd(&warp.fparam, lane * fs + o, size).ok_or_else(|| oob("the call parameters", fs))
                } else {
                    Err(format!("param load from {a:#x}, which is not a parameter address"))
                }
            }
        }
    }

    pub(super) fn store(
        &mut self,
        warp: &mut Warp,
        lane: usize,
        space: Space,
        addr: u64,
        size: u8,
        v: u64,
    ) -> Result<(), String> {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        let oob = |what: &str, len: usize| {
            format!(
                "{size}-byte store to {} address {a:#x} outside {what} ({len} bytes){}",
                space_name(space),
                past_end(a, len)
            )
        };
        match space {
            Space::Global => match self.ctx.global.find_cached(a, size as usize, &self.gcache) {
                Some((buf, off)) => {
                    buf.store(off, size, v);
                    Ok(())
                }
                None => Err(format!(
                    "{size}-byte store to global address {a:#x}, which is outside every allocation; {}",
                    self.ctx.global.describe(a, size as usize)
                )),
            },
            Space::Shared => {
                let len = self.smem.len();
                if self.shadow.is_some() {
                    let m = if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
                    if rd(self.smem, a as usize, size) != Some(v & m) {
                        self.st_changed |= 1 << lane;
                    }
                }
                if wr(self.smem, a as usize, size, v) {
                    Ok(())
                } else {
                    Err(oob("the block's shared memory", len))
                }
            }
            Space::Local => {
                let ls = self.ctx.kernel.local_size;
                if a as usize + size as usize > ls || !wr(&mut warp.local, lane * ls + a as usize, size, v) {
                    return Err(oob("the thread's local memory", ls));
                }
                Ok(())
            }
            Space::Const => Err(format!("store to constant memory at {a:#x}")),
            Space::Param | Space::Generic => {
                if a >= FPARAM_WIN {
                    let fs = self.ctx.kernel.fparam_size;
                    let o = (a - FPARAM_WIN) as usize;
                    if o + size as usize > fs || !wr(&mut warp.fparam, lane * fs + o, size, v) {
                        return Err(oob("the call parameters", fs));
                    }
                    Ok(())
                } else {
                    Err(format!("store to kernel parameter space at {a:#x}"))
                }
            }
        }
    }

    /// For a memcheck message about a global address: the allocation it lies in (or the nearest).
    pub(super) fn locate(&self, space: Space, addr: u64, len: u64) -> String {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        if space == Space::Global {
            format!("; {}", self.ctx.global.describe(a, len as usize))
        } else {
            String::new()
        }
    }
}
