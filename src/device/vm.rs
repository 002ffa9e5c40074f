//! The PTX VM backend: the kernels' own PTX, executed on the CPU by `ptx-vm`.
//!
//! Launches run synchronously inside `launch` (the VM has one stream and it is always idle
//! afterwards), through the same params bytes the CUDA backend hands the driver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ptx_vm::{Arch, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder};

use super::buffer::{Buffer, BufferRepr, Element, View, ViewMut, ViewMutRepr, ViewRepr};
use super::{ArgPtr, KernelModule, LaunchDims};
use crate::error::{Error, Result};

/// How a PTX VM device runs kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmConfig {
    /// Whose limits apply (shared memory per block): sm_80 (163 KiB) or sm_90 (227 KiB).
    pub arch: Arch,
    /// memcheck, racecheck and initcheck on every launch; an error finding makes the launch
    /// return [`Error::Vm`] with the report, while warnings (a write-after-write race of the same
    /// value) stay in [`crate::Device::vm_last_launch`]'s report. 2.5-4x slower on the mix of real
    /// kernels `ptx_vm`'s throughput example runs (see its crate docs); on by default.
    pub sanitizer: bool,
    /// Makes sanitizer warnings fail a launch too, as errors do. Off by default.
    pub warnings_as_errors: bool,
    /// Definedness tracking with the sanitizer ([`ptx_vm::Machine::with_definedness`]): reading
    /// shared or global memory nobody wrote is no error until the value reaches global memory, an
    /// address, a branch or a vote, so a kernel may leave out-of-range tiles unloaded and mask
    /// their scores, as FlashAttention-2 does. On by default (about 10% on top of the sanitizer);
    /// off, every read of uninitialised memory is an initcheck error.
    pub definedness: bool,
    /// Exact performance counters per launch (always on with the sanitizer), read back with
    /// [`crate::Device::vm_last_launch`].
    pub counters: bool,
    /// Host threads that run blocks in parallel; 0 (the default) uses every available core.
    /// Results must not depend on it: tests compare outputs across thread counts.
    pub threads: usize,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            arch: Arch::Sm80,
            sanitizer: true,
            warnings_as_errors: false,
            definedness: true,
            counters: true,
            threads: 0,
        }
    }
}

pub(crate) struct VmBackend {
    config: VmConfig,
    machine: Mutex<Machine>,
    /// The report of the last launch: counters and sanitizer findings.
    last: Mutex<Option<LaunchReport>>,
    /// Each module parsed and lowered once per VM, on first use.
    modules: Mutex<HashMap<&'static str, Arc<Module>>>,
}

/// A VM allocation; freed when the owning [`Buffer`] drops.
pub(crate) struct VmAlloc {
    pub(crate) backend: Arc<VmBackend>,
    pub(crate) addr: u64,
}

impl Drop for VmAlloc {
    fn drop(&mut self) {
        // A failed free means the address was not live, which the allocation's owner rules out.
        let _ = self.backend.machine().free(self.addr);
    }
}

fn vm_err(during: impl Into<String>) -> impl FnOnce(ptx_vm::VmError) -> Error {
    let during = during.into();
    move |e| Error::Vm { during, error: e.to_string() }
}

