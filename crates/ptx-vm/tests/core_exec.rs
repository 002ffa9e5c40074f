//! The VM's core on hand-written PTX: parsing, the execution model (divergence, special
//! registers, barriers), deadlock detection, memory faults and launch errors.

use ptx_vm::*;
use std::time::{Duration, Instant};

const HEADER: &str = ".version 9.0\n.target sm_80\n.address_size 64\n";

fn cfg(grid: [u32; 3], block: [u32; 3]) -> LaunchConfig {
    LaunchConfig { grid, block, dynamic_smem: 0 }
}

/// Runs `kernel(out)` with an output of `n` u32 words (poisoned) and returns the words.
fn run_out(body: &str, kernel: &str, c: LaunchConfig, n: usize) -> Result<Vec<u32>, VmError> {
    let module = Module::parse(&format!("{HEADER}{body}"))?;
    let mut m = Machine::new(Arch::Sm80);
    let out = m.alloc(n * 4)?;
    m.memset(out, 0xee, n * 4)?;
    m.launch(&module, kernel, &c, &ParamBuilder::new().ptr(out).finish())?;
    let mut bytes = vec![0u8; n * 4];
    m.read(out, &mut bytes)?;
    Ok(bytes.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// A kernel `k(out)` whose body stores %r9 of each thread at out[linear tid].
fn store_per_thread(setup: &str) -> String {
    format!(
        r#"
.visible .entry k(.param .u64 out)
{{
    .reg .pred %p<8>;
    .reg .b32 %r<20>;
    .reg .b64 %rd<8>;
    .reg .f32 %f<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %tid.y;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
{setup}
    mul.wide.u32 %rd2, %r4, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r9;
    ret;
}}
"#
    )
}

#[test]
fn parser_accepts_nvcc_forms_and_immediates() {
    let ptx = r#"
// a comment
.const .align 4 .b32 table[4] = {10, 20, 0x1e, -1};
.global .align 8 .u64 counter = 5;
.visible .entry k(.param .u64 out)
.maxntid 64, 1, 1
.minnctapersm 2
{
    .reg .pred %p<3>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    .reg .f32 %f<4>;
    .pragma "nounroll";
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    and.b32 %r2, %r1, 3;
    shl.b32 %r3, %r2, 2;
    mov.u64 %rd2, table;
    cvt.u64.u32 %rd3, %r3;
    add.s64 %rd2, %rd2, %rd3;
    ld.const.u32 %r4, [%rd2];
    ld.const.u32 %r5, [table+8];
    add.s32 %r4, %r4, %r5;
    mov.f32 %f1, 0f3FC00000;
    mov.f32 %f2, 0f40000000;
    mul.f32 %f3, %f1, %f2;
    cvt.rzi.s32.f32 %r6, %f3;
    add.s32 %r4, %r4, %r6;
    add.s32 %r4, %r4, -100;
    { .reg .b32 %r1; mov.u32 %r1, 1000; add.s32 %r4, %r4, %r1; }
    setp.eq.s32 %p1, %r2, 3;
    @!%p1 bra $L__skip;
    ld.global.u64 %rd4, [counter];
    cvt.u32.u64 %r7, %rd4;
    add.s32 %r4, %r4, %r7;
$L__skip:
    mov.b64 %rd5, {%r4, %r1};
    mov.b64 {%r8, %r9}, %rd5;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd3, %rd1, %rd3;
    st.global.u32 [%rd3], %r8;
    ret;
}
"#;
    let out = run_out(ptx, "k", cfg([1, 1, 1], [8, 1, 1]), 8).unwrap();
    let table = [10u32, 20, 30, u32::MAX];
    for (t, &v) in out.iter().enumerate() {
        let mut want = table[t % 4].wrapping_add(30).wrapping_add(3).wrapping_sub(100).wrapping_add(1000);
        if t % 4 == 3 {
            want = want.wrapping_add(5);
        }
        assert_eq!(v, want, "thread {t}");
    }
}

#[test]
fn unsupported_instruction_is_a_launch_time_error_naming_it_and_the_line() {
    let ptx =
        format!("{HEADER}.visible .entry k()\n{{\n    .reg .b32 %r<2>;\n    suq.width.b32 %r1, [%r1];\n    ret;\n}}\n");
    let module = Module::parse(&ptx).unwrap();
    let e = Machine::new(Arch::Sm80).launch(&module, "k", &cfg([1, 1, 1], [32, 1, 1]), &[]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VmError::Unsupported { line: 7, .. }), "{msg}");
    assert!(msg.contains("suq.width.b32") && msg.contains("kernel `k`"), "{msg}");
    assert_eq!(module.unsupported("k"), Some(vec![e]));
}

#[test]
fn undefined_register_and_label_are_errors_with_lines() {
    let ptx =
        format!("{HEADER}.visible .entry k()\n{{\n    .reg .b32 %r<2>;\n    add.s32 %r1, %r1, %r7;\n    ret;\n}}\n");
    let e = Module::parse(&ptx).unwrap_err();
    assert_eq!(e, VmError::Undefined { name: "%r7".into(), line: 7 });
    let ptx = format!("{HEADER}.visible .entry k()\n{{\n    bra $L__nowhere;\n}}\n");
    assert!(matches!(Module::parse(&ptx).unwrap_err(), VmError::Undefined { .. }));
}

#[test]
fn special_registers_in_three_dimensions() {
    let setup = r#"
    mov.u32 %r10, %tid.z;
    mov.u32 %r11, %ntid.y;
    mul.lo.s32 %r12, %r11, %r3;
    mad.lo.s32 %r4, %r10, %r12, %r4;
    mov.u32 %r13, %ctaid.x;
    mov.u32 %r14, %ctaid.y;
    mov.u32 %r15, %nctaid.x;
    mad.lo.s32 %r16, %r14, %r15, %r13;
    mov.u32 %r17, %ntid.z;
    mul.lo.s32 %r17, %r17, %r12;
    mad.lo.s32 %r4, %r16, %r17, %r4;
    mov.u32 %r5, %laneid;
    mov.u32 %r6, %warpid;
    mov.u32 %r7, %lanemask_lt;
    popc.b32 %r7, %r7;
    shl.b32 %r9, %r6, 16;
    shl.b32 %r5, %r5, 8;
    or.b32 %r9, %r9, %r5;
    or.b32 %r9, %r9, %r7;
"#;
    // Block 4x3x5 = 60 threads (a partial second warp), grid 2x2x1.
    let out = run_out(&store_per_thread(setup), "k", cfg([2, 2, 1], [4, 3, 5]), 240).unwrap();
    for b in 0..4 {
        for t in 0..60u32 {
            let (lane, warp) = (t % 32, t / 32);
            let want = (warp << 16) | (lane << 8) | lane;
            assert_eq!(out[b * 60 + t as usize], want, "block {b} thread {t}");
        }
    }
}

#[test]
fn divergent_lanes_reconverge_for_a_full_warp_shuffle() {
    // Each lane loops lane%5 times and takes one of two branches, then all 32 shuffle.
    let setup = r#"
    mov.u32 %r9, 0;
    rem.u32 %r5, %r1, 5;
$L__loop:
    setp.eq.s32 %p1, %r5, 0;
    @%p1 bra $L__done;
    add.s32 %r9, %r9, 10;
    sub.s32 %r5, %r5, 1;
    bra.uni $L__loop;
$L__done:
    and.b32 %r6, %r1, 1;
    setp.eq.s32 %p2, %r6, 0;
    @%p2 bra $L__even;
    add.s32 %r9, %r9, 1000;
    bra.uni $L__join;
$L__even:
    add.s32 %r9, %r9, 2000;
$L__join:
    shfl.sync.bfly.b32 %r7, %r9, 1, 31, -1;
    shl.b32 %r9, %r9, 16;
    or.b32 %r9, %r9, %r7;
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [32, 1, 1]), 32).unwrap();
    let own = |l: u32| (l % 5) * 10 + if l % 2 == 1 { 1000 } else { 2000 };
    for l in 0..32u32 {
        assert_eq!(out[l as usize], (own(l) << 16) | own(l ^ 1), "lane {l}");
    }
}

