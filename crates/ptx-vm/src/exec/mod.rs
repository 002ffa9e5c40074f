//! The interpreter: one thread block at a time, warp by warp.
//!
//! Each thread has its own program counter (Volta's independent thread scheduling, PTX ISA 9.0
//! §2.2.3 / "Independent Thread Scheduling"), but a warp executes one instruction at a time for
//! the lanes that share the lowest pc among its runnable lanes; lanes that diverged reconverge
//! as soon as their pcs meet. A converged warp therefore runs one decoded instruction for 32
//! lanes per step. Warp collectives wait until every lane of their member mask has arrived at
//! the same instruction; `bar.sync` waits for the block's non-exited threads. When no warp of a block can
//! move, the launch fails with a deadlock error instead of hanging.

use crate::counters::{self as ctr, Counters};
use crate::error::{Location, VmError};
use crate::ir::*;
use crate::lower::INT_OUT;
use crate::memory::*;
use crate::num::{ftz32, sat32, sat64};
use crate::sanitizer::{AccessKind, BlockShadow, Finding, FindingKind, Place, SanitizerReport};
use crate::semantics;

mod arith;
mod async_copy;
mod atomic;
mod barrier;
mod control;
mod definedness;
mod instrument;
mod memory;
mod system;
mod tensor;
mod tma;
mod warp;
mod warpgroup;
mod wgmma;

use control::Flow;
use memory::{eff, generic, shared_addr, space_name};

const FULL: u32 = u32::MAX;
/// Instructions a warp runs before the block scheduler moves to the next warp (so that warps
/// spinning on shared-memory flags let their producers run).
const WARP_SLICE: u64 = 1 << 14;
/// Backward branches a group may take while other lanes of its warp wait further ahead, before
/// those lanes get a turn.
const STARVE_LIMIT: u32 = 256;
/// Instructions of such a turn at most.
const ESCAPE_STEPS: u32 = 4096;

/// The byte every block's shared memory starts as. On a GPU shared memory holds whatever the
/// previous block left there, so a kernel that reads it before writing it must not see zeros:
/// 0xff bytes read as NaN in every float format (f64, f32, f16, bf16) and as all-ones integers
/// (`u32::MAX`, -1), which makes such a read show in the results.
pub(crate) const SMEM_POISON: u8 = 0xff;

/// Everything a block needs from the launch, shared by all worker threads.
pub(crate) struct LaunchCtx<'a> {
    pub kernel: &'a Kernel,
    pub locs: &'a [String],
    pub const_bank: &'a [u8],
    pub global: &'a Global,
    pub params: &'a [u8],
    pub global_vars: &'a [u64],
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dyn_smem: u32,
    /// Warp instructions one block may execute before the launch fails as a runaway loop.
    pub block_instruction_limit: u64,
    /// Count per-class instructions, memory transactions and first-touch bytes.
    pub count: bool,
    /// Run racecheck and initcheck (implies `count`).
    pub sanitize: bool,
    /// The modelled architecture (`%nsmid`, `%smid`).
    pub arch: crate::machine::Arch,
    /// The launch's `%gridid`.
    pub grid_id: u64,
    /// Track definedness through registers (implies `sanitize`; see `definedness`).
    pub definedness: bool,
    /// The device heap, for kernels that call `malloc`.
    pub heap: Option<&'a DeviceHeap>,
}

/// The device heap: one global allocation handed out by a bump pointer. `free` gives nothing back
/// (a launch's allocations stay valid, as CUDA's do until freed), and `malloc` returns null once
/// the heap is exhausted, as CUDA's does; the size is CUDA's default `cudaLimitMallocHeapSize`.
pub(crate) struct DeviceHeap {
    pub base: u64,
    pub size: u64,
    pub next: std::sync::atomic::AtomicU64,
}

impl DeviceHeap {
    /// CUDA's default heap size, 8 MiB.
    pub const DEFAULT_BYTES: usize = 8 << 20;

    /// `malloc(n)`: a 16-byte-aligned block, or 0 when it does not fit (or `n` is 0).
    pub fn malloc(&self, n: u64) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let n = n.div_ceil(16).saturating_mul(16);
        if n == 0 {
            return 0;
        }
        match self.next.fetch_update(Relaxed, Relaxed, |o| o.checked_add(n).filter(|&e| e <= self.size)) {
            Ok(off) => self.base + off,
            Err(_) => 0,
        }
    }
}

/// A fault inside a warp, before the block and thread are attached.
struct Fault {
    pc: u32,
    lane: Option<u32>,
    msg: String,
}

