// attention backward: FlashAttention-2-style on mma.sync tensor cores (sm_80+), deterministic.
//
// For query row i, key j of head h (kv head kvh = h / (heads / kv_heads)), with the forward's
// logit(i, j) (fwd.cu) and lse:
//   P = e^(logit - lse)            recomputed from q, k and the forward's lse (sink included)
//   dV_j += P dO_i                 dP = dO_i . v_j          D_i = dO_i . O_i (preprocess)
//   dS = P (dP - D_i) c'(x)        x = q_i . k_j, c'(x) = 1 or (1 - tanh^2(scale x / softcap))
//   dQ_i += scale dS k_j           dK_j += scale dS q_i     dsink_h = -sum_i e^(sink_h - lse_i) D_i
// Masked pairs have P = 0; a row with lse = -inf (no key, no sink) has P = 0 everywhere, so its
// gradients are zero.
//
// Four launches, in order:
//  1. attention_bwd_dot_do_o_<T>: one warp per (token, head), grid (tokens / 8, heads), writes D
//     to the fp32 workspace.
//  2. attention_bwd_dsinks (only with sinks): one CTA per head sums -e^(sink - lse) D over its rows
//     in a fixed order (thread-strided partial sums, then a fixed shuffle/shared-memory tree).
//  3. attention_bwd_dq_<T>_d<D>: one CTA of 4 warps per (64 query rows, head, sequence) walks the
//     visible key tiles: S = Q K^T, dP = dO V^T (own Q/dO tile, streamed K/V tiles), dS in
//     registers, dQ += dS K (dS packed to 16 bits as the A operand, K via ldmatrix.trans).
//  4. attention_bwd_dkv_<T>_d<D>: one CTA per (64 keys, kv head, sequence) walks the query tiles
//     of every query head of its group, in a fixed order: S^T = K Q^T and dP^T = V dO^T with the
//     keys as mma rows, so P^T and dS^T come out of the accumulators already in the A-operand layout
//     of dV += P^T dO and dK += dS^T Q (dO and Q via ldmatrix.trans). dK and dV stay in registers
//     for the whole walk; GQA's sum over the group's heads is that walk.
//
// Why two main kernels (dQ recomputes S and dP): FlashAttention-2 adds each key tile's dQ share
// with fp32 atomics, whose order, and so whose bits, change from run to run. The deterministic
// alternatives are per-key-tile fp32 dQ partials reduced in a fixed order (workspace
// ceil(Sk / 64) x Sq x heads x d x 4 bytes: 256 MiB at Sk = Sq = 8k, 32 heads, d 128, and a
// second pass over it), or recomputing: 7 of the 5 minimal matrix products (+40% tensor FLOPs),
// no partials, no atomics, and a workspace of one float per (row, head). We recompute. Every sum
// is then in a fixed order fixed by the shape alone: gradients are bit-identical across runs and
// schedules.
//
// Tiles: 64 own rows per CTA (16 per warp, mma row tiles), streamed tiles of 64 rows at d = 64 and
// 32 above (registers: the dK+dV accumulators take d fp32 per lane). At d = 256 the dK/dV kernel has
// 8 warps: warps w and w + 4 own the same 16 keys and each keeps half of the head dim of dK and dV
// (S^T and dP^T are computed by both: 256 accumulators per lane would not fit). Streamed tiles are
// double buffered with cp.async; every tile lives in the XOR-swizzled layout of common/cp_async.cuh,
// so the 16-byte copies and every ldmatrix (plain and .trans) are conflict-free.
//
// FLOPs (useful, FlashAttention's convention): 2.5 x the forward's = 10 d per visible (row, key)
// pair and head (5 products of 2 d). Executed on tensor cores: 14 d per pair (dQ kernel 3
// products, dK/dV kernel 4), 18 d at d = 256 (S^T, dP^T twice). Fewest bytes: q, k, v, out, dout
// read once, dq, dk, dv written once, lse read: 2 (4 Sq d heads + 4 Sk d kv_heads) + 4 Sq heads per
// sequence for 16-bit T (+ the 8 bytes per (row, head) of the D workspace written and read).
//
// VM counters (examples/sol_report.rs; bf16, d = 128, batch 1, 16 heads, seq 1024, causal):
//   dot_do_o  1.82 M warp instructions (bytes-bound: 8.4 MB read, 64 KB written)
//   dq       10.09 M (16.6% mma, 17.5% fp32, 11.0% shared loads, 2.8% special fn, 40.2% integer),
//             5.08 M shared wavefronts, 0 bank conflicts, 6.85 G mma FLOPs
//   dkv      12.30 M (18.1% mma, 16.6% fp32, 12.5% shared loads, 2.3% special fn, 38.3% integer),
//             6.48 M shared wavefronts, 0 bank conflicts, 9.13 G mma FLOPs
//   total    24.20 M warp instructions, 11.56 M wavefronts, 0 bank conflicts; mma FLOPs = 1.486 x
//             the useful 10.75 G (all five products on tensor cores, dQ's S and dP recomputed);
//             unique bytes 42.2 MB read + 12.6 MB written against the fewest 33.6 MB (q, k, v,
//             dout are read by both main kernels through L2; D adds 64 KB each way).
// The integer share (address and mask arithmetic per streamed tile) is the first thing to cut.
// ptxas (sm_80 / sm_90a): dq 174/173 registers at d128 (168/171 d64, 255/255 d256), dkv 240/245
// (226/243 d64, 241/246 d256 with 256 threads), zero spills.
#include "attention/bwd_params.cuh"
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/math.cuh"
#include "common/mma.cuh"
#include "common/softmax.cuh"

