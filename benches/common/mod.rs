//! What the three benchmark suites share: device selection, timing, the VM speed-of-light model,
//! results files and charts.
//!
//! A suite is a list of [`Case`]s. A case names a kernel call at a real model's shape, states its
//! work (FLOPs and fewest bytes, from the kernel's own doc), and builds a launcher either at the
//! real shape (a GPU) or at a scaled-down shape with the same per-block work (the PTX VM).
//!
//! - **GPU** (`Device` is CUDA): criterion's `iter_custom` times `iters` launches between two CUDA
//!   events recorded on the launch stream, after one untimed warm-up launch; the report puts the
//!   throughput beside the device's peak.
//! - **No GPU**: the kernel runs ONCE on the PTX VM at the scaled shape, its exact counters are
//!   multiplied up to the real shape, and `ptx_vm::speed_of_light_with` turns them into per-unit
//!   floors under a device model (H100 SXM5 by default; `SK_BENCH_MODEL=a100|h200`). Criterion is
//!   fed that modelled time through `iter_custom` (no re-run), so its output and filters work; every
//!   line, file and chart says it is a model. VM wall-clock time is never reported.
//!
//! Environment: `SK_BENCH_DEVICE=vm|cuda` (default: the GPU when there is one), `SK_BENCH_MODEL`,
//! `SK_BENCH_RESULTS` (results folder; default `target/bench-results`), `SK_BENCH_SOL=1` (also print
//! the VM's raw counters and the full speed-of-light table, as `scripts/profile` does without a GPU).

#![allow(dead_code)] // each suite uses a different part of this module

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use half::bf16;
use ptx_vm::sol::{SolRow, UNITS};
use ptx_vm::{format_table, speed_of_light_with, DeviceModel, KernelFloor, LaunchResources};
use scaling_kernels::device::{Counters, VmConfig};
use scaling_kernels::{Device, Result};

mod report;
use report::{csv, line, markdown, svg};

/// A launcher: one call queues the benchmarked kernel call once (on its buffers, built once).
pub type Launcher = Box<dyn FnMut() -> Result<()>>;
/// Builds a case's launcher: at the real shape when the flag is true, else at the VM shape.
pub type Build = Box<dyn Fn(&Device, bool) -> Result<Launcher>>;
/// A correction to multiplied counters.
pub type Adjust = Box<dyn Fn(&mut Counters)>;

/// What the throughput of a case is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Useful FLOPs per second against the tensor-core (or FP32) peak.
    Flops,
    /// Fewest bytes per second against the DRAM peak.
    Bytes,
}

/// The work of one call at the real shape, as the kernel's doc counts it.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    /// Useful FLOPs.
    pub flops: f64,
    /// Fewest bytes to and from DRAM.
    pub min_bytes: f64,
    /// FLOPs meant for tensor cores.
    pub tensor: bool,
    /// The unit the throughput is shown in.
    pub metric: Metric,
}

impl Work {
    /// Tensor-core work, throughput in TFLOP/s.
    pub fn tensor(flops: u64, min_bytes: u64) -> Work {
        Work { flops: flops as f64, min_bytes: min_bytes as f64, tensor: true, metric: Metric::Flops }
    }
    /// Memory-bound work, throughput in GB/s of the fewest bytes.
    pub fn memory(flops: u64, min_bytes: u64) -> Work {
        Work { flops: flops as f64, min_bytes: min_bytes as f64, tensor: false, metric: Metric::Bytes }
    }
    fn floor(&self) -> KernelFloor {
        KernelFloor { flops: self.flops, min_bytes: self.min_bytes, tensor: self.tensor }
    }
}

/// How the VM run relates to the real shape.
pub struct VmScale {
    /// Real work / VM work: every per-launch counter is multiplied by it (the per-block counters,
    /// threads and shared memory per block, are not).
    pub factor: u64,
    /// The VM shape in words, for the report.
    pub note: String,
    /// The wrapper's grid cap, when the real launch would hit it (its blocks then loop): the
    /// multiplied block count is clamped to it.
    pub grid_cap: Option<u64>,
    /// A correction applied after the multiplication, for counters that do not scale with the
    /// blocks (unique bytes of an input every block shares); `None` for most kernels.
    pub adjust: Option<Adjust>,
    /// Cases with the same key run the same VM launch (the same kernel at the same VM shape, e.g.
    /// one attention head for two models): it runs once and the counters are shared.
    pub share: Option<String>,
    /// The call's further launches (split-KV's merge, a two-pass permute's second pass), each
    /// modelled on its own; launches on one stream run one after another, so the call's model time
    /// is the sum of theirs. `build` launches first, these follow in order.
    pub then: Vec<ThenLaunch>,
}

