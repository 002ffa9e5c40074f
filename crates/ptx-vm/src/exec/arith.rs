//! Integer, bit, float and half-precision arithmetic, comparisons and register moves: one
//! lane function over the warp's 32 lanes, or one lane at a time for the `Slow` operations.

use super::*;

/// `Op::Un`: a one-operand lane function.
#[inline(always)]
pub(super) fn exec_un(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Un { f, d, a, flags } = op else { return };
    if exec != 0 {
        let mut o = [0u64; 32];
        if flags & FTZ32 != 0 {
            f(&ftz_in(&warp.regs[*a as usize]), &mut o);
        } else {
            f(&warp.regs[*a as usize], &mut o);
        }
        post(&mut o, *flags);
        blend(&mut warp.regs[*d as usize], &o, exec);
    }
}

/// `Op::Bin`: a two-operand lane function.
#[inline(always)]
pub(super) fn exec_bin(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Bin { f, d, a, b, flags } = op else { return };
    if exec != 0 {
        let mut o = [0u64; 32];
        if flags & FTZ32 != 0 {
            f(&ftz_in(&warp.regs[*a as usize]), &ftz_in(&warp.regs[*b as usize]), &mut o);
        } else {
            f(&warp.regs[*a as usize], &warp.regs[*b as usize], &mut o);
        }
        post(&mut o, *flags);
        blend(&mut warp.regs[*d as usize], &o, exec);
    }
}

/// `Op::Tern`: a three-operand lane function.
#[inline(always)]
pub(super) fn exec_tern(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Tern { f, d, a, b, c, flags } = op else { return };
    if exec != 0 {
        let mut o = [0u64; 32];
        let r = &warp.regs;
        if flags & FTZ32 != 0 {
            f(&ftz_in(&r[*a as usize]), &ftz_in(&r[*b as usize]), &ftz_in(&r[*c as usize]), &mut o);
        } else {
            f(&r[*a as usize], &r[*b as usize], &r[*c as usize], &mut o);
        }
        post(&mut o, *flags);
        blend(&mut warp.regs[*d as usize], &o, exec);
    }
}

/// `Op::Quad`: a four-operand lane function (`bfi`, `lop3`).
#[inline(always)]
pub(super) fn exec_quad(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Quad { f, d, a, b, c, e } = op else { return };
    if exec != 0 {
        let mut o = [0u64; 32];
        let r = &warp.regs;
        f(&r[*a as usize], &r[*b as usize], &r[*c as usize], &r[*e as usize], &mut o);
        blend(&mut warp.regs[*d as usize], &o, exec);
    }
}

/// `setp`, with its optional complement predicate and boolean combination.
#[inline(always)]
pub(super) fn exec_setp(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Setp { f, d, dn, a, b, comb } = op else { return };
    if exec != 0 {
        let mut o = [0u64; 32];
        f(&warp.regs[*a as usize], &warp.regs[*b as usize], &mut o);
        let mut n = [0u64; 32];
        for l in 0..32 {
            n[l] = o[l] ^ 1;
        }
        if let Some((op, c, neg)) = comb {
            let cv = &warp.regs[*c as usize];
            for l in 0..32 {
                let p = (cv[l] & 1) ^ (*neg as u64);
                let f = |x: u64| match op {
                    BoolOp::And => x & p,
                    BoolOp::Or => x | p,
                    BoolOp::Xor => x ^ p,
                };
                o[l] = f(o[l]);
                n[l] = f(n[l]);
            }
        }
        blend(&mut warp.regs[*d as usize], &o, exec);
        if *dn != NO_REG {
            blend(&mut warp.regs[*dn as usize], &n, exec);
        }
    }
}

/// `set`: a comparison written as `one` or 0.
#[inline(always)]
pub(super) fn exec_set(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Set { f, d, a, b, one } = op else { return };
    if exec != 0 {
        let mut o = [0u64; 32];
        f(&warp.regs[*a as usize], &warp.regs[*b as usize], &mut o);
        for v in o.iter_mut() {
            *v = if *v != 0 { *one } else { 0 };
        }
        blend(&mut warp.regs[*d as usize], &o, exec);
    }
}

