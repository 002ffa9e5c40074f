// Decode attention over a paged KV cache (src/attention/decode/): GQA-packed tensor-core tiles,
// split-KV partials, their n-way merge by LSE, and the append of new K/V rows into pages.
//
// Cache: K and V pages [num_pages, page_size, kv_heads, head_dim] of T; sequence b's key j lives in
// page block_table[b, j / page_size], row j % page_size. page_size is a power of two (1..256).
//
// decode_attention: one CTA of 4 warps per (kv head x row tile of 64, batch entry, split). The rows
// of a CTA are every (query token, query head of the kv group) pair of the batch entry, token-major:
// row r is token r / group of head kvh * group + r % group. So all heads of a kv group (times q_len,
// times the samples of a cascade group) share one tile and each K/V byte is read once per kv head
// (while rows <= 64; more rows take more row tiles, each reading the keys again through L2).
// The rows span R <= 4 mma row tiles of 16; the four warps are RT = R rounded up to 1, 2 or 4 row
// tiles times 4 / RT key groups: warp w computes row tile w % RT over the 16-key chunks
// w / RT, w / RT + 4 / RT, ... of every K/V tile, with its own online-softmax state; at the end the
// key groups of a row tile are merged through shared memory. K/V tiles of kBlockN keys (64 for
// d <= 128, 32 for d = 256) are gathered row by row through the block table with cp.async
// (double-buffered) into the XOR-swizzled layout of attention forward, so that ldmatrix (and
// ldmatrix.trans for V) feeds mma.sync m16n8k16 as there.
//
// Positions (what causal, window and ALiBi see), counted from the entry's key 0: key j is at j;
// query token tq (sample s = tq / q_len, qi = tq % q_len) is at a = qi - q_len + len_b + q_extra[b *
// samples + s] (0 without q_extra): the new tokens are the last q_len of the sequence. A cascade's
// prefix pass passes the suffix lengths as q_extra (all samples' queries are rows of one tile over
// the shared prefix pages); its suffix pass is plain decode over the suffix pages, since only
// differences of positions matter and the prefix shifts queries and suffix keys alike.
//   logit = cap(scale q.k) - slope |a - j|; visible iff j < len_b, j <= a (causal) and
//   j >= a - window_left (window_left >= 0).
// Splits: split z covers keys [z chunk, (z + 1) chunk) (chunk a multiple of kBlockN). With partial
// outputs (part_o != null) each CTA writes its normalised O (fp32) and natural-log LSE into slot
// slot_offset + z, empty rows as O = 0, LSE = -inf, and decode_merge combines the slots (and adds the
// sink); else it writes out (T) and lse directly, sink included.
// Safety: len_b is clamped to the block table row's pages, so no page id outside the row is read; a
// page id outside [0, num_pages) (possible only through a device table the host never saw) reads as
// zeros instead of out of bounds.
//
// fp8 (kFp8): e4m3 bytes are copied as bytes and converted in registers (bit moves into f16, through
// fp32 for bf16); the mma's k index is permuted so that each lane reads whole 32-bit words of K and
// V (see the comments in the loop), and the per-kv-head scales (x 256) fold into the score scale and
// the output.
//
// Per (kv head, entry): FLOPs 4 d x rows x visible keys on mma (rows padded to 16 per row tile);
// fewest bytes: each visible key's K and V row once (2 d sizeof(T) per key and kv head; 2 d for
// fp8), q and out once, plus the block table entries.
//
// VM counters (examples/sol_report.rs and tests/attention_decode.rs; bf16, d 128, page 16, q_len 1,
// 8 query heads per kv head):
//   batch 1, 32k context, 171 splits on 108 SMs: K/V bytes requested 1.051 x each kv head's keys
//     once (8 x less than per query head), unique bytes 16.79 MB for 16.78 MB fewest; 2.05 M warp
//     instructions; the merge 0.055 M. H200 model 3.64 us against a 3.50 us floor (DRAM).
//   batch 64, 4k context, 4 splits: 1.015 x the K/V floor, 11.3 M warp instructions.
//   batch 1, 4099 keys, 2 kv heads x 8 query heads, one split: 1.008 x (4.23 MB of 4.20 MB); fp8:
//     2.13 MB (half), at 0.65 M warp instructions against 0.33 M (the byte conversions).
//   cascade, 16 samples sharing a 1000-key prefix (4 heads, 1 kv head, d 64): the prefix pass
//     requests 263.6 kB of K/V, the prefix once (256 kB), not once per sample (4.10 MB).
// mma FLOPs are 2x the useful ones at 8 rows per kv head (rows pad to a 16-row mma tile).
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/math.cuh"
#include "common/mma.cuh"
#include "common/softmax.cuh"

