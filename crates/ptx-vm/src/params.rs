//! Kernel parameter lists: what a kernel declares ([`ParamInfo`]), what a caller pushes
//! ([`ParamBuilder`]), and the rules that match the two.
//!
//! A kernel's parameters are laid out in the param state space in declaration order, each at the
//! next multiple of its alignment (PTX ISA, "Kernel Function Parameters" in the Parameter State
//! Space section): a scalar is aligned to its size, an array or by-value struct to its `.align`.
//! The CUDA driver copies the caller's bytes into that space as they are, so a list with the right
//! total size but a field in the wrong place runs and computes garbage. [`Module::check_params`]
//! and [`Machine::launch_checked`] catch that before the launch.
//!
//! The rules, strict where a mix-up changes the value the kernel sees and loose where PTX is:
//! - Every value must start at its parameter's offset, with its size. Several values may fill one
//!   array parameter (a struct passed by value, field by field) when the first starts at the
//!   array's offset and none runs past its end; the builder aligns each to its own size, so a
//!   struct whose alignment exceeds its first field's must be pushed whole with
//!   [`ParamBuilder::bytes`].
//! - `.bN` takes any N-bit value: bit-size types are untyped (PTX ISA, "Fundamental Types").
//! - `.uN` and `.sN` take any integer or pointer of their size: nvcc declares `int` as `.u32` and
//!   `long long` as `.u64`, and both classes hold the same two's-complement bits.
//! - `.fN` takes only a float: an integer there (or a float in an integer) is a mix-up.
//! - An array takes any single value of its size (its bytes are untyped).
//! - Raw bytes ([`ParamBuilder::bytes`]) fit any class of their size, but their alignment must be
//!   the declaration's: it stands for a `#[repr(C)]` mirror's layout, and a mismatch means the
//!   mirror and the CUDA struct disagree.
//!
//! [`Machine::launch`] with bare bytes checks only the total size, as before.
//!
//! [`Module::check_params`]: crate::Module::check_params
//! [`Machine::launch_checked`]: crate::Machine::launch_checked
//! [`Machine::launch`]: crate::Machine::launch

use std::fmt;

/// The type class of a declared parameter's elements, from its PTX type's first letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamClass {
    /// `.u8` .. `.u64`.
    Unsigned,
    /// `.s8` .. `.s64`.
    Signed,
    /// `.b8` .. `.b64` (untyped bits; also `.pred`).
    Bits,
    /// `.f16`, `.bf16`, `.f16x2`, `.bf16x2`, `.tf32`, `.f32`, `.f64`.
    Float,
}

impl ParamClass {
    /// Class and element width in bits of a PTX type name without its dot (`"u32"`, `"bf16x2"`).
    pub(crate) fn of(ty: &str) -> (ParamClass, u32) {
        let class = if ty.starts_with('f') || ty.starts_with("bf") || ty == "tf32" {
            ParamClass::Float
        } else if ty.starts_with('u') {
            ParamClass::Unsigned
        } else if ty.starts_with('s') {
            ParamClass::Signed
        } else {
            ParamClass::Bits
        };
        let bits = match ty {
            "pred" => 8,
            "f16x2" | "bf16x2" | "tf32" => 32,
            _ => ty.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse().unwrap_or(8),
        };
        (class, bits)
    }

    fn letter(self) -> char {
        match self {
            ParamClass::Unsigned => 'u',
            ParamClass::Signed => 's',
            ParamClass::Bits => 'b',
            ParamClass::Float => 'f',
        }
    }
}

/// One parameter of a kernel, as its `.entry` declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// The name in the PTX (nvcc writes `<kernel>_param_<index>`).
    pub name: String,
    /// Byte offset in the kernel's parameter space.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes: the size of a scalar, the `.align` of an array.
    pub align: usize,
    /// Type class of the elements.
    pub class: ParamClass,
    /// Width of one element in bits.
    pub elem_bits: u32,
    /// `Some(elements)` for an array or vector (`.align 8 .b8 p[16]`: a struct passed by value).
    pub array_len: Option<usize>,
    /// The declaration carries `.ptr` (an address; nvcc writes plain `.u64` for pointers too).
    pub ptr: bool,
}