/// Builds, at the VM shape, a launcher whose LAST launch is the kernel to count (the launches
/// before it, if any, only set up its inputs).
pub type VmBuild = Box<dyn Fn(&Device) -> Result<Launcher>>;

/// One further launch of a case's call (see [`VmScale::then`]).
pub struct ThenLaunch {
    /// The kernel, for the report.
    pub kernel: &'static str,
    /// Real work / VM work of this launch.
    pub factor: u64,
    /// Registers per thread (`scripts/resource-report`, sm_80).
    pub registers: Option<u32>,
    /// Its VM run.
    pub build: VmBuild,
    /// As [`VmScale::share`]: launches with the same key run once and share their counters.
    pub share: Option<String>,
    /// As [`VmScale::adjust`], applied to this launch's multiplied counters.
    pub adjust: Option<Adjust>,
}

impl VmScale {
    /// `factor` times the VM run, described by `note`.
    pub fn new(factor: u64, note: impl Into<String>) -> VmScale {
        VmScale { factor, note: note.into(), grid_cap: None, adjust: None, share: None, then: Vec::new() }
    }
    /// Adds a further launch of the call: `kernel` run on the VM by `build` (its last launch),
    /// multiplied by `factor`; its model time is added to the case's.
    pub fn then(
        mut self,
        kernel: &'static str,
        factor: u64,
        registers: Option<u32>,
        build: impl Fn(&Device) -> Result<Launcher> + 'static,
    ) -> VmScale {
        self.then.push(ThenLaunch { kernel, factor, registers, build: Box::new(build), share: None, adjust: None });
        self
    }
    /// As [`VmScale::then`], for a launch whose VM run other cases share (`share`, see
    /// [`VmScale::share`]) and whose multiplied counters `adjust` corrects.
    pub fn then_shared(
        mut self,
        kernel: &'static str,
        factor: u64,
        registers: Option<u32>,
        share: impl Into<String>,
        adjust: Option<Adjust>,
        build: impl Fn(&Device) -> Result<Launcher> + 'static,
    ) -> VmScale {
        let share = Some(share.into());
        self.then.push(ThenLaunch { kernel, factor, registers, build: Box::new(build), share, adjust });
        self
    }
    /// Clamps the multiplied block count to the wrapper's grid cap.
    pub fn grid_cap(mut self, cap: u64) -> VmScale {
        self.grid_cap = Some(cap);
        self
    }
    /// Shares the VM run with every case of the same `key`.
    pub fn share(mut self, key: impl Into<String>) -> VmScale {
        self.share = Some(key.into());
        self
    }
    /// Applies `f` to the multiplied counters.
    pub fn adjust(mut self, f: impl Fn(&mut Counters) + 'static) -> VmScale {
        self.adjust = Some(Box::new(f));
        self
    }
}

/// One benchmark: a kernel call at a real model's shape.
pub struct Case {
    /// Criterion group, the kernel family (`attention_fwd`, `moe_route`, ...).
    pub family: &'static str,
    /// Criterion id inside the group: the model and shape (`llama3_8b/packed_4k_causal`).
    pub id: String,
    /// The work at the real shape.
    pub work: Work,
    /// Registers per thread of the kernel as `scripts/resource-report` prints them (sm_80), for the
    /// model's occupancy; `None` leaves the register limit out (the table marks it).
    pub registers: Option<u32>,
    /// How the VM run maps to the real shape.
    pub vm: VmScale,
    /// Builds the launcher: at the real shape when the flag is true, else at the VM shape.
    pub build: Build,
}

/// Where the benches run.
pub enum Mode {
    /// A CUDA GPU: measured with events.
    Gpu { dev: Device, info: GpuInfo, peak: DeviceModel },
    /// The PTX VM and a device model.
    Model { vm: Device, model: DeviceModel },
}

/// What the report says about the GPU.
pub struct GpuInfo {
    /// `Device::describe`: ordinal, name and compute capability.
    pub describe: String,
    /// Driver version, SM / memory clocks now and at most (from nvidia-smi when installed).
    pub smi: String,
    /// SMs, max SM clock, memory clock and bus width (driver attributes).
    pub attributes: String,
}