#[test]
fn bar_sync_orders_shared_memory_between_warps() {
    // Thread t writes smem[t]; after the barrier it reads smem[(t + 32) % 128] (another warp's).
    let ptx = r#"
.visible .entry k(.param .u64 out)
{
    .shared .align 4 .b8 buf[512];
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, buf;
    add.s32 %r4, %r3, %r2;
    mul.lo.s32 %r5, %r1, 3;
    st.shared.u32 [%r4], %r5;
    bar.sync 0;
    add.s32 %r6, %r1, 32;
    and.b32 %r6, %r6, 127;
    shl.b32 %r6, %r6, 2;
    add.s32 %r6, %r3, %r6;
    ld.shared.u32 %r7, [%r6];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r7;
    ret;
}
"#;
    let out = run_out(ptx, "k", cfg([2, 1, 1], [128, 1, 1]), 128).unwrap();
    for t in 0..128u32 {
        assert_eq!(out[t as usize], ((t + 32) % 128) * 3, "thread {t}");
    }
}

#[test]
fn named_barrier_with_a_thread_count_syncs_a_subset_of_warps() {
    // Warps 0 and 1 use barrier 1 with 64 threads; warps 2 and 3 never touch it.
    let ptx = r#"
.visible .entry k(.param .u64 out)
{
    .shared .align 4 .b8 buf[512];
    .reg .pred %p<2>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r9, 7;
    setp.ge.u32 %p1, %r1, 64;
    @%p1 bra $L__out;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, buf;
    add.s32 %r4, %r3, %r2;
    add.s32 %r5, %r1, 100;
    st.shared.u32 [%r4], %r5;
    barrier.sync.aligned 1, 64;
    xor.b32 %r6, %r1, 32;
    shl.b32 %r6, %r6, 2;
    add.s32 %r6, %r3, %r6;
    ld.shared.u32 %r9, [%r6];
$L__out:
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r9;
    ret;
}
"#;
    let out = run_out(ptx, "k", cfg([1, 1, 1], [128, 1, 1]), 128).unwrap();
    for t in 0..128u32 {
        let want = if t < 64 { (t ^ 32) + 100 } else { 7 };
        assert_eq!(out[t as usize], want, "thread {t}");
    }
}