namespace sk {

// Mirrored by `DecodeParams` in src/attention/decode/mod.rs (a test checks the size against the PTX).
struct DecodeParams {
  const void* q;               // [tokens, heads, head_dim] T
  const void* k_cache;         // [num_pages, page_size, kv_heads, head_dim] T
  const void* v_cache;
  const int32_t* block_table;  // [batch, pages_per_seq]
  const int32_t* seq_lens;     // [batch] keys of each entry's cache row (new tokens included)
  const int32_t* q_extra;      // [batch * samples] or null
  const float* alibi_slopes;   // [heads] or null
  const float* sinks;          // [heads] or null (direct output only)
  const float* k_scale;        // [kv_heads] fp8 caches: K = k_scale x e4m3 value; else null
  const float* v_scale;        // [kv_heads]
  void* o;                     // [tokens, heads, head_dim] T (direct output) or null
  float* lse;                  // [tokens, heads] or null (direct output)
  float* part_o;               // [slots, tokens, heads, head_dim] fp32 or null
  float* part_lse;             // [slots, tokens, heads]
  int64_t pages_per_seq;       // block table row length
  int32_t num_pages;
  int32_t page_shift;          // log2(page_size)
  int32_t q_len;               // query tokens per sample
  int32_t samples;             // samples per batch entry (1 except a cascade's prefix pass)
  int32_t tokens;              // query tokens in all: batch * samples * q_len
  int32_t heads;
  int32_t kv_heads;
  int32_t head_dim;            // multiple of 8, <= the instantiation's
  int32_t group;               // heads / kv_heads
  int32_t row_tiles;           // CTAs per kv head along the rows (64 rows each)
  int32_t chunk;               // keys per split, a multiple of kBlockN
  int32_t slot_offset;         // partial slot of split 0
  int32_t causal;
  int32_t window_left;         // -1: unbounded
  float scale_log2;            // log2(e) x (softcap if softcap > 0 else scale)
  float softcap_prescale;      // scale / softcap, or 0
  float alibi_unit;            // 1 / (softcap if softcap > 0 else scale)
};
static_assert(sizeof(DecodeParams) == 192, "DecodeParams layout");
static_assert(offsetof(DecodeParams, pages_per_seq) == 112, "DecodeParams layout");
static_assert(offsetof(DecodeParams, scale_log2) == 176, "DecodeParams layout");

// Two e4m3 bytes, at bytes 1 and 3 of `u` (bytes 0 and 2 are ignored), as f16x2 of the values
// divided by 256: e4m3's sign, exponent and mantissa bits moved into f16's places read with f16's
// exponent bias (15 instead of 7), exact for every finite e4m3 including subnormals (the caller
// multiplies the 256 back in through its scales). e4m3's NaN (0x7f / 0xff) becomes 1.875 x 2^-8.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2_div256(uint32_t u) {
  return (u & 0x80008000u) | ((u >> 1) & 0x3f803f80u);
}
template <typename T> __device__ __forceinline__ uint32_t e4m3x2_to(uint32_t u);
template <> __device__ __forceinline__ uint32_t e4m3x2_to<__half>(uint32_t u) { return e4m3x2_to_f16x2_div256(u); }
template <> __device__ __forceinline__ uint32_t e4m3x2_to<__nv_bfloat16>(uint32_t u) {
  // Through fp32: exact, since e4m3 values fit bf16.
  const uint32_t h = e4m3x2_to_f16x2_div256(u);
  const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h));
  return pack2<__nv_bfloat16>(f.x, f.y);
}

// kFp8: K/V pages hold e4m3 bytes, kept as bytes in shared memory (rows of kD bytes, 16-byte chunk
// c of row r at c ^ (r % 8)) and converted to T in registers.
template <typename T, int kHeadDim, bool kFp8 = false> struct DecodeTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 64;  // rows per CTA: 4 row tiles of 16
  static constexpr int kBlockN = kHeadDim <= 128 || kFp8 ? 64 : 32;
  static constexpr int kD = kHeadDim;
  static constexpr int kKVElem = kFp8 ? 1 : 2;  // bytes per cached element
  using Tile = SwizzledTile<kHeadDim>;
  static constexpr int kQBytes = kBlockM * kD * 2;
  static constexpr int kKVBytes = kBlockN * kD * kKVElem;
  static constexpr int kStages = 2;
  // The key-group merge reuses the Q and K/V buffers: per warp 16 rows of kD fp32 (+8 pad floats per
  // row, so that the eight row groups of a store fall in different banks).
  static constexpr int kORow = kD + 8;
  static constexpr int kOBytes = kWarps * 16 * kORow * 4;
  static constexpr int kTileBytes = kQBytes + kStages * 2 * kKVBytes;
  static_assert(kOBytes <= kTileBytes, "the merge buffer fits in the tiles");
  // Per warp and row: m (log2 units) and l; then per key group and CTA row: the merge factors.
  static constexpr int kStateBytes = kWarps * 16 * 2 * 4 + kWarps * kBlockM * 4;
  static constexpr int kSmemBytes = kTileBytes + kStateBytes;
};