/// The device model named by `SK_BENCH_MODEL` (h100, the default; a100; h200).
pub fn device_model() -> DeviceModel {
    match std::env::var("SK_BENCH_MODEL").unwrap_or_default().to_ascii_lowercase().as_str() {
        "a100" => DeviceModel::a100_sxm(),
        "h200" => DeviceModel::h200_sxm(),
        "" | "h100" => DeviceModel::h100_sxm(),
        other => {
            eprintln!("SK_BENCH_MODEL={other}: unknown (h100, a100, h200); using h100");
            DeviceModel::h100_sxm()
        }
    }
}

impl Mode {
    /// The GPU when there is one (unless `SK_BENCH_DEVICE=vm`), else the VM with the model.
    pub fn select() -> Mode {
        let want = std::env::var("SK_BENCH_DEVICE").unwrap_or_default();
        if want != "vm" {
            match Device::cuda(0) {
                Ok(dev) => return gpu_mode(dev),
                Err(e) if want == "cuda" => panic!("SK_BENCH_DEVICE=cuda but no CUDA GPU: {e}"),
                Err(_) => {}
            }
        }
        // Counters on, sanitizer off: the sanitizer does not change the counts, only the VM's speed.
        let vm = Device::vm_with(VmConfig { sanitizer: false, counters: true, ..VmConfig::default() });
        Mode::Model { vm, model: device_model() }
    }

    /// The label every line of output carries.
    pub fn label(&self) -> String {
        match self {
            Mode::Gpu { info, .. } => format!("MEASURED (CUDA events, {})", info.describe),
            Mode::Model { model, .. } => format!("MODEL (VM counters, {} model), not measured", model.name),
        }
    }

    fn is_model(&self) -> bool {
        matches!(self, Mode::Model { .. })
    }
}

fn gpu_mode(dev: Device) -> Mode {
    use cudarc::driver::sys::CUdevice_attribute as A;
    let describe = dev.describe();
    let ctx = dev.cuda_stream().expect("a CUDA device has a stream").context().clone();
    let attr = |a| ctx.attribute(a).unwrap_or(0);
    let (sms, clock_khz, mem_khz, bus_bits) = (
        attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
        attr(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE),
        attr(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE),
        attr(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH),
    );
    let (major, _) = ctx.compute_capability().unwrap_or((0, 0));
    let name = ctx.name().unwrap_or_default();
    // The datasheet model where the GPU is one we have it for (its peaks are the ones NVIDIA quotes);
    // otherwise the per-SM rates of its architecture at the driver's SM count and clocks.
    let peak = if name.contains("H200") {
        DeviceModel::h200_sxm()
    } else if name.contains("H100") && name.contains("SXM") || name.contains("H100 80GB HBM3") {
        DeviceModel::h100_sxm()
    } else if name.contains("A100") && name.contains("SXM") {
        DeviceModel::a100_sxm()
    } else {
        let base = if major >= 9 { DeviceModel::h100_sxm() } else { DeviceModel::a100_sxm() };
        DeviceModel {
            name: "this GPU (per-SM rates of its architecture; GeForce parts have lower tensor rates)",
            sms: sms.max(1) as u32,
            clock_ghz: f64::from(clock_khz.max(1)) / 1e6,
            // DDR: two transfers per memory clock.
            dram_gbps: 2.0 * f64::from(mem_khz) * 1e3 * f64::from(bus_bits) / 8.0 / 1e9,
            ..base
        }
    };
    let attributes = format!(
        "{sms} SMs, max SM clock {} MHz, memory clock {} MHz, {bus_bits}-bit bus",
        clock_khz / 1000,
        mem_khz / 1000
    );
    let smi = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit",
            "--format=csv,noheader",
            "-i",
            &ctx.ordinal().to_string(),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let f: Vec<&str> = v.split(", ").collect();
            match f.as_slice() {
                [drv, sm, smmax, mem, memmax, power] => format!(
                    "driver {drv}, SM clock {sm} (max {smmax}), memory clock {mem} (max {memmax}), power limit {power}"
                ),
                _ => v,
            }
        })
        .unwrap_or_else(|| "driver version and current clocks unknown (no nvidia-smi)".into());
    Mode::Gpu { dev, info: GpuInfo { describe, smi, attributes }, peak }
}

