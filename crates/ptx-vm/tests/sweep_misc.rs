//! Device intrinsics (bit manipulation, SIMD-in-a-word, warp reductions and matches, 64-bit and
//! double shuffles, cache-hinted loads and stores, address-space queries, clock, fences, sleep),
//! atomics on 16-, 32- and 64-bit words, packed half/bf16 arithmetic, `__trap` and `assert`, as
//! nvcc compiles them (tests/cuda/sweep_misc.cu), each checked against a CPU result; function
//! pointers and virtual functions (tests/cuda/sweep_indirect.cu); the device heap
//! (tests/cuda/sweep_heap.cu).

// Lane- and element-indexed loops read as the kernels do.
#![allow(clippy::needless_range_loop)]

mod sweep_common;

use ptx_vm::{ParamBuilder, VmError};
use sweep_common::{module, Dev, Rng};

const PTX: &str = include_str!("ptx/sweep_misc.ptx");
const BLOCK: usize = 64;

fn words(seed: u64, n: usize) -> Vec<u64> {
    let mut rng = Rng(seed);
    let mut v: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    // Edge cases: zero, all ones, one bit, small shifts.
    v[0] = 0;
    v[1] = u64::MAX;
    v[2] = 1 << 40;
    v[3] = 0x8000_0000_0000_0000;
    v
}

#[test]
fn bit_and_simd_intrinsics_match_their_definitions() {
    let (a, b) = (words(0xb175, BLOCK), words(0x5eed, BLOCK));
    let mut d = Dev::new();
    let md = module(PTX);
    let (ap, bp) = (d.upload(&a), d.upload(&b));
    let cols = 28;
    let op = d.poisoned::<u64>(cols * BLOCK);
    d.launch(&md, "sweep_misc_bits", 1, BLOCK as u32, ParamBuilder::new().ptr(ap).ptr(bp).ptr(op));
    let out: Vec<u64> = d.download(op, cols * BLOCK);
    let sx = |v: i32| v as i64 as u64; // an int result widened to unsigned long long
    let zx = |v: u32| v as u64;
    let bytes = |v: u32| v.to_le_bytes();
    for t in 0..BLOCK {
        let (x, y) = (a[t], b[t]);
        let (xl, yl, s) = (x as u32, y as u32, (y >> 32) as u32);
        let wide = ((yl as u64) << 32) | xl as u64;
        let dp = |sa: bool, sb: bool, c: i64| -> i64 {
            c + (0..4)
                .map(|k| {
                    let (p, q) = (bytes(xl)[k], bytes(yl)[k]);
                    (if sa { p as i8 as i64 } else { p as i64 }) * (if sb { q as i8 as i64 } else { q as i64 })
                })
                .sum::<i64>()
        };
        let dp2 = |hi: bool, signed: bool| -> i64 {
            let k = if hi { 2 } else { 0 };
            let h = |i: u32| if signed { (xl >> (16 * i)) as i16 as i64 } else { (xl >> (16 * i)) as u16 as i64 };
            let by = |i: usize| if signed { bytes(yl)[i] as i8 as i64 } else { bytes(yl)[i] as i64 };
            5 + h(0) * by(k) + h(1) * by(k + 1)
        };
        let want: [u64; 28] = [
            zx((wide << (s & 31) >> 32) as u32),
            zx((wide >> (s & 31)) as u32),
            zx((wide << s.min(32) >> 32) as u32),
            zx((wide >> s.min(32)) as u32),
            zx(xl.reverse_bits()),
            x.reverse_bits(),
            zx(u32::from_le_bytes(std::array::from_fn(|i| {
                wide.to_le_bytes()[(((x >> 32) as u32 & 0x7777) >> (4 * i) & 7) as usize]
            }))),
            sx(x.count_ones() as i32),
            sx(x.leading_zeros() as i32),
            sx(if x == 0 { 0 } else { x.trailing_zeros() as i32 + 1 }),
            sx(if xl == 0 { 0 } else { xl.trailing_zeros() as i32 + 1 }),
            ((x as i64 as i128 * y as i64 as i128) >> 64) as u64,
            ((x as u128 * y as u128) >> 64) as u64,
            zx(((xl as u64 * yl as u64) >> 32) as u32),
            sx(((xl as i32 as i64 * yl as i32 as i64) >> 32) as i32),
            zx(((xl as i32 as i64 - yl as i32 as i64).unsigned_abs() as u32).wrapping_add(7)),
            zx(xl.abs_diff(yl).wrapping_add(7)),
            zx(u32::from_le_bytes(std::array::from_fn(|i| bytes(xl)[i].abs_diff(bytes(yl)[i])))),
            zx(u32::from_le_bytes(std::array::from_fn(|i| bytes(xl)[i].wrapping_add(bytes(yl)[i])))),
            zx((xl as u16).wrapping_sub(yl as u16) as u32
                | ((((xl >> 16) as u16).wrapping_sub((yl >> 16) as u16) as u32) << 16)),
            zx(u32::from_le_bytes(std::array::from_fn(|i| bytes(xl)[i].max(bytes(yl)[i])))),
            sx(dp(true, true, 5) as i32),
            zx(dp(false, false, 5) as u32),
            sx(dp2(false, true) as i32),
            zx(dp2(true, false) as u32),
            sx(((xl as i32 as i64 + yl as i32 as i64) >> 1) as i32),
            sx(((xl as i32 as i64 + yl as i32 as i64 + 1) >> 1) as i32),
            zx(((xl as u64 + yl as u64) >> 1) as u32),
        ];
        for (k, w) in want.iter().enumerate() {
            assert_eq!(out[k * BLOCK + t], *w, "column {k}, thread {t}: x {x:#x} y {y:#x}");
        }
    }
}

