//! The `.approx` functions and `div.full.f32` on the VM, checked against the error bounds the
//! PTX ISA's instruction descriptions give (PTX ISA 9.0 §9.7.3 "Floating-Point Instructions":
//! rcp, sqrt, rsqrt, sin, cos, lg2, ex2, tanh, div), measured over many inputs, plus the special
//! values of their tables. The numbers were transcribed from those descriptions (rcp 1 ulp,
//! sqrt 2^-23 relative, rsqrt 2^-22.9 relative, sin/cos 2^-20.5 absolute on [-100 pi, 100 pi],
//! lg2 2^-22 absolute, ex2 2 ulp, tanh 2^-11 relative, div.full 2 ulp); re-check them against
//! the ISA when it changes.

mod isa_common;
use isa_common::{run_u32, Rng, HEADER};

/// One thread per input: `op` is the instruction with its operands `%fd, %fa, %fb`.
fn kernel(op: &str) -> String {
    format!(
        "{HEADER}
.visible .entry approx_test(.param .u64 pa, .param .u64 pb, .param .u64 pd, .param .u32 pn)
{{
    .reg .b32 %r<8>;
    .reg .f32 %fa, %fb, %fd;
    .reg .pred %p1;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pd];
    ld.param.u32 %r1, [pn];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.u32 %r5, %r2, %r3, %r4;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra DONE;
    mul.wide.u32 %rd4, %r5, 4;
    add.s64 %rd5, %rd1, %rd4;
    ld.global.f32 %fa, [%rd5];
    add.s64 %rd6, %rd2, %rd4;
    ld.global.f32 %fb, [%rd6];
    {op};
    add.s64 %rd7, %rd3, %rd4;
    st.global.f32 [%rd7], %fd;
DONE:
    ret;
}}
"
    )
}

fn run(op: &str, a: &[f32], b: &[f32]) -> Vec<f32> {
    let n = a.len();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let out = run_u32(
        &kernel(op),
        "approx_test",
        n.div_ceil(256) as u32,
        256,
        &[&bits(a), &bits(b)],
        &[n],
        &[n as u32],
        0xff,
    );
    out[0].iter().map(|&w| f32::from_bits(w)).collect()
}

/// Spacing of f32 values at |x| (one ulp).
fn ulp(x: f64) -> f64 {
    let f = x.abs() as f32;
    if f == f32::MAX || f.is_infinite() {
        return f64::INFINITY;
    }
    (f32::from_bits(f.to_bits() + 1) - f) as f64
}

fn sample(n: usize, seed: u64, f: impl Fn(f64) -> f64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n).map(|_| f(rng.signed_unit()) as f32).collect()
}

const N: usize = 8192;

#[test]
fn ex2_approx_within_two_ulp() {
    let a = sample(N, 1, |u| u * 126.0);
    let d = run("ex2.approx.f32 %fd, %fa", &a, &a);
    for (x, y) in a.iter().zip(&d) {
        let want = (*x as f64).exp2();
        assert!((*y as f64 - want).abs() <= 2.0 * ulp(want), "ex2.approx({x}) = {y}, want {want}");
    }
    let sp = [f32::NEG_INFINITY, f32::INFINITY, 0.0, -0.0];
    let d = run("ex2.approx.f32 %fd, %fa", &sp, &sp);
    assert_eq!(d, [0.0, f32::INFINITY, 1.0, 1.0]);
    assert!(run("ex2.approx.f32 %fd, %fa", &[f32::NAN], &[0.0])[0].is_nan());
}

