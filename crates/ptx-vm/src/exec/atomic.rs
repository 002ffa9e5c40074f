//! `atom` and `red`: real host atomics on global memory (blocks run on several host threads),
//! plain read-modify-write on the block's shared memory.

use super::*;

/// Applies an atomic operation; returns the new value (PTX ISA 9.7.13.5).
pub(super) fn atom_new(op: AtomOp, ty: AtomTy, old: u64, b: u64, c: u64) -> u64 {
    use crate::num::*;
    let w32 = ty.bytes() < 8;
    let m = match ty.bytes() {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    };
    let (old, b) = (old & m, b & m);
    let r = match (op, ty) {
        (AtomOp::Add, AtomTy::F32) => f32b(f32v(old) + f32v(b)),
        (AtomOp::Add, AtomTy::F64) => f64b(f64v(old) + f64v(b)),
        (AtomOp::Add, AtomTy::F16x2 | AtomTy::Bf16x2) => {
            let bf = ty == AtomTy::Bf16x2;
            let h = |x: u64| -> f64 {
                if bf {
                    half::bf16::from_bits(x as u16).to_f64()
                } else {
                    half::f16::from_bits(x as u16).to_f64()
                }
            };
            let back = |x: f64| -> u64 {
                if bf {
                    half::bf16::from_f64(x).to_bits() as u64
                } else {
                    half::f16::from_f64(x).to_bits() as u64
                }
            };
            back(h(old) + h(b)) | (back(h(old >> 16) + h(b >> 16)) << 16)
        }
        (AtomOp::Min | AtomOp::Max, AtomTy::F32) => {
            let (x, y) = (f32v(old), f32v(b));
            f32b(if op == AtomOp::Min { fmin32(x, y) } else { fmax32(x, y) })
        }
        (AtomOp::Min | AtomOp::Max, AtomTy::F64) => {
            let (x, y) = (f64v(old), f64v(b));
            f64b(if op == AtomOp::Min { fmin64(x, y) } else { fmax64(x, y) })
        }
        (AtomOp::Add, _) => old.wrapping_add(b),
        (AtomOp::Min | AtomOp::Max, AtomTy::S32 | AtomTy::S64) => {
            let (x, y) = if w32 { (old as u32 as i32 as i64, b as u32 as i32 as i64) } else { (old as i64, b as i64) };
            (if (op == AtomOp::Min) == (x < y) { x } else { y }) as u64
        }
        (AtomOp::Min, _) => old.min(b),
        (AtomOp::Max, _) => old.max(b),
        (AtomOp::Exch, _) => b,
        (AtomOp::Cas, _) => {
            if old == b {
                c
            } else {
                old
            }
        }
        (AtomOp::And, _) => old & b,
        (AtomOp::Or, _) => old | b,
        (AtomOp::Xor, _) => old ^ b,
        (AtomOp::Inc, _) => {
            if old >= b {
                0
            } else {
                old + 1
            }
        }
        (AtomOp::Dec, _) => {
            if old == 0 || old > b {
                b
            } else {
                old - 1
            }
        }
    };
    r & m
}

impl Block<'_, '_> {
    /// `atom`/`red`: one atomic per lane, in lane order.
    #[inline(always)]
    pub(super) fn exec_atom(&mut self, warp: &mut Warp, pc: u32, exec: u32, op: &Op) -> Res<()> {
        let Op::Atom { space, op, ty, d, addr, off, b, c } = op else { return Ok(()) };
        for l in lanes_of(exec) {
            let a = eff(warp.regs[*addr as usize][l], *off, *space);
            let (bv, cv) = (warp.regs[*b as usize][l], warp.regs[*c as usize][l]);
            let old = self.atomic(a, *space, *op, *ty, bv, cv).map_err(|m| fault(pc, Some(l as u32), m))?;
            warp.regs[*d as usize][l] = old;
        }
        Ok(())
    }

    pub(super) fn atomic(
        &mut self,
        addr: u64,
        space: Space,
        op: AtomOp,
        ty: AtomTy,
        b: u64,
        c: u64,
    ) -> Result<u64, String> {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        let size: u8 = ty.bytes();
        if a % size as u64 != 0 {
            return Err(format!("misaligned {size}-byte atomic at {addr:#x}{}", self.locate(space, a, size.into())));
        }
        match space {
            Space::Global => {
                let (buf, off) = self.ctx.global.find(a, size as usize).ok_or_else(|| {
                    format!(
                        "atomic at global address {a:#x}, which is outside every allocation; {}",
                        self.ctx.global.describe(a, size as usize)
                    )
                })?;
                use std::sync::atomic::Ordering::SeqCst;
                if size == 2 {
                    // No 16-bit host atomic exists: update the half of the aligned 32-bit word
                    // (inside the buffer, whose storage is padded to 8 bytes) that holds it.
                    let cell = buf.atomic32(off & !3);
                    let sh = 8 * (off & 3);
                    let r = cell.fetch_update(SeqCst, SeqCst, |w| {
                        let new = atom_new(op, ty, u64::from(w >> sh), b, c) as u32;
                        Some((w & !(0xffff << sh)) | (new << sh))
                    });
                    Ok(u64::from(r.unwrap_or_else(|x| x) >> sh) & 0xffff)
                } else if size == 4 {
                    let cell = buf.atomic32(off);
                    let r = cell.fetch_update(SeqCst, SeqCst, |old| Some(atom_new(op, ty, old as u64, b, c) as u32));
                    Ok(r.unwrap_or_else(|x| x) as u64)
                } else {
                    let cell = buf.atomic64(off);
                    let r = cell.fetch_update(SeqCst, SeqCst, |old| Some(atom_new(op, ty, old, b, c)));
                    Ok(r.unwrap_or_else(|x| x))
                }
            }
            Space::Shared => {
                let len = self.smem.len();
                let old = rd(self.smem, a as usize, size)
                    .ok_or_else(|| format!("atomic at shared address {a:#x} outside the block's {len} bytes"))?;
                wr(self.smem, a as usize, size, atom_new(op, ty, old, b, c));
                Ok(old)
            }
            s => Err(format!("atomic on the {} state space", space_name(s))),
        }
    }
}
