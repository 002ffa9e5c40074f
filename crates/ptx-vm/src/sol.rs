//! Speed-of-light: the time floor each GPU unit sets for a launch, from its exact [`Counters`] and a
//! device model. It is a model, not a measurement: it says which unit bounds a kernel and how far
//! the kernel's own floor (its FLOPs and fewest bytes) is from what it actually asks of the GPU.
//!
//! The launch shape counts: when the counters carry it (blocks, threads and shared memory per
//! block, as every launch on the VM records them), the model works out how many CTAs one SM holds
//! at once ([`occupancy`]) and how many waves the launch takes, and bounds each SM unit by the
//! busiest SM rather than by the whole device: a launch of 4 CTAs runs on 4 SMs, not on 108.

use std::fmt::Write as _;

use crate::counters::{Counters, InstClass, SECTOR_BYTES};

/// Per-SM, per-clock rates and device-wide constants of one GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceModel {
    /// Marketing name.
    pub name: &'static str,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// The clock the rates are quoted at, in GHz.
    pub clock_ghz: f64,
    /// Dense tensor-core FLOPs per clock per SM with f16/bf16 inputs and f32 accumulation, issued
    /// as warp-level `mma.sync`.
    pub mma_f16_flops_per_clk: f64,
    /// The same, issued as warpgroup `wgmma.mma_async` (sm_90a); 0 on devices without it.
    pub wgmma_f16_flops_per_clk: f64,
    /// Dense tensor-core FLOPs per clock per SM with tf32 inputs (the device's peak, whichever
    /// instruction reaches it: a floor for `mma.sync`, which the VM runs tf32 with).
    pub mma_tf32_flops_per_clk: f64,
    /// f32 lanes (add/mul/fma instructions) per clock per SM.
    pub fp32_per_clk: f64,
    /// f64 lanes per clock per SM.
    pub fp64_per_clk: f64,
    /// Non-tensor f16/bf16 instructions per clock per SM (packed x2 counts once).
    pub half_per_clk: f64,
    /// Integer lanes per clock per SM.
    pub int_per_clk: f64,
    /// Special-function results (ex2, rsqrt, ...) per clock per SM.
    pub sfu_per_clk: f64,
    /// Warp instructions issued per clock per SM (one per scheduler).
    pub issue_per_clk: f64,
    /// Global-memory requests (at most 128 bytes each) the L1 serves per clock per SM.
    pub l1_requests_per_clk: f64,
    /// Shared-memory wavefronts per clock per SM (32 banks x 4 bytes = 128 bytes).
    pub shared_wavefronts_per_clk: f64,
    /// DRAM bandwidth in GB/s (10^9 bytes per second).
    pub dram_gbps: f64,
    /// Most threads resident on one SM.
    pub max_threads_per_sm: u32,
    /// Most CTAs resident on one SM.
    pub max_ctas_per_sm: u32,
    /// 32-bit registers per SM.
    pub registers_per_sm: u32,
    /// Most registers a thread may use.
    pub max_registers_per_thread: u32,
    /// Shared memory per SM at the largest shared-memory carveout, in bytes: what the resident
    /// CTAs share, their per-CTA reserve included.
    pub shared_per_sm: u32,
    /// Shared memory the CUDA runtime reserves for each resident CTA, in bytes.
    pub shared_reserved_per_cta: u32,
}

/// Registers are allocated per warp in units of 256 (CUDA Occupancy Calculator, GPU data for compute
/// capability 8.0 and 9.0: register allocation unit size 256, granularity warp).
const REGISTER_ALLOCATION_UNIT: u32 = 256;
/// Warps limited by registers are counted in multiples of 4, one per SM sub-partition (same source:
/// warp allocation granularity 4).
const WARP_ALLOCATION_GRANULARITY: u32 = 4;
/// Shared memory is allocated per CTA in units of 128 bytes (same source, 8.0 and 9.0).
const SHARED_ALLOCATION_UNIT: u32 = 128;
/// The share of the wgmma peak that `mma.sync` reaches on Hopper: FlashAttention-3 (Shah et al.,
/// 2024, arXiv:2407.08608, section 2: "mma.sync can only reach 2/3 of the peak throughput of the
/// H100 Tensor Cores", from the microbenchmarks of Luo et al., arXiv:2402.13499). NVIDIA's
/// datasheet and whitepaper quote only the peak, which Hopper reaches with wgmma.
const HOPPER_MMA_SYNC_SHARE: f64 = 2.0 / 3.0;
/// SM sub-partitions, each with one warp scheduler and a quarter of the SM's math units (A100 and
/// H100 whitepapers: four processing blocks per SM). A warp runs on one sub-partition, so an SM
/// with fewer than four resident warps cannot use all of its units.
const SUB_PARTITIONS: u32 = 4;

