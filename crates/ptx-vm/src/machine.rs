//! The public face: modules, the machine that owns device memory, launches.

use crate::counters::Counters;
use crate::error::{Result, VmError};
use crate::exec::{run_block, BlockFailure, BlockOut, LaunchCtx, Workspace};
use crate::lower::{lower_module, ModuleIr};
use crate::memory::Global;
pub use crate::params::ParamBuilder;
use crate::params::ParamInfo;
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
    /// SMs of the device the architecture stands for (`%nsmid`): 108 for the A100 (sm_80), 132 for
    /// the H100 SXM5 (sm_90).
    pub fn sm_count(self) -> u32 {
        match self {
            Arch::Sm80 => 108,
            Arch::Sm90 => 132,
        }
    }

    /// Most shared memory (static + dynamic) one block may use, in bytes.
    pub fn max_shared_per_block(self) -> usize {
        match self {
            Arch::Sm80 => 163 * 1024,
            Arch::Sm90 => 227 * 1024,
        }
    }
}

/// The byte [`Machine::fill_poison`] writes: 0xFF makes every f32, f16 and bf16 a NaN and every
/// integer -1 / its maximum, so an element a kernel did not write cannot pass a comparison.
pub const POISON_BYTE: u8 = 0xFF;

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

    /// The parameters a kernel declares, in order, with the offset, size, alignment and type
    /// class of each; None if there is no such kernel.
    ///
    /// ```
    /// use ptx_vm::{Module, ParamClass};
    /// let module = Module::parse(
    ///     ".version 9.0\n.target sm_80\n.address_size 64\n\
    ///      .visible .entry k(.param .u64 out, .param .f32 x, .param .align 8 .b8 s[24]) { ret; }",
    /// )?;
    /// let p = module.params("k").unwrap_or_default();
    /// let layout: Vec<(&str, usize, usize, String)> =
    ///     p.iter().map(|p| (p.name.as_str(), p.offset, p.size, p.type_name())).collect();
    /// assert_eq!(
    ///     layout,
    ///     [("out", 0, 8, ".u64".into()), ("x", 8, 4, ".f32".into()), ("s", 16, 24, ".align 8 .b8[24]".into())]
    /// );
    /// assert_eq!((p[1].class, p[2].array_len), (ParamClass::Float, Some(24)));
    /// # Ok::<(), ptx_vm::VmError>(())
    /// ```
    pub fn params(&self, kernel: &str) -> Option<&[ParamInfo]> {
        self.ir.kernels.iter().find(|k| k.name == kernel).map(|k| k.params.as_slice())
    }

    /// Checks a builder's list against a kernel's declared parameters: each value must sit at its
    /// parameter's offset with its size and a compatible type class (see [`crate::params`] for the
    /// rules). The error is a [`VmError::Launch`] naming the first parameter that disagrees.
    pub fn check_params(&self, kernel: &str, params: &ParamBuilder) -> Result<()> {
        let k = self
            .ir
            .kernels
            .iter()
            .find(|k| k.name == kernel)
            .ok_or_else(|| VmError::Undefined { name: format!("kernel {kernel}"), line: 0 })?;
        crate::params::check(&k.params, params.pushed(), params.as_bytes().len())
            .map_err(|message| VmError::Launch { kernel: kernel.to_string(), message })
    }

    /// Bytes of static shared memory a kernel declares, or None if there is no such kernel.
    pub fn static_shared_size(&self, kernel: &str) -> Option<usize> {
        self.ir.kernels.iter().find(|k| k.name == kernel).map(|k| k.static_smem)
    }

    /// What a kernel can reach that the VM does not implement: instructions and external calls in
    /// its body or in the `.func`s it calls, directly or not (and recursion, which the VM's static
    /// call frames cannot model), each as the [`VmError::Unsupported`] a launch of the kernel
    /// fails with (naming it, its PTX line and its `.loc` source line). Empty when the kernel can
    /// run; None if there is no such kernel. Other kernels of the module are not affected.
    pub fn unsupported(&self, kernel: &str) -> Option<Vec<VmError>> {
        let k = self.ir.kernels.iter().find(|k| k.name == kernel)?;
        Some(k.unsupported.iter().map(|u| self.unsupported_error(&k.name, u)).collect())
    }

    fn unsupported_error(&self, kernel: &str, (what, line, loc): &(String, u32, u32)) -> VmError {
        VmError::Unsupported {
            what: format!("{what} (reached by kernel `{kernel}`)"),
            line: *line,
            source: if *loc == 0 { None } else { self.ir.locs.get(*loc as usize).cloned() },
        }
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
    /// What device-side `printf` calls wrote, formatted as the host C library's `printf` does
    /// (see [`semantics::printf`](crate::semantics::printf)). The order is deterministic: block by
    /// block in linear block index order, and within a block in the order the VM ran the calls
    /// (warp instruction by warp instruction, lanes in increasing order). At most
    /// [`PRINTF_BUFFER_BYTES`] are kept, like CUDA's default 1 MiB printf FIFO.
    pub printf: String,
    /// Bytes of `printf` output dropped because the launch's output exceeded [`PRINTF_BUFFER_BYTES`].
    pub printf_dropped: u64,
}

