// attention forward: FlashAttention-2-style, on mma.sync tensor cores (sm_80+).
//
//   out[i, h] = sum_j softmax_j(logit(i, j)) v[j, kvh],     lse[h, i] = ln(sum_j e^logit(i, j) + e^sink_h)
//   logit(i, j) = cap(scale q_i . k_j) - slope_h |i' - j|  if key j is visible to row i, else -inf
// with cap(x) = softcap tanh(x / softcap) (or x), i' = i + seqlen_k - seqlen_q (bottom-right
// alignment), visible = j < seqlen_k and i' - left <= j <= i' + right (causal: right = 0; -1: no
// bound), kvh = h / (heads / kv_heads). A row with no visible key gets out = 0 and lse = -inf (or the
// sink logit, which is then the whole denominator).
//
// Work split (AttnFwdTraits): one CTA of 4 warps per (tile of kBlockM query rows, head, sequence),
// grid (q tiles, heads, batch). kBlockM = 128 for d <= 128 (a warp owns 32 rows: two mma row tiles
// of 16, so every K/V fragment read from shared memory feeds two mma) and 64 for d = 256. A quad of
// lanes owns a row pair (g, g + 8) of each row tile (common/mma.cuh). The CTA walks its visible K/V
// tiles of kBlockN keys (64 for d <= 128, 32 for d = 256) from the last to the first, so the tiles that need a
// mask (the diagonal, the sequence end, the window edge) come first and the rest run without
// per-element tests; tiles wholly outside the causal/window band are never loaded. K/V tiles are
// double buffered: the cp.async copy of tile n-1 is in flight while tile n is computed. Per tile and
// warp:
//   S (32 x kBlockN, fp32) = Q K^T        mma m16n8k16; Q and K by ldmatrix from swizzled smem
//   online softmax on S in registers      one FMA + ex2 per element, quad shuffles per row
//   O (32 x d, fp32) += P V               P packed from S registers as the A operand, V by
//                                         ldmatrix.trans
// At the end each lane writes its output column pairs straight from registers. Head dims below
// the instantiation's are zero-filled on load and not stored.
// GQA: with seqlen_q >= kBlockM each query head is its own CTA (grid y = heads) and reads its
// group's K/V through L2. With shorter queries (decode, small prefill chunks) the host packs the
// group's heads into the tile (`pack` = heads / kv_heads, grid y = kv_heads): tile row r is token
// r / pack of head kvh * pack + r % pack, so each K/V tile is loaded once per group.
//
// Reads and writes: each CTA reads its Q tile once and each visible K/V tile once (zero-filled past
// the sequence end and past head_dim, never read); it writes its valid output rows and their LSE.
// FLOPs: 4 d per visible (row, key) pair (2 d for QK^T, 2 d for PV): 4 Sq Sk d per head without
// masks, about half that with causal masking at Sq = Sk. Fewest bytes: q, k, v read once, out
// written once (+ 4 per row for lse): 2 (2 Sq d heads + 2 Sk d kv_heads) per sequence for 16-bit T.
// K/V are requested once per (query tile, kv head): ceil(Sq / kBlockM) times per head, through L2.
//
// Each warp skips the sub-tiles none of its rows can see and masks only those some of its rows
// see in part (bounds per warp, kept in shared memory: in registers ptxas spills them at d = 128).
//
// Registers at d = 128: the fp32 outputs (128 per lane) and a 64-key S (64) leave ~60 for the rest,
// so the main loop keeps nothing it can re-read: the mask and ALiBi paths of boundary tiles take
// their row coordinates from the special registers and per-warp scalars in shared memory, the
// epilogue re-reads its own, the softmax finishes every exponential before the rescale branch,
// P V fences every second V fragment, and on sm_90 Q K^T runs as a rolled loop (AttnFwdTraits).
// ptxas -v (scripts/resource-report): 255 registers at d = 128, 0 spills on sm_80 and sm_90a.
//
// VM counters (examples/sol_report.rs; bf16, d = 128, batch 1, 16 heads, seq 1024): 7.45 M warp
// instructions (28.1% mma, 27.7% fp32, 8.9% shared loads, 7.6% special functions, 16.1% integer),
// 3.21 M shared wavefronts, 0 bank conflicts, mma FLOPs = the useful FLOPs (100% on tensor cores),
// K/V requested 8x (once per 128-row query tile). Causal: 4.44 M warp instructions, 1.74 M
// wavefronts (mma FLOPs 1.061x the useful ones: the diagonal tiles' masked half). FlashAttention-2's
// own kernel on the same VM: 8.11 M / 3.24 M (causal 4.83 M). (32-key tiles, before: 8.82 M / 3.77 M,
// causal 5.00 M.) The sm_90a build's rolled Q K^T, run as PTX on the VM, costs ~0.3 M more (7.83 M,
// causal 4.64 M, measured before the last 0.03 M cut). d = 64: 5.64 M / 1.62 M (causal 3.40 M /
// 0.88 M); d = 256: 19.27 M / 12.78 M (causal 10.72 M / 6.66 M) (were 5.67 / 3.41 and 19.41 / 10.79).
// Useful FLOPs per warp instruction and per wavefront at d = 128: 8.59 G / 7.45 M = 1153 and
// 8.59 G / 3.21 M = 2674 (FlashAttention-2: 1059 and 2651); causal 4.30 G / 4.44 M = 968 (FA2: 890).
#include "attention/params.cuh"
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/math.cuh"
#include "common/mma.cuh"
#include "common/softmax.cuh"

