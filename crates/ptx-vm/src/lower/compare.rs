//! Lowering of comparisons and selects: `setp`, `set`, `testp`, `selp`, `slct`.

use super::*;

#[inline(always)]
fn h2f(x: u16) -> f32 {
    half::f16::from_bits(x).to_f32()
}

#[inline(always)]
fn b2f(x: u16) -> f32 {
    half::bf16::from_bits(x).to_f32()
}

/// Comparison functions for `setp` (PTX ISA 9.7.9.12 / 9.7.4.1): ordered comparisons are false
/// when an operand is NaN, the `u` forms true.
/// `set.cmp.dtype.{f16x2,bf16x2}`: per-half comparisons through `semantics::compare::set_x2`, with
/// the operator, format, `.ftz` and the "true" pattern of the destination fixed at lowering.
pub(super) fn set_x2_fn(cmp: &str, dt: Ty, bf16: bool, ftz: bool) -> Option<F2> {
    use crate::semantics::compare::{set_x2, FCmp};
    fn go<const C: usize, const BF: bool, const FTZ: bool, const ONE: u16>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
        for i in 0..32 {
            o[i] = set_x2(FCmp::ALL[C], a[i] as u32, b[i] as u32, BF, FTZ, ONE) as u64;
        }
    }
    let one = match dt {
        Ty::F16x2 => 0x3c00,
        Ty::Bf16x2 => 0x3f80,
        Ty::U32 | Ty::S32 | Ty::B32 => 0xffff,
        _ => return None,
    };
    macro_rules! pick {
        ($c:literal) => {
            match (bf16, ftz, one) {
                (false, false, 0x3c00) => go::<$c, false, false, 0x3c00> as F2,
                (false, true, 0x3c00) => go::<$c, false, true, 0x3c00> as F2,
                (true, _, 0x3f80) => go::<$c, true, false, 0x3f80> as F2,
                (false, false, _) => go::<$c, false, false, 0xffff> as F2,
                (false, true, _) => go::<$c, false, true, 0xffff> as F2,
                (true, _, _) => go::<$c, true, false, 0xffff> as F2,
            }
        };
    }
    Some(match FCmp::parse(cmp)?.index() {
        0 => pick!(0),
        1 => pick!(1),
        2 => pick!(2),
        3 => pick!(3),
        4 => pick!(4),
        5 => pick!(5),
        6 => pick!(6),
        7 => pick!(7),
        8 => pick!(8),
        9 => pick!(9),
        10 => pick!(10),
        11 => pick!(11),
        12 => pick!(12),
        _ => pick!(13),
    })
}

pub(super) fn cmp_fn(cmp: &str, t: Ty, ftz: bool) -> Option<F2> {
    macro_rules! icmp {
        ($t:ty) => {
            match cmp {
                "eq" => f2!(|a, b| (<$t as Int>::from(a) == <$t as Int>::from(b)) as u64),
                "ne" => f2!(|a, b| (<$t as Int>::from(a) != <$t as Int>::from(b)) as u64),
                "lt" | "lo" => f2!(|a, b| (<$t as Int>::from(a) < <$t as Int>::from(b)) as u64),
                "le" | "ls" => f2!(|a, b| (<$t as Int>::from(a) <= <$t as Int>::from(b)) as u64),
                "gt" | "hi" => f2!(|a, b| (<$t as Int>::from(a) > <$t as Int>::from(b)) as u64),
                "ge" | "hs" => f2!(|a, b| (<$t as Int>::from(a) >= <$t as Int>::from(b)) as u64),
                _ => return None,
            }
        };
    }
    macro_rules! fcmp {
        ($conv:expr) => {
            match cmp {
                "eq" => f2!(|a, b| ($conv(a) == $conv(b)) as u64),
                "ne" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x != y && !x.is_nan() && !y.is_nan()) as u64
                }),
                "lt" => f2!(|a, b| ($conv(a) < $conv(b)) as u64),
                "le" => f2!(|a, b| ($conv(a) <= $conv(b)) as u64),
                "gt" => f2!(|a, b| ($conv(a) > $conv(b)) as u64),
                "ge" => f2!(|a, b| ($conv(a) >= $conv(b)) as u64),
                "equ" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x == y || x.is_nan() || y.is_nan()) as u64
                }),
                "neu" => f2!(|a, b| ($conv(a) != $conv(b)) as u64),
                "ltu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x < y || x.is_nan() || y.is_nan()) as u64
                }),
                "leu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x <= y || x.is_nan() || y.is_nan()) as u64
                }),
                "gtu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x > y || x.is_nan() || y.is_nan()) as u64
                }),
                "geu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x >= y || x.is_nan() || y.is_nan()) as u64
                }),
                "num" => f2!(|a, b| (!$conv(a).is_nan() && !$conv(b).is_nan()) as u64),
                "nan" => f2!(|a, b| ($conv(a).is_nan() || $conv(b).is_nan()) as u64),
                _ => return None,
            }
        };
    }
    Some(match t {
        Ty::U8 | Ty::B8 => icmp!(u8),
        Ty::S8 => icmp!(i8),
        Ty::U16 | Ty::B16 => icmp!(u16),
        Ty::S16 => icmp!(i16),
        Ty::U32 | Ty::B32 => icmp!(u32),
        Ty::S32 => icmp!(i32),
        Ty::U64 | Ty::B64 => icmp!(u64),
        Ty::S64 => icmp!(i64),
        // `.ftz` only changes subnormal inputs, which compare like zero then.
        Ty::F32 if ftz => fcmp!(|x: u64| f32v(ftz32(x))),
        Ty::F32 => fcmp!(f32v),
        Ty::F64 => fcmp!(f64v),
        Ty::F16 => fcmp!(|x: u64| h2f(x as u16)),
        Ty::Bf16 => fcmp!(|x: u64| b2f(x as u16)),
        _ => return None,
    })
}