namespace sk {

// Tile configuration of the sm_80 mma.sync backward.
template <int kHeadDim> struct AttnBwdTraits {
  static constexpr int kD = kHeadDim;
  static constexpr int kRowWarps = 4;             // warps along the own tile's rows, 16 rows each
  static constexpr int kBlockRows = 16 * kRowWarps;  // own rows per CTA (queries or keys)
  static constexpr int kStreamRows = kHeadDim <= 64 ? 64 : 32;  // rows per streamed tile
  // dK/dV kernel: warps sharing one row tile, each with kD / kDSplit columns of dK and dV.
  static constexpr int kDSplit = kHeadDim > 128 ? 2 : 1;
  static constexpr int kDqThreads = 32 * kRowWarps;
  static constexpr int kDkvThreads = 32 * kRowWarps * kDSplit;
  using Tile = SwizzledTile<kD>;
  static constexpr int kOwnBytes = kBlockRows * kD * 2;      // one own tile (Q or dO; K or V)
  static constexpr int kStreamBytes = kStreamRows * kD * 2;  // one streamed tile, one stage
  static constexpr int kStages = 2;
  // Own pair + streamed pair x stages (+ lse and D of each streamed query tile, dK/dV kernel).
  static constexpr int kDqSmem = 2 * kOwnBytes + kStages * 2 * kStreamBytes;
  static constexpr int kDkvSmem = 2 * kOwnBytes + kStages * 2 * kStreamBytes + kStages * 2 * kStreamRows * 4;
};

struct SeqBounds {
  int q_start, sq, k_start, sk;
};

__device__ __forceinline__ SeqBounds seq_bounds(const AttnBwdParams& p, int b) {
  if (p.cu_seqlens_q != nullptr) {
    const int q0 = p.cu_seqlens_q[b], k0 = p.cu_seqlens_k[b];
    return {q0, p.cu_seqlens_q[b + 1] - q0, k0, p.cu_seqlens_k[b + 1] - k0};
  }
  return {b * p.seqlen_q, p.seqlen_q, b * p.seqlen_k, p.seqlen_k};
}

// The forward's lse in log2 units as the exponent offset of P: a row with lse = -inf saw nothing,
// and +inf makes every one of its P exactly 0 (never inf - inf).
__device__ __forceinline__ float lse_offset_log2(float lse) {
  return lse == -CUDART_INF_F ? CUDART_INF_F : lse * kLog2e;
}

// C[16 x kN] = A[16 x kD] B[kN x kD]^T, A rows and B rows read by ldmatrix from swizzled tiles;
// `a_lane` / `b_lane` are this lane's fragment addresses at chunk pair 0 (see fwd.cu).
template <typename T, int kD, int kN>
__device__ __forceinline__ void gemm_nt(float (&c)[kN / 8][4], uint32_t a_lane, uint32_t b_lane) {
  using Tile = SwizzledTile<kD>;
  static_for<kD / 16>([&](auto kk_) {
    constexpr int kk = decltype(kk_)::value;
    uint32_t a[4];
    ldmatrix_x4<Tile::step_offset(0, kk)>(a, a_lane ^ Tile::step_xor(kk));
    static_for<kN / 16>([&](auto nn_) {
      constexpr int nn = decltype(nn_)::value;
      uint32_t b[4];
      ldmatrix_x4<Tile::step_offset(16 * nn, kk)>(b, b_lane ^ Tile::step_xor(kk));
      if constexpr (kk == 0) {
        mma_m16n8k16_zero_c<T>(c[2 * nn], a, b[0], b[1]);
        mma_m16n8k16_zero_c<T>(c[2 * nn + 1], a, b[2], b[3]);
      } else {
        mma_m16n8k16<T>(c[2 * nn], a, b[0], b[1]);
        mma_m16n8k16<T>(c[2 * nn + 1], a, b[2], b[3]);
      }
    });
  });
}

// acc[16 x kDw] += A[16 x kN] X[kN x kDw]: A from registers (packed accumulators), X a row-major
// [kN rows][kD] swizzled tile read transposed; `x_lane` includes the column offset of the warp's
// kDw-wide part (a multiple of 128 bytes, so it commutes with the swizzle).
template <typename T, int kD, int kN, int kDw>
__device__ __forceinline__ void gemm_acc(float (&acc)[kDw / 8][4], const uint32_t (&a)[kN / 16][4], uint32_t x_lane) {
  using Tile = SwizzledTile<kD>;
  static_for<kN / 16>([&](auto ks_) {
    constexpr int ks = decltype(ks_)::value;
    static_for<kDw / 16>([&](auto dn_) {
      constexpr int dn = decltype(dn_)::value;
      uint32_t x[4];
      ldmatrix_x4_trans<Tile::step_offset(16 * ks, dn)>(x, x_lane ^ Tile::step_xor(dn));
      mma_m16n8k16<T>(acc[2 * dn], a[ks], x[0], x[1]);
      mma_m16n8k16<T>(acc[2 * dn + 1], a[ks], x[2], x[3]);
    });
  });
}

// Two n8 accumulator tiles packed to 16 bits form one k16 A fragment (common/mma.cuh).
template <typename T, int kN>
__device__ __forceinline__ void pack_a(uint32_t (&a)[kN / 16][4], const float (&c)[kN / 8][4]) {
#pragma unroll
  for (int ks = 0; ks < kN / 16; ++ks) {
    a[ks][0] = pack2<T>(c[2 * ks][0], c[2 * ks][1]);
    a[ks][1] = pack2<T>(c[2 * ks][2], c[2 * ks][3]);
    a[ks][2] = pack2<T>(c[2 * ks + 1][0], c[2 * ks + 1][1]);
    a[ks][3] = pack2<T>(c[2 * ks + 1][2], c[2 * ks + 1][3]);
  }
}

// The pair's probability and logit gradient from the raw score x = q.k, dP and the row's lse
// offset and D: returns P, leaves dS (times c'(x), without the softmax scale) in `dp`.
__device__ __forceinline__ float prob_and_grad(float x, float& dp, float bias_log2, float lse_log2, float dd,
                                               const AttnBwdParams& p) {
  float lg, dcap = 1.0f;
  if (p.softcap_prescale != 0.0f) {
    const float t = tanhf(x * p.softcap_prescale);
    lg = t * p.scale_log2;
    dcap = fmaf(-t, t, 1.0f);
  } else {
    lg = x * p.scale_log2;
  }
  const float pr = fast_exp2(lg + bias_log2 - lse_log2);
  dp = pr * (dp - dd) * dcap;
  return pr;
}

// Writes 16 rows x kDw columns of fp32 accumulators (rows g and g + 8 of the lane) times `scale` as
// T pairs to `dst` rows (row stride in elements), rows < `rows`, columns < `cols` (a multiple of 8).
template <typename T, int kDw>
__device__ __forceinline__ void store_rows(uint16_t* dst, int64_t stride, const float (&acc)[kDw / 8][4], float scale,
                                           int row0, int rows, int col0, int cols) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= rows) continue;
    uint16_t* d = dst + int64_t(row) * stride + col0 + 2 * t;
