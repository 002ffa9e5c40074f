//! The compact instruction form the interpreter runs.
//!
//! Every operand is a register index into the warp's register file (`[reg][lane]`, u64 slots):
//! immediates, variable addresses and the per-thread constant special registers (`%tid.x`,
//! `%laneid`, ...) are registers too, filled once when a warp starts. So the hot loop never
//! branches on operand kinds and never looks at a string.
//!
//! Register value convention: a register of width w keeps its value in the low w bits; readers
//! truncate to the width of the type they operate on, writers store zero-extended results
//! (sign-extending loads may leave high bits set, which no reader looks at).

/// One lane's worth of a register, for all 32 lanes.
pub(crate) type Lanes = [u64; 32];
/// A register index.
pub(crate) type R = u32;
/// "No register" (e.g. a sink `_` destination or an absent guard).
pub(crate) const NO_REG: R = u32::MAX;

/// Lane-parallel operations: each computes all 32 lanes; the executor keeps only active lanes.
pub(crate) type F1 = fn(&Lanes, &mut Lanes);
/// Two-input lane-parallel operation.
pub(crate) type F2 = fn(&Lanes, &Lanes, &mut Lanes);
/// Three-input lane-parallel operation.
pub(crate) type F3 = fn(&Lanes, &Lanes, &Lanes, &mut Lanes);
/// Four-input lane-parallel operation.
pub(crate) type F4 = fn(&Lanes, &Lanes, &Lanes, &Lanes, &mut Lanes);

/// Post-processing flags of float results (PTX ISA 9.7.3: `.ftz`, `.sat`).
pub(crate) const FTZ32: u8 = 1;
/// Clamp an f32 result to [0, 1], NaN to 0.
pub(crate) const SAT32: u8 = 2;
/// Flush f64 is never needed (`.ftz` only applies to .f32); `.sat` on f64 results.
pub(crate) const SAT64: u8 = 4;
/// Replace any f32 NaN result by the canonical NaN 0x7fffffff.
pub(crate) const NAN32: u8 = 16;
/// On a `Tern`: the op is `selp`/`slct`, whose result is `a` or `b` as `c` chooses (definedness
/// tracking follows the chosen operand).
pub(crate) const SELECT: u8 = 32;
/// On a `Bin`: the op is a bitwise `and`/`or`, whose result a defined operand alone can decide
/// (`x & 0`, `x | ~0`), so definedness tracking probes the undefined operand instead of
/// propagating it (Valgrind memcheck's rule for And/Or).
pub(crate) const BITWISE: u8 = 64;
/// With `BITWISE`: the operands are predicates (0 or 1), so "all ones" is 1.
pub(crate) const PRED_OP: u8 = 128;

/// Memory state spaces (PTX ISA 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    Global,
    Shared,
    Local,
    Const,
    Param,
    Generic,
}

/// Atomic operations (PTX ISA 9.7.13.5 `atom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtomOp {
    Add,
    Min,
    Max,
    Exch,
    Cas,
    And,
    Or,
    Xor,
    Inc,
    Dec,
}

/// Atomic operand types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtomTy {
    U32,
    S32,
    U64,
    S64,
    F32,
    F64,
    F16x2,
    Bf16x2,
    B32,
    B64,
    /// `atom.cas.b16` (sm_70+): the only 16-bit atomic.
    B16,
}

impl AtomTy {
    /// The width of the memory word in bytes.
    pub(crate) fn bytes(self) -> u8 {
        match self {
            AtomTy::U64 | AtomTy::S64 | AtomTy::F64 | AtomTy::B64 => 8,
            AtomTy::B16 => 2,
            _ => 4,
        }
    }
}

/// Barrier flavours (PTX ISA 9.7.13.1 `bar`, `barrier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BarKind {
    Sync,
    Arrive,
    /// `bar.red.popc` / `.and` / `.or`.
    RedPopc,
    RedAnd,
    RedOr,
}

pub(crate) use crate::semantics::mma::{MmaAcc, MmaInput, MmaShape};
pub(crate) use crate::semantics::warp::{ReduxOp as Redux, ShflMode as Shfl, VoteMode as Vote};

