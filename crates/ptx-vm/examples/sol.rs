//! Speed-of-light MODEL of the nvcc kernels in tests/ptx: each runs once on the VM with exact
//! counters, and `sol::speed_of_light_with` turns the counts, the launch shape and the registers
//! ptxas allocates into per-unit time floors on an H100 and an A100 model (CTAs per SM, waves, the
//! busiest SM's floors), next to each kernel's own floor (its useful FLOPs and fewest DRAM bytes).
//! Nothing here is measured on a GPU.
//!
//! `cargo run --release -p ptx-vm --example sol`

use ptx_vm::sol::{format_table, speed_of_light_with, DeviceModel, KernelFloor, LaunchResources, SolRow};
use ptx_vm::{Arch, Counters, LaunchConfig, Machine, Module, ParamBuilder, VmError};

fn upload(m: &mut Machine, bytes: &[u8]) -> Result<u64, VmError> {
    let p = m.alloc(bytes.len())?;
    m.write(p, bytes)?;
    Ok(p)
}

fn f32s(n: usize, f: impl Fn(usize) -> f32) -> Vec<u8> {
    (0..n).flat_map(|i| f(i).to_le_bytes()).collect()
}

fn cfg(grid: [u32; 3], block: [u32; 3]) -> LaunchConfig {
    LaunchConfig { grid, block, dynamic_smem: 0 }
}

/// One launch to model: its label, its counters and its own floor.
struct Case {
    label: String,
    counters: Counters,
    floor: KernelFloor,
    kernel: &'static str,
}

/// Registers per thread ptxas (CUDA 13.0) allocates, on sm_90 and on sm_80:
/// `ptxas -v -arch=sm_90 tests/ptx/<file>.ptx` (and `-arch=sm_80`). The PTX's own `.reg` count
/// (`Counters::ptx_virtual_registers`) is not this figure.
fn ptxas_registers(kernel: &str) -> Option<[u32; 2]> {
    Some(match kernel {
        "saxpy_f32" => [24, 24],
        "gemm_bf16_f32acc" => [80, 96],
        "block_reduce_sum_f32" => [16, 16],
        "softmax_rows_f32" => [32, 32],
        "transpose_naive" | "transpose_padded" => [32, 32],
        "copy_float4" => [14, 10],
        _ => return None,
    })
}

fn run(
    m: &mut Machine,
    md: &Module,
    kernel: &str,
    c: &LaunchConfig,
    params: &[u8],
    label: String,
    floor: KernelFloor,
) -> Result<Case, VmError> {
    let r = m.launch(md, kernel, c, params)?;
    let counters = r.counters.unwrap_or_default();
    let kernel = KERNELS.iter().copied().find(|&k| k == kernel).unwrap_or("?");
    Ok(Case { label, counters, floor, kernel })
}

const KERNELS: [&str; 7] = [
    "saxpy_f32",
    "gemm_bf16_f32acc",
    "block_reduce_sum_f32",
    "softmax_rows_f32",
    "transpose_naive",
    "transpose_padded",
    "copy_float4",
];

