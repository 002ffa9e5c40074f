//! Lowering: syntax tree to the interpreter's IR, once per module.
//!
//! Each kernel is lowered on its own together with the `.func`s it reaches, into one instruction
//! array with one register numbering. `.func` parameters, `.local` variables and the call
//! sequence's `.param` blocks get static per-thread offsets (no recursion: PTX from nvcc only
//! recurses when the CUDA source does, and the VM reports that as unsupported).

use crate::counters::InstClass;
use crate::error::{Result, VmError};
use crate::ir::*;
use crate::memory::{CONST_WIN, FPARAM_WIN, LOCAL_WIN, PARAM_WIN, SHARED_WIN};
use crate::num::*;
use crate::parse::ast::{self, Lit, Operand};
use crate::semantics::float as sf;
use std::collections::HashMap;

/// PTX fundamental types (PTX ISA 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    B8,
    B16,
    B32,
    B64,
    B128,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    Tf32,
    F32,
    F64,
    Pred,
}

impl Ty {
    pub(crate) fn parse(s: &str) -> Option<Ty> {
        use Ty::*;
        Some(match s {
            "b8" => B8,
            "b16" => B16,
            "b32" => B32,
            "b64" => B64,
            "b128" => B128,
            "u8" => U8,
            "u16" => U16,
            "u32" => U32,
            "u64" => U64,
            "s8" => S8,
            "s16" => S16,
            "s32" => S32,
            "s64" => S64,
            "f16" => F16,
            "f16x2" => F16x2,
            "bf16" => Bf16,
            "bf16x2" => Bf16x2,
            "tf32" => Tf32,
            "f32" => F32,
            "f64" => F64,
            "pred" => Pred,
            _ => return None,
        })
    }
    pub(crate) fn bytes(self) -> u8 {
        use Ty::*;
        match self {
            B8 | U8 | S8 | Pred => 1,
            B16 | U16 | S16 | F16 | Bf16 => 2,
            B32 | U32 | S32 | F16x2 | Bf16x2 | Tf32 | F32 => 4,
            B64 | U64 | S64 | F64 => 8,
            B128 => 16,
        }
    }
    fn signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
    fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2 | Ty::F32 | Ty::F64 | Ty::Tf32)
    }
}

/// Picks the monomorphised integer function for a type.
macro_rules! by_int {
    ($ty:expr, $f:ident $(, $extra:tt)*) => {
        match $ty {
            Ty::U8 | Ty::B8 => Some($f::<u8 $(, $extra)*> as _),
            Ty::S8 => Some($f::<i8 $(, $extra)*> as _),
            Ty::U16 | Ty::B16 => Some($f::<u16 $(, $extra)*> as _),
            Ty::S16 => Some($f::<i16 $(, $extra)*> as _),
            Ty::U32 | Ty::B32 => Some($f::<u32 $(, $extra)*> as _),
            Ty::S32 => Some($f::<i32 $(, $extra)*> as _),
            Ty::U64 | Ty::B64 => Some($f::<u64 $(, $extra)*> as _),
            Ty::S64 => Some($f::<i64 $(, $extra)*> as _),
            _ => None,
        }
    };
}

// After `by_int!`, which the families use.
mod arith;
mod async_copy;
mod atomic;
mod barrier;
mod compare;
mod control;
mod convert;
mod memory;
mod tensor;
mod tma;
mod warp;
mod warpgroup;
mod wgmma;

use arith::mov_fn;

