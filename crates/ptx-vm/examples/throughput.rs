//! Interpreter throughput on a mix of real nvcc-compiled kernels (tests/ptx/core_bench.cu and the
//! tensor-core GEMM tests/ptx/gemm_bf16.ptx), each launched once on a one-thread machine: PTX
//! thread-instructions executed per second of wall time on one host core, first with the sanitizer
//! off (the fast path), then with it on (memcheck, racecheck, initcheck and the exact counters),
//! and per kernel the cost of the sanitizer as the ratio of the two run times (on / off); last,
//! the whole mix with definedness tracking added (`Machine::with_definedness`).
//!
//! `cargo run --release -p ptx-vm --example throughput [NAME]`: only the kernels whose name
//! contains NAME (e.g. `gemm`).

use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder, VmError};
use std::time::Instant;

const PTX: &str = include_str!("../tests/ptx/core_bench.ptx");
/// A tensor-core GEMM (cp.async, ldmatrix, mma.sync), from tests/cuda/.
const GEMM_PTX: &str = include_str!("../tests/ptx/gemm_bf16.ptx");

fn upload(m: &mut Machine, bytes: &[u8]) -> Result<u64, VmError> {
    let p = m.alloc(bytes.len())?;
    m.write(p, bytes)?;
    Ok(p)
}

fn f32s(n: usize, f: impl Fn(usize) -> f32) -> Vec<u8> {
    (0..n).flat_map(|i| f(i).to_le_bytes()).collect()
}

fn cfg(grid: [u32; 3], block: [u32; 3], dynamic_smem: u32) -> LaunchConfig {
    LaunchConfig { grid, block, dynamic_smem }
}

