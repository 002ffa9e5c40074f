//! Lane-parallel arithmetic: the functions `lower` picks for each (opcode, type) and `exec` calls
//! on all 32 lanes at once. Integer rules follow PTX ISA 9.7.1 (integer arithmetic) and 9.7.8
//! (logic and shift); float rules PTX ISA 9.7.3.

use crate::ir::Lanes;
use crate::semantics::float::{self as sf, min_max_bits, min_max_f32, Fmt};

/// Builds an `F1` from a per-lane expression.
macro_rules! f1 {
    (|$a:ident| $e:expr) => {{
        fn g(a: &Lanes, o: &mut Lanes) {
            for i in 0..32 {
                let $a = a[i];
                o[i] = $e;
            }
        }
        g as F1
    }};
}
/// Builds an `F2` from a per-lane expression.
macro_rules! f2 {
    (|$a:ident, $b:ident| $e:expr) => {{
        fn g(a: &Lanes, b: &Lanes, o: &mut Lanes) {
            for i in 0..32 {
                let $a = a[i];
                let $b = b[i];
                o[i] = $e;
            }
        }
        g as F2
    }};
}
/// Builds an `F3` from a per-lane expression.
macro_rules! f3 {
    (|$a:ident, $b:ident, $c:ident| $e:expr) => {{
        fn g(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
            for i in 0..32 {
                let $a = a[i];
                let $b = b[i];
                let $c = c[i];
                o[i] = $e;
            }
        }
        g as F3
    }};
}
pub(crate) use {f1, f2, f3};

/// An integer register type, read by truncating a u64 slot and written zero-extended.
pub(crate) trait Int: Copy + PartialOrd + 'static {
    const BITS: u32;
    const SIGNED: bool;
    fn from(v: u64) -> Self;
    fn to(self) -> u64;
    fn wide(self) -> i128;
    fn from_wide(v: i128) -> Self;
}

