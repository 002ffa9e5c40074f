//! Tensor maps for `cp.async.bulk.tensor` (PTX ISA 9.7.9.25.5, tile mode) in the VM's own
//! 128-byte encoding, and the geometry of the boxes they describe.
//!
//! On a GPU the map is an opaque 128-byte, 64-byte aligned object that the driver writes
//! (`cuTensorMapEncodeTiled`); the VM cannot read the driver's format, so the device layer of a
//! program builds the map for its backend: the driver's encoding on CUDA, this one on the VM, in the
//! same 128 bytes passed the same way (a `__grid_constant__` kernel parameter, or global memory).
//! The fields and their rules are the driver's (CUDA Driver API, `cuTensorMapEncodeTiled`):
//!
//! | bytes | field |
//! |---|---|
//! | 0-7 | magic `ptxvmTM1`: a map of any other origin is refused by name |
//! | 8-15 | global address (16-byte aligned) |
//! | 16-55 | global dims, 5 x u64 (each 1..=2^32; entries past the rank are 1) |
//! | 56-87 | global strides in bytes of dims 1..rank, 4 x u64 (multiples of 16, below 2^40) |
//! | 88-97 | box dims, 5 x u16 (1..=256; box 0 x element size a multiple of 16 bytes) |
//! | 98-102 | element strides, 5 x u8 (1..=8) |
//! | 103 | rank (1..=5) |
//! | 104 | element size in bytes (1, 2, 4 or 8) |
//! | 105 | swizzle: 0 none, 1 32-byte, 2 64-byte, 3 128-byte (`CUtensorMapSwizzle` order) |
//! | 106 | interleave: 0 none (the only one modelled) |
//! | 107 | out-of-bounds fill: 0 zeros (the only one modelled) |
//! | 108 | L2 promotion (no effect in the VM) |
//! | 109-127 | reserved, zero |
//!
//! Integers are little-endian. A box of `box[i]` elements with element stride `s[i]` holds
//! `ceil(box[i] / s[i])` elements along dimension `i`, taken at coordinates `c[i] + j * s[i]`; in
//! shared memory the box is dense and row-major (dimension 0 innermost), so a copy moves
//! `prod ceil(box[i] / s[i]) * element size` bytes, the count a global -> shared copy completes on
//! its mbarrier whatever part of the box lies inside the tensor. Elements outside the tensor read as
//! zeros and are not written by a shared -> global copy. With a swizzle, each 16-byte chunk of the
//! box lands at its address permuted by [`Swizzle::apply`] on the absolute shared address, the
//! pattern `wgmma` descriptors read (a destination aligned to less than the pattern's repeat,
//! 256/512/1024 bytes, starts mid-pattern, as on hardware). A box row narrower than the swizzle's
//! span is placed densely before the swizzle, not padded to the span: neither the ISA nor the
//! driver documentation says which, so this is the model's choice until the differential check on
//! a Hopper GPU compares it with the hardware.

use super::wgmma::Swizzle;
use std::fmt;

/// Bytes of a tensor map.
pub const TENSOR_MAP_BYTES: usize = 128;
/// The alignment a tensor map needs in memory (parameter or global).
pub const TENSOR_MAP_ALIGN: u64 = 64;
/// The most dimensions a tensor map has.
pub const MAX_RANK: usize = 5;
/// The first 8 bytes of every map in the VM's encoding.
pub const MAGIC: [u8; 8] = *b"ptxvmTM1";

/// A field of a tensor map that breaks the encoding's rules: `field` names it as the driver's
/// arguments do (`box_dims[1]`, `global_strides[0]`, `swizzle`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMapError {
    /// The offending field.
    pub field: String,
    /// What the field must be.
    pub expected: String,
    /// What it is.
    pub got: String,
}

impl fmt::Display for TensorMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}, got {}", self.field, self.expected, self.got)
    }
}

impl std::error::Error for TensorMapError {}

fn err(field: impl Into<String>, expected: impl Into<String>, got: impl fmt::Display) -> TensorMapError {
    TensorMapError { field: field.into(), expected: expected.into(), got: got.to_string() }
}

