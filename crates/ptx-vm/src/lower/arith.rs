//! Lowering of integer, bit, float and half-precision arithmetic, `mov` and the dot products to lane
//! functions.

use super::*;

pub(super) fn mov_fn(t: Ty) -> F1 {
    match t.bytes() {
        1 if t == Ty::Pred => f1!(|a| a & 1),
        1 => f1!(|a| a & 0xff),
        2 => f1!(|a| a & 0xffff),
        4 => f1!(|a| a & 0xffff_ffff),
        _ => f1!(|a| a),
    }
}

impl KernelLowering<'_> {
    pub(super) fn int_op(&mut self, ins: &ast::Instr, head: &str, mods: &[&str], t: Ty) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = &ins.operands;
        const INT_OPS: &[&str] = &[
            "add", "sub", "mul", "mad", "mul24", "mad24", "sad", "div", "rem", "min", "max", "abs", "neg", "and", "or",
            "xor", "not", "cnot", "shl", "shr", "popc", "clz", "brev", "bfind", "bfe", "bfi", "bmsk", "shf", "prmt",
            "lop3",
        ];
        if !INT_OPS.contains(&head) {
            return Err(bad());
        }
        const INT_MODS: &[&str] =
            &["wide", "hi", "lo", "shiftamt", "wrap", "clamp", "l", "r", "f4e", "b4e", "rc8", "ecl", "ecr", "rc16"];
        let sat_ok = matches!(head, "add" | "sub") && t == Ty::S32;
        check_mods(mods, INT_MODS, sat_ok, line, &full)?;
        let n_src = match head {
            "abs" | "neg" | "not" | "cnot" | "popc" | "clz" | "brev" | "bfind" => 1,
            "mad" | "mad24" | "sad" | "bfe" | "shf" | "prmt" => 3,
            "bfi" | "lop3" => 4,
            _ => 2,
        };
        self.ops(ins, n_src + 1)?;
        // The second operand of shifts and bfe/bfi positions are u32 whatever the type.
        let src_ty = |i: usize| -> Ty {
            match head {
                "shl" | "shr" if i == 1 => Ty::U32,
                "bfe" if i > 0 => Ty::U32,
                "bfi" if i > 1 => Ty::U32,
                "mad" if has("wide") && i == 2 => {
                    if t.signed() {
                        Ty::S64
                    } else {
                        Ty::U64
                    }
                }
                _ => t,
            }
        };
        let d = self.dst(&o[0], line)?;
        let mut s = [NO_REG; 4];
        for i in 0..n_src {
            s[i] = self.src(&o[i + 1], src_ty(i), line)?;
        }
        let un = |f: Option<F1>| f.map(|f| Op::Un { f, d, a: s[0], flags: 0 }).ok_or_else(bad);
        let bin = |f: Option<F2>| f.map(|f| Op::Bin { f, d, a: s[0], b: s[1], flags: 0 }).ok_or_else(bad);
        let bitwise = |op: Result<Op>, extra: u8| {
            op.map(|o| match o {
                Op::Bin { f, d, a, b, flags } => Op::Bin { f, d, a, b, flags: flags | BITWISE | extra },
                o => o,
            })
        };
        let tern = |f: Option<F3>| f.map(|f| Op::Tern { f, d, a: s[0], b: s[1], c: s[2], flags: 0 }).ok_or_else(bad);
        let wide = has("wide");
        let hi = has("hi");
        match head {
            "add" if has("sat") => bin((t == Ty::S32).then_some(add_sat_s32 as F2)),
            "sub" if has("sat") => bin((t == Ty::S32).then_some(sub_sat_s32 as F2)),
            "add" => bin(by_int!(t, add)),
            "sub" => bin(by_int!(t, sub)),
            "mul" if wide => bin(by_int!(t, mul_wide)),
            "mul" if hi => bin(by_int!(t, mul_hi)),
            "mul" => bin(by_int!(t, mul_lo)),
            "mad" if wide => tern(by_int!(t, mad_wide)),
            "mad" if hi => tern(by_int!(t, mad_hi)),
            "mad" => tern(by_int!(t, mad_lo)),
            "mul24" if !hi => bin(match t {
                Ty::S32 => Some(mul24_lo::<i32> as F2),
                Ty::U32 => Some(mul24_lo::<u32> as F2),
                _ => None,
            }),
            "mad24" if !hi => tern(match t {
                Ty::S32 => Some(mad24_lo::<i32> as F3),
                Ty::U32 => Some(mad24_lo::<u32> as F3),
                _ => None,
            }),
            "sad" => tern(by_int!(t, sad)),
            "div" => bin(by_int!(t, div)),
            "rem" => bin(by_int!(t, rem)),
            "min" if !has("relu") => bin(by_int!(t, min)),
            "max" if !has("relu") => bin(by_int!(t, max)),
            "abs" => un(by_int!(t, abs)),
            "neg" => un(by_int!(t, neg)),
            "and" | "or" | "xor" | "not" | "cnot" if t == Ty::Pred => match head {
                "and" => bitwise(bin(Some(and::<u8> as F2)), PRED_OP),
                "or" => bitwise(bin(Some(or::<u8> as F2)), PRED_OP),
                "xor" => bin(Some(xor::<u8> as F2)),
                "not" => un(Some(f1!(|a| (a & 1) ^ 1))),
                _ => Err(bad()),
            },
            "and" => bitwise(bin(by_int!(t, and)), 0),
            "or" => bitwise(bin(by_int!(t, or)), 0),
            "xor" => bin(by_int!(t, xor)),
            "not" => un(by_int!(t, not)),
            "cnot" => un(by_int!(t, cnot)),
            "shl" => bin(by_int!(t, shl)),
            "shr" => bin(by_int!(t, shr)),
            "popc" => un(by_int!(t, popc)),
            "clz" => un(by_int!(t, clz)),
            "brev" => un(by_int!(t, brev)),
            "bfind" if has("shiftamt") => un(by_int!(t, bfind, true)),
            "bfind" => un(by_int!(t, bfind, false)),
            "bfe" => tern(by_int!(t, bfe)),
            "bfi" => by_int!(t, bfi).map(|f| Op::Quad { f, d, a: s[0], b: s[1], c: s[2], e: s[3] }).ok_or_else(bad),
            "bmsk" => bin(Some(if has("wrap") { bmsk::<true> } else { bmsk::<false> })),
            "shf" => {
                let f: F3 = match (has("l"), has("wrap")) {
                    (true, true) => shf::<true, true>,
                    (true, false) => shf::<true, false>,
                    (false, true) => shf::<false, true>,
                    (false, false) => shf::<false, false>,
                };
                tern(Some(f))
            }
            "prmt" => {
                let f: F3 = match () {
                    _ if has("f4e") => prmt::<1>,
                    _ if has("b4e") => prmt::<2>,
                    _ if has("rc8") => prmt::<3>,
                    _ if has("ecl") => prmt::<4>,
                    _ if has("ecr") => prmt::<5>,
                    _ if has("rc16") => prmt::<6>,
                    _ => prmt::<0>,
                };
                tern(Some(f))
            }
            "lop3" => Ok(Op::Quad { f: lop3, d, a: s[0], b: s[1], c: s[2], e: s[3] }),
            _ => Err(bad()),
        }
    }

    pub(super) fn carry(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let head = ins.opcode[0].as_str();
        let has = |m: &str| mods.contains(&m);
        let t = mods.iter().filter_map(|m| Ty::parse(m)).next_back().ok_or_else(|| VmError::Unsupported {
            what: ins.opcode.join("."),
            line,
            source: None,
        })?;
        let is_mad = head.starts_with("mad");
        let k = CarryKind {
            sub: head.starts_with("sub"),
            mad: if is_mad { Some(has("hi")) } else { None },
            carry_in: head.ends_with('c'),
            carry_out: has("cc"),
            wide: t.bytes() == 8,
        };
        if t.bytes() < 4 || (is_mad && !(has("hi") || has("lo"))) {
            return unsup(ins.opcode.join("."), line);
        }
        let o = self.ops(ins, if is_mad { 4 } else { 3 })?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], t, line)?;
        let b = self.src(&o[2], t, line)?;
        let c = if is_mad { self.src(&o[3], t, line)? } else { self.imm(0) };
        Ok(Op::Carry { k, d, a, b, c, cc: self.cc })
    }

    pub(super) fn float_op(
        &mut self,
        ins: &ast::Instr,
        head: &str,
        mods: &[&str],
        t: Ty,
        rnd: Rnd,
        flags32: u8,
    ) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = &ins.operands;
        const FLOAT_OPS: &[&str] = &[
            "add", "sub", "mul", "fma", "mad", "min", "max", "abs", "neg", "copysign", "div", "rcp", "sqrt", "rsqrt",
            "ex2", "lg2", "sin", "cos", "tanh", "testp",
        ];
        if !FLOAT_OPS.contains(&head) {
            return Err(bad());
        }
        const FLOAT_MODS: &[&str] = &[
            "rn",
            "rz",
            "rm",
            "rp",
            "ftz",
            "approx",
            "full",
            "NaN",
            "relu",
            "finite",
            "infinite",
            "number",
            "notanumber",
            "normal",
            "subnormal",
        ];
        check_mods(mods, FLOAT_MODS, true, line, &full)?;
        if mods.contains(&"relu") && !matches!(t, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
            return Err(bad());
        }
        let n_src = match head {
            "abs" | "neg" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => 1,
            "fma" | "mad" => 3,
            "testp" => 1,
            _ => 2,
        };
        self.ops(ins, n_src + 1)?;
        let d = self.dst(&o[0], line)?;
        let mut s = [NO_REG; 3];
        for i in 0..n_src {
            s[i] = self.src(&o[i + 1], t, line)?;
        }
        let approx = has("approx");
        let arith = !matches!(head, "abs" | "neg" | "copysign" | "min" | "max" | "testp");
        let flags = match t {
            // GPUs produce one canonical f32 NaN, 0x7fffffff (CUDA Programming Guide, floating-point
            // standard; PTX ISA 9.7.3), where Rust would propagate a payload.
            Ty::F32 if arith => flags32 | NAN32,
            Ty::F32 => flags32,
            Ty::F64 if has("sat") => SAT64,
            _ => 0,
        };
        let un = |f: F1| Op::Un { f, d, a: s[0], flags };
        let bin = |f: F2| Op::Bin { f, d, a: s[0], b: s[1], flags };
        let tern = |f: F3| Op::Tern { f, d, a: s[0], b: s[1], c: s[2], flags };
        let r = rnd as u8;
        let srnd = match rnd {
            Rnd::Rn => sf::Rnd::Rn,
            Rnd::Rz => sf::Rnd::Rz,
            Rnd::Rm => sf::Rnd::Rm,
            Rnd::Rp => sf::Rnd::Rp,
        };
        let round_op = match head {
            "add" => Some(0u8),
            "sub" => Some(1),
            "mul" => Some(2),
            "fma" | "mad" => Some(3),
            "div" if !approx && !has("full") => Some(4),
            "sqrt" if !approx => Some(5),
            "rcp" if !approx => Some(6),
            _ => None,
        };
        if let (Some(op), true, true) = (round_op, r != 0, t == Ty::F32 || t == Ty::F64) {
            if flags & (FTZ32 | SAT32 | SAT64) != 0 {
                return unsup(format!("{full} (directed rounding with .ftz/.sat)"), line);
            }
            let k = if t == Ty::F32 { Slow::F32Round { op, rnd: srnd } } else { Slow::F64Round { op, rnd: srnd } };
            let z = self.imm(0);
            let pick = |x: R| if x == NO_REG { z } else { x };
            return Ok(Op::Slow { k, d, a: pick(s[0]), b: pick(s[1]), c: pick(s[2]) });
        }
        if t == Ty::F32 {
            return Ok(match head {
                // Directed rounding of add/sub/mul/fma/div returned above (Slow::F32Round): here r == 0.
                "add" => bin(f2!(|a, b| f32b(f32v(a) + f32v(b)))),
                "sub" => bin(f2!(|a, b| f32b(f32v(a) - f32v(b)))),
                "mul" => bin(f2!(|a, b| f32b(f32v(a) * f32v(b)))),
                // fma.f32 rounds once (PTX ISA 9.7.3.6); `mad.f32` without a rounding mode is the
                // legacy unfused form, but nvcc only emits `mad.rn.f32`, which is fused.
                "fma" | "mad" => tern(f3!(|a, b, c| f32b(f32v(a).mul_add(f32v(b), f32v(c))))),
                "min" if has("NaN") => bin(f2!(|a, b| if f32v(a).is_nan() || f32v(b).is_nan() {
                    0x7fff_ffff
                } else {
                    f32b(fmin32(f32v(a), f32v(b)))
                })),
                "max" if has("NaN") => bin(f2!(|a, b| if f32v(a).is_nan() || f32v(b).is_nan() {
                    0x7fff_ffff
                } else {
                    f32b(fmax32(f32v(a), f32v(b)))
                })),
                "min" => bin(f2!(|a, b| f32b(fmin32(f32v(a), f32v(b))))),
                "max" => bin(f2!(|a, b| f32b(fmax32(f32v(a), f32v(b))))),
                "abs" => un(f1!(|a| a & 0x7fff_ffff)),
                "neg" => un(f1!(|a| (a ^ 0x8000_0000) & 0xffff_ffff)),
                "copysign" => bin(f2!(|a, b| (b & 0x7fff_ffff) | (a & 0x8000_0000))),
                // div.approx / div.full are within 2 ulp of the quotient (PTX ISA 9.7.3.8); the VM
                // returns the correctly rounded one, which meets that bound.
                "div" => bin(f2!(|a, b| f32b(f32v(a) / f32v(b)))),
                "rcp" if approx || r == 0 => un(f1!(|a| f32b(1.0 / f32v(a)))),
                "sqrt" if approx || r == 0 => un(f1!(|a| f32b(f32v(a).sqrt()))),
                "rsqrt" => un(f1!(|a| f32b((1.0 / (f32v(a) as f64).sqrt()) as f32))),
                "ex2" => un(f1!(|a| f32b((f32v(a) as f64).exp2() as f32))),
                "lg2" => un(f1!(|a| f32b((f32v(a) as f64).log2() as f32))),
                "sin" => un(f1!(|a| f32b((f32v(a) as f64).sin() as f32))),
                "cos" => un(f1!(|a| f32b((f32v(a) as f64).cos() as f32))),
                "tanh" => un(f1!(|a| f32b((f32v(a) as f64).tanh() as f32))),
                "testp" => self.testp(mods, d, s[0], true).ok_or_else(bad)?,
                _ => return Err(bad()),
            });
        }
        if t == Ty::F64 {
            return Ok(match head {
                "add" => bin(f2!(|a, b| f64b(f64v(a) + f64v(b)))),
                "sub" => bin(f2!(|a, b| f64b(f64v(a) - f64v(b)))),
                "mul" => bin(f2!(|a, b| f64b(f64v(a) * f64v(b)))),
                "fma" | "mad" => tern(f3!(|a, b, c| f64b(f64v(a).mul_add(f64v(b), f64v(c))))),
                "min" => bin(f2!(|a, b| f64b(fmin64(f64v(a), f64v(b))))),
                "max" => bin(f2!(|a, b| f64b(fmax64(f64v(a), f64v(b))))),
                "abs" => un(f1!(|a| a & 0x7fff_ffff_ffff_ffff)),
                "neg" => un(f1!(|a| a ^ (1 << 63))),
                "copysign" => bin(f2!(|a, b| (b & 0x7fff_ffff_ffff_ffff) | (a & (1 << 63)))),
                "div" => bin(f2!(|a, b| f64b(f64v(a) / f64v(b)))),
                "rcp" => un(f1!(|a| f64b(1.0 / f64v(a)))),
                "sqrt" => un(f1!(|a| f64b(f64v(a).sqrt()))),
                "rsqrt" => un(f1!(|a| f64b(1.0 / f64v(a).sqrt()))),
                "testp" => self.testp(mods, d, s[0], false).ok_or_else(bad)?,
                _ => return Err(bad()),
            });
        }
        self.half_op(ins, head, mods, t, d, s)
    }

    /// `vabsdiff4.dtype.atype.btype{.sat}{.add} d, a, b, c` with the default selectors, the forms
    /// `__vabsdiffu4`/`__vabsdiffs4` emit; byte selectors and the `.min`/`.max` secondary operations
    /// are refused by name.
    pub(super) fn vabsdiff4(&mut self, ins: &ast::Instr, mods: &[&str], types: &[Ty]) -> Result<Op> {
        use crate::semantics::simd::{vabsdiff4, vabsdiff4_add};
        let line = ins.line;
        let full = ins.opcode.join(".");
        check_mods(mods, &["sat", "add"], true, line, &full)?;
        let [dt, at, bt] = types[..] else { return unsup(full, line) };
        if ![dt, at, bt].iter().all(|t| matches!(t, Ty::U32 | Ty::S32)) {
            return unsup(full, line);
        }
        let o = self.ops(ins, 4)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], at, line)?;
        let b = self.src(&o[2], bt, line)?;
        let c = self.src(&o[3], Ty::U32, line)?;
        let (sa, sb) = (at == Ty::S32, bt == Ty::S32);
        if mods.contains(&"add") {
            fn go<const SA: bool, const SB: bool>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
                for i in 0..32 {
                    o[i] = vabsdiff4_add(a[i] as u32, b[i] as u32, c[i] as u32, SA, SB) as u64;
                }
            }
            let f: F3 = match (sa, sb) {
                (false, false) => go::<false, false>,
                (false, true) => go::<false, true>,
                (true, false) => go::<true, false>,
                (true, true) => go::<true, true>,
            };
            return Ok(Op::Tern { f, d, a, b, c, flags: 0 });
        }
        fn go<const SA: bool, const SB: bool, const SD: bool, const SAT: bool>(
            a: &Lanes,
            b: &Lanes,
            _c: &Lanes,
            o: &mut Lanes,
        ) {
            for i in 0..32 {
                o[i] = vabsdiff4(a[i] as u32, b[i] as u32, SA, SB, SD, SAT) as u64;
            }
        }
        macro_rules! pick {
            ($($sa:literal $sb:literal),*) => {
                match (sa, sb, dt == Ty::S32, mods.contains(&"sat")) {
                    $(($sa, $sb, false, false) => go::<$sa, $sb, false, false> as F3,
                      ($sa, $sb, false, true) => go::<$sa, $sb, false, true> as F3,
                      ($sa, $sb, true, false) => go::<$sa, $sb, true, false> as F3,
                      ($sa, $sb, true, true) => go::<$sa, $sb, true, true> as F3,)*
                }
            };
        }
        let f = pick!(false false, false true, true false, true true);
        Ok(Op::Tern { f, d, a, b, c, flags: 0 })
    }

    pub(super) fn half_op(
        &mut self,
        ins: &ast::Instr,
        head: &str,
        mods: &[&str],
        t: Ty,
        d: R,
        s: [R; 3],
    ) -> Result<Op> {
        // f16/bf16 arithmetic, scalar and packed (PTX ISA 9.7.4), through `semantics::float`.
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if has("rz") || has("rm") || has("rp") || (has("approx") && !matches!(head, "ex2" | "tanh")) {
            return Err(bad());
        }
        let packed = matches!(t, Ty::F16x2 | Ty::Bf16x2);
        let fmt = match t {
            Ty::F16 | Ty::F16x2 => sf::Fmt::F16,
            Ty::Bf16 | Ty::Bf16x2 => sf::Fmt::BF16,
            _ => return Err(bad()),
        };
        let ftz = has("ftz");
        let nan = has("NaN");
        if (has("sat") || has("relu")) && head != "fma" {
            return Err(bad());
        }
        let bin = |op| Slow::HalfBin { op, fmt, ftz, packed };
        let k = match head {
            "add" => bin(sf::HalfOp::Add),
            "sub" => bin(sf::HalfOp::Sub),
            "mul" => bin(sf::HalfOp::Mul),
            "min" => bin(if nan { sf::HalfOp::MinNan } else { sf::HalfOp::Min }),
            "max" => bin(if nan { sf::HalfOp::MaxNan } else { sf::HalfOp::Max }),
            "fma" => Slow::HalfFma { fmt, relu: has("relu"), sat: has("sat"), packed },
            // ex2.approx / tanh.approx on halves (PTX ISA 9.7.4.9, 9.7.4.10), computed precisely and
            // rounded once; the `.ftz` of the bf16 forms is not modelled (subnormal results are kept).
            "ex2" if has("approx") => Slow::HalfApprox { op: sf::Approx::Ex2, fmt, packed },
            "tanh" if has("approx") => Slow::HalfApprox { op: sf::Approx::Tanh, fmt, packed },
            "neg" => Slow::HalfNegAbs { abs: false, packed },
            "abs" => Slow::HalfNegAbs { abs: true, packed },
            _ => return Err(bad()),
        };
        let z = self.imm(0);
        let pick = |r: R| if r == NO_REG { z } else { r };
        Ok(Op::Slow { k, d, a: pick(s[0]), b: pick(s[1]), c: pick(s[2]) })
    }

    /// `mov`: a copy, a pack or unpack of a vector, or a clock register read.
    pub(super) fn mov(&mut self, ins: &ast::Instr, ty: Option<Ty>) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let o = self.ops(ins, 2)?;
        let t = ty.ok_or_else(bad)?;
        let pieces = match (&o[0], &o[1]) {
            (Operand::Vec(v), _) | (_, Operand::Vec(v)) => v.len(),
            _ => 1,
        };
        if t == Ty::B128 || !matches!(pieces, 1 | 2 | 4) || (pieces > 1 && t.bytes() < 2) {
            return Err(bad());
        }
        if let Operand::Vec(v) = &o[1] {
            let mut srcs = [NO_REG; 4];
            let piece = Ty::parse(&format!("b{}", t.bytes() as usize * 8 / v.len())).unwrap_or(Ty::B32);
            for (i, s) in v.iter().enumerate().take(4) {
                srcs[i] = self.src(s, piece, line)?;
            }
            let d = self.dst(&o[0], line)?;
            return Ok(Op::Pack { d, srcs, n: v.len() as u8, bits: (t.bytes() as usize * 8 / v.len()) as u8 });
        }
        if let Operand::Vec(v) = &o[0] {
            let mut dsts = [NO_REG; 4];
            for (i, s) in v.iter().enumerate().take(4) {
                dsts[i] = self.dst(s, line)?;
            }
            let s = self.src(&o[1], t, line)?;
            return Ok(Op::Unpack { dsts, n: v.len() as u8, bits: (t.bytes() as usize * 8 / v.len()) as u8, s });
        }
        let d = self.dst(&o[0], line)?;
        if let Operand::Name(n) = &o[1] {
            if let Some(Predefined::Clock(which)) = predefined(n) {
                return Ok(Op::Clock { d, which });
            }
        }
        let a = self.src(&o[1], t, line)?;
        Ok(Op::Un { f: mov_fn(t), d, a, flags: 0 })
    }

    /// `dp4a`: four-way byte dot product with accumulate.
    pub(super) fn dp4a(&mut self, ins: &ast::Instr, types: &[Ty]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let [at, bt] = types[..] else { return Err(bad()) };
        let o = self.ops(ins, 4)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], at, line)?;
        let b = self.src(&o[2], bt, line)?;
        let c = self.src(&o[3], Ty::U32, line)?;
        let f: F3 = match (at == Ty::S32, bt == Ty::S32) {
            (false, false) => dp4a::<false, false>,
            (false, true) => dp4a::<false, true>,
            (true, false) => dp4a::<true, false>,
            (true, true) => dp4a::<true, true>,
        };
        Ok(Op::Tern { f, d, a, b, c, flags: 0 })
    }

    /// `dp2a`: two-way dot product of 16-bit and byte halves with accumulate.
    pub(super) fn dp2a(&mut self, ins: &ast::Instr, mods: &[&str], types: &[Ty]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let [at, bt] = types[..] else { return Err(bad()) };
        let o = self.ops(ins, 4)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], at, line)?;
        let b = self.src(&o[2], bt, line)?;
        let c = self.src(&o[3], Ty::U32, line)?;
        fn go<const HI: bool, const SA: bool, const SB: bool>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
            for i in 0..32 {
                o[i] = crate::semantics::simd::dp2a(a[i] as u32, b[i] as u32, c[i] as u32, HI, SA, SB) as u64;
            }
        }
        let f: F3 = match (has("hi"), at == Ty::S32, bt == Ty::S32) {
            (false, false, false) => go::<false, false, false>,
            (false, false, true) => go::<false, false, true>,
            (false, true, false) => go::<false, true, false>,
            (false, true, true) => go::<false, true, true>,
            (true, false, false) => go::<true, false, false>,
            (true, false, true) => go::<true, false, true>,
            (true, true, false) => go::<true, true, false>,
            (true, true, true) => go::<true, true, true>,
        };
        Ok(Op::Tern { f, d, a, b, c, flags: 0 })
    }
}
