//! Integer SIMD within a 32-bit word: the video instruction `vabsdiff4` (PTX ISA 9.0, 9.7.10.2
//! "SIMD Video Instructions", which `__vabsdiffu4`/`__vabsdiffs4` emit as inline assembly) and
//! the two-way dot product `dp2a` (9.7.1.24). Each lane of the word is taken as signed or
//! unsigned by its operand's type; results wrap modulo 2^32 as the ISA defines.

/// Byte `k` of `x`, sign- or zero-extended.
fn byte(x: u32, k: u32, signed: bool) -> i64 {
    let b = (x >> (8 * k)) as u8;
    if signed {
        i64::from(b as i8)
    } else {
        i64::from(b)
    }
}

/// Half-word `k` of `x`, sign- or zero-extended.
fn half(x: u32, k: u32, signed: bool) -> i64 {
    let h = (x >> (16 * k)) as u16;
    if signed {
        i64::from(h as i16)
    } else {
        i64::from(h)
    }
}

/// `vabsdiff4.dtype.atype.btype{.sat} d, a, b, c` with the default byte selectors (`.b3210`) and
/// no `.add`: byte `k` of the result is `|a.k - b.k|`, saturated to the destination's byte range
/// with `sat` and else truncated to 8 bits. The full destination mask means `c` is not used.
pub fn vabsdiff4(a: u32, b: u32, a_signed: bool, b_signed: bool, d_signed: bool, sat: bool) -> u32 {
    let mut d = 0u32;
    for k in 0..4 {
        let diff = (byte(a, k, a_signed) - byte(b, k, b_signed)).abs();
        let v = if sat {
            let (lo, hi) = if d_signed { (-128, 127) } else { (0, 255) };
            diff.clamp(lo, hi)
        } else {
            diff
        };
        d |= ((v as u32) & 0xff) << (8 * k);
    }
    d
}

/// `vabsdiff4...add d, a, b, c`: the sum of the four byte differences `|a.k - b.k|`, plus `c`.
pub fn vabsdiff4_add(a: u32, b: u32, c: u32, a_signed: bool, b_signed: bool) -> u32 {
    let s: i64 = (0..4).map(|k| (byte(a, k, a_signed) - byte(b, k, b_signed)).abs()).sum();
    (i64::from(c) + s) as u32
}

/// `dp2a.{lo,hi}.atype.btype d, a, b, c`: `c` plus the dot product of `a`'s two half-words with
/// bytes 0-1 (`.lo`) or 2-3 (`.hi`) of `b`.
pub fn dp2a(a: u32, b: u32, c: u32, hi: bool, a_signed: bool, b_signed: bool) -> u32 {
    let k0 = if hi { 2 } else { 0 };
    let s = half(a, 0, a_signed) * byte(b, k0, b_signed) + half(a, 1, a_signed) * byte(b, k0 + 1, b_signed);
    (i64::from(c) + s) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vabsdiff4_takes_bytewise_absolute_differences() {
        // Unsigned: 0x10 vs 0xf0 differ by 0xe0; signed the same bytes are 16 and -16: 32.
        assert_eq!(vabsdiff4(0x0110_ff10, 0x0300_01f0, false, false, false, false), 0x0210_fee0);
        assert_eq!(vabsdiff4(0x0000_0010, 0x0000_00f0, true, true, true, false), 0x20);
        // Signed -128 vs 127 differ by 255: saturated to 127 for a signed destination.
        assert_eq!(vabsdiff4(0x80, 0x7f, true, true, true, true), 0x7f);
        assert_eq!(vabsdiff4(0x80, 0x7f, true, true, false, true), 0xff);
        assert_eq!(vabsdiff4_add(0x0110_ff10, 0x0300_01f0, 5, false, false), 2 + 0x10 + 0xfe + 0xe0 + 5);
    }

    #[test]
    fn dp2a_uses_low_or_high_byte_pair() {
        // a = (h1, h0) = (-2, 3) signed; b bytes (3, 2, 1, 0) = (4, -1, 5, 6).
        let a = (0xfffe << 16) | 3;
        let b = 0x04ff_0506;
        assert_eq!(dp2a(a, b, 10, false, true, true), (10 + 3 * 6 - 2 * 5) as u32);
        assert_eq!(dp2a(a, b, 10, true, true, true), (10 - 3 - 2 * 4) as u32);
        // Unsigned: 0xfffe is 65534 and 0xff is 255.
        assert_eq!(dp2a(a, b, 0, true, false, false), 3 * 255 + 65534 * 4);
    }
}