/// Boolean combination of `setp` with a third predicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoolOp {
    And,
    Or,
    Xor,
}

/// One possible callee of an indirect call: the value a function pointer holds for it, its entry
/// and the copies of its arguments and results (each `.func` has its own param-area layout).
#[derive(Clone, Debug)]
pub(crate) struct IndirectTarget {
    pub addr: u64,
    pub target: u32,
    pub copy_in: Box<[Copy]>,
    pub copy_out: Box<[Copy]>,
}

/// A byte copy between param areas at a call or return.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Copy {
    pub src: u32,
    pub dst: u32,
    pub len: u32,
}

/// Carry-chain integer arithmetic (PTX ISA 9.7.2: `add.cc`, `addc`, `sub.cc`, `subc`, `mad.cc`, `madc`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CarryKind {
    /// Subtract instead of add.
    pub sub: bool,
    /// Multiply-add (a*b + c), lo or hi half.
    pub mad: Option<bool>,
    /// Reads the carry flag.
    pub carry_in: bool,
    /// Writes the carry flag.
    pub carry_out: bool,
    /// 64-bit operands.
    pub wide: bool,
}

/// `mbarrier` operations (PTX ISA 9.7.13.15), on a 64-bit object in shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mbar {
    /// `mbarrier.init [a], count`.
    Init,
    /// `mbarrier.inval [a]`.
    Inval,
    /// `mbarrier.arrive{.noComplete} state, [a]{, count}`; `drop` for `arrive_drop`; `tx` for
    /// `.expect_tx` (the operand is then a transaction count and the arrival count is 1);
    /// `relaxed` for `.relaxed` (no release semantics; the default is `.release`).
    Arrive { drop: bool, no_complete: bool, tx: bool, relaxed: bool },
    /// `mbarrier.expect_tx [a], txCount` (`complete: false`) or `mbarrier.complete_tx [a], txCount`.
    Tx { complete: bool },
    /// `mbarrier.test_wait` / `try_wait` (`blocking`), against a state token or (`parity`) a
    /// phase parity; `relaxed` for `.relaxed` (no acquire semantics; the default is `.acquire`).
    TestWait { parity: bool, blocking: bool, relaxed: bool },
    /// `mbarrier.pending_count count, state`.
    PendingCount,
    /// `cp.async.mbarrier.arrive{.noinc} [a]`: with copies done at issue, the arrive happens now.
    CpAsyncArrive { noinc: bool },
}

/// `cp.async.bulk.tensor.Nd` (PTX ISA 9.7.9.25.5.1), tile mode, in a 1-CTA cluster: a box of the
/// tensor that the map at `[map+map_off]` describes, at coordinates `coords[..rank]` (`.s32`),
/// global -> shared at `[smem+smem_off]` completing on the mbarrier at `[mbar+mbar_off]`
/// (`to_shared`), or shared -> global in a bulk async-group.
#[derive(Clone, Debug)]
pub(crate) struct TensorCopy {
    pub to_shared: bool,
    pub rank: u8,
    pub smem: R,
    pub smem_off: i64,
    pub map: R,
    pub map_off: i64,
    pub coords: [R; 5],
    pub mbar: R,
    pub mbar_off: i64,
}