/// The lowered module: kernels plus module-scope data.
pub(crate) struct ModuleIr {
    pub kernels: Vec<Kernel>,
    /// Module `.global` variables: (size, align, initial bytes).
    pub globals: Vec<(usize, usize, Vec<u8>)>,
    /// The constant bank (all module `.const` variables).
    pub const_bank: Vec<u8>,
    /// `.loc` table: index -> "file:line".
    pub locs: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
enum ModSym {
    Global(u32),
    Const(u64),
    Shared(usize),
    Func(usize),
}

#[derive(Clone, Copy, Debug)]
enum Sym {
    Reg(R),
    /// A variable: the register holding its address, its space.
    Var(R, Space),
}

fn unsup<T>(what: impl Into<String>, line: u32) -> Result<T> {
    Err(VmError::Unsupported { what: what.into(), line, source: None })
}

fn lit_bytes(l: Lit, ty: &str, size: usize) -> Vec<u8> {
    let bits = match (l, ty) {
        (Lit::Int(v), "f32") => (v as i64 as f32).to_bits() as u64,
        (Lit::Int(v), "f64") => (v as i64 as f64).to_bits(),
        (Lit::F64(b), "f32") => (f64::from_bits(b) as f32).to_bits() as u64,
        (Lit::F32(b), "f64") => (f32::from_bits(b) as f64).to_bits(),
        (Lit::Int(v), _) | (Lit::F64(v), _) => v,
        (Lit::F32(b), _) => b as u64,
    };
    bits.to_le_bytes()[..size.min(8)].to_vec()
}

fn init_bytes(v: &ast::VarDecl) -> Vec<u8> {
    let mut out = vec![0u8; v.size];
    let esz = crate::lower::Ty::parse(&v.ty).map(|t| t.bytes() as usize).unwrap_or(1);
    for (i, l) in v.init.iter().enumerate() {
        let b = lit_bytes(*l, &v.ty, esz);
        let at = i * esz;
        if at + b.len() <= out.len() {
            out[at..at + b.len()].copy_from_slice(&b);
        }
    }
    out
}

/// The unit that executes an instruction, from its decoded operation and, for plain arithmetic, its
/// opcode's type suffixes. Decided once here so that counting at run time is an array increment.
fn classify(opcode: &[String], op: &Op) -> InstClass {
    use InstClass as C;
    let mem = |space: Space, global: C, shared: C, local: C| match space {
        Space::Global | Space::Generic => global,
        Space::Shared => shared,
        Space::Local | Space::Param => local,
        Space::Const => C::ConstLoad,
    };
    match op {
        Op::Ld { space: Space::Param, .. } => C::ConstLoad,
        Op::Ld { space, .. } => mem(*space, C::GlobalLoad, C::SharedLoad, C::LocalLoad),
        Op::St { space, .. } => mem(*space, C::GlobalStore, C::SharedStore, C::LocalStore),
        Op::Atom { .. } => C::Atomic,
        Op::Bra { .. }
        | Op::Call { .. }
        | Op::CallIndirect { .. }
        | Op::Ret
        | Op::Exit
        | Op::Trap
        | Op::Malloc { .. }
        | Op::AssertFail { .. }
        | Op::Printf { .. }
        | Op::Unsupported { .. } => C::Control,
        Op::Bar { .. } | Op::BarWarp { .. } | Op::Mbarrier { .. } => C::Barrier,
        Op::ShflSync { .. }
        | Op::VoteSync { .. }
        | Op::MatchSync { .. }
        | Op::ReduxSync { .. }
        | Op::ElectSync { .. }
        | Op::Activemask { .. } => C::WarpCollective,
        Op::Setmaxnreg { .. } => C::Barrier,
        Op::Mma { .. } | Op::Wgmma(_) | Op::WgmmaCommit | Op::WgmmaWait { .. } => C::Tensor,
        Op::Ldmatrix { .. } => C::SharedLoad,
        Op::Stmatrix { .. } => C::SharedStore,
        Op::CpAsync { .. } | Op::CpCommit | Op::CpWait | Op::BulkCopy { .. } | Op::TensorCopy(_) => C::CpAsync,
        Op::Slow { k, .. } => match k {
            Slow::HalfApprox { .. } => C::Sfu,
            Slow::HalfBin { .. } | Slow::HalfFma { .. } | Slow::HalfNegAbs { .. } | Slow::CvtHalf { .. } => C::Half,
            Slow::Tf32 { .. } | Slow::F32Round { .. } => C::Fp32,
            Slow::F64Round { .. } => C::Fp64,
        },
        _ => {
            let head = opcode.first().map(String::as_str).unwrap_or("");
            let has = |m: &str| opcode.iter().skip(1).any(|x| x == m);
            // The MUFU instructions (CUDA C++ Programming Guide, "Arithmetic Instructions": special
            // functions run on the SFU at 16 results/clk/SM); `.approx` forms map to one MUFU op.
            let sfu = matches!(head, "ex2" | "lg2" | "sin" | "cos" | "tanh")
                || (matches!(head, "rcp" | "rsqrt" | "sqrt") && has("approx"));
            if sfu {
                return C::Sfu;
            }
            if matches!(head, "membar" | "fence") {
                return C::Barrier;
            }
            if matches!(head, "mov" | "ld" | "st" | "cvta" | "isspacep") {
                return C::Integer;
            }
            let halves = ["f16", "bf16", "f16x2", "bf16x2"];
            if opcode.iter().skip(1).any(|m| halves.contains(&m.as_str())) {
                C::Half
            } else if has("f64") {
                C::Fp64
            } else if has("f32") {
                C::Fp32
            } else {
                C::Integer
            }
        }
    }
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a.max(1)) * a.max(1)
}

/// The value of a function's address (a function pointer, a vtable entry): outside every data
/// window, so that a load or store through it faults, and never 0 (a null function pointer).
pub(crate) const FUNC_WIN: u64 = 0x7f << crate::memory::WIN_BITS;

fn func_addr(fi: usize) -> u64 {
    FUNC_WIN + 16 * (fi as u64 + 1)
}

/// The index of the function named `name` (its definition if it has one).
fn func_index(m: &ast::Module, name: &str) -> Option<usize> {
    let mut found = None;
    for (i, f) in m.functions.iter().enumerate() {
        if f.name == name && (found.is_none() || f.body.is_some()) {
            found = Some(i);
        }
    }
    found
}

/// `init_bytes` with the address initialisers resolved: function names become function addresses.
fn init_bytes_with_addrs(m: &ast::Module, v: &ast::VarDecl) -> Result<Vec<u8>> {
    let mut out = init_bytes(v);
    let esz = crate::lower::Ty::parse(&v.ty).map(|t| t.bytes() as usize).unwrap_or(1);
    for (i, name) in &v.addr_init {
        let Some(fi) = func_index(m, name) else {
            return unsup(
                format!("the address of `{name}` (not a function) in the initialiser of `{}`", v.name),
                v.line,
            );
        };
        if esz != 8 {
            return unsup(format!("a function address in the {esz}-byte elements of `{}`", v.name), v.line);
        }
        if let Some(dst) = out.get_mut(i * 8..i * 8 + 8) {
            dst.copy_from_slice(&func_addr(fi).to_le_bytes());
        }
    }
    Ok(out)
}