impl DeviceModel {
    /// H100 SXM5 80 GB.
    ///
    /// Sources: NVIDIA H100 Tensor Core GPU datasheet and the Hopper architecture whitepaper: 132 SMs;
    /// dense BF16/FP16 tensor 989.4 TFLOP/s and TF32 494.7 TFLOP/s, which at the 1.83 GHz boost clock
    /// the whitepaper quotes them at are 4096 and 2048 FLOP/clk/SM: the wgmma rate. `mma.sync` gets
    /// 2/3 of it, 2730.7 FLOP/clk/SM (659.6 TFLOP/s; FlashAttention-3, see
    /// `HOPPER_MMA_SYNC_SHARE`); 128 FP32, 64 FP64 and 64 INT32
    /// lanes per SM; HBM3 at 3.35 TB/s. CUDA C++ Programming Guide, "Arithmetic Instructions"
    /// throughput table, compute capability 9.0: 16 special-function results/clk/SM, 256 non-tensor
    /// f16 ops/clk/SM (128 packed instructions). Four warp schedulers per SM.
    ///
    /// Occupancy limits, CUDA C++ Programming Guide, "Technical Specifications per Compute
    /// Capability", 9.0: 2048 resident threads, 32 resident CTAs, 64K 32-bit registers per SM, 255
    /// registers per thread, 228 KB of shared memory per SM of which at most 227 KB per CTA; the 1 KB
    /// difference is what the runtime reserves per resident CTA (Nsight Compute reports it as
    /// "Driver Shared Memory Per Block").
    pub fn h100_sxm() -> Self {
        DeviceModel {
            name: "H100 SXM5",
            sms: 132,
            clock_ghz: 1.83,
            mma_f16_flops_per_clk: 4096.0 * HOPPER_MMA_SYNC_SHARE,
            wgmma_f16_flops_per_clk: 4096.0,
            mma_tf32_flops_per_clk: 2048.0,
            fp32_per_clk: 128.0,
            fp64_per_clk: 64.0,
            half_per_clk: 128.0,
            int_per_clk: 64.0,
            sfu_per_clk: 16.0,
            issue_per_clk: 4.0,
            l1_requests_per_clk: 1.0,
            shared_wavefronts_per_clk: 1.0,
            dram_gbps: 3350.0,
            max_threads_per_sm: 2048,
            max_ctas_per_sm: 32,
            registers_per_sm: 65536,
            max_registers_per_thread: 255,
            shared_per_sm: 228 * 1024,
            shared_reserved_per_cta: 1024,
        }
    }

    /// H200 SXM 141 GB: the H100 SXM5's GH100 (132 SMs, the same tensor and vector rates, wgmma and
    /// mma.sync alike, and occupancy limits) with HBM3e at 4.8 TB/s (NVIDIA H200 Tensor Core GPU
    /// datasheet: the same 989.4 dense BF16/FP16 TFLOP/s).
    pub fn h200_sxm() -> Self {
        DeviceModel { name: "H200 SXM", dram_gbps: 4800.0, ..DeviceModel::h100_sxm() }
    }

    /// A100 SXM4 80 GB.
    ///
    /// Sources: NVIDIA A100 Tensor Core GPU architecture whitepaper and datasheet: 108 SMs at a
    /// 1.41 GHz boost clock; dense BF16/FP16 tensor 312 TFLOP/s (2048 FLOP/clk/SM, with mma.sync;
    /// there is no wgmma before sm_90a) and TF32 156 TFLOP/s (1024); 64 FP32, 32 FP64 and 64 INT32 lanes per SM; HBM2e at 2039 GB/s. CUDA C++
    /// Programming Guide throughput table, compute capability 8.0: 16 special-function results/clk/SM,
    /// 256 non-tensor f16 ops/clk/SM (128 packed instructions). Four warp schedulers per SM.
    ///
    /// Occupancy limits, CUDA C++ Programming Guide, "Technical Specifications per Compute
    /// Capability", 8.0: 2048 resident threads, 32 resident CTAs, 64K 32-bit registers per SM, 255
    /// registers per thread, 164 KB of shared memory per SM of which at most 163 KB per CTA, the
    /// other 1 KB being reserved by the runtime for each resident CTA.
    pub fn a100_sxm() -> Self {
        DeviceModel {
            name: "A100 SXM4",
            sms: 108,
            clock_ghz: 1.41,
            mma_f16_flops_per_clk: 2048.0,
            wgmma_f16_flops_per_clk: 0.0,
            mma_tf32_flops_per_clk: 1024.0,
            fp32_per_clk: 64.0,
            fp64_per_clk: 32.0,
            half_per_clk: 128.0,
            int_per_clk: 64.0,
            sfu_per_clk: 16.0,
            issue_per_clk: 4.0,
            l1_requests_per_clk: 1.0,
            shared_wavefronts_per_clk: 1.0,
            dram_gbps: 2039.0,
            max_threads_per_sm: 2048,
            max_ctas_per_sm: 32,
            registers_per_sm: 65536,
            max_registers_per_thread: 255,
            shared_per_sm: 164 * 1024,
            shared_reserved_per_cta: 1024,
        }
    }