namespace sk {

// Tile configuration of the sm_80 mma.sync path; a Hopper (wgmma/TMA) path gets its own traits.
// A warp owns kMTiles row tiles of 16, so each K/V fragment it reads from shared memory feeds
// kMTiles mma: two for d <= 128 (128-row CTAs, as FlashAttention-2), one for d = 256, where the fp32
// output accumulator (16 x 256 per row tile) already takes half the registers.
template <typename T, int kHeadDim> struct AttnFwdTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kMTiles = kHeadDim <= 128 ? 2 : 1;
  static constexpr int kWarpRows = 16 * kMTiles;
  static constexpr int kBlockM = kWarpRows * kWarps;         // query rows per CTA
  // Keys per K/V tile. Registers decide: d = 128 with two row tiles holds 2 x 16 x 128 fp32 outputs
  // per warp (128 per lane) and a 64-key S (another 64) only fits beside them with the measures in
  // the note at the top; d = 256 (one row tile, 128 outputs per lane) stays at 32.
  static constexpr int kBlockN = kHeadDim <= 128 ? 64 : 32;
  // Keys per compute step (S, softmax, P V); a K/V tile (one cp.async stage, one barrier pair) takes
  // kBlockN / kSubN steps. Equal to kBlockN for now (split steps would re-read Q per step).
  static constexpr int kSubN = kHeadDim <= 128 ? 64 : 32;
  static constexpr int kD = kHeadDim;
  static constexpr bool kQInRegs = false;          // else re-read by ldmatrix per tile
  // Q K^T as a rolled loop of two k16 steps per pass (see attention_fwd): only where ptxas
  // otherwise spills, the 64-key tiles at d = 128 on sm_90, which pay ~37 warp instructions per tile
  // and warp for it (4% of the VM count). The VM executes the compute_80 PTX: the unrolled form.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  static constexpr bool kRollQK = kHeadDim == 128;
#else
  static constexpr bool kRollQK = false;
#endif
  // A warp-level fence (bar.warp.sync) every second V fragment of P V: it keeps ptxas from loading
  // V fragments many steps ahead, which at d = 128 with 64-key tiles spills on sm_80 (and sm_90).
  static constexpr bool kFenceSteps = kHeadDim == 128;
  using Tile = SwizzledTile<kHeadDim>;
  static constexpr int kQBytes = kBlockM * kD * 2;
  static constexpr int kKVBytes = kBlockN * kD * 2;
  static constexpr int kStages = 2;
  static constexpr int kBoundsBytes = kWarps * 32;  // per warp: the four key bounds and three scalars (see below)
  static constexpr int kSmemBytes = kQBytes + kStages * 2 * kKVBytes + kBoundsBytes;
};

// The CTA's K/V tiles: [n_min, n_max) hold every key visible to some row of the CTA.
struct KeyRange {
  int n_min, n_max;
};

template <typename Tr>
__device__ __forceinline__ KeyRange key_range(const AttnFwdParams& p, int m0, int m_last, int sq, int sk) {
  const int64_t off = int64_t(sk) - sq;
  int64_t lo = 0, hi = sk;
  if (p.window_left >= 0) lo = max(lo, int64_t(m0) + off - p.window_left);
  if (p.window_right >= 0) hi = min(hi, int64_t(m_last) + off + p.window_right + 1);
  if (hi <= lo) return {0, 0};
  return {int(lo / Tr::kBlockN), int((hi + Tr::kBlockN - 1) / Tr::kBlockN)};
}

// threadIdx.x read afresh (volatile: not merged with an earlier read), so that values derived from
// it are recomputed where needed rather than held in registers.
__device__ __forceinline__ int fresh_tid_x() {
  int x;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(x));
  return x;
}

__device__ __forceinline__ int fresh_ctaid_x() {
  int x;
  asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(x));
  return x;
}