#pragma unroll
    for (int j = 0; j < kDw / 8; ++j)
      if (col0 + 8 * j < cols)
        *reinterpret_cast<uint32_t*>(d + 8 * j) = pack2<T>(acc[j][2 * r] * scale, acc[j][2 * r + 1] * scale);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. D = rowsum(dout * o) per (token, head), fp32, a warp per row: lane l takes elements 8l..8l+7
// (one 16-byte load of each tensor), then a fixed butterfly.
// Grid (tokens / 8, heads): no division by the head count per row.
template <typename T> __device__ __forceinline__ void dot_do_o(const AttnBwdParams& p) {
  constexpr int kWarps = 8;
  const int lane = threadIdx.x % 32;
  const int tok = blockIdx.x * kWarps + threadIdx.x / 32, h = blockIdx.y;
  if (tok >= p.total_q) return;
  float sum = 0.0f;
  if (8 * lane < p.head_dim) {
    const T* o = static_cast<const T*>(p.o) + tok * p.o_row_stride + int64_t(h) * p.head_dim + 8 * lane;
    const T* d = static_cast<const T*>(p.dout) + tok * p.do_row_stride + int64_t(h) * p.head_dim + 8 * lane;
    const Vec16<T> ov = *reinterpret_cast<const Vec16<T>*>(o);
    const Vec16<T> dv = *reinterpret_cast<const Vec16<T>*>(d);
#pragma unroll
    for (int e = 0; e < 8; ++e) sum = fmaf(to_float(ov.v[e]), to_float(dv.v[e]), sum);
  }
#pragma unroll
  for (int m = 16; m >= 1; m /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, m);
  if (lane == 0) p.dot_do_o[int64_t(h) * p.total_q + tok] = sum;
}