/// A tiled tensor map. Entries past `rank` are ignored by [`TensorMap::validate`] and encoded as
/// dims 1, box 1, element stride 1, stride 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorMap {
    /// The global address of element (0, ..., 0).
    pub global_address: u64,
    /// Dimensions, 1..=5.
    pub rank: u8,
    /// Bytes per element: 1, 2, 4 or 8.
    pub element_bytes: u8,
    /// Elements along each dimension, dimension 0 contiguous.
    pub global_dims: [u64; MAX_RANK],
    /// `global_strides[i]`: bytes between consecutive indices of dimension `i + 1`.
    pub global_strides: [u64; MAX_RANK - 1],
    /// The box a copy moves, in elements along each dimension.
    pub box_dims: [u32; MAX_RANK],
    /// The traversal stride along each dimension, in elements.
    pub element_strides: [u32; MAX_RANK],
    /// The placement of the box in shared memory.
    pub swizzle: Swizzle,
}

/// The encoding's swizzle byte of a mode.
fn swizzle_code(s: Swizzle) -> u8 {
    match s {
        Swizzle::None => 0,
        Swizzle::B32 => 1,
        Swizzle::B64 => 2,
        Swizzle::B128 => 3,
    }
}

/// One row of a box: the elements along dimension 0 at fixed higher coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxRow {
    /// The row's byte offset in the dense box.
    pub box_offset: u64,
    /// The elements of the row inside the tensor, if any: the first one's index in the row, how
    /// many, and the global address of the first. They lie `element_strides[0] * element_bytes`
    /// bytes apart in global memory and `element_bytes` apart in the box.
    pub inside: Option<(u64, u64, u64)>,
}

impl TensorMap {
    /// A map with every dimension past `rank` neutral, no swizzle and element strides 1.
    pub fn new(
        global_address: u64,
        element_bytes: u8,
        global_dims: &[u64],
        global_strides: &[u64],
        box_dims: &[u32],
    ) -> TensorMap {
        let mut m = TensorMap {
            global_address,
            rank: global_dims.len() as u8,
            element_bytes,
            global_dims: [1; MAX_RANK],
            global_strides: [0; MAX_RANK - 1],
            box_dims: [1; MAX_RANK],
            element_strides: [1; MAX_RANK],
            swizzle: Swizzle::None,
        };
        for (d, s) in m.global_dims.iter_mut().zip(global_dims) {
            *d = *s;
        }
        for (d, s) in m.global_strides.iter_mut().zip(global_strides) {
            *d = *s;
        }
        for (d, s) in m.box_dims.iter_mut().zip(box_dims) {
            *d = *s;
        }
        m
    }

    /// Checks every field against the driver's rules for a tiled map without interleave.
    pub fn validate(&self) -> Result<(), TensorMapError> {
        let rank = self.rank as usize;
        if !(1..=MAX_RANK).contains(&rank) {
            return Err(err("rank", "1..=5", rank));
        }
        let eb = u64::from(self.element_bytes);
        if !matches!(eb, 1 | 2 | 4 | 8) {
            return Err(err("element_bytes", "1, 2, 4 or 8", eb));
        }
        if self.global_address % 16 != 0 {
            return Err(err("global_address", "a multiple of 16", format!("{:#x}", self.global_address)));
        }
        for i in 0..rank {
            let d = self.global_dims[i];
            if !(1..=1 << 32).contains(&d) {
                return Err(err(format!("global_dims[{i}]"), "1..=2^32", d));
            }
        }
        for i in 0..rank - 1 {
            let s = self.global_strides[i];
            if s % 16 != 0 || s >= 1 << 40 {
                return Err(err(
                    format!("global_strides[{i}]"),
                    format!("a multiple of 16 below 2^40 (the bytes between indices of dimension {})", i + 1),
                    s,
                ));
            }
        }
        for i in 0..rank {
            let b = self.box_dims[i];
            if !(1..=256).contains(&b) {
                return Err(err(format!("box_dims[{i}]"), "1..=256", b));
            }
            let e = self.element_strides[i];
            if !(1..=8).contains(&e) {
                return Err(err(format!("element_strides[{i}]"), "1..=8", e));
            }
        }
        let inner = u64::from(self.box_dims[0]) * eb;
        if inner % 16 != 0 {
            return Err(err(
                "box_dims[0]",
                "box_dims[0] x element_bytes a multiple of 16 bytes",
                format!("{} x {eb} = {inner}", self.box_dims[0]),
            ));
        }
        if self.swizzle != Swizzle::None && inner > self.swizzle.row_bytes() {
            let w = self.swizzle.row_bytes();
            return Err(err(
                "box_dims[0]",
                format!("box_dims[0] x element_bytes at most {w} bytes (the {w}-byte swizzle's span)"),
                format!("{} x {eb} = {inner}", self.box_dims[0]),
            ));
        }
        Ok(())
    }

