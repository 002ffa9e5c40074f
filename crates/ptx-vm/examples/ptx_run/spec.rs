//! Launch specs for the `ptx_run` example: what to allocate, how to fill it, what to pass.
//!
//! One spec is a list of words, as on a command line:
//!
//! ```text
//! FILE.ptx KERNEL [--grid X[,Y[,Z]]] [--block X[,Y[,Z]]] [--smem BYTES]
//!          [--param SPEC]... [--no-sanitizer] [--print-out N] [--compare RULE]
//! ```
//!
//! A `--param` SPEC is one kernel argument, in declaration order:
//! - `buf:TYPE:COUNT:FILL[:out]` allocates COUNT elements of TYPE, fills them and passes the
//!   address. FILL is `zeros`, `poison` (0xff bytes: NaN, -1, left uninitialised on the VM so
//!   that a read before a write is a finding), `iota` (0, 1, 2, ...),
//!   `rand(SEED)` (floats uniform in [-1, 1), integers over the type's full range),
//!   `rand(SEED,LO,HI)` (floats in [LO, HI), integers in [LO, HI]), or a constant (`2.5`, `-3`,
//!   `0x7f`, `const(2.5)`). `:out` marks a buffer to print; `out` alone is `poison:out`.
//! - `TYPE:VALUE` passes a scalar: `u8 i8 u16 i16 u32 i32 u64 i64 f32 f64`.
//! - `ptr:I` or `ptr:I+BYTES` passes the address of buffer I (0-based, in buffer order) again.
//! - `bytes:ALIGN:HEX` passes raw bytes at an alignment (a struct by value).
//! - `tmap:TYPE:DIMS:BOX:SWIZZLE:FILL[:out]` allocates a dense tensor of TYPE with the extents
//!   DIMS (`D0xD1...`, innermost first, 1 to 5 of them), fills it as a buffer and passes, instead
//!   of its address, a 128-byte tiled tensor map of it (a `__grid_constant__ CUtensorMap`) with
//!   the box BOX (`B0xB1...`) and the swizzle `none`, `32B`, `64B` or `128B`. It counts as a
//!   buffer (allocated, compared, indexed by `ptr:I`). [`Spec::params`] writes the VM's encoding
//!   ([`ptx_vm::semantics::tensor_map`]); a GPU half encodes the same map with the driver
//!   (`cuTensorMapEncodeTiled`) through [`Spec::params_with`].
//!
//! Buffer TYPEs are the scalar types plus `f16` and `bf16`. A struct passed by value may also be
//! given field by field (`--param ptr:0 --param u32:7 --param u32:0` for `{float*; int; pad}`): the
//! checked launch accepts fields that fill the struct's bytes.
//!
//! `--compare RULE` and `--compare I=RULE` (buffer I only) are read by the root crate's `vm_diff`
//! example (the same words, one launch per line of `crates/ptx-vm/tests/cuda/vm_diff.txt`):
//! `exact` (every bit), `approx:N` (float elements within N units in the last place, integers
//! exact), `mma:TOL` (|gpu - vm| <= TOL x the largest |vm| of the buffer: tensor-core sums and
//! float atomics, whose order the ISA leaves open) or `skip`.
//!
//! `--arch sm_90` runs the launch on the VM as a Hopper (sm_90a kernels: wgmma, TMA); the default
//! is the architecture the caller passes (sm_80 for `vm_diff`).
//!
//! `--expect-error WORD` (also `vm_diff` only) marks a launch meant to fail: it runs on the VM
//! only, and passes when the launch fails or the sanitizer reports a finding, with WORD in the
//! text, each `_` of WORD read as a space ([`expected_failure`]).
//!
//! This file is a module of the example, and is included by `tests/api_cli.rs` and by the root
//! crate's `examples/vm_diff.rs` with `#[path]`, so each includer uses part of it.
#![allow(dead_code)]

use ptx_vm::semantics::tensor_map::TensorMap;
use ptx_vm::semantics::wgmma::Swizzle;
use ptx_vm::{Arch, LaunchReport, Machine, Module, ParamBuilder};

/// How to use the tool, printed with every argument error.
pub const USAGE: &str = "usage: ptx_run FILE.ptx KERNEL [--grid X[,Y,Z]] [--block X[,Y,Z]] [--smem BYTES]
               [--param SPEC]... [--no-sanitizer] [--print-out N]
               [--arch sm_80|sm_90] [--compare RULE]... [--expect-error WORD]   (read by vm_diff)
       ptx_run FILE.ptx     (lists the kernels and their parameters)
  SPEC: buf:TYPE:COUNT:FILL[:out] | TYPE:VALUE | ptr:I[+BYTES] | bytes:ALIGN:HEX
        | tmap:TYPE:DIMS:BOX:SWIZZLE:FILL[:out]   (DIMS, BOX: D0xD1..., SWIZZLE: none|32B|64B|128B)
  TYPE: u8 i8 u16 i16 u32 i32 u64 i64 f16 bf16 f32 f64 (f16/bf16 for buffers only)
  FILL: zeros | poison | iota | rand(SEED) | rand(SEED,LO,HI) | VALUE | const(VALUE) | out
