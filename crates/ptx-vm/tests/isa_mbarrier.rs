//! mbarrier objects on hand-written PTX (PTX ISA 9.7.13.15, "Parallel Synchronization and
//! Communication Instructions: mbarrier"), one behaviour per test:
//! - 9.7.13.15.1-2: a phase completes when its pending arrival count and its tx-count are both
//!   zero; the next phase expects the init count again (less `arrive_drop`s) and a tx-count of 0.
//! - 9.7.13.15.11-13 (`arrive`, `arrive_drop`, `expect_tx`, `complete_tx`): the state token, the
//!   count operand, `.expect_tx`, `.noComplete`, the `.release`/`.cta`/`.cluster` and
//!   `.shared::cluster` forms (a 1-CTA cluster: the window is the CTA's own shared memory).
//! - 9.7.13.15.16 (`test_wait`/`try_wait`): against a state token or a phase parity; `try_wait`
//!   suspends the thread until the phase completes or a time limit passes. The VM suspends it until
//!   the phase completes, or until nothing else in the block can move (the time limit: it then
//!   returns false once). A wait that can never complete is a deadlock naming the object and what
//!   its phase lacks.
//! - Every use the ISA leaves undefined is an error naming the object.

mod isa_common;
use isa_common::{sm90_kernel, SM90_PTX};
use ptx_vm::{Arch, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, VmError};

/// A kernel `k` running `body`: tests/ptx/isa_sm90.ptx's `mbarrier_phases` with `body` in place of
/// its own. `out` is u32 words (poisoned), `bar` (offset 0) and `bar2` (offset 8) two mbarriers,
/// `buf` 256 bytes; `%r1` is the thread id, `%rd1` the output.
fn kernel(body: &str) -> String {
    sm90_kernel("mbarrier_phases", &[("body", body)])
}

fn run(body: &str, threads: u32, words: usize) -> Result<(Vec<u32>, LaunchReport), VmError> {
    run_kernel(&kernel(body), "k", threads, words)
}

/// [`run`] for kernel `name` of `ptx`.
fn run_kernel(ptx: &str, name: &str, threads: u32, words: usize) -> Result<(Vec<u32>, LaunchReport), VmError> {
    let module = Module::parse(ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"));
    let mut m = Machine::new(Arch::Sm90);
    let out = m.alloc(4 * words).unwrap();
    m.memset(out, 0xdd, 4 * words).unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_smem: 0 };
    let rep = m.launch(&module, name, &cfg, &ParamBuilder::new().ptr(out).finish())?;
    let mut b = vec![0u8; 4 * words];
    m.read(out, &mut b).unwrap();
    Ok((b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect(), rep))
}

/// The error of a launch that must fail, on a machine with a block instruction limit of `limit`.
fn run_err_limited(body: &str, threads: u32, limit: u64) -> String {
    let ptx = kernel(body);
    let module = Module::parse(&ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"));
    let mut m = Machine::new(Arch::Sm90).with_block_instruction_limit(limit);
    let out = m.alloc(256).unwrap();
    m.memset(out, 0xdd, 256).unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_smem: 0 };
    match m.launch(&module, "k", &cfg, &ParamBuilder::new().ptr(out).finish()) {
        Ok(_) => panic!("the launch succeeded"),
        Err(e) => e.to_string(),
    }
}

fn run_ok(body: &str, threads: u32, words: usize) -> Vec<u32> {
    let (out, rep) = run(body, threads, words).unwrap_or_else(|e| panic!("launch failed: {e}"));
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    out
}

fn run_err(body: &str, threads: u32) -> String {
    match run(body, threads, 4) {
        Ok(_) => panic!("the launch succeeded"),
        Err(e) => e.to_string(),
    }
}

/// PTX storing predicate `p` as 0/1 into output word `i`.
fn put_p(i: usize, p: &str) -> String {
    format!("    selp.u32 %r30, 1, 0, {p};\n    st.global.u32 [%rd1+{}], %r30;\n", 4 * i)
}

/// PTX storing 32-bit register `r` into output word `i`.
fn put(i: usize, r: &str) -> String {
    format!("    st.global.u32 [%rd1+{}], {r};\n", 4 * i)
}

