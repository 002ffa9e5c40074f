// route backward: d loss / d logits from d loss / d weights, for the forward of route.cu with
// the same ids. With s the scores and S = sum_j s_{id_j}:
//   w_j = scale * s_{id_j} / S (renormalize) or scale * s_{id_j}
//   ds_{id_j} = scale * (dw_j - sum_l dw_l s_{id_l} / S) / S   or   scale * dw_j; other ds_e = 0
//   softmax: dx_e = s_e (ds_e - sum_f ds_f s_f);   sigmoid: dx_e = ds_e s_e (1 - s_e)
// The selection (and so the bias) has no gradient, as in every framework's top-k.
//
// Work split: as the forward, one warp per token; lane l holds experts l + 32 i (i < 16, so one
// instantiation covers 512 experts), lane j < k holds slot j. Sums are fixed butterflies.
// Cost per token: FLOPs ~ 8E; fewest bytes E (sizeof(T) + 4) + 8k + 4.
#include "common/dtype.cuh"
#include "common/math.cuh"
#include "moe/params.cuh"

namespace sk {

constexpr int kBwdThreads = 128;
constexpr int kBwdTokensPerBlock = kBwdThreads / 32;
constexpr int kBwdPer = 16;
constexpr unsigned kBwdFull = 0xffffffffu;

__device__ __forceinline__ float bwd_warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(kBwdFull, v, off);
  return v;
}

template <typename T>
__device__ __forceinline__ void route_bwd_token(const RouteBwdParams& p, uint64_t t) {
  const int lane = threadIdx.x % 32;
  const int E = int(p.experts);
  float* __restrict__ dx = p.dlogits + t * p.experts;
  if (p.status[t] != 0) {
    for (int e = lane; e < E; e += 32) dx[e] = 0.0f;
    return;
  }
  const T* __restrict__ x = static_cast<const T*>(p.logits) + t * p.experts;
  float s[kBwdPer];
  float m = -CUDART_INF_F;
#pragma unroll
  for (int i = 0; i < kBwdPer; ++i) {
    const int e = lane + 32 * i;
    s[i] = e < E ? to_float(x[e]) : -CUDART_INF_F;
    m = fmaxf(m, s[i]);
  }
  if (!p.sigmoid) {
#pragma unroll
    for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(kBwdFull, m, off));
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kBwdPer; ++i) {
      s[i] = lane + 32 * i < E ? exp2f((s[i] - m) * kLog2e) : 0.0f;
      sum += s[i];
    }
    const float inv = 1.0f / bwd_warp_sum(sum);
#pragma unroll
    for (int i = 0; i < kBwdPer; ++i) s[i] *= inv;
  } else {
#pragma unroll
    for (int i = 0; i < kBwdPer; ++i) s[i] = lane + 32 * i < E ? 1.0f / (1.0f + exp2f(-s[i] * kLog2e)) : 0.0f;
  }

  // Slot j on lane j: its expert, its upstream gradient, its score (fetched from the owner lane).
  const int id = lane < int(p.k) ? p.ids[t * p.k + lane] : -1;
  const float dw = lane < int(p.k) ? p.dweights[t * p.k + lane] : 0.0f;
  float sj = 0.0f;
  for (int j = 0; j < int(p.k); ++j) {
    const int e = __shfl_sync(kBwdFull, id, j);
    float mine = 0.0f;
#pragma unroll
    for (int i = 0; i < kBwdPer; ++i) {
      if (lane + 32 * i == e) mine = s[i];
    }
    const float v = __shfl_sync(kBwdFull, mine, e % 32);
    if (lane == j) sj = v;
  }
  float g = p.scale * dw;
  if (p.renormalize) {
    const float S = bwd_warp_sum(sj);
    const float dot = bwd_warp_sum(dw * sj);
    g = p.scale * (dw - dot / S) / S;
  }
  float ds[kBwdPer];
#pragma unroll
  for (int i = 0; i < kBwdPer; ++i) ds[i] = 0.0f;
  for (int j = 0; j < int(p.k); ++j) {
    const int e = __shfl_sync(kBwdFull, id, j);
    const float gj = __shfl_sync(kBwdFull, g, j);
#pragma unroll
    for (int i = 0; i < kBwdPer; ++i) {
      if (lane + 32 * i == e) ds[i] = gj;
    }
  }
  float dot = 0.0f;
  if (!p.sigmoid) {
#pragma unroll
    for (int i = 0; i < kBwdPer; ++i) dot = fmaf(ds[i], s[i], dot);
    dot = bwd_warp_sum(dot);
  }
#pragma unroll
  for (int i = 0; i < kBwdPer; ++i) {
    const int e = lane + 32 * i;
    if (e < E) dx[e] = p.sigmoid ? ds[i] * s[i] * (1.0f - s[i]) : s[i] * (ds[i] - dot);
  }
}

template <typename T>
__device__ __forceinline__ void route_bwd(const RouteBwdParams& p) {
  const uint64_t stride = uint64_t(gridDim.x) * kBwdTokensPerBlock;
  for (uint64_t t = uint64_t(blockIdx.x) * kBwdTokensPerBlock + threadIdx.x / 32; t < p.tokens; t += stride) {
    route_bwd_token<T>(p, t);
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kBwdThreads)
    moe_route_bwd_f32(const __grid_constant__ sk::RouteBwdParams p) {
  sk::route_bwd<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kBwdThreads)
    moe_route_bwd_bf16(const __grid_constant__ sk::RouteBwdParams p) {
  sk::route_bwd<__nv_bfloat16>(p);
}
