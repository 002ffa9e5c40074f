//! Exact per-launch counters on nvcc-compiled kernels whose traffic can be worked out by hand from
//! their source (tests/cuda/sanitizer_cases.cu): shared-memory wavefronts and bank conflicts, global
//! requests and sectors, first-touch bytes, instruction classes, mma FLOPs, and their independence
//! from the number of host threads.

use ptx_vm::{Arch, Counters, InstClass, LaunchConfig, Machine, Module, ParamBuilder};

const PTX: &str = include_str!("ptx/sanitizer_cases.ptx");

fn module(ptx: &str) -> Module {
    Module::parse(ptx).unwrap_or_else(|e| panic!("parse: {e}"))
}

fn upload(m: &mut Machine, bytes: &[u8]) -> u64 {
    let p = m.alloc(bytes.len()).unwrap();
    m.write(p, bytes).unwrap();
    p
}

fn counted(m: &mut Machine, md: &Module, kernel: &str, c: &LaunchConfig, params: &[u8]) -> Counters {
    let r = m.launch(md, kernel, c, params).unwrap_or_else(|e| panic!("{kernel}: {e}"));
    r.counters.unwrap_or_else(|| panic!("{kernel}: no counters"))
}

const TILE: u64 = 32;
/// transpose_tile: a 32x8 block, 8 warps (one per threadIdx.y), each thread moving 4 elements.
const WARPS: u64 = 8;
const ROWS_PER_WARP: u64 = TILE / WARPS;

fn transpose(kernel: &str, blocks: u32, sanitize: bool) -> Counters {
    let md = module(PTX);
    let mut m = Machine::new(Arch::Sm80).with_sanitizer(sanitize).with_counters(true);
    let input = upload(&mut m, &(0..TILE * TILE).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>());
    let out = m.alloc((TILE * TILE * 4) as usize).unwrap();
    let p = ParamBuilder::new().ptr(input).ptr(out).finish();
    let c = LaunchConfig { grid: [blocks, 1, 1], block: [32, 8, 1], dynamic_smem: 0 };
    let r = m.launch(&md, kernel, &c, &p).unwrap_or_else(|e| panic!("{kernel}: {e}"));
    if sanitize {
        r.assert_clean().unwrap();
    }
    r.counters.unwrap()
}

#[test]
fn transpose_naive_column_reads_are_32_way_bank_conflicts() {
    // Per block: each warp stores 4 rows (1 wavefront each) and reads 4 columns of a 32-float-wide
    // tile: all 32 lanes in one bank, 32 wavefronts per request (31 conflicts).
    let requests = WARPS * ROWS_PER_WARP * 2;
    let stores = WARPS * ROWS_PER_WARP;
    let loads = WARPS * ROWS_PER_WARP;
    let c = transpose("transpose_naive", 1, true);
    assert_eq!(c.shared_requests, requests);
    assert_eq!(c.shared_wavefronts, stores + 32 * loads);
    assert_eq!(c.shared_ideal_wavefronts, requests);
    assert_eq!(c.bank_conflicts(), 31 * loads);
    assert_eq!(c.class(InstClass::SharedLoad).warps, loads);
    assert_eq!(c.class(InstClass::SharedStore).warps, stores);
    // Three blocks: three times everything.
    let c3 = transpose("transpose_naive", 3, false);
    assert_eq!(c3.shared_wavefronts, 3 * (stores + 32 * loads));
    assert_eq!(c3.blocks, 3);
}

#[test]
fn transpose_padded_column_reads_take_one_wavefront() {
    let requests = WARPS * ROWS_PER_WARP * 2;
    let c = transpose("transpose_padded", 1, true);
    assert_eq!(c.shared_requests, requests);
    assert_eq!(c.shared_wavefronts, requests);
    assert_eq!(c.bank_conflicts(), 0);
}

#[test]
fn transpose_global_traffic_is_fully_coalesced() {
    // Every warp request reads or writes one 128-byte row: 1 request, 4 sectors.
    let c = transpose("transpose_padded", 1, true);
    let rows = WARPS * ROWS_PER_WARP;
    assert_eq!((c.global_load_requests, c.global_load_sectors), (rows, 4 * rows));
    assert_eq!((c.global_store_requests, c.global_store_sectors), (rows, 4 * rows));
    assert_eq!(c.unique_bytes_read, TILE * TILE * 4);
    assert_eq!(c.unique_bytes_written, TILE * TILE * 4);
    assert_eq!(c.barriers, WARPS);
}

