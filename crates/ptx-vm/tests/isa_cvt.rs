//! `cvt` rounding and `min`/`max` NaN rules on the VM against the PTX ISA (PTX ISA 9.0
//! §9.7.9.21 "cvt", §9.4.1 "Rounding Modifiers", §9.7.3.10 "min", §9.7.3.11 "max", and the
//! half-precision forms of §9.7.4). Expected values are computed here from the definitions
//! (bit arithmetic, or searches over every f16), not with the VM's own conversion code.

mod isa_common;
use isa_common::{run_u32, Rng, HEADER};

/// A kernel that applies `body` to element i of `a` (and `b`), writing `n_out` u32 arrays.
/// `body` sees %fa, %fb (f32), %ra, %rb (b32), and must leave results in %o0 .. %o{n_out-1}.
fn kernel(body: &str, n_out: usize) -> String {
    let outs: String = (0..n_out).map(|k| format!(", .param .u64 po{k}")).collect();
    let stores: String = (0..n_out)
        .map(|k| {
            format!(
                "    ld.param.u64 %rd10, [po{k}];\n    cvta.to.global.u64 %rd10, %rd10;\n    add.s64 %rd11, %rd10, %rd3;\n    st.global.u32 [%rd11], %o{k};\n"
            )
        })
        .collect();
    format!(
        "{HEADER}
.visible .entry cvt_test(.param .u64 pa, .param .u64 pb{outs}, .param .u32 pn)
{{
    .reg .b32 %ra, %rb, %r<8>, %o<16>;
    .reg .f32 %fa, %fb, %f<8>;
    .reg .b16 %h<8>;
    .reg .pred %p<4>;
    .reg .b64 %rd<16>;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u32 %r1, [pn];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.u32 %r5, %r2, %r3, %r4;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra DONE;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd1, %rd3;
    add.s64 %rd5, %rd2, %rd3;
    ld.global.b32 %ra, [%rd4];
    ld.global.b32 %rb, [%rd5];
    mov.b32 %fa, %ra;
    mov.b32 %fb, %rb;
{body}
{stores}DONE:
    ret;
}}
"
    )
}

fn run(body: &str, n_out: usize, a: &[u32], b: &[u32]) -> Vec<Vec<u32>> {
    let n = a.len();
    let blocks = n.div_ceil(128) as u32;
    run_u32(&kernel(body, n_out), "cvt_test", blocks, 128, &[a, b], &vec![n; n_out], &[n as u32], 0xcd)
}

/// Hand-picked f32 bit patterns: bf16 and f16 halfway points, carries into the exponent,
/// overflow, subnormals, zeros, infinities, NaNs; then random patterns.
fn inputs() -> Vec<u32> {
    let mut v = vec![
        0x3f80_8000, // halfway between bf16 0x3f80 (even) and 0x3f81
        0x3f81_8000, // halfway between 0x3f81 (odd) and 0x3f82
        0x3f80_8001,
        0x3f80_7fff,
        0xbf81_8000,
        0x3fff_8000, // halfway, rounds up into the next binade
        0x7f7f_ffff, // largest f32: beyond bf16 max + half ulp
        0x7f7f_7fff,
        0x0000_8000, // subnormal halfway to zero
        0x0001_8000,
        0x0000_0001,
        0x8000_0001,
        0x0000_0000,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_1234,
        0x7f80_0001,
        0x3f80_1000, // f16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10
        0x3f80_3000, // f16: 1 + 3 * 2^-11: halfway, odd below -> up
        0x477f_f000, // f16: 65520 = max + half ulp -> inf under .rn
        0x477f_efff, // just below 65520
        0x3380_0000, // 2^-24: smallest f16 subnormal
        0x3300_0000, // 2^-25: halfway between 0 and 2^-24 -> 0
        0x3340_0000, // 1.5 * 2^-25 -> 2^-24
        0x4b00_0001, // 2^23 + 1: integral
        0x3f00_0000, // 0.5: .rni ties to even -> 0
        0x3fc0_0000, // 1.5 -> 2
        0x4020_0000, // 2.5 -> 2
        0xc020_0000, // -2.5
        0x4f00_0000, // 2^31: beyond s32 max
        0xcf00_0001, // below s32 min
        0x4f80_0000, // 2^32: beyond u32 max
    ];
    let mut rng = Rng(0xc0ffee);
    while v.len() < 4096 {
        let x = rng.next_u32();
        // Half of them near 1.0 so that f16 rounding is exercised in the normal range.
        v.push(if v.len() % 2 == 0 { x } else { 0x3f00_0000 | (x & 0x80ff_ffff) });
    }
    v
}

