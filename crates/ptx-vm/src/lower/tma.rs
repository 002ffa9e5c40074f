//! Lowering of `cp.async.bulk.tensor` and `cp.async.bulk.prefetch.tensor`.

use super::*;

impl KernelLowering<'_> {
    /// `cp.async.bulk.tensor.Nd` in tile mode (PTX ISA 9.7.9.25.5.1), in a 1-CTA cluster:
    /// `.shared::cluster.global{.tile}.mbarrier::complete_tx::bytes{.L2::cache_hint} [dst],
    /// [map, {c0, ...}], [mbar]{, policy}` (also with `.shared::cta` as destination, PTX 8.6) and
    /// `.global.shared::cta{.tile}.bulk_group{.L2::cache_hint} [map, {c0, ...}], [src]{, policy}`.
    /// The map operand is a generic address of a `.param` (`__grid_constant__`) or global map,
    /// held in a register or named as the parameter. `cp.async.bulk.prefetch.tensor` only warms
    /// the L2 and does nothing here. Im2col, multicast and CTA-group forms are refused by name.
    pub(super) fn cp_async_bulk_tensor(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let rank = match mods.iter().find_map(|m| m.strip_suffix('d').and_then(|n| n.parse::<u8>().ok())) {
            Some(r @ 1..=5) => r,
            _ => return Err(bad()),
        };
        if has("prefetch") {
            return Ok(Op::Nop);
        }
        let pos = |m: &str| mods.iter().position(|x| *x == m);
        let to_shared = (has("shared::cluster") || has("shared::cta"))
            && has("mbarrier::complete_tx::bytes")
            && pos("global") > mods.iter().position(|m| m.starts_with("shared"));
        let to_global = has("shared::cta") && has("bulk_group") && pos("global") < pos("shared::cta");
        let known = |m: &&str| {
            let dims = m.len() == 2 && m.ends_with('d');
            dims || matches!(
                *m,
                "async"
                    | "bulk"
                    | "tensor"
                    | "shared::cluster"
                    | "shared::cta"
                    | "global"
                    | "tile"
                    | "mbarrier::complete_tx::bytes"
                    | "bulk_group"
                    | "L2::cache_hint"
            )
        };
        if !(to_shared || to_global) || !mods.iter().all(known) {
            return Err(bad());
        }
        let o = self.ops(ins, if to_shared { 3 } else { 2 })?;
        let (map_op, smem_op) = if to_shared { (&o[1], &o[0]) } else { (&o[0], &o[1]) };
        let Operand::Bracket(parts) = map_op else {
            return unsup(format!("tensor-map operand {map_op:?} (expected [map, {{coordinates}}])"), line);
        };
        let (map, map_off) = match parts.first() {
            Some(Operand::Name(n)) => match self.lookup(n) {
                Some(Sym::Reg(r)) => (r, 0),
                _ => {
                    let (r, _) = self.var_addr(n).ok_or_else(|| VmError::Undefined { name: n.clone(), line })?;
                    (r, 0)
                }
            },
            Some(a @ Operand::Addr { .. }) => {
                let (r, off, _) = self.addr(a, line)?;
                (r, off)
            }
            other => return unsup(format!("tensor-map operand {other:?}"), line),
        };
        let coords_ops = match parts.get(1) {
            Some(Operand::Vec(v)) if v.len() == rank as usize && parts.len() == 2 => v,
            _ => {
                return Err(VmError::Parse {
                    line,
                    message: format!("`{full}` needs [map, {{{rank} coordinates}}] as its tensor operand"),
                })
            }
        };
        let zero = self.imm(0);
        let mut coords = [zero; 5];
        for (c, op) in coords.iter_mut().zip(coords_ops) {
            *c = self.src(op, Ty::S32, line)?;
        }
        let (smem, smem_off, _) = self.addr(smem_op, line)?;
        let (mbar, mbar_off) = if to_shared {
            let (r, off, _) = self.addr(&o[2], line)?;
            (r, off)
        } else {
            (zero, 0)
        };
        Ok(Op::TensorCopy(Box::new(TensorCopy {
            to_shared,
            rank,
            smem,
            smem_off,
            map,
            map_off,
            coords,
            mbar,
            mbar_off,
        })))
    }
}
