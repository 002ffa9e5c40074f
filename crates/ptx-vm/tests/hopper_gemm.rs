//! The Hopper GEMM of tests/cuda/hopper_gemm.cu (nvcc, `-arch=compute_90a`): TMA boxes with the
//! 128-byte swizzle into a three-slot shared ring guarded by full/empty mbarriers, one producer
//! warp and two consumer warpgroups issuing wgmma m64n64k16 from descriptors, f32 accumulators.
//! Checked against a float64 product at sizes that are and are not multiples of the 128 x 64 x 64
//! tile (at K = 448, seven slices: each ring slot is reused, its barriers through both phase
//! parities), sanitizer-strict, bit-identical across host thread counts, with its counters.
//!
//! And the same kernel with a planted race (tests/cuda/hopper_gemm_race.cu: one release of a ring
//! slot per consumer warpgroup instead of per warp, the bug 705c19b fixed), which racecheck must
//! report at every K that reuses a slot, whatever the host thread count.

mod isa_common;
use isa_common::Rng;
use ptx_vm::semantics::tensor_map::TensorMap;
use ptx_vm::semantics::wgmma::Swizzle;
use ptx_vm::{Arch, Counters, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder};

const PTX: &str = include_str!("ptx/hopper_gemm.ptx");
const RACE_PTX: &str = include_str!("ptx/hopper_gemm_race.ptx");
const KERNEL: &str = "hopper_gemm_bf16";
const BM: usize = 128;
const BN: usize = 64;
const BK: usize = 64;
const STAGES: usize = 3;
/// The kernel's dynamic shared memory: the ring plus room to align it to 1024 bytes.
const SMEM: u32 = (STAGES * (BM + BN) * BK * 2 + 1024) as u32;

/// A random bf16 in [-1, 1): its bits and its value.
fn bf16(rng: &mut Rng) -> (u16, f64) {
    let bits = (rng.signed_unit() as f32).to_bits() >> 16;
    (bits as u16, f32::from_bits(bits << 16) as f64)
}

struct Run {
    c: Vec<f32>,
    counters: Counters,
}

/// Runs the kernel on `a` (M x K) and `b` (N x K), both bf16 bits, with `threads` host threads,
/// sanitizer-strict.
fn run(m: usize, n: usize, k: usize, a: &[u16], b: &[u16], threads: usize) -> Run {
    let (c, rep) = launch(PTX, m, n, k, a, b, threads);
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("M N K = {m} {n} {k}: sanitizer: {e}"));
    Run { c, counters: rep.counters.expect("counters") }
}

/// Launches the kernel of `ptx` on `a` (M x K) and `b` (N x K) with `threads` host threads: C and
/// the launch's report.
fn launch(ptx: &str, m: usize, n: usize, k: usize, a: &[u16], b: &[u16], threads: usize) -> (Vec<f32>, LaunchReport) {
    let module = Module::parse(ptx).unwrap();
    let mut vm = Machine::new(Arch::Sm90).with_threads(threads);
    let upload = |vm: &mut Machine, x: &[u16]| {
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = vm.alloc(bytes.len()).unwrap();
        vm.write(p, &bytes).unwrap();
        p
    };
    let pa = upload(&mut vm, a);
    let pb = upload(&mut vm, b);
    let pc = vm.alloc(4 * m * n).unwrap();
    // Poison: an element the kernel does not write stays a NaN.
    vm.memset(pc, 0xff, 4 * m * n).unwrap();
    let map = |addr: u64, rows: usize, box_rows: u32| {
        let mut t = TensorMap::new(addr, 2, &[k as u64, rows as u64], &[2 * k as u64], &[BK as u32, box_rows]);
        t.swizzle = Swizzle::B128;
        t.encode().unwrap()
    };
    let params = ParamBuilder::new()
        .bytes(&map(pa, m, BM as u32), 128)
        .bytes(&map(pb, n, BN as u32), 128)
        .ptr(pc)
        .i32(m as i32)
        .i32(n as i32)
        .i32(k as i32)
        .finish();
    let cfg = LaunchConfig {
        grid: [n.div_ceil(BN) as u32, m.div_ceil(BM) as u32, 1],
        block: [384, 1, 1],
        dynamic_smem: SMEM,
    };
    let rep = vm.launch(&module, KERNEL, &cfg, &params).unwrap_or_else(|e| panic!("M N K = {m} {n} {k}: {e}"));
    let mut bytes = vec![0u8; 4 * m * n];
    vm.read(pc, &mut bytes).unwrap();
    let c = bytes.chunks_exact(4).map(|x| f32::from_le_bytes(x.try_into().unwrap())).collect();
    (c, rep)
}

/// Bytes of a `box_rows` x BK box at (`kt` BK, `r0`) that lie inside a `rows` x `k` bf16 tensor.
fn inside(rows: usize, k: usize, r0: usize, kt: usize, box_rows: usize) -> u64 {
    let r = rows.saturating_sub(r0).min(box_rows);
    let c = k.saturating_sub(kt * BK).min(BK);
    (2 * r * c) as u64
}