// Byte offset of 16-byte chunk c of row r in an fp8 tile of kD-byte rows.
template <int kD> __device__ __forceinline__ uint32_t fp8_offset(int r, int c) {
  static_assert(kD >= 128, "eight distinct chunks per row group");
  return uint32_t(r * kD + ((c ^ (r & 7)) * 16));
}

template <typename T, int kHeadDim, bool kFp8 = false>
__device__ __forceinline__ void decode_attention(const DecodeParams& p, unsigned char* smem) {
  using Tr = DecodeTraits<T, kHeadDim, kFp8>;
  using Tile = typename Tr::Tile;
  constexpr int kD = Tr::kD, kBlockN = Tr::kBlockN, kBlockM = Tr::kBlockM;
  constexpr int kDTiles = kD / 8;

  const int kvh = blockIdx.x / p.row_tiles, rtile = blockIdx.x % p.row_tiles;
  const int b = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int group = p.group;
  const int q_tokens = p.q_len * p.samples;
  const int rows = q_tokens * group;
  const int m0 = rtile * kBlockM;
  const int rows_here = min(kBlockM, rows - m0);
  const int n_rt = (rows_here + 15) / 16;                 // row tiles with rows
  const int rt_slots = n_rt <= 1 ? 1 : (n_rt <= 2 ? 2 : 4);  // warps' row-tile slots
  const int n_kg = Tr::kWarps / rt_slots;                  // key groups per row tile
  const int my_rt = warp % rt_slots, my_kg = warp / rt_slots;

  // The row's length is clamped to its block-table row: page ids past it are never read.
  const int64_t cap = p.pages_per_seq << p.page_shift;
  const int len = int(min(int64_t(max(p.seq_lens[b], 0)), cap));
  // a(r): the row's position counted in this entry's key indices (qpos - kpos(0)).
  auto rel_pos = [&](int r) {
    const int tq = r / group;
    const int s = tq / p.q_len, qi = tq % p.q_len;
    const int extra = p.q_extra != nullptr ? p.q_extra[int64_t(b) * p.samples + s] : 0;
    return qi - p.q_len + len + extra;
  };
  auto hi_of = [&](int a) { return p.causal ? min(len - 1, a) : len - 1; };
  auto lo_of = [&](int a) { return p.window_left >= 0 ? max(0, a - p.window_left) : 0; };

  // The CTA's keys: the split's, narrowed to those some row sees.
  int a_min = 0x7fffffff, a_max = -0x7fffffff - 1;
  for (int r = lane; r < rows_here; r += 32) {
    const int a = rel_pos(m0 + r);
    a_min = min(a_min, a);
    a_max = max(a_max, a);
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    a_min = min(a_min, __shfl_xor_sync(0xffffffffu, a_min, o));
    a_max = max(a_max, __shfl_xor_sync(0xffffffffu, a_max, o));
  }
  const int s_begin = split * p.chunk;
  const int s_end = int(min(int64_t(len), int64_t(s_begin) + p.chunk));
  const int k_lo = max(s_begin, lo_of(a_min));
  const int k_hi = min(s_end, hi_of(a_max) + 1);
  const int tile_lo = k_lo / kBlockN, tile_hi = k_hi > k_lo ? (k_hi + kBlockN - 1) / kBlockN : tile_lo;

  // This lane's rows (g and g + 8 of its warp's row tile): visible key range [lo, hi].
  int hi_own[2], lo_own[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = 16 * my_rt + 8 * half + g;
    if (my_rt < n_rt && r < rows_here) {
      const int a = rel_pos(m0 + r);
      hi_own[half] = hi_of(a);
      lo_own[half] = lo_of(a);
    } else {
      hi_own[half] = -1;
      lo_own[half] = 0;
    }
  }
  int w_hi = max(hi_own[0], hi_own[1]), w_lo = min(lo_own[0], lo_own[1]);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    w_hi = max(w_hi, __shfl_xor_sync(0xffffffffu, w_hi, o));
    w_lo = min(w_lo, __shfl_xor_sync(0xffffffffu, w_lo, o));
  }
  const int own_hi_min = min(hi_own[0], hi_own[1]), own_lo_max = max(lo_own[0], lo_own[1]);
  // fp8: scores come out in units of 1 / (256 k_scale) of the true q.k, and P V in 1 / (256 v_scale).
  float score_mult = 1.0f, out_mult = 1.0f;
  if constexpr (kFp8) {
    score_mult = 256.0f * p.k_scale[kvh];
    out_mult = 256.0f * p.v_scale[kvh];
  }
  const float scale_log2 = p.softcap_prescale != 0.0f ? p.scale_log2 : p.scale_log2 * score_mult;
  const float softcap_prescale = p.softcap_prescale * score_mult;
  const float alibi_unit = p.softcap_prescale != 0.0f ? p.alibi_unit : p.alibi_unit / score_mult;
  float slope[2] = {0.0f, 0.0f};
  if (p.alibi_slopes != nullptr) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = min(m0 + 16 * my_rt + 8 * half + g, rows - 1);
      slope[half] = p.alibi_slopes[kvh * group + r % group] * alibi_unit;
    }
  }
  int a_own[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) a_own[half] = rel_pos(min(m0 + 16 * my_rt + 8 * half + g, rows - 1));

  const uint32_t s_q = smem_addr(smem);
  const uint32_t s_k = s_q + Tr::kQBytes;
  const uint32_t s_v = s_k + Tr::kStages * Tr::kKVBytes;

  const uint16_t* q_entry = static_cast<const uint16_t*>(p.q) + int64_t(b) * q_tokens * p.heads * p.head_dim;
  const unsigned char* kc = static_cast<const unsigned char*>(p.k_cache);
  const unsigned char* vc = static_cast<const unsigned char*>(p.v_cache);
  const int32_t* bt = p.block_table + int64_t(b) * p.pages_per_seq;
  const int page_mask = (1 << p.page_shift) - 1;
  const int64_t kv_row = int64_t(p.kv_heads) * p.head_dim * Tr::kKVElem;  // bytes per cache row

  // Gathers keys [n0, n0 + kBlockN) of K and V: rows past len are zero-filled without a read.
  auto load_kv = [&](int tile, int stage) {
    constexpr int kChunks = kD * Tr::kKVElem / 16;
    constexpr int kRowsPerPass = Tr::kThreads / kChunks;
    const int n0 = tile * kBlockN;
    static_assert(kChunks <= 32, "a row's copies stay within one warp");
    const int r0 = tid / kChunks, c = tid % kChunks;
    const bool col_ok = c * (16 / Tr::kKVElem) < p.head_dim;
#pragma unroll
    for (int i = 0; i < kBlockN / kRowsPerPass; ++i) {
      const int r = r0 + i * kRowsPerPass;
      const int j = n0 + r;
      // One lane per row reads the page id (the row's kChunks lanes are consecutive lanes of one
      // warp): a 4-byte request per key instead of one per 16-byte copy.
      int page = 0;
      if (c == 0 && j < len) page = bt[j >> p.page_shift];
      page = __shfl_sync(0xffffffffu, page, lane & ~(kChunks - 1));
      const bool ok = j < len && col_ok && page >= 0 && page < p.num_pages;
      const int64_t off =
          ((int64_t(page) << p.page_shift) + (j & page_mask)) * kv_row + (int64_t(kvh) * p.head_dim) * Tr::kKVElem + c * 16;
      uint32_t dst;
      if constexpr (kFp8) {
        dst = fp8_offset<kD>(r, c) + stage * Tr::kKVBytes;
      } else {
        dst = Tile::offset(r, c) + stage * Tr::kKVBytes;
      }
      cp_async_16(s_k + dst, ok ? kc + off : kc, ok ? 16u : 0u);
      cp_async_16(s_v + dst, ok ? vc + off : vc, ok ? 16u : 0u);
    }
  };

  float acc_o[kDTiles][4];
