//! Attention: the pieces for pretraining, prefill and decode.
//!
//! Today: [`merge_states`], which combines partial results (split-KV decode, shared-prefix cascades)
//! by their log-sum-exp.

mod merge;
pub(crate) mod params;

pub use merge::{merge_states, MergeShape};