macro_rules! int_impl {
    ($t:ty, $u:ty, $signed:expr) => {
        impl Int for $t {
            const BITS: u32 = <$t>::BITS;
            const SIGNED: bool = $signed;
            #[inline(always)]
            fn from(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to(self) -> u64 {
                self as $u as u64
            }
            #[inline(always)]
            fn wide(self) -> i128 {
                self as i128
            }
            #[inline(always)]
            fn from_wide(v: i128) -> Self {
                v as $t
            }
        }
    };
}
int_impl!(u8, u8, false);
int_impl!(u16, u16, false);
int_impl!(u32, u32, false);
int_impl!(u64, u64, false);
int_impl!(i8, u8, true);
int_impl!(i16, u16, true);
int_impl!(i32, u32, true);
int_impl!(i64, u64, true);

#[inline(always)]
fn mask<T: Int>() -> u64 {
    if T::BITS == 64 {
        u64::MAX
    } else {
        (1u64 << T::BITS) - 1
    }
}

#[inline(always)]
fn wrap<T: Int>(v: i128) -> u64 {
    (v as u64) & mask::<T>()
}

pub(crate) fn add<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>(T::from(a[i]).wide() + T::from(b[i]).wide());
    }
}
pub(crate) fn sub<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>(T::from(a[i]).wide() - T::from(b[i]).wide());
    }
}
pub(crate) fn add_sat_s32(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (a[i] as i32).saturating_add(b[i] as i32) as u32 as u64;
    }
}
pub(crate) fn sub_sat_s32(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (a[i] as i32).saturating_sub(b[i] as i32) as u32 as u64;
    }
}
pub(crate) fn mul_lo<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>(T::from(a[i]).wide().wrapping_mul(T::from(b[i]).wide()));
    }
}
#[inline(always)]
fn hi<T: Int>(x: T, y: T) -> u64 {
    if T::SIGNED {
        wrap::<T>(x.wide().wrapping_mul(y.wide()) >> T::BITS)
    } else {
        let p = (x.to() as u128).wrapping_mul(y.to() as u128);
        ((p >> T::BITS) as u64) & mask::<T>()
    }
}
pub(crate) fn mul_hi<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = hi(T::from(a[i]), T::from(b[i]));
    }
}
/// `mul.wide`: the full 2w-bit product (w <= 32 here).
pub(crate) fn mul_wide<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = T::from(a[i]).wide().wrapping_mul(T::from(b[i]).wide()) as u64;
    }
}
pub(crate) fn mad_lo<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>(T::from(a[i]).wide().wrapping_mul(T::from(b[i]).wide()).wrapping_add(T::from(c[i]).wide()));
    }
}
pub(crate) fn mad_hi<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>((hi(T::from(a[i]), T::from(b[i])) as i128).wrapping_add(T::from(c[i]).wide()));
    }
}
/// `mad.wide`: 2w-bit product plus a 2w-bit addend (w <= 32).
pub(crate) fn mad_wide<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (T::from(a[i]).wide().wrapping_mul(T::from(b[i]).wide()) as u64).wrapping_add(c[i]);
    }
}
/// `mul24.lo` / `mad24.lo` read the low 24 bits (sign-extended for .s32).
#[inline(always)]
fn low24<T: Int>(v: u64) -> i128 {
    if T::SIGNED {
        (((v as u32) << 8) as i32 >> 8) as i128
    } else {
        (v & 0xff_ffff) as i128
    }
}
pub(crate) fn mul24_lo<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (low24::<T>(a[i]) * low24::<T>(b[i])) as u64 & 0xffff_ffff;
    }
}
pub(crate) fn mad24_lo<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = ((low24::<T>(a[i]) * low24::<T>(b[i])) as u64).wrapping_add(c[i]) & 0xffff_ffff;
    }
}
/// Division by zero has no defined result in PTX (9.7.1.8); all ones is what the hardware gives
/// for unsigned operands and the VM uses it for both.
pub(crate) fn div<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let (x, y) = (T::from(a[i]).wide(), T::from(b[i]).wide());
        o[i] = if y == 0 { mask::<T>() } else { wrap::<T>(x.wrapping_div(y)) };
    }
}
pub(crate) fn rem<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let (x, y) = (T::from(a[i]).wide(), T::from(b[i]).wide());
        o[i] = if y == 0 { wrap::<T>(x) } else { wrap::<T>(x.wrapping_rem(y)) };
    }
}
pub(crate) fn min<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let (x, y) = (T::from(a[i]), T::from(b[i]));
        o[i] = if x < y { x.to() } else { y.to() };
    }
}
pub(crate) fn max<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let (x, y) = (T::from(a[i]), T::from(b[i]));
        o[i] = if x > y { x.to() } else { y.to() };
    }
}
pub(crate) fn abs<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>(T::from(a[i]).wide().abs());
    }
}
pub(crate) fn neg<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = wrap::<T>(-T::from(a[i]).wide());
    }
}
pub(crate) fn sad<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let d = (T::from(a[i]).wide() - T::from(b[i]).wide()).abs();
        o[i] = wrap::<T>(d + T::from(c[i]).wide());
    }
}
pub(crate) fn and<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = a[i] & b[i] & mask::<T>();
    }
}
pub(crate) fn or<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (a[i] | b[i]) & mask::<T>();
    }
}
pub(crate) fn xor<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (a[i] ^ b[i]) & mask::<T>();
    }
}
pub(crate) fn not<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = !a[i] & mask::<T>();
    }
}
pub(crate) fn cnot<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (a[i] & mask::<T>() == 0) as u64;
    }
}
/// Shift amounts are unsigned 32-bit and clamp at the width (PTX ISA 9.7.8.7, 9.7.8.8).
pub(crate) fn shl<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let n = b[i] as u32;
        o[i] = if n >= T::BITS { 0 } else { (a[i] << n) & mask::<T>() };
    }
}
pub(crate) fn shr<T: Int>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let n = b[i] as u32;
        let x = T::from(a[i]).wide();
        o[i] = if T::SIGNED {
            wrap::<T>(x >> n.min(T::BITS - 1))
        } else if n >= T::BITS {
            0
        } else {
            wrap::<T>(x >> n)
        };
    }
}
pub(crate) fn popc<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = (a[i] & mask::<T>()).count_ones() as u64;
    }
}
pub(crate) fn clz<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = ((a[i] & mask::<T>()).leading_zeros() - (64 - T::BITS)) as u64;
    }
}
pub(crate) fn brev<T: Int>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        o[i] = a[i].reverse_bits() >> (64 - T::BITS);
    }
}
/// `bfind`: the bit position of the most significant non-sign bit, 0xffffffff if none
/// (PTX ISA 9.7.1.17); with `.shiftamt`, the left shift that would normalise it.
pub(crate) fn bfind<T: Int, const SHIFTAMT: bool>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let mut x = a[i] & mask::<T>();
        if T::SIGNED && (x >> (T::BITS - 1)) & 1 == 1 {
            x = !x & mask::<T>();
        }
        o[i] = if x == 0 {
            0xffff_ffff
        } else {
            let pos = 63 - x.leading_zeros();
            if SHIFTAMT {
                (T::BITS - 1 - pos) as u64
            } else {
                pos as u64
            }
        };
    }
}
/// `bfe` (PTX ISA 9.7.1.18).
pub(crate) fn bfe<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let msb = T::BITS - 1;
        let pos = (b[i] & 0xff) as u32;
        let len = (c[i] & 0xff) as u32;
        let x = a[i];
        let sbit = if !T::SIGNED || len == 0 { 0 } else { (x >> (pos + len - 1).min(msb)) & 1 };
        let mut d = 0u64;
        for k in 0..=msb {
            let bit = if k < len && pos + k <= msb { (x >> (pos + k)) & 1 } else { sbit };
            d |= bit << k;
        }
        o[i] = d;
    }
}
/// `bfi f, a, b, pos, len`: b with `len` bits at `pos` replaced by a's low bits (PTX ISA 9.7.1.19).
pub(crate) fn bfi<T: Int>(a: &Lanes, b: &Lanes, c: &Lanes, d: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let msb = T::BITS - 1;
        let pos = (c[i] & 0xff) as u32;
        let len = (d[i] & 0xff) as u32;
        let mut f = b[i] & mask::<T>();
        let mut k = 0;
        while k < len && pos + k <= msb {
            f = (f & !(1 << (pos + k))) | (((a[i] >> k) & 1) << (pos + k));
            k += 1;
        }
        o[i] = f;
    }
}
/// `bmsk.clamp/.wrap`: a mask of `b` ones starting at bit `a`.
pub(crate) fn bmsk<const WRAP: bool>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let (mut pos, mut len) = (a[i] as u32, b[i] as u32);
        if WRAP {
            pos &= 31;
            len &= 31;
        } else {
            pos = pos.min(32);
            len = len.min(32);
        }
        let ones = if len >= 32 { u64::MAX } else { (1u64 << len) - 1 };
        o[i] = if pos >= 32 { 0 } else { (ones << pos) & 0xffff_ffff };
    }
}
/// `shf.l` / `shf.r` on the 64-bit concatenation b:a (PTX ISA 9.7.8.9).
pub(crate) fn shf<const LEFT: bool, const WRAP: bool>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let n = if WRAP { (c[i] as u32) & 31 } else { (c[i] as u32).min(32) };
        let v = ((b[i] & 0xffff_ffff) << 32) | (a[i] & 0xffff_ffff);
        o[i] = if LEFT { ((v << n) >> 32) & 0xffff_ffff } else { (v >> n) & 0xffff_ffff };
    }
}
/// `lop3.b32 d, a, b, c, lut` (PTX ISA 9.7.8.6): lut indexed by (a_bit << 2 | b_bit << 1 | c_bit).
pub(crate) fn lop3(a: &Lanes, b: &Lanes, c: &Lanes, l: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let lut = l[i];
        let (x, y, z) = (a[i], b[i], c[i]);
        let mut r = 0u64;
        for k in 0..8 {
            if (lut >> k) & 1 == 1 {
                let ta = if k & 4 != 0 { x } else { !x };
                let tb = if k & 2 != 0 { y } else { !y };
                let tc = if k & 1 != 0 { z } else { !z };
                r |= ta & tb & tc;
            }
        }
        o[i] = r & 0xffff_ffff;
    }
}
/// `prmt.b32{.mode}` (PTX ISA 9.7.8.5). MODE: 0 default, 1 f4e, 2 b4e, 3 rc8, 4 ecl, 5 ecr, 6 rc16.
pub(crate) fn prmt<const MODE: u8>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let bytes = ((b[i] & 0xffff_ffff) << 32) | (a[i] & 0xffff_ffff);
        let byte = |k: u64| (bytes >> ((k & 7) * 8)) & 0xff;
        let s = c[i];
        let sel: [u64; 4] = match MODE {
            1 => {
                let n = s & 3;
                [n, n + 1, n + 2, n + 3]
            }
            2 => {
                let n = s & 3;
                [n, n.wrapping_sub(1) & 7, n.wrapping_sub(2) & 7, n.wrapping_sub(3) & 7]
            }
            3 => [s & 3; 4],
            4 => match s & 3 {
                0 => [0, 1, 2, 3],
                1 => [1, 1, 2, 3],
                2 => [2, 2, 2, 3],
                _ => [3, 3, 3, 3],
            },
            5 => match s & 3 {
                0 => [0, 0, 0, 0],
                1 => [0, 1, 1, 1],
                2 => [0, 1, 2, 2],
                _ => [0, 1, 2, 3],
            },
            6 => {
                let n = (s & 1) * 2;
                [n, n + 1, n, n + 1]
            }
            _ => [s & 0xf, (s >> 4) & 0xf, (s >> 8) & 0xf, (s >> 12) & 0xf],
        };
        let mut d = 0u64;
        for (k, &sk) in sel.iter().enumerate() {
            let v = if MODE == 0 && sk & 8 != 0 {
                // Sign replication: the msb of the selected byte, copied to all 8 bits.
                if byte(sk) & 0x80 != 0 {
                    0xff
                } else {
                    0
                }
            } else {
                byte(sk)
            };
            d |= v << (8 * k);
        }
        o[i] = d;
    }
}
/// Integer conversion with wrap, or with clamping when SAT (PTX ISA 9.7.9.21 `cvt`).
pub(crate) fn cvt_int<D: Int, S: Int, const SAT: bool>(a: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let v = S::from(a[i]).wide();
        o[i] = if SAT {
            let (lo, hi) = if D::SIGNED {
                (-(1i128 << (D::BITS - 1)), (1i128 << (D::BITS - 1)) - 1)
            } else {
                (0, ((1u128 << D::BITS) - 1) as i128)
            };
            D::from_wide(v.clamp(lo, hi)).to()
        } else {
            D::from_wide(v).to()
        };
    }
}