#[test]
fn a_phase_completes_at_the_init_count_and_the_next_phase_expects_it_again() {
    // 9.7.13.15.1: init sets pending = expected = count (2), phase 0; the arrival that brings pending
    // to zero completes the phase and resets pending for the next. tests/ptx/isa_sm90.ptx's
    // mbarrier_phases: test_wait of phase 0 after one arrival, after two, of phase 1 then, the
    // pending count in the token of the next arrival, test_wait of phase 1 after the fourth.
    let (out, rep) = run_kernel(SM90_PTX, "mbarrier_phases", 1, 5).unwrap_or_else(|e| panic!("launch failed: {e}"));
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    assert_eq!(out, vec![0, 1, 0, 2, 1]);
}

#[test]
fn arrive_with_a_count_subtracts_it_and_the_token_holds_the_pending_count_before_it() {
    // 9.7.13.15.11: `arrive state, [a], count`; the state token is the object before the arrival,
    // so pending_count of it counts down from 96 in steps of 3 across the 32 threads.
    let mut b = String::new();
    b += "    setp.ne.u32 %p1, %r1, 0;\n    @%p1 bra SYNC;\n    mbarrier.init.shared.b64 [bar], 96;\nSYNC:\n    bar.sync 0;\n";
    b += "    mbarrier.arrive.release.cta.shared::cta.b64 %rd2, [bar], 3;\n";
    b += "    mbarrier.pending_count.b64 %r2, %rd2;\n";
    b += "WAIT:\n    mbarrier.try_wait.shared::cta.b64 %p2, [bar], %rd2;\n    @!%p2 bra WAIT;\n";
    b += "    mul.wide.u32 %rd3, %r1, 4;\n    add.s64 %rd3, %rd1, %rd3;\n    st.global.u32 [%rd3], %r2;\n";
    let mut got = run_ok(&b, 32, 32);
    got.sort();
    assert_eq!(got, (1..=32).map(|i| 3 * i).collect::<Vec<u32>>());
}

#[test]
fn test_wait_with_a_state_token_reports_its_phase_only_once_it_completed() {
    // 9.7.13.15.16: test_wait with the token of the current phase is false until that phase
    // completes; a token of a completed phase stays true after later phases start.
    let mut b = String::from("    mbarrier.init.shared.b64 [bar], 2;\n");
    b += "    mbarrier.arrive.shared.b64 %rd2, [bar];\n";
    b += "    mbarrier.test_wait.shared.b64 %p1, [bar], %rd2;\n";
    b += &put_p(0, "%p1");
    b += "    mbarrier.arrive.shared.b64 %rd3, [bar];\n";
    b += "    mbarrier.test_wait.shared.b64 %p2, [bar], %rd2;\n";
    b += &put_p(1, "%p2");
    b += "    mbarrier.arrive.shared.b64 %rd4, [bar];\n";
    b += "    mbarrier.test_wait.shared.b64 %p3, [bar], %rd4;\n";
    b += &put_p(2, "%p3");
    assert_eq!(run_ok(&b, 1, 3), vec![0, 1, 0]);
}

#[test]
fn expect_tx_holds_the_phase_until_complete_tx_brings_the_tx_count_to_zero() {
    // 9.7.13.15.2 / 9.7.13.15.12-13: all arrivals in is not enough while tx-count is non-zero.
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar], 1;\n");
    b += "    mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [bar], 64;\n";
    b += "    mbarrier.arrive.shared::cta.b64 %rd2, [bar];\n";
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p1, [bar], 0;\n";
    b += &put_p(0, "%p1");
    b += "    mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [bar], 32;\n";
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p2, [bar], 0;\n";
    b += &put_p(1, "%p2");
    b += "    mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [bar], 32;\n";
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p3, [bar], 0;\n";
    b += &put_p(2, "%p3");
    assert_eq!(run_ok(&b, 1, 3), vec![0, 0, 1]);
}

