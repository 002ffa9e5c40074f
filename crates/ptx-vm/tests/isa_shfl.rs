//! `shfl.sync` on the VM, all four modes, with segment widths, partial member masks, per-lane
//! source operands and out-of-range lanes. Expectations are the behaviour the CUDA intrinsics
//! document for `__shfl{,_up,_down,_xor}_sync(mask, v, b, width)` (which compile to
//! `shfl.sync` with `c = ((32 - width) << 8) | clamp`), plus one raw clamp case worked from the
//! PTX ISA pseudo-code (PTX ISA 9.0 §9.7.13.7 "shfl.sync").

mod isa_common;
use isa_common::{run_u32, Rng, HEADER};

fn ptx(mode: &str) -> String {
    format!(
        "{HEADER}
.visible .entry shfl_test(.param .u64 pv, .param .u64 pb, .param .u64 pc, .param .u64 pd,
                          .param .u64 pp, .param .u32 pmask)
{{
    .reg .b32 %r<12>;
    .reg .pred %p<4>;
    .reg .b64 %rd<16>;
    ld.param.u64 %rd1, [pv];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pc];
    ld.param.u64 %rd4, [pd];
    ld.param.u64 %rd5, [pp];
    ld.param.u32 %r1, [pmask];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    cvta.to.global.u64 %rd4, %rd4;
    cvta.to.global.u64 %rd5, %rd5;
    mov.u32 %r2, %laneid;
    shr.b32 %r3, %r1, %r2;
    and.b32 %r3, %r3, 1;
    setp.eq.u32 %p1, %r3, 0;
    @%p1 bra DONE;
    mul.wide.u32 %rd6, %r2, 4;
    add.s64 %rd7, %rd1, %rd6;
    ld.global.u32 %r4, [%rd7];
    add.s64 %rd8, %rd2, %rd6;
    ld.global.u32 %r5, [%rd8];
    add.s64 %rd9, %rd3, %rd6;
    ld.global.u32 %r6, [%rd9];
    shfl.sync.{mode}.b32 %r7|%p2, %r4, %r5, %r6, %r1;
    selp.u32 %r8, 1, 0, %p2;
    add.s64 %rd10, %rd4, %rd6;
    st.global.u32 [%rd10], %r7;
    add.s64 %rd11, %rd5, %rd6;
    st.global.u32 [%rd11], %r8;
DONE:
    ret;
}}
"
    )
}

const POISON: u32 = 0xdddd_dddd;

/// Runs one shfl over a warp and checks every member lane against `expect(lane) -> (src, pred)`
/// and that non-member lanes wrote nothing.
fn check(mode: &str, members: u32, b: &[u32], c: &[u32], expect: impl Fn(u32) -> (u32, bool)) {
    let mut rng = Rng(0x5f1 ^ members as u64);
    let vals: Vec<u32> = (0..32).map(|_| rng.next_u32()).collect();
    let out = run_u32(&ptx(mode), "shfl_test", 1, 32, &[&vals, b, c], &[32, 32], &[members], 0xdd);
    for lane in 0..32u32 {
        let l = lane as usize;
        if members >> lane & 1 == 0 {
            assert_eq!(out[0][l], POISON, "{mode}: non-member lane {lane} wrote d");
            assert_eq!(out[1][l], POISON, "{mode}: non-member lane {lane} wrote p");
            continue;
        }
        let (src, pred) = expect(lane);
        assert_eq!(
            out[0][l], vals[src as usize],
            "{mode} mask {members:#x} b {} c {:#x}: lane {lane} should read lane {src}",
            b[l], c[l]
        );
        assert_eq!(out[1][l], pred as u32, "{mode}: lane {lane} predicate");
    }
}

fn c_width(width: u32, clamp: u32) -> Vec<u32> {
    vec![((32 - width) << 8) | clamp; 32]
}

#[test]
fn shfl_idx_reads_source_modulo_width_even_out_of_range() {
    let mut rng = Rng(7);
    let b: Vec<u32> = (0..32).map(|_| rng.next_u32() % 100).collect();
    for width in [32u32, 16, 8, 4] {
        check("idx", u32::MAX, &b, &c_width(width, 31), |lane| (lane / width * width + b[lane as usize] % width, true));
    }
    // Members only in segments 0 and 2 of width 8: every source stays inside its segment.
    check("idx", 0x00ff_00ff, &b, &c_width(8, 31), |lane| (lane / 8 * 8 + b[lane as usize] % 8, true));
}

#[test]
fn shfl_up_keeps_own_value_below_segment_start() {
    for width in [32u32, 8] {
        for delta in [1u32, 3, 8] {
            check("up", u32::MAX, &[delta; 32], &c_width(width, 0), |lane| {
                if lane % width >= delta {
                    (lane - delta, true)
                } else {
                    (lane, false)
                }
            });
        }
    }
    // Raw clamp from the pseudo-code: c = 4, no segments: maxLane = 4, j = lane - 2 is in range
    // only when j >= 4.
    check("up", u32::MAX, &[2; 32], &[4; 32], |lane| if lane >= 6 { (lane - 2, true) } else { (lane, false) });
}

#[test]
fn shfl_down_keeps_own_value_past_segment_end_with_partial_mask() {
    for width in [32u32, 16, 4] {
        check("down", u32::MAX, &[3; 32], &c_width(width, 31), |lane| {
            if lane % width + 3 < width {
                (lane + 3, true)
            } else {
                (lane, false)
            }
        });
    }
    // Lanes 0-15 only (a half-warp branch), reading lane + 5 within 16.
    check("down", 0x0000_ffff, &[5; 32], &c_width(16, 31), |lane| {
        if lane + 5 < 16 {
            (lane + 5, true)
        } else {
            (lane, false)
        }
    });
    // Per-lane deltas, some of them 32 or more: only b[4:0] is used ("an out of range value
    // of b may still result in a valid computed source lane index j", PTX ISA "shfl.sync").
    let d: Vec<u32> = (0..32).map(|l| (l * 7) % 40).collect();
    check("down", u32::MAX, &d, &c_width(32, 31), |lane| {
        let j = lane + d[lane as usize] % 32;
        if j < 32 {
            (j, true)
        } else {
            (lane, false)
        }
    });
}

#[test]
fn shfl_bfly_reads_earlier_segments_but_not_later_ones() {
    for width in [32u32, 8] {
        for lane_mask in [1u32, 6, 16] {
            check("bfly", u32::MAX, &[lane_mask; 32], &c_width(width, 31), |lane| {
                let j = lane ^ lane_mask;
                // CUDA: "each group of width consecutive threads can access elements from earlier
                // groups ... if they attempt to access elements from later groups of threads
                // their own value of var will be returned".
                if j / width <= lane / width {
                    (j, true)
                } else {
                    (lane, false)
                }
            });
        }
    }
    check("bfly", 0x0000_ffff, &[9; 32], &c_width(32, 31), |lane| (lane ^ 9, true));
}