/// `wgmma.mma_async.sync.aligned.m64nNk16.{f32,f16}.{f16,bf16}.{f16,bf16}`.
#[derive(Clone, Debug)]
pub(crate) struct Wgmma {
    /// f16 or bf16 inputs.
    pub input: crate::semantics::mma::MmaInput,
    /// f16 accumulators (`.f16.f16.f16`, two per register) instead of f32.
    pub acc_f16: bool,
    /// N: a multiple of 8 in 8..=256.
    pub n: u16,
    /// The accumulator registers of each thread: N / 2 f32, or N / 4 f16x2.
    pub d: Vec<R>,
    /// A from four registers (the m16n8k16 A fragment of the warp's 16 rows) or a descriptor.
    pub a: WgmmaA,
    /// B's descriptor.
    pub b_desc: R,
    /// scale-d: D = A * B + D when true, A * B when false; `scale_d_neg` negates the predicate.
    pub scale_d: R,
    pub scale_d_neg: bool,
    /// imm-scale-a / imm-scale-b: -1 negates the operand.
    pub neg_a: bool,
    pub neg_b: bool,
    /// imm-trans-a / imm-trans-b: the descriptor operand is MN-major (M-major A, N-major B)
    /// instead of K-major. Always false for A from registers.
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Where `wgmma.mma_async` reads A.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WgmmaA {
    Regs([R; 4]),
    Desc(R),
}

/// Operations evaluated lane by lane through `semantics::float` (half precision, rounding modes).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slow {
    /// `add/sub/mul/min/max{.NaN}{.ftz}.{f16,bf16}{x2}`.
    HalfBin { op: crate::semantics::float::HalfOp, fmt: crate::semantics::float::Fmt, ftz: bool, packed: bool },
    /// `fma.rn{.relu}{.sat}.{f16,bf16}{x2}`.
    HalfFma { fmt: crate::semantics::float::Fmt, relu: bool, sat: bool, packed: bool },
    /// `ex2.approx` / `tanh.approx` of f16/bf16 (packed or not).
    HalfApprox { op: crate::semantics::float::Approx, fmt: crate::semantics::float::Fmt, packed: bool },
    /// `neg`/`abs` of f16/bf16 (packed or not).
    HalfNegAbs { abs: bool, packed: bool },
    /// `cvt.rnd{.relu}{.satfinite}.{f16,bf16}{x2}.{f32,f64}`; packed forms put `a` in the upper half.
    CvtHalf {
        fmt: crate::semantics::float::Fmt,
        rnd: crate::semantics::float::Rnd,
        relu: bool,
        satfinite: bool,
        f64_src: bool,
        packed: bool,
    },
    /// `cvt.rna{.satfinite}.tf32.f32`.
    Tf32 { satfinite: bool },
    /// f32 `add/sub/mul/fma/div` with a directed rounding mode: op 0 add, 1 sub, 2 mul, 3 fma, 4 div, 5 sqrt, 6 rcp.
    F32Round { op: u8, rnd: crate::semantics::float::Rnd },
    /// The same for f64.
    F64Round { op: u8, rnd: crate::semantics::float::Rnd },
}