type Res<T> = std::result::Result<T, Fault>;

fn fault(pc: u32, lane: Option<u32>, msg: impl Into<String>) -> Fault {
    Fault { pc, lane, msg: msg.into() }
}

struct Warp {
    /// Index of the warp in its block.
    id: u32,
    regs: Vec<Lanes>,
    pc: [u32; 32],
    /// Lanes that exist (the last warp of a block may be partial).
    valid: u32,
    exited: u32,
    /// Lanes waiting at a warp collective (their pc is the collective).
    wait_coll: u32,
    /// Lanes waiting at a barrier (their pc is the barrier).
    wait_bar: u32,
    bar_id: [u8; 32],
    bar_gen: [u32; 32],
    stack: Vec<Vec<u32>>,
    local: Vec<u8>,
    fparam: Vec<u8>,
    clock: u64,
    committed: [u32; 32],
    /// Backward branches taken by a trailing group while other lanes waited ahead.
    starve: u32,
    /// The last `mbarrier.test_wait`/`try_wait` of the warp that returned false and has not been
    /// followed by one that returned true: (pc, object, phase parity waited for), for the
    /// message of a spin loop that never ends.
    mbar_poll: Option<(u32, u64, u64)>,
    /// Definedness tracking: per register, the lanes whose value is undefined (empty when off).
    undef: Vec<u32>,
    /// Definedness tracking: per register, the instruction (pc + 1; 0: none) that first read the
    /// uninitialised memory its undefined value comes from, for reports.
    undef_from: Vec<u32>,
    /// Definedness tracking: whether any register may hold an undefined value. Until one does,
    /// only instructions that read memory can change a shadow, and the rest skip tracking.
    undef_any: bool,
    /// The `setmaxnreg` instructions the warp executed, in order: (pc, register count).
    maxnreg: Vec<(u32, u16)>,
    /// `wgmma.mma_async` results not yet retired by `wgmma.wait_group`, in issue order, and the
    /// id the next `wgmma.commit_group` gives its group.
    wgmma: Vec<wgmma::Pending>,
    wgmma_next_group: u32,
    /// Sanitizer: whether a pending `mma_async` has registers to watch (the one test each
    /// instrumented instruction pays for the check of writes to them).
    wgmma_watch: bool,
}

#[derive(Clone, Copy, Default)]
struct Barrier {
    arrived: u32,
    expected: u32,
    gen: u32,
    acc_popc: u32,
    acc_and: bool,
    acc_or: bool,
    result_popc: u32,
    result_and: bool,
    result_or: bool,
    /// The instruction of the first arrival of this round.
    pc: u32,
    /// Warps that arrived in this round (for racecheck's happens-before).
    warps: u32,
    /// A CTA-wide barrier (no thread count): it waits for the block's non-exited threads.
    all: bool,
    /// Lanes of each warp that arrived in this round, so that a lane which arrives (`bar.arrive`)
    /// and then exits is not counted twice.
    lanes: [u32; 32],
}

/// Reusable per-worker storage.
#[derive(Default)]
pub(crate) struct Workspace {
    warps: Vec<Warp>,
    smem: Vec<u8>,
    /// Racecheck / initcheck shadow of shared memory, with the (bytes, warps) it was made for.
    shadow: Option<(usize, usize, BlockShadow)>,
}

/// Counters of one block.
#[derive(Default, Clone, Copy)]
pub(crate) struct Counts {
    pub thread_instructions: u64,
    pub warp_instructions: u64,
}

/// What one block produced besides its memory effects.
#[derive(Default)]
pub(crate) struct BlockOut {
    pub counts: Counts,
    /// Exact counters, when the launch counts.
    pub counters: Counters,
    /// Sanitizer findings, when the launch sanitises.
    pub report: SanitizerReport,
    /// Device `printf` output, in the order the block produced it.
    pub printf: String,
    /// Bytes of `printf` output beyond the per-launch cap.
    pub printf_dropped: u64,
}

