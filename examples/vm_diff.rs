//! The differential check: every nvcc-compiled test kernel of `crates/ptx-vm` runs on the PTX VM
//! and, when a GPU is present, on the GPU through cudarc with the same input bytes and the same
//! parameter bytes; then every buffer is compared, by the rule its line in
//! `crates/ptx-vm/tests/cuda/vm_diff.txt` names (bit for bit where the ISA fixes the result,
//! within N ulps after `.approx` instructions, within a relative bound for tensor-core sums and
//! float atomics, with the largest difference printed). One line per kernel.
//!
//! ```text
//! cargo run --release --example vm_diff [-- [--vm-only | --require-gpu] [FILTER]]
//! ```
//!
//! A line with `--expect-error WORD` is a kernel meant to fail (trap, failed assert, deadlock,
//! unsupported instruction, planted sanitizer bug): it runs on the VM only, which must fail it
//! or report a finding with WORD in the text. The GPU half captures no device `printf` output:
//! for printf kernels only the buffers are compared.
//!
//! FILTER keeps the lines whose kernel or file name contains it. Without a CUDA driver or GPU
//! (or with `--vm-only`) it runs the VM half (sanitizer on: a finding fails the kernel) and says
//! that the comparison needs a GPU; with `--require-gpu` a missing GPU is a failure. Exit status: 0 when every kernel ran and matched, 1 otherwise,
//! 2 for a malformed table.

#[path = "../crates/ptx-vm/examples/ptx_run/spec.rs"]
mod spec;

use cudarc::driver::{result, sys, CudaContext, CudaModule, CudaStream, DevicePtr};
use cudarc::nvrtc::Ptx;
use ptx_vm::{Arch, Module};
use spec::Spec;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

fn main() -> ExitCode {
    // SK_SOURCE_ROOT: where the table and PTX are when the binary was built elsewhere (scripts/gpu-check's bundle).
    let root =
        std::env::var_os("SK_SOURCE_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let table = root.join("crates/ptx-vm/tests/cuda/vm_diff.txt");
    let ptx_dir = root.join("crates/ptx-vm/tests/ptx");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vm_only = args.iter().any(|a| a == "--vm-only");
    let require_gpu = args.iter().any(|a| a == "--require-gpu");
    if let Some(bad) = args.iter().find(|a| a.starts_with("--") && *a != "--vm-only" && *a != "--require-gpu") {
        eprintln!("vm_diff: unknown option {bad} (expected --vm-only, --require-gpu, or a filter)");
        return ExitCode::from(2);
    }
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_default();

    let specs = match read_table(&table) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vm_diff: {e}");
            return ExitCode::from(2);
        }
    };
    let gpu = if vm_only { Err("--vm-only".to_string()) } else { Gpu::open() };
    match &gpu {
        Ok(g) => println!("vm_diff: comparing the PTX VM with {}", g.name),
        Err(why) if require_gpu => {
            eprintln!("vm_diff: --require-gpu, but there is no GPU to compare with ({why})");
            return ExitCode::from(1);
        }
        Err(why) => println!("vm_diff: VM half only: no GPU to compare with ({why})"),
    }
    let (mut failed, mut ran, mut gpu_time) = (0, 0, 0.0);
    for spec in specs.iter().filter(|s| s.kernel.contains(&filter) || s.ptx.contains(&filter)) {
        ran += 1;
        let name = format!("{}:{}", spec.ptx.trim_end_matches(".ptx"), spec.kernel);
        let outcome = check(spec, &ptx_dir.join(&spec.ptx), gpu.as_ref().ok(), &mut gpu_time);
        match outcome {
            Ok(line) => println!("ok   {name:<44} {line}"),
            Err(line) => {
                failed += 1;
                println!("FAIL {name:<44} {line}");
            }
        }
    }
    match &gpu {
        Ok(_) => println!("vm_diff: {ran} kernels, {failed} failed; GPU time (load + launch + copies) {gpu_time:.2} s"),
        Err(_) => println!(
            "vm_diff: {ran} kernels ran on the VM, {failed} failed; the comparison with a GPU needs a GPU \
             (run scripts/vm-diff or scripts/gpu-check on a machine with one)"
        ),
    }
    if failed == 0 && ran > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn read_table(path: &Path) -> Result<Vec<Spec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut specs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        specs.push(spec::parse_words(&words).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?);
    }
    Ok(specs)
}

