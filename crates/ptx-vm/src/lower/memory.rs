//! Lowering of `ld`/`ldu`/`st`.

use super::*;

impl KernelLowering<'_> {
    pub(super) fn ld_st(&mut self, ins: &ast::Instr, mods: &[&str], t: Ty, is_st: bool) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let has = |m: &str| mods.contains(&m);
        for m in mods {
            let ok = Ty::parse(m).is_some()
                || matches!(
                    *m,
                    "global"
                        | "shared"
                        | "local"
                        | "const"
                        | "param"
                        | "v2"
                        | "v4"
                        | "nc"
                        | "ca"
                        | "cg"
                        | "cs"
                        | "lu"
                        | "cv"
                        | "wb"
                        | "wt"
                        | "volatile"
                        | "relaxed"
                        | "acquire"
                        | "release"
                        | "weak"
                        | "cta"
                        | "gpu"
                        | "sys"
                        | "cluster"
                        | "L1::no_allocate"
                        | "L1::evict_last"
                        | "L1::evict_first"
                        | "L1::evict_normal"
                        | "L1::evict_unchanged"
                        | "L2::64B"
                        | "L2::128B"
                        | "L2::256B"
                        | "L2::cache_hint"
                        | "L2::evict_last"
                        | "L2::evict_first"
                        | "L2::evict_normal"
                        | "unified"
                        | "mmio"
                        | "shared::cta"
                );
            if !ok {
                return unsup(full.clone(), line);
            }
        }
        if t == Ty::B128 {
            return unsup(full.clone(), line);
        }
        let n: u8 = if has("v4") {
            4
        } else if has("v2") {
            2
        } else {
            1
        };
        let o = self.ops(ins, 2)?;
        let (data, addr) = if is_st { (&o[1], &o[0]) } else { (&o[0], &o[1]) };
        let (ar, off, var_space) = self.addr(addr, line)?;
        let space = if has("global") {
            Space::Global
        } else if has("shared") || has("shared::cta") {
            Space::Shared
        } else if has("local") {
            Space::Local
        } else if has("const") {
            Space::Const
        } else if has("param") {
            Space::Param
        } else {
            // A generic access to a named variable uses its generic address.
            match var_space {
                Some(Space::Global) | None => Space::Generic,
                Some(s) => s,
            }
        };
        let mut regs = [NO_REG; 4];
        let items: Vec<&Operand> = match data {
            Operand::Vec(v) => v.iter().collect(),
            d => vec![d],
        };
        if items.len() != n as usize {
            return unsup(format!("{full} with {} data operands", items.len()), line);
        }
        for (i, it) in items.iter().enumerate() {
            regs[i] = if is_st { self.src(it, t, line)? } else { self.dst(it, line)? };
        }
        if is_st {
            Ok(Op::St { space, size: t.bytes(), n, srcs: regs, addr: ar, off })
        } else {
            Ok(Op::Ld { space, size: t.bytes(), n, signed: t.signed(), dsts: regs, addr: ar, off })
        }
    }

    /// `cvta`: between a state space's addresses and generic ones (PTX ISA 6.4.1).
    pub(super) fn cvta(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = self.ops(ins, 2)?;
        let to = has("to");
        let win = if has("shared") {
            SHARED_WIN
        } else if has("local") {
            LOCAL_WIN
        } else if has("const") {
            CONST_WIN
        } else if has("param") || has("global") {
            0
        } else {
            return Err(bad());
        };
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], Ty::U64, line)?;
        let w = self.imm(win);
        let f = if has("u32") {
            if to {
                f2!(|a, b| a.wrapping_sub(b) & 0xffff_ffff)
            } else {
                f2!(|a, b| (a & 0xffff_ffff).wrapping_add(b))
            }
        } else if to {
            f2!(|a, b| if a >= b { a.wrapping_sub(b) } else { a })
        } else {
            f2!(|a, b| a.wrapping_add(b))
        };
        Ok(Op::Bin { f, d, a, b: w, flags: 0 })
    }

    /// `isspacep`: whether a generic address lies in a state space.
    pub(super) fn isspacep(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        // isspacep.space p, a: whether generic address a lies in the space (PTX ISA 9.7.9.18).
        let o = self.ops(ins, 2)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], Ty::U64, line)?;
        let f: F1 = match mods.first().copied() {
            Some("global") => f1!(|a| (a < SHARED_WIN) as u64),
            Some("shared") | Some("shared::cta") => f1!(|a| ((SHARED_WIN..LOCAL_WIN).contains(&a)) as u64),
            Some("local") => f1!(|a| ((LOCAL_WIN..CONST_WIN).contains(&a)) as u64),
            Some("const") => f1!(|a| ((CONST_WIN..PARAM_WIN).contains(&a)) as u64),
            Some("param") => f1!(|a| (a >= PARAM_WIN) as u64),
            _ => return Err(bad()),
        };
        Ok(Op::Un { f, d, a, flags: 0 })
    }
}