struct Block<'a, 'b> {
    ctx: &'a LaunchCtx<'b>,
    ctaid: [u32; 3],
    smem: &'a mut Vec<u8>,
    bars: [Barrier; 16],
    nthreads: u32,
    /// Exited lanes of each warp, and how many threads that is.
    exited: [u32; 32],
    n_exited: u32,
    counts: Counts,
    /// Index of the global allocation the last access hit.
    gcache: std::cell::Cell<usize>,
    /// Whether counters (and maybe the sanitizer) are on: the one test the fast path pays.
    instrument: bool,
    counters: Counters,
    report: SanitizerReport,
    /// Shared-memory shadow, when the sanitizer is on.
    shadow: Option<&'a mut BlockShadow>,
    /// Linear block index (the global write-conflict shadow records writers by it).
    block_index: u32,
    /// Scratch for one warp instruction's (lane, address) pairs.
    scratch: Vec<(u32, u64)>,
    /// Racecheck: per mbarrier object (shared address), the releases of its current and its
    /// completed phases.
    mbar_sync: Vec<barrier::MbarSync>,
    /// Changes of any mbarrier object so far, and their number at the last time-out of the
    /// suspended `try_wait`s (see `time_out_mbarrier_waits`).
    mbar_epoch: u64,
    mbar_timeout_epoch: u64,
    /// Racecheck: the shared destinations of `cp.async.bulk` copies whose completion not every warp
    /// has observed.
    bulk_inflight: Vec<async_copy::BulkInflight>,
    /// Sanitizer: the shared bytes each pending `wgmma.mma_async` reads, until its `wait_group`.
    wgmma_reads: Vec<wgmma::PendingReads>,
    /// A number for each `mma_async` issued in the block (ties its reads to its pending result).
    wgmma_seq: u32,
    /// Device `printf` output so far, and the bytes dropped past the cap.
    printf: String,
    printf_dropped: u64,
    /// Racecheck: the lanes of the current store whose shared-memory bytes it changed (a lane that
    /// stores what the bytes already held makes a write-after-write race a warning).
    st_changed: u32,
    /// Definedness: per element of the current store, the lanes storing undefined data to shared
    /// memory (their bytes become undefined after the store's bookkeeping).
    def_store_undef: [u32; 4],
}

/// A block's fault, with what the block counted and found up to it.
pub(crate) type BlockFailure = Box<(VmError, BlockOut)>;

/// Runs block `ctaid` to completion.
pub(crate) fn run_block(ctx: &LaunchCtx, ctaid: [u32; 3], ws: &mut Workspace) -> Result<BlockOut, BlockFailure> {
    let k = ctx.kernel;
    let nthreads = ctx.block[0] * ctx.block[1] * ctx.block[2];
    let nwarps = nthreads.div_ceil(32) as usize;
    let smem_size = k.static_smem.div_ceil(k.dyn_smem_align) * k.dyn_smem_align + ctx.dyn_smem as usize;
    ws.smem.clear();
    ws.smem.resize(smem_size, SMEM_POISON);
    ws.warps.truncate(nwarps);
    while ws.warps.len() < nwarps {
        ws.warps.push(Warp {
            id: ws.warps.len() as u32,
            regs: Vec::new(),
            pc: [0; 32],
            valid: 0,
            exited: 0,
            wait_coll: 0,
            wait_bar: 0,
            bar_id: [0; 32],
            bar_gen: [0; 32],
            stack: vec![Vec::new(); 32],
            local: Vec::new(),
            fparam: Vec::new(),
            clock: 0,
            committed: [0; 32],
            starve: 0,
            mbar_poll: None,
            undef: Vec::new(),
            undef_from: Vec::new(),
            undef_any: false,
            maxnreg: Vec::new(),
            wgmma: Vec::new(),
            wgmma_next_group: 0,
            wgmma_watch: false,
        });
    }
    for (w, warp) in ws.warps.iter_mut().enumerate() {
        init_warp(ctx, ctaid, w as u32, nthreads, smem_size, warp);
    }
    let shadow = if ctx.sanitize {
        match &mut ws.shadow {
            Some((b, w, s)) if *b == smem_size && *w == nwarps => s.reset(),
            other => *other = Some((smem_size, nwarps, BlockShadow::new(smem_size, nwarps))),
        }
        ws.shadow.as_mut().map(|(_, _, s)| {
            s.set_report_uninitialized(!ctx.definedness);
            s
        })
    } else {
        None
    };
    let [gx, gy, _] = ctx.grid;
    let mut blk = Block {
        ctx,
        ctaid,
        smem: &mut ws.smem,
        bars: [Barrier::default(); 16],
        nthreads,
        exited: [0; 32],
        n_exited: 0,
        counts: Counts::default(),
        gcache: std::cell::Cell::new(0),
        instrument: ctx.count || ctx.sanitize,
        counters: Counters::default(),
        report: SanitizerReport::default(),
        shadow,
        block_index: ctaid[0] + gx * (ctaid[1] + gy * ctaid[2]),
        scratch: Vec::with_capacity(32),
        mbar_sync: Vec::new(),
        mbar_epoch: 0,
        mbar_timeout_epoch: u64::MAX,
        bulk_inflight: Vec::new(),
        wgmma_reads: Vec::new(),
        wgmma_seq: 0,
        printf: String::new(),
        printf_dropped: 0,
        st_changed: 0,
        def_store_undef: [0; 4],
    };
    if blk.instrument {
        blk.counters.blocks = 1;
        blk.counters.ptx_virtual_registers = k.declared_regs;
    }
    loop {
        let mut progressed = false;
        let mut live = false;
        for w in 0..nwarps {
            let warp = &mut ws.warps[w];
            if warp.valid & !warp.exited == 0 {
                continue;
            }
            live = true;
            match blk.run_warp(warp) {
                Ok(p) => progressed |= p,
                Err(f) => {
                    let e = blk.error(w as u32, f);
                    return Err(Box::new((e, blk.into_out())));
                }
            }
        }
        if !live {
            if let Err(e) = blk.check_setmaxnreg(&ws.warps) {
                return Err(Box::new((e, blk.into_out())));
            }
            return Ok(blk.into_out());
        }
        if !progressed {
            if blk.time_out_mbarrier_waits(&mut ws.warps) {
                continue;
            }
            let e = blk.deadlock(&ws.warps);
            return Err(Box::new((e, blk.into_out())));
        }
        if blk.counts.warp_instructions > ctx.block_instruction_limit {
            let e = blk.runaway(&ws.warps);
            return Err(Box::new((e, blk.into_out())));
        }
    }
}

