//! Lowering of warp collectives: `shfl`, `vote`, `match`, `redux`, `elect`.

use super::*;

impl KernelLowering<'_> {
    /// `shfl.sync` (PTX ISA 9.7.8.6).
    pub(super) fn shfl(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = self.ops(ins, 5)?;
        let mode = match () {
            _ if has("up") => Shfl::Up,
            _ if has("down") => Shfl::Down,
            _ if has("bfly") => Shfl::Bfly,
            _ if has("idx") => Shfl::Idx,
            _ => return Err(bad()),
        };
        if !has("sync") {
            return unsup(format!("{full} (only shfl.sync exists on sm_70+)"), line);
        }
        let (d, p) = self.dst_pair(&o[0], line)?;
        let a = self.src(&o[1], Ty::B32, line)?;
        let b = self.src(&o[2], Ty::B32, line)?;
        let c = self.src(&o[3], Ty::B32, line)?;
        let mask = self.src(&o[4], Ty::B32, line)?;
        Ok(Op::ShflSync { mode, d, p, a, b, c, mask })
    }

    /// `vote.sync` (PTX ISA 9.7.8.4).
    pub(super) fn vote(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = self.ops(ins, 3)?;
        let mode = match () {
            _ if has("all") => Vote::All,
            _ if has("any") => Vote::Any,
            _ if has("uni") => Vote::Uni,
            _ if has("ballot") => Vote::Ballot,
            _ => return Err(bad()),
        };
        if !has("sync") {
            return unsup(format!("{full} (only vote.sync exists on sm_70+)"), line);
        }
        let d = self.dst(&o[0], line)?;
        let (a, neg) = self.pred_src(&o[1], line)?;
        let mask = self.src(&o[2], Ty::B32, line)?;
        Ok(Op::VoteSync { mode, d, a, neg, mask })
    }

    /// `match.any.sync` / `match.all.sync`.
    pub(super) fn match_sync(&mut self, ins: &ast::Instr, mods: &[&str], ty: Option<Ty>) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = self.ops(ins, 3)?;
        let (d, p) = self.dst_pair(&o[0], line)?;
        let t = ty.ok_or_else(bad)?;
        let a = self.src(&o[1], t, line)?;
        let mask = self.src(&o[2], Ty::B32, line)?;
        Ok(Op::MatchSync { all: has("all"), wide: t.bytes() == 8, d, p, a, mask })
    }

    /// `redux.sync`.
    pub(super) fn redux(&mut self, ins: &ast::Instr, mods: &[&str], ty: Option<Ty>) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = self.ops(ins, 3)?;
        let t = ty.ok_or_else(bad)?;
        let op = match () {
            _ if has("add") => Redux::Add,
            _ if has("min") && t == Ty::S32 => Redux::MinS,
            _ if has("max") && t == Ty::S32 => Redux::MaxS,
            _ if has("min") && t == Ty::U32 => Redux::MinU,
            _ if has("max") && t == Ty::U32 => Redux::MaxU,
            _ if has("and") => Redux::And,
            _ if has("or") => Redux::Or,
            _ if has("xor") => Redux::Xor,
            _ => return Err(bad()),
        };
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], t, line)?;
        let mask = self.src(&o[2], Ty::B32, line)?;
        Ok(Op::ReduxSync { op, d, a, mask })
    }

    /// `elect.sync`.
    pub(super) fn elect(&mut self, ins: &ast::Instr) -> Result<Op> {
        let line = ins.line;
        let o = self.ops(ins, 2)?;
        let (d, p) = self.dst_pair(&o[0], line)?;
        let mask = self.src(&o[1], Ty::B32, line)?;
        Ok(Op::ElectSync { d, p, mask })
    }
}
