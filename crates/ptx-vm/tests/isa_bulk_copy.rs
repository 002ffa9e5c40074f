//! Non-tensor bulk copies on hand-written PTX (PTX ISA 9.7.9.25.4, "Data Movement and Conversion
//! Instructions: cp.async.bulk"), one behaviour per test:
//! - `cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [src], size, [mbar]`
//!   copies `size` bytes and performs complete-tx(size) on the mbarrier (9.7.13.15.2); a 1-CTA
//!   cluster's shared::cluster window is the CTA's shared memory.
//! - `cp.async.bulk.global.shared::cta.bulk_group [dst], [src], size` with
//!   `cp.async.bulk.commit_group` and `cp.async.bulk.wait_group{.read} N` (9.7.9.25.4.2-3).
//! - `fence.proxy.async` (9.7.13.4) is accepted: the VM performs every copy at issue, in program
//!   order with the issuing thread's other accesses, so there is no proxy to order.
//! - The size and both addresses are multiples of 16; anything else is an error.
//! - Racecheck: a warp reading a copy's destination before it observed the completion of the
//!   copy's mbarrier phase (by a wait, or at a barrier with a warp that did) is a finding.
//! - Counters: the bytes in `bulk_copy_bytes`, the global and shared request counters.

mod isa_common;
use isa_common::{sm90_kernel, Rng, SM90_PTX};
use ptx_vm::{Arch, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, VmError};

/// A kernel `k` running `body`: tests/ptx/isa_sm90.ptx's `bulk_copy_load` with `body` in place of
/// its own. `in` and `out` are u32 words, `bar` an mbarrier, `buf` 256 bytes 128-byte aligned; `%r1`
/// is the thread id, `%rd1` the output, `%rd2` the input, `%r2` the shared address of `buf`, `%r3`
/// that of `bar`, `%p1` "thread 0".
fn kernel(body: &str) -> String {
    sm90_kernel("bulk_copy_load", &[("body", body)])
}

/// Thread 0 initialises `bar` for one arrival; everyone meets at a barrier.
const INIT: &str = "    @%p1 mbarrier.init.shared::cta.b64 [%r3], 1;\n    bar.sync 0;\n";
/// Thread 0 expects 256 bytes (and arrives), then copies `in[0..64]` into `buf`.
const LOAD: &str = "    @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd3, [%r3], 256;
    @%p1 cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r2], [%rd2], 256, [%r3];\n";
/// Every thread waits for phase 0.
const WAIT: &str = "WAIT:\n    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;\n    @!%p2 bra WAIT;\n";
/// Every thread reads `buf[tid]` into `%r10`.
const READ: &str = "    shl.b32 %r4, %r1, 2;\n    add.u32 %r5, %r2, %r4;\n    ld.shared.u32 %r10, [%r5];\n";
/// Every thread stores `%r10` to `out[tid]`.
const STORE: &str = "    mul.wide.u32 %rd4, %r1, 4;\n    add.s64 %rd5, %rd1, %rd4;\n    st.global.u32 [%rd5], %r10;\n";

fn input(seed: u64) -> Vec<u32> {
    let mut rng = Rng(seed);
    (0..64).map(|_| rng.next_u32()).collect()
}

/// Runs the kernel of `body` with `in` = `inp` (offset by `in_off` bytes) and 64 poisoned output words.
fn run(body: &str, threads: u32, inp: &[u32], in_off: u64) -> Result<(Vec<u32>, LaunchReport), VmError> {
    run_kernel(&kernel(body), "k", threads, inp, in_off)
}

/// [`run`] for kernel `name` of `ptx`.
fn run_kernel(
    ptx: &str,
    name: &str,
    threads: u32,
    inp: &[u32],
    in_off: u64,
) -> Result<(Vec<u32>, LaunchReport), VmError> {
    let module = Module::parse(ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"));
    let mut m = Machine::new(Arch::Sm90);
    let out = m.alloc(256).unwrap();
    m.memset(out, 0xdd, 256).unwrap();
    let inb = m.alloc(256 + 64).unwrap();
    let bytes: Vec<u8> = inp.iter().flat_map(|v| v.to_le_bytes()).collect();
    m.write(inb + in_off, &bytes).unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_smem: 0 };
    let rep = m.launch(&module, name, &cfg, &ParamBuilder::new().ptr(out).ptr(inb + in_off).finish())?;
    let mut b = vec![0u8; 256];
    m.read(out, &mut b).unwrap();
    Ok((b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect(), rep))
}

