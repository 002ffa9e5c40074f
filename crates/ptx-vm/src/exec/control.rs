//! Calls, returns, traps and asserts. `bra` and `exit` stay in the dispatch loop, which owns the
//! group's pc and the scheduler's state.

use super::*;

/// Where a group goes after a call or return.
pub(super) enum Flow {
    /// The whole group goes on at this pc.
    Goto(u32),
    /// The group split up or some of its lanes left: the warp picks its next group.
    Select,
}

impl Block<'_, '_> {
    /// A failed device assert (`__assertfail`) ends the launch with its message.
    #[inline(always)]
    pub(super) fn exec_assert_fail(&self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::AssertFail { message, line } = op else { return Ok(()) };
        if exec != 0 {
            let l = exec.trailing_zeros();
            let what = self.assert_text(warp, l as usize, *message, *line);
            return Err(fault(pc, Some(l), format!("device-side assert failed (__assertfail){what}")));
        }
        Ok(())
    }

    /// `trap` ends the launch.
    #[inline(always)]
    pub(super) fn exec_trap(&self, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Trap = op else { return Ok(()) };
        if exec != 0 {
            return Err(fault(pc, Some(exec.trailing_zeros()), "trap"));
        }
        Ok(())
    }

    /// An instruction the VM refuses, reached at run time.
    #[inline(always)]
    pub(super) fn exec_unsupported(&self, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Unsupported { what } = op else { return Ok(()) };
        // A launch refuses a kernel that can reach one; this is a second line of defence.
        if exec != 0 {
            let names = &self.ctx.kernel.names;
            let what = names.get(*what as usize).map_or("?", |s| s.as_str());
            return Err(fault(pc, Some(exec.trailing_zeros()), format!("not supported by the VM: {what}")));
        }
        Ok(())
    }

    /// `call`: copies the arguments in and pushes the return pc.
    #[inline(always)]
    pub(super) fn exec_call(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32, op: &Op) -> Res<Flow> {
        let Op::Call { target, copy_in, copy_out: _ } = op else { return Ok(Flow::Goto(pc + 1)) };
        let fs = self.ctx.kernel.fparam_size;
        for l in lanes_of(exec) {
            for cp in copy_in.iter() {
                let base = l * fs;
                warp.fparam
                    .copy_within(base + cp.src as usize..base + (cp.src + cp.len) as usize, base + cp.dst as usize);
            }
            if warp.stack[l].len() > 1024 {
                return Err(fault(pc, Some(l as u32), "call stack overflow"));
            }
            warp.stack[l].push(pc);
        }
        if exec == mask {
            Ok(Flow::Goto(*target))
        } else {
            for l in lanes_of(mask) {
                warp.pc[l] = if exec >> l & 1 == 1 { *target } else { pc + 1 };
            }
            Ok(Flow::Select)
        }
    }

    /// A `call` through a function pointer.
    #[inline(always)]
    pub(super) fn exec_call_indirect(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32, op: &Op) -> Res<Flow> {
        let Op::CallIndirect { f, targets } = op else { return Ok(Flow::Goto(pc + 1)) };
        let fs = self.ctx.kernel.fparam_size;
        let mut first = None;
        let mut same = true;
        for l in lanes_of(exec) {
            let a = warp.regs[*f as usize][l];
            let Some(t) = targets.iter().find(|t| t.addr == a) else {
                let msg = format!(
                    "indirect call through {a:#x}, which is not the address of a function of this module \
                     with this call's parameters"
                );
                return Err(fault(pc, Some(l as u32), msg));
            };
            let base = l * fs;
            for cp in t.copy_in.iter() {
                warp.fparam
                    .copy_within(base + cp.src as usize..base + (cp.src + cp.len) as usize, base + cp.dst as usize);
            }
            if warp.stack[l].len() > 1024 {
                return Err(fault(pc, Some(l as u32), "call stack overflow"));
            }
            warp.stack[l].push(pc);
            warp.pc[l] = t.target;
            same &= first.is_none_or(|x| x == t.target);
            first = Some(t.target);
        }
        match first {
            Some(t) if same && exec == mask => Ok(Flow::Goto(t)),
            None => Ok(Flow::Goto(pc + 1)),
            Some(_) => {
                for l in lanes_of(mask & !exec) {
                    warp.pc[l] = pc + 1;
                }
                Ok(Flow::Select)
            }
        }
    }

    /// `ret`: returns to the caller, copying results out, or leaves the kernel (the lane exits).
    #[inline(always)]
    pub(super) fn exec_ret(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32) -> Res<Flow> {
        let code = &self.ctx.kernel.code[..];
        if exec == 0 {
            return Ok(Flow::Goto(pc + 1));
        }
        let fs = self.ctx.kernel.fparam_size;
        let mut same = true;
        let mut next = u32::MAX;
        for l in lanes_of(mask) {
            if exec >> l & 1 == 0 {
                warp.pc[l] = pc + 1;
                same = false;
                continue;
            }
            match warp.stack[l].pop() {
                None => {
                    warp.exited |= 1 << l;
                    same = false;
                }
                Some(call_pc) => {
                    let copy_out = match code.get(call_pc as usize).map(|i| &i.op) {
                        Some(Op::Call { copy_out, .. }) => Some(copy_out),
                        // The caller's pointer register still names the callee: a
                        // callee never writes its caller's registers (no recursion).
                        Some(Op::CallIndirect { f, targets }) => {
                            let a = warp.regs[*f as usize][l];
                            targets.iter().find(|t| t.addr == a).map(|t| &t.copy_out)
                        }
                        _ => None,
                    };
                    if let Some(copy_out) = copy_out {
                        let base = l * fs;
                        for cp in copy_out.iter() {
                            warp.fparam.copy_within(
                                base + cp.src as usize..base + (cp.src + cp.len) as usize,
                                base + cp.dst as usize,
                            );
                        }
                    }
                    warp.pc[l] = call_pc + 1;
                    if next == u32::MAX {
                        next = call_pc + 1;
                    } else if next != call_pc + 1 {
                        same = false;
                    }
                }
            }
        }
        if !same {
            // A `ret` with no caller frame left the kernel: those threads exited.
            self.lanes_exited(warp.id, warp.exited);
        }
        if same {
            return Ok(Flow::Goto(next));
        }
        Ok(Flow::Select)
    }

    /// `: `message`` (and `, line N`) of a failed device assert, read from the call's arguments:
    /// the message is a C string in a module `.global` (what nvcc makes of the asserted expression).
    pub(super) fn assert_text(&self, warp: &Warp, lane: usize, message: Option<u32>, line: Option<u32>) -> String {
        let fs = self.ctx.kernel.fparam_size;
        let arg = |off: u32, n: u8| rd(&warp.fparam, lane * fs + off as usize, n);
        let mut out = String::new();
        if let Some(addr) = message.and_then(|o| arg(o, 8)) {
            let (space, a) = generic(addr);
            let mut bytes = Vec::new();
            if space == Space::Global {
                while bytes.len() < 512 {
                    let Some((buf, off)) = self.ctx.global.find(a + bytes.len() as u64, 1) else { break };
                    match buf.load(off, 1) as u8 {
                        0 => break,
                        b => bytes.push(b),
                    }
                }
            }
            if !bytes.is_empty() {
                out = format!(": `{}`", String::from_utf8_lossy(&bytes));
            }
        }
        if let Some(n) = line.and_then(|o| arg(o, 4)) {
            out.push_str(&format!(", line {n}"));
        }
        out
    }
}