/// Criterion, configured for the mode: short warm-up and measurement on the VM (the times are
/// the model's, handed back instantly, so nothing is gained by sampling longer), no plots there.
pub fn criterion(mode: &Mode) -> Criterion {
    let c = Criterion::default();
    let c = if mode.is_model() {
        // Criterion's warm-up and its iteration estimate run on wall-clock time, which the model's
        // instant answers make tiny: a nanosecond of warm-up and a millisecond of measurement
        // keep the iteration counts small. The statistics come from the returned (model) times.
        c.warm_up_time(Duration::from_nanos(1))
            .measurement_time(Duration::from_millis(1))
            .sample_size(10)
            .nresamples(1000)
            .without_plots()
    } else {
        // Enough for a stable mean of GPU kernels of microseconds to tens of milliseconds, and
        // small enough that the three suites fit in scripts/gpu-check's budget.
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1))
            .sample_size(10)
            .nresamples(10_000)
    };
    c.configure_from_args()
}

/// One result row.
#[derive(Clone, Debug)]
pub struct Record {
    /// Criterion group / id.
    pub family: &'static str,
    /// Criterion id in the group.
    pub id: String,
    /// Measured, or modelled.
    pub measured: bool,
    /// The GPU or the device model.
    pub device: String,
    /// Seconds per call (measured mean, or the model's time).
    pub seconds: f64,
    /// The metric.
    pub metric: Metric,
    /// Throughput in TFLOP/s or GB/s.
    pub throughput: f64,
    /// The device's peak in the same unit.
    pub peak: f64,
    /// The kernel's own floor (its FLOPs and fewest bytes at the peaks).
    pub kernel_floor: f64,
    /// Model only: the slowest SM unit's floor from the counters.
    pub compute_floor: Option<f64>,
    /// Model only: the DRAM floor from the counters' unique sectors.
    pub memory_floor: Option<f64>,
    /// Model only: the unit with the largest floor.
    pub limiter: Option<&'static str>,
    /// Model only: the VM shape and factor.
    pub vm_note: String,
    /// Model only: unique DRAM bytes read and written, all launches, multiplied to the real shape.
    pub unique_bytes: Option<f64>,
    /// The fewest bytes of the call (the kernel's doc).
    pub min_bytes: f64,
}

impl Record {
    fn unit(&self) -> &'static str {
        match self.metric {
            Metric::Flops => "TFLOP/s",
            Metric::Bytes => "GB/s",
        }
    }
    fn pct(&self) -> f64 {
        100.0 * self.throughput / self.peak
    }
}

fn peak_of(m: &DeviceModel, w: &Work) -> f64 {
    match w.metric {
        Metric::Flops if w.tensor => m.tensor_flops() / 1e12,
        Metric::Flops => m.fp32_flops() / 1e12,
        Metric::Bytes => m.dram_gbps,
    }
}

fn throughput_of(w: &Work, seconds: f64) -> f64 {
    match w.metric {
        Metric::Flops => w.flops / seconds / 1e12,
        Metric::Bytes => w.min_bytes / seconds / 1e9,
    }
}

fn kernel_floor(m: &DeviceModel, w: &Work) -> f64 {
    let peak = if w.tensor { m.tensor_flops() } else { m.fp32_flops() };
    (w.flops / peak).max(w.min_bytes / (m.dram_gbps * 1e9))
}

/// `c` multiplied by `n`, by doubling through [`Counters::merge`] so every field (present and future)
/// scales as merging launches does: sums add, per-block shapes stay.
pub fn scale_counters(c: &Counters, n: u64) -> Counters {
    let mut out = Counters::default();
    let mut pow = c.clone();
    let mut k = n;
    while k > 0 {
        if k & 1 == 1 {
            out.merge(&pow);
        }
        let p = pow.clone();
        pow.merge(&p);
        k >>= 1;
    }
    out
}

/// A suite: its name, the mode, and the rows gathered so far.
pub struct Suite {
    /// `pretraining`, `post_training` or `test_time`.
    pub name: &'static str,
    /// Where it runs.
    pub mode: Mode,
    records: Rc<RefCell<Vec<Record>>>,
    sol_rows: Rc<RefCell<Vec<SolRow>>>,
    shared_runs: Rc<RefCell<HashMap<String, Counters>>>,
}

