// Per-row helpers of the sampling family: one CTA of kRowThreads owns a row and walks it with a
// thread stride, so every reduction below has a fixed shape and order whatever the batch is. That
// fixed order is what makes a row's results identical in any batch slot and batch size, and what
// lets log_softmax_gather reproduce the sampler's raw logprob bit for bit (both call row_max_sum
// the same way).
#pragma once
#include <stdint.h>

#include "common/dtype.cuh"
#include "common/math.cuh"

namespace sk {

constexpr int kRowThreads = 256;
constexpr int kRowWarps = kRowThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Online (max, sum of exp(x - max)). Every operation is an explicit _rn intrinsic so the compiler
// cannot contract it differently in different kernels.
struct MaxSum {
  float m;  // -inf while empty
  float s;  // 0 while empty
};

__device__ __forceinline__ float exp_rn(float d) { return exp2f(__fmul_rn(d, kLog2e)); }

__device__ __forceinline__ void max_sum_add(MaxSum& a, float x) {
  if (x > a.m) {
    a.s = __fadd_rn(a.m == -CUDART_INF_F ? 0.0f : __fmul_rn(a.s, exp_rn(__fsub_rn(a.m, x))), 1.0f);
    a.m = x;
  } else {
    a.s = __fadd_rn(a.s, exp_rn(__fsub_rn(x, a.m)));
  }
}

__device__ __forceinline__ MaxSum max_sum_merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -CUDART_INF_F) return a;
  const float sa = a.m == -CUDART_INF_F ? 0.0f : __fmul_rn(a.s, exp_rn(__fsub_rn(a.m, m)));
  const float sb = b.m == -CUDART_INF_F ? 0.0f : __fmul_rn(b.s, exp_rn(__fsub_rn(b.m, m)));
  return MaxSum{m, __fadd_rn(sa, sb)};  // commutative, so both butterfly partners agree bit for bit
}

// Block-wide merge in a fixed tree: xor butterfly in each warp, then warp 0 over the warp results.
__device__ __forceinline__ MaxSum block_max_sum(MaxSum v, MaxSum* scratch /* [kRowWarps] */) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum w{__shfl_xor_sync(kFullMask, v.m, o), __shfl_xor_sync(kFullMask, v.s, o)};
    v = max_sum_merge(v, w);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  MaxSum r = scratch[0];
  for (int w = 1; w < kRowWarps; ++w) r = max_sum_merge(r, scratch[w]);
  __syncthreads();
  return r;
}

// Block sum of integers (order-free, so exact and deterministic).
__device__ __forceinline__ uint64_t block_sum_u64(uint64_t v, uint64_t* scratch /* [kRowWarps] */) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  uint64_t r = 0;
  for (int w = 0; w < kRowWarps; ++w) r += scratch[w];
  __syncthreads();
  return r;
}

// Inclusive block scan of integers in thread order; `total` gets the block's sum.
__device__ __forceinline__ uint64_t block_scan_u64(uint64_t v, uint64_t* scratch /* [kRowWarps] */,
                                                   uint64_t& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t t = __shfl_up_sync(kFullMask, v, o);
    if (lane >= o) v += t;
  }
  if (lane == 31) scratch[warp] = v;
  __syncthreads();
  uint64_t before = 0;
  total = 0;
  for (int w = 0; w < kRowWarps; ++w) {
    if (w < warp) before += scratch[w];
    total += scratch[w];
  }
  __syncthreads();
  return v + before;
}

// Raw-logit (max, sum) of a row with the thread-strided walk both kernels share; also flags NaN
// and +inf (which take no part in the sums) in `bad`.
template <typename T>
__device__ __forceinline__ MaxSum row_max_sum_raw(const T* __restrict__ row, uint32_t vocab, bool& bad) {
  MaxSum a{-CUDART_INF_F, 0.0f};
  for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) {
    const float x = to_float(row[i]);
    if (isnan(x) || x == CUDART_INF_F) {
      bad = true;
    } else if (x != -CUDART_INF_F) {
      max_sum_add(a, x);
    }
  }
  return a;
}

// log softmax(x)[i] from the row's (max, sum): the one formula the sampler and the trainer share.
__device__ __forceinline__ float logprob_from(float x, MaxSum st) {
  return __fsub_rn(__fsub_rn(x, st.m), logf(st.s));
}

// A u32 whose unsigned order is the float order (-0 and +0 share one key, NaN never occurs here).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = f == 0.0f ? 0u : __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

}  // namespace sk
