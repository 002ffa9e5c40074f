//! The sanitizer on nvcc-compiled kernels with planted bugs (tests/cuda/sanitizer_cases.cu) and
//! their clean twins: memcheck stops the launch with an error naming the thread, the source line and
//! the nearest allocation; racecheck and initcheck report findings in the launch report; clean
//! kernels report none.

use ptx_vm::{Arch, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, VmError};

const PTX: &str = include_str!("ptx/sanitizer_cases.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("parse: {e}"))
}

fn cfg(grid: u32, block: [u32; 3]) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block, dynamic_smem: 0 }
}

fn upload_f32(m: &mut Machine, v: &[f32]) -> u64 {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = m.alloc(bytes.len()).unwrap();
    m.write(p, &bytes).unwrap();
    p
}

fn launch(m: &mut Machine, md: &Module, kernel: &str, c: &LaunchConfig, params: &[u8]) -> LaunchReport {
    m.launch(md, kernel, c, params).unwrap_or_else(|e| panic!("{kernel}: {e}"))
}

#[test]
fn sanitizer_is_on_by_default_and_can_be_turned_off() {
    assert!(Machine::new(Arch::Sm80).sanitizer());
    assert!(!Machine::new(Arch::Sm80).with_sanitizer(false).sanitizer());
}

#[test]
fn oob_write_memcheck_names_the_thread_source_line_and_allocation_offset() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let n = 1000usize;
    let out = m.alloc(4 * n).unwrap();
    let p = ParamBuilder::new().ptr(out).i32(n as i32).finish();
    let err = m.launch(&md, "oob_write", &cfg(8, [128, 1, 1]), &p).unwrap_err();
    let text = err.to_string();
    let VmError::Runtime { kernel, block, thread, at, message } = err else { panic!("not a runtime error: {text}") };
    assert_eq!(kernel, "oob_write");
    // i == n == 1000 is block 7 (896..1024), thread 104.
    assert_eq!(block, [7, 0, 0], "{text}");
    assert_eq!(thread, Some([104, 0, 0]), "{text}");
    assert_eq!(at.source.as_deref(), Some("sanitizer_cases.cu:12"), "{text}");
    assert!(at.ptx_line > 0);
    assert!(message.contains(&format!("{:#x}", out + 4 * n as u64)), "{text}");
    assert!(message.contains(&format!("4000 bytes at {out:#x}")), "{text}");
    assert!(message.contains("0 bytes past its end (offset 4000 from its start)"), "{text}");
}

#[test]
fn oob_write_in_bounds_is_clean() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let n = 1024usize;
    let out = m.alloc(4 * (n + 1)).unwrap();
    let p = ParamBuilder::new().ptr(out).i32(n as i32).finish();
    // 1025 elements with 9 blocks: the `<=` bug is harmless when the buffer has room for it.
    launch(&mut m, &md, "oob_write", &cfg(9, [128, 1, 1]), &p).assert_clean().unwrap();
}

fn block_sum(sync: i32) -> LaunchReport {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let blocks = 4;
    let x = upload_f32(&mut m, &(0..128 * blocks).map(|i| i as f32).collect::<Vec<_>>());
    let out = m.alloc(4 * blocks).unwrap();
    let p = ParamBuilder::new().ptr(x).ptr(out).i32(sync).finish();
    launch(&mut m, &md, "block_sum", &cfg(blocks as u32, [128, 1, 1]), &p)
}

#[test]
fn block_sum_without_barriers_has_shared_races() {
    let r = block_sum(0).findings();
    let races = r.count(FindingKind::SharedReadAfterWrite) + r.count(FindingKind::SharedWriteAfterRead);
    assert!(races > 0, "{r}");
    assert_eq!(r.count(FindingKind::GlobalWriteConflict), 0, "{r}");
    assert!(r.to_string().contains("sanitizer_cases.cu:"), "{r}");
}

#[test]
fn block_sum_with_barriers_is_clean() {
    block_sum(1).assert_clean().unwrap();
}

#[test]
fn warp_sum_ordered_by_syncwarp_is_clean() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let x = upload_f32(&mut m, &(0..64).map(|i| i as f32).collect::<Vec<_>>());
    let out = m.alloc(8).unwrap();
    let p = ParamBuilder::new().ptr(x).ptr(out).finish();
    launch(&mut m, &md, "warp_sum_syncwarp", &cfg(2, [32, 1, 1]), &p).assert_clean().unwrap();
}