/// Functions whose address the module takes (in an initialiser or as an operand other than a
/// direct call's target): the possible callees of an indirect call.
fn address_taken(m: &ast::Module) -> Vec<usize> {
    let mut names: Vec<&str> = m.vars.iter().flat_map(|v| v.addr_init.iter().map(|(_, n)| n.as_str())).collect();
    for f in &m.functions {
        for st in f.body.iter().flatten() {
            if let ast::Stmt::Instr(ins) = st {
                if ins.opcode.first().map(String::as_str) == Some("call") {
                    continue;
                }
                for o in &ins.operands {
                    if let Operand::Name(n) = o {
                        names.push(n);
                    }
                }
            }
        }
    }
    let mut out: Vec<usize> = names.into_iter().filter_map(|n| func_index(m, n)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Lowers a parsed module.
pub(crate) fn lower_module(m: &ast::Module) -> Result<ModuleIr> {
    if m.address_size != 0 && m.address_size != 64 {
        return unsup(format!(".address_size {} (the VM models 64-bit addressing)", m.address_size), 0);
    }
    let mut syms = HashMap::new();
    let mut globals = Vec::new();
    let mut const_bank = Vec::new();
    for (i, v) in m.vars.iter().enumerate() {
        let s = match v.space.as_str() {
            "global" => {
                globals.push((v.size, v.align, init_bytes_with_addrs(m, v)?));
                ModSym::Global((globals.len() - 1) as u32)
            }
            "const" => {
                let off = align_up(const_bank.len(), v.align);
                const_bank.resize(off, 0);
                const_bank.extend_from_slice(&init_bytes_with_addrs(m, v)?);
                ModSym::Const(off as u64)
            }
            "shared" => ModSym::Shared(i),
            s => return unsup(format!("module-scope .{s} variable"), v.line),
        };
        syms.insert(v.name.clone(), s);
    }
    for (i, f) in m.functions.iter().enumerate() {
        // A later definition replaces an earlier declaration.
        if f.body.is_some() || !syms.contains_key(&f.name) {
            syms.insert(f.name.clone(), ModSym::Func(i));
        }
    }
    let files: HashMap<u32, &str> = m.files.iter().map(|(i, p)| (*i, p.as_str())).collect();
    let locs = m
        .locs
        .iter()
        .map(|&(f, l, inf, inl)| {
            let name = |f: u32| files.get(&f).map(|p| p.rsplit('/').next().unwrap_or(p)).unwrap_or("?");
            if inf == 0 {
                format!("{}:{l}", name(f))
            } else {
                format!("{}:{l}, inlined at {}:{inl}", name(f), name(inf))
            }
        })
        .collect();
    let mut kernels = Vec::new();
    for f in &m.functions {
        if f.is_entry && f.body.is_some() {
            kernels.push(KernelLowering::new(m, &syms).run(f)?);
        }
    }
    Ok(ModuleIr { kernels, globals, const_bank, locs })
}

/// What a predefined identifier or special register reads as on the VM (PTX ISA 10 "Special
/// Registers" and 5.4.5 "Predefined Identifiers"). The documented values are in the crate docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Predefined {
    /// The same value for every thread of every launch.
    Const(u64),
    /// Fixed for a thread during a launch, filled when its warp starts.
    Sreg(Sreg),
    /// Advances while the warp runs; only `mov` reads it.
    Clock(ClockReg),
}

/// Resolves a predefined name, e.g. `WARP_SZ`, `%tid.x`, `%envreg3`, `%clock64`.
pub(crate) fn predefined(name: &str) -> Option<Predefined> {
    use Predefined::{Clock, Const, Sreg as S};
    if let Some((base, d)) = name.split_once('.') {
        let d = match d {
            "x" => 0u8,
            "y" => 1,
            "z" => 2,
            _ => return None,
        };
        return Some(match base {
            "%tid" => S(Sreg::Tid(d)),
            "%ntid" => S(Sreg::Ntid(d)),
            "%ctaid" => S(Sreg::Ctaid(d)),
            "%nctaid" => S(Sreg::Nctaid(d)),
            // Every CTA is its own 1x1x1 cluster (no `.reqnctapercluster` launch is modelled).
            "%clusterid" => S(Sreg::ClusterId(d)),
            "%nclusterid" => S(Sreg::NclusterId(d)),
            "%cluster_ctaid" => Const(0),
            "%cluster_nctaid" => Const(1),
            _ => return None,
        });
    }
    // `%envreg<32>` and `%pm<8>` are numbered without leading zeros.
    let index_below = |k: &str, n: u32| {
        !k.is_empty()
            && k.bytes().all(|c| c.is_ascii_digit())
            && (k == "0" || !k.starts_with('0'))
            && k.parse::<u32>().is_ok_and(|v| v < n)
    };
    let numbered = |prefix: &str, n: u32| name.strip_prefix(prefix).is_some_and(|k| index_below(k, n));
    let pm_index = |n: &str| n.strip_prefix("%pm").is_some_and(|k| index_below(k, 8));
    Some(match name {
        "WARP_SZ" => Const(32),
        "%laneid" => S(Sreg::Laneid),
        "%warpid" => S(Sreg::Warpid),
        "%nwarpid" => S(Sreg::Nwarpid),
        "%lanemask_eq" => S(Sreg::LanemaskEq),
        "%lanemask_lt" => S(Sreg::LanemaskLt),
        "%lanemask_le" => S(Sreg::LanemaskLe),
        "%lanemask_gt" => S(Sreg::LanemaskGt),
        "%lanemask_ge" => S(Sreg::LanemaskGe),
        "%smid" => S(Sreg::Smid),
        "%nsmid" => S(Sreg::Nsmid),
        "%gridid" => S(Sreg::GridId),
        "%dynamic_smem_size" => S(Sreg::DynSmemSize),
        // The VM reserves no shared memory for the system, so the aggregate is the kernel's own.
        "%total_smem_size" | "%aggr_smem_size" => S(Sreg::TotalSmemSize),
        "%reserved_smem_offset_begin"
        | "%reserved_smem_offset_end"
        | "%reserved_smem_offset_cap"
        | "%reserved_smem_offset_0"
        | "%reserved_smem_offset_1" => Const(0),
        "%current_graph_exec" => Const(0),
        "%cluster_ctarank" => Const(0),
        "%cluster_nctarank" => Const(1),
        "%is_explicit_cluster" => Const(0),
        "%clock" => Clock(ClockReg::ClockLo),
        "%clock_hi" => Clock(ClockReg::ClockHi),
        "%clock64" => Clock(ClockReg::Clock64),
        "%globaltimer" => Clock(ClockReg::Timer),
        "%globaltimer_lo" => Clock(ClockReg::TimerLo),
        "%globaltimer_hi" => Clock(ClockReg::TimerHi),
        _ if numbered("%envreg", 32) => Const(0),
        _ if numbered("%pm", 8) || name.strip_suffix("_64").is_some_and(|n| n.starts_with("%pm") && pm_index(n)) => {
            Const(0)
        }
        _ => return None,
    })
}

/// What a launch needs to know of one kernel parameter declaration at `offset`.
fn param_info(p: &ast::VarDecl, offset: usize) -> crate::params::ParamInfo {
    let (class, elem_bits) = crate::params::ParamClass::of(&p.ty);
    let elem = (elem_bits as usize / 8).max(1);
    crate::params::ParamInfo {
        name: p.name.clone(),
        offset,
        size: p.size,
        align: p.align,
        class,
        elem_bits,
        array_len: p.is_array.then(|| p.size / elem),
        ptr: p.is_ptr,
    }
}

/// A `.func`'s per-thread param area: (offset, size) of each return value and each parameter.
type Layout = (Vec<(u32, u32)>, Vec<(u32, u32)>);

struct KernelLowering<'m> {
    m: &'m ast::Module,
    syms: &'m HashMap<String, ModSym>,
    nregs: u32,
    init: Vec<(R, Init)>,
    consts: HashMap<Init, R>,
    code: Vec<Inst>,
    static_smem: usize,
    dyn_align: usize,
    module_shared: HashMap<usize, usize>,
    shared_vars: Vec<(String, usize, usize)>,
    dyn_smem_name: Option<String>,
    local_size: usize,
    fparam_size: usize,
    param_size: usize,
    params: Vec<crate::params::ParamInfo>,
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
    /// Per `.func` index: (entry pc once lowered, ret offsets+sizes, param offsets+sizes).
    func_layout: HashMap<usize, Layout>,
    func_pc: HashMap<usize, u32>,
    worklist: Vec<usize>,
    call_patches: Vec<(usize, usize)>,
    /// Indirect calls' targets to resolve: (pc, index in its targets, function).
    indirect_patches: Vec<(usize, usize, usize)>,
    cc: R,
    scopes: Vec<HashMap<String, Sym>>,
    /// Sizes of the call sequences' `.param` variables, by offset.
    fparam_decl: HashMap<u32, u32>,
    /// Whether the body being lowered is the kernel's own (not a called `.func`).
    entry_body: bool,
    /// `.reg` names the kernel's body declares.
    declared_regs: u32,
    /// Unsupported instructions and calls met so far: (what, PTX line, `.loc` index).
    unsupported: Vec<(String, u32, u32)>,
}