/// Runs one line on the VM and, given a GPU, there too; the text after the kernel's name.
fn check(spec: &Spec, ptx_path: &PathBuf, gpu: Option<&Gpu>, gpu_time: &mut f64) -> Result<String, String> {
    let ptx = std::fs::read_to_string(ptx_path).map_err(|e| format!("cannot read {}: {e}", ptx_path.display()))?;
    let t = Instant::now();
    let outcome = spec::run_vm_keep(spec, &ptx, Arch::Sm80);
    if let Some(verdict) = spec::expected_failure(spec, &outcome) {
        // Meant to fail: judged on the VM alone; on the GPU it would trap or read undefined bytes.
        return verdict.map(|v| format!("VM {v}; not run on the GPU (--expect-error)")).map_err(|e| format!("VM {e}"));
    }
    let vm = outcome.map_err(|e| format!("VM: {e}"))?;
    let vm_s = t.elapsed().as_secs_f64();
    let findings = vm.report.sanitizer.as_ref().map_or(0, |s| s.findings.len());
    if findings > 0 {
        let text = vm.report.findings().to_string();
        return Err(format!("VM: {findings} sanitizer finding(s): {}", text.lines().nth(1).unwrap_or("").trim()));
    }
    let vm_part = format!("VM {:.0} ms, {} thread-instr, sanitizer clean", vm_s * 1e3, vm.report.thread_instructions);
    let Some(gpu) = gpu else {
        return Ok(format!("{vm_part}; GPU comparison needs a GPU"));
    };
    if spec.arch == Some(Arch::Sm90) && gpu.major != 9 {
        // sm_90a PTX (wgmma, TMA) loads on a Hopper GPU only.
        return Ok(format!("{vm_part}; GPU comparison needs an sm_90 GPU, not {}", gpu.name));
    }
    let t = Instant::now();
    let gpu_bufs = gpu.run(spec, &ptx);
    *gpu_time += t.elapsed().as_secs_f64();
    let gpu_bufs = gpu_bufs.map_err(|e| format!("{vm_part}; GPU: {e}"))?;
    let mut parts = Vec::new();
    let mut ok = true;
    for (i, ((b, v), g)) in spec.buffers().iter().zip(&vm.buffers).zip(&gpu_bufs).enumerate() {
        let (pass, text) = spec::compare_buffers(b.elem, spec.rule(i), v, g);
        ok &= pass;
        parts.push(format!("buf{i} {text}"));
    }
    let line = format!("{}; {vm_part}", parts.join(", "));
    if ok {
        Ok(line)
    } else {
        Err(line)
    }
}

/// A CUDA context and stream on GPU 0.
struct Gpu {
    stream: Arc<CudaStream>,
    name: String,
    /// Compute capability major: sm_90a lines run on a 9.x GPU only.
    major: i32,
    /// Loaded modules by PTX file: each is JIT-compiled once, not once per line.
    modules: RefCell<HashMap<String, Arc<CudaModule>>>,
}

impl Gpu {
    /// The first GPU, or why there is none. cudarc panics on the first driver call when libcuda
    /// cannot be loaded, so the library is probed first (as `scaling_kernels::Device` does).
    fn open() -> Result<Gpu, String> {
        // SAFETY: `is_culib_present` only tries to dlopen the driver library and drops the handle;
        // it calls no driver function.
        if !unsafe { sys::is_culib_present() } {
            return Err("no CUDA driver library (libcuda.so) could be loaded".into());
        }
        result::init().map_err(|e| format!("cuInit failed: {e}"))?;
        let count = CudaContext::device_count().map_err(|e| format!("counting GPUs: {e}"))?;
        if count < 1 {
            return Err("the driver sees no GPU".into());
        }
        let ctx = CudaContext::new(0).map_err(|e| format!("creating a context on GPU 0: {e}"))?;
        let name = ctx.name().unwrap_or_else(|_| "GPU 0".into());
        let (major, minor) = ctx.compute_capability().unwrap_or((0, 0));
        Ok(Gpu {
            stream: ctx.default_stream(),
            name: format!("{name} (sm_{major}{minor})"),
            major,
            modules: RefCell::new(HashMap::new()),
        })
    }

