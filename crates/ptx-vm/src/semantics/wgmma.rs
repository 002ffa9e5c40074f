//! The `wgmma` shared-memory matrix descriptor (PTX ISA 9.7.15.5.1.2.2, "Matrix Descriptor
//! Format") and the addresses of the canonical layouts it describes (9.7.15.5.1.2, "Shared Memory
//! Matrix Layout"), K-major (imm-trans 0) and MN-major (imm-trans 1), as `wgmma.mma_async` reads
//! its shared-memory operands.
//!
//! The two leading/stride byte offsets mean different things in the two majors
//! (9.7.15.5.1.2.1, on the matrix normalised to 16-byte elements, rows along M/N, columns along K):
//!
//! | | no swizzle ("interleave") | 32B / 64B / 128B swizzle |
//! |---|---|---|
//! | K-major LBO | the step between 16-byte core-matrix columns along K | unused |
//! | K-major SBO | the step between groups of 8 rows (M/N) | the same |
//! | MN-major LBO | the step between groups of 8 columns (K) | the step between atoms along M/N (each `swizzle bytes / 16` rows) |
//! | MN-major SBO | the step between rows, i.e. 16-byte chunks along M/N | the step between groups of 8 columns (K) |
//!
//! The VM reads `wgmma.mma_async`'s operands when a warp issues it (each warp's 16 rows of D
//! depend only on its rows of A and on B) and writes the accumulators when `wgmma.wait_group`
//! retires the group; a premature read sees the old values and, with definedness tracking, is a
//! finding at its sink naming the `mma_async`; with the sanitizer, a write of its shared operands
//! or of its A-fragment or accumulator registers before the wait is a finding too. The
//! counters take the descriptor reads as one shared-memory request per operand and one pass per
//! core matrix (8 rows of 16 bytes, as an `ldmatrix` matrix; B once per warpgroup), so their
//! wavefronts and bank conflicts follow the addresses the swizzle gives (the model's unit: the ISA
//! does not say how the hardware reads them). Not modelled yet: definedness of the inputs
//! (retired accumulators are defined), `.sp`, and input types other than f16/bf16.
//!
//! The descriptor is a 64-bit value:
//!
//! | bits | field |
//! |---|---|
//! | 0-13 | start address, encoded as `(addr & 0x3ffff) >> 4` |
//! | 16-29 | leading dimension byte offset (LBO), encoded the same way |
//! | 32-45 | stride dimension byte offset (SBO), encoded the same way |
//! | 49-51 | matrix base offset (swizzled modes only) |
//! | 62-63 | swizzle: 0 none, 1 128-byte, 2 64-byte, 3 32-byte |
//!
//! Bits 14-15, 30-31, 46-48 and 52-61 are not fields: the decoding ignores them.

/// The swizzling mode of a descriptor (bits 62-63).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swizzle {
    /// No swizzle: the K-major layout is made of 8-row x 16-byte core matrices.
    None,
    /// 32-byte swizzle: 8 rows of 32 bytes per atom, repeating every 256 bytes.
    B32,
    /// 64-byte swizzle: 8 rows of 64 bytes per atom, repeating every 512 bytes.
    B64,
    /// 128-byte swizzle: 8 rows of 128 bytes per atom, repeating every 1024 bytes.
    B128,
}

impl Swizzle {
    /// The bytes of one row of a swizzle atom (16 for no swizzle: one core-matrix row).
    pub fn row_bytes(self) -> u64 {
        match self {
            Swizzle::None => 16,
            Swizzle::B32 => 32,
            Swizzle::B64 => 64,
            Swizzle::B128 => 128,
        }
    }

    /// Applies the swizzle to a shared-memory byte address: the 16-byte chunk index within a
    /// row (address bits 4 and up, as many bits as the row has chunks) is XORed with the row's
    /// index within the repeating 8-row pattern (bits 7 and up), so each of the 8 rows of the
    /// pattern places its chunks in a different order.
    pub fn apply(self, addr: u64) -> u64 {
        let mask = self.row_bytes() / 16 - 1;
        addr ^ (((addr >> 7) & mask) << 4)
    }
}