// ---- floats ----

#[inline(always)]
pub(crate) fn f32v(x: u64) -> f32 {
    f32::from_bits(x as u32)
}
#[inline(always)]
pub(crate) fn f32b(x: f32) -> u64 {
    x.to_bits() as u64
}
#[inline(always)]
pub(crate) fn f64v(x: u64) -> f64 {
    f64::from_bits(x)
}
#[inline(always)]
pub(crate) fn f64b(x: f64) -> u64 {
    x.to_bits()
}

/// Float rounding modes (PTX ISA 9.7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rnd {
    Rn,
    Rz,
    Rm,
    Rp,
}

impl From<Rnd> for sf::Rnd {
    fn from(r: Rnd) -> sf::Rnd {
        match r {
            Rnd::Rn => sf::Rnd::Rn,
            Rnd::Rz => sf::Rnd::Rz,
            Rnd::Rm => sf::Rnd::Rm,
            Rnd::Rp => sf::Rnd::Rp,
        }
    }
}

// The conversions below are the interpreter's typed entry points to the one definition of each
// rounding rule in `semantics::float`.

/// Rounds an f64 to f32 in the given mode (`cvt.rnd.f32.f64`), in one rounding.
pub(crate) fn f64_to_f32(x: f64, mode: Rnd) -> f32 {
    f32::from_bits(sf::f64_to_f32(x, mode.into()))
}

