//! The CUDA math library as nvcc 13 compiles it (tests/cuda/sweep_math.cu) run on the VM over a
//! few hundred inputs, special values included, and checked against float64 CPU results: each
//! function within the maximum ulp error the CUDA C Programming Guide documents for it ("Mathematical
//! Functions" appendix; the bound is to the correctly rounded result, so the check against the
//! exact value allows half an ulp more). Functions the guide calls exact must match bit for bit
//! (NaN for NaN). The VM executes the library's polynomial code, `ex2/lg2/sin/cos/rcp/rsqrt.approx`,
//! `testp`, `copysign` and the rest instruction by instruction, so a wrong rule shows up here.

// Lane- and element-indexed loops read as the kernels do.
#![allow(clippy::needless_range_loop)]

mod sweep_common;

use ptx_vm::ParamBuilder;
use sweep_common::{module, Dev, Rng};

const PTX: &str = include_str!("ptx/sweep_math.ptx");

// The C math library of the host (glibc, linked by std) for what Rust's f64 lacks.
extern "C" {
    fn erf(x: f64) -> f64;
    fn erfc(x: f64) -> f64;
    fn lgamma(x: f64) -> f64;
    fn tgamma(x: f64) -> f64;
    fn j0(x: f64) -> f64;
    fn y0(x: f64) -> f64;
    fn remainder(x: f64, y: f64) -> f64;
    fn remquo(x: f64, y: f64, q: *mut i32) -> f64;
}

// SAFETY (all wrappers): the C functions are pure on their f64 arguments; `remquo` writes one i32
// through a pointer to a live local.
fn c_erf(x: f64) -> f64 {
    unsafe { erf(x) }
}
fn c_erfc(x: f64) -> f64 {
    unsafe { erfc(x) }
}
fn c_lgamma(x: f64) -> f64 {
    unsafe { lgamma(x) }
}
fn c_tgamma(x: f64) -> f64 {
    unsafe { tgamma(x) }
}
fn c_j0(x: f64) -> f64 {
    unsafe { j0(x) }
}
fn c_y0(x: f64) -> f64 {
    unsafe { y0(x) }
}
fn c_remainder(x: f64, y: f64) -> f64 {
    unsafe { remainder(x, y) }
}
fn c_remquo(x: f64, y: f64) -> (f64, i32) {
    let mut q = 0;
    let r = unsafe { remquo(x, y, &mut q) };
    (r, q)
}