/// A decoded matrix descriptor; every byte quantity is decoded back to bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// The matrix start address in shared memory (a multiple of 16).
    pub start: u64,
    /// Leading dimension byte offset: for K-major without swizzle, the offset between core
    /// matrices adjacent along K; unused by the swizzled K-major layouts. MN-major: the offset
    /// between groups of 8 K (no swizzle) or between swizzle atoms along M/N (see the table above).
    pub lbo: u64,
    /// Stride dimension byte offset: for K-major layouts, the offset between groups of 8 rows
    /// (M for A, N for B). MN-major: the offset between 16-byte chunks along M/N (no swizzle) or
    /// between groups of 8 K.
    pub sbo: u64,
    /// Matrix base offset (bits 49-51): 0 when the swizzle pattern starts at its repeat boundary.
    pub base_offset: u8,
    /// The swizzling mode.
    pub swizzle: Swizzle,
}

impl Descriptor {
    /// Decodes a 64-bit descriptor.
    pub fn decode(d: u64) -> Descriptor {
        let field = |lo: u32| ((d >> lo) & 0x3fff) << 4;
        Descriptor {
            start: field(0),
            lbo: field(16),
            sbo: field(32),
            base_offset: ((d >> 49) & 7) as u8,
            swizzle: match d >> 62 {
                0 => Swizzle::None,
                1 => Swizzle::B128,
                2 => Swizzle::B64,
                _ => Swizzle::B32,
            },
        }
    }

    /// The shared address of byte `kbyte` (along K, from the start of the matrix) of row `row`
    /// (along M for A, N for B) of a K-major matrix.
    ///
    /// Without swizzle the matrix is a grid of core matrices, each 8 rows of 16 contiguous bytes
    /// (128 bytes): core matrix (row / 8, kbyte / 16) starts `row / 8 * SBO + kbyte / 16 * LBO`
    /// from the start. With a swizzle the matrix is a column of atoms, each 8 rows of
    /// `row_bytes` bytes stored row after row, atom `row / 8` at `row / 8 * SBO`; `kbyte` stays
    /// below `row_bytes` (an instruction's K slice lies in one atom); the swizzle then permutes the
    /// 16-byte chunks of the address. `None` where the ISA gives no layout: a non-zero base offset
    /// (whose effect on the pattern the ISA does not define beyond its formula) or a K byte past
    /// the atom.
    pub fn k_major_address(&self, row: u64, kbyte: u64) -> Option<u64> {
        match self.swizzle {
            Swizzle::None => Some(self.start + row / 8 * self.sbo + kbyte / 16 * self.lbo + row % 8 * 16 + kbyte % 16),
            s => {
                let w = s.row_bytes();
                if self.base_offset != 0 || kbyte >= w {
                    return None;
                }
                Some(s.apply(self.start + row / 8 * self.sbo + row % 8 * w + kbyte))
            }
        }
    }