#[test]
fn read_unwritten_shared_is_one_initcheck_finding_at_thread_127() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80).with_definedness(false);
    let out = m.alloc(4 * 128).unwrap();
    let p = ParamBuilder::new().ptr(out).finish();
    let r = launch(&mut m, &md, "read_unwritten_shared", &cfg(1, [128, 1, 1]), &p).findings();
    assert_eq!(r.findings.len(), 1, "{r}");
    let f = &r.findings[0];
    assert_eq!(f.kind, FindingKind::UninitializedSharedRead, "{r}");
    assert_eq!(f.count, 1, "{r}");
    assert_eq!(f.at.thread, [127, 0, 0], "{r}");
    assert_eq!(f.address, 4 * 128, "{r}");
    assert!(f.at.line.contains("sanitizer_cases.cu:49"), "{r}");
}

fn copy_float4(m: &mut Machine, input: u64, out: u64, n4: usize) -> LaunchReport {
    let md = module();
    let p = ParamBuilder::new().ptr(input).ptr(out).i32(n4 as i32).finish();
    launch(m, &md, "copy_float4", &cfg(n4.div_ceil(128) as u32, [128, 1, 1]), &p)
}

#[test]
fn reading_a_fresh_allocation_is_an_initcheck_finding() {
    let mut m = Machine::new(Arch::Sm80).with_definedness(false);
    let n4 = 256;
    let input = m.alloc(16 * n4).unwrap();
    let out = m.alloc(16 * n4).unwrap();
    let r = copy_float4(&mut m, input, out, n4).findings();
    assert_eq!(r.findings.len(), 1, "{r}");
    assert_eq!(r.findings[0].kind, FindingKind::UninitializedGlobalRead, "{r}");
    // One finding per thread read.
    assert_eq!(r.count(FindingKind::UninitializedGlobalRead), n4 as u64, "{r}");
    assert!(r.findings[0].at.line.contains("sanitizer_cases.cu:75"), "{r}");
}

#[test]
fn reading_after_upload_or_memset_is_clean() {
    let mut m = Machine::new(Arch::Sm80);
    let n4 = 256;
    let input = m.alloc(16 * n4).unwrap();
    m.write(input, &vec![1u8; 16 * n4]).unwrap();
    let out = m.alloc(16 * n4).unwrap();
    copy_float4(&mut m, input, out, n4).assert_clean().unwrap();
    let other = m.alloc(16 * n4).unwrap();
    m.memset(other, 0, 16 * n4).unwrap();
    copy_float4(&mut m, other, out, n4).assert_clean().unwrap();
    // What a kernel wrote counts as initialised for the next launch.
    let again = m.alloc(16 * n4).unwrap();
    copy_float4(&mut m, out, again, n4).assert_clean().unwrap();
}

#[test]
fn a_partially_uploaded_allocation_reports_only_the_unwritten_part() {
    let mut m = Machine::new(Arch::Sm80).with_definedness(false);
    let n4 = 256;
    let input = m.alloc(16 * n4).unwrap();
    m.write(input, &vec![1u8; 16 * (n4 - 32)]).unwrap();
    let out = m.alloc(16 * n4).unwrap();
    let r = copy_float4(&mut m, input, out, n4).findings();
    assert_eq!(r.count(FindingKind::UninitializedGlobalRead), 32, "{r}");
}

#[test]
fn global_write_conflict_between_blocks_is_found_and_atomics_are_not() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let out = m.alloc(4).unwrap();
    m.memset(out, 0, 4).unwrap();
    let p = ParamBuilder::new().ptr(out).finish();
    let blocks = 4;
    let r = launch(&mut m, &md, "global_write_conflict", &cfg(blocks, [32, 1, 1]), &p).findings();
    assert_eq!(r.findings.len(), 1, "{r}");
    assert_eq!(r.findings[0].kind, FindingKind::GlobalWriteConflict, "{r}");
    // Every write after the first one conflicts.
    assert_eq!(r.count(FindingKind::GlobalWriteConflict), u64::from(blocks - 1), "{r}");
    assert!(r.findings[0].at.line.contains("sanitizer_cases.cu:80"), "{r}");
    assert_eq!(r.findings[0].address, out);

    m.memset(out, 0, 4).unwrap();
    let r = launch(&mut m, &md, "global_atomic_add", &cfg(blocks, [32, 1, 1]), &p);
    r.assert_clean().unwrap();
    let mut v = [0u8; 4];
    m.read(out, &mut v).unwrap();
    assert_eq!(i32::from_le_bytes(v), blocks as i32);
}