// min/max follow the PTX NaN and signed-zero rules of `semantics::float::min_max_bits` (a NaN operand
// yields the other operand, two NaNs the canonical NaN, -0 < +0); these are the interpreter's typed
// entry points to that one definition.

/// f32 `min` (PTX ISA 9.7.3 "min").
#[inline(always)]
pub(crate) fn fmin32(a: f32, b: f32) -> f32 {
    f32::from_bits(min_max_f32(a.to_bits(), b.to_bits(), false, false))
}
/// f32 `max` (PTX ISA 9.7.3 "max").
#[inline(always)]
pub(crate) fn fmax32(a: f32, b: f32) -> f32 {
    f32::from_bits(min_max_f32(a.to_bits(), b.to_bits(), true, false))
}
/// f64 `min`.
#[inline(always)]
pub(crate) fn fmin64(a: f64, b: f64) -> f64 {
    f64::from_bits(min_max_bits(a.to_bits(), b.to_bits(), Fmt::F64, false, false))
}
/// f64 `max`.
#[inline(always)]
pub(crate) fn fmax64(a: f64, b: f64) -> f64 {
    f64::from_bits(min_max_bits(a.to_bits(), b.to_bits(), Fmt::F64, true, false))
}

/// Flushes an f32 subnormal to a zero of the same sign (`.ftz`).
#[inline(always)]
pub(crate) fn ftz32(x: u64) -> u64 {
    sf::ftz_f32(x as u32) as u64
}

