//! Definedness tracking, rule by rule, on hand-written PTX (one warp; shared memory never written
//! unless the kernel says so): selp follows the operand it chose, shfl moves a lane's shadow with
//! its value, undefined data stored to shared memory stays undefined, cp.async copies the source's
//! definedness (a zero-filled tail is defined), ldmatrix carries each row's, and a vote on an
//! undefined predicate is an error.

use ptx_vm::{Arch, FindingKind, LaunchConfig, Machine, Module, ParamBuilder, SanitizerReport};

/// Wraps `body` in an entry `k(.param .u64 out, .param .u64 src, .param .u32 mode)` with `%r1` =
/// %tid.x, `%r2` = the address of 512 bytes of shared memory, `%rd1` = &out[tid] (global),
/// `%rd2` = &src[tid] (global), `%r9` = mode.
fn kernel(body: &str) -> Module {
    let ptx = format!(
        ".version 8.0\n.target sm_80\n.address_size 64\n\
         .visible .entry k(.param .u64 out, .param .u64 src, .param .u32 mode)\n{{\n\
         .reg .pred %p<8>;\n.reg .b32 %r<16>;\n.reg .b64 %rd<8>;\n\
         .shared .align 16 .b8 sm[512];\n\
         ld.param.u64 %rd3, [out];\nld.param.u64 %rd4, [src];\nld.param.u32 %r9, [mode];\n\
         mov.u32 %r1, %tid.x;\nmov.u32 %r2, sm;\n\
         cvta.to.global.u64 %rd3, %rd3;\ncvta.to.global.u64 %rd4, %rd4;\n\
         mul.wide.u32 %rd5, %r1, 4;\nadd.s64 %rd1, %rd3, %rd5;\nadd.s64 %rd2, %rd4, %rd5;\n\
         {body}\nret;\n}}\n"
    );
    Module::parse(&ptx).unwrap_or_else(|e| panic!("parse: {e}\n{ptx}"))
}

/// Runs `k` on one warp with definedness tracking; `src` is allocated and never written.
fn run(md: &Module, mode: u32) -> SanitizerReport {
    let mut m = Machine::new(Arch::Sm80).with_definedness(true);
    let out = m.alloc(128).unwrap();
    let src = m.alloc(128).unwrap();
    let p = ParamBuilder::new().ptr(out).ptr(src).u32(mode).finish();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    m.launch(md, "k", &cfg, &p).unwrap_or_else(|e| panic!("{e}")).findings()
}

/// How many accesses hit findings of `kind`.
fn count(r: &SanitizerReport, kind: FindingKind) -> u64 {
    r.findings.iter().filter(|f| f.kind == kind).map(|f| f.count).sum()
}

#[test]
fn selp_takes_the_shadow_of_the_operand_it_chose() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         setp.lt.u32 %p1, %r1, 16;\n\
         selp.b32 %r4, 7, %r3, %p1;\n\
         st.global.u32 [%rd1], %r4;",
    );
    let r = run(&md, 0);
    // Lanes 16..32 chose the undefined load.
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 16, "{r}");
    assert_eq!(r.findings[0].at.thread, [16, 0, 0], "{r}");
}

#[test]
fn selp_on_an_undefined_predicate_is_undefined() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         setp.ne.u32 %p2, %r3, 0;\n\
         selp.b32 %r4, 7, 8, %p2;\n\
         st.global.u32 [%rd1], %r4;",
    );
    assert_eq!(count(&run(&md, 0), FindingKind::UndefinedValueStoredToGlobal), 32);
}

#[test]
fn shfl_moves_the_shadow_with_the_value() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         setp.eq.u32 %p1, %r1, 0;\n\
         selp.b32 %r4, %r3, %r1, %p1;\n\
         add.u32 %r5, %r1, 1;\n\
         and.b32 %r5, %r5, 31;\n\
         shfl.sync.idx.b32 %r6, %r4, %r5, 31, -1;\n\
         st.global.u32 [%rd1], %r6;",
    );
    let r = run(&md, 0);
    // Only lane 31 reads lane 0, the one undefined value.
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 1, "{r}");
    assert_eq!(r.findings[0].at.thread, [31, 0, 0], "{r}");
}

#[test]
fn undefined_data_stored_to_shared_memory_stays_undefined_until_overwritten() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         shl.b32 %r5, %r1, 2;\n\
         add.u32 %r7, %r2, %r5;\n\
         add.u32 %r7, %r7, 256;\n\
         st.shared.u32 [%r7], %r3;\n\
         setp.eq.u32 %p1, %r9, 1;\n\
         @%p1 st.shared.u32 [%r7], %r1;\n\
         bar.warp.sync -1;\n\
         ld.shared.u32 %r8, [%r7];\n\
         st.global.u32 [%rd1], %r8;",
    );
    let r = run(&md, 0);
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 32, "{r}");
    assert_eq!(r.findings.len(), 1, "storing undefined data to shared memory is no finding: {r}");
    assert!(run(&md, 1).is_clean());
}

#[test]
fn cp_async_copies_definedness_and_its_zero_fill_is_defined() {
    let md = kernel(
        "shl.b32 %r5, %r1, 2;\n\
         add.u32 %r7, %r2, %r5;\n\
         cp.async.ca.shared.global [%r7], [%rd2], 4, %r9;\n\
         cp.async.commit_group;\n\
         cp.async.wait_all;\n\
         bar.warp.sync -1;\n\
         ld.shared.u32 %r8, [%r7];\n\
         st.global.u32 [%rd1], %r8;",
    );
    // src-size 4: the never-written global bytes arrive undefined.
    let r = run(&md, 4);
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 32, "{r}");
    assert_eq!(count(&r, FindingKind::UninitializedGlobalRead), 0, "{r}");
    // src-size 0: nothing is read, the 4 bytes are zero-filled.
    assert!(run(&md, 0).is_clean());
}

