// Asynchronous global -> shared copies (sm_80 cp.async, PTX ISA 9.7.9.25.3) and a swizzled tile
// layout that keeps both the 16-byte copies and ldmatrix free of shared-memory bank conflicts.
#pragma once
#include <stdint.h>
#include "common/mma.cuh"

namespace sk {

// Copies `src_bytes` (0 or 16) bytes from global `src` to shared `dst` and zero-fills the rest of
// the 16 bytes. With src_bytes = 0 nothing is read, yet the destination is still written, so rows
// and columns past a tensor's end become zeros instead of uninitialised memory. `src` must be a
// valid global address either way; .cg bypasses L1 (the data is used once per CTA, from shared).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

// A whole 16-byte copy to `dst + kOff`: the immediate offset and the implicit source size keep the
// unrolled copies of an interior tile free of per-copy address and size arithmetic.
template <int kOff> __device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0+%2], [%1], 16;" ::"r"(dst), "l"(src), "n"(kOff) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// A row-major tile of 16-bit elements, `kCols` per row, stored as 16-byte chunks with chunk c of
// row r at position c ^ (r % 8) within the row. Rows are a multiple of 128 bytes, so the eight rows
// an ldmatrix (or eight consecutive 16-byte copies of one row group) touch land in eight distinct
// 16-byte bank groups: every access is one wavefront per 128 bytes.
template <int kCols> struct SwizzledTile {
  static constexpr int kChunks = kCols / 8;  // 16-byte chunks per row
  static_assert(kCols % 64 == 0, "rows must span a multiple of 128 bytes for the XOR swizzle");
  static constexpr int kRowBytes = kCols * 2;

  // Byte offset of chunk `chunk` (8 elements) of row `row`.
  __device__ static __forceinline__ uint32_t offset(int row, int chunk) {
    return uint32_t(row * kChunks + (chunk ^ (row & 7))) * 16u;
  }

  // Fragment walks (ldmatrix over 16-column steps kk) address row `R + row` (R a multiple of 8),
  // chunk 2 kk + `chunk0` (chunk0 in {0, 1}). The swizzle only touches the low three chunk bits, so
  // that address is lane_offset(row, chunk0, kk % 4) + R * kRowBytes + (kk / 4) * 128: four
  // per-lane values computed once, and every other term a compile-time immediate.
  __device__ static __forceinline__ uint32_t lane_offset(int row, int chunk0, int kk4) {
    return uint32_t(row * kRowBytes + (((2 * kk4 + chunk0) ^ (row & 7)) * 16));
  }
  // lane_offset(row, chunk0, kk4) == lane_offset(row, chunk0, 0) ^ step_xor(kk4): the chunk index
  // 2 kk4 + chunk0 only differs in bits 1-2, which the XOR swizzle passes through, and row *
  // kRowBytes has no bits below 128. So with a 128-byte aligned tile base one per-lane register and
  // one XOR per step replace four registers held across a loop.
  __host__ __device__ static constexpr uint32_t step_xor(int kk) { return uint32_t(kk % 4) * 32u; }
  // The immediate part of a fragment walk's address (see lane_offset).
  __host__ __device__ static constexpr uint32_t step_offset(int R, int kk) {
    return uint32_t(R * kRowBytes + (kk / 4) * 128);
  }
};

// Loads a [kRows x kCols] tile whose row r starts at `src + r * row_stride` (elements) into the
// swizzled tile at shared address `dst`, with all `kThreads` threads of the block taking 16-byte
// chunks in turn. Rows >= `rows` and columns >= `cols` (a multiple of 8) are zero-filled without
// reading. Consecutive threads take consecutive chunks of a row (coalesced global reads); a thread
// keeps its chunk column on every pass, so its addresses advance by constants.
template <int kRows, int kCols, int kThreads>
__device__ __forceinline__ void load_tile_async(uint32_t dst, const uint16_t* __restrict__ src, int64_t row_stride,
                                                int rows, int cols, int tid) {
  using Tile = SwizzledTile<kCols>;
  static_assert(kThreads % Tile::kChunks == 0, "a thread keeps one chunk column");
  constexpr int kRowsPerPass = kThreads / Tile::kChunks;
  static_assert(kRows % kRowsPerPass == 0, "every thread copies the same number of chunks");
  const int r0 = tid / Tile::kChunks, c = tid % Tile::kChunks;
  const uint16_t* p = src + r0 * row_stride + c * 8;
  const int64_t pass_stride = kRowsPerPass * row_stride;
  // The empty asm makes each pass's address the previous one plus the stride: without it the
  // compiler hoists every pass's 64-bit offset out of the caller's loop and holds them all in
  // registers, which the attention main loop cannot spare.
  if (rows >= kRows && cols == kCols) {  // interior tile: no test per chunk
    if constexpr (kRowsPerPass % 8 == 0) {
      // Pass i lands kRowsPerPass rows further with the same swizzled chunk (a multiple of 8 rows
      // keeps row % 8): an immediate offset from the first pass's address.
      const uint32_t d0 = dst + Tile::offset(r0, c);
      static_for<kRows / kRowsPerPass>([&](auto i_) {
        constexpr int i = decltype(i_)::value;
        cp_async_16<i * kRowsPerPass * Tile::kRowBytes>(d0, p);
        p += pass_stride;
        asm volatile("" : "+l"(p));
      });
    } else {
#pragma unroll
      for (int i = 0; i < kRows / kRowsPerPass; ++i) {
        cp_async_16(dst + Tile::offset(r0 + i * kRowsPerPass, c), p, 16u);
        p += pass_stride;
        asm volatile("" : "+l"(p));
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < kRows / kRowsPerPass; ++i) {
      const bool valid = r0 + i * kRowsPerPass < rows && c * 8 < cols;
      cp_async_16(dst + Tile::offset(r0 + i * kRowsPerPass, c), valid ? p : src, valid ? 16u : 0u);
      p += pass_stride;
      asm volatile("" : "+l"(p));
    }
  }
}

// As load_tile_async, but row r starts at row_ptr(r) (elements): a gather of rows that are not one
// stride apart, such as the query heads of a GQA group packed into one tile. Used once per CTA.
template <int kRows, int kCols, int kThreads, typename RowPtr>
__device__ __forceinline__ void load_rows_async(uint32_t dst, RowPtr row_ptr, int rows, int cols, int tid) {
  using Tile = SwizzledTile<kCols>;
  static_assert(kThreads % Tile::kChunks == 0, "a thread keeps one chunk column");
  constexpr int kRowsPerPass = kThreads / Tile::kChunks;
  static_assert(kRows % kRowsPerPass == 0, "every thread copies the same number of chunks");
  const int r0 = tid / Tile::kChunks, c = tid % Tile::kChunks;
#pragma unroll
  for (int i = 0; i < kRows / kRowsPerPass; ++i) {
    const int r = r0 + i * kRowsPerPass;
    const bool valid = r < rows && c * 8 < cols;
    const uint16_t* src = valid ? row_ptr(r) + c * 8 : row_ptr(0);
    cp_async_16(dst + Tile::offset(r, c), src, valid ? 16u : 0u);
  }
}

}  // namespace sk