example: ptx_run crates/ptx-vm/tests/ptx/saxpy.ptx saxpy_f32 --grid 4 --block 256 \\
         --param i32:1000 --param f32:2.5 --param buf:f32:1000:rand(1) --param buf:f32:1000:iota:out";

/// An element type of a buffer or a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `u16`.
    U16,
    /// `i16`.
    I16,
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `u64`.
    U64,
    /// `i64`.
    I64,
    /// `f16` (IEEE half).
    F16,
    /// `bf16`.
    Bf16,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl Elem {
    fn parse(s: &str) -> Option<Elem> {
        Some(match s {
            "u8" => Elem::U8,
            "i8" | "s8" => Elem::I8,
            "u16" => Elem::U16,
            "i16" | "s16" => Elem::I16,
            "u32" => Elem::U32,
            "i32" | "s32" => Elem::I32,
            "u64" => Elem::U64,
            "i64" | "s64" => Elem::I64,
            "f16" => Elem::F16,
            "bf16" => Elem::Bf16,
            "f32" => Elem::F32,
            "f64" => Elem::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::U8 | Elem::I8 => 1,
            Elem::U16 | Elem::I16 | Elem::F16 | Elem::Bf16 => 2,
            Elem::U32 | Elem::I32 | Elem::F32 => 4,
            Elem::U64 | Elem::I64 | Elem::F64 => 8,
        }
    }

    /// A floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Elem::F16 | Elem::Bf16 | Elem::F32 | Elem::F64)
    }

    fn is_signed(self) -> bool {
        matches!(self, Elem::I8 | Elem::I16 | Elem::I32 | Elem::I64)
    }

    /// The type's name as the spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            Elem::U8 => "u8",
            Elem::I8 => "i8",
            Elem::U16 => "u16",
            Elem::I16 => "i16",
            Elem::U32 => "u32",
            Elem::I32 => "i32",
            Elem::U64 => "u64",
            Elem::I64 => "i64",
            Elem::F16 => "f16",
            Elem::Bf16 => "bf16",
            Elem::F32 => "f32",
            Elem::F64 => "f64",
        }
    }

    /// The little-endian bytes of `v` in this type (floats rounded to nearest even, integers
    /// truncated to the type's width).
    fn encode_float(self, v: f64) -> Vec<u8> {
        match self {
            Elem::F16 => half::f16::from_f32(v as f32).to_bits().to_le_bytes().to_vec(),
            Elem::Bf16 => half::bf16::from_f32(v as f32).to_bits().to_le_bytes().to_vec(),
            Elem::F32 => (v as f32).to_le_bytes().to_vec(),
            Elem::F64 => v.to_le_bytes().to_vec(),
            _ => self.encode_int(v as i128),
        }
    }

    fn encode_int(self, v: i128) -> Vec<u8> {
        if self.is_float() {
            return self.encode_float(v as f64);
        }
        (v as u128).to_le_bytes()[..self.size()].to_vec()
    }

    /// One element from its little-endian bytes, as f64 (integers exactly up to 2^53).
    pub fn decode(self, b: &[u8]) -> f64 {
        let mut w = [0u8; 8];
        w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
        let u = u64::from_le_bytes(w);
        match self {
            Elem::U8 | Elem::U16 | Elem::U32 | Elem::U64 => u as f64,
            Elem::I8 => u as u8 as i8 as f64,
            Elem::I16 => u as u16 as i16 as f64,
            Elem::I32 => u as u32 as i32 as f64,
            Elem::I64 => u as i64 as f64,
            Elem::F16 => half::f16::from_bits(u as u16).to_f64(),
            Elem::Bf16 => half::bf16::from_bits(u as u16).to_f64(),
            Elem::F32 => f32::from_bits(u as u32) as f64,
            Elem::F64 => f64::from_bits(u),
        }
    }

    /// One element from its bytes, as the spec would print it.
    pub fn show(self, b: &[u8]) -> String {
        let v = self.decode(b);
        if self == Elem::F64 {
            format!("{v}")
        } else if self.is_float() {
            // Every f16, bf16 and f32 is an f32: print its shortest f32 form, not the f64 one.
            format!("{}", v as f32)
        } else if self == Elem::U64 || self == Elem::I64 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[..8]);
            if self == Elem::U64 {
                u64::from_le_bytes(w).to_string()
            } else {
                i64::from_le_bytes(w).to_string()
            }
        } else {
            format!("{}", v as i64)
        }
    }
}

