//! Floating-point conversions, rounding and the arithmetic rules of PTX, as pure functions on bits.
//!
//! Every result is computed from the exact value of the operands and rounded once, so that each
//! rounding modifier of the PTX ISA (`.rn`, `.rna`, `.rz`, `.rm`, `.rp`, and their integer forms
//! `.rni`, `.rzi`, `.rmi`, `.rpi`) is honoured bit for bit. The rules are those of the PTX ISA 9.0,
//! chapter 9.7.3 "Floating-Point Instructions", 9.7.4 "Half Precision Floating-Point Instructions",
//! 9.7.9.21 "cvt" and 9.4.1 / 9.4.2 "Rounding Modifiers" (section numbers of PTX ISA 9.0).

/// A rounding mode. `.rni`, `.rzi`, `.rmi`, `.rpi` (rounding to an integral value) use the same
/// four directions as `.rn`, `.rz`, `.rm`, `.rp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rnd {
    /// `.rn` / `.rni`: to nearest, ties to even.
    Rn,
    /// `.rna`: to nearest, ties away from zero (only `cvt.rna.tf32.f32` and `.satfinite` forms).
    Rna,
    /// `.rz` / `.rzi`: towards zero.
    Rz,
    /// `.rm` / `.rmi`: towards negative infinity.
    Rm,
    /// `.rp` / `.rpi`: towards positive infinity.
    Rp,
}

/// A binary floating-point format: `exp_bits` exponent bits and `man_bits` stored fraction bits,
/// encoded sign | exponent | fraction in the low `1 + exp_bits + man_bits` bits of a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fmt {
    /// Exponent field width.
    pub exp_bits: u32,
    /// Stored fraction width (the precision is `man_bits + 1`).
    pub man_bits: u32,
}

impl Fmt {
    /// IEEE binary16 (`.f16`).
    pub const F16: Fmt = Fmt { exp_bits: 5, man_bits: 10 };
    /// bfloat16 (`.bf16`).
    pub const BF16: Fmt = Fmt { exp_bits: 8, man_bits: 7 };
    /// IEEE binary32 (`.f32`).
    pub const F32: Fmt = Fmt { exp_bits: 8, man_bits: 23 };
    /// IEEE binary64 (`.f64`).
    pub const F64: Fmt = Fmt { exp_bits: 11, man_bits: 52 };

    fn bias(self) -> i32 {
        (1 << (self.exp_bits - 1)) - 1
    }
    fn exp_all_ones(self) -> u64 {
        (1u64 << self.exp_bits) - 1
    }
    fn sign_bit(self) -> u64 {
        1u64 << (self.exp_bits + self.man_bits)
    }
    fn inf(self, neg: bool) -> u64 {
        (if neg { self.sign_bit() } else { 0 }) | (self.exp_all_ones() << self.man_bits)
    }
    fn max_finite(self, neg: bool) -> u64 {
        self.inf(neg) - 1
    }
    /// The canonical NaN PTX produces: all exponent and fraction bits set, sign clear
    /// (0x7fff for f16 and bf16, 0x7fffffff for f32; PTX ISA 9.0 §9.7.3 "Floating-Point
    /// Instructions": "NaN results are canonical").
    pub fn canonical_nan(self) -> u64 {
        self.sign_bit() - 1
    }
    /// True when `bits` encode a NaN in this format.
    pub fn is_nan(self, bits: u64) -> bool {
        let e = (bits >> self.man_bits) & self.exp_all_ones();
        e == self.exp_all_ones() && bits & ((1u64 << self.man_bits) - 1) != 0
    }
    /// The exact value of `bits` in this format, as an f64 (exact for every format here).
    pub fn to_f64(self, bits: u64) -> f64 {
        let neg = bits & self.sign_bit() != 0;
        let e = ((bits >> self.man_bits) & self.exp_all_ones()) as i32;
        let f = bits & ((1u64 << self.man_bits) - 1);
        let mag = if e as u64 == self.exp_all_ones() {
            if f == 0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        } else if e == 0 {
            f as f64 * pow2(1 - self.bias() - self.man_bits as i32)
        } else {
            (f | (1u64 << self.man_bits)) as f64 * pow2(e - self.bias() - self.man_bits as i32)
        };
        if neg {
            -mag
        } else {
            mag
        }
    }
}

/// 2^e as an f64, exact for -1074 <= e <= 1023.
fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// Splits a finite f64 into (negative, mantissa, exponent) with value = mantissa * 2^exponent.
fn decompose(x: f64) -> (bool, u128, i32) {
    let bits = x.to_bits();
    let neg = bits >> 63 != 0;
    let e = ((bits >> 52) & 0x7ff) as i32;
    let f = bits & ((1u64 << 52) - 1);
    if e == 0 {
        (neg, f as u128, -1074)
    } else {
        (neg, (f | (1u64 << 52)) as u128, e - 1075)
    }
}

/// Rounds the exact value `(-1)^neg * mant * 2^exp` to `fmt` with `rnd` (IEEE 754 rounding as PTX
/// ISA 9.0 §9.4.1 "Floating Point Rounding Modifiers" defines it: subnormal results are kept,
/// overflow goes to infinity or to the largest finite value as the direction says).
pub fn round_exact(neg: bool, mant: u128, exp: i32, fmt: Fmt, rnd: Rnd) -> u64 {
    let sign = if neg { fmt.sign_bit() } else { 0 };
    if mant == 0 {
        return sign;
    }
    let m = fmt.man_bits as i32;
    let msb = 127 - mant.leading_zeros() as i32;
    let e = msb + exp;
    let emin = 1 - fmt.bias();
    // Exponent of the last kept bit: the quantum of the result's binade (or of the subnormals).
    let mut q = e.max(emin) - m;
    let shift = q - exp;
    let (mut r, rem_cmp, inexact) = if shift <= 0 {
        (mant << (-shift) as u32, std::cmp::Ordering::Less, false)
    } else if shift >= 128 {
        // Everything is below the last kept bit, and below half of it: mant < 2^128 <= 2^(shift-1)
        // unless shift == 128 exactly.
        let half_cmp = if shift == 128 { mant.cmp(&(1u128 << 127)) } else { std::cmp::Ordering::Less };
        (0, half_cmp, true)
    } else {
        let kept = mant >> shift as u32;
        let rem = mant & ((1u128 << shift as u32) - 1);
        let half = 1u128 << (shift - 1) as u32;
        (kept, rem.cmp(&half), rem != 0)
    };
    let up = match rnd {
        Rnd::Rn => rem_cmp == std::cmp::Ordering::Greater || (rem_cmp == std::cmp::Ordering::Equal && r & 1 == 1),
        Rnd::Rna => rem_cmp != std::cmp::Ordering::Less,
        Rnd::Rz => false,
        Rnd::Rp => inexact && !neg,
        Rnd::Rm => inexact && neg,
    };
    if up {
        r += 1;
    }
    if r >> (m + 1) != 0 {
        r >>= 1;
        q += 1;
    }
    let r = r as u64;
    if r < (1u64 << m) {
        // Subnormal (q == emin - m) or rounded to zero.
        return sign | r;
    }
    let biased = (q + m + fmt.bias()) as i64;
    if biased >= fmt.exp_all_ones() as i64 {
        let to_inf = match rnd {
            Rnd::Rn | Rnd::Rna => true,
            Rnd::Rz => false,
            Rnd::Rp => !neg,
            Rnd::Rm => neg,
        };
        return if to_inf { fmt.inf(neg) } else { fmt.max_finite(neg) };
    }
    sign | ((biased as u64) << m) | (r - (1u64 << m))
}