#pragma unroll
  for (int j = 0; j < kDTiles; ++j) acc_o[j][0] = acc_o[j][1] = acc_o[j][2] = acc_o[j][3] = 0.0f;
  OnlineSoftmax sm;
  sm.init();

  if (tile_hi > tile_lo) {
    auto row_ptr = [&](int r) {
      const int vr = m0 + r;
      return q_entry + (int64_t(vr / group) * p.heads + kvh * group + vr % group) * p.head_dim;
    };
    load_rows_async<kBlockM, kD, Tr::kThreads>(s_q, row_ptr, rows_here, p.head_dim, tid);
    load_kv(tile_lo, 0);
    cp_async_commit();
  }

  // ldmatrix lane addressing as in attention forward (fwd.cu).
  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_chunk = lane / 16;
  const int b_row = (lane % 8) + 8 * (lane / 16), b_chunk = (lane / 8) % 2;
  const uint32_t q_lane = s_q + Tile::lane_offset(16 * my_rt + a_row, a_chunk, 0);
  const uint32_t k_lane = Tile::lane_offset(b_row, b_chunk, 0);
  const uint32_t v_lane = Tile::lane_offset(a_row, a_chunk, 0);
  const bool computes = my_rt < n_rt;

  int stage = 0;
  for (int tile = tile_lo; tile < tile_hi; ++tile) {
    if (tile + 1 < tile_hi) {
      load_kv(tile + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint32_t k_at = s_k + stage * Tr::kKVBytes + k_lane;
    const uint32_t v_at = s_v + stage * Tr::kKVBytes + v_lane;
    for (int c = my_kg; computes && c < kBlockN / 16; c += n_kg) {
      const int n0 = tile * kBlockN + 16 * c;
      if (n0 > w_hi || n0 + 15 < w_lo) continue;  // no row of the warp sees these keys
      float s[2][4];
      if constexpr (kFp8) {
        // K words: lane (g, t) reads dims 16 kk + 4t..4t+3 of keys g and g + 8; the mma's k index
        // 2t, 2t+1 | 2t+8, 2t+9 stands for those dims (a permutation of the sum over the head dim),
        // so Q's A fragment is read with the same permutation (8 bytes per row).
        const int t_off = 8 * (t & 1);
        const uint32_t k_st = s_k + stage * Tr::kKVBytes;
        static_for<kD / 16>([&](auto kk_) {
          constexpr int kk = decltype(kk_)::value;
          uint32_t a[4];
          const uint32_t qa = s_q + Tile::offset(16 * my_rt + g, 2 * kk + (t >> 1)) + t_off;
          const uint32_t qb = s_q + Tile::offset(16 * my_rt + g + 8, 2 * kk + (t >> 1)) + t_off;
          asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(a[0]), "=r"(a[2]) : "r"(qa));
          asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(a[1]), "=r"(a[3]) : "r"(qb));
#pragma unroll
          for (int nt = 0; nt < 2; ++nt) {
            uint32_t w;
            asm volatile("ld.shared.b32 %0, [%1];" : "=r"(w) : "r"(k_st + fp8_offset<kD>(16 * c + 8 * nt + g, kk) + 4 * t));
            const uint32_t b0 = e4m3x2_to<T>(__byte_perm(w, w, 0x1000));
            const uint32_t b1 = e4m3x2_to<T>(__byte_perm(w, w, 0x3222));
            if constexpr (kk == 0) {
              mma_m16n8k16_zero_c<T>(s[nt], a, b0, b1);
            } else {
              mma_m16n8k16<T>(s[nt], a, b0, b1);
            }
          }
        });
      } else {
      static_for<kD / 16>([&](auto kk_) {
        constexpr int kk = decltype(kk_)::value;
        uint32_t a[4], kb[4];
        ldmatrix_x4<Tile::step_offset(0, kk)>(a, q_lane ^ Tile::step_xor(kk));
        ldmatrix_x4(kb, (k_at ^ Tile::step_xor(kk)) + Tile::step_offset(16 * c, kk));
        if constexpr (kk == 0) {
          mma_m16n8k16_zero_c<T>(s[0], a, kb[0], kb[1]);
          mma_m16n8k16_zero_c<T>(s[1], a, kb[2], kb[3]);
        } else {
          mma_m16n8k16<T>(s[0], a, kb[0], kb[1]);
          mma_m16n8k16<T>(s[1], a, kb[2], kb[3]);
        }
      });
      }
      if (p.softcap_prescale != 0.0f) {
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[j][e] = tanhf(s[j][e] * softcap_prescale);
      }
      if (p.alibi_slopes != nullptr) {
#pragma unroll
        for (int half = 0; half < 2; ++half)
#pragma unroll
          for (int j = 0; j < 2; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              s[j][2 * half + e] -= slope[half] * float(abs(n0 + 8 * j + 2 * t + e - a_own[half]));
      }
      if (n0 + 15 > own_hi_min || n0 < own_lo_max) {
#pragma unroll
        for (int half = 0; half < 2; ++half)
#pragma unroll
          for (int j = 0; j < 2; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int key = n0 + 8 * j + 2 * t + e;
              if (key > hi_own[half] || key < lo_own[half]) s[j][2 * half + e] = -CUDART_INF_F;
            }
      }
      float corr[2];
      sm.update<2>(s, scale_log2, corr);
      if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
#pragma unroll
        for (int j = 0; j < kDTiles; ++j) {
          acc_o[j][0] *= corr[0];
          acc_o[j][1] *= corr[0];
          acc_o[j][2] *= corr[1];
          acc_o[j][3] *= corr[1];
        }
      }
      uint32_t pa[4];
      pa[0] = pack2<T>(s[0][0], s[0][1]);
      pa[1] = pack2<T>(s[0][2], s[0][3]);
      pa[2] = pack2<T>(s[1][0], s[1][1]);
      pa[3] = pack2<T>(s[1][2], s[1][3]);
      if constexpr (kFp8) {
        // V words: lane (g, t) reads dims 32q + 4g..4g+3 of keys 2t, 2t+1, 2t+8, 2t+9 (the mma's k
        // index, matching P's registers); n-tile 4q + nt, column n stands for dim 32q + 4n + nt, so
        // byte nt of the four words gives the B fragment of n-tile 4q + nt.
        const uint32_t v_st = s_v + stage * Tr::kKVBytes;
        const int key0 = 16 * c + 2 * t;
        static_for<kD / 32>([&](auto q_) {
          constexpr int q = decltype(q_)::value;
          uint32_t w[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int key = key0 + (i & 1) + 8 * (i >> 1);
            asm volatile("ld.shared.b32 %0, [%1];"
                         : "=r"(w[i])
                         : "r"(v_st + fp8_offset<kD>(key, 2 * q + (g >> 2)) + 4 * (g & 3)));
          }
          static_for<4>([&](auto nt_) {
            constexpr int nt = decltype(nt_)::value;
            constexpr uint32_t sel = nt | (nt << 4) | ((4 + nt) << 8) | ((4 + nt) << 12);
            const uint32_t b0 = e4m3x2_to<T>(__byte_perm(w[0], w[1], sel));
            const uint32_t b1 = e4m3x2_to<T>(__byte_perm(w[2], w[3], sel));
            mma_m16n8k16<T>(acc_o[4 * q + nt], pa, b0, b1);
          });
        });
      } else {
      static_for<kD / 16>([&](auto dn_) {
        constexpr int dn = decltype(dn_)::value;
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, (v_at ^ Tile::step_xor(dn)) + Tile::step_offset(16 * c, dn));
        mma_m16n8k16<T>(acc_o[2 * dn], pa, vb[0], vb[1]);
        mma_m16n8k16<T>(acc_o[2 * dn + 1], pa, vb[2], vb[3]);
      });
      }
    }
    __syncthreads();  // the stage just read is the next copy's target
    stage ^= 1;
  }

  // Merge the key groups of each row tile: every warp leaves its unnormalised O, max and sum in
  // shared memory (the tiles are free: the loop ended on a barrier and no copy is in flight).
  float* s_o = reinterpret_cast<float*>(smem);
  float* s_ml = reinterpret_cast<float*>(smem + Tr::kTileBytes);           // [warp][16][2]
  float* s_fac = s_ml + Tr::kWarps * 16 * 2;                                // [kg][kBlockM]
  {
    float* o_w = s_o + warp * 16 * Tr::kORow;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int rr = g + 8 * half;
      if constexpr (kFp8) {
        // Accumulator n-tile 4q + nt, columns 2t and 2t + 1: dims 32q + 8t + nt and 32q + 8t + 4 + nt.
#pragma unroll
        for (int j = 0; j < kDTiles; ++j) {
          const int col = 32 * (j / 4) + 8 * t + j % 4;
          o_w[rr * Tr::kORow + col] = acc_o[j][2 * half] * out_mult;
          o_w[rr * Tr::kORow + col + 4] = acc_o[j][2 * half + 1] * out_mult;
        }
      } else {
#pragma unroll
      for (int j = 0; j < kDTiles; ++j)
        *reinterpret_cast<float2*>(o_w + rr * Tr::kORow + 8 * j + 2 * t) =
            make_float2(acc_o[j][2 * half], acc_o[j][2 * half + 1]);
      }
      const float l = quad_sum(sm.l[half]);
      if (t == 0) {
        s_ml[(warp * 16 + rr) * 2] = sm.m[half] == -CUDART_INF_F ? -CUDART_INF_F : sm.m[half] * scale_log2;
        s_ml[(warp * 16 + rr) * 2 + 1] = l;
      }
    }
  }
  __syncthreads();
  const bool direct = p.part_o == nullptr;
  const int slot = p.slot_offset + split;
  if (tid < rows_here) {
    const int r = tid, rt = r / 16, rr = r % 16;
    const int vr = m0 + r;
    const int h = kvh * group + vr % group;
    const int64_t tok = int64_t(b) * q_tokens + vr / group;
    float mx = -CUDART_INF_F;
    for (int kg = 0; kg < n_kg; ++kg) mx = fmaxf(mx, s_ml[((rt + kg * rt_slots) * 16 + rr) * 2]);
    float sum = 0.0f;
    for (int kg = 0; kg < n_kg; ++kg) {
      const int w = rt + kg * rt_slots;
      const float m = s_ml[(w * 16 + rr) * 2];
      sum += m == -CUDART_INF_F ? 0.0f : s_ml[(w * 16 + rr) * 2 + 1] * fast_exp2(m - mx);
    }
    const float sink = direct && p.sinks != nullptr ? p.sinks[h] * kLog2e : -CUDART_INF_F;
    const float top = fmaxf(mx, sink);
    float lse, inv;
    if (top == -CUDART_INF_F) {
      lse = -CUDART_INF_F;
      inv = 0.0f;
    } else {
      const float wl = mx == -CUDART_INF_F ? 0.0f : fast_exp2(mx - top);
      const float total = fmaf(sum, wl, sink == -CUDART_INF_F ? 0.0f : fast_exp2(sink - top));
      inv = wl / total;
      lse = (top + __log2f(total)) * kLn2;
    }
    for (int kg = 0; kg < n_kg; ++kg) {
      const float m = s_ml[((rt + kg * rt_slots) * 16 + rr) * 2];
      s_fac[kg * kBlockM + r] = m == -CUDART_INF_F ? 0.0f : fast_exp2(m - mx) * inv;
    }
    const int64_t lrow = tok * p.heads + h;
    if (direct) {
      if (p.lse != nullptr) p.lse[lrow] = lse;
    } else {
      p.part_lse[int64_t(slot) * p.tokens * p.heads + lrow] = lse;
    }
  }
  __syncthreads();
  const int half_d = p.head_dim / 2;
  for (int i = tid; i < rows_here * half_d; i += Tr::kThreads) {
    const int r = i / half_d, col = 2 * (i % half_d), rt = r / 16, rr = r % 16;
    float x = 0.0f, y = 0.0f;
    for (int kg = 0; kg < n_kg; ++kg) {
      const float f = s_fac[kg * kBlockM + r];
      const float2 v = *reinterpret_cast<const float2*>(s_o + ((rt + kg * rt_slots) * 16 + rr) * Tr::kORow + col);
      x = fmaf(f, v.x, x);
      y = fmaf(f, v.y, y);
    }
    const int vr = m0 + r;
    const int64_t e = ((int64_t(b) * q_tokens + vr / group) * p.heads + kvh * group + vr % group) * p.head_dim + col;
    if (direct) {
      *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(p.o) + e) = pack2<T>(x, y);
    } else {
      *reinterpret_cast<float2*>(p.part_o + int64_t(slot) * p.tokens * p.heads * p.head_dim + e) = make_float2(x, y);
    }
  }
}