/// How a buffer starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Fill {
    /// All zero bytes.
    Zeros,
    /// All 0xff bytes: NaN as a float, -1 as a signed integer.
    Poison,
    /// Element i holds i.
    Iota,
    /// Seeded random values, optionally in a range.
    Rand {
        /// The seed.
        seed: u64,
        /// `[lo, hi)` for floats, `[lo, hi]` for integers.
        range: Option<(f64, f64)>,
    },
    /// Every element holds this number.
    Const(f64),
}

/// A buffer argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// Element type.
    pub elem: Elem,
    /// Number of elements.
    pub count: usize,
    /// Initial contents.
    pub fill: Fill,
    /// Print it after the launch.
    pub out: bool,
}

impl Buffer {
    /// The buffer's initial bytes, the same on every backend.
    pub fn host_bytes(&self) -> Vec<u8> {
        let n = self.count;
        match &self.fill {
            Fill::Zeros => vec![0; n * self.elem.size()],
            Fill::Poison => vec![0xff; n * self.elem.size()],
            Fill::Iota => (0..n).flat_map(|i| self.elem.encode_int(i as i128)).collect(),
            Fill::Const(v) => {
                let one =
                    if self.elem.is_float() { self.elem.encode_float(*v) } else { self.elem.encode_int(*v as i128) };
                one.repeat(n)
            }
            Fill::Rand { seed, range } => {
                let mut rng = Rng::new(*seed);
                let mut out = Vec::with_capacity(n * self.elem.size());
                for _ in 0..n {
                    let bits = rng.next_u64();
                    let e = if self.elem.is_float() {
                        let (lo, hi) = range.unwrap_or((-1.0, 1.0));
                        let u = (bits >> 11) as f64 / (1u64 << 53) as f64;
                        self.elem.encode_float(lo + (hi - lo) * u)
                    } else if let Some((lo, hi)) = range {
                        let span = (*hi as i128 - *lo as i128 + 1).max(1) as u128;
                        self.elem.encode_int(*lo as i128 + (bits as u128 % span) as i128)
                    } else {
                        bits.to_le_bytes()[..self.elem.size()].to_vec()
                    };
                    out.extend_from_slice(&e);
                }
                out
            }
        }
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.count * self.elem.size()
    }
}

/// xorshift64*: seedable and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Spread small seeds over the state so rand(1) and rand(2) are unrelated streams.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One kernel argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A new buffer; the kernel gets its address.
    Buffer(Buffer),
    /// A scalar: its type and little-endian bytes.
    Scalar(Elem, Vec<u8>),
    /// The address of an earlier buffer (index among buffers) plus a byte offset.
    Ptr(usize, u64),
    /// Raw bytes at an alignment.
    Bytes(usize, Vec<u8>),
    /// A new buffer holding a dense tensor; the kernel gets a tiled tensor map of it.
    TensorMap(TensorMapArg),
}

/// A `tmap:` argument: the tensor's buffer and the map's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorMapArg {
    /// The tensor's elements (`count` is the product of `dims`).
    pub buffer: Buffer,
    /// Extents, innermost first.
    pub dims: Vec<u64>,
    /// The box, innermost first.
    pub boxd: Vec<u32>,
    /// The shared-memory swizzle.
    pub swizzle: Swizzle,
}

impl TensorMapArg {
    /// The map's fields for a tensor at `addr`: dense strides (each the bytes of the dimensions
    /// inside it), element strides 1, no interleave, zero fill outside the tensor.
    pub fn map(&self, addr: u64) -> TensorMap {
        let eb = self.buffer.elem.size() as u64;
        let strides: Vec<u64> = (1..self.dims.len()).map(|i| eb * self.dims[..i].iter().product::<u64>()).collect();
        let mut m = TensorMap::new(addr, eb as u8, &self.dims, &strides, &self.boxd);
        m.swizzle = self.swizzle;
        m
    }

    /// The VM's 128-byte encoding of the map for a tensor at `addr`.
    pub fn vm_bytes(&self, addr: u64) -> Result<[u8; 128], String> {
        self.map(addr).encode().map_err(|e| e.to_string())
    }
}

/// How `vm_diff` compares a buffer read back from the GPU with the VM's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compare {
    /// Every bit.
    Exact,
    /// Float elements within this many units in the last place; integer elements exact.
    Approx(u64),
    /// Float elements within this fraction of the buffer's largest magnitude.
    Mma(f64),
    /// Not compared.
    Skip,
}

/// One launch, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The PTX file.
    pub ptx: String,
    /// The kernel.
    pub kernel: String,
    /// Blocks.
    pub grid: [u32; 3],
    /// Threads per block.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub smem: u32,
    /// The arguments in order.
    pub args: Vec<Arg>,
    /// Racecheck and initcheck on (the default).
    pub sanitizer: bool,
    /// Elements of each `out` buffer to print.
    pub print_out: usize,
    /// The comparison rule for every buffer without its own (`vm_diff` only).
    pub compare: Compare,
    /// Rules for single buffers, by buffer index (`vm_diff` only).
    pub compare_buffer: Vec<(usize, Compare)>,
    /// `--expect-error WORD` (`vm_diff` only): the launch is meant to fail (a trap, a failed
    /// assert, a deadlock, an unsupported instruction, a planted sanitizer bug). It runs on the VM
    /// only, which must fail it or report a finding whose text contains WORD (`_` read as a
    /// space); it is never
    /// launched on the GPU, where such a kernel would take the context down or leave undefined
    /// bytes.
    pub expect_error: Option<String>,
    /// `--arch`: the VM architecture of the launch, over the caller's default.
    pub arch: Option<Arch>,
}

