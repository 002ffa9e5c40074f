// Asynchronous global -> shared copies (sm_80 cp.async, PTX ISA 9.7.9.25.3) and a swizzled tile
// layout that keeps both the 16-byte copies and ldmatrix free of shared-memory bank conflicts.
#pragma once
#include <stdint.h>

namespace sk {

// Copies `src_bytes` (0 or 16) bytes from global `src` to shared `dst` and zero-fills the rest of
// the 16 bytes. With src_bytes = 0 nothing is read, yet the destination is still written, so rows
// and columns past a tensor's end become zeros instead of uninitialised memory. `src` must be a
// valid global address either way; .cg bypasses L1 (the data is used once per CTA, from shared).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
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
};

// Loads a [kRows x kCols] tile whose row r starts at `src + r * row_stride` (elements) into the
// swizzled tile at shared address `dst`, with all `kThreads` threads of the block taking 16-byte
// chunks in turn. Rows >= `rows` and columns >= `cols` (a multiple of 8) are zero-filled without
// reading. Consecutive threads take consecutive chunks of a row: coalesced global reads.
template <int kRows, int kCols, int kThreads>
__device__ __forceinline__ void load_tile_async(uint32_t dst, const uint16_t* __restrict__ src, int64_t row_stride,
                                                int rows, int cols, int tid) {
  using Tile = SwizzledTile<kCols>;
  static_assert((kRows * Tile::kChunks) % kThreads == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int i = 0; i < kRows * Tile::kChunks / kThreads; ++i) {
    const int idx = i * kThreads + tid;
    const int r = idx / Tile::kChunks;
    const int c = idx % Tile::kChunks;
    const bool valid = r < rows && c * 8 < cols;
    const uint16_t* p = valid ? src + r * row_stride + c * 8 : src;
    cp_async_16(dst + Tile::offset(r, c), p, valid ? 16u : 0u);
  }
}

}  // namespace sk