    /// Seconds for `work` units at `per_clk_per_sm` on the whole device.
    fn seconds(&self, work: f64, per_clk_per_sm: f64) -> f64 {
        work / (per_clk_per_sm * f64::from(self.sms) * self.clock_ghz * 1e9)
    }

    /// Peak dense tensor FLOP/s with 16-bit inputs, with the faster of mma.sync and wgmma.
    pub fn tensor_flops(&self) -> f64 {
        self.mma_f16_flops_per_clk.max(self.wgmma_f16_flops_per_clk) * f64::from(self.sms) * self.clock_ghz * 1e9
    }

    /// Peak dense tensor FLOP/s with 16-bit inputs issued as `mma.sync`.
    pub fn mma_sync_flops(&self) -> f64 {
        self.mma_f16_flops_per_clk * f64::from(self.sms) * self.clock_ghz * 1e9
    }

    /// Peak FP32 FLOP/s (an FMA counts 2).
    pub fn fp32_flops(&self) -> f64 {
        2.0 * self.fp32_per_clk * f64::from(self.sms) * self.clock_ghz * 1e9
    }
}

/// What a kernel must do at the least, as its wrapper states it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelFloor {
    /// Useful floating-point operations.
    pub flops: f64,
    /// The fewest bytes it must move to and from DRAM.
    pub min_bytes: f64,
    /// Whether its FLOPs are meant for tensor cores (else FP32 peak applies).
    pub tensor: bool,
}

/// What the counters do not know about a launch and the occupancy needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchResources {
    /// Registers per thread as ptxas allocates them (`ptxas -v`; scaling-kernels prints them with
    /// `scripts/resource-report`). Not the PTX's virtual register count
    /// ([`Counters::ptx_virtual_registers`]), which is many times larger. `None`: unknown, and the
    /// register limit on occupancy is left out, so the floor stays a floor (it can only be too
    /// low); the table marks such rows.
    pub registers_per_thread: Option<u32>,
}

/// The resource that limits how many CTAs an SM holds at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OccupancyLimit {
    /// Resident threads (warps) per SM.
    Threads,
    /// Resident CTAs per SM.
    Ctas,
    /// The register file.
    Registers,
    /// Shared memory.
    SharedMemory,
}

impl OccupancyLimit {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            OccupancyLimit::Threads => "threads",
            OccupancyLimit::Ctas => "ctas",
            OccupancyLimit::Registers => "regs",
            OccupancyLimit::SharedMemory => "smem",
        }
    }
}

/// How many CTAs of one shape an SM holds at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupancy {
    /// CTAs resident per SM; 0 when one CTA does not fit (the launch would fail on the GPU).
    pub ctas_per_sm: u32,
    /// The resource that sets `ctas_per_sm` (the first in declaration order on a tie).
    pub limit: OccupancyLimit,
    /// Warps per CTA.
    pub warps_per_cta: u32,
    /// Whether the register file was taken into account (registers per thread were given).
    pub registers_known: bool,
    /// The SM's limit on resident warps.
    pub max_warps_per_sm: u32,
}

impl Occupancy {
    /// Theoretical occupancy as Nsight Compute reports it: resident warps over the SM's maximum.
    pub fn fraction(&self) -> f64 {
        f64::from(self.ctas_per_sm * self.warps_per_cta) / f64::from(self.max_warps_per_sm)
    }
}

/// CTAs per SM for CTAs of `threads_per_cta` threads and `shared_bytes_per_cta` bytes of shared
/// memory, as the CUDA Occupancy Calculator works it out: the least of the limits set by resident
/// warps, resident CTAs, the register file (per-warp allocations rounded up to 256 registers, warps
/// rounded down to a multiple of 4) and shared memory (per-CTA allocations rounded up to 128 bytes,
/// plus the runtime's per-CTA reserve). `registers_per_thread: None` leaves the register file out.
pub fn occupancy(
    m: &DeviceModel,
    threads_per_cta: u32,
    shared_bytes_per_cta: u32,
    registers_per_thread: Option<u32>,
) -> Occupancy {
    let warps_per_cta = threads_per_cta.div_ceil(32).max(1);
    let by_threads = (m.max_threads_per_sm / 32) / warps_per_cta;
    let by_registers = registers_per_thread.map(|r| {
        if r > m.max_registers_per_thread {
            return 0;
        }
        let per_warp = (r * 32).div_ceil(REGISTER_ALLOCATION_UNIT).max(1) * REGISTER_ALLOCATION_UNIT;
        let warps = m.registers_per_sm / per_warp / WARP_ALLOCATION_GRANULARITY * WARP_ALLOCATION_GRANULARITY;
        warps / warps_per_cta
    });
    let per_cta_shared =
        shared_bytes_per_cta.div_ceil(SHARED_ALLOCATION_UNIT) * SHARED_ALLOCATION_UNIT + m.shared_reserved_per_cta;
    let by_shared = m.shared_per_sm / per_cta_shared;
    let limits = [
        (by_threads, OccupancyLimit::Threads),
        (m.max_ctas_per_sm, OccupancyLimit::Ctas),
        (by_registers.unwrap_or(u32::MAX), OccupancyLimit::Registers),
        (by_shared, OccupancyLimit::SharedMemory),
    ];
    let (ctas_per_sm, limit) = limits.iter().copied().fold(limits[0], |best, l| if l.0 < best.0 { l } else { best });
    Occupancy {
        ctas_per_sm,
        limit,
        warps_per_cta,
        registers_known: registers_per_thread.is_some(),
        max_warps_per_sm: m.max_threads_per_sm / 32,
    }
}

