//! Where kernels run: a [`Device`] is a CUDA stream (through cudarc) or the PTX VM, behind one API.
//!
//! Kernel wrappers validate, build one `#[repr(C)]` params struct and call `Device::launch`; the
//! same params bytes go to the GPU or to the VM. Launches are stream-ordered and never synchronise.

mod buffer;
mod cuda;
mod module;
mod tensor_map;
mod vm;

use std::sync::Arc;

pub use buffer::{Buffer, Element, View, ViewMut};
pub use module::{KernelModule, ALL as MODULES, NVCC};
pub use tensor_map::{TensorMap, TensorMapDesc, TensorMapDtype, TensorMapElement, TensorMapSwizzle};

pub(crate) use module::generated as kernels;

use crate::error::{Error, Result};
use cuda::CudaBackend;
use vm::VmBackend;

pub use ptx_vm::{Arch as VmArch, Counters, LaunchReport as VmLaunchReport};
pub use vm::VmConfig;

/// The byte [`Device::fill_poison`] fills with (0xFF: a NaN in every float format).
pub const POISON: u8 = ptx_vm::POISON_BYTE;

/// A device that runs the crate's kernels. Cheap to clone (it is a handle).
#[derive(Clone)]
pub struct Device {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Cuda(Arc<CudaBackend>),
    Vm(Arc<VmBackend>),
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Bytes of dynamic (`extern __shared__`) shared memory per block.
    pub dynamic_smem: u32,
}

/// A device pointer handed to a kernel, with whatever keeps the launch ordered after the memory's
/// last use (cudarc's event record); drop it only after the launch was queued.
pub(crate) struct ArgPtr<'a> {
    pub(crate) addr: u64,
    _order: Option<cudarc::driver::SyncOnDrop<'a>>,
}

impl Device {
    /// The CUDA GPU `ordinal` with its default stream.
    ///
    /// Never panics: without a CUDA driver library, or with no such GPU, it returns
    /// [`Error::CudaUnavailable`] or [`Error::NoSuchDevice`].
    pub fn cuda(ordinal: usize) -> Result<Device> {
        Ok(Device { backend: Backend::Cuda(Arc::new(CudaBackend::new(ordinal)?)) })
    }

    /// A PTX virtual machine: the kernels' own PTX, executed on the CPU with CUDA semantics, with
    /// sm_80 limits and the sanitizer on (a finding fails the launch with [`Error::Vm`]). Every call
    /// makes a new, independent VM with its own memory.
    pub fn vm() -> Device {
        Device::vm_with(VmConfig::default())
    }

    /// A PTX VM configured by `config` (limits of another arch, sanitizer off for speed, counters).
    pub fn vm_with(config: VmConfig) -> Device {
        Device { backend: Backend::Vm(Arc::new(VmBackend::new(config))) }
    }

    /// On a PTX VM: the report of the last launch, with its exact counters (instruction mix, global
    /// sectors and unique bytes, shared-memory wavefronts) and sanitizer findings. `None` on CUDA
    /// or before the first launch.
    pub fn vm_last_launch(&self) -> Option<VmLaunchReport> {
        match &self.backend {
            Backend::Cuda(_) => None,
            Backend::Vm(v) => v.last_launch(),
        }
    }

    /// Streaming multiprocessors: the GPU's count on CUDA, the modelled device's on the PTX VM
    /// (108 for sm_80 limits, 132 for sm_90). Work planners size their grids by it.
    pub fn sm_count(&self) -> usize {
        match &self.backend {
            Backend::Cuda(c) => c.sm_count,
            Backend::Vm(v) => v.sm_count(),
        }
    }

    /// Whether this device is the PTX VM.
    pub fn is_vm(&self) -> bool {
        matches!(self.backend, Backend::Vm(_))
    }

    /// A device that launches on a stream the caller already holds (candle, mistral.rs, cudarc code).
    pub fn from_cuda_stream(stream: Arc<cudarc::driver::CudaStream>) -> Result<Device> {
        Ok(Device { backend: Backend::Cuda(Arc::new(CudaBackend::from_stream(stream)?)) })
    }

    /// The CUDA stream launches go to, when this is a CUDA device.
    pub fn cuda_stream(&self) -> Option<&Arc<cudarc::driver::CudaStream>> {
        match &self.backend {
            Backend::Cuda(c) => Some(&c.stream),
            Backend::Vm(_) => None,
        }
    }

