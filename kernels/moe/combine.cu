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
//
// moe_combine_bwd_<T>: one warp per row of the permuted layout. dy[r] = w_i dout[t] and
// dweights_i = <dout[t], y[r]> (lane-strided fp32 sums, then a fixed butterfly: deterministic);
// 16-byte accesses of dout, y and dy when the row and the pointers allow (vec), else one element;
// padding rows zero, then entries without a row get dweights 0. The gather's backward is combine
// with unit weights. Per row: FLOPs 3h; fewest bytes 3 h s + 12. VM, DeepSeek-V3 1024 tokens bf16:
// unique bytes = the fewest; 17.3M warp instr, 1.88M load requests (scalar path: 40.2M, 3.72M).
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

constexpr int kBwdWarps = kCombineThreads / 32;

// One row of the backward; kVec elements per access (kVec = 1: the scalar path). Returns this
// lane's part of <dout[t], y[r]>: lane l sums chunks l, l + 32, ... in order, each chunk's kVec
// products in element order.
template <typename T, int kVec>
__device__ __forceinline__ float combine_bwd_row(const CombineBwdParams& p, const T* __restrict__ g,
                                                 const T* __restrict__ y, T* __restrict__ dy, float w, int lane) {
  using V = Vec16<T>;
  const uint32_t n = p.hidden / kVec;
  float acc = 0.0f;
  for (uint32_t c = lane; c < n; c += 32) {
    if constexpr (kVec == 1) {
      const float gc = to_float(g[c]);
      dy[c] = from_float<T>(w * gc);
      acc = fmaf(gc, to_float(y[c]), acc);
    } else {
      const V gv = reinterpret_cast<const V*>(g)[c];
      const V yv = reinterpret_cast<const V*>(y)[c];
      V dv;
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        const float gc = to_float(gv.v[i]);
        dv.v[i] = from_float<T>(w * gc);
        acc = fmaf(gc, to_float(yv.v[i]), acc);
      }
      reinterpret_cast<V*>(dy)[c] = dv;
    }
  }
  return acc;
}

template <typename T, int kVec>
__device__ __forceinline__ void combine_bwd_zero(const CombineBwdParams& p, T* __restrict__ dy, int lane) {
  using V = Vec16<T>;
  const uint32_t n = p.hidden / kVec;
  for (uint32_t c = lane; c < n; c += 32) {
    if constexpr (kVec == 1) {
      dy[c] = from_float<T>(0.0f);
    } else {
      V z;
#pragma unroll
      for (int i = 0; i < kVec; ++i) z.v[i] = from_float<T>(0.0f);
      reinterpret_cast<V*>(dy)[c] = z;
    }
  }
}

template <typename T>
__device__ __forceinline__ void combine_bwd(const CombineBwdParams& p) {
  constexpr int kWide = Vec16<T>::kElems;
  const int lane = threadIdx.x % 32;
  const uint32_t total = uint32_t(p.offsets[p.experts]);
  const uint64_t stride = uint64_t(gridDim.x) * kBwdWarps;
  for (uint64_t r = uint64_t(blockIdx.x) * kBwdWarps + threadIdx.x / 32; r < total; r += stride) {
    const int32_t entry = p.sorted_ids[r];
    T* __restrict__ dy = static_cast<T*>(p.dy) + r * p.hidden;
    if (entry < 0 || uint32_t(entry) >= p.entries) {
      if (p.vec == 1) {
        combine_bwd_zero<T, 1>(p, dy, lane);
      } else {
        combine_bwd_zero<T, kWide>(p, dy, lane);
      }
      continue;
    }
    const uint64_t t = uint32_t(entry) / p.k;
    const float w = p.weights[entry];
    const T* __restrict__ g = static_cast<const T*>(p.dout) + t * p.hidden;
    const T* __restrict__ y = static_cast<const T*>(p.y) + r * p.hidden;
    float acc = p.vec == 1 ? combine_bwd_row<T, 1>(p, g, y, dy, w, lane) : combine_bwd_row<T, kWide>(p, g, y, dy, w, lane);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) p.dweights[entry] = acc;
  }
  const uint64_t threads = uint64_t(gridDim.x) * blockDim.x;
  for (uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.entries; i += threads) {
    if (p.inverse[i] < 0) p.dweights[i] = 0.0f;
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
extern "C" __global__ void __launch_bounds__(sk::kCombineThreads)
    moe_combine_bwd_f32(const __grid_constant__ sk::CombineBwdParams p) {
  sk::combine_bwd<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kCombineThreads)
    moe_combine_bwd_f16(const __grid_constant__ sk::CombineBwdParams p) {
  sk::combine_bwd<__half>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kCombineThreads)
    moe_combine_bwd_bf16(const __grid_constant__ sk::CombineBwdParams p) {
  sk::combine_bwd<__nv_bfloat16>(p);
}