fn run_err(body: &str, threads: u32, in_off: u64) -> String {
    match run(body, threads, &input(1), in_off) {
        Ok(_) => panic!("the launch succeeded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_global_to_shared_bulk_copy_completes_the_phase_with_its_bytes() {
    // tests/ptx/isa_sm90.ptx's bulk_copy_load: [INIT, LOAD, WAIT, READ, STORE].
    let inp = input(0xb01c);
    let (out, rep) = run_kernel(SM90_PTX, "bulk_copy_load", 64, &inp, 0).unwrap_or_else(|e| panic!("{e}"));
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    assert_eq!(out, inp);
}

#[test]
fn a_bulk_copy_is_counted_as_one_global_request_and_one_shared_request() {
    let body = [INIT, LOAD, WAIT].concat();
    let (_, rep) = run(&body, 32, &input(2), 0).unwrap_or_else(|e| panic!("{e}"));
    let c = rep.counters.expect("counters");
    assert_eq!(c.bulk_copy_bytes, 256);
    assert_eq!((c.global_load_requests, c.global_load_sectors, c.global_load_bytes), (1, 8, 256));
    assert_eq!((c.shared_requests, c.shared_wavefronts), (1, 2));
    assert_eq!(c.unique_bytes_read, 256);
}

#[test]
fn a_shared_to_global_bulk_copy_in_a_bulk_group_writes_the_bytes() {
    // tests/ptx/isa_sm90.ptx's bulk_copy_store: every thread stores in[tid] ^ 0x5a5a5a5a to
    // buf[tid]; the proxy fence and the barrier order the stores before thread 0's bulk store.
    let inp = input(0x5706e);
    let (out, rep) = run_kernel(SM90_PTX, "bulk_copy_store", 64, &inp, 0).unwrap_or_else(|e| panic!("{e}"));
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    assert_eq!(out, inp.iter().map(|v| v ^ 0x5a5a_5a5a).collect::<Vec<u32>>());
    let c = rep.counters.expect("counters");
    assert_eq!((c.bulk_copy_bytes, c.global_store_requests, c.global_store_bytes), (256, 1, 256));
}

#[test]
fn a_bulk_copy_size_that_is_not_a_multiple_of_16_is_an_error() {
    let body = INIT.to_string()
        + "    @%p1 cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r2], [%rd2], 200, [%r3];\n";
    let e = run_err(&body, 1, 0);
    assert!(e.contains("cp.async.bulk global -> shared of 200 bytes"), "{e}");
    assert!(e.contains("must be multiples of 16"), "{e}");
}

#[test]
fn a_bulk_copy_from_a_global_address_not_16_byte_aligned_is_an_error() {
    let body = [INIT, LOAD].concat();
    let e = run_err(&body, 1, 8);
    assert!(e.contains("cp.async.bulk global -> shared of 256 bytes"), "{e}");
    assert!(e.contains("must be multiples of 16"), "{e}");
}

#[test]
fn a_bulk_store_from_a_shared_address_not_16_byte_aligned_is_an_error() {
    let body = "    add.u32 %r7, %r2, 8;\n    cp.async.bulk.global.shared::cta.bulk_group [%rd1], [%r7], 16;\n";
    let e = run_err(body, 1, 0);
    assert!(e.contains("cp.async.bulk shared -> global of 16 bytes"), "{e}");
}

#[test]
fn a_bulk_copy_past_the_end_of_shared_memory_is_an_error() {
    let body = INIT.to_string()
        + "    @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd3, [%r3], 512;\n"
        + "    @%p1 cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r2], [%rd2], 512, [%r3];\n";
    let e = run_err(&body, 1, 0);
    assert!(e.contains("outside the block's"), "{e}");
}

#[test]
fn reading_the_destination_before_the_phase_completed_is_a_racecheck_finding() {
    // One warp: every thread (the issuing one too) reads its word right after the copy, before
    // the wait. The in-flight check sees all 32 reads; plain racecheck sees the 31 reads by
    // threads other than the issuing one, which nothing orders after the copy's writes (the
    // copy's complete-tx releases them only to a wait that observes the phase).
    let body = [INIT, LOAD, READ, WAIT, STORE].concat();
    let (_, rep) = run(&body, 32, &input(3), 0).unwrap_or_else(|e| panic!("{e}"));
    let san = rep.sanitizer.expect("sanitizer report");
    assert_eq!(san.count(FindingKind::SharedReadBeforeBulkCopyComplete), 32, "{san}");
    assert_eq!(san.count(FindingKind::SharedReadAfterWrite), 31, "{san}");
    assert_eq!(san.errors().count(), 2, "{san}");
}

#[test]
fn a_warp_that_meets_a_waiting_warp_at_a_barrier_may_read_the_destination() {
    // Only warp 0 waits; warp 1 learns of the completion through bar.sync (cumulativity).
    let body = [
        INIT,
        LOAD,
        "    setp.lt.u32 %p3, %r1, 32;\n    @!%p3 bra JOIN;\n",
        WAIT,
        "JOIN:\n    bar.sync 0;\n",
        READ,
        STORE,
    ]
    .concat();
    let inp = input(4);
    let (out, rep) = run(&body, 64, &inp, 0).unwrap_or_else(|e| panic!("{e}"));
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    assert_eq!(out, inp);
}

#[test]
fn a_copy_without_expect_tx_leaves_the_phase_open_and_the_wait_deadlocks_naming_the_bytes() {
    // The copy's complete-tx takes tx-count to -256; the arrival then finds it non-zero.
    let body = INIT.to_string()
        + "    @%p1 cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r2], [%rd2], 256, [%r3];\n"
        + "    @%p1 mbarrier.arrive.shared::cta.b64 %rd3, [%r3];\n"
        + WAIT;
    let e = run_err(&body, 32, 0);
    assert!(e.contains("deadlocked"), "{e}");
    assert!(e.contains("mbarrier [shared 0x0]"), "{e}");
    assert!(e.contains("256 transaction bytes completed beyond those expected"), "{e}");
}

#[test]
fn a_bulk_store_of_shared_bytes_never_written_is_an_undefined_value_stored_to_global() {
    // Threads write only the first half of buf; the bulk store sends all 256 bytes.
    let mut body = String::new();
    body += "    setp.lt.u32 %p3, %r1, 32;\n    shl.b32 %r4, %r1, 2;\n    add.u32 %r5, %r2, %r4;\n";
    body += "    @%p3 st.shared.u32 [%r5], %r1;\n    fence.proxy.async.shared::cta;\n    bar.sync 0;\n";
    body += "    @%p1 cp.async.bulk.global.shared::cta.bulk_group [%rd1], [%r2], 256;\n";
    body += "    cp.async.bulk.commit_group;\n    cp.async.bulk.wait_group 0;\n";
    let (out, rep) = run(&body, 64, &input(5), 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[..32], (0..32).collect::<Vec<u32>>()[..]);
    let san = rep.sanitizer.expect("sanitizer report");
    assert_eq!(san.count(FindingKind::UndefinedValueStoredToGlobal), 1, "{san}");
}

#[test]
fn a_bulk_copy_of_an_undefined_size_is_an_undefined_address() {
    // The size (16 or 32) is loaded from the input's first word, or from past its 256 written
    // bytes, where the allocation is uninitialised.
    let body = |at: u32| {
        format!(
            "    ld.global.u32 %r8, [%rd2+{at}];\n    and.b32 %r8, %r8, 16;\n    add.u32 %r8, %r8, 16;\n{INIT}\
             @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd3, [%r3], 256;\n\
             @%p1 cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r2], [%rd2], %r8, [%r3];\n"
        )
    };
    let count = |at: u32| {
        let (_, rep) = run(&body(at), 32, &input(6), 0).unwrap_or_else(|e| panic!("{e}"));
        rep.sanitizer.expect("sanitizer report").count(FindingKind::UndefinedAddress)
    };
    assert_eq!(count(0), 0);
    assert_eq!(count(256), 1);
}
