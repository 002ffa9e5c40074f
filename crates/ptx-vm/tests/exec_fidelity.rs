//! Execution-model fidelity on our own nvcc-compiled kernels (tests/cuda/exec_fidelity.cu):
//! threads that exit before a barrier (PTX ISA 9.7.13.1: a barrier without a thread count waits
//! for the CTA's non-exited threads), a real deadlock and how it reads, shared memory that starts
//! as stale data, and what a failed launch keeps.

use ptx_vm::*;

const PTX: &str = include_str!("ptx/exec_fidelity.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("parse: {e}"))
}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: 0 }
}

fn upload_i32(m: &mut Machine, v: &[i32]) -> u64 {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = m.alloc(bytes.len()).unwrap();
    m.write(p, &bytes).unwrap();
    p
}

/// An output of `n` words, poisoned so that a word the kernel does not write reads 0xeeeeeeee.
fn output(m: &mut Machine, n: usize) -> u64 {
    let p = m.alloc(4 * n).unwrap();
    m.memset(p, 0xee, 4 * n).unwrap();
    p
}

fn download_u32(m: &Machine, p: u64, n: usize) -> Vec<u32> {
    let mut b = vec![0u8; 4 * n];
    m.read(p, &mut b).unwrap();
    b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Deterministic signed inputs in -50..50.
fn inputs(n: usize, salt: u32) -> Vec<i32> {
    (0..n as u32).map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) >> 7) as i32 % 50).collect()
}

const POISON_OUT: u32 = 0xeeee_eeee;

#[test]
fn early_return_before_syncthreads_block_sum_matches_cpu() {
    let md = module();
    let input = inputs(128, 0x5eed);
    // (n, skip): nobody exits; a partial warp; whole warps; one lane in the middle of warp 0 plus
    // a partial tail; one lane of the last warp; a single live thread.
    for (n, skip) in [(128, -1), (100, -1), (64, -1), (45, 7), (128, 127), (33, 31), (1, -1)] {
        let mut m = Machine::new(Arch::Sm80);
        let inp = upload_i32(&mut m, &input);
        let out = output(&mut m, 1);
        let params = ParamBuilder::new().ptr(inp).ptr(out).i32(n).i32(skip).finish();
        let r = m
            .launch(&md, "exec_early_exit_block_sum", &cfg(1, 128), &params)
            .unwrap_or_else(|e| panic!("n {n} skip {skip}: {e}"));
        assert_eq!(r.assert_clean(), Ok(()), "n {n} skip {skip}");
        let want: i32 = (0..n).filter(|&t| t != skip).map(|t| input[t as usize]).sum();
        assert_eq!(download_u32(&m, out, 1)[0] as i32, want, "n {n} skip {skip}");
    }
}

#[test]
fn syncthreads_count_or_and_see_only_the_threads_that_did_not_exit() {
    let md = module();
    // Values > 5 and <= 0 only among threads that exit for the smaller n, so the live threads'
    // results differ from the whole block's.
    let input: Vec<i32> = (0..128)
        .map(|t| {
            if t < 40 {
                1 + t % 5
            } else if t % 2 == 0 {
                9
            } else {
                -3
            }
        })
        .collect();
    for n in [128, 70, 40, 17] {
        let mut m = Machine::new(Arch::Sm80);
        let inp = upload_i32(&mut m, &input);
        let out = output(&mut m, 3 * 128);
        let params = ParamBuilder::new().ptr(inp).ptr(out).i32(n).finish();
        let r = m
            .launch(&md, "exec_syncthreads_reductions_after_exit", &cfg(1, 128), &params)
            .unwrap_or_else(|e| panic!("n {n}: {e}"));
        assert_eq!(r.assert_clean(), Ok(()), "n {n}");
        let live = &input[..n as usize];
        let count = live.iter().filter(|&&v| v > 0).count() as u32;
        let any = live.iter().any(|&v| v > 5) as u32;
        let all = live.iter().all(|&v| v > 0) as u32;
        let got = download_u32(&m, out, 3 * 128);
        for t in 0..128usize {
            let want = if t < n as usize { [count, any, all] } else { [POISON_OUT; 3] };
            assert_eq!(got[3 * t..3 * t + 3], want, "n {n} thread {t}");
        }
    }
}