// decode_merge: out[row] = sum_s w_s part_o[s, row] with w_s = e^(lse_s - lse), lse = ln(sum_s
// e^lse_s + e^sink) over the slots of a row (tokens x heads rows); slots with LSE -inf weigh 0 and
// are not read. One warp per row; lanes split the slots for the LSE and 4-column groups for O.
// Per row: fewest bytes slots (4 d + 4) read + d sizeof(T) (+4) written.
struct DecodeMergeParams {
  const float* part_o;  // [slots, rows, head_dim]
  const float* part_lse;  // [slots, rows]
  const float* sinks;   // [heads] or null
  void* o;              // [rows, head_dim] T
  float* lse;           // [rows] or null
  int64_t rows;
  int32_t slots;
  int32_t heads;
  int32_t head_dim;
  int32_t pad;
};
static_assert(sizeof(DecodeMergeParams) == 64, "DecodeMergeParams layout");

template <typename T> __device__ __forceinline__ void decode_merge(const DecodeMergeParams& p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * 4 + threadIdx.x / 32;
  if (row >= p.rows) return;
  float mx = -CUDART_INF_F;
  for (int s = lane; s < p.slots; s += 32) mx = fmaxf(mx, p.part_lse[s * p.rows + row]);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  const float sink = p.sinks != nullptr ? p.sinks[row % p.heads] : -CUDART_INF_F;
  const float top = fmaxf(mx, sink);
  float total = 0.0f;
  if (top != -CUDART_INF_F) {
    for (int s = lane; s < p.slots; s += 32) {
      const float l = p.part_lse[s * p.rows + row];
      if (l != -CUDART_INF_F) total += expf(l - top);
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) total += __shfl_xor_sync(0xffffffffu, total, o);
    if (sink != -CUDART_INF_F) total += expf(sink - top);
  }
  const float inv = top == -CUDART_INF_F ? 0.0f : 1.0f / total;
  if (lane == 0 && p.lse != nullptr) p.lse[row] = top == -CUDART_INF_F ? -CUDART_INF_F : top + logf(total);
  T* out = static_cast<T*>(p.o) + row * p.head_dim;
  for (int c = 4 * lane; c < p.head_dim; c += 128) {
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (top != -CUDART_INF_F) {
      for (int s = 0; s < p.slots; ++s) {
        const float l = p.part_lse[s * p.rows + row];
        if (l == -CUDART_INF_F) continue;
        const float w = expf(l - top) * inv;
        const float4 v = *reinterpret_cast<const float4*>(p.part_o + (s * p.rows + row) * p.head_dim + c);
        acc.x = fmaf(w, v.x, acc.x);
        acc.y = fmaf(w, v.y, acc.y);
        acc.z = fmaf(w, v.z, acc.z);
        acc.w = fmaf(w, v.w, acc.w);
      }
    }
    *reinterpret_cast<uint32_t*>(out + c) = pack2<T>(acc.x, acc.y);
    *reinterpret_cast<uint32_t*>(out + c + 2) = pack2<T>(acc.z, acc.w);
  }
}