fn is_nan32(b: u32) -> bool {
    b & 0x7f80_0000 == 0x7f80_0000 && b & 0x007f_ffff != 0
}

fn bf16_rn(b: u32) -> u32 {
    if is_nan32(b) {
        return 0x7fff;
    }
    let (hi, lo) = (b >> 16, b & 0xffff);
    if lo > 0x8000 || (lo == 0x8000 && hi & 1 == 1) {
        hi + 1
    } else {
        hi
    }
}

fn bf16_rz(b: u32) -> u32 {
    if is_nan32(b) {
        0x7fff
    } else {
        b >> 16
    }
}

/// Every f16 value (NaNs excluded), sorted by value, -0 before +0.
fn f16_table() -> Vec<(f64, u16)> {
    table(|h| half::f16::from_bits(h).to_f64())
}

/// Every bf16 value (NaNs excluded), sorted by value, -0 before +0.
fn bf16_table() -> Vec<(f64, u16)> {
    table(|h| half::bf16::from_bits(h).to_f64())
}

fn table(value: impl Fn(u16) -> f64) -> Vec<(f64, u16)> {
    let mut t: Vec<(f64, u16)> = (0..=u16::MAX).filter(|&h| !value(h).is_nan()).map(|h| (value(h), h)).collect();
    t.sort_by(|x, y| x.0.total_cmp(&y.0).then((y.1 >> 15).cmp(&(x.1 >> 15))));
    t
}

/// f32 -> f16 under a rounding direction, by search: 'n' nearest-even, 'z', 'm', 'p'.
fn f16_round(table: &[(f64, u16)], b: u32, dir: char) -> u32 {
    let x = f32::from_bits(b) as f64;
    if x == 0.0 {
        return b >> 16; // signed zero
    }
    round_in(table, x, dir, 65520.0)
}

/// Rounds the exact value `x` to the format listed in `table` (its largest finite value plus
/// half an ulp is `overflow`: from there on, to nearest goes to infinity).
fn round_in(table: &[(f64, u16)], x: f64, dir: char, overflow: f64) -> u32 {
    if x.is_nan() {
        return 0x7fff;
    }
    if x == 0.0 {
        // An exact zero keeps its sign (the sign bit is bit 15 in f16 and bf16).
        return if x.is_sign_negative() { 0x8000 } else { 0 };
    }
    // Largest <= x and smallest >= x (infinities are in the table).
    let i = table.partition_point(|e| e.0 <= x);
    let down = table[i - 1];
    let j = table.partition_point(|e| e.0 < x);
    let up = table[j];
    if down.0 == x {
        return down.1 as u32;
    }
    let pick = match dir {
        'm' => down,
        'p' => up,
        'z' => {
            if x > 0.0 {
                down
            } else {
                up
            }
        }
        _ => {
            if x.abs() >= overflow {
                return if x > 0.0 { table[table.len() - 1].1 as u32 } else { table[0].1 as u32 };
            }
            let (dd, du) = (x - down.0, up.0 - x);
            if dd < du || (dd == du && down.1 & 1 == 0) {
                down
            } else {
                up
            }
        }
    };
    let mut h = pick.1 as u32;
    // A result of zero keeps the sign of x.
    if pick.0 == 0.0 {
        h = if x < 0.0 { 0x8000 } else { 0 };
    }
    // Directed overflow: .rz never produces an infinity from a finite input.
    if dir == 'z' && (h == table[0].1 as u32 || h == table[table.len() - 1].1 as u32) {
        h = if x > 0.0 { table[table.len() - 2].1 as u32 } else { table[1].1 as u32 };
    }
    h
}