/// One launch timed: kernel, thread-instructions, warp-instructions, seconds.
type Timing = (&'static str, u64, u64, f64);

fn main() -> Result<(), VmError> {
    let filter = std::env::args().nth(1).unwrap_or_default();
    println!(
        "VM throughput: PTX thread-instructions (each instruction once per thread of the issuing warp) \
         per second of wall time, one host core, each kernel launched once"
    );
    let t0 = Instant::now();
    let module = Module::parse(PTX)?;
    println!(
        "parsed and decoded {} kernels ({} bytes of PTX) in {:.1} ms",
        module.kernel_names().len(),
        PTX.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    println!("\n== sanitizer off ==");
    let off = run(&module, false, false, &filter)?;
    println!("\n== sanitizer on (memcheck + racecheck + initcheck + counters) ==");
    let on = run(&module, true, false, &filter)?;
    println!("\n== sanitizer cost: run time with it on / off ==");
    println!("{:<16} {:>14} {:>14} {:>8}", "kernel", "off M/s", "on M/s", "on/off");
    let rate = |ti: u64, s: f64| ti as f64 / s / 1e6;
    for ((name, ti, _, s_off), (_, _, _, s_on)) in off.iter().zip(&on) {
        println!("{name:<16} {:>14.1} {:>14.1} {:>7.2}x", rate(*ti, *s_off), rate(*ti, *s_on), s_on / s_off);
    }
    let total = |t: &[Timing]| (t.iter().map(|x| x.1).sum::<u64>(), t.iter().map(|x| x.3).sum::<f64>());
    let ((ti, s_off), (_, s_on)) = (total(&off), total(&on));
    println!(
        "{:<16} {:>14.1} {:>14.1} {:>7.2}x  (M thread-instr/s per core)",
        "all",
        rate(ti, s_off),
        rate(ti, s_on),
        s_on / s_off
    );
    println!("\n== sanitizer on, with definedness tracking ==");
    let def = run(&module, true, true, &filter)?;
    let (_, s_def) = total(&def);
    println!(
        "all with definedness: {:.1} M thread-instr/s per core ({:.2}x the run time with it off)",
        rate(ti, s_def),
        s_def / s_off
    );
    Ok(())
}

/// Runs every case whose name contains `filter` on a fresh one-thread machine.
fn run(module: &Module, sanitize: bool, definedness: bool, filter: &str) -> Result<Vec<Timing>, VmError> {
    let mut m = Machine::new(Arch::Sm80).with_threads(1).with_sanitizer(sanitize).with_definedness(definedness);

    let n = 1 << 20;
    let x = upload(&mut m, &f32s(n, |i| (i % 113) as f32 * 0.01))?;
    let y = upload(&mut m, &f32s(n, |i| (i % 7) as f32))?;
    let acc = upload(&mut m, &[0u8; 8])?;
    let keys: Vec<u8> = (0..64 * 1024u32).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    let kin = upload(&mut m, &keys)?;
    let kout = m.alloc(keys.len())?;
    let ints = upload(&mut m, &(0..256 * 256i32).flat_map(|i| (i % 9 - 4).to_le_bytes()).collect::<Vec<u8>>())?;
    let iout = m.alloc(256 * 256 * 4)?;
    let dim = 256usize;
    let a = upload(&mut m, &f32s(dim * dim, |i| (i % 17) as f32 - 8.0))?;
    let b = upload(&mut m, &f32s(dim * dim, |i| (i % 13) as f32 - 6.0))?;
    let c = m.alloc(dim * dim * 4)?;
    let bytes: Vec<u8> = (0..n as u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 24) as u8).collect();
    let hin = upload(&mut m, &bytes)?;
    let bins = m.alloc(256 * 4)?;
    // The histogram adds into its bins: they must start at zero (cudaMalloc does not clear memory,
    // and initcheck reports atomics on never-written bins).
    m.memset(bins, 0, 256 * 4)?;
    let local_in = upload(&mut m, &(0..128 * 16i32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>())?;
    let local_out = m.alloc(128 * 4)?;

    type Case = (&'static str, LaunchConfig, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "saxpy",
            cfg([(n / 256) as u32, 1, 1], [256, 1, 1], 0),
            ParamBuilder::new().ptr(x).ptr(y).i32(n as i32).f32(1.5).finish(),
        ),
        (
            "reduce_sum",
            cfg([256, 1, 1], [256, 1, 1], 0),
            ParamBuilder::new().ptr(x).ptr(acc).i32(n as i32).u32(0).finish(),
        ),
        ("block_sum", cfg([1024, 1, 1], [256, 1, 1], 0), ParamBuilder::new().ptr(x).ptr(y).finish()),
        ("cub_sort", cfg([64, 1, 1], [256, 1, 1], 0), ParamBuilder::new().ptr(kin).ptr(kout).finish()),
        ("cub_scan", cfg([256, 1, 1], [256, 1, 1], 0), ParamBuilder::new().ptr(ints).ptr(iout).finish()),
        (
            "matmul_tiled",
            cfg([(dim / 16) as u32, (dim / 16) as u32, 1], [16, 16, 1], 0),
            ParamBuilder::new().ptr(a).ptr(b).ptr(c).i32(dim as i32).i32(dim as i32).i32(dim as i32).finish(),
        ),
        (
            "softmax_rows",
            cfg([256, 1, 1], [128, 1, 1], 0),
            ParamBuilder::new().ptr(x).ptr(y).i32(1024).i32(1024).finish(),
        ),
        ("histogram", cfg([256, 1, 1], [256, 1, 1], 0), ParamBuilder::new().ptr(hin).ptr(bins).i32(n as i32).finish()),
        (
            "local_and_call",
            cfg([1, 1, 1], [128, 1, 1], 0),
            ParamBuilder::new().ptr(local_in).ptr(local_out).i32(3).finish(),
        ),
    ];

    println!(
        "{:<16} {:>14} {:>12} {:>10} {:>16} {:>9}",
        "kernel", "thread-instr", "warp-instr", "seconds", "M thread-instr/s", "findings"
    );
    // Findings of the sanitizer (distinct kinds and lines), or "-" when it is off.
    let findings =
        |r: &ptx_vm::LaunchReport| r.sanitizer.as_ref().map_or("-".to_string(), |f| f.findings.len().to_string());
    let mut timings = Vec::new();
    for (name, c, params) in cases.iter().filter(|c| c.0.contains(filter)) {
        let t = Instant::now();
        let r = m.launch(module, name, c, params)?;
        let s = t.elapsed().as_secs_f64();
        timings.push((*name, r.thread_instructions, r.warp_instructions, s));
        println!(
            "{name:<16} {:>14} {:>12} {s:>10.3} {:>16.1} {:>9}",
            r.thread_instructions,
            r.warp_instructions,
            r.thread_instructions as f64 / s / 1e6,
            findings(&r)
        );
        if let Some(f) = r.sanitizer.as_ref().filter(|f| !f.is_clean()) {
            print!("{f}");
        }
    }
    let name = "gemm_bf16 (mma)";
    if name.contains(filter) {
        let gemm = Module::parse(GEMM_PTX)?;
        let (ga, gb, gc) = (m.alloc(dim * dim * 2)?, m.alloc(dim * dim * 2)?, m.alloc(dim * dim * 4)?);
        m.write(ga, &(0..dim * dim).flat_map(|i| (0x3f80u16 + (i % 7) as u16).to_le_bytes()).collect::<Vec<u8>>())?;
        m.write(gb, &(0..dim * dim).flat_map(|i| (0xbf00u16 + (i % 5) as u16).to_le_bytes()).collect::<Vec<u8>>())?;
        let p = ParamBuilder::new().ptr(ga).ptr(gb).ptr(gc).i32(dim as i32).i32(dim as i32).i32(dim as i32).finish();
        let t = Instant::now();
        let grid = [(dim / 64) as u32, (dim / 64) as u32, 1];
        let r = m.launch(&gemm, "gemm_bf16_f32acc", &cfg(grid, [128, 1, 1], 0), &p)?;
        let s = t.elapsed().as_secs_f64();
        timings.push((name, r.thread_instructions, r.warp_instructions, s));
        let rate = r.thread_instructions as f64 / s / 1e6;
        println!(
            "{name:<16} {:>14} {:>12} {s:>10.3} {rate:>16.1} {:>9}",
            r.thread_instructions,
            r.warp_instructions,
            findings(&r)
        );
    }
    let (total_ti, total_s) = (timings.iter().map(|t| t.1).sum::<u64>(), timings.iter().map(|t| t.3).sum::<f64>());
    println!(
        "{:<16} {total_ti:>14} {:>12} {total_s:>10.3} {:>16.1}",
        "all (1 core)",
        "",
        total_ti as f64 / total_s / 1e6
    );
    Ok(timings)
}
