//! Lowering of `cp.async` and its groups.

use super::*;

impl KernelLowering<'_> {
    pub(super) fn cp_async(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if mods.first() != Some(&"async") || has("bulk") {
            return Err(bad());
        }
        if has("mbarrier") {
            if !has("arrive") || !has("b64") {
                return Err(bad());
            }
            let o = self.ops(ins, 1)?;
            let (addr, off, _) = self.addr(&o[0], line)?;
            let d = self.new_reg();
            let z = self.imm(0);
            return Ok(Op::Mbarrier { k: Mbar::CpAsyncArrive { noinc: has("noinc") }, d, addr, off, b: z });
        }
        if has("commit_group") {
            return Ok(Op::CpCommit);
        }
        if has("wait_all") {
            return Ok(Op::CpWait);
        }
        if has("wait_group") {
            return match ins.operands.first() {
                Some(Operand::Lit(Lit::Int(_))) => Ok(Op::CpWait),
                _ => Err(bad()),
            };
        }
        if !(has("shared") || has("shared::cta")) || !has("global") {
            return Err(bad());
        }
        let o = self.ops(ins, 3)?;
        let (dst, doff, _) = self.addr(&o[0], line)?;
        let (src, soff, _) = self.addr(&o[1], line)?;
        let size = match &o[2] {
            Operand::Lit(Lit::Int(n @ (4 | 8 | 16))) => *n as u8,
            _ => return Err(bad()),
        };
        // An optional src-size operand (bytes actually read; the rest is zero-filled), then an
        // optional cache policy, which the VM ignores (PTX ISA 9.7.9.25.3.1).
        let src_size = match o.get(3) {
            Some(op) if !has("L2::cache_hint") || o.len() == 5 => self.src(op, Ty::U32, line)?,
            _ => self.imm(size as u64),
        };
        Ok(Op::CpAsync { size, src_size, dst, doff, src, soff })
    }
}
