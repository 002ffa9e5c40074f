//! Device runtime services: `malloc`, `printf`, clocks.

use super::*;

/// `%clock`, `%clock64` and `%globaltimer`.
#[inline(always)]
pub(super) fn exec_clock(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Clock { d, which } = op else { return };
    // One tick per warp instruction, and the timer as if at 1 GHz: monotonic
    // per warp and deterministic.
    let t = warp.clock;
    let v = match which {
        ClockReg::Clock64 | ClockReg::Timer => t,
        ClockReg::ClockLo | ClockReg::TimerLo => t & 0xffff_ffff,
        ClockReg::ClockHi | ClockReg::TimerHi => t >> 32,
    };
    for l in lanes_of(exec) {
        warp.regs[*d as usize][l] = v;
    }
}

impl Block<'_, '_> {
    /// Device `malloc`, from the launch's heap.
    #[inline(always)]
    pub(super) fn exec_malloc(&mut self, warp: &mut Warp, exec: u32, op: &Op) {
        let Op::Malloc { size, ret } = op else { return };
        let fs = self.ctx.kernel.fparam_size;
        for l in lanes_of(exec) {
            let n = rd(&warp.fparam, l * fs + *size as usize, 8).unwrap_or(0);
            let p = self.ctx.heap.map_or(0, |h| h.malloc(n));
            wr(&mut warp.fparam, l * fs + *ret as usize, 8, p);
        }
    }

    /// Device `printf` (`vprintf`), one lane after the other.
    #[inline(always)]
    pub(super) fn exec_printf(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Printf { fmt, args, ret } = op else { return Ok(()) };
        for l in lanes_of(exec) {
            let n = self.printf(warp, l, *fmt, *args).map_err(|m| fault(pc, Some(l as u32), m))?;
            if *ret != u32::MAX {
                let at = l * self.ctx.kernel.fparam_size + *ret as usize;
                if let Some(b) = warp.fparam.get_mut(at..at + 4) {
                    b.copy_from_slice(&n.to_le_bytes());
                }
            }
        }
        Ok(())
    }

    /// One lane's `vprintf(fmt, args)`: reads the format string and the argument buffer through
    /// generic addresses, formats, appends to the block's output. Returns what `printf` returns.
    pub(super) fn printf(&mut self, warp: &Warp, lane: usize, fmt_off: u32, args_off: u32) -> Result<i32, String> {
        use crate::semantics::printf as pf;
        let fs = self.ctx.kernel.fparam_size;
        let param = |off: u32| -> u64 {
            let at = lane * fs + off as usize;
            warp.fparam.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        let (fmt_ptr, args_ptr) = (param(fmt_off), param(args_off));
        if fmt_ptr == 0 {
            return Ok(-1);
        }
        let fmt = self.c_string(warp, lane, fmt_ptr, "printf format string")?;
        let need = pf::args_size(&fmt);
        let mut buf = Vec::with_capacity(need);
        for i in 0..need as u64 {
            let b = self.load(warp, lane, Space::Generic, args_ptr.wrapping_add(i), 1);
            buf.push(b.map_err(|m| format!("printf argument buffer: {m}"))? as u8);
        }
        let mut err = None;
        let out = pf::format(&fmt, &buf, &mut |p| match self.c_string(warp, lane, p, "printf %s argument") {
            Ok(s) => Some(s),
            Err(e) => {
                err.get_or_insert(e);
                None
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let text = String::from_utf8_lossy(&out.text);
        pf::append_capped(&mut self.printf, &mut self.printf_dropped, &text, crate::machine::PRINTF_BUFFER_BYTES);
        Ok(out.returned)
    }

    /// A NUL-terminated string at a generic address, at most 1 MiB long.
    pub(super) fn c_string(&self, warp: &Warp, lane: usize, ptr: u64, what: &str) -> Result<Vec<u8>, String> {
        let mut s = Vec::new();
        for i in 0..crate::machine::PRINTF_BUFFER_BYTES as u64 {
            let b =
                self.load(warp, lane, Space::Generic, ptr.wrapping_add(i), 1).map_err(|m| format!("{what}: {m}"))?;
            if b == 0 {
                return Ok(s);
            }
            s.push(b as u8);
        }
        Err(format!("{what} at {ptr:#x} has no terminating NUL in its first 1 MiB"))
    }
}
