//! Warpgroup instructions (sm_90a): `setmaxnreg`.
//!
//! A warpgroup is four contiguous warps of a CTA, the first of which has a warp index that is a
//! multiple of 4 (PTX ISA 8.0+, "Warpgroup").

use super::*;

impl Block<'_, '_> {
    /// `setmaxnreg` (PTX ISA 8.0+, "Miscellaneous Instructions: setmaxnreg"): a hint that moves
    /// registers between the warp and the CTA's pool. The VM has no register file to resize, so it
    /// only checks the rules a kernel must keep for the hint to be valid on hardware:
    /// `.sync.aligned` means every thread of the warp executes it together; the per-thread maximum
    /// goes up with `.inc` and down with `.dec` from the warp's current value (checked against the
    /// warp's previous `setmaxnreg`; the launch's own count is ptxas's and unknown here); and every
    /// warp of the warpgroup executes the same instructions (`check_setmaxnreg`, when the block ends).
    #[inline(always)]
    pub(super) fn exec_setmaxnreg(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32, op: &Op) -> Res<()> {
        let Op::Setmaxnreg { inc, count } = op else { return Ok(()) };
        if exec == 0 {
            return Ok(());
        }
        let name = if *inc { "setmaxnreg.inc" } else { "setmaxnreg.dec" };
        if exec != warp.valid || mask != exec {
            let msg = format!(
                "{name}.sync.aligned executed by lanes {exec:#010x} of the warp, not by all its threads ({:#010x}) \
                 together",
                warp.valid
            );
            return Err(fault(pc, None, msg));
        }
        if let Some(&(_, prev)) = warp.maxnreg.last() {
            if (*inc && *count < prev) || (!*inc && *count > prev) {
                let msg = format!(
                    "{name} {count} after this warp's setmaxnreg to {prev}: .inc must not lower the register count \
                     and .dec must not raise it"
                );
                return Err(fault(pc, None, msg));
            }
        }
        warp.maxnreg.push((pc, *count));
        Ok(())
    }

    /// At the end of the block: the warps of each warpgroup executed the same `setmaxnreg`
    /// instructions (the ISA leaves it undefined otherwise), and a warp that executed one belongs to
    /// a complete warpgroup.
    pub(super) fn check_setmaxnreg(&self, warps: &[Warp]) -> Result<(), VmError> {
        if warps.iter().all(|w| w.maxnreg.is_empty()) {
            return Ok(());
        }
        let error = |pc: u32, message: String| VmError::Runtime {
            kernel: self.ctx.kernel.name.clone(),
            block: self.ctaid,
            thread: None,
            at: self.location(pc),
            message,
        };
        let seq = |w: &Warp| w.maxnreg.iter().map(|&(pc, _)| pc).collect::<Vec<_>>();
        let lines = |w: &Warp| {
            let l: Vec<String> = seq(w).iter().map(|&pc| self.location(pc).ptx_line.to_string()).collect();
            if l.is_empty() {
                "no setmaxnreg".to_string()
            } else {
                format!("setmaxnreg at PTX line {}", l.join(", "))
            }
        };
        for (g, group) in warps.chunks(4).enumerate() {
            let Some(first) = group.iter().find(|w| !w.maxnreg.is_empty()) else { continue };
            let pc = first.maxnreg[0].0;
            if group.len() < 4 || group.iter().any(|w| w.valid != FULL) {
                let msg = format!(
                    "setmaxnreg in warpgroup {g}, which is incomplete: the block has {} threads, and a warpgroup is \
                     4 whole warps",
                    self.nthreads
                );
                return Err(error(pc, msg));
            }
            if let Some(other) = group.iter().find(|w| seq(w) != seq(first)) {
                let msg = format!(
                    "setmaxnreg is not warpgroup-uniform in warpgroup {g}: warp {} executed {}, warp {} executed {}",
                    first.id,
                    lines(first),
                    other.id,
                    lines(other)
                );
                return Err(error(pc, msg));
            }
        }
        Ok(())
    }
}
