//! Tensor maps for the bulk tensor copies of sm_90 (`cp.async.bulk.tensor`): one call that builds
//! the 128-byte map for the device's backend. On CUDA the driver encodes it
//! (`cuTensorMapEncodeTiled`, an opaque format); on the PTX VM it is the VM's documented encoding
//! (`ptx_vm::semantics::tensor_map`). Either way the kernel receives the same 128 bytes, as a
//! `__grid_constant__` parameter or a field of the by-value params struct.
//!
//! ```
//! use scaling_kernels::device::{TensorMapDesc, TensorMapSwizzle};
//! use scaling_kernels::Device;
//!
//! let dev = Device::vm();
//! // A 100 x 64 row-major bf16 matrix, copied in boxes of 64 rows x 64 columns (128 bytes a row).
//! let a = dev.alloc_zeros::<half::bf16>(100 * 64).unwrap();
//! let desc = TensorMapDesc::new(&[64, 100], &[128], &[64, 64]).swizzle(TensorMapSwizzle::B128);
//! let map = dev.tensor_map(&a.view(), &desc).unwrap();
//! assert_eq!(size_of_val(&map), 128);
//! ```

use half::{bf16, f16};
use ptx_vm::semantics::tensor_map::{TensorMap as VmTensorMap, TensorMapError, MAX_RANK};
use ptx_vm::semantics::wgmma::Swizzle;

use super::{Backend, Device, Element, View};
use crate::error::{Error, Result};

/// The element types a tensor map can describe, as the driver names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorMapDtype {
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `u64`.
    U64,
    /// `i64`.
    I64,
    /// `f16`.
    F16,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `bf16`.
    Bf16,
}

impl TensorMapDtype {
    /// Bytes per element.
    pub fn bytes(self) -> u8 {
        match self {
            TensorMapDtype::U8 => 1,
            TensorMapDtype::U16 | TensorMapDtype::F16 | TensorMapDtype::Bf16 => 2,
            TensorMapDtype::U32 | TensorMapDtype::I32 | TensorMapDtype::F32 => 4,
            TensorMapDtype::U64 | TensorMapDtype::I64 | TensorMapDtype::F64 => 8,
        }
    }
}

/// An element type with a tensor-map data type.
pub trait TensorMapElement: Element {
    /// The data type the map records.
    const DTYPE: TensorMapDtype;
}

macro_rules! tensor_map_element {
    ($($t:ty => $d:ident),*) => {
        $(impl TensorMapElement for $t {
            const DTYPE: TensorMapDtype = TensorMapDtype::$d;
        })*
    };
}
tensor_map_element!(u8 => U8, u16 => U16, u32 => U32, i32 => I32, u64 => U64, i64 => I64, f16 => F16, f32 => F32,
    f64 => F64, bf16 => Bf16);

/// Where a box lands in shared memory: dense, or with its 16-byte chunks permuted by the 32-, 64-
/// or 128-byte swizzle (the pattern `wgmma` descriptors of the same mode read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TensorMapSwizzle {
    /// Dense rows.
    #[default]
    None,
    /// 32-byte swizzle: the box's rows are at most 32 bytes.
    B32,
    /// 64-byte swizzle: the box's rows are at most 64 bytes.
    B64,
    /// 128-byte swizzle: the box's rows are at most 128 bytes.
    B128,
}

/// A tiled tensor of a view and the box one copy moves, as `cuTensorMapEncodeTiled` takes them:
/// dimension 0 is contiguous; interleave none, out-of-bounds elements read as zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapDesc {
    /// Elements along each dimension (1 to 5 of them), dimension 0 first.
    pub global_dims: Vec<u64>,
    /// Bytes between consecutive indices of dimensions 1.. (one fewer than the dims).
    pub global_strides: Vec<u64>,
    /// Elements of the box along each dimension.
    pub box_dims: Vec<u32>,
    /// The traversal stride along each dimension (all 1 when empty).
    pub element_strides: Vec<u32>,
    /// The box's placement in shared memory.
    pub swizzle: TensorMapSwizzle,
}

impl TensorMapDesc {
    /// A description with element strides 1 and no swizzle.
    pub fn new(global_dims: &[u64], global_strides: &[u64], box_dims: &[u32]) -> TensorMapDesc {
        TensorMapDesc {
            global_dims: global_dims.to_vec(),
            global_strides: global_strides.to_vec(),
            box_dims: box_dims.to_vec(),
            element_strides: Vec::new(),
            swizzle: TensorMapSwizzle::None,
        }
    }

    /// Sets the element strides.
    pub fn element_strides(mut self, s: &[u32]) -> TensorMapDesc {
        self.element_strides = s.to_vec();
        self
    }