#[test]
fn named_barrier_with_a_count_after_producers_arrive_and_exit() {
    let md = module();
    let input = inputs(64, 0xbeef);
    // skip -1: nobody else exits; 70: one consumer lane of warp 2 exits before barrier 1, which
    // counts its warp as arrived (bar's arrival count is per warp).
    for skip in [-1, 70] {
        let mut m = Machine::new(Arch::Sm80);
        let inp = upload_i32(&mut m, &input);
        let out = output(&mut m, 64);
        let params = ParamBuilder::new().ptr(inp).ptr(out).i32(skip).finish();
        let r = m
            .launch(&md, "exec_named_barrier_after_exit", &cfg(1, 128), &params)
            .unwrap_or_else(|e| panic!("skip {skip}: {e}"));
        assert_eq!(r.assert_clean(), Ok(()), "skip {skip}");
        let sums: Vec<i32> = (0..64).map(|c| 2 * input[c] + 2 * input[63 - c]).collect();
        let got = download_u32(&m, out, 64);
        for c in 0..64usize {
            let want = if c as i32 + 64 == skip {
                POISON_OUT
            } else {
                let partner = if (c ^ 1) as i32 + 64 == skip { 0 } else { sums[c ^ 1] };
                (sums[c] + partner) as u32
            };
            assert_eq!(got[c], want, "skip {skip} consumer {c}");
        }
    }
}

#[test]
fn live_warps_at_different_barriers_are_a_deadlock_naming_the_source_lines() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let out = output(&mut m, 64);
    let e =
        m.launch(&md, "exec_two_barriers_deadlock", &cfg(1, 64), &ParamBuilder::new().ptr(out).finish()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, VmError::Deadlock { .. }), "{msg}");
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 3, "{msg}");
    assert!(
        lines[0].contains("exec_two_barriers_deadlock") && lines[0].contains("none of its 2 unfinished warps"),
        "{msg}"
    );
    assert!(
        lines[1].contains("warp 0 (lanes 0xffffffff) wait at barrier 0") && lines[1].contains("exec_fidelity.cu:"),
        "{msg}"
    );
    assert!(lines[2].contains("warp 1 (lanes 0xffffffff) wait at barrier 1 (32 of 64 threads arrived)"), "{msg}");
}

#[test]
fn a_32_warp_deadlock_reads_as_one_line_per_group() {
    // Warps 0-15 wait at barrier 0; in warps 16-31 the even lanes exit and the odd lanes wait at
    // barrier 1 for all 1024 threads, which never come.
    let ptx = r#".version 9.0
.target sm_80
.address_size 64
.visible .entry big(.param .u64 out)
{
    .reg .pred %p<3>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 512;
    @%p1 bra $L__high;
    bar.sync 0;
    ret;
$L__high:
    and.b32 %r2, %r1, 1;
    setp.eq.u32 %p2, %r2, 0;
    @%p2 exit;
    bar.sync 1, 1024;
    ret;
}
"#;
    let md = Module::parse(ptx).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let e = m.launch(&md, "big", &cfg(1, 1024), &ParamBuilder::new().ptr(0).finish()).unwrap_err();
    let msg = e.to_string();
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 4, "{msg}");
    assert!(lines[0].contains("none of its 32 unfinished warps can move (256 of 1024 threads exited)"), "{msg}");
    assert_eq!(
        lines[1],
        "  warps 0-15 (lanes 0xffffffff) wait at barrier 0 (512 of the block's 768 non-exited threads arrived): \
         `bar.sync` at PTX line 11",
        "{msg}"
    );
    assert_eq!(
        lines[2],
        "  warps 16-31 (lanes 0xaaaaaaaa) wait at barrier 1 (512 of 1024 threads arrived): `bar.sync` at PTX line 17",
        "{msg}"
    );
    assert_eq!(lines[3], "  warps 16-31 (lanes 0x55555555) exited", "{msg}");
    assert!(msg.len() < 600, "{} bytes: {msg}", msg.len());
}