#[test]
fn warp_intrinsics_on_64_bit_values_and_subsets() {
    let a = words(0x3a2b, BLOCK);
    let mut d = Dev::new();
    let md = module(PTX);
    let ap = d.upload(&a);
    let cols = 11;
    let op = d.poisoned::<u64>(cols * BLOCK);
    d.launch(&md, "sweep_misc_warp", 1, BLOCK as u32, ParamBuilder::new().ptr(ap).ptr(op));
    let out: Vec<u64> = d.download(op, cols * BLOCK);
    let dbl = |t: usize| (a[t] % 1000) as i64 as f64 * 0.25;
    for t in 0..BLOCK {
        let w = t / 32 * 32;
        let (lane, warp) = (t % 32, w..w + 32);
        let want: [u64; 11] = [
            a[w + (lane + 5) % 32],
            if lane + 3 < 32 { a[t + 3] } else { a[t] },
            dbl(w + (lane ^ 7)).to_bits(),
            warp.clone().map(|u| a[u] & 0xffff).sum::<u64>() & 0xffff_ffff,
            warp.clone().map(|u| (a[u] % 1000) as i32 - 500).min().unwrap() as i64 as u64,
            warp.clone().map(|u| a[u] % 1000).max().unwrap(),
            warp.clone().filter(|&u| a[u] % 4 == a[t] % 4).map(|u| 1u64 << (u - w)).sum(),
            warp.clone().filter(|&u| a[u] % 3 == a[t] % 3).map(|u| 1u64 << (u - w)).sum(),
            0xffff_fffe,
            0xffff_ffff,
            if lane % 2 == 0 { a[w + (lane + 2) % 32] } else { 0 },
        ];
        for (k, v) in want.iter().enumerate() {
            assert_eq!(out[k * BLOCK + t], *v, "column {k}, thread {t}");
        }
    }
}

