//! Router gating and top-k selection (`kernels/moe/route.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::{RouteBwdParams, RouteParams};

/// Threads per block of the route kernels (`kRouteThreads` in route.cu): one warp per token.
const THREADS: u32 = 128;
const TOKENS_PER_BLOCK: u64 = (THREADS / 32) as u64;
/// Most blocks launched; the kernel loops grid-stride over the rest.
const MAX_BLOCKS: u64 = 1 << 16;
/// Most experts a router may have.
pub const MAX_EXPERTS: usize = 512;
/// Most experts a token may be routed to.
pub const MAX_K: usize = 32;
/// Most expert groups (one lane of the warp scores each group).
pub const MAX_GROUPS: usize = 32;

/// How router logits become per-expert scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scoring {
    /// `softmax(x)` over all experts (Mixtral, Qwen-MoE, DeepSeek-V2).
    #[default]
    Softmax,
    /// `sigmoid(x_e)` per expert (DeepSeek-V3).
    Sigmoid,
}

/// How a group of experts is scored for group-limited routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupScore {
    /// The group's largest selection score (DeepSeek-V2).
    Max,
    /// The sum of the group's two largest selection scores (DeepSeek-V3); a group of one expert
    /// scores that expert.
    #[default]
    Top2Sum,
}

/// The options of [`route`], with builder-style setters. The default is softmax top-1 with no
/// groups, no renormalisation and scale 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteOptions {
    /// Experts per token: 1..=min(experts, 32).
    pub k: usize,
    /// Softmax or sigmoid scores.
    pub scoring: Scoring,
    /// Expert groups (consecutive, equal sizes; must divide the expert count, at most 32); 1 = no
    /// group limit.
    pub n_group: usize,
    /// Groups kept per token: 1..=n_group.
    pub topk_group: usize,
    /// How a group is scored when `n_group > 1`.
    pub group_score: GroupScore,
    /// Divide the k weights by their sum.
    pub renormalize: bool,
    /// The routed scaling factor, applied to the weights last.
    pub scale: f32,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            k: 1,
            scoring: Scoring::Softmax,
            n_group: 1,
            topk_group: 1,
            group_score: GroupScore::Top2Sum,
            renormalize: false,
            scale: 1.0,
        }
    }
}

impl RouteOptions {
    /// Sets `k`.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
    /// Sets the scoring.
    pub fn scoring(mut self, scoring: Scoring) -> Self {
        self.scoring = scoring;
        self
    }
    /// Group-limited routing: `n_group` groups, the best `topk_group` kept.
    pub fn groups(mut self, n_group: usize, topk_group: usize) -> Self {
        self.n_group = n_group;
        self.topk_group = topk_group;
        self
    }
    /// Sets how groups are scored.
    pub fn group_score(mut self, group_score: GroupScore) -> Self {
        self.group_score = group_score;
        self
    }
    /// Sets renormalisation of the k weights.
    pub fn renormalize(mut self, on: bool) -> Self {
        self.renormalize = on;
        self
    }
    /// Sets the routed scaling factor.
    pub fn scale(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }
}

/// Why a token was not routed (its `status` entry). A token with any status but `Ok` has ids -1
/// and weights 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStatus {
    /// Routed.
    Ok,
    /// A NaN logit, or a non-finite entry of the bias.
    NanLogit,
    /// Softmax is undefined: a `+inf` logit, or every logit `-inf`.
    SoftmaxUndefined,
    /// Renormalisation over k weights that sum to zero.
    ZeroWeightSum,
    /// A code this version does not know (the status buffer held something else).
    Unknown(i32),
}

impl RouteStatus {
    /// The status of a code as the kernel writes it.
    pub fn from_code(code: i32) -> RouteStatus {
        match code {
            0 => RouteStatus::Ok,
            1 => RouteStatus::NanLogit,
            2 => RouteStatus::SoftmaxUndefined,
            3 => RouteStatus::ZeroWeightSum,
            c => RouteStatus::Unknown(c),
        }
    }
}

/// A validated routing problem: the shape, the options and the size of every output, so a caller
/// can allocate once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutePlan {
    /// Tokens routed.
    pub tokens: usize,
    /// Experts.
    pub experts: usize,
    /// The options, checked.
    pub options: RouteOptions,
}

