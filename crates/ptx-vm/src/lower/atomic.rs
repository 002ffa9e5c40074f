//! Lowering of `atom` and `red`.

use super::*;

impl KernelLowering<'_> {
    pub(super) fn atom(&mut self, ins: &ast::Instr, mods: &[&str], is_red: bool) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let space = if has("global") {
            Space::Global
        } else if has("shared") || has("shared::cta") {
            Space::Shared
        } else {
            Space::Generic
        };
        let op = match () {
            _ if has("add") => AtomOp::Add,
            _ if has("min") => AtomOp::Min,
            _ if has("max") => AtomOp::Max,
            _ if has("exch") => AtomOp::Exch,
            _ if has("cas") => AtomOp::Cas,
            _ if has("and") => AtomOp::And,
            _ if has("or") => AtomOp::Or,
            _ if has("xor") => AtomOp::Xor,
            _ if has("inc") => AtomOp::Inc,
            _ if has("dec") => AtomOp::Dec,
            _ => return Err(bad()),
        };
        const ATOM_MODS: &[&str] = &[
            "global",
            "shared",
            "shared::cta",
            "relaxed",
            "acquire",
            "release",
            "acq_rel",
            "cta",
            "gpu",
            "sys",
            "noftz",
            "L2::cache_hint",
            "add",
            "min",
            "max",
            "exch",
            "cas",
            "and",
            "or",
            "xor",
            "inc",
            "dec",
        ];
        check_mods(mods, ATOM_MODS, false, line, &full)?;
        let t = mods.iter().filter_map(|m| Ty::parse(m)).next_back().ok_or_else(bad)?;
        let ty = match t {
            Ty::U32 => AtomTy::U32,
            Ty::S32 => AtomTy::S32,
            Ty::U64 => AtomTy::U64,
            Ty::S64 => AtomTy::S64,
            Ty::F32 => AtomTy::F32,
            Ty::F64 => AtomTy::F64,
            Ty::F16x2 => AtomTy::F16x2,
            Ty::Bf16x2 => AtomTy::Bf16x2,
            Ty::B32 => AtomTy::B32,
            Ty::B64 => AtomTy::B64,
            Ty::B16 | Ty::U16 if op == AtomOp::Cas => AtomTy::B16,
            _ => return Err(bad()),
        };
        let o = &ins.operands;
        let (d, rest) = if is_red {
            (self.new_reg(), &o[..])
        } else {
            let Some(d0) = o.first() else { return Err(bad()) };
            (self.dst(d0, line)?, &o[1..])
        };
        if rest.len() < 2 {
            return Err(bad());
        }
        let (addr, off, var_space) = self.addr(&rest[0], line)?;
        let space = match (space, var_space) {
            (Space::Generic, Some(Space::Shared)) => Space::Shared,
            (s, _) => s,
        };
        let b = self.src(&rest[1], t, line)?;
        let c = if op == AtomOp::Cas { self.src(rest.get(2).ok_or_else(bad)?, t, line)? } else { self.imm(0) };
        Ok(Op::Atom { space, op, ty, d, addr, off, b, c })
    }
}