#[test]
fn memory_intrinsics_address_spaces_clock_and_local_structs() {
    let mut rng = Rng(0x3e3);
    let input: Vec<i32> = (0..BLOCK).map(|_| rng.below(100_000) as i32).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&input);
    let cols = 13;
    let op = d.poisoned::<i32>(cols * BLOCK);
    let cp = d.poisoned::<i64>(BLOCK);
    d.launch(&md, "sweep_misc_memory", 1, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op).ptr(cp));
    let out: Vec<i32> = d.download(op, cols * BLOCK);
    let clk: Vec<i64> = d.download(cp, BLOCK);
    for t in 0..BLOCK {
        let v = input[t];
        // loads with cache hints x5, hinted stores x3, isspacep, cvta.to.shared, the shared word,
        // clock64 monotone, the memcpy'd struct.
        let want = [v, v, v, v, v, v + 1, v + 2, v + 3, 7, 100, 17, 1, v + 121];
        for (k, w) in want.iter().enumerate() {
            assert_eq!(out[k * BLOCK + t], *w, "column {k}, thread {t}");
        }
        assert!(clk[t] >= 0, "clock64 went backwards for thread {t}: {}", clk[t]);
    }
}

#[test]
fn atomics_on_16_32_and_64_bit_words_and_doubles() {
    let blocks = 2;
    let n = blocks * BLOCK;
    let mut rng = Rng(0xa70);
    let v: Vec<i32> = (0..n).map(|_| rng.below(1000) as i32).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&v);
    let w16 = d.upload(&[0u16, 0, 0, 0]);
    let w32 = d.upload(&[0u32, 0]);
    let w64 = d.upload(&[0u64, u64::MAX, 0, 0, 999_999]);
    let s64 = d.upload(&[i64::MAX, i64::MIN]);
    let d64 = d.upload(&[0f64]);
    let ex = d.poisoned::<u64>(n);
    d.launch(
        &md,
        "sweep_misc_atomics",
        blocks as u32,
        BLOCK as u32,
        ParamBuilder::new().ptr(ip).ptr(w16).ptr(w32).ptr(w64).ptr(s64).ptr(d64).ptr(ex),
    );
    let (g16, g32, g64): (Vec<u16>, Vec<u32>, Vec<u64>) = (d.download(w16, 4), d.download(w32, 2), d.download(w64, 5));
    let (gs, gd, gex): (Vec<i64>, Vec<f64>, Vec<u64>) = (d.download(s64, 2), d.download(d64, 1), d.download(ex, n));
    let sum: i64 = v.iter().map(|&x| x as i64).sum();
    assert_eq!(g16, vec![n as u16, v.iter().map(|&x| (x & 0xff) as u16).fold(0u16, |a, b| a.wrapping_add(b)), 0, 0]);
    assert_eq!(g32, vec![*v.iter().max().unwrap() as u32, 0]);
    assert_eq!(g64[0], v.iter().map(|&x| (x as u64) << 20).sum::<u64>());
    assert_eq!(g64[1], *v.iter().min().unwrap() as u64 + 5);
    assert_eq!(g64[2], (*v.iter().max().unwrap() as u64) << 33);
    assert_eq!(g64[3], sum as u64);
    assert_eq!(gs, vec![*v.iter().min().unwrap() as i64 - 1000, *v.iter().max().unwrap() as i64 * 1_000_000_000]);
    assert_eq!(gd[0], sum as f64 * 0.5, "halves of integers add exactly in any order");
    // atomicExch: the values handed out plus the last one left are the initial value and every thread id.
    let mut seen: Vec<u64> = gex.clone();
    seen.push(g64[4]);
    seen.sort();
    let mut want: Vec<u64> = (0..n as u64).collect();
    want.push(999_999);
    assert_eq!(seen, want);
}