#[test]
fn cvt_bf16_and_f16_rounding_modes_match_definitions() {
    let a = inputs();
    let b: Vec<u32> = a.iter().rev().copied().collect();
    let body = "
    cvt.rn.bf16.f32 %h0, %fa;
    cvt.u32.u16 %o0, %h0;
    cvt.rz.bf16.f32 %h1, %fa;
    cvt.u32.u16 %o1, %h1;
    cvt.rn.relu.bf16.f32 %h2, %fa;
    cvt.u32.u16 %o2, %h2;
    cvt.rn.f16.f32 %h3, %fa;
    cvt.u32.u16 %o3, %h3;
    cvt.rz.f16.f32 %h4, %fa;
    cvt.u32.u16 %o4, %h4;
    cvt.rm.f16.f32 %h5, %fa;
    cvt.u32.u16 %o5, %h5;
    cvt.rp.f16.f32 %h6, %fa;
    cvt.u32.u16 %o6, %h6;
    cvt.rn.bf16x2.f32 %o7, %fa, %fb;
    cvt.f32.bf16 %f1, %h0;
    mov.b32 %o8, %f1;
";
    let out = run(body, 9, &a, &b);
    let table = f16_table();
    for i in 0..a.len() {
        let x = a[i];
        let ctx = format!("input {x:#010x} ({})", f32::from_bits(x));
        assert_eq!(out[0][i], bf16_rn(x), "cvt.rn.bf16.f32 {ctx}");
        assert_eq!(out[1][i], bf16_rz(x), "cvt.rz.bf16.f32 {ctx}");
        let relu = if bf16_rn(x) == 0x7fff {
            0x7fff
        } else if bf16_rn(x) & 0x8000 != 0 {
            0
        } else {
            bf16_rn(x)
        };
        assert_eq!(out[2][i], relu, "cvt.rn.relu.bf16.f32 {ctx}");
        for (k, dir) in [(3, 'n'), (4, 'z'), (5, 'm'), (6, 'p')] {
            assert_eq!(out[k][i], f16_round(&table, x, dir), "cvt.r{dir}.f16.f32 {ctx}");
        }
        // cvt.rn.bf16x2.f32 d, a, b: d[31:16] = cvt(a), d[15:0] = cvt(b).
        assert_eq!(out[7][i], bf16_rn(x) << 16 | bf16_rn(b[i]), "cvt.rn.bf16x2.f32 {ctx}");
        // bf16 -> f32 is exact: the bf16 bits become the high half (NaN stays NaN).
        let back = out[8][i];
        if bf16_rn(x) == 0x7fff {
            assert!(is_nan32(back), "cvt.f32.bf16 of NaN {ctx}");
        } else {
            assert_eq!(back, bf16_rn(x) << 16, "cvt.f32.bf16 {ctx}");
        }
    }
}

#[test]
fn cvt_float_to_int_saturates_nan_to_zero_and_int_to_float_rounds() {
    let a = inputs();
    let b = a.clone();
    let body = "
    cvt.rni.s32.f32 %o0, %fa;
    cvt.rzi.s32.f32 %o1, %fa;
    cvt.rmi.s32.f32 %o2, %fa;
    cvt.rpi.u32.f32 %o3, %fa;
    cvt.rn.f32.s32 %f1, %ra;
    mov.b32 %o4, %f1;
    cvt.rz.f32.u32 %f2, %ra;
    mov.b32 %o5, %f2;
    cvt.rna.tf32.f32 %o6, %fa;
    cvt.rni.f32.f32 %f3, %fa;
    mov.b32 %o7, %f3;
";
    let out = run(body, 8, &a, &b);
    for i in 0..a.len() {
        let bits = a[i];
        let x = f32::from_bits(bits) as f64;
        let ctx = format!("input {bits:#010x} ({x})");
        let sat_s = |r: f64| -> u32 {
            if r.is_nan() {
                0
            } else {
                r.clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32
            }
        };
        let sat_u = |r: f64| -> u32 {
            if r.is_nan() {
                0
            } else {
                r.clamp(0.0, u32::MAX as f64) as u32
            }
        };
        assert_eq!(out[0][i], sat_s(x.round_ties_even()), "cvt.rni.s32.f32 {ctx}");
        assert_eq!(out[1][i], sat_s(x.trunc()), "cvt.rzi.s32.f32 {ctx}");
        assert_eq!(out[2][i], sat_s(x.floor()), "cvt.rmi.s32.f32 {ctx}");
        assert_eq!(out[3][i], sat_u(x.ceil()), "cvt.rpi.u32.f32 {ctx}");
        // Rust's integer -> f32 cast rounds to nearest, ties to even.
        assert_eq!(out[4][i], (bits as i32 as f32).to_bits(), "cvt.rn.f32.s32 {ctx}");
        let mut z = bits as f32;
        if z as f64 > bits as f64 {
            z = f32::from_bits(z.to_bits() - 1);
        }
        assert_eq!(out[5][i], z.to_bits(), "cvt.rz.f32.u32 of {bits}");
        if !is_nan32(bits) {
            // tf32, ties away from zero: add half of the dropped 13 bits to the magnitude, then
            // truncate (a carry into the exponent is the correct result).
            let mag = bits & 0x7fff_ffff;
            let want = (bits & 0x8000_0000) | ((mag + 0x1000) & 0xffff_e000);
            let want = if mag >= 0x7f80_0000 { bits } else { want };
            assert_eq!(out[6][i], want, "cvt.rna.tf32.f32 {ctx}");
            assert_eq!(out[7][i], (x.round_ties_even() as f32).to_bits(), "cvt.rni.f32.f32 {ctx}");
        }
    }
}

