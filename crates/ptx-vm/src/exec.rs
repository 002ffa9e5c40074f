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

#[path = "definedness.rs"]
mod definedness;

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
    /// Definedness tracking: per register, the lanes whose value is undefined (empty when off).
    undef: Vec<u32>,
    /// Definedness tracking: per register, the instruction (pc + 1; 0: none) that first read the
    /// uninitialised memory its undefined value comes from, for reports.
    undef_from: Vec<u32>,
    /// Definedness tracking: whether any register may hold an undefined value. Until one does,
    /// only instructions that read memory can change a shadow, and the rest skip tracking.
    undef_any: bool,
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
    /// Racecheck: per mbarrier object (shared address), the warps that arrived in its current phase.
    mbar_warps: Vec<(u64, u32)>,
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
            undef: Vec::new(),
            undef_from: Vec::new(),
            undef_any: false,
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
        mbar_warps: Vec::new(),
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
            return Ok(blk.into_out());
        }
        if !progressed {
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

#[inline(always)]
fn post(v: &mut Lanes, flags: u8) {
    if flags & NAN32 != 0 {
        for x in v.iter_mut() {
            if (*x as u32 & 0x7fff_ffff) > 0x7f80_0000 {
                *x = 0x7fff_ffff;
            }
        }
    }
    if flags & (FTZ32 | INT_OUT) == FTZ32 {
        for x in v.iter_mut() {
            *x = ftz32(*x);
        }
    }
    if flags & SAT32 != 0 {
        for x in v.iter_mut() {
            *x = sat32(*x);
        }
    }
    if flags & SAT64 != 0 {
        for x in v.iter_mut() {
            *x = sat64(*x);
        }
    }
}

#[inline(always)]
fn ftz_in(v: &Lanes) -> Lanes {
    let mut o = *v;
    for x in o.iter_mut() {
        *x = ftz32(*x);
    }
    o
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

/// Resolves a generic address to its state space and the address within it (PTX ISA 6.4.1).
#[inline(always)]
fn generic(addr: u64) -> (Space, u64) {
    if addr < SHARED_WIN {
        return (Space::Global, addr);
    }
    match addr >> WIN_BITS {
        0x71 => (Space::Shared, addr - SHARED_WIN),
        0x72 => (Space::Local, addr - LOCAL_WIN),
        0x73 => (Space::Const, addr - CONST_WIN),
        0x74 | 0x75 => (Space::Param, addr),
        _ => (Space::Global, addr),
    }
}

/// Where an out-of-bounds offset lies relative to the end of its window, for memcheck messages.
fn past_end(a: u64, len: usize) -> String {
    match a.checked_sub(len as u64) {
        Some(d) => format!(", {d} bytes past its end"),
        None => String::new(),
    }
}

fn space_name(s: Space) -> &'static str {
    match s {
        Space::Global => "global",
        Space::Shared => "shared",
        Space::Local => "local",
        Space::Const => "const",
        Space::Param => "param",
        Space::Generic => "generic",
    }
}

/// Applies an atomic operation; returns the new value (PTX ISA 9.7.13.5).
fn atom_new(op: AtomOp, ty: AtomTy, old: u64, b: u64, c: u64) -> u64 {
    use crate::num::*;
    let w32 = ty.bytes() < 8;
    let m = match ty.bytes() {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    };
    let (old, b) = (old & m, b & m);
    let r = match (op, ty) {
        (AtomOp::Add, AtomTy::F32) => f32b(f32v(old) + f32v(b)),
        (AtomOp::Add, AtomTy::F64) => f64b(f64v(old) + f64v(b)),
        (AtomOp::Add, AtomTy::F16x2 | AtomTy::Bf16x2) => {
            let bf = ty == AtomTy::Bf16x2;
            let h = |x: u64| -> f64 {
                if bf {
                    half::bf16::from_bits(x as u16).to_f64()
                } else {
                    half::f16::from_bits(x as u16).to_f64()
                }
            };
            let back = |x: f64| -> u64 {
                if bf {
                    half::bf16::from_f64(x).to_bits() as u64
                } else {
                    half::f16::from_f64(x).to_bits() as u64
                }
            };
            back(h(old) + h(b)) | (back(h(old >> 16) + h(b >> 16)) << 16)
        }
        (AtomOp::Min | AtomOp::Max, AtomTy::F32) => {
            let (x, y) = (f32v(old), f32v(b));
            f32b(if op == AtomOp::Min { fmin32(x, y) } else { fmax32(x, y) })
        }
        (AtomOp::Min | AtomOp::Max, AtomTy::F64) => {
            let (x, y) = (f64v(old), f64v(b));
            f64b(if op == AtomOp::Min { fmin64(x, y) } else { fmax64(x, y) })
        }
        (AtomOp::Add, _) => old.wrapping_add(b),
        (AtomOp::Min | AtomOp::Max, AtomTy::S32 | AtomTy::S64) => {
            let (x, y) = if w32 { (old as u32 as i32 as i64, b as u32 as i32 as i64) } else { (old as i64, b as i64) };
            (if (op == AtomOp::Min) == (x < y) { x } else { y }) as u64
        }
        (AtomOp::Min, _) => old.min(b),
        (AtomOp::Max, _) => old.max(b),
        (AtomOp::Exch, _) => b,
        (AtomOp::Cas, _) => {
            if old == b {
                c
            } else {
                old
            }
        }
        (AtomOp::And, _) => old & b,
        (AtomOp::Or, _) => old | b,
        (AtomOp::Xor, _) => old ^ b,
        (AtomOp::Inc, _) => {
            if old >= b {
                0
            } else {
                old + 1
            }
        }
        (AtomOp::Dec, _) => {
            if old == 0 || old > b {
                b
            } else {
                old - 1
            }
        }
    };
    r & m
}

/// ldmatrix/stmatrix take shared addresses; a generic one is mapped into the shared window.
fn shared_addr(a: u64) -> u64 {
    if (SHARED_WIN..LOCAL_WIN).contains(&a) {
        a - SHARED_WIN
    } else {
        a
    }
}

/// Evaluates a `Slow` operation for one lane.
fn slow(k: Slow, a: u64, b: u64, c: u64) -> u64 {
    use semantics::float as sf;
    let two = |packed: bool, f: &dyn Fn(u16, u16, u16) -> u16| -> u64 {
        let lo = f(a as u16, b as u16, c as u16) as u64;
        if packed {
            lo | (f((a >> 16) as u16, (b >> 16) as u16, (c >> 16) as u16) as u64) << 16
        } else {
            lo
        }
    };
    match k {
        Slow::HalfBin { op, fmt, ftz, packed } => two(packed, &|x, y, _| sf::half_binop(op, x, y, fmt, ftz)),
        Slow::HalfFma { fmt, relu, sat, packed } => two(packed, &|x, y, z| sf::half_fma(x, y, z, fmt, relu, sat)),
        Slow::HalfApprox { op, fmt, packed } => {
            two(packed, &|x, _, _| sf::approx(op, fmt.to_f64(x as u64), fmt) as u16)
        }
        Slow::HalfNegAbs { abs, packed } => two(packed, &|x, _, _| if abs { sf::half_abs(x) } else { sf::half_neg(x) }),
        Slow::CvtHalf { fmt, rnd, relu, satfinite, f64_src, packed } => {
            let val = |x: u64| if f64_src { f64::from_bits(x) } else { f32::from_bits(x as u32) as f64 };
            let cv = |x: u64| sf::cvt_to_half(val(x), fmt, rnd, relu, satfinite) as u64;
            if packed {
                (cv(a) << 16) | cv(b)
            } else {
                cv(a)
            }
        }
        Slow::Tf32 { satfinite } => sf::f32_to_tf32_rna(a as u32, satfinite) as u64,
        Slow::F32Round { op, rnd } => {
            let (x, y, z) =
                (f32::from_bits(a as u32) as f64, f32::from_bits(b as u32) as f64, f32::from_bits(c as u32) as f64);
            round_op(op, rnd, x, y, z, sf::Fmt::F32)
        }
        Slow::F64Round { op, rnd } => {
            round_op(op, rnd, f64::from_bits(a), f64::from_bits(b), f64::from_bits(c), sf::Fmt::F64)
        }
    }
}

/// A directed-rounding add/sub/mul/fma/div, rounded once. Non-finite operands involve no rounding
/// and are left to IEEE arithmetic.
fn round_op(op: u8, rnd: semantics::float::Rnd, x: f64, y: f64, z: f64, fmt: semantics::float::Fmt) -> u64 {
    use semantics::float as sf;
    let finite = x.is_finite()
        && (op >= 5 || y.is_finite())
        && (op != 3 || z.is_finite())
        && (op != 4 || y != 0.0)
        && (op != 5 || x >= 0.0)
        && (op != 6 || x != 0.0);
    if !finite {
        let v = match op {
            0 => x + y,
            1 => x - y,
            2 => x * y,
            3 => x.mul_add(y, z),
            5 => x.sqrt(),
            6 => 1.0 / x,
            _ => x / y,
        };
        return match (fmt == sf::Fmt::F32, v.is_nan()) {
            (true, true) => 0x7fff_ffff,
            (true, false) => (v as f32).to_bits() as u64,
            (false, _) => v.to_bits(),
        };
    }
    match op {
        0 => sf::add_round(x, y, fmt, rnd),
        1 => sf::add_round(x, -y, fmt, rnd),
        2 => sf::mul_round(x, y, fmt, rnd),
        3 => sf::fma_round(x, y, z, fmt, rnd),
        5 => sf::sqrt_round(x, fmt, rnd),
        6 => sf::div_round(1.0, x, fmt, rnd),
        _ => sf::div_round(x, y, fmt, rnd),
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
                let what = if bar {
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

    /// Releases lanes whose barrier completed since they arrived.
    fn release_barriers(&self, warp: &mut Warp) -> bool {
        if warp.wait_bar == 0 {
            return false;
        }
        let mut any = false;
        for l in lanes_of(warp.wait_bar) {
            let id = warp.bar_id[l] as usize;
            if self.bars[id].gen != warp.bar_gen[l] {
                warp.wait_bar &= !(1 << l);
                let pc = warp.pc[l];
                if let Some(Inst { op: Op::Bar { kind, d, .. }, .. }) = self.ctx.kernel.code.get(pc as usize) {
                    let b = &self.bars[id];
                    match kind {
                        BarKind::RedPopc => warp.regs[*d as usize][l] = b.result_popc as u64,
                        BarKind::RedAnd => warp.regs[*d as usize][l] = b.result_and as u64,
                        BarKind::RedOr => warp.regs[*d as usize][l] = b.result_or as u64,
                        _ => {}
                    }
                }
                warp.pc[l] = pc + 1;
                any = true;
            }
        }
        any
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
                    if self.ctx.definedness {
                        self.def_pre(warp, pc, ins, exec, mask);
                    }
                    self.before(warp, ins, exec)
                } else {
                    None
                };
                match &ins.op {
                    Op::Un { f, d, a, flags } => {
                        if exec != 0 {
                            let mut o = [0u64; 32];
                            if flags & FTZ32 != 0 {
                                f(&ftz_in(&warp.regs[*a as usize]), &mut o);
                            } else {
                                f(&warp.regs[*a as usize], &mut o);
                            }
                            post(&mut o, *flags);
                            blend(&mut warp.regs[*d as usize], &o, exec);
                        }
                    }
                    Op::Bin { f, d, a, b, flags } => {
                        if exec != 0 {
                            let mut o = [0u64; 32];
                            if flags & FTZ32 != 0 {
                                f(&ftz_in(&warp.regs[*a as usize]), &ftz_in(&warp.regs[*b as usize]), &mut o);
                            } else {
                                f(&warp.regs[*a as usize], &warp.regs[*b as usize], &mut o);
                            }
                            post(&mut o, *flags);
                            blend(&mut warp.regs[*d as usize], &o, exec);
                        }
                    }
                    Op::Tern { f, d, a, b, c, flags } => {
                        if exec != 0 {
                            let mut o = [0u64; 32];
                            let r = &warp.regs;
                            if flags & FTZ32 != 0 {
                                f(&ftz_in(&r[*a as usize]), &ftz_in(&r[*b as usize]), &ftz_in(&r[*c as usize]), &mut o);
                            } else {
                                f(&r[*a as usize], &r[*b as usize], &r[*c as usize], &mut o);
                            }
                            post(&mut o, *flags);
                            blend(&mut warp.regs[*d as usize], &o, exec);
                        }
                    }
                    Op::Quad { f, d, a, b, c, e } => {
                        if exec != 0 {
                            let mut o = [0u64; 32];
                            let r = &warp.regs;
                            f(&r[*a as usize], &r[*b as usize], &r[*c as usize], &r[*e as usize], &mut o);
                            blend(&mut warp.regs[*d as usize], &o, exec);
                        }
                    }
                    Op::Setp { f, d, dn, a, b, comb } => {
                        if exec != 0 {
                            let mut o = [0u64; 32];
                            f(&warp.regs[*a as usize], &warp.regs[*b as usize], &mut o);
                            let mut n = [0u64; 32];
                            for l in 0..32 {
                                n[l] = o[l] ^ 1;
                            }
                            if let Some((op, c, neg)) = comb {
                                let cv = &warp.regs[*c as usize];
                                for l in 0..32 {
                                    let p = (cv[l] & 1) ^ (*neg as u64);
                                    let f = |x: u64| match op {
                                        BoolOp::And => x & p,
                                        BoolOp::Or => x | p,
                                        BoolOp::Xor => x ^ p,
                                    };
                                    o[l] = f(o[l]);
                                    n[l] = f(n[l]);
                                }
                            }
                            blend(&mut warp.regs[*d as usize], &o, exec);
                            if *dn != NO_REG {
                                blend(&mut warp.regs[*dn as usize], &n, exec);
                            }
                        }
                    }
                    Op::Set { f, d, a, b, one } => {
                        if exec != 0 {
                            let mut o = [0u64; 32];
                            f(&warp.regs[*a as usize], &warp.regs[*b as usize], &mut o);
                            for v in o.iter_mut() {
                                *v = if *v != 0 { *one } else { 0 };
                            }
                            blend(&mut warp.regs[*d as usize], &o, exec);
                        }
                    }
                    Op::Pack { d, srcs, n, bits } => {
                        let m = if *bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                        for l in lanes_of(exec) {
                            let mut v = 0u64;
                            for (k, s) in srcs.iter().take(*n as usize).enumerate() {
                                v |= (warp.regs[*s as usize][l] & m) << (k as u32 * *bits as u32);
                            }
                            warp.regs[*d as usize][l] = v;
                        }
                    }
                    Op::Unpack { dsts, n, bits, s } => {
                        let m = if *bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                        for l in lanes_of(exec) {
                            let v = warp.regs[*s as usize][l];
                            for (k, d) in dsts.iter().take(*n as usize).enumerate() {
                                warp.regs[*d as usize][l] = (v >> (k as u32 * *bits as u32)) & m;
                            }
                        }
                    }
                    Op::Carry { k, d, a, b, c, cc } => {
                        for l in lanes_of(exec) {
                            let r = &mut warp.regs;
                            let (x, y, z) = (r[*a as usize][l], r[*b as usize][l], r[*c as usize][l]);
                            let cin = if k.carry_in { r[*cc as usize][l] & 1 } else { 0 };
                            let bits = if k.wide { 64 } else { 32 };
                            let m: u128 = if k.wide { u64::MAX as u128 } else { 0xffff_ffff };
                            let (x, y, z) = (x as u128 & m, y as u128 & m, z as u128 & m);
                            // PTX ISA 9.7.2: sub.cc computes a + ~b + 1 and subc a + ~b + CC.CF, so the
                            // carry flag is the inverted borrow, as in the hardware.
                            let (sum, carry) = if k.sub {
                                let s = x + (!y & m) + if k.carry_in { cin as u128 } else { 1 };
                                (s & m, (s >> bits) & 1)
                            } else if let Some(hi) = k.mad {
                                let p = x * y;
                                let part = if hi { p >> bits } else { p & m };
                                let s = part + z + cin as u128;
                                (s & m, (s >> bits) & 1)
                            } else {
                                let s = x + y + cin as u128;
                                (s & m, (s >> bits) & 1)
                            };
                            r[*d as usize][l] = sum as u64;
                            if k.carry_out {
                                r[*cc as usize][l] = carry as u64;
                            }
                        }
                    }
                    Op::Ld { space: Space::Shared, size: 4, n: 1, dsts, addr, off, .. } => {
                        // The common case, kept free of the general path's dispatch.
                        let len = self.smem.len();
                        for l in lanes_of(exec) {
                            let a = warp.regs[*addr as usize][l].wrapping_add(*off as u64);
                            match self.smem.get(a as usize..(a as usize).wrapping_add(4)) {
                                Some(b) if a % 4 == 0 => {
                                    warp.regs[dsts[0] as usize][l] = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
                                }
                                _ => {
                                    let msg = if a % 4 != 0 {
                                        format!("misaligned 4-byte access at {a:#x}")
                                    } else {
                                        format!("4-byte load from shared address {a:#x} outside the block's shared memory ({len} bytes){}", past_end(a, len))
                                    };
                                    return Err(fault(pc, Some(l as u32), msg));
                                }
                            }
                        }
                    }
                    Op::Ld { space, size, n, signed, dsts, addr, off } => {
                        for l in lanes_of(exec) {
                            let base = warp.regs[*addr as usize][l].wrapping_add(*off as u64);
                            let total = *size as u64 * *n as u64;
                            if base & (total - 1) != 0 {
                                let msg = format!(
                                    "misaligned {total}-byte access at {base:#x}{}",
                                    self.locate(*space, base, total)
                                );
                                return Err(fault(pc, Some(l as u32), msg));
                            }
                            for (k, dreg) in dsts.iter().take(*n as usize).enumerate() {
                                let a = base + (k as u64) * *size as u64;
                                let mut v =
                                    self.load(warp, l, *space, a, *size).map_err(|m| fault(pc, Some(l as u32), m))?;
                                if *signed && *size < 8 {
                                    let sh = 64 - 8 * *size as u32;
                                    v = (((v << sh) as i64) >> sh) as u64;
                                }
                                warp.regs[*dreg as usize][l] = v;
                            }
                        }
                    }
                    Op::St { space, size, n, srcs, addr, off } => {
                        for l in lanes_of(exec) {
                            let base = warp.regs[*addr as usize][l].wrapping_add(*off as u64);
                            if base & (*size as u64 * *n as u64 - 1) != 0 {
                                let total = *size as u64 * *n as u64;
                                let msg = format!(
                                    "misaligned {total}-byte store at {base:#x}{}",
                                    self.locate(*space, base, total)
                                );
                                return Err(fault(pc, Some(l as u32), msg));
                            }
                            for (k, sreg) in srcs.iter().take(*n as usize).enumerate() {
                                let a = base + (k as u64) * *size as u64;
                                let v = warp.regs[*sreg as usize][l];
                                self.store(warp, l, *space, a, *size, v).map_err(|m| fault(pc, Some(l as u32), m))?;
                            }
                        }
                    }
                    Op::Atom { space, op, ty, d, addr, off, b, c } => {
                        for l in lanes_of(exec) {
                            let a = warp.regs[*addr as usize][l].wrapping_add(*off as u64);
                            let (bv, cv) = (warp.regs[*b as usize][l], warp.regs[*c as usize][l]);
                            let old =
                                self.atomic(a, *space, *op, *ty, bv, cv).map_err(|m| fault(pc, Some(l as u32), m))?;
                            warp.regs[*d as usize][l] = old;
                        }
                    }
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
                    Op::Call { target, copy_in, copy_out: _ } => {
                        let fs = self.ctx.kernel.fparam_size;
                        for l in lanes_of(exec) {
                            for cp in copy_in.iter() {
                                let base = l * fs;
                                warp.fparam.copy_within(
                                    base + cp.src as usize..base + (cp.src + cp.len) as usize,
                                    base + cp.dst as usize,
                                );
                            }
                            if warp.stack[l].len() > 1024 {
                                return Err(fault(pc, Some(l as u32), "call stack overflow"));
                            }
                            warp.stack[l].push(pc);
                        }
                        if exec == mask {
                            pc = *target;
                        } else {
                            for l in lanes_of(mask) {
                                warp.pc[l] = if exec >> l & 1 == 1 { *target } else { pc + 1 };
                            }
                            continue 'select;
                        }
                        continue;
                    }
                    Op::CallIndirect { f, targets } => {
                        let fs = self.ctx.kernel.fparam_size;
                        let mut first = None;
                        let mut same = true;
                        for l in lanes_of(exec) {
                            let a = warp.regs[*f as usize][l];
                            let Some(t) = targets.iter().find(|t| t.addr == a) else {
                                let msg = format!(
                                    "indirect call through {a:#x}, which is not the address of a function of this module \
                                     with this call's parameters"
                                );
                                return Err(fault(pc, Some(l as u32), msg));
                            };
                            let base = l * fs;
                            for cp in t.copy_in.iter() {
                                warp.fparam.copy_within(
                                    base + cp.src as usize..base + (cp.src + cp.len) as usize,
                                    base + cp.dst as usize,
                                );
                            }
                            if warp.stack[l].len() > 1024 {
                                return Err(fault(pc, Some(l as u32), "call stack overflow"));
                            }
                            warp.stack[l].push(pc);
                            warp.pc[l] = t.target;
                            same &= first.is_none_or(|x| x == t.target);
                            first = Some(t.target);
                        }
                        match first {
                            Some(t) if same && exec == mask => pc = t,
                            None => pc += 1,
                            Some(_) => {
                                for l in lanes_of(mask & !exec) {
                                    warp.pc[l] = pc + 1;
                                }
                                continue 'select;
                            }
                        }
                        continue;
                    }
                    Op::Malloc { size, ret } => {
                        let fs = self.ctx.kernel.fparam_size;
                        for l in lanes_of(exec) {
                            let n = rd(&warp.fparam, l * fs + *size as usize, 8).unwrap_or(0);
                            let p = self.ctx.heap.map_or(0, |h| h.malloc(n));
                            wr(&mut warp.fparam, l * fs + *ret as usize, 8, p);
                        }
                    }
                    Op::Ret => {
                        if exec == 0 {
                            pc += 1;
                            continue;
                        }
                        let fs = self.ctx.kernel.fparam_size;
                        let mut same = true;
                        let mut next = u32::MAX;
                        for l in lanes_of(mask) {
                            if exec >> l & 1 == 0 {
                                warp.pc[l] = pc + 1;
                                same = false;
                                continue;
                            }
                            match warp.stack[l].pop() {
                                None => {
                                    warp.exited |= 1 << l;
                                    same = false;
                                }
                                Some(call_pc) => {
                                    let copy_out = match code.get(call_pc as usize).map(|i| &i.op) {
                                        Some(Op::Call { copy_out, .. }) => Some(copy_out),
                                        // The caller's pointer register still names the callee: a
                                        // callee never writes its caller's registers (no recursion).
                                        Some(Op::CallIndirect { f, targets }) => {
                                            let a = warp.regs[*f as usize][l];
                                            targets.iter().find(|t| t.addr == a).map(|t| &t.copy_out)
                                        }
                                        _ => None,
                                    };
                                    if let Some(copy_out) = copy_out {
                                        let base = l * fs;
                                        for cp in copy_out.iter() {
                                            warp.fparam.copy_within(
                                                base + cp.src as usize..base + (cp.src + cp.len) as usize,
                                                base + cp.dst as usize,
                                            );
                                        }
                                    }
                                    warp.pc[l] = call_pc + 1;
                                    if next == u32::MAX {
                                        next = call_pc + 1;
                                    } else if next != call_pc + 1 {
                                        same = false;
                                    }
                                }
                            }
                        }
                        if !same {
                            // A `ret` with no caller frame left the kernel: those threads exited.
                            self.lanes_exited(warp.id, warp.exited);
                        }
                        if same {
                            pc = next;
                            continue;
                        }
                        continue 'select;
                    }
                    Op::Exit => {
                        warp.exited |= exec;
                        self.lanes_exited(warp.id, warp.exited);
                        mask &= !exec;
                        if mask == 0 {
                            continue 'select;
                        }
                    }
                    Op::AssertFail { message, line } => {
                        if exec != 0 {
                            let l = exec.trailing_zeros();
                            let what = self.assert_text(warp, l as usize, *message, *line);
                            return Err(fault(pc, Some(l), format!("device-side assert failed (__assertfail){what}")));
                        }
                    }
                    Op::Trap => {
                        if exec != 0 {
                            return Err(fault(pc, Some(exec.trailing_zeros()), "trap"));
                        }
                    }
                    Op::Nop => {}
                    Op::Clock { d, which } => {
                        // One tick per warp instruction, and the timer as if at 1 GHz: monotonic
                        // per warp and deterministic.
                        let t = warp.clock;
                        let v = match which {
                            ClockReg::Clock64 | ClockReg::Timer => t,
                            ClockReg::ClockLo | ClockReg::TimerLo => t & 0xffff_ffff,
                            ClockReg::ClockHi | ClockReg::TimerHi => t >> 32,
                        };
                        for l in lanes_of(exec) {
                            warp.regs[*d as usize][l] = v;
                        }
                    }
                    Op::Printf { fmt, args, ret } => {
                        for l in lanes_of(exec) {
                            let n = self.printf(warp, l, *fmt, *args).map_err(|m| fault(pc, Some(l as u32), m))?;
                            if *ret != u32::MAX {
                                let at = l * self.ctx.kernel.fparam_size + *ret as usize;
                                if let Some(b) = warp.fparam.get_mut(at..at + 4) {
                                    b.copy_from_slice(&n.to_le_bytes());
                                }
                            }
                        }
                    }
                    Op::Unsupported { what } => {
                        // A launch refuses a kernel that can reach one; this is a second line of defence.
                        if exec != 0 {
                            let names = &self.ctx.kernel.names;
                            let what = names.get(*what as usize).map_or("?", |s| s.as_str());
                            return Err(fault(
                                pc,
                                Some(exec.trailing_zeros()),
                                format!("not supported by the VM: {what}"),
                            ));
                        }
                    }
                    Op::Activemask { d } => {
                        for l in lanes_of(exec) {
                            warp.regs[*d as usize][l] = mask as u64;
                        }
                    }
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
                    Op::CpAsync { size, src_size, dst, doff, src, soff } => {
                        // The copy is performed at issue; cp.async.wait_group then has nothing left to
                        // wait for, which is one of the orders the PTX memory model allows.
                        for l in lanes_of(exec) {
                            let d = warp.regs[*dst as usize][l].wrapping_add(*doff as u64);
                            let s = warp.regs[*src as usize][l].wrapping_add(*soff as u64);
                            let n = (warp.regs[*src_size as usize][l] as u32).min(*size as u32);
                            if (d | s) & (*size as u64 - 1) != 0 {
                                return Err(fault(
                                    pc,
                                    Some(l as u32),
                                    format!("misaligned cp.async of {size} bytes ({s:#x} -> {d:#x})"),
                                ));
                            }
                            let size = *size as usize;
                            let mut bytes = [0u8; 16];
                            if n > 0 {
                                let (buf, off) =
                                    self.ctx.global.find_cached(s, n as usize, &self.gcache).ok_or_else(|| {
                                        let msg = format!(
                                            "cp.async reads {n} bytes at global address {s:#x}, outside every allocation; {}",
                                            self.ctx.global.describe(s, n as usize)
                                        );
                                        fault(pc, Some(l as u32), msg)
                                    })?;
                                if n as usize == size {
                                    for w in 0..size / 4 {
                                        let v = buf.load(off + 4 * w, 4) as u32;
                                        bytes[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
                                    }
                                } else {
                                    for (i, b) in bytes.iter_mut().enumerate().take(n as usize) {
                                        *b = buf.load(off + i, 1) as u8;
                                    }
                                }
                            }
                            let len = self.smem.len();
                            match self.smem.get_mut(d as usize..(d as usize).saturating_add(size)) {
                                Some(dst) => dst.copy_from_slice(&bytes[..size]),
                                None => {
                                    let msg = format!(
                                        "cp.async writes {size} bytes at shared address {d:#x}, outside the block's {len} bytes"
                                    );
                                    return Err(fault(pc, Some(l as u32), msg));
                                }
                            }
                        }
                    }
                    Op::Mbarrier { k, d, addr, off, b } => {
                        for l in lanes_of(exec) {
                            let a = shared_addr(warp.regs[*addr as usize][l].wrapping_add(*off as u64));
                            let bv = warp.regs[*b as usize][l];
                            let before = if self.shadow.is_some() { rd(self.smem, a as usize, 8) } else { None };
                            let v = self.mbarrier(*k, a, bv).map_err(|m| fault(pc, Some(l as u32), m))?;
                            warp.regs[*d as usize][l] = v;
                            if let Some(before) = before {
                                self.mbarrier_arrival(warp.id, *k, a, before);
                            }
                        }
                    }
                    Op::Slow { k, d, a, b, c } => {
                        for l in lanes_of(exec) {
                            let r = &warp.regs;
                            let v = slow(*k, r[*a as usize][l], r[*b as usize][l], r[*c as usize][l]);
                            warp.regs[*d as usize][l] = v;
                        }
                    }
                    Op::CpCommit => {
                        for l in lanes_of(exec) {
                            warp.committed[l] += 1;
                        }
                    }
                    Op::CpWait => {}
                }
                if let Some(addrs) = pending {
                    self.after(warp, pc, ins, exec, &addrs);
                }
                pc += 1;
            }
        }
    }

    /// A warp collective reached by the lanes `exec` of group `mask` at `pc`. Returns the group
    /// to continue with (at pc + 1), or None when the lanes must wait for other members.
    fn collective(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32, ins: &Inst) -> Res<Option<u32>> {
        if exec == 0 {
            return Ok(Some(mask));
        }
        let member_reg = match &ins.op {
            Op::ShflSync { mask, .. }
            | Op::VoteSync { mask, .. }
            | Op::MatchSync { mask, .. }
            | Op::ReduxSync { mask, .. }
            | Op::BarWarp { mask }
            | Op::ElectSync { mask, .. } => Some(*mask),
            _ => None,
        };
        // Lanes already waiting at this instruction join the ones arriving now.
        let mut waiting_here = 0u32;
        for l in lanes_of(warp.wait_coll) {
            if warp.pc[l] == pc {
                waiting_here |= 1 << l;
            }
        }
        let arrived = exec | waiting_here;
        if let Some(r) = member_reg {
            let first = warp.regs[r as usize][arrived.trailing_zeros() as usize] as u32;
            if lanes_of(arrived).any(|l| warp.regs[r as usize][l] as u32 != first) {
                return self.collective_split(warp, pc, exec, mask, waiting_here, r, ins);
            }
        }
        let members = match member_reg {
            Some(r) => {
                let mut m = 0u32;
                for l in lanes_of(arrived) {
                    m |= warp.regs[r as usize][l] as u32;
                }
                m
            }
            // mma/ldmatrix/stmatrix are `.aligned`: the whole warp takes part.
            None => warp.valid,
        };
        if members & !warp.valid != 0 {
            return Err(fault(
                pc,
                None,
                format!(
                    "member mask {members:#010x} names lanes that do not exist in this block (valid {:#010x})",
                    warp.valid
                ),
            ));
        }
        if members & !arrived != 0 {
            if members & warp.exited != 0 {
                return Err(fault(
                    pc,
                    None,
                    format!("member mask {members:#010x} includes exited lanes {:#010x}", members & warp.exited),
                ));
            }
            warp.wait_coll |= exec;
            for l in lanes_of(mask) {
                warp.pc[l] = if exec >> l & 1 == 1 { pc } else { pc + 1 };
            }
            return Ok(None);
        }
        if arrived & !members != 0 && member_reg.is_some() {
            return Err(fault(
                pc,
                Some((arrived & !members).trailing_zeros()),
                format!("executing lane is not in member mask {members:#010x}"),
            ));
        }
        warp.wait_coll &= !arrived;
        let act = arrived;
        if let Some(sh) = self.shadow.as_deref_mut() {
            // Every `.sync` collective orders the accesses of the lanes in its member mask.
            sh.warp_sync(warp.id as usize, members);
        }
        if self.ctx.definedness {
            self.def_collective(warp, pc, ins, act);
        }
        let r = &mut warp.regs;
        let col = |r: &Vec<Lanes>, x: R| -> [u32; 32] { std::array::from_fn(|l| r[x as usize][l] as u32) };
        match &ins.op {
            Op::ShflSync { mode, d, p, a, b, c, .. } => {
                let (vals, bs, cs) = (col(r, *a), col(r, *b), col(r, *c));
                let (out, pv) = semantics::warp::shfl_sync(*mode, &vals, &bs, &cs, act);
                for l in lanes_of(act) {
                    r[*d as usize][l] = out[l] as u64;
                    if *p != NO_REG {
                        r[*p as usize][l] = pv[l] as u64;
                    }
                }
            }
            Op::VoteSync { mode, d, a, neg, .. } => {
                let preds: [bool; 32] = std::array::from_fn(|l| (r[*a as usize][l] & 1 == 1) != *neg);
                let v = semantics::warp::vote_sync(*mode, &preds, act);
                for l in lanes_of(act) {
                    r[*d as usize][l] = v as u64;
                }
            }
            Op::MatchSync { all, wide, d, p, a, .. } => {
                let m = if *wide { u64::MAX } else { 0xffff_ffff };
                let vals: [u64; 32] = std::array::from_fn(|l| r[*a as usize][l] & m);
                if *all {
                    let (v, ok) = semantics::warp::match_all(&vals, act);
                    for l in lanes_of(act) {
                        r[*d as usize][l] = v as u64;
                        if *p != NO_REG {
                            r[*p as usize][l] = ok as u64;
                        }
                    }
                } else {
                    let v = semantics::warp::match_any(&vals, act);
                    for l in lanes_of(act) {
                        r[*d as usize][l] = v[l] as u64;
                    }
                }
            }
            Op::ReduxSync { op, d, a, .. } => {
                let v = semantics::warp::redux_sync(*op, &col(r, *a), act);
                for l in lanes_of(act) {
                    r[*d as usize][l] = v as u64;
                }
            }
            Op::ElectSync { d, p, .. } => {
                let leader = act.trailing_zeros();
                for l in lanes_of(act) {
                    r[*d as usize][l] = leader as u64;
                    if *p != NO_REG {
                        r[*p as usize][l] = (l as u32 == leader) as u64;
                    }
                }
            }
            Op::BarWarp { .. } => {}
            Op::Mma { shape, input, ctype, dtype, d, a, b, c } => {
                let frag = |r: &Vec<Lanes>, x: &[R; 4]| -> [[u32; 4]; 32] {
                    const ABSENT: Lanes = [0; 32];
                    let v = x.map(|reg| if reg != NO_REG { &r[reg as usize] } else { &ABSENT });
                    std::array::from_fn(|l| v.map(|col| col[l] as u32))
                };
                let out =
                    semantics::mma::mma_sync(*shape, *input, *ctype, *dtype, &frag(r, a), &frag(r, b), &frag(r, c));
                if self.instrument {
                    // One warp-wide m16n8kK multiply-add: M*N*K products and as many sums.
                    let flops = 2 * 16 * 8 * shape.k() as u64;
                    if *input == MmaInput::Tf32 {
                        self.counters.mma_tf32_flops += flops;
                    } else {
                        self.counters.mma_flops += flops;
                    }
                }
                for l in lanes_of(act) {
                    for i in 0..4 {
                        if d[i] != NO_REG {
                            r[d[i] as usize][l] = out[l][i] as u64;
                        }
                    }
                }
            }
            Op::Ldmatrix { num, trans, d, addr, off } => {
                let addrs: [u64; 32] =
                    std::array::from_fn(|l| shared_addr(r[*addr as usize][l].wrapping_add(*off as u64)));
                let smem = &*self.smem;
                let out = semantics::ldmatrix::ldmatrix(*num as usize, *trans, &addrs, |a| {
                    if a % 16 != 0 {
                        return Err(format!("ldmatrix row address {a:#x} is not 16-byte aligned"));
                    }
                    match smem.get(a as usize..a as usize + 16) {
                        Some(s) => {
                            let mut b = [0u8; 16];
                            b.copy_from_slice(s);
                            Ok(b)
                        }
                        None => Err(format!(
                            "ldmatrix row at shared address {a:#x} is outside the block's {} bytes",
                            smem.len()
                        )),
                    }
                })
                .map_err(|m| fault(pc, None, m))?;
                for l in lanes_of(act) {
                    for i in 0..*num as usize {
                        r[d[i] as usize][l] = out[l][i] as u64;
                    }
                }
                if self.instrument {
                    self.matrix_access(warp.id, pc, &addrs, *num, AccessKind::Read);
                }
            }
            Op::Stmatrix { num, trans, s, addr, off } => {
                let addrs: [u64; 32] =
                    std::array::from_fn(|l| shared_addr(r[*addr as usize][l].wrapping_add(*off as u64)));
                let regs: [[u32; 4]; 32] = std::array::from_fn(|l| {
                    std::array::from_fn(|i| if i < *num as usize { r[s[i] as usize][l] as u32 } else { 0 })
                });
                for (a, bytes) in semantics::ldmatrix::stmatrix(*num as usize, *trans, &addrs, &regs) {
                    let len = self.smem.len();
                    match self.smem.get_mut(a as usize..a as usize + 16) {
                        Some(dst) if a % 16 == 0 => dst.copy_from_slice(&bytes),
                        _ => return Err(fault(pc, None, format!("stmatrix row at shared address {a:#x} is misaligned or outside the block's {len} bytes"))),
                    }
                }
                if self.instrument {
                    self.matrix_access(warp.id, pc, &addrs, *num, AccessKind::Write);
                }
            }
            _ => {}
        }
        Ok(Some(mask | waiting_here))
    }

    /// A `.sync` collective whose arrived lanes name different member masks: each mask is its own
    /// collective (the tiles of a `cg::tiled_partition` each reduce or vote over their own lanes;
    /// PTX ISA 9.7.8 `redux.sync`, `vote.sync`, `match.sync`: the operation is over the lanes of
    /// the executing thread's `membermask`). The groups whose members have all arrived run now, one
    /// after the other, through `collective`; the other lanes of `exec` wait at `pc`.
    #[allow(clippy::too_many_arguments)]
    fn collective_split(
        &mut self,
        warp: &mut Warp,
        pc: u32,
        exec: u32,
        mask: u32,
        waiting_here: u32,
        member_reg: R,
        ins: &Inst,
    ) -> Res<Option<u32>> {
        let arrived = exec | waiting_here;
        let own = |warp: &Warp, l: usize| warp.regs[member_reg as usize][l] as u32;
        let saved = warp.wait_coll;
        let mut ran = 0u32;
        let mut todo = arrived;
        while todo != 0 {
            let m = own(warp, todo.trailing_zeros() as usize);
            let lanes = lanes_of(todo).filter(|&l| own(warp, l) == m).fold(0u32, |a, l| a | 1 << l);
            todo &= !lanes;
            // A group still missing live members waits; one naming exited or absent lanes goes
            // through `collective`, which reports it.
            if m & !arrived & !warp.exited & warp.valid != 0 {
                continue;
            }
            warp.wait_coll = saved & !arrived;
            // Masks that overlap without being equal (undefined in the ISA) can leave a group waiting.
            if self.collective(warp, pc, lanes, lanes, ins)?.is_some() {
                ran |= lanes;
            }
        }
        let waiting = arrived & !ran;
        warp.wait_coll = (saved & !arrived) | waiting;
        for l in lanes_of(waiting) {
            warp.pc[l] = pc;
        }
        if ran == 0 {
            for l in lanes_of(mask) {
                warp.pc[l] = if exec >> l & 1 == 1 { pc } else { pc + 1 };
            }
            return Ok(None);
        }
        // The group goes on at pc + 1 with the lanes that skipped the instruction or completed it.
        Ok(Some((mask & !exec) | ran))
    }

    /// `: `message`` (and `, line N`) of a failed device assert, read from the call's arguments:
    /// the message is a C string in a module `.global` (what nvcc makes of the asserted expression).
    fn assert_text(&self, warp: &Warp, lane: usize, message: Option<u32>, line: Option<u32>) -> String {
        let fs = self.ctx.kernel.fparam_size;
        let arg = |off: u32, n: u8| rd(&warp.fparam, lane * fs + off as usize, n);
        let mut out = String::new();
        if let Some(addr) = message.and_then(|o| arg(o, 8)) {
            let (space, a) = generic(addr);
            let mut bytes = Vec::new();
            if space == Space::Global {
                while bytes.len() < 512 {
                    let Some((buf, off)) = self.ctx.global.find(a + bytes.len() as u64, 1) else { break };
                    match buf.load(off, 1) as u8 {
                        0 => break,
                        b => bytes.push(b),
                    }
                }
            }
            if !bytes.is_empty() {
                out = format!(": `{}`", String::from_utf8_lossy(&bytes));
            }
        }
        if let Some(n) = line.and_then(|o| arg(o, 4)) {
            out.push_str(&format!(", line {n}"));
        }
        out
    }

    /// One thread's mbarrier operation. The object's layout is the VM's own (the ISA leaves it
    /// opaque): bits 0-20 pending arrivals, 21-41 expected arrivals, bit 63 the phase parity. A
    /// state token is the object's value at the arrival, so its bit 63 names the phase it joined.
    fn mbarrier(&mut self, k: Mbar, a: u64, b: u64) -> Result<u64, String> {
        const M: u64 = (1 << 21) - 1;
        let pack = |pending: u64, expected: u64, phase: u64| pending | (expected << 21) | (phase << 63);
        if k == Mbar::PendingCount {
            return Ok(b & M);
        }
        if a % 8 != 0 {
            return Err(format!("mbarrier object at shared address {a:#x} is not 8-byte aligned"));
        }
        let len = self.smem.len();
        let oob = || format!("mbarrier object at shared address {a:#x} outside the block's {len} bytes");
        let cur = rd(self.smem, a as usize, 8).ok_or_else(oob)?;
        let (pending, expected, phase) = (cur & M, (cur >> 21) & M, cur >> 63);
        let (new, ret) = match k {
            Mbar::Init => {
                let n = b & 0xffff_ffff;
                if n == 0 || n > M {
                    return Err(format!("mbarrier.init count {n} outside 1..={M}"));
                }
                (pack(n, n, 0), 0)
            }
            Mbar::Inval => (0, 0),
            Mbar::Arrive { drop, no_complete } => {
                let n = b & 0xffff_ffff;
                if n > pending {
                    return Err(format!("mbarrier arrive of {n} with only {pending} arrivals pending"));
                }
                let expected = if drop { expected.saturating_sub(n) } else { expected };
                let left = pending - n;
                if left == 0 && !no_complete {
                    // The phase completes: the next one expects the (possibly dropped) count again.
                    (pack(expected, expected, phase ^ 1), cur)
                } else {
                    (pack(left, expected, phase), cur)
                }
            }
            Mbar::CpAsyncArrive { noinc } => {
                if !noinc {
                    // Increment then arrive: no net change.
                    (cur, 0)
                } else if pending == 0 {
                    return Err("cp.async.mbarrier.arrive.noinc with no arrivals pending".into());
                } else if pending == 1 {
                    (pack(expected, expected, phase ^ 1), 0)
                } else {
                    (pack(pending - 1, expected, phase), 0)
                }
            }
            Mbar::TestWait { parity } => {
                let waited = if parity { b & 1 } else { b >> 63 };
                (cur, (phase != waited) as u64)
            }
            Mbar::PendingCount => (cur, 0),
        };
        wr(self.smem, a as usize, 8, new);
        Ok(ret)
    }

    // Inlined into the interpreter loop as it was when that was its only caller (printf calls it too).
    #[inline(always)]
    fn load(&self, warp: &Warp, lane: usize, space: Space, addr: u64, size: u8) -> Result<u64, String> {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        let oob = |what: &str, len: usize| {
            format!(
                "{size}-byte load from {} address {a:#x} outside {what} ({len} bytes){}",
                space_name(space),
                past_end(a, len)
            )
        };
        match space {
            Space::Global => match self.ctx.global.find_cached(a, size as usize, &self.gcache) {
                Some((buf, off)) => Ok(buf.load(off, size)),
                None => Err(format!(
                    "{size}-byte load from global address {a:#x}, which is outside every allocation; {}",
                    self.ctx.global.describe(a, size as usize)
                )),
            },
            Space::Shared => {
                rd(self.smem, a as usize, size).ok_or_else(|| oob("the block's shared memory", self.smem.len()))
            }
            Space::Local => {
                let ls = self.ctx.kernel.local_size;
                if a as usize + size as usize > ls {
                    return Err(oob("the thread's local memory", ls));
                }
                rd(&warp.local, lane * ls + a as usize, size).ok_or_else(|| oob("local memory", ls))
            }
            Space::Const => rd(self.ctx.const_bank, a as usize, size)
                .ok_or_else(|| oob("the constant bank", self.ctx.const_bank.len())),
            Space::Param | Space::Generic => {
                if (PARAM_WIN..FPARAM_WIN).contains(&a) {
                    rd(self.ctx.params, (a - PARAM_WIN) as usize, size)
                        .ok_or_else(|| oob("the kernel parameters", self.ctx.params.len()))
                } else if a >= FPARAM_WIN {
                    let fs = self.ctx.kernel.fparam_size;
                    let o = (a - FPARAM_WIN) as usize;
                    if o + size as usize > fs {
                        return Err(oob("the call parameters", fs));
                    }
                    rd(&warp.fparam, lane * fs + o, size).ok_or_else(|| oob("the call parameters", fs))
                } else {
                    Err(format!("param load from {a:#x}, which is not a parameter address"))
                }
            }
        }
    }

    /// One lane's `vprintf(fmt, args)`: reads the format string and the argument buffer through
    /// generic addresses, formats, appends to the block's output. Returns what `printf` returns.
    fn printf(&mut self, warp: &Warp, lane: usize, fmt_off: u32, args_off: u32) -> Result<i32, String> {
        use crate::semantics::printf as pf;
        let fs = self.ctx.kernel.fparam_size;
        let param = |off: u32| -> u64 {
            let at = lane * fs + off as usize;
            warp.fparam.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        let (fmt_ptr, args_ptr) = (param(fmt_off), param(args_off));
        if fmt_ptr == 0 {
            return Ok(-1);
        }
        let fmt = self.c_string(warp, lane, fmt_ptr, "printf format string")?;
        let need = pf::args_size(&fmt);
        let mut buf = Vec::with_capacity(need);
        for i in 0..need as u64 {
            let b = self.load(warp, lane, Space::Generic, args_ptr.wrapping_add(i), 1);
            buf.push(b.map_err(|m| format!("printf argument buffer: {m}"))? as u8);
        }
        let mut err = None;
        let out = pf::format(&fmt, &buf, &mut |p| match self.c_string(warp, lane, p, "printf %s argument") {
            Ok(s) => Some(s),
            Err(e) => {
                err.get_or_insert(e);
                None
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let text = String::from_utf8_lossy(&out.text);
        pf::append_capped(&mut self.printf, &mut self.printf_dropped, &text, crate::machine::PRINTF_BUFFER_BYTES);
        Ok(out.returned)
    }

    /// A NUL-terminated string at a generic address, at most 1 MiB long.
    fn c_string(&self, warp: &Warp, lane: usize, ptr: u64, what: &str) -> Result<Vec<u8>, String> {
        let mut s = Vec::new();
        for i in 0..crate::machine::PRINTF_BUFFER_BYTES as u64 {
            let b =
                self.load(warp, lane, Space::Generic, ptr.wrapping_add(i), 1).map_err(|m| format!("{what}: {m}"))?;
            if b == 0 {
                return Ok(s);
            }
            s.push(b as u8);
        }
        Err(format!("{what} at {ptr:#x} has no terminating NUL in its first 1 MiB"))
    }

    fn store(&mut self, warp: &mut Warp, lane: usize, space: Space, addr: u64, size: u8, v: u64) -> Result<(), String> {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        let oob = |what: &str, len: usize| {
            format!(
                "{size}-byte store to {} address {a:#x} outside {what} ({len} bytes){}",
                space_name(space),
                past_end(a, len)
            )
        };
        match space {
            Space::Global => match self.ctx.global.find_cached(a, size as usize, &self.gcache) {
                Some((buf, off)) => {
                    buf.store(off, size, v);
                    Ok(())
                }
                None => Err(format!(
                    "{size}-byte store to global address {a:#x}, which is outside every allocation; {}",
                    self.ctx.global.describe(a, size as usize)
                )),
            },
            Space::Shared => {
                let len = self.smem.len();
                if self.shadow.is_some() {
                    let m = if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
                    if rd(self.smem, a as usize, size) != Some(v & m) {
                        self.st_changed |= 1 << lane;
                    }
                }
                if wr(self.smem, a as usize, size, v) {
                    Ok(())
                } else {
                    Err(oob("the block's shared memory", len))
                }
            }
            Space::Local => {
                let ls = self.ctx.kernel.local_size;
                if a as usize + size as usize > ls || !wr(&mut warp.local, lane * ls + a as usize, size, v) {
                    return Err(oob("the thread's local memory", ls));
                }
                Ok(())
            }
            Space::Const => Err(format!("store to constant memory at {a:#x}")),
            Space::Param | Space::Generic => {
                if a >= FPARAM_WIN {
                    let fs = self.ctx.kernel.fparam_size;
                    let o = (a - FPARAM_WIN) as usize;
                    if o + size as usize > fs || !wr(&mut warp.fparam, lane * fs + o, size, v) {
                        return Err(oob("the call parameters", fs));
                    }
                    Ok(())
                } else {
                    Err(format!("store to kernel parameter space at {a:#x}"))
                }
            }
        }
    }

    fn atomic(&mut self, addr: u64, space: Space, op: AtomOp, ty: AtomTy, b: u64, c: u64) -> Result<u64, String> {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        let size: u8 = ty.bytes();
        if a % size as u64 != 0 {
            return Err(format!("misaligned {size}-byte atomic at {addr:#x}{}", self.locate(space, a, size.into())));
        }
        match space {
            Space::Global => {
                let (buf, off) = self.ctx.global.find(a, size as usize).ok_or_else(|| {
                    format!(
                        "atomic at global address {a:#x}, which is outside every allocation; {}",
                        self.ctx.global.describe(a, size as usize)
                    )
                })?;
                use std::sync::atomic::Ordering::SeqCst;
                if size == 2 {
                    // No 16-bit host atomic exists: update the half of the aligned 32-bit word
                    // (inside the buffer, whose storage is padded to 8 bytes) that holds it.
                    let cell = buf.atomic32(off & !3);
                    let sh = 8 * (off & 3);
                    let r = cell.fetch_update(SeqCst, SeqCst, |w| {
                        let new = atom_new(op, ty, u64::from(w >> sh), b, c) as u32;
                        Some((w & !(0xffff << sh)) | (new << sh))
                    });
                    Ok(u64::from(r.unwrap_or_else(|x| x) >> sh) & 0xffff)
                } else if size == 4 {
                    let cell = buf.atomic32(off);
                    let r = cell.fetch_update(SeqCst, SeqCst, |old| Some(atom_new(op, ty, old as u64, b, c) as u32));
                    Ok(r.unwrap_or_else(|x| x) as u64)
                } else {
                    let cell = buf.atomic64(off);
                    let r = cell.fetch_update(SeqCst, SeqCst, |old| Some(atom_new(op, ty, old, b, c)));
                    Ok(r.unwrap_or_else(|x| x))
                }
            }
            Space::Shared => {
                let len = self.smem.len();
                let old = rd(self.smem, a as usize, size)
                    .ok_or_else(|| format!("atomic at shared address {a:#x} outside the block's {len} bytes"))?;
                wr(self.smem, a as usize, size, atom_new(op, ty, old, b, c));
                Ok(old)
            }
            s => Err(format!("atomic on the {} state space", space_name(s))),
        }
    }
}

/// Which warp and instruction an access comes from.
#[derive(Clone, Copy)]
struct Site {
    warp: u32,
    pc: u32,
}

impl Block<'_, '_> {
    /// For a memcheck message about a global address: the allocation it lies in (or the nearest).
    fn locate(&self, space: Space, addr: u64, len: u64) -> String {
        let (space, a) = if space == Space::Generic { generic(addr) } else { (space, addr) };
        if space == Space::Global {
            format!("; {}", self.ctx.global.describe(a, len as usize))
        } else {
            String::new()
        }
    }

    /// Counts an instruction's class and, for memory instructions, takes the lanes' addresses before
    /// the instruction runs (a load may overwrite its own address register).
    #[inline(never)]
    fn before(&mut self, warp: &Warp, ins: &Inst, exec: u32) -> Option<[u64; 32]> {
        self.counters.count(ins.class, exec.count_ones());
        if exec == 0 {
            return None;
        }
        self.st_changed = 0;
        let (addr, off) = match &ins.op {
            Op::Ld { addr, off, .. } | Op::St { addr, off, .. } | Op::Atom { addr, off, .. } => (*addr, *off),
            Op::CpAsync { dst, doff, .. } => (*dst, *doff),
            _ => return None,
        };
        let r = &warp.regs[addr as usize];
        Some(std::array::from_fn(|l| r[l].wrapping_add(off as u64)))
    }

    /// Feeds a memory instruction that completed to the counters and the sanitizer.
    #[inline(never)]
    fn after(&mut self, warp: &Warp, pc: u32, ins: &Inst, exec: u32, addrs: &[u64; 32]) {
        match &ins.op {
            Op::Ld { space, size, n, .. } => self.access(
                Site { warp: warp.id, pc },
                exec,
                addrs,
                *space,
                u32::from(*size) * u32::from(*n),
                AccessKind::Read,
                0,
            ),
            Op::St { space, size, n, .. } => self.access(
                Site { warp: warp.id, pc },
                exec,
                addrs,
                *space,
                u32::from(*size) * u32::from(*n),
                AccessKind::Write,
                exec & !self.st_changed,
            ),
            Op::Atom { space, ty, .. } => {
                let size = u32::from(ty.bytes());
                self.access(Site { warp: warp.id, pc }, exec, addrs, *space, size, AccessKind::Atomic, 0)
            }
            Op::CpAsync { size, src_size, src, soff, .. } => {
                let width = u32::from(*size);
                // The shared destination is written in full (the tail past src-size is zero-filled).
                self.access(Site { warp: warp.id, pc }, exec, addrs, Space::Shared, width, AccessKind::Write, 0);
                self.counters.cp_async_bytes += u64::from(width) * u64::from(exec.count_ones());
                let mut reads = std::mem::take(&mut self.scratch);
                reads.clear();
                for l in lanes_of(exec) {
                    let s = warp.regs[*src as usize][l].wrapping_add(*soff as u64);
                    let n = (warp.regs[*src_size as usize][l] as u32).min(width);
                    if n > 0 {
                        self.global_touch(warp.id, l as u32, pc, s, n as usize, AccessKind::Read);
                        reads.push((l as u32, s));
                    }
                }
                // cp.async reads global memory through the L1 like a load (LDGSTS).
                if !reads.is_empty() {
                    let (req, sec) = ctr::global_sectors(&reads, width);
                    self.counters.global_load_requests += req;
                    self.counters.global_load_sectors += sec;
                    self.counters.global_load_bytes += u64::from(width) * reads.len() as u64;
                }
                self.scratch = reads;
            }
            _ => {}
        }
        if self.ctx.definedness {
            self.def_post(warp, ins, exec, addrs);
        }
    }

    /// One warp-level access of `width` bytes per lane: the sanitizer per lane, then the warp's
    /// global requests and sectors or shared wavefronts. `same`: the lanes of a store that left
    /// the bytes as they were.
    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        site: Site,
        exec: u32,
        addrs: &[u64; 32],
        space: Space,
        width: u32,
        kind: AccessKind,
        same: u32,
    ) {
        let Site { warp: w, pc } = site;
        let mut global = std::mem::take(&mut self.scratch);
        global.clear();
        let mut shared = [(0u32, 0u64); 32];
        let mut nshared = 0;
        for l in lanes_of(exec) {
            let (sp, a) = if space == Space::Generic { generic(addrs[l]) } else { (space, addrs[l]) };
            match sp {
                Space::Global => {
                    self.global_touch(w, l as u32, pc, a, width as usize, kind);
                    global.push((l as u32, a));
                }
                Space::Shared => {
                    self.shared_touch(w, l as u32, pc, a, width as usize, kind, same >> l & 1 == 1);
                    shared[nshared] = (l as u32, a);
                    nshared += 1;
                }
                _ => {}
            }
        }
        // Atomics are served by the L2 / the shared-memory atomic unit, not as L1 requests.
        if kind != AccessKind::Atomic {
            let c = &mut self.counters;
            if !global.is_empty() {
                let (req, sec) = ctr::global_sectors(&global, width);
                let bytes = u64::from(width) * global.len() as u64;
                if kind == AccessKind::Read {
                    c.global_load_requests += req;
                    c.global_load_sectors += sec;
                    c.global_load_bytes += bytes;
                } else {
                    c.global_store_requests += req;
                    c.global_store_sectors += sec;
                    c.global_store_bytes += bytes;
                }
            }
            if nshared > 0 {
                let (wf, ideal) = ctr::shared_wavefronts(&shared[..nshared], width);
                c.shared_requests += 1;
                c.shared_wavefronts += wf;
                c.shared_ideal_wavefronts += ideal;
            }
        }
        self.scratch = global;
    }

    /// ldmatrix / stmatrix: lanes 8m..8m+8 give the 16-byte rows of matrix m.
    fn matrix_access(&mut self, w: u32, pc: u32, addrs: &[u64; 32], num: u8, kind: AccessKind) {
        let rows = (8 * num as usize).min(32);
        for (l, &a) in addrs.iter().enumerate().take(rows) {
            self.shared_touch(w, l as u32, pc, a, 16, kind, false);
        }
        let (wf, ideal) = ctr::ldmatrix_wavefronts(&addrs[..rows], num as usize);
        self.counters.shared_requests += 1;
        self.counters.shared_wavefronts += wf;
        self.counters.shared_ideal_wavefronts += ideal;
    }

    /// One lane's global access: first-touch bytes for the counters; initcheck and the cross-block
    /// write-conflict check for the sanitizer.
    fn global_touch(&mut self, w: u32, lane: u32, pc: u32, a: u64, len: usize, kind: AccessKind) {
        let sanitize = self.ctx.sanitize;
        let Some((buf, off)) = self.ctx.global.find_cached(a, len, &self.gcache) else { return };
        let Some(t) = buf.tracking() else { return };
        let mut found = None;
        if kind != AccessKind::Write {
            // With definedness tracking a read of uninitialised bytes yields undefined values and
            // is a finding only where they escape.
            if sanitize && !self.ctx.definedness && !t.shadow.is_initialized(off, len) {
                found = Some(FindingKind::UninitializedGlobalRead);
            }
            t.touch_read(off, len);
        }
        if kind != AccessKind::Read {
            if sanitize && t.shadow.write(off, len, self.block_index, kind == AccessKind::Atomic).is_some() {
                found = found.or(Some(FindingKind::GlobalWriteConflict));
            }
            t.touch_write(off, len);
        }
        if let Some(k) = found {
            self.finding(k, w * 32 + lane, pc, a, None);
        }
    }

    /// One lane's shared access, checked against the block's shadow. Inlined into the per-lane
    /// loops: the call's register saves cost about as much as the shadow's fast path.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn shared_touch(&mut self, w: u32, lane: u32, pc: u32, a: u64, len: usize, kind: AccessKind, same: bool) {
        let tid = w * 32 + lane;
        let Some(sh) = self.shadow.as_deref_mut() else { return };
        if let Some(hit) = sh.access_same(tid, a as usize, len, kind, pc, same) {
            let other = if hit.kind == FindingKind::UninitializedSharedRead {
                None
            } else {
                Some((hit.other_tid, hit.other_line))
            };
            self.finding(hit.kind, tid, pc, a, other);
        }
    }

    /// Racecheck's view of an mbarrier (PTX ISA 9.7.13.15.1: the completion of a phase makes the
    /// arrivals' prior memory accesses visible to the threads that observe it): the warps that
    /// arrived in the phase form a barrier when the phase completes. Accesses a warp makes between
    /// its arrival and the completion count as before it, which can hide a race but never invents one.
    fn mbarrier_arrival(&mut self, w: u32, k: Mbar, a: u64, before: u64) {
        let arrives = matches!(k, Mbar::Arrive { .. } | Mbar::CpAsyncArrive { .. });
        if !arrives {
            if k == Mbar::Init || k == Mbar::Inval {
                self.mbar_warps.retain(|(obj, _)| *obj != a);
            }
            return;
        }
        let bit = 1u32.checked_shl(w).unwrap_or(0);
        let i = match self.mbar_warps.iter().position(|(obj, _)| *obj == a) {
            Some(i) => i,
            None => {
                self.mbar_warps.push((a, 0));
                self.mbar_warps.len() - 1
            }
        };
        self.mbar_warps[i].1 |= bit;
        let after = rd(self.smem, a as usize, 8).unwrap_or(before);
        if (after ^ before) >> 63 == 1 {
            let took_part = self.mbar_warps[i].1;
            self.mbar_warps[i].1 = 0;
            self.barrier_done(took_part);
        }
    }

    /// A thread group of `warp` at barrier instruction `ins` (pc `pc`, lanes `exec` of the
    /// group `mask`). Returns whether the group's lanes now wait (the warp picks its next group);
    /// otherwise (`bar.arrive`) the group goes on.
    #[inline(never)]
    fn bar(&mut self, warp: &mut Warp, pc: u32, exec: u32, mask: u32, ins: &Inst) -> Res<bool> {
        let Op::Bar { kind, id, count, d: _, p, pneg } = &ins.op else { return Ok(false) };
        let l0 = exec.trailing_zeros() as usize;
        let bid = warp.regs[*id as usize][l0];
        if bid >= 16 {
            return Err(fault(pc, Some(l0 as u32), format!("barrier id {bid} out of range 0..16")));
        }
        let expected = if *count == NO_REG { self.nthreads } else { warp.regs[*count as usize][l0] as u32 };
        let b = &mut self.bars[bid as usize];
        if b.arrived == 0 {
            b.warps = 0;
            b.all = *count == NO_REG;
            b.lanes = [0; 32];
            b.expected = expected;
            b.acc_popc = 0;
            b.acc_and = true;
            b.acc_or = false;
            b.pc = pc;
        } else if *count == NO_REG && b.pc != pc {
            // A block-wide barrier (`__syncthreads`) must be reached by all threads at
            // the same instruction (CUDA: undefined in divergent code); named barriers
            // with a thread count may legitimately be reached from different code.
            let first = self.ctx.kernel.code.get(b.pc as usize).map(|i| i.line).unwrap_or(0);
            return Err(fault(
                pc,
                Some(l0 as u32),
                format!("barrier {bid} is awaited at two different instructions (also at PTX line {first})"),
            ));
        } else if b.expected != expected {
            return Err(fault(
                pc,
                Some(l0 as u32),
                format!("barrier {bid} used with thread counts {} and {expected}", b.expected),
            ));
        }
        b.arrived += exec.count_ones();
        b.warps |= 1u32.checked_shl(warp.id).unwrap_or(0);
        if let Some(m) = b.lanes.get_mut(warp.id as usize) {
            *m |= exec;
        }
        if *p != NO_REG {
            for l in lanes_of(exec) {
                let v = (warp.regs[*p as usize][l] & 1 == 1) != *pneg;
                b.acc_popc += v as u32;
                b.acc_and &= v;
                b.acc_or |= v;
            }
        }
        let gen = b.gen;
        if self.instrument {
            self.counters.barriers += 1;
        }
        let done = self.barrier_arrivals(bid as usize) >= self.bars[bid as usize].expected;
        if done {
            self.complete_barrier(bid as usize);
        }
        if *kind != BarKind::Arrive {
            for l in lanes_of(exec) {
                warp.bar_id[l] = bid as u8;
                warp.bar_gen[l] = gen;
                warp.pc[l] = pc;
            }
            warp.wait_bar |= exec;
            for l in lanes_of(mask & !exec) {
                warp.pc[l] = pc + 1;
            }
            if done {
                self.release_barriers(warp);
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Threads that count as arrived at barrier `bid` in its current round: those that arrived,
    /// plus the exited threads it no longer waits for. PTX ISA 9.7.13.1 (`barrier`/`bar`): without
    /// a thread count the barrier waits for all non-exited threads of the CTA, and the `exit` rules
    /// release a barrier that only exited threads held up. With a count, arrivals are counted per
    /// warp (the warp size, not its active threads, for `bar`), so exited lanes of a warp that takes
    /// part count as arrived.
    #[inline]
    fn barrier_arrivals(&self, bid: usize) -> u32 {
        if self.n_exited == 0 {
            return self.bars[bid].arrived;
        }
        self.arrivals_with_exits(bid)
    }

    #[cold]
    #[inline(never)]
    fn arrivals_with_exits(&self, bid: usize) -> u32 {
        let b = &self.bars[bid];
        let nwarps = self.nthreads.div_ceil(32) as usize;
        let mut n = b.arrived;
        for (w, (&gone, &came)) in self.exited.iter().zip(b.lanes.iter()).enumerate().take(nwarps) {
            if b.all || b.warps >> w & 1 == 1 {
                n += (gone & !came).count_ones();
            }
        }
        n
    }

    /// Completes barrier `bid`'s round: waiting lanes see the new generation and are released on
    /// their warp's next turn.
    #[inline(never)]
    fn complete_barrier(&mut self, bid: usize) {
        let b = &mut self.bars[bid];
        b.gen = b.gen.wrapping_add(1);
        b.arrived = 0;
        b.result_popc = b.acc_popc;
        b.result_and = b.acc_and;
        b.result_or = b.acc_or;
        let took_part = b.warps;
        if self.instrument {
            self.barrier_done(took_part);
        }
    }

    /// Lanes `lanes` of warp `w` have exited (some perhaps earlier): barriers that now wait only
    /// for exited threads complete.
    #[inline(never)]
    fn lanes_exited(&mut self, w: u32, lanes: u32) {
        let Some(gone) = self.exited.get_mut(w as usize) else { return };
        let new = lanes & !*gone;
        if new == 0 {
            return;
        }
        *gone |= new;
        self.n_exited += new.count_ones();
        for bid in 0..self.bars.len() {
            if self.bars[bid].arrived > 0 && self.barrier_arrivals(bid) >= self.bars[bid].expected {
                self.complete_barrier(bid);
            }
        }
    }

    /// A barrier completed with the warps of `took_part` (bit per warp).
    fn barrier_done(&mut self, took_part: u32) {
        let nwarps = self.nthreads.div_ceil(32) as usize;
        if let Some(sh) = self.shadow.as_deref_mut() {
            let parts: Vec<bool> = (0..nwarps).map(|w| took_part >> w & 1 == 1).collect();
            sh.barrier(&parts);
        }
    }

    fn location(&self, pc: u32) -> Location {
        let k = self.ctx.kernel;
        match k.code.get(pc as usize) {
            Some(i) => Location {
                ptx_line: i.line,
                source: if i.loc == 0 { None } else { self.ctx.locs.get(i.loc as usize).cloned() },
            },
            None => Location::default(),
        }
    }

    /// Records a finding at linear thread `tid` and instruction `pc`; `other` is the earlier
    /// conflicting access (thread, instruction) for races.
    fn finding(&mut self, kind: FindingKind, tid: u32, pc: u32, address: u64, other: Option<(u32, u32)>) {
        let place =
            |b: &Self, t: u32, pc: u32| Place { block: b.ctaid, thread: b.tid(t), line: b.location(pc).to_string() };
        let f = Finding {
            kind,
            kernel: self.ctx.kernel.name.clone(),
            at: place(self, tid, pc),
            other: other.map(|(t, p)| place(self, t, p)),
            address,
            count: 1,
        };
        self.report.add(f);
    }
}
