//! Definedness tracking (`Machine::with_definedness`) on nvcc-compiled kernels of
//! tests/cuda/san_cases.cu: key rows past the sequence's end are left unloaded in shared memory,
//! their scores computed (by a plain loop, and by `mma.sync`) and masked to -inf by a select, as
//! FlashAttention-2 does. That is clean; an unmasked score stored to global memory, deciding a
//! branch or used as an address is an error. Without definedness tracking the unloaded rows'
//! reads are initcheck errors, as before.

use ptx_vm::{Arch, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder};

const PTX: &str = include_str!("ptx/san_cases.ptx");
const KEYS: usize = 32;
const DIM: usize = 8;

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("parse: {e}"))
}

fn upload(m: &mut Machine, bytes: &[u8]) -> u64 {
    let p = m.alloc(bytes.len()).unwrap();
    m.write(p, bytes).unwrap();
    p
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn download_f32(m: &Machine, p: u64, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; 4 * n];
    m.read(p, &mut bytes).unwrap();
    bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Softmax over the first `n` scores, zero for the rest, as a kernel masking with -inf computes it.
fn masked_softmax(scores: &[f64], n: usize) -> Vec<f64> {
    let m = scores[..n].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().enumerate().map(|(j, s)| if j < n { (s - m).exp() } else { 0.0 }).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tol, "{what}: element {i}: got {g}, want {w}");
    }
}

/// `masked_scores` with `n` valid key rows; the key buffer holds only those rows.
fn masked_scores(n: usize, mode: i32, definedness: bool) -> (LaunchReport, Vec<f32>, Vec<f64>) {
    let md = module();
    let mut m = Machine::new(Arch::Sm80).with_definedness(definedness);
    let q: Vec<f32> = (0..DIM).map(|d| (d as f32 - 3.5) * 0.25).collect();
    let k: Vec<f32> = (0..n * DIM).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.125).collect();
    let (qp, kp) = (upload(&mut m, &f32_bytes(&q)), upload(&mut m, &f32_bytes(&k)));
    let out = m.alloc(4 * KEYS).unwrap();
    let scores = m.alloc(4 * KEYS).unwrap();
    let p = ParamBuilder::new().ptr(qp).ptr(kp).ptr(out).ptr(scores).i32(n as i32).i32(mode).finish();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [KEYS as u32, 1, 1], dynamic_smem: 0 };
    let r = m.launch(&md, "masked_scores", &cfg, &p).unwrap_or_else(|e| panic!("{e}"));
    let s: Vec<f64> = (0..KEYS)
        .map(|j| if j < n { (0..DIM).map(|d| q[d] as f64 * k[j * DIM + d] as f64).sum() } else { 0.0 })
        .collect();
    (r, download_f32(&m, out, KEYS), masked_softmax(&s, n))
}

#[test]
fn masked_scores_of_unloaded_key_rows_are_clean_with_definedness() {
    for n in [5, 17, 32] {
        let (r, got, want) = masked_scores(n, 0, true);
        assert_eq!(r.assert_clean_strict(), Ok(()), "n = {n}");
        assert_close(&got, &want, 1e-6, &format!("n = {n}"));
    }
}

#[test]
fn without_definedness_reading_unloaded_key_rows_is_an_initcheck_error() {
    let (r, got, want) = masked_scores(5, 0, false);
    assert_eq!(r.findings().count(FindingKind::UninitializedSharedRead), (DIM * (KEYS - 5)) as u64, "{}", r.findings());
    assert_close(&got, &want, 1e-6, "n = 5");
}

#[test]
fn an_unmasked_score_stored_to_global_memory_is_an_error() {
    let (r, _, _) = masked_scores(5, 1, true);
    let f = r.findings();
    // One per lane past the end; the other lanes store defined scores.
    assert_eq!(f.count(FindingKind::UndefinedValueStoredToGlobal), (KEYS - 5) as u64, "{f}");
    assert_eq!(f.findings.len(), 1, "{f}");
    let e = r.assert_clean().unwrap_err();
    assert!(e.contains("initcheck: uninitialized value stored to global memory"), "{e}");
    assert!(e.contains("thread (5,0,0)") && e.contains("san_cases.cu:65"), "{e}");
    // The report names where the undefined value came from: the score loop's shared-memory load.
    assert!(e.contains("from uninitialized memory read at PTX line") && e.contains("(san_cases.cu:57)"), "{e}");
}

