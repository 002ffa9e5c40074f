//! The public face: modules, the machine that owns device memory, launches.

use crate::counters::Counters;
use crate::error::{Result, VmError};
use crate::exec::{run_block, BlockOut, LaunchCtx, Workspace};
use crate::lower::{lower_module, ModuleIr};
use crate::memory::Global;
use crate::sanitizer::SanitizerReport;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The GPU architecture the machine models; it decides the shared-memory limit per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Ampere (A100): 163 KiB of shared memory per block.
    Sm80,
    /// Hopper (H100): 227 KiB of shared memory per block.
    Sm90,
}

impl Arch {
    /// Most shared memory (static + dynamic) one block may use, in bytes.
    pub fn max_shared_per_block(self) -> usize {
        match self {
            Arch::Sm80 => 163 * 1024,
            Arch::Sm90 => 227 * 1024,
        }
    }
}

static NEXT_MODULE_ID: AtomicU64 = AtomicU64::new(1);

/// About 5-10 s of interpretation of one block; far more than any test kernel's block needs.
const DEFAULT_BLOCK_INSTRUCTION_LIMIT: u64 = 1 << 30;

/// Parsed and lowered PTX, decoded once; launch it on any [`Machine`].
pub struct Module {
    id: u64,
    ir: ModuleIr,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("kernels", &self.kernel_names()).finish()
    }
}

impl Module {
    /// Parses PTX text (as nvcc emits it) and decodes every kernel.
    pub fn parse(ptx: &str) -> Result<Module> {
        let ast = crate::parse::parse(ptx)?;
        let ir = lower_module(&ast)?;
        Ok(Module { id: NEXT_MODULE_ID.fetch_add(1, Ordering::Relaxed), ir })
    }

    /// Names of the `.entry` kernels.
    pub fn kernel_names(&self) -> Vec<&str> {
        self.ir.kernels.iter().map(|k| k.name.as_str()).collect()
    }

    /// Total bytes of a kernel's parameters, or None if there is no such kernel.
    pub fn param_size(&self, kernel: &str) -> Option<usize> {
        self.ir.kernels.iter().find(|k| k.name == kernel).map(|k| k.param_size)
    }

    /// Bytes of static shared memory a kernel declares, or None if there is no such kernel.
    pub fn static_shared_size(&self, kernel: &str) -> Option<usize> {
        self.ir.kernels.iter().find(|k| k.name == kernel).map(|k| k.static_smem)
    }
}

/// Grid and block shape of a launch and its dynamic shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Bytes of dynamic shared memory per block.
    pub dynamic_smem: u32,
}

/// What a launch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchReport {
    /// Instructions executed, counted once per thread of the issuing group (predicated-off lanes
    /// included; the per-class counts in [`Counters`] leave them out).
    pub thread_instructions: u64,
    /// Instructions executed, counted once per warp issue.
    pub warp_instructions: u64,
    /// Exact counters, when the machine counted ([`Machine::with_counters`] or the sanitizer).
    pub counters: Option<Counters>,
    /// The sanitizer's findings, when it was on. Blocks' findings are folded in block order, so
    /// they do not depend on the host-thread count, except which block a cross-block write
    /// conflict names first (the blocks really do run concurrently).
    pub sanitizer: Option<SanitizerReport>,
}

impl LaunchReport {
    /// For tests: `Ok` when the sanitizer ran and found nothing, else the report's text.
    pub fn assert_clean(&self) -> std::result::Result<(), String> {
        match &self.sanitizer {
            None => Err("the sanitizer was off for this launch".to_string()),
            Some(r) if r.is_clean() => Ok(()),
            Some(r) => Err(r.to_string()),
        }
    }

    /// The sanitizer's findings (an empty report when it was off).
    pub fn findings(&self) -> SanitizerReport {
        self.sanitizer.clone().unwrap_or_default()
    }
}

/// A simulated GPU: owns global memory and runs kernels on a pool of host threads.
pub struct Machine {
    arch: Arch,
    threads: usize,
    global: Global,
    module_globals: HashMap<u64, Vec<u64>>,
    block_instruction_limit: u64,
    sanitize: bool,
    count: bool,
    /// Created at the first launch of a kernel that calls `malloc`.
    heap: Option<crate::exec::DeviceHeap>,
}

impl Machine {
    /// A machine of the given architecture, using all available cores, with the sanitizer on
    /// (memcheck always runs; racecheck and initcheck with it) and therefore counting.
    pub fn new(arch: Arch) -> Machine {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut global = Global::default();
        global.track = true;
        Machine {
            arch,
            threads,
            global,
            module_globals: HashMap::new(),
            block_instruction_limit: DEFAULT_BLOCK_INSTRUCTION_LIMIT,
            sanitize: true,
            count: false,
            heap: None,
        }
    }

    /// Turns racecheck and initcheck on or off (on by default). Off, a launch runs several times
    /// faster; out-of-bounds and misaligned accesses still fail the launch. Allocations made while
    /// it is off count as initialised when it is turned back on.
    pub fn with_sanitizer(mut self, on: bool) -> Machine {
        self.set_sanitizer(on);
        self
    }

