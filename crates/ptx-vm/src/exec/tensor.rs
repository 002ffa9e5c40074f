//! Tensor-core instructions: `mma.sync`, `ldmatrix`, `stmatrix`.

use super::*;

impl Block<'_, '_> {
    /// `mma.sync`: one warp-wide matrix multiply-add.
    #[inline(always)]
    pub(super) fn exec_mma(&mut self, warp: &mut Warp, act: u32, op: &Op) {
        let Op::Mma { shape, input, ctype, dtype, d, a, b, c } = op else { return };
        let r = &mut warp.regs;
        let frag = |r: &Vec<Lanes>, x: &[R; 4]| -> [[u32; 4]; 32] {
            const ABSENT: Lanes = [0; 32];
            let v = x.map(|reg| if reg != NO_REG { &r[reg as usize] } else { &ABSENT });
            std::array::from_fn(|l| v.map(|col| col[l] as u32))
        };
        let out = semantics::mma::mma_sync(*shape, *input, *ctype, *dtype, &frag(r, a), &frag(r, b), &frag(r, c));
        if self.instrument {
            // One warp-wide m16n8kK multiply-add: M*N*K products and as many sums.
            let flops = 2 * 16 * 8 * shape.k() as u64;
            if *input == MmaInput::Tf32 {
                self.counters.mma_tf32_flops += flops;
            } else {
                self.counters.mma_flops += flops;
            }
        }
        for l in lanes_of(act) {
            for i in 0..4 {
                if d[i] != NO_REG {
                    r[d[i] as usize][l] = out[l][i] as u64;
                }
            }
        }
    }

    /// `ldmatrix`: 8x8 matrices of 16-bit elements from shared memory into fragments.
    #[inline(always)]
    pub(super) fn exec_ldmatrix(&mut self, warp: &mut Warp, pc: u32, act: u32, op: &Op) -> Res<()> {
        let Op::Ldmatrix { num, trans, d, addr, off } = op else { return Ok(()) };
        let r = &mut warp.regs;
        let addrs: [u64; 32] = std::array::from_fn(|l| shared_addr(eff(r[*addr as usize][l], *off, Space::Shared)));
        let smem = &*self.smem;
        let out = semantics::ldmatrix::ldmatrix(*num as usize, *trans, &addrs, |a| {
            if a % 16 != 0 {
                return Err(format!("ldmatrix row address {a:#x} is not 16-byte aligned"));
            }
            match smem.get(a as usize..a as usize + 16) {
                Some(s) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(s);
                    Ok(b)
                }
                None => {
                    Err(format!("ldmatrix row at shared address {a:#x} is outside the block's {} bytes", smem.len()))
                }
            }
        })
        .map_err(|m| fault(pc, None, m))?;
        for l in lanes_of(act) {
            for i in 0..*num as usize {
                r[d[i] as usize][l] = out[l][i] as u64;
            }
        }
        if self.instrument {
            self.matrix_access(warp.id, pc, &addrs, *num, AccessKind::Read);
        }
        Ok(())
    }

    /// `stmatrix`: fragments to 8x8 matrices in shared memory.
    #[inline(always)]
    pub(super) fn exec_stmatrix(&mut self, warp: &mut Warp, pc: u32, op: &Op) -> Res<()> {
        let Op::Stmatrix { num, trans, s, addr, off } = op else { return Ok(()) };
        let r = &mut warp.regs;
        let addrs: [u64; 32] = std::array::from_fn(|l| shared_addr(eff(r[*addr as usize][l], *off, Space::Shared)));
        let regs: [[u32; 4]; 32] = std::array::from_fn(|l| {
            std::array::from_fn(|i| if i < *num as usize { r[s[i] as usize][l] as u32 } else { 0 })
        });
        for (a, bytes) in semantics::ldmatrix::stmatrix(*num as usize, *trans, &addrs, &regs) {
            let len = self.smem.len();
            match self.smem.get_mut(a as usize..a as usize + 16) {
                Some(dst) if a % 16 == 0 => dst.copy_from_slice(&bytes),
                _ => {
                    return Err(fault(
                        pc,
                        None,
                        format!(
                            "stmatrix row at shared address {a:#x} is misaligned or outside the block's {len} bytes"
                        ),
                    ))
                }
            }
        }
        if self.instrument {
            self.matrix_access(warp.id, pc, &addrs, *num, AccessKind::Write);
        }
        Ok(())
    }

    /// ldmatrix / stmatrix: lanes 8m..8m+8 give the 16-byte rows of matrix m.
    pub(super) fn matrix_access(&mut self, w: u32, pc: u32, addrs: &[u64; 32], num: u8, kind: AccessKind) {
        let rows = (8 * num as usize).min(32);
        for (l, &a) in addrs.iter().enumerate().take(rows) {
            self.shared_touch(w, l as u32, pc, a, 16, kind, false);
        }
        let (wf, ideal) = ctr::ldmatrix_wavefronts(&addrs[..rows], num as usize);
        self.counters.shared_requests += 1;
        self.counters.shared_wavefronts += wf;
        self.counters.shared_ideal_wavefronts += ideal;
    }
}