impl RoutePlan {
    /// Checks the options against `experts` (1..=512) and `tokens`.
    pub fn new(tokens: usize, experts: usize, options: RouteOptions) -> Result<RoutePlan> {
        if experts == 0 || experts > MAX_EXPERTS {
            return Err(Error::invalid("experts", format!("1..={MAX_EXPERTS}"), experts));
        }
        let k_max = experts.min(MAX_K);
        if options.k == 0 || options.k > k_max {
            return Err(Error::invalid("options.k", format!("1..={MAX_K} and <= experts ({experts})"), options.k));
        }
        if options.n_group == 0 || options.n_group > MAX_GROUPS || !experts.is_multiple_of(options.n_group) {
            return Err(Error::invalid(
                "options.n_group",
                format!("1..={MAX_GROUPS} dividing experts ({experts})"),
                options.n_group,
            ));
        }
        if options.topk_group == 0 || options.topk_group > options.n_group {
            return Err(Error::invalid(
                "options.topk_group",
                format!("1..=n_group ({})", options.n_group),
                options.topk_group,
            ));
        }
        let kept = options.topk_group * (experts / options.n_group);
        if options.n_group > 1 && kept < options.k {
            return Err(Error::invalid(
                "options.k",
                format!("at most the experts in the kept groups ({kept})"),
                options.k,
            ));
        }
        if !options.scale.is_finite() {
            return Err(Error::invalid("options.scale", "a finite number", options.scale));
        }
        if tokens.checked_mul(experts).is_none() || u32::try_from(tokens).is_err() {
            return Err(Error::invalid("tokens", "at most u32::MAX", tokens));
        }
        Ok(RoutePlan { tokens, experts, options })
    }

    /// Elements of `logits` (`tokens * experts`).
    pub fn logits_len(&self) -> usize {
        self.tokens * self.experts
    }
    /// Elements of `ids` and of `weights` (`tokens * k`).
    pub fn ids_len(&self) -> usize {
        self.tokens * self.options.k
    }
    /// Elements of `status` (`tokens`).
    pub fn status_len(&self) -> usize {
        self.tokens
    }

    /// FLOPs of a route as route.cu's doc counts them: 4 per logit plus a compare per logit and
    /// selected slot.
    pub fn flops(&self) -> u64 {
        let (t, e, k) = (self.tokens as u64, self.experts as u64, self.options.k as u64);
        t * e * (4 + k)
    }

    /// The fewest bytes a route moves: the logits once, ids and weights and status once, the bias
    /// (when given) once.
    pub fn min_bytes(&self, logit_bytes: usize, bias: bool) -> u64 {
        let (t, e, k) = (self.tokens as u64, self.experts as u64, self.options.k as u64);
        t * (e * logit_bytes as u64 + 8 * k + 4) + if bias { 4 * e } else { 0 }
    }
}

fn check_len(name: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{want} elements ({what})"), format!("{len} elements")))
    }
}

/// Routes each token to its top-k experts.
///
/// `logits` is `[tokens, experts]` (f32 or bf16), `bias` `[experts]` (added to the scores for
/// selection only); writes `ids` and `weights` (`[tokens, k]`, in descending selection order, ties
/// to the lower expert id) and `status` (`[tokens]`, codes of [`RouteStatus`]). The rule is in
/// kernels/moe/route.cu and, in float64, [`crate::reference::moe::route`]. Deterministic: the same
/// inputs give the same bits whatever the schedule.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use scaling_kernels::{moe::{route, RouteOptions, RoutePlan}, Device};
/// let dev = Device::default();
/// let plan = RoutePlan::new(2, 4, RouteOptions::default().k(2).renormalize(true))?;
/// let logits = dev.upload(&[0.0f32, 3.0, 1.0, 3.0, /* token 1 */ 5.0, 0.0, 0.0, 0.0])?;
/// let mut ids = dev.alloc_zeros::<i32>(plan.ids_len())?;
/// let mut w = dev.alloc_zeros::<f32>(plan.ids_len())?;
/// let mut status = dev.alloc_zeros::<i32>(plan.status_len())?;
/// route(&dev, &plan, &logits.view(), None, &mut ids.view_mut(), &mut w.view_mut(), &mut status.view_mut())?;
/// assert_eq!(dev.download(&ids)?, vec![1, 3, 0, 1]); // the tie 1 = 3 goes to the lower id first
/// assert_eq!(dev.download(&w)?[..2], [0.5, 0.5]);
/// # Ok(()) }
/// ```
pub fn route<T: Float>(
    dev: &Device,
    plan: &RoutePlan,
    logits: &View<'_, T>,
    bias: Option<&View<'_, f32>>,
    ids: &mut ViewMut<'_, i32>,
    weights: &mut ViewMut<'_, f32>,
    status: &mut ViewMut<'_, i32>,
) -> Result<()> {
    if T::NAME == "f16" {
        return Err(Error::invalid("logits", "f32 or bf16 elements", "f16"));
    }
    check_len("logits", logits.len(), plan.logits_len(), "tokens * experts")?;
    if let Some(b) = bias {
        check_len("bias", b.len(), plan.experts, "experts")?;
    }
    check_len("ids", ids.len(), plan.ids_len(), "tokens * k")?;
    check_len("weights", weights.len(), plan.ids_len(), "tokens * k")?;
    check_len("status", status.len(), plan.status_len(), "tokens")?;
    if plan.tokens == 0 {
        return Ok(());
    }
    let o = plan.options;
    let params = RouteParams {
        logits: dev.ptr("logits", logits)?.addr,
        bias: match bias {
            Some(b) => dev.ptr("bias", b)?.addr,
            None => 0,
        },
        ids: dev.ptr_mut("ids", ids)?.addr,
        weights: dev.ptr_mut("weights", weights)?.addr,
        status: dev.ptr_mut("status", status)?.addr,
        tokens: plan.tokens as u64,
        experts: plan.experts as u32,
        k: o.k as u32,
        n_group: o.n_group as u32,
        topk_group: o.topk_group as u32,
        sigmoid: (o.scoring == Scoring::Sigmoid) as u32,
        renormalize: o.renormalize as u32,
        scale: o.scale,
        group_top2: (o.group_score == GroupScore::Top2Sum) as u32,
        bf16: (T::NAME == "bf16") as u32,
        pad: 0,
    };
    let per = plan.experts.div_ceil(32).next_power_of_two();
    let blocks = (plan.tokens as u64).div_ceil(TOKENS_PER_BLOCK).min(MAX_BLOCKS) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_ROUTE, &format!("moe_route_e{per}"), dims, &params)
}