/// The most `printf` output one launch keeps, in bytes: CUDA's default `cudaLimitPrintfFifoSize`
/// (1 MiB). CUDA's FIFO holds unformatted records and the CUDA C++ Programming Guide describes it as
/// circular, so a GPU loses the oldest output; the VM keeps the first 1 MiB of formatted text
/// instead (the first lines are the ones a failing test needs) and counts the rest in
/// [`LaunchReport::printf_dropped`].
pub const PRINTF_BUFFER_BYTES: usize = 1 << 20;

impl LaunchReport {
    /// For tests: `Ok` when the sanitizer ran and found no error, else the report's text.
    /// Warnings (see [`crate::Severity`]) do not fail it; [`LaunchReport::assert_clean_strict`]
    /// fails on them too. Either way they are listed in the report's text.
    pub fn assert_clean(&self) -> std::result::Result<(), String> {
        match &self.sanitizer {
            None => Err("the sanitizer was off for this launch".to_string()),
            Some(r) if !r.has_errors() => Ok(()),
            Some(r) => Err(r.to_string()),
        }
    }

    /// [`LaunchReport::assert_clean`] with warnings treated as errors: `Ok` only when the
    /// sanitizer ran and found nothing at all.
    pub fn assert_clean_strict(&self) -> std::result::Result<(), String> {
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
    definedness: bool,
    count: bool,
    /// Launches so far (`%gridid` is this count, from 1).
    launches: u64,
    last_report: Option<LaunchReport>,
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
            definedness: true,
            count: false,
            launches: 0,
            last_report: None,
            heap: None,
        }
    }

    /// Turns racecheck and initcheck on or off (on by default). Off, a launch runs 2.5-4x faster
    /// on the mix of real kernels of the `throughput` example (per kernel from about 1x, where
    /// arithmetic dominates, to 4x, where shared-memory accesses do; see the crate docs);
    /// out-of-bounds and misaligned accesses still fail the launch. Allocations made while it is
    /// off count as initialised when it is turned back on.
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

    /// Tracks definedness through registers (on by default; only while the sanitizer is on), as
    /// Valgrind's memcheck does: a value loaded from uninitialised memory is *undefined*, results
    /// computed from undefined values are undefined, and a finding is made only where an
    /// undefined value is stored to global memory, used as an address, decides control flow or
    /// enters a warp vote. Reading uninitialised memory and discarding the value (a masked score
    /// of a K row past the sequence's end, say) is then no finding. Off, initcheck flags every read
    /// of uninitialised memory (plain initcheck). See the crate docs for the propagation rules and
    /// the cost.
    pub fn with_definedness(mut self, on: bool) -> Machine {
        self.definedness = on;
        self
    }

    /// [`Machine::with_definedness`] on a machine in use.
    pub fn set_definedness(&mut self, on: bool) {
        self.definedness = on;
    }

    /// Whether definedness tracking is on (it runs only while the sanitizer is also on).
    pub fn definedness(&self) -> bool {
        self.definedness
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

    /// Fills `len` bytes at `ptr` with [`POISON_BYTE`] *without* marking them initialised: a kernel
    /// that reads them before writing them is an initcheck finding (or, with
    /// [`Machine::with_definedness`], yields undefined values), while on the host they read back as
    /// the pattern. Tests poison outputs this way so that both a missed write (the pattern, a NaN
    /// in every float format) and a read before the write are caught.
    pub fn fill_poison(&mut self, ptr: u64, len: usize) -> Result<()> {
        self.fill_poison_with(ptr, POISON_BYTE, len)
    }

    /// [`Machine::fill_poison`] with a byte of the caller's choice.
    pub fn fill_poison_with(&mut self, ptr: u64, byte: u8, len: usize) -> Result<()> {
        self.global.poison(ptr, byte, len)
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

    /// [`Machine::launch`] with a parameter list whose layout is checked first against the
    /// kernel's declaration ([`Module::check_params`]): a value at the wrong offset, of the wrong
    /// size or of the wrong class fails the launch, naming the parameter, before anything runs.
    ///
    /// ```
    /// use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder, VmError};
    /// let module = Module::parse(
    ///     ".version 9.0\n.target sm_80\n.address_size 64\n\
    ///      .visible .entry k(.param .u64 out, .param .u32 n, .param .f32 x) { ret; }",
    /// )?;
    /// let mut m = Machine::new(Arch::Sm80);
    /// let out = m.alloc(64)?;
    /// let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    /// m.launch_checked(&module, "k", &cfg, &ParamBuilder::new().ptr(out).u32(8).f32(2.5))?;
    /// // Same 16 bytes, but n and x swapped: the raw launch would run, the checked one refuses.
    /// let swapped = ParamBuilder::new().ptr(out).f32(2.5).u32(8);
    /// let Err(VmError::Launch { message, .. }) = m.launch_checked(&module, "k", &cfg, &swapped) else {
    ///     panic!("a swapped list must not launch");
    /// };
    /// assert_eq!(message, "param 1 `n` (.u32 at offset 8): got an f32 at offset 8");
    /// # Ok::<(), VmError>(())
    /// ```
    pub fn launch_checked(
        &mut self,
        module: &Module,
        kernel: &str,
        cfg: &LaunchConfig,
        params: &ParamBuilder,
    ) -> Result<LaunchReport> {
        module.check_params(kernel, params)?;
        self.launch(module, kernel, cfg, params.as_bytes())
    }

    /// The report of the last launch, successful or not; None before the first launch and after
    /// a launch refused before any block ran (bad configuration or parameters).
    ///
    /// After a launch that failed while running (a fault, deadlock or runaway in block `e`, the
    /// lowest-numbered failing block), it is a partial report: the blocks before `e` in linear
    /// block order, which all ran to completion, plus block `e`'s instructions, counters and
    /// sanitizer findings up to its fault. Blocks after `e` that other host threads happened to
    /// finish are left out, so the report does not depend on the thread count; only the
    /// first-touch counters (`unique_*`, kept per allocation) may include their accesses.
    pub fn last_report(&self) -> Option<&LaunchReport> {
        self.last_report.as_ref()
    }

    /// Runs a kernel to completion. `params` are exactly the bytes of the kernel's param space
    /// (see [`ParamBuilder`]). What the launch counted and found is also kept, for a failed
    /// launch up to the fault, in [`Machine::last_report`].
    pub fn launch(&mut self, module: &Module, kernel: &str, cfg: &LaunchConfig, params: &[u8]) -> Result<LaunchReport> {
        self.last_report = None;
        let k = module
            .ir
            .kernels
            .iter()
            .find(|k| k.name == kernel)
            .ok_or_else(|| VmError::Undefined { name: format!("kernel {kernel}"), line: 0 })?;
        if let Some(u) = k.unsupported.first() {
            return Err(module.unsupported_error(kernel, u));
        }
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
        self.launches += 1;
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
            arch: self.arch,
            grid_id: self.launches,
            definedness: self.sanitize && self.definedness,
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
        let mut failed: Option<VmError> = None;
        if workers <= 1 {
            let mut ws = Workspace::default();
            for i in 0..nblocks {
                match run_block(&ctx, coord(i), &mut ws) {
                    Ok(o) => outs.push((i, o)),
                    Err(f) => {
                        let (e, partial) = *f;
                        outs.push((i, partial));
                        failed = Some(e);
                        break;
                    }
                }
            }
        } else {
            // Blocks are handed out in order; after a fault in block e, only blocks before e still
            // run, so the error reported is always that of the lowest failing block.
            let next = AtomicUsize::new(0);
            let stop_at = AtomicUsize::new(usize::MAX);
            let first_err: Mutex<Option<(usize, BlockFailure)>> = Mutex::new(None);
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
            outs = all.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Some((e_at, f)) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
                let (e, partial) = *f;
                outs.retain(|(i, _)| *i < e_at);
                outs.push((e_at, partial));
                failed = Some(e);
            }
            outs.sort_by_key(|(i, _)| *i);
        }
        let mut report = LaunchReport::default();
        let mut counters = Counters::default();
        let mut findings = SanitizerReport::default();
        for (_, o) in outs {
            report.thread_instructions += o.counts.thread_instructions;
            report.warp_instructions += o.counts.warp_instructions;
            crate::semantics::printf::append_capped(
                &mut report.printf,
                &mut report.printf_dropped,
                &o.printf,
                PRINTF_BUFFER_BYTES,
            );
            report.printf_dropped += o.printf_dropped;
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
            counters.threads_per_block = nthreads as u32;
            counters.shared_bytes_per_block = smem as u32;
            report.counters = Some(counters);
        }
        if self.sanitize {
            report.sanitizer = Some(findings);
        }
        match failed {
            Some(e) => {
                self.last_report = Some(report);
                Err(e)
            }
            None => {
                self.last_report = Some(report.clone());
                Ok(report)
            }
        }
    }
}