    /// A one-line description: backend, device name and compute capability.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cuda(c) => c.describe(),
            Backend::Vm(v) => v.describe(),
        }
    }

    /// Allocates `len` zeroed elements.
    pub fn alloc_zeros<T: Element>(&self, len: usize) -> Result<Buffer<T>> {
        match &self.backend {
            Backend::Cuda(c) => c.alloc_zeros(len),
            Backend::Vm(v) => v.alloc_zeros(len),
        }
    }

    /// Copies `host` into a new device buffer.
    pub fn upload<T: Element>(&self, host: &[T]) -> Result<Buffer<T>> {
        match &self.backend {
            Backend::Cuda(c) => c.upload(host),
            Backend::Vm(v) => v.upload(host),
        }
    }

    /// Copies a view back to the host (waits for the work queued before it).
    pub fn download<'a, T: Element>(&self, view: impl Into<View<'a, T>>) -> Result<Vec<T>> {
        let view = view.into();
        match &self.backend {
            Backend::Cuda(c) => c.download(&view),
            Backend::Vm(v) => v.download(&view),
        }
    }

    /// Sets every byte of `view` to `byte` (stream-ordered). Tests use it to poison outputs.
    pub fn fill_bytes<T: Element>(&self, view: &mut ViewMut<'_, T>, byte: u8) -> Result<()> {
        match &self.backend {
            Backend::Cuda(c) => c.fill_bytes(view, byte),
            Backend::Vm(v) => v.fill_bytes(view, byte),
        }
    }

    /// Fills `view` with the poison pattern [`POISON`] (stream-ordered), for tests: every float
    /// element becomes a NaN, so an element a kernel fails to write cannot match a finite
    /// reference. On a PTX VM the bytes also count as uninitialised, so the sanitizer reports a
    /// kernel that reads them before writing them; on CUDA it is a plain memset.
    pub fn fill_poison<T: Element>(&self, view: &mut ViewMut<'_, T>) -> Result<()> {
        match &self.backend {
            Backend::Cuda(c) => c.fill_bytes(view, POISON),
            Backend::Vm(v) => v.fill_poison(view),
        }
    }

    /// Waits until every launch and copy queued on this device has finished.
    pub fn synchronize(&self) -> Result<()> {
        match &self.backend {
            Backend::Cuda(c) => c.synchronize(),
            // VM launches and copies complete before they return.
            Backend::Vm(_) => Ok(()),
        }
    }

    /// The address of `view` as a kernel sees it, checked to belong to this device.
    pub(crate) fn ptr<'a, T: Element>(&'a self, name: &'static str, view: &'a View<'_, T>) -> Result<ArgPtr<'a>> {
        match &self.backend {
            Backend::Cuda(c) => c.ptr(name, view),
            Backend::Vm(v) => v.ptr(name, view),
        }
    }

    /// The address of a writable `view` as a kernel sees it, checked to belong to this device.
    pub(crate) fn ptr_mut<'a, T: Element>(
        &'a self,
        name: &'static str,
        view: &'a mut ViewMut<'_, T>,
    ) -> Result<ArgPtr<'a>> {
        match &self.backend {
            Backend::Cuda(c) => c.ptr_mut(name, view),
            Backend::Vm(v) => v.ptr_mut(name, view),
        }
    }

    /// Launches `kernel` of `module` with one params struct passed by value, the only way the
    /// crate's kernels take arguments. The module is loaded once per device, on first use.
    pub(crate) fn launch<P: bytemuck::Pod>(
        &self,
        module: &'static KernelModule,
        kernel: &str,
        dims: LaunchDims,
        params: &P,
    ) -> Result<()> {
        if dims.grid.contains(&0) || dims.block.contains(&0) {
            return Err(Error::invalid("dims", "non-zero grid and block extents", format!("{dims:?}")));
        }
        match &self.backend {
            Backend::Cuda(c) => c.launch(module, kernel, dims, params),
            Backend::Vm(v) => v.launch(module, kernel, dims, params),
        }
    }
}

impl Default for Device {
    /// The first CUDA GPU when a driver and a GPU are present, else the PTX VM;
    /// [`Device::describe`] says which.
    fn default() -> Self {
        Device::cuda(0).unwrap_or_else(|_| Device::vm())
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}