impl<'m> KernelLowering<'m> {
    fn new(m: &'m ast::Module, syms: &'m HashMap<String, ModSym>) -> Self {
        KernelLowering {
            m,
            syms,
            nregs: 0,
            init: Vec::new(),
            consts: HashMap::new(),
            code: Vec::new(),
            static_smem: 0,
            dyn_align: 16,
            module_shared: HashMap::new(),
            shared_vars: Vec::new(),
            dyn_smem_name: None,
            local_size: 0,
            fparam_size: 0,
            param_size: 0,
            params: Vec::new(),
            names: Vec::new(),
            name_ids: HashMap::new(),
            func_layout: HashMap::new(),
            func_pc: HashMap::new(),
            worklist: Vec::new(),
            call_patches: Vec::new(),
            indirect_patches: Vec::new(),
            cc: NO_REG,
            scopes: Vec::new(),
            fparam_decl: HashMap::new(),
            entry_body: false,
            declared_regs: 0,
            unsupported: Vec::new(),
        }
    }

    fn run(mut self, f: &ast::Function) -> Result<Kernel> {
        self.cc = self.new_reg();
        // Kernel parameters live in the param window, at their natural alignment.
        let mut scope = HashMap::new();
        for p in &f.params {
            let off = align_up(self.param_size, p.align);
            self.param_size = off + p.size;
            self.params.push(param_info(p, off));
            let r = self.konst(Init::Val(PARAM_WIN + off as u64));
            scope.insert(p.name.clone(), Sym::Var(r, Space::Param));
        }
        self.entry_body = true;
        self.body(f, scope)?;
        self.entry_body = false;
        while let Some(fi) = self.worklist.pop() {
            if self.func_pc.contains_key(&fi) {
                continue;
            }
            let func = &self.m.functions[fi];
            self.func_pc.insert(fi, self.code.len() as u32);
            let Some((rets, params)) = self.func_layout.get(&fi).cloned() else {
                return Err(VmError::Undefined { name: func.name.clone(), line: func.line });
            };
            let mut scope = HashMap::new();
            for (decl, (off, _)) in func.rets.iter().zip(&rets).chain(func.params.iter().zip(&params)) {
                let r = self.konst(Init::Val(FPARAM_WIN + *off as u64));
                scope.insert(decl.name.clone(), Sym::Var(r, Space::Param));
            }
            self.body(func, scope)?;
        }
        for (pc, fi) in std::mem::take(&mut self.call_patches) {
            let Some(&t) = self.func_pc.get(&fi) else {
                let f = &self.m.functions[fi];
                return Err(VmError::Undefined { name: f.name.clone(), line: self.code[pc].line });
            };
            if let Op::Call { target, .. } = &mut self.code[pc].op {
                *target = t;
            }
        }
        for (pc, i, fi) in std::mem::take(&mut self.indirect_patches) {
            let t = self.func_pc.get(&fi).copied();
            if let (Some(t), Op::CallIndirect { targets, .. }) = (t, &mut self.code[pc].op) {
                targets[i].target = t;
            }
        }
        // Recursion and ill-fitting calls refuse the kernel at launch, like an unsupported
        // instruction, not the module.
        if let Err(VmError::Unsupported { what, line, .. }) = self.check_recursion(f) {
            self.unsupported.push((what, line, 0));
        }
        // Every call's copies stay inside a thread's param area (the interpreter relies on it).
        for ins in &self.code {
            let copies: Vec<&Copy> = match &ins.op {
                Op::Call { copy_in, copy_out, .. } => copy_in.iter().chain(copy_out.iter()).collect(),
                Op::CallIndirect { targets, .. } => {
                    targets.iter().flat_map(|t| t.copy_in.iter().chain(t.copy_out.iter())).collect()
                }
                _ => continue,
            };
            for c in copies {
                if (c.src.max(c.dst) + c.len) as usize > self.fparam_size {
                    let what = "a call whose arguments do not fit the declared parameters".to_string();
                    self.unsupported.push((what, ins.line, ins.loc));
                    break;
                }
            }
        }
        let uses_heap = self.code.iter().any(|i| matches!(i.op, Op::Malloc { .. }));
        Ok(Kernel {
            name: f.name.clone(),
            code: self.code,
            nregs: self.nregs as usize,
            init: self.init,
            param_size: self.param_size,
            params: self.params,
            static_smem: self.static_smem,
            shared_vars: self.shared_vars,
            dyn_smem_name: self.dyn_smem_name,
            dyn_smem_align: self.dyn_align,
            local_size: self.local_size,
            fparam_size: self.fparam_size,
            maxntid: f.maxntid,
            names: self.names,
            declared_regs: self.declared_regs,
            unsupported: self.unsupported,
            uses_heap,
        })
    }