#[test]
fn shared_memory_starts_as_poison_and_initcheck_still_reports_reading_it() {
    let md = module();
    for sanitize in [false, true] {
        let mut m = Machine::new(Arch::Sm80).with_sanitizer(sanitize);
        let f = output(&mut m, 32);
        let u = output(&mut m, 32);
        let r = m
            .launch(&md, "exec_read_unwritten_shared", &cfg(1, 32), &ParamBuilder::new().ptr(f).ptr(u).finish())
            .unwrap();
        let fs = download_u32(&m, f, 32);
        let us = download_u32(&m, u, 32);
        assert!(fs.iter().all(|&b| f32::from_bits(b).is_nan()), "sanitize {sanitize}: {fs:x?}");
        assert!(us.iter().all(|&v| v == u32::MAX), "sanitize {sanitize}: {us:x?}");
        if sanitize {
            // With definedness tracking (the default) the poison is an undefined value that the
            // kernel stores to global memory; without it, the read itself is the finding.
            assert!(r.findings().count(FindingKind::UndefinedValueStoredToGlobal) > 0, "{:?}", r.sanitizer);
            let mut m = Machine::new(Arch::Sm80).with_definedness(false);
            let (f, u) = (output(&mut m, 32), output(&mut m, 32));
            let params = ParamBuilder::new().ptr(f).ptr(u).finish();
            let r = m.launch(&md, "exec_read_unwritten_shared", &cfg(1, 32), &params).unwrap();
            assert!(r.findings().count(FindingKind::UninitializedSharedRead) > 0, "{:?}", r.sanitizer);
        } else {
            assert!(r.sanitizer.is_none());
        }
    }
}

#[test]
fn a_launch_that_faults_in_block_3_keeps_the_partial_report() {
    let md = module();
    for threads in [1, 3] {
        // Plain initcheck: the finding is the read itself, made before the fault.
        let mut m = Machine::new(Arch::Sm80).with_threads(threads).with_definedness(false);
        let never_written = m.alloc(4).unwrap();
        let out = output(&mut m, 6 * 32);
        let small = m.alloc(4).unwrap();
        let params = ParamBuilder::new().ptr(never_written).ptr(out).ptr(small).i32(3).finish();
        let e = m.launch(&md, "exec_fault_in_block", &cfg(6, 32), &params).unwrap_err();
        assert!(matches!(e, VmError::Runtime { block: [3, 0, 0], thread: Some([0, 0, 0]), .. }), "{e}");
        let r = m.last_report().expect("a partial report after a fault");
        let c = r.counters.clone().expect("counters: the sanitizer was on");
        // Blocks 0-2 ran to completion and block 3 up to its fault; blocks 4-5 are left out even
        // where another host thread ran them.
        assert_eq!(c.blocks, 4, "threads {threads}");
        assert_eq!(c.global_store_requests, 4, "threads {threads}: one store per warp before the fault");
        assert!(r.warp_instructions > 0 && r.thread_instructions >= 32 * r.warp_instructions / 2, "{r:?}");
        let f = r.findings();
        assert_eq!(f.count(FindingKind::UninitializedGlobalRead), 1, "threads {threads}: {f}");
        assert_eq!(f.findings[0].at.block, [3, 0, 0]);
        // Blocks 0-2 did write their elements.
        let got = download_u32(&m, out, 3 * 32);
        assert!(got.iter().enumerate().all(|(i, &v)| f32::from_bits(v) == i as f32), "{got:?}");
    }
    // A successful launch replaces the partial report with its full one.
    let mut m = Machine::new(Arch::Sm80);
    let out = output(&mut m, 32);
    let dummy = m.alloc(4).unwrap();
    let params = ParamBuilder::new().ptr(dummy).ptr(out).ptr(dummy).i32(-1).finish();
    let r = m.launch(&md, "exec_fault_in_block", &cfg(1, 32), &params).unwrap();
    assert_eq!(m.last_report(), Some(&r));
    // A launch refused before running leaves no report.
    assert!(m.launch(&md, "exec_fault_in_block", &cfg(1, 32), &params[..8]).is_err());
    assert_eq!(m.last_report(), None);
}