// 2. dsink_h = -sum_i e^(sink_h - lse[h, i]) D[h, i], one CTA of 256 threads per head.
__device__ __forceinline__ void dsinks(const AttnBwdParams& p) {
  constexpr int kThreads = 256;
  __shared__ float part[kThreads / 32];
  const int h = blockIdx.x, tid = threadIdx.x;
  const float sink = p.sinks[h];
  float sum = 0.0f;
  for (int i = tid; i < p.total_q; i += kThreads) {
    const float lse = p.lse[int64_t(h) * p.total_q + i];
    sum = fmaf(expf(sink - lse), p.dot_do_o[int64_t(h) * p.total_q + i], sum);
  }
#pragma unroll
  for (int m = 16; m >= 1; m /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, m);
  if (tid % 32 == 0) part[tid / 32] = sum;
  __syncthreads();
  if (tid == 0) {
    float total = part[0];
#pragma unroll
    for (int w = 1; w < kThreads / 32; ++w) total += part[w];
    p.dsinks[h] = -total;
  }
}

// ---------------------------------------------------------------------------------------------
// 3. dQ: CTA per (64 query rows, head, sequence), keys streamed.
template <typename T, int kHeadDim>
__device__ __forceinline__ void attention_bwd_dq(const AttnBwdParams& p, unsigned char* smem) {
  using Tr = AttnBwdTraits<kHeadDim>;
  using Tile = typename Tr::Tile;
  constexpr int kD = Tr::kD, kN = Tr::kStreamRows, kM = Tr::kBlockRows, kThreads = Tr::kDqThreads;

  const int h = blockIdx.y;
  const SeqBounds sb = seq_bounds(p, blockIdx.z);
  const int m0 = blockIdx.x * kM;
  if (m0 >= sb.sq) return;  // varlen: the grid covers the longest sequence
  const int sq = sb.sq, sk = sb.sk, off = sk - sq;
  const int kvh = h / (p.heads / p.kv_heads);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;

  const uint16_t* q = static_cast<const uint16_t*>(p.q) + (int64_t(sb.q_start) + m0) * p.q_row_stride + int64_t(h) * p.head_dim;
  const uint16_t* dout =
      static_cast<const uint16_t*>(p.dout) + (int64_t(sb.q_start) + m0) * p.do_row_stride + int64_t(h) * p.head_dim;
  const uint16_t* k = static_cast<const uint16_t*>(p.k) + int64_t(sb.k_start) * p.k_row_stride + int64_t(kvh) * p.head_dim;
  const uint16_t* v = static_cast<const uint16_t*>(p.v) + int64_t(sb.k_start) * p.v_row_stride + int64_t(kvh) * p.head_dim;

  // Keys some row of the CTA sees: [lo, hi).
  const int m_last = min(m0 + kM, sq) - 1;
  int64_t lo = 0, hi = sk;
  if (p.window_left >= 0) lo = max(lo, int64_t(m0) + off - p.window_left);
  if (p.window_right >= 0) hi = min(hi, int64_t(m_last) + off + p.window_right + 1);
  const int n_min = hi > lo ? int(lo / kN) : 0, n_max = hi > lo ? int((hi + kN - 1) / kN) : 0;

  // This lane's rows (g and g + 8 of the warp's 16): visible keys [klo, khi], lse offset, D.
  int klo[2], khi[2];
  float lse_l2[2], dd[2];
  int al[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = m0 + warp * 16 + g + 8 * r;
    al[r] = i + off;
    if (i < sq) {
      int64_t a = int64_t(i) + off, l = 0, u = int64_t(sk) - 1;
      if (p.window_left >= 0) l = max(l, a - p.window_left);
      if (p.window_right >= 0) u = min(u, a + p.window_right);
      klo[r] = int(min(l, int64_t(sk)));
      khi[r] = int(max(u, int64_t(-1)));
      const int64_t at = int64_t(h) * p.total_q + sb.q_start + i;
      lse_l2[r] = lse_offset_log2(p.lse[at]);
      dd[r] = p.dot_do_o[at];
    } else {
      klo[r] = 1;
      khi[r] = 0;
      lse_l2[r] = CUDART_INF_F;
      dd[r] = 0.0f;
    }
  }
  const float slope_l2 = p.alibi_slopes != nullptr ? p.alibi_slopes[h] * kLog2e : 0.0f;

  const uint32_t s_q = smem_addr(smem);
  const uint32_t s_do = s_q + Tr::kOwnBytes;
  const uint32_t s_k = s_do + Tr::kOwnBytes;
  const uint32_t s_v = s_k + Tr::kStages * Tr::kStreamBytes;

  auto load_kv = [&](int n_block, int stage) {
    const int n0 = n_block * kN;
    load_tile_async<kN, kD, kThreads>(s_k + stage * Tr::kStreamBytes, k + int64_t(n0) * p.k_row_stride, p.k_row_stride,
                                      sk - n0, p.head_dim, tid);
    load_tile_async<kN, kD, kThreads>(s_v + stage * Tr::kStreamBytes, v + int64_t(n0) * p.v_row_stride, p.v_row_stride,
                                      sk - n0, p.head_dim, tid);
  };

  float acc[kD / 8][4];
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  if (n_max > n_min) {
    load_tile_async<kM, kD, kThreads>(s_q, q, p.q_row_stride, sq - m0, p.head_dim, tid);
    load_tile_async<kM, kD, kThreads>(s_do, dout, p.do_row_stride, sq - m0, p.head_dim, tid);
    load_kv(n_min, 0);
    cp_async_commit();
  }

  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_chunk = lane / 16;
  const int b_row = (lane % 8) + 8 * (lane / 16), b_chunk = (lane / 8) % 2;
  const uint32_t q_lane = s_q + Tile::lane_offset(warp * 16 + a_row, a_chunk, 0);
  const uint32_t do_lane = s_do + Tile::lane_offset(warp * 16 + a_row, a_chunk, 0);
  const uint32_t b_off = Tile::lane_offset(b_row, b_chunk, 0);
  const uint32_t x_off = Tile::lane_offset(a_row, a_chunk, 0);

  int stage = 0;
  for (int n_block = n_min; n_block < n_max; ++n_block) {
    if (n_block + 1 < n_max) {
      load_kv(n_block + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int n0 = n_block * kN;
    const uint32_t k_base = s_k + stage * Tr::kStreamBytes, v_base = s_v + stage * Tr::kStreamBytes;
    float s[kN / 8][4], dp[kN / 8][4];
    gemm_nt<T, kD, kN>(s, q_lane, k_base + b_off);
    gemm_nt<T, kD, kN>(dp, do_lane, v_base + b_off);

    // Element (j, e) is key n0 + 8 j + 2 t + (e & 1) of row half e / 2. The mask is applied only
    // when some row of the warp does not see the whole tile.
    const bool masked = __any_sync(0xffffffffu, klo[0] > n0 || khi[0] < n0 + kN - 1 || klo[1] > n0 ||
                                                    khi[1] < n0 + kN - 1);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int lo_rel = klo[r] - n0 - 2 * t, hi_rel = khi[r] - n0 - 2 * t;
      const int rel0 = n0 + 2 * t - al[r];  // key - i' at c = 0
#pragma unroll
      for (int j = 0; j < kN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = 8 * j + e;
          const float bias = p.alibi_slopes != nullptr ? -slope_l2 * float(abs(rel0 + c)) : 0.0f;
          prob_and_grad(s[j][2 * r + e], dp[j][2 * r + e], bias, lse_l2[r], dd[r], p);
          if (masked && (c < lo_rel || c > hi_rel)) dp[j][2 * r + e] = 0.0f;
        }
    }
    uint32_t ds[kN / 16][4];
    pack_a<T, kN>(ds, dp);
    gemm_acc<T, kD, kN, kD>(acc, ds, k_base + x_off);
    __syncthreads();  // the stage just read is the next iteration's copy target
    stage ^= 1;
  }

  uint16_t* dq = static_cast<uint16_t*>(p.dq) + int64_t(sb.q_start) * p.dq_row_stride + int64_t(h) * p.head_dim;
  store_rows<T, kD>(dq, p.dq_row_stride, acc, p.grad_scale, m0 + warp * 16, sq, 0, p.head_dim);
}

// ---------------------------------------------------------------------------------------------
// 4. dK, dV: CTA per (64 keys, kv head, sequence), query tiles of the group's heads streamed.
template <typename T, int kHeadDim>
__device__ __forceinline__ void attention_bwd_dkv(const AttnBwdParams& p, unsigned char* smem) {
  using Tr = AttnBwdTraits<kHeadDim>;
  using Tile = typename Tr::Tile;
  constexpr int kD = Tr::kD, kN = Tr::kStreamRows, kM = Tr::kBlockRows, kThreads = Tr::kDkvThreads;
  constexpr int kDw = kD / Tr::kDSplit;  // dK/dV columns per warp

  const int kvh = blockIdx.y;
  const SeqBounds sb = seq_bounds(p, blockIdx.z);
  const int j0 = blockIdx.x * kM;  // first key of the CTA
  if (j0 >= sb.sk) return;
  const int sq = sb.sq, sk = sb.sk, off = sk - sq;
  const int group = p.heads / p.kv_heads;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int rw = warp % Tr::kRowWarps, part = warp / Tr::kRowWarps;  // row tile, column part

  const uint16_t* k = static_cast<const uint16_t*>(p.k) + (int64_t(sb.k_start) + j0) * p.k_row_stride + int64_t(kvh) * p.head_dim;
  const uint16_t* v = static_cast<const uint16_t*>(p.v) + (int64_t(sb.k_start) + j0) * p.v_row_stride + int64_t(kvh) * p.head_dim;

  // Query rows some key of the CTA is visible to: [lo, hi).
  const int j_last = min(j0 + kM, sk) - 1;
  int64_t lo = 0, hi = sq;
  if (p.window_right >= 0) lo = max(lo, int64_t(j0) - p.window_right - off);
  if (p.window_left >= 0) hi = min(hi, int64_t(j_last) + p.window_left - off + 1);
  const int m_min = hi > lo ? int(lo / kN) : 0, m_tiles = hi > lo ? int((hi + kN - 1) / kN) - m_min : 0;
  const int steps = m_tiles * group;  // (head of the group, query tile), head-major

  // This lane's keys (g and g + 8 of the warp's 16): the queries that see them, [qlo, qhi].
  int qlo[2], qhi[2], jr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = j0 + rw * 16 + g + 8 * r;
    jr[r] = j - off;  // key - (i' - i): key j is at relative position j - off - i from query i
    if (j < sk) {
      int64_t l = 0, u = int64_t(sq) - 1;
      if (p.window_right >= 0) l = max(l, int64_t(j) - p.window_right - off);
      if (p.window_left >= 0) u = min(u, int64_t(j) + p.window_left - off);
      qlo[r] = int(min(l, int64_t(sq)));
      qhi[r] = int(max(u, int64_t(-1)));
    } else {
      qlo[r] = 1;
      qhi[r] = 0;
    }
  }

  const uint32_t s_k = smem_addr(smem);
  const uint32_t s_v = s_k + Tr::kOwnBytes;
  const uint32_t s_q = s_v + Tr::kOwnBytes;
  const uint32_t s_do = s_q + Tr::kStages * Tr::kStreamBytes;
  float* s_lse = reinterpret_cast<float*>(smem + 2 * Tr::kOwnBytes + Tr::kStages * 2 * Tr::kStreamBytes);
  float* s_dd = s_lse + Tr::kStages * kN;

  // Step `it`: head kvh * group + it / m_tiles, query tile m_min + it % m_tiles. Q and dO by
  // cp.async; lse offsets and D by plain loads (read after the barrier that precedes their use).
  auto load_q = [&](int it, int stage) {
    const int h = kvh * group + it / m_tiles;
    const int m0 = (m_min + it % m_tiles) * kN;
    const int64_t row = int64_t(sb.q_start) + m0;
    load_tile_async<kN, kD, kThreads>(s_q + stage * Tr::kStreamBytes,
                                      static_cast<const uint16_t*>(p.q) + row * p.q_row_stride + int64_t(h) * p.head_dim,
                                      p.q_row_stride, sq - m0, p.head_dim, tid);
    load_tile_async<kN, kD, kThreads>(s_do + stage * Tr::kStreamBytes,
                                      static_cast<const uint16_t*>(p.dout) + row * p.do_row_stride + int64_t(h) * p.head_dim,
                                      p.do_row_stride, sq - m0, p.head_dim, tid);
    if (tid < kN) {
      const bool in = m0 + tid < sq;
      const int64_t at = int64_t(h) * p.total_q + row + tid;
      s_lse[stage * kN + tid] = in ? lse_offset_log2(p.lse[at]) : CUDART_INF_F;
      s_dd[stage * kN + tid] = in ? p.dot_do_o[at] : 0.0f;
    }
  };

  float acc_dk[kDw / 8][4], acc_dv[kDw / 8][4];
#pragma unroll
  for (int j = 0; j < kDw / 8; ++j) {
    acc_dk[j][0] = acc_dk[j][1] = acc_dk[j][2] = acc_dk[j][3] = 0.0f;
    acc_dv[j][0] = acc_dv[j][1] = acc_dv[j][2] = acc_dv[j][3] = 0.0f;
  }

  if (steps > 0) {
    load_tile_async<kM, kD, kThreads>(s_k, k, p.k_row_stride, sk - j0, p.head_dim, tid);
    load_tile_async<kM, kD, kThreads>(s_v, v, p.v_row_stride, sk - j0, p.head_dim, tid);
    load_q(0, 0);
    cp_async_commit();
  }

  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_chunk = lane / 16;
  const int b_row = (lane % 8) + 8 * (lane / 16), b_chunk = (lane / 8) % 2;
  const uint32_t k_lane = s_k + Tile::lane_offset(rw * 16 + a_row, a_chunk, 0);
  const uint32_t v_lane = s_v + Tile::lane_offset(rw * 16 + a_row, a_chunk, 0);
  const uint32_t b_off = Tile::lane_offset(b_row, b_chunk, 0);
  const uint32_t x_off = Tile::lane_offset(a_row, a_chunk, 0) + part * (kDw * 2);

  int stage = 0;
  for (int it = 0; it < steps; ++it) {
    if (it + 1 < steps) {
      load_q(it + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int h = kvh * group + it / m_tiles;
    const int m0 = (m_min + it % m_tiles) * kN;
    const uint32_t q_base = s_q + stage * Tr::kStreamBytes, do_base = s_do + stage * Tr::kStreamBytes;
    float s[kN / 8][4], dp[kN / 8][4];
    gemm_nt<T, kD, kN>(s, k_lane, q_base + b_off);
    gemm_nt<T, kD, kN>(dp, v_lane, do_base + b_off);

    // Element (j, e) is query m0 + 8 j + 2 t + (e & 1) of key half e / 2.
    const bool masked = __any_sync(0xffffffffu, qlo[0] > m0 || qhi[0] < m0 + kN - 1 || qlo[1] > m0 ||
                                                    qhi[1] < m0 + kN - 1);
    const float slope_l2 = p.alibi_slopes != nullptr ? p.alibi_slopes[h] * kLog2e : 0.0f;
    const float* lse_t = s_lse + stage * kN + 2 * t;
    const float* dd_t = s_dd + stage * kN + 2 * t;
#pragma unroll
    for (int j = 0; j < kN / 8; ++j) {
      const float2 l2 = *reinterpret_cast<const float2*>(lse_t + 8 * j);
      const float2 d2 = *reinterpret_cast<const float2*>(dd_t + 8 * j);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int lo_rel = qlo[r] - m0 - 2 * t, hi_rel = qhi[r] - m0 - 2 * t;
        const int rel0 = jr[r] - m0 - 2 * t;  // key - i' at c = 0
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = 8 * j + e;
          const float bias = p.alibi_slopes != nullptr ? -slope_l2 * float(abs(rel0 - c)) : 0.0f;
          float pr = prob_and_grad(s[j][2 * r + e], dp[j][2 * r + e], bias, e ? l2.y : l2.x, e ? d2.y : d2.x, p);
          if (masked && (c < lo_rel || c > hi_rel)) {
            pr = 0.0f;
            dp[j][2 * r + e] = 0.0f;
          }
          s[j][2 * r + e] = pr;
        }
      }
    }
    uint32_t pa[kN / 16][4], da[kN / 16][4];
    pack_a<T, kN>(pa, s);
    pack_a<T, kN>(da, dp);
    gemm_acc<T, kD, kN, kDw>(acc_dv, pa, do_base + x_off);
    gemm_acc<T, kD, kN, kDw>(acc_dk, da, q_base + x_off);
    __syncthreads();
    stage ^= 1;
  }

  uint16_t* dk = static_cast<uint16_t*>(p.dk) + int64_t(sb.k_start) * p.dk_row_stride + int64_t(kvh) * p.head_dim;
  uint16_t* dv = static_cast<uint16_t*>(p.dv) + int64_t(sb.k_start) * p.dv_row_stride + int64_t(kvh) * p.head_dim;
  store_rows<T, kDw>(dk, p.dk_row_stride, acc_dk, p.grad_scale, j0 + rw * 16, sk, part * kDw, p.head_dim);
  store_rows<T, kDw>(dv, p.dv_row_stride, acc_dv, 1.0f, j0 + rw * 16, sk, part * kDw, p.head_dim);
}

}  // namespace sk

