//! Lowering of calls: the `.param` copy-in/copy-out sequence, indirect calls, and the calls the VM
//! implements itself (`vprintf`, `malloc`, `free`, `__assertfail`); and `griddepcontrol`.

use super::*;

impl KernelLowering<'_> {
    pub(super) fn call(&mut self, ins: &ast::Instr) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: format!("{full} with these operands"), line, source: None };
        let o = &ins.operands;
        let (rets, rest): (&[Operand], &[Operand]) = match o.first() {
            Some(Operand::List(r)) => (r.as_slice(), &o[1..]),
            _ => (&[], &o[..]),
        };
        let Some(Operand::Name(fname)) = rest.first() else { return Err(bad()) };
        let args: &[Operand] = match rest.get(1) {
            Some(Operand::List(a)) => a.as_slice(),
            None => &[],
            _ => return unsup(format!("indirect call `{full}`"), line),
        };
        if let Some(Sym::Reg(f)) = self.lookup(fname) {
            return self.call_indirect(f, rets, args, line);
        }
        let fi = match self.syms.get(fname) {
            Some(ModSym::Func(i)) => *i,
            _ => {
                if self.lookup(fname).is_some() {
                    return unsup(format!("indirect call through `{fname}`"), line);
                }
                return Err(VmError::Undefined { name: fname.clone(), line });
            }
        };
        // CUDA's device-side assert calls __assertfail, which prints the message and traps.
        if fname == "__assertfail" && self.m.functions[fi].body.is_none() {
            let mut arg = |i: usize| match args.get(i) {
                Some(Operand::Name(n)) => self.fparam_off(n, line).ok(),
                _ => None,
            };
            return Ok(Op::AssertFail { message: arg(0), line: arg(2) });
        }
        // The device heap (CUDA's malloc/free in device code): see `Op::Malloc`.
        if self.m.functions[fi].body.is_none() && (fname == "malloc" || fname == "free") {
            let arg = |s: &mut Self, o: Option<&Operand>| match o {
                Some(Operand::Name(n)) => s.fparam_off(n, line),
                _ => Err(bad()),
            };
            if fname == "free" {
                return Ok(Op::Nop);
            }
            let size = arg(self, args.first())?;
            let ret = arg(self, rets.first())?;
            return Ok(Op::Malloc { size, ret });
        }
        // CUDA's device printf (CUDA C++ Programming Guide, "Formatted Output").
        if fname == "vprintf" && self.m.functions[fi].body.is_none() {
            return self.printf_call(rets, args, line);
        }
        if self.m.functions[fi].body.is_none() {
            return unsup(format!("call of `{fname}`, which has no body in this module"), line);
        }
        let (fr, fp) = self.layout_func(fi);
        let mut copy_in = Vec::new();
        for (a, &(dst, len)) in args.iter().zip(&fp) {
            let Operand::Name(n) = a else { return Err(bad()) };
            let src = self.fparam_off(n, line)?;
            let len = len.min(self.fparam_decl.get(&src).copied().unwrap_or(len));
            copy_in.push(Copy { src, dst, len });
        }
        let mut copy_out = Vec::new();
        for (r, &(src, len)) in rets.iter().zip(&fr) {
            let Operand::Name(n) = r else { return Err(bad()) };
            let dst = self.fparam_off(n, line)?;
            let len = len.min(self.fparam_decl.get(&dst).copied().unwrap_or(len));
            copy_out.push(Copy { src, dst, len });
        }
        self.call_patches.push((self.code.len(), fi));
        Ok(Op::Call { target: 0, copy_in: copy_in.into(), copy_out: copy_out.into() })
    }

    /// `call (ret), vprintf, (fmt, args)`: both arguments are 64-bit generic pointers in `.param`
    /// variables of the call sequence; the result is a 32-bit int.
    pub(super) fn printf_call(&mut self, rets: &[Operand], args: &[Operand], line: u32) -> Result<Op> {
        let mut off = |o: Option<&Operand>, size: u32| -> Result<u32> {
            let Some(Operand::Name(n)) = o else {
                return unsup("a vprintf call without its two .param arguments", line);
            };
            let at = self.fparam_off(n, line)?;
            if self.fparam_decl.get(&at).is_some_and(|&s| s < size) {
                return unsup(format!("a vprintf argument `{n}` narrower than {size} bytes"), line);
            }
            Ok(at)
        };
        let fmt = off(args.first(), 8)?;
        let arg = off(args.get(1), 8)?;
        let ret = if rets.is_empty() { u32::MAX } else { off(rets.first(), 4)? };
        if args.len() != 2 || rets.len() > 1 {
            return unsup("a vprintf call with other than (fmt, args) arguments", line);
        }
        Ok(Op::Printf { fmt, args: arg, ret })
    }

    /// `call (rets), %f, (args), prototype;` (PTX ISA 9.7.12.2 `call`, indirect form): the possible
    /// callees are the functions whose address the module takes and whose parameter and result
    /// counts match the call's; each is lowered into this kernel. Calling anything else (a null or
    /// stray pointer, an extern function) is a fault when it happens.
    pub(super) fn call_indirect(&mut self, f: R, rets: &[Operand], args: &[Operand], line: u32) -> Result<Op> {
        let mut targets = Vec::new();
        for fi in address_taken(self.m) {
            let func = &self.m.functions[fi];
            if func.body.is_none() || func.params.len() != args.len() || func.rets.len() != rets.len() {
                continue;
            }
            let (fr, fp) = self.layout_func(fi);
            let mut copy_in = Vec::new();
            for (a, &(dst, len)) in args.iter().zip(&fp) {
                let Operand::Name(n) = a else { return unsup("an indirect call argument that is not a .param", line) };
                let src = self.fparam_off(n, line)?;
                let len = len.min(self.fparam_decl.get(&src).copied().unwrap_or(len));
                copy_in.push(Copy { src, dst, len });
            }
            let mut copy_out = Vec::new();
            for (r, &(src, len)) in rets.iter().zip(&fr) {
                let Operand::Name(n) = r else { return unsup("an indirect call result that is not a .param", line) };
                let dst = self.fparam_off(n, line)?;
                let len = len.min(self.fparam_decl.get(&dst).copied().unwrap_or(len));
                copy_out.push(Copy { src, dst, len });
            }
            self.indirect_patches.push((self.code.len(), targets.len(), fi));
            targets.push(IndirectTarget {
                addr: func_addr(fi),
                target: 0,
                copy_in: copy_in.into(),
                copy_out: copy_out.into(),
            });
        }
        Ok(Op::CallIndirect { f, targets: targets.into() })
    }

    pub(super) fn fparam_off(&mut self, name: &str, line: u32) -> Result<u32> {
        if let Some(Sym::Var(r, Space::Param)) = self.lookup(name) {
            if let Some(&(_, Init::Val(v))) = self.init.iter().find(|x| x.0 == r) {
                if v >= FPARAM_WIN {
                    return Ok((v - FPARAM_WIN) as u32);
                }
            }
        }
        unsup(format!("call argument `{name}` (expected a .param variable of the call sequence)"), line)
    }

    /// `griddepcontrol.launch_dependents` / `griddepcontrol.wait` (PTX ISA 8.0+, sm_90; "Parallel
    /// Synchronization and Communication Instructions: griddepcontrol"). Programmatic dependent
    /// launch only lets a dependent grid start early and makes it wait for its primary grid; the VM
    /// runs launches one after the other, every primary grid has completed and flushed its memory
    /// before a dependent starts, so both are no-ops. Any other action is refused.
    pub(super) fn griddepcontrol(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let full = ins.opcode.join(".");
        match mods {
            ["launch_dependents"] | ["wait"] if ins.operands.is_empty() => Ok(Op::Nop),
            _ => unsup(full, ins.line),
        }
    }
}