    /// Static per-thread param and local offsets are only sound without recursion.
    fn check_recursion(&self, f: &ast::Function) -> Result<()> {
        let mut edges: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut starts: Vec<(u32, usize)> = self.func_pc.iter().map(|(&fi, &pc)| (pc, fi)).collect();
        starts.sort();
        let owner = |pc: u32| starts.iter().rev().find(|s| s.0 <= pc).map(|s| s.1).unwrap_or(usize::MAX);
        for (pc, ins) in self.code.iter().enumerate() {
            if let Op::Call { target, .. } = ins.op {
                let callee = owner(target);
                edges.entry(owner(pc as u32)).or_default().push(callee);
            }
            if let Op::CallIndirect { targets, .. } = &ins.op {
                for t in targets.iter() {
                    edges.entry(owner(pc as u32)).or_default().push(owner(t.target));
                }
            }
        }
        // Depth-first search for a cycle.
        fn dfs(n: usize, e: &HashMap<usize, Vec<usize>>, state: &mut HashMap<usize, u8>) -> bool {
            match state.get(&n) {
                Some(1) => return true,
                Some(2) => return false,
                _ => {}
            }
            state.insert(n, 1);
            for &c in e.get(&n).map(|v| v.as_slice()).unwrap_or(&[]) {
                if dfs(c, e, state) {
                    return true;
                }
            }
            state.insert(n, 2);
            false
        }
        let mut state = HashMap::new();
        if dfs(usize::MAX, &edges, &mut state) {
            return unsup(format!("recursive calls (reached from kernel `{}`)", f.name), f.line);
        }
        Ok(())
    }

    fn new_reg(&mut self) -> R {
        self.nregs += 1;
        self.nregs - 1
    }

    fn konst(&mut self, v: Init) -> R {
        if let Some(&r) = self.consts.get(&v) {
            return r;
        }
        let r = self.new_reg();
        self.init.push((r, v));
        self.consts.insert(v, r);
        r
    }

    fn imm(&mut self, v: u64) -> R {
        self.konst(Init::Val(v))
    }

    fn name_id(&mut self, s: String) -> u32 {
        if let Some(&i) = self.name_ids.get(&s) {
            return i;
        }
        self.names.push(s.clone());
        self.name_ids.insert(s, (self.names.len() - 1) as u32);
        (self.names.len() - 1) as u32
    }