impl Spec {
    /// The comparison rule of buffer `i`.
    pub fn rule(&self, i: usize) -> Compare {
        self.compare_buffer.iter().rev().find(|(j, _)| *j == i).map_or(self.compare, |(_, c)| *c)
    }

    /// The buffers, in argument order.
    pub fn buffers(&self) -> Vec<&Buffer> {
        self.args
            .iter()
            .filter_map(|a| match a {
                Arg::Buffer(b) => Some(b),
                Arg::TensorMap(t) => Some(&t.buffer),
                _ => None,
            })
            .collect()
    }

    /// The parameter list, given the device address of each buffer (in buffer order), with the
    /// tensor maps in the VM's encoding.
    pub fn params(&self, addrs: &[u64]) -> ParamBuilder {
        // parse_words encoded every map once at a 16-byte aligned address: it cannot fail at
        // another (buffer addresses are aligned).
        self.params_with(addrs, |t, a| t.vm_bytes(a).expect("checked by parse_words"))
    }

    /// [`Spec::params`] with the tensor maps encoded by `encode` (given the map and the tensor's
    /// address): the driver's encoding for a GPU.
    pub fn params_with(&self, addrs: &[u64], encode: impl Fn(&TensorMapArg, u64) -> [u8; 128]) -> ParamBuilder {
        let mut p = ParamBuilder::new();
        let mut next = 0;
        for a in &self.args {
            p = match a {
                Arg::Buffer(_) => {
                    next += 1;
                    p.ptr(addrs[next - 1])
                }
                Arg::TensorMap(t) => {
                    next += 1;
                    p.bytes(&encode(t, addrs[next - 1]), 128)
                }
                Arg::Ptr(i, off) => p.ptr(addrs[*i].wrapping_add(*off)),
                Arg::Bytes(align, data) => p.bytes(data, *align),
                Arg::Scalar(e, b) => {
                    let mut w = [0u8; 8];
                    w[..b.len()].copy_from_slice(b);
                    let u = u64::from_le_bytes(w);
                    match e {
                        Elem::U8 => p.u8(u as u8),
                        Elem::I8 => p.i8(u as i8),
                        Elem::U16 => p.u16(u as u16),
                        Elem::I16 => p.i16(u as i16),
                        Elem::U32 => p.u32(u as u32),
                        Elem::I32 => p.i32(u as i32),
                        Elem::U64 => p.u64(u),
                        Elem::I64 => p.i64(u as i64),
                        Elem::F32 => p.f32(f32::from_bits(u as u32)),
                        Elem::F64 => p.f64(f64::from_bits(u)),
                        // Refused by the parser: ParamBuilder has no half-precision scalars.
                        Elem::F16 | Elem::Bf16 => p.bytes(b, 2),
                    }
                }
            };
        }
        p
    }
}