/// `mov` packing registers into one wider register.
#[inline(always)]
pub(super) fn exec_pack(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Pack { d, srcs, n, bits } = op else { return };
    let m = if *bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    for l in lanes_of(exec) {
        let mut v = 0u64;
        for (k, s) in srcs.iter().take(*n as usize).enumerate() {
            v |= (warp.regs[*s as usize][l] & m) << (k as u32 * *bits as u32);
        }
        warp.regs[*d as usize][l] = v;
    }
}

/// `mov` unpacking a register into narrower ones.
#[inline(always)]
pub(super) fn exec_unpack(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Unpack { dsts, n, bits, s } = op else { return };
    let m = if *bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    for l in lanes_of(exec) {
        let v = warp.regs[*s as usize][l];
        for (k, d) in dsts.iter().take(*n as usize).enumerate() {
            warp.regs[*d as usize][l] = (v >> (k as u32 * *bits as u32)) & m;
        }
    }
}

/// Extended-precision arithmetic through the carry flag (`add.cc`, `addc`, `mad.cc`, ...).
#[inline(always)]
pub(super) fn exec_carry(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Carry { k, d, a, b, c, cc } = op else { return };
    for l in lanes_of(exec) {
        let r = &mut warp.regs;
        let (x, y, z) = (r[*a as usize][l], r[*b as usize][l], r[*c as usize][l]);
        let cin = if k.carry_in { r[*cc as usize][l] & 1 } else { 0 };
        let bits = if k.wide { 64 } else { 32 };
        let m: u128 = if k.wide { u64::MAX as u128 } else { 0xffff_ffff };
        let (x, y, z) = (x as u128 & m, y as u128 & m, z as u128 & m);
        // PTX ISA 9.7.2: sub.cc computes a + ~b + 1 and subc a + ~b + CC.CF, so the
        // carry flag is the inverted borrow, as in the hardware.
        let (sum, carry) = if k.sub {
            let s = x + (!y & m) + if k.carry_in { cin as u128 } else { 1 };
            (s & m, (s >> bits) & 1)
        } else if let Some(hi) = k.mad {
            let p = x * y;
            let part = if hi { p >> bits } else { p & m };
            let s = part + z + cin as u128;
            (s & m, (s >> bits) & 1)
        } else {
            let s = x + y + cin as u128;
            (s & m, (s >> bits) & 1)
        };
        r[*d as usize][l] = sum as u64;
        if k.carry_out {
            r[*cc as usize][l] = carry as u64;
        }
    }
}

/// An operation with no lane function (half precision, directed rounding), one lane at a time.
#[inline(always)]
pub(super) fn exec_slow(warp: &mut Warp, exec: u32, op: &Op) {
    let Op::Slow { k, d, a, b, c } = op else { return };
    for l in lanes_of(exec) {
        let r = &warp.regs;
        let v = slow(*k, r[*a as usize][l], r[*b as usize][l], r[*c as usize][l]);
        warp.regs[*d as usize][l] = v;
    }
}

#[inline(always)]
pub(super) fn post(v: &mut Lanes, flags: u8) {
    if flags & NAN32 != 0 {
        for x in v.iter_mut() {
            if (*x as u32 & 0x7fff_ffff) > 0x7f80_0000 {
                *x = 0x7fff_ffff;
            }
        }
    }
    if flags & (FTZ32 | INT_OUT) == FTZ32 {
        for x in v.iter_mut() {
            *x = ftz32(*x);
        }
    }
    if flags & SAT32 != 0 {
        for x in v.iter_mut() {
            *x = sat32(*x);
        }
    }
    if flags & SAT64 != 0 {
        for x in v.iter_mut() {
            *x = sat64(*x);
        }
    }
}