/// Rounds an f64 (exact value) to `fmt`. NaN becomes the canonical NaN, infinities stay infinite.
pub fn f64_to_fmt(x: f64, fmt: Fmt, rnd: Rnd) -> u64 {
    if x.is_nan() {
        return fmt.canonical_nan();
    }
    if x.is_infinite() {
        return fmt.inf(x < 0.0);
    }
    let (neg, mant, exp) = decompose(x);
    round_exact(neg, mant, exp, fmt, rnd)
}

/// `cvt.rnd{.relu}{.satfinite}.{f16,bf16}.{f32,f64}`: PTX ISA 9.0 §9.7.9.21 "cvt".
/// `.relu` clamps negative results to +0 (NaN stays the canonical NaN); `.satfinite` turns
/// results beyond the largest finite value (infinities included) into that value with the sign
/// kept, and NaN into the canonical NaN.
pub fn cvt_to_half(x: f64, fmt: Fmt, rnd: Rnd, relu: bool, satfinite: bool) -> u16 {
    let mut r = f64_to_fmt(x, fmt, rnd);
    if fmt.is_nan(r) {
        return fmt.canonical_nan() as u16;
    }
    if satfinite && (r & !fmt.sign_bit()) == fmt.inf(false) {
        r = fmt.max_finite(r & fmt.sign_bit() != 0);
    }
    if relu && r & fmt.sign_bit() != 0 {
        r = 0;
    }
    r as u16
}

/// f32 bits -> f16 bits with a rounding mode.
pub fn f32_to_f16(bits: u32, rnd: Rnd) -> u16 {
    f64_to_fmt(f32::from_bits(bits) as f64, Fmt::F16, rnd) as u16
}

/// f32 bits -> bf16 bits with a rounding mode.
pub fn f32_to_bf16(bits: u32, rnd: Rnd) -> u16 {
    f64_to_fmt(f32::from_bits(bits) as f64, Fmt::BF16, rnd) as u16
}

/// f64 -> f32 bits with a rounding mode (`cvt.rnd.f32.f64`).
pub fn f64_to_f32(x: f64, rnd: Rnd) -> u32 {
    f64_to_fmt(x, Fmt::F32, rnd) as u32
}

/// f16 bits -> f32, exact (`cvt.f32.f16`).
pub fn f16_to_f32(h: u16) -> f32 {
    let x = Fmt::F16.to_f64(h as u64);
    if x.is_nan() {
        // PTX ISA §9.7.9.21: NaN inputs give the canonical NaN.
        f32::from_bits(0x7fff_ffff)
    } else {
        x as f32
    }
}

/// bf16 bits -> f32, exact (`cvt.f32.bf16`): a bf16 is the high half of an f32.
pub fn bf16_to_f32(h: u16) -> f32 {
    if Fmt::BF16.is_nan(h as u64) {
        f32::from_bits(0x7fff_ffff)
    } else {
        f32::from_bits((h as u32) << 16)
    }
}

/// `cvt.rna{.satfinite}.tf32.f32`: rounds to 10 fraction bits, ties away from zero, the result
/// being an f32 bit pattern whose low 13 bits are zero (PTX ISA 9.0 §9.7.9.21 "cvt", tf32).
pub fn f32_to_tf32_rna(bits: u32, satfinite: bool) -> u32 {
    let x = f32::from_bits(bits);
    if x.is_nan() {
        return 0x7fff_ffff;
    }
    if x.is_infinite() {
        return if satfinite { (bits & 0x8000_0000) | 0x7f7f_e000 } else { bits };
    }
    // tf32 has the exponent range of f32 and 10 fraction bits.
    let tf32 = Fmt { exp_bits: 8, man_bits: 10 };
    let r = f64_to_fmt(x as f64, tf32, Rnd::Rna) as u32;
    let out = ((r & 0x4_0000) << 13) | ((r & 0x3_ffff) << 13);
    if satfinite && out & 0x7fff_ffff == 0x7f80_0000 {
        (out & 0x8000_0000) | 0x7f7f_e000
    } else {
        out
    }
}

/// Float -> integer (`cvt.rni/rzi/rmi/rpi.{s,u}{8,16,32,64}.{f16,f32,f64}`): rounds to an
/// integral value, then saturates to the destination range; NaN converts to 0 (PTX ISA 9.0
/// §9.7.9.21 "cvt": "For float-to-integer conversions, the result is clamped to the destination
/// range by default ... NaN inputs are converted to 0"). Returns the bits, zero-extended.
pub fn float_to_int(x: f64, rnd: Rnd, signed: bool, width: u32) -> u64 {
    if x.is_nan() {
        return 0;
    }
    let r = round_integral(x, rnd);
    let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
    if signed {
        let max = (mask >> 1) as i64;
        let min = -max - 1;
        let v = if r >= max as f64 {
            max
        } else if r <= min as f64 {
            min
        } else {
            r as i64
        };
        v as u64 & mask
    } else if r <= 0.0 {
        0
    } else if r >= mask as f64 {
        mask
    } else {
        r as u64
    }
}

/// Rounds to an integral value in the same format (`cvt.rni.f32.f32` and friends); NaN stays NaN.
pub fn round_integral(x: f64, rnd: Rnd) -> f64 {
    match rnd {
        Rnd::Rn => x.round_ties_even(),
        Rnd::Rna => x.round(),
        Rnd::Rz => x.trunc(),
        Rnd::Rm => x.floor(),
        Rnd::Rp => x.ceil(),
    }
}

/// Integer -> float with a rounding mode (`cvt.rnd.{f16,f32,f64}.{s,u}{8..64}`).
pub fn int_to_float(v: i128, fmt: Fmt, rnd: Rnd) -> u64 {
    round_exact(v < 0, v.unsigned_abs(), 0, fmt, rnd)
}

