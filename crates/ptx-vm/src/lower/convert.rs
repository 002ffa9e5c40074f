//! Lowering of `cvt`: integer, float and half conversions with their rounding and saturation.

use super::*;

pub(super) fn cvt_ii<D: Int>(st: Ty, sat: bool) -> Option<F1> {
    macro_rules! pick {
        ($s:ty) => {
            Some(if sat { cvt_int::<D, $s, true> as F1 } else { cvt_int::<D, $s, false> as F1 })
        };
    }
    match st {
        Ty::U8 | Ty::B8 => pick!(u8),
        Ty::S8 => pick!(i8),
        Ty::U16 | Ty::B16 => pick!(u16),
        Ty::S16 => pick!(i16),
        Ty::U32 | Ty::B32 => pick!(u32),
        Ty::S32 => pick!(i32),
        Ty::U64 | Ty::B64 => pick!(u64),
        Ty::S64 => pick!(i64),
        _ => None,
    }
}

impl KernelLowering<'_> {
    pub(super) fn cvt(&mut self, ins: &ast::Instr, mods: &[&str], types: &[Ty]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if types.len() != 2 {
            return Err(bad());
        }
        let (dt, st) = (types[0], types[1]);
        const CVT_MODS: &[&str] =
            &["rn", "rz", "rm", "rp", "rna", "rni", "rzi", "rmi", "rpi", "ftz", "relu", "satfinite"];
        check_mods(mods, CVT_MODS, true, line, &full)?;
        let o = self.ops(ins, 2)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], st, line)?;
        let sat = has("sat");
        let ftz = has("ftz");
        let rnd = |i: bool| {
            let pick = |m: &str| has(m);
            if pick(if i { "rzi" } else { "rz" }) {
                Rnd::Rz
            } else if pick(if i { "rmi" } else { "rm" }) {
                Rnd::Rm
            } else if pick(if i { "rpi" } else { "rp" }) {
                Rnd::Rp
            } else {
                Rnd::Rn
            }
        };
        let un = |f: F1, flags: u8| Ok(Op::Un { f, d, a, flags });
        // Conversions to f16/bf16 (scalar, or packed with two sources where `a` goes to the upper
        // half) and to tf32, through `semantics::float` (PTX ISA 9.7.9.21).
        if matches!(dt, Ty::F16 | Ty::Bf16 | Ty::F16x2 | Ty::Bf16x2) && matches!(st, Ty::F32 | Ty::F64) {
            let packed = matches!(dt, Ty::F16x2 | Ty::Bf16x2);
            let b = if packed { self.src(o.get(2).ok_or_else(bad)?, st, line)? } else { self.imm(0) };
            let srnd = if has("rna") {
                sf::Rnd::Rna
            } else {
                match rnd(false) {
                    Rnd::Rn => sf::Rnd::Rn,
                    Rnd::Rz => sf::Rnd::Rz,
                    Rnd::Rm => sf::Rnd::Rm,
                    Rnd::Rp => sf::Rnd::Rp,
                }
            };
            let fmt = if matches!(dt, Ty::F16 | Ty::F16x2) { sf::Fmt::F16 } else { sf::Fmt::BF16 };
            let k = Slow::CvtHalf {
                fmt,
                rnd: srnd,
                relu: has("relu"),
                satfinite: has("satfinite"),
                f64_src: st == Ty::F64,
                packed,
            };
            let z = self.imm(0);
            return Ok(Op::Slow { k, d, a, b, c: z });
        }
        if dt == Ty::Tf32 && st == Ty::F32 {
            if !has("rna") {
                return Err(bad());
            }
            let z = self.imm(0);
            return Ok(Op::Slow { k: Slow::Tf32 { satfinite: has("satfinite") }, d, a, b: z, c: z });
        }
        let int = |t: Ty| !t.is_float() && t != Ty::Pred;
        if int(dt) && int(st) {
            let f: Option<F1> = match dt {
                Ty::U8 | Ty::B8 => cvt_ii::<u8>(st, sat),
                Ty::S8 => cvt_ii::<i8>(st, sat),
                Ty::U16 | Ty::B16 => cvt_ii::<u16>(st, sat),
                Ty::S16 => cvt_ii::<i16>(st, sat),
                Ty::U32 | Ty::B32 => cvt_ii::<u32>(st, sat),
                Ty::S32 => cvt_ii::<i32>(st, sat),
                Ty::U64 | Ty::B64 => cvt_ii::<u64>(st, sat),
                Ty::S64 => cvt_ii::<i64>(st, sat),
                _ => None,
            };
            return un(f.ok_or_else(bad)?, 0);
        }
        let fl = if ftz { FTZ32 } else { 0 } | if sat { SAT32 } else { 0 };
        match (dt, st) {
            (Ty::F32, Ty::F32) => {
                let f: F1 = match (rnd(true), has("rni") || has("rzi") || has("rmi") || has("rpi")) {
                    (_, false) => f1!(|a| a & 0xffff_ffff),
                    (Rnd::Rn, _) => f1!(|a| f32b(f32v(a).round_ties_even())),
                    (Rnd::Rz, _) => f1!(|a| f32b(f32v(a).trunc())),
                    (Rnd::Rm, _) => f1!(|a| f32b(f32v(a).floor())),
                    (Rnd::Rp, _) => f1!(|a| f32b(f32v(a).ceil())),
                };
                un(f, fl)
            }
            (Ty::F64, Ty::F64) => {
                let f: F1 = match (rnd(true), has("rni") || has("rzi") || has("rmi") || has("rpi")) {
                    (_, false) => f1!(|a| a),
                    (Rnd::Rn, _) => f1!(|a| f64b(f64v(a).round_ties_even())),
                    (Rnd::Rz, _) => f1!(|a| f64b(f64v(a).trunc())),
                    (Rnd::Rm, _) => f1!(|a| f64b(f64v(a).floor())),
                    (Rnd::Rp, _) => f1!(|a| f64b(f64v(a).ceil())),
                };
                un(f, if sat { SAT64 } else { 0 })
            }
            (Ty::F64, Ty::F32) => un(
                if ftz { f1!(|a| f64b(f32v(ftz32(a)) as f64)) } else { f1!(|a| f64b(f32v(a) as f64)) },
                if sat { SAT64 } else { 0 },
            ),
            (Ty::F32, Ty::F64) => un(
                match rnd(false) {
                    Rnd::Rn => f1!(|a| f32b(f64v(a) as f32)),
                    Rnd::Rz => f1!(|a| f32b(f64_to_f32(f64v(a), Rnd::Rz))),
                    Rnd::Rm => f1!(|a| f32b(f64_to_f32(f64v(a), Rnd::Rm))),
                    Rnd::Rp => f1!(|a| f32b(f64_to_f32(f64v(a), Rnd::Rp))),
                },
                fl,
            ),
            (Ty::F32, Ty::F16) => un(f1!(|a| f32b(sf::f16_to_f32(a as u16))), fl),
            (Ty::F32, Ty::Bf16) => un(f1!(|a| f32b(sf::bf16_to_f32(a as u16))), fl),
            (Ty::F64, Ty::F16) => un(f1!(|a| f64b(half::f16::from_bits(a as u16).to_f64())), 0),
            (Ty::F64, Ty::Bf16) => un(f1!(|a| f64b(half::bf16::from_bits(a as u16).to_f64())), 0),
            (Ty::F32 | Ty::F64, s) if int(s) => {
                let f64d = dt == Ty::F64;
                macro_rules! i2f {
                    ($t:ty) => {
                        match (f64d, rnd(false)) {
                            (false, Rnd::Rn) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rn))),
                            (false, Rnd::Rz) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rz))),
                            (false, Rnd::Rm) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rm))),
                            (false, Rnd::Rp) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rp))),
                            (true, Rnd::Rn) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rn))),
                            (true, Rnd::Rz) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rz))),
                            (true, Rnd::Rm) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rm))),
                            (true, Rnd::Rp) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rp))),
                        }
                    };
                }
                let f: F1 = match s {
                    Ty::U8 | Ty::B8 => i2f!(u8),
                    Ty::S8 => i2f!(i8),
                    Ty::U16 | Ty::B16 => i2f!(u16),
                    Ty::S16 => i2f!(i16),
                    Ty::U32 | Ty::B32 => i2f!(u32),
                    Ty::S32 => i2f!(i32),
                    Ty::U64 | Ty::B64 => i2f!(u64),
                    _ => i2f!(i64),
                };
                un(
                    f,
                    if f64d {
                        if sat {
                            SAT64
                        } else {
                            0
                        }
                    } else {
                        fl
                    },
                )
            }
            (dtt, Ty::F32 | Ty::F64 | Ty::F16 | Ty::Bf16) if int(dtt) => {
                // Float to integer: round in the mode, then saturate; NaN gives 0 (PTX ISA 9.7.9.21).
                // Rust's `as` saturates and maps NaN to 0, which is exactly that.
                let r = rnd(true) as u8;
                let src = st;
                macro_rules! f2i {
                    ($t:ty) => {{
                        fn go<const R: u8, const S: u8>(a: &Lanes, o: &mut Lanes) {
                            for i in 0..32 {
                                let x = match S {
                                    0 => f32v(a[i]) as f64,
                                    1 => f64v(a[i]),
                                    2 => half::f16::from_bits(a[i] as u16).to_f64(),
                                    _ => half::bf16::from_bits(a[i] as u16).to_f64(),
                                };
                                let m = match R {
                                    0 => Rnd::Rn,
                                    1 => Rnd::Rz,
                                    2 => Rnd::Rm,
                                    _ => Rnd::Rp,
                                };
                                o[i] = (round_int(x, m) as $t).to();
                            }
                        }
                        let s = match src {
                            Ty::F32 => 0u8,
                            Ty::F64 => 1,
                            Ty::F16 => 2,
                            _ => 3,
                        };
                        match (r, s) {
                            (0, 0) => go::<0, 0> as F1,
                            (1, 0) => go::<1, 0>,
                            (2, 0) => go::<2, 0>,
                            (_, 0) => go::<3, 0>,
                            (0, 1) => go::<0, 1>,
                            (1, 1) => go::<1, 1>,
                            (2, 1) => go::<2, 1>,
                            (_, 1) => go::<3, 1>,
                            (0, 2) => go::<0, 2>,
                            (1, 2) => go::<1, 2>,
                            (2, 2) => go::<2, 2>,
                            (_, 2) => go::<3, 2>,
                            (0, _) => go::<0, 3>,
                            (1, _) => go::<1, 3>,
                            (2, _) => go::<2, 3>,
                            (_, _) => go::<3, 3>,
                        }
                    }};
                }
                let pre = if ftz && st == Ty::F32 { FTZ32 } else { 0 };
                let f: F1 = match dtt {
                    Ty::U8 | Ty::B8 => f2i!(u8),
                    Ty::S8 => f2i!(i8),
                    Ty::U16 | Ty::B16 => f2i!(u16),
                    Ty::S16 => f2i!(i16),
                    Ty::U32 | Ty::B32 => f2i!(u32),
                    Ty::S32 => f2i!(i32),
                    Ty::U64 | Ty::B64 => f2i!(u64),
                    _ => f2i!(i64),
                };
                // Only the input flush applies here; the exec flushes inputs when FTZ32 is set
                // and the output flush is skipped for integer results by `INT_OUT`.
                Ok(Op::Un { f, d, a, flags: pre | INT_OUT })
            }
            _ => Err(bad()),
        }
    }
}
