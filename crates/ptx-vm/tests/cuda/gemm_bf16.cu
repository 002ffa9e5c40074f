// Tiled bf16 GEMM with fp32 accumulation on tensor cores: C[M][N] = A[M][K] * B[K][N], all
// row-major, A and B bf16, C f32.
//
// Work split: grid (ceil(N / BN), ceil(M / BM)); a block of WARPS_M x WARPS_N warps computes one
// BM x BN tile of C; warp (wm, wn) owns the WM x WN sub-tile at (wm * WM, wn * WN), i.e.
// MMA_M_TILES x MMA_N_TILES mma.sync.m16n8k16 tiles. K advances in steps of BK through a
// two-stage shared-memory ring filled by cp.async (16 B = 8 bf16 per copy; copies past M, N or K
// are zero-filled with src-size 0, so the tail tiles need no special case). A fragments come from
// ldmatrix.x4, B fragments from ldmatrix.x4.trans (B is row-major K x N, mma wants it "col").
// Preconditions: K % 8 == 0 and N % 8 == 0 (16-byte rows of copies), pointers 16-byte aligned.
// FLOPs 2*M*N*K; fewest bytes 2*(M*K + K*N) + 4*M*N.

#include <cuda_bf16.h>
#include <stdint.h>

constexpr int BM = 64;
constexpr int BN = 64;
constexpr int BK = 32;
constexpr int WARPS_M = 2;
constexpr int WARPS_N = 2;
constexpr int THREADS = WARPS_M * WARPS_N * 32;
constexpr int WM = BM / WARPS_M;          // 32 rows per warp
constexpr int WN = BN / WARPS_N;          // 32 columns per warp
constexpr int MMA_M_TILES = WM / 16;      // 2
constexpr int MMA_N_TILES = WN / 8;       // 4
constexpr int CHUNK = 8;                  // bf16 per 16-byte cp.async
constexpr int A_PAD = 8;                  // keeps rows 16-byte aligned, staggers banks
constexpr int B_PAD = 8;
constexpr int A_STRIDE = BK + A_PAD;
constexpr int B_STRIDE = BN + B_PAD;
constexpr int STAGES = 2;

__device__ __forceinline__ void cp_async_16_zfill(void* smem, const void* gmem, bool in_range) {
    const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    const int src_bytes = in_range ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies the BM x BK tile of A and the BK x BN tile of B starting at k0 into one stage.
__device__ __forceinline__ void load_tiles(__nv_bfloat16 (*As)[A_STRIDE], __nv_bfloat16 (*Bs)[B_STRIDE],
                                           const __nv_bfloat16* __restrict__ A,
                                           const __nv_bfloat16* __restrict__ B, int M, int N, int K,
                                           int m0, int n0, int k0) {
    constexpr int A_CHUNKS = BM * BK / CHUNK;
    constexpr int B_CHUNKS = BK * BN / CHUNK;
    for (int c = threadIdx.x; c < A_CHUNKS; c += THREADS) {
        const int r = c / (BK / CHUNK);
        const int kc = (c % (BK / CHUNK)) * CHUNK;
        const bool ok = m0 + r < M && k0 + kc < K;
        const __nv_bfloat16* src = ok ? A + (size_t)(m0 + r) * K + k0 + kc : A;
        cp_async_16_zfill(&As[r][kc], src, ok);
    }
    for (int c = threadIdx.x; c < B_CHUNKS; c += THREADS) {
        const int r = c / (BN / CHUNK);
        const int nc = (c % (BN / CHUNK)) * CHUNK;
        const bool ok = k0 + r < K && n0 + nc < N;
        const __nv_bfloat16* src = ok ? B + (size_t)(k0 + r) * N + n0 + nc : B;
        cp_async_16_zfill(&Bs[r][nc], src, ok);
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
gemm_bf16_f32acc(const __nv_bfloat16* __restrict__ A, const __nv_bfloat16* __restrict__ B,
                 float* __restrict__ C, int M, int N, int K) {
    __shared__ __align__(16) __nv_bfloat16 As[STAGES][BM][A_STRIDE];
    __shared__ __align__(16) __nv_bfloat16 Bs[STAGES][BK][B_STRIDE];

    const int m0 = blockIdx.y * BM;
    const int n0 = blockIdx.x * BN;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int wm = (warp / WARPS_N) * WM;
    const int wn = (warp % WARPS_N) * WN;

    float acc[MMA_M_TILES][MMA_N_TILES][4] = {};

    const int k_tiles = (K + BK - 1) / BK;
    load_tiles(As[0], Bs[0], A, B, M, N, K, m0, n0, 0);
    cp_async_commit();

    for (int kt = 0; kt < k_tiles; ++kt) {
        const int stage = kt % STAGES;
        if (kt + 1 < k_tiles) {
            load_tiles(As[(kt + 1) % STAGES], Bs[(kt + 1) % STAGES], A, B, M, N, K, m0, n0, (kt + 1) * BK);
        }
        // Always commit (possibly an empty group) so that "all but the newest group" is the tile kt.
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();

        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t a_frag[MMA_M_TILES][4];
            uint32_t b_frag[MMA_N_TILES / 2][4];
            // ldmatrix.x4 addresses: lane l points at row (l % 16), column (l / 16) * 8 of the
            // 16 x 16 block, so matrices 0..3 are (rows 0-7, k 0-7), (rows 8-15, k 0-7),
            // (rows 0-7, k 8-15), (rows 8-15, k 8-15): exactly registers a0..a3 of mma.m16n8k16.
            for (int mi = 0; mi < MMA_M_TILES; ++mi) {
                ldmatrix_x4(a_frag[mi], &As[stage][wm + mi * 16 + lane % 16][kk + (lane / 16) * 8]);
            }
            // B (k x n row-major) with .trans: lane l points at k row (l % 16), n column
            // (l / 16) * 8, giving {b0, b1} of n-tile 2j in regs 0, 1 and of n-tile 2j+1 in 2, 3.
            for (int nj = 0; nj < MMA_N_TILES / 2; ++nj) {
                ldmatrix_x4_trans(b_frag[nj], &Bs[stage][kk + lane % 16][wn + nj * 16 + (lane / 16) * 8]);
            }
            for (int mi = 0; mi < MMA_M_TILES; ++mi) {
                for (int ni = 0; ni < MMA_N_TILES; ++ni) {
                    const uint32_t* b = &b_frag[ni / 2][(ni % 2) * 2];
                    mma_bf16_16816(acc[mi][ni], a_frag[mi], b[0], b[1]);
                }
            }
        }
        __syncthreads();
    }

    // Accumulator layout of mma.m16n8k16 (f32): c0, c1 at row lane / 4, columns 2 * (lane % 4)
    // and + 1; c2, c3 the same columns 8 rows below.
    const int g = lane / 4;
    const int t = lane % 4;
    for (int mi = 0; mi < MMA_M_TILES; ++mi) {
        for (int ni = 0; ni < MMA_N_TILES; ++ni) {
            for (int i = 0; i < 4; ++i) {
                const int row = m0 + wm + mi * 16 + g + (i / 2) * 8;
                const int col = n0 + wn + ni * 8 + t * 2 + (i % 2);
                if (row < M && col < N) {
                    C[(size_t)row * N + col] = acc[mi][ni][i];
                }
            }
        }
    }
}
