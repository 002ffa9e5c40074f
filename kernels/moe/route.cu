// route: router logits -> top-k expert ids and weights per token (softmax or sigmoid scoring,
// selection bias, group-limited top-k, renormalisation, routed scaling).
//
// The rule, per token (src/reference/moe.rs is the same rule in float64):
//   score_e = softmax(x)_e or sigmoid(x_e);  sel_e = score_e + bias_e (bias only selects: DeepSeek-V3)
//   n_group > 1: the experts split into n_group consecutive groups; a group's score is its largest
//     sel (group_top2 = 0, DeepSeek-V2) or the sum of its two largest sel (group_top2 = 1, DeepSeek-V3;
//     a group of one expert scores that expert); the topk_group best groups stay, ties to the lower
//     group; the others' experts are out.
//   ids = the k largest sel among the remaining experts, in descending order, ties to the lower id;
//   w_j = score_{ids_j}; renormalize: w_j /= sum_j w_j; then w_j *= scale.
// A NaN logit or non-finite bias, a softmax without a finite maximum, or renormalising a zero sum
// sets the token's status (params.cuh) and writes ids -1, weights 0: never a silent route.
//
// Work split: one warp per token, kTokensPerBlock tokens per block. Lane l holds experts
// l, l+32, ..., l+32(kPer-1) in registers (kPer = ceil(experts/32) rounded up to a power of two, one
// instantiation each), so logit loads are coalesced. Top-k is k rounds of a warp argmax on the key
// (sel desc, id asc), a total order, so the xor butterfly gives every lane the same winner and the
// result is independent of scheduling. Lane j keeps slot j (k <= 32) and writes it. Group scores go
// through shared memory: lane g scans group g.
//
// Cost per token (E experts): FLOPs ~ E (exp or sigmoid) + 3E (softmax sum, scale, bias) + k * E
// compares; fewest bytes E * sizeof(T) + k * 8 + 4 (+ the bias, E * 4, once per launch).
// VM (examples/sol_report.rs, DeepSeek-V3, 16k tokens, bf16): unique bytes = exactly the fewest
// (8389632 read + 1114112 written); 38.08M warp instructions (39.77M before the dtype became a
// runtime flag), ~2.3k per token, the k = 8 argmax rounds dominate: issue-bound, not memory-bound.
#include "common/dtype.cuh"
#include "common/math.cuh"
#include "moe/params.cuh"

namespace sk {

constexpr int kWarp = 32;
constexpr int kRouteThreads = 128;
constexpr int kTokensPerBlock = kRouteThreads / kWarp;
constexpr int kMaxExperts = 512;
constexpr unsigned kFull = 0xffffffffu;
constexpr int kNone = 0x7fffffff;  // expert id of "no candidate": loses every comparison

// (v, e) beats (bv, be): larger v, then lower e.
__device__ __forceinline__ bool beats(float v, int e, float bv, int be) {
  return v > bv || (v == bv && e < be);
}

// Warp-wide argmax of (v, e) carrying s; every lane ends with the winner.
__device__ __forceinline__ void warp_argmax(float& v, int& e, float& s) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off /= 2) {
    const float ov = __shfl_xor_sync(kFull, v, off);
    const int oe = __shfl_xor_sync(kFull, e, off);
    const float os = __shfl_xor_sync(kFull, s, off);
    if (beats(ov, oe, v, e)) {
      v = ov;
      e = oe;
      s = os;
    }
  }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(kFull, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

template <int kPer>
__device__ __forceinline__ void route_token(const RouteParams& p, uint64_t t, float* sh_sel) {
  const int lane = threadIdx.x % kWarp;
  const int E = int(p.experts);
  const float* __restrict__ xf = static_cast<const float*>(p.logits) + t * p.experts;
  const __nv_bfloat16* __restrict__ xb = static_cast<const __nv_bfloat16*>(p.logits) + t * p.experts;

  float score[kPer];
  float sel[kPer];
  uint32_t out = 0;  // bit i: expert lane + 32 i is absent or already out of the running
  bool nan = false, pos_inf = false;
  float m = -CUDART_INF_F;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + kWarp * i;
    score[i] = -CUDART_INF_F;
    if (e < E) {
      score[i] = p.bf16 ? to_float(xb[e]) : xf[e];  // uniform branch: one kernel for both dtypes
      nan |= isnan(score[i]);
      pos_inf |= score[i] == CUDART_INF_F;
      m = fmaxf(m, score[i]);
    } else {
      out |= 1u << i;
    }
  }
  if (p.bias != nullptr) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int e = lane + kWarp * i;
      if (e < E) nan |= !isfinite(p.bias[e]);
    }
  }
  int32_t status = __any_sync(kFull, nan) ? kRouteNan : kRouteOk;

  if (status == kRouteOk && !p.sigmoid) {
    m = warp_max(m);
    if (__any_sync(kFull, pos_inf) || m == -CUDART_INF_F) status = kRouteSoftmaxUndef;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      score[i] = (out >> i & 1) ? 0.0f : exp2f((score[i] - m) * kLog2e);
      sum += score[i];
    }
    const float inv = 1.0f / warp_sum(sum);