impl KernelLowering<'_> {
    pub(super) fn testp(&self, mods: &[&str], d: R, a: R, f32: bool) -> Option<Op> {
        let has = |m: &str| mods.contains(&m);
        let f: F1 = match (f32, ()) {
            (true, _) if has("finite") => f1!(|a| f32v(a).is_finite() as u64),
            (true, _) if has("infinite") => f1!(|a| f32v(a).is_infinite() as u64),
            (true, _) if has("number") => f1!(|a| !f32v(a).is_nan() as u64),
            (true, _) if has("notanumber") => f1!(|a| f32v(a).is_nan() as u64),
            (true, _) if has("normal") => f1!(|a| f32v(a).is_normal() as u64),
            (true, _) if has("subnormal") => f1!(|a| f32v(a).is_subnormal() as u64),
            (false, _) if has("finite") => f1!(|a| f64v(a).is_finite() as u64),
            (false, _) if has("infinite") => f1!(|a| f64v(a).is_infinite() as u64),
            (false, _) if has("number") => f1!(|a| !f64v(a).is_nan() as u64),
            (false, _) if has("notanumber") => f1!(|a| f64v(a).is_nan() as u64),
            (false, _) if has("normal") => f1!(|a| f64v(a).is_normal() as u64),
            (false, _) if has("subnormal") => f1!(|a| f64v(a).is_subnormal() as u64),
            _ => return None,
        };
        Some(Op::Un { f, d, a, flags: 0 })
    }

    pub(super) fn setp(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let t = mods.iter().filter_map(|m| Ty::parse(m)).next_back().ok_or_else(bad)?;
        let cmp = *mods.first().ok_or_else(bad)?;
        check_mods(&mods[1..], &["and", "or", "xor", "ftz"], false, line, &full)?;
        let o = self.ops(ins, 3)?;
        let (d, dn) = self.dst_pair(&o[0], line)?;
        let a = self.src(&o[1], t, line)?;
        let b = self.src(&o[2], t, line)?;
        let comb = if mods.contains(&"and") {
            Some(BoolOp::And)
        } else if mods.contains(&"or") {
            Some(BoolOp::Or)
        } else if mods.contains(&"xor") {
            Some(BoolOp::Xor)
        } else {
            None
        };
        let comb = match comb {
            Some(op) => {
                let (c, neg) = self.pred_src(o.get(3).ok_or_else(bad)?, line)?;
                Some((op, c, neg))
            }
            None => None,
        };
        let f = cmp_fn(cmp, t, mods.contains(&"ftz")).ok_or_else(bad)?;
        Ok(Op::Setp { f, d, dn, a, b, comb })
    }

    /// `set`: a comparison written as an integer or float.
    pub(super) fn set(&mut self, ins: &ast::Instr, mods: &[&str], types: &[Ty], ftz: bool) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        // set.CmpOp.dtype.stype d, a, b: d = all ones (integer) or 1.0 (float) when true, else 0
        // (PTX ISA 9.7.9.11). The forms combining with a predicate are not implemented.
        if has("and") || has("or") || has("xor") || types.len() != 2 {
            return Err(bad());
        }
        let (dt, st) = (types[0], types[1]);
        let o = self.ops(ins, 3)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], st, line)?;
        let b = self.src(&o[2], st, line)?;
        let cmp = *mods.first().ok_or_else(bad)?;
        if matches!(st, Ty::F16x2 | Ty::Bf16x2) {
            let f = set_x2_fn(cmp, dt, st == Ty::Bf16x2, ftz).ok_or_else(bad)?;
            return Ok(Op::Bin { f, d, a, b, flags: 0 });
        }
        let f = cmp_fn(cmp, st, ftz).ok_or_else(bad)?;
        let one = match dt {
            Ty::F32 => 0x3f80_0000,
            Ty::F16 => 0x3c00,
            Ty::U32 | Ty::S32 | Ty::B32 => 0xffff_ffff,
            Ty::U16 | Ty::S16 | Ty::B16 => 0xffff,
            _ => return Err(bad()),
        };
        Ok(Op::Set { f, d, a, b, one })
    }

    /// `selp`: select by a predicate.
    pub(super) fn selp(&mut self, ins: &ast::Instr, ty: Option<Ty>) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let o = self.ops(ins, 4)?;
        let t = ty.ok_or_else(bad)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], t, line)?;
        let b = self.src(&o[2], t, line)?;
        let (c, neg) = self.pred_src(&o[3], line)?;
        let f = if neg {
            f3!(|a, b, c| if c & 1 == 0 { a } else { b })
        } else {
            f3!(|a, b, c| if c & 1 != 0 { a } else { b })
        };
        Ok(Op::Tern { f, d, a, b, c, flags: SELECT })
    }

    /// `slct`: select by the sign of a third operand.
    pub(super) fn slct(&mut self, ins: &ast::Instr, types: &[Ty], ty: Option<Ty>, ftz: bool) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let o = self.ops(ins, 4)?;
        let d = self.dst(&o[0], line)?;
        let t = types.first().copied().ok_or_else(bad)?;
        let ct = ty.ok_or_else(bad)?;
        let a = self.src(&o[1], t, line)?;
        let b = self.src(&o[2], t, line)?;
        let c = self.src(&o[3], ct, line)?;
        let f = if ct == Ty::F32 {
            f3!(|a, b, c| if f32v(c) >= 0.0 { a } else { b })
        } else {
            f3!(|a, b, c| if (c as u32 as i32) >= 0 { a } else { b })
        };
        Ok(Op::Tern { f, d, a, b, c, flags: SELECT | if ftz { FTZ32 } else { 0 } })
    }
}