#[test]
fn one_block_writing_twice_is_not_a_conflict_and_a_new_launch_forgets_writers() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let out = m.alloc(4).unwrap();
    let p = ParamBuilder::new().ptr(out).finish();
    for _ in 0..2 {
        launch(&mut m, &md, "global_write_conflict", &cfg(1, [32, 1, 1]), &p).assert_clean().unwrap();
    }
}

#[test]
fn findings_text_names_kernel_block_thread_and_lines() {
    let r = block_sum(0);
    let err = r.assert_clean().unwrap_err();
    assert!(err.contains("kernel block_sum"), "{err}");
    assert!(err.contains("block (0,0,0) thread ("), "{err}");
    assert!(err.contains("PTX line "), "{err}");
}

#[test]
fn sanitizer_off_reports_nothing_and_assert_clean_says_so() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80).with_sanitizer(false);
    let out = m.alloc(4 * 128).unwrap();
    let p = ParamBuilder::new().ptr(out).finish();
    let r = launch(&mut m, &md, "read_unwritten_shared", &cfg(1, [128, 1, 1]), &p);
    assert!(r.sanitizer.is_none() && r.counters.is_none());
    assert!(r.assert_clean().is_err());
}

#[test]
fn the_nvcc_kernels_of_the_test_suite_are_clean() {
    // A cub block reduction and a cp.async/ldmatrix/mma GEMM: real synchronisation patterns that
    // must not produce false positives.
    let mut m = Machine::new(Arch::Sm80);
    let reduce = Module::parse(include_str!("ptx/block_reduce_scan.ptx")).unwrap();
    let n = 128 * 8;
    let x = upload_f32(&mut m, &(0..n).map(|i| (i % 7) as f32).collect::<Vec<_>>());
    let sums = m.alloc(4 * 8).unwrap();
    let p = ParamBuilder::new().ptr(x).ptr(sums).i32(n).finish();
    launch(&mut m, &reduce, "block_reduce_sum_f32", &cfg(8, [128, 1, 1]), &p).assert_clean().unwrap();

    let gemm = Module::parse(include_str!("ptx/gemm_bf16.ptx")).unwrap();
    let d = 128usize;
    let bf16: Vec<u8> = (0..d * d).flat_map(|i| (0x3f80u16 + (i % 7) as u16).to_le_bytes()).collect();
    let a = m.alloc(bf16.len()).unwrap();
    m.write(a, &bf16).unwrap();
    let b = m.alloc(bf16.len()).unwrap();
    m.write(b, &bf16).unwrap();
    let c = m.alloc(d * d * 4).unwrap();
    let p = ParamBuilder::new().ptr(a).ptr(b).ptr(c).i32(d as i32).i32(d as i32).i32(d as i32).finish();
    let grid = LaunchConfig { grid: [(d / 64) as u32, (d / 64) as u32, 1], block: [128, 1, 1], dynamic_smem: 0 };
    launch(&mut m, &gemm, "gemm_bf16_f32acc", &grid, &p).assert_clean().unwrap();
}

#[test]
fn an_mbarrier_pipeline_is_clean() {
    // cuda::barrier + cuda::memcpy_async: cp.async writes ordered by mbarrier phases, not bar.sync.
    let md = Module::parse(include_str!("ptx/core_pipeline.ptx")).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let n = 128 * 4;
    let x = upload_f32(&mut m, &(0..n).map(|i| i as f32).collect::<Vec<_>>());
    let out = m.alloc(4 * n).unwrap();
    let p = ParamBuilder::new().ptr(x).ptr(out).i32(n as i32).finish();
    launch(&mut m, &md, "pipe_copy", &cfg(1, [128, 1, 1]), &p).assert_clean().unwrap();
}