impl VmBackend {
    pub(crate) fn new(config: VmConfig) -> Self {
        let mut machine = Machine::new(config.arch)
            .with_sanitizer(config.sanitizer)
            .with_definedness(config.definedness)
            .with_counters(config.counters);
        if config.threads > 0 {
            machine = machine.with_threads(config.threads);
        }
        VmBackend { config, machine: Mutex::new(machine), last: Mutex::new(None), modules: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn last_launch(&self) -> Option<LaunchReport> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn machine(&self) -> MutexGuard<'_, Machine> {
        // A panic while holding the lock leaves the machine's memory consistent (every operation
        // is a whole copy or a whole launch), so a poisoned lock is still usable.
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn sm_count(&self) -> usize {
        self.config.arch.sm_count() as usize
    }

    pub(crate) fn describe(&self) -> String {
        let arch = match self.config.arch {
            Arch::Sm80 => "sm_80",
            Arch::Sm90 => "sm_90",
        };
        let sanitizer = if self.config.sanitizer { "sanitizer on" } else { "sanitizer off" };
        format!("PTX VM ({arch} limits, {sanitizer}, CPU)")
    }

    fn alloc_bytes(self: &Arc<Self>, bytes: usize) -> Result<VmAlloc> {
        // Zero-length buffers still get a distinct address, like cudarc's.
        let addr = self.machine().alloc(bytes.max(1)).map_err(vm_err(format!("allocating {bytes} bytes")))?;
        Ok(VmAlloc { backend: self.clone(), addr })
    }

    pub(crate) fn alloc_zeros<T: Element>(self: &Arc<Self>, len: usize) -> Result<Buffer<T>> {
        let bytes = len * size_of::<T>();
        let a = self.alloc_bytes(bytes)?;
        self.machine().memset(a.addr, 0, bytes).map_err(vm_err("zeroing a new buffer"))?;
        Ok(Buffer { repr: BufferRepr::Vm(a), len })
    }

    pub(crate) fn upload<T: Element>(self: &Arc<Self>, host: &[T]) -> Result<Buffer<T>> {
        let bytes: &[u8] = bytemuck::cast_slice(host);
        let a = self.alloc_bytes(bytes.len())?;
        self.machine().write(a.addr, bytes).map_err(vm_err(format!("uploading {} bytes", bytes.len())))?;
        Ok(Buffer { repr: BufferRepr::Vm(a), len: host.len() })
    }

    fn check_owner(&self, name: &'static str, owner: &VmBackend) -> Result<()> {
        if std::ptr::eq(self, owner) {
            Ok(())
        } else {
            Err(Error::WrongDevice {
                name,
                detail: "the buffer belongs to a different PTX VM than the one launching".into(),
            })
        }
    }

    fn cuda_view(name: &'static str) -> Error {
        Error::WrongDevice { name, detail: "a CUDA buffer was passed to a PTX VM device".into() }
    }

    pub(crate) fn download<T: Element>(&self, view: &View<'_, T>) -> Result<Vec<T>> {
        match &view.repr {
            ViewRepr::Vm { backend, addr } => {
                self.check_owner("view", backend)?;
                let mut out = vec![T::zeroed(); view.len];
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
                self.machine().read(*addr, bytes).map_err(vm_err(format!("downloading {} bytes", bytes.len())))?;
                Ok(out)
            }
            ViewRepr::Cuda(_) => Err(Self::cuda_view("view")),
        }
    }

    pub(crate) fn fill_bytes<T: Element>(&self, view: &mut ViewMut<'_, T>, byte: u8) -> Result<()> {
        let bytes = view.len * size_of::<T>();
        match &view.repr {
            ViewMutRepr::Vm { backend, addr } => {
                self.check_owner("view", backend)?;
                self.machine().memset(*addr, byte, bytes).map_err(vm_err(format!("filling {bytes} bytes")))
            }
            ViewMutRepr::Cuda(_) => Err(Self::cuda_view("view")),
        }
    }

    pub(crate) fn fill_poison<T: Element>(&self, view: &mut ViewMut<'_, T>) -> Result<()> {
        let bytes = view.len * size_of::<T>();
        match &view.repr {
            ViewMutRepr::Vm { backend, addr } => {
                self.check_owner("view", backend)?;
                self.machine().fill_poison(*addr, bytes).map_err(vm_err(format!("poisoning {bytes} bytes")))
            }
            ViewMutRepr::Cuda(_) => Err(Self::cuda_view("view")),
        }
    }

    pub(crate) fn ptr<T: Element>(&self, name: &'static str, view: &View<'_, T>) -> Result<ArgPtr<'static>> {
        match &view.repr {
            ViewRepr::Vm { backend, addr } => {
                self.check_owner(name, backend)?;
                Ok(ArgPtr { addr: *addr, _order: None })
            }
            ViewRepr::Cuda(_) => Err(Self::cuda_view(name)),
        }
    }

    pub(crate) fn ptr_mut<T: Element>(&self, name: &'static str, view: &ViewMut<'_, T>) -> Result<ArgPtr<'static>> {
        match &view.repr {
            ViewMutRepr::Vm { backend, addr } => {
                self.check_owner(name, backend)?;
                Ok(ArgPtr { addr: *addr, _order: None })
            }
            ViewMutRepr::Cuda(_) => Err(Self::cuda_view(name)),
        }
    }

