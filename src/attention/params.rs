//! Launch parameters of the attention family, mirroring `kernels/attention/params.cuh` field by field.

use bytemuck::{Pod, Zeroable};

/// `sk::MergeStatesParams`: device pointers as `u64`, sizes as in the C struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct MergeStatesParams {
    pub o_a: u64,
    pub lse_a: u64,
    pub o_b: u64,
    pub lse_b: u64,
    pub o: u64,
    pub lse: u64,
    pub rows: u64,
    pub head_dim: u32,
    pub vec: u32,
}

/// `sk::AttnFwdParams`: device pointers as `u64` (0 for null), sizes as in the C struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct AttnFwdParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub o: u64,
    pub lse: u64,
    pub cu_seqlens_q: u64,
    pub cu_seqlens_k: u64,
    pub alibi_slopes: u64,
    pub sinks: u64,
    pub q_row_stride: i64,
    pub k_row_stride: i64,
    pub v_row_stride: i64,
    pub o_row_stride: i64,
    pub seqlen_q: i32,
    pub seqlen_k: i32,
    pub total_q: i32,
    pub heads: i32,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub window_left: i32,
    pub window_right: i32,
    pub scale_log2: f32,
    pub softcap_prescale: f32,
    pub alibi_unit: f32,
    pub pack: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::kernels::ATTENTION_MERGE;
    use std::mem::{offset_of, size_of};

    #[test]
    fn merge_states_params_match_the_c_struct_and_the_ptx() {
        // The same numbers are static_asserts in kernels/attention/params.cuh.
        assert_eq!(size_of::<MergeStatesParams>(), 64);
        assert_eq!(offset_of!(MergeStatesParams, rows), 48);
        assert_eq!(offset_of!(MergeStatesParams, head_dim), 56);
        assert_eq!(offset_of!(MergeStatesParams, vec), 60);
        // The PTX's `.param .align 8 .b8 <kernel>_param_0[N]` is the compiler's own witness.
        let module = ptx_vm::Module::parse(ATTENTION_MERGE.ptx).unwrap();
        for t in ["f32", "f16", "bf16"] {
            let kernel = format!("attention_merge_states_{t}");
            assert_eq!(module.param_size(&kernel), Some(size_of::<MergeStatesParams>()), "{kernel}");
        }
    }

    #[test]
    fn attn_fwd_params_match_the_c_struct_and_the_ptx() {
        // The same numbers are static_asserts in kernels/attention/params.cuh.
        assert_eq!(size_of::<AttnFwdParams>(), 152);
        assert_eq!(offset_of!(AttnFwdParams, q_row_stride), 72);
        assert_eq!(offset_of!(AttnFwdParams, seqlen_q), 104);
        assert_eq!(offset_of!(AttnFwdParams, head_dim), 124);
        assert_eq!(offset_of!(AttnFwdParams, window_left), 128);
        assert_eq!(offset_of!(AttnFwdParams, scale_log2), 136);
        assert_eq!(offset_of!(AttnFwdParams, alibi_unit), 144);
        let module = ptx_vm::Module::parse(crate::device::kernels::ATTENTION_FWD.ptx).unwrap();
        for t in ["bf16", "f16"] {
            for d in [64, 128, 256] {
                let kernel = format!("attention_fwd_{t}_d{d}");
                assert_eq!(module.param_size(&kernel), Some(size_of::<AttnFwdParams>()), "{kernel}");
            }
        }
    }
}
