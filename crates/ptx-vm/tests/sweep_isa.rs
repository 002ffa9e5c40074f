//! ISA-level tests, on hand-written PTX, of the instructions and rules the sweep of nvcc output
//! added to the VM: `.sync` collectives whose lanes name different member masks (the tiles of a
//! cooperative-groups partition), `atom.cas.b16`, `vabsdiff4`, `dp2a` and `set` on packed halves.

// Lane- and element-indexed loops read as the kernels do.
#![allow(clippy::needless_range_loop)]

mod isa_common;
use isa_common::{run_u32, Rng, HEADER};

/// Each lane runs `body` (which reads `%r1` = in[lane], `%r2` = lane, `%r3` = its member mask and
/// writes `%r9`) and stores `%r9` to out[lane]. Lanes 0-15 use mask 0x0000ffff, 16-31 0xffff0000.
fn tile_kernel(body: &str) -> String {
    format!(
        "{HEADER}
.visible .entry k(.param .u64 pin, .param .u64 pout)
{{
    .reg .b32 %r<16>;
    .reg .pred %p<4>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [pin];
    ld.param.u64 %rd2, [pout];
    mov.u32 %r2, %laneid;
    mul.wide.u32 %rd3, %r2, 4;
    add.s64 %rd4, %rd1, %rd3;
    add.s64 %rd5, %rd2, %rd3;
    ld.global.u32 %r1, [%rd4];
    and.b32 %r4, %r2, 16;
    mov.u32 %r5, 65535;
    shl.b32 %r3, %r5, %r4;
{body}
    st.global.u32 [%rd5], %r9;
    ret;
}}
"
    )
}

fn inputs() -> Vec<u32> {
    let mut rng = Rng(0x7113);
    (0..32).map(|_| rng.next_u32() % 1000).collect()
}

#[test]
fn redux_with_per_tile_masks_reduces_each_tile_separately() {
    let x = inputs();
    let out = &run_u32(&tile_kernel("    redux.sync.add.u32 %r9, %r1, %r3;"), "k", 1, 32, &[&x], &[32], &[], 0xff)[0];
    for l in 0..32 {
        let tile = &x[l / 16 * 16..l / 16 * 16 + 16];
        assert_eq!(out[l], tile.iter().sum::<u32>(), "lane {l}");
    }
}

#[test]
fn vote_and_match_with_per_tile_masks_see_only_their_tile() {
    let x = inputs();
    // ballot of (x odd), then match.any of x % 3, each over the caller's tile.
    let body = "    and.b32 %r6, %r1, 1;\n    setp.ne.u32 %p1, %r6, 0;\n    vote.sync.ballot.b32 %r9, %p1, %r3;";
    let out = &run_u32(&tile_kernel(body), "k", 1, 32, &[&x], &[32], &[], 0xff)[0];
    for l in 0..32 {
        let base = l / 16 * 16;
        let want: u32 = (base..base + 16).filter(|&u| x[u] % 2 == 1).map(|u| 1u32 << u).sum();
        assert_eq!(out[l], want, "ballot, lane {l}");
    }
    let body = "    rem.u32 %r6, %r1, 3;\n    match.any.sync.b32 %r9, %r6, %r3;";
    let out = &run_u32(&tile_kernel(body), "k", 1, 32, &[&x], &[32], &[], 0xff)[0];
    for l in 0..32 {
        let base = l / 16 * 16;
        let want: u32 = (base..base + 16).filter(|&u| x[u] % 3 == x[l] % 3).map(|u| 1u32 << u).sum();
        assert_eq!(out[l], want, "match.any, lane {l}");
    }
}

#[test]
fn diverged_tiles_reach_their_collectives_at_different_times() {
    // Tile 1 takes a detour (a loop of 3 iterations) before the same redux; tile 0 must not wait
    // for it nor be merged with it.
    let x = inputs();
    let body = "    mov.u32 %r7, 0;
    setp.lt.u32 %p2, %r2, 16;
    @%p2 bra DONE;
LOOP:
    add.u32 %r7, %r7, 1;
    setp.lt.u32 %p3, %r7, 3;
    @%p3 bra LOOP;
DONE:
    redux.sync.max.u32 %r8, %r1, %r3;
    add.u32 %r9, %r8, %r7;";
    let out = &run_u32(&tile_kernel(body), "k", 1, 32, &[&x], &[32], &[], 0xff)[0];
    for l in 0..32 {
        let tile = &x[l / 16 * 16..l / 16 * 16 + 16];
        let extra = if l < 16 { 0 } else { 3 };
        assert_eq!(out[l], tile.iter().max().unwrap() + extra, "lane {l}");
    }
}