#[inline(always)]
pub(super) fn ftz_in(v: &Lanes) -> Lanes {
    let mut o = *v;
    for x in o.iter_mut() {
        *x = ftz32(*x);
    }
    o
}

/// Evaluates a `Slow` operation for one lane.
pub(super) fn slow(k: Slow, a: u64, b: u64, c: u64) -> u64 {
    use semantics::float as sf;
    let two = |packed: bool, f: &dyn Fn(u16, u16, u16) -> u16| -> u64 {
        let lo = f(a as u16, b as u16, c as u16) as u64;
        if packed {
            lo | (f((a >> 16) as u16, (b >> 16) as u16, (c >> 16) as u16) as u64) << 16
        } else {
            lo
        }
    };
    match k {
        Slow::HalfBin { op, fmt, ftz, packed } => two(packed, &|x, y, _| sf::half_binop(op, x, y, fmt, ftz)),
        Slow::HalfFma { fmt, relu, sat, packed } => two(packed, &|x, y, z| sf::half_fma(x, y, z, fmt, relu, sat)),
        Slow::HalfApprox { op, fmt, packed } => {
            two(packed, &|x, _, _| sf::approx(op, fmt.to_f64(x as u64), fmt) as u16)
        }
        Slow::HalfNegAbs { abs, packed } => two(packed, &|x, _, _| if abs { sf::half_abs(x) } else { sf::half_neg(x) }),
        Slow::CvtHalf { fmt, rnd, relu, satfinite, f64_src, packed } => {
            let val = |x: u64| if f64_src { f64::from_bits(x) } else { f32::from_bits(x as u32) as f64 };
            let cv = |x: u64| sf::cvt_to_half(val(x), fmt, rnd, relu, satfinite) as u64;
            if packed {
                (cv(a) << 16) | cv(b)
            } else {
                cv(a)
            }
        }
        Slow::Tf32 { satfinite } => sf::f32_to_tf32_rna(a as u32, satfinite) as u64,
        Slow::F32Round { op, rnd } => {
            let (x, y, z) =
                (f32::from_bits(a as u32) as f64, f32::from_bits(b as u32) as f64, f32::from_bits(c as u32) as f64);
            round_op(op, rnd, x, y, z, sf::Fmt::F32)
        }
        Slow::F64Round { op, rnd } => {
            round_op(op, rnd, f64::from_bits(a), f64::from_bits(b), f64::from_bits(c), sf::Fmt::F64)
        }
    }
}

/// A directed-rounding add/sub/mul/fma/div, rounded once. Non-finite operands involve no rounding
/// and are left to IEEE arithmetic.
pub(super) fn round_op(op: u8, rnd: semantics::float::Rnd, x: f64, y: f64, z: f64, fmt: semantics::float::Fmt) -> u64 {
    use semantics::float as sf;
    let finite = x.is_finite()
        && (op >= 5 || y.is_finite())
        && (op != 3 || z.is_finite())
        && (op != 4 || y != 0.0)
        && (op != 5 || x >= 0.0)
        && (op != 6 || x != 0.0);
    if !finite {
        let v = match op {
            0 => x + y,
            1 => x - y,
            2 => x * y,
            3 => x.mul_add(y, z),
            5 => x.sqrt(),
            6 => 1.0 / x,
            _ => x / y,
        };
        return match (fmt == sf::Fmt::F32, v.is_nan()) {
            (true, true) => 0x7fff_ffff,
            (true, false) => (v as f32).to_bits() as u64,
            (false, _) => v.to_bits(),
        };
    }
    match op {
        0 => sf::add_round(x, y, fmt, rnd),
        1 => sf::add_round(x, -y, fmt, rnd),
        2 => sf::mul_round(x, y, fmt, rnd),
        3 => sf::fma_round(x, y, z, fmt, rnd),
        5 => sf::sqrt_round(x, fmt, rnd),
        6 => sf::div_round(1.0, x, fmt, rnd),
        _ => sf::div_round(x, y, fmt, rnd),
    }
}
