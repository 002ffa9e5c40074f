//! Launch parameters of the sampling family, mirroring `kernels/sampling/params.cuh` field by field.

use bytemuck::{Pod, Zeroable};

/// `sk::SampleParams`: device pointers as `u64`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct SampleParams {
    pub logits: u64,
    pub temperature: u64,
    pub top_k: u64,
    pub top_p: u64,
    pub min_p: u64,
    pub seed: u64,
    pub position: u64,
    pub token: u64,
    pub logprob_raw: u64,
    pub logprob_processed: u64,
    pub logprob_truncated: u64,
    pub rank: u64,
    pub status: u64,
    pub batch: u32,
    pub vocab: u32,
    pub n: u32,
    pub pad: u32,
}

/// `sk::PenaltiesParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct PenaltiesParams {
    pub logits: u64,
    pub out: u64,
    pub hist_offsets: u64,
    pub hist_ids: u64,
    pub hist_counts: u64,
    pub repetition: u64,
    pub frequency: u64,
    pub presence: u64,
    pub bias_offsets: u64,
    pub bias_ids: u64,
    pub bias_values: u64,
    pub status: u64,
    pub batch: u32,
    pub vocab: u32,
}

/// `sk::TopLogprobsParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct TopLogprobsParams {
    pub logits: u64,
    pub ids: u64,
    pub logprobs: u64,
    pub status: u64,
    pub rows: u32,
    pub vocab: u32,
    pub n: u32,
    pub pad: u32,
}

/// `sk::LogSoftmaxGatherParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct LogSoftmaxGatherParams {
    pub logits: u64,
    pub target: u64,
    pub logprob: u64,
    pub entropy: u64,
    pub status: u64,
    pub tokens: u32,
    pub vocab: u32,
}

/// `sk::MajorityVoteParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct MajorityVoteParams {
    pub answers: u64,
    pub offsets: u64,
    pub answer: u64,
    pub votes: u64,
    pub groups: u32,
    pub pad: u32,
}

/// `sk::BestOfNParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct BestOfNParams {
    pub reward: u64,
    pub offsets: u64,
    pub index: u64,
    pub best: u64,
    pub groups: u32,
    pub pad: u32,
}

/// `sk::ChainSpecParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ChainSpecParams {
    pub draft: u64,
    pub draft_probs: u64,
    pub target_probs: u64,
    pub seed: u64,
    pub position: u64,
    pub accepted: u64,
    pub emitted: u64,
    pub batch: u32,
    pub k: u32,
    pub vocab: u32,
    pub greedy: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::kernels::{
        SAMPLING_LOGPROBS, SAMPLING_PENALTIES, SAMPLING_SAMPLE, SAMPLING_SELECT, SAMPLING_SPECULATIVE,
    };
    use std::mem::{offset_of, size_of};

    #[test]
    fn sampling_params_match_the_c_structs_and_the_ptx() {
        // The same numbers are static_asserts in kernels/sampling/params.cuh.
        assert_eq!(size_of::<SampleParams>(), 120);
        assert_eq!(offset_of!(SampleParams, batch), 104);
        assert_eq!(offset_of!(SampleParams, vocab), 108);
        assert_eq!(offset_of!(SampleParams, n), 112);
        assert_eq!(size_of::<LogSoftmaxGatherParams>(), 48);
        assert_eq!(offset_of!(LogSoftmaxGatherParams, tokens), 40);
        assert_eq!(size_of::<MajorityVoteParams>(), 40);
        assert_eq!(offset_of!(MajorityVoteParams, groups), 32);
        assert_eq!(size_of::<BestOfNParams>(), 40);
        assert_eq!(offset_of!(BestOfNParams, groups), 32);
        let select = ptx_vm::Module::parse(SAMPLING_SELECT.ptx).unwrap();
        assert_eq!(select.param_size("sampling_majority_vote"), Some(40));
        assert_eq!(select.param_size("sampling_best_of_n"), Some(40));
        assert_eq!(size_of::<ChainSpecParams>(), 72);
        assert_eq!(offset_of!(ChainSpecParams, batch), 56);
        assert_eq!(offset_of!(ChainSpecParams, greedy), 68);
        let spec = ptx_vm::Module::parse(SAMPLING_SPECULATIVE.ptx).unwrap();
        assert_eq!(spec.param_size("sampling_chain_speculative"), Some(72));
        assert_eq!(size_of::<PenaltiesParams>(), 104);
        assert_eq!(offset_of!(PenaltiesParams, batch), 96);
        let pen = ptx_vm::Module::parse(SAMPLING_PENALTIES.ptx).unwrap();
        for t in ["f32", "f16", "bf16"] {
            assert_eq!(pen.param_size(&format!("sampling_apply_penalties_{t}")), Some(104));
        }
        assert_eq!(size_of::<TopLogprobsParams>(), 48);
        assert_eq!(offset_of!(TopLogprobsParams, n), 40);
        let sample = ptx_vm::Module::parse(SAMPLING_SAMPLE.ptx).unwrap();
        let gather = ptx_vm::Module::parse(SAMPLING_LOGPROBS.ptx).unwrap();
        for t in ["f32", "f16", "bf16"] {
            let k = format!("sampling_sample_{t}");
            assert_eq!(sample.param_size(&k), Some(size_of::<SampleParams>()), "{k}");
            let k = format!("sampling_top_logprobs_{t}");
            assert_eq!(sample.param_size(&k), Some(size_of::<TopLogprobsParams>()), "{k}");
            let k = format!("sampling_log_softmax_gather_{t}");
            assert_eq!(gather.param_size(&k), Some(size_of::<LogSoftmaxGatherParams>()), "{k}");
        }
    }
}
