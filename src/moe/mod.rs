//! Mixture-of-experts routing: everything between the router logits and the expert GEMMs.
//!
//! Today: [`route`] (softmax or sigmoid scores, selection bias, group-limited top-k,
//! renormalisation, routed scaling; per-token status for NaN rows), [`permute`] (stable grouping by
//! expert, padding to a block size, capacity, per-rank counts) with [`gather`] of the activations,
//! and [`combine`] back into token order (with [`combine_backward`] and [`route_backward`]); [`stats_backward`] for the losses' gradient; [`stats`] for the auxiliary losses and bias updates. Three launches from logits to expert-ordered
//! activations: route, permute, gather.
//!
//! ```
//! # fn main() -> scaling_kernels::Result<()> {
//! use scaling_kernels::{moe::{route, RouteOptions, RoutePlan, RouteStatus}, Device};
//! let dev = Device::default();
//! let plan = RoutePlan::new(2, 3, RouteOptions::default())?;
//! let logits = dev.upload(&[0.0f32, 2.0, 1.0, f32::NAN, 0.0, 0.0])?;
//! let mut ids = dev.alloc_zeros::<i32>(plan.ids_len())?;
//! let mut w = dev.alloc_zeros::<f32>(plan.ids_len())?;
//! let mut status = dev.alloc_zeros::<i32>(plan.status_len())?;
//! route(&dev, &plan, &logits.view(), None, &mut ids.view_mut(), &mut w.view_mut(), &mut status.view_mut())?;
//! assert_eq!(dev.download(&ids)?, vec![1, -1]); // the NaN row is flagged, not routed
//! assert_eq!(RouteStatus::from_code(dev.download(&status)?[1]), RouteStatus::NanLogit);
//! # Ok(()) }
//! ```

mod combine;
pub(crate) mod params;
mod permute;
mod route;
mod stats;

pub use combine::{combine, combine_backward};
pub use permute::{
    gather, permute, permute_by_weight, permute_count, permute_gather, permute_scatter, Permutation, PermuteOptions,
    PermutePlan,
};
pub use route::{
    route, route_backward, GroupScore, RouteOptions, RoutePlan, RouteStatus, Scoring, MAX_EXPERTS, MAX_GROUPS, MAX_K,
};
pub use stats::{stats, stats_backward, StatsPlan};