#[test]
fn copy_float4_is_four_sectors_per_request_and_touches_each_byte_once() {
    let md = module(PTX);
    let mut m = Machine::new(Arch::Sm80);
    let n4 = 1024u64;
    let bytes = 16 * n4;
    let input = upload(&mut m, &(0..bytes).map(|i| i as u8).collect::<Vec<u8>>());
    let out = m.alloc(bytes as usize).unwrap();
    let p = ParamBuilder::new().ptr(input).ptr(out).i32(n4 as i32).finish();
    let c = LaunchConfig { grid: [(n4 / 128) as u32, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let k = counted(&mut m, &md, "copy_float4", &c, &p);
    // 16 bytes per lane: a request per quarter warp (128 bytes), each exactly 4 sectors.
    let requests = bytes / 128;
    assert_eq!(k.global_load_requests, requests);
    assert_eq!(k.global_load_sectors, 4 * requests);
    assert_eq!(k.global_store_requests, requests);
    assert_eq!(k.global_store_sectors, 4 * requests);
    assert_eq!(k.global_load_bytes, bytes);
    assert_eq!(k.global_store_bytes, bytes);
    assert_eq!(k.unique_bytes_read, bytes);
    assert_eq!(k.unique_bytes_written, bytes);
    assert_eq!(k.unique_sectors_read, bytes / 32);
    assert_eq!(k.unique_sectors_written, bytes / 32);
    let warps = n4 / 32;
    assert_eq!(k.class(InstClass::GlobalLoad).warps, warps);
    assert_eq!(k.class(InstClass::GlobalLoad).threads, n4);
    assert_eq!(k.class(InstClass::GlobalStore).threads, n4);
    assert_eq!(k.blocks, n4 / 128);
    assert_eq!(k.shared_requests, 0);
    // A second launch starts its first-touch bitmaps afresh.
    let again = counted(&mut m, &md, "copy_float4", &c, &p);
    assert_eq!(again, k);
}

#[test]
fn ptx_virtual_registers_are_the_kernels_reg_declarations() {
    // oob_write declares %p<2>, %f<2>, %r<6>, %rd<5>.
    let md = module(PTX);
    let mut m = Machine::new(Arch::Sm80);
    let out = m.alloc(4 * 128).unwrap();
    let p = ParamBuilder::new().ptr(out).i32(100).finish();
    let c = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let k = counted(&mut m, &md, "oob_write", &c, &p);
    assert_eq!(k.ptx_virtual_registers, 2 + 2 + 6 + 5);
    // The launch shape, for the speed-of-light occupancy: 128 threads, no shared memory.
    assert_eq!((k.threads_per_block, k.shared_bytes_per_block, k.blocks), (128, 0, 1));
}

#[test]
fn block_sum_barriers_and_class_totals_match_the_report() {
    let md = module(PTX);
    let mut m = Machine::new(Arch::Sm80);
    let blocks = 4u64;
    let x = upload(&mut m, &(0..128 * blocks).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>());
    let out = m.alloc(4 * blocks as usize).unwrap();
    let p = ParamBuilder::new().ptr(x).ptr(out).i32(1).finish();
    let c = LaunchConfig { grid: [blocks as u32, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let r = m.launch(&md, "block_sum", &c, &p).unwrap();
    let k = r.counters.unwrap();
    // One barrier after the stores and one per halving step (64, 32, ..., 1), for each of 4 warps.
    assert_eq!(k.barriers, blocks * 4 * (1 + 7));
    assert_eq!(k.warp_instructions(), r.warp_instructions);
    assert!(k.thread_instructions() <= r.thread_instructions);
}

/// Side of the square GEMM the counter tests run.
const GEMM_DIM: u64 = 128;

/// Runs the bf16 GEMM (tests/cuda/gemm_bf16.cu) at GEMM_DIM^3 and returns its counters.
fn gemm_counters(m: &mut Machine) -> Counters {
    let md = module(include_str!("ptx/gemm_bf16.ptx"));
    let d = GEMM_DIM;
    let bf16: Vec<u8> = (0..d * d).flat_map(|i| (0x3f80u16 + (i % 7) as u16).to_le_bytes()).collect();
    let a = upload(m, &bf16);
    let b = upload(m, &bf16);
    let cc = m.alloc((d * d * 4) as usize).unwrap();
    let p = ParamBuilder::new().ptr(a).ptr(b).ptr(cc).i32(d as i32).i32(d as i32).i32(d as i32).finish();
    let c = LaunchConfig { grid: [(d / 64) as u32, (d / 64) as u32, 1], block: [128, 1, 1], dynamic_smem: 0 };
    counted(m, &md, "gemm_bf16_f32acc", &c, &p)
}

#[test]
fn gemm_mma_flops_are_2mnk() {
    let mut m = Machine::new(Arch::Sm80).with_sanitizer(false).with_counters(true);
    let d = GEMM_DIM;
    let k = gemm_counters(&mut m);
    assert_eq!(k.mma_flops, 2 * d * d * d);
    assert_eq!(k.mma_tf32_flops, 0);
    assert_eq!(k.wgmma_flops, 0, "mma.sync FLOPs are not wgmma's");
    // gemm_bf16.cu: STAGES (2) x (BM x A_STRIDE + BK x B_STRIDE) bf16 = 2 x (64 x 40 + 32 x 72) x 2 bytes.
    assert_eq!((k.threads_per_block, k.shared_bytes_per_block), (128, 2 * (64 * 40 + 32 * 72) * 2));
    assert_eq!(k.class(InstClass::Tensor).warps, 2 * d * d * d / (2 * 16 * 8 * 16));
    assert!(k.cp_async_bytes >= 2 * d * d * 2, "A and B pass through cp.async at least once");
    assert_eq!(k.unique_bytes_read, 2 * d * d * 2);
    assert_eq!(k.unique_bytes_written, d * d * 4);
}

fn gemm_and_reduce_counters(threads: usize) -> Vec<Counters> {
    let mut m = Machine::new(Arch::Sm80).with_threads(threads);
    let g = gemm_counters(&mut m);
    let md = module(PTX);
    let blocks = 16u64;
    let x = upload(&mut m, &(0..128 * blocks).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>());
    let out = m.alloc(4 * blocks as usize).unwrap();
    let p = ParamBuilder::new().ptr(x).ptr(out).i32(1).finish();
    let c = LaunchConfig { grid: [blocks as u32, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let s = counted(&mut m, &md, "block_sum", &c, &p);
    vec![g, s]
}

#[test]
fn counters_are_identical_for_1_and_4_host_threads() {
    assert_eq!(gemm_and_reduce_counters(1), gemm_and_reduce_counters(4));
}

#[test]
fn saxpy_classes_are_one_fma_two_loads_and_a_store_per_element() {
    let md = module(include_str!("ptx/saxpy.ptx"));
    let mut m = Machine::new(Arch::Sm80);
    let n = 7 * 256 * 3 + 5;
    let x = upload(&mut m, &(0..n).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>());
    let y = upload(&mut m, &(0..n).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>());
    let p = ParamBuilder::new().i32(n as i32).f32(2.0).ptr(x).ptr(y).finish();
    let c = LaunchConfig { grid: [7, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
    let r = m.launch(&md, "saxpy_f32", &c, &p).unwrap();
    r.assert_clean().unwrap();
    let k = r.counters.unwrap();
    assert_eq!(k.class(InstClass::Fp32).threads, n);
    assert_eq!(k.class(InstClass::GlobalLoad).threads, 2 * n);
    assert_eq!(k.class(InstClass::GlobalStore).threads, n);
    assert_eq!(k.class(InstClass::Tensor).threads, 0);
    assert_eq!(k.class(InstClass::ConstLoad).warps, 4 * 7 * 8, "4 ld.param per warp");
    assert_eq!(k.global_load_bytes, 8 * n);
    assert_eq!(k.unique_bytes_read, 8 * n);
    assert_eq!(k.unique_bytes_written, 4 * n);
}