// decode_append: copies new K/V rows [batch * n_new, kv_heads * row elements] into their pages:
// token t of entry b goes to position seq_lens[b] - n_new + t (seq_lens count the new tokens). One
// thread per 16 bytes. A position outside the block table row or a page id outside [0, num_pages)
// (the host checked its copy; a device-only table is the caller's contract) writes nothing.
struct DecodeAppendParams {
  const void* k_new;
  const void* v_new;
  void* k_cache;
  void* v_cache;
  const int32_t* block_table;
  const int32_t* seq_lens;
  int64_t pages_per_seq;
  int64_t chunks;        // 16-byte chunks of k_new
  int32_t row_chunks;    // 16-byte chunks per token row (kv_heads x head_dim x element bytes / 16)
  int32_t num_pages;
  int32_t page_shift;
  int32_t n_new;
};
static_assert(sizeof(DecodeAppendParams) == 80, "DecodeAppendParams layout");

__device__ __forceinline__ void decode_append(const DecodeAppendParams& p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.chunks) return;
  const int64_t tok = i / p.row_chunks;
  const int c = int(i % p.row_chunks);
  const int b = int(tok / p.n_new), t = int(tok % p.n_new);
  const int64_t pos = int64_t(p.seq_lens[b]) - p.n_new + t;
  if (pos < 0 || pos >= (p.pages_per_seq << p.page_shift)) return;
  const int page = p.block_table[int64_t(b) * p.pages_per_seq + (pos >> p.page_shift)];
  if (page < 0 || page >= p.num_pages) return;
  const int64_t dst = ((int64_t(page) << p.page_shift) + (pos & ((1 << p.page_shift) - 1))) * p.row_chunks + c;
  static_cast<uint4*>(p.k_cache)[dst] = static_cast<const uint4*>(p.k_new)[i];
  static_cast<uint4*>(p.v_cache)[dst] = static_cast<const uint4*>(p.v_new)[i];
}

}  // namespace sk