/// erfc⁻¹(y) by bisection on the monotone erfc, to f64 precision.
fn erfcinv(y: f64) -> f64 {
    if y.is_nan() || !(0.0..=2.0).contains(&y) {
        return f64::NAN;
    }
    if y == 0.0 {
        return f64::INFINITY;
    }
    if y == 2.0 {
        return f64::NEG_INFINITY;
    }
    if y == 1.0 {
        return 0.0;
    }
    let (mut lo, mut hi) = (-30.0f64, 30.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if c_erfc(mid) > y {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn erfinv(x: f64) -> f64 {
    if x < 0.0 {
        -erfinv(-x)
    } else if x < 0.5 {
        // Near 0, 1 - x loses x's low bits: bisect on erf itself.
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..1100 {
            let mid = 0.5 * (lo + hi);
            if c_erf(mid) < x {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    } else {
        erfcinv(1.0 - x)
    }
}

/// The spacing of f32 values at `x` (the ulp of the binade, subnormals included).
fn ulp32(x: f64) -> f64 {
    let e = if x == 0.0 || !x.is_finite() { -126 } else { x.abs().log2().floor() as i32 };
    2f64.powi(e.max(-126) - 23)
}

fn ulp64(x: f64) -> f64 {
    let e = if x == 0.0 || !x.is_finite() { -1022 } else { x.abs().log2().floor() as i32 };
    2f64.powi(e.max(-1022) - 52)
}

/// Error of `got` against the exact `want`, in units of `ulp(want)`; 0 for matching NaN/inf,
/// infinity for a NaN/inf mismatch.
fn ulp_err(got: f64, want: f64, ulp: fn(f64) -> f64, max: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    // A result past the format's largest finite value rounds to infinity.
    let want = if want.abs() > max * (1.0 + ulp(max) / max / 2.0) { want.signum() * f64::INFINITY } else { want };
    if want.is_infinite() || got.is_infinite() {
        return if want == got { 0.0 } else { f64::INFINITY };
    }
    (got - want).abs() / ulp(want)
}

/// The inputs: special values, then magnitudes spread over the whole f32 range, then values
/// near the interesting points of [-10, 10].
fn inputs(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-45,
        -1e-45,
        1e-40,
        f32::MIN_POSITIVE,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        -2.0,
        std::f32::consts::PI,
        1e4,
        -1e4,
        1e30,
        -1e30,
        f32::MAX,
        88.7,
        -103.0,
        0.9999,
        -0.9999,
        1.5,
        2.5,
        -2.5,
        3.5,
        1e-7,
        100.25,
        0.25,
        1.0e-3,
        8.0,
        7.99,
        12.5,
        -10.5,
        2.4048,
        0.8935,
    ];
    while v.len() < n {
        let x = match rng.below(3) {
            0 => rng.uniform(-1.0, 1.0),
            1 => rng.uniform(-10.0, 10.0),
            _ => {
                let s = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                s * 2f64.powf(rng.uniform(-40.0, 40.0))
            }
        };
        v.push(x as f32);
    }
    v
}

type Ref = fn(f64, f64) -> f64;
type Dom = fn(f32, f32) -> bool;

fn all(_: f32, _: f32) -> bool {
    true
}

/// The columns of `sweep_math_f32`, in the kernel's order: name, documented max ulp error (to the
/// correctly rounded result), reference, and the inputs where that bound is documented.
fn f32_columns() -> Vec<(&'static str, f64, Ref, Dom)> {
    fn pow10(a: f64, _: f64) -> f64 {
        10f64.powf(a)
    }
    let trunc_int = |b: f32| (b as i32).clamp(-400, 400);
    let _ = trunc_int;
    vec![
        ("sinf", 2.0, |a, _| a.sin(), all),
        ("cosf", 2.0, |a, _| a.cos(), all),
        ("tanf", 4.0, |a, _| a.tan(), all),
        ("sincosf.sin", 2.0, |a, _| a.sin(), all),
        ("sincosf.cos", 2.0, |a, _| a.cos(), all),
        ("asinf", 2.0, |a, _| a.asin(), all),
        ("acosf", 2.0, |a, _| a.acos(), all),
        ("atanf", 2.0, |a, _| a.atan(), all),
        ("atan2f", 3.0, |a, b| a.atan2(b), all),
        ("sinhf", 3.0, |a, _| a.sinh(), all),
        ("coshf", 2.0, |a, _| a.cosh(), all),
        ("tanhf", 2.0, |a, _| a.tanh(), all),
        ("asinhf", 3.0, |a, _| a.asinh(), all),
        ("acoshf", 4.0, |a, _| a.acosh(), all),
        ("atanhf", 3.0, |a, _| a.atanh(), all),
        ("expf", 2.0, |a, _| a.exp(), all),
        ("exp2f", 2.0, |a, _| a.exp2(), all),
        ("exp10f", 2.0, pow10, all),
        ("expm1f", 1.0, |a, _| a.exp_m1(), all),
        ("logf", 1.0, |a, _| a.ln(), all),
        ("log2f", 1.0, |a, _| a.log2(), all),
        ("log10f", 2.0, |a, _| a.log10(), all),
        ("log1pf", 1.0, |a, _| a.ln_1p(), all),
        ("powf", 4.0, |a, b| a.powf(b), all),
        ("sqrtf", 0.0, |a, _| a.sqrt(), all),
        ("rsqrtf", 2.0, |a, _| 1.0 / a.sqrt(), all),
        ("cbrtf", 1.0, |a, _| a.cbrt(), all),
        ("rcbrtf", 1.0, |a, _| 1.0 / a.cbrt(), all),
        ("hypotf", 3.0, |a, b| a.hypot(b), all),
        ("fmodf", 0.0, |a, b| a % b, all),
        ("remainderf", 0.0, c_remainder, all),
        ("remquof", 0.0, |a, b| c_remquo(a, b).0, all),
        ("erff", 2.0, |a, _| c_erf(a), all),
        ("erfcf", 4.0, |a, _| c_erfc(a), all),
        ("erfinvf", 2.0, |a, _| erfinv(a), all),
        ("erfcinvf", 4.0, |a, _| erfcinv(a), all),
        // 6 ulp outside [-10.001, -2.264]; larger inside, where the guide gives none.
        ("lgammaf", 6.0, |a, _| c_lgamma(a), |a, _| !(a < 0.0 && a > -10.001)),
        ("tgammaf", 5.0, |a, _| c_tgamma(a), |a, _| a > 0.0 || a.fract() != 0.0 && a > -30.0),
        // 9 ulp for |x| < 8; an absolute error of 2.2e-6 beyond (checked in `bessel_tails`).
        ("j0f", 9.0, |a, _| c_j0(a), |a, _| a.abs() < 8.0 && c_j0(a as f64).abs() > 1e-3),
        ("y0f", 9.0, |a, _| c_y0(a), |a, _| a < 8.0 && c_y0(a as f64).abs() > 1e-3),
        ("normcdff", 5.0, |a, _| 0.5 * c_erfc(-a / std::f64::consts::SQRT_2), all),
        ("normcdfinvf", 5.0, |a, _| -std::f64::consts::SQRT_2 * erfcinv(2.0 * a), all),
        ("ldexpf", 0.0, |a, b| a * 2f64.powi((b as f32 as i32).clamp(-400, 400)), all),
        ("frexpf", 0.0, |a, _| frexp(a).0, all),
        ("modff.frac", 0.0, |a, _| if a.is_infinite() { 0f64.copysign(a) } else { (a - a.trunc()).copysign(a) }, all),
        ("modff.int", 0.0, |a, _| a.trunc(), all),
        ("scalbnf", 0.0, |a, b| a * 2f64.powi((b as f32 as i32).clamp(-400, 400)), all),
        ("logbf", 0.0, |a, _| logb(a as f32), all),
        ("nextafterf", 0.0, |a, b| nextafter(a as f32, b as f32) as f64, all),
        ("copysignf", 0.0, |a, b| a.copysign(b), all),
        (
            "fdimf",
            0.0,
            |a, b| {
                if a > b {
                    a - b
                } else if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    0.0
                }
            },
            all,
        ),
        ("fmaf", 0.0, |a, b| a.mul_add(b, 0.5), all),
        ("truncf", 0.0, |a, _| a.trunc(), all),
        ("roundf", 0.0, |a, _| a.round(), all),
        ("rintf", 0.0, |a, _| a.round_ties_even(), all),
        ("nearbyintf", 0.0, |a, _| a.round_ties_even(), all),
        ("floorf", 0.0, |a, _| a.floor(), all),
        ("ceilf", 0.0, |a, _| a.ceil(), all),
        // Intrinsics: __sinf/__cosf have an absolute error of 2^-21.41 on [-pi, pi]
        // (checked in `intrinsics_within_their_absolute_bounds`); the others in ulp.
        ("__sinf", f64::NAN, |a, _| a.sin(), |a, _| a.abs() <= std::f32::consts::PI),
        ("__cosf", f64::NAN, |a, _| a.cos(), |a, _| a.abs() <= std::f32::consts::PI),
        ("__expf", f64::NAN, |a, _| a.exp(), |a, _| a.abs() < 80.0),
        ("__logf", f64::NAN, |a, _| a.ln(), |a, _| a > 0.0),
        ("__powf", f64::NAN, |a, b| a.powf(b), |a, b| (0.5..=2.0).contains(&a) && b.abs() <= 4.0),
        ("__fdividef", 2.0, |a, b| a / b, |_, b| (2f32.powi(-126)..=2f32.powi(126)).contains(&b.abs())),
        ("__frcp_rn", 0.0, |a, _| 1.0 / a, all),
        ("__fsqrt_rn", 0.0, |a, _| a.sqrt(), all),
        ("__fmaf_rn", 0.0, |a, b| a.mul_add(b, 0.5), all),
    ]
}

fn frexp(a: f64) -> (f64, i32) {
    if a == 0.0 || !a.is_finite() {
        return (a, 0);
    }
    let e = a.abs().log2().floor() as i32 + 1;
    let m = a / 2f64.powi(e);
    // log2 may land one off at an exact power of two.
    if m.abs() >= 1.0 {
        (m / 2.0, e + 1)
    } else if m.abs() < 0.5 {
        (m * 2.0, e - 1)
    } else {
        (m, e)
    }
}

fn logb(a: f32) -> f64 {
    if a.is_nan() {
        f64::NAN
    } else if a == 0.0 {
        f64::NEG_INFINITY
    } else if a.is_infinite() {
        f64::INFINITY
    } else {
        (frexp(a as f64).1 - 1) as f64
    }
}

fn nextafter(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        return f32::NAN;
    }
    if a == b {
        return b;
    }
    if a == 0.0 {
        return f32::from_bits(1).copysign(b);
    }
    let bits = a.to_bits();
    let up = (b > a) == (a > 0.0);
    f32::from_bits(if up { bits + 1 } else { bits - 1 })
}

struct F32Run {
    x: Vec<f32>,
    y: Vec<f32>,
    out: Vec<f32>,
    iout: Vec<i32>,
}

fn run_f32() -> F32Run {
    let mut rng = Rng(0x3a7f);
    let n = 384;
    let x = inputs(&mut rng, n);
    let mut y = inputs(&mut rng, n);
    y.rotate_left(7); // pair special values with other special values
    let cols = f32_columns().len();
    let mut d = Dev::new();
    let md = module(PTX);
    let (xp, yp) = (d.upload(&x), d.upload(&y));
    let op = d.poisoned::<f32>(cols * n);
    let ip = d.poisoned::<i32>(5 * n);
    let p = ParamBuilder::new().ptr(xp).ptr(yp).ptr(op).ptr(ip).i32(n as i32);
    d.launch(&md, "sweep_math_f32", n.div_ceil(128) as u32, 128, p);
    F32Run { out: d.download(op, cols * n), iout: d.download(ip, 5 * n), x, y }
}

#[test]
fn f32_library_within_documented_ulp_bounds() {
    let r = run_f32();
    let n = r.x.len();
    let mut failures = Vec::new();
    for (k, (name, bound, f, dom)) in f32_columns().into_iter().enumerate() {
        if bound.is_nan() {
            continue;
        }
        let mut worst = (0.0f64, 0usize);
        for i in 0..n {
            let (a, b) = (r.x[i], r.y[i]);
            if !dom(a, b) {
                continue;
            }
            let want = f(a as f64, b as f64);
            let got = r.out[k * n + i];
            let e = ulp_err(got as f64, want, ulp32, f32::MAX as f64);
            // Exact functions: the sign of a zero counts too.
            let sign_ok = bound > 0.0 || got != 0.0 || want != 0.0 || got.is_sign_negative() == want.is_sign_negative();
            if e > worst.0 || !sign_ok {
                worst = (if sign_ok { e } else { f64::INFINITY }, i);
            }
        }
        if worst.0 > bound + 0.5 {
            let i = worst.1;
            failures.push(format!(
                "{name}({:e}, {:e}) = {:e}, want {:e}: {} ulp > {bound}",
                r.x[i],
                r.y[i],
                r.out[k * n + i],
                f(r.x[i] as f64, r.y[i] as f64),
                worst.0
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn f32_library_integer_results_are_exact() {
    let r = run_f32();
    let n = r.x.len();
    for i in 0..n {
        let (a, b) = (r.x[i], r.y[i]);
        let (rem, q) = c_remquo(a as f64, b as f64);
        if !rem.is_nan() {
            // CUDA returns the sign and at least the 3 low bits of the quotient.
            let (got, low) = (r.iout[i], q.abs() & 7);
            assert_eq!(got.abs() & 7, low, "remquof({a:e}, {b:e}) quotient {got}, want {q}");
            assert!(low == 0 || got.signum() == q.signum(), "remquof({a:e}, {b:e}) quotient {got}, want {q}");
        }
        if a.is_finite() {
            assert_eq!(r.iout[n + i], frexp(a as f64).1, "frexpf({a:e}) exponent");
        }
        let ilogb = if a == 0.0 || a.is_nan() {
            i32::MIN
        } else if a.is_infinite() {
            i32::MAX
        } else {
            frexp(a as f64).1 - 1
        };
        assert_eq!(r.iout[2 * n + i], ilogb, "ilogbf({a:e})");
        if a.abs() < 2e9 {
            assert_eq!(r.iout[3 * n + i], a.round_ties_even() as i32, "lrintf({a:e})");
            assert_eq!(r.iout[4 * n + i], a.round() as i32, "llroundf({a:e})");
        }
    }
}

#[test]
fn intrinsics_within_their_absolute_bounds() {
    let r = run_f32();
    let n = r.x.len();
    let cols = f32_columns();
    let col = |name: &str| cols.iter().position(|c| c.0 == name).unwrap();
    for i in 0..n {
        let (a, b) = (r.x[i], r.y[i]);
        let (a64, b64) = (a as f64, b as f64);
        if a.abs() <= std::f32::consts::PI {
            let s = r.out[col("__sinf") * n + i] as f64;
            let c = r.out[col("__cosf") * n + i] as f64;
            let tol = 2f64.powf(-21.41);
            assert!((s - a64.sin()).abs() <= tol, "__sinf({a:e}) = {s:e}");
            assert!((c - a64.cos()).abs() <= tol, "__cosf({a:e}) = {c:e}");
        }
        if a.abs() < 80.0 {
            // 2 + floor(|1.173 x|) ulp.
            let e = ulp_err(r.out[col("__expf") * n + i] as f64, a64.exp(), ulp32, f32::MAX as f64);
            assert!(e <= 2.5 + (1.173 * a64).abs().floor(), "__expf({a:e}): {e} ulp");
        }
        if a > 0.0 && a.is_finite() {
            let got = r.out[col("__logf") * n + i] as f64;
            if (0.5..=2.0).contains(&a) {
                assert!((got - a64.ln()).abs() <= 2f64.powf(-21.41), "__logf({a:e}) = {got:e}");
            } else if a >= f32::MIN_POSITIVE {
                let e = ulp_err(got, a64.ln(), ulp32, f32::MAX as f64);
                assert!(e <= 3.5, "__logf({a:e}): {e} ulp");
            }
        }
        if (0.5..=2.0).contains(&a) && b.abs() <= 4.0 {
            // exp2(y * log2(x)) with the approximate ex2/lg2: a relative error of a few 2^-22.
            let got = r.out[col("__powf") * n + i] as f64;
            let want = a64.powf(b64);
            assert!((got - want).abs() <= want * 2f64.powi(-19), "__powf({a:e}, {b:e}) = {got:e}, want {want:e}");
        }
    }
}

#[test]
fn bessel_tails_within_absolute_error() {
    let r = run_f32();
    let n = r.x.len();
    let cols = f32_columns();
    let col = |name: &str| cols.iter().position(|c| c.0 == name).unwrap();
    for i in 0..n {
        let a = r.x[i];
        if a.abs() >= 8.0 && a.is_finite() && a.abs() < 1e6 {
            let got = r.out[col("j0f") * n + i] as f64;
            assert!((got - c_j0(a as f64)).abs() <= 2.2e-6 + 1e-7, "j0f({a:e}) = {got:e}");
            if a > 0.0 {
                let got = r.out[col("y0f") * n + i] as f64;
                assert!((got - c_y0(a as f64)).abs() <= 2.2e-6 + 1e-7, "y0f({a:e}) = {got:e}");
            }
        }
    }
}

#[test]
fn f64_library_within_documented_ulp_bounds() {
    let mut rng = Rng(0x6464);
    let n = 256;
    let x: Vec<f64> = inputs(&mut rng, n).into_iter().map(|v| v as f64 * (1.0 + rng.uniform(-1e-9, 1e-9))).collect();
    let mut y: Vec<f64> = inputs(&mut rng, n).into_iter().map(f64::from).collect();
    y.rotate_left(5);
    // Each column: name, documented bound (to the correctly rounded result), and the reference
    // (glibc's double functions are within 1 ulp of exact, so 1 more ulp is allowed for them).
    let cols: Vec<(&str, f64, Ref, Dom)> = vec![
        ("sin", 2.0 + 1.0, |a, _| a.sin(), all),
        ("cos", 2.0 + 1.0, |a, _| a.cos(), all),
        ("exp", 1.0 + 1.0, |a, _| a.exp(), all),
        ("log", 1.0 + 1.0, |a, _| a.ln(), all),
        ("pow", 2.0 + 1.0, |a, b| a.powf(b), all),
        ("sqrt", 0.0, |a, _| a.sqrt(), all),
        ("erf", 2.0 + 1.0, |a, _| c_erf(a), all),
        ("lgamma", 4.0 + 1.0, |a, _| c_lgamma(a), |a, _| !(a < 0.0 && a > -23.0001)),
        ("atan2", 2.0 + 1.0, |a, b| a.atan2(b), all),
        ("fma", 0.0, |a, b| a.mul_add(b, 0.5), all),
    ];
    let mut d = Dev::new();
    let md = module(PTX);
    let (xp, yp) = (d.upload(&x), d.upload(&y));
    let op = d.poisoned::<f64>(cols.len() * n);
    d.launch(
        &md,
        "sweep_math_f64",
        n.div_ceil(128) as u32,
        128,
        ParamBuilder::new().ptr(xp).ptr(yp).ptr(op).i32(n as i32),
    );
    let out: Vec<f64> = d.download(op, cols.len() * n);
    let mut failures = Vec::new();
    for (k, (name, bound, f, dom)) in cols.into_iter().enumerate() {
        for i in 0..n {
            if !dom(x[i] as f32, y[i] as f32) {
                continue;
            }
            let (got, want) = (out[k * n + i], f(x[i], y[i]));
            let e = ulp_err(got, want, ulp64, f64::MAX);
            if e > bound + 0.5 {
                failures.push(format!("{name}({:e}, {:e}) = {got:e}, want {want:e}: {e} ulp", x[i], y[i]));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rounds to the nearest f16 / bf16 value (ties to even) and back, through the `half` crate.
fn f16r(v: f64) -> f64 {
    half::f16::from_f64(v).to_f64()
}
fn bf16r(v: f64) -> f64 {
    half::bf16::from_f64(v).to_f64()
}
fn ulp16(x: f64) -> f64 {
    let e = if x == 0.0 || !x.is_finite() { -14 } else { x.abs().log2().floor() as i32 };
    2f64.powi(e.max(-14) - 10)
}
fn ulpbf(x: f64) -> f64 {
    let e = if x == 0.0 || !x.is_finite() { -126 } else { x.abs().log2().floor() as i32 };
    2f64.powi(e.max(-126) - 7)
}

#[test]
fn half_and_bf16_math_match_rounded_references() {
    let mut rng = Rng(0x16);
    let n = 256;
    let x: Vec<f32> = (0..n)
        .map(|i| if i < 8 { [0.0, -0.0, 1.0, -1.0, 0.5, 65504.0, 1e-6, 3.0][i] } else { rng.uniform(-8.0, 8.0) as f32 })
        .collect();
    let y: Vec<f32> = (0..n).map(|_| rng.uniform(-8.0, 8.0) as f32).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let (xp, yp) = (d.upload(&x), d.upload(&y));
    let cols = 31;
    let op = d.poisoned::<f32>(cols * n);
    d.launch(
        &md,
        "sweep_math_half",
        n.div_ceil(128) as u32,
        128,
        ParamBuilder::new().ptr(xp).ptr(yp).ptr(op).i32(n as i32),
    );
    let out: Vec<f32> = d.download(op, cols * n);
    let h = |v: f32| f16r(v as f64);
    let b = |v: f32| bf16r(v as f64);
    // name, is bf16, max ulp (in the half format) to the exact value of the rounded inputs, reference
    type HRef = Box<dyn Fn(f32, f32) -> f64>;
    let c: Vec<(&str, bool, f64, HRef)> = vec![
        ("hsqrt", false, 1.0, Box::new(move |a, _| h(a).sqrt())),
        ("hexp", false, 1.0, Box::new(move |a, _| h(a).exp())),
        ("hlog", false, 1.0, Box::new(move |a, _| h(a).ln())),
        ("hsin", false, 1.0, Box::new(move |a, _| h(a).sin())),
        ("hcos", false, 1.0, Box::new(move |a, _| h(a).cos())),
        ("hrcp", false, 1.0, Box::new(move |a, _| 1.0 / h(a))),
        ("__hadd", false, 0.5, Box::new(move |a, c| h(a) + h(c))),
        ("__hmul", false, 0.5, Box::new(move |a, c| h(a) * h(c))),
        ("__hdiv", false, 1.0, Box::new(move |a, c| h(a) / h(c))),
        ("__hfma", false, 0.5, Box::new(move |a, c| h(a).mul_add(h(c), h(a)))),
        ("__hfma2.lo", false, 0.5, Box::new(move |a, c| h(a).mul_add(h(c), h(a)))),
        ("__hfma2.hi", false, 0.5, Box::new(move |a, c| h(c).mul_add(h(a), h(c)))),
        ("h2sqrt.lo", false, 1.0, Box::new(move |a, _| h(a).abs().sqrt())),
        ("h2sqrt.hi", false, 1.0, Box::new(move |_, c| h(c).abs().sqrt())),
        ("__hmax2.lo", false, 0.0, Box::new(move |a, c| h(a).max(h(c)))),
        ("__hmax2.hi", false, 0.0, Box::new(move |a, c| h(a).max(h(c)))),
        ("h2exp.lo", false, 1.0, Box::new(move |a, _| h(a).exp())),
        ("h2exp.hi", false, 1.0, Box::new(move |_, c| h(c).exp())),
        ("hsqrt.bf16", true, 1.0, Box::new(move |a, _| b(a).abs().sqrt())),
        ("hexp.bf16", true, 1.0, Box::new(move |a, _| b(a).exp())),
        ("__hadd.bf16", true, 0.5, Box::new(move |a, c| b(a) + b(c))),
        ("__hmul.bf16", true, 0.5, Box::new(move |a, c| b(a) * b(c))),
        ("__hdiv.bf16", true, 1.0, Box::new(move |a, c| b(a) / b(c))),
        ("__hfma2.bf16.lo", true, 0.5, Box::new(move |a, c| b(a).mul_add(b(c), b(a)))),
        ("__hfma2.bf16.hi", true, 0.5, Box::new(move |a, c| b(c).mul_add(b(a), b(c)))),
        ("__hmul2.bf16.lo", true, 0.5, Box::new(move |a, c| b(a) * b(c))),
        ("__hmul2.bf16.hi", true, 0.5, Box::new(move |a, c| b(c) * b(a))),
        ("h2exp.bf16.lo", true, 1.0, Box::new(move |a, _| b(a).exp())),
        ("h2exp.bf16.hi", true, 1.0, Box::new(move |_, c| b(c).exp())),
    ];
    let mut failures = Vec::new();
    for (k, (name, bf, bound, f)) in c.iter().enumerate() {
        let (ulp, max): (fn(f64) -> f64, f64) = if *bf { (ulpbf, 3.3895314e38) } else { (ulp16, 65504.0) };
        for i in 0..n {
            let (got, want) = (out[k * n + i] as f64, f(x[i], y[i]));
            let e = ulp_err(got, want, ulp, max);
            if e > *bound {
                failures.push(format!("{name}({}, {}) = {got:e}, want {want:e}: {e} ulp", x[i], y[i]));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn half_and_bf16_comparisons_follow_ieee_ordering() {
    let mut rng = Rng(0xc3b);
    let n = 256;
    // Small multiples of 0.5 so that equal halves are common; NaN, -0 and 0 among them.
    let mut pick = |i: usize| -> f32 {
        match (i * 7 + rng.below(11) as usize) % 13 {
            0 => f32::NAN,
            1 => -0.0,
            2 => 0.0,
            _ => (rng.below(9) as f32 - 4.0) * 0.5,
        }
    };
    let x: Vec<f32> = (0..n).map(&mut pick).collect();
    let y: Vec<f32> = (0..n).map(&mut pick).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let (xp, yp) = (d.upload(&x), d.upload(&y));
    let cols = 12;
    let op = d.poisoned::<i32>(cols * n);
    d.launch(
        &md,
        "sweep_math_half_compare",
        n.div_ceil(128) as u32,
        128,
        ParamBuilder::new().ptr(xp).ptr(yp).ptr(op).i32(n as i32),
    );
    let out: Vec<i32> = d.download(op, cols * n);
    // All inputs are exact in f16 and bf16, so both formats compare like the f32 values.
    for i in 0..n {
        let (p, q, r) = (x[i], y[i], x[(i + 1) % n]);
        let (a, b) = ([p, q], [q, r]);
        let both = |f: fn(f32, f32) -> bool| (f(a[0], b[0]) && f(a[1], b[1])) as i32;
        let mask = |f: fn(f32, f32) -> bool| {
            (if f(a[0], b[0]) { 0xffff } else { 0 }) | (if f(a[1], b[1]) { -65536 } else { 0 })
        };
        let max_nan = if a[0].is_nan() || b[1].is_nan() {
            0x7fff
        } else {
            half::f16::from_f32(if a[0] == b[1] && a[0] == 0.0 {
                if a[0].is_sign_positive() {
                    a[0]
                } else {
                    b[1]
                }
            } else {
                a[0].max(b[1])
            })
            .to_bits() as i32
        };
        let want = [
            both(|u, v| u == v),
            both(|u, v| u > v),
            both(|u, v| u <= v),
            (a[0] == b[0]) as i32,
            (a[1] < b[1]) as i32,
            a[1].is_nan() as i32,
            (a[1] > b[1]) as i32,
            mask(|u, v| u == v),
            mask(|u, v| u < v),
            (a[0] > b[0] || a[0].is_nan() || b[0].is_nan()) as i32,
            a[1].is_nan() as i32,
            max_nan,
        ];
        for (k, w) in want.iter().enumerate() {
            assert_eq!(out[k * n + i], *w, "column {k}, a = {a:?}, b = {b:?}");
        }
    }
}