fn init_warp(ctx: &LaunchCtx, ctaid: [u32; 3], w: u32, nthreads: u32, smem_size: usize, warp: &mut Warp) {
    let k = ctx.kernel;
    warp.regs.clear();
    warp.regs.resize(k.nregs, [0; 32]);
    warp.undef.clear();
    warp.undef_from.clear();
    warp.undef_any = false;
    if ctx.definedness {
        warp.undef.resize(k.nregs, 0);
        warp.undef_from.resize(k.nregs, 0);
    }
    warp.pc = [0; 32];
    let first = w * 32;
    let n = (nthreads - first).min(32);
    warp.valid = if n == 32 { FULL } else { (1u32 << n) - 1 };
    warp.exited = 0;
    warp.wait_coll = 0;
    warp.wait_bar = 0;
    warp.clock = 0;
    warp.committed = [0; 32];
    warp.starve = 0;
    warp.mbar_poll = None;
    warp.maxnreg.clear();
    warp.wgmma.clear();
    warp.wgmma_next_group = 0;
    warp.wgmma_watch = false;
    for s in warp.stack.iter_mut() {
        s.clear();
    }
    warp.local.clear();
    warp.local.resize(k.local_size * 32, 0);
    warp.fparam.clear();
    warp.fparam.resize(k.fparam_size * 32, 0);
    let [bx, by, _] = ctx.block;
    let nsm = ctx.arch.sm_count();
    let linear_block = ctaid[0] as u64 + ctx.grid[0] as u64 * (ctaid[1] as u64 + ctx.grid[1] as u64 * ctaid[2] as u64);
    let dyn_base = (k.static_smem.div_ceil(k.dyn_smem_align) * k.dyn_smem_align) as u64;
    let tids: [[u32; 3]; 32] = std::array::from_fn(|l| {
        let t = first + l as u32;
        [t % bx, (t / bx) % by, t / (bx * by)]
    });
    for &(r, init) in &k.init {
        let lanes = &mut warp.regs[r as usize];
        let uniform = match init {
            Init::Val(v) => Some(v),
            Init::GlobalVar(i) => Some(ctx.global_vars.get(i as usize).copied().unwrap_or(0)),
            Init::DynShared => Some(dyn_base),
            Init::Special(_) => None,
        };
        if let Some(v) = uniform {
            lanes.fill(v);
            continue;
        }
        let Init::Special(s) = init else { continue };
        for (l, v) in lanes.iter_mut().enumerate() {
            *v = match s {
                Sreg::Tid(d) => tids[l][d as usize] as u64,
                Sreg::Ntid(d) => ctx.block[d as usize] as u64,
                Sreg::Ctaid(d) => ctaid[d as usize] as u64,
                Sreg::Nctaid(d) => ctx.grid[d as usize] as u64,
                Sreg::Laneid => l as u64,
                Sreg::Warpid => w as u64,
                // The most warps an SM holds on sm_80 and sm_90 (CUDA C++ Programming Guide,
                // "Compute Capabilities": 64 resident warps per SM).
                Sreg::Nwarpid => 64,
                Sreg::LanemaskEq => 1u64 << l,
                Sreg::LanemaskLt => (1u64 << l) - 1,
                Sreg::LanemaskLe => (2u64 << l) - 1,
                Sreg::LanemaskGt => (!((2u64 << l) - 1)) & 0xffff_ffff,
                Sreg::LanemaskGe => (!((1u64 << l) - 1)) & 0xffff_ffff,
                // Blocks spread over the SMs round-robin, as a GPU's first wave does.
                Sreg::Smid => linear_block % nsm as u64,
                Sreg::Nsmid => nsm as u64,
                Sreg::ClusterId(d) => ctaid[d as usize] as u64,
                Sreg::NclusterId(d) => ctx.grid[d as usize] as u64,
                Sreg::DynSmemSize => ctx.dyn_smem as u64,
                Sreg::TotalSmemSize => smem_size as u64,
                Sreg::GridId => ctx.grid_id,
            };
        }
    }
}

