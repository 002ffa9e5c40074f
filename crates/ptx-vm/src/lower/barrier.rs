//! Lowering of CTA barriers and mbarrier operations.

use super::*;

impl KernelLowering<'_> {
    pub(super) fn mbarrier(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        // PTX ISA 9.7.13.15 (mbarrier), with the sm_90 transaction-count forms (expect_tx,
        // complete_tx, arrive.expect_tx) and the `.shared::cluster` forms of a 1-CTA cluster,
        // whose shared::cluster window is the CTA's own shared memory.
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        const MBAR_MODS: &[&str] = &[
            "init",
            "inval",
            "arrive",
            "arrive_drop",
            "expect_tx",
            "complete_tx",
            "noComplete",
            "test_wait",
            "try_wait",
            "parity",
            "pending_count",
            "shared",
            "shared::cta",
            "shared::cluster",
            "release",
            "acquire",
            "relaxed",
            "cta",
            "cluster",
        ];
        check_mods(mods, MBAR_MODS, false, line, &full)?;
        let z = self.imm(0);
        let op = |k, d, (addr, off, _): (R, i64, Option<Space>), b| Op::Mbarrier { k, d, addr, off, b };
        if has("init") {
            let o = self.ops(ins, 2)?;
            let a = self.addr(&o[0], line)?;
            let b = self.src(&o[1], Ty::U32, line)?;
            Ok(op(Mbar::Init, self.new_reg(), a, b))
        } else if has("inval") {
            let a = self.addr(&self.ops(ins, 1)?[0], line)?;
            Ok(op(Mbar::Inval, self.new_reg(), a, z))
        } else if has("arrive") || has("arrive_drop") {
            let tx = has("expect_tx");
            let o = self.ops(ins, if tx { 3 } else { 2 })?;
            let d = self.dst(&o[0], line)?;
            let a = self.addr(&o[1], line)?;
            let b = match o.get(2) {
                Some(c) => self.src(c, Ty::U32, line)?,
                None => self.imm(1),
            };
            let k =
                Mbar::Arrive { drop: has("arrive_drop"), no_complete: has("noComplete"), tx, relaxed: has("relaxed") };
            Ok(op(k, d, a, b))
        } else if has("expect_tx") || has("complete_tx") {
            let o = self.ops(ins, 2)?;
            let a = self.addr(&o[0], line)?;
            let b = self.src(&o[1], Ty::U32, line)?;
            Ok(op(Mbar::Tx { complete: has("complete_tx") }, self.new_reg(), a, b))
        } else if has("test_wait") || has("try_wait") {
            let o = self.ops(ins, 3)?;
            // try_wait's optional suspend-time hint bounds how long a thread may be suspended;
            // the VM suspends until the phase completes or nothing else in the block can move
            // (see `Block::time_out_mbarrier_waits`), so the hint has no effect.
            if o.len() > 3 && !has("try_wait") {
                return Err(bad());
            }
            let d = self.dst(&o[0], line)?;
            let a = self.addr(&o[1], line)?;
            let b = self.src(&o[2], Ty::B64, line)?;
            let k = Mbar::TestWait { parity: has("parity"), blocking: has("try_wait"), relaxed: has("relaxed") };
            Ok(op(k, d, a, b))
        } else if has("pending_count") {
            let o = self.ops(ins, 2)?;
            let d = self.dst(&o[0], line)?;
            let b = self.src(&o[1], Ty::B64, line)?;
            Ok(Op::Mbarrier { k: Mbar::PendingCount, d, addr: z, off: 0, b })
        } else {
            Err(bad())
        }
    }

    pub(super) fn bar(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = &ins.operands;
        if has("warp") {
            let mask = self.src(o.first().ok_or_else(bad)?, Ty::B32, line)?;
            return Ok(Op::BarWarp { mask });
        }
        let kind = if has("sync") {
            BarKind::Sync
        } else if has("arrive") {
            BarKind::Arrive
        } else if has("red") {
            if has("popc") {
                BarKind::RedPopc
            } else if has("and") {
                BarKind::RedAnd
            } else if has("or") {
                BarKind::RedOr
            } else {
                return Err(bad());
            }
        } else if mods.is_empty() || (mods.len() == 1 && has("cta")) {
            BarKind::Sync
        } else {
            return Err(bad());
        };
        let red = matches!(kind, BarKind::RedPopc | BarKind::RedAnd | BarKind::RedOr);
        let (d, rest) = if red { (self.dst(o.first().ok_or_else(bad)?, line)?, &o[1..]) } else { (NO_REG, &o[..]) };
        let id = self.src(rest.first().ok_or_else(bad)?, Ty::U32, line)?;
        let (count, p, pneg) = if red {
            if rest.len() == 3 {
                let c = self.src(&rest[1], Ty::U32, line)?;
                let (p, n) = self.pred_src(&rest[2], line)?;
                (c, p, n)
            } else {
                let (p, n) = self.pred_src(rest.get(1).ok_or_else(bad)?, line)?;
                (NO_REG, p, n)
            }
        } else {
            let c = match rest.get(1) {
                Some(op) => self.src(op, Ty::U32, line)?,
                None => NO_REG,
            };
            (c, NO_REG, false)
        };
        if kind == BarKind::Arrive && count == NO_REG {
            return unsup(format!("{full} without a thread count"), line);
        }
        Ok(Op::Bar { kind, id, count, d, p, pneg })
    }
}