#[test]
fn bar_red_popc_counts_predicates_across_the_block() {
    let setup = r#"
    and.b32 %r5, %r1, 3;
    setp.eq.s32 %p1, %r5, 0;
    bar.red.popc.u32 %r9, 0, %p1;
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [96, 1, 1]), 96).unwrap();
    assert!(out.iter().all(|&v| v == 24), "{out:?}");
}

#[test]
fn a_warp_that_exits_before_bar_sync_releases_the_barrier() {
    // PTX ISA 9.7.13.1: a barrier without a thread count waits for the CTA's non-exited threads,
    // so warp 1 returning from the kernel leaves warp 0 alone at the barrier, which completes.
    let ptx = r#"
.visible .entry skip_barrier(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra $L__end;
    bar.sync 0;
$L__end:
    ret;
}
"#;
    run_out(ptx, "skip_barrier", cfg([1, 1, 1], [64, 1, 1]), 1).unwrap();
}

#[test]
fn a_ret_from_a_func_is_not_an_exit() {
    // Warp 1 calls a function that returns: its threads are alive and take part in the barrier,
    // so bar.red.popc counts all 64 (an exit would leave 32).
    let ptx = r#"
.func noop()
{
    ret;
}
.visible .entry k(.param .u64 out)
{
    .reg .pred %p<3>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 32;
    @%p1 bra $L__sync;
    call.uni
    noop,
    (
    );
$L__sync:
    setp.ne.u32 %p2, %r1, 1000;
    bar.red.popc.u32 %r9, 0, %p2;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r9;
    ret;
}
"#;
    let out = run_out(ptx, "k", cfg([1, 1, 1], [64, 1, 1]), 64).unwrap();
    assert!(out.iter().all(|&v| v == 64), "{out:?}");
}

#[test]
fn a_warp_waiting_at_another_barrier_is_a_deadlock_error_not_a_hang() {
    // Warp 0 waits at barrier 0 for the whole block; warp 1 is alive and waits at barrier 1 for
    // 64 threads that never come: no exit can release either.
    let ptx = r#"
.visible .entry two_barriers(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra $L__other;
    bar.sync 0;
    bra.uni $L__end;
$L__other:
    bar.sync 1, 64;
$L__end:
    ret;
}
"#;
    let start = Instant::now();
    let e = run_out(ptx, "two_barriers", cfg([1, 1, 1], [64, 1, 1]), 1).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    let msg = e.to_string();
    assert!(matches!(e, VmError::Deadlock { .. }), "{msg}");
    assert!(msg.contains("two_barriers") && msg.contains("block (0,0,0)"), "{msg}");
    assert!(msg.contains("warp 0 (lanes 0xffffffff) wait at barrier 0") && msg.contains("PTX line 12"), "{msg}");
    assert!(msg.contains("warp 1 (lanes 0xffffffff) wait at barrier 1 (32 of 64 threads arrived)"), "{msg}");
    assert!(msg.contains("PTX line 15"), "{msg}");
}