#[test]
fn ldmatrix_carries_each_rows_definedness() {
    let md = kernel(
        "setp.ne.u32 %p1, %r1, 3;\n\
         setp.lt.u32 %p2, %r1, 8;\n\
         and.pred %p3, %p1, %p2;\n\
         shl.b32 %r5, %r1, 4;\n\
         add.u32 %r6, %r2, %r5;\n\
         @%p3 st.shared.v4.u32 [%r6], {%r1, %r1, %r1, %r1};\n\
         bar.warp.sync -1;\n\
         ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%r8}, [%r6];\n\
         st.global.u32 [%rd1], %r8;",
    );
    let r = run(&md, 0);
    // Row 3 was never written; lanes 12..16 receive its elements.
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 4, "{r}");
    assert_eq!(r.findings[0].at.thread, [12, 0, 0], "{r}");
}

#[test]
fn a_vote_on_an_undefined_predicate_is_an_error() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         setp.ne.u32 %p2, %r3, 0;\n\
         vote.sync.ballot.b32 %r4, %p2, -1;\n\
         st.global.u32 [%rd1], %r4;",
    );
    let r = run(&md, 0);
    assert_eq!(count(&r, FindingKind::UndefinedVote), 32, "{r}");
    assert_eq!(r.findings.len(), 1, "the vote's result counts as defined once reported: {r}");
}

#[test]
fn a_guard_from_undefined_data_on_a_store_is_an_error() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         setp.ne.u32 %p2, %r3, 0;\n\
         @%p2 st.global.u32 [%rd1], %r1;",
    );
    let r = run(&md, 0);
    assert_eq!(count(&r, FindingKind::UndefinedControlFlow), 32, "{r}");
}

#[test]
fn a_read_whose_value_is_discarded_is_no_finding() {
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         add.u32 %r4, %r3, 1;\n\
         st.global.u32 [%rd1], %r1;",
    );
    assert!(run(&md, 0).is_clean());
}

#[test]
fn an_atomic_on_never_written_global_memory_stores_an_undefined_value() {
    // mode 0: add onto `src`, never written; mode 1: exch overwrites it (defined), then add.
    let md = kernel(
        "setp.eq.u32 %p1, %r9, 1;\n\
         @%p1 atom.global.exch.b32 %r3, [%rd2], %r1;\n\
         atom.global.add.u32 %r4, [%rd2], 1;",
    );
    let r = run(&md, 0);
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 32, "{r}");
    assert!(run(&md, 1).is_clean());
}

#[test]
fn a_load_of_never_written_global_memory_is_an_error_only_where_it_escapes() {
    // mode 0: the loaded value is stored to global memory; mode 1: it is discarded.
    let md = kernel(
        "ld.global.u32 %r3, [%rd2];\n\
         setp.eq.u32 %p1, %r9, 0;\n\
         selp.b32 %r4, %r3, %r1, %p1;\n\
         st.global.u32 [%rd1], %r4;",
    );
    let r = run(&md, 0);
    assert_eq!(count(&r, FindingKind::UndefinedValueStoredToGlobal), 32, "{r}");
    assert_eq!(count(&r, FindingKind::UninitializedGlobalRead), 0, "{r}");
    assert!(run(&md, 1).is_clean());
}

#[test]
fn and_or_with_a_deciding_defined_operand_are_defined() {
    // CUB's serial merge: `p = (i < end) && (j >= end2 || key2 < key1)` where key2 may be an
    // unwritten pad. A defined false on one side of `and` (or true on one side of `or`) decides
    // the result, so branching on it is clean; where the undefined compare matters, it is not.
    let md = kernel(
        "ld.shared.u32 %r3, [%r2];\n\
         setp.lt.u32 %p1, %r3, 5;\n\
         setp.lt.u32 %p2, %r1, 8;\n\
         setp.ge.u32 %p3, %r1, 24;\n\
         and.pred %p4, %p2, %p1;\n\
         or.pred %p5, %p3, %p1;\n\
         selp.u32 %r4, 1, 0, %p4;\n\
         selp.u32 %r5, 1, 0, %p5;\n\
         and.b32 %r6, %r3, 0;\n\
         or.b32 %r7, %r3, -1;\n\
         setp.eq.u32 %p6, %r9, 0;\n\
         @%p6 st.global.u32 [%rd1], %r4;\n\
         setp.eq.u32 %p6, %r9, 1;\n\
         @%p6 st.global.u32 [%rd1], %r5;\n\
         setp.eq.u32 %p6, %r9, 2;\n\
         @%p6 st.global.u32 [%rd1], %r6;\n\
         setp.eq.u32 %p6, %r9, 3;\n\
         @%p6 st.global.u32 [%rd1], %r7;",
    );
    // and: lanes 0..8 have %p2 true, so the undefined compare decides them (8 errors); lanes
    // 8..32 have a defined false.
    assert_eq!(count(&run(&md, 0), FindingKind::UndefinedValueStoredToGlobal), 8);
    // or: lanes 24..32 have %p3 true; lanes 0..24 depend on the compare.
    assert_eq!(count(&run(&md, 1), FindingKind::UndefinedValueStoredToGlobal), 24);
    // x & 0 and x | ~0 are defined whatever x holds.
    assert_eq!(count(&run(&md, 2), FindingKind::UndefinedValueStoredToGlobal), 0);
    assert_eq!(count(&run(&md, 3), FindingKind::UndefinedValueStoredToGlobal), 0);
}
