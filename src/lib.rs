//! # scaling-kernels
//!
//! Hand-written CUDA kernels for the workloads that drive AI compute: pretraining (long-sequence
//! attention, mixture-of-experts routing), post-training (batched seeded sampling for RL rollouts)
//! and test-time scaling (decode over long paged KV caches, parallel samples, speculative decoding).
//!
//! Every kernel runs on a real GPU through [cudarc](https://docs.rs/cudarc) and, on machines
//! without one, on the crate's PTX virtual machine (`ptx-vm`), which executes the very PTX nvcc
//! emitted. Kernels take safe typed views; bad input returns an [`Error`] naming the argument.
//!
//! ```
//! # fn main() -> scaling_kernels::Result<()> {
//! use scaling_kernels::{attention::{merge_states, MergeShape}, Device};
//! let dev = Device::default(); // the first GPU, or the PTX VM when there is none
//! let shape = MergeShape { tokens: 1, heads: 1, head_dim: 4 };
//! let o_a = dev.upload(&[1.0f32, 2.0, 3.0, 4.0])?;
//! let o_b = dev.upload(&[5.0f32, 6.0, 7.0, 8.0])?;
//! let (lse_a, lse_b) = (dev.upload(&[0.0f32])?, dev.upload(&[0.0f32])?);
//! let mut o = dev.alloc_zeros::<f32>(4)?;
//! merge_states(&dev, shape, &o_a.view(), &lse_a.view(), &o_b.view(), &lse_b.view(), &mut o.view_mut(), None)?;
//! assert_eq!(dev.download(&o)?, vec![3.0, 4.0, 5.0, 6.0]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod attention;
pub mod device;
pub mod dtype;
mod error;
pub mod moe;
pub mod reference;
pub mod sampling;
#[cfg(test)]
mod selftest;

pub use device::{Buffer, Device, View, ViewMut};
pub use dtype::Float;
pub use error::{Error, Result};
