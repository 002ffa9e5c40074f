//! Launch parameters of the moe family, mirroring `kernels/moe/params.cuh` field by field.

use bytemuck::{Pod, Zeroable};

/// `sk::RouteParams`: device pointers as `u64`, sizes as in the C struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct RouteParams {
    pub logits: u64,
    pub bias: u64,
    pub ids: u64,
    pub weights: u64,
    pub status: u64,
    pub tokens: u64,
    pub experts: u32,
    pub k: u32,
    pub n_group: u32,
    pub topk_group: u32,
    pub sigmoid: u32,
    pub renormalize: u32,
    pub scale: f32,
    pub group_top2: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::kernels::MOE_ROUTE;
    use std::mem::{offset_of, size_of};

    #[test]
    fn route_params_match_the_c_struct_and_the_ptx() {
        // The same numbers are static_asserts in kernels/moe/params.cuh.
        assert_eq!(size_of::<RouteParams>(), 80);
        assert_eq!(offset_of!(RouteParams, tokens), 40);
        assert_eq!(offset_of!(RouteParams, experts), 48);
        assert_eq!(offset_of!(RouteParams, scale), 72);
        assert_eq!(offset_of!(RouteParams, group_top2), 76);
        let module = ptx_vm::Module::parse(MOE_ROUTE.ptx).unwrap();
        for t in ["f32", "bf16"] {
            for per in [1, 2, 4, 8, 16] {
                let kernel = format!("moe_route_{t}_e{per}");
                assert_eq!(module.param_size(&kernel), Some(size_of::<RouteParams>()), "{kernel}");
            }
        }
    }
}