    /// The shared address of element (`mn`, `k`) of an MN-major matrix of 2-byte elements (`mn`
    /// along M for A, N for B), per the canonical layouts of 9.7.15.5.1.2.1.3 (in 2-byte
    /// elements, T = 8 of them per 16 bytes):
    ///
    /// - no swizzle: `((T,1,m),(8,k)) : ((1,T,SBO),(T,LBO))`: each 16-byte chunk of M/N holds 8
    ///   elements; the 8 K values of a core matrix are 16 bytes apart; chunks along M/N are SBO
    ///   apart and groups of 8 K are LBO apart;
    /// - swizzle of `w` bytes: `((T,w/16,m),(8,k)) : ((1,T,LBO),(w/16*T,SBO))`: an atom is 8 rows
    ///   of `w` contiguous bytes along M/N, one row per K value; atoms along M/N are LBO apart and
    ///   groups of 8 K are SBO apart; the swizzle then permutes the 16-byte chunks of the address
    ///   as for K-major.
    ///
    /// `None` for a non-zero base offset (as for K-major).
    pub fn mn_major_address(&self, mn: u64, k: u64) -> Option<u64> {
        let b = 2 * mn;
        match self.swizzle {
            Swizzle::None => Some(self.start + b / 16 * self.sbo + b % 16 + k / 8 * self.lbo + k % 8 * 16),
            s => {
                if self.base_offset != 0 {
                    return None;
                }
                let w = s.row_bytes();
                Some(s.apply(self.start + b / w * self.lbo + b % w + k / 8 * self.sbo + k % 8 * w))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor with every field zero but the ones given (byte values, encoded as the ISA says).
    fn enc(start: u64, lbo: u64, sbo: u64, base: u64, swz: u64) -> u64 {
        let e = |x: u64| (x & 0x3ffff) >> 4;
        e(start) | e(lbo) << 16 | e(sbo) << 32 | base << 49 | swz << 62
    }

    #[test]
    fn the_start_address_is_bits_0_to_13_in_16_byte_units() {
        let d = Descriptor::decode(enc(0x2a30, 0, 0, 0, 0));
        assert_eq!(d, Descriptor { start: 0x2a30, lbo: 0, sbo: 0, base_offset: 0, swizzle: Swizzle::None });
        // The encoding keeps address bits 4-17: bit 18 and the low 4 bits are dropped.
        assert_eq!(Descriptor::decode(enc(0x4_2a3f, 0, 0, 0, 0)).start, 0x2a30);
        assert_eq!(Descriptor::decode(0x3fff).start, 0x3fff0);
        assert_eq!(Descriptor::decode(enc(0x2a30, 0, 0, 0, 0)).k_major_address(0, 0), Some(0x2a30));
    }

    #[test]
    fn the_leading_byte_offset_is_bits_16_to_29_and_steps_core_matrices_along_k() {
        let d = Descriptor::decode(enc(0, 0x1230, 0, 0, 0));
        assert_eq!((d.start, d.lbo, d.sbo), (0, 0x1230, 0));
        assert_eq!(Descriptor::decode(0x3fff << 16).lbo, 0x3fff0);
        // Bytes 16..32 along K are the second core matrix along K.
        assert_eq!(d.k_major_address(0, 16), Some(0x1230));
        assert_eq!(d.k_major_address(3, 20), Some(0x1230 + 3 * 16 + 4));
        assert_eq!(d.k_major_address(3, 4), Some(3 * 16 + 4));
    }

    #[test]
    fn the_stride_byte_offset_is_bits_32_to_45_and_steps_groups_of_8_rows() {
        let d = Descriptor::decode(enc(0, 0, 0x400, 0, 0));
        assert_eq!((d.start, d.lbo, d.sbo), (0, 0, 0x400));
        assert_eq!(Descriptor::decode(0x3fff << 32).sbo, 0x3fff0);
        assert_eq!(d.k_major_address(8, 0), Some(0x400));
        assert_eq!(d.k_major_address(17, 6), Some(2 * 0x400 + 16 + 6));
        // The same in a swizzled layout: atoms of 8 rows are SBO apart.
        let s = Descriptor::decode(enc(0, 0, 0x400, 0, 1));
        assert_eq!(s.k_major_address(8, 0), Some(0x400));
    }

    #[test]
    fn the_base_offset_is_bits_49_to_51_and_a_non_zero_one_is_not_given_a_layout() {
        let d = Descriptor::decode(enc(0, 0, 0, 5, 1));
        assert_eq!(d.base_offset, 5);
        assert_eq!(Descriptor::decode(7 << 49).base_offset, 7);
        assert_eq!(d.k_major_address(0, 0), None);
        assert_eq!(Descriptor::decode(enc(0, 0, 0, 0, 1)).k_major_address(0, 0), Some(0));
    }

    #[test]
    fn the_swizzle_mode_is_bits_62_to_63_in_the_isa_order() {
        let modes: Vec<Swizzle> = (0..4).map(|m| Descriptor::decode(m << 62).swizzle).collect();
        assert_eq!(modes, [Swizzle::None, Swizzle::B128, Swizzle::B64, Swizzle::B32]);
    }

    #[test]
    fn bits_outside_the_fields_are_ignored() {
        let reserved = (3 << 14) | (3 << 30) | (7 << 46) | (0x3ff << 52);
        let d = enc(0x100, 0x200, 0x300, 2, 3);
        assert_eq!(Descriptor::decode(d | reserved), Descriptor::decode(d));
    }

    #[test]
    fn the_128_byte_swizzle_xors_the_chunk_with_the_row_in_the_1024_byte_pattern() {
        let d = Descriptor::decode(enc(0x400, 0, 0x400, 0, 1));
        for row in 0..8u64 {
            for chunk in 0..8u64 {
                let a = d.k_major_address(row, chunk * 16 + 2).unwrap();
                assert_eq!(a, 0x400 + row * 128 + ((chunk ^ row) * 16) + 2, "row {row} chunk {chunk}");
            }
        }
        assert_eq!(d.k_major_address(0, 128), None);
    }

    #[test]
    fn the_64_byte_swizzle_xors_two_chunk_bits_with_bits_7_and_8() {
        let d = Descriptor::decode(enc(0x200, 0, 0x200, 0, 2));
        for row in 0..8u64 {
            for chunk in 0..4u64 {
                let a = d.k_major_address(row, chunk * 16).unwrap();
                // Row r starts at 64 r: address bits 7-8 hold r / 2.
                assert_eq!(a, 0x200 + row * 64 + ((chunk ^ (row / 2)) * 16), "row {row} chunk {chunk}");
            }
        }
    }

    #[test]
    fn the_32_byte_swizzle_xors_one_chunk_bit_with_bit_7() {
        let d = Descriptor::decode(enc(0x100, 0, 0x100, 0, 3));
        for row in 0..8u64 {
            for chunk in 0..2u64 {
                let a = d.k_major_address(row, chunk * 16 + 8).unwrap();
                assert_eq!(a, 0x100 + row * 32 + ((chunk ^ (row / 4)) * 16) + 8, "row {row} chunk {chunk}");
            }
        }
    }

    #[test]
    fn mn_major_without_swizzle_steps_chunks_along_mn_by_sbo_and_k_groups_by_lbo() {
        let d = Descriptor::decode(enc(0x800, 0x300, 0x40, 0, 0));
        // Element (mn, k): chunk mn / 8 at SBO, byte 2 (mn % 8); K row k % 8 at 16, group k / 8 at LBO.
        assert_eq!(d.mn_major_address(0, 0), Some(0x800));
        assert_eq!(d.mn_major_address(5, 0), Some(0x800 + 10));
        assert_eq!(d.mn_major_address(13, 0), Some(0x800 + 0x40 + 10));
        assert_eq!(d.mn_major_address(0, 3), Some(0x800 + 48));
        assert_eq!(d.mn_major_address(9, 11), Some(0x800 + 0x40 + 2 + 0x300 + 48));
    }

    #[test]
    fn mn_major_with_the_64_byte_swizzle_steps_atoms_along_mn_by_lbo_and_k_groups_by_sbo() {
        let d = Descriptor::decode(enc(0x1000, 0x400, 0x200, 0, 2));
        // 32 elements (64 bytes) along MN per atom row, one row per K value.
        assert_eq!(d.mn_major_address(31, 0), Some(0x1000 + 62));
        assert_eq!(d.mn_major_address(32, 0), Some(0x1400));
        assert_eq!(d.mn_major_address(0, 8), Some(0x1200));
        // K row 3 (bits 7-8 of 3 * 64 = 192: 1): chunk 0 becomes chunk 1.
        assert_eq!(d.mn_major_address(1, 3), Some(0x1000 + 192 + 16 + 2));
        // K row 6 (bits 7-8 of 384: 3): chunk 2 (elements 16..24) becomes chunk 1.
        assert_eq!(d.mn_major_address(17, 6), Some(0x1000 + 384 + 16 + 2));
        assert_eq!(Descriptor::decode(enc(0, 0, 0, 1, 2)).mn_major_address(0, 0), None);
    }
}
