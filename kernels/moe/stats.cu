// stats: router statistics for the auxiliary losses and DeepSeek-style bias updates.
//   P_e   = mean over tokens of softmax(x_t)_e      f_e = count_e / (tokens * k)
//   aux   = E * sum_e f_e * P_e                      (Switch / GShard load-balancing loss)
//   z     = mean over tokens of logsumexp(x_t)^2    (ST-MoE router z-loss)
//   sign_e = sign(tokens * k / E - count_e)          (+1: under-loaded, raise its bias)
// Every sum runs in a fixed order (lanes by a fixed butterfly, warps and blocks by index), so the
// results are the same bits whatever the schedule; the one atomic is the integer histogram of ids.
//
// Work split: moe_stats_partial — one warp per token (as route), kStatsTokensPerBlock tokens per
// warp in token order; lane l holds experts l + 32 i in registers and accumulates its columns;
// the block's warps are summed in warp order into partial[block]. moe_stats_final — one block:
// thread e sums partial[*][e] in block order; counts by a shared histogram; losses by a fixed tree.
//
// moe_stats_bwd_<T>: one warp per token, p = softmax(x_t), lse = logsumexp(x_t):
//   d aux / d x_te = E / (T^2 k) * p_e (count_e - sum_f p_f count_f)   (counts held constant)
//   d z / d x_te   = 2 / T * lse * p_e
// FLOPs ~ 8 T E; fewest bytes T E (sizeof(T) + 4, or + 8 when accumulating) + 4E.
//
// Cost: FLOPs ~ 5 T E (exp, sum, scale, accumulate); fewest bytes T E sizeof(T) + 4 T k + 12 E + 8
// (+ the workspace, 8 (E + 1) per block of pass 1, written and read once).
#include "common/dtype.cuh"
#include "common/math.cuh"
#include "moe/params.cuh"