    /// Uploads the spec's buffers, launches the kernel with the same parameter bytes the VM got
    /// (with the GPU's addresses) and downloads every buffer.
    fn run(&self, spec: &Spec, ptx: &str) -> Result<Vec<Vec<u8>>, String> {
        let layout = Module::parse(ptx).map_err(|e| e.to_string())?;
        let declared = layout.params(&spec.kernel).ok_or_else(|| format!("no kernel {}", spec.kernel))?.to_vec();
        let s = &self.stream;
        let cached = self.modules.borrow().get(&spec.ptx).cloned();
        let module = match cached {
            Some(m) => m,
            None => {
                let m = s.context().load_module(Ptx::from_src(ptx)).map_err(|e| format!("loading the PTX: {e}"))?;
                self.modules.borrow_mut().insert(spec.ptx.clone(), m.clone());
                m
            }
        };
        let f = module.load_function(&spec.kernel).map_err(|e| format!("finding the kernel: {e}"))?;
        let mut bufs = Vec::new();
        for b in spec.buffers() {
            bufs.push(s.clone_htod(&b.host_bytes()).map_err(|e| format!("uploading: {e}"))?);
        }
        let addrs: Vec<u64> = bufs.iter().map(|b| b.device_ptr(s).0).collect();
        // Tensor maps in the driver's (opaque) encoding of the same fields the VM's encodes.
        let map_err: RefCell<Option<String>> = RefCell::new(None);
        let params = spec.params_with(&addrs, |t, addr| {
            encode_tensor_map(t, addr).unwrap_or_else(|e| {
                map_err.borrow_mut().get_or_insert(e);
                [0; 128]
            })
        });
        if let Some(e) = map_err.into_inner() {
            return Err(e);
        }
        if spec.smem > 48 * 1024 {
            // Past 48 KiB a kernel must opt in to its dynamic shared memory.
            f.set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                spec.smem as i32,
            )
            .map_err(|e| format!("allowing {} bytes of dynamic shared memory: {e}", spec.smem))?;
        }
        layout.check_params(&spec.kernel, &params).map_err(|e| e.to_string())?;
        let mut bytes = params.finish();
        // cuLaunchKernel takes one host pointer per declared parameter, to its value; the values
        // are the bytes at each parameter's offset (PTX ISA: kernel parameters are laid out in
        // declaration order at their alignment, which is how ParamBuilder placed them).
        let base = bytes.as_mut_ptr();
        let mut ptrs: Vec<*mut c_void> = declared.iter().map(|p| base.wrapping_add(p.offset).cast()).collect();
        let dims = |d: [u32; 3]| (d[0], d[1], d[2]);
        // SAFETY: `f` belongs to `module`, alive here; `ptrs` holds one pointer per declared
        // parameter into `bytes`, which check_params matched against the declaration (sizes and
        // offsets) and which outlives the synchronize below; every pointer in `bytes` is a live
        // allocation of `bufs`, sized as the spec says, on this stream's context.
        unsafe {
            result::launch_kernel(
                f.cu_function(),
                dims(spec.grid),
                dims(spec.block),
                spec.smem,
                s.cu_stream(),
                &mut ptrs,
            )
        }
        .map_err(|e| format!("launch: {e}"))?;
        s.synchronize().map_err(|e| format!("running: {e}"))?;
        bufs.iter().map(|b| s.clone_dtoh(b).map_err(|e| format!("downloading: {e}"))).collect()
    }
}

/// `cuTensorMapEncodeTiled` of a spec's tensor map for a tensor at `addr`: the fields the VM's
/// encoding holds (`TensorMapArg::map`: dense strides, element strides 1, no interleave, zero fill
/// outside the tensor).
fn encode_tensor_map(t: &spec::TensorMapArg, addr: u64) -> Result<[u8; 128], String> {
    use ptx_vm::semantics::wgmma::Swizzle;
    use sys::CUtensorMapDataType as T;
    use sys::CUtensorMapSwizzle as S;
    let m = t.map(addr);
    let data_type = match t.buffer.elem {
        spec::Elem::U8 | spec::Elem::I8 => T::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        spec::Elem::U16 | spec::Elem::I16 => T::CU_TENSOR_MAP_DATA_TYPE_UINT16,
        spec::Elem::F16 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        spec::Elem::Bf16 => T::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        spec::Elem::U32 => T::CU_TENSOR_MAP_DATA_TYPE_UINT32,
        spec::Elem::I32 => T::CU_TENSOR_MAP_DATA_TYPE_INT32,
        spec::Elem::F32 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
        spec::Elem::U64 => T::CU_TENSOR_MAP_DATA_TYPE_UINT64,
        spec::Elem::I64 => T::CU_TENSOR_MAP_DATA_TYPE_INT64,
        spec::Elem::F64 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
    };
    let swizzle = match m.swizzle {
        Swizzle::None => S::CU_TENSOR_MAP_SWIZZLE_NONE,
        Swizzle::B32 => S::CU_TENSOR_MAP_SWIZZLE_32B,
        Swizzle::B64 => S::CU_TENSOR_MAP_SWIZZLE_64B,
        Swizzle::B128 => S::CU_TENSOR_MAP_SWIZZLE_128B,
    };
    let (dims, strides, boxd, estr) = (m.global_dims, m.global_strides, m.box_dims, m.element_strides);
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    // SAFETY: `map` is a writable CUtensorMap; the dims, strides, box and element-stride arrays
    // hold at least `rank` entries (5, 4, 5, 5) and outlive the call, which only reads them and
    // writes the map; the caller's context is current (the stream's, bound by cudarc).
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            data_type,
            u32::from(m.rank),
            addr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxd.as_ptr(),
            estr.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_NONE,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    r.result().map_err(|e| format!("cuTensorMapEncodeTiled: {e}"))?;
    let mut bytes = [0u8; 128];
    for (b, w) in bytes.chunks_exact_mut(8).zip(map.opaque) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    Ok(bytes)
}