#[inline(always)]
/// Adds warp `w`'s lanes `lanes` doing `what` to the group of warps doing the same with the same
/// lanes.
fn add_group(groups: &mut Vec<(String, u32, Vec<u32>)>, what: String, lanes: u32, w: u32) {
    match groups.iter_mut().find(|g| g.1 == lanes && g.0 == what) {
        Some(g) => g.2.push(w),
        None => groups.push((what, lanes, vec![w])),
    }
}

/// "warp 3" or "warps 0-3,5,7-9" for ascending warp indices.
fn warp_list(ws: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        let mut j = i;
        while j + 1 < ws.len() && ws[j + 1] == ws[j] + 1 {
            j += 1;
        }
        parts.push(if j == i { ws[i].to_string() } else { format!("{}-{}", ws[i], ws[j]) });
        i = j + 1;
    }
    format!("{} {}", if ws.len() == 1 { "warp" } else { "warps" }, parts.join(","))
}

fn lanes_of(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if m == 0 {
            None
        } else {
            let l = m.trailing_zeros();
            m &= m - 1;
            Some(l as usize)
        }
    })
}

#[inline(always)]
fn blend(d: &mut Lanes, v: &Lanes, m: u32) {
    if m == FULL {
        *d = *v;
    } else {
        for l in lanes_of(m) {
            d[l] = v[l];
        }
    }
}

#[inline(always)]
fn pred_mask(p: &Lanes) -> u32 {
    let mut m = 0u32;
    for (l, &v) in p.iter().enumerate() {
        m |= ((v & 1) as u32) << l;
    }
    m
}

fn rd(b: &[u8], off: usize, size: u8) -> Option<u64> {
    let s = b.get(off..off + size as usize)?;
    let mut x = [0u8; 8];
    x[..size as usize].copy_from_slice(s);
    Some(u64::from_le_bytes(x))
}

fn wr(b: &mut [u8], off: usize, size: u8, v: u64) -> bool {
    match b.get_mut(off..off + size as usize) {
        Some(s) => {
            s.copy_from_slice(&v.to_le_bytes()[..size as usize]);
            true
        }
        None => false,
    }
}

impl Block<'_, '_> {
    fn into_out(self) -> BlockOut {
        BlockOut {
            counts: self.counts,
            counters: self.counters,
            report: self.report,
            printf: self.printf,
            printf_dropped: self.printf_dropped,
        }
    }

    fn error(&self, w: u32, f: Fault) -> VmError {
        let k = self.ctx.kernel;
        let (line, loc, name) = match k.code.get(f.pc as usize) {
            Some(i) => (i.line, i.loc, k.names.get(i.name as usize).cloned().unwrap_or_default()),
            None => (0, 0, String::new()),
        };
        let thread = f.lane.map(|l| self.tid(w * 32 + l));
        VmError::Runtime {
            kernel: k.name.clone(),
            block: self.ctaid,
            thread,
            at: Location {
                ptx_line: line,
                source: if loc == 0 { None } else { self.ctx.locs.get(loc as usize).cloned() },
            },
            message: if name.is_empty() { f.msg } else { format!("`{name}`: {}", f.msg) },
        }
    }

    fn tid(&self, t: u32) -> [u32; 3] {
        let [bx, by, _] = self.ctx.block;
        [t % bx, (t / bx) % by, t / (bx * by)]
    }