#[test]
fn a_barrier_held_up_only_by_exiting_lanes_is_released_when_they_exit() {
    // Lanes 0-15 of warp 1 (lower pc first) wait at the barrier while lanes 16-31 are still
    // running: the barrier completes when those exit. bar.red.popc counts the arriving threads'
    // predicates only (tid % 4 == 0 among the 48 that arrive: 12).
    let setup = r#"
    setp.ge.u32 %p2, %r1, 48;
    @%p2 bra $L__exit;
    and.b32 %r5, %r1, 3;
    setp.eq.s32 %p1, %r5, 0;
    bar.red.popc.u32 %r9, 0, %p1;
    bra.uni $L__store;
$L__exit:
    add.s32 %r6, %r1, 1000;
    add.s32 %r6, %r6, 1;
    exit;
$L__store:
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [64, 1, 1]), 64).unwrap();
    assert!(out[..48].iter().all(|&v| v == 12), "{out:?}");
    assert!(out[48..].iter().all(|&v| v == 0xeeee_eeee), "{out:?}");
}

#[test]
fn bar_arrive_then_exit_is_not_counted_twice() {
    // Warp 0 arrives at barrier 1 (count 96) and exits; warp 1 waits there. Warp 2 is still on its
    // way: the barrier must not complete on 32 arrived + 32 exited threads.
    let setup = r#"
    setp.lt.u32 %p2, %r1, 32;
    @%p2 bra $L__producer;
    setp.lt.u32 %p3, %r1, 64;
    @%p3 bra $L__consumer;
    mov.u32 %r6, 0;
$L__delay:
    add.s32 %r6, %r6, 1;
    setp.lt.u32 %p4, %r6, 64;
    @%p4 bra $L__delay;
    mov.u32 %r7, 55;
    st.shared.u32 [flag], %r7;
$L__consumer:
    bar.sync 1, 96;
    ld.shared.u32 %r9, [flag];
    bra.uni $L__store;
$L__producer:
    bar.arrive 1, 96;
    exit;
$L__store:
"#;
    let body = store_per_thread(setup).replace(
        "    .reg .pred %p<8>;",
        "    .reg .pred %p<8>;
    .shared .align 4 .u32 flag;",
    );
    let out = run_out(&body, "k", cfg([1, 1, 1], [96, 1, 1]), 96).unwrap();
    assert!(out[32..].iter().all(|&v| v == 55), "{out:?}");
}

#[test]
fn a_shuffle_waiting_for_an_exited_lane_is_an_error() {
    let setup = r#"
    setp.eq.u32 %p1, %r1, 3;
    @%p1 exit;
    shfl.sync.idx.b32 %r9, %r1, 0, 31, -1;
"#;
    let e = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [32, 1, 1]), 32).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exited lanes 0x00000008") && msg.contains("shfl.sync.idx.b32"), "{msg}");
}

#[test]
fn out_of_bounds_global_store_names_address_thread_and_source_line() {
    let ptx = r#"
.visible .entry oob(.param .u64 out)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    .loc 1 42 7
    mul.wide.u32 %rd2, %r1, 64;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r1;
    ret;
}
.file 1 "/src/kernels/oob.cu"
"#;
    let e = run_out(ptx, "oob", cfg([1, 1, 1], [32, 1, 1]), 16).unwrap_err();
    let msg = e.to_string();
    match &e {
        VmError::Runtime { kernel, thread, at, .. } => {
            assert_eq!(kernel, "oob");
            assert_eq!(*thread, Some([1, 0, 0]));
            assert_eq!(at.ptx_line, 14);
            assert_eq!(at.source.as_deref(), Some("oob.cu:42"));
        }
        _ => panic!("{msg}"),
    }
    assert!(msg.contains("outside every allocation") && msg.contains("0x"), "{msg}");
}