fn number(s: &str) -> Option<f64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()? as f64
    } else {
        t.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// An integer literal, decimal or 0x hex, with a sign.
fn integer(s: &str) -> Option<i128> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else {
        t.parse::<i128>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn scalar(elem: Elem, v: &str) -> Result<Vec<u8>, String> {
    if elem.is_float() {
        if matches!(elem, Elem::F16 | Elem::Bf16) {
            return Err(format!("{} scalars are not supported (pass them as bytes:2:HEX)", elem.name()));
        }
        let x = number(v).ok_or_else(|| format!("`{v}` is not a number"))?;
        return Ok(elem.encode_float(x));
    }
    let x = integer(v).ok_or_else(|| format!("`{v}` is not an integer"))?;
    let bits = 8 * elem.size() as u32;
    let (lo, hi) =
        if elem.is_signed() { (-(1i128 << (bits - 1)), (1i128 << bits) - 1) } else { (0, (1i128 << bits) - 1) };
    if x < lo || x > hi {
        return Err(format!("{x} does not fit a {}", elem.name()));
    }
    Ok(elem.encode_int(x))
}

fn fill(s: &str) -> Result<Fill, String> {
    match s {
        "zeros" => return Ok(Fill::Zeros),
        "poison" => return Ok(Fill::Poison),
        "iota" => return Ok(Fill::Iota),
        _ => {}
    }
    if let Some(inner) = s.strip_prefix("rand(").and_then(|t| t.strip_suffix(')')) {
        let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
        let seed = integer(parts[0])
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| format!("rand: seed `{}` is not a non-negative integer", parts[0]))?;
        return match parts.len() {
            1 => Ok(Fill::Rand { seed, range: None }),
            3 => {
                let lo = number(parts[1]).ok_or_else(|| format!("rand: `{}` is not a number", parts[1]))?;
                let hi = number(parts[2]).ok_or_else(|| format!("rand: `{}` is not a number", parts[2]))?;
                if hi < lo {
                    return Err(format!("rand: the range {lo}..{hi} is empty"));
                }
                Ok(Fill::Rand { seed, range: Some((lo, hi)) })
            }
            _ => Err(format!("rand takes (SEED) or (SEED,LO,HI), got ({inner})")),
        };
    }
    let v = s.strip_prefix("const(").and_then(|t| t.strip_suffix(')')).unwrap_or(s);
    number(v).map(Fill::Const).ok_or_else(|| {
        format!("fill `{s}` is not one of zeros, poison, iota, rand(SEED), rand(SEED,LO,HI), a number, out")
    })
}

/// Parses one `--param` spec.
pub fn parse_arg(s: &str) -> Result<Arg, String> {
    let ctx = |why: String| format!("--param {s}: {why}");
    let bad = |why: String| Err(ctx(why));
    let (head, rest) = s.split_once(':').unwrap_or((s, ""));
    match head {
        "buf" => {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() < 3 || parts.len() > 4 {
                return bad("expected buf:TYPE:COUNT:FILL[:out]".into());
            }
            let Some(elem) = Elem::parse(parts[0]) else {
                return bad(format!("unknown element type `{}`", parts[0]));
            };
            let Some(count) = integer(parts[1]).and_then(|c| usize::try_from(c).ok()).filter(|&c| c > 0) else {
                return bad(format!("element count `{}` is not a positive integer", parts[1]));
            };
            if count.checked_mul(elem.size()).is_none_or(|b| b > 1 << 34) {
                return bad(format!("{count} elements is more than 16 GiB"));
            }
            let (fill, out) = match (parts[2], parts.get(3)) {
                ("out", None) => (Fill::Poison, true),
                (f, None) => (fill(f).map_err(ctx)?, false),
                (f, Some(&"out")) => (fill(f).map_err(ctx)?, true),
                (_, Some(x)) => return bad(format!("expected `out` after the fill, got `{x}`")),
            };
            Ok(Arg::Buffer(Buffer { elem, count, fill, out }))
        }
        "ptr" => {
            let (i, off) = rest.split_once('+').unwrap_or((rest, "0"));
            let Some(i) = integer(i).and_then(|v| usize::try_from(v).ok()) else {
                return bad(format!("buffer index `{i}` is not a non-negative integer"));
            };
            let Some(off) = integer(off).and_then(|v| u64::try_from(v).ok()) else {
                return bad(format!("byte offset `{off}` is not a non-negative integer"));
            };
            Ok(Arg::Ptr(i, off))
        }
        "bytes" => {
            let Some((align, hex)) = rest.split_once(':') else { return bad("expected bytes:ALIGN:HEX".into()) };
            let Some(align) = integer(align).and_then(|a| usize::try_from(a).ok()).filter(|a| a.is_power_of_two())
            else {
                return bad(format!("alignment `{align}` is not a power of two"));
            };
            if hex.is_empty() || hex.len() % 2 != 0 {
                return bad("HEX must be a non-empty, even number of hex digits".into());
            }
            let mut data = Vec::with_capacity(hex.len() / 2);
            for i in (0..hex.len()).step_by(2) {
                let Some(b) = hex.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()) else {
                    return bad(format!("`{}` is not hex", &hex[i..]));
                };
                data.push(b);
            }
            Ok(Arg::Bytes(align, data))
        }
        "tmap" => {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() < 5 || parts.len() > 6 {
                return bad("expected tmap:TYPE:DIMS:BOX:SWIZZLE:FILL[:out]".into());
            }
            let Some(elem) = Elem::parse(parts[0]) else {
                return bad(format!("unknown element type `{}`", parts[0]));
            };
            let extents = |s: &str| -> Option<Vec<u64>> {
                let v: Option<Vec<u64>> = s.split('x').map(|d| d.parse().ok().filter(|&d| d > 0)).collect();
                v.filter(|v| (1..=5).contains(&v.len()))
            };
            let Some(dims) = extents(parts[1]) else {
                return bad(format!("DIMS `{}` is not 1 to 5 positive extents D0xD1...", parts[1]));
            };
            let Some(boxd) = extents(parts[2]).filter(|b| b.len() == dims.len() && b.iter().all(|&x| x <= 256)) else {
                return bad(format!("BOX `{}` is not {} extents of 1 to 256", parts[2], dims.len()));
            };
            let boxd: Vec<u32> = boxd.iter().map(|&b| b as u32).collect();
            let swizzle = match parts[3] {
                "none" => Swizzle::None,
                "32B" => Swizzle::B32,
                "64B" => Swizzle::B64,
                "128B" => Swizzle::B128,
                x => return bad(format!("SWIZZLE `{x}` is not none, 32B, 64B or 128B")),
            };
            let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?));
            let Some(count) = count.filter(|c| c.checked_mul(elem.size()).is_some_and(|b| b <= 1 << 34)) else {
                return bad(format!("{} elements is more than 16 GiB", parts[1]));
            };
            let (fill, out) = match (parts[4], parts.get(5)) {
                ("out", None) => (Fill::Poison, true),
                (f, None) => (fill(f).map_err(ctx)?, false),
                (f, Some(&"out")) => (fill(f).map_err(ctx)?, true),
                (_, Some(x)) => return bad(format!("expected `out` after the fill, got `{x}`")),
            };
            let t = TensorMapArg { buffer: Buffer { elem, count, fill, out }, dims, boxd, swizzle };
            t.vm_bytes(0x1000).map_err(|e| format!("--param {s}: {e}"))?;
            Ok(Arg::TensorMap(t))
        }
        t => match Elem::parse(t) {
            Some(elem) if !rest.is_empty() => scalar(elem, rest).map(|b| Arg::Scalar(elem, b)).map_err(ctx),
            _ => bad("expected buf:..., ptr:I, bytes:ALIGN:HEX or TYPE:VALUE".into()),
        },
    }
}