__device__ __forceinline__ int fresh_ctaid_z() {
  int z;
  asm volatile("mov.u32 %0, %%ctaid.z;" : "=r"(z));
  return z;
}

__device__ __forceinline__ int fresh_ctaid_y() {
  int y;
  asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(y));
  return y;
}

template <typename T, int kHeadDim>
__device__ __forceinline__ void attention_fwd(const AttnFwdParams& p, unsigned char* smem) {
  using Tr = AttnFwdTraits<T, kHeadDim>;
  using Tile = typename Tr::Tile;
  constexpr int kD = Tr::kD, kBlockN = Tr::kBlockN, kSubN = Tr::kSubN, kBlockM = Tr::kBlockM, kM = Tr::kMTiles;
  constexpr int kNTiles = kSubN / 8;  // S accumulator tiles per row tile
  constexpr int kDTiles = kD / 8;       // O accumulator tiles per row tile

  const int m_block = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  int q_start, sq, k_start, sk;
  if (p.cu_seqlens_q != nullptr) {
    q_start = p.cu_seqlens_q[b];
    sq = p.cu_seqlens_q[b + 1] - q_start;
    k_start = p.cu_seqlens_k[b];
    sk = p.cu_seqlens_k[b + 1] - k_start;
  } else {
    q_start = b * p.seqlen_q;
    sq = p.seqlen_q;
    k_start = b * p.seqlen_k;
    sk = p.seqlen_k;
  }
  // Tile rows are query rows; with GQA packing (pack > 1) they are (token, head of the group) pairs,
  // token-major, and blockIdx.y is the kv head: the group's K/V tiles are loaded once for all of it.
  const int pack = p.pack;
  const int rows = sq * pack;
  const int m0 = m_block * kBlockM;
  if (m0 >= rows) return;  // varlen: the grid covers the longest sequence
  const int m_last = min(m0 + kBlockM, rows) - 1;
  const int t_first = pack > 1 ? m0 / pack : m0, t_last = pack > 1 ? m_last / pack : m_last;  // tokens
  const int kvh = pack > 1 ? h : h / (p.heads / p.kv_heads);
  const int off = sk - sq;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;

  const uint16_t* q = static_cast<const uint16_t*>(p.q) + (int64_t(q_start) + m0) * p.q_row_stride + int64_t(h) * p.head_dim;
  const uint16_t* q_group = static_cast<const uint16_t*>(p.q) + int64_t(q_start) * p.q_row_stride +
                            int64_t(kvh) * pack * p.head_dim;  // packed: row r is q_group[r / pack, r % pack]
  const uint16_t* k = static_cast<const uint16_t*>(p.k) + int64_t(k_start) * p.k_row_stride + int64_t(kvh) * p.head_dim;
  const uint16_t* v = static_cast<const uint16_t*>(p.v) + int64_t(k_start) * p.v_row_stride + int64_t(kvh) * p.head_dim;

  uint32_t s_q = smem_addr(smem);
  // An opaque copy keeps the shared base in one register instead of a `mov` of the symbol
  // rematerialised at each use (PTX instructions the VM counts; no register cost in ptxas -v).
  asm volatile("" : "+r"(s_q));
  const uint32_t s_k = s_q + Tr::kQBytes;
  const uint32_t s_v = s_k + Tr::kStages * Tr::kKVBytes;

  const KeyRange range = key_range<Tr>(p, t_first, t_last, sq, sk);
  // Per warp, for sub-tiles of kSubN keys starting at n0 (all four bounds are monotone in n0, so
  // comparisons against them replace per-tile 64-bit arithmetic): the sub-tile needs the
  // per-element mask when it holds keys past the sequence end or right of some row's band
  // (n0 > mask_hi) or left of some row's window (n0 < mask_lo); it holds no key visible to any of
  // the warp's rows, and is skipped, when n0 > skip_hi or n0 < skip_lo. Only the warp's real rows
  // count; a warp with none skips every sub-tile.
  // They live in shared memory (32 bytes per warp, one broadcast load per sub-tile), beside what only
  // the mask and ALiBi paths of boundary tiles need (seqlen_k, seqlen_k - seqlen_q, the warp's first
  // tile row): held in registers through the main loop they are what ptxas spills with 64-key tiles.
  const uint32_t s_bounds = s_q + Tr::kQBytes + Tr::kStages * 2 * Tr::kKVBytes + warp * 32;
  {
    int mask_hi, mask_lo, skip_hi, skip_lo;
    const int w_first = m0 + warp * Tr::kWarpRows, w_last = min(w_first + Tr::kWarpRows, rows) - 1;
    const int64_t tok_lo = pack > 1 ? w_first / pack : w_first, tok_hi = pack > 1 ? w_last / pack : w_last;
    int64_t hi = int64_t(sk) - kSubN, shi = int64_t(sk) - 1;
    if (p.window_right >= 0) {
      hi = min(hi, tok_lo + off + p.window_right - kSubN + 1);
      shi = min(shi, tok_hi + off + p.window_right);
    }
    const int64_t lo = p.window_left >= 0 ? tok_hi + off - p.window_left : 0;
    const int64_t slo = p.window_left >= 0 ? tok_lo + off - p.window_left - kSubN + 1 : 0;
    mask_hi = int(max(hi, int64_t(-1)));
    mask_lo = int(min(max(lo, int64_t(0)), int64_t(sk)));
    skip_hi = w_last < w_first ? -1 : int(max(shi, int64_t(-1)));
    skip_lo = int(min(max(slo, int64_t(0)), int64_t(sk)));
    if (lane == 0) {
      asm volatile("st.shared.v4.s32 [%0], {%1, %2, %3, %4};" ::"r"(s_bounds), "r"(mask_hi), "r"(mask_lo),
                   "r"(skip_hi), "r"(skip_lo)
                   : "memory");
      if constexpr (Tr::kFenceSteps) {
        asm volatile("st.shared.v4.s32 [%0+16], {%1, %2, %3, %4};" ::"r"(s_bounds), "r"(sk), "r"(off),
                     "r"(w_first), "r"(0)
                     : "memory");
      }
    }
    // Read after the main loop's first barrier, which orders this store before them.
  }

  float acc_o[kM][kDTiles][4];
#pragma unroll
  for (int mt = 0; mt < kM; ++mt)
#pragma unroll
    for (int j = 0; j < kDTiles; ++j) acc_o[mt][j][0] = acc_o[mt][j][1] = acc_o[mt][j][2] = acc_o[mt][j][3] = 0.0f;
  OnlineSoftmax sm[kM];
#pragma unroll
  for (int mt = 0; mt < kM; ++mt) sm[mt].init();


  auto load_kv = [&](int n_block, int stage) {
    const int n0 = n_block * kBlockN;
    load_tile_async<kBlockN, kD, Tr::kThreads>(s_k + stage * Tr::kKVBytes, k + int64_t(n0) * p.k_row_stride,
                                                p.k_row_stride, sk - n0, p.head_dim, tid);
    load_tile_async<kBlockN, kD, Tr::kThreads>(s_v + stage * Tr::kKVBytes, v + int64_t(n0) * p.v_row_stride,
                                                p.v_row_stride, sk - n0, p.head_dim, tid);
  };

  if (range.n_max > range.n_min) {
    if (pack > 1) {
      auto row_ptr = [&](int r) {
        const int vr = m0 + r;
        return q_group + int64_t(vr / pack) * p.q_row_stride + (vr % pack) * p.head_dim;
      };
      load_rows_async<kBlockM, kD, Tr::kThreads>(s_q, row_ptr, rows - m0, p.head_dim, tid);
    } else {
      load_tile_async<kBlockM, kD, Tr::kThreads>(s_q, q, p.q_row_stride, sq - m0, p.head_dim, tid);
    }
    load_kv(range.n_max - 1, 0);
    cp_async_commit();
  }

  // ldmatrix lane addressing (common/mma.cuh): for A and for V^T the lane's row is
  // (lane % 8) + 8 ((lane / 8) % 2) and its chunk offset lane / 16; for K (B of S) the lane's key is
  // (lane % 8) + 8 (lane / 16) and its chunk offset (lane / 8) % 2.
  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_chunk = lane / 16;
  const int b_row = (lane % 8) + 8 * (lane / 16), b_chunk = (lane / 8) % 2;
  const int q_row = warp * Tr::kWarpRows + a_row;
  // Per-lane fragment addresses at chunk pair 0; step kk XORs in Tile::step_xor(kk) (every tile base
  // is 128-byte aligned) and adds the immediate Tile::step_offset.
  const uint32_t q_lane = s_q + Tile::lane_offset(q_row, a_chunk, 0);
  const uint32_t k_lane = Tile::lane_offset(b_row, b_chunk, 0);
  const uint32_t v_lane = Tile::lane_offset(a_row, a_chunk, 0);

  uint32_t q_frag[Tr::kQInRegs ? kM : 1][Tr::kQInRegs ? kD / 16 : 1][4];

  int stage = 0;
  for (int n_block = range.n_max - 1; n_block >= range.n_min; --n_block) {
    if (n_block > range.n_min) {
      load_kv(n_block - 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if constexpr (Tr::kQInRegs) {
      if (n_block == range.n_max - 1) {
#pragma unroll
        for (int mt = 0; mt < kM; ++mt)
#pragma unroll
          for (int kk = 0; kk < kD / 16; ++kk)
            ldmatrix_x4(q_frag[mt][kk], (q_lane ^ Tile::step_xor(kk)) + Tile::step_offset(16 * mt, kk));
      }
    }
    const uint32_t k_base = s_k + stage * Tr::kKVBytes;
    const uint32_t v_base = s_v + stage * Tr::kKVBytes;
    // A rolled loop: unrolled, ptxas overlaps the sub-tiles and runs out of registers.
#pragma unroll 1
    for (int sub = 0; sub < kBlockN / kSubN; ++sub) {
    const uint32_t sub_off = sub * (kSubN * Tile::kRowBytes);  // the sub-tile's first key row
    const int n0 = n_block * kBlockN + sub * kSubN;
    // No key of this sub-tile is visible to any of the warp's rows (causal/window band, sequence
    // end): its scores would all be -inf and change nothing.
    int mask_hi, mask_lo, skip_hi, skip_lo;
    asm volatile("ld.shared.v4.s32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(mask_hi), "=r"(mask_lo), "=r"(skip_hi), "=r"(skip_lo)
                 : "r"(s_bounds));
    if (n0 > skip_hi || n0 < skip_lo) continue;

    // S = Q K^T over the head dim, 16 at a time; each K fragment feeds every row tile.
    // With the kk loop fully unrolled its first step writes S without an accumulator input; else
    // S starts from zeros.
    constexpr bool kUnrolled = Tr::kQInRegs || kM > 1;
    float s[kM][kNTiles][4];
    if constexpr (!kUnrolled) {
#pragma unroll
      for (int mt = 0; mt < kM; ++mt)
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
    }
    if constexpr (kUnrolled && Tr::kRollQK) {
      // Two k16 steps per pass of a rolled loop: the loop edge keeps ptxas from loading the Q and
      // K fragments of many steps ahead (on sm_90 it otherwise spills). Pass i covers steps 2i and
      // 2i + 1, whose XOR terms are 64 (i % 2) and 64 (i % 2) + 32 and whose immediate term is
      // 128 (i / 2): adding that to the lane address before the XOR changes only bits >= 7, which
      // the XOR (bits 5-6) leaves alone.
      const uint32_t k_at = k_base + sub_off + k_lane;
      auto qk_pass = [&](auto first_, uint32_t q_addr, uint32_t k_addr, uint32_t x) {
        static_for<2>([&](auto j_) {
          constexpr int j = decltype(j_)::value;
          uint32_t a[kM][4];
          static_for<kM>([&](auto mt_) {
            constexpr int mt = decltype(mt_)::value;
            ldmatrix_x4<Tile::step_offset(16 * mt, 0)>(a[mt], q_addr ^ (x + 32 * j));
          });
          static_for<kSubN / 16>([&](auto nn_) {
            constexpr int nn = decltype(nn_)::value;
            uint32_t kb[4];
            ldmatrix_x4<Tile::step_offset(16 * nn, 0)>(kb, k_addr ^ (x + 32 * j));
#pragma unroll
            for (int mt = 0; mt < kM; ++mt) {
              if constexpr (decltype(first_)::value && j == 0) {
                mma_m16n8k16_zero_c<T>(s[mt][2 * nn], a[mt], kb[0], kb[1]);
                mma_m16n8k16_zero_c<T>(s[mt][2 * nn + 1], a[mt], kb[2], kb[3]);
              } else {
                mma_m16n8k16<T>(s[mt][2 * nn], a[mt], kb[0], kb[1]);
                mma_m16n8k16<T>(s[mt][2 * nn + 1], a[mt], kb[2], kb[3]);
              }
            }
          });
        });
      };
      qk_pass(std::true_type{}, q_lane, k_at, 0u);
#pragma unroll 1
      for (int i = 1; i < kD / 32; ++i) {
        const uint32_t o = (i / 2) * 128u;
        qk_pass(std::false_type{}, q_lane + o, k_at + o, (i % 2) * 64u);
      }
    } else if constexpr (kUnrolled) {
      const uint32_t k_at = k_base + sub_off + k_lane;  // this lane's K fragment address
      static_for<kD / 16>([&](auto kk_) {
        constexpr int kk = decltype(kk_)::value;
        uint32_t a[kM][4];
        static_for<kM>([&](auto mt_) {
          constexpr int mt = decltype(mt_)::value;
          if constexpr (Tr::kQInRegs) {
#pragma unroll
            for (int i = 0; i < 4; ++i) a[mt][i] = q_frag[Tr::kQInRegs ? mt : 0][Tr::kQInRegs ? kk : 0][i];
          } else {
            ldmatrix_x4<Tile::step_offset(16 * mt, kk)>(a[mt], q_lane ^ Tile::step_xor(kk));
          }
        });
        static_for<kSubN / 16>([&](auto nn_) {
          constexpr int nn = decltype(nn_)::value;
          uint32_t kb[4];
          ldmatrix_x4<Tile::step_offset(16 * nn, kk)>(kb, k_at ^ Tile::step_xor(kk));
#pragma unroll
          for (int mt = 0; mt < kM; ++mt) {
            if constexpr (kk == 0) {
              mma_m16n8k16_zero_c<T>(s[mt][2 * nn], a[mt], kb[0], kb[1]);
              mma_m16n8k16_zero_c<T>(s[mt][2 * nn + 1], a[mt], kb[2], kb[3]);
            } else {
              mma_m16n8k16<T>(s[mt][2 * nn], a[mt], kb[0], kb[1]);
              mma_m16n8k16<T>(s[mt][2 * nn + 1], a[mt], kb[2], kb[3]);
            }
          }
        });
      });
    } else {
#pragma unroll 4
      for (int kk = 0; kk < kD / 16; ++kk) {
        uint32_t a[kM][4];
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) ldmatrix_x4(a[mt], (q_lane ^ Tile::step_xor(kk)) + Tile::step_offset(16 * mt, kk));
#pragma unroll
        for (int nn = 0; nn < kSubN / 16; ++nn) {
          uint32_t kb[4];
          ldmatrix_x4(kb, ((k_base + sub_off + k_lane) ^ Tile::step_xor(kk)) + Tile::step_offset(16 * nn, kk));
#pragma unroll
          for (int mt = 0; mt < kM; ++mt) {
            mma_m16n8k16<T>(s[mt][2 * nn], a[mt], kb[0], kb[1]);
            mma_m16n8k16<T>(s[mt][2 * nn + 1], a[mt], kb[2], kb[3]);
          }
        }
      }
    }

    // Score transforms (every tile when enabled) and the mask (boundary tiles only). At d = 128 their
    // lane and row coordinates come from the special registers and the warp's shared scalars, read
    // here; the other head dims have the registers to keep them.
    // This lane's first tile row is row0; row tile mt adds 16 mt, the second row of a tile 8. The
    // token of tile row r is r (r / pack when packed) and its aligned position
    // i' = token + seqlen_k - seqlen_q.
    int sk_, off_, row0;
    auto coords = [&]() {
      if constexpr (Tr::kFenceSteps) {
        int w_first, unused;
        asm volatile("ld.shared.v4.s32 {%0, %1, %2, %3}, [%4+16];"
                     : "=r"(sk_), "=r"(off_), "=r"(w_first), "=r"(unused)
                     : "r"(s_bounds));
        row0 = w_first + (fresh_tid_x() % 32) / 4;
      } else {
        sk_ = sk;
        off_ = off;
        row0 = m0 + warp * Tr::kWarpRows + g;
      }
    };
    auto lane_t = [&]() { return Tr::kFenceSteps ? fresh_tid_x() % 4 : t; };
    auto aligned = [&](int mt, int half) {
      const int r = row0 + 16 * mt + 8 * half;
      return (p.pack > 1 ? r / p.pack : r) + off_;
    };
    if (p.softcap_prescale != 0.0f) {
#pragma unroll
      for (int mt = 0; mt < kM; ++mt)
#pragma unroll
        for (int j = 0; j < kNTiles; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][j][e] = tanhf(s[mt][j][e] * p.softcap_prescale);
    }
    if (p.alibi_slopes != nullptr) {
      coords();
      const int t = lane_t(), hy = Tr::kFenceSteps ? fresh_ctaid_y() : h;
#pragma unroll
      for (int mt = 0; mt < kM; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int r = row0 + 16 * mt + 8 * half;  // packed: blockIdx.y is the kv head
          const float sl = p.alibi_slopes[p.pack > 1 ? hy * p.pack + r % p.pack : hy] * p.alibi_unit;
          const int al = aligned(mt, half);
#pragma unroll
          for (int j = 0; j < kNTiles; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int rel = n0 + 8 * j + 2 * t + e - al;  // j - i'
              s[mt][j][2 * half + e] -= sl * float(abs(rel));
            }
        }
    }
    if (n0 > mask_hi || n0 < mask_lo) {
      coords();
      const int t = lane_t(), sk = sk_;
      // Key n0 + c (c = 8 j + 2 t + e) is visible to a row iff lo <= c - 2 t <= hi, with per-row
      // bounds from the sequence end and the window, clamped to the tile so that the per-element
      // test is two compares against compile-time constants.
      const int64_t end = int64_t(sk) - n0 - 2 * t - 1;  // last c - 2t before the sequence end
#pragma unroll
      for (int mt = 0; mt < kM; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t rel0 = int64_t(n0) + 2 * t - aligned(mt, half);  // j - i' at c - 2t = 0
          int64_t hi64 = end, lo64 = 0;
          if (p.window_right >= 0) hi64 = min(hi64, p.window_right - rel0);
          if (p.window_left >= 0) lo64 = max(lo64, -int64_t(p.window_left) - rel0);
          const int hi = int(min(max(hi64, int64_t(-1)), int64_t(kSubN)));
          const int lo = int(min(max(lo64, int64_t(0)), int64_t(kSubN)));
#pragma unroll
          for (int j = 0; j < kNTiles; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int c = 8 * j + e;
              if (c > hi || c < lo) s[mt][j][2 * half + e] = -CUDART_INF_F;
            }
        }
    }

    // Online softmax in three phases, so that the rescale branch runs while the scores are the only
    // thing live beside the output accumulators: (1) the new row maxima and the rescale factors of
    // every row tile, (2) one warp-uniform branch that rescales the outputs when some factor is not
    // exactly 1 (once a row's max settles its factor is ex2(0) = 1: most tiles after the first few),
    // (3) the exponentials, each n8 pair packed to 16 bits at once as the A operand of P V.
    float corr[kM][2], shift[kM][2];
    bool rescale = false;
#pragma unroll
    for (int mt = 0; mt < kM; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = sm[mt].m[r];
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) mx = fmaxf(mx, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
        mx = quad_max(mx);
        shift[mt][r] = mx == -CUDART_INF_F ? 0.0f : mx * p.scale_log2;
        corr[mt][r] = fast_exp2(sm[mt].m[r] * p.scale_log2 - shift[mt][r]);
        sm[mt].m[r] = mx;
        rescale |= corr[mt][r] != 1.0f;
      }
    uint32_t pa[kM][kSubN / 16][4];
#pragma unroll
    for (int mt = 0; mt < kM; ++mt) {
      float sum[2];
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float pr = fast_exp2(fmaf(s[mt][j][e], p.scale_log2, -shift[mt][e / 2]));
          s[mt][j][e] = pr;
          if (e % 2 == 1) {  // the pair (e - 1, e) is done: fold it into the row sum
            const float pair = s[mt][j][e - 1] + pr;
            sum[e / 2] = j == 0 ? pair : sum[e / 2] + pair;
          }
        }
#pragma unroll
      for (int ks = 0; ks < kSubN / 16; ++ks) {
        pa[mt][ks][0] = pack2<T>(s[mt][2 * ks][0], s[mt][2 * ks][1]);
        pa[mt][ks][1] = pack2<T>(s[mt][2 * ks][2], s[mt][2 * ks][3]);
        pa[mt][ks][2] = pack2<T>(s[mt][2 * ks + 1][0], s[mt][2 * ks + 1][1]);
        pa[mt][ks][3] = pack2<T>(s[mt][2 * ks + 1][2], s[mt][2 * ks + 1][3]);
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) sm[mt].l[r] = fmaf(sm[mt].l[r], corr[mt][r], sum[r]);
    }

    // At d = 128 the vote also reads the new row sums, so every exponential is done before the
    // branch (else ptxas defers them into P V, where the scores then stay live beside the V
    // fragments and it spills). The sums are never negative: that test is false for any finite input.
    if constexpr (Tr::kFenceSteps) {
      static_assert(kM == 2, "the sum check reads both row tiles");
      rescale = rescale || !((sm[0].l[0] + sm[0].l[1]) + (sm[1].l[0] + sm[1].l[1]) >= 0.0f);
    }
    if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
      for (int mt = 0; mt < kM; ++mt)
#pragma unroll
        for (int j = 0; j < kDTiles; ++j) {
          acc_o[mt][j][0] *= corr[mt][0];
          acc_o[mt][j][1] *= corr[mt][0];
          acc_o[mt][j][2] *= corr[mt][1];
          acc_o[mt][j][3] *= corr[mt][1];
        }
    }
    // O += P V: two n8 tiles of P form the A operand of one k16 step; each V fragment feeds every
    // row tile.
    const uint32_t v_at = v_base + sub_off + v_lane;  // this lane's V fragment address
    static_for<kSubN / 16>([&](auto ks_) {
      constexpr int ks = decltype(ks_)::value;
      static_for<kD / 16>([&](auto dn_) {
        constexpr int dn = decltype(dn_)::value;
        uint32_t vb[4];
        ldmatrix_x4_trans<Tile::step_offset(16 * ks, dn)>(vb, v_at ^ Tile::step_xor(dn));
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) {
          mma_m16n8k16<T>(acc_o[mt][2 * dn], pa[mt][ks], vb[0], vb[1]);
          mma_m16n8k16<T>(acc_o[mt][2 * dn + 1], pa[mt][ks], vb[2], vb[3]);
        }
        if constexpr (Tr::kFenceSteps && dn % 2 == 1) __syncwarp();
      });
    });
    }
    __syncthreads();  // the stage just read is the next iteration's copy target
    stage ^= 1;
  }

  // The epilogue re-reads its lane and row coordinates from the special registers instead of
  // keeping them live through the main loop, whose accumulators need every register.
  {
  const int tid = fresh_tid_x(), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int m0 = fresh_ctaid_x() * kBlockM;
  const int row0 = m0 + warp * Tr::kWarpRows + g;
  // The sequence's first row and length, the head and the packing, likewise re-read.
  const int b = fresh_ctaid_z(), h = fresh_ctaid_y(), pack = p.pack;
  int q_start, sq;
  if (p.cu_seqlens_q != nullptr) {
    q_start = p.cu_seqlens_q[b];
    sq = p.cu_seqlens_q[b + 1] - q_start;
  } else {
    q_start = b * p.seqlen_q;
    sq = p.seqlen_q;
  }
  const int rows = sq * pack;
  auto head_of = [&](int r) { return pack > 1 ? h * pack + r % pack : h; };  // packed: h is the kv head
  // Final normalisation, with the sink (if any) joining the denominator in log2 units; then each
  // lane writes its column pairs of its valid rows straight from registers (4-byte stores at
  // immediate offsets from one row pointer: no shared-memory staging, no per-element addressing).
  uint16_t* o = static_cast<uint16_t*>(p.o) + int64_t(q_start) * p.o_row_stride + 2 * t;

#pragma unroll
  for (int mt = 0; mt < kM; ++mt) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + 16 * mt + 8 * r;  // tile row
      const float sink_log2 = p.sinks != nullptr ? p.sinks[head_of(row)] * kLog2e : -CUDART_INF_F;
      const float l = quad_sum(sm[mt].l[r]);
      const float ml = sm[mt].m[r] == -CUDART_INF_F ? -CUDART_INF_F : sm[mt].m[r] * p.scale_log2;
      const float top = fmaxf(ml, sink_log2);
      float lse;
      if (top == -CUDART_INF_F) {
        inv[r] = 0.0f;
        lse = -CUDART_INF_F;
      } else {
        const float wl = fast_exp2(ml - top);
        const float total = fmaf(l, wl, fast_exp2(sink_log2 - top));
        inv[r] = wl / total;
        lse = (top + __log2f(total)) * kLn2;
      }
      if (p.lse != nullptr && t == 0 && row < rows) {
        p.lse[int64_t(head_of(row)) * p.total_q + q_start + (pack > 1 ? row / pack : row)] = lse;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + 16 * mt + 8 * r;  // tile row
      if (row >= rows) continue;
      uint16_t* dst = o + int64_t(pack > 1 ? row / pack : row) * p.o_row_stride + int64_t(head_of(row)) * p.head_dim;
      if (p.head_dim == kD) {
#pragma unroll
        for (int j = 0; j < kDTiles; ++j)
          *reinterpret_cast<uint32_t*>(dst + 8 * j) =
              pack2<T>(acc_o[mt][j][2 * r] * inv[r], acc_o[mt][j][2 * r + 1] * inv[r]);
      } else {  // padded head dim: only the real columns (head_dim is a multiple of 8)
#pragma unroll
        for (int j = 0; j < kDTiles; ++j)
          if (8 * j < p.head_dim)
            *reinterpret_cast<uint32_t*>(dst + 8 * j) =
                pack2<T>(acc_o[mt][j][2 * r] * inv[r], acc_o[mt][j][2 * r + 1] * inv[r]);
      }
    }
  }
  }
}

}  // namespace sk

#define SK_ATTN_FWD(name, T, D)                                                                        \
  extern "C" __global__ void __launch_bounds__(sk::AttnFwdTraits<T, D>::kThreads)                      \
      name(const __grid_constant__ sk::AttnFwdParams p) {                                              \
    extern __shared__ __align__(128) unsigned char smem[];                                             \
    sk::attention_fwd<T, D>(p, smem);                                                                  \
  }

SK_ATTN_FWD(attention_fwd_bf16_d64, __nv_bfloat16, 64)
SK_ATTN_FWD(attention_fwd_bf16_d128, __nv_bfloat16, 128)
SK_ATTN_FWD(attention_fwd_bf16_d256, __nv_bfloat16, 256)
SK_ATTN_FWD(attention_fwd_f16_d64, __half, 64)
SK_ATTN_FWD(attention_fwd_f16_d128, __half, 128)
SK_ATTN_FWD(attention_fwd_f16_d256, __half, 256)