/// A launch's CTAs on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waves {
    /// CTAs in the launch.
    pub ctas: u64,
    /// CTAs per SM and what limits them.
    pub occupancy: Occupancy,
    /// `ceil(ctas / (SMs x CTAs per SM))`: the rounds in which the GPU runs the launch (0 when a
    /// CTA does not fit on an SM).
    pub waves: u64,
    /// `ceil(ctas / SMs)`: the CTAs the busiest SM runs, whatever the scheduler does.
    pub ctas_on_busiest_sm: u64,
    /// Sub-partitions (of 4) the busiest SM keeps busy: one per resident warp at most.
    pub active_sub_partitions: u32,
}

impl Waves {
    /// The launch of `ctas` CTAs of one shape on `m`.
    pub fn new(m: &DeviceModel, ctas: u64, occupancy: Occupancy) -> Waves {
        let sms = u64::from(m.sms);
        let per_sm = u64::from(occupancy.ctas_per_sm);
        let busiest = ctas.div_ceil(sms);
        let resident_warps = busiest.min(per_sm) * u64::from(occupancy.warps_per_cta);
        Waves {
            ctas,
            occupancy,
            waves: if per_sm == 0 { 0 } else { ctas.div_ceil(sms * per_sm) },
            ctas_on_busiest_sm: busiest,
            active_sub_partitions: resident_warps.min(u64::from(SUB_PARTITIONS)) as u32,
        }
    }
}

/// Units whose floors the model computes, in table order.
pub const UNITS: [&str; 10] =
    ["tensor", "fp32", "fp64", "fp16/bf16", "integer", "special fn", "issue", "L1 requests", "shared", "DRAM"];

/// One launch under one device model.
#[derive(Clone, Debug, PartialEq)]
pub struct SolRow {
    /// The kernel (and shape) measured.
    pub kernel: String,
    /// The device model's name.
    pub device: &'static str,
    /// Seconds each unit needs at minimum, in [`UNITS`] order.
    pub unit_seconds: [f64; 10],
    /// The kernel's own floor from its FLOPs and fewest bytes, when stated.
    pub kernel_floor_seconds: Option<f64>,
    /// The launch's CTAs, occupancy and waves, when the counters carry the launch shape; without
    /// it every SM unit is modelled as if the work were spread over all SMs.
    pub waves: Option<Waves>,
}

impl SolRow {
    /// The unit with the largest floor and its time.
    pub fn limiter(&self) -> (&'static str, f64) {
        let (i, t) =
            self.unit_seconds
                .iter()
                .copied()
                .enumerate()
                .fold((0, 0.0), |best, (i, t)| if t > best.1 { (i, t) } else { best });
        (UNITS[i], t)
    }
}

/// Computes each unit's floor for one launch's counters, with registers per thread unknown (see
/// [`speed_of_light_with`]).
pub fn speed_of_light(kernel: &str, c: &Counters, m: &DeviceModel, floor: Option<KernelFloor>) -> SolRow {
    speed_of_light_with(kernel, c, m, floor, LaunchResources::default())
}