    /// Sets the swizzle.
    pub fn swizzle(mut self, s: TensorMapSwizzle) -> TensorMapDesc {
        self.swizzle = s;
        self
    }
}

/// A tensor map: 128 bytes, 64-byte aligned, for the backend of the device that built it. A
/// `#[repr(C)]` params struct may hold it as a field (the kernel's `CUtensorMap`).
#[repr(C, align(64))]
#[derive(Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TensorMap {
    /// The encoded map.
    pub bytes: [u8; 128],
}

impl std::fmt::Debug for TensorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TensorMap({:02x?})", &self.bytes[..16])
    }
}

/// The argument a field of the VM's encoding comes from.
fn argument(field: &str) -> &'static str {
    match field.split('[').next().unwrap_or("") {
        "global_dims" | "rank" => "global_dims",
        "global_strides" => "global_strides",
        "box_dims" => "box_dims",
        "element_strides" => "element_strides",
        "global_address" => "view",
        _ => "desc",
    }
}

fn invalid(e: TensorMapError) -> Error {
    Error::invalid(argument(&e.field), format!("{} {}", e.field, e.expected), e.got)
}

/// The map's fields, checked by the rules the driver documents, and the view's extent checked.
fn vm_map<T: TensorMapElement>(addr: u64, view_len: usize, desc: &TensorMapDesc) -> Result<VmTensorMap> {
    let rank = desc.global_dims.len();
    if !(1..=MAX_RANK).contains(&rank) {
        return Err(Error::invalid("global_dims", "1 to 5 dimensions", rank));
    }
    if desc.global_strides.len() != rank - 1 {
        return Err(Error::invalid(
            "global_strides",
            format!("{} strides (one per dimension after the first)", rank - 1),
            desc.global_strides.len(),
        ));
    }
    if desc.box_dims.len() != rank {
        return Err(Error::invalid("box_dims", format!("{rank} box dims (one per dimension)"), desc.box_dims.len()));
    }
    if !desc.element_strides.is_empty() && desc.element_strides.len() != rank {
        return Err(Error::invalid(
            "element_strides",
            format!("none or {rank} (one per dimension)"),
            desc.element_strides.len(),
        ));
    }
    let mut m = VmTensorMap::new(addr, T::DTYPE.bytes(), &desc.global_dims, &desc.global_strides, &desc.box_dims);
    m.element_strides[..desc.element_strides.len()].copy_from_slice(&desc.element_strides);
    m.swizzle = match desc.swizzle {
        TensorMapSwizzle::None => Swizzle::None,
        TensorMapSwizzle::B32 => Swizzle::B32,
        TensorMapSwizzle::B64 => Swizzle::B64,
        TensorMapSwizzle::B128 => Swizzle::B128,
    };
    m.validate().map_err(invalid)?;
    // The last element must lie inside the view.
    let eb = u64::from(T::DTYPE.bytes());
    let last = (desc.global_dims[0] - 1) * eb
        + desc.global_dims[1..]
            .iter()
            .zip(&desc.global_strides)
            .map(|(&d, &s)| (d - 1).saturating_mul(s))
            .fold(0u64, u64::saturating_add);
    let have = (view_len * size_of::<T>()) as u64;
    if last.saturating_add(eb) > have {
        return Err(Error::invalid(
            "view",
            format!("a view holding the tensor's last element, at byte {last} (from global_dims and global_strides)"),
            format!("{have} bytes"),
        ));
    }
    Ok(m)
}

impl Device {
    /// Builds the tensor map of the tiled tensor `desc` over `view`, for this device's backend: the
    /// driver's encoding on CUDA (`cuTensorMapEncodeTiled`), the VM's own on the PTX VM. Both check
    /// the same rules first, with an [`Error::InvalidArgument`] naming the argument and the field
    /// (`box_dims[1] in 1..=256`): 1 to 5 dimensions of 1..=2^32 elements, strides multiples of 16
    /// below 2^40, a 16-byte aligned view holding the whole tensor, boxes of 1..=256 elements whose
    /// rows are multiples of 16 bytes (and at most the swizzle's span), element strides 1..=8.
    ///
    /// The map holds the view's address: it stays valid while the memory does.
    pub fn tensor_map<T: TensorMapElement>(&self, view: &View<'_, T>, desc: &TensorMapDesc) -> Result<TensorMap> {
        let addr = self.ptr("view", view)?.addr;
        let m = vm_map::<T>(addr, view.len(), desc)?;
        let bytes = match &self.backend {
            Backend::Vm(_) => m.encode().map_err(invalid)?,
            Backend::Cuda(c) => c.encode_tensor_map(T::DTYPE, &m)?,
        };
        Ok(TensorMap { bytes })
    }
}