fn main() -> Result<(), VmError> {
    // Counters only: the sanitizer is not needed for the model and costs time.
    let mut m = Machine::new(Arch::Sm90).with_sanitizer(false).with_counters(true);
    let mut cases = Vec::new();

    let saxpy = Module::parse(include_str!("../tests/ptx/saxpy.ptx"))?;
    let n = 1 << 20;
    let x = upload(&mut m, &f32s(n, |i| i as f32))?;
    let y = upload(&mut m, &f32s(n, |i| (i % 7) as f32))?;
    let p = ParamBuilder::new().i32(n as i32).f32(1.5).ptr(x).ptr(y).finish();
    // y = a x + y: one FMA (2 FLOPs) per element; reads x and y, writes y.
    let floor = KernelFloor { flops: 2.0 * n as f64, min_bytes: 12.0 * n as f64, tensor: false };
    cases.push(run(
        &mut m,
        &saxpy,
        "saxpy_f32",
        &cfg([1024, 1, 1], [256, 1, 1]),
        &p,
        format!("saxpy_f32 n={n}"),
        floor,
    )?);

    let gemm = Module::parse(include_str!("../tests/ptx/gemm_bf16.ptx"))?;
    let d = 512usize;
    let bf16: Vec<u8> = (0..d * d).flat_map(|i| (0x3f80u16 + (i % 7) as u16).to_le_bytes()).collect();
    let (a, b) = (upload(&mut m, &bf16)?, upload(&mut m, &bf16)?);
    let c = m.alloc(d * d * 4)?;
    let p = ParamBuilder::new().ptr(a).ptr(b).ptr(c).i32(d as i32).i32(d as i32).i32(d as i32).finish();
    // 2MNK FLOPs; reads A and B (bf16) once, writes C (f32) once.
    let df = d as f64;
    let floor = KernelFloor { flops: 2.0 * df * df * df, min_bytes: 2.0 * 2.0 * df * df + 4.0 * df * df, tensor: true };
    let grid = [(d / 64) as u32, (d / 64) as u32, 1];
    cases.push(run(&mut m, &gemm, "gemm_bf16_f32acc", &cfg(grid, [128, 1, 1]), &p, format!("gemm_bf16 {d}^3"), floor)?);

    let reduce = Module::parse(include_str!("../tests/ptx/block_reduce_scan.ptx"))?;
    // BLOCK_THREADS * ITEMS_PER_THREAD = 512 elements per block.
    let blocks = n / 512;
    let sums = m.alloc(4 * blocks)?;
    let p = ParamBuilder::new().ptr(x).ptr(sums).i32(n as i32).finish();
    // One add per element; reads x, writes a float per block.
    let floor = KernelFloor { flops: n as f64, min_bytes: 4.0 * n as f64 + 4.0 * blocks as f64, tensor: false };
    let c = cfg([blocks as u32, 1, 1], [128, 1, 1]);
    cases.push(run(&mut m, &reduce, "block_reduce_sum_f32", &c, &p, format!("block_reduce_sum n={n}"), floor)?);

    let softmax = Module::parse(include_str!("../tests/ptx/warp_softmax.ptx"))?;
    let (rows, cols) = (1024usize, 1024usize);
    let out = m.alloc(4 * rows * cols)?;
    let p = ParamBuilder::new().ptr(x).ptr(out).i32(rows as i32).i32(cols as i32).finish();
    // Per element: max, subtract, exp, sum, scale (5 FLOPs); reads x, writes y once.
    let floor = KernelFloor { flops: 5.0 * (rows * cols) as f64, min_bytes: 8.0 * (rows * cols) as f64, tensor: false };
    let c = cfg([(rows / 4) as u32, 1, 1], [128, 1, 1]);
    cases.push(run(&mut m, &softmax, "softmax_rows_f32", &c, &p, format!("softmax_rows {rows}x{cols}"), floor)?);

    let san = Module::parse(include_str!("../tests/ptx/sanitizer_cases.ptx"))?;
    let tile = upload(&mut m, &f32s(32 * 32, |i| i as f32))?;
    let tout = m.alloc(32 * 32 * 4)?;
    let p = ParamBuilder::new().ptr(tile).ptr(tout).finish();
    // A pure move of one 32x32 float tile: 4 KiB in, 4 KiB out.
    let floor = KernelFloor { flops: 0.0, min_bytes: 8.0 * 1024.0, tensor: false };
    for k in ["transpose_naive", "transpose_padded"] {
        cases.push(run(&mut m, &san, k, &cfg([1, 1, 1], [32, 8, 1]), &p, format!("{k} 32x32"), floor)?);
    }
    let n4 = n / 4;
    let cout = m.alloc(16 * n4)?;
    let p = ParamBuilder::new().ptr(x).ptr(cout).i32(n4 as i32).finish();
    let floor = KernelFloor { flops: 0.0, min_bytes: 32.0 * n4 as f64, tensor: false };
    let c = cfg([(n4 / 128) as u32, 1, 1], [128, 1, 1]);
    cases.push(run(&mut m, &san, "copy_float4", &c, &p, format!("copy_float4 {} MiB", (16 * n4) >> 20), floor)?);

    let mut rows_out: Vec<SolRow> = Vec::new();
    for (arch, model) in [DeviceModel::h100_sxm(), DeviceModel::a100_sxm()].into_iter().enumerate() {
        for c in &cases {
            let resources = LaunchResources { registers_per_thread: ptxas_registers(c.kernel).map(|r| r[arch]) };
            rows_out.push(speed_of_light_with(&c.label, &c.counters, &model, Some(c.floor), resources));
        }
    }
    print!("{}", format_table(&rows_out));
    println!();
    println!("exact VM counters behind the MODEL (per launch):");
    println!(
        "{:<28} {:>12} {:>10} {:>12} {:>10} {:>12} {:>12} {:>10} {:>11}",
        "kernel", "warp instr", "ld req", "ld sectors", "st req", "shared wf", "bank confl", "mma GFLOP", "of it wgmma"
    );
    for c in &cases {
        let k = &c.counters;
        println!(
            "{:<28} {:>12} {:>10} {:>12} {:>10} {:>12} {:>12} {:>10.3} {:>11.3}",
            c.label,
            k.warp_instructions(),
            k.global_load_requests,
            k.global_load_sectors,
            k.global_store_requests,
            k.shared_wavefronts,
            k.bank_conflicts(),
            k.mma_flops as f64 / 1e9,
            k.wgmma_flops as f64 / 1e9
        );
    }
    println!("(a model from exact counts, not a measurement on a GPU)");
    Ok(())
}