    fn where_(&self, pc: u32) -> String {
        let k = self.ctx.kernel;
        match k.code.get(pc as usize) {
            Some(i) => {
                let name = k.names.get(i.name as usize).map(|s| s.as_str()).unwrap_or("?");
                let src = if i.loc == 0 {
                    String::new()
                } else {
                    format!(" ({})", self.ctx.locs.get(i.loc as usize).map(|s| s.as_str()).unwrap_or("?"))
                };
                format!("`{name}` at PTX line {}{src}", i.line)
            }
            None => format!("pc {pc}"),
        }
    }

    fn deadlock(&self, warps: &[Warp]) -> VmError {
        // Warps stuck at the same place with the same lanes share one line: a 32-warp block
        // that misses one barrier reads as one or two lines, not 32.
        let mut groups: Vec<(String, u32, Vec<u32>)> = Vec::new();
        let mut waiting = 0;
        for (w, warp) in warps.iter().enumerate() {
            let live = warp.valid & !warp.exited;
            if live != 0 {
                waiting += 1;
            }
            let mut here: Vec<(u32, u32, bool)> = Vec::new();
            for l in lanes_of(live) {
                let bar = warp.wait_bar >> l & 1 == 1;
                match here.iter_mut().find(|g| g.0 == warp.pc[l] && g.2 == bar) {
                    Some(g) => g.1 |= 1 << l,
                    None => here.push((warp.pc[l], 1 << l, bar)),
                }
            }
            for (pc, lanes, bar) in here {
                let what = if bar && warp.bar_id[lanes.trailing_zeros() as usize] == barrier::MBAR_WAIT {
                    format!(
                        "{}: {}",
                        self.describe_mbarrier_wait(warp, lanes.trailing_zeros() as usize),
                        self.where_(pc)
                    )
                } else if bar {
                    let id = warp.bar_id[lanes.trailing_zeros() as usize] as usize;
                    let b = &self.bars[id];
                    let count = if b.all {
                        format!("{} of the block's {} non-exited threads", b.arrived, self.nthreads - self.n_exited)
                    } else {
                        format!("{} of {} threads", self.barrier_arrivals(id), b.expected)
                    };
                    format!("wait at barrier {id} ({count} arrived): {}", self.where_(pc))
                } else {
                    format!("wait at a warp collective: {}", self.where_(pc))
                };
                add_group(&mut groups, what, lanes, w as u32);
            }
            let gone = warp.exited & warp.valid;
            if gone != 0 {
                add_group(&mut groups, "exited".to_string(), gone, w as u32);
            }
        }
        let mut lines = vec![format!(
            "none of its {waiting} unfinished warps can move ({} of {} threads exited)",
            self.n_exited, self.nthreads
        )];
        lines
            .extend(groups.iter().map(|(what, lanes, ws)| format!("  {} (lanes {lanes:#010x}) {what}", warp_list(ws))));
        VmError::Deadlock { kernel: self.ctx.kernel.name.clone(), block: self.ctaid, details: lines.join("\n") }
    }

    fn runaway(&self, warps: &[Warp]) -> VmError {
        let mut groups: Vec<(String, u32, Vec<u32>)> = Vec::new();
        let mut first_pc = None;
        for (w, warp) in warps.iter().enumerate() {
            let live = warp.valid & !warp.exited;
            let mut here: Vec<(u32, u32)> = Vec::new();
            for l in lanes_of(live) {
                match here.iter_mut().find(|g| g.0 == warp.pc[l]) {
                    Some(g) => g.1 |= 1 << l,
                    None => here.push((warp.pc[l], 1 << l)),
                }
            }
            for (pc, lanes) in here {
                first_pc.get_or_insert(pc);
                add_group(&mut groups, format!("at {}", self.where_(pc)), lanes, w as u32);
            }
            // A spin loop on an mbarrier: name the object and what its phase lacks.
            if let Some((pc, a, waited)) = warp.mbar_poll.filter(|_| live != 0) {
                let what = format!(
                    "polling, with {} which last returned false, the {}",
                    self.where_(pc),
                    self.describe_mbarrier(a, waited)
                );
                add_group(&mut groups, what, live, w as u32);
            }
        }
        let mut lines = vec![format!(
            "the block ran more than {} warp instructions without finishing (an endless loop, or a \
             spin-wait nothing will satisfy); its unfinished warps are:",
            self.ctx.block_instruction_limit
        )];
        lines
            .extend(groups.iter().map(|(what, lanes, ws)| format!("  {} (lanes {lanes:#010x}) {what}", warp_list(ws))));
        VmError::Runtime {
            kernel: self.ctx.kernel.name.clone(),
            block: self.ctaid,
            thread: None,
            at: first_pc.map(|pc| self.location(pc)).unwrap_or_default(),
            message: lines.join("\n"),
        }
    }