/// `.ftz` on an f32 operand or result: subnormals become zero of the same sign
/// (PTX ISA 9.0 §9.7.3 "Floating-Point Instructions", "Subnormal numbers").
pub fn ftz_f32(bits: u32) -> u32 {
    if bits & 0x7f80_0000 == 0 {
        bits & 0x8000_0000
    } else {
        bits
    }
}

/// `.sat` on an f32 result: clamps to [0.0, 1.0], NaN to +0.0 (PTX ISA 9.0 §9.4.2 "Saturation").
pub fn sat_f32(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// `min`/`max` on floats of format `fmt` given as bits (PTX ISA 9.0 §9.7.3.10 "min",
/// §9.7.3.11 "max", and the `.f16`/`.bf16` forms in §9.7.4): if exactly one input is NaN the
/// other is returned; if both are NaN the canonical NaN; with `.NaN` any NaN input gives the
/// canonical NaN. -0.0 is treated as less than +0.0.
pub fn min_max_bits(a: u64, b: u64, fmt: Fmt, is_max: bool, nan_mode: bool) -> u64 {
    let (an, bn) = (fmt.is_nan(a), fmt.is_nan(b));
    if an || bn {
        if nan_mode || (an && bn) {
            return fmt.canonical_nan();
        }
        return if an { b } else { a };
    }
    let (x, y) = (fmt.to_f64(a), fmt.to_f64(b));
    let a_less = if x == y {
        // Equal values differ at most in the sign of zero: -0.0 orders below +0.0.
        a & fmt.sign_bit() != 0 && b & fmt.sign_bit() == 0
    } else {
        x < y
    };
    match (is_max, a_less) {
        (true, true) | (false, false) => b,
        (true, false) | (false, true) => a,
    }
}

/// `min.f32` / `max.f32` on bits.
pub fn min_max_f32(a: u32, b: u32, is_max: bool, nan_mode: bool) -> u32 {
    min_max_bits(a as u64, b as u64, Fmt::F32, is_max, nan_mode) as u32
}

/// Exact `a + b` (both f64, finite) rounded once to `fmt`. Exactly correct for every target
/// format up to f64.
pub fn add_round(a: f64, b: f64, fmt: Fmt, rnd: Rnd) -> u64 {
    if !a.is_finite() || !b.is_finite() {
        return f64_to_fmt(special_add(a, b), fmt, rnd);
    }
    let (na, ma, ea) = decompose(a);
    let (nb, mb, eb) = decompose(b);
    exact_sum(na, ma, ea, nb, mb, eb, fmt, rnd)
}

fn special_add(a: f64, b: f64) -> f64 {
    let r = a + b;
    if r.is_nan() {
        f64::NAN
    } else {
        r
    }
}

/// Exact sum of two values `(-1)^n * m * 2^e` with mantissas below 2^107, rounded once.
#[allow(clippy::too_many_arguments)]
fn exact_sum(na: bool, ma: u128, ea: i32, nb: bool, mb: u128, eb: i32, fmt: Fmt, rnd: Rnd) -> u64 {
    if ma == 0 && mb == 0 {
        // IEEE 754: x + (-x) is +0 except when rounding towards -inf; -0 + -0 = -0.
        let neg = if na == nb { na } else { rnd == Rnd::Rm };
        return if neg { fmt.sign_bit() } else { 0 };
    }
    if ma == 0 {
        return round_exact(nb, mb, eb, fmt, rnd);
    }
    if mb == 0 {
        return round_exact(na, ma, ea, fmt, rnd);
    }
    // Put the operand with the larger top bit first.
    let top = |m: u128, e: i32| 127 - m.leading_zeros() as i32 + e;
    let ((n1, m1, e1), (n2, mut m2, mut e2)) =
        if top(ma, ea) >= top(mb, eb) { ((na, ma, ea), (nb, mb, eb)) } else { ((nb, mb, eb), (na, ma, ea)) };
    // Headroom: m1 is shifted left so that the alignment stays within 127 bits. A second operand
    // entirely below the first's last bit by more than the headroom only matters as a sticky
    // bit: it is replaced by one unit just below the shifted first operand's last bit, which
    // keeps the exact sum strictly between the same two neighbours of any precision <= 53.
    let width1 = 128 - m1.leading_zeros() as i32;
    let room = 126 - width1;
    let floor_e = e1 - room;
    if e2 < floor_e {
        let top2 = top(m2, e2);
        if top2 < floor_e {
            m2 = 1;
            e2 = floor_e;
        } else {
            let drop = floor_e - e2;
            let sticky = m2 & ((1u128 << drop as u32) - 1) != 0;
            m2 = (m2 >> drop as u32) | sticky as u128;
            e2 = floor_e;
        }
    }
    let e = e1.min(e2);
    let a1 = m1 << (e1 - e) as u32;
    let a2 = m2 << (e2 - e) as u32;
    if n1 == n2 {
        round_exact(n1, a1 + a2, e, fmt, rnd)
    } else if a1 >= a2 {
        let d = a1 - a2;
        if d == 0 {
            return exact_sum(false, 0, 0, true, 0, 0, fmt, rnd);
        }
        round_exact(n1, d, e, fmt, rnd)
    } else {
        round_exact(n2, a2 - a1, e, fmt, rnd)
    }
}

/// Exact `a * b` rounded once to `fmt` (the product of two f64 fits in 106 bits).
pub fn mul_round(a: f64, b: f64, fmt: Fmt, rnd: Rnd) -> u64 {
    if !a.is_finite() || !b.is_finite() {
        return f64_to_fmt(a * b, fmt, rnd);
    }
    let (na, ma, ea) = decompose(a);
    let (nb, mb, eb) = decompose(b);
    round_exact(na != nb, ma * mb, ea + eb, fmt, rnd)
}

/// `a * b + c` with a single rounding to `fmt`, for operands whose product is exact in 53 bits
/// (f32, f16, bf16 operands: every `fma.rnd.{f32,f16,bf16}` and `fma.rnd.{f16x2,bf16x2}`).
/// For f64 operands the product is still exact (106 bits) and the sum is formed exactly as well.
pub fn fma_round(a: f64, b: f64, c: f64, fmt: Fmt, rnd: Rnd) -> u64 {
    if !a.is_finite() || !b.is_finite() || !c.is_finite() {
        return f64_to_fmt(special_add(a * b, c), fmt, rnd);
    }
    let (na, ma, ea) = decompose(a);
    let (nb, mb, eb) = decompose(b);
    let (nc, mc, ec) = decompose(c);
    let (np, mp, ep) = (na != nb, ma * mb, ea + eb);
    exact_sum(np, mp, ep, nc, mc, ec, fmt, rnd)
}

/// `a / b` correctly rounded to `fmt` with `rnd` (`div.rnd.{f32,f64}`): the quotient of the
/// mantissas is formed with at least 64 significant bits plus a sticky bit.
pub fn div_round(a: f64, b: f64, fmt: Fmt, rnd: Rnd) -> u64 {
    if !a.is_finite() || !b.is_finite() || a == 0.0 || b == 0.0 {
        return f64_to_fmt(a / b, fmt, rnd);
    }
    let (na, ma, ea) = decompose(a);
    let (nb, mb, eb) = decompose(b);
    // Normalise both mantissas to exactly 53 bits (subnormals have fewer).
    let (ma, ea) = normalise53(ma, ea);
    let (mb, eb) = normalise53(mb, eb);
    let num = ma << 72;
    let q = num / mb;
    let sticky = (num % mb != 0) as u128;
    round_exact(na != nb, (q << 1) | sticky, ea - 72 - eb - 1, fmt, rnd)
}

fn normalise53(m: u128, e: i32) -> (u128, i32) {
    let s = m.leading_zeros() as i32 - (128 - 53);
    (m << s as u32, e - s)
}

/// `sqrt.rnd.{f32,f64}` correctly rounded with `rnd`: an integer square root with a sticky bit.
pub fn sqrt_round(a: f64, fmt: Fmt, rnd: Rnd) -> u64 {
    if a.is_nan() || a < 0.0 {
        return fmt.canonical_nan();
    }
    if a == 0.0 || a.is_infinite() {
        return f64_to_fmt(a, fmt, rnd);
    }
    let (_, m, e) = decompose(a);
    let (m, e) = normalise53(m, e);
    // Make the exponent even and the radicand wide (about 120 bits -> 60-bit root).
    let mut sh = 120 - 53;
    if (e - sh) % 2 != 0 {
        sh -= 1;
    }
    let rad = m << sh as u32;
    let root = isqrt(rad);
    let sticky = (root * root != rad) as u128;
    round_exact(false, (root << 1) | sticky, (e - sh) / 2 - 1, fmt, rnd)
}

fn isqrt(n: u128) -> u128 {
    if n == 0 {
        return 0;
    }
    let mut x = (n as f64).sqrt() as u128;
    // Newton steps from the f64 estimate, then exact correction.
    for _ in 0..4 {
        if x == 0 {
            break;
        }
        x = (x + n / x) / 2;
    }
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

/// A packed operation on two 16-bit lanes of a `.f16x2` / `.bf16x2` register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfOp {
    /// `add.rn`
    Add,
    /// `sub.rn`
    Sub,
    /// `mul.rn`
    Mul,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `min.NaN`
    MinNan,
    /// `max.NaN`
    MaxNan,
}

/// A binary operation on one 16-bit half (`add/sub/mul/min/max.{f16,bf16}`), rounded to nearest
/// even once from the exact result (PTX ISA 9.0 §9.7.4 "Half Precision Floating-Point
/// Instructions"). `ftz` flushes f16 subnormal inputs and results (`.ftz` exists for f16 only).
pub fn half_binop(op: HalfOp, a: u16, b: u16, fmt: Fmt, ftz: bool) -> u16 {
    let flush = |h: u16| -> u16 {
        if ftz && (h as u64 >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1) == 0 {
            h & (fmt.sign_bit() as u16)
        } else {
            h
        }
    };
    let (a, b) = (flush(a), flush(b));
    let (x, y) = (fmt.to_f64(a as u64), fmt.to_f64(b as u64));
    let r = match op {
        HalfOp::Add => add_round(x, y, fmt, Rnd::Rn),
        HalfOp::Sub => add_round(x, -y, fmt, Rnd::Rn),
        HalfOp::Mul => mul_round(x, y, fmt, Rnd::Rn),
        HalfOp::Min => min_max_bits(a as u64, b as u64, fmt, false, false),
        HalfOp::Max => min_max_bits(a as u64, b as u64, fmt, true, false),
        HalfOp::MinNan => min_max_bits(a as u64, b as u64, fmt, false, true),
        HalfOp::MaxNan => min_max_bits(a as u64, b as u64, fmt, true, true),
    };
    let r = if fmt.is_nan(r) { fmt.canonical_nan() } else { r };
    flush(r as u16)
}

/// `fma.rn{.ftz}{.sat}{.relu}.{f16,bf16}`: one rounding of the exact `a * b + c`. `.relu` clamps
/// negative results to +0; `.sat` clamps to [0, 1] (NaN -> +0).
pub fn half_fma(a: u16, b: u16, c: u16, fmt: Fmt, relu: bool, sat: bool) -> u16 {
    let (x, y, z) = (fmt.to_f64(a as u64), fmt.to_f64(b as u64), fmt.to_f64(c as u64));
    let r = fma_round(x, y, z, fmt, Rnd::Rn);
    if fmt.is_nan(r) {
        return if sat { 0 } else { fmt.canonical_nan() as u16 };
    }
    let neg = r & fmt.sign_bit() != 0;
    if (relu || sat) && neg {
        return 0;
    }
    if sat && fmt.to_f64(r) > 1.0 {
        return f64_to_fmt(1.0, fmt, Rnd::Rn) as u16;
    }
    r as u16
}

/// Applies a 16-bit operation to both halves of packed `.f16x2` / `.bf16x2` registers
/// (low half = first element).
pub fn packed2(a: u32, b: u32, f: impl Fn(u16, u16) -> u16) -> u32 {
    let lo = f(a as u16, b as u16) as u32;
    let hi = f((a >> 16) as u16, (b >> 16) as u16) as u32;
    lo | (hi << 16)
}

/// `neg` of a 16-bit float: flips the sign bit, NaN included (PTX ISA §9.7.4 "neg").
pub fn half_neg(a: u16) -> u16 {
    a ^ 0x8000
}

/// `abs` of a 16-bit float: clears the sign bit (PTX ISA §9.7.4 "abs").
pub fn half_abs(a: u16) -> u16 {
    a & 0x7fff
}

/// An `.approx` unary function (PTX ISA 9.0 §9.7.3.14-22: rcp, sqrt, rsqrt, sin, cos, lg2, ex2,
/// tanh). The VM computes them precisely (correctly rounded from an f64 evaluation), which is
/// within every documented bound; tests check the ISA's bounds, not this precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approx {
    /// `rcp.approx`: 1/x.
    Rcp,
    /// `sqrt.approx`.
    Sqrt,
    /// `rsqrt.approx`: 1/sqrt(x).
    Rsqrt,
    /// `sin.approx` (radians).
    Sin,
    /// `cos.approx` (radians).
    Cos,
    /// `lg2.approx`: log2(x).
    Lg2,
    /// `ex2.approx`: 2^x.
    Ex2,
    /// `tanh.approx`.
    Tanh,
}

