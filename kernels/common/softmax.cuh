// Warp reductions over an mma accumulator row and the online-softmax state of FlashAttention-2.
#pragma once
#include <math_constants.h>
#include <stdint.h>

namespace sk {

// The four lanes of a quad (lanes 4g..4g+3) hold one accumulator row between them (common/mma.cuh):
// butterfly over lane bits 0 and 1 gives every lane of the quad the row's reduction.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// 2^x on the special-function unit (ex2.approx.ftz: relative error ~2^-22, subnormal results flush
// to zero, exp2(-inf) = 0), PTX ISA 9.7.4.9.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Softmax over keys seen in tiles, for the two accumulator rows a lane holds (g and g + 8).
// Scores s arrive in "score units"; their log2-domain value is s * scale_log2, so one FMA per
// element, exp2(s * scale_log2 - m * scale_log2), does the scale, the max shift and the base change.
// A masked score is -inf; while a row has seen only masked keys its max stays -inf and the shift is
// taken as 0, so exp2(-inf) = 0 and no NaN appears.
struct OnlineSoftmax {
  float m[2];  // running max of the row's scores, in score units
  float l[2];  // this lane's share of sum(exp2(...)) relative to the running max

  __device__ __forceinline__ void init() {
    m[0] = m[1] = -CUDART_INF_F;
    l[0] = l[1] = 0.0f;
  }

  // Replaces the scores of one tile (kTiles accumulator tiles of n8) by their unnormalised
  // probabilities and returns in `corr` the factor that rescales earlier sums and outputs.
  template <int kTiles>
  __device__ __forceinline__ void update(float (&s)[kTiles][4], float scale_log2, float (&corr)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = m[r];
#pragma unroll
      for (int j = 0; j < kTiles; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
      mx = quad_max(mx);
      const float shift = mx == -CUDART_INF_F ? 0.0f : mx * scale_log2;
      corr[r] = fast_exp2(m[r] * scale_log2 - shift);
      m[r] = mx;
      float sum = 0.0f;  // starts from the first probability: no 0 + p add per row
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = fast_exp2(fmaf(s[j][2 * r + e], scale_log2, -shift));
          s[j][2 * r + e] = p;
          sum = (j == 0 && e == 0) ? p : sum + p;
        }
      }
      l[r] = fmaf(l[r], corr[r], sum);
    }
  }
};

}  // namespace sk