/// Computes each unit's floor for one launch's counters.
///
/// When the counters carry the launch shape ([`Counters::blocks`], [`Counters::threads_per_block`],
/// [`Counters::shared_bytes_per_block`]), each SM unit's floor is that of the busiest SM: it runs
/// `ceil(CTAs / SMs)` CTAs, each with an equal share of the launch's work, and its resident CTAs
/// share its units, so its time is at least `ceil(CTAs / SMs)` times the per-CTA floor (one CTA's
/// share of the work at one SM's rates). That is at least `waves` x the per-CTA floor, and never
/// below the work spread over every SM. Units that live in the SM's sub-partitions (math units and
/// issue) run at the fraction of the SM its resident warps can reach (one sub-partition per warp).
/// DRAM stays a device-wide floor. Without the shape, every SM unit is the work spread over all SMs.
pub fn speed_of_light_with(
    kernel: &str,
    c: &Counters,
    m: &DeviceModel,
    floor: Option<KernelFloor>,
    resources: LaunchResources,
) -> SolRow {
    let waves = (c.blocks > 0 && c.threads_per_block > 0).then(|| {
        let occ = occupancy(m, c.threads_per_block, c.shared_bytes_per_block, resources.registers_per_thread);
        Waves::new(m, c.blocks, occ)
    });
    // Seconds for `work` at `per_clk` per SM; `sub_partitioned` units scale with the sub-partitions
    // the busiest SM's warps reach.
    let unit = |work: f64, per_clk: f64, sub_partitioned: bool| -> f64 {
        if work == 0.0 {
            return 0.0;
        }
        let Some(w) = waves else { return m.seconds(work, per_clk) };
        if w.occupancy.ctas_per_sm == 0 {
            return if work > 0.0 { f64::INFINITY } else { 0.0 };
        }
        let share = work / w.ctas as f64 * w.ctas_on_busiest_sm as f64;
        let fraction =
            if sub_partitioned { f64::from(w.active_sub_partitions) / f64::from(SUB_PARTITIONS) } else { 1.0 };
        share / (per_clk * fraction * m.clock_ghz * 1e9)
    };
    let threads = |class| c.class(class).threads as f64;
    // One tensor pipe: mma.sync and wgmma FLOPs each at their own rate, their times added (a
    // device without wgmma has no finite floor for wgmma FLOPs).
    let mma_sync_flops = c.mma_flops.saturating_sub(c.wgmma_flops);
    let tensor = unit(mma_sync_flops as f64, m.mma_f16_flops_per_clk, true)
        + unit(c.wgmma_flops as f64, m.wgmma_f16_flops_per_clk, true)
        + unit(c.mma_tf32_flops as f64, m.mma_tf32_flops_per_clk, true);
    let dram_bytes = ((c.unique_sectors_read + c.unique_sectors_written) * SECTOR_BYTES) as f64;
    let unit_seconds = [
        tensor,
        unit(threads(InstClass::Fp32), m.fp32_per_clk, true),
        unit(threads(InstClass::Fp64), m.fp64_per_clk, true),
        unit(threads(InstClass::Half), m.half_per_clk, true),
        unit(threads(InstClass::Integer), m.int_per_clk, true),
        unit(threads(InstClass::Sfu), m.sfu_per_clk, true),
        unit(c.warp_instructions() as f64, m.issue_per_clk, true),
        unit((c.global_load_requests + c.global_store_requests) as f64, m.l1_requests_per_clk, false),
        unit(c.shared_wavefronts as f64, m.shared_wavefronts_per_clk, false),
        dram_bytes / (m.dram_gbps * 1e9),
    ];
    let kernel_floor_seconds = floor.map(|f| {
        let peak = if f.tensor { m.tensor_flops() } else { m.fp32_flops() };
        (f.flops / peak).max(f.min_bytes / (m.dram_gbps * 1e9))
    });
    SolRow { kernel: kernel.to_string(), device: m.name, unit_seconds, kernel_floor_seconds, waves }
}

