//! Lowering of warpgroup instructions (sm_90a): `setmaxnreg`.

use super::*;

impl KernelLowering<'_> {
    /// `setmaxnreg.{inc,dec}.sync.aligned.u32 imm-reg-count` (PTX ISA 8.0+, sm_90a; "Miscellaneous
    /// Instructions: setmaxnreg"): the count is an integer constant, a multiple of 8 in 24..=256.
    /// A count outside that is refused here, as ptxas refuses it; the run-time rules (the whole
    /// warp, the same instruction in every warp of the warpgroup, the direction of the change) are
    /// checked by the interpreter.
    pub(super) fn setmaxnreg(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let inc = match mods {
            ["inc", "sync", "aligned", "u32"] => true,
            ["dec", "sync", "aligned", "u32"] => false,
            _ => return unsup(full, line),
        };
        let n = match ins.operands.as_slice() {
            [Operand::Lit(Lit::Int(n))] => *n,
            _ => return unsup(format!("{full} (imm-reg-count must be an integer constant)"), line),
        };
        if !(24..=256).contains(&n) || n % 8 != 0 {
            return unsup(format!("{full} {n} (imm-reg-count must be a multiple of 8 in 24..=256)"), line);
        }
        Ok(Op::Setmaxnreg { inc, count: n as u16 })
    }
}