fn dims(opt: &str, s: &str) -> Result<[u32; 3], String> {
    let parts: Vec<&str> = s.split([',', 'x']).collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!("{opt} {s}: expected X, X,Y or X,Y,Z"));
    }
    let mut d = [1u32; 3];
    for (i, p) in parts.iter().enumerate() {
        d[i] =
            p.parse().ok().filter(|&v| v > 0).ok_or_else(|| format!("{opt} {s}: `{p}` is not a positive integer"))?;
    }
    Ok(d)
}

fn compare(s: &str) -> Result<Compare, String> {
    let bad = || format!("--compare {s}: expected [I=]exact, approx:ULPS, mma:TOL or skip");
    match s.split_once(':') {
        None if s == "exact" => Ok(Compare::Exact),
        None if s == "skip" => Ok(Compare::Skip),
        Some(("approx", n)) => n.parse().map(Compare::Approx).map_err(|_| bad()),
        Some(("mma", t)) => t.parse().ok().filter(|t: &f64| *t >= 0.0).map(Compare::Mma).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Parses the words of a launch (a command line without the program name, or a table line).
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Spec, String> {
    let mut it = words.iter().map(|w| w.as_ref());
    let mut positional = Vec::new();
    let mut spec = Spec {
        ptx: String::new(),
        kernel: String::new(),
        grid: [1, 1, 1],
        block: [1, 1, 1],
        smem: 0,
        args: Vec::new(),
        sanitizer: true,
        print_out: 8,
        compare: Compare::Exact,
        compare_buffer: Vec::new(),
        expect_error: None,
        arch: None,
    };
    while let Some(w) = it.next() {
        let mut value = |opt: &str| it.next().ok_or_else(|| format!("{opt} needs a value"));
        match w {
            "--grid" => spec.grid = dims(w, value(w)?)?,
            "--block" => spec.block = dims(w, value(w)?)?,
            "--smem" => {
                let v = value(w)?;
                spec.smem = v.parse().map_err(|_| format!("--smem {v}: not a byte count"))?;
            }
            "--param" => spec.args.push(parse_arg(value(w)?)?),
            "--no-sanitizer" => spec.sanitizer = false,
            "--print-out" => {
                let v = value(w)?;
                spec.print_out = v.parse().map_err(|_| format!("--print-out {v}: not a count"))?;
            }
            "--compare" => {
                let v = value(w)?;
                match v.split_once('=') {
                    Some((i, rule)) => {
                        let i = i.parse().map_err(|_| format!("--compare {v}: `{i}` is not a buffer index"))?;
                        spec.compare_buffer.push((i, compare(rule).map_err(|e| format!("{e} (in {v})"))?));
                    }
                    None => spec.compare = compare(v)?,
                }
            }
            "--expect-error" => spec.expect_error = Some(value(w)?.to_string()),
            "--arch" => {
                spec.arch = Some(match value(w)? {
                    "sm_80" => Arch::Sm80,
                    "sm_90" | "sm_90a" => Arch::Sm90,
                    v => return Err(format!("--arch {v}: expected sm_80 or sm_90")),
                })
            }
            o if o.starts_with("--") => return Err(format!("unknown option {o}")),
            p => positional.push(p.to_string()),
        }
    }
    let nbuf = spec.buffers().len();
    if let Some((i, _)) = spec.compare_buffer.iter().find(|(i, _)| *i >= nbuf) {
        return Err(format!("--compare {i}=...: there are only {nbuf} buffers"));
    }
    for a in &spec.args {
        if let Arg::Ptr(i, _) = a {
            if *i >= nbuf {
                return Err(format!("--param ptr:{i}: there are only {nbuf} buffers"));
            }
        }
    }
    match <[String; 2]>::try_from(positional) {
        Ok([ptx, kernel]) => {
            spec.ptx = ptx;
            spec.kernel = kernel;
            Ok(spec)
        }
        Err(p) => Err(format!("expected a PTX file and a kernel name, got {} word(s): {p:?}", p.len())),
    }
}

/// What a VM launch of a spec left: the report and every buffer's final bytes.
pub struct VmRun {
    /// The launch report.
    pub report: LaunchReport,
    /// Each buffer's bytes after the launch, in buffer order.
    pub buffers: Vec<Vec<u8>>,
    /// Each buffer's device address on the VM.
    pub addrs: Vec<u64>,
}

/// A launch of a spec that failed: why, and, when blocks had run, the partial report
/// ([`Machine::last_report`]): the blocks before the fault and the faulting block up to it.
#[derive(Debug)]
pub struct VmFailure {
    /// The error, as the tool prints it.
    pub message: String,
    /// What the launch counted, found and printed before it failed; None when it failed before
    /// any block ran (a bad file, kernel name, configuration or parameter list).
    pub partial: Option<Box<LaunchReport>>,
}

impl std::fmt::Display for VmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs a spec on a fresh VM: parses the PTX, fills the buffers, launches with the checked
/// parameter list and reads every buffer back.
pub fn run_vm(spec: &Spec, ptx: &str, arch: Arch) -> Result<VmRun, String> {
    run_vm_keep(spec, ptx, arch).map_err(|f| f.message)
}

/// [`run_vm`], keeping the partial report of a launch that failed while running.
///
/// A `poison` buffer is filled with [`Machine::fill_poison_with`] (0xff, the bytes the GPU half
/// uploads), not written: its bytes are not initialised, so a kernel that reads one before
/// writing it is a finding, as a missed write is a visible NaN or -1.
pub fn run_vm_keep(spec: &Spec, ptx: &str, arch: Arch) -> Result<VmRun, VmFailure> {
    let fail = |message: String| VmFailure { message, partial: None };
    let module = Module::parse(ptx).map_err(|e| fail(format!("{}: {e}", spec.ptx)))?;
    if module.params(&spec.kernel).is_none() {
        return Err(fail(format!(
            "{}: no kernel `{}`; the module has {:?}",
            spec.ptx,
            spec.kernel,
            module.kernel_names()
        )));
    }
    let mut m = Machine::new(spec.arch.unwrap_or(arch)).with_sanitizer(spec.sanitizer).with_counters(true);
    let mut addrs = Vec::new();
    for b in spec.buffers() {
        let a = m.alloc(b.bytes()).map_err(|e| fail(e.to_string()))?;
        if b.fill == Fill::Poison {
            m.fill_poison_with(a, 0xff, b.bytes()).map_err(|e| fail(e.to_string()))?;
        } else {
            m.write(a, &b.host_bytes()).map_err(|e| fail(e.to_string()))?;
        }
        addrs.push(a);
    }
    let cfg = ptx_vm::LaunchConfig { grid: spec.grid, block: spec.block, dynamic_smem: spec.smem };
    let report = m
        .launch_checked(&module, &spec.kernel, &cfg, &spec.params(&addrs))
        .map_err(|e| VmFailure { message: e.to_string(), partial: m.last_report().cloned().map(Box::new) })?;
    let mut buffers = Vec::new();
    for (b, &a) in spec.buffers().iter().zip(&addrs) {
        let mut v = vec![0u8; b.bytes()];
        m.read(a, &mut v).map_err(|e| fail(e.to_string()))?;
        buffers.push(v);
    }
    Ok(VmRun { report, buffers, addrs })
}

/// The launch's `printf` output as the tool prints it: each line marked `printf| ` so that it
/// cannot be taken for the tool's own lines, then how many bytes the 1 MiB buffer dropped, if
/// any. Empty when the launch printed nothing.
pub fn printf_text(r: &LaunchReport) -> String {
    let mut s = String::new();
    for line in r.printf.lines() {
        s += "printf| ";
        s += line;
        s.push('\n');
    }
    if !r.printf.is_empty() && !r.printf.ends_with('\n') {
        s += "printf: (the output ends without a newline)\n";
    }
    if r.printf_dropped > 0 {
        s += &format!("printf: {} bytes dropped (over the 1 MiB printf buffer)\n", r.printf_dropped);
    }
    s
}

/// Judges a VM launch of a spec with `--expect-error WORD`: Ok (a short description) when the
/// launch failed, or the sanitizer reported a finding, and WORD (each `_` read as a space)
/// appears in the error's or the findings' text; Err (why) otherwise, including a clean launch. None for a spec without the
/// flag.
pub fn expected_failure(spec: &Spec, outcome: &Result<VmRun, VmFailure>) -> Option<Result<String, String>> {
    // The table splits lines at whitespace, so `_` in WORD stands for a space.
    let owned = spec.expect_error.as_deref()?.replace('_', " ");
    let word = owned.as_str();
    let first_line = |t: &str| t.lines().find(|l| l.contains(word)).unwrap_or("").trim().to_string();
    Some(match outcome {
        Err(f) if f.message.contains(word) => Ok(format!("failed as expected: {}", first_line(&f.message))),
        Err(f) => Err(format!("failed, but without `{word}` in the error: {}", f.message)),
        Ok(run) => {
            let text = run.report.findings().to_string();
            let n = run.report.sanitizer.as_ref().map_or(0, |s| s.findings.len());
            if n > 0 && text.contains(word) {
                Ok(format!("{n} finding(s) as expected: {}", first_line(&text)))
            } else if n > 0 {
                Err(format!("{n} finding(s), none with `{word}`: {}", text.lines().nth(1).unwrap_or("").trim()))
            } else {
                Err(format!("ran clean, but `--expect-error {word}` expects a failure or a finding"))
            }
        }
    })
}

/// The first `n` elements of a buffer's bytes, space-separated.
pub fn show_elems(elem: Elem, bytes: &[u8], n: usize) -> String {
    let shown: Vec<String> = bytes.chunks(elem.size()).take(n).map(|c| elem.show(c)).collect();
    let more = bytes.len() / elem.size() > n;
    format!("[{}{}]", shown.join(", "), if more { ", ..." } else { "" })
}

/// Units in the last place between two floats of the same width (both NaN: 0 apart).
pub fn ulps(elem: Elem, a: &[u8], b: &[u8]) -> u128 {
    let bits = |x: &[u8]| {
        let mut w = [0u8; 8];
        w[..x.len()].copy_from_slice(x);
        u64::from_le_bytes(w)
    };
    let width = 8 * elem.size() as u32;
    let sign = 1u64 << (width - 1);
    // Sign-magnitude to a line where adjacent floats are adjacent integers (+0 and -0 coincide).
    let ordered = |x: u64| if x & sign != 0 { -((x & !sign) as i128) } else { x as i128 };
    let (x, y) = (bits(a), bits(b));
    if elem.decode(a).is_nan() && elem.decode(b).is_nan() {
        return 0;
    }
    if elem.decode(a).is_nan() || elem.decode(b).is_nan() {
        return u128::MAX;
    }
    (ordered(x) - ordered(y)).unsigned_abs()
}

/// Whether a GPU buffer matches the VM's under `rule`, and a short description.
pub fn compare_buffers(elem: Elem, rule: Compare, vm: &[u8], gpu: &[u8]) -> (bool, String) {
    let n = vm.len() / elem.size();
    let pairs = || vm.chunks(elem.size()).zip(gpu.chunks(elem.size())).enumerate();
    let differ = pairs().filter(|(_, (a, b))| a != b).count();
    let first = pairs()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!(" (first at [{i}]: VM {} GPU {})", elem.show(a), elem.show(b)));
    let first = first.unwrap_or_default();
    match rule {
        Compare::Skip => (true, "not compared".into()),
        Compare::Exact => (differ == 0, format!("exact: {differ}/{n} differ{first}")),
        Compare::Approx(max) if elem.is_float() => {
            let worst = pairs().map(|(_, (a, b))| ulps(elem, a, b)).max().unwrap_or(0);
            let shown = if worst == u128::MAX { "NaN vs number".to_string() } else { format!("{worst} ulp") };
            (worst <= u128::from(max), format!("approx: max {shown} (bound {max}), {differ}/{n} differ{first}"))
        }
        Compare::Mma(tol) if elem.is_float() => {
            let scale =
                vm.chunks(elem.size()).map(|a| elem.decode(a).abs()).filter(|v| v.is_finite()).fold(0.0, f64::max);
            let mut worst = 0f64;
            let mut nan_mismatch = false;
            for (_, (a, b)) in pairs() {
                let (x, y) = (elem.decode(a), elem.decode(b));
                if x.is_nan() != y.is_nan() {
                    nan_mismatch = true;
                } else if !x.is_nan() {
                    worst = worst.max((x - y).abs());
                }
            }
            let rel = if scale > 0.0 { worst / scale } else { worst };
            (
                !nan_mismatch && rel <= tol,
                format!(
                    "mma: max |diff| {worst:.3e} = {rel:.2e} of max |VM| (bound {tol:.0e}){}, {differ}/{n} differ",
                    if nan_mismatch { ", NaN in one only" } else { "" }
                ),
            )
        }
        // Integer buffers under a float rule: exact.
        Compare::Approx(_) | Compare::Mma(_) => (differ == 0, format!("exact (integers): {differ}/{n} differ{first}")),
    }
}