    /// The 128 bytes of the map, after [`TensorMap::validate`].
    pub fn encode(&self) -> Result<[u8; TENSOR_MAP_BYTES], TensorMapError> {
        self.validate()?;
        let rank = self.rank as usize;
        let mut b = [0u8; TENSOR_MAP_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..16].copy_from_slice(&self.global_address.to_le_bytes());
        for i in 0..MAX_RANK {
            let on = i < rank;
            let d = if on { self.global_dims[i] } else { 1 };
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
            let bx = if on { self.box_dims[i] as u16 } else { 1 };
            b[88 + 2 * i..90 + 2 * i].copy_from_slice(&bx.to_le_bytes());
            b[98 + i] = if on { self.element_strides[i] as u8 } else { 1 };
            if i + 1 < MAX_RANK {
                let s = if i + 1 < rank { self.global_strides[i] } else { 0 };
                b[56 + 8 * i..64 + 8 * i].copy_from_slice(&s.to_le_bytes());
            }
        }
        b[103] = self.rank;
        b[104] = self.element_bytes;
        b[105] = swizzle_code(self.swizzle);
        Ok(b)
    }

    /// Reads a map in the VM's encoding and checks it as [`TensorMap::validate`] does.
    pub fn decode(b: &[u8; TENSOR_MAP_BYTES]) -> Result<TensorMap, TensorMapError> {
        if b[0..8] != MAGIC {
            return Err(err(
                "magic",
                "`ptxvmTM1`, the VM's tensor-map encoding (a map from cuTensorMapEncodeTiled cannot be read by \
                 the VM: build it with the device layer for the VM)",
                format!("{:02x?}", &b[0..8]),
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let swizzle = match b[105] {
            0 => Swizzle::None,
            1 => Swizzle::B32,
            2 => Swizzle::B64,
            3 => Swizzle::B128,
            s => return Err(err("swizzle", "0 (none), 1 (32B), 2 (64B) or 3 (128B)", s)),
        };
        if b[106] != 0 {
            return Err(err("interleave", "0 (none, the only one modelled)", b[106]));
        }
        if b[107] != 0 {
            return Err(err("oob_fill", "0 (zeros, the only one modelled)", b[107]));
        }
        if let Some(i) = (109..TENSOR_MAP_BYTES).find(|&i| b[i] != 0) {
            return Err(err(format!("reserved byte {i}"), "0", format!("{:#04x}", b[i])));
        }
        let mut m = TensorMap {
            global_address: u64_at(8),
            rank: b[103],
            element_bytes: b[104],
            global_dims: [0; MAX_RANK],
            global_strides: [0; MAX_RANK - 1],
            box_dims: [0; MAX_RANK],
            element_strides: [0; MAX_RANK],
            swizzle,
        };
        for i in 0..MAX_RANK {
            m.global_dims[i] = u64_at(16 + 8 * i);
            m.box_dims[i] = u32::from(u16::from_le_bytes([b[88 + 2 * i], b[89 + 2 * i]]));
            m.element_strides[i] = u32::from(b[98 + i]);
            if i + 1 < MAX_RANK {
                m.global_strides[i] = u64_at(56 + 8 * i);
            }
        }
        m.validate()?;
        Ok(m)
    }

    /// Elements of the box along dimension `i` (`ceil(box / element stride)`).
    pub fn box_elements(&self, i: usize) -> u64 {
        if i < self.rank as usize {
            u64::from(self.box_dims[i].div_ceil(self.element_strides[i].max(1)))
        } else {
            1
        }
    }

    /// Bytes of one box row in shared memory.
    pub fn row_bytes(&self) -> u64 {
        self.box_elements(0) * u64::from(self.element_bytes)
    }

    /// Bytes of the whole box in shared memory: what a copy moves and completes on its mbarrier.
    pub fn box_bytes(&self) -> u64 {
        (0..MAX_RANK).map(|i| self.box_elements(i)).product::<u64>() * u64::from(self.element_bytes)
    }

    /// The rows of the box whose first element is at coordinates `c` (signed, as the instruction's
    /// `.s32` operands), in box order, each with the part of it inside the tensor.
    pub fn rows(&self, c: [i32; MAX_RANK]) -> impl Iterator<Item = BoxRow> + '_ {
        let n: Vec<u64> = (0..MAX_RANK).map(|i| self.box_elements(i)).collect();
        let rows: u64 = n[1..].iter().product();
        let eb = u64::from(self.element_bytes);
        let row_bytes = self.row_bytes();
        (0..rows).map(move |r| {
            let mut rest = r;
            let mut base = Some(self.global_address);
            for i in 1..self.rank as usize {
                let j = rest % n[i];
                rest /= n[i];
                let coord = i64::from(c[i]) + (j * u64::from(self.element_strides[i].max(1))) as i64;
                if coord < 0 || coord as u64 >= self.global_dims[i] {
                    base = None;
                } else {
                    base = base.map(|b| b.wrapping_add(coord as u64 * self.global_strides[i - 1]));
                }
            }
            // Row elements j = 0..n0 sit at coordinate c0 + j * s0; those inside are one range.
            let s0 = i64::from(self.element_strides[0].max(1));
            let (c0, d0) = (i64::from(c[0]), self.global_dims[0] as i64);
            let first = if c0 >= 0 { 0 } else { (-c0 + s0 - 1) / s0 };
            let end = if c0 >= d0 { 0 } else { ((d0 - c0 + s0 - 1) / s0).min(n[0] as i64) };
            let inside = match base {
                Some(b) if first < end => {
                    let addr = b.wrapping_add((c0 + first * s0) as u64 * eb);
                    Some((first as u64, (end - first) as u64, addr))
                }
                _ => None,
            };
            BoxRow { box_offset: r * row_bytes, inside }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map2d() -> TensorMap {
        TensorMap::new(0x1000, 2, &[100, 30], &[256], &[64, 8])
    }

    #[test]
    fn encoding_round_trips_every_field() {
        let mut m = TensorMap::new(0x7f00_0040, 4, &[5, 6, 7, 8, 9], &[32, 192, 1344, 10752], &[4, 3, 2, 5, 1]);
        m.element_strides = [1, 2, 3, 8, 1];
        m.swizzle = Swizzle::B64;
        let b = m.encode().unwrap();
        assert_eq!(&b[0..8], b"ptxvmTM1");
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 0x7f00_0040);
        assert_eq!((b[103], b[104], b[105]), (5, 4, 2));
        assert_eq!(TensorMap::decode(&b).unwrap(), m);
        for s in [Swizzle::None, Swizzle::B32, Swizzle::B64, Swizzle::B128] {
            let mut m = map2d();
            m.box_dims[0] = 16;
            m.swizzle = s;
            assert_eq!(TensorMap::decode(&m.encode().unwrap()).unwrap().swizzle, s);
        }
    }

    #[test]
    fn a_foreign_or_corrupt_map_is_refused_naming_the_field() {
        let good = map2d().encode().unwrap();
        let mut b = good;
        b[0] = 0;
        assert_eq!(TensorMap::decode(&b).unwrap_err().field, "magic");
        let mut b = good;
        b[105] = 4;
        assert_eq!(TensorMap::decode(&b).unwrap_err().field, "swizzle");
        let mut b = good;
        b[106] = 1;
        assert_eq!(TensorMap::decode(&b).unwrap_err().field, "interleave");
        let mut b = good;
        b[107] = 1;
        assert_eq!(TensorMap::decode(&b).unwrap_err().field, "oob_fill");
        let mut b = good;
        b[120] = 1;
        assert_eq!(TensorMap::decode(&b).unwrap_err().field, "reserved byte 120");
        let mut b = good;
        b[88] = 0;
        assert_eq!(TensorMap::decode(&b).unwrap_err().field, "box_dims[0]");
    }

    #[test]
    fn each_rule_names_its_field() {
        let bad = |f: &dyn Fn(&mut TensorMap)| {
            let mut m = map2d();
            f(&mut m);
            m.validate().unwrap_err().field
        };
        assert_eq!(bad(&|m| m.rank = 0), "rank");
        assert_eq!(bad(&|m| m.rank = 6), "rank");
        assert_eq!(bad(&|m| m.element_bytes = 3), "element_bytes");
        assert_eq!(bad(&|m| m.global_address = 0x1008), "global_address");
        assert_eq!(bad(&|m| m.global_dims[1] = 0), "global_dims[1]");
        assert_eq!(bad(&|m| m.global_dims[0] = (1 << 32) + 1), "global_dims[0]");
        assert_eq!(bad(&|m| m.global_strides[0] = 200), "global_strides[0]");
        assert_eq!(bad(&|m| m.global_strides[0] = 1 << 40), "global_strides[0]");
        assert_eq!(bad(&|m| m.box_dims[1] = 257), "box_dims[1]");
        assert_eq!(bad(&|m| m.box_dims[1] = 0), "box_dims[1]");
        assert_eq!(bad(&|m| m.box_dims[0] = 4), "box_dims[0]");
        assert_eq!(bad(&|m| m.element_strides[1] = 9), "element_strides[1]");
        // 64 bf16 = 128 bytes fits the 128-byte swizzle but not the 64-byte one.
        assert!(map2d().validate().is_ok());
        let mut m = map2d();
        m.swizzle = Swizzle::B128;
        assert!(m.validate().is_ok());
        assert_eq!(bad(&|m| m.swizzle = Swizzle::B64), "box_dims[0]");
        // Dimensions past the rank are not checked.
        assert_eq!(
            bad(&|m| {
                m.rank = 1;
                m.box_dims[0] = 3
            }),
            "box_dims[0]"
        );
        let mut m = map2d();
        m.rank = 1;
        m.box_dims[1] = 0;
        assert!(m.validate().is_ok());
    }

    #[test]
    fn box_bytes_count_the_elements_the_element_strides_keep() {
        let mut m = map2d();
        assert_eq!(m.box_bytes(), 64 * 8 * 2);
        m.element_strides[1] = 3;
        assert_eq!(m.box_bytes(), 64 * 3 * 2);
    }

    #[test]
    fn rows_clip_to_the_tensor_on_every_side() {
        let m = map2d(); // 100 x 30 elements, box 64 x 8, rows 256 bytes apart
        let rows: Vec<BoxRow> = m.rows([60, 26, 0, 0, 0]).collect();
        assert_eq!(rows.len(), 8);
        // Row 0 is tensor row 26: elements 60..100 inside, 40 of them.
        assert_eq!(rows[0], BoxRow { box_offset: 0, inside: Some((0, 40, 0x1000 + 26 * 256 + 60 * 2)) });
        assert_eq!(rows[3].inside, Some((0, 40, 0x1000 + 29 * 256 + 120)));
        assert_eq!(rows[4], BoxRow { box_offset: 4 * 128, inside: None });
        let left: Vec<BoxRow> = m.rows([-10, -1, 0, 0, 0]).collect();
        assert_eq!(left[0].inside, None);
        assert_eq!(left[1].inside, Some((10, 54, 0x1000)));
        assert!(m.rows([100, 0, 0, 0, 0]).all(|r| r.inside.is_none()));
        assert!(m.rows([-64, 0, 0, 0, 0]).all(|r| r.inside.is_none()));
    }

    #[test]
    fn rows_step_by_the_element_strides() {
        let mut m = TensorMap::new(0, 4, &[10, 10], &[64], &[8, 4]);
        m.element_strides = [3, 2, 1, 1, 1];
        let rows: Vec<BoxRow> = m.rows([2, 5, 0, 0, 0]).collect();
        // 3 elements per row (coordinates 2, 5, 8) and 2 rows (5, 7).
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], BoxRow { box_offset: 0, inside: Some((0, 3, 5 * 64 + 8)) });
        assert_eq!(rows[1], BoxRow { box_offset: 12, inside: Some((0, 3, 7 * 64 + 8)) });
        // From -4: coordinates -4, -1, 2: only the third is inside.
        let r: Vec<BoxRow> = m.rows([-4, 0, 0, 0, 0]).collect();
        assert_eq!(r[0].inside, Some((2, 1, 8)));
        // From 7: coordinates 7, 10, 13: only the first.
        let r: Vec<BoxRow> = m.rows([7, 0, 0, 0, 0]).collect();
        assert_eq!(r[0].inside, Some((0, 1, 28)));
    }
}