#[test]
fn packed_half_and_bf16_arithmetic_rounds_like_the_formats() {
    let mut rng = Rng(0x4a1f);
    let x: Vec<f32> = (0..4 * BLOCK).map(|_| rng.uniform(-8.0, 8.0) as f32).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let xp = d.upload(&x);
    let cols = 24;
    let op = d.poisoned::<f32>(cols * BLOCK);
    d.launch(&md, "sweep_misc_half2", 1, BLOCK as u32, ParamBuilder::new().ptr(xp).ptr(op));
    let out: Vec<f32> = d.download(op, cols * BLOCK);
    let h = |v: f64| half::f16::from_f64(v).to_f64();
    let b = |v: f64| half::bf16::from_f64(v).to_f64();
    for t in 0..BLOCK {
        let lanes = [(x[t] as f64, x[t + 2 * BLOCK] as f64), (x[t + BLOCK] as f64, x[t + 3 * BLOCK] as f64)];
        let mut k = 0;
        let mut check = |got_lo_hi: &dyn Fn(f64, f64) -> f64, name: &str, tol_ulps: f64, bf: bool| {
            for (half_i, &(p, q)) in lanes.iter().enumerate() {
                let r = if bf { b } else { h };
                let want = got_lo_hi(r(p), r(q));
                let want_r = r(want);
                let got = out[k * BLOCK + t] as f64;
                let ulp = (want_r.abs().max(1e-30)).log2().floor();
                let ulp = 2f64.powf(ulp - if bf { 7.0 } else { 10.0 });
                assert!((got - want_r).abs() <= tol_ulps * ulp, "{name} half {half_i}, thread {t}: {got} vs {want_r}");
                k += 1;
            }
        };
        check(&|p, q| p + q, "h2 add", 0.0, false);
        check(&|p, q| p * q, "h2 mul", 0.0, false);
        check(&|p, q| p - q, "h2 sub", 0.0, false);
        check(&|p, q| p / q, "h2 div", 1.0, false);
        check(&|p, _| -p, "h2 neg", 0.0, false);
        check(&|p, q| p.min(q), "h2 min", 0.0, false);
        check(&|p, q| p + q, "bf2 add", 0.0, true);
        check(&|p, q| p * q, "bf2 mul", 0.0, true);
        check(&|p, q| p - q, "bf2 sub", 0.0, true);
        check(&|p, q| p / q, "bf2 div", 1.0, true);
        check(&|p, q| p.max(q), "bf2 max", 0.0, true);
        check(&|p, q| p.mul_add(q, p), "bf2 fma", 0.0, true);
    }
}

#[test]
fn trap_is_an_error_naming_the_thread_and_line_only_when_executed() {
    let mut d = Dev::new();
    let md = module(PTX);
    let op = d.poisoned::<i32>(BLOCK);
    d.launch(&md, "sweep_misc_trap", 1, BLOCK as u32, ParamBuilder::new().ptr(op).i32(0));
    let out: Vec<i32> = d.download(op, BLOCK);
    assert_eq!(out, (0..BLOCK as i32).collect::<Vec<_>>());
    let e = d.try_launch(&md, "sweep_misc_trap", 1, BLOCK as u32, ParamBuilder::new().ptr(op).i32(1)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VmError::Runtime { .. }), "{msg}");
    assert!(msg.contains("trap") && msg.contains("thread (5,0,0)") && msg.contains("sweep_misc.cu:"), "{msg}");
}

#[test]
fn assert_passes_silently_and_fails_with_its_line() {
    let mut d = Dev::new();
    let md = module(PTX);
    let good: Vec<i32> = (0..BLOCK as i32).collect();
    let ip = d.upload(&good);
    let op = d.poisoned::<i32>(BLOCK);
    d.launch(&md, "sweep_misc_assert", 1, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op));
    let out: Vec<i32> = d.download(op, BLOCK);
    assert_eq!(out, (1..=BLOCK as i32).collect::<Vec<_>>());
    let bad: Vec<i32> = (0..BLOCK as i32).map(|i| if i == 40 { -3 } else { i }).collect();
    let ip = d.upload(&bad);
    let e = d.try_launch(&md, "sweep_misc_assert", 1, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("assert") && msg.contains("thread (40,0,0)") && msg.contains("sweep_misc.cu:"), "{msg}");
    assert!(msg.contains("`v >= 0`"), "the message names the asserted expression: {msg}");
}