fn check(m: usize, n: usize, k: usize, seed: u64) {
    let mut rng = Rng(seed);
    let (a_bits, a): (Vec<u16>, Vec<f64>) = (0..m * k).map(|_| bf16(&mut rng)).unzip();
    let (b_bits, b): (Vec<u16>, Vec<f64>) = (0..n * k).map(|_| bf16(&mut rng)).unzip();
    let one = run(m, n, k, &a_bits, &b_bits, 1);
    // bf16 x bf16 products are exact in f32, so the only error is the f32 accumulation of k
    // terms, in whatever order the tensor core takes them: at most gamma_k = k u / (1 - k u)
    // times the sum of the magnitudes (u = 2^-24), for every order.
    let u = f64::powi(2.0, -24);
    let gamma = k as f64 * u / (1.0 - k as f64 * u);
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for l in 0..k {
                let p = a[i * k + l] * b[j * k + l];
                want += p;
                mag += p.abs();
            }
            let got = one.c[i * n + j] as f64;
            assert!(
                (got - want).abs() <= gamma * mag,
                "seed {seed:#x}, M N K = {m} {n} {k}: C[{i}][{j}] = {got}, float64 {want}, bound {}",
                gamma * mag
            );
        }
    }
    // The same bits and counters for any number of host threads.
    for threads in [3, 4] {
        let other = run(m, n, k, &a_bits, &b_bits, threads);
        let same = one.c.iter().zip(&other.c).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "seed {seed:#x}, M N K = {m} {n} {k}: {threads} host threads differ from 1");
        assert!(other.counters == one.counters, "seed {seed:#x}: counters differ with {threads} host threads");
    }
    // Counters: the wgmmas as issued over the padded tile grid; the TMA boxes' bytes inside the
    // tensors are the kernel's only global loads, and their whole boxes are its bulk copies.
    let (gy, gx, kt) = (m.div_ceil(BM), n.div_ceil(BN), k.div_ceil(BK));
    let k_ = &one.counters;
    assert_eq!(k_.mma_flops, (2 * gy * BM * gx * BN * kt * BK) as u64, "M N K = {m} {n} {k}");
    assert_eq!(k_.wgmma_flops, k_.mma_flops, "M N K = {m} {n} {k}: every tensor FLOP is wgmma's");
    let mut tma = 0;
    for by in 0..gy {
        for bx in 0..gx {
            for t in 0..kt {
                tma += inside(m, k, by * BM, t, BM) + inside(n, k, bx * BN, t, BN);
            }
        }
    }
    assert_eq!(k_.global_load_bytes, tma, "M N K = {m} {n} {k}");
    assert_eq!(k_.bulk_copy_bytes, (gy * gx * kt * (BM + BN) * BK * 2) as u64, "M N K = {m} {n} {k}");
    assert_eq!(k_.unique_bytes_read, (2 * (m * k + n * k)) as u64, "M N K = {m} {n} {k}");
    assert_eq!(k_.unique_bytes_written, (4 * m * n) as u64, "M N K = {m} {n} {k}");
    eprintln!(
        "M N K = {m} {n} {k}: mma_flops {}, global_load_bytes {}, bulk_copy_bytes {}",
        k_.mma_flops, k_.global_load_bytes, k_.bulk_copy_bytes
    );
}

fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
}

#[test]
fn hopper_gemm_with_partial_tiles_matches_float64() {
    check(200, 136, 200, seed());
}

#[test]
fn hopper_gemm_on_whole_tiles_matches_float64() {
    check(256, 128, 448, seed());
}

#[test]
fn a_ring_slot_released_once_per_warpgroup_is_a_race_at_every_k_that_reuses_it() {
    // Slot s is refilled for slice s + STAGES once the producer's wait on empty[s] returns; with
    // one arrival per warpgroup, what it acquires are the first warps' releases only, so the TMA
    // refill races with the wgmma reads of slot s by the warpgroups' other three warps (each reads
    // its own 16 rows of A). The race exists from the first reuse (K > STAGES x BK = 192) on,
    // independently of the order in which the VM runs the warps; below that nothing is refilled.
    let seed = seed();
    let mut rng = Rng(seed);
    let (m, n) = (200, 136);
    for k in [64, 192, 256, 264, 320, 384, 448] {
        let a: Vec<u16> = (0..m * k).map(|_| bf16(&mut rng).0).collect();
        let b: Vec<u16> = (0..n * k).map(|_| bf16(&mut rng).0).collect();
        for threads in [1, 3, 4] {
            let (_, rep) = launch(RACE_PTX, m, n, k, &a, &b, threads);
            let san = rep.sanitizer.expect("sanitizer report");
            let at = format!("seed {seed:#x}, M N K = {m} {n} {k}, {threads} host threads");
            if k <= STAGES * BK {
                assert!(san.is_clean(), "{at}: no slot is reused, yet: {san}");
                continue;
            }
            assert!(san.count(FindingKind::SharedWriteAfterRead) > 0, "{at}: the planted race is not reported: {san}");
            for f in &san.findings {
                assert_eq!(f.kind, FindingKind::SharedWriteAfterRead, "{at}: {san}");
                // The refill, by the producer's elected thread, against a read by a warp of a
                // consumer warpgroup that is not its first.
                assert!(f.at.thread[0] < 32, "{at}: {f}");
                let reader = f.other.as_ref().map_or(0, |o| o.thread[0]) / 32;
                assert!(reader >= 4 && reader % 4 != 0, "{at}: {f}");
                assert!(f.at.line.contains("hopper_gemm.cu"), "{at}: {f}");
            }
        }
    }
}