/// `.sat` on f32: clamp to [0, 1], NaN to +0.
#[inline(always)]
pub(crate) fn sat32(x: u64) -> u64 {
    let v = f32v(x);
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= 1.0 {
        f32b(1.0)
    } else {
        x & 0xffff_ffff
    }
}
/// `.sat` on f64.
#[inline(always)]
pub(crate) fn sat64(x: u64) -> u64 {
    let v = f64v(x);
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= 1.0 {
        f64b(1.0)
    } else {
        x
    }
}

/// Rounds a float to an integral value in the `.rni/.rzi/.rmi/.rpi` mode.
#[inline(always)]
pub(crate) fn round_int(x: f64, mode: Rnd) -> f64 {
    sf::round_integral(x, mode.into())
}

/// Integer to f32 with a rounding mode, in one rounding.
pub(crate) fn int_to_f32(v: i128, mode: Rnd) -> f32 {
    f32::from_bits(sf::int_to_float(v, sf::Fmt::F32, mode.into()) as u32)
}

/// Integer to f64 with a rounding mode, in one rounding.
pub(crate) fn int_to_f64(v: i128, mode: Rnd) -> f64 {
    f64::from_bits(sf::int_to_float(v, sf::Fmt::F64, mode.into()))
}

/// `dp4a.atype.btype d, a, b, c`: c plus the dot product of the four bytes of a and b, each
/// byte signed or not per its type (PTX ISA 9.7.1.23).
pub(crate) fn dp4a<const SA: bool, const SB: bool>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
    for i in 0..32 {
        let mut acc = c[i] as u32 as i64;
        for k in 0..4 {
            let x = (a[i] >> (8 * k)) as u8;
            let y = (b[i] >> (8 * k)) as u8;
            let x = if SA { x as i8 as i64 } else { x as i64 };
            let y = if SB { y as i8 as i64 } else { y as i64 };
            acc += x * y;
        }
        o[i] = acc as u32 as u64;
    }
}