/// Formats rows as a text table in microseconds. Every table says it is a model.
pub fn format_table(rows: &[SolRow]) -> String {
    let mut s =
        String::from("speed-of-light MODEL (floors from exact VM counters and a device model; not a measurement)\n");
    let _ = write!(s, "{:<44} {:<10} {:>6} {:>19} {:>5}", "kernel", "device", "CTAs", "CTAs/SM (occupancy)", "waves");
    for u in UNITS {
        let _ = write!(s, " {u:>11}");
    }
    let _ = writeln!(s, " {:>12} {:>14}", "limiter", "kernel floor");
    let mut registers_unknown = false;
    // Every row says it is a model, so that no line copied out of the table passes for a measurement.
    for r in rows {
        let _ = write!(s, "{:<44} {:<10}", r.kernel, r.device);
        match r.waves {
            Some(w) => {
                let o = w.occupancy;
                let mark = if o.registers_known { "" } else { "*" };
                registers_unknown |= !o.registers_known;
                let pct = (o.fraction() * 100.0).round();
                let per_sm = format!("{} {}{mark} {pct:>3}%", o.ctas_per_sm, o.limit.name());
                let _ = write!(s, " {:>6} {per_sm:>19} {:>5}", w.ctas, w.waves);
            }
            None => {
                let _ = write!(s, " {:>6} {:>19} {:>5}", "-", "-", "-");
            }
        }
        for t in r.unit_seconds {
            let _ = write!(s, " {:>11.3}", t * 1e6);
        }
        let (unit, _) = r.limiter();
        let floor = r.kernel_floor_seconds.map_or("-".to_string(), |f| format!("{:.3}", f * 1e6));
        let _ = writeln!(s, " {unit:>12} {floor:>14}  (model)");
    }
    s.push_str("(all times in microseconds; a model, not a measurement)\n");
    s.push_str(
        "(model: SM units are floors of the busiest SM, which runs ceil(CTAs / SMs) CTAs; CTAs/SM is the \
         occupancy and its limiter)\n",
    );
    if registers_unknown {
        s.push_str(
            "(model: * registers per thread not given, so the register limit is left out of CTAs/SM; \
             `ptxas -v` or scripts/resource-report gives them, LaunchResources takes them)\n",
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_reproduce_the_datasheet_peaks() {
        let h = DeviceModel::h100_sxm();
        assert!((h.tensor_flops() / 1e12 - 989.4).abs() < 1.0, "{}", h.tensor_flops());
        // mma.sync: 2/3 of the wgmma peak on Hopper; the A100's peak is its mma.sync rate.
        assert!((h.mma_sync_flops() / 1e12 - 659.6).abs() < 1.0, "{}", h.mma_sync_flops());
        assert!((DeviceModel::h200_sxm().mma_sync_flops() - h.mma_sync_flops()).abs() < 1.0);
        let a = DeviceModel::a100_sxm();
        assert!((a.tensor_flops() / 1e12 - 312.0).abs() < 1.0);
        assert_eq!(a.mma_sync_flops(), a.tensor_flops());
        assert!((a.fp32_flops() / 1e12 - 19.5).abs() < 0.1);
    }

    #[test]
    fn a_copy_is_dram_bound_and_its_floor_matches() {
        let mut c = Counters::default();
        let bytes = 1u64 << 30;
        c.unique_sectors_read = bytes / 2 / SECTOR_BYTES;
        c.unique_sectors_written = bytes / 2 / SECTOR_BYTES;
        c.global_load_requests = bytes / 2 / 128;
        c.global_store_requests = bytes / 2 / 128;
        for _ in 0..(bytes / 512) {
            c.count(InstClass::GlobalLoad, 32);
        }
        let m = DeviceModel::h100_sxm();
        let floor = KernelFloor { flops: 0.0, min_bytes: bytes as f64, tensor: false };
        let row = speed_of_light("copy", &c, &m, Some(floor));
        assert_eq!(row.limiter().0, "DRAM");
        let dram = row.limiter().1;
        assert!((dram - bytes as f64 / 3350e9).abs() < 1e-9);
        assert_eq!(row.kernel_floor_seconds, Some(dram));
        let table = format_table(&[row]);
        assert!(table.contains("MODEL") && table.contains("not a measurement"));
        assert!(table.lines().all(|l| l.contains("model") || l.contains("MODEL") || l.starts_with("kernel")));
    }

    /// Counters of a launch of `ctas` CTAs of `threads` threads with `smem` bytes of shared memory
    /// whose total work (tensor FLOPs, warp instructions, L1 requests) does not depend on `ctas`.
    fn launch(ctas: u64, threads: u32, smem: u32) -> Counters {
        let mut c =
            Counters { blocks: ctas, threads_per_block: threads, shared_bytes_per_block: smem, ..Counters::default() };
        c.mma_flops = 1 << 34;
        c.global_load_requests = 1 << 20;
        for _ in 0..1000 {
            c.count(InstClass::Integer, 32);
        }
        c
    }

    fn unit(row: &SolRow, name: &str) -> f64 {
        row.unit_seconds[UNITS.iter().position(|&u| u == name).unwrap()]
    }

    #[test]
    fn wgmma_flops_run_at_the_wgmma_rate_and_mma_sync_flops_at_two_thirds_of_it_on_hopper() {
        let h = DeviceModel::h100_sxm();
        let flops: u64 = 3 << 40;
        let shapeless = |mma: u64, wgmma: u64| Counters { mma_flops: mma, wgmma_flops: wgmma, ..Counters::default() };
        let t = |c: &Counters| unit(&speed_of_light("k", c, &h, None), "tensor");
        // All of it wgmma: the 989.4 TFLOP/s peak (the work spread over all 132 SMs).
        let all_wgmma = t(&shapeless(flops, flops));
        assert!((all_wgmma - flops as f64 / (4096.0 * 132.0 * 1.83e9)).abs() < 1e-12, "{all_wgmma}");
        // All of it mma.sync: 1.5 x as long.
        let all_sync = t(&shapeless(flops, 0));
        assert!((all_sync / all_wgmma - 1.5).abs() < 1e-12, "{all_sync} {all_wgmma}");
        // A third each way: the two times add (one tensor pipe).
        let mixed = t(&shapeless(flops, 2 * flops / 3));
        assert!((mixed / all_wgmma - (2.0 / 3.0 + 1.5 / 3.0)).abs() < 1e-12, "{mixed}");
        // The same with a launch shape: per busiest SM, with the same ratio.
        let shaped = |wgmma: u64| Counters { mma_flops: flops, wgmma_flops: wgmma, ..launch(264, 384, 0) };
        let r = t(&shaped(0)) / t(&shaped(flops));
        assert!((r - 1.5).abs() < 1e-12, "{r}");
    }

    #[test]
    fn wgmma_flops_have_no_finite_floor_on_a_device_without_wgmma() {
        let a = DeviceModel::a100_sxm();
        let c = Counters { mma_flops: 1 << 30, wgmma_flops: 1 << 30, ..Counters::default() };
        assert!(unit(&speed_of_light("k", &c, &a, None), "tensor").is_infinite());
        let none = speed_of_light("k", &Counters::default(), &a, None);
        assert_eq!(unit(&none, "tensor"), 0.0);
    }

    #[test]
    fn h200_is_an_h100_with_faster_memory() {
        let (h100, h200) = (DeviceModel::h100_sxm(), DeviceModel::h200_sxm());
        assert_eq!(h200.tensor_flops(), h100.tensor_flops());
        assert_eq!((h200.sms, h200.shared_per_sm, h200.dram_gbps), (132, 228 * 1024, 4800.0));
    }

    #[test]
    fn occupancy_limited_by_threads_and_by_cta_slots() {
        let a = DeviceModel::a100_sxm();
        let o = occupancy(&a, 1024, 0, None);
        assert_eq!((o.ctas_per_sm, o.limit), (2, OccupancyLimit::Threads));
        assert_eq!(occupancy(&a, 256, 0, None).ctas_per_sm, 8);
        // 96 threads are 3 warps: 64 / 3 = 21 CTAs.
        assert_eq!(occupancy(&a, 96, 0, None).ctas_per_sm, 21);
        let o = occupancy(&a, 32, 0, None);
        assert_eq!((o.ctas_per_sm, o.limit), (32, OccupancyLimit::Ctas));
        assert!(!o.registers_known);
    }

    #[test]
    fn occupancy_limited_by_shared_memory_with_allocation_unit_and_reserve() {
        let a = DeviceModel::a100_sxm();
        // 48 KiB + the 1 KiB reserve per CTA: 164 KiB / 49 KiB = 3 on an A100, 228 / 49 = 4 on an H100.
        let o = occupancy(&a, 128, 48 * 1024, None);
        assert_eq!((o.ctas_per_sm, o.limit), (3, OccupancyLimit::SharedMemory));
        assert_eq!(occupancy(&DeviceModel::h100_sxm(), 128, 48 * 1024, None).ctas_per_sm, 4);
        // 81 KiB + 1 KiB reserve = 82 KiB: exactly two per 164 KiB. One byte more rounds the CTA up
        // to the next 128-byte unit and leaves room for one.
        assert_eq!(occupancy(&a, 128, 81 * 1024, None).ctas_per_sm, 2);
        assert_eq!(occupancy(&a, 128, 81 * 1024 + 1, None).ctas_per_sm, 1);
        // The largest CTA allocation fits exactly once; more does not fit at all.
        assert_eq!(occupancy(&a, 128, 163 * 1024, None).ctas_per_sm, 1);
        assert_eq!(occupancy(&a, 128, 163 * 1024 + 1, None).ctas_per_sm, 0);
        assert_eq!(occupancy(&DeviceModel::h100_sxm(), 128, 227 * 1024, None).ctas_per_sm, 1);
    }

    #[test]
    fn occupancy_limited_by_registers_with_warp_granularity() {
        let a = DeviceModel::a100_sxm();
        // 64 registers: 2048 per warp, 32 warps, 8 CTAs of 4 warps.
        let o = occupancy(&a, 128, 0, Some(64));
        assert_eq!((o.ctas_per_sm, o.limit), (8, OccupancyLimit::Registers));
        assert!(o.registers_known);
        assert_eq!(o.fraction(), 0.5);
        // 32 registers leave the 64-warp limit in charge.
        assert_eq!(occupancy(&a, 128, 0, Some(32)).limit, OccupancyLimit::Threads);
        // 255 registers round up to 8192 per warp: 8 warps, 2 CTAs of 4 warps.
        assert_eq!(occupancy(&a, 128, 0, Some(255)).ctas_per_sm, 2);
        // 80 registers: 2560 per warp, 25 warps, rounded down to 24 (whole sub-partition groups).
        assert_eq!(occupancy(&a, 32, 0, Some(80)).ctas_per_sm, 24);
        // More than the per-thread maximum does not fit.
        assert_eq!(occupancy(&a, 32, 0, Some(256)).ctas_per_sm, 0);
    }

    #[test]
    fn four_ctas_are_modelled_27x_slower_than_the_same_work_over_108() {
        let a = DeviceModel::a100_sxm();
        let few = speed_of_light("few", &launch(4, 128, 0), &a, None);
        let full = speed_of_light("full", &launch(108, 128, 0), &a, None);
        for u in ["tensor", "integer", "issue", "L1 requests"] {
            let ratio = unit(&few, u) / unit(&full, u);
            assert!((ratio - 27.0).abs() < 1e-9, "{u}: {ratio}");
        }
        // 108 CTAs on 108 SMs is the work spread over the device: the shape-free model.
        let mut shapeless = launch(108, 128, 0);
        shapeless.blocks = 0;
        let spread = speed_of_light("spread", &shapeless, &a, None);
        assert!(spread.waves.is_none());
        assert!((unit(&full, "tensor") - unit(&spread, "tensor")).abs() < 1e-15);
        let w = few.waves.unwrap();
        assert_eq!((w.ctas, w.waves, w.ctas_on_busiest_sm, w.active_sub_partitions), (4, 1, 1, 4));
    }

    #[test]
    fn one_wave_then_two_when_ctas_exceed_the_sms_resident_slots() {
        let a = DeviceModel::a100_sxm();
        // 100 KiB of shared memory: one CTA per SM.
        let smem = 100 * 1024;
        // The same work per CTA, so the tensor floor counts per-CTA floors.
        let run = |ctas: u64| {
            let c = Counters { mma_flops: ctas << 24, ..launch(ctas, 128, smem) };
            let r = speed_of_light("x", &c, &a, None);
            (r.waves.unwrap().waves, unit(&r, "tensor"))
        };
        let (w1, t1) = run(108);
        let (w2, t2) = run(109);
        let (w3, t3) = run(216);
        assert_eq!((w1, w2, w3), (1, 2, 2));
        assert!((t2 / t1 - 2.0).abs() < 1e-12 && (t3 / t1 - 2.0).abs() < 1e-12, "{t1} {t2} {t3}");
        // Two CTAs per SM: 216 CTAs are one wave, but each SM still runs two CTAs' work on its units,
        // so the floor is that of two per-CTA floors, the same as with one CTA per SM.
        let two = speed_of_light("two", &launch(216, 128, 48 * 1024), &a, None);
        let w = two.waves.unwrap();
        assert_eq!((w.occupancy.ctas_per_sm, w.waves, w.ctas_on_busiest_sm), (3, 1, 2));
        let one_per_sm = speed_of_light("one", &launch(216, 128, smem), &a, None);
        assert!((unit(&two, "tensor") / unit(&one_per_sm, "tensor") - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_lone_warp_reaches_one_sub_partition() {
        let a = DeviceModel::a100_sxm();
        let lone = speed_of_light("lone", &launch(1, 32, 0), &a, None);
        let four = speed_of_light("four", &launch(1, 128, 0), &a, None);
        assert_eq!(lone.waves.unwrap().active_sub_partitions, 1);
        assert!((unit(&lone, "issue") / unit(&four, "issue") - 4.0).abs() < 1e-12);
        assert!((unit(&lone, "tensor") / unit(&four, "tensor") - 4.0).abs() < 1e-12);
        // L1 is shared by the whole SM: no sub-partition penalty.
        assert!((unit(&lone, "L1 requests") / unit(&four, "L1 requests") - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_cta_that_does_not_fit_has_no_finite_floor() {
        let a = DeviceModel::a100_sxm();
        let r = speed_of_light("huge", &launch(8, 128, 200 * 1024), &a, None);
        assert_eq!(r.waves.unwrap().waves, 0);
        assert!(unit(&r, "tensor").is_infinite());
        assert!(format_table(&[r]).contains("inf"));
    }

    #[test]
    fn table_shows_occupancy_and_marks_unknown_registers() {
        let a = DeviceModel::a100_sxm();
        let c = launch(4, 128, 48 * 1024);
        let unknown = format_table(&[speed_of_light("k", &c, &a, None)]);
        // 3 CTAs of 4 warps: 12 of 64 warps.
        assert!(unknown.contains("CTAs/SM") && unknown.contains("3 smem*  19%"), "{unknown}");
        assert!(unknown.contains("registers per thread not given"));
        let known = LaunchResources { registers_per_thread: Some(128) };
        let table = format_table(&[speed_of_light_with("k", &c, &a, None, known)]);
        // 128 registers: 4096 per warp, 16 warps, 4 CTAs of 4 warps; shared memory allows 3.
        assert!(table.contains("3 smem ") && !table.contains("not given"), "{table}");
        let regs = LaunchResources { registers_per_thread: Some(168) };
        let table = format_table(&[speed_of_light_with("k", &c, &a, None, regs)]);
        // 168 registers: 5376 per warp, 12 warps, 3 CTAs: a tie with shared memory goes to registers.
        assert!(table.contains("3 regs"), "{table}");
        assert!(table.lines().all(|l| l.contains("model") || l.contains("MODEL") || l.starts_with("kernel")));
    }
}