#[test]
fn misaligned_and_shared_out_of_bounds_accesses_fault() {
    let mis = store_per_thread("    add.s64 %rd4, %rd1, 2;\n    ld.global.u32 %r9, [%rd4];\n");
    let e = run_out(&mis, "k", cfg([1, 1, 1], [1, 1, 1]), 4).unwrap_err();
    assert!(e.to_string().contains("misaligned"), "{e}");
    let shared = r#"
.visible .entry k(.param .u64 out)
{
    .shared .align 4 .b8 buf[64];
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 2;
    st.shared.u32 [%r2], %r1;
    ret;
}
"#;
    let e = run_out(shared, "k", cfg([1, 1, 1], [32, 1, 1]), 1).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("shared") && msg.contains("0x40") && msg.contains("thread (16,0,0)"), "{msg}");
}

#[test]
fn trap_reports_its_line() {
    let e = run_out(&store_per_thread("    trap;\n"), "k", cfg([1, 1, 1], [1, 1, 1]), 1).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("trap") && msg.contains("PTX line 16"), "{msg}");
}

#[test]
fn allocations_are_aligned_guarded_and_freeable() {
    let mut m = Machine::new(Arch::Sm80);
    let a = m.alloc(10).unwrap();
    let b = m.alloc(1000).unwrap();
    assert!(a != 0 && a % 256 == 0 && b % 256 == 0 && b > a + 10);
    m.write(a + 4, &[1, 2, 3]).unwrap();
    let mut buf = [0u8; 10];
    m.read(a, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, 0, 0, 1, 2, 3, 0, 0, 0]);
    assert!(m.write(a + 8, &[0; 4]).is_err(), "a write past the end fails");
    assert!(m.read(a + 16, &mut buf).is_err(), "the guard gap is unmapped");
    m.free(a).unwrap();
    assert!(m.read(a, &mut buf).is_err());
    assert!(m.free(a).is_err());
}

#[test]
fn launch_checks_params_shape_and_shared_memory_limits() {
    let body = r#"
.visible .entry k(.param .u64 out)
{
    .reg .b32 %r<2>;
    mov.u32 %r1, %dynamic_smem_size;
    ret;
}
"#;
    let module = Module::parse(&format!("{HEADER}{body}")).unwrap();
    assert_eq!(module.param_size("k"), Some(8));
    let mut m = Machine::new(Arch::Sm80);
    let p = ParamBuilder::new().ptr(0).finish();
    let e = m.launch(&module, "k", &cfg([1, 1, 1], [32, 1, 1]), &[0; 4]).unwrap_err();
    assert!(e.to_string().contains("expected 8 bytes, got 4"), "{e}");
    assert!(m.launch(&module, "k", &cfg([1, 1, 1], [2048, 1, 1]), &p).is_err());
    assert!(m.launch(&module, "k", &cfg([0, 1, 1], [32, 1, 1]), &p).is_err());
    assert!(m.launch(&module, "nope", &cfg([1, 1, 1], [32, 1, 1]), &p).is_err());
    let big = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 200 * 1024 };
    let e = m.launch(&module, "k", &big, &p).unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    let mut h = Machine::new(Arch::Sm90);
    h.launch(&module, "k", &big, &p).unwrap();
}

#[test]
fn carry_chains_add_and_subtract_64_bit_values_in_32_bit_halves() {
    // (2^32 - 1) + 1 with add.cc/addc, then subtract 2 with sub.cc/subc.
    let setup = r#"
    mov.u32 %r5, -1;
    mov.u32 %r6, 0;
    add.cc.u32 %r7, %r5, 1;
    addc.u32 %r8, %r6, 0;
    sub.cc.u32 %r10, %r7, 2;
    subc.u32 %r11, %r8, 0;
    shl.b32 %r9, %r8, 24;
    and.b32 %r10, %r10, 255;
    shl.b32 %r10, %r10, 8;
    or.b32 %r9, %r9, %r10;
    or.b32 %r9, %r9, %r11;
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [1, 1, 1]), 1).unwrap();
    // hi after add = 1; lo after sub = 0xfffffffe; hi after sub = 0.
    assert_eq!(out[0], (1 << 24) | (0xfe << 8));
}