    /// [`Machine::with_sanitizer`] on a machine in use.
    pub fn set_sanitizer(&mut self, on: bool) {
        self.sanitize = on;
        self.global.track = on;
    }

    /// Whether the sanitizer is on.
    pub fn sanitizer(&self) -> bool {
        self.sanitize
    }

    /// Counts exact per-launch counters even with the sanitizer off (with it on they are always
    /// counted).
    pub fn with_counters(mut self, on: bool) -> Machine {
        self.count = on;
        self
    }

    /// Sets the number of host threads that run blocks (at least 1).
    pub fn with_threads(mut self, n: usize) -> Machine {
        self.threads = n.max(1);
        self
    }

    /// Sets how many warp instructions one block may execute before its launch fails as a
    /// runaway (an endless loop or an unsatisfiable spin-wait) instead of hanging. Default 2^30.
    pub fn with_block_instruction_limit(mut self, n: u64) -> Machine {
        self.block_instruction_limit = n.max(1);
        self
    }

    /// The machine's architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Allocates zeroed global memory: a non-zero, 256-byte aligned address with an unmapped gap
    /// after the allocation.
    pub fn alloc(&mut self, bytes: usize) -> Result<u64> {
        self.global.alloc(bytes)
    }

    /// Frees an allocation by its start address.
    pub fn free(&mut self, ptr: u64) -> Result<()> {
        self.global.free(ptr)
    }

    /// Copies host bytes to device memory; `ptr` may point inside an allocation.
    pub fn write(&mut self, ptr: u64, data: &[u8]) -> Result<()> {
        self.global.write(ptr, data)
    }

    /// Copies device memory to the host.
    pub fn read(&self, ptr: u64, out: &mut [u8]) -> Result<()> {
        self.global.read(ptr, out)
    }

    /// Sets `len` bytes at `ptr` to `value`.
    pub fn memset(&mut self, ptr: u64, value: u8, len: usize) -> Result<()> {
        self.global.write(ptr, &vec![value; len])
    }

    fn globals_for(&mut self, module: &Module) -> Result<Vec<u64>> {
        if let Some(v) = self.module_globals.get(&module.id) {
            return Ok(v.clone());
        }
        let mut addrs = Vec::new();
        for (size, _align, init) in &module.ir.globals {
            let a = self.global.alloc((*size).max(1))?;
            self.global.write(a, init)?;
            addrs.push(a);
        }
        self.module_globals.insert(module.id, addrs.clone());
        Ok(addrs)
    }

