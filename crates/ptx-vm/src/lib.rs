//! Executes the PTX that nvcc emits on the CPU, with CUDA semantics.
//!
//! The VM parses a module once into a compact IR (registers resolved to indices, immediates and
//! per-thread constants turned into registers), then interprets it warp by warp: 32 lanes share
//! one decoded instruction per step, each lane keeps its own program counter (Volta's independent
//! thread scheduling), and a barrier or warp collective that can never complete is an error, not
//! a hang. Blocks run in parallel on host threads; a race-free kernel gives bit-identical results
//! for any thread count.
//!
//! What the VM covers: the PTX nvcc 13 emits for `compute_80` (integer, bit and float arithmetic
//! with every rounding modifier, f16/bf16 scalar and packed, conversions, loads and stores in every
//! state space with generic addressing, atomics, `.func` calls, local stack frames, barriers with
//! ids and counts, warp collectives, `cp.async`, `ldmatrix`/`stmatrix`, `mma.sync` m16n8k8/k16,
//! indirect calls through function pointers and vtables, and `malloc`/`free` in device code on an
//! 8 MiB device heap per machine that `free` does not reuse).
//! Anything else is refused when the module is parsed, naming the instruction and its PTX line.
//! Faults at run time (out-of-bounds or misaligned accesses, traps, failed device asserts,
//! deadlocks, runaway loops) name the kernel, block, thread, PTX line and `.loc` source line; an
//! out-of-bounds global access also names the nearest allocation and the offset from its start or end.
//!
//! The sanitizer is on by default ([`Machine::with_sanitizer`] turns it off, about 5x faster). It
//! runs racecheck (shared-memory hazards between threads with no barrier or warp synchronisation
//! between them; conflicting plain writes to one global byte from different blocks) and initcheck
//! (reads of global memory never written since allocation, reads of shared memory not written
//! earlier in the block). Findings do not stop a launch: they come back in
//! [`LaunchReport::sanitizer`], and [`LaunchReport::assert_clean`] turns them into a test failure.
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
mod parse;
mod ptx_text;
pub mod sanitizer;
pub mod semantics;
pub mod sol;

pub use counters::{Counters, InstClass};
pub use error::{Location, Result, VmError};
pub use machine::{Arch, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder};
pub use ptx_text::code_without_debug_info;
pub use sanitizer::{Finding, FindingKind, SanitizerReport};
pub use sol::{format_table, speed_of_light, DeviceModel, KernelFloor};