impl ParamInfo {
    /// The type as PTX writes it, e.g. `.u32`, `.u64 .ptr`, `.align 8 .b8[16]`.
    pub fn type_name(&self) -> String {
        let elem = format!(".{}{}", self.class.letter(), self.elem_bits);
        match self.array_len {
            Some(n) => format!(".align {} {elem}[{n}]", self.align),
            None if self.ptr => format!("{elem} .ptr"),
            None => elem,
        }
    }
}

/// What one [`ParamBuilder`] call pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushKind {
    /// An unsigned integer of this many bits.
    Unsigned(u32),
    /// A signed integer of this many bits.
    Signed(u32),
    /// A float of this many bits.
    Float(u32),
    /// A device pointer (64 bits).
    Pointer,
    /// Raw bytes ([`ParamBuilder::bytes`]): untyped, e.g. a `#[repr(C)]` struct.
    Bytes,
}

/// One value in a [`ParamBuilder`]'s list: where it went and what it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PushedParam {
    /// Byte offset in the parameter bytes.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// The alignment it was placed at.
    pub align: usize,
    /// What was pushed.
    pub kind: PushKind,
}

impl fmt::Display for PushedParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PushKind::Unsigned(b) => write!(f, "a u{b}"),
            PushKind::Signed(b) => write!(f, "an i{b}"),
            PushKind::Float(b) => write!(f, "an f{b}"),
            PushKind::Pointer => write!(f, "a pointer"),
            PushKind::Bytes => write!(f, "{} raw bytes aligned to {}", self.size, self.align),
        }
    }
}

/// Builds a kernel's parameter bytes, each value at its natural alignment, as the PTX `.param`
/// declarations lay them out: `ParamBuilder::new().ptr(a).u32(n).f32(x).finish()`.
///
/// The builder remembers what each call pushed, so [`crate::Machine::launch_checked`] can compare
/// the list with the kernel's declared parameters ([`crate::Module::params`]) and name the first
/// one that disagrees; [`ParamBuilder::finish`] gives the bare bytes for [`crate::Machine::launch`],
/// which checks only their total size.
#[derive(Clone, Debug, Default)]
pub struct ParamBuilder {
    bytes: Vec<u8>,
    pushed: Vec<PushedParam>,
}

impl ParamBuilder {
    /// An empty parameter list.
    pub fn new() -> ParamBuilder {
        ParamBuilder::default()
    }

    fn push(mut self, data: &[u8], align: usize, kind: PushKind) -> ParamBuilder {
        let a = align.max(1);
        let at = self.bytes.len().div_ceil(a) * a;
        self.bytes.resize(at, 0);
        self.bytes.extend_from_slice(data);
        self.pushed.push(PushedParam { offset: at, size: data.len(), align: a, kind });
        self
    }

    /// Appends raw bytes at the given alignment (e.g. a `#[repr(C)]` struct passed by value, which
    /// nvcc declares as `.param .align A .b8 name[N]`; `align` should be the struct's alignment).
    pub fn bytes(self, data: &[u8], align: usize) -> ParamBuilder {
        self.push(data, align, PushKind::Bytes)
    }

    /// A device pointer.
    pub fn ptr(self, p: u64) -> ParamBuilder {
        self.push(&p.to_le_bytes(), 8, PushKind::Pointer)
    }

