//! `ldmatrix.sync.aligned.m8n8{.x1,.x2,.x4}{.trans}.shared.b16` and its inverse `stmatrix`
//! (PTX ISA 9.0 §9.7.14.5.15 "ldmatrix" and §9.7.14.5.16 "stmatrix").
//!
//! Each 8x8 matrix of 16-bit elements is given by 8 row addresses of 16 bytes: lanes 0-7 supply
//! the rows of matrix 0, lanes 8-15 those of matrix 1, 16-23 matrix 2, 24-31 matrix 3 (for .x1
//! only lanes 0-7 are read, for .x2 lanes 0-15). Register `m` of lane `l` receives, from matrix
//! `m`, the two elements of row `l / 4` at columns `2 * (l % 4)` and `2 * (l % 4) + 1` (low half
//! first). With `.trans` the matrix is transposed first: the two elements are those of column
//! `l / 4` at rows `2 * (l % 4)` and `2 * (l % 4) + 1`.

/// Loads `num` (1, 2 or 4) matrices. `addrs[l]` is lane `l`'s address operand; `read_row`
/// returns the 16 bytes at an address (and may fail, e.g. out of bounds or misaligned: the ISA
/// requires each row address to be 16-byte aligned). Registers beyond `num` are zero.
pub fn ldmatrix<E>(
    num: usize,
    trans: bool,
    addrs: &[u64; 32],
    mut read_row: impl FnMut(u64) -> Result<[u8; 16], E>,
) -> Result<[[u32; 4]; 32], E> {
    let mut out = [[0u32; 4]; 32];
    for m in 0..num {
        // rows[r][c]: element c of row r of matrix m.
        let mut rows = [[0u16; 8]; 8];
        for (r, row) in rows.iter_mut().enumerate() {
            let bytes = read_row(addrs[8 * m + r])?;
            for (c, e) in row.iter_mut().enumerate() {
                *e = u16::from_le_bytes([bytes[2 * c], bytes[2 * c + 1]]);
            }
        }
        for (l, reg) in out.iter_mut().enumerate() {
            let (i, j) = (l / 4, 2 * (l % 4));
            let (lo, hi) = if trans { (rows[j][i], rows[j + 1][i]) } else { (rows[i][j], rows[i][j + 1]) };
            reg[m] = lo as u32 | (hi as u32) << 16;
        }
    }
    Ok(out)
}

/// `stmatrix.sync.aligned.m8n8{.x1,.x2,.x4}{.trans}.shared.b16`: the inverse of [`ldmatrix`].
/// Returns the 8 * `num` rows to write, as (address, 16 bytes), in lane order.
pub fn stmatrix(num: usize, trans: bool, addrs: &[u64; 32], regs: &[[u32; 4]; 32]) -> Vec<(u64, [u8; 16])> {
    let mut writes = Vec::with_capacity(8 * num);
    for m in 0..num {
        let mut rows = [[0u16; 8]; 8];
        for (l, reg) in regs.iter().enumerate() {
            let (i, j) = (l / 4, 2 * (l % 4));
            let (lo, hi) = (reg[m] as u16, (reg[m] >> 16) as u16);
            if trans {
                rows[j][i] = lo;
                rows[j + 1][i] = hi;
            } else {
                rows[i][j] = lo;
                rows[i][j + 1] = hi;
            }
        }
        for (r, row) in rows.iter().enumerate() {
            let mut bytes = [0u8; 16];
            for (c, e) in row.iter().enumerate() {
                bytes[2 * c..2 * c + 2].copy_from_slice(&e.to_le_bytes());
            }
            writes.push((addrs[8 * m + r], bytes));
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared memory holding a 32 x 8 matrix of u16 (four 8x8 matrices stacked), element
    /// value = 1000 * matrix + 10 * row + col; row r of matrix m at byte (8m + r) * 16, but
    /// supplied in a scrambled order so that the lane -> row mapping is exercised.
    #[test]
    fn x1_x2_x4_with_and_without_trans_match_the_isa_mapping() {
        let perm = |r: usize| (r * 5 + 3) % 32; // storage slot of logical row r
        let mut smem = vec![0u8; 32 * 16];
        for lr in 0..32 {
            let (m, r) = (lr / 8, lr % 8);
            for c in 0..8 {
                let v = (1000 * m + 10 * r + c) as u16;
                let off = perm(lr) * 16 + 2 * c;
                smem[off..off + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        let addrs: [u64; 32] = std::array::from_fn(|l| (perm(l) * 16) as u64);
        let read = |a: u64| -> Result<[u8; 16], ()> {
            let a = a as usize;
            Ok(smem[a..a + 16].try_into().unwrap())
        };
        for num in [1, 2, 4] {
            for trans in [false, true] {
                let regs = ldmatrix(num, trans, &addrs, read).unwrap();
                for (l, reg) in regs.iter().enumerate() {
                    for (m, &v) in reg.iter().enumerate() {
                        if m >= num {
                            assert_eq!(v, 0);
                            continue;
                        }
                        // Figure "ldmatrix fragment layout": thread l holds row l/4, columns
                        // 2(l%4), 2(l%4)+1; .trans swaps row and column.
                        let (row, col) = (l / 4, 2 * (l % 4));
                        let val = |r: usize, c: usize| (1000 * m + 10 * r + c) as u32;
                        let want = if trans {
                            val(col, row) | val(col + 1, row) << 16
                        } else {
                            val(row, col) | val(row, col + 1) << 16
                        };
                        assert_eq!(v, want, "num {num} trans {trans} lane {l} reg {m}");
                    }
                }
                // stmatrix is the inverse.
                let writes = stmatrix(num, trans, &addrs, &regs);
                assert_eq!(writes.len(), 8 * num);
                for (a, bytes) in writes {
                    assert_eq!(&smem[a as usize..a as usize + 16], &bytes);
                }
            }
        }
    }

    #[test]
    fn read_errors_propagate() {
        let addrs = [0u64; 32];
        let r = ldmatrix(4, false, &addrs, |a| if a == 0 { Err("oob") } else { Ok([0; 16]) });
        assert_eq!(r, Err("oob"));
    }
}
