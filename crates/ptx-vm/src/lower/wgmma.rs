//! Lowering of `wgmma` (PTX ISA 9.7.15, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate").

use super::*;
use crate::semantics::mma::MmaInput;

impl KernelLowering<'_> {
    /// `wgmma.fence` is accepted (the VM reads the operands at issue); `commit_group` and
    /// `wait_group` group and retire the pending `mma_async`s. `mma_async` is lowered for
    /// m64nNk16 with f16/bf16 inputs and f32 accumulators or f16 inputs and f16 accumulators, A from registers or a descriptor and B
    /// from a descriptor, each descriptor operand K-major (imm-trans 0) or MN-major (imm-trans 1);
    /// imm-trans-a with A in registers (which the ISA forbids) and other forms are refused by name.
    pub(super) fn wgmma(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if !has("sync") || !has("aligned") {
            return Err(bad());
        }
        if has("fence") {
            return Ok(Op::Nop);
        }
        if has("commit_group") {
            return Ok(Op::WgmmaCommit);
        }
        if has("wait_group") {
            return match ins.operands.first() {
                Some(Operand::Lit(Lit::Int(n))) if (0..=u32::MAX as i64).contains(&(*n as i64)) => {
                    Ok(Op::WgmmaWait { n: *n as u32 })
                }
                _ => Err(bad()),
            };
        }
        if !has("mma_async") || has("sp") {
            return Err(bad());
        }
        let n = mods
            .iter()
            .find_map(|m| {
                m.strip_prefix("m64n").and_then(|r| r.strip_suffix("k16")).and_then(|v| v.parse::<u16>().ok())
            })
            .filter(|n| n % 8 == 0 && (8..=256).contains(n))
            .ok_or_else(bad)?;
        let tys: Vec<Ty> = mods.iter().filter_map(|m| Ty::parse(m)).collect();
        // f32 accumulators with f16 or bf16 inputs; f16 accumulators with f16 inputs only (the
        // ISA gives .bf16 inputs .f32 accumulators alone).
        let (input, acc_f16) = match tys[..] {
            [Ty::F32, Ty::F16, Ty::F16] => (MmaInput::F16, false),
            [Ty::F32, Ty::Bf16, Ty::Bf16] => (MmaInput::Bf16, false),
            [Ty::F16, Ty::F16, Ty::F16] => (MmaInput::F16, true),
            _ => return Err(bad()),
        };
        let o = self.ops(ins, 6)?;
        let Operand::Vec(dv) = &o[0] else { return Err(bad()) };
        // N / 2 accumulator elements per thread: one per f32 register, two per f16x2 register.
        let nregs = if acc_f16 { n as usize / 4 } else { n as usize / 2 };
        if dv.len() != nregs {
            return unsup(format!("{full} with {} accumulator registers (expected {nregs})", dv.len()), line);
        }
        let d = dv.iter().map(|x| self.dst(x, line)).collect::<Result<Vec<R>>>()?;
        let a = match &o[1] {
            Operand::Vec(v) if v.len() == 4 => {
                let mut r = [NO_REG; 4];
                for (i, x) in v.iter().enumerate() {
                    r[i] = self.src(x, Ty::B32, line)?;
                }
                WgmmaA::Regs(r)
            }
            Operand::Vec(_) => return Err(bad()),
            x => WgmmaA::Desc(self.src(x, Ty::B64, line)?),
        };
        let b_desc = self.src(&o[2], Ty::B64, line)?;
        let (scale_d, scale_d_neg) = self.pred_src(&o[3], line)?;
        let imm = |op: &Operand| match op {
            Operand::Lit(Lit::Int(v)) => Some(*v),
            _ => None,
        };
        let rest: Vec<Option<i64>> = o[4..].iter().map(|x| imm(x).map(|v| v as i64)).collect();
        // imm-scale-a, imm-scale-b, then imm-trans-a (A from a descriptor only) and imm-trans-b.
        let regs_a = matches!(a, WgmmaA::Regs(_));
        if regs_a && rest.len() == 4 {
            return unsup(
                format!("{full} with an imm-trans-a operand and A in registers (the ISA allows imm-trans-a only for A from a descriptor)"),
                line,
            );
        }
        let want = if regs_a { 3 } else { 4 };
        if rest.len() != want || rest.iter().any(|v| v.is_none()) {
            return Err(bad());
        }
        let rest: Vec<i64> = rest.into_iter().flatten().collect();
        let scale = |v: i64| match v {
            1 => Ok(false),
            -1 => Ok(true),
            _ => Err(VmError::Parse { line, message: format!("`{full}`: imm-scale must be 1 or -1, got {v}") }),
        };
        let trans = |v: i64| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(VmError::Parse { line, message: format!("`{full}`: imm-trans must be 0 or 1, got {v}") }),
        };
        let (neg_a, neg_b) = (scale(rest[0])?, scale(rest[1])?);
        let (trans_a, trans_b) = if regs_a { (false, trans(rest[2])?) } else { (trans(rest[2])?, trans(rest[3])?) };
        Ok(Op::Wgmma(Box::new(Wgmma {
            input,
            acc_f16,
            n,
            d,
            a,
            b_desc,
            scale_d,
            scale_d_neg,
            neg_a,
            neg_b,
            trans_a,
            trans_b,
        })))
    }
}