#[test]
fn arrive_expect_tx_adds_the_bytes_then_arrives_once() {
    // 9.7.13.15.11: `.expect_tx` performs expect-tx(txCount) before the arrive-on (count 1).
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar], 2;\n");
    b += "    mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 %rd2, [bar], 16;\n";
    b += "    mbarrier.pending_count.b64 %r2, %rd2;\n";
    b += &put(0, "%r2");
    b += "    mbarrier.arrive.shared::cta.b64 %rd3, [bar];\n";
    b += "    mbarrier.pending_count.b64 %r3, %rd3;\n";
    b += &put(1, "%r3");
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p1, [bar], 0;\n";
    b += &put_p(2, "%p1");
    b += "    mbarrier.complete_tx.shared::cta.b64 [bar], 16;\n";
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p2, [bar], 0;\n";
    b += &put_p(3, "%p2");
    assert_eq!(run_ok(&b, 1, 4), vec![2, 1, 0, 1]);
}

#[test]
fn complete_tx_before_expect_tx_makes_the_tx_count_negative_until_balanced() {
    // 9.7.13.15.1: tx-count ranges over -(2^20-1)..=2^20-1; the phase needs it back at zero.
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar], 1;\n");
    b += "    mbarrier.complete_tx.shared::cta.b64 [bar], 8;\n";
    b += "    mbarrier.arrive.shared::cta.b64 %rd2, [bar];\n";
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p1, [bar], 0;\n";
    b += &put_p(0, "%p1");
    b += "    mbarrier.expect_tx.shared::cta.b64 [bar], 8;\n";
    b += "    mbarrier.test_wait.parity.shared::cta.b64 %p2, [bar], 0;\n";
    b += &put_p(1, "%p2");
    assert_eq!(run_ok(&b, 1, 2), vec![0, 1]);
}

#[test]
fn arrive_drop_lowers_the_expected_count_of_later_phases() {
    // 9.7.13.15.12: arrive_drop arrives and removes the thread from later phases.
    let mut b = String::from("    mbarrier.init.shared.b64 [bar], 3;\n");
    b += "    mbarrier.arrive_drop.shared.b64 %rd2, [bar];\n";
    b += "    mbarrier.arrive.shared.b64 %rd3, [bar], 2;\n";
    b += "    mbarrier.arrive.shared.b64 %rd4, [bar];\n";
    b += "    mbarrier.pending_count.b64 %r2, %rd4;\n";
    b += &put(0, "%r2");
    b += "    mbarrier.test_wait.parity.shared.b64 %p1, [bar], 1;\n";
    b += &put_p(1, "%p1");
    b += "    mbarrier.arrive.shared.b64 %rd5, [bar];\n";
    b += "    mbarrier.test_wait.parity.shared.b64 %p2, [bar], 1;\n";
    b += &put_p(2, "%p2");
    assert_eq!(run_ok(&b, 1, 3), vec![2, 0, 1]);
}

#[test]
fn try_wait_suspends_until_another_warp_completes_the_phase() {
    // Warp 0 waits once (no retry loop) for the phase warp 1 completes after writing `buf`; the
    // wait returns true and makes warp 1's writes visible (racecheck clean).
    let mut b = String::new();
    b += "    setp.ne.u32 %p1, %r1, 0;\n    @%p1 bra SYNC;\n    mbarrier.init.shared.b64 [bar], 32;\nSYNC:\n    bar.sync 0;\n";
    b += "    setp.lt.u32 %p2, %r1, 32;\n    @%p2 bra CONSUMER;\n";
    b += "    and.b32 %r2, %r1, 31;\n    shl.b32 %r3, %r2, 2;\n    mov.u32 %r4, buf;\n    add.u32 %r4, %r4, %r3;\n";
    b += "    add.u32 %r5, %r2, 100;\n    st.shared.u32 [%r4], %r5;\n";
    b += "    mbarrier.arrive.release.cta.shared::cta.b64 %rd2, [bar];\n    bra.uni DONE;\n";
    b += "CONSUMER:\n    mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 %p3, [bar], 0;\n";
    b += "    shl.b32 %r3, %r1, 2;\n    mov.u32 %r4, buf;\n    add.u32 %r4, %r4, %r3;\n    ld.shared.u32 %r6, [%r4];\n";
    b += "    selp.u32 %r7, 1000, 0, %p3;\n    add.u32 %r6, %r6, %r7;\n";
    b += "    mul.wide.u32 %rd3, %r1, 4;\n    add.s64 %rd3, %rd1, %rd3;\n    st.global.u32 [%rd3], %r6;\nDONE:\n";
    let got = run_ok(&b, 64, 32);
    assert_eq!(got, (0..32).map(|i| 1100 + i).collect::<Vec<u32>>());
}