#[test]
fn global_atomics_from_parallel_blocks_are_exact() {
    let ptx = r#"
.visible .entry count(.param .u64 out)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    atom.global.add.u32 %r1, [%rd1], 1;
    red.global.add.u64 [%rd1+8], 3;
    atom.global.max.s32 %r2, [%rd1+4], %r1;
    ret;
}
"#;
    let module = Module::parse(&format!("{HEADER}{ptx}")).unwrap();
    let mut m = Machine::new(Arch::Sm80).with_threads(4);
    let out = m.alloc(16).unwrap();
    m.launch(&module, "count", &cfg([64, 1, 1], [128, 1, 1]), &ParamBuilder::new().ptr(out).finish()).unwrap();
    let mut b = [0u8; 16];
    m.read(out, &mut b).unwrap();
    assert_eq!(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), 64 * 128);
    assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]), 64 * 128 - 1);
    assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 3 * 64 * 128);
}

#[test]
fn cp_async_zero_fills_past_src_size_and_honours_wait_group() {
    let ptx = r#"
.visible .entry k(.param .u64 src, .param .u64 out)
{
    .shared .align 16 .b8 buf[512];
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [src];
    ld.param.u64 %rd2, [out];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 4;
    mov.u32 %r3, buf;
    add.s32 %r4, %r3, %r2;
    cvt.u64.u32 %rd3, %r2;
    add.s64 %rd4, %rd1, %rd3;
    and.b32 %r5, %r1, 15;
    cp.async.cg.shared.global [%r4], [%rd4], 16, %r5;
    cp.async.commit_group;
    cp.async.wait_group 0;
    bar.sync 0;
    ld.shared.v4.u32 {%r6, %r7, %r5, %r1}, [%r4];
    add.s64 %rd5, %rd2, %rd3;
    st.global.v4.u32 [%rd5], {%r6, %r7, %r5, %r1};
    ret;
}
"#;
    let module = Module::parse(&format!("{HEADER}{ptx}")).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let src: Vec<u8> = (0..512).map(|i| (i % 251) as u8 + 1).collect();
    let ps = m.alloc(512).unwrap();
    m.write(ps, &src).unwrap();
    let po = m.alloc(512).unwrap();
    m.launch(&module, "k", &cfg([1, 1, 1], [32, 1, 1]), &ParamBuilder::new().ptr(ps).ptr(po).finish()).unwrap();
    let mut out = vec![0u8; 512];
    m.read(po, &mut out).unwrap();
    for t in 0..32 {
        for i in 0..16 {
            let want = if i < t % 16 { src[t * 16 + i] } else { 0 };
            assert_eq!(out[t * 16 + i], want, "thread {t} byte {i}");
        }
    }
}

#[test]
fn syncthreads_reached_at_two_different_places_is_an_error() {
    let ptx = r#"
.visible .entry k(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra $L__second;
    bar.sync 0;
    bra.uni $L__end;
$L__second:
    bar.sync 0;
$L__end:
    ret;
}
"#;
    let e = run_out(ptx, "k", cfg([1, 1, 1], [64, 1, 1]), 1).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("two different instructions") && msg.contains("PTX line 12"), "{msg}");
}

#[test]
fn modules_are_send_and_sync_and_machines_are_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Module>();
    send::<Machine>();
}

#[test]
fn modifiers_the_vm_does_not_implement_are_rejected_at_launch() {
    for ins in
        ["mad.hi.sat.s32 %r1, %r1, %r1, %r1;", "max.xorsign.abs.f32 %f1, %f1, %f1;", "setp.lt.weird.s32 %p1, %r1, %r1;"]
    {
        let ptx = format!(
            "{HEADER}.visible .entry k()\n{{\n    .reg .pred %p<2>;\n    .reg .b32 %r<2>;\n    .reg .f32 %f<2>;\n    {ins}\n    ret;\n}}\n"
        );
        let module = Module::parse(&ptx).unwrap();
        let e = Machine::new(Arch::Sm80).launch(&module, "k", &cfg([1, 1, 1], [32, 1, 1]), &[]).unwrap_err();
        assert!(matches!(e, VmError::Unsupported { line: 9, .. }), "{ins}: {e}");
    }
}

#[test]
fn f32_arithmetic_returns_the_canonical_nan() {
    // 0 * inf and inf - inf are NaN; GPUs return 0x7fffffff, abs/neg keep the bits they are given.
    let setup = r#"
    mov.f32 %f1, 0f7F800000;
    mov.f32 %f2, 0f00000000;
    mul.f32 %f3, %f1, %f2;
    sub.f32 %f4, %f1, %f1;
    mov.b32 %r5, %f3;
    mov.b32 %r6, %f4;
    xor.b32 %r9, %r5, %r6;
    and.b32 %r9, %r9, %r5;
    or.b32 %r9, %r9, %r6;
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [1, 1, 1]), 1).unwrap();
    assert_eq!(out[0], 0x7fff_ffff);
}

