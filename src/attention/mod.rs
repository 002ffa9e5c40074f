//! Attention: the pieces for pretraining, prefill and decode.
//!
//! - [`attention_fwd`] / [`attention_fwd_varlen`]: the FlashAttention-2-class forward for
//!   pretraining and prefill (causal, sliding window, softcap, ALiBi, sinks, GQA, packed batches).
//! - [`decode_attention`] / [`cascade_attention`] / [`append_kv`]: decode over a paged KV cache
//!   (GQA-packed tensor-core tiles, split-KV planned by [`DecodePlan`], shared-prefix cascades).
//! - [`attention_bwd`] / [`attention_bwd_varlen`]: its backward (dq, dk, dv, dsinks), deterministic,
//!   with an [`AttnBwdPlan`] that sizes the caller's fp32 workspace.
//! - [`merge_states`], which combines partial results (split-KV decode, shared-prefix cascades)
//!   by their log-sum-exp.
//!
//! ```
//! # fn main() -> scaling_kernels::Result<()> {
//! use scaling_kernels::{attention::{merge_states, MergeShape}, Device};
//! let dev = Device::default();
//! // Part b is empty (LSE -inf): the merge returns part a unchanged, whatever b holds.
//! let shape = MergeShape { tokens: 1, heads: 2, head_dim: 2 };
//! let o_a = dev.upload(&[1.0f32, 2.0, 3.0, 4.0])?;
//! let o_b = dev.upload(&[f32::NAN; 4])?;
//! let lse_a = dev.upload(&[0.5f32, -1.0])?;
//! let lse_b = dev.upload(&[f32::NEG_INFINITY; 2])?;
//! let (mut o, mut lse) = (dev.alloc_zeros::<f32>(4)?, dev.alloc_zeros::<f32>(2)?);
//! merge_states(&dev, shape, &o_a.view(), &lse_a.view(), &o_b.view(), &lse_b.view(), &mut o.view_mut(), Some(&mut lse.view_mut()))?;
//! assert_eq!(dev.download(&o)?, vec![1.0, 2.0, 3.0, 4.0]);
//! assert_eq!(dev.download(&lse)?, vec![0.5, -1.0]);
//! # Ok(()) }
//! ```

mod bwd;
mod decode;
mod fwd;
mod merge;
pub(crate) mod params;

pub use bwd::{
    attention_bwd, attention_bwd_flops, attention_bwd_min_bytes, attention_bwd_varlen, AttnBwdInputs, AttnBwdPlan,
    AttnBwdStage, AttnGradsMut,
};
pub use decode::{
    append_kv, cascade_attention, cascade_prefix_pass, decode_attention, decode_attention_fp8, decode_kv_bytes,
    decode_min_bytes, CascadePlan, DecodeOptions, DecodePlan, DecodeShape, PagedLayout, MAX_Q_LEN, PAGE_SIZES,
};
pub use fwd::{
    attention_fwd, attention_fwd_flops, attention_fwd_min_bytes, attention_fwd_varlen, visible_keys, AttnOptions,
    AttnShape, RowStrides, VarlenShape,
};
pub use merge::{merge_states, MergeShape};