#[test]
fn reading_data_a_warp_wrote_before_arriving_without_waiting_is_a_race() {
    // The twin of the test above without the wait: racecheck must see the unsynchronised read.
    let mut b = String::new();
    b += "    setp.ne.u32 %p1, %r1, 0;\n    @%p1 bra SYNC;\n    mbarrier.init.shared.b64 [bar], 32;\nSYNC:\n    bar.sync 0;\n";
    b += "    setp.lt.u32 %p2, %r1, 32;\n    @%p2 bra CONSUMER;\n";
    b += "    and.b32 %r2, %r1, 31;\n    shl.b32 %r3, %r2, 2;\n    mov.u32 %r4, buf;\n    add.u32 %r4, %r4, %r3;\n";
    b += "    st.shared.u32 [%r4], %r2;\n";
    b += "    mbarrier.arrive.release.cta.shared::cta.b64 %rd2, [bar];\n    bra.uni DONE;\n";
    b += "CONSUMER:\n    shl.b32 %r3, %r1, 2;\n    mov.u32 %r4, buf;\n    add.u32 %r4, %r4, %r3;\n    ld.shared.u32 %r6, [%r4];\n";
    b += "DONE:\n";
    let (_, rep) = run(&b, 64, 1).unwrap_or_else(|e| panic!("launch failed: {e}"));
    let san = rep.sanitizer.expect("sanitizer report");
    assert!(san.has_errors(), "no race reported");
}

/// Thread 0 initialises `bar` for `count` arrivals (and `bar2` for 32), everyone meets at a
/// barrier; then `%r4` is the shared address of `buf[lane]`, `%r8` the warp index and `%r9` the
/// address of a flag word (`buf[32]`, zero).
fn sync_prologue(count: u32) -> String {
    format!(
        "    setp.ne.u32 %p1, %r1, 0;\n    @%p1 bra SYNC;\n    mbarrier.init.shared.b64 [bar], {count};
    mbarrier.init.shared.b64 [bar2], 32;\n    mov.u32 %r9, buf;\n    add.u32 %r9, %r9, 128;
    st.shared.u32 [%r9], 0;\nSYNC:\n    bar.sync 0;
    and.b32 %r2, %r1, 31;\n    shl.b32 %r3, %r2, 2;\n    mov.u32 %r4, buf;\n    add.u32 %r4, %r4, %r3;
    shr.u32 %r8, %r1, 5;\n    mov.u32 %r9, buf;\n    add.u32 %r9, %r9, 128;\n"
    )
}

/// The launch's racecheck findings of `kind` (their occurrences), and all its findings.
fn races(body: &str, threads: u32, kind: FindingKind) -> (u64, String) {
    let (_, rep) = run(body, threads, 32).unwrap_or_else(|e| panic!("launch failed: {e}"));
    let san = rep.sanitizer.expect("sanitizer report");
    (san.count(kind), san.to_string())
}

#[test]
fn a_waiters_reads_before_its_wait_are_not_ordered_before_the_arrivers_later_writes() {
    // The wait acquires; it releases nothing. Warp 1 reads buf, then waits for the phase warp 0
    // completed and raises a flag with a relaxed atomic; warp 0, once it sees the flag, writes
    // buf. Nothing orders warp 1's reads before those writes (a relaxed atomic synchronises
    // nothing), however late in the VM's order warp 0 writes: a write-after-read race per lane.
    let mut b = sync_prologue(32);
    b += "    setp.lt.u32 %p2, %r1, 32;\n    @%p2 st.shared.u32 [%r4], %r1;\n    bar.sync 0;\n";
    b += "    @!%p2 bra WAITER;\n    mbarrier.arrive.shared.b64 %rd2, [bar];\n";
    b += "SPIN:\n    atom.shared.add.u32 %r5, [%r9], 0;\n    setp.eq.u32 %p4, %r5, 0;\n    @%p4 bra SPIN;\n";
    b += "    st.shared.u32 [%r4], %r5;\n    bra.uni DONE;\n";
    b += "WAITER:\n    ld.shared.u32 %r6, [%r4];\n";
    b += "WAIT:\n    mbarrier.try_wait.parity.shared.b64 %p5, [bar], 0;\n    @!%p5 bra WAIT;\n";
    b += "    atom.shared.exch.b32 %r7, [%r9], 1;\nDONE:\n";
    let (n, san) = races(&b, 64, FindingKind::SharedWriteAfterRead);
    assert_eq!(n, 32, "{san}");
}

