//! The CUDA backend: a cudarc stream, its context's modules, and the launch through the driver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    sys, CudaContext, CudaModule, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, DriverError, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::buffer::{Buffer, Element, View, ViewMut, ViewMutRepr, ViewRepr};
use super::{ArgPtr, KernelModule, LaunchDims};
use crate::error::{Error, Result};

pub(crate) struct CudaBackend {
    pub(crate) stream: Arc<CudaStream>,
    compute_capability: (i32, i32),
    name: String,
    /// Streaming multiprocessors of the GPU.
    pub(crate) sm_count: usize,
    /// Each module loaded once per device, lazily, keyed by [`KernelModule::name`].
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

fn cuda_err(during: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
    let during = during.into();
    move |e| Error::Cuda { during, error: e.to_string() }
}

fn vm_view(name: &'static str) -> Error {
    Error::WrongDevice { name, detail: "a PTX VM buffer was passed to a CUDA device".into() }
}

/// Checks that a driver library exists before cudarc touches it: cudarc panics on the first driver
/// call when libcuda cannot be loaded.
#[cfg(feature = "dynamic-loading")]
fn driver_present() -> Result<()> {
    // SAFETY: `is_culib_present` only tries to dlopen the driver library by its known names and drops
    // the handle; it calls no driver function.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::CudaUnavailable { reason: "no CUDA driver library (libcuda.so) could be loaded".into() })
    }
}

/// Without the `dynamic-loading` feature another crate of the build chose cudarc's linking mode. With
/// `dynamic-linking` (candle's choice) the loader resolved libcuda before `main`, so it is present;
/// with cudarc's own fallback to dynamic loading a missing driver panics in cudarc, as documented on
/// the feature.
#[cfg(not(feature = "dynamic-loading"))]
fn driver_present() -> Result<()> {
    Ok(())
}

/// The parameter struct as one by-value kernel argument.
#[repr(transparent)]
struct ParamsArg<P>(P);
// SAFETY: `P: Pod` has no pointers the driver would need to follow and no padding-sensitive
// invariants; the kernel declares exactly one by-value param of the same size and layout (checked
// against the PTX `.param` size in tests), and the driver copies its bytes at launch.
unsafe impl<P: bytemuck::Pod> DeviceRepr for ParamsArg<P> {}

impl CudaBackend {
    pub(crate) fn new(ordinal: usize) -> Result<Self> {
        driver_present()?;
        cudarc::driver::result::init().map_err(|e| Error::CudaUnavailable { reason: format!("cuInit failed: {e}") })?;
        let count = CudaContext::device_count().map_err(cuda_err("counting GPUs"))?;
        let count = usize::try_from(count).unwrap_or(0);
        if ordinal >= count {
            return Err(Error::NoSuchDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err(format!("creating a context on GPU {ordinal}")))?;
        Self::from_stream(ctx.default_stream())
    }

    pub(crate) fn from_stream(stream: Arc<CudaStream>) -> Result<Self> {
        let ctx = stream.context();
        let compute_capability = ctx.compute_capability().map_err(cuda_err("reading the compute capability"))?;
        let name = ctx.name().map_err(cuda_err("reading the GPU name"))?;
        let sm_count = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(cuda_err("reading the SM count"))?;
        let sm_count = usize::try_from(sm_count).unwrap_or(1).max(1);
        Ok(CudaBackend { stream, compute_capability, name, sm_count, modules: Mutex::new(HashMap::new()) })
    }

    pub(crate) fn describe(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!("CUDA GPU {} ({}, sm_{major}{minor})", self.stream.context().ordinal(), self.name)
    }

    pub(crate) fn alloc_zeros<T: Element>(&self, len: usize) -> Result<Buffer<T>> {
        let s = self.stream.alloc_zeros::<T>(len).map_err(cuda_err(format!("allocating {len} elements")))?;
        Ok(Buffer::from(s))
    }

    pub(crate) fn upload<T: Element>(&self, host: &[T]) -> Result<Buffer<T>> {
        let s = self.stream.clone_htod(host).map_err(cuda_err(format!("uploading {} elements", host.len())))?;
        Ok(Buffer::from(s))
    }

    pub(crate) fn download<T: Element>(&self, view: &View<'_, T>) -> Result<Vec<T>> {
        match &view.repr {
            ViewRepr::Cuda(v) => {
                self.stream.clone_dtoh(v).map_err(cuda_err(format!("downloading {} elements", view.len)))
            }
            ViewRepr::Vm { .. } => Err(vm_view("view")),
        }
    }

    pub(crate) fn fill_bytes<T: Element>(&self, view: &mut ViewMut<'_, T>, byte: u8) -> Result<()> {
        let bytes = view.len * size_of::<T>();
        match &mut view.repr {
            ViewMutRepr::Cuda(v) => {
                let (ptr, _order) = v.device_ptr_mut(&self.stream);
                // SAFETY: `ptr` addresses `bytes` bytes of live device memory owned by the view,
                // which stays borrowed mutably until `_order` records the memset on the stream.
                unsafe { cudarc::driver::result::memset_d8_async(ptr, byte, bytes, self.stream.cu_stream()) }
                    .map_err(cuda_err(format!("filling {bytes} bytes")))
            }
            ViewMutRepr::Vm { .. } => Err(vm_view("view")),
        }
    }

    pub(crate) fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(cuda_err("synchronizing the stream"))
    }