#[test]
fn a_branch_on_an_unmasked_score_is_an_error() {
    let (r, _, _) = masked_scores(5, 2, true);
    let f = r.findings();
    assert_eq!(f.count(FindingKind::UndefinedControlFlow), (KEYS - 5) as u64, "{f}");
    assert_eq!(f.findings.len(), 1, "{f}");
    assert!(r.assert_clean().is_err());
}

#[test]
fn an_unmasked_score_used_as_an_address_is_an_error() {
    let (r, got, want) = masked_scores(5, 3, true);
    let f = r.findings();
    assert_eq!(f.count(FindingKind::UndefinedAddress), (KEYS - 5) as u64, "{f}");
    assert_eq!(f.findings.len(), 1, "{f}");
    // The loaded value itself is defined (q is), so the outputs are not tainted.
    assert_close(&got, &want, 1e-6, "n = 5");
}

fn bf16(x: f32) -> u16 {
    // Round to nearest even; the inputs here are exact in bf16 anyway.
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `masked_scores_mma`: S (16 x 8) = Q (16 x 16) K^T with key rows >= n never loaded.
fn masked_scores_mma(n: usize, mode: i32) -> (LaunchReport, Vec<f32>, Vec<f64>, Vec<f32>, Vec<f64>) {
    let md = module();
    let mut m = Machine::new(Arch::Sm80).with_definedness(true);
    // Small multiples of 1/8: exact in bf16, products and sums exact in f32.
    let q: Vec<f32> = (0..16 * 16).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.125).collect();
    let k: Vec<f32> = (0..n * 16).map(|i| ((i * 3 % 7) as f32 - 3.0) * 0.125).collect();
    let pack = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|&x| bf16(x).to_le_bytes()).collect() };
    let (qp, kp) = (upload(&mut m, &pack(&q)), upload(&mut m, &pack(&k)));
    let out = m.alloc(4 * 128).unwrap();
    let scores = m.alloc(4 * 128).unwrap();
    m.fill_poison(scores, 4 * 128).unwrap();
    let p = ParamBuilder::new().ptr(qp).ptr(kp).ptr(out).ptr(scores).i32(n as i32).i32(mode).finish();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    let r = m.launch(&md, "masked_scores_mma", &cfg, &p).unwrap_or_else(|e| panic!("{e}"));
    let s: Vec<f64> = (0..16 * 8)
        .map(|i| {
            let (row, col) = (i / 8, i % 8);
            if col < n {
                (0..16).map(|d| q[row * 16 + d] as f64 * k[col * 16 + d] as f64).sum()
            } else {
                0.0
            }
        })
        .collect();
    let want: Vec<f64> = s.chunks(8).flat_map(|row| masked_softmax(row, n)).collect();
    (r, download_f32(&m, out, 128), want, download_f32(&m, scores, 128), s)
}

#[test]
fn mma_scores_of_unloaded_key_rows_masked_by_select_are_clean() {
    for n in [3, 8] {
        let (r, got, want, _, _) = masked_scores_mma(n, 0);
        assert_eq!(r.assert_clean_strict(), Ok(()), "n = {n}");
        assert_close(&got, &want, 1e-6, &format!("n = {n}"));
    }
}

#[test]
fn mma_makes_only_the_unloaded_columns_undefined() {
    let n = 3;
    // Storing the unmasked S of the loaded columns is clean: they are defined.
    let (r, _, _, scores, s) = masked_scores_mma(n, 2);
    assert_eq!(r.assert_clean_strict(), Ok(()));
    for (i, (&g, &w)) in scores.iter().zip(&s).enumerate() {
        if i % 8 < n {
            assert_eq!(g as f64, w, "S[{}][{}]", i / 8, i % 8);
        }
    }
    // Storing all of it is an error, once per lane and store of an element in an unloaded column:
    // lane 4g + t holds columns 2t (undefined for t >= 2: 16 lanes) and 2t + 1 (t >= 1: 24 lanes),
    // in rows g and g + 8.
    let (r, _, _, _, _) = masked_scores_mma(n, 1);
    let f = r.findings();
    assert_eq!(f.count(FindingKind::UndefinedValueStoredToGlobal), 2 * (16 + 24), "{f}");
    assert!(f.findings.iter().all(|x| x.at.thread[0] % 4 != 0), "lanes with t = 0 hold columns 0 and 1: {f}");
    // Through the mma, the undefined columns still name the load of B's fragment from shared memory.
    assert!(f.findings.iter().all(|x| x.other.as_ref().is_some_and(|o| o.line.contains("san_cases.cu:90"))), "{f}");
}