#[test]
fn a_spin_lock_inside_one_warp_makes_progress() {
    // Every lane takes a shared-memory lock, increments a counter, releases the lock. With only
    // lowest-pc-first scheduling the lanes spinning behind the holder would starve it forever.
    let ptx = r#"
.visible .entry k(.param .u64 out)
{
    .shared .align 4 .b8 lock[4];
    .shared .align 4 .b8 count[4];
    .reg .pred %p<3>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.ne.u32 %p2, %r1, 0;
    @%p2 bra $L__spin;
    st.shared.u32 [lock], 0;
    st.shared.u32 [count], 0;
$L__spin:
    atom.shared.cas.b32 %r2, [lock], 0, 1;
    setp.ne.u32 %p1, %r2, 0;
    @%p1 bra $L__spin;
    ld.volatile.shared.u32 %r3, [count];
    add.s32 %r3, %r3, 1;
    st.volatile.shared.u32 [count], %r3;
    membar.cta;
    atom.shared.exch.b32 %r4, [lock], 0;
    bar.sync 0;
    ld.shared.u32 %r5, [count];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd2, %rd1, %rd2;
    st.global.u32 [%rd2], %r5;
    ret;
}
"#;
    let out = run_out(ptx, "k", cfg([1, 1, 1], [32, 1, 1]), 32).unwrap();
    assert!(out.iter().all(|&v| v == 32), "{out:?}");
}

#[test]
fn dp4a_mixes_signed_and_unsigned_bytes() {
    let setup = r#"
    mov.u32 %r5, 0xff020304;
    mov.u32 %r6, 0x01ff0102;
    dp4a.s32.u32 %r7, %r5, %r6, 10;
    dp4a.u32.s32 %r8, %r5, %r6, 10;
    shl.b32 %r9, %r7, 16;
    and.b32 %r8, %r8, 0xffff;
    or.b32 %r9, %r9, %r8;
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [1, 1, 1]), 1).unwrap();
    // a bytes (lsb first) 4,3,2,0xff; b bytes 2,1,0xff,1.
    let s_u = 10 + 4 * 2 + 3 + 2 * 255 - 1; // a signed, b unsigned
    let u_s = 10 + 4 * 2 + 3 - 2 + 255; // a unsigned, b signed: 2 * -1
    assert_eq!(out[0], ((s_u as u32) << 16) | (u_s as u32 & 0xffff));
}

#[test]
fn a_failed_device_assert_is_an_error_naming_the_source_line() {
    let module = Module::parse(include_str!("ptx/core_assert.ptx")).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let input: Vec<u8> = (0..32i32).map(|i| if i == 5 { -1 } else { i }).flat_map(|v| v.to_le_bytes()).collect();
    let pi = m.alloc(128).unwrap();
    m.write(pi, &input).unwrap();
    let po = m.alloc(128).unwrap();
    let e = m.launch(&module, "checked", &cfg([1, 1, 1], [32, 1, 1]), &ParamBuilder::new().ptr(pi).ptr(po).finish());
    let msg = e.unwrap_err().to_string();
    assert!(msg.contains("assert") && msg.contains("thread (5,0,0)") && msg.contains("core_assert.cu:5"), "{msg}");
}

#[test]
fn an_endless_loop_fails_at_the_instruction_limit_instead_of_hanging() {
    let ptx = r#"
.visible .entry spin(.param .u64 out)
{
$L__forever:
    bra.uni $L__forever;
}
"#;
    let module = Module::parse(&format!("{HEADER}{ptx}")).unwrap();
    let mut m = Machine::new(Arch::Sm80).with_block_instruction_limit(1 << 20);
    let e = m.launch(&module, "spin", &cfg([1, 1, 1], [64, 1, 1]), &ParamBuilder::new().ptr(0).finish()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("without finishing") && msg.contains("warps 0-1 (lanes 0xffffffff) at `bra.uni` at PTX line 8"),
        "{msg}"
    );
}