/// min/max per PTX ISA: one NaN input -> the other input; two NaNs -> canonical NaN; `.NaN` ->
/// canonical NaN if either is NaN; -0.0 < +0.0.
fn minmax_ref(a: u32, b: u32, is_max: bool, nan_mode: bool) -> u32 {
    let (an, bn) = (is_nan32(a), is_nan32(b));
    if an || bn {
        if nan_mode || (an && bn) {
            return 0x7fff_ffff;
        }
        return if an { b } else { a };
    }
    // Order key: -0 below +0.
    let key = |v: u32| {
        let f = f32::from_bits(v) as f64;
        (f, if v == 0x8000_0000 { 0 } else { 1 })
    };
    let a_lt_b = key(a) < key(b);
    match (is_max, a_lt_b) {
        (false, true) | (true, false) => a,
        _ => b,
    }
}

fn half_minmax_ref(a: u16, b: u16, is_max: bool, nan_mode: bool, bf16: bool) -> u16 {
    let to32 = |h: u16| -> u32 {
        if bf16 {
            (h as u32) << 16
        } else {
            let f = half::f16::from_bits(h);
            if f.is_nan() {
                0x7fc0_0000
            } else {
                f.to_f32().to_bits()
            }
        }
    };
    let r = minmax_ref(to32(a), to32(b), is_max, nan_mode);
    if r == 0x7fff_ffff {
        0x7fff
    } else if r == to32(a) {
        a
    } else {
        b
    }
}

#[test]
fn min_max_follow_isa_nan_and_signed_zero_rules() {
    let specials = [
        0x7fc0_0000u32,
        0xffc0_0001,
        0x7f80_0001,
        0x7f80_0000,
        0xff80_0000,
        0x0000_0000,
        0x8000_0000,
        0x3f80_0000,
        0xbf80_0000,
        0x0000_0001,
    ];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &x in &specials {
        for &y in &specials {
            a.push(x);
            b.push(y);
        }
    }
    let mut rng = Rng(0x3141);
    for _ in 0..512 {
        a.push(rng.next_u32());
        b.push(rng.next_u32());
    }
    let body = "
    min.f32 %f1, %fa, %fb;
    mov.b32 %o0, %f1;
    max.f32 %f2, %fa, %fb;
    mov.b32 %o1, %f2;
    min.NaN.f32 %f3, %fa, %fb;
    mov.b32 %o2, %f3;
    max.NaN.f32 %f4, %fa, %fb;
    mov.b32 %o3, %f4;
    min.bf16x2 %o4, %ra, %rb;
    max.NaN.bf16x2 %o5, %ra, %rb;
    min.f16x2 %o6, %ra, %rb;
    max.f16x2 %o7, %ra, %rb;
";
    let out = run(body, 8, &a, &b);
    for i in 0..a.len() {
        let (x, y) = (a[i], b[i]);
        let ctx = format!("a {x:#010x} b {y:#010x}");
        assert_eq!(out[0][i], minmax_ref(x, y, false, false), "min.f32 {ctx}");
        assert_eq!(out[1][i], minmax_ref(x, y, true, false), "max.f32 {ctx}");
        assert_eq!(out[2][i], minmax_ref(x, y, false, true), "min.NaN.f32 {ctx}");
        assert_eq!(out[3][i], minmax_ref(x, y, true, true), "max.NaN.f32 {ctx}");
        let halves = |f: &dyn Fn(u16, u16) -> u16| -> u32 {
            f(x as u16, y as u16) as u32 | (f((x >> 16) as u16, (y >> 16) as u16) as u32) << 16
        };
        assert_eq!(out[4][i], halves(&|p, q| half_minmax_ref(p, q, false, false, true)), "min.bf16x2 {ctx}");
        assert_eq!(out[5][i], halves(&|p, q| half_minmax_ref(p, q, true, true, true)), "max.NaN.bf16x2 {ctx}");
        assert_eq!(out[6][i], halves(&|p, q| half_minmax_ref(p, q, false, false, false)), "min.f16x2 {ctx}");
        assert_eq!(out[7][i], halves(&|p, q| half_minmax_ref(p, q, true, false, false)), "max.f16x2 {ctx}");
    }
}