    /// A `.u64` / `.b64`.
    pub fn u64(self, v: u64) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 8, PushKind::Unsigned(64))
    }

    /// A `.s64` (nvcc declares `long long` as `.u64`; both are accepted).
    pub fn i64(self, v: i64) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 8, PushKind::Signed(64))
    }

    /// A `.u32` / `.b32`.
    pub fn u32(self, v: u32) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 4, PushKind::Unsigned(32))
    }

    /// A `.s32` (nvcc declares `int` as `.u32`; both are accepted).
    pub fn i32(self, v: i32) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 4, PushKind::Signed(32))
    }

    /// A `.u16` / `.b16`.
    pub fn u16(self, v: u16) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 2, PushKind::Unsigned(16))
    }

    /// A `.s16` (nvcc declares `short` as `.u16`; both are accepted).
    pub fn i16(self, v: i16) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 2, PushKind::Signed(16))
    }

    /// A `.u8` / `.b8`, alignment 1.
    pub fn u8(self, v: u8) -> ParamBuilder {
        self.push(&[v], 1, PushKind::Unsigned(8))
    }

    /// A `.s8` (nvcc declares `char` as `.u8`; both are accepted), alignment 1.
    pub fn i8(self, v: i8) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 1, PushKind::Signed(8))
    }

    /// A `.f32`.
    pub fn f32(self, v: f32) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 4, PushKind::Float(32))
    }

    /// A `.f64`.
    pub fn f64(self, v: f64) -> ParamBuilder {
        self.push(&v.to_le_bytes(), 8, PushKind::Float(64))
    }

    /// The parameter bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What each call pushed, in order.
    pub fn pushed(&self) -> &[PushedParam] {
        &self.pushed
    }

    /// The parameter bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Whether one push may fill one declared parameter of the same offset and size (the rules in
/// the module docs).
fn fits(p: &ParamInfo, q: &PushedParam) -> bool {
    if q.kind == PushKind::Bytes {
        return q.align == p.align;
    }
    if p.array_len.is_some() || p.class == ParamClass::Bits {
        return true;
    }
    match p.class {
        ParamClass::Float => matches!(q.kind, PushKind::Float(_)),
        _ => !matches!(q.kind, PushKind::Float(_)),
    }
}

/// Compares a builder's pushes with a kernel's declared parameters. Several pushes may fill one
/// array parameter together (the fields of a struct passed by value), when they start at its
/// offset and none crosses its end. The error names the first parameter that disagrees.
pub(crate) fn check(params: &[ParamInfo], pushed: &[PushedParam], total: usize) -> Result<(), String> {
    let declared =
        |i: usize, p: &ParamInfo| format!("param {i} `{}` ({} at offset {})", p.name, p.type_name(), p.offset);
    let mut j = 0;
    for (i, p) in params.iter().enumerate() {
        let Some(q) = pushed.get(j) else {
            return Err(format!(
                "{}: nothing was pushed for it (the builder's {} values end at byte {total})",
                declared(i, p),
                pushed.len()
            ));
        };
        let got = format!("got {q} at offset {}", q.offset);
        if q.offset != p.offset {
            let hint = if p.array_len.is_some() && q.offset < p.offset && q.kind != PushKind::Bytes {
                format!(" (a struct passed by value starts at its alignment: push it with .bytes(data, {}))", p.align)
            } else {
                String::new()
            };
            return Err(format!("{}: {got}{hint}", declared(i, p)));
        }
        if q.size == p.size {
            if !fits(p, q) {
                let why = if q.kind == PushKind::Bytes {
                    format!(" (the declaration is aligned to {})", p.align)
                } else {
                    String::new()
                };
                return Err(format!("{}: {got}{why}", declared(i, p)));
            }
            j += 1;
            continue;
        }
        if p.array_len.is_none() || q.size > p.size {
            return Err(format!("{}: {got}", declared(i, p)));
        }
        let end = p.offset.saturating_add(p.size);
        while let Some(q) = pushed.get(j).filter(|q| q.offset < end) {
            if q.offset.saturating_add(q.size) > end {
                return Err(format!(
                    "{}: got {q} at offset {}, which runs past the parameter's end at {end}",
                    declared(i, p),
                    q.offset
                ));
            }
            j += 1;
        }
    }
    if let Some(q) = pushed.get(j) {
        let size = params.last().map_or(0, |p| p.offset + p.size);
        return Err(format!(
            "the kernel takes {} params ({size} bytes), but the builder has more: {q} at offset {}",
            params.len(),
            q.offset
        ));
    }
    Ok(())
}