    /// Runs a kernel to completion. `params` are exactly the bytes of the kernel's param space
    /// (see [`ParamBuilder`]).
    pub fn launch(&mut self, module: &Module, kernel: &str, cfg: &LaunchConfig, params: &[u8]) -> Result<LaunchReport> {
        let k = module
            .ir
            .kernels
            .iter()
            .find(|k| k.name == kernel)
            .ok_or_else(|| VmError::Undefined { name: format!("kernel {kernel}"), line: 0 })?;
        let bad = |message: String| Err(VmError::Launch { kernel: kernel.to_string(), message });
        if params.len() != k.param_size {
            return bad(format!("params: expected {} bytes, got {}", k.param_size, params.len()));
        }
        if cfg.block.contains(&0) || cfg.grid.contains(&0) {
            return bad(format!("grid {:?} and block {:?} must be non-zero", cfg.grid, cfg.block));
        }
        let nthreads = cfg.block.iter().map(|&x| x as u64).product::<u64>();
        if nthreads > 1024 || cfg.block[2] > 64 {
            return bad(format!("block {:?}: at most 1024 threads and z <= 64", cfg.block));
        }
        if cfg.grid[1] > 65535 || cfg.grid[2] > 65535 {
            return bad(format!("grid {:?}: y and z must be <= 65535", cfg.grid));
        }
        if let Some(m) = k.maxntid {
            let max = m.iter().map(|&x| x as u64).product::<u64>();
            if nthreads > max {
                return bad(format!(
                    "block {:?} has {nthreads} threads, more than the kernel's .maxntid {m:?}",
                    cfg.block
                ));
            }
        }
        let smem = k.static_smem.div_ceil(k.dyn_smem_align) * k.dyn_smem_align + cfg.dynamic_smem as usize;
        let limit = self.arch.max_shared_per_block();
        if smem > limit {
            return bad(format!(
                "shared memory: {} static + {} dynamic bytes exceeds the {:?} limit of {limit}",
                k.static_smem, cfg.dynamic_smem, self.arch
            ));
        }
        if k.uses_heap && self.heap.is_none() {
            let bytes = crate::exec::DeviceHeap::DEFAULT_BYTES;
            let base = self.global.alloc(bytes)?;
            self.heap = Some(crate::exec::DeviceHeap { base, size: bytes as u64, next: Default::default() });
        }
        let global_vars = self.globals_for(module)?;
        let counting = self.count || self.sanitize;
        if counting {
            for (_, buf) in &self.global.allocs {
                buf.ensure_tracking().begin_launch();
            }
        }
        let ctx = LaunchCtx {
            kernel: k,
            locs: &module.ir.locs,
            const_bank: &module.ir.const_bank,
            global: &self.global,
            params,
            global_vars: &global_vars,
            grid: cfg.grid,
            block: cfg.block,
            dyn_smem: cfg.dynamic_smem,
            block_instruction_limit: self.block_instruction_limit,
            count: counting,
            sanitize: self.sanitize,
            heap: self.heap.as_ref(),
        };
        let nblocks = cfg.grid.iter().map(|&x| x as usize).product::<usize>();
        let coord = |i: usize| {
            let (gx, gy) = (cfg.grid[0] as usize, cfg.grid[1] as usize);
            [(i % gx) as u32, ((i / gx) % gy) as u32, (i / (gx * gy)) as u32]
        };
        let workers = self.threads.min(nblocks);
        // Per-block outcomes are kept by block index and folded in index order, so counters and
        // the order of findings do not depend on the number of host threads.
        let mut outs: Vec<(usize, BlockOut)> = Vec::new();
        if workers <= 1 {
            let mut ws = Workspace::default();
            for i in 0..nblocks {
                outs.push((i, run_block(&ctx, coord(i), &mut ws)?));
            }
        } else {
            // Blocks are handed out in order; after a fault in block e, only blocks before e still
            // run, so the error reported is always that of the lowest failing block.
            let next = AtomicUsize::new(0);
            let stop_at = AtomicUsize::new(usize::MAX);
            let first_err: Mutex<Option<(usize, VmError)>> = Mutex::new(None);
            let all: Mutex<Vec<(usize, BlockOut)>> = Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| {
                        let mut ws = Workspace::default();
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= nblocks || i >= stop_at.load(Ordering::Relaxed) {
                                break;
                            }
                            match run_block(&ctx, coord(i), &mut ws) {
                                Ok(c) => mine.push((i, c)),
                                Err(e) => {
                                    stop_at.fetch_min(i, Ordering::Relaxed);
                                    let mut g = first_err.lock().unwrap_or_else(|p| p.into_inner());
                                    if g.as_ref().is_none_or(|(j, _)| i < *j) {
                                        *g = Some((i, e));
                                    }
                                }
                            }
                        }
                        all.lock().unwrap_or_else(|p| p.into_inner()).append(&mut mine);
                    });
                }
            });
            if let Some((_, e)) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
            outs = all.into_inner().unwrap_or_else(|p| p.into_inner());
            outs.sort_by_key(|(i, _)| *i);
        }
        let mut report = LaunchReport::default();
        let mut counters = Counters::default();
        let mut findings = SanitizerReport::default();
        for (_, o) in outs {
            report.thread_instructions += o.counts.thread_instructions;
            report.warp_instructions += o.counts.warp_instructions;
            if counting {
                counters.merge(&o.counters);
                findings.merge(o.report);
            }
        }
        if counting {
            for (_, buf) in &self.global.allocs {
                if let Some(t) = buf.tracking() {
                    let [br, sr, bw, sw] = t.unique();
                    counters.unique_bytes_read += br;
                    counters.unique_sectors_read += sr;
                    counters.unique_bytes_written += bw;
                    counters.unique_sectors_written += sw;
                }
            }
            report.counters = Some(counters);
        }
        if self.sanitize {
            report.sanitizer = Some(findings);
        }
        Ok(report)
    }
}

/// Builds a kernel's parameter bytes, each value at its natural alignment, as the PTX `.param`
/// declarations lay them out: `ParamBuilder::new().ptr(a).u32(n).f32(x).finish()`.
#[derive(Clone, Debug, Default)]
pub struct ParamBuilder {
    bytes: Vec<u8>,
}

impl ParamBuilder {
    /// An empty parameter list.
    pub fn new() -> ParamBuilder {
        ParamBuilder::default()
    }

    /// Appends raw bytes at the given alignment (e.g. a `#[repr(C)]` struct passed by value).
    pub fn bytes(mut self, data: &[u8], align: usize) -> ParamBuilder {
        let a = align.max(1);
        let at = self.bytes.len().div_ceil(a) * a;
        self.bytes.resize(at, 0);
        self.bytes.extend_from_slice(data);
        self
    }

    /// A device pointer.
    pub fn ptr(self, p: u64) -> ParamBuilder {
        self.u64(p)
    }

    /// A `.u64` / `.s64` / `.b64`.
    pub fn u64(self, v: u64) -> ParamBuilder {
        self.bytes(&v.to_le_bytes(), 8)
    }

    /// A `.u32` / `.b32`.
    pub fn u32(self, v: u32) -> ParamBuilder {
        self.bytes(&v.to_le_bytes(), 4)
    }

    /// A `.s32`.
    pub fn i32(self, v: i32) -> ParamBuilder {
        self.bytes(&v.to_le_bytes(), 4)
    }

    /// A `.f32`.
    pub fn f32(self, v: f32) -> ParamBuilder {
        self.bytes(&v.to_le_bytes(), 4)
    }

    /// A `.f64`.
    pub fn f64(self, v: f64) -> ParamBuilder {
        self.bytes(&v.to_le_bytes(), 8)
    }

    /// The parameter bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}