#[test]
fn what_an_arriving_warp_does_after_its_arrival_is_not_released_to_the_waiter() {
    // Warps 0 and 2 arrive, warp 0 then writes buf; warp 1 waits for the phase and reads buf. The
    // arrival released only what warp 0 did before it: a read-after-write race per lane, although
    // warp 0 wrote before warp 1's wait saw the phase complete.
    let mut b = sync_prologue(64);
    b += "    setp.eq.u32 %p2, %r8, 1;\n    @%p2 bra WAITER;\n    mbarrier.arrive.shared.b64 %rd2, [bar];\n";
    b += "    setp.eq.u32 %p3, %r8, 0;\n    @%p3 st.shared.u32 [%r4], %r1;\n    bra.uni DONE;\n";
    b += "WAITER:\nWAIT:\n    mbarrier.try_wait.parity.shared.b64 %p5, [bar], 0;\n    @!%p5 bra WAIT;\n";
    b += "    ld.shared.u32 %r6, [%r4];\nDONE:\n";
    let (n, san) = races(&b, 96, FindingKind::SharedReadAfterWrite);
    assert_eq!(n, 32, "{san}");
}

#[test]
fn arrivals_do_not_order_the_arriving_warps_among_themselves_but_a_wait_does() {
    // Warp 0 writes buf, arrives and raises a flag (a relaxed atomic, which orders nothing);
    // warp 1, once it sees the flag, arrives (completing the phase) and reads buf. An arrival is
    // a release only: without a wait the read races with the write (one race per lane); with a
    // wait on its own arrival's token it is ordered.
    for wait in [false, true] {
        let mut b = sync_prologue(64);
        b += "    setp.ne.u32 %p2, %r8, 0;\n    @%p2 bra SECOND;\n    st.shared.u32 [%r4], %r1;\n";
        b += "    mbarrier.arrive.shared.b64 %rd2, [bar];\n    atom.shared.exch.b32 %r7, [%r9], 1;\n";
        b += "    bra.uni DONE;\nSECOND:\n";
        b += "SPIN:\n    atom.shared.add.u32 %r5, [%r9], 0;\n    setp.eq.u32 %p4, %r5, 0;\n    @%p4 bra SPIN;\n";
        b += "    mbarrier.arrive.shared.b64 %rd2, [bar];\n";
        if wait {
            b += "WAIT:\n    mbarrier.try_wait.shared.b64 %p5, [bar], %rd2;\n    @!%p5 bra WAIT;\n";
        }
        b += "    ld.shared.u32 %r6, [%r4];\n    mul.wide.u32 %rd3, %r2, 4;\n    add.s64 %rd3, %rd1, %rd3;\n";
        b += "    st.global.u32 [%rd3], %r6;\nDONE:\n";
        let (n, san) = races(&b, 64, FindingKind::SharedReadAfterWrite);
        assert_eq!(n, if wait { 0 } else { 32 }, "wait {wait}: {san}");
        if wait {
            assert_eq!(run_ok(&b, 64, 32), (0..32).collect::<Vec<u32>>());
        }
    }
}

#[test]
fn a_relaxed_arrive_releases_nothing_and_a_relaxed_wait_acquires_nothing() {
    // Warp 1 writes buf and arrives; warp 0 waits for the phase and reads buf. With the default
    // (and explicit) .release arrive and .acquire wait the read is ordered; with either side
    // .relaxed nothing orders it: a read-after-write race per lane (the values still arrive: the
    // VM runs the threads one after the other).
    for (arrive, wait, want) in [(".release", ".acquire", 0), ("", "", 0), (".relaxed", "", 32), ("", ".relaxed", 32)] {
        let mut b = sync_prologue(32);
        b += "    setp.eq.u32 %p2, %r8, 0;\n    @%p2 bra CONSUMER;\n    st.shared.u32 [%r4], %r1;\n";
        b += &format!("    mbarrier.arrive{arrive}.cta.shared::cta.b64 %rd2, [bar];\n    bra.uni DONE;\n");
        b += &format!("CONSUMER:\nWAIT:\n    mbarrier.try_wait.parity{wait}.cta.shared::cta.b64 %p5, [bar], 0;\n");
        b += "    @!%p5 bra WAIT;\n    ld.shared.u32 %r6, [%r4];\n    mul.wide.u32 %rd3, %r2, 4;\n";
        b += "    add.s64 %rd3, %rd1, %rd3;\n    st.global.u32 [%rd3], %r6;\nDONE:\n";
        let (n, san) = races(&b, 64, FindingKind::SharedReadAfterWrite);
        assert_eq!(n, want, "arrive{arrive} try_wait{wait}: {san}");
        if want == 0 {
            assert_eq!(run_ok(&b, 64, 32), (32..64).collect::<Vec<u32>>(), "arrive{arrive} try_wait{wait}");
        }
    }
}