    pub(crate) fn ptr<'a, T: Element>(&'a self, name: &'static str, view: &'a View<'_, T>) -> Result<ArgPtr<'a>> {
        match &view.repr {
            ViewRepr::Cuda(v) => {
                let (addr, order) = v.device_ptr(&self.stream);
                Ok(ArgPtr { addr, _order: Some(order) })
            }
            ViewRepr::Vm { .. } => Err(vm_view(name)),
        }
    }

    pub(crate) fn ptr_mut<'a, T: Element>(
        &'a self,
        name: &'static str,
        view: &'a mut ViewMut<'_, T>,
    ) -> Result<ArgPtr<'a>> {
        match &mut view.repr {
            ViewMutRepr::Cuda(v) => {
                let (addr, order) = v.device_ptr_mut(&self.stream);
                Ok(ArgPtr { addr, _order: Some(order) })
            }
            ViewMutRepr::Vm { .. } => Err(vm_view(name)),
        }
    }

    fn module(&self, module: &'static KernelModule) -> Result<Arc<CudaModule>> {
        let mut cache = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(module.name) {
            return Ok(m.clone());
        }
        let image = match module.fatbin {
            Some(fatbin) => Ptx::from_binary(fatbin.to_vec()),
            None => Ptx::from_src(module.ptx),
        };
        let loaded = self.stream.context().load_module(image).map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU => Error::NoBinaryForGpu {
                module: module.name,
                compute_capability: self.compute_capability,
                archs_built: module.archs,
            },
            sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => Error::DriverTooOld { module: module.name },
            _ => Error::Cuda { during: format!("loading kernel module {}", module.name), error: e.to_string() },
        })?;
        cache.insert(module.name, loaded.clone());
        Ok(loaded)
    }

    pub(crate) fn launch<P: bytemuck::Pod>(
        &self,
        module: &'static KernelModule,
        kernel: &str,
        dims: LaunchDims,
        params: &P,
    ) -> Result<()> {
        let m = self.module(module)?;
        let f =
            m.load_function(kernel).map_err(cuda_err(format!("finding kernel {kernel} in module {}", module.name)))?;
        // Above 48 KiB of dynamic shared memory a kernel must opt in (CUDA C++ Programming Guide,
        // "Shared Memory" for compute capability 8.x and 9.0).
        if dims.dynamic_smem > 48 * 1024 {
            f.set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                dims.dynamic_smem as i32,
            )
            .map_err(cuda_err(format!("allowing {} bytes of dynamic shared memory for {kernel}", dims.dynamic_smem)))?;
        }
        let cfg = LaunchConfig {
            grid_dim: (dims.grid[0], dims.grid[1], dims.grid[2]),
            block_dim: (dims.block[0], dims.block[1], dims.block[2]),
            shared_mem_bytes: dims.dynamic_smem,
        };
        let arg = ParamsArg(*params);
        let mut builder = self.stream.launch_builder(&f);
        builder.arg(&arg);
        // SAFETY: the kernel takes exactly one by-value param with P's layout (see ParamsArg). Every
        // pointer inside `params` came from `ptr`/`ptr_mut` on this device after the wrapper checked
        // each buffer's length against the shape the kernel will touch, and their `ArgPtr` guards
        // (held by the caller across this call) order the launch after earlier work on that memory.
        unsafe { builder.launch(cfg) }.map_err(cuda_err(format!("launching {kernel}")))?;
        Ok(())
    }
}