/// The backward of [`route`]: `dlogits` (`[tokens, experts]`, f32) from `dweights` (`[tokens, k]`),
/// with the forward's `logits`, `ids` and `status`. The selection is held fixed (top-k and the bias
/// have no gradient); the gradient flows through the scaling, the renormalisation and the softmax
/// or sigmoid (formulas in kernels/moe/route_bwd.cu). Tokens with a non-zero status get 0.
#[allow(clippy::too_many_arguments)]
pub fn route_backward<T: Float>(
    dev: &Device,
    plan: &RoutePlan,
    logits: &View<'_, T>,
    ids: &View<'_, i32>,
    status: &View<'_, i32>,
    dweights: &View<'_, f32>,
    dlogits: &mut ViewMut<'_, f32>,
) -> Result<()> {
    if T::NAME == "f16" {
        return Err(Error::invalid("logits", "f32 or bf16 elements", "f16"));
    }
    check_len("logits", logits.len(), plan.logits_len(), "tokens * experts")?;
    check_len("ids", ids.len(), plan.ids_len(), "tokens * k")?;
    check_len("status", status.len(), plan.status_len(), "tokens")?;
    check_len("dweights", dweights.len(), plan.ids_len(), "tokens * k")?;
    check_len("dlogits", dlogits.len(), plan.logits_len(), "tokens * experts")?;
    if plan.tokens == 0 {
        return Ok(());
    }
    let o = plan.options;
    let params = RouteBwdParams {
        logits: dev.ptr("logits", logits)?.addr,
        ids: dev.ptr("ids", ids)?.addr,
        dweights: dev.ptr("dweights", dweights)?.addr,
        status: dev.ptr("status", status)?.addr,
        dlogits: dev.ptr_mut("dlogits", dlogits)?.addr,
        tokens: plan.tokens as u64,
        experts: plan.experts as u32,
        k: o.k as u32,
        sigmoid: (o.scoring == Scoring::Sigmoid) as u32,
        renormalize: o.renormalize as u32,
        scale: o.scale,
        pad: 0,
    };
    let blocks = (plan.tokens as u64).div_ceil(TOKENS_PER_BLOCK).min(MAX_BLOCKS) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::MOE_ROUTE_BWD, &format!("moe_route_bwd_{}", T::NAME), dims, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name(e: Error) -> &'static str {
        match e {
            Error::InvalidArgument { name, .. } => name,
            other => panic!("expected InvalidArgument, got {other}"),
        }
    }

    #[test]
    fn every_bad_option_is_a_typed_error_naming_it() {
        let o = RouteOptions::default();
        assert_eq!(err_name(RoutePlan::new(4, 0, o).unwrap_err()), "experts");
        assert_eq!(err_name(RoutePlan::new(4, 513, o).unwrap_err()), "experts");
        assert_eq!(err_name(RoutePlan::new(4, 8, o.k(0)).unwrap_err()), "options.k");
        assert_eq!(err_name(RoutePlan::new(4, 8, o.k(9)).unwrap_err()), "options.k");
        assert_eq!(err_name(RoutePlan::new(4, 64, o.k(33)).unwrap_err()), "options.k");
        assert_eq!(err_name(RoutePlan::new(4, 60, o.groups(8, 4)).unwrap_err()), "options.n_group");
        assert_eq!(err_name(RoutePlan::new(4, 64, o.groups(8, 9)).unwrap_err()), "options.topk_group");
        assert_eq!(err_name(RoutePlan::new(4, 64, o.groups(8, 0)).unwrap_err()), "options.topk_group");
        assert_eq!(err_name(RoutePlan::new(4, 64, o.groups(8, 1).k(9)).unwrap_err()), "options.k");
        assert_eq!(err_name(RoutePlan::new(4, 64, o.scale(f32::NAN)).unwrap_err()), "options.scale");
        let e = RoutePlan::new(4, 64, o.k(65)).unwrap_err();
        assert_eq!(e.to_string(), "options.k: expected 1..=32 and <= experts (64), got 65");
    }

    #[test]
    fn plan_sizes_follow_the_shape() {
        let p = RoutePlan::new(7, 256, RouteOptions::default().k(8).groups(8, 4)).unwrap();
        assert_eq!((p.logits_len(), p.ids_len(), p.status_len()), (7 * 256, 56, 7));
        assert_eq!(p.min_bytes(2, true), 7 * (512 + 64 + 4) + 1024);
    }
}