impl Suite {
    /// Selects the device and prints what it is.
    pub fn new(name: &'static str) -> Suite {
        let mode = Mode::select();
        println!("== {name} benchmarks: {} ==", mode.label());
        match &mode {
            Mode::Gpu { info, peak, .. } => {
                println!("GPU: {}; {}; {}", info.describe, info.attributes, info.smi);
                println!(
                    "peaks used: {} ({:.1} dense 16-bit tensor TFLOP/s, {:.1} FP32 TFLOP/s, {:.0} GB/s DRAM)",
                    peak.name,
                    peak.tensor_flops() / 1e12,
                    peak.fp32_flops() / 1e12,
                    peak.dram_gbps
                );
            }
            Mode::Model { model, .. } => {
                println!(
                    "No GPU: each kernel runs once on the PTX VM at a scaled-down shape with the same per-block work; \
                     its exact counters, multiplied to the real shape, go through the speed-of-light model of {} \
                     ({:.1} tensor TFLOP/s, {:.0} GB/s). Times are the model's floor (the busiest unit), not a \
                     measurement; a real kernel is slower. SK_BENCH_MODEL=a100|h200 picks another model.",
                    model.name,
                    model.tensor_flops() / 1e12,
                    model.dram_gbps
                );
            }
        }
        Suite { name, mode, records: Rc::default(), sol_rows: Rc::default(), shared_runs: Rc::default() }
    }

    /// Runs every case through criterion (one group per family, in order of first appearance).
    pub fn run(&self, c: &mut Criterion, cases: Vec<Case>) {
        let mut families: Vec<&'static str> = Vec::new();
        for case in &cases {
            if !families.contains(&case.family) {
                families.push(case.family);
            }
        }
        let cases: Vec<Rc<Case>> = cases.into_iter().map(Rc::new).collect();
        for fam in families {
            let mut group = c.benchmark_group(fam);
            for case in cases.iter().filter(|k| k.family == fam) {
                let w = case.work;
                group.throughput(match w.metric {
                    Metric::Flops => Throughput::Elements(w.flops as u64),
                    Metric::Bytes => Throughput::Bytes(w.min_bytes as u64),
                });
                match &self.mode {
                    Mode::Model { vm, model } => self.bench_model(&mut group, case.clone(), vm, model),
                    Mode::Gpu { dev, peak, .. } => self.bench_gpu(&mut group, case.clone(), dev, peak),
                }
            }
            group.finish();
        }
    }

    fn bench_model(
        &self,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        case: Rc<Case>,
        vm: &Device,
        model: &DeviceModel,
    ) {
        let id = format!("{} (MODEL {}, not measured)", case.id, model.name);
        let mut cached: Option<f64> = None;
        let records = self.records.clone();
        let sol_rows = self.sol_rows.clone();
        let label = self.mode.label();
        let shared = self.shared_runs.clone();
        group.bench_function(id, |b| {
            let seconds = *cached.get_or_insert_with(|| {
                let r = model_case(&case, vm, model, &mut shared.borrow_mut()).unwrap_or_else(|e| {
                    panic!("{}/{}: the VM run failed: {e}", case.family, case.id);
                });
                println!("{}", line(&label, &r.0));
                records.borrow_mut().push(r.0.clone());
                sol_rows.borrow_mut().extend(r.1);
                r.0.seconds
            });
            // The model's time for `iters` calls, handed back at once: nothing runs again.
            // Whole nanoseconds per call, so that every sample is exactly the same time per call.
            let ns = (seconds * 1e9).round().max(1.0) as u64;
            b.iter_custom(|iters| Duration::from_nanos(ns.saturating_mul(iters)));
        });
    }

