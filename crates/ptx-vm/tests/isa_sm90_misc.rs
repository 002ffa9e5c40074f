//! The small sm_90a instructions, on hand-written PTX:
//! - `elect.sync` (PTX ISA 8.0+, "Parallel Synchronization and Communication Instructions:
//!   elect.sync"): the leader is the member of `membermask` with the lowest lane id; `d` gets its
//!   lane id in every member, `p` is true in the leader only; `d` may be the sink `_`.
//! - `setmaxnreg.{inc,dec}.sync.aligned.u32` ("Miscellaneous Instructions: setmaxnreg"): a
//!   register-allocation hint with no effect on results; the count is a multiple of 8 in 24..=256,
//!   every thread of the warp executes it together, every warp of the warpgroup executes the same
//!   instruction, `.inc` raises and `.dec` lowers the count. A use that breaks a rule is an error.
//! - `griddepcontrol.{launch_dependents,wait}` ("Parallel Synchronization and Communication
//!   Instructions: griddepcontrol"): no effect when launches run one after the other.

mod isa_common;
use isa_common::Rng;
use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder, VmError};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n";
const POISON: u32 = 0xdddd_dddd;

fn parse(ptx: &str) -> Module {
    Module::parse(ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"))
}

/// Launches `kernel` (one block of `threads`) with one output of `threads` u32 words poisoned,
/// then `extra` u32 params; returns the output or the launch error.
fn launch(ptx: &str, kernel: &str, threads: u32, extra: &[u32]) -> Result<Vec<u32>, VmError> {
    let module = parse(ptx);
    let mut m = Machine::new(Arch::Sm90);
    let n = threads as usize;
    let out = m.alloc(4 * n).unwrap();
    m.memset(out, 0xdd, 4 * n).unwrap();
    let mut pb = ParamBuilder::new().ptr(out);
    for &e in extra {
        pb = pb.u32(e);
    }
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_smem: 0 };
    m.launch(&module, kernel, &cfg, &pb.finish())?;
    let mut b = vec![0u8; 4 * n];
    m.read(out, &mut b).unwrap();
    Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// Every lane whose bit is set in `pmask` runs `elect.sync` with its own member mask
/// `masks[lane]` (given as a second output-sized input, read per lane) and stores
/// `leader | pred << 8`; `sink` uses `_` for the lane-id destination and stores only the predicate.
fn elect_ptx(sink: bool) -> String {
    let (dst, store) = if sink { ("_", "mov.u32 %r7, 0;") } else { ("%r7", "") };
    format!(
        "{HEADER}
.visible .entry elect_test(.param .u64 pout, .param .u64 pmasks, .param .u32 pmask)
{{
    .reg .b32 %r<12>;
    .reg .pred %p<4>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [pout];
    ld.param.u64 %rd2, [pmasks];
    ld.param.u32 %r1, [pmask];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r2, %laneid;
    shr.b32 %r3, %r1, %r2;
    and.b32 %r3, %r3, 1;
    setp.eq.u32 %p1, %r3, 0;
    @%p1 bra DONE;
    mul.wide.u32 %rd3, %r2, 4;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.u32 %r4, [%rd4];
    elect.sync {dst}|%p2, %r4;
    {store}
    selp.u32 %r8, 1, 0, %p2;
    shl.b32 %r8, %r8, 8;
    or.b32 %r9, %r7, %r8;
    add.s64 %rd5, %rd1, %rd3;
    st.global.u32 [%rd5], %r9;
DONE:
    ret;
}}
"
    )
}

fn run_elect(sink: bool, masks: &[u32; 32]) -> Vec<u32> {
    let ptx = elect_ptx(sink);
    let module = parse(&ptx);
    let mut m = Machine::new(Arch::Sm90);
    let out = m.alloc(128).unwrap();
    m.memset(out, 0xdd, 128).unwrap();
    let mb = m.alloc(128).unwrap();
    let bytes: Vec<u8> = masks.iter().flat_map(|w| w.to_le_bytes()).collect();
    m.write(mb, &bytes).unwrap();
    // A lane takes part when some mask names it; lanes that run name a mask holding them.
    let active = masks.iter().enumerate().fold(0u32, |a, (l, &mk)| if mk >> l & 1 == 1 { a | 1 << l } else { a });
    let params = ParamBuilder::new().ptr(out).ptr(mb).u32(active).finish();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    m.launch(&module, "elect_test", &cfg, &params).unwrap_or_else(|e| panic!("elect launch failed: {e}"));
    let mut b = vec![0u8; 128];
    m.read(out, &mut b).unwrap();
    b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The expected word of each lane: its group's lowest lane, and the predicate in that lane.
fn elect_expect(masks: &[u32; 32], sink: bool) -> Vec<u32> {
    (0..32)
        .map(|l| {
            let mk = masks[l];
            if mk >> l & 1 == 0 {
                return POISON;
            }
            let leader = mk.trailing_zeros();
            let d = if sink { 0 } else { leader };
            d | ((l as u32 == leader) as u32) << 8
        })
        .collect()
}

#[test]
fn elect_sync_elects_the_lowest_member_lane() {
    let mut rng = Rng(0xe1ec7);
    let mut cases: Vec<[u32; 32]> = vec![
        [u32::MAX; 32],
        [0xaaaa_aaaa; 32],
        [0x8000_0001; 32],
        [0x0010_0000; 32],
        // Two tiles with their own masks (a cg::tiled_partition<16>): each elects its own leader.
        std::array::from_fn(|l| if l < 16 { 0x0000_ffff } else { 0xffff_0000 }),
        // Four groups of 8, the lower two with a lane missing from the mask.
        std::array::from_fn(|l| [0x0000_00fe, 0x0000_7f00, 0x00ff_0000, 0xff00_0000][l / 8]),
    ];
    for _ in 0..8 {
        let m = rng.next_u32() | 1 << (rng.next_u32() % 32);
        cases.push([m; 32]);
    }
    for masks in &cases {
        for sink in [false, true] {
            let got = run_elect(sink, masks);
            assert_eq!(got, elect_expect(masks, sink), "masks {:#010x?} sink {sink}", &masks[..]);
        }
    }
}

/// Two warpgroups (256 threads): a producer that gives registers back and a consumer that takes
/// more, as warp-specialised kernels do, around a computation whose result must not change.
fn setmaxnreg_ptx(producer: &str, consumer: &str, guard: &str) -> String {
    format!(
        "{HEADER}
.visible .entry regs(.param .u64 pout, .param .u32 px)
{{
    .reg .b32 %r<12>;
    .reg .pred %p<4>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [pout];
    ld.param.u32 %r1, [px];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r2, %tid.x;
    shr.u32 %r3, %r2, 7;
    setp.eq.u32 %p1, %r3, 0;
    {guard}
    @!%p1 bra CONSUMER;
    {producer}
    bra.uni WORK;
CONSUMER:
    {consumer}
WORK:
    mad.lo.u32 %r4, %r2, %r1, 7;
    mul.wide.u32 %rd2, %r2, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r4;
    ret;
}}
"
    )
}

fn regs_expect(threads: u32, x: u32) -> Vec<u32> {
    (0..threads).map(|t| t.wrapping_mul(x).wrapping_add(7)).collect()
}

#[test]
fn setmaxnreg_by_whole_warpgroups_has_no_effect() {
    let forms = [
        ("setmaxnreg.dec.sync.aligned.u32 40;", "setmaxnreg.inc.sync.aligned.u32 232;"),
        ("setmaxnreg.dec.sync.aligned.u32 24;", "setmaxnreg.inc.sync.aligned.u32 256;"),
        // A second change in the same direction, and the same count again.
        (
            "setmaxnreg.dec.sync.aligned.u32 96;\n    bar.sync 1, 128;\n    setmaxnreg.dec.sync.aligned.u32 96;",
            "setmaxnreg.inc.sync.aligned.u32 160;\n    bar.sync 2, 128;\n    setmaxnreg.inc.sync.aligned.u32 240;",
        ),
        // Only one warpgroup changes its count.
        ("", "setmaxnreg.inc.sync.aligned.u32 200;"),
    ];
    for (producer, consumer) in forms {
        let ptx = setmaxnreg_ptx(producer, consumer, "");
        let got = launch(&ptx, "regs", 256, &[0x9e37_79b9]).unwrap_or_else(|e| panic!("{producer} / {consumer}: {e}"));
        assert_eq!(got, regs_expect(256, 0x9e37_79b9), "{producer} / {consumer}");
    }
}

fn launch_err(ptx: &str, threads: u32) -> String {
    match launch(ptx, "regs", threads, &[3]) {
        Ok(_) => panic!("the launch ran without an error:\n{ptx}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn setmaxnreg_counts_outside_the_isa_rule_are_refused() {
    for n in [0u32, 16, 20, 100, 257, 264, 512] {
        let ptx = setmaxnreg_ptx("", &format!("setmaxnreg.inc.sync.aligned.u32 {n};"), "");
        let line = ptx.lines().position(|l| l.contains("setmaxnreg")).unwrap() + 1;
        let listed = parse(&ptx).unsupported("regs").unwrap();
        assert_eq!(listed.len(), 1, "count {n}: {listed:?}");
        let msg = launch_err(&ptx, 256);
        assert!(msg.contains("imm-reg-count") && msg.contains(&format!("line {line}")), "count {n}: {msg}");
    }
    for n in [24u32, 32, 128, 248, 256] {
        let ptx = setmaxnreg_ptx("", &format!("setmaxnreg.inc.sync.aligned.u32 {n};"), "");
        assert!(parse(&ptx).unsupported("regs").unwrap().is_empty(), "count {n}");
    }
    // The qualifiers are not optional.
    let ptx = setmaxnreg_ptx("", "setmaxnreg.inc.u32 64;", "");
    assert_eq!(parse(&ptx).unsupported("regs").unwrap().len(), 1);
}

#[test]
fn setmaxnreg_not_executed_by_every_warp_of_the_warpgroup_is_an_error() {
    // Warp 1 of the consumer warpgroup skips it.
    let guard = "shr.u32 %r5, %r2, 5;\n    setp.eq.u32 %p2, %r5, 5;";
    let ptx = setmaxnreg_ptx("", "@!%p2 setmaxnreg.inc.sync.aligned.u32 240;", guard);
    let msg = launch_err(&ptx, 256);
    assert!(msg.contains("not warpgroup-uniform in warpgroup 1") && msg.contains("warp 5"), "{msg}");
    // The warps of a warpgroup execute different setmaxnreg instructions.
    let guard = "shr.u32 %r5, %r2, 5;\n    setp.eq.u32 %p2, %r5, 6;";
    let consumer = "@%p2 bra OTHER;\n    setmaxnreg.inc.sync.aligned.u32 240;\n    bra.uni WORK;\nOTHER:\n    \
                    setmaxnreg.inc.sync.aligned.u32 240;";
    let msg = launch_err(&setmaxnreg_ptx("", consumer, guard), 256);
    assert!(msg.contains("not warpgroup-uniform"), "{msg}");
    // A block of 160 threads has one whole warpgroup and one warp of a second.
    let msg = launch_err(&setmaxnreg_ptx("", "setmaxnreg.inc.sync.aligned.u32 240;", ""), 160);
    assert!(msg.contains("warpgroup 1, which is incomplete") && msg.contains("160 threads"), "{msg}");
    // The same with only the whole warpgroup executing it is fine.
    let ok = launch(&setmaxnreg_ptx("setmaxnreg.dec.sync.aligned.u32 40;", "", ""), "regs", 160, &[3]);
    assert_eq!(ok.unwrap(), regs_expect(160, 3));
}

#[test]
fn setmaxnreg_by_part_of_a_warp_is_an_error() {
    let guard = "and.b32 %r5, %r2, 31;\n    setp.lt.u32 %p2, %r5, 16;";
    let ptx = setmaxnreg_ptx("", "@%p2 setmaxnreg.inc.sync.aligned.u32 240;", guard);
    let msg = launch_err(&ptx, 256);
    assert!(msg.contains("lanes 0x0000ffff") && msg.contains("not by all its threads"), "{msg}");
}

#[test]
fn setmaxnreg_inc_below_or_dec_above_the_current_count_is_an_error() {
    let consumer =
        "setmaxnreg.inc.sync.aligned.u32 200;\n    bar.sync 1, 128;\n    setmaxnreg.inc.sync.aligned.u32 160;";
    let msg = launch_err(&setmaxnreg_ptx("", consumer, ""), 256);
    assert!(msg.contains("setmaxnreg.inc 160 after this warp's setmaxnreg to 200"), "{msg}");
    let producer = "setmaxnreg.dec.sync.aligned.u32 40;\n    bar.sync 1, 128;\n    setmaxnreg.dec.sync.aligned.u32 56;";
    let msg = launch_err(&setmaxnreg_ptx(producer, "", ""), 256);
    assert!(msg.contains("setmaxnreg.dec 56 after this warp's setmaxnreg to 40"), "{msg}");
}

#[test]
fn griddepcontrol_has_no_effect_and_other_actions_are_refused() {
    let ptx = setmaxnreg_ptx("griddepcontrol.wait;", "griddepcontrol.launch_dependents;", "griddepcontrol.wait;");
    assert!(parse(&ptx).unsupported("regs").unwrap().is_empty());
    assert_eq!(launch(&ptx, "regs", 256, &[11]).unwrap(), regs_expect(256, 11));
    let ptx = setmaxnreg_ptx("", "griddepcontrol.launch;", "");
    let line = ptx.lines().position(|l| l.contains("griddepcontrol")).unwrap() + 1;
    let msg = launch_err(&ptx, 256);
    assert!(msg.contains("griddepcontrol.launch") && msg.contains(&format!("line {line}")), "{msg}");
}