impl CudaBackend {
    /// The driver's encoding of a tiled tensor map whose fields `m` holds, already checked by the
    /// rules the driver documents (`cuTensorMapEncodeTiled` may still refuse what the GPU cannot do).
    pub(crate) fn encode_tensor_map(
        &self,
        dtype: super::tensor_map::TensorMapDtype,
        m: &ptx_vm::semantics::tensor_map::TensorMap,
    ) -> Result<[u8; 128]> {
        use super::tensor_map::TensorMapDtype as D;
        use ptx_vm::semantics::wgmma::Swizzle;
        use sys::CUtensorMapDataType as T;
        use sys::CUtensorMapSwizzle as S;
        let data_type = match dtype {
            D::U8 => T::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            D::U16 => T::CU_TENSOR_MAP_DATA_TYPE_UINT16,
            D::U32 => T::CU_TENSOR_MAP_DATA_TYPE_UINT32,
            D::I32 => T::CU_TENSOR_MAP_DATA_TYPE_INT32,
            D::U64 => T::CU_TENSOR_MAP_DATA_TYPE_UINT64,
            D::I64 => T::CU_TENSOR_MAP_DATA_TYPE_INT64,
            D::F16 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
            D::F32 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
            D::F64 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
            D::Bf16 => T::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        };
        let swizzle = match m.swizzle {
            Swizzle::None => S::CU_TENSOR_MAP_SWIZZLE_NONE,
            Swizzle::B32 => S::CU_TENSOR_MAP_SWIZZLE_32B,
            Swizzle::B64 => S::CU_TENSOR_MAP_SWIZZLE_64B,
            Swizzle::B128 => S::CU_TENSOR_MAP_SWIZZLE_128B,
        };
        let box_dims = m.box_dims;
        let element_strides = m.element_strides;
        self.stream.context().bind_to_thread().map_err(cuda_err("binding the context to encode a tensor map"))?;
        let mut map = sys::CUtensorMap { opaque: [0; 16] };
        // SAFETY: `map` is a writable CUtensorMap; the dims, strides, box and element-stride arrays
        // hold at least `rank` entries (5, 4, 5, 5) and outlive the call; the driver only reads them
        // and writes the map. The global address is the view's, 16-byte aligned (checked).
        let r = unsafe {
            sys::cuTensorMapEncodeTiled(
                &mut map,
                data_type,
                u32::from(m.rank),
                m.global_address as *mut std::ffi::c_void,
                m.global_dims.as_ptr(),
                m.global_strides.as_ptr(),
                box_dims.as_ptr(),
                element_strides.as_ptr(),
                sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
                swizzle,
                sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_NONE,
                sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
            )
        };
        r.result().map_err(cuda_err("encoding a tensor map (cuTensorMapEncodeTiled)"))?;
        let mut bytes = [0u8; 128];
        for (b, w) in bytes.chunks_exact_mut(8).zip(map.opaque) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        Ok(bytes)
    }
}
