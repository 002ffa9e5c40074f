// combine: out[t] = sum_j weights[t, j] * y[inverse[t, j]], the expert outputs weighted back into
// token order. The sum runs over j in order with one fp32 fma per term, so each element's bits are
// fixed by the inputs alone (no atomics, no split across threads). A slot with inverse -1 (dropped
// by capacity, unrouted) contributes nothing; a position outside 0..rows is counted in the token's
// status and contributes nothing (never read out of bounds).
//
// Work split: one block per token (grid-stride over tokens), its threads striding over the row's
// chunks of `vec` elements (no 64-bit division per chunk). Each thread reads the token's k positions
// and weights (L1-shared by the block), k chunks of y, and writes its chunks of out; the thread of
// chunk 0 writes the status.
// With 16-bit T and vec = 8 every y and out access is 16 bytes.
//
// Cost per token (hidden h, T of s bytes): FLOPs 2 k h; fewest bytes k h s (y) + h s (out) + 8k + 4.
#include "common/dtype.cuh"
#include "moe/params.cuh"

namespace sk {

constexpr int kCombineThreads = 256;

// One chunk of kVec elements of token t at column col (kVec = 1: the scalar path for rows that are
// not whole 16-byte vectors).
template <typename T, int kVec>
__device__ __forceinline__ void combine_chunk(const CombineParams& p, uint64_t t, uint64_t col) {
  using V = Vec16<T>;
  float acc[kVec];
#pragma unroll
  for (int i = 0; i < kVec; ++i) acc[i] = 0.0f;
  int32_t bad = 0;
  // Not unrolled: ptxas 13.0 unrolls it for f32 and then spills 8 bytes (scripts/resource-report).
#pragma unroll 1
  for (uint32_t j = 0; j < p.k; ++j) {
    const int32_t pos = p.inverse[t * p.k + j];
    if (pos == -1) continue;
    if (pos < 0 || uint32_t(pos) >= p.rows) {
      ++bad;
      continue;
    }
    const float w = p.weights[t * p.k + j];
    const T* __restrict__ y = static_cast<const T*>(p.y) + uint64_t(pos) * p.hidden + col;
    if constexpr (kVec == 1) {
      acc[0] = fmaf(w, to_float(*y), acc[0]);
    } else {
      const V v = *reinterpret_cast<const V*>(y);
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] = fmaf(w, to_float(v.v[i]), acc[i]);
    }
  }
  T* __restrict__ o = static_cast<T*>(p.out) + t * p.hidden + col;
  if constexpr (kVec == 1) {
    *o = from_float<T>(acc[0]);
  } else {
    V v;
#pragma unroll
    for (int i = 0; i < kVec; ++i) v.v[i] = from_float<T>(acc[i]);
    *reinterpret_cast<V*>(o) = v;
  }
  if (col == 0) p.status[t] = bad;
}

template <typename T>
__device__ __forceinline__ void combine(const CombineParams& p) {
  const uint32_t chunks_per_row = p.hidden / p.vec;
  for (uint64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    for (uint32_t c = threadIdx.x; c < chunks_per_row; c += blockDim.x) {
      if (p.vec == 1) {
        combine_chunk<T, 1>(p, t, c);
      } else {
        combine_chunk<T, Vec16<T>::kElems>(p, t, uint64_t(c) * p.vec);
      }
    }
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kCombineThreads)
    moe_combine_f32(const __grid_constant__ sk::CombineParams p) {
  sk::combine<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kCombineThreads)
    moe_combine_f16(const __grid_constant__ sk::CombineParams p) {
  sk::combine<__half>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kCombineThreads)
    moe_combine_bf16(const __grid_constant__ sk::CombineParams p) {
  sk::combine<__nv_bfloat16>(p);
}
