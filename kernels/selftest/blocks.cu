// Self-tests of the kernels/common building blocks, run on the VM by src/selftest.rs: not part of
// any model's path. One CTA of 128 threads:
//   1. load_tile_async copies A [16 x 64] and B [16 x 64] into swizzled tiles, zero-filling rows of
//      B >= b_rows and columns >= cols without reading them;
//   2. warp 0 computes S = A[:, :cols] B^T (16 x 16) with ldmatrix_x4 + mma_m16n8k16, and
//      C = A[:, :16] B (16 x 64) with ldmatrix_x4_trans for B, and writes both (fp32);
//   3. warp 0 runs OnlineSoftmax over S's two 8-column halves as two tiles and writes each row's
//      final max and sum (quad_sum of the lanes' shares).
#include <stdint.h>
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/mma.cuh"
#include "common/softmax.cuh"

namespace sk {

struct BlocksTestParams {
  const void* a;  // [16, 64] T
  const void* b;  // [b_rows, 64] T, rows beyond b_rows are not read
  float* s;       // [16, 16]
  float* c;       // [16, 64]
  float* m;       // [16]
  float* l;       // [16]
  int32_t b_rows;
  int32_t cols;   // multiple of 8
  float scale_log2;
  uint32_t pad_;
};
static_assert(sizeof(BlocksTestParams) == 64, "BlocksTestParams layout");

template <typename T> __device__ void blocks_test(const BlocksTestParams& p) {
  using Tile = SwizzledTile<64>;
  __shared__ __align__(128) unsigned char tiles[2][16 * Tile::kRowBytes];
  const int tid = threadIdx.x, lane = tid % 32;
  const uint32_t sa = smem_addr(tiles[0]), sb = smem_addr(tiles[1]);
  load_tile_async<16, 64, 128>(sa, static_cast<const uint16_t*>(p.a), 64, 16, p.cols, tid);
  load_tile_async<16, 64, 128>(sb, static_cast<const uint16_t*>(p.b), 64, p.b_rows, p.cols, tid);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  if (tid >= 32) return;
  const int g = lane / 4, t = lane % 4;
  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_chunk = lane / 16;
  const int b_row = (lane % 8) + 8 * (lane / 16), b_chunk = (lane / 8) % 2;

  float s[2][4] = {};
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[4], b[4];
    ldmatrix_x4(a, sa + Tile::lane_offset(a_row, a_chunk, kk));
    ldmatrix_x4(b, sb + Tile::offset(b_row, 2 * kk + b_chunk));
    mma_m16n8k16<T>(s[0], a, b[0], b[1]);
    mma_m16n8k16<T>(s[1], a, b[2], b[3]);
  }
  float c[8][4] = {};
  uint32_t a0[4];
  ldmatrix_x4(a0, sa + Tile::offset(a_row, a_chunk));
  for (int dn = 0; dn < 4; ++dn) {
    uint32_t v[4];
    ldmatrix_x4_trans(v, sb + Tile::lane_offset(a_row, a_chunk, dn));
    mma_m16n8k16<T>(c[2 * dn], a0, v[0], v[1]);
    mma_m16n8k16<T>(c[2 * dn + 1], a0, v[2], v[3]);
  }
  for (int j = 0; j < 2; ++j) {
    p.s[g * 16 + 8 * j + 2 * t] = s[j][0];
    p.s[g * 16 + 8 * j + 2 * t + 1] = s[j][1];
    p.s[(g + 8) * 16 + 8 * j + 2 * t] = s[j][2];
    p.s[(g + 8) * 16 + 8 * j + 2 * t + 1] = s[j][3];
  }
  for (int j = 0; j < 8; ++j) {
    p.c[g * 64 + 8 * j + 2 * t] = c[j][0];
    p.c[g * 64 + 8 * j + 2 * t + 1] = c[j][1];
    p.c[(g + 8) * 64 + 8 * j + 2 * t] = c[j][2];
    p.c[(g + 8) * 64 + 8 * j + 2 * t + 1] = c[j][3];
  }
  OnlineSoftmax sm;
  sm.init();
  for (int j = 0; j < 2; ++j) {
    float tile[1][4] = {{s[j][0], s[j][1], s[j][2], s[j][3]}};
    float corr[2];
    sm.update<1>(tile, p.scale_log2, corr);
  }
  const float l0 = quad_sum(sm.l[0]), l1 = quad_sum(sm.l[1]);
  if (t == 0) {
    p.m[g] = sm.m[0];
    p.m[g + 8] = sm.m[1];
    p.l[g] = l0;
    p.l[g + 8] = l1;
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(128) selftest_blocks_bf16(const __grid_constant__ sk::BlocksTestParams p) {
  sk::blocks_test<__nv_bfloat16>(p);
}
extern "C" __global__ void __launch_bounds__(128) selftest_blocks_f16(const __grid_constant__ sk::BlocksTestParams p) {
  sk::blocks_test<__half>(p);
}