    fn bench_gpu(
        &self,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        case: Rc<Case>,
        dev: &Device,
        peak: &DeviceModel,
    ) {
        let stream: Arc<cudarc::driver::CudaStream> = dev.cuda_stream().expect("CUDA device").clone();
        let ctx = stream.context().clone();
        // Set up before criterion's warm-up, whose iteration estimate counts wall-clock time (a
        // lazy setup of seconds would leave a fast kernel a handful of iterations per sample);
        // only for a benchmark the filter selects (a regex filter this misses sets up lazily).
        let name = format!("{}/{}", case.family, case.id);
        let mut launcher: Option<Launcher> = filter_arg()
            .is_none_or(|f| name.contains(&f))
            .then(|| (case.build)(dev, true).unwrap_or_else(|e| panic!("{name}: setup failed: {e}")));
        let total = Rc::new(RefCell::new((0.0f64, 0u64)));
        let t = total.clone();
        group.bench_function(case.id.clone(), |b| {
            let l = launcher.get_or_insert_with(|| {
                (case.build)(dev, true).unwrap_or_else(|e| panic!("{}/{}: setup failed: {e}", case.family, case.id))
            });
            b.iter_custom(|iters| {
                let fail = |e: String| -> ! { panic!("{}/{}: {e}", case.family, case.id) };
                // Warm-up outside the timed region: module load, caches, clocks.
                l().unwrap_or_else(|e| fail(e.to_string()));
                let ev = |_| {
                    ctx.new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                        .unwrap_or_else(|e| fail(e.to_string()))
                };
                let (start, end) = (ev(()), ev(()));
                start.record(&stream).unwrap_or_else(|e| fail(e.to_string()));
                for _ in 0..iters {
                    l().unwrap_or_else(|e| fail(e.to_string()));
                }
                end.record(&stream).unwrap_or_else(|e| fail(e.to_string()));
                end.synchronize().unwrap_or_else(|e| fail(e.to_string()));
                let ms = start.elapsed_ms(&end).unwrap_or_else(|e| fail(e.to_string()));
                let mut tt = t.borrow_mut();
                tt.0 += f64::from(ms) / 1e3;
                tt.1 += iters;
                Duration::from_secs_f64(f64::from(ms) / 1e3)
            });
        });
        let (sum, iters) = *total.borrow();
        if iters == 0 {
            return; // filtered out
        }
        let seconds = sum / iters as f64;
        let w = case.work;
        let r = Record {
            family: case.family,
            id: case.id.clone(),
            measured: true,
            device: peak.name.to_string(),
            seconds,
            metric: w.metric,
            throughput: throughput_of(&w, seconds),
            peak: peak_of(peak, &w),
            kernel_floor: kernel_floor(peak, &w),
            compute_floor: None,
            memory_floor: None,
            limiter: None,
            vm_note: String::new(),
            unique_bytes: None,
            min_bytes: w.min_bytes,
        };
        println!("{}", line(&self.mode.label(), &r));
        self.records.borrow_mut().push(r);
    }

    /// Prints the suite's table and writes its CSV, markdown table and SVG chart. Leaves the files
    /// of an earlier run alone when a filter selected nothing here.
    pub fn finish(&self) {
        let records = self.records.borrow();
        if records.is_empty() {
            return;
        }
        let label = self.mode.label();
        let md = markdown(self.name, &label, &records);
        println!("\n{md}");
        if std::env::var("SK_BENCH_SOL").is_ok_and(|v| v == "1") && !self.sol_rows.borrow().is_empty() {
            println!("{}", format_table(&self.sol_rows.borrow()));
        }
        let dir = results_dir();
        let write = |ext: &str, text: String| {
            let path = dir.join(format!("{}.{ext}", self.name));
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, text)) {
                eprintln!("could not write {}: {e}", path.display());
            }
        };
        write("csv", csv(&label, &records));
        write("md", md);
        write("svg", svg(self.name, &label, &records));
        println!("results: {}/{}.{{csv,md,svg}} ({label})", dir.display(), self.name);
    }
}