    /// Runs a warp until all its lanes wait or exit, or its time slice ends. Returns whether
    /// anything happened.
    fn run_warp(&mut self, warp: &mut Warp) -> Res<bool> {
        let code = &self.ctx.kernel.code[..];
        let mut progressed = self.release_barriers(warp);
        let mut budget = WARP_SLICE;
        'select: loop {
            let runnable = warp.valid & !warp.exited & !warp.wait_coll & !warp.wait_bar;
            if runnable == 0 {
                return Ok(progressed);
            }
            if budget == 0 {
                return Ok(true);
            }
            let mut pc = u32::MAX;
            for l in lanes_of(runnable) {
                pc = pc.min(warp.pc[l]);
            }
            let mut mask = 0u32;
            let mut other_min = u32::MAX;
            for l in lanes_of(runnable) {
                if warp.pc[l] == pc {
                    mask |= 1 << l;
                } else {
                    other_min = other_min.min(warp.pc[l]);
                }
            }
            // Lowest-pc-first starves lanes ahead of a loop that waits for them (a spin lock
            // inside a warp); Volta's scheduler guarantees them progress, so after a while the
            // group furthest ahead runs alone until it loops back or its turn ends.
            let mut escape_left = 0u32;
            if warp.starve >= STARVE_LIMIT && other_min != u32::MAX {
                warp.starve = 0;
                pc = 0;
                for l in lanes_of(runnable) {
                    pc = pc.max(warp.pc[l]);
                }
                mask = 0;
                for l in lanes_of(runnable) {
                    if warp.pc[l] == pc {
                        mask |= 1 << l;
                    }
                }
                other_min = u32::MAX;
                escape_left = ESCAPE_STEPS;
            }
            let escape = escape_left > 0;
            progressed = true;
            // The group runs while it is strictly behind every other runnable lane.
            loop {
                if pc >= other_min || budget == 0 || (escape && escape_left == 0) {
                    for l in lanes_of(mask) {
                        warp.pc[l] = pc;
                    }
                    continue 'select;
                }
                let Some(ins) = code.get(pc as usize) else {
                    return Err(fault(pc, None, "ran off the end of the code"));
                };
                budget -= 1;
                escape_left = escape_left.saturating_sub(1);
                warp.clock += 1;
                self.counts.warp_instructions += 1;
                self.counts.thread_instructions += mask.count_ones() as u64;
                let exec = if ins.guard == NO_REG {
                    mask
                } else {
                    let p = pred_mask(&warp.regs[ins.guard as usize]);
                    mask & if ins.guard_neg { !p } else { p }
                };
                let pending = if self.instrument {
                    if warp.wgmma_watch {
                        self.check_wgmma_regs(warp, pc, ins, exec);
                    }
                    if self.ctx.definedness {
                        self.def_pre(warp, pc, ins, exec, mask);
                    }
                    self.before(warp, ins, exec)
                } else {
                    None
                };
                match &ins.op {
                    Op::Un { .. } => arith::exec_un(warp, exec, &ins.op),
                    Op::Bin { .. } => arith::exec_bin(warp, exec, &ins.op),
                    Op::Tern { .. } => arith::exec_tern(warp, exec, &ins.op),
                    Op::Quad { .. } => arith::exec_quad(warp, exec, &ins.op),
                    Op::Setp { .. } => arith::exec_setp(warp, exec, &ins.op),
                    Op::Set { .. } => arith::exec_set(warp, exec, &ins.op),
                    Op::Pack { .. } => arith::exec_pack(warp, exec, &ins.op),
                    Op::Unpack { .. } => arith::exec_unpack(warp, exec, &ins.op),
                    Op::Carry { .. } => arith::exec_carry(warp, exec, &ins.op),
                    Op::Ld { space: Space::Shared, size: 4, n: 1, .. } => {
                        self.exec_ld_shared_u32(warp, pc, exec, &ins.op)?
                    }
                    Op::Ld { .. } => self.exec_ld(warp, pc, exec, &ins.op)?,
                    Op::St { .. } => self.exec_st(warp, pc, exec, &ins.op)?,
                    Op::Atom { .. } => self.exec_atom(warp, pc, exec, &ins.op)?,
                    Op::Bra { target } => {
                        if exec == mask {
                            if *target <= pc {
                                if escape {
                                    escape_left = 0;
                                } else if other_min != u32::MAX {
                                    warp.starve += 1;
                                }
                            }
                            pc = *target;
                        } else if exec == 0 {
                            pc += 1;
                        } else {
                            for l in lanes_of(mask) {
                                warp.pc[l] = if exec >> l & 1 == 1 { *target } else { pc + 1 };
                            }
                            continue 'select;
                        }
                        continue;
                    }
                    Op::Call { .. } => match self.exec_call(warp, pc, exec, mask, &ins.op)? {
                        Flow::Goto(next) => {
                            pc = next;
                            continue;
                        }
                        Flow::Select => continue 'select,
                    },
                    Op::CallIndirect { .. } => match self.exec_call_indirect(warp, pc, exec, mask, &ins.op)? {
                        Flow::Goto(next) => {
                            pc = next;
                            continue;
                        }
                        Flow::Select => continue 'select,
                    },
                    Op::Malloc { .. } => self.exec_malloc(warp, exec, &ins.op),
                    Op::Ret => match self.exec_ret(warp, pc, exec, mask)? {
                        Flow::Goto(next) => {
                            pc = next;
                            continue;
                        }
                        Flow::Select => continue 'select,
                    },
                    Op::Exit => {
                        warp.exited |= exec;
                        self.lanes_exited(warp.id, warp.exited);
                        mask &= !exec;
                        if mask == 0 {
                            continue 'select;
                        }
                    }
                    Op::AssertFail { .. } => self.exec_assert_fail(warp, pc, exec, &ins.op)?,
                    Op::Trap => self.exec_trap(pc, exec, &ins.op)?,
                    Op::Nop => {}
                    Op::Clock { .. } => system::exec_clock(warp, exec, &ins.op),
                    Op::Printf { .. } => self.exec_printf(warp, pc, exec, &ins.op)?,
                    Op::Unsupported { .. } => self.exec_unsupported(pc, exec, &ins.op)?,
                    Op::Activemask { .. } => warp::exec_activemask(warp, exec, mask, &ins.op),
                    Op::Bar { .. } => {
                        if exec == 0 {
                            pc += 1;
                            continue;
                        }
                        if self.bar(warp, pc, exec, mask, ins)? {
                            continue 'select;
                        }
                    }
                    Op::ShflSync { .. }
                    | Op::VoteSync { .. }
                    | Op::MatchSync { .. }
                    | Op::ReduxSync { .. }
                    | Op::BarWarp { .. }
                    | Op::Mma { .. }
                    | Op::Ldmatrix { .. }
                    | Op::Stmatrix { .. }
                    | Op::ElectSync { .. } => match self.collective(warp, pc, exec, mask, ins)? {
                        Some(m) => mask = m,
                        None => continue 'select,
                    },
                    Op::CpAsync { .. } => self.exec_cp_async(warp, pc, exec, &ins.op)?,
                    Op::BulkCopy { .. } => self.exec_bulk_copy(warp, pc, exec, &ins.op)?,
                    Op::TensorCopy(_) => self.exec_tensor_copy(warp, pc, exec, &ins.op)?,
                    Op::Wgmma(_) => {
                        // exec_wgmma counts its FLOPs into mma_flops; they are wgmma's too.
                        let before = self.counters.mma_flops;
                        self.exec_wgmma(warp, pc, exec, &ins.op)?;
                        self.counters.wgmma_flops += self.counters.mma_flops - before;
                    }
                    Op::WgmmaCommit => wgmma::exec_wgmma_commit(warp, exec),
                    Op::WgmmaWait { n } => self.exec_wgmma_wait(warp, exec, *n),
                    Op::Mbarrier { .. } => {
                        let suspended = self.exec_mbarrier(warp, pc, exec, &ins.op)?;
                        if suspended != 0 {
                            if let Some(addrs) = pending {
                                self.after(warp, pc, ins, exec, &addrs);
                            }
                            for l in lanes_of(mask) {
                                warp.pc[l] = pc + (suspended >> l & 1 == 0) as u32;
                            }
                            warp.wait_bar |= suspended;
                            continue 'select;
                        }
                    }
                    Op::Slow { .. } => arith::exec_slow(warp, exec, &ins.op),
                    Op::CpCommit => async_copy::exec_cp_commit(warp, exec, &ins.op),
                    Op::CpWait => {}
                    Op::Setmaxnreg { .. } => self.exec_setmaxnreg(warp, pc, exec, mask, &ins.op)?,
                }
                if let Some(addrs) = pending {
                    self.after(warp, pc, ins, exec, &addrs);
                }
                pc += 1;
            }
        }
    }
}

impl Block<'_, '_> {}
