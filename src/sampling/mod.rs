//! Sampling for RL rollouts and test-time scaling: batched, seeded per request, sort-free and exact.
//!
//! - [`sample`]: n tokens per row with temperature, min-p, top-k and top-p, the chosen token's
//!   logprobs (raw, processed, truncated) and rank, and a status per row.
//! - [`log_softmax_gather`]: the trainer's target logprobs (and entropy), bit-identical to the
//!   sampler's raw logprob; [`top_logprobs`]: the top-n (n <= 20) raw logprobs with ids.
//! - [`philox4x32_10`]: the counter-based generator every draw comes from, keyed by (seed, position,
//!   sample index), so a row's tokens never depend on its batch.
//! - [`apply_penalties`]: repetition / frequency / presence penalties and a sparse logit bias, the
//!   processing before temperature.
//! - [`chain_speculative`]: speculative verification of draft tokens, sampled or greedy.
//! - [`majority_vote`] and [`best_of_n`]: test-time answer selection over ragged groups of samples.
//!
//! ```
//! # fn main() -> scaling_kernels::Result<()> {
//! use scaling_kernels::sampling::{sample, RowParams, SampleOutput, SamplingParams, SamplingPlan};
//! use scaling_kernels::Device;
//! let dev = Device::default();
//! // Greedy: temperature 0 takes the argmax, the lowest index on ties.
//! let logits = dev.upload(&[1.0f32, 3.0, 3.0, 0.5])?;
//! let plan = SamplingPlan::new(1, 4, 1)?;
//! let params = SamplingParams::upload(&dev, &[RowParams { temperature: 0.0, ..RowParams::default() }])?;
//! let mut out = SampleOutput::alloc(&dev, &plan)?;
//! sample(&dev, &plan, &logits.view(), &params, &mut out)?;
//! assert_eq!(dev.download(&out.token)?, vec![1]);
//! # Ok(()) }
//! ```

mod logprobs;
pub(crate) mod params;
mod penalties;
mod philox;
mod sample;
mod select;
mod speculative;

pub use logprobs::{log_softmax_gather, top_logprobs, MAX_TOP_LOGPROBS, STATUS_BAD_TARGET};
pub use penalties::{apply_penalties, PenaltyBatch, STATUS_BAD_ID};
pub use philox::{philox4x32_10, philox_bits64};
pub use sample::{
    sample, RowParams, SampleOutput, SamplingParams, SamplingPlan, MAX_SAMPLES, MAX_VOCAB, STATUS_NON_FINITE,
    STATUS_NO_FINITE,
};
pub use select::{best_of_n, majority_vote};
pub use speculative::chain_speculative;