#[test]
fn half_precision_ex2_and_tanh_approx() {
    // f16x2 {lo 1.0, hi 3.0} -> {2.0, 8.0}; bf16x2 tanh of {0, 0} -> {0, 0}.
    let setup = r#"
    mov.b32 %r5, 0x42003c00;
    ex2.approx.f16x2 %r6, %r5;
    mov.b32 %r7, 0;
    tanh.approx.bf16x2 %r8, %r7;
    xor.b32 %r9, %r6, %r8;
"#;
    let out = run_out(&store_per_thread(setup), "k", cfg([1, 1, 1], [1, 1, 1]), 1).unwrap();
    assert_eq!(out[0], 0x4800_4000);
}

#[test]
fn isspacep_and_elect_sync() {
    // Bit 0: the output pointer is global; bit 1: a shared variable's generic address is shared;
    // bit 2: that address is not global; bits 8..: the elected lane (the lowest of the odd lanes).
    let ptx = r#"
.visible .entry k(.param .u64 out)
{
    .shared .align 4 .b8 buf[16];
    .reg .pred %p<6>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r9, 0;
    isspacep.global %p1, %rd1;
    selp.u32 %r2, 1, 0, %p1;
    mov.u64 %rd2, buf;
    cvta.shared.u64 %rd3, %rd2;
    isspacep.shared %p2, %rd3;
    selp.u32 %r3, 2, 0, %p2;
    isspacep.global %p3, %rd3;
    selp.u32 %r4, 0, 4, %p3;
    or.b32 %r9, %r2, %r3;
    or.b32 %r9, %r9, %r4;
    and.b32 %r5, %r1, 1;
    setp.eq.u32 %p4, %r5, 0;
    @%p4 bra $L__done;
    elect.sync %r6|%p5, 0xaaaaaaaa;
    shl.b32 %r6, %r6, 8;
    or.b32 %r9, %r9, %r6;
    selp.u32 %r7, 0x10000, 0, %p5;
    or.b32 %r9, %r9, %r7;
$L__done:
    mul.wide.u32 %rd4, %r1, 4;
    add.s64 %rd4, %rd1, %rd4;
    st.global.u32 [%rd4], %r9;
    ret;
}
"#;
    let out = run_out(ptx, "k", cfg([1, 1, 1], [32, 1, 1]), 32).unwrap();
    for l in 0..32u32 {
        let want = if l % 2 == 0 { 7 } else { 7 | (1 << 8) | if l == 1 { 0x10000 } else { 0 } };
        assert_eq!(out[l as usize], want, "lane {l}");
    }
}

#[test]
fn cuda_barrier_with_memcpy_async_runs_on_mbarrier() {
    let module = Module::parse(include_str!("ptx/core_pipeline.ptx")).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let n = 512;
    let input: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
    let pi = m.alloc(n * 4).unwrap();
    m.write(pi, &input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let po = m.alloc(n * 4).unwrap();
    let p = ParamBuilder::new().ptr(pi).ptr(po).i32(n as i32).finish();
    m.launch(&module, "pipe_copy", &cfg([1, 1, 1], [128, 1, 1]), &p).unwrap();
    let mut b = vec![0u8; n * 4];
    m.read(po, &mut b).unwrap();
    for i in 0..n {
        let got = f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        let (t, x) = (i / 128, i % 128);
        assert_eq!(got, input[t * 128 + (x + 1) % 128] * 2.0, "element {i}");
    }
}

#[test]
fn mbarrier_phases_complete_when_all_arrivals_are_in() {
    // 64 threads arrive on one mbarrier, spin on try_wait.parity, and report the pending count
    // their state token captured (64 - arrival order) plus 1000 once the phase completed.
    let ptx = r#"
.visible .entry k(.param .u64 out)
{
    .shared .align 8 .b64 bar;
    .reg .pred %p<4>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L__synced;
    mbarrier.init.shared.b64 [bar], 64;
$L__synced:
    bar.sync 0;
    mbarrier.arrive.shared.b64 %rd2, [bar];
    mbarrier.pending_count.b64 %r2, %rd2;
$L__wait:
    mbarrier.try_wait.parity.shared.b64 %p2, [bar], 0;
    @!%p2 bra $L__wait;
    add.s32 %r9, %r2, 1000;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd3, %rd1, %rd3;
    st.global.u32 [%rd3], %r9;
    ret;
}
"#;
    let mut out = run_out(ptx, "k", cfg([1, 1, 1], [64, 1, 1]), 64).unwrap();
    out.sort();
    let want: Vec<u32> = (1..=64).map(|c| c + 1000).collect();
    assert_eq!(out, want);
}