#define SK_DECODE(name, T, D)                                                                          \
  extern "C" __global__ void __launch_bounds__(sk::DecodeTraits<T, D>::kThreads)                       \
      name(const __grid_constant__ sk::DecodeParams p) {                                               \
    extern __shared__ __align__(128) unsigned char smem[];                                             \
    sk::decode_attention<T, D>(p, smem);                                                               \
  }

SK_DECODE(decode_attention_bf16_d64, __nv_bfloat16, 64)
SK_DECODE(decode_attention_bf16_d128, __nv_bfloat16, 128)
SK_DECODE(decode_attention_bf16_d256, __nv_bfloat16, 256)
SK_DECODE(decode_attention_f16_d64, __half, 64)
SK_DECODE(decode_attention_f16_d128, __half, 128)
SK_DECODE(decode_attention_f16_d256, __half, 256)

#define SK_DECODE_FP8(name, T, D)                                                                      \
  extern "C" __global__ void __launch_bounds__(sk::DecodeTraits<T, D, true>::kThreads)                 \
      name(const __grid_constant__ sk::DecodeParams p) {                                               \
    extern __shared__ __align__(128) unsigned char smem[];                                             \
    sk::decode_attention<T, D, true>(p, smem);                                                         \
  }

SK_DECODE_FP8(decode_attention_fp8_bf16_d128, __nv_bfloat16, 128)
SK_DECODE_FP8(decode_attention_fp8_bf16_d256, __nv_bfloat16, 256)
SK_DECODE_FP8(decode_attention_fp8_f16_d128, __half, 128)
SK_DECODE_FP8(decode_attention_fp8_f16_d256, __half, 256)

extern "C" __global__ void __launch_bounds__(128) decode_merge_bf16(const __grid_constant__ sk::DecodeMergeParams p) {
  sk::decode_merge<__nv_bfloat16>(p);
}
extern "C" __global__ void __launch_bounds__(128) decode_merge_f16(const __grid_constant__ sk::DecodeMergeParams p) {
  sk::decode_merge<__half>(p);
}
extern "C" __global__ void __launch_bounds__(256) decode_append(const __grid_constant__ sk::DecodeAppendParams p) {
  sk::decode_append(p);
}