/// Evaluates an `.approx` function on the exact input and rounds to `fmt` (f32, f16 or bf16);
/// NaN results are canonical. Special values follow the ISA tables: rcp(±0) = ±inf,
/// rsqrt(±0) = ±inf, sqrt/rsqrt/lg2 of a negative number = NaN, lg2(±0) = -inf, ex2(-inf) = +0,
/// sin/cos(±inf) = NaN.
pub fn approx(op: Approx, x: f64, fmt: Fmt) -> u64 {
    let r = match op {
        Approx::Rcp => 1.0 / x,
        Approx::Sqrt => {
            return if x < 0.0 { fmt.canonical_nan() } else { sqrt_round(x, fmt, Rnd::Rn) };
        }
        Approx::Rsqrt => {
            if x == 0.0 {
                1.0 / x
            } else if x < 0.0 {
                f64::NAN
            } else {
                1.0 / x.sqrt()
            }
        }
        Approx::Sin => x.sin(),
        Approx::Cos => x.cos(),
        Approx::Lg2 => {
            if x == 0.0 {
                f64::NEG_INFINITY
            } else {
                x.log2()
            }
        }
        Approx::Ex2 => x.exp2(),
        Approx::Tanh => x.tanh(),
    };
    f64_to_fmt(r, fmt, Rnd::Rn)
}

