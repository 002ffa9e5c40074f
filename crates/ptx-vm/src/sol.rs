//! Speed-of-light: the time floor each GPU unit sets for a launch, from its exact [`Counters`] and a
//! device model. It is a model, not a measurement: it says which unit bounds a kernel and how far
//! the kernel's own floor (its FLOPs and fewest bytes) is from what it actually asks of the GPU.

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
    /// Dense tensor-core FLOPs per clock per SM with f16/bf16 inputs and f32 accumulation.
    pub mma_f16_flops_per_clk: f64,
    /// Dense tensor-core FLOPs per clock per SM with tf32 inputs.
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
}

impl DeviceModel {
    /// H100 SXM5 80 GB.
    ///
    /// Sources: NVIDIA H100 Tensor Core GPU datasheet and the Hopper architecture whitepaper: 132 SMs;
    /// dense BF16/FP16 tensor 989.4 TFLOP/s and TF32 494.7 TFLOP/s, which at the 1.83 GHz boost clock
    /// the whitepaper quotes them at are 4096 and 2048 FLOP/clk/SM; 128 FP32, 64 FP64 and 64 INT32
    /// lanes per SM; HBM3 at 3.35 TB/s. CUDA C++ Programming Guide, "Arithmetic Instructions"
    /// throughput table, compute capability 9.0: 16 special-function results/clk/SM, 256 non-tensor
    /// f16 ops/clk/SM (128 packed instructions). Four warp schedulers per SM.
    pub fn h100_sxm() -> Self {
        DeviceModel {
            name: "H100 SXM5",
            sms: 132,
            clock_ghz: 1.83,
            mma_f16_flops_per_clk: 4096.0,
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
        }
    }

    /// A100 SXM4 80 GB.
    ///
    /// Sources: NVIDIA A100 Tensor Core GPU architecture whitepaper and datasheet: 108 SMs at a
    /// 1.41 GHz boost clock; dense BF16/FP16 tensor 312 TFLOP/s (2048 FLOP/clk/SM) and TF32 156
    /// TFLOP/s (1024); 64 FP32, 32 FP64 and 64 INT32 lanes per SM; HBM2e at 2039 GB/s. CUDA C++
    /// Programming Guide throughput table, compute capability 8.0: 16 special-function results/clk/SM,
    /// 256 non-tensor f16 ops/clk/SM (128 packed instructions). Four warp schedulers per SM.
    pub fn a100_sxm() -> Self {
        DeviceModel {
            name: "A100 SXM4",
            sms: 108,
            clock_ghz: 1.41,
            mma_f16_flops_per_clk: 2048.0,
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
        }
    }

    /// Seconds for `work` units at `per_clk_per_sm` on the whole device.
    fn seconds(&self, work: f64, per_clk_per_sm: f64) -> f64 {
        work / (per_clk_per_sm * f64::from(self.sms) * self.clock_ghz * 1e9)
    }

    /// Peak dense tensor FLOP/s with 16-bit inputs.
    pub fn tensor_flops(&self) -> f64 {
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

/// Computes each unit's floor for one launch's counters.
pub fn speed_of_light(kernel: &str, c: &Counters, m: &DeviceModel, floor: Option<KernelFloor>) -> SolRow {
    let threads = |class| c.class(class).threads as f64;
    let tensor = m.seconds(c.mma_flops as f64, m.mma_f16_flops_per_clk)
        + m.seconds(c.mma_tf32_flops as f64, m.mma_tf32_flops_per_clk);
    let dram_bytes = ((c.unique_sectors_read + c.unique_sectors_written) * SECTOR_BYTES) as f64;
    let unit_seconds = [
        tensor,
        m.seconds(threads(InstClass::Fp32), m.fp32_per_clk),
        m.seconds(threads(InstClass::Fp64), m.fp64_per_clk),
        m.seconds(threads(InstClass::Half), m.half_per_clk),
        m.seconds(threads(InstClass::Integer), m.int_per_clk),
        m.seconds(threads(InstClass::Sfu), m.sfu_per_clk),
        m.seconds(c.warp_instructions() as f64, m.issue_per_clk),
        m.seconds((c.global_load_requests + c.global_store_requests) as f64, m.l1_requests_per_clk),
        m.seconds(c.shared_wavefronts as f64, m.shared_wavefronts_per_clk),
        dram_bytes / (m.dram_gbps * 1e9),
    ];
    let kernel_floor_seconds = floor.map(|f| {
        let peak = if f.tensor { m.tensor_flops() } else { m.fp32_flops() };
        (f.flops / peak).max(f.min_bytes / (m.dram_gbps * 1e9))
    });
    SolRow { kernel: kernel.to_string(), device: m.name, unit_seconds, kernel_floor_seconds }
}

/// Formats rows as a text table in microseconds. Every table says it is a model.
pub fn format_table(rows: &[SolRow]) -> String {
    let mut s =
        String::from("speed-of-light MODEL (floors from exact VM counters and a device model; not a measurement)\n");
    let _ = write!(s, "{:<44} {:<10}", "kernel", "device");
    for u in UNITS {
        let _ = write!(s, " {u:>11}");
    }
    let _ = writeln!(s, " {:>12} {:>14}", "limiter", "kernel floor");
    // Every row says it is a model, so that no line copied out of the table passes for a measurement.
    for r in rows {
        let _ = write!(s, "{:<44} {:<10}", r.kernel, r.device);
        for t in r.unit_seconds {
            let _ = write!(s, " {:>11.3}", t * 1e6);
        }
        let (unit, _) = r.limiter();
        let floor = r.kernel_floor_seconds.map_or("-".to_string(), |f| format!("{:.3}", f * 1e6));
        let _ = writeln!(s, " {unit:>12} {floor:>14}  (model)");
    }
    s.push_str("(all times in microseconds; a model, not a measurement)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_reproduce_the_datasheet_peaks() {
        let h = DeviceModel::h100_sxm();
        assert!((h.tensor_flops() / 1e12 - 989.4).abs() < 1.0, "{}", h.tensor_flops());
        let a = DeviceModel::a100_sxm();
        assert!((a.tensor_flops() / 1e12 - 312.0).abs() < 1.0);
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
}
