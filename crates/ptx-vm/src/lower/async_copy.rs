//! Lowering of `cp.async` and its groups.

use super::*;

impl KernelLowering<'_> {
    pub(super) fn cp_async(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if mods.first() != Some(&"async") {
            return Err(bad());
        }
        if has("bulk") && has("tensor") {
            return self.cp_async_bulk_tensor(ins, mods);
        }
        if has("bulk") {
            return self.cp_async_bulk(ins, mods);
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

    /// `cp.async.bulk` (PTX ISA 9.7.9.25.4.1-3), non-tensor, in a 1-CTA cluster:
    /// `.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [src], size, [mbar]` (also with
    /// `.shared::cta` as destination, PTX 8.6), `.global.shared::cta.bulk_group [dst], [src], size`,
    /// and `commit_group` / `wait_group{.read} N`. The copies happen at issue (as `cp.async` does),
    /// so the group operations have nothing left to order; the cache hint is ignored. Multicast and
    /// byte masks are refused.
    fn cp_async_bulk(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if has("commit_group") || has("wait_group") {
            return Ok(Op::Nop);
        }
        if has("multicast::cluster") || has("cp_mask") || has("prefetch") {
            return Err(bad());
        }
        let o = self.ops(ins, 3)?;
        let (dst, doff, _) = self.addr(&o[0], line)?;
        let (src, soff, _) = self.addr(&o[1], line)?;
        let size = self.src(&o[2], Ty::U32, line)?;
        let to_shared = (has("shared::cluster") || has("shared::cta"))
            && has("global")
            && has("mbarrier::complete_tx::bytes")
            && mods.iter().position(|m| m.starts_with("shared")) < mods.iter().position(|m| *m == "global");
        let to_global = has("global")
            && has("shared::cta")
            && has("bulk_group")
            && mods.iter().position(|m| *m == "global") < mods.iter().position(|m| *m == "shared::cta");
        if to_shared {
            let (mbar, moff, _) = self.addr(o.get(3).ok_or_else(bad)?, line)?;
            Ok(Op::BulkCopy { to_shared, dst, doff, src, soff, size, mbar, moff })
        } else if to_global {
            Ok(Op::BulkCopy { to_shared, dst, doff, src, soff, size, mbar: size, moff: 0 })
        } else {
            Err(bad())
        }
    }
}