    /// Gives a `.func` its param-area layout (once per kernel) and queues its body.
    fn layout_func(&mut self, fi: usize) -> Layout {
        if let Some(l) = self.func_layout.get(&fi) {
            return l.clone();
        }
        let f = &self.m.functions[fi];
        let mut place = |decls: &[ast::VarDecl]| {
            decls
                .iter()
                .map(|d| {
                    let off = align_up(self.fparam_size, d.align);
                    self.fparam_size = off + d.size;
                    (off as u32, d.size as u32)
                })
                .collect::<Vec<_>>()
        };
        let l = (place(&f.rets), place(&f.params));
        self.func_layout.insert(fi, l.clone());
        self.worklist.push(fi);
        l
    }

    fn body(&mut self, f: &ast::Function, scope: HashMap<String, Sym>) -> Result<()> {
        let Some(stmts) = &f.body else { return Ok(()) };
        self.scopes = vec![scope];
        // Labels: function-wide, pointing at the next instruction.
        let mut labels = HashMap::new();
        let mut pc = self.code.len() as u32;
        for s in stmts {
            match s {
                ast::Stmt::Label(l) => {
                    labels.insert(l.clone(), pc);
                }
                ast::Stmt::Instr(_) => pc += 1,
                _ => {}
            }
        }
        for s in stmts {
            match s {
                ast::Stmt::Reg { ty, names } => {
                    Ty::parse(ty).ok_or_else(|| VmError::Unsupported {
                        what: format!("register type .{ty}"),
                        line: f.line,
                        source: None,
                    })?;
                    if self.entry_body {
                        self.declared_regs += names.len() as u32;
                    }
                    for n in names {
                        let r = self.new_reg();
                        if let Some(sc) = self.scopes.last_mut() {
                            sc.insert(n.clone(), Sym::Reg(r));
                        }
                    }
                }
                ast::Stmt::Var(v) => {
                    let sym = match v.space.as_str() {
                        "local" => {
                            let off = align_up(self.local_size, v.align);
                            self.local_size = off + v.size;
                            Sym::Var(self.imm(off as u64), Space::Local)
                        }
                        "shared" => {
                            let off = align_up(self.static_smem, v.align);
                            self.static_smem = off + v.size;
                            self.shared_vars.push((v.name.clone(), off, v.size));
                            Sym::Var(self.imm(off as u64), Space::Shared)
                        }
                        "param" => {
                            let off = align_up(self.fparam_size, v.align);
                            self.fparam_size = off + v.size;
                            self.fparam_decl.insert(off as u32, v.size as u32);
                            Sym::Var(self.imm(FPARAM_WIN + off as u64), Space::Param)
                        }
                        s => return unsup(format!(".{s} variable inside a function"), v.line),
                    };
                    if let Some(sc) = self.scopes.last_mut() {
                        sc.insert(v.name.clone(), sym);
                    }
                }
                ast::Stmt::Open => self.scopes.push(HashMap::new()),
                ast::Stmt::Close => {
                    self.scopes.pop();
                }
                ast::Stmt::Label(_) => {}
                ast::Stmt::Instr(ins) => {
                    let guard = match &ins.guard {
                        Some((p, neg)) => (self.reg(p, ins.line)?, *neg),
                        None => (NO_REG, false),
                    };
                    let name = self.name_id(ins.opcode.join("."));
                    let op = match self.instr(ins, &labels) {
                        Ok(op) => op,
                        // Refused late: only a launch of a kernel that reaches it fails. The names it
                        // uses must still exist, so that a misspelt name stays a parse error.
                        Err(VmError::Unsupported { what, line, .. }) => {
                            self.check_names(ins, &labels)?;
                            self.unsupported.push((what.clone(), line, ins.loc));
                            Op::Unsupported { what: self.name_id(what) }
                        }
                        Err(e) => return Err(e),
                    };
                    let class = classify(&ins.opcode, &op);
                    self.code.push(Inst {
                        op,
                        guard: guard.0,
                        guard_neg: guard.1,
                        line: ins.line,
                        loc: ins.loc,
                        name,
                        class,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every name an instruction's operands use is declared (a register, variable, label, function
    /// or predefined identifier).
    fn check_names(&self, ins: &ast::Instr, labels: &HashMap<String, u32>) -> Result<()> {
        fn names<'a>(op: &'a Operand, out: &mut Vec<&'a str>) {
            match op {
                Operand::Name(n) | Operand::Not(n) | Operand::Addr { base: Some(n), .. } => out.push(n),
                Operand::Pair(a, b) => out.extend([a.as_str(), b.as_str()].into_iter().filter(|n| *n != "_")),
                Operand::Vec(v) | Operand::List(v) | Operand::Bracket(v) => v.iter().for_each(|o| names(o, out)),
                Operand::Lit(_) | Operand::Addr { base: None, .. } | Operand::Sink => {}
            }
        }
        let mut used = Vec::new();
        ins.operands.iter().for_each(|o| names(o, &mut used));
        for n in used {
            let known = self.lookup(n).is_some()
                || self.syms.contains_key(n)
                || labels.contains_key(n)
                || predefined(n).is_some();
            if !known {
                return Err(VmError::Undefined { name: n.to_string(), line: ins.line });
            }
        }
        Ok(())
    }

    fn lookup(&self, name: &str) -> Option<Sym> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn reg(&mut self, name: &str, line: u32) -> Result<R> {
        match self.lookup(name) {
            Some(Sym::Reg(r)) => Ok(r),
            _ => Err(VmError::Undefined { name: name.to_string(), line }),
        }
    }

    /// The register holding a predefined identifier or constant special register (see
    /// [`predefined`]); None for other names and for the time registers, which only `mov` reads.
    fn special(&mut self, name: &str) -> Option<R> {
        match predefined(name)? {
            Predefined::Const(v) => Some(self.imm(v)),
            Predefined::Sreg(s) => Some(self.konst(Init::Special(s))),
            Predefined::Clock(_) => None,
        }
    }

    /// The register holding a module or function variable's address in its state space.
    fn var_addr(&mut self, name: &str) -> Option<(R, Space)> {
        if let Some(Sym::Var(r, s)) = self.lookup(name) {
            return Some((r, s));
        }
        match self.syms.get(name).copied()? {
            ModSym::Global(i) => Some((self.konst(Init::GlobalVar(i)), Space::Global)),
            ModSym::Const(off) => Some((self.imm(off), Space::Const)),
            ModSym::Shared(vi) => {
                let v = &self.m.vars[vi];
                if v.is_extern || v.unsized_array {
                    self.dyn_align = self.dyn_align.max(v.align);
                    self.dyn_smem_name.get_or_insert_with(|| v.name.clone());
                    return Some((self.konst(Init::DynShared), Space::Shared));
                }
                let off = match self.module_shared.get(&vi) {
                    Some(&o) => o,
                    None => {
                        let o = align_up(self.static_smem, v.align);
                        self.static_smem = o + v.size;
                        self.module_shared.insert(vi, o);
                        self.shared_vars.push((v.name.clone(), o, v.size));
                        o
                    }
                };
                Some((self.imm(off as u64), Space::Shared))
            }
            ModSym::Func(_) => None,
        }
    }

    fn lit_value(l: Lit, ty: Ty) -> u64 {
        match (l, ty) {
            (Lit::F32(b), Ty::F64) => f64b(f32::from_bits(b) as f64),
            (Lit::F64(b), Ty::F32) => f32b(f64::from_bits(b) as f32),
            (Lit::F32(b), _) => b as u64,
            (Lit::F64(b), _) => b,
            (Lit::Int(v), Ty::F32) => f32b(v as i64 as f32),
            (Lit::Int(v), Ty::F64) => f64b(v as i64 as f64),
            (Lit::Int(v), t) if t.bytes() < 8 => v & ((1u64 << (t.bytes() * 8)) - 1),
            (Lit::Int(v), _) => v,
        }
    }

    /// A source operand as a register (immediates and addresses become constant registers).
    fn src(&mut self, op: &Operand, ty: Ty, line: u32) -> Result<R> {
        match op {
            Operand::Name(n) => {
                if let Some(Sym::Reg(r)) = self.lookup(n) {
                    return Ok(r);
                }
                if let Some(r) = self.special(n) {
                    return Ok(r);
                }
                if let Some((r, _)) = self.var_addr(n) {
                    return Ok(r);
                }
                if let Some(&ModSym::Func(_)) = self.syms.get(n) {
                    // A function pointer; its body is lowered for the indirect calls that may use it.
                    let fi = func_index(self.m, n).unwrap_or(0);
                    return Ok(self.imm(func_addr(fi)));
                }
                if let Some(Predefined::Clock(_)) = predefined(n) {
                    return unsup(format!("{n} as an operand other than the source of mov"), line);
                }
                Err(VmError::Undefined { name: n.clone(), line })
            }
            Operand::Lit(l) => Ok(self.imm(Self::lit_value(*l, ty))),
            Operand::Addr { base: Some(b), offset } => {
                // `var+8` as a value: the variable's address plus an offset.
                let (r, _) = self.var_addr(b).ok_or_else(|| VmError::Undefined { name: b.clone(), line })?;
                let base = self.init.iter().find(|x| x.0 == r).map(|x| x.1);
                match base {
                    Some(Init::Val(v)) => Ok(self.imm(v.wrapping_add(*offset as u64))),
                    _ => unsup("an offset from a global or dynamic shared variable as an operand", line),
                }
            }
            _ => unsup(format!("operand {op:?}"), line),
        }
    }

    fn dst(&mut self, op: &Operand, line: u32) -> Result<R> {
        match op {
            Operand::Name(n) => self.reg(n, line),
            Operand::Sink => Ok(self.new_reg()),
            _ => unsup(format!("destination operand {op:?}"), line),
        }
    }

    /// `[base+off]`: the register holding the base and the offset; the space of a named variable.
    fn addr(&mut self, op: &Operand, line: u32) -> Result<(R, i64, Option<Space>)> {
        match op {
            Operand::Addr { base: Some(b), offset } => {
                if let Some(Sym::Reg(r)) = self.lookup(b) {
                    return Ok((r, *offset, None));
                }
                let (r, s) = self.var_addr(b).ok_or_else(|| VmError::Undefined { name: b.clone(), line })?;
                Ok((r, *offset, Some(s)))
            }
            Operand::Addr { base: None, offset } => Ok((self.imm(0), *offset, None)),
            _ => unsup(format!("address operand {op:?}"), line),
        }
    }

    fn ops<'a>(&self, ins: &'a ast::Instr, n: usize) -> Result<&'a [Operand]> {
        if ins.operands.len() < n {
            return Err(VmError::Parse {
                line: ins.line,
                message: format!("`{}` needs {n} operands, found {}", ins.opcode.join("."), ins.operands.len()),
            });
        }
        Ok(&ins.operands)
    }

    fn instr(&mut self, ins: &ast::Instr, labels: &HashMap<String, u32>) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let head = ins.opcode[0].as_str();
        let mods: Vec<&str> = ins.opcode[1..].iter().map(|s| s.as_str()).collect();
        let has = |m: &str| mods.contains(&m);
        let types: Vec<Ty> = mods.iter().filter_map(|m| Ty::parse(m)).collect();
        let ty = types.last().copied();
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let rnd = if has("rz") || has("rzi") {
            Rnd::Rz
        } else if has("rm") || has("rmi") {
            Rnd::Rm
        } else if has("rp") || has("rpi") {
            Rnd::Rp
        } else {
            Rnd::Rn
        };
        let ftz = has("ftz");
        let sat = has("sat");
        let o = &ins.operands;
        let flags32 = (if ftz { FTZ32 } else { 0 }) | (if sat { SAT32 } else { 0 });
        match head {
            "mov" => self.mov(ins, ty),
            "ld" | "ldu" | "st" => self.ld_st(ins, &mods, ty.ok_or_else(bad)?, head == "st"),
            "cvta" => self.cvta(ins, &mods),
            "bra" | "brx" => {
                if head == "brx" {
                    return Err(bad());
                }
                let Some(Operand::Name(l)) = o.first() else { return Err(bad()) };
                let t = labels.get(l).ok_or_else(|| VmError::Undefined { name: l.clone(), line })?;
                Ok(Op::Bra { target: *t })
            }
            "call" => self.call(ins),
            "ret" => Ok(Op::Ret),
            "exit" => Ok(Op::Exit),
            "trap" => Ok(Op::Trap),
            "brkpt" | "nanosleep" | "membar" | "fence" | "prefetch" | "prefetchu" | "discard" | "pmevent" => {
                Ok(Op::Nop)
            }
            "createpolicy" => {
                let d = self.dst(self.ops(ins, 1)?.first().ok_or_else(bad)?, line)?;
                let z = self.imm(0);
                Ok(Op::Un { f: mov_fn(Ty::B64), d, a: z, flags: 0 })
            }
            "activemask" => Ok(Op::Activemask { d: self.dst(self.ops(ins, 1)?.first().ok_or_else(bad)?, line)? }),
            "bar" | "barrier" => self.bar(ins, &mods),
            "shfl" => self.shfl(ins, &mods),
            "vote" => self.vote(ins, &mods),
            "match" => self.match_sync(ins, &mods, ty),
            "redux" => self.redux(ins, &mods, ty),
            "atom" | "red" => self.atom(ins, &mods, head == "red"),
            "mma" => self.mma(ins, &mods),
            "ldmatrix" | "stmatrix" => self.ldmatrix_stmatrix(ins, &mods),
            "mbarrier" => self.mbarrier(ins, &mods),
            "isspacep" => self.isspacep(ins, &mods),
            "dp4a" => self.dp4a(ins, &types),
            "dp2a" => self.dp2a(ins, &mods, &types),
            "vabsdiff4" => self.vabsdiff4(ins, &mods, &types),
            "elect" => self.elect(ins),
            "setmaxnreg" => self.setmaxnreg(ins, &mods),
            "wgmma" => self.wgmma(ins, &mods),
            "griddepcontrol" => self.griddepcontrol(ins, &mods),
            "cp" => self.cp_async(ins, &mods),
            "setp" => self.setp(ins, &mods),
            "set" => self.set(ins, &mods, &types, ftz),
            "selp" => self.selp(ins, ty),
            "slct" => self.slct(ins, &types, ty, ftz),
            "cvt" => self.cvt(ins, &mods, &types),
            "add" | "sub" if has("cc") || head == "addc" => self.carry(ins, &mods),
            "addc" | "subc" => self.carry(ins, &mods),
            "mad" | "madc" if has("cc") || head == "madc" => self.carry(ins, &mods),
            _ => {
                let t = ty.ok_or_else(bad)?;
                if t.is_float() {
                    self.float_op(ins, head, &mods, t, rnd, flags32)
                } else {
                    self.int_op(ins, head, &mods, t)
                }
            }
        }
    }

    fn pred_src(&mut self, op: &Operand, line: u32) -> Result<(R, bool)> {
        match op {
            Operand::Not(n) => Ok((self.reg(n, line)?, true)),
            Operand::Lit(Lit::Int(v)) => Ok((self.imm((*v != 0) as u64), false)),
            _ => Ok((self.src(op, Ty::Pred, line)?, false)),
        }
    }

    fn dst_pair(&mut self, op: &Operand, line: u32) -> Result<(R, R)> {
        match op {
            // PTX ISA 9.7.13 (`elect.sync`, `shfl.sync`): the sink `_` may stand for `d`.
            Operand::Pair(d, p) if d == "_" => Ok((self.new_reg(), self.reg(p, line)?)),
            Operand::Pair(d, p) => Ok((self.reg(d, line)?, self.reg(p, line)?)),
            _ => Ok((self.dst(op, line)?, NO_REG)),
        }
    }
}

/// Rejects modifiers outside `allowed` (types are always allowed; `.sat` where `sat_ok`), so that
/// a form the VM does not implement fails at load time instead of running with the wrong meaning.
fn check_mods(mods: &[&str], allowed: &[&str], sat_ok: bool, line: u32, full: &str) -> Result<()> {
    for m in mods {
        if Ty::parse(m).is_none() && !allowed.contains(m) && !(sat_ok && *m == "sat") {
            return unsup(format!("{full} (modifier .{m})"), line);
        }
    }
    Ok(())
}

/// Flag: the result is an integer (skip the f32 output flush of `.ftz`).
pub(crate) const INT_OUT: u8 = 8;
