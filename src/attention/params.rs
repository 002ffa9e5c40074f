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
}
