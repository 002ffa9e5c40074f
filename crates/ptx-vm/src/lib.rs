//! Executes the PTX that nvcc emits on the CPU, with CUDA semantics.
//!
//! The VM parses a module once into a compact IR (registers resolved to indices, immediates and
//! per-thread constants turned into registers), then interprets it warp by warp: 32 lanes share
//! one decoded instruction per step, each lane keeps its own program counter (Volta's independent
//! thread scheduling), and a barrier or warp collective that can never complete is an error, not
//! a hang. As on a GPU, a barrier without a thread count (`__syncthreads`) waits only for the
//! threads that have not exited, so `if (tid >= n) return;` before it is fine. Each block's shared
//! memory starts filled with 0xff bytes (a NaN in every float format, all-ones integers), not
//! zeros, as a GPU leaves stale data there. Blocks run in parallel on host threads; a race-free
//! kernel gives bit-identical results for any thread count.
//!
//! What the VM covers: the PTX nvcc 13 emits for `compute_80` (integer, bit and float arithmetic
//! with every rounding modifier, f16/bf16 scalar and packed, conversions, loads and stores in every
//! state space with generic addressing, atomics, `.func` calls, local stack frames, barriers with
//! ids and counts, warp collectives, `cp.async`, `ldmatrix`/`stmatrix`, `mma.sync` m16n8k8/k16,
//! indirect calls through function pointers and vtables, and `malloc`/`free` in device code on an
//! 8 MiB device heap per machine that `free` does not reuse).
//! Of sm_90: `setmaxnreg`, `elect.sync`, `griddepcontrol`, mbarrier objects in full (arrival and
//! transaction counts, phases, `try_wait`/`test_wait` with and without `.parity`; a `try_wait`
//! suspends the thread until its phase completes, or returns false when nothing else in the block
//! can move, and a wait no phase completion can release is a deadlock naming the object (its
//! shared variable and offset), the phase's parity, the missing arrivals and transaction bytes, as
//! is a `test_wait` spin loop that runs into the block's instruction limit), and non-tensor `cp.async.bulk` in both directions,
//! performed at issue and completing on its mbarrier with its byte count; `cp.async.bulk.tensor`
//! 1-5D in tile mode in both directions, driven by a tensor map in the VM's own 128-byte encoding
//! (see [`semantics::tensor_map`]: zero fill outside the tensor, element strides, 32/64/128-byte
//! swizzles), each global -> shared box completing its whole byte count on its mbarrier; reading a
//! bulk copy's destination before observing the completion of its mbarrier phase is a racecheck
//! finding. Racecheck orders accesses through mbarriers as the memory model does: an arrival (and a
//! bulk copy's complete-tx) releases, a wait that sees the phase complete acquires, transitively;
//! see [`sanitizer`].
//! `wgmma.mma_async` m64nNk16 (every N) with f16/bf16 inputs and f32 accumulators, or f16 inputs
//! and f16 accumulators, A from registers or a descriptor, B from a descriptor, K-major or
//! MN-major (imm-trans) with any swizzle; results reach the accumulators at `wgmma.wait_group`,
//! and with the sanitizer a write of a pending `mma_async`'s shared operands or of its A or
//! accumulator registers before that is a finding (see [`semantics::wgmma`] for what is and is
//! not modelled).
//! Device `printf` (`vprintf`) is formatted as the host C library does and comes back in
//! [`LaunchReport::printf`] (see [`semantics::printf`] for the conversions and the order).
//! [`Module::parse`] rejects malformed PTX: syntax errors, undefined names, and directives or
//! declarations the VM does not model. An instruction or external call it does not implement is
//! not a parse error: only a launch of a kernel that can reach it (in its body or in a `.func` it
//! calls, directly or not) fails, with [`VmError::Unsupported`] naming the instruction, its PTX line
//! and its `.loc` source line; [`Module::unsupported`] lists them ahead of a launch.
//! Faults at run time (out-of-bounds or misaligned accesses, traps, failed device asserts,
//! deadlocks, runaway loops) name the kernel, block, thread, PTX line and `.loc` source line; an
//! out-of-bounds global access also names the nearest allocation and the offset from its start or end.
//! A deadlock or runaway message is a summary line, then one line per group of warps stuck at the
//! same place. After a failed launch, [`Machine::last_report`] holds what it counted and found up
//! to the fault.
//!
//! # Special registers and predefined identifiers
//!
//! Every one the PTX ISA lists for sm_80 and sm_90 (PTX ISA 10, "Special Registers"; 5.4.5,
//! "Predefined Identifiers") reads as follows on the VM:
//!
//! | Name | Value on the VM |
//! |------|-----------------|
//! | `WARP_SZ` (nvcc's `warpSize`) | 32 |
//! | `%tid`, `%ntid`, `%ctaid`, `%nctaid` (`.x/.y/.z`) | the launch's thread and block indices and shapes |
//! | `%laneid`, `%warpid` | the lane in the warp; the warp's index in its block (threads linearised x, y, z) |
//! | `%nwarpid` | 64, the resident warps per SM of sm_80 and sm_90 |
//! | `%lanemask_eq/le/lt/ge/gt` | the lane's bit masks, as the ISA defines them |
//! | `%nsmid` | the modelled device's SM count: 108 ([`Arch::Sm80`], A100), 132 ([`Arch::Sm90`], H100) |
//! | `%smid` | the linear block index modulo `%nsmid` (blocks dealt to SMs round-robin) |
//! | `%gridid` | the machine's launch count, from 1 |
//! | `%clock`, `%clock_hi`, `%clock64` | the warp's instruction count: one tick per warp instruction, so monotonic per warp and deterministic; `%clock` and `%clock_hi` are its low and high halves |
//! | `%globaltimer`, `%globaltimer_lo`, `%globaltimer_hi` | nanoseconds as if the warp ran one instruction per ns: the same count as `%clock64`, monotonic per warp |
//! | `%pm0`..`%pm7`, `%pm0_64`..`%pm7_64` | 0 (no performance monitors) |
//! | `%envreg0`..`%envreg31` | 0 (no driver environment) |
//! | `%dynamic_smem_size` | the launch's dynamic shared memory |
//! | `%total_smem_size`, `%aggr_smem_size` | static shared memory rounded up to the dynamic part's alignment, plus the dynamic part (the VM reserves none) |
//! | `%reserved_smem_offset_begin/end/cap`, `%reserved_smem_offset_0/1` | 0 (no reserved shared memory) |
//! | `%current_graph_exec` | 0 (launches are not part of a CUDA graph) |
//! | `%clusterid`, `%nclusterid` (`.x/.y/.z`) | as for 1x1x1 clusters: `%ctaid`, `%nctaid` |
//! | `%cluster_ctaid`, `%cluster_nctaid` (`.x/.y/.z`) | 0 and 1 |
//! | `%cluster_ctarank`, `%cluster_nctarank` | 0 and 1 |
//! | `%is_explicit_cluster` | false |
//!
//! The time registers can only be read by `mov`; another instruction reading them refuses its
//! kernel at launch.
//!
//! # Sanitizer and counters
//!
//! The sanitizer is on by default ([`Machine::with_sanitizer`] turns it off). It runs racecheck
//! (shared-memory hazards between threads with no barrier or warp synchronisation between them;
//! conflicting plain writes to one global byte from different blocks) and initcheck (reads of
//! global memory never written since allocation or since [`Machine::fill_poison`], reads of shared
//! memory not written earlier in the block). Findings do not stop a launch: they come back in
//! [`LaunchReport::sanitizer`], each an error or, as compute-sanitizer grades them, a warning (a
//! write-after-write race where the later writer stored the bytes already there, as every lane of
//! a warp storing the warp's sum to one slot does: see [`Severity`]).
//! [`LaunchReport::assert_clean`] turns errors into a test failure and lists warnings;
//! [`LaunchReport::assert_clean_strict`] fails on warnings too.
//!
//! Initcheck tracks definedness through registers as Valgrind's memcheck does (on by default;
//! [`Machine::with_definedness`] turns it off): reading uninitialised memory yields an undefined
//! value, and only an undefined value that reaches global memory, an address, a branch or a warp
//! vote is an error; a bitwise `and`/`or` whose defined operand decides the result (`x & 0`,
//! `p || true`) is defined, as in memcheck, so short-circuit conditions over a padding element
//! (CUB's merge sort) stay clean. A kernel may then leave shared-memory rows past a sequence's end unloaded and mask
//! their scores to -inf by a select, as FlashAttention-2 does, and stay clean. The granularity and
//! the propagation rules (select, shuffles, `ldmatrix`, `mma` per row and column, `cp.async`) are
//! described in `src/exec/definedness.rs`.
//!
//! Cost, measured with `cargo run --release -p ptx-vm --example throughput`, which runs nine
//! kernels of `tests/cuda/core_bench.cu` (saxpy, two reductions, CUB radix sort and scan, a tiled
//! matmul, row softmax, a histogram, local memory and calls) and a bf16 tensor-core GEMM on one
//! host thread and reports thread-instructions per second with the sanitizer off, on, and on with
//! definedness tracking. On a 2-core machine shared with other jobs (so within about 15%): off,
//! 110-145 M thread-instructions/s; the sanitizer costs 2.5-4x over the whole mix, per kernel from
//! about 1x (block_sum, the mma GEMM: their time goes to arithmetic and collectives) to 4x (the
//! tiled matmul: its time goes to shared-memory accesses, each checked against the shadow);
//! definedness tracking adds 7-17% on top (it skips every instruction of a warp until a read of
//! uninitialised memory makes some register undefined).
//! With the sanitizer (or [`Machine::with_counters`]) every launch also returns exact
//! [`Counters`]: instruction classes, mma FLOPs, global requests and 32-byte sectors, first-touch
//! bytes, shared-memory wavefronts and bank conflicts; [`sol`] turns them into a speed-of-light model.
//!
//! ```
//! use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};
//! let ptx = r#"
//! .version 9.0
//! .target sm_80
//! .address_size 64
//! .visible .entry fill(.param .u64 out, .param .u32 v)
//! {
//!     .reg .b32 %r<3>;
//!     .reg .b64 %rd<4>;
//!     ld.param.u64 %rd1, [out];
//!     ld.param.u32 %r1, [v];
//!     mov.u32 %r2, %tid.x;
//!     mul.wide.u32 %rd2, %r2, 4;
//!     add.s64 %rd3, %rd1, %rd2;
//!     st.global.u32 [%rd3], %r1;
//!     ret;
//! }
//! "#;
//! let module = Module::parse(ptx)?;
//! let mut m = Machine::new(Arch::Sm80);
//! let out = m.alloc(32 * 4)?;
//! let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
//! m.launch(&module, "fill", &cfg, &ParamBuilder::new().ptr(out).u32(7).finish())?;
//! let mut bytes = [0u8; 128];
//! m.read(out, &mut bytes)?;
//! assert_eq!(u32::from_le_bytes([bytes[124], bytes[125], bytes[126], bytes[127]]), 7);
//! // The sanitizer found nothing; the counters saw one fully coalesced 128-byte store.
//! let r = m.launch(&module, "fill", &cfg, &ParamBuilder::new().ptr(out).u32(7).finish())?;
//! assert_eq!(r.assert_clean(), Ok(()));
//! let c = r.counters.unwrap_or_default();
//! assert_eq!((c.global_store_requests, c.global_store_sectors, c.unique_bytes_written), (1, 4, 128));
//! # Ok::<(), ptx_vm::VmError>(())
//! ```

#![warn(missing_docs)]

pub mod counters;
mod error;
mod exec;
mod ir;
mod lower;
mod machine;
mod memory;
mod num;
pub mod params;
mod parse;
mod ptx_text;
pub mod sanitizer;
pub mod semantics;
pub mod sol;

pub use counters::{Counters, InstClass};
pub use error::{Location, Result, VmError};
pub use machine::{Arch, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, POISON_BYTE, PRINTF_BUFFER_BYTES};
pub use params::{ParamClass, ParamInfo, PushKind, PushedParam};
pub use ptx_text::code_without_debug_info;
pub use sanitizer::{Finding, FindingKind, SanitizerReport, Severity};
pub use sol::{format_table, speed_of_light, speed_of_light_with, DeviceModel, KernelFloor, LaunchResources};