#[test]
fn happens_before_through_mbarriers_is_transitive() {
    // Warp 0 writes buf and arrives on bar; warp 1 waits on bar and arrives on bar2; warp 2 waits
    // on bar2 and reads buf: ordered through warp 1, though warps 0 and 2 never meet.
    let mut b = sync_prologue(32);
    b += "    setp.ne.u32 %p2, %r8, 0;\n    @%p2 bra SECOND;\n    st.shared.u32 [%r4], %r1;\n";
    b += "    mbarrier.arrive.shared.b64 %rd2, [bar];\n    bra.uni DONE;\n";
    b += "SECOND:\n    setp.ne.u32 %p2, %r8, 1;\n    @%p2 bra THIRD;\n";
    b += "WAIT1:\n    mbarrier.try_wait.parity.shared.b64 %p5, [bar], 0;\n    @!%p5 bra WAIT1;\n";
    b += "    mbarrier.arrive.shared.b64 %rd2, [bar2];\n    bra.uni DONE;\n";
    b += "THIRD:\nWAIT2:\n    mbarrier.try_wait.parity.shared.b64 %p5, [bar2], 0;\n    @!%p5 bra WAIT2;\n";
    b += "    ld.shared.u32 %r6, [%r4];\n    mul.wide.u32 %rd3, %r2, 4;\n    add.s64 %rd3, %rd1, %rd3;\n";
    b += "    st.global.u32 [%rd3], %r6;\nDONE:\n";
    assert_eq!(run_ok(&b, 96, 32), (0..32).collect::<Vec<u32>>());
}

#[test]
fn try_wait_returns_false_at_its_time_limit_when_the_waiter_must_arrive_itself() {
    // 9.7.13.15.16: try_wait is potentially blocking up to a time limit; a thread that polls and
    // then arrives must not hang. The VM times the wait out when nothing else can move.
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar], 1;\n");
    b += "    mbarrier.try_wait.parity.shared::cta.b64 %p1, [bar], 0;\n";
    b += &put_p(0, "%p1");
    b += "    mbarrier.arrive.shared::cta.b64 %rd2, [bar];\n";
    b += "    mbarrier.try_wait.parity.shared::cta.b64 %p2, [bar], 0, 1000;\n";
    b += &put_p(1, "%p2");
    assert_eq!(run_ok(&b, 1, 2), vec![0, 1]);
}

#[test]
fn a_wait_on_bytes_no_copy_will_complete_deadlocks_naming_the_barrier_and_the_bytes() {
    // The missing complete_tx of a bulk copy that was never issued: the phase has all its
    // arrivals but 128 transaction bytes outstanding.
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar2], 1;\n");
    b += "    mbarrier.arrive.expect_tx.shared::cta.b64 %rd2, [bar2], 128;\n";
    b += "WAIT:\n    mbarrier.try_wait.parity.shared::cta.b64 %p1, [bar2], 0;\n    @!%p1 bra WAIT;\n";
    let e = run_err(&b, 1);
    assert!(e.contains("deadlocked"), "{e}");
    assert!(e.contains("mbarrier [shared 0x8] (`bar2`+0) for its phase of parity 0 to complete"), "{e}");
    assert!(e.contains("0 of 1 arrivals missing"), "{e}");
    assert!(e.contains("128 transaction bytes expected (expect_tx) but not completed"), "{e}");
    assert!(e.contains("`mbarrier.try_wait.parity.shared::cta.b64` at PTX line"), "{e}");
}