#[test]
fn a_tile_whose_member_never_arrives_is_still_a_deadlock() {
    // Lane 31 exits before the collective that names it: an error, not a hang or a wrong result.
    let body = "    setp.eq.u32 %p1, %r2, 31;\n    @%p1 exit;\n    redux.sync.add.u32 %r9, %r1, %r3;";
    let module = isa_common::parse(&tile_kernel(body));
    let mut m = ptx_vm::Machine::new(ptx_vm::Arch::Sm80);
    let (i, o) = (m.alloc(128).unwrap(), m.alloc(128).unwrap());
    m.write(i, &[0u8; 128]).unwrap();
    let cfg = ptx_vm::LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    let r = m.launch(&module, "k", &cfg, &ptx_vm::ParamBuilder::new().ptr(i).ptr(o).finish());
    assert!(r.is_err(), "a collective naming an exited lane must fail");
}

/// A single-warp kernel computing `%r9` from `%r1` = a[lane], `%r2` = b[lane], `%r3` = c[lane].
fn abc_kernel(body: &str) -> String {
    format!(
        "{HEADER}
.visible .entry k(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pout)
{{
    .reg .b16 %h<8>;
    .reg .b32 %r<16>;
    .reg .pred %p<4>;
    .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pc];
    ld.param.u64 %rd4, [pout];
    mov.u32 %r4, %laneid;
    mul.wide.u32 %rd5, %r4, 4;
    add.s64 %rd6, %rd1, %rd5;
    add.s64 %rd7, %rd2, %rd5;
    add.s64 %rd8, %rd3, %rd5;
    add.s64 %rd9, %rd4, %rd5;
    ld.global.u32 %r1, [%rd6];
    ld.global.u32 %r2, [%rd7];
    ld.global.u32 %r3, [%rd8];
{body}
    st.global.u32 [%rd9], %r9;
    ret;
}}
"
    )
}

fn abc(body: &str, a: &[u32], b: &[u32], c: &[u32]) -> Vec<u32> {
    run_u32(&abc_kernel(body), "k", 1, 32, &[a, b, c], &[32], &[], 0xff).remove(0)
}

fn random_words(seed: u64) -> Vec<u32> {
    let mut rng = Rng(seed);
    (0..32).map(|_| rng.next_u32()).collect()
}

#[test]
fn vabsdiff4_and_dp2a_follow_the_bytewise_definitions() {
    let (a, b, c) = (random_words(1), random_words(2), random_words(3));
    let absdiff = |x: u32, y: u32, signed: bool| -> Vec<i64> {
        (0..4)
            .map(|k| {
                let (p, q) = ((x >> (8 * k)) as u8, (y >> (8 * k)) as u8);
                if signed {
                    (p as i8 as i64 - q as i8 as i64).abs()
                } else {
                    (p as i64 - q as i64).abs()
                }
            })
            .collect()
    };
    let out = abc("    vabsdiff4.u32.u32.u32 %r9, %r1, %r2, %r3;", &a, &b, &c);
    for l in 0..32 {
        let want =
            absdiff(a[l], b[l], false).iter().enumerate().map(|(k, &d)| (d as u32 & 0xff) << (8 * k)).sum::<u32>();
        assert_eq!(out[l], want, "vabsdiff4.u32 lane {l}");
    }
    let out = abc("    vabsdiff4.s32.s32.s32.add %r9, %r1, %r2, %r3;", &a, &b, &c);
    for l in 0..32 {
        let want = c[l].wrapping_add(absdiff(a[l], b[l], true).iter().sum::<i64>() as u32);
        assert_eq!(out[l], want, "vabsdiff4.s32.add lane {l}");
    }
    let out = abc("    vabsdiff4.s32.s32.s32.sat %r9, %r1, %r2, %r3;", &a, &b, &c);
    for l in 0..32 {
        let want =
            absdiff(a[l], b[l], true).iter().enumerate().map(|(k, &d)| (d.min(127) as u32) << (8 * k)).sum::<u32>();
        assert_eq!(out[l], want, "vabsdiff4.s32.sat lane {l}");
    }
    for (mode, k0) in [("lo", 0), ("hi", 2)] {
        let out = abc(&format!("    dp2a.{mode}.s32.u32 %r9, %r1, %r2, %r3;"), &a, &b, &c);
        for l in 0..32 {
            let h = |i: u32| (a[l] >> (16 * i)) as u16 as i16 as i64;
            let by = |i: u32| (b[l] >> (8 * i)) as u8 as i64;
            let want = (c[l] as i64 + h(0) * by(k0) + h(1) * by(k0 + 1)) as u32;
            assert_eq!(out[l], want, "dp2a.{mode} lane {l}");
        }
    }
}