#[test]
fn function_pointers_and_virtual_calls_reach_the_right_callee() {
    let mut rng = Rng(0x1d1);
    let input: Vec<i32> = (0..BLOCK).map(|_| rng.below(10_000) as i32).collect();
    let mut d = Dev::new();
    let md = module(include_str!("ptx/sweep_indirect.ptx"));
    let ip = d.upload(&input);
    let op = d.poisoned::<i32>(2 * BLOCK);
    d.launch(&md, "sweep_indirect_calls", 1, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op));
    let out: Vec<i32> = d.download(op, 2 * BLOCK);
    for t in 0..BLOCK {
        let v = input[t];
        let via_table = [2 * v, v * v, -v][(v % 3) as usize];
        let area = if t % 2 == 0 { (v % 7) * 3 } else { (v % 5) * 4 / 2 };
        assert_eq!(out[t], via_table, "function pointer, thread {t} (v = {v})");
        assert_eq!(out[BLOCK + t], area, "virtual call, thread {t} (v = {v})");
    }
}

#[test]
fn a_call_through_a_stray_function_pointer_is_a_fault() {
    // The table holds function addresses; a pointer that is not one of them faults at the call.
    let ptx = format!(
        "{}
.func (.param .b32 r) twice(.param .b32 a)
{{
    .reg .b32 %r<3>;
    ld.param.b32 %r1, [a];
    add.s32 %r2, %r1, %r1;
    st.param.b32 [r], %r2;
    ret;
}}
.visible .entry k(.param .u64 out, .param .u64 bump)
{{
    .reg .b32 %r<4>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [bump];
    mov.u64 %rd3, twice;
    add.s64 %rd4, %rd3, %rd2;
    mov.u32 %r1, 21;
    {{
    .param .b32 p0;
    st.param.b32 [p0], %r1;
    .param .b32 r0;
    proto: .callprototype (.param .b32 _) _ (.param .b32 _);
    call (r0), %rd4, (p0), proto;
    ld.param.b32 %r2, [r0];
    }}
    st.global.u32 [%rd1], %r2;
    ret;
}}
",
        ".version 8.0\n.target sm_80\n.address_size 64\n"
    );
    let md = module(&ptx);
    let mut d = Dev::new();
    let op = d.poisoned::<u32>(1);
    d.launch(&md, "k", 1, 1, ParamBuilder::new().ptr(op).u64(0));
    assert_eq!(d.download::<u32>(op, 1), vec![42]);
    let e = d.try_launch(&md, "k", 1, 1, ParamBuilder::new().ptr(op).u64(4)).unwrap_err();
    assert!(e.to_string().contains("indirect call through"), "{e}");
}

#[test]
fn device_malloc_and_free_work_and_an_exhausted_heap_returns_null() {
    let mut rng = Rng(0x4ea9);
    let input: Vec<i32> = (0..BLOCK).map(|_| rng.below(10_000) as i32).collect();
    let mut d = Dev::new();
    let md = module(include_str!("ptx/sweep_heap.ptx"));
    let ip = d.upload(&input);
    let op = d.poisoned::<i32>(BLOCK);
    d.launch(&md, "sweep_heap_malloc", 1, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op));
    let out: Vec<i32> = d.download(op, BLOCK);
    for t in 0..BLOCK {
        assert_eq!(out[t], 2 * input[t] + 3, "thread {t}");
    }
    // A fresh machine's heap holds 8 MiB (CUDA's default): 1 MiB blocks run out after 8.
    let mut d = Dev::new();
    let gp = d.poisoned::<i32>(BLOCK);
    d.launch(&md, "sweep_heap_exhaust", 1, BLOCK as u32, ParamBuilder::new().ptr(gp).u64(1 << 20));
    let got: Vec<i32> = d.download(gp, BLOCK);
    assert!(got.iter().all(|&g| g == 0 || g == 1), "{got:?}");
    assert_eq!(got.iter().sum::<i32>(), 8, "{got:?}");
}