    fn module(&self, module: &'static KernelModule) -> Result<Arc<Module>> {
        let mut cache = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(module.name) {
            return Ok(m.clone());
        }
        let parsed =
            Arc::new(Module::parse(module.ptx).map_err(vm_err(format!("loading kernel module {}", module.name)))?);
        cache.insert(module.name, parsed.clone());
        Ok(parsed)
    }

    pub(crate) fn launch<P: bytemuck::Pod>(
        &self,
        module: &'static KernelModule,
        kernel: &str,
        dims: LaunchDims,
        params: &P,
    ) -> Result<()> {
        let m = self.module(module)?;
        let cfg = LaunchConfig { grid: dims.grid, block: dims.block, dynamic_smem: dims.dynamic_smem };
        // One by-value struct: checking its size and alignment against the kernel's
        // `.param .align A .b8 params[N]` catches a Rust mirror that drifted from the .cuh.
        let args = ParamBuilder::new().bytes(bytemuck::bytes_of(params), std::mem::align_of::<P>());
        let report =
            self.machine().launch_checked(&m, kernel, &cfg, &args).map_err(vm_err(format!("running {kernel}")))?;
        // The CUDA runtime writes a kernel's printf output when the host synchronises; a VM launch is
        // synchronous, so it is written here. stderr, so that it never mixes with a program's data.
        if !report.printf.is_empty() {
            eprint!("{}", report.printf);
        }
        if report.printf_dropped > 0 {
            eprintln!(
                "[{kernel}: {} bytes of printf output dropped past the {} byte buffer]",
                report.printf_dropped,
                ptx_vm::PRINTF_BUFFER_BYTES
            );
        }
        let strict = self.config.warnings_as_errors;
        let findings =
            report.sanitizer.as_ref().filter(|s| s.has_errors() || (strict && !s.is_clean())).map(|s| s.to_string());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        match findings {
            Some(text) => Err(Error::Vm { during: format!("running {kernel}"), error: text }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel taking one 16-byte params struct aligned to 8, as the crate's kernels do.
    static ONE_STRUCT: KernelModule = KernelModule {
        name: "test_one_struct",
        ptx: ".version 9.0\n.target sm_80\n.address_size 64\n\
              .visible .entry k(.param .align 8 .b8 k_param_0[16]) { ret; }\n",
        fatbin: None,
        archs: &[],
    };

    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Aligned8 {
        ptr: u64,
        n: u32,
        pad: u32,
    }

    /// Same size, but no 8-byte field: a Rust mirror that lost the .cuh struct's pointer.
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Aligned4 {
        words: [u32; 4],
    }

    #[test]
    fn params_struct_is_checked_against_the_kernel_declaration() {
        let vm = VmBackend::new(VmConfig::default());
        let dims = LaunchDims { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
        vm.launch(&ONE_STRUCT, "k", dims, &Aligned8 { ptr: 0, n: 0, pad: 0 }).unwrap();
        let err = vm.launch(&ONE_STRUCT, "k", dims, &Aligned4 { words: [0; 4] }).unwrap_err().to_string();
        assert!(
            err.contains(
                "param 0 `k_param_0` (.align 8 .b8[16] at offset 0): got 16 raw bytes aligned to 4 at offset 0 \
                 (the declaration is aligned to 8)"
            ),
            "{err}"
        );
    }
}
