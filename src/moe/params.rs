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
    pub bf16: u32,
    pub pad: u32,
}

/// `sk::RouteBwdParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct RouteBwdParams {
    pub logits: u64,
    pub ids: u64,
    pub dweights: u64,
    pub status: u64,
    pub dlogits: u64,
    pub tokens: u64,
    pub experts: u32,
    pub k: u32,
    pub sigmoid: u32,
    pub renormalize: u32,
    pub scale: f32,
    pub pad: u32,
}

/// `sk::AlignParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct AlignParams {
    pub ids: u64,
    pub counts: u64,
    pub offsets: u64,
    pub sorted_ids: u64,
    pub block_expert: u64,
    pub inverse: u64,
    pub rank_counts: u64,
    pub rank_offsets: u64,
    pub status: u64,
    pub hist: u64,
    pub x: u64,
    pub out: u64,
    pub entries: u32,
    pub experts: u32,
    pub block_size: u32,
    pub capacity: u32,
    pub max_rows: u32,
    pub max_blocks: u32,
    pub experts_per_rank: u32,
    pub chunk: u32,
    pub k: u32,
    pub row_bytes: u32,
    pub vec: u32,
    pub pad: u32,
}

/// `sk::AlignWeightParams` (declared in kernels/moe/permute.cu).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct AlignWeightParams {
    pub a: AlignParams,
    pub weights: u64,
    pub select: u64,
}

/// `sk::GatherParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct GatherParams {
    pub x: u64,
    pub sorted_ids: u64,
    pub offsets: u64,
    pub out: u64,
    pub max_rows: u32,
    pub experts: u32,
    pub k: u32,
    pub entries: u32,
    pub row_bytes: u32,
    pub vec: u32,
}

/// `sk::CombineParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct CombineParams {
    pub y: u64,
    pub weights: u64,
    pub inverse: u64,
    pub out: u64,
    pub status: u64,
    pub tokens: u64,
    pub k: u32,
    pub hidden: u32,
    pub rows: u32,
    pub vec: u32,
}

/// `sk::CombineBwdParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct CombineBwdParams {
    pub dout: u64,
    pub y: u64,
    pub weights: u64,
    pub sorted_ids: u64,
    pub offsets: u64,
    pub inverse: u64,
    pub dy: u64,
    pub dweights: u64,
    pub entries: u32,
    pub k: u32,
    pub hidden: u32,
    pub experts: u32,
    pub vec: u32,
    pub pad: u32,
}

/// `sk::StatsBwdParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct StatsBwdParams {
    pub logits: u64,
    pub counts: u64,
    pub dlogits: u64,
    pub tokens: u64,
    pub experts: u32,
    pub k: u32,
    pub g_aux: f32,
    pub g_z: f32,
    pub accumulate: u32,
    pub pad: u32,
}

/// `sk::StatsParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct StatsParams {
    pub logits: u64,
    pub ids: u64,
    pub partial: u64,
    pub counts: u64,
    pub load_sign: u64,
    pub losses: u64,
    pub tokens: u64,
    pub experts: u32,
    pub k: u32,
    pub blocks: u32,
    pub pad: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::kernels::{MOE_COMBINE, MOE_PERMUTE, MOE_ROUTE, MOE_ROUTE_BWD, MOE_STATS};
    use std::mem::{offset_of, size_of};

    #[test]
    fn route_params_match_the_c_struct_and_the_ptx() {
        // The same numbers are static_asserts in kernels/moe/params.cuh.
        assert_eq!(size_of::<RouteParams>(), 88);
        assert_eq!(offset_of!(RouteParams, tokens), 40);
        assert_eq!(offset_of!(RouteParams, experts), 48);
        assert_eq!(offset_of!(RouteParams, scale), 72);
        assert_eq!(offset_of!(RouteParams, group_top2), 76);
        assert_eq!(offset_of!(RouteParams, bf16), 80);
        let module = ptx_vm::Module::parse(MOE_ROUTE.ptx).unwrap();
        for per in [1, 2, 4, 8, 16] {
            let kernel = format!("moe_route_e{per}");
            assert_eq!(module.param_size(&kernel), Some(size_of::<RouteParams>()), "{kernel}");
        }
    }

    #[test]
    fn permute_and_combine_params_match_the_c_structs_and_the_ptx() {
        assert_eq!(size_of::<AlignParams>(), 144);
        assert_eq!(offset_of!(AlignParams, entries), 96);
        assert_eq!(offset_of!(AlignParams, experts_per_rank), 120);
        assert_eq!(offset_of!(AlignParams, vec), 136);
        assert_eq!(size_of::<GatherParams>(), 56);
        assert_eq!(offset_of!(GatherParams, vec), 52);
        assert_eq!(size_of::<CombineParams>(), 64);
        assert_eq!(offset_of!(CombineParams, vec), 60);
        let m = ptx_vm::Module::parse(MOE_PERMUTE.ptx).unwrap();
        for k in ["moe_permute_count", "moe_permute_scatter"] {
            assert_eq!(m.param_size(k), Some(size_of::<AlignParams>()), "{k}");
        }
        assert_eq!(size_of::<AlignWeightParams>(), 160);
        for k in ["moe_permute_select", "moe_permute_count_w", "moe_permute_scatter_w"] {
            assert_eq!(m.param_size(k), Some(size_of::<AlignWeightParams>()), "{k}");
        }
        for v in [16, 4, 2] {
            assert_eq!(m.param_size(&format!("moe_gather_v{v}")), Some(size_of::<GatherParams>()));
        }
        let m = ptx_vm::Module::parse(MOE_COMBINE.ptx).unwrap();
        assert_eq!(size_of::<CombineBwdParams>(), 88);
        assert_eq!(offset_of!(CombineBwdParams, experts), 76);
        assert_eq!(offset_of!(CombineBwdParams, vec), 80);
        for t in ["f32", "f16", "bf16"] {
            assert_eq!(m.param_size(&format!("moe_combine_{t}")), Some(size_of::<CombineParams>()), "{t}");
            assert_eq!(m.param_size(&format!("moe_combine_bwd_{t}")), Some(size_of::<CombineBwdParams>()), "{t}");
        }
    }

    #[test]
    fn stats_params_match_the_c_struct_and_the_ptx() {
        assert_eq!(size_of::<StatsParams>(), 72);
        assert_eq!(offset_of!(StatsParams, blocks), 64);
        let m = ptx_vm::Module::parse(MOE_STATS.ptx).unwrap();
        for k in ["moe_stats_partial_f32", "moe_stats_partial_bf16", "moe_stats_final"] {
            assert_eq!(m.param_size(k), Some(size_of::<StatsParams>()), "{k}");
        }
        assert_eq!(size_of::<StatsBwdParams>(), 56);
        assert_eq!(offset_of!(StatsBwdParams, accumulate), 48);
        for k in ["moe_stats_bwd_f32", "moe_stats_bwd_bf16"] {
            assert_eq!(m.param_size(k), Some(size_of::<StatsBwdParams>()), "{k}");
        }
    }

    #[test]
    fn route_bwd_params_match_the_c_struct_and_the_ptx() {
        assert_eq!(size_of::<RouteBwdParams>(), 72);
        assert_eq!(offset_of!(RouteBwdParams, scale), 64);
        let m = ptx_vm::Module::parse(MOE_ROUTE_BWD.ptx).unwrap();
        for t in ["f32", "bf16"] {
            assert_eq!(m.param_size(&format!("moe_route_bwd_{t}")), Some(size_of::<RouteBwdParams>()), "{t}");
        }
    }
}