#[test]
fn a_missing_expect_tx_deadlocks_a_try_wait_spin_loop_naming_the_barrier_and_the_bytes() {
    // A bulk copy of 128 bytes completes on bar2 before the one arrival, which has no expect_tx:
    // the tx-count is -128 when the arrivals are all in, so the phase never completes (9.7.13.15.2).
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar2], 1;\n");
    b += "    mov.u32 %r2, buf;\n    mov.u32 %r3, bar2;\n";
    b += "    cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r2], [%rd1], 128, [%r3];\n";
    b += "    mbarrier.arrive.shared::cta.b64 %rd2, [bar2];\n";
    b += "WAIT:\n    mbarrier.try_wait.parity.shared::cta.b64 %p1, [bar2], 0;\n    @!%p1 bra WAIT;\n";
    let e = match run(&b, 1, 64) {
        Ok(_) => panic!("the launch succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("deadlocked"), "{e}");
    assert!(e.contains("mbarrier [shared 0x8] (`bar2`+0) for its phase of parity 0 to complete"), "{e}");
    assert!(e.contains("0 of 1 arrivals missing"), "{e}");
    assert!(e.contains("128 transaction bytes completed beyond those expected, which no expect_tx announced"), "{e}");
    assert!(e.contains("a missing expect_tx"), "{e}");
}

#[test]
fn a_test_wait_spin_loop_that_never_ends_names_the_barrier_it_polls() {
    // test_wait never suspends: the loop runs to the block's instruction limit, and the runaway
    // report names the object, the phase polled for and what it lacks (arrivals and bytes).
    let mut b = String::from("    mbarrier.init.shared::cta.b64 [bar2], 3;\n");
    b += "    mbarrier.arrive.expect_tx.shared::cta.b64 %rd2, [bar2], 64;\n";
    b += "WAIT:\n    mbarrier.test_wait.parity.shared::cta.b64 %p1, [bar2], 0;\n    @!%p1 bra WAIT;\n";
    let e = run_err_limited(&b, 1, 20_000);
    assert!(e.contains("ran more than 20000 warp instructions"), "{e}");
    assert!(e.contains("`mbarrier.test_wait.parity.shared::cta.b64` at PTX line"), "{e}");
    assert!(e.contains("mbarrier [shared 0x8] (`bar2`+0) for its phase of parity 0 to complete"), "{e}");
    assert!(e.contains("2 of 3 arrivals missing, 64 transaction bytes expected (expect_tx) but not completed"), "{e}");
}

#[test]
fn a_deadlocked_wait_on_an_mbarrier_in_dynamic_shared_memory_names_its_offset_there() {
    let ptx = ".version 8.0\n.target sm_90a\n.address_size 64
.extern .shared .align 16 .b8 dsm[];
.visible .entry k()
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<2>;
    mov.u32 %r1, dsm;
    add.u32 %r1, %r1, 24;
    mbarrier.init.shared::cta.b64 [%r1], 2;
    mbarrier.arrive.shared::cta.b64 %rd1, [%r1];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r1], 0;
    @!%p1 bra WAIT;
    ret;
}
";
    let module = Module::parse(ptx).unwrap_or_else(|e| panic!("parse failed: {e}"));
    let mut m = Machine::new(Arch::Sm90);
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [1, 1, 1], dynamic_smem: 64 };
    let e = match m.launch(&module, "k", &cfg, &ParamBuilder::new().finish()) {
        Ok(_) => panic!("the launch succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("(`dsm`+24 (dynamic shared memory)) for its phase of parity 0"), "{e}");
    assert!(e.contains("1 of 2 arrivals missing, no transaction bytes outstanding"), "{e}");
}

#[test]
fn a_wait_on_arrivals_that_never_come_deadlocks_naming_the_missing_count() {
    let mut b = String::new();
    b += "    setp.ne.u32 %p1, %r1, 0;\n    @%p1 bra SYNC;\n    mbarrier.init.shared.b64 [bar], 48;\nSYNC:\n    bar.sync 0;\n";
    b += "    mbarrier.arrive.shared.b64 %rd2, [bar];\n";
    b += "WAIT:\n    mbarrier.try_wait.shared.b64 %p2, [bar], %rd2;\n    @!%p2 bra WAIT;\n";
    let e = run_err(&b, 32);
    assert!(e.contains("mbarrier [shared 0x0] (`bar`+0) for its phase of parity 0"), "{e}");
    assert!(e.contains("16 of 48 arrivals missing, no transaction bytes outstanding"), "{e}");
}

#[test]
fn the_shared_cluster_forms_of_a_one_cta_cluster_act_on_the_ctas_own_barrier() {
    // A 1x1x1 cluster: a shared::cta address is a valid shared::cluster address of the own CTA;
    // the `.shared::cluster` arrive has no state result (`_`).
    let mut b = String::from("    mov.u32 %r2, bar;\n    mbarrier.init.shared::cta.b64 [%r2], 2;\n");
    b += "    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r2];\n";
    b += "    mbarrier.arrive.expect_tx.release.cluster.shared::cluster.b64 _, [%r2], 4;\n";
    b += "    mbarrier.complete_tx.relaxed.cluster.shared::cluster.b64 [%r2], 4;\n";
    b += "    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p1, [%r2], 0;\n";
    b += &put_p(0, "%p1");
    assert_eq!(run_ok(&b, 1, 1), vec![1]);
}

#[test]
fn an_arrive_on_shared_memory_never_initialised_as_an_mbarrier_is_an_error() {
    let e = run_err("    mbarrier.arrive.shared.b64 %rd2, [bar];\n", 1);
    assert!(e.contains("mbarrier.arrive on shared address 0x0, which holds no initialised mbarrier"), "{e}");
}

#[test]
fn a_wait_on_an_invalidated_mbarrier_is_an_error() {
    let mut b = String::from("    mbarrier.init.shared.b64 [bar], 1;\n    mbarrier.inval.shared.b64 [bar];\n");
    b += "    mbarrier.test_wait.parity.shared.b64 %p1, [bar], 0;\n";
    let e = run_err(&b, 1);
    assert!(e.contains("mbarrier.test_wait on shared address 0x0, which holds no initialised mbarrier"), "{e}");
}

#[test]
fn more_arrivals_than_are_pending_is_an_error() {
    let mut b =
        String::from("    mbarrier.init.shared.b64 [bar], 4;\n    mbarrier.arrive.shared.b64 %rd2, [bar], 3;\n");
    b += "    mbarrier.arrive.shared.b64 %rd3, [bar], 2;\n";
    let e = run_err(&b, 1);
    assert!(e.contains("mbarrier.arrive of 2 on shared address 0x0 with 1 of 4 arrivals pending"), "{e}");
}

#[test]
fn an_init_count_outside_the_isa_range_is_an_error() {
    let e = run_err("    mbarrier.init.shared.b64 [bar], 1048576;\n", 1);
    assert!(e.contains("mbarrier.init count 1048576 outside 1..=1048575"), "{e}");
}

#[test]
fn a_tx_count_outside_the_isa_range_is_an_error() {
    let mut b = String::from("    mbarrier.init.shared.b64 [bar], 1;\n");
    b += "    mbarrier.expect_tx.shared.b64 [bar], 1048575;\n    mbarrier.expect_tx.shared.b64 [bar], 1;\n";
    let e = run_err(&b, 1);
    assert!(
        e.contains("mbarrier.expect_tx of 1 bytes on shared address 0x0 takes its tx-count from 1048575 to 1048576"),
        "{e}"
    );
}

#[test]
fn a_no_complete_arrival_that_would_complete_the_phase_is_an_error() {
    let mut b = String::from("    mbarrier.init.shared.b64 [bar], 2;\n");
    b += "    mbarrier.arrive.noComplete.shared.b64 %rd2, [bar], 2;\n";
    let e = run_err(&b, 1);
    assert!(e.contains("mbarrier.arrive.noComplete of 2 on shared address 0x0 completes the phase"), "{e}");
}

#[test]
fn a_misaligned_mbarrier_is_an_error() {
    let mut b = String::from("    mov.u32 %r2, buf;\n    add.u32 %r2, %r2, 4;\n");
    b += "    mbarrier.init.shared.b64 [%r2], 1;\n";
    let e = run_err(&b, 1);
    assert!(e.contains("is not 8-byte aligned"), "{e}");
}