/// Operation of one instruction.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Nop,
    Un {
        f: F1,
        d: R,
        a: R,
        flags: u8,
    },
    Bin {
        f: F2,
        d: R,
        a: R,
        b: R,
        flags: u8,
    },
    Tern {
        f: F3,
        d: R,
        a: R,
        b: R,
        c: R,
        flags: u8,
    },
    Quad {
        f: F4,
        d: R,
        a: R,
        b: R,
        c: R,
        e: R,
    },
    Carry {
        k: CarryKind,
        d: R,
        a: R,
        b: R,
        c: R,
        cc: R,
    },
    /// `setp`: `f` yields 0/1 per lane; combined with predicate `c` (maybe negated) by `comb`.
    Setp {
        f: F2,
        d: R,
        dn: R,
        a: R,
        b: R,
        comb: Option<(BoolOp, R, bool)>,
    },
    /// `set`: `one` where `f` yields 1, else 0.
    Set {
        f: F2,
        d: R,
        a: R,
        b: R,
        one: u64,
    },
    /// `mov.bN d, {a, b, ...}`: `bits` per piece.
    Pack {
        d: R,
        srcs: [R; 4],
        n: u8,
        bits: u8,
    },
    /// `mov.bN {a, b, ...}, s`.
    Unpack {
        dsts: [R; 4],
        n: u8,
        bits: u8,
        s: R,
    },
    Ld {
        space: Space,
        size: u8,
        n: u8,
        signed: bool,
        dsts: [R; 4],
        addr: R,
        off: i64,
    },
    St {
        space: Space,
        size: u8,
        n: u8,
        srcs: [R; 4],
        addr: R,
        off: i64,
    },
    Atom {
        space: Space,
        op: AtomOp,
        ty: AtomTy,
        d: R,
        addr: R,
        off: i64,
        b: R,
        c: R,
    },
    Bra {
        target: u32,
    },
    Call {
        target: u32,
        copy_in: Box<[Copy]>,
        copy_out: Box<[Copy]>,
    },
    /// `call (rets), %fptr, (args), prototype;`: the callee is the target whose `addr` the
    /// register `f` holds, per lane.
    CallIndirect {
        f: R,
        targets: Box<[IndirectTarget]>,
    },
    /// A call of the extern `malloc(size)`: `size` and `ret` are the param-area offsets of the
    /// argument and the result.
    Malloc {
        size: u32,
        ret: u32,
    },
    Ret,
    Exit,
    Trap,
    /// A call of `__assertfail` (a failed device-side `assert`).
    /// A call of `__assertfail(message, file, line, function, char_size)`: the param-area offsets of
    /// its message pointer and line, when the call passes them.
    AssertFail {
        message: Option<u32>,
        line: Option<u32>,
    },
    Bar {
        kind: BarKind,
        id: R,
        count: R,
        d: R,
        p: R,
        pneg: bool,
    },
    /// `mov` from `%clock`, `%clock_hi`, `%clock64` or `%globaltimer{,_lo,_hi}`.
    Clock {
        d: R,
        which: ClockReg,
    },
    Activemask {
        d: R,
    },
    ShflSync {
        mode: Shfl,
        d: R,
        p: R,
        a: R,
        b: R,
        c: R,
        mask: R,
    },
    VoteSync {
        mode: Vote,
        d: R,
        a: R,
        neg: bool,
        mask: R,
    },
    MatchSync {
        all: bool,
        wide: bool,
        d: R,
        p: R,
        a: R,
        mask: R,
    },
    ReduxSync {
        op: Redux,
        d: R,
        a: R,
        mask: R,
    },
    BarWarp {
        mask: R,
    },
    Mma {
        shape: MmaShape,
        input: MmaInput,
        ctype: MmaAcc,
        dtype: MmaAcc,
        d: [R; 4],
        a: [R; 4],
        b: [R; 4],
        c: [R; 4],
    },
    Ldmatrix {
        num: u8,
        trans: bool,
        d: [R; 4],
        addr: R,
        off: i64,
    },
    Stmatrix {
        num: u8,
        trans: bool,
        s: [R; 4],
        addr: R,
        off: i64,
    },
    ElectSync {
        d: R,
        p: R,
        mask: R,
    },
    /// `cp.async.bulk` (PTX ISA 9.7.9.25.4.1), non-tensor: `size` bytes from `[src+soff]` to
    /// `[dst+doff]`; global -> shared completing on the mbarrier at `[mbar+moff]` with
    /// complete-tx(size) (`to_shared`), or shared -> global in a bulk async-group.
    BulkCopy {
        to_shared: bool,
        dst: R,
        doff: i64,
        src: R,
        soff: i64,
        size: R,
        mbar: R,
        moff: i64,
    },
    /// `cp.async.bulk.tensor`, boxed: it names up to 8 registers.
    TensorCopy(Box<TensorCopy>),
    /// `wgmma.mma_async` (PTX ISA 9.7.15.5.2), boxed: it names up to 128 accumulator registers.
    Wgmma(Box<Wgmma>),
    /// `wgmma.commit_group.sync.aligned`.
    WgmmaCommit,
    /// `wgmma.wait_group.sync.aligned n`.
    WgmmaWait {
        n: u32,
    },
    /// `mbarrier.*`: `d` result (state, predicate or count), `b` count / state / parity operand.
    Mbarrier {
        k: Mbar,
        d: R,
        addr: R,
        off: i64,
        b: R,
    },
    /// Per-lane operations that call the `semantics` module with run-time modifiers.
    Slow {
        k: Slow,
        d: R,
        a: R,
        b: R,
        c: R,
    },
    CpAsync {
        size: u8,
        src_size: R,
        dst: R,
        doff: i64,
        src: R,
        soff: i64,
    },
    CpCommit,
    /// `setmaxnreg.{inc,dec}.sync.aligned.u32 count` (sm_90a): a register-allocation hint with no
    /// effect on the VM beyond checking the ISA's rules on its use.
    Setmaxnreg {
        inc: bool,
        count: u16,
    },
    /// `cp.async.wait_group N` / `wait_all`: copies complete at issue, so nothing is left to wait for.
    CpWait,
    /// An instruction or external call the VM does not implement, kept so that only the kernels
    /// that can reach it are refused, at launch; `what` indexes `Kernel::names`.
    Unsupported {
        what: u32,
    },
    /// `call vprintf, (fmt, args)`: the two `.param` arguments and the `.param` return value, as
    /// offsets in the thread's call-parameter area (`ret` is `u32::MAX` when it is not read).
    Printf {
        fmt: u32,
        args: u32,
        ret: u32,
    },
}