/// The VM run of one case: its record and the speed-of-light rows of the multiplied counters (one
/// per launch of the call; the record's times are their sums).
fn model_case(
    case: &Case,
    vm: &Device,
    model: &DeviceModel,
    shared: &mut HashMap<String, Counters>,
) -> std::result::Result<(Record, Vec<SolRow>), String> {
    let known = case.vm.share.as_ref().and_then(|k| shared.get(k)).cloned();
    let counters = match known {
        Some(c) => c,
        None => {
            let mut launch = (case.build)(vm, false).map_err(|e| e.to_string())?;
            launch().map_err(|e| e.to_string())?;
            let c = vm.vm_last_launch().and_then(|r| r.counters).ok_or("the VM launch kept no counters")?;
            if let Some(k) = &case.vm.share {
                shared.insert(k.clone(), c.clone());
            }
            c
        }
    };
    let mut c = scale_counters(&counters, case.vm.factor);
    if let Some(cap) = case.vm.grid_cap {
        c.blocks = c.blocks.min(cap);
    }
    if let Some(adjust) = &case.vm.adjust {
        adjust(&mut c);
    }
    if std::env::var("SK_BENCH_SOL").is_ok_and(|v| v == "1") {
        println!(
            "VM counters {}/{} (VM shape: {}; counters x{} to the real shape): {} warp-instr, {} thread-instr, \
             global ld {} req / {} sectors, st {} req / {} sectors, unique bytes {} read + {} written, \
             shared {} wavefronts ({} conflicts), mma FLOPs {}, blocks {} x {} threads, {} B shared/block",
            case.family,
            case.id,
            case.vm.note,
            case.vm.factor,
            counters.warp_instructions(),
            counters.thread_instructions(),
            counters.global_load_requests,
            counters.global_load_sectors,
            counters.global_store_requests,
            counters.global_store_sectors,
            counters.unique_bytes_read,
            counters.unique_bytes_written,
            counters.shared_wavefronts,
            counters.bank_conflicts(),
            counters.mma_flops,
            counters.blocks,
            counters.threads_per_block,
            counters.shared_bytes_per_block
        );
    }
    let name = format!("{}/{}", case.family, case.id);
    let row = speed_of_light_with(
        &name,
        &c,
        model,
        Some(case.work.floor()),
        LaunchResources { registers_per_thread: case.registers },
    );
    // The call's limiter: that of its longest launch.
    let (mut limiter, mut seconds) = row.limiter();
    let mut longest = seconds;
    let dram = UNITS.iter().position(|&u| u == "DRAM").unwrap_or(UNITS.len() - 1);
    let compute_of =
        |r: &SolRow| r.unit_seconds.iter().enumerate().filter(|&(i, _)| i != dram).map(|(_, &t)| t).fold(0.0, f64::max);
    let (mut compute, mut memory) = (compute_of(&row), row.unit_seconds[dram]);
    let mut note = format!("{} (x{})", case.vm.note, case.vm.factor);
    let unique = |c: &Counters| (c.unique_bytes_read + c.unique_bytes_written) as f64;
    let mut bytes = unique(&c);
    let mut rows = vec![row];
    for t in &case.vm.then {
        let known = t.share.as_ref().and_then(|k| shared.get(k)).cloned();
        let c = match known {
            Some(c) => c,
            None => {
                let mut launch = (t.build)(vm).map_err(|e| format!("{}: {e}", t.kernel))?;
                launch().map_err(|e| format!("{}: {e}", t.kernel))?;
                let c = vm.vm_last_launch().and_then(|r| r.counters).ok_or("the VM launch kept no counters")?;
                if let Some(k) = &t.share {
                    shared.insert(k.clone(), c.clone());
                }
                c
            }
        };
        if std::env::var("SK_BENCH_SOL").is_ok_and(|v| v == "1") {
            println!(
                "VM counters {name} + {} (counters x{}): {} warp-instr, global ld {} req / {} sectors, st {} req / \
                 {} sectors, unique bytes {} read + {} written, blocks {} x {} threads",
                t.kernel,
                t.factor,
                c.warp_instructions(),
                c.global_load_requests,
                c.global_load_sectors,
                c.global_store_requests,
                c.global_store_sectors,
                c.unique_bytes_read,
                c.unique_bytes_written,
                c.blocks,
                c.threads_per_block
            );
        }
        let mut c = scale_counters(&c, t.factor);
        if let Some(adjust) = &t.adjust {
            adjust(&mut c);
        }
        bytes += unique(&c);
        let r = speed_of_light_with(
            &format!("{name} + {}", t.kernel),
            &c,
            model,
            None,
            LaunchResources { registers_per_thread: t.registers },
        );
        let (l, secs) = r.limiter();
        if secs > longest {
            (limiter, longest) = (l, secs);
        }
        seconds += secs;
        compute += compute_of(&r);
        memory += r.unit_seconds[dram];
        let _ = write!(note, " + {} (x{})", t.kernel, t.factor);
        rows.push(r);
    }
    let w = case.work;
    let rec = Record {
        family: case.family,
        id: case.id.clone(),
        measured: false,
        device: model.name.to_string(),
        seconds,
        metric: w.metric,
        throughput: throughput_of(&w, seconds),
        peak: peak_of(model, &w),
        kernel_floor: rows[0].kernel_floor_seconds.unwrap_or(0.0),
        compute_floor: Some(compute),
        memory_floor: Some(memory),
        limiter: Some(limiter),
        vm_note: note,
        unique_bytes: Some(bytes),
        min_bytes: w.min_bytes,
    };
    Ok((rec, rows))
}

/// `target/bench-results` (or `$SK_BENCH_RESULTS`): next to criterion's `target/criterion`.
pub fn results_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SK_BENCH_RESULTS") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-results")
}

/// A suite's main: criterion from the arguments, the suite's cases, its files.
pub fn main_for(name: &'static str, cases: impl FnOnce() -> Vec<Case>) {
    main_with_dump(name, cases, None);
}

