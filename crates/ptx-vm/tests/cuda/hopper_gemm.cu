// nvcc-arch: compute_90a
// A Hopper (sm_90a) GEMM written from the PTX ISA and the CUDA programming guide for the VM's
// tests (tests/hopper_gemm.rs): C[M,N] (f32) = A[M,K] (bf16, row-major) x B[N,K]^T (bf16, row-major).
//
// One block computes a BM x BN tile of C with three warpgroups (384 threads):
// - warpgroup 0 is the producer: it gives registers back (setmaxnreg.dec) and one elected thread
//   of its first warp loads, for each BK slice of K, the A box (BM x BK) and the B box (BN x BK)
//   with cp.async.bulk.tensor (2d tile, 128-byte swizzle) into a STAGES-deep shared ring. Slot s is
//   guarded by two mbarriers: full[s] (one arrival with expect-tx of the two boxes' bytes, completed
//   by the copies) and empty[s] (one arrival per consumer warp, from its first lane once the warp's
//   wgmma.wait_group has returned: each warp's reads of the slot happen before its own arrival, so
//   the copy that refills the slot after the producer's wait cannot race with any of them);
// - warpgroups 1 and 2 are the consumers (setmaxnreg.inc): warpgroup 1 + w owns rows 64 w .. 64 w + 63
//   of the tile and issues, per slice, BK / 16 wgmma.mma_async m64n64k16 from K-major 128-byte-swizzle
//   descriptors into 32 f32 accumulators per thread, then writes C with bounds checks.
//
// Boxes hanging over the M, N and K edges are zero-filled by the copies, so the partial K slice adds
// nothing and the rows and columns past M and N are computed but not stored. The tensor maps come as
// __grid_constant__ parameters (the VM's encoding on the VM, the driver's on a GPU).
#include <cuda.h>
#include <stdint.h>

namespace {

constexpr int BM = 128;
constexpr int BN = 64;
constexpr int BK = 64;  // 64 bf16 = 128 bytes: one row of the 128-byte swizzle atom
constexpr int STAGES = 3;
// Consumer threads per arrival on an empty barrier: one per warp. hopper_gemm_race.cu builds the
// kernel with one per warpgroup (128), which leaves three warps' reads of a slot unordered with
// its refill: the planted race of tests/hopper_gemm.rs.
#ifndef RELEASE_THREADS
#define RELEASE_THREADS 32
#endif
constexpr uint32_t EMPTY_ARRIVALS = 256 / RELEASE_THREADS;
constexpr int A_BYTES = BM * BK * 2;
constexpr int B_BYTES = BN * BK * 2;
constexpr int STAGE_BYTES = A_BYTES + B_BYTES;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void bar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void bar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void bar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

// Spins until the phase of parity `parity` of the barrier has completed.
__device__ __forceinline__ void bar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  }
}

__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

// 1 for one lane of the (fully active) warp, 0 for the others.
__device__ __forceinline__ uint32_t elect_one() {
  uint32_t pred = 0;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "elect.sync _|p, 0xffffffff;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(pred));
  return pred;
}

// Matrix descriptor of a K-major operand in 128-byte-swizzled shared memory (PTX ISA 9.7.15.5.1):
// start address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29 (unused for a swizzled K-major
// operand: 1), stride byte offset >> 4 in 32-45 (1024: eight 128-byte rows per swizzle atom), base
// offset 0 (the atoms are 1024-byte aligned), swizzle mode 1 (128 bytes) in bits 62-63.
__device__ __forceinline__ uint64_t desc_k128(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3ffff) >> 4) | (1ull << 16) | (static_cast<uint64_t>(1024 >> 4) << 32) |
         (1ull << 62);
}

__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[32], uint64_t da, uint64_t db) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "%32, %33, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db)
      : "memory");
}

}  // namespace

// Launch: grid (ceil(N / 64), ceil(M / 128)), 384 threads, dynamic shared memory
// STAGES x 24576 + 1024 bytes (the ring is aligned to 1024 inside it).
extern "C" __global__ void __launch_bounds__(384, 1)
    hopper_gemm_bf16(const __grid_constant__ CUtensorMap tma_a, const __grid_constant__ CUtensorMap tma_b, float* c,
                     int m, int n, int k) {
  extern __shared__ __align__(1024) unsigned char dyn[];
  __shared__ __align__(8) uint64_t full[STAGES];
  __shared__ __align__(8) uint64_t empty[STAGES];
  const uint32_t ring = (smem_addr(dyn) + 1023u) & ~1023u;
  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int row0 = blockIdx.y * BM;
  const int col0 = blockIdx.x * BN;
  const int k_tiles = (k + BK - 1) / BK;

  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      bar_init(smem_addr(&full[s]), 1);
      bar_init(smem_addr(&empty[s]), EMPTY_ARRIVALS);
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
    if (tid < 32 && elect_one()) {
      for (int kt = 0; kt < k_tiles; ++kt) {
        const int s = kt % STAGES;
        bar_wait(smem_addr(&empty[s]), ((kt / STAGES) & 1) ^ 1);
        const uint32_t a_dst = ring + s * STAGE_BYTES;
        const uint32_t f = smem_addr(&full[s]);
        bar_arrive_expect_tx(f, STAGE_BYTES);
        tma_load_2d(a_dst, &tma_a, kt * BK, row0, f);
        tma_load_2d(a_dst + A_BYTES, &tma_b, kt * BK, col0, f);
      }
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
  const int w = wg - 1;
  float acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) acc[i] = 0.0f;

  for (int kt = 0; kt < k_tiles; ++kt) {
    const int s = kt % STAGES;
    bar_wait(smem_addr(&full[s]), (kt / STAGES) & 1);
    const uint32_t a_tile = ring + s * STAGE_BYTES + w * (64 * BK * 2);
    const uint32_t b_tile = ring + s * STAGE_BYTES + A_BYTES;
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      // A k16 step is 32 bytes along the 128-byte row; the swizzle is applied by the hardware on
      // the full address, so the start address simply advances.
      wgmma_m64n64k16(acc, desc_k128(a_tile + kk * 32), desc_k128(b_tile + kk * 32));
    }
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    if (tid % RELEASE_THREADS == 0) bar_arrive(smem_addr(&empty[s]));
  }

  // Accumulator fragment of m64nNk16 (PTX ISA 9.7.15.5.1.1): warp q of the warpgroup holds rows
  // 16 q .. 16 q + 15; register 4 j + i of lane l is row 16 q + l / 4 + 8 (i / 2), column
  // 8 j + 2 (l % 4) + (i % 2).
  const int q = (tid % 128) / 32;
  const int lane = tid % 32;
#pragma unroll
  for (int idx = 0; idx < 32; ++idx) {
    const int j = idx / 4, i = idx % 4;
    const int row = row0 + 64 * w + 16 * q + lane / 4 + 8 * (i / 2);
    const int col = col0 + 8 * j + 2 * (lane % 4) + (i % 2);
    if (row < m && col < n) c[static_cast<size_t>(row) * n + col] = acc[idx];
  }
}