/// `x * y + z` when it is exact in f64 (checked with the TwoSum error term), else None.
fn exact_fma(x: f64, y: f64, z: f64) -> Option<f64> {
    let p = x * y; // exact: f16 and bf16 products have at most 22 significant bits
    let s = p + z;
    let bb = s - p;
    let err = (p - (s - bb)) + (z - bb);
    (err == 0.0 && s.is_finite()).then_some(s)
}

#[test]
fn packed_half_arithmetic_rounds_once_to_nearest_even() {
    let mut rng = Rng(0xf16f16);
    // Random halves with exponents kept near 1 most of the time, so that sums are mostly exact
    // in f64 and products rarely overflow; every fourth element unrestricted.
    let mut word = |bf16: bool| -> u32 {
        let mut half = || {
            let r = rng.next_u32();
            let h = if r % 4 == 0 {
                r >> 16
            } else if bf16 {
                (r & 0x807f) | ((r >> 8) % 24 + 115) << 7
            } else {
                (r & 0x83ff) | ((r >> 11) % 20 + 5) << 10
            };
            h & 0xffff
        };
        half() | half() << 16
    };
    let n = 4096;
    let a: Vec<u32> = (0..n).map(|i| word(i % 2 == 1)).collect();
    let b: Vec<u32> = (0..n).map(|i| word(i % 2 == 1)).collect();
    // c for the fmas is a lane rotation of a.
    let body = "
    add.rn.f16x2 %o0, %ra, %rb;
    mul.rn.f16x2 %o1, %ra, %rb;
    fma.rn.f16x2 %o2, %ra, %rb, %ra;
    fma.rn.bf16x2 %o3, %ra, %rb, %ra;
    neg.f16x2 %o4, %ra;
    abs.bf16x2 %o5, %ra;
";
    let out = run(body, 6, &a, &b);
    let (t16, tb16) = (f16_table(), bf16_table());
    let f16 = |h: u32| half::f16::from_bits(h as u16).to_f64();
    let bf = |h: u32| half::bf16::from_bits(h as u16).to_f64();
    // Largest finite + half an ulp: f16 65504 + 16, bf16 (2 - 2^-7) 2^127 + 2^119.
    let (of16, ofbf) = (65520.0, (2.0 - 2f64.powi(-7)) * 2f64.powi(127) + 2f64.powi(119));
    let mut checked_fma = 0;
    for i in 0..n {
        for lane in 0..2 {
            let (x, y) = ((a[i] >> (16 * lane)) & 0xffff, (b[i] >> (16 * lane)) & 0xffff);
            let get = |k: usize| (out[k][i] >> (16 * lane)) & 0xffff;
            let ctx = format!("element {i} half {lane}: a {x:#06x} b {y:#06x}");
            let nan16 = |h: u32| half::f16::from_bits(h as u16).is_nan();
            let nanbf = |h: u32| half::bf16::from_bits(h as u16).is_nan();
            if !nan16(x) && !nan16(y) {
                if let Some(s) = exact_fma(1.0, f16(x), f16(y)) {
                    assert_eq!(get(0), round_in(&t16, s, 'n', of16), "add.rn.f16x2 {ctx}");
                }
                let p = f16(x) * f16(y);
                if p.is_finite() {
                    assert_eq!(get(1), round_in(&t16, p, 'n', of16), "mul.rn.f16x2 {ctx}");
                }
                if let Some(s) = exact_fma(f16(x), f16(y), f16(x)) {
                    checked_fma += 1;
                    assert_eq!(get(2), round_in(&t16, s, 'n', of16), "fma.rn.f16x2 {ctx}");
                }
            }
            if !nanbf(x) && !nanbf(y) {
                if let Some(s) = exact_fma(bf(x), bf(y), bf(x)) {
                    checked_fma += 1;
                    assert_eq!(get(3), round_in(&tb16, s, 'n', ofbf), "fma.rn.bf16x2 {ctx}");
                }
            }
            // neg flips the sign bit, abs clears it (NaNs included).
            assert_eq!(get(4), x ^ 0x8000, "neg.f16x2 {ctx}");
            assert_eq!(get(5), x & 0x7fff, "abs.bf16x2 {ctx}");
        }
    }
    assert!(checked_fma > n, "too few exact fma references ({checked_fma})");
}
