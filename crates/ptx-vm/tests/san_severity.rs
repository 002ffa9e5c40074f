//! Severity of sanitizer findings and poisoned outputs, on nvcc-compiled kernels of
//! tests/cuda/san_cases.cu: a write-after-write of the same value is a warning, which
//! `assert_clean` lets pass and `assert_clean_strict` does not; a write-after-write of different
//! values, or a same-value write another thread reads without a barrier, is an error. Bytes
//! filled by `Machine::fill_poison` read as uninitialised until a kernel writes them.

use ptx_vm::{Arch, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, Severity, POISON_BYTE};

const PTX: &str = include_str!("ptx/san_cases.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("parse: {e}"))
}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: 0 }
}

fn upload_f32(m: &mut Machine, v: &[f32]) -> u64 {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = m.alloc(bytes.len()).unwrap();
    m.write(p, &bytes).unwrap();
    p
}

fn download_f32(m: &Machine, p: u64, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; 4 * n];
    m.read(p, &mut bytes).unwrap();
    bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

const BLOCKS: usize = 3;

/// Runs `warp_sum_to_slot` in `mode`; returns the report and the block sums.
fn warp_sum_to_slot(mode: i32) -> (LaunchReport, Vec<f32>, Vec<f32>) {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    // Small integers: every sum is exact, whatever the order.
    let x: Vec<f32> = (0..64 * BLOCKS).map(|i| (i % 17) as f32 - 8.0).collect();
    let xp = upload_f32(&mut m, &x);
    let out = m.alloc(4 * BLOCKS).unwrap();
    let early = m.alloc(4 * BLOCKS).unwrap();
    let p = ParamBuilder::new().ptr(xp).ptr(out).ptr(early).i32(mode).finish();
    let r = m.launch(&md, "warp_sum_to_slot", &cfg(BLOCKS as u32, 64), &p).unwrap_or_else(|e| panic!("{e}"));
    let want: Vec<f32> = x.chunks(64).map(|c| c.iter().sum()).collect();
    (r, download_f32(&m, out, BLOCKS), want)
}

#[test]
fn same_value_write_after_write_is_a_warning_only() {
    let (r, got, want) = warp_sum_to_slot(0);
    assert_eq!(got, want);
    let f = r.findings();
    assert_eq!(f.findings.len(), 1, "{f}");
    assert_eq!(f.findings[0].kind, FindingKind::SharedWriteAfterWriteSameValue, "{f}");
    assert_eq!(f.findings[0].severity(), Severity::Warning);
    // 31 lanes after the first, in 2 warps of 3 blocks.
    assert_eq!(f.count(FindingKind::SharedWriteAfterWriteSameValue), 31 * 2 * BLOCKS as u64, "{f}");
    assert!(!f.has_errors() && f.errors().next().is_none() && f.warnings().count() == 1);
    assert_eq!(r.assert_clean(), Ok(()));
    let strict = r.assert_clean_strict().unwrap_err();
    assert!(strict.contains("warning: racecheck: shared write-after-write of the same value"), "{strict}");
    assert!(strict.contains("san_cases.cu:"), "{strict}");
    assert!(strict.contains("0 error(s), 1 warning(s)"), "{strict}");
}

#[test]
fn different_value_write_after_write_is_an_error() {
    let (r, _, _) = warp_sum_to_slot(1);
    let f = r.findings();
    assert!(f.count(FindingKind::SharedWriteAfterWrite) > 0, "{f}");
    assert_eq!(f.count(FindingKind::SharedWriteAfterWriteSameValue), 0, "{f}");
    assert!(f.has_errors());
    let e = r.assert_clean().unwrap_err();
    assert!(e.contains("error: racecheck: shared write-after-write in kernel warp_sum_to_slot"), "{e}");
}

#[test]
fn same_value_write_read_by_another_thread_without_barrier_is_still_an_error() {
    let (r, got, want) = warp_sum_to_slot(2);
    assert_eq!(got, want);
    let f = r.findings();
    assert_eq!(f.count(FindingKind::SharedReadAfterWrite), BLOCKS as u64, "{f}");
    assert!(f.count(FindingKind::SharedWriteAfterWriteSameValue) > 0, "{f}");
    assert!(r.assert_clean().is_err());
    assert!(r.assert_clean_strict().is_err());
}

#[test]
fn severities_follow_the_kind() {
    assert_eq!(FindingKind::SharedWriteAfterWriteSameValue.severity(), Severity::Warning);
    for k in [
        FindingKind::SharedWriteAfterWrite,
        FindingKind::SharedReadAfterWrite,
        FindingKind::SharedWriteAfterRead,
        FindingKind::GlobalWriteConflict,
        FindingKind::UninitializedGlobalRead,
        FindingKind::UninitializedSharedRead,
    ] {
        assert_eq!(k.severity(), Severity::Error, "{k:?}");
    }
}

const N: usize = 300;

/// `accumulate` over a poisoned output: `init` launches first (each 1 or 0).
fn accumulate_after_poison(inits: &[i32]) -> (Vec<LaunchReport>, Vec<f32>, Vec<f32>) {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let x: Vec<f32> = (0..N).map(|i| i as f32 * 0.5).collect();
    let xp = upload_f32(&mut m, &x);
    let out = m.alloc(4 * N).unwrap();
    m.write(out, &vec![0u8; 4 * N]).unwrap();
    m.fill_poison(out, 4 * N).unwrap();
    let mut bytes = vec![0u8; 4 * N];
    m.read(out, &mut bytes).unwrap();
    assert!(bytes.iter().all(|&b| b == POISON_BYTE), "the host reads the pattern back");
    let mut reports = Vec::new();
    for &init in inits {
        let p = ParamBuilder::new().ptr(xp).ptr(out).i32(N as i32).i32(init).finish();
        reports.push(m.launch(&md, "accumulate", &cfg(N.div_ceil(128) as u32, 128), &p).unwrap());
    }
    (reports, download_f32(&m, out, N), x)
}

#[test]
fn reading_a_poisoned_unwritten_output_is_a_sanitizer_error() {
    let (r, got, _) = accumulate_after_poison(&[0]);
    let f = r[0].findings();
    // With definedness tracking (the default) the poisoned bytes are undefined values, and the kernel
    // stores what it computed from them to global memory: one error per element.
    assert_eq!(f.count(FindingKind::UndefinedValueStoredToGlobal), N as u64, "{f}");
    assert!(r[0].assert_clean().is_err());
    // The poison is a NaN in every lane, so the result shows it too.
    assert!(got.iter().all(|v| v.is_nan()));
}

#[test]
fn writing_a_poisoned_output_then_reading_it_is_clean() {
    let (r, got, x) = accumulate_after_poison(&[1, 0]);
    for (i, rep) in r.iter().enumerate() {
        assert_eq!(rep.assert_clean_strict(), Ok(()), "launch {i}");
    }
    let want: Vec<f32> = x.iter().map(|v| v + v).collect();
    assert_eq!(got, want);
}

#[test]
fn poison_outside_every_allocation_is_an_error() {
    let mut m = Machine::new(Arch::Sm80);
    let p = m.alloc(16).unwrap();
    let e = m.fill_poison(p + 8, 16).unwrap_err().to_string();
    assert!(e.contains("poison fill of 16 bytes"), "{e}");
}
