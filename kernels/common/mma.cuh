// Tensor-core building blocks for sm_80+: mma.sync m16n8k16 with fp32 accumulation, ldmatrix, and the
// packing of fp32 pairs into the 16-bit A operand.
//
// Fragment layouts (PTX ISA 9.7.14.5.8, m16n8k16 with .f16/.bf16 inputs), with g = lane / 4 and
// t = lane % 4:
//   A (16x16, row-major)   a[0] = (g,   2t..2t+1)  a[1] = (g+8, 2t..2t+1)
//                          a[2] = (g,   2t+8..+9)  a[3] = (g+8, 2t+8..+9)
//   B (16x8,  "col")       b[0] = (k 2t..2t+1, n g)            b[1] = (k 2t+8..+9, n g)
//   C/D (16x8, fp32)       c[0], c[1] = (g, 2t), (g, 2t+1)     c[2], c[3] = (g+8, 2t), (g+8, 2t+1)
// So the rows of an accumulator are held by the four lanes of a quad (lanes 4g..4g+3), and two
// adjacent n8 accumulator tiles, packed to 16 bits, are exactly the A fragment of the next mma
// over k16: attention keeps P in registers that way.
#pragma once
#include <stdint.h>
#include <utility>
#include "common/dtype.cuh"

namespace sk {

// D = A B + C in place on c, for T = __nv_bfloat16 or __half (PTX ISA 9.7.14.5.14).
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                            uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                     uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D = A B (no accumulator input): starts a sum without first zeroing four registers. The zero C
// operand is one register repeated.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16_zero_c(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma_m16n8k16_zero_c<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                                   uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f));
}

template <>
__device__ __forceinline__ void mma_m16n8k16_zero_c<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                            uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f));
}

// Two fp32 values rounded to nearest-even into one 16-bit pair, `lo` in the low half (the element
// with the smaller column index in a fragment).
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 matrices of 16-bit elements: lanes 8i..8i+7 give the shared addresses of matrix i's
// rows (16 contiguous bytes each); r[i] receives matrix i with lane l holding row l / 4, columns
// 2(l % 4) and 2(l % 4) + 1 (PTX ISA 9.7.14.5.15). `volatile`: it reads what cp.async and other
// warps wrote before a barrier, so it must not move across one.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// The same, transposed: lane l holds column l / 4, rows 2(l % 4) and 2(l % 4) + 1 of each matrix.
// Reading a row-major [keys][d] tile this way gives the B operand of P V.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// The same with a compile-time byte offset folded into the instruction's address ([base+kOff]), so
// a fragment walk costs no address arithmetic per ldmatrix.
template <int kOff> __device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t base) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4+%5];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(base), "n"(kOff));
}
template <int kOff> __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t base) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4+%5];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(base), "n"(kOff));
}

// Calls f(std::integral_constant<int, i>) for i = 0..N-1: an unrolled loop whose index is a
// compile-time constant (for immediate offsets and register-array indices).
template <typename F, int... I>
__device__ __forceinline__ void static_for_impl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, typename F> __device__ __forceinline__ void static_for(F&& f) {
  static_for_impl(f, std::make_integer_sequence<int, N>{});
}

}  // namespace sk