/// Writes small problems' inputs and this crate's outputs into a folder for
/// `scripts/compare_torch.py` (`SK_BENCH_DUMP=<dir>`).
pub type Dump = fn(&Device, &DumpDir) -> Result<()>;

/// A folder of raw little-endian arrays and a `manifest.txt` (`name dtype dims`, one a line).
pub struct DumpDir {
    dir: PathBuf,
    manifest: RefCell<String>,
}

impl DumpDir {
    /// Writes `data` as `<name>.bin` with its dtype and dims in the manifest.
    pub fn write<T: bytemuck::Pod>(&self, name: &str, dtype: &str, dims: &[usize], data: &[T]) {
        let path = self.dir.join(format!("{name}.bin"));
        if let Err(e) = std::fs::write(&path, bytemuck::cast_slice::<T, u8>(data)) {
            panic!("writing {}: {e}", path.display());
        }
        let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(self.manifest.borrow_mut(), "{name} {dtype} {}", dims.join(","));
    }
}

/// [`main_for`] with a dump of small problems for the PyTorch comparison: with `SK_BENCH_DUMP=<dir>`
/// set, only the dump runs (on whatever device was selected) and no benchmark.
pub fn main_with_dump(name: &'static str, cases: impl FnOnce() -> Vec<Case>, dump: Option<Dump>) {
    if let (Some(dir), Some(dump)) = (std::env::var_os("SK_BENCH_DUMP"), dump) {
        let dev = match Mode::select() {
            Mode::Gpu { dev, .. } => dev,
            Mode::Model { vm, .. } => vm,
        };
        let d = DumpDir { dir: PathBuf::from(dir).join(name), manifest: RefCell::default() };
        std::fs::create_dir_all(&d.dir).unwrap_or_else(|e| panic!("{}: {e}", d.dir.display()));
        dump(&dev, &d).unwrap_or_else(|e| panic!("dump {name}: {e}"));
        std::fs::write(d.dir.join("manifest.txt"), d.manifest.borrow().as_str())
            .unwrap_or_else(|e| panic!("{}: {e}", d.dir.display()));
        println!("dump: {} ({})", d.dir.display(), dev.describe());
        return;
    }
    let suite = Suite::new(name);
    if let (true, Mode::Gpu { dev, .. }) = (std::env::var("SK_BENCH_ONESHOT").is_ok_and(|v| v == "1"), &suite.mode) {
        oneshot(dev, cases());
        return;
    }
    let mut c = criterion(&suite.mode);
    suite.run(&mut c, cases());
    suite.finish();
    c.final_summary();
}

/// The benchmark filter: the first argument that is not an option (`cargo bench -- <filter>`).
fn filter_arg() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

/// `SK_BENCH_ONESHOT=1` on a GPU (`scripts/profile`): each case whose `family/id` contains the
/// filter (the first argument that is not an option) builds at the real shape and launches once,
/// with no criterion loop, so a profiler sees one call per benchmark.
fn oneshot(dev: &Device, cases: Vec<Case>) {
    let filter = filter_arg().unwrap_or_default();
    for case in cases {
        let name = format!("{}/{}", case.family, case.id);
        if !name.contains(&filter) {
            continue;
        }
        let run = (case.build)(dev, true).and_then(|mut l| {
            l()?;
            dev.synchronize()
        });
        match run {
            Ok(()) => println!("oneshot: {name}: launched once"),
            Err(e) => panic!("oneshot: {name}: {e}"),
        }
    }
}

/// Deterministic pseudo-random numbers in `[lo, hi)` (xorshift64*): inputs for counters and timing
/// need spread, not statistical quality, and must be cheap at a billion elements.
pub fn uniform(n: usize, seed: u64, lo: f64, hi: f64) -> impl Iterator<Item = f64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(move |_| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let u = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    })
}

/// `n` bf16 values uniform in `[lo, hi)`; past 4M values the first 4M repeat, so that inputs of
/// real shapes (billions of values on a GPU) cost a copy, not a generator call, per value.
pub fn bf16s(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<bf16> {
    const TILE: usize = 1 << 22;
    let tile: Vec<bf16> = uniform(n.min(TILE), seed, lo, hi).map(bf16::from_f64).collect();
    if n <= TILE {
        return tile;
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend_from_slice(&tile[..tile.len().min(n - out.len())]);
    }
    out
}