namespace sk {

constexpr int kStatsThreads = 256;
constexpr int kStatsWarps = kStatsThreads / 32;
constexpr int kStatsPer = 16;  // experts per lane: up to 512
constexpr int kStatsMaxExperts = 32 * kStatsPer;
constexpr unsigned kStatsFull = 0xffffffffu;

// One token's softmax over its E logits, by one warp (lane holds experts lane + 32 i): v[i] =
// exp(x - m) (0 past E), m = the row max, s = the row sum, both warp-uniform.
template <typename T>
__device__ __forceinline__ void warp_row_exp(const T* __restrict__ x, int E, int lane, float (&v)[kStatsPer], float& m,
                                             float& s) {
  m = -CUDART_INF_F;
#pragma unroll
  for (int i = 0; i < kStatsPer; ++i) {
    const int e = lane + 32 * i;
    v[i] = e < E ? to_float(x[e]) : -CUDART_INF_F;
    m = fmaxf(m, v[i]);
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(kStatsFull, m, off));
  s = 0.0f;
#pragma unroll
  for (int i = 0; i < kStatsPer; ++i) {
    v[i] = lane + 32 * i < E ? exp2f((v[i] - m) * kLog2e) : 0.0f;
    s += v[i];
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(kStatsFull, s, off);
}

template <typename T>
__device__ __forceinline__ void stats_partial(const StatsParams& p) {
  __shared__ float sh[kStatsWarps][kStatsMaxExperts + 1];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int E = int(p.experts);
  float acc[kStatsPer];
#pragma unroll
  for (int i = 0; i < kStatsPer; ++i) acc[i] = 0.0f;
  float z = 0.0f;
  // Block b owns tokens [b * per_block, (b + 1) * per_block); warp w takes every kStatsWarps-th.
  const uint64_t per_block = (p.tokens + p.blocks - 1) / p.blocks;
  const uint64_t first = uint64_t(blockIdx.x) * per_block;
  const uint64_t last = min(first + per_block, p.tokens);
  for (uint64_t t = first + warp; t < last; t += kStatsWarps) {
    const T* __restrict__ x = static_cast<const T*>(p.logits) + t * p.experts;
    float v[kStatsPer];
    float m, s;
    warp_row_exp(x, E, lane, v, m, s);
    const float inv = 1.0f / s;
#pragma unroll
    for (int i = 0; i < kStatsPer; ++i) acc[i] += v[i] * inv;
    const float lse = m + log2f(s) * kLn2;
    z = fmaf(lse, lse, z);
  }
#pragma unroll
  for (int i = 0; i < kStatsPer; ++i) {
    const int e = lane + 32 * i;
    if (e < E) sh[warp][e] = acc[i];
  }
  if (lane == 0) sh[warp][kStatsMaxExperts] = z;
  __syncthreads();
  float* __restrict__ out = p.partial + uint64_t(blockIdx.x) * (p.experts + 1);
  for (int e = threadIdx.x; e <= E; e += kStatsThreads) {
    const int col = e == E ? kStatsMaxExperts : e;
    float sum = 0.0f;
    for (int w = 0; w < kStatsWarps; ++w) sum += sh[w][col];
    out[e] = sum;
  }
}

__device__ __forceinline__ void stats_final(const StatsParams& p) {
  __shared__ int32_t cnt[kStatsMaxExperts];
  __shared__ float term[kStatsThreads];
  __shared__ float zsum;
  const int tid = threadIdx.x;
  const int E = int(p.experts);
  for (int e = tid; e < E; e += kStatsThreads) cnt[e] = 0;
  __syncthreads();
  const uint64_t entries = p.tokens * p.k;
  for (uint64_t i = tid; i < entries; i += kStatsThreads) {
    const int e = p.ids[i];
    if (e >= 0 && e < E) atomicAdd(&cnt[e], 1);  // integer counts: the order cannot matter
  }
  __syncthreads();
  // aux = E / (T^2 k) * sum_e Psum_e * count_e; each thread's experts in order, then a fixed tree.
  float mine = 0.0f;
  for (int e = tid; e < E; e += kStatsThreads) {
    float psum = 0.0f;
    for (uint32_t b = 0; b < p.blocks; ++b) psum += p.partial[uint64_t(b) * (p.experts + 1) + e];
    mine = fmaf(psum, float(cnt[e]), mine);
    p.counts[e] = cnt[e];
    const int64_t diff = int64_t(entries) - int64_t(cnt[e]) * E;  // (mean - count) * E, exact
    p.load_sign[e] = diff > 0 ? 1 : (diff < 0 ? -1 : 0);
  }
  term[tid] = mine;
  if (tid == 0) {
    float z = 0.0f;
    for (uint32_t b = 0; b < p.blocks; ++b) z += p.partial[uint64_t(b) * (p.experts + 1) + p.experts];
    zsum = z;
  }
  __syncthreads();
  for (int half = kStatsThreads / 2; half > 0; half /= 2) {
    if (tid < half) term[tid] += term[tid + half];
    __syncthreads();
  }
  if (tid == 0) {
    const float t = float(p.tokens);
    p.losses[0] = p.tokens == 0 ? 0.0f : term[0] * float(E) / (t * t * float(p.k));
    p.losses[1] = p.tokens == 0 ? 0.0f : zsum / t;
  }
}

template <typename T>
__device__ __forceinline__ void stats_bwd(const StatsBwdParams& p) {
  const int lane = threadIdx.x % 32;
  const int E = int(p.experts);
  const float tf = float(p.tokens);
  const float c_aux = p.g_aux * float(E) / (tf * tf * float(p.k));
  const float c_z = p.g_z * 2.0f / tf;
  const uint64_t stride = uint64_t(gridDim.x) * kStatsWarps;
  for (uint64_t t = uint64_t(blockIdx.x) * kStatsWarps + threadIdx.x / 32; t < p.tokens; t += stride) {
    const T* __restrict__ x = static_cast<const T*>(p.logits) + t * p.experts;
    float* __restrict__ dx = p.dlogits + t * p.experts;
    float v[kStatsPer];
    float m, s;
    warp_row_exp(x, E, lane, v, m, s);
    const float inv = 1.0f / s;
    const float lse = m + log2f(s) * kLn2;
    float pc = 0.0f;  // sum_f p_f count_f
#pragma unroll
    for (int i = 0; i < kStatsPer; ++i) {
      const int e = lane + 32 * i;
      v[i] *= inv;
      if (e < E) pc = fmaf(v[i], float(p.counts[e]), pc);
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) pc += __shfl_xor_sync(kStatsFull, pc, off);
#pragma unroll
    for (int i = 0; i < kStatsPer; ++i) {
      const int e = lane + 32 * i;
      if (e < E) {
        const float g = v[i] * (c_aux * (float(p.counts[e]) - pc) + c_z * lse);
        dx[e] = p.accumulate ? dx[e] + g : g;
      }
    }
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kStatsThreads)
    moe_stats_partial_f32(const __grid_constant__ sk::StatsParams p) {
  sk::stats_partial<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kStatsThreads)
    moe_stats_partial_bf16(const __grid_constant__ sk::StatsParams p) {
  sk::stats_partial<__nv_bfloat16>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kStatsThreads)
    moe_stats_final(const __grid_constant__ sk::StatsParams p) {
  sk::stats_final(p);
}
extern "C" __global__ void __launch_bounds__(sk::kStatsThreads)
    moe_stats_bwd_f32(const __grid_constant__ sk::StatsBwdParams p) {
  sk::stats_bwd<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kStatsThreads)
    moe_stats_bwd_bf16(const __grid_constant__ sk::StatsBwdParams p) {
  sk::stats_bwd<__nv_bfloat16>(p);
}