#[test]
fn set_on_packed_halves_compares_each_half() {
    // f16 values from small integers (exact), one NaN and one -0 among them.
    let f16 = |v: f32| half::f16::from_f32(v).to_bits() as u32;
    let mut rng = Rng(9);
    let mut pick = || {
        let r = rng.next_u32() % 10;
        match r {
            0 => 0x7e00,
            1 => 0x8000,
            _ => f16(r as f32 - 5.0),
        }
    };
    let a: Vec<u32> = (0..32).map(|_| pick() | (pick() << 16)).collect();
    let b: Vec<u32> = (0..32).map(|_| pick() | (pick() << 16)).collect();
    let val = |h: u32| half::f16::from_bits(h as u16).to_f32();
    for (cmp, f) in [
        ("lt", (|x: f32, y: f32| x < y) as fn(f32, f32) -> bool),
        ("geu", |x, y| x >= y || x.is_nan() || y.is_nan()),
        ("ne", |x, y| x != y && !x.is_nan() && !y.is_nan()),
    ] {
        let out = abc(&format!("    set.{cmp}.f16x2.f16x2 %r9, %r1, %r2;"), &a, &b, &a);
        let outu = abc(&format!("    set.{cmp}.u32.f16x2 %r9, %r1, %r2;"), &a, &b, &a);
        for l in 0..32 {
            let t = |sh: u32| f(val(a[l] >> sh), val(b[l] >> sh));
            let want = |one: u32| (if t(0) { one } else { 0 }) | (if t(16) { one << 16 } else { 0 });
            assert_eq!(out[l], want(0x3c00), "set.{cmp}.f16x2 lane {l}: {:#x} vs {:#x}", a[l], b[l]);
            assert_eq!(outu[l], want(0xffff), "set.{cmp}.u32.f16x2 lane {l}");
        }
    }
}

#[test]
fn atom_cas_b16_updates_only_its_half_word() {
    // 32 lanes each add 1 to one of four 16-bit counters with a CAS loop, two counters per 32-bit
    // word, in global and in shared memory: each counter ends at 8, its neighbour untouched.
    let ptx = format!(
        "{HEADER}
.visible .entry k(.param .u64 pout)
{{
    .reg .b16 %h<8>;
    .reg .b32 %r<16>;
    .reg .pred %p<4>;
    .reg .b64 %rd<12>;
    .shared .align 4 .b8 sm[8];
    ld.param.u64 %rd1, [pout];
    mov.u32 %r1, %laneid;
    setp.ne.u32 %p3, %r1, 0;
    @%p3 bra ZEROED;
    mov.u32 %r9, 0;
    st.shared.u32 [sm], %r9;
    st.shared.u32 [sm+4], %r9;
ZEROED:
    bar.sync 0;
    and.b32 %r2, %r1, 3;
    mul.wide.u32 %rd2, %r2, 2;
    add.s64 %rd3, %rd1, %rd2;
    mov.u64 %rd4, sm;
    add.s64 %rd5, %rd4, %rd2;
    ld.volatile.global.u16 %h1, [%rd3];
GLOOP:
    add.u16 %h2, %h1, 1;
    atom.global.cas.b16 %h3, [%rd3], %h1, %h2;
    setp.ne.u16 %p1, %h3, %h1;
    mov.u16 %h1, %h3;
    @%p1 bra GLOOP;
    ld.volatile.shared.u16 %h4, [%rd5];
SLOOP:
    add.u16 %h5, %h4, 1;
    atom.shared.cas.b16 %h6, [%rd5], %h4, %h5;
    setp.ne.u16 %p2, %h6, %h4;
    mov.u16 %h4, %h6;
    @%p2 bra SLOOP;
    bar.sync 0;
    @%p3 bra END;
    ld.shared.u32 %r3, [sm];
    ld.shared.u32 %r4, [sm+4];
    st.global.u32 [%rd1+8], %r3;
    st.global.u32 [%rd1+12], %r4;
END:
    ret;
}}
"
    );
    let module = isa_common::parse(&ptx);
    let mut m = ptx_vm::Machine::new(ptx_vm::Arch::Sm80);
    let o = m.alloc(16).unwrap();
    m.memset(o, 0, 8).unwrap();
    m.memset(o + 8, 0xff, 8).unwrap();
    let cfg = ptx_vm::LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    m.launch(&module, "k", &cfg, &ptx_vm::ParamBuilder::new().ptr(o).finish()).unwrap_or_else(|e| panic!("{e}"));
    let mut b = [0u8; 16];
    m.read(o, &mut b).unwrap();
    let halves: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(halves, vec![8; 8], "global counters then shared counters");
}