/// `div.full.f32`: the ISA allows 2 ulp of error over the full range (PTX ISA 9.0 §9.7.3.8
/// "div"); the VM returns the correctly rounded quotient. `div.approx.f32` is allowed the same
/// 2 ulp for |b| in [2^-126, 2^126], and is also served by this function.
pub fn div_full_f32(a: f32, b: f32) -> f32 {
    let q = a / b;
    if q.is_nan() {
        f32::from_bits(0x7fff_ffff)
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bf16 halfway cases written out by hand: f32 bits whose low 16 bits are exactly 0x8000
    /// sit halfway between two bf16 values; ties go to the even upper half.
    #[test]
    fn bf16_rn_ties_to_even_on_hand_picked_halfway_patterns() {
        // 0x3f80_8000: halfway between 0x3f80 (even) and 0x3f81 -> 0x3f80.
        assert_eq!(f32_to_bf16(0x3f80_8000, Rnd::Rn), 0x3f80);
        // 0x3f81_8000: halfway between 0x3f81 (odd) and 0x3f82 -> 0x3f82.
        assert_eq!(f32_to_bf16(0x3f81_8000, Rnd::Rn), 0x3f82);
        // Just above halfway rounds up, just below rounds down.
        assert_eq!(f32_to_bf16(0x3f80_8001, Rnd::Rn), 0x3f81);
        assert_eq!(f32_to_bf16(0x3f80_7fff, Rnd::Rn), 0x3f80);
        // Negative halfway, odd -> away to even.
        assert_eq!(f32_to_bf16(0xbf81_8000, Rnd::Rn), 0xbf82);
        // Carry into the exponent: 0x3fff_8000 is halfway between 0x3fff (odd) and 0x4000.
        assert_eq!(f32_to_bf16(0x3fff_8000, Rnd::Rn), 0x4000);
        // Overflow: the largest f32 rounds to +inf under .rn, to max bf16 under .rz.
        assert_eq!(f32_to_bf16(0x7f7f_ffff, Rnd::Rn), 0x7f80);
        assert_eq!(f32_to_bf16(0x7f7f_ffff, Rnd::Rz), 0x7f7f);
        // Subnormal halfway: 0x0000_8000 is halfway between 0 and 0x0001 -> 0.
        assert_eq!(f32_to_bf16(0x0000_8000, Rnd::Rn), 0x0000);
        assert_eq!(f32_to_bf16(0x0001_8000, Rnd::Rn), 0x0002);
        // NaN -> canonical.
        assert_eq!(f32_to_bf16(0x7fc0_0001, Rnd::Rn), 0x7fff);
    }

    #[test]
    fn bf16_directed_modes_match_truncation_rules() {
        // A positive value strictly between 0x3f80 and 0x3f81.
        let x = 0x3f80_1234;
        assert_eq!(f32_to_bf16(x, Rnd::Rz), 0x3f80);
        assert_eq!(f32_to_bf16(x, Rnd::Rm), 0x3f80);
        assert_eq!(f32_to_bf16(x, Rnd::Rp), 0x3f81);
        let y = 0xbf80_1234;
        assert_eq!(f32_to_bf16(y, Rnd::Rz), 0xbf80);
        assert_eq!(f32_to_bf16(y, Rnd::Rm), 0xbf81);
        assert_eq!(f32_to_bf16(y, Rnd::Rp), 0xbf80);
        // Exact values are unchanged in every mode.
        for r in [Rnd::Rn, Rnd::Rz, Rnd::Rm, Rnd::Rp] {
            assert_eq!(f32_to_bf16(0x4049_0000, r), 0x4049);
        }
    }

    /// xorshift64: the inputs of the randomised checks below.
    fn xorshift(mut s: u64) -> u64 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }

    /// Rounding to nearest even written independently: bf16 = round-half-even of f32 bits >> 16.
    #[test]
    fn bf16_rn_matches_bit_arithmetic_definition_on_many_inputs() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            s = xorshift(s);
            let bits = s as u32;
            let x = f32::from_bits(bits);
            if x.is_nan() {
                continue;
            }
            let hi = bits >> 16;
            let lo = bits & 0xffff;
            let expect = if lo > 0x8000 || (lo == 0x8000 && hi & 1 == 1) { hi + 1 } else { hi };
            assert_eq!(f32_to_bf16(bits, Rnd::Rn) as u32, expect, "bits {bits:#x}");
        }
    }

    #[test]
    fn f16_rn_agrees_with_half_crate_and_directed_modes_bracket() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            s = xorshift(s);
            let bits = s as u32;
            let x = f32::from_bits(bits);
            if !x.is_finite() {
                continue;
            }
            let rn = f32_to_f16(bits, Rnd::Rn);
            assert_eq!(rn, half::f16::from_f32(x).to_bits(), "bits {bits:#x}");
            let dn = Fmt::F16.to_f64(f32_to_f16(bits, Rnd::Rm) as u64);
            let up = Fmt::F16.to_f64(f32_to_f16(bits, Rnd::Rp) as u64);
            let z = Fmt::F16.to_f64(f32_to_f16(bits, Rnd::Rz) as u64);
            let xv = x as f64;
            assert!(dn <= xv && xv <= up, "{x} not in [{dn}, {up}]");
            assert!(z.abs() <= xv.abs());
        }
    }

    #[test]
    fn f64_to_f32_directed_modes_bracket_the_value() {
        let x = 1.0f64 + 2f64.powi(-30);
        assert_eq!(f64_to_f32(x, Rnd::Rn), 1.0f32.to_bits());
        assert_eq!(f64_to_f32(x, Rnd::Rp), 1.0f32.to_bits() + 1);
        assert_eq!(f64_to_f32(-x, Rnd::Rm), (-1.0f32).to_bits() + 1);
        assert_eq!(f64_to_f32(1e300, Rnd::Rz), f32::MAX.to_bits());
        assert_eq!(f64_to_f32(1e300, Rnd::Rn), f32::INFINITY.to_bits());
        assert_eq!(f64_to_f32(-1e300, Rnd::Rp), (-f32::MAX).to_bits());
        // Smallest f32 subnormal, halfway below it: ties to even (0).
        assert_eq!(f64_to_f32(2f64.powi(-150), Rnd::Rn), 0);
        assert_eq!(f64_to_f32(2f64.powi(-150), Rnd::Rp), 1);
        assert_eq!(f64_to_f32(3.0 * 2f64.powi(-150), Rnd::Rn), 2);
    }

    #[test]
    fn float_to_int_saturates_and_maps_nan_to_zero() {
        assert_eq!(float_to_int(f64::NAN, Rnd::Rz, true, 32), 0);
        assert_eq!(float_to_int(1e20, Rnd::Rz, true, 32), 0x7fff_ffff);
        assert_eq!(float_to_int(-1e20, Rnd::Rz, true, 32), 0x8000_0000);
        assert_eq!(float_to_int(-3.0, Rnd::Rz, false, 32), 0);
        assert_eq!(float_to_int(f64::INFINITY, Rnd::Rn, false, 8), 255);
        assert_eq!(float_to_int(2.5, Rnd::Rn, true, 32), 2);
        assert_eq!(float_to_int(3.5, Rnd::Rn, true, 32), 4);
        assert_eq!(float_to_int(-2.5, Rnd::Rm, true, 32), (-3i32) as u32 as u64);
        assert_eq!(float_to_int(-2.5, Rnd::Rp, true, 16), (-2i16) as u16 as u64);
        assert_eq!(float_to_int(-2.5, Rnd::Rz, true, 64), (-2i64) as u64);
        assert_eq!(float_to_int(1.8e19, Rnd::Rz, false, 64), 18_000_000_000_000_000_000);
    }

    #[test]
    fn int_to_float_rounds_wide_integers() {
        // 2^24 + 1 is halfway between 2^24 and 2^24 + 2: ties to even.
        assert_eq!(int_to_float((1 << 24) + 1, Fmt::F32, Rnd::Rn), 16_777_216f32.to_bits() as u64);
        assert_eq!(int_to_float((1 << 24) + 3, Fmt::F32, Rnd::Rn), 16_777_220f32.to_bits() as u64);
        assert_eq!(int_to_float((1 << 24) + 1, Fmt::F32, Rnd::Rp), 16_777_218f32.to_bits() as u64);
        assert_eq!(int_to_float(-((1 << 24) + 1), Fmt::F32, Rnd::Rm), (-16_777_218f32).to_bits() as u64);
        assert_eq!(int_to_float(u64::MAX as i128, Fmt::F64, Rnd::Rz), ((u64::MAX - 2047) as f64).to_bits());
        assert_eq!(int_to_float(u64::MAX as i128, Fmt::F64, Rnd::Rn), 2f64.powi(64).to_bits());
        assert_eq!(int_to_float(70000, Fmt::F16, Rnd::Rn), 0x7c00);
        assert_eq!(int_to_float(70000, Fmt::F16, Rnd::Rz), 0x7bff);
    }

    #[test]
    fn tf32_rna_ties_away_and_clears_low_bits() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: .rna goes away from zero.
        let x = 1.0f32 + 2f32.powi(-11);
        assert_eq!(f32_to_tf32_rna(x.to_bits(), false), (1.0f32 + 2f32.powi(-10)).to_bits());
        assert_eq!(f32_to_tf32_rna((-x).to_bits(), false), (-(1.0f32 + 2f32.powi(-10))).to_bits());
        let y = 1.0f32 + 2f32.powi(-12);
        assert_eq!(f32_to_tf32_rna(y.to_bits(), false), 1.0f32.to_bits());
        assert_eq!(f32_to_tf32_rna(f32::MAX.to_bits(), false), f32::INFINITY.to_bits());
        assert_eq!(f32_to_tf32_rna(f32::MAX.to_bits(), true), 0x7f7f_e000);
    }

    #[test]
    fn cvt_relu_and_satfinite() {
        assert_eq!(cvt_to_half(-1.5, Fmt::BF16, Rnd::Rn, true, false), 0);
        assert_eq!(cvt_to_half(1e10, Fmt::F16, Rnd::Rn, false, true), 0x7bff);
        assert_eq!(cvt_to_half(-1e10, Fmt::F16, Rnd::Rn, false, true), 0xfbff);
        assert_eq!(cvt_to_half(f64::NAN, Fmt::F16, Rnd::Rn, true, true), 0x7fff);
        assert_eq!(cvt_to_half(1e10, Fmt::F16, Rnd::Rn, false, false), 0x7c00);
    }

    #[test]
    fn min_max_nan_rules() {
        let nan = 0x7fc0_0000u32;
        let one = 1.0f32.to_bits();
        let two = 2.0f32.to_bits();
        assert_eq!(min_max_f32(nan, one, false, false), one);
        assert_eq!(min_max_f32(one, nan, true, false), one);
        assert_eq!(min_max_f32(nan, nan, true, false), 0x7fff_ffff);
        assert_eq!(min_max_f32(nan, one, false, true), 0x7fff_ffff);
        assert_eq!(min_max_f32(one, nan, true, true), 0x7fff_ffff);
        assert_eq!(min_max_f32(one, two, false, false), one);
        assert_eq!(min_max_f32(one, two, true, false), two);
        assert_eq!(min_max_f32(two, one, false, true), one);
        assert_eq!(min_max_f32(two, one, true, true), two);
        let (pz, nz) = (0u32, 0x8000_0000u32);
        assert_eq!(min_max_f32(pz, nz, false, false), nz);
        assert_eq!(min_max_f32(nz, pz, false, false), nz);
        assert_eq!(min_max_f32(pz, nz, true, false), pz);
        assert_eq!(min_max_f32(nz, pz, true, false), pz);
        // bf16 and f16 halves.
        assert_eq!(half_binop(HalfOp::Min, 0x7fc1, 0x3f80, Fmt::BF16, false), 0x3f80);
        assert_eq!(half_binop(HalfOp::MaxNan, 0x7e00, 0x3c00, Fmt::F16, false), 0x7fff);
        assert_eq!(half_binop(HalfOp::Max, 0xbc00, 0x3c00, Fmt::F16, false), 0x3c00);
    }

    /// The nearest f16 to `v` by search among the neighbours of a first guess, ties to the even
    /// encoding. (`half::f16::from_f64` goes through f32 and can round twice.)
    fn nearest_f16(v: f64) -> u16 {
        // Beyond max + half an ulp (65504 + 16) IEEE rounding to nearest overflows to infinity.
        if v.abs() >= 65520.0 {
            return if v < 0.0 { 0xfc00 } else { 0x7c00 };
        }
        let guess = half::f16::from_f64(v).to_bits();
        let mut best = guess;
        for cand in [guess.wrapping_sub(1), guess.wrapping_add(1)] {
            if (cand ^ guess) & 0x8000 != 0 {
                continue;
            }
            let (dc, db) =
                ((half::f16::from_bits(cand).to_f64() - v).abs(), (half::f16::from_bits(best).to_f64() - v).abs());
            if dc < db || (dc == db && cand & 1 == 0) {
                best = cand;
            }
        }
        best
    }

    /// Exact references: every f16 sum/product is exact in f64, so rounding the f64 once to the
    /// nearest f16 is an independent definition.
    #[test]
    fn packed_f16_arithmetic_rounds_once() {
        let mut s = 0xdead_beef_cafe_f00du64;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (a, b, c) = (s as u16, (s >> 16) as u16, (s >> 32) as u16);
            let (x, y, z) =
                (half::f16::from_bits(a).to_f64(), half::f16::from_bits(b).to_f64(), half::f16::from_bits(c).to_f64());
            if !(x.is_finite() && y.is_finite() && z.is_finite()) {
                continue;
            }
            let exp_add = nearest_f16(x + y);
            let exp_mul = nearest_f16(x * y);
            let got_add = half_binop(HalfOp::Add, a, b, Fmt::F16, false);
            let got_mul = half_binop(HalfOp::Mul, a, b, Fmt::F16, false);
            // x+y == -0 vs +0 handled identically by f64 and IEEE.
            assert_eq!(got_add, exp_add, "{x} + {y}");
            assert_eq!(got_mul, exp_mul, "{x} * {y}");
            // fma: x*y is exact in f64; the sum is exact when the TwoSum error term is zero,
            // and then rounding it once is the reference.
            let (p, sum) = (x * y, x * y + z);
            let bb = sum - p;
            let err = (p - (sum - bb)) + (z - bb);
            if err == 0.0 && sum.abs() < 65520.0 {
                let exp_fma = half::f16::from_bits(nearest_f16(sum));
                assert_eq!(
                    half_fma(a, b, c, Fmt::F16, false, false),
                    exp_fma.to_bits(),
                    "fma {a:#x} {b:#x} {c:#x} {x} {y} {z} {sum}"
                );
            }
            let packed = packed2(a as u32 | (b as u32) << 16, b as u32 | (a as u32) << 16, |p, q| {
                half_binop(HalfOp::Add, p, q, Fmt::F16, false)
            });
            assert_eq!(packed as u16, exp_add);
            assert_eq!((packed >> 16) as u16, exp_add);
        }
    }

    /// bf16 fma: compare against an exact rational evaluation done in i128 on scaled integers.
    #[test]
    fn bf16_fma_single_rounding_with_exact_reference() {
        // Pick operands in a narrow exponent range so everything is an integer multiple of 2^-40.
        let mut s = 0x0123_4567_89ab_cdefu64;
        for _ in 0..50_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mk = |v: u64| -> u16 { ((v & 0x807f) | (((v >> 8) % 16 + 120) << 7)) as u16 };
            let (a, b, c) = (mk(s), mk(s >> 16), mk(s >> 32));
            let (x, y, z) = (bf16_to_f32(a) as f64, bf16_to_f32(b) as f64, bf16_to_f32(c) as f64);
            // x*y has 16 significant bits, z 8; exponents are within [-7, 8] so the exact sum
            // fits in 53 bits: f64 arithmetic is exact here and one RN rounding is the reference.
            let exact = x * y + z;
            assert_eq!(exact, x.mul_add(y, z));
            let reference = f64_to_fmt(exact, Fmt::BF16, Rnd::Rn) as u16;
            assert_eq!(half_fma(a, b, c, Fmt::BF16, false, false), reference);
            // And the reference itself is the nearest bf16: check its neighbours are not closer.
            let r = Fmt::BF16.to_f64(reference as u64);
            for nb in [reference.wrapping_add(1), reference.wrapping_sub(1)] {
                let n = Fmt::BF16.to_f64(nb as u64);
                if n.is_finite() {
                    assert!((n - exact).abs() >= (r - exact).abs());
                }
            }
        }
    }

    #[test]
    fn add_and_fma_with_directed_rounding_bracket_exact_results() {
        // 1 + 2^-60 under each mode, target f32.
        let tiny = 2f64.powi(-60);
        assert_eq!(add_round(1.0, tiny, Fmt::F32, Rnd::Rn) as u32, 1.0f32.to_bits());
        assert_eq!(add_round(1.0, tiny, Fmt::F32, Rnd::Rp) as u32, 1.0f32.to_bits() + 1);
        assert_eq!(add_round(1.0, -tiny, Fmt::F32, Rnd::Rz) as u32, 1.0f32.to_bits() - 1);
        assert_eq!(add_round(1.0, -tiny, Fmt::F32, Rnd::Rn) as u32, 1.0f32.to_bits());
        // Far below any headroom: still a sticky bit.
        let far = 2f64.powi(-900);
        assert_eq!(add_round(1.0, far, Fmt::F64, Rnd::Rp), (1.0f64).to_bits() + 1);
        assert_eq!(add_round(1.0, -far, Fmt::F64, Rnd::Rz), (1.0f64).to_bits() - 1);
        assert_eq!(add_round(1.0, -1.0, Fmt::F32, Rnd::Rm) as u32, 0x8000_0000);
        assert_eq!(add_round(1.0, -1.0, Fmt::F32, Rnd::Rn) as u32, 0);
        // fma.rn.f32 agrees with the correctly rounded f32 fma of the host.
        let mut s = 77u64;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (a, b, c) = (
                f32::from_bits((s as u32 & 0x83ff_ffff) | 0x3c00_0000),
                f32::from_bits(((s >> 20) as u32 & 0x83ff_ffff) | 0x3c00_0000),
                f32::from_bits(((s >> 40) as u32 & 0x87ff_ffff) | 0x3800_0000),
            );
            let got = fma_round(a as f64, b as f64, c as f64, Fmt::F32, Rnd::Rn) as u32;
            assert_eq!(got, a.mul_add(b, c).to_bits(), "{a} {b} {c}");
            let dn = f32::from_bits(fma_round(a as f64, b as f64, c as f64, Fmt::F32, Rnd::Rm) as u32);
            let up = f32::from_bits(fma_round(a as f64, b as f64, c as f64, Fmt::F32, Rnd::Rp) as u32);
            assert!(dn <= up);
            let exact = (a as f64) * (b as f64) + c as f64; // exact to within 2^-100 relative
            assert!((dn as f64) <= exact && exact <= up as f64);
        }
    }

    #[test]
    fn div_and_sqrt_round_correctly() {
        let mut s = 99u64;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let a = f32::from_bits(s as u32 & 0x7fff_ffff);
            let b = f32::from_bits((s >> 32) as u32 & 0x7fff_ffff);
            if !a.is_finite() || !b.is_finite() || b == 0.0 {
                continue;
            }
            assert_eq!(div_round(a as f64, b as f64, Fmt::F32, Rnd::Rn) as u32, (a / b).to_bits());
            assert_eq!(sqrt_round(a as f64, Fmt::F32, Rnd::Rn) as u32, a.sqrt().to_bits());
            let (x, y) = (a as f64 * 1.37, b as f64 + 0.5);
            assert_eq!(div_round(x, y, Fmt::F64, Rnd::Rn), (x / y).to_bits());
            assert_eq!(sqrt_round(x, Fmt::F64, Rnd::Rn), x.sqrt().to_bits());
            let dn = f64::from_bits(div_round(x, y, Fmt::F64, Rnd::Rm));
            let up = f64::from_bits(div_round(x, y, Fmt::F64, Rnd::Rp));
            assert!(dn <= up && (up.to_bits() - dn.to_bits()) <= 1);
        }
        // sqrt(2) rounded to nearest f32 lies below the true root, so .rz agrees and .rp is one above.
        assert_eq!(sqrt_round(2.0, Fmt::F32, Rnd::Rz) as u32, 2f32.sqrt().to_bits());
        assert_eq!(sqrt_round(2.0, Fmt::F32, Rnd::Rp) as u32, 2f32.sqrt().to_bits() + 1);
        assert_eq!(sqrt_round(-1.0, Fmt::F32, Rnd::Rn) as u32, 0x7fff_ffff);
    }

    /// Error bounds transcribed from the PTX ISA's description of each `.approx` f32 function
    /// (re-check them when the ISA changes) (PTX ISA 9.0
    /// §9.7.3.14 rcp: 1 ulp; §9.7.3.16 sqrt.approx: relative 2^-23; §9.7.3.17 rsqrt: relative
    /// 2^-22.9; §9.7.3.18 sin / §9.7.3.19 cos: absolute 2^-20.5 in [-100pi, 100pi]; §9.7.3.20
    /// lg2: absolute 2^-22 ; §9.7.3.21 ex2: 2 ulp; §9.7.3.22 tanh: relative 2^-11).
    #[test]
    fn approx_functions_within_documented_bounds() {
        let mut s = 5u64;
        let ulp = |x: f64| -> f64 {
            let f = x.abs() as f32;
            (f32::from_bits(f.to_bits() + 1) - f) as f64
        };
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            let pos = (u * 60.0 - 30.0).exp2(); // positive, wide range
            let got = |op: Approx, x: f64| f32::from_bits(approx(op, x, Fmt::F32) as u32) as f64;
            let x32 = pos as f32 as f64;
            assert!((got(Approx::Rcp, x32) - 1.0 / x32).abs() <= ulp(1.0 / x32));
            assert!((got(Approx::Sqrt, x32) / x32.sqrt() - 1.0).abs() <= 2f64.powf(-23.0));
            assert!((got(Approx::Rsqrt, x32) * x32.sqrt() - 1.0).abs() <= 2f64.powf(-22.9));
            // The ISA's absolute bound applies before the result is rounded to f32; add half an
            // ulp of the result for that final rounding.
            let l = x32.log2();
            assert!((got(Approx::Lg2, x32) - l).abs() <= 2f64.powf(-22.0) + ulp(l) / 2.0);
            let t = ((u * 2.0 - 1.0) * 100.0 * std::f64::consts::PI) as f32 as f64;
            assert!((got(Approx::Sin, t) - t.sin()).abs() <= 2f64.powf(-20.5));
            assert!((got(Approx::Cos, t) - t.cos()).abs() <= 2f64.powf(-20.5));
            let e = ((u * 2.0 - 1.0) * 120.0) as f32 as f64;
            assert!((got(Approx::Ex2, e) - e.exp2()).abs() <= 2.0 * ulp(e.exp2()));
            let h = ((u * 2.0 - 1.0) * 10.0) as f32 as f64;
            let th = h.tanh();
            assert!((got(Approx::Tanh, h) - th).abs() <= 2f64.powf(-11.0) * th.abs().max(f64::MIN_POSITIVE));
        }
        assert_eq!(approx(Approx::Rcp, 0.0, Fmt::F32), 0x7f80_0000);
        assert_eq!(approx(Approx::Rcp, -0.0, Fmt::F32), 0xff80_0000);
        assert_eq!(approx(Approx::Lg2, 0.0, Fmt::F32), 0xff80_0000);
        assert_eq!(approx(Approx::Lg2, -1.0, Fmt::F32), 0x7fff_ffff);
        assert_eq!(approx(Approx::Ex2, f64::NEG_INFINITY, Fmt::F32), 0);
        assert_eq!(approx(Approx::Sin, f64::INFINITY, Fmt::F32), 0x7fff_ffff);
        assert_eq!(approx(Approx::Rsqrt, -0.0, Fmt::F32), 0xff80_0000);
        assert_eq!(div_full_f32(1.0, 3.0), 1.0 / 3.0);
    }

    #[test]
    fn ftz_and_sat() {
        assert_eq!(ftz_f32(0x0000_0001), 0);
        assert_eq!(ftz_f32(0x8000_0001), 0x8000_0000);
        assert_eq!(ftz_f32(0x0080_0000), 0x0080_0000);
        assert_eq!(sat_f32(f32::NAN), 0.0);
        assert_eq!(sat_f32(1.5), 1.0);
        assert_eq!(sat_f32(-0.5), 0.0);
    }
}