#pragma unroll
    for (int i = 0; i < kPer; ++i) score[i] *= inv;
  } else if (status == kRouteOk) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) score[i] = 1.0f / (1.0f + exp2f(-score[i] * kLog2e));
  }

  int my_id = -1;
  float my_w = 0.0f;
  if (status == kRouteOk) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int e = lane + kWarp * i;
      sel[i] = score[i] + (p.bias != nullptr && e < E ? p.bias[e] : 0.0f);
    }

    if (p.n_group > 1) {
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const int e = lane + kWarp * i;
        if (e < E) sh_sel[e] = sel[i];
      }
      __syncwarp();
      const int gs = E / int(p.n_group);
      float gv = -CUDART_INF_F;
      int gid = kNone;
      if (lane < int(p.n_group)) {
        float a = -CUDART_INF_F, b = -CUDART_INF_F;  // the two largest of the group, a >= b
        for (int e = lane * gs; e < (lane + 1) * gs; ++e) {
          const float v = sh_sel[e];
          if (v > a) {
            b = a;
            a = v;
          } else if (v > b) {
            b = v;
          }
        }
        gv = (p.group_top2 && gs > 1) ? a + b : a;
        gid = lane;
      }
      __syncwarp();
      uint32_t keep = 0;  // bit g: group g stays
      for (uint32_t r = 0; r < p.topk_group; ++r) {
        float bv = gv, unused = 0.0f;
        int bg = gid;
        warp_argmax(bv, bg, unused);
        keep |= 1u << bg;
        if (lane == bg) {
          gv = -CUDART_INF_F;
          gid = kNone;
        }
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const int e = lane + kWarp * i;
        if (e < E && !(keep >> (e / gs) & 1)) out |= 1u << i;
      }
    }

    for (uint32_t j = 0; j < p.k; ++j) {
      float bv = -CUDART_INF_F, bs = 0.0f;
      int be = kNone;
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const int e = lane + kWarp * i;
        if (!(out >> i & 1) && beats(sel[i], e, bv, be)) {
          bv = sel[i];
          be = e;
          bs = score[i];
        }
      }
      warp_argmax(bv, be, bs);
      if (lane == be % kWarp) out |= 1u << (be / kWarp);
      if (lane == int(j)) {
        my_id = be;
        my_w = bs;
      }
    }
    if (p.renormalize) {
      const float total = warp_sum(my_w);  // lanes >= k hold 0
      if (total == 0.0f) {
        status = kRouteZeroSum;
      } else {
        my_w /= total;
      }
    }
    my_w *= p.scale;
  }
  if (status != kRouteOk) {
    my_id = -1;
    my_w = 0.0f;
  }
  if (lane < int(p.k)) {
    p.ids[t * p.k + lane] = my_id;
    p.weights[t * p.k + lane] = my_w;
  }
  if (lane == 0) p.status[t] = status;
}

template <int kPer>
__device__ __forceinline__ void route(const RouteParams& p) {
  __shared__ float sh_sel[kTokensPerBlock][kMaxExperts];
  const int warp = threadIdx.x / kWarp;
  const uint64_t stride = uint64_t(gridDim.x) * kTokensPerBlock;
  for (uint64_t t = uint64_t(blockIdx.x) * kTokensPerBlock + warp; t < p.tokens; t += stride) {
    route_token<kPer>(p, t, sh_sel[warp]);
    __syncwarp();  // the next token's group pass overwrites sh_sel
  }
}

}  // namespace sk

#define SK_ROUTE(PER)                                                               \
  extern "C" __global__ void __launch_bounds__(sk::kRouteThreads)                   \
      moe_route_e##PER(const __grid_constant__ sk::RouteParams p) {                 \
    sk::route<PER>(p);                                                              \
  }
// Suffix e<PER>: experts per lane, so up to 32 * PER experts. The logits' dtype (f32 or bf16) is a
// runtime flag: 5 instantiations instead of 10 halve route.cu's nvcc time.
SK_ROUTE(1)
SK_ROUTE(2)
SK_ROUTE(4)
SK_ROUTE(8)
SK_ROUTE(16)
