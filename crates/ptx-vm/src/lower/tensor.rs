//! Lowering of tensor-core instructions: `mma`, `ldmatrix`, `stmatrix`.

use super::*;

impl KernelLowering<'_> {
    /// `ldmatrix` / `stmatrix` `.m8n8.b16` x1/x2/x4, with `.trans`.
    pub(super) fn ldmatrix_stmatrix(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let head = ins.opcode[0].as_str();
        let o = self.ops(ins, 2)?;
        let num: u8 = if has("x4") {
            4
        } else if has("x2") {
            2
        } else if has("x1") {
            1
        } else {
            return Err(bad());
        };
        if !has("m8n8") || !has("b16") {
            return Err(bad());
        }
        let (regs_op, addr_op) = if head == "ldmatrix" { (&o[0], &o[1]) } else { (&o[1], &o[0]) };
        let Operand::Vec(v) = regs_op else { return Err(bad()) };
        if v.len() != num as usize {
            return Err(bad());
        }
        let mut regs = [NO_REG; 4];
        for (i, x) in v.iter().enumerate() {
            regs[i] = if head == "ldmatrix" { self.dst(x, line)? } else { self.src(x, Ty::B32, line)? };
        }
        let (addr, off, _) = self.addr(addr_op, line)?;
        let trans = has("trans");
        Ok(if head == "ldmatrix" {
            Op::Ldmatrix { num, trans, d: regs, addr, off }
        } else {
            Op::Stmatrix { num, trans, s: regs, addr, off }
        })
    }

    pub(super) fn mma(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        // mma.sync.aligned.shape.row.col.dtype.atype.btype.ctype d, a, b, c (PTX ISA 9.7.14.5.14).
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if !has("row") || !has("col") || has("satfinite") {
            return Err(bad());
        }
        let shape = if has("m16n8k16") {
            MmaShape::M16N8K16
        } else if has("m16n8k8") {
            MmaShape::M16N8K8
        } else {
            return Err(bad());
        };
        let tys: Vec<Ty> = mods.iter().filter_map(|m| Ty::parse(m)).collect();
        let [dt, at, bt, ct] = tys[..] else { return Err(bad()) };
        let input = match (at, bt) {
            (Ty::F16, Ty::F16) => MmaInput::F16,
            (Ty::Bf16, Ty::Bf16) => MmaInput::Bf16,
            (Ty::Tf32, Ty::Tf32) if shape == MmaShape::M16N8K8 => MmaInput::Tf32,
            _ => return Err(bad()),
        };
        let acc = |t: Ty| match t {
            Ty::F32 => Some(MmaAcc::F32),
            Ty::F16 if input == MmaInput::F16 => Some(MmaAcc::F16),
            _ => None,
        };
        let (dtype, ctype) = (acc(dt).ok_or_else(bad)?, acc(ct).ok_or_else(bad)?);
        let o = self.ops(ins, 4)?;
        let (na, nb, _) = crate::semantics::mma::fragment_regs(shape, input, ctype);
        let nc = if ctype == MmaAcc::F32 { 4 } else { 2 };
        let nd = if dtype == MmaAcc::F32 { 4 } else { 2 };
        let mut regs = [[NO_REG; 4]; 4];
        for (k, (op, n)) in o.iter().take(4).zip([nd, na, nb, nc]).enumerate() {
            let Operand::Vec(v) = op else { return Err(bad()) };
            if v.len() != n {
                return unsup(format!("{full} with {} registers in operand {k} (expected {n})", v.len()), line);
            }
            for (i, x) in v.iter().enumerate() {
                regs[k][i] = if k == 0 { self.dst(x, line)? } else { self.src(x, Ty::B32, line)? };
            }
        }
        Ok(Op::Mma { shape, input, ctype, dtype, d: regs[0], a: regs[1], b: regs[2], c: regs[3] })
    }
}
