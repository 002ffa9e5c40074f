// Element types of the crate's kernels and their conversions to and from float.
//
// Kernels are templated on the storage type T (float, __half, __nv_bfloat16) and compute in fp32;
// `to_float` is exact for all three and `from_float` rounds to nearest, ties to even (the rounding
// of `cvt.rn`), so a value that went in comes back out bit-identical.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace sk {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// 16 bytes of T: the widest single load/store (`ld.global.v4.b32`).
template <typename T> struct alignas(16) Vec16 {
  static constexpr int kElems = 16 / sizeof(T);
  T v[kElems];
};

}  // namespace sk