#define SK_ATTN_BWD_DOT(name, T)                                                                       \
  extern "C" __global__ void __launch_bounds__(256) name(const __grid_constant__ sk::AttnBwdParams p) { \
    sk::dot_do_o<T>(p);                                                                                \
  }

#define SK_ATTN_BWD(T, tname, D)                                                                       \
  extern "C" __global__ void __launch_bounds__(sk::AttnBwdTraits<D>::kDqThreads)                       \
      attention_bwd_dq_##tname##_d##D(const __grid_constant__ sk::AttnBwdParams p) {                   \
    extern __shared__ __align__(128) unsigned char smem[];                                             \
    sk::attention_bwd_dq<T, D>(p, smem);                                                               \
  }                                                                                                    \
  extern "C" __global__ void __launch_bounds__(sk::AttnBwdTraits<D>::kDkvThreads)                      \
      attention_bwd_dkv_##tname##_d##D(const __grid_constant__ sk::AttnBwdParams p) {                  \
    extern __shared__ __align__(128) unsigned char smem[];                                             \
    sk::attention_bwd_dkv<T, D>(p, smem);                                                              \
  }

SK_ATTN_BWD_DOT(attention_bwd_dot_do_o_bf16, __nv_bfloat16)
SK_ATTN_BWD_DOT(attention_bwd_dot_do_o_f16, __half)

extern "C" __global__ void __launch_bounds__(256) attention_bwd_dsinks(const __grid_constant__ sk::AttnBwdParams p) {
  sk::dsinks(p);
}

SK_ATTN_BWD(__nv_bfloat16, bf16, 64)
SK_ATTN_BWD(__nv_bfloat16, bf16, 128)
SK_ATTN_BWD(__nv_bfloat16, bf16, 256)
SK_ATTN_BWD(__half, f16, 64)
SK_ATTN_BWD(__half, f16, 128)
SK_ATTN_BWD(__half, f16, 256)