/// The time registers `mov` can read (PTX ISA 10.13-10.16, `%clock`, `%clock_hi`, `%clock64`,
/// `%globaltimer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClockReg {
    /// `%clock64`.
    Clock64,
    /// `%clock`: the low 32 bits of `%clock64`.
    ClockLo,
    /// `%clock_hi`: the high 32 bits of `%clock64`.
    ClockHi,
    /// `%globaltimer` in nanoseconds.
    Timer,
    /// `%globaltimer_lo`.
    TimerLo,
    /// `%globaltimer_hi`.
    TimerHi,
}

/// One decoded instruction.
#[derive(Clone, Debug)]
pub(crate) struct Inst {
    pub op: Op,
    /// Guard predicate register, or `NO_REG`.
    pub guard: R,
    /// Guard is `@!p`.
    pub guard_neg: bool,
    /// PTX line.
    pub line: u32,
    /// Index into the module's `.loc` table (0 = none).
    pub loc: u32,
    /// The opcode text, for error messages.
    pub name: u32,
    /// The unit that executes it, decided once at lowering for the counters.
    pub class: crate::counters::InstClass,
}

/// Per-thread constant values the warp's register file starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Init {
    Val(u64),
    /// Address of module `.global` variable #i (resolved at launch).
    GlobalVar(u32),
    /// Start of dynamic shared memory, after the static shared variables.
    DynShared,
    Special(Sreg),
}

/// Special registers that are constant for a thread (PTX ISA 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Sreg {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    Laneid,
    Warpid,
    Nwarpid,
    LanemaskEq,
    LanemaskLt,
    LanemaskLe,
    LanemaskGt,
    LanemaskGe,
    Smid,
    DynSmemSize,
    TotalSmemSize,
    GridId,
    /// `%nsmid`: the modelled device's SM count.
    Nsmid,
    /// `%clusterid.{x,y,z}`: with 1x1x1 clusters, the CTA's own index.
    ClusterId(u8),
    /// `%nclusterid.{x,y,z}`: with 1x1x1 clusters, the grid's shape.
    NclusterId(u8),
}

/// A kernel ready to run: its body and the `.func`s it calls, linked into one instruction array.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    pub name: String,
    pub code: Vec<Inst>,
    pub nregs: usize,
    pub init: Vec<(R, Init)>,
    pub param_size: usize,
    /// The declared parameters, in order, with their offsets.
    pub params: Vec<crate::params::ParamInfo>,
    /// Bytes of static shared memory.
    pub static_smem: usize,
    /// The static shared variables the kernel reaches: (name, offset, size), for messages that
    /// name a shared address; and the name of its dynamic shared array, if it declares one.
    pub shared_vars: Vec<(String, usize, usize)>,
    pub dyn_smem_name: Option<String>,
    /// Alignment of the dynamic shared memory start.
    pub dyn_smem_align: usize,
    /// Bytes of local memory per thread.
    pub local_size: usize,
    /// Bytes of `.func` param space per thread.
    pub fparam_size: usize,
    pub maxntid: Option<[u32; 3]>,
    /// Opcode names referenced by `Inst::name`.
    pub names: Vec<String>,
    /// Registers the entry function declares with `.reg` (an upper bound on what ptxas allocates).
    pub declared_regs: u32,
    /// What the kernel can reach that the VM does not implement (its code and the `.func`s it calls):
    /// (what, PTX line, `.loc` index). A launch of the kernel is refused when this is not empty.
    pub unsupported: Vec<(String, u32, u32)>,
    /// The kernel calls `malloc`: launches give the machine a device heap first.
    pub uses_heap: bool,
}