#[test]
fn lg2_approx_within_absolute_bound() {
    let a = sample(N, 2, |u| (u * 100.0).exp2());
    let d = run("lg2.approx.f32 %fd, %fa", &a, &a);
    for (x, y) in a.iter().zip(&d) {
        let want = (*x as f64).log2();
        // 2^-22 absolute for the approximation, plus the final rounding of the result to f32.
        let tol = 2f64.powi(-22) + ulp(want) / 2.0;
        assert!((*y as f64 - want).abs() <= tol, "lg2.approx({x}) = {y}, want {want}");
    }
    let d = run("lg2.approx.f32 %fd, %fa", &[0.0, f32::INFINITY, 1.0], &[0.0; 3]);
    assert_eq!(d, [f32::NEG_INFINITY, f32::INFINITY, 0.0]);
    assert!(run("lg2.approx.f32 %fd, %fa", &[-1.0], &[0.0])[0].is_nan());
}

#[test]
fn sin_cos_approx_within_absolute_bound_on_100_pi() {
    let a = sample(N, 3, |u| u * 100.0 * std::f64::consts::PI);
    for (op, f) in [("sin.approx.f32 %fd, %fa", f64::sin as fn(f64) -> f64), ("cos.approx.f32 %fd, %fa", f64::cos)] {
        let d = run(op, &a, &a);
        for (x, y) in a.iter().zip(&d) {
            let want = f(*x as f64);
            assert!((*y as f64 - want).abs() <= 2f64.powf(-20.5), "{op}: f({x}) = {y}, want {want}");
        }
        assert!(run(op, &[f32::INFINITY], &[0.0])[0].is_nan(), "{op}(inf)");
    }
}

#[test]
fn rcp_sqrt_rsqrt_approx_within_bounds() {
    let a = sample(N, 4, |u| (u * 120.0).exp2());
    let d = run("rcp.approx.f32 %fd, %fa", &a, &a);
    for (x, y) in a.iter().zip(&d) {
        let want = 1.0 / *x as f64;
        assert!((*y as f64 - want).abs() <= ulp(want), "rcp.approx({x}) = {y}");
    }
    let d = run("sqrt.approx.f32 %fd, %fa", &a, &a);
    for (x, y) in a.iter().zip(&d) {
        let want = (*x as f64).sqrt();
        assert!(((*y as f64) / want - 1.0).abs() <= 2f64.powi(-23), "sqrt.approx({x}) = {y}");
    }
    let d = run("rsqrt.approx.f32 %fd, %fa", &a, &a);
    for (x, y) in a.iter().zip(&d) {
        let want = 1.0 / (*x as f64).sqrt();
        assert!(((*y as f64) / want - 1.0).abs() <= 2f64.powf(-22.9), "rsqrt.approx({x}) = {y}");
    }
    let sp = [0.0f32, -0.0, f32::INFINITY];
    assert_eq!(run("rcp.approx.f32 %fd, %fa", &sp, &sp), [f32::INFINITY, f32::NEG_INFINITY, 0.0]);
    assert_eq!(run("rsqrt.approx.f32 %fd, %fa", &sp, &sp), [f32::INFINITY, f32::NEG_INFINITY, 0.0]);
    assert!(run("sqrt.approx.f32 %fd, %fa", &[-1.0], &[0.0])[0].is_nan());
}

#[test]
fn tanh_approx_within_relative_bound() {
    let a = sample(N, 5, |u| u * 12.0);
    let d = run("tanh.approx.f32 %fd, %fa", &a, &a);
    for (x, y) in a.iter().zip(&d) {
        let want = (*x as f64).tanh();
        assert!((*y as f64 - want).abs() <= 2f64.powi(-11) * want.abs() + 1e-38, "tanh.approx({x}) = {y}, want {want}");
    }
}

#[test]
fn div_full_f32_within_two_ulp() {
    let a = sample(N, 6, |u| u * 1e6);
    let b = sample(N, 7, |u| (u * 60.0).exp2() * if u < 0.0 { -1.0 } else { 1.0 });
    let d = run("div.full.f32 %fd, %fa, %fb", &a, &b);
    for i in 0..N {
        let want = a[i] as f64 / b[i] as f64;
        assert!(
            (d[i] as f64 - want).abs() <= 2.0 * ulp(want) + 1e-44,
            "div.full({}, {}) = {}, want {want}",
            a[i],
            b[i],
            d[i]
        );
    }
}
