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
        Op::Mma { .. } => C::Tensor,
        Op::Ldmatrix { .. } => C::SharedLoad,
        Op::Stmatrix { .. } => C::SharedStore,
        Op::CpAsync { .. } | Op::CpCommit | Op::CpWait => C::CpAsync,
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
                Operand::Pair(a, b) => out.extend([a.as_str(), b.as_str()]),
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
                    return Some((self.konst(Init::DynShared), Space::Shared));
                }
                let off = match self.module_shared.get(&vi) {
                    Some(&o) => o,
                    None => {
                        let o = align_up(self.static_smem, v.align);
                        self.static_smem = o + v.size;
                        self.module_shared.insert(vi, o);
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
            "mov" => {
                let o = self.ops(ins, 2)?;
                let t = ty.ok_or_else(bad)?;
                let pieces = match (&o[0], &o[1]) {
                    (Operand::Vec(v), _) | (_, Operand::Vec(v)) => v.len(),
                    _ => 1,
                };
                if t == Ty::B128 || !matches!(pieces, 1 | 2 | 4) || (pieces > 1 && t.bytes() < 2) {
                    return Err(bad());
                }
                if let Operand::Vec(v) = &o[1] {
                    let mut srcs = [NO_REG; 4];
                    let piece = Ty::parse(&format!("b{}", t.bytes() as usize * 8 / v.len())).unwrap_or(Ty::B32);
                    for (i, s) in v.iter().enumerate().take(4) {
                        srcs[i] = self.src(s, piece, line)?;
                    }
                    let d = self.dst(&o[0], line)?;
                    return Ok(Op::Pack { d, srcs, n: v.len() as u8, bits: (t.bytes() as usize * 8 / v.len()) as u8 });
                }
                if let Operand::Vec(v) = &o[0] {
                    let mut dsts = [NO_REG; 4];
                    for (i, s) in v.iter().enumerate().take(4) {
                        dsts[i] = self.dst(s, line)?;
                    }
                    let s = self.src(&o[1], t, line)?;
                    return Ok(Op::Unpack {
                        dsts,
                        n: v.len() as u8,
                        bits: (t.bytes() as usize * 8 / v.len()) as u8,
                        s,
                    });
                }
                let d = self.dst(&o[0], line)?;
                if let Operand::Name(n) = &o[1] {
                    if let Some(Predefined::Clock(which)) = predefined(n) {
                        return Ok(Op::Clock { d, which });
                    }
                }
                let a = self.src(&o[1], t, line)?;
                Ok(Op::Un { f: mov_fn(t), d, a, flags: 0 })
            }
            "ld" | "ldu" | "st" => self.ld_st(ins, &mods, ty.ok_or_else(bad)?, head == "st"),
            "cvta" => {
                let o = self.ops(ins, 2)?;
                let to = has("to");
                let win = if has("shared") {
                    SHARED_WIN
                } else if has("local") {
                    LOCAL_WIN
                } else if has("const") {
                    CONST_WIN
                } else if has("param") || has("global") {
                    0
                } else {
                    return Err(bad());
                };
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], Ty::U64, line)?;
                let w = self.imm(win);
                let f = if has("u32") {
                    if to {
                        f2!(|a, b| a.wrapping_sub(b) & 0xffff_ffff)
                    } else {
                        f2!(|a, b| (a & 0xffff_ffff).wrapping_add(b))
                    }
                } else if to {
                    f2!(|a, b| if a >= b { a.wrapping_sub(b) } else { a })
                } else {
                    f2!(|a, b| a.wrapping_add(b))
                };
                Ok(Op::Bin { f, d, a, b: w, flags: 0 })
            }
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
            "brkpt" | "nanosleep" | "membar" | "fence" | "griddepcontrol" | "prefetch" | "prefetchu" | "discard"
            | "pmevent" => Ok(Op::Nop),
            "createpolicy" => {
                let d = self.dst(self.ops(ins, 1)?.first().ok_or_else(bad)?, line)?;
                let z = self.imm(0);
                Ok(Op::Un { f: mov_fn(Ty::B64), d, a: z, flags: 0 })
            }
            "activemask" => Ok(Op::Activemask { d: self.dst(self.ops(ins, 1)?.first().ok_or_else(bad)?, line)? }),
            "bar" | "barrier" => self.bar(ins, &mods),
            "shfl" => {
                let o = self.ops(ins, 5)?;
                let mode = match () {
                    _ if has("up") => Shfl::Up,
                    _ if has("down") => Shfl::Down,
                    _ if has("bfly") => Shfl::Bfly,
                    _ if has("idx") => Shfl::Idx,
                    _ => return Err(bad()),
                };
                if !has("sync") {
                    return unsup(format!("{full} (only shfl.sync exists on sm_70+)"), line);
                }
                let (d, p) = self.dst_pair(&o[0], line)?;
                let a = self.src(&o[1], Ty::B32, line)?;
                let b = self.src(&o[2], Ty::B32, line)?;
                let c = self.src(&o[3], Ty::B32, line)?;
                let mask = self.src(&o[4], Ty::B32, line)?;
                Ok(Op::ShflSync { mode, d, p, a, b, c, mask })
            }
            "vote" => {
                let o = self.ops(ins, 3)?;
                let mode = match () {
                    _ if has("all") => Vote::All,
                    _ if has("any") => Vote::Any,
                    _ if has("uni") => Vote::Uni,
                    _ if has("ballot") => Vote::Ballot,
                    _ => return Err(bad()),
                };
                if !has("sync") {
                    return unsup(format!("{full} (only vote.sync exists on sm_70+)"), line);
                }
                let d = self.dst(&o[0], line)?;
                let (a, neg) = self.pred_src(&o[1], line)?;
                let mask = self.src(&o[2], Ty::B32, line)?;
                Ok(Op::VoteSync { mode, d, a, neg, mask })
            }
            "match" => {
                let o = self.ops(ins, 3)?;
                let (d, p) = self.dst_pair(&o[0], line)?;
                let t = ty.ok_or_else(bad)?;
                let a = self.src(&o[1], t, line)?;
                let mask = self.src(&o[2], Ty::B32, line)?;
                Ok(Op::MatchSync { all: has("all"), wide: t.bytes() == 8, d, p, a, mask })
            }
            "redux" => {
                let o = self.ops(ins, 3)?;
                let t = ty.ok_or_else(bad)?;
                let op = match () {
                    _ if has("add") => Redux::Add,
                    _ if has("min") && t == Ty::S32 => Redux::MinS,
                    _ if has("max") && t == Ty::S32 => Redux::MaxS,
                    _ if has("min") && t == Ty::U32 => Redux::MinU,
                    _ if has("max") && t == Ty::U32 => Redux::MaxU,
                    _ if has("and") => Redux::And,
                    _ if has("or") => Redux::Or,
                    _ if has("xor") => Redux::Xor,
                    _ => return Err(bad()),
                };
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], t, line)?;
                let mask = self.src(&o[2], Ty::B32, line)?;
                Ok(Op::ReduxSync { op, d, a, mask })
            }
            "atom" | "red" => self.atom(ins, &mods, head == "red"),
            "mma" => self.mma(ins, &mods),
            "ldmatrix" | "stmatrix" => {
                let o = self.ops(ins, 2)?;
                let num: u8 = if has("x4") {
                    4
                } else if has("x2") {
                    2
                } else if has("x1") {
                    1
                } else {
                    return Err(bad());
                };
                if !has("m8n8") || !has("b16") {
                    return Err(bad());
                }
                let (regs_op, addr_op) = if head == "ldmatrix" { (&o[0], &o[1]) } else { (&o[1], &o[0]) };
                let Operand::Vec(v) = regs_op else { return Err(bad()) };
                if v.len() != num as usize {
                    return Err(bad());
                }
                let mut regs = [NO_REG; 4];
                for (i, x) in v.iter().enumerate() {
                    regs[i] = if head == "ldmatrix" { self.dst(x, line)? } else { self.src(x, Ty::B32, line)? };
                }
                let (addr, off, _) = self.addr(addr_op, line)?;
                let trans = has("trans");
                Ok(if head == "ldmatrix" {
                    Op::Ldmatrix { num, trans, d: regs, addr, off }
                } else {
                    Op::Stmatrix { num, trans, s: regs, addr, off }
                })
            }
            "mbarrier" => self.mbarrier(ins, &mods),
            "isspacep" => {
                // isspacep.space p, a: whether generic address a lies in the space (PTX ISA 9.7.9.18).
                let o = self.ops(ins, 2)?;
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], Ty::U64, line)?;
                let f: F1 = match mods.first().copied() {
                    Some("global") => f1!(|a| (a < SHARED_WIN) as u64),
                    Some("shared") | Some("shared::cta") => f1!(|a| ((SHARED_WIN..LOCAL_WIN).contains(&a)) as u64),
                    Some("local") => f1!(|a| ((LOCAL_WIN..CONST_WIN).contains(&a)) as u64),
                    Some("const") => f1!(|a| ((CONST_WIN..PARAM_WIN).contains(&a)) as u64),
                    Some("param") => f1!(|a| (a >= PARAM_WIN) as u64),
                    _ => return Err(bad()),
                };
                Ok(Op::Un { f, d, a, flags: 0 })
            }
            "dp4a" => {
                let [at, bt] = types[..] else { return Err(bad()) };
                let o = self.ops(ins, 4)?;
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], at, line)?;
                let b = self.src(&o[2], bt, line)?;
                let c = self.src(&o[3], Ty::U32, line)?;
                let f: F3 = match (at == Ty::S32, bt == Ty::S32) {
                    (false, false) => dp4a::<false, false>,
                    (false, true) => dp4a::<false, true>,
                    (true, false) => dp4a::<true, false>,
                    (true, true) => dp4a::<true, true>,
                };
                Ok(Op::Tern { f, d, a, b, c, flags: 0 })
            }
            "dp2a" => {
                let [at, bt] = types[..] else { return Err(bad()) };
                let o = self.ops(ins, 4)?;
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], at, line)?;
                let b = self.src(&o[2], bt, line)?;
                let c = self.src(&o[3], Ty::U32, line)?;
                fn go<const HI: bool, const SA: bool, const SB: bool>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
                    for i in 0..32 {
                        o[i] = crate::semantics::simd::dp2a(a[i] as u32, b[i] as u32, c[i] as u32, HI, SA, SB) as u64;
                    }
                }
                let f: F3 = match (has("hi"), at == Ty::S32, bt == Ty::S32) {
                    (false, false, false) => go::<false, false, false>,
                    (false, false, true) => go::<false, false, true>,
                    (false, true, false) => go::<false, true, false>,
                    (false, true, true) => go::<false, true, true>,
                    (true, false, false) => go::<true, false, false>,
                    (true, false, true) => go::<true, false, true>,
                    (true, true, false) => go::<true, true, false>,
                    (true, true, true) => go::<true, true, true>,
                };
                Ok(Op::Tern { f, d, a, b, c, flags: 0 })
            }
            "vabsdiff4" => self.vabsdiff4(ins, &mods, &types),
            "elect" => {
                let o = self.ops(ins, 2)?;
                let (d, p) = self.dst_pair(&o[0], line)?;
                let mask = self.src(&o[1], Ty::B32, line)?;
                Ok(Op::ElectSync { d, p, mask })
            }
            "cp" => self.cp_async(ins, &mods),
            "setp" => self.setp(ins, &mods),
            "set" => {
                // set.CmpOp.dtype.stype d, a, b: d = all ones (integer) or 1.0 (float) when true, else 0
                // (PTX ISA 9.7.9.11). The forms combining with a predicate are not implemented.
                if has("and") || has("or") || has("xor") || types.len() != 2 {
                    return Err(bad());
                }
                let (dt, st) = (types[0], types[1]);
                let o = self.ops(ins, 3)?;
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], st, line)?;
                let b = self.src(&o[2], st, line)?;
                let cmp = *mods.first().ok_or_else(bad)?;
                if matches!(st, Ty::F16x2 | Ty::Bf16x2) {
                    let f = set_x2_fn(cmp, dt, st == Ty::Bf16x2, ftz).ok_or_else(bad)?;
                    return Ok(Op::Bin { f, d, a, b, flags: 0 });
                }
                let f = cmp_fn(cmp, st, ftz).ok_or_else(bad)?;
                let one = match dt {
                    Ty::F32 => 0x3f80_0000,
                    Ty::F16 => 0x3c00,
                    Ty::U32 | Ty::S32 | Ty::B32 => 0xffff_ffff,
                    Ty::U16 | Ty::S16 | Ty::B16 => 0xffff,
                    _ => return Err(bad()),
                };
                Ok(Op::Set { f, d, a, b, one })
            }
            "selp" => {
                let o = self.ops(ins, 4)?;
                let t = ty.ok_or_else(bad)?;
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], t, line)?;
                let b = self.src(&o[2], t, line)?;
                let (c, neg) = self.pred_src(&o[3], line)?;
                let f = if neg {
                    f3!(|a, b, c| if c & 1 == 0 { a } else { b })
                } else {
                    f3!(|a, b, c| if c & 1 != 0 { a } else { b })
                };
                Ok(Op::Tern { f, d, a, b, c, flags: SELECT })
            }
            "slct" => {
                let o = self.ops(ins, 4)?;
                let d = self.dst(&o[0], line)?;
                let t = types.first().copied().ok_or_else(bad)?;
                let ct = ty.ok_or_else(bad)?;
                let a = self.src(&o[1], t, line)?;
                let b = self.src(&o[2], t, line)?;
                let c = self.src(&o[3], ct, line)?;
                let f = if ct == Ty::F32 {
                    f3!(|a, b, c| if f32v(c) >= 0.0 { a } else { b })
                } else {
                    f3!(|a, b, c| if (c as u32 as i32) >= 0 { a } else { b })
                };
                Ok(Op::Tern { f, d, a, b, c, flags: SELECT | if ftz { FTZ32 } else { 0 } })
            }
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
            Operand::Pair(d, p) => Ok((self.reg(d, line)?, self.reg(p, line)?)),
            _ => Ok((self.dst(op, line)?, NO_REG)),
        }
    }

    fn int_op(&mut self, ins: &ast::Instr, head: &str, mods: &[&str], t: Ty) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = &ins.operands;
        const INT_OPS: &[&str] = &[
            "add", "sub", "mul", "mad", "mul24", "mad24", "sad", "div", "rem", "min", "max", "abs", "neg", "and", "or",
            "xor", "not", "cnot", "shl", "shr", "popc", "clz", "brev", "bfind", "bfe", "bfi", "bmsk", "shf", "prmt",
            "lop3",
        ];
        if !INT_OPS.contains(&head) {
            return Err(bad());
        }
        const INT_MODS: &[&str] =
            &["wide", "hi", "lo", "shiftamt", "wrap", "clamp", "l", "r", "f4e", "b4e", "rc8", "ecl", "ecr", "rc16"];
        let sat_ok = matches!(head, "add" | "sub") && t == Ty::S32;
        check_mods(mods, INT_MODS, sat_ok, line, &full)?;
        let n_src = match head {
            "abs" | "neg" | "not" | "cnot" | "popc" | "clz" | "brev" | "bfind" => 1,
            "mad" | "mad24" | "sad" | "bfe" | "shf" | "prmt" => 3,
            "bfi" | "lop3" => 4,
            _ => 2,
        };
        self.ops(ins, n_src + 1)?;
        // The second operand of shifts and bfe/bfi positions are u32 whatever the type.
        let src_ty = |i: usize| -> Ty {
            match head {
                "shl" | "shr" if i == 1 => Ty::U32,
                "bfe" if i > 0 => Ty::U32,
                "bfi" if i > 1 => Ty::U32,
                "mad" if has("wide") && i == 2 => {
                    if t.signed() {
                        Ty::S64
                    } else {
                        Ty::U64
                    }
                }
                _ => t,
            }
        };
        let d = self.dst(&o[0], line)?;
        let mut s = [NO_REG; 4];
        for i in 0..n_src {
            s[i] = self.src(&o[i + 1], src_ty(i), line)?;
        }
        let un = |f: Option<F1>| f.map(|f| Op::Un { f, d, a: s[0], flags: 0 }).ok_or_else(bad);
        let bin = |f: Option<F2>| f.map(|f| Op::Bin { f, d, a: s[0], b: s[1], flags: 0 }).ok_or_else(bad);
        let bitwise = |op: Result<Op>, extra: u8| {
            op.map(|o| match o {
                Op::Bin { f, d, a, b, flags } => Op::Bin { f, d, a, b, flags: flags | BITWISE | extra },
                o => o,
            })
        };
        let tern = |f: Option<F3>| f.map(|f| Op::Tern { f, d, a: s[0], b: s[1], c: s[2], flags: 0 }).ok_or_else(bad);
        let wide = has("wide");
        let hi = has("hi");
        match head {
            "add" if has("sat") => bin((t == Ty::S32).then_some(add_sat_s32 as F2)),
            "sub" if has("sat") => bin((t == Ty::S32).then_some(sub_sat_s32 as F2)),
            "add" => bin(by_int!(t, add)),
            "sub" => bin(by_int!(t, sub)),
            "mul" if wide => bin(by_int!(t, mul_wide)),
            "mul" if hi => bin(by_int!(t, mul_hi)),
            "mul" => bin(by_int!(t, mul_lo)),
            "mad" if wide => tern(by_int!(t, mad_wide)),
            "mad" if hi => tern(by_int!(t, mad_hi)),
            "mad" => tern(by_int!(t, mad_lo)),
            "mul24" if !hi => bin(match t {
                Ty::S32 => Some(mul24_lo::<i32> as F2),
                Ty::U32 => Some(mul24_lo::<u32> as F2),
                _ => None,
            }),
            "mad24" if !hi => tern(match t {
                Ty::S32 => Some(mad24_lo::<i32> as F3),
                Ty::U32 => Some(mad24_lo::<u32> as F3),
                _ => None,
            }),
            "sad" => tern(by_int!(t, sad)),
            "div" => bin(by_int!(t, div)),
            "rem" => bin(by_int!(t, rem)),
            "min" if !has("relu") => bin(by_int!(t, min)),
            "max" if !has("relu") => bin(by_int!(t, max)),
            "abs" => un(by_int!(t, abs)),
            "neg" => un(by_int!(t, neg)),
            "and" | "or" | "xor" | "not" | "cnot" if t == Ty::Pred => match head {
                "and" => bitwise(bin(Some(and::<u8> as F2)), PRED_OP),
                "or" => bitwise(bin(Some(or::<u8> as F2)), PRED_OP),
                "xor" => bin(Some(xor::<u8> as F2)),
                "not" => un(Some(f1!(|a| (a & 1) ^ 1))),
                _ => Err(bad()),
            },
            "and" => bitwise(bin(by_int!(t, and)), 0),
            "or" => bitwise(bin(by_int!(t, or)), 0),
            "xor" => bin(by_int!(t, xor)),
            "not" => un(by_int!(t, not)),
            "cnot" => un(by_int!(t, cnot)),
            "shl" => bin(by_int!(t, shl)),
            "shr" => bin(by_int!(t, shr)),
            "popc" => un(by_int!(t, popc)),
            "clz" => un(by_int!(t, clz)),
            "brev" => un(by_int!(t, brev)),
            "bfind" if has("shiftamt") => un(by_int!(t, bfind, true)),
            "bfind" => un(by_int!(t, bfind, false)),
            "bfe" => tern(by_int!(t, bfe)),
            "bfi" => by_int!(t, bfi).map(|f| Op::Quad { f, d, a: s[0], b: s[1], c: s[2], e: s[3] }).ok_or_else(bad),
            "bmsk" => bin(Some(if has("wrap") { bmsk::<true> } else { bmsk::<false> })),
            "shf" => {
                let f: F3 = match (has("l"), has("wrap")) {
                    (true, true) => shf::<true, true>,
                    (true, false) => shf::<true, false>,
                    (false, true) => shf::<false, true>,
                    (false, false) => shf::<false, false>,
                };
                tern(Some(f))
            }
            "prmt" => {
                let f: F3 = match () {
                    _ if has("f4e") => prmt::<1>,
                    _ if has("b4e") => prmt::<2>,
                    _ if has("rc8") => prmt::<3>,
                    _ if has("ecl") => prmt::<4>,
                    _ if has("ecr") => prmt::<5>,
                    _ if has("rc16") => prmt::<6>,
                    _ => prmt::<0>,
                };
                tern(Some(f))
            }
            "lop3" => Ok(Op::Quad { f: lop3, d, a: s[0], b: s[1], c: s[2], e: s[3] }),
            _ => Err(bad()),
        }
    }

    fn carry(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let head = ins.opcode[0].as_str();
        let has = |m: &str| mods.contains(&m);
        let t = mods.iter().filter_map(|m| Ty::parse(m)).next_back().ok_or_else(|| VmError::Unsupported {
            what: ins.opcode.join("."),
            line,
            source: None,
        })?;
        let is_mad = head.starts_with("mad");
        let k = CarryKind {
            sub: head.starts_with("sub"),
            mad: if is_mad { Some(has("hi")) } else { None },
            carry_in: head.ends_with('c'),
            carry_out: has("cc"),
            wide: t.bytes() == 8,
        };
        if t.bytes() < 4 || (is_mad && !(has("hi") || has("lo"))) {
            return unsup(ins.opcode.join("."), line);
        }
        let o = self.ops(ins, if is_mad { 4 } else { 3 })?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], t, line)?;
        let b = self.src(&o[2], t, line)?;
        let c = if is_mad { self.src(&o[3], t, line)? } else { self.imm(0) };
        Ok(Op::Carry { k, d, a, b, c, cc: self.cc })
    }

    fn float_op(&mut self, ins: &ast::Instr, head: &str, mods: &[&str], t: Ty, rnd: Rnd, flags32: u8) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = &ins.operands;
        const FLOAT_OPS: &[&str] = &[
            "add", "sub", "mul", "fma", "mad", "min", "max", "abs", "neg", "copysign", "div", "rcp", "sqrt", "rsqrt",
            "ex2", "lg2", "sin", "cos", "tanh", "testp",
        ];
        if !FLOAT_OPS.contains(&head) {
            return Err(bad());
        }
        const FLOAT_MODS: &[&str] = &[
            "rn",
            "rz",
            "rm",
            "rp",
            "ftz",
            "approx",
            "full",
            "NaN",
            "relu",
            "finite",
            "infinite",
            "number",
            "notanumber",
            "normal",
            "subnormal",
        ];
        check_mods(mods, FLOAT_MODS, true, line, &full)?;
        if mods.contains(&"relu") && !matches!(t, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
            return Err(bad());
        }
        let n_src = match head {
            "abs" | "neg" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => 1,
            "fma" | "mad" => 3,
            "testp" => 1,
            _ => 2,
        };
        self.ops(ins, n_src + 1)?;
        let d = self.dst(&o[0], line)?;
        let mut s = [NO_REG; 3];
        for i in 0..n_src {
            s[i] = self.src(&o[i + 1], t, line)?;
        }
        let approx = has("approx");
        let arith = !matches!(head, "abs" | "neg" | "copysign" | "min" | "max" | "testp");
        let flags = match t {
            // GPUs produce one canonical f32 NaN, 0x7fffffff (CUDA Programming Guide, floating-point
            // standard; PTX ISA 9.7.3), where Rust would propagate a payload.
            Ty::F32 if arith => flags32 | NAN32,
            Ty::F32 => flags32,
            Ty::F64 if has("sat") => SAT64,
            _ => 0,
        };
        let un = |f: F1| Op::Un { f, d, a: s[0], flags };
        let bin = |f: F2| Op::Bin { f, d, a: s[0], b: s[1], flags };
        let tern = |f: F3| Op::Tern { f, d, a: s[0], b: s[1], c: s[2], flags };
        let r = rnd as u8;
        let srnd = match rnd {
            Rnd::Rn => sf::Rnd::Rn,
            Rnd::Rz => sf::Rnd::Rz,
            Rnd::Rm => sf::Rnd::Rm,
            Rnd::Rp => sf::Rnd::Rp,
        };
        let round_op = match head {
            "add" => Some(0u8),
            "sub" => Some(1),
            "mul" => Some(2),
            "fma" | "mad" => Some(3),
            "div" if !approx && !has("full") => Some(4),
            "sqrt" if !approx => Some(5),
            "rcp" if !approx => Some(6),
            _ => None,
        };
        if let (Some(op), true, true) = (round_op, r != 0, t == Ty::F32 || t == Ty::F64) {
            if flags & (FTZ32 | SAT32 | SAT64) != 0 {
                return unsup(format!("{full} (directed rounding with .ftz/.sat)"), line);
            }
            let k = if t == Ty::F32 { Slow::F32Round { op, rnd: srnd } } else { Slow::F64Round { op, rnd: srnd } };
            let z = self.imm(0);
            let pick = |x: R| if x == NO_REG { z } else { x };
            return Ok(Op::Slow { k, d, a: pick(s[0]), b: pick(s[1]), c: pick(s[2]) });
        }
        if t == Ty::F32 {
            return Ok(match head {
                // Directed rounding of add/sub/mul/fma/div returned above (Slow::F32Round): here r == 0.
                "add" => bin(f2!(|a, b| f32b(f32v(a) + f32v(b)))),
                "sub" => bin(f2!(|a, b| f32b(f32v(a) - f32v(b)))),
                "mul" => bin(f2!(|a, b| f32b(f32v(a) * f32v(b)))),
                // fma.f32 rounds once (PTX ISA 9.7.3.6); `mad.f32` without a rounding mode is the
                // legacy unfused form, but nvcc only emits `mad.rn.f32`, which is fused.
                "fma" | "mad" => tern(f3!(|a, b, c| f32b(f32v(a).mul_add(f32v(b), f32v(c))))),
                "min" if has("NaN") => bin(f2!(|a, b| if f32v(a).is_nan() || f32v(b).is_nan() {
                    0x7fff_ffff
                } else {
                    f32b(fmin32(f32v(a), f32v(b)))
                })),
                "max" if has("NaN") => bin(f2!(|a, b| if f32v(a).is_nan() || f32v(b).is_nan() {
                    0x7fff_ffff
                } else {
                    f32b(fmax32(f32v(a), f32v(b)))
                })),
                "min" => bin(f2!(|a, b| f32b(fmin32(f32v(a), f32v(b))))),
                "max" => bin(f2!(|a, b| f32b(fmax32(f32v(a), f32v(b))))),
                "abs" => un(f1!(|a| a & 0x7fff_ffff)),
                "neg" => un(f1!(|a| (a ^ 0x8000_0000) & 0xffff_ffff)),
                "copysign" => bin(f2!(|a, b| (b & 0x7fff_ffff) | (a & 0x8000_0000))),
                // div.approx / div.full are within 2 ulp of the quotient (PTX ISA 9.7.3.8); the VM
                // returns the correctly rounded one, which meets that bound.
                "div" => bin(f2!(|a, b| f32b(f32v(a) / f32v(b)))),
                "rcp" if approx || r == 0 => un(f1!(|a| f32b(1.0 / f32v(a)))),
                "sqrt" if approx || r == 0 => un(f1!(|a| f32b(f32v(a).sqrt()))),
                "rsqrt" => un(f1!(|a| f32b((1.0 / (f32v(a) as f64).sqrt()) as f32))),
                "ex2" => un(f1!(|a| f32b((f32v(a) as f64).exp2() as f32))),
                "lg2" => un(f1!(|a| f32b((f32v(a) as f64).log2() as f32))),
                "sin" => un(f1!(|a| f32b((f32v(a) as f64).sin() as f32))),
                "cos" => un(f1!(|a| f32b((f32v(a) as f64).cos() as f32))),
                "tanh" => un(f1!(|a| f32b((f32v(a) as f64).tanh() as f32))),
                "testp" => self.testp(mods, d, s[0], true).ok_or_else(bad)?,
                _ => return Err(bad()),
            });
        }
        if t == Ty::F64 {
            return Ok(match head {
                "add" => bin(f2!(|a, b| f64b(f64v(a) + f64v(b)))),
                "sub" => bin(f2!(|a, b| f64b(f64v(a) - f64v(b)))),
                "mul" => bin(f2!(|a, b| f64b(f64v(a) * f64v(b)))),
                "fma" | "mad" => tern(f3!(|a, b, c| f64b(f64v(a).mul_add(f64v(b), f64v(c))))),
                "min" => bin(f2!(|a, b| f64b(fmin64(f64v(a), f64v(b))))),
                "max" => bin(f2!(|a, b| f64b(fmax64(f64v(a), f64v(b))))),
                "abs" => un(f1!(|a| a & 0x7fff_ffff_ffff_ffff)),
                "neg" => un(f1!(|a| a ^ (1 << 63))),
                "copysign" => bin(f2!(|a, b| (b & 0x7fff_ffff_ffff_ffff) | (a & (1 << 63)))),
                "div" => bin(f2!(|a, b| f64b(f64v(a) / f64v(b)))),
                "rcp" => un(f1!(|a| f64b(1.0 / f64v(a)))),
                "sqrt" => un(f1!(|a| f64b(f64v(a).sqrt()))),
                "rsqrt" => un(f1!(|a| f64b(1.0 / f64v(a).sqrt()))),
                "testp" => self.testp(mods, d, s[0], false).ok_or_else(bad)?,
                _ => return Err(bad()),
            });
        }
        self.half_op(ins, head, mods, t, d, s)
    }

    fn testp(&self, mods: &[&str], d: R, a: R, f32: bool) -> Option<Op> {
        let has = |m: &str| mods.contains(&m);
        let f: F1 = match (f32, ()) {
            (true, _) if has("finite") => f1!(|a| f32v(a).is_finite() as u64),
            (true, _) if has("infinite") => f1!(|a| f32v(a).is_infinite() as u64),
            (true, _) if has("number") => f1!(|a| !f32v(a).is_nan() as u64),
            (true, _) if has("notanumber") => f1!(|a| f32v(a).is_nan() as u64),
            (true, _) if has("normal") => f1!(|a| f32v(a).is_normal() as u64),
            (true, _) if has("subnormal") => f1!(|a| f32v(a).is_subnormal() as u64),
            (false, _) if has("finite") => f1!(|a| f64v(a).is_finite() as u64),
            (false, _) if has("infinite") => f1!(|a| f64v(a).is_infinite() as u64),
            (false, _) if has("number") => f1!(|a| !f64v(a).is_nan() as u64),
            (false, _) if has("notanumber") => f1!(|a| f64v(a).is_nan() as u64),
            (false, _) if has("normal") => f1!(|a| f64v(a).is_normal() as u64),
            (false, _) if has("subnormal") => f1!(|a| f64v(a).is_subnormal() as u64),
            _ => return None,
        };
        Some(Op::Un { f, d, a, flags: 0 })
    }

    /// `vabsdiff4.dtype.atype.btype{.sat}{.add} d, a, b, c` with the default selectors, the forms
    /// `__vabsdiffu4`/`__vabsdiffs4` emit; byte selectors and the `.min`/`.max` secondary operations
    /// are refused by name.
    fn vabsdiff4(&mut self, ins: &ast::Instr, mods: &[&str], types: &[Ty]) -> Result<Op> {
        use crate::semantics::simd::{vabsdiff4, vabsdiff4_add};
        let line = ins.line;
        let full = ins.opcode.join(".");
        check_mods(mods, &["sat", "add"], true, line, &full)?;
        let [dt, at, bt] = types[..] else { return unsup(full, line) };
        if ![dt, at, bt].iter().all(|t| matches!(t, Ty::U32 | Ty::S32)) {
            return unsup(full, line);
        }
        let o = self.ops(ins, 4)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], at, line)?;
        let b = self.src(&o[2], bt, line)?;
        let c = self.src(&o[3], Ty::U32, line)?;
        let (sa, sb) = (at == Ty::S32, bt == Ty::S32);
        if mods.contains(&"add") {
            fn go<const SA: bool, const SB: bool>(a: &Lanes, b: &Lanes, c: &Lanes, o: &mut Lanes) {
                for i in 0..32 {
                    o[i] = vabsdiff4_add(a[i] as u32, b[i] as u32, c[i] as u32, SA, SB) as u64;
                }
            }
            let f: F3 = match (sa, sb) {
                (false, false) => go::<false, false>,
                (false, true) => go::<false, true>,
                (true, false) => go::<true, false>,
                (true, true) => go::<true, true>,
            };
            return Ok(Op::Tern { f, d, a, b, c, flags: 0 });
        }
        fn go<const SA: bool, const SB: bool, const SD: bool, const SAT: bool>(
            a: &Lanes,
            b: &Lanes,
            _c: &Lanes,
            o: &mut Lanes,
        ) {
            for i in 0..32 {
                o[i] = vabsdiff4(a[i] as u32, b[i] as u32, SA, SB, SD, SAT) as u64;
            }
        }
        macro_rules! pick {
            ($($sa:literal $sb:literal),*) => {
                match (sa, sb, dt == Ty::S32, mods.contains(&"sat")) {
                    $(($sa, $sb, false, false) => go::<$sa, $sb, false, false> as F3,
                      ($sa, $sb, false, true) => go::<$sa, $sb, false, true> as F3,
                      ($sa, $sb, true, false) => go::<$sa, $sb, true, false> as F3,
                      ($sa, $sb, true, true) => go::<$sa, $sb, true, true> as F3,)*
                }
            };
        }
        let f = pick!(false false, false true, true false, true true);
        Ok(Op::Tern { f, d, a, b, c, flags: 0 })
    }

    fn setp(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let t = mods.iter().filter_map(|m| Ty::parse(m)).next_back().ok_or_else(bad)?;
        let cmp = *mods.first().ok_or_else(bad)?;
        check_mods(&mods[1..], &["and", "or", "xor", "ftz"], false, line, &full)?;
        let o = self.ops(ins, 3)?;
        let (d, dn) = self.dst_pair(&o[0], line)?;
        let a = self.src(&o[1], t, line)?;
        let b = self.src(&o[2], t, line)?;
        let comb = if mods.contains(&"and") {
            Some(BoolOp::And)
        } else if mods.contains(&"or") {
            Some(BoolOp::Or)
        } else if mods.contains(&"xor") {
            Some(BoolOp::Xor)
        } else {
            None
        };
        let comb = match comb {
            Some(op) => {
                let (c, neg) = self.pred_src(o.get(3).ok_or_else(bad)?, line)?;
                Some((op, c, neg))
            }
            None => None,
        };
        let f = cmp_fn(cmp, t, mods.contains(&"ftz")).ok_or_else(bad)?;
        Ok(Op::Setp { f, d, dn, a, b, comb })
    }

    fn cvt(&mut self, ins: &ast::Instr, mods: &[&str], types: &[Ty]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if types.len() != 2 {
            return Err(bad());
        }
        let (dt, st) = (types[0], types[1]);
        const CVT_MODS: &[&str] =
            &["rn", "rz", "rm", "rp", "rna", "rni", "rzi", "rmi", "rpi", "ftz", "relu", "satfinite"];
        check_mods(mods, CVT_MODS, true, line, &full)?;
        let o = self.ops(ins, 2)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], st, line)?;
        let sat = has("sat");
        let ftz = has("ftz");
        let rnd = |i: bool| {
            let pick = |m: &str| has(m);
            if pick(if i { "rzi" } else { "rz" }) {
                Rnd::Rz
            } else if pick(if i { "rmi" } else { "rm" }) {
                Rnd::Rm
            } else if pick(if i { "rpi" } else { "rp" }) {
                Rnd::Rp
            } else {
                Rnd::Rn
            }
        };
        let un = |f: F1, flags: u8| Ok(Op::Un { f, d, a, flags });
        // Conversions to f16/bf16 (scalar, or packed with two sources where `a` goes to the upper
        // half) and to tf32, through `semantics::float` (PTX ISA 9.7.9.21).
        if matches!(dt, Ty::F16 | Ty::Bf16 | Ty::F16x2 | Ty::Bf16x2) && matches!(st, Ty::F32 | Ty::F64) {
            let packed = matches!(dt, Ty::F16x2 | Ty::Bf16x2);
            let b = if packed { self.src(o.get(2).ok_or_else(bad)?, st, line)? } else { self.imm(0) };
            let srnd = if has("rna") {
                sf::Rnd::Rna
            } else {
                match rnd(false) {
                    Rnd::Rn => sf::Rnd::Rn,
                    Rnd::Rz => sf::Rnd::Rz,
                    Rnd::Rm => sf::Rnd::Rm,
                    Rnd::Rp => sf::Rnd::Rp,
                }
            };
            let fmt = if matches!(dt, Ty::F16 | Ty::F16x2) { sf::Fmt::F16 } else { sf::Fmt::BF16 };
            let k = Slow::CvtHalf {
                fmt,
                rnd: srnd,
                relu: has("relu"),
                satfinite: has("satfinite"),
                f64_src: st == Ty::F64,
                packed,
            };
            let z = self.imm(0);
            return Ok(Op::Slow { k, d, a, b, c: z });
        }
        if dt == Ty::Tf32 && st == Ty::F32 {
            if !has("rna") {
                return Err(bad());
            }
            let z = self.imm(0);
            return Ok(Op::Slow { k: Slow::Tf32 { satfinite: has("satfinite") }, d, a, b: z, c: z });
        }
        let int = |t: Ty| !t.is_float() && t != Ty::Pred;
        if int(dt) && int(st) {
            let f: Option<F1> = match dt {
                Ty::U8 | Ty::B8 => cvt_ii::<u8>(st, sat),
                Ty::S8 => cvt_ii::<i8>(st, sat),
                Ty::U16 | Ty::B16 => cvt_ii::<u16>(st, sat),
                Ty::S16 => cvt_ii::<i16>(st, sat),
                Ty::U32 | Ty::B32 => cvt_ii::<u32>(st, sat),
                Ty::S32 => cvt_ii::<i32>(st, sat),
                Ty::U64 | Ty::B64 => cvt_ii::<u64>(st, sat),
                Ty::S64 => cvt_ii::<i64>(st, sat),
                _ => None,
            };
            return un(f.ok_or_else(bad)?, 0);
        }
        let fl = if ftz { FTZ32 } else { 0 } | if sat { SAT32 } else { 0 };
        match (dt, st) {
            (Ty::F32, Ty::F32) => {
                let f: F1 = match (rnd(true), has("rni") || has("rzi") || has("rmi") || has("rpi")) {
                    (_, false) => f1!(|a| a & 0xffff_ffff),
                    (Rnd::Rn, _) => f1!(|a| f32b(f32v(a).round_ties_even())),
                    (Rnd::Rz, _) => f1!(|a| f32b(f32v(a).trunc())),
                    (Rnd::Rm, _) => f1!(|a| f32b(f32v(a).floor())),
                    (Rnd::Rp, _) => f1!(|a| f32b(f32v(a).ceil())),
                };
                un(f, fl)
            }
            (Ty::F64, Ty::F64) => {
                let f: F1 = match (rnd(true), has("rni") || has("rzi") || has("rmi") || has("rpi")) {
                    (_, false) => f1!(|a| a),
                    (Rnd::Rn, _) => f1!(|a| f64b(f64v(a).round_ties_even())),
                    (Rnd::Rz, _) => f1!(|a| f64b(f64v(a).trunc())),
                    (Rnd::Rm, _) => f1!(|a| f64b(f64v(a).floor())),
                    (Rnd::Rp, _) => f1!(|a| f64b(f64v(a).ceil())),
                };
                un(f, if sat { SAT64 } else { 0 })
            }
            (Ty::F64, Ty::F32) => un(
                if ftz { f1!(|a| f64b(f32v(ftz32(a)) as f64)) } else { f1!(|a| f64b(f32v(a) as f64)) },
                if sat { SAT64 } else { 0 },
            ),
            (Ty::F32, Ty::F64) => un(
                match rnd(false) {
                    Rnd::Rn => f1!(|a| f32b(f64v(a) as f32)),
                    Rnd::Rz => f1!(|a| f32b(f64_to_f32(f64v(a), Rnd::Rz))),
                    Rnd::Rm => f1!(|a| f32b(f64_to_f32(f64v(a), Rnd::Rm))),
                    Rnd::Rp => f1!(|a| f32b(f64_to_f32(f64v(a), Rnd::Rp))),
                },
                fl,
            ),
            (Ty::F32, Ty::F16) => un(f1!(|a| f32b(sf::f16_to_f32(a as u16))), fl),
            (Ty::F32, Ty::Bf16) => un(f1!(|a| f32b(sf::bf16_to_f32(a as u16))), fl),
            (Ty::F64, Ty::F16) => un(f1!(|a| f64b(half::f16::from_bits(a as u16).to_f64())), 0),
            (Ty::F64, Ty::Bf16) => un(f1!(|a| f64b(half::bf16::from_bits(a as u16).to_f64())), 0),
            (Ty::F32 | Ty::F64, s) if int(s) => {
                let f64d = dt == Ty::F64;
                macro_rules! i2f {
                    ($t:ty) => {
                        match (f64d, rnd(false)) {
                            (false, Rnd::Rn) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rn))),
                            (false, Rnd::Rz) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rz))),
                            (false, Rnd::Rm) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rm))),
                            (false, Rnd::Rp) => f1!(|a| f32b(int_to_f32(<$t as Int>::from(a).wide(), Rnd::Rp))),
                            (true, Rnd::Rn) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rn))),
                            (true, Rnd::Rz) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rz))),
                            (true, Rnd::Rm) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rm))),
                            (true, Rnd::Rp) => f1!(|a| f64b(int_to_f64(<$t as Int>::from(a).wide(), Rnd::Rp))),
                        }
                    };
                }
                let f: F1 = match s {
                    Ty::U8 | Ty::B8 => i2f!(u8),
                    Ty::S8 => i2f!(i8),
                    Ty::U16 | Ty::B16 => i2f!(u16),
                    Ty::S16 => i2f!(i16),
                    Ty::U32 | Ty::B32 => i2f!(u32),
                    Ty::S32 => i2f!(i32),
                    Ty::U64 | Ty::B64 => i2f!(u64),
                    _ => i2f!(i64),
                };
                un(
                    f,
                    if f64d {
                        if sat {
                            SAT64
                        } else {
                            0
                        }
                    } else {
                        fl
                    },
                )
            }
            (dtt, Ty::F32 | Ty::F64 | Ty::F16 | Ty::Bf16) if int(dtt) => {
                // Float to integer: round in the mode, then saturate; NaN gives 0 (PTX ISA 9.7.9.21).
                // Rust's `as` saturates and maps NaN to 0, which is exactly that.
                let r = rnd(true) as u8;
                let src = st;
                macro_rules! f2i {
                    ($t:ty) => {{
                        fn go<const R: u8, const S: u8>(a: &Lanes, o: &mut Lanes) {
                            for i in 0..32 {
                                let x = match S {
                                    0 => f32v(a[i]) as f64,
                                    1 => f64v(a[i]),
                                    2 => half::f16::from_bits(a[i] as u16).to_f64(),
                                    _ => half::bf16::from_bits(a[i] as u16).to_f64(),
                                };
                                let m = match R {
                                    0 => Rnd::Rn,
                                    1 => Rnd::Rz,
                                    2 => Rnd::Rm,
                                    _ => Rnd::Rp,
                                };
                                o[i] = (round_int(x, m) as $t).to();
                            }
                        }
                        let s = match src {
                            Ty::F32 => 0u8,
                            Ty::F64 => 1,
                            Ty::F16 => 2,
                            _ => 3,
                        };
                        match (r, s) {
                            (0, 0) => go::<0, 0> as F1,
                            (1, 0) => go::<1, 0>,
                            (2, 0) => go::<2, 0>,
                            (_, 0) => go::<3, 0>,
                            (0, 1) => go::<0, 1>,
                            (1, 1) => go::<1, 1>,
                            (2, 1) => go::<2, 1>,
                            (_, 1) => go::<3, 1>,
                            (0, 2) => go::<0, 2>,
                            (1, 2) => go::<1, 2>,
                            (2, 2) => go::<2, 2>,
                            (_, 2) => go::<3, 2>,
                            (0, _) => go::<0, 3>,
                            (1, _) => go::<1, 3>,
                            (2, _) => go::<2, 3>,
                            (_, _) => go::<3, 3>,
                        }
                    }};
                }
                let pre = if ftz && st == Ty::F32 { FTZ32 } else { 0 };
                let f: F1 = match dtt {
                    Ty::U8 | Ty::B8 => f2i!(u8),
                    Ty::S8 => f2i!(i8),
                    Ty::U16 | Ty::B16 => f2i!(u16),
                    Ty::S16 => f2i!(i16),
                    Ty::U32 | Ty::B32 => f2i!(u32),
                    Ty::S32 => f2i!(i32),
                    Ty::U64 | Ty::B64 => f2i!(u64),
                    _ => f2i!(i64),
                };
                // Only the input flush applies here; the exec flushes inputs when FTZ32 is set
                // and the output flush is skipped for integer results by `INT_OUT`.
                Ok(Op::Un { f, d, a, flags: pre | INT_OUT })
            }
            _ => Err(bad()),
        }
    }

    fn half_op(&mut self, ins: &ast::Instr, head: &str, mods: &[&str], t: Ty, d: R, s: [R; 3]) -> Result<Op> {
        // f16/bf16 arithmetic, scalar and packed (PTX ISA 9.7.4), through `semantics::float`.
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if has("rz") || has("rm") || has("rp") || (has("approx") && !matches!(head, "ex2" | "tanh")) {
            return Err(bad());
        }
        let packed = matches!(t, Ty::F16x2 | Ty::Bf16x2);
        let fmt = match t {
            Ty::F16 | Ty::F16x2 => sf::Fmt::F16,
            Ty::Bf16 | Ty::Bf16x2 => sf::Fmt::BF16,
            _ => return Err(bad()),
        };
        let ftz = has("ftz");
        let nan = has("NaN");
        if (has("sat") || has("relu")) && head != "fma" {
            return Err(bad());
        }
        let bin = |op| Slow::HalfBin { op, fmt, ftz, packed };
        let k = match head {
            "add" => bin(sf::HalfOp::Add),
            "sub" => bin(sf::HalfOp::Sub),
            "mul" => bin(sf::HalfOp::Mul),
            "min" => bin(if nan { sf::HalfOp::MinNan } else { sf::HalfOp::Min }),
            "max" => bin(if nan { sf::HalfOp::MaxNan } else { sf::HalfOp::Max }),
            "fma" => Slow::HalfFma { fmt, relu: has("relu"), sat: has("sat"), packed },
            // ex2.approx / tanh.approx on halves (PTX ISA 9.7.4.9, 9.7.4.10), computed precisely and
            // rounded once; the `.ftz` of the bf16 forms is not modelled (subnormal results are kept).
            "ex2" if has("approx") => Slow::HalfApprox { op: sf::Approx::Ex2, fmt, packed },
            "tanh" if has("approx") => Slow::HalfApprox { op: sf::Approx::Tanh, fmt, packed },
            "neg" => Slow::HalfNegAbs { abs: false, packed },
            "abs" => Slow::HalfNegAbs { abs: true, packed },
            _ => return Err(bad()),
        };
        let z = self.imm(0);
        let pick = |r: R| if r == NO_REG { z } else { r };
        Ok(Op::Slow { k, d, a: pick(s[0]), b: pick(s[1]), c: pick(s[2]) })
    }

    fn mma(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        // mma.sync.aligned.shape.row.col.dtype.atype.btype.ctype d, a, b, c (PTX ISA 9.7.14.5.14).
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if !has("row") || !has("col") || has("satfinite") {
            return Err(bad());
        }
        let shape = if has("m16n8k16") {
            MmaShape::M16N8K16
        } else if has("m16n8k8") {
            MmaShape::M16N8K8
        } else {
            return Err(bad());
        };
        let tys: Vec<Ty> = mods.iter().filter_map(|m| Ty::parse(m)).collect();
        let [dt, at, bt, ct] = tys[..] else { return Err(bad()) };
        let input = match (at, bt) {
            (Ty::F16, Ty::F16) => MmaInput::F16,
            (Ty::Bf16, Ty::Bf16) => MmaInput::Bf16,
            (Ty::Tf32, Ty::Tf32) if shape == MmaShape::M16N8K8 => MmaInput::Tf32,
            _ => return Err(bad()),
        };
        let acc = |t: Ty| match t {
            Ty::F32 => Some(MmaAcc::F32),
            Ty::F16 if input == MmaInput::F16 => Some(MmaAcc::F16),
            _ => None,
        };
        let (dtype, ctype) = (acc(dt).ok_or_else(bad)?, acc(ct).ok_or_else(bad)?);
        let o = self.ops(ins, 4)?;
        let (na, nb, _) = crate::semantics::mma::fragment_regs(shape, input, ctype);
        let nc = if ctype == MmaAcc::F32 { 4 } else { 2 };
        let nd = if dtype == MmaAcc::F32 { 4 } else { 2 };
        let mut regs = [[NO_REG; 4]; 4];
        for (k, (op, n)) in o.iter().take(4).zip([nd, na, nb, nc]).enumerate() {
            let Operand::Vec(v) = op else { return Err(bad()) };
            if v.len() != n {
                return unsup(format!("{full} with {} registers in operand {k} (expected {n})", v.len()), line);
            }
            for (i, x) in v.iter().enumerate() {
                regs[k][i] = if k == 0 { self.dst(x, line)? } else { self.src(x, Ty::B32, line)? };
            }
        }
        Ok(Op::Mma { shape, input, ctype, dtype, d: regs[0], a: regs[1], b: regs[2], c: regs[3] })
    }

    fn mbarrier(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        // The sm_80 subset of mbarrier (PTX ISA 9.7.13.15); the transaction-count forms of sm_90
        // (expect_tx, complete_tx) are refused.
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        const MBAR_MODS: &[&str] = &[
            "init",
            "inval",
            "arrive",
            "arrive_drop",
            "noComplete",
            "test_wait",
            "try_wait",
            "parity",
            "pending_count",
            "shared",
            "shared::cta",
            "release",
            "acquire",
            "relaxed",
            "cta",
        ];
        check_mods(mods, MBAR_MODS, false, line, &full)?;
        let z = self.imm(0);
        let op = |k, d, (addr, off, _): (R, i64, Option<Space>), b| Op::Mbarrier { k, d, addr, off, b };
        if has("init") {
            let o = self.ops(ins, 2)?;
            let a = self.addr(&o[0], line)?;
            let b = self.src(&o[1], Ty::U32, line)?;
            Ok(op(Mbar::Init, self.new_reg(), a, b))
        } else if has("inval") {
            let a = self.addr(&self.ops(ins, 1)?[0], line)?;
            Ok(op(Mbar::Inval, self.new_reg(), a, z))
        } else if has("arrive") || has("arrive_drop") {
            let o = self.ops(ins, 2)?;
            let d = self.dst(&o[0], line)?;
            let a = self.addr(&o[1], line)?;
            let b = match o.get(2) {
                Some(c) => self.src(c, Ty::U32, line)?,
                None => self.imm(1),
            };
            let k = Mbar::Arrive { drop: has("arrive_drop"), no_complete: has("noComplete") };
            Ok(op(k, d, a, b))
        } else if has("test_wait") || has("try_wait") {
            let o = self.ops(ins, 3)?;
            if o.len() > 3 {
                return unsup(format!("{full} with a time limit"), line);
            }
            let d = self.dst(&o[0], line)?;
            let a = self.addr(&o[1], line)?;
            let b = self.src(&o[2], Ty::B64, line)?;
            Ok(op(Mbar::TestWait { parity: has("parity") }, d, a, b))
        } else if has("pending_count") {
            let o = self.ops(ins, 2)?;
            let d = self.dst(&o[0], line)?;
            let b = self.src(&o[1], Ty::B64, line)?;
            Ok(Op::Mbarrier { k: Mbar::PendingCount, d, addr: z, off: 0, b })
        } else {
            Err(bad())
        }
    }

    fn ld_st(&mut self, ins: &ast::Instr, mods: &[&str], t: Ty, is_st: bool) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let has = |m: &str| mods.contains(&m);
        for m in mods {
            let ok = Ty::parse(m).is_some()
                || matches!(
                    *m,
                    "global"
                        | "shared"
                        | "local"
                        | "const"
                        | "param"
                        | "v2"
                        | "v4"
                        | "nc"
                        | "ca"
                        | "cg"
                        | "cs"
                        | "lu"
                        | "cv"
                        | "wb"
                        | "wt"
                        | "volatile"
                        | "relaxed"
                        | "acquire"
                        | "release"
                        | "weak"
                        | "cta"
                        | "gpu"
                        | "sys"
                        | "cluster"
                        | "L1::no_allocate"
                        | "L1::evict_last"
                        | "L1::evict_first"
                        | "L1::evict_normal"
                        | "L1::evict_unchanged"
                        | "L2::64B"
                        | "L2::128B"
                        | "L2::256B"
                        | "L2::cache_hint"
                        | "L2::evict_last"
                        | "L2::evict_first"
                        | "L2::evict_normal"
                        | "unified"
                        | "mmio"
                        | "shared::cta"
                );
            if !ok {
                return unsup(full.clone(), line);
            }
        }
        if t == Ty::B128 {
            return unsup(full.clone(), line);
        }
        let n: u8 = if has("v4") {
            4
        } else if has("v2") {
            2
        } else {
            1
        };
        let o = self.ops(ins, 2)?;
        let (data, addr) = if is_st { (&o[1], &o[0]) } else { (&o[0], &o[1]) };
        let (ar, off, var_space) = self.addr(addr, line)?;
        let space = if has("global") {
            Space::Global
        } else if has("shared") || has("shared::cta") {
            Space::Shared
        } else if has("local") {
            Space::Local
        } else if has("const") {
            Space::Const
        } else if has("param") {
            Space::Param
        } else {
            // A generic access to a named variable uses its generic address.
            match var_space {
                Some(Space::Global) | None => Space::Generic,
                Some(s) => s,
            }
        };
        let mut regs = [NO_REG; 4];
        let items: Vec<&Operand> = match data {
            Operand::Vec(v) => v.iter().collect(),
            d => vec![d],
        };
        if items.len() != n as usize {
            return unsup(format!("{full} with {} data operands", items.len()), line);
        }
        for (i, it) in items.iter().enumerate() {
            regs[i] = if is_st { self.src(it, t, line)? } else { self.dst(it, line)? };
        }
        if is_st {
            Ok(Op::St { space, size: t.bytes(), n, srcs: regs, addr: ar, off })
        } else {
            Ok(Op::Ld { space, size: t.bytes(), n, signed: t.signed(), dsts: regs, addr: ar, off })
        }
    }

    fn atom(&mut self, ins: &ast::Instr, mods: &[&str], is_red: bool) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let space = if has("global") {
            Space::Global
        } else if has("shared") || has("shared::cta") {
            Space::Shared
        } else {
            Space::Generic
        };
        let op = match () {
            _ if has("add") => AtomOp::Add,
            _ if has("min") => AtomOp::Min,
            _ if has("max") => AtomOp::Max,
            _ if has("exch") => AtomOp::Exch,
            _ if has("cas") => AtomOp::Cas,
            _ if has("and") => AtomOp::And,
            _ if has("or") => AtomOp::Or,
            _ if has("xor") => AtomOp::Xor,
            _ if has("inc") => AtomOp::Inc,
            _ if has("dec") => AtomOp::Dec,
            _ => return Err(bad()),
        };
        const ATOM_MODS: &[&str] = &[
            "global",
            "shared",
            "shared::cta",
            "relaxed",
            "acquire",
            "release",
            "acq_rel",
            "cta",
            "gpu",
            "sys",
            "noftz",
            "L2::cache_hint",
            "add",
            "min",
            "max",
            "exch",
            "cas",
            "and",
            "or",
            "xor",
            "inc",
            "dec",
        ];
        check_mods(mods, ATOM_MODS, false, line, &full)?;
        let t = mods.iter().filter_map(|m| Ty::parse(m)).next_back().ok_or_else(bad)?;
        let ty = match t {
            Ty::U32 => AtomTy::U32,
            Ty::S32 => AtomTy::S32,
            Ty::U64 => AtomTy::U64,
            Ty::S64 => AtomTy::S64,
            Ty::F32 => AtomTy::F32,
            Ty::F64 => AtomTy::F64,
            Ty::F16x2 => AtomTy::F16x2,
            Ty::Bf16x2 => AtomTy::Bf16x2,
            Ty::B32 => AtomTy::B32,
            Ty::B64 => AtomTy::B64,
            Ty::B16 | Ty::U16 if op == AtomOp::Cas => AtomTy::B16,
            _ => return Err(bad()),
        };
        let o = &ins.operands;
        let (d, rest) = if is_red {
            (self.new_reg(), &o[..])
        } else {
            let Some(d0) = o.first() else { return Err(bad()) };
            (self.dst(d0, line)?, &o[1..])
        };
        if rest.len() < 2 {
            return Err(bad());
        }
        let (addr, off, var_space) = self.addr(&rest[0], line)?;
        let space = match (space, var_space) {
            (Space::Generic, Some(Space::Shared)) => Space::Shared,
            (s, _) => s,
        };
        let b = self.src(&rest[1], t, line)?;
        let c = if op == AtomOp::Cas { self.src(rest.get(2).ok_or_else(bad)?, t, line)? } else { self.imm(0) };
        Ok(Op::Atom { space, op, ty, d, addr, off, b, c })
    }

    fn cp_async(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        if mods.first() != Some(&"async") || has("bulk") {
            return Err(bad());
        }
        if has("mbarrier") {
            if !has("arrive") || !has("b64") {
                return Err(bad());
            }
            let o = self.ops(ins, 1)?;
            let (addr, off, _) = self.addr(&o[0], line)?;
            let d = self.new_reg();
            let z = self.imm(0);
            return Ok(Op::Mbarrier { k: Mbar::CpAsyncArrive { noinc: has("noinc") }, d, addr, off, b: z });
        }
        if has("commit_group") {
            return Ok(Op::CpCommit);
        }
        if has("wait_all") {
            return Ok(Op::CpWait);
        }
        if has("wait_group") {
            return match ins.operands.first() {
                Some(Operand::Lit(Lit::Int(_))) => Ok(Op::CpWait),
                _ => Err(bad()),
            };
        }
        if !(has("shared") || has("shared::cta")) || !has("global") {
            return Err(bad());
        }
        let o = self.ops(ins, 3)?;
        let (dst, doff, _) = self.addr(&o[0], line)?;
        let (src, soff, _) = self.addr(&o[1], line)?;
        let size = match &o[2] {
            Operand::Lit(Lit::Int(n @ (4 | 8 | 16))) => *n as u8,
            _ => return Err(bad()),
        };
        // An optional src-size operand (bytes actually read; the rest is zero-filled), then an
        // optional cache policy, which the VM ignores (PTX ISA 9.7.9.25.3.1).
        let src_size = match o.get(3) {
            Some(op) if !has("L2::cache_hint") || o.len() == 5 => self.src(op, Ty::U32, line)?,
            _ => self.imm(size as u64),
        };
        Ok(Op::CpAsync { size, src_size, dst, doff, src, soff })
    }

    fn bar(&mut self, ins: &ast::Instr, mods: &[&str]) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: full.clone(), line, source: None };
        let has = |m: &str| mods.contains(&m);
        let o = &ins.operands;
        if has("warp") {
            let mask = self.src(o.first().ok_or_else(bad)?, Ty::B32, line)?;
            return Ok(Op::BarWarp { mask });
        }
        let kind = if has("sync") {
            BarKind::Sync
        } else if has("arrive") {
            BarKind::Arrive
        } else if has("red") {
            if has("popc") {
                BarKind::RedPopc
            } else if has("and") {
                BarKind::RedAnd
            } else if has("or") {
                BarKind::RedOr
            } else {
                return Err(bad());
            }
        } else if mods.is_empty() || (mods.len() == 1 && has("cta")) {
            BarKind::Sync
        } else {
            return Err(bad());
        };
        let red = matches!(kind, BarKind::RedPopc | BarKind::RedAnd | BarKind::RedOr);
        let (d, rest) = if red { (self.dst(o.first().ok_or_else(bad)?, line)?, &o[1..]) } else { (NO_REG, &o[..]) };
        let id = self.src(rest.first().ok_or_else(bad)?, Ty::U32, line)?;
        let (count, p, pneg) = if red {
            if rest.len() == 3 {
                let c = self.src(&rest[1], Ty::U32, line)?;
                let (p, n) = self.pred_src(&rest[2], line)?;
                (c, p, n)
            } else {
                let (p, n) = self.pred_src(rest.get(1).ok_or_else(bad)?, line)?;
                (NO_REG, p, n)
            }
        } else {
            let c = match rest.get(1) {
                Some(op) => self.src(op, Ty::U32, line)?,
                None => NO_REG,
            };
            (c, NO_REG, false)
        };
        if kind == BarKind::Arrive && count == NO_REG {
            return unsup(format!("{full} without a thread count"), line);
        }
        Ok(Op::Bar { kind, id, count, d, p, pneg })
    }

    fn call(&mut self, ins: &ast::Instr) -> Result<Op> {
        let line = ins.line;
        let full = ins.opcode.join(".");
        let bad = || VmError::Unsupported { what: format!("{full} with these operands"), line, source: None };
        let o = &ins.operands;
        let (rets, rest): (&[Operand], &[Operand]) = match o.first() {
            Some(Operand::List(r)) => (r.as_slice(), &o[1..]),
            _ => (&[], &o[..]),
        };
        let Some(Operand::Name(fname)) = rest.first() else { return Err(bad()) };
        let args: &[Operand] = match rest.get(1) {
            Some(Operand::List(a)) => a.as_slice(),
            None => &[],
            _ => return unsup(format!("indirect call `{full}`"), line),
        };
        if let Some(Sym::Reg(f)) = self.lookup(fname) {
            return self.call_indirect(f, rets, args, line);
        }
        let fi = match self.syms.get(fname) {
            Some(ModSym::Func(i)) => *i,
            _ => {
                if self.lookup(fname).is_some() {
                    return unsup(format!("indirect call through `{fname}`"), line);
                }
                return Err(VmError::Undefined { name: fname.clone(), line });
            }
        };
        // CUDA's device-side assert calls __assertfail, which prints the message and traps.
        if fname == "__assertfail" && self.m.functions[fi].body.is_none() {
            let mut arg = |i: usize| match args.get(i) {
                Some(Operand::Name(n)) => self.fparam_off(n, line).ok(),
                _ => None,
            };
            return Ok(Op::AssertFail { message: arg(0), line: arg(2) });
        }
        // The device heap (CUDA's malloc/free in device code): see `Op::Malloc`.
        if self.m.functions[fi].body.is_none() && (fname == "malloc" || fname == "free") {
            let arg = |s: &mut Self, o: Option<&Operand>| match o {
                Some(Operand::Name(n)) => s.fparam_off(n, line),
                _ => Err(bad()),
            };
            if fname == "free" {
                return Ok(Op::Nop);
            }
            let size = arg(self, args.first())?;
            let ret = arg(self, rets.first())?;
            return Ok(Op::Malloc { size, ret });
        }
        // CUDA's device printf (CUDA C++ Programming Guide, "Formatted Output").
        if fname == "vprintf" && self.m.functions[fi].body.is_none() {
            return self.printf_call(rets, args, line);
        }
        if self.m.functions[fi].body.is_none() {
            return unsup(format!("call of `{fname}`, which has no body in this module"), line);
        }
        let (fr, fp) = self.layout_func(fi);
        let mut copy_in = Vec::new();
        for (a, &(dst, len)) in args.iter().zip(&fp) {
            let Operand::Name(n) = a else { return Err(bad()) };
            let src = self.fparam_off(n, line)?;
            let len = len.min(self.fparam_decl.get(&src).copied().unwrap_or(len));
            copy_in.push(Copy { src, dst, len });
        }
        let mut copy_out = Vec::new();
        for (r, &(src, len)) in rets.iter().zip(&fr) {
            let Operand::Name(n) = r else { return Err(bad()) };
            let dst = self.fparam_off(n, line)?;
            let len = len.min(self.fparam_decl.get(&dst).copied().unwrap_or(len));
            copy_out.push(Copy { src, dst, len });
        }
        self.call_patches.push((self.code.len(), fi));
        Ok(Op::Call { target: 0, copy_in: copy_in.into(), copy_out: copy_out.into() })
    }

    /// `call (ret), vprintf, (fmt, args)`: both arguments are 64-bit generic pointers in `.param`
    /// variables of the call sequence; the result is a 32-bit int.
    fn printf_call(&mut self, rets: &[Operand], args: &[Operand], line: u32) -> Result<Op> {
        let mut off = |o: Option<&Operand>, size: u32| -> Result<u32> {
            let Some(Operand::Name(n)) = o else {
                return unsup("a vprintf call without its two .param arguments", line);
            };
            let at = self.fparam_off(n, line)?;
            if self.fparam_decl.get(&at).is_some_and(|&s| s < size) {
                return unsup(format!("a vprintf argument `{n}` narrower than {size} bytes"), line);
            }
            Ok(at)
        };
        let fmt = off(args.first(), 8)?;
        let arg = off(args.get(1), 8)?;
        let ret = if rets.is_empty() { u32::MAX } else { off(rets.first(), 4)? };
        if args.len() != 2 || rets.len() > 1 {
            return unsup("a vprintf call with other than (fmt, args) arguments", line);
        }
        Ok(Op::Printf { fmt, args: arg, ret })
    }

    /// `call (rets), %f, (args), prototype;` (PTX ISA 9.7.12.2 `call`, indirect form): the possible
    /// callees are the functions whose address the module takes and whose parameter and result
    /// counts match the call's; each is lowered into this kernel. Calling anything else (a null or
    /// stray pointer, an extern function) is a fault when it happens.
    fn call_indirect(&mut self, f: R, rets: &[Operand], args: &[Operand], line: u32) -> Result<Op> {
        let mut targets = Vec::new();
        for fi in address_taken(self.m) {
            let func = &self.m.functions[fi];
            if func.body.is_none() || func.params.len() != args.len() || func.rets.len() != rets.len() {
                continue;
            }
            let (fr, fp) = self.layout_func(fi);
            let mut copy_in = Vec::new();
            for (a, &(dst, len)) in args.iter().zip(&fp) {
                let Operand::Name(n) = a else { return unsup("an indirect call argument that is not a .param", line) };
                let src = self.fparam_off(n, line)?;
                let len = len.min(self.fparam_decl.get(&src).copied().unwrap_or(len));
                copy_in.push(Copy { src, dst, len });
            }
            let mut copy_out = Vec::new();
            for (r, &(src, len)) in rets.iter().zip(&fr) {
                let Operand::Name(n) = r else { return unsup("an indirect call result that is not a .param", line) };
                let dst = self.fparam_off(n, line)?;
                let len = len.min(self.fparam_decl.get(&dst).copied().unwrap_or(len));
                copy_out.push(Copy { src, dst, len });
            }
            self.indirect_patches.push((self.code.len(), targets.len(), fi));
            targets.push(IndirectTarget {
                addr: func_addr(fi),
                target: 0,
                copy_in: copy_in.into(),
                copy_out: copy_out.into(),
            });
        }
        Ok(Op::CallIndirect { f, targets: targets.into() })
    }

    fn fparam_off(&mut self, name: &str, line: u32) -> Result<u32> {
        if let Some(Sym::Var(r, Space::Param)) = self.lookup(name) {
            if let Some(&(_, Init::Val(v))) = self.init.iter().find(|x| x.0 == r) {
                if v >= FPARAM_WIN {
                    return Ok((v - FPARAM_WIN) as u32);
                }
            }
        }
        unsup(format!("call argument `{name}` (expected a .param variable of the call sequence)"), line)
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

fn cvt_ii<D: Int>(st: Ty, sat: bool) -> Option<F1> {
    macro_rules! pick {
        ($s:ty) => {
            Some(if sat { cvt_int::<D, $s, true> as F1 } else { cvt_int::<D, $s, false> as F1 })
        };
    }
    match st {
        Ty::U8 | Ty::B8 => pick!(u8),
        Ty::S8 => pick!(i8),
        Ty::U16 | Ty::B16 => pick!(u16),
        Ty::S16 => pick!(i16),
        Ty::U32 | Ty::B32 => pick!(u32),
        Ty::S32 => pick!(i32),
        Ty::U64 | Ty::B64 => pick!(u64),
        Ty::S64 => pick!(i64),
        _ => None,
    }
}

fn mov_fn(t: Ty) -> F1 {
    match t.bytes() {
        1 if t == Ty::Pred => f1!(|a| a & 1),
        1 => f1!(|a| a & 0xff),
        2 => f1!(|a| a & 0xffff),
        4 => f1!(|a| a & 0xffff_ffff),
        _ => f1!(|a| a),
    }
}

#[inline(always)]
fn h2f(x: u16) -> f32 {
    half::f16::from_bits(x).to_f32()
}
#[inline(always)]
fn b2f(x: u16) -> f32 {
    half::bf16::from_bits(x).to_f32()
}

/// Comparison functions for `setp` (PTX ISA 9.7.9.12 / 9.7.4.1): ordered comparisons are false
/// when an operand is NaN, the `u` forms true.
/// `set.cmp.dtype.{f16x2,bf16x2}`: per-half comparisons through `semantics::compare::set_x2`, with
/// the operator, format, `.ftz` and the "true" pattern of the destination fixed at lowering.
fn set_x2_fn(cmp: &str, dt: Ty, bf16: bool, ftz: bool) -> Option<F2> {
    use crate::semantics::compare::{set_x2, FCmp};
    fn go<const C: usize, const BF: bool, const FTZ: bool, const ONE: u16>(a: &Lanes, b: &Lanes, o: &mut Lanes) {
        for i in 0..32 {
            o[i] = set_x2(FCmp::ALL[C], a[i] as u32, b[i] as u32, BF, FTZ, ONE) as u64;
        }
    }
    let one = match dt {
        Ty::F16x2 => 0x3c00,
        Ty::Bf16x2 => 0x3f80,
        Ty::U32 | Ty::S32 | Ty::B32 => 0xffff,
        _ => return None,
    };
    macro_rules! pick {
        ($c:literal) => {
            match (bf16, ftz, one) {
                (false, false, 0x3c00) => go::<$c, false, false, 0x3c00> as F2,
                (false, true, 0x3c00) => go::<$c, false, true, 0x3c00> as F2,
                (true, _, 0x3f80) => go::<$c, true, false, 0x3f80> as F2,
                (false, false, _) => go::<$c, false, false, 0xffff> as F2,
                (false, true, _) => go::<$c, false, true, 0xffff> as F2,
                (true, _, _) => go::<$c, true, false, 0xffff> as F2,
            }
        };
    }
    Some(match FCmp::parse(cmp)?.index() {
        0 => pick!(0),
        1 => pick!(1),
        2 => pick!(2),
        3 => pick!(3),
        4 => pick!(4),
        5 => pick!(5),
        6 => pick!(6),
        7 => pick!(7),
        8 => pick!(8),
        9 => pick!(9),
        10 => pick!(10),
        11 => pick!(11),
        12 => pick!(12),
        _ => pick!(13),
    })
}

fn cmp_fn(cmp: &str, t: Ty, ftz: bool) -> Option<F2> {
    macro_rules! icmp {
        ($t:ty) => {
            match cmp {
                "eq" => f2!(|a, b| (<$t as Int>::from(a) == <$t as Int>::from(b)) as u64),
                "ne" => f2!(|a, b| (<$t as Int>::from(a) != <$t as Int>::from(b)) as u64),
                "lt" | "lo" => f2!(|a, b| (<$t as Int>::from(a) < <$t as Int>::from(b)) as u64),
                "le" | "ls" => f2!(|a, b| (<$t as Int>::from(a) <= <$t as Int>::from(b)) as u64),
                "gt" | "hi" => f2!(|a, b| (<$t as Int>::from(a) > <$t as Int>::from(b)) as u64),
                "ge" | "hs" => f2!(|a, b| (<$t as Int>::from(a) >= <$t as Int>::from(b)) as u64),
                _ => return None,
            }
        };
    }
    macro_rules! fcmp {
        ($conv:expr) => {
            match cmp {
                "eq" => f2!(|a, b| ($conv(a) == $conv(b)) as u64),
                "ne" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x != y && !x.is_nan() && !y.is_nan()) as u64
                }),
                "lt" => f2!(|a, b| ($conv(a) < $conv(b)) as u64),
                "le" => f2!(|a, b| ($conv(a) <= $conv(b)) as u64),
                "gt" => f2!(|a, b| ($conv(a) > $conv(b)) as u64),
                "ge" => f2!(|a, b| ($conv(a) >= $conv(b)) as u64),
                "equ" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x == y || x.is_nan() || y.is_nan()) as u64
                }),
                "neu" => f2!(|a, b| ($conv(a) != $conv(b)) as u64),
                "ltu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x < y || x.is_nan() || y.is_nan()) as u64
                }),
                "leu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x <= y || x.is_nan() || y.is_nan()) as u64
                }),
                "gtu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x > y || x.is_nan() || y.is_nan()) as u64
                }),
                "geu" => f2!(|a, b| {
                    let (x, y) = ($conv(a), $conv(b));
                    (x >= y || x.is_nan() || y.is_nan()) as u64
                }),
                "num" => f2!(|a, b| (!$conv(a).is_nan() && !$conv(b).is_nan()) as u64),
                "nan" => f2!(|a, b| ($conv(a).is_nan() || $conv(b).is_nan()) as u64),
                _ => return None,
            }
        };
    }
    Some(match t {
        Ty::U8 | Ty::B8 => icmp!(u8),
        Ty::S8 => icmp!(i8),
        Ty::U16 | Ty::B16 => icmp!(u16),
        Ty::S16 => icmp!(i16),
        Ty::U32 | Ty::B32 => icmp!(u32),
        Ty::S32 => icmp!(i32),
        Ty::U64 | Ty::B64 => icmp!(u64),
        Ty::S64 => icmp!(i64),
        // `.ftz` only changes subnormal inputs, which compare like zero then.
        Ty::F32 if ftz => fcmp!(|x: u64| f32v(ftz32(x))),
        Ty::F32 => fcmp!(f32v),
        Ty::F64 => fcmp!(f64v),
        Ty::F16 => fcmp!(|x: u64| h2f(x as u16)),
        Ty::Bf16 => fcmp!(|x: u64| b2f(x as u16)),
        _ => return None,
    })
}
