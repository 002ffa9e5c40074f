// sample: n draws per row from softmax(logits / temperature) after min-p, top-k and top-p, with
// logprobs and ranks. Exact and sort-free: the filters are cut points in one total order of the
// row, found by radix select; the draw is an inverse CDF over integer (fixed-point) masses.
//
// Order of processing (vLLM's): temperature z = fl(x / T) (fp32 division), then min-p (keep
// z - max z >= ln(min_p)), then top-k over what min-p kept, then top-p over the renormalised top-k
// set. The total order is (z descending, index ascending), so every filter keeps a prefix of it and
// their intersection is the shortest prefix: ties at the top-k boundary keep exactly k tokens,
// lowest indices first; top-p keeps the shortest prefix whose mass reaches p of the top-k mass.
// Masses are exp(z - max z) in fixed point (scale 2^40, truncated; a token below 2^-40 of the
// maximum has mass 0 and is never drawn), so every sum is an exact integer, independent of the
// order threads add it in. top-p's threshold is ceil(M * round(p * 2^32) / 2^32).
//
// Randomness: sample s of a row draws 64 bits from Philox 4x32-10 with key = seed[row] and counter
// (position[row], s); target = floor(M * bits / 2^64), the token is the first allowed one (in index
// order) whose inclusive prefix mass exceeds target. Nothing depends on the batch slot, the batch
// size or the other rows: the CTA of a row does a fixed sequence of fixed-shape reductions.
//
// Work split: one CTA of 256 threads per row (grid = batch); thread t walks elements t, t + 256, ...
// All n samples of a row share the passes. Passes over the row (reads of `vocab` elements):
//   1   max and sum of exp of raw and processed logits (online), NaN / inf flags, argmax (greedy),
//       a streaming list of the best L candidates in the total order (L = k under top-k with
//       k <= 1024, else 1024; only when a filter is on or vocab <= 1024): each candidate above
//       the L-th best so far takes a slot in shared memory, and when the buffer is full a bitonic
//       sort (then, with L = 1024, a merge into the sorted best L) compacts it back to the best L;
//       and, without top-k and past 1024 tokens, approximate masses per cell of z (width 1/64
//       below the running maximum; see CellHist). See pass1_groups.
// list path, when the allowed set lies inside the list: always under top-k (k <= 1024); under
// min-p when its set ends inside the list; under top-p when the list's mass reaches the threshold:
//   0   (top-k, min-p) filters, draw and ranks in shared memory;
//   1   top-p without top-k: the exact mass of the min-p set, to get the threshold (pass 2 below);
//   <=1 only when a drawn token ties, in processed value, the list's last entry with more such ties
//       past it, and the next raw value above the token's has the same processed value (T != 1,
//       f32 logits, in practice): ranks over the row.
// two-pass path (plain, min-p, top-p without top-k, sets past the list): from pass 1's cells the
// kernel predicts the cells where top-p's cut and each sample's target will fall; then
//   1   exact integer masses and counts per cell, collecting the predicted cells' elements
//       (<= 2048) into shared memory; the cut, the draws (in the total order) and the ranks (the
//       count of the cells above plus a comparison inside the token's cell) come from there.
//   A query whose exact cell was not collected, or a collection past 2048, falls back to the
//   full-row path below with the exact mass already known: all-equal logits (one cell holds the
//   row) and many samples on a flat row (64 draws want ~64 cells of ~128 tokens at vocab 131,072).
// full-row path otherwise (top-k > 1024, or the fallback):
//   3   top-k: radix select on the order key (11 + 11 + 10 bits), counting, when k > 1024;
//   1   mass of the min-p set, when top-k is off and pass 2 did not run;
//   3   top-p: radix select weighted by mass, when p < 1;
//   <=1 tie scan in index order to find the last kept tie, only when the cut splits a tie (early exit);
//   <=1 the draw (early exit once every sample's target is passed);
//   1   ranks (count of raw logits above each drawn token's).
// The list and two-pass paths draw in the total order, the full-row path in index order; each is
// an inverse CDF over the same integer masses, so all are exact.
// Measured on the VM (tests/sampling.rs, examples/sol_report.rs; bf16, vocab 131,072, 32-byte
// sectors requested / row bytes): top-k 50 + top-p 0.9: 1.00 (4.00 before the streaming list);
// top-k 1: 1.00; top-p 0.9 alone on uniform logits in [-8, 8) (a set of ~19k tokens): 2.00 (6.94
// before the two-pass path); min-p 0.1 or plain: 2.00 (3.88 before); greedy: 1.00. tests/sampling.rs
// asserts <= 2 on adversarial rows for the list path and on flat, peaked, heavy-tailed, rising,
// falling and one-huge rows for the two-pass path (4 samples); the fallbacks measure 3.98 (plain,
// min-p) and 7.78 (top-p) on all-equal logits, 3.99 / 7.72 with 64 samples on the flat row. The
// fewest bytes per row are vocab * sizeof(T) (one read); FLOPs ~ 4 * vocab per pass (the division,
// the exponential, compares and adds).
// Thread instructions per logit (the VM's counters; bf16, vocab 131,072, uniform logits in [-8, 8),
// one sample; `cargo run --release --example sol_report -- sampling`), all passes: plain 54.6,
// temperature 0.7 63.7, min-p 0.1 120.7, top-p 0.9 139.7, top-k 50 + top-p 0.9 51.8 (before the
// grouped passes: 186.7, 186.7, 359.7, 396.0, 195.2). Per element, pass 1 costs the load, a max.NaN,
// the online (max, sum) (sub, mul, ex2, add, compare; twice and a division when T != 1), the cell
// sum (~9) and the list's compare; pass 2 the cell, the exact mass, two shared reds and the flag
// (~20). What remains above that on min-p and top-p rows is the list's compactions (~65 per logit:
// the list of 1024 fills and is compacted about 7 times on a flat row). sol_report's model still
// puts these rows above DRAM: plain issue-bound (H100, batch 1024, vocab 151,936: 310 us against
// 93 us of DRAM; 1,327 us, integer-bound, before), the list's rows bound by shared memory (its
// sorts; top-p 991 us, 2,280+ before).
// Status: kStatusNoFinite (all -inf) or kStatusNonFinite (NaN, +inf, or a processed logit that
// overflowed): token 0, logprobs NaN, rank 0.
#include "common/philox.cuh"
#include "sampling/params.cuh"
#include "sampling/row.cuh"

namespace sk {

constexpr uint32_t kMaxSamples = 64;            // samples per row per launch (host-checked)
constexpr int kBuckets = 2048;                  // 2^11: the widest radix digit
constexpr uint32_t kListMax = 1024;             // streaming list capacity (k <= 1024 takes the list path)
constexpr float kMassScale = 1099511627776.0f;  // 2^40
constexpr float kInvMassScale = 9.094947017729282e-13f;  // 2^-40

// Digits of the 32-bit order key, most significant first: bits 31..21, 20..10, 9..0.
__device__ __forceinline__ int radix_shift(int r) { return r == 0 ? 21 : (r == 1 ? 10 : 0); }
__device__ __forceinline__ int radix_bits(int r) { return r == 2 ? 10 : 11; }

__device__ __forceinline__ uint64_t mass_of(float z, float mz) {
  return __float2ull_rz(__fmul_rn(exp_rn(__fsub_rn(z, mz)), kMassScale));
}

// `v` in a register the compiler cannot see through: hot loops multiply by it instead of moving the
// immediate into a register before every use (the same value, so the same results).
__device__ __forceinline__ float opaque(float v) {
  float r;
  asm("mov.b32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
}
__device__ __forceinline__ uint32_t opaque_u32(uint32_t v) {
  uint32_t r;
  asm("mov.b32 %0, %1;" : "=r"(r) : "r"(v));
  return r;
}

// mass_of with kLog2e and kMassScale in registers (`log2e`, `scale`): the same operations.
__device__ __forceinline__ uint64_t mass_of(float z, float mz, float log2e, float scale) {
  return __float2ull_rz(__fmul_rn(exp2f(__fmul_rn(__fsub_rn(z, mz), log2e)), scale));
}

// max_sum_add(a, x) for any x but NaN (the same operations on the same values), with kLog2e in a
// register and the common case (no new maximum) straight-line.
__device__ __forceinline__ void max_sum_push(MaxSum& a, float x, float log2e) {
  const float s = __fadd_rn(a.s, exp2f(__fmul_rn(__fsub_rn(x, a.m), log2e)));
  if (x > a.m) {
    a.s = __fadd_rn(a.m == -CUDART_INF_F ? 0.0f : __fmul_rn(a.s, exp2f(__fmul_rn(__fsub_rn(a.m, x), log2e))), 1.0f);
    a.m = x;
  } else {
    a.s = s;
  }
}

// A cut of the total order: keep every candidate with key > `key` and the first `take` (by index)
// of the `ties` candidates with key == `key`.
struct Cut {
  bool active;
  uint32_t key;
  uint32_t take;
  uint32_t ties;
  uint64_t above_mass;  // mass of the kept candidates with key > `key`
  uint64_t mass_each;   // mass of one candidate with key == `key`
  uint64_t total_mass;  // mass of all candidates (every select knows it after its first round)
};

// The top-k candidate list (index order) once the top-k cut's 22-bit prefix is known and few
// enough tokens lie at or above it: everything after it runs in shared memory.
struct TopkList {
  uint32_t idx[kListMax];
  uint32_t key[kListMax];
  float x[kListMax];
  unsigned long long mass[kListMax];
};
struct RadixHist {
  unsigned long long mass[kBuckets];
  unsigned int count[kBuckets];
};
// The streaming top-L list of pass 1: the best L candidates so far (total order) plus the tiles
// appended since the last compaction; `cum` holds the inclusive prefix masses once it is final.
constexpr uint32_t kStreamCap = 2048;  // >= kListMax + kRowThreads, a power of two for the sort
struct StreamList {
  uint32_t key[kStreamCap];
  uint32_t idx[kStreamCap];
  float x[kStreamCap];
  unsigned long long cum[kListMax];
};

struct SampleSmem {
  union {
    RadixHist h;
    TopkList l;
    StreamList s;
  } u;
  unsigned long long target[kMaxSamples];
  int tok[kMaxSamples];
  unsigned int rank[kMaxSamples];
  float xt[kMaxSamples];
  uint32_t cell[kMaxSamples];
  uint32_t order[kMaxSamples];
  double pred_lo, pred_hi;
  uint64_t scan[kRowWarps];
  MaxSum ms[kRowWarps];
  uint32_t arg_key[kRowWarps];
  uint32_t arg_idx[kRowWarps];
  unsigned long long above_cnt, above_mass, total_mass, total_cnt;
  uint32_t digit, found, pidx, ncol;
  uint32_t appended[3];  // pass 1's list appends, one counter per group (rotating, see pass1_groups)
  int top_cell, cut_lo, cut_hi;
};

// Cells of the processed logits for the two-pass path (plain, min-p and top-p without top-k):
// cell b holds the z with floor(z * 64) == top - b, top = floor(max z * 64), and the last cell
// every z below. The cells span 32 below the maximum, past 40 ln 2 = 27.7 where every mass is 0,
// so a draw or a top-p cut never lands in the last cell. Pass 1 sums approximate masses per cell
// (float, relative to the running top cell, shifted when the maximum rises); from them the kernel
// predicts the cells where the top-p cut and each sample's target will fall, and pass 2 sums the
// exact masses and counts per cell and collects the elements of the predicted cells into shared
// memory. Everything after pass 2 uses only exact data: a query whose exact cell was not collected
// (or a collection that overflowed) falls back to the radix path, so the prediction changes the
// number of passes, never a token.
constexpr int kCells = 2048;
constexpr float kCellsPerUnit = 64.0f;
constexpr int kCellsPerThread = kCells / kRowThreads;
struct CellHist {
  union {
    float approx[kCells];  // pass 1
    uint32_t flag[kCells];  // pass 2: nonzero for the cells it collects (want's bits, one word per cell)
  };
  unsigned long long mass[kCells];  // pass 2 (exact), then its inclusive prefix; before: predicted prefix (f64)
  unsigned int count[kCells];       // pass 2, then its inclusive prefix
  uint32_t want[kCells / 32];       // cells pass 2 collects
};
// Mirrored by CELL_HIST_BYTES in src/sampling/sample.rs (the launch's dynamic shared memory).
static_assert(sizeof(CellHist) == 33024, "CellHist size");

template <typename T>
struct RowCtx {
  const T* __restrict__ x;
  uint32_t vocab;
  float temp;
  float mz;        // max processed logit
  float log_minp;  // -inf when min-p is off
  __device__ __forceinline__ float z(uint32_t i) const { return __fdiv_rn(to_float(x[i]), temp); }
  __device__ __forceinline__ bool minp_ok(float zi) const { return __fsub_rn(zi, mz) >= log_minp; }
};

// The candidate (min-p kept, and inside `limit` when it is active) at which the running count
// (by_mass false) or mass (true), in the total order, first exceeds `target`; inactive when the
// candidates' total does not exceed it. Three passes over the row.
// A radix select in progress: the rounds run so far and what they found.
struct SelectState {
  int round;  // next round to run
  uint32_t prefix, pmask;
  uint64_t above_cnt, above_mass, total_mass, total_cnt;
  uint32_t bucket_count;
  bool found;
};

template <typename T>
__device__ void radix_rounds(const RowCtx<T>& c, SampleSmem& sm, bool by_mass, uint64_t target, const Cut& limit,
                             SelectState& st, int stop) {
  uint32_t prefix = st.prefix, pmask = st.pmask;
  uint64_t above_cnt = st.above_cnt, above_mass = st.above_mass;
  for (int r = st.round; r < stop; ++r) {
    const int shift = radix_shift(r), nb = 1 << radix_bits(r);
    for (int b = threadIdx.x; b < nb; b += kRowThreads) {
      sm.u.h.count[b] = 0;
      sm.u.h.mass[b] = 0;
    }
    __syncthreads();
    for (uint32_t i = threadIdx.x; i < c.vocab; i += kRowThreads) {
      const float zi = c.z(i);
      if (!c.minp_ok(zi)) continue;
      const uint32_t key = order_key(zi);
      if ((key & pmask) != prefix) continue;
      if (limit.active && key <= limit.key) continue;  // the limit's kept ties are added below
      const uint32_t d = (key >> shift) & (nb - 1);
      atomicAdd(&sm.u.h.count[d], 1u);
      const uint64_t m = mass_of(zi, c.mz);
      if (m != 0) atomicAdd(&sm.u.h.mass[d], static_cast<unsigned long long>(m));
    }
    __syncthreads();
    if (threadIdx.x == 0 && limit.active && (limit.key & pmask) == prefix) {
      const uint32_t d = (limit.key >> shift) & (nb - 1);
      sm.u.h.count[d] += limit.take;
      sm.u.h.mass[d] += uint64_t(limit.take) * limit.mass_each;
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      // Warp 0 scans the buckets from the top: lane l owns `per` consecutive digits, descending.
      const int lane = threadIdx.x, per = nb / 32, hi = nb - 1 - lane * per;
      uint64_t qc = 0, qm = 0;
      for (int j = 0; j < per; ++j) {
        qc += sm.u.h.count[hi - j];
        qm += sm.u.h.mass[hi - j];
      }
      uint64_t ic = qc, im = qm;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const uint64_t tc = __shfl_up_sync(kFullMask, ic, o), tm = __shfl_up_sync(kFullMask, im, o);
        if (lane >= o) {
          ic += tc;
          im += tm;
        }
      }
      const uint64_t ec = ic - qc, em = im - qm;
      const uint64_t lo = by_mass ? above_mass + em : above_cnt + ec;
      const uint64_t up = by_mass ? above_mass + im : above_cnt + ic;
      const bool hit = lo <= target && target < up;
      const unsigned ballot = __ballot_sync(kFullMask, hit);
      const uint64_t all_mass = __shfl_sync(kFullMask, im, 31), all_cnt = __shfl_sync(kFullMask, ic, 31);
      if (lane == 0) {
        sm.found = ballot != 0;
        if (r == 0) {
          sm.total_mass = all_mass;
          sm.total_cnt = all_cnt;
        }
      }
      if (hit) {
        uint64_t rc = above_cnt + ec, rm = above_mass + em;
        int d = hi;
        for (int j = 0; j < per; ++j) {
          d = hi - j;
          const uint64_t nc = sm.u.h.count[d], nm = sm.u.h.mass[d];
          if ((by_mass ? rm + nm : rc + nc) > target) break;
          rc += nc;
          rm += nm;
        }
        sm.digit = d;
        sm.above_cnt = rc;
        sm.above_mass = rm;
      }
    }
    __syncthreads();
    if (r == 0) {
      st.total_mass = sm.total_mass;
      st.total_cnt = sm.total_cnt;
    }
    if (!sm.found) {
      __syncthreads();
      st.found = false;
      st.round = 3;
      return;
    }
    const uint32_t d = sm.digit;
    above_cnt = sm.above_cnt;
    above_mass = sm.above_mass;
    st.bucket_count = sm.u.h.count[d];
    prefix |= d << shift;
    pmask |= uint32_t(nb - 1) << shift;
    __syncthreads();
  }
  st.prefix = prefix;
  st.pmask = pmask;
  st.above_cnt = above_cnt;
  st.above_mass = above_mass;
  st.round = stop;
}

// The cut a finished select describes.
template <typename T>
__device__ Cut finish_select(const RowCtx<T>& c, bool by_mass, uint64_t target, const Cut& limit,
                             const SelectState& st) {
  if (!st.found) return Cut{false, 0, 0, 0, 0, 0, st.total_mass};
  const uint32_t prefix = st.prefix;
  const uint64_t above_cnt = st.above_cnt, above_mass = st.above_mass;
  Cut cut;
  cut.active = true;
  cut.key = prefix;
  cut.mass_each = mass_of(key_value(prefix), c.mz);
  cut.ties = (limit.active && prefix == limit.key) ? limit.ties : st.bucket_count;
  const uint64_t need = by_mass ? (target - above_mass) / cut.mass_each : target - above_cnt;
  cut.take = uint32_t(need + 1);
  cut.above_mass = above_mass;
  cut.total_mass = st.total_mass;
  return cut;
}

// top-p's threshold ceil(M * p32 / 2^32), p32 = p * 2^32 (exact: p is an fp32 <= 1).
__device__ __forceinline__ uint64_t top_p_need(uint64_t m, float top_p) {
  const uint64_t p32 = uint64_t(__fmul_rn(top_p, 4294967296.0f));
  const uint64_t lo = m * p32, hi = __umul64hi(m, p32);
  return ((hi << 32) | (lo >> 32)) + ((lo & 0xffffffffull) != 0 ? 1 : 0);
}

__device__ __forceinline__ SelectState select_start() { return SelectState{0, 0, 0, 0, 0, 0, 0, 0, true}; }

template <typename T>
__device__ Cut radix_select(const RowCtx<T>& c, SampleSmem& sm, bool by_mass, uint64_t target, const Cut& limit) {
  SelectState st = select_start();
  radix_rounds(c, sm, by_mass, target, limit, st, 3);
  return finish_select(c, by_mass, target, limit, st);
}

// The index of the last tie the cut keeps (ties are kept in index order), or 0xffffffff when
// the cut keeps all of its ties. Block-wide: every thread calls it.
template <typename T>
__device__ __forceinline__ uint32_t last_kept_tie(const RowCtx<T>& c, SampleSmem& sm, const Cut& cut) {
  const uint32_t vocab = c.vocab;
  if (!(cut.active && cut.take < cut.ties)) return 0xffffffffu;
  uint64_t seen = 0;
  for (uint32_t tile = 0; tile < vocab; tile += kRowThreads) {
    const uint32_t i = tile + threadIdx.x;
    const uint64_t f = (i < vocab && order_key(c.z(i)) == cut.key) ? 1 : 0;
    uint64_t tot;
    const uint64_t incl = block_scan_u64(f, sm.scan, tot);
    if (f && seen + incl == cut.take) sm.pidx = i;
    seen += tot;
    if (seen >= cut.take) break;
  }
  __syncthreads();
  return sm.pidx;
}

// The next value of T above x (x a value of T): when x / T rounds to the same processed logit as
// this one, a larger raw logit can share a processed logit with x.
__device__ __forceinline__ float next_up(float x, float) { return nextafterf(x, CUDART_INF_F); }
__device__ __forceinline__ float next_up(float x, __half) {
  const unsigned short b = __half_as_ushort(__float2half_rn(x));
  const unsigned short u = (b & 0x8000u) ? (b == 0x8000u ? 1 : b - 1) : b + 1;
  return __half2float(__ushort_as_half(u));
}
__device__ __forceinline__ float next_up(float x, __nv_bfloat16) {
  const unsigned short b = __bfloat16_as_ushort(__float2bfloat16_rn(x));
  const unsigned short u = (b & 0x8000u) ? (b == 0x8000u ? 1 : b - 1) : b + 1;
  return __bfloat162float(__ushort_as_bfloat16(u));
}

// One stage of a bitonic network over the pairs (i, i + stride) of [base, base + n): the better
// entry goes first where ((i - base) & size) == 0, unless `rev` (size = n: everywhere). Block-wide.
__device__ __forceinline__ void bitonic_stage(StreamList& l, uint32_t base, uint32_t n, uint32_t size, uint32_t stride,
                                              bool rev) {
  for (uint32_t t = threadIdx.x; t < n / 2; t += kRowThreads) {
    const uint32_t o = 2 * t - (t & (stride - 1)), i = base + o, j = i + stride;
    const uint32_t ki = l.key[i], kj = l.key[j], ii = l.idx[i], ij = l.idx[j];
    const bool j_better = kj > ki || (kj == ki && ij < ii);
    if (j_better == (((o & size) == 0) != rev)) {
      l.key[i] = kj;
      l.key[j] = ki;
      l.idx[i] = ij;
      l.idx[j] = ii;
      const float xi = l.x[i];
      l.x[i] = l.x[j];
      l.x[j] = xi;
    }
  }
  __syncthreads();
}

// Sorts the first `len` entries of the streaming list best first in the total order (key
// descending, index ascending): a bitonic sort over the next power of two, padded with entries
// below every finite key. Block-wide.
__device__ void stream_sort(StreamList& l, uint32_t len) {
  uint32_t n2 = 2;
  while (n2 < len) n2 <<= 1;
  for (uint32_t i = len + threadIdx.x; i < n2; i += kRowThreads) {
    l.key[i] = 0;
    l.idx[i] = 0xffffffffu;
    l.x[i] = 0.0f;
  }
  __syncthreads();
  for (uint32_t size = 2; size <= n2; size <<= 1)
    for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) bitonic_stage(l, 0, n2, size, stride, false);
}

// With [0, kListMax) sorted best first and [kListMax, kListMax + m) in any order (m <= kListMax),
// leaves the best kListMax of them sorted best first in [0, kListMax), at about half the work of
// sorting all 2 kListMax: the second half is sorted worst first (padded with entries below every
// finite key), so the two halves form a bitonic sequence; one stage puts the better of entries i
// and i + kListMax at i (the best kListMax, bitonic), and a bitonic merge sorts them. Block-wide.
__device__ void stream_merge_top(StreamList& l, uint32_t m) {
  constexpr uint32_t H = kListMax;
  static_assert(2 * H == kStreamCap, "the list holds two halves");
  for (uint32_t i = H + m + threadIdx.x; i < 2 * H; i += kRowThreads) {
    l.key[i] = 0;
    l.idx[i] = 0xffffffffu;
    l.x[i] = 0.0f;
  }
  __syncthreads();
  for (uint32_t size = 2; size <= H; size <<= 1) {
    for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) bitonic_stage(l, H, H, size, stride, true);
  }
  bitonic_stage(l, 0, 2 * H, 2 * H, H, false);
  for (uint32_t stride = H / 2; stride > 0; stride >>= 1) bitonic_stage(l, 0, H, H, stride, false);
}

// floor(z * 64); the conversion saturates (-inf and z below -2^31 / 64 give INT_MIN, NaN 0).
__device__ __forceinline__ int z_cell(float z) { return __float2int_rd(__fmul_rn(z, kCellsPerUnit)); }
// top - z_cell(z) in unsigned arithmetic (exact while z_cell(z) <= top; in range whatever z is),
// the last cell taking everything past it.
__device__ __forceinline__ int cell_of(float z, int top) {
  return int(min(uint32_t(top) - uint32_t(z_cell(z)), uint32_t(kCells - 1)));
}
__device__ __forceinline__ bool wanted(const CellHist& h, int b) { return (h.want[b >> 5] >> (b & 31)) & 1u; }

// Moves every cell sum `shift` cells down (the top cell rose by `shift`), rescaled to the new top;
// the last cell keeps what falls past it. Block-wide; rare (a new maximum cell), so not inlined.
__device__ __noinline__ void shift_cells(CellHist& h, int shift) {
  const float f = exp_rn(__fmul_rn(-float(shift), 1.0f / kCellsPerUnit));
  float v[kCellsPerThread];
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) v[j] = h.approx[threadIdx.x + j * kRowThreads];
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) h.approx[threadIdx.x + j * kRowThreads] = 0.0f;
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) {
    const int b = min(int(threadIdx.x) + j * kRowThreads + shift, kCells - 1);
    if (v[j] != 0.0f) atomicAdd(&h.approx[b], __fmul_rn(v[j], f));
  }
}

// Pass 1's share of the cells for one group of tiles: the block's top cell rises (shifting the
// sums) when a thread's running maximum `zmax` lies above it, then each of the thread's `kUnroll`
// processed logits adds exp(z - top / 64) to its cell (-inf adds 0 to the last cell). Block-wide;
// `top` is the same in every thread (INT_MIN before the first finite logit).
constexpr int kUnroll = 4;
__device__ __forceinline__ void hist_group(CellHist& h, SampleSmem& sm, const float (&z)[kUnroll], float zmax,
                                           int& top, float log2e) {
  const int g = z_cell(zmax);
  if (__syncthreads_or(g > top)) {
    int m = g;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(kFullMask, m, o));
    if (threadIdx.x == 0) sm.top_cell = INT_MIN;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) atomicMax(&sm.top_cell, m);
    __syncthreads();
    const int nt = sm.top_cell;
    if (top != INT_MIN) shift_cells(h, int(min(uint32_t(nt) - uint32_t(top), uint32_t(kCells))));
    top = nt;
  }
  if (top == INT_MIN) return;
  // exp(z - top / 64) as 2^(z log2 e - top log2 e / 64): an estimate, like every cell sum of pass 1.
  const float off = __fmul_rn(__fmul_rn(float(top), 1.0f / kCellsPerUnit), log2e);
#pragma unroll
  for (int k = 0; k < kUnroll; ++k) atomicAdd(&h.approx[cell_of(z[k], top)], exp2f(__fmaf_rn(z[k], log2e, -off)));
}

// Inclusive block scan of doubles in thread order (the prediction's prefix sums; not exact, and
// it need not be: only the choice of cells depends on it).
__device__ __forceinline__ double block_scan_f64(double v, uint64_t* scratch, double& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double t = __shfl_up_sync(kFullMask, v, o);
    if (lane >= o) v += t;
  }
  if (lane == 31) scratch[warp] = uint64_t(__double_as_longlong(v));
  __syncthreads();
  double before = 0.0;
  total = 0.0;
  for (int w = 0; w < kRowWarps; ++w) {
    const double s = __longlong_as_double(static_cast<long long>(scratch[w]));
    if (w < warp) before += s;
    total += s;
  }
  __syncthreads();
  return v + before;
}

// Marks the cells whose predicted mass range [before, after] (widened by `slack`) meets [lo, hi]
// and that hold predicted mass (no query lands in an empty cell, nor in the last one); returns
// the first and last cell of the range. One thread; `pre` holds the predicted inclusive prefixes.
__device__ __forceinline__ int2 want_range(CellHist& h, const double* pre, double lo, double hi, double slack) {
  int a = 0, b = kCells - 1;  // the first cell whose range ends at or after lo - slack
  while (a < b) {
    const int mid = (a + b) >> 1;
    if (pre[mid] + slack >= lo) {
      b = mid;
    } else {
      a = mid + 1;
    }
  }
  int e = a, f = kCells - 1;  // the last cell whose range starts at or before hi + slack
  while (e < f) {
    const int mid = (e + f + 1) >> 1;
    if ((mid == 0 ? 0.0 : pre[mid - 1]) - slack <= hi) {
      e = mid;
    } else {
      f = mid - 1;
    }
  }
  for (int c = a; c <= e && c < kCells - 1; ++c) {
    if (pre[c] != (c == 0 ? 0.0 : pre[c - 1])) atomicOr(&h.want[c >> 5], 1u << (c & 31));
  }
  return make_int2(a, e);
}

// The prediction: from pass 1's approximate cell masses, the cells where top-p's cut and each
// sample's target are expected (sm.target holds the samples' Philox bits), with a margin of 2^-12
// of the mass for the float sums. Returns false, marking nothing, when top-p's set may end inside
// the streaming list (`list_mass`, exact units; `list_usable`): then pass 2 leaves the list alone
// and only sums the mass, and the list decides.
template <typename T>
__device__ __noinline__ bool predict_cells(const RowCtx<T> c, CellHist& h, SampleSmem& sm, float top_p, bool list_usable,
                                           uint64_t list_mass, uint32_t n) {
  const int top = sm.top_cell;
  const bool p_on = top_p < 1.0f;
  double* pre = reinterpret_cast<double*>(h.mass);
  double v[kCellsPerThread], local = 0.0, boundary = 0.0;
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) {
    const int b = int(threadIdx.x) * kCellsPerThread + j;
    double m = b == kCells - 1 ? 0.0 : double(h.approx[b]);
    if (!c.minp_ok(__fmul_rn(float(int64_t(top) - b + 1), 1.0f / kCellsPerUnit))) {
      m = 0.0;
    } else if (!c.minp_ok(__fmul_rn(float(int64_t(top) - b), 1.0f / kCellsPerUnit))) {
      boundary += m;  // min-p's cut splits this cell: its kept mass is anywhere in [0, m]
    }
    local += m;
    v[j] = local;
  }
  double total, bmass;
  const double excl = block_scan_f64(local, sm.scan, total) - local;
  block_scan_f64(boundary, sm.scan, bmass);
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) pre[threadIdx.x * kCellsPerThread + j] = excl + v[j];
  for (int w = threadIdx.x; w < kCells / 32; w += kRowThreads) h.want[w] = 0;
  __syncthreads();
  const double mk_lo = total - bmass, mk_hi = total, slack = total * (1.0 / 4096.0);
  if (list_usable) {
    // exact mass ~ approximate mass * 2^40 * exp(top / 64 - max z)
    const double scale =
        1099511627776.0 * double(exp_rn(__fsub_rn(__fmul_rn(float(top), 1.0f / kCellsPerUnit), c.mz)));
    if (double(list_mass) >= double(top_p) * mk_lo * scale * (1.0 - 1.0 / 1024.0)) return false;
  }
  if (threadIdx.x == 0) {
    double a_lo = mk_lo, a_hi = mk_hi;
    if (p_on) {
      const int2 r = want_range(h, pre, double(top_p) * mk_lo, double(top_p) * mk_hi, slack);
      a_lo = r.x == 0 ? 0.0 : pre[r.x - 1];
      a_hi = pre[r.y];
    }
    sm.pred_lo = a_lo;  // the allowed mass's predicted range
    sm.pred_hi = a_hi;
  }
  __syncthreads();
  const double a_lo = sm.pred_lo, a_hi = sm.pred_hi;
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    const double u = double(sm.target[s]) * 5.421010862427522e-20;  // bits / 2^64
    want_range(h, pre, u * a_lo * (1.0 - 1e-6), u * a_hi * (1.0 + 1e-6), slack);
  }
  __syncthreads();
  return true;
}

// The element loop of cell_pass over groups of kUnroll tiles (the tail group tests the bounds):
// kDiv false when T = 1 (z = x / 1 = x exactly), kMinp false without min-p (every z passes).
// Masses of 0 are added too, and h.flag is 0 everywhere when nothing is collected.
template <typename T, bool kDiv, bool kMinp>
__device__ __forceinline__ void cell_loop(const RowCtx<T>& c, CellHist& h, SampleSmem& sm, int top) {
  StreamList& l = sm.u.s;
  const float temp = c.temp, log2e = opaque(kLog2e), scale = opaque(kMassScale), per_unit = opaque(kCellsPerUnit);
  // Shared addresses of the cell arrays in registers (the compiler would rebuild each from the
  // array's symbol per element), and `red`: no result is used.
  const uint32_t mass_at = opaque_u32(uint32_t(__cvta_generic_to_shared(h.mass)));
  const uint32_t count_at = opaque_u32(uint32_t(__cvta_generic_to_shared(h.count)));
  const uint32_t flag_at = opaque_u32(uint32_t(__cvta_generic_to_shared(h.flag))), one_u32 = opaque_u32(1u);
  const float mz = c.mz, log_minp = c.log_minp;  // in registers across the asm's memory clobbers
  auto one = [&](float xi, uint32_t i) {
    const float zi = kDiv ? __fdiv_rn(xi, temp) : xi;
    const float d = __fsub_rn(zi, mz);
    if (kMinp && !(d >= log_minp)) return;  // c.minp_ok(zi)
    const uint32_t b =
        min(uint32_t(top) - uint32_t(__float2int_rd(__fmul_rn(zi, per_unit))), uint32_t(kCells - 1));  // cell_of
    const unsigned long long m = __float2ull_rz(__fmul_rn(exp2f(__fmul_rn(d, log2e)), scale));  // mass_of
    asm volatile("red.shared.add.u64 [%0], %1;" ::"r"(mass_at + (b << 3)), "l"(m) : "memory");
    asm volatile("red.shared.add.u32 [%0], %1;" ::"r"(count_at + (b << 2)), "r"(one_u32) : "memory");
    uint32_t flag;
    asm volatile("ld.shared.u32 %0, [%1];" : "=r"(flag) : "r"(flag_at + (b << 2)) : "memory");
    if (flag != 0) {
      const uint32_t slot = atomicAdd(&sm.ncol, 1u);
      if (slot < kStreamCap) {
        l.key[slot] = order_key(zi);
        l.idx[slot] = i;
        l.x[slot] = xi;
      }
    }
  };
  const T* __restrict__ x = c.x;
  const uint32_t vocab = c.vocab, full = vocab - vocab % (kUnroll * kRowThreads);
  for (uint32_t g = 0; g < full; g += kUnroll * kRowThreads) {
    const T* xg = x + g + threadIdx.x;
    float xs[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) xs[k] = to_float(xg[k * kRowThreads]);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) one(xs[k], g + k * kRowThreads + threadIdx.x);
  }
  for (uint32_t i = full + threadIdx.x; i < vocab; i += kRowThreads) one(to_float(x[i]), i);
}

// Pass 2 of the two-pass path: exact masses and counts per cell of the min-p set (then their
// inclusive prefixes, thread t owning cells [8t, 8t + 8)), and, when `collect`, the elements of the
// wanted cells appended to the streaming list's arrays (sm.ncol counts them, even past capacity).
// Returns the exact mass of the min-p set.
template <typename T>
__device__ __noinline__ uint64_t cell_pass(const RowCtx<T> c, CellHist& h, SampleSmem& sm, bool collect) {
  const int top = sm.top_cell;
  for (int b = threadIdx.x; b < kCells; b += kRowThreads) {
    h.mass[b] = 0;
    h.count[b] = 0;
    h.flag[b] = collect && wanted(h, b) ? 1u : 0u;  // approx (its storage) is spent
  }
  if (threadIdx.x == 0) sm.ncol = 0;
  __syncthreads();
  const bool minp = c.log_minp != -CUDART_INF_F;
  if (c.temp == 1.0f) {
    if (minp) {
      cell_loop<T, false, true>(c, h, sm, top);
    } else {
      cell_loop<T, false, false>(c, h, sm, top);
    }
  } else if (minp) {
    cell_loop<T, true, true>(c, h, sm, top);
  } else {
    cell_loop<T, true, false>(c, h, sm, top);
  }
  __syncthreads();
  uint64_t ms = 0, cs = 0;
  const int b0 = int(threadIdx.x) * kCellsPerThread;
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) {
    ms += h.mass[b0 + j];
    cs += h.count[b0 + j];
  }
  uint64_t total, ctot;
  uint64_t me = block_scan_u64(ms, sm.scan, total) - ms;
  uint64_t ce = block_scan_u64(cs, sm.scan, ctot) - cs;
#pragma unroll
  for (int j = 0; j < kCellsPerThread; ++j) {
    me += h.mass[b0 + j];
    ce += h.count[b0 + j];
    h.mass[b0 + j] = me;
    h.count[b0 + j] = uint32_t(ce);
  }
  __syncthreads();
  return total;
}

// The cell holding mass position q (h.mass holds inclusive prefixes, q < their total).
__device__ __forceinline__ int cell_at(const CellHist& h, uint64_t q) {
  int a = 0, b = kCells - 1;
  while (a < b) {
    const int mid = (a + b) >> 1;
    if (h.mass[mid] > q) {
      b = mid;
    } else {
      a = mid + 1;
    }
  }
  return a;
}

// One walk of the sorted collection with each element's exact position [lo, up) in the total
// order's mass: the collection holds whole cells, so a cell's first element starts at the mass of
// every cell before it (the exact prefix). `visit(j, lo, up)` runs for every element.
template <typename T, typename F>
__device__ __forceinline__ void walk_collection(const RowCtx<T>& c, const CellHist& h, SampleSmem& sm, int top,
                                                uint32_t len, F visit) {
  const StreamList& l = sm.u.s;
  uint64_t base = 0;
  for (uint32_t tile = 0; tile < len; tile += kRowThreads) {
    const uint32_t j = tile + threadIdx.x;
    uint64_t y = 0, m = 0;
    if (j < len) {
      const float zj = key_value(l.key[j]);
      const int b = cell_of(zj, top);
      m = mass_of(zj, c.mz);
      const uint64_t cell_start = b == 0 ? 0 : h.mass[b - 1];
      if (j == 0) {
        y = cell_start;
      } else {
        const int pb = cell_of(key_value(l.key[j - 1]), top);
        if (pb != b) y = cell_start - h.mass[pb];
      }
      y += m;
    }
    uint64_t tot;
    const uint64_t up = base + block_scan_u64(y, sm.scan, tot);
    if (j < len && m != 0) visit(j, up - m, up);
    base += tot;
  }
  __syncthreads();
}

// The two-pass path after pass 2: top-p's cut, the draws and the ranks from the collected cells.
// Fills sm.tok, sm.xt, sm.rank (less 1) and sm.above_mass (the allowed mass); false (nothing
// decided) when a query's cell was not collected or the collection overflowed.
template <typename T>
__device__ __noinline__ bool resolve_cells(const RowCtx<T> c, CellHist& h, SampleSmem& sm, uint64_t m_km, float top_p,
                                           uint32_t n) {
  const int top = sm.top_cell;
  const bool p_on = top_p < 1.0f;
  const uint32_t len = sm.ncol;
  if (len > kStreamCap) return false;
  StreamList& l = sm.u.s;
  const uint64_t q = p_on ? top_p_need(m_km, top_p) - 1 : 0;
  if (p_on && !wanted(h, cell_at(h, q))) return false;
  stream_sort(l, len);
  if (threadIdx.x == 0) sm.above_mass = m_km;
  __syncthreads();
  if (p_on) {
    walk_collection(c, h, sm, top, len, [&](uint32_t, uint64_t lo, uint64_t up) {
      if (lo <= q && q < up) sm.above_mass = up;
    });
  }
  const uint64_t m_allowed = sm.above_mass;
  // Targets, their cells, and their order (so that each element finds its targets by bisection).
  bool miss = false;
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    const uint64_t t = __umul64hi(m_allowed, sm.target[s]);
    const int b = cell_at(h, t);
    miss |= !wanted(h, b);
    sm.cell[s] = uint32_t(b);
    uint32_t r = 0;
    for (uint32_t o = 0; o < n; ++o) {
      const uint64_t to = __umul64hi(m_allowed, sm.target[o]);
      r += (to < t || (to == t && o < s)) ? 1 : 0;
    }
    sm.rank[s] = r;
  }
  if (__syncthreads_or(miss)) return false;
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    const uint32_t r = sm.rank[s];
    sm.order[r] = s;
  }
  __syncthreads();
  walk_collection(c, h, sm, top, len, [&](uint32_t j, uint64_t lo, uint64_t up) {
    const uint32_t* order = sm.order;
    uint32_t a = 0, b = n;  // the first sorted target >= lo
    while (a < b) {
      const uint32_t mid = (a + b) >> 1;
      if (__umul64hi(m_allowed, sm.target[order[mid]]) < lo) {
        a = mid + 1;
      } else {
        b = mid;
      }
    }
    for (; a < n && __umul64hi(m_allowed, sm.target[order[a]]) < up; ++a) sm.tok[order[a]] = int(j);
  });
  // Ranks: every token of a higher cell has a larger raw logit; inside the token's cell, warp w
  // compares raw logits for samples w, w + 8, ... (two raw logits can share a processed one).
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (uint32_t s = warp; s < n; s += kRowWarps) {
    const int js = sm.tok[s];
    const uint32_t cs = sm.cell[s], ks = l.key[js];
    const float xs = l.x[js];
    uint32_t cnt = cs == 0 ? 0u : h.count[cs - 1];
    for (int base = js - 1; base >= 0; base -= 32) {  // before it: its cell
      const int j = base - lane;
      const bool in = j >= 0 && cell_of(key_value(l.key[j]), top) == int(cs);
      cnt += __popc(__ballot_sync(kFullMask, in && l.x[j] > xs));
      if (!__all_sync(kFullMask, in)) break;
    }
    for (uint32_t base = js + 1; base < len; base += 32) {  // after it: its processed value
      const uint32_t j = base + lane;
      const bool in = j < len && l.key[j] == ks;
      cnt += __popc(__ballot_sync(kFullMask, in && l.x[j] > xs));
      if (!__all_sync(kFullMask, in)) break;
    }
    __syncwarp();
    if (lane == 0) sm.rank[s] = cnt;
  }
  __syncthreads();
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    const int j = sm.tok[s];
    sm.tok[s] = int(l.idx[j]);
    sm.xt[s] = l.x[j];
  }
  __syncthreads();
  return true;
}

// Pass 1 of a sampled (not greedy) row, in groups of kUnroll tiles: thread t takes elements
// g + t, g + t + 256, ... of group g, so every thread meets its elements in the order of the plain
// thread-strided walk and the online sums are bit for bit those of row_max_sum_raw. Per element:
// a max.NaN (NaN or +inf flags the row), the online (max, sum) of the raw logits and (kDiv: T != 1)
// of the processed ones, the cell sums (`cells_on`) and the list test (`use_list`). -inf needs no
// test: it adds exp(-inf) = 0 to a running sum, and the NaN a thread's sum gets from -inf before
// its first finite logit is reset by that logit (a thread with none adds nothing in block_max_sum).
// NaN and +inf only need the row flagged: their sums are never used. The tail group pads with -inf.
// The list: an element whose processed logit lies above `thr` (the L-th best so far, -inf before
// the first compaction) takes a slot with a shared atomic (slots in any order: the list is sorted
// before use). When a group finds the list full, the block sorts the full list, keeps the best L,
// and the elements that found no slot retry against the new L-th best (>=: an element of this
// group may tie it with a lower index); later groups have higher indices, so > suffices there.
struct Pass1 {
  MaxSum raw, proc;
  bool bad;
  int top;          // the cells' top cell
  uint32_t len;     // list entries
  bool compacted;   // the list dropped candidates
  float thr;        // list threshold
};

template <typename T, bool kDiv>
__device__ __forceinline__ void pass1_groups(const T* __restrict__ x, uint32_t vocab, float temp, CellHist& h,
                                             SampleSmem& sm, bool cells_on, bool use_list, uint32_t cap_l,
                                             Pass1& st) {
  StreamList& l = sm.u.s;
  if (threadIdx.x < 3) sm.appended[threadIdx.x] = 0;
  if (threadIdx.x == 0) sm.top_cell = INT_MIN;
  __syncthreads();
  const float log2e = opaque(kLog2e);
  float nan_or_max = -CUDART_INF_F;  // max.NaN of the raw logits: NaN or +inf when the row is bad
  uint32_t rot = 0;  // group g counts its appends in appended[g % 3] and clears the next one
  for (uint32_t g = 0; g < vocab; g += kUnroll * kRowThreads) {
    const T* xg = x + g + threadIdx.x;
    float xs[kUnroll], zs[kUnroll];
    if (g + kUnroll * kRowThreads <= vocab) {
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) xs[k] = to_float(xg[k * kRowThreads]);
    } else {
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        xs[k] = g + k * kRowThreads + threadIdx.x < vocab ? to_float(xg[k * kRowThreads]) : -CUDART_INF_F;
      }
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      asm("max.NaN.f32 %0, %0, %1;" : "+f"(nan_or_max) : "f"(xs[k]));
      max_sum_push(st.raw, xs[k], log2e);
      if (kDiv) {
        zs[k] = __fdiv_rn(xs[k], temp);
        max_sum_push(st.proc, zs[k], log2e);
      } else {
        zs[k] = xs[k];
      }
    }
    if (cells_on) hist_group(h, sm, zs, kDiv ? st.proc.m : st.raw.m, st.top, log2e);
    if (use_list) {
      const uint32_t next = rot == 2 ? 0 : rot + 1;
      if (threadIdx.x == 0) sm.appended[next] = 0;
      uint32_t missed = 0;  // bit k: element k found the list full
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        if (zs[k] > st.thr) {
          const uint32_t q = st.len + atomicAdd(&sm.appended[rot], 1u);
          if (q < kStreamCap) {
            l.key[q] = order_key(zs[k]);
            l.idx[q] = g + k * kRowThreads + threadIdx.x;
            l.x[q] = xs[k];
          } else {
            missed |= 1u << k;
          }
        }
      }
      __syncthreads();
      const uint32_t len = st.len + sm.appended[rot];
      if (len <= kStreamCap) {
        st.len = len;
      } else {
        // After the first compaction the best L lead the list sorted: with L = kListMax a merge does.
        if (st.compacted && cap_l == kListMax) {
          stream_merge_top(l, kStreamCap - kListMax);
        } else {
          stream_sort(l, kStreamCap);
        }
        st.thr = key_value(l.key[cap_l - 1]);
        st.compacted = true;
        if (threadIdx.x == 0) sm.appended[rot] = 0;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kUnroll; ++k) {
          if (((missed >> k) & 1u) && zs[k] >= st.thr) {
            const uint32_t q = cap_l + atomicAdd(&sm.appended[rot], 1u);  // < cap_l + kUnroll * kRowThreads
            l.key[q] = order_key(zs[k]);
            l.idx[q] = g + k * kRowThreads + threadIdx.x;
            l.x[q] = xs[k];
          }
        }
        __syncthreads();
        st.len = cap_l + sm.appended[rot];
      }
      rot = next;
    }
  }
  if (!kDiv) st.proc = st.raw;
  st.bad = isnan(nan_or_max) || nan_or_max == CUDART_INF_F || st.proc.m == CUDART_INF_F;
}

template <typename T>
__device__ __forceinline__ void sample_row(const SampleParams& p, SampleSmem& sm, CellHist& h) {
  const uint32_t row = blockIdx.x;
  const uint32_t vocab = p.vocab, n = p.n;
  const T* __restrict__ x = static_cast<const T*>(p.logits) + uint64_t(row) * vocab;
  const float temp = p.temperature[row];
  const bool greedy = temp == 0.0f;

  const float min_p = p.min_p[row], top_p = p.top_p[row];
  const uint32_t top_k = p.top_k[row];
  const bool topk_on = top_k > 0 && top_k < vocab;
  // The streaming list pays off when the allowed set is likely small: top-k within its capacity,
  // or top-p / min-p (resolved there when their set fits), or a row that fits whole.
  const bool use_list =
      !greedy && (topk_on ? top_k <= kListMax : (top_p < 1.0f || min_p > 0.0f || vocab <= kListMax));
  const uint32_t cap_l = topk_on ? top_k : kListMax;
  // The two-pass path's cells: plain, min-p and top-p rows whose set may not fit the list.
  const bool cells_on = !greedy && !topk_on && vocab > kListMax;
  if (cells_on) {
    for (int b = threadIdx.x; b < kCells; b += kRowThreads) h.approx[b] = 0.0f;
    __syncthreads();
  }

  // Pass 1: raw and processed (max, sum), flags, argmax (greedy), the cells and the streaming
  // top-L list.
  bool bad = false;
  MaxSum raw{-CUDART_INF_F, 0.0f}, proc{-CUDART_INF_F, 0.0f};
  uint32_t best_key = 0, best_idx = 0xffffffffu;
  uint32_t len = 0;
  bool compacted = false;
  if (greedy) {
    for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) {
      const float xi = to_float(x[i]);
      if (isnan(xi) || xi == CUDART_INF_F) {
        bad = true;
      } else if (xi != -CUDART_INF_F) {
        max_sum_add(raw, xi);
        const uint32_t k = order_key(xi);
        if (best_idx == 0xffffffffu || k > best_key) {
          best_key = k;
          best_idx = i;
        }
      }
    }
  } else {
    Pass1 st{raw, proc, false, INT_MIN, 0, false, -CUDART_INF_F};
    if (temp == 1.0f) {
      pass1_groups<T, false>(x, vocab, temp, h, sm, cells_on, use_list, cap_l, st);
    } else {
      pass1_groups<T, true>(x, vocab, temp, h, sm, cells_on, use_list, cap_l, st);
    }
    raw = st.raw;
    proc = st.proc;
    bad = st.bad;
    len = st.len;
    compacted = st.compacted;
  }
  raw = block_max_sum(raw, sm.ms);
  proc = block_max_sum(proc, sm.ms);
  bad = __syncthreads_or(bad);
  // Every processed logit overflowed to -inf (a huge negative row at a small temperature).
  if (!greedy && proc.m == -CUDART_INF_F && raw.m != -CUDART_INF_F) bad = true;
  // Argmax (greedy), lowest index on ties: warp shuffles, then thread 0 over the warps. Sampled
  // rows use it only as the full-row draw's guard, which a token always passes.
  uint32_t argmax = 0;
  if (greedy) {
    for (int o = 16; o > 0; o >>= 1) {
      const uint32_t ok = __shfl_xor_sync(kFullMask, best_key, o), oi = __shfl_xor_sync(kFullMask, best_idx, o);
      if (oi != 0xffffffffu && (best_idx == 0xffffffffu || ok > best_key || (ok == best_key && oi < best_idx))) {
        best_key = ok;
        best_idx = oi;
      }
    }
    if ((threadIdx.x & 31) == 0) {
      sm.arg_key[threadIdx.x >> 5] = best_key;
      sm.arg_idx[threadIdx.x >> 5] = best_idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 0; w < kRowWarps; ++w) {
        const uint32_t ok = sm.arg_key[w], oi = sm.arg_idx[w];
        if (oi != 0xffffffffu && (best_idx == 0xffffffffu || ok > best_key || (ok == best_key && oi < best_idx))) {
          best_key = ok;
          best_idx = oi;
        }
      }
      sm.pidx = best_idx;
    }
    __syncthreads();
    argmax = sm.pidx;
    __syncthreads();
  }

  const uint64_t out0 = uint64_t(row) * n;
  const bool no_finite = raw.m == -CUDART_INF_F;
  if (bad || no_finite) {
    if (threadIdx.x == 0) p.status[row] = (bad ? kStatusNonFinite : 0u) | (no_finite ? kStatusNoFinite : 0u);
    for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
      p.token[out0 + s] = 0;
      p.logprob_raw[out0 + s] = CUDART_NAN_F;
      p.logprob_processed[out0 + s] = CUDART_NAN_F;
      p.logprob_truncated[out0 + s] = CUDART_NAN_F;
      p.rank[out0 + s] = 0;
    }
    return;
  }
  if (greedy) {
    // The limit T -> 0: all mass on the argmax (lowest index on ties), under every filter.
    const float lp = logprob_from(to_float(x[argmax]), raw);
    if (threadIdx.x == 0) p.status[row] = 0;
    for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
      p.token[out0 + s] = int32_t(argmax);
      p.logprob_raw[out0 + s] = lp;
      p.logprob_processed[out0 + s] = 0.0f;
      p.logprob_truncated[out0 + s] = 0.0f;
      p.rank[out0 + s] = 1;
    }
    return;
  }

  RowCtx<T> c{x, vocab, temp, proc.m, min_p > 0.0f ? logf(min_p) : -CUDART_INF_F};
  const Cut none{false, 0, 0, 0, 0, 0, 0};
  const bool p_on = top_p < 1.0f;
  bool have_total = false;
  uint64_t m_km = 0;  // mass of what min-p and top-k keep
  uint64_t m_allowed = 0;

  // The list path: the best L candidates of the total order, sorted, in shared memory. Min-p keeps
  // a prefix of them; when the allowed set lies inside the list (always under top-k), the filters,
  // the draw and the ranks run there. A larger raw logit means a larger or equal processed one, so
  // every token that outranks a listed one is listed, except equal processed logits past the list's
  // end (possible only when T != 1): then one pass over the row counts the ranks.
  bool resolved = false, cells_done = false;
  StreamList& l = sm.u.s;
  // Candidates were dropped iff a compaction ran or more than L remain.
  const bool dropped = compacted || len > cap_l;
  uint32_t lm = 0;
  uint64_t list_mass = 0;
  if (use_list) {
    if (compacted && cap_l == kListMax && len > kListMax) {
      stream_merge_top(l, len - kListMax);  // the first kListMax are sorted since the last compaction
    } else {
      stream_sort(l, len);
    }
    len = min(len, cap_l);
    uint64_t base = 0, lm_local = 0;
    for (uint32_t tile = 0; tile < len; tile += kRowThreads) {
      const uint32_t j = tile + threadIdx.x;
      uint64_t m = 0;
      if (j < len) {
        const float zj = key_value(l.key[j]);
        if (c.minp_ok(zj)) {
          m = mass_of(zj, c.mz);
          ++lm_local;
        }
      }
      uint64_t tot;
      const uint64_t incl = block_scan_u64(m, sm.scan, tot);
      if (j < len) l.cum[j] = base + incl;
      base += tot;
    }
    lm = uint32_t(block_sum_u64(lm_local, sm.scan));  // >= 1: the maximum passes min-p
    list_mass = l.cum[lm - 1];
    if (topk_on || !dropped || lm < len) {
      m_km = list_mass;
      resolved = true;
    }
  }
  if (!resolved && cells_on) {
    // Pass 2 (the two-pass path): exact cell masses of the min-p set, collecting the predicted
    // cells; top-p's set may instead end inside the list (then the list's arrays stay intact).
    for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) sm.target[s] = philox_bits64(p.seed[row], p.position[row], s);
    __syncthreads();
    const bool collect = predict_cells(c, h, sm, top_p, use_list && p_on, list_mass, n);
    m_km = cell_pass(c, h, sm, collect);
    have_total = true;
    if (collect) {
      cells_done = resolve_cells(c, h, sm, m_km, top_p, n);
      m_allowed = sm.above_mass;
    } else {
      resolved = list_mass >= top_p_need(m_km, top_p);
    }
  }
  if (resolved) {
    {
      const uint64_t need = p_on ? top_p_need(m_km, top_p) : ~0ull;
      uint64_t a_local = 0;
      for (uint32_t j = threadIdx.x; j < lm; j += kRowThreads) {
        if ((j == 0 ? 0ull : l.cum[j - 1]) < need) ++a_local;
      }
      const uint32_t a = uint32_t(block_sum_u64(a_local, sm.scan));  // a prefix, >= 1
      m_allowed = l.cum[a - 1];
      bool tie_past_end = false;
      for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
        const uint64_t t = __umul64hi(m_allowed, philox_bits64(p.seed[row], p.position[row], s));
        uint32_t lo = 0, hi = a - 1;  // the first kept entry whose inclusive prefix exceeds t
        while (lo < hi) {
          const uint32_t mid = (lo + hi) >> 1;
          if (l.cum[mid] > t) {
            hi = mid;
          } else {
            lo = mid + 1;
          }
        }
        sm.tok[s] = int(l.idx[lo]);
        sm.xt[s] = l.x[lo];
        sm.rank[s] = 0;
        tie_past_end |= dropped && l.key[lo] == l.key[len - 1] &&
                        __fdiv_rn(next_up(l.x[lo], T()), temp) == key_value(l.key[lo]);
      }
      __syncthreads();
      if (__syncthreads_or(tie_past_end)) {
        for (uint32_t tile = 0; tile < vocab; tile += kRowThreads) {
          const uint32_t i = tile + threadIdx.x;
          const float xi = i < vocab ? to_float(x[i]) : -CUDART_INF_F;
          for (uint32_t s = 0; s < n; ++s) {
            const unsigned b = __ballot_sync(kFullMask, xi > sm.xt[s]);
            if ((threadIdx.x & 31) == 0 && b != 0) atomicAdd(&sm.rank[s], unsigned(__popc(b)));
          }
        }
      } else {
        for (uint32_t tile = 0; tile < len; tile += kRowThreads) {
          const uint32_t j = tile + threadIdx.x;
          const float xj = j < len ? l.x[j] : -CUDART_INF_F;
          for (uint32_t s = 0; s < n; ++s) {
            const unsigned b = __ballot_sync(kFullMask, xj > sm.xt[s]);
            if ((threadIdx.x & 31) == 0 && b != 0) atomicAdd(&sm.rank[s], unsigned(__popc(b)));
          }
        }
      }
      __syncthreads();
    }
  }

  if (!resolved && !cells_done) {
  // top-k over the min-p set (k beyond the list's capacity).
  Cut ck = none;
  if (topk_on) {
    ck = radix_select(c, sm, false, uint64_t(top_k) - 1, none);
    have_total = true;
    m_km = ck.active ? ck.above_mass + uint64_t(ck.take) * ck.mass_each : ck.total_mass;
  }
  if (!have_total && (p_on || !ck.active)) {
    uint64_t m = 0;
    for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) {
      const float zi = c.z(i);
      if (c.minp_ok(zi)) m += mass_of(zi, c.mz);
    }
    m_km = block_sum_u64(m, sm.scan);
  }
  Cut cut = ck;
  m_allowed = m_km;
  if (p_on) {
    const Cut cp = radix_select(c, sm, true, top_p_need(m_km, top_p) - 1, ck);
    if (cp.active) {
      cut = cp;
      m_allowed = cp.above_mass + uint64_t(cp.take) * cp.mass_each;
    }
  }

  // The last kept tie, in index order, when the cut splits a tie.
  const uint32_t pidx = last_kept_tie(c, sm, cut);

  // Targets, then the draw in index order.
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    sm.target[s] = __umul64hi(m_allowed, philox_bits64(p.seed[row], p.position[row], s));
    sm.tok[s] = -1;
    sm.rank[s] = 0;
  }
  __syncthreads();
  uint64_t max_target = 0;
  for (uint32_t s = 0; s < n; ++s) max_target = max(max_target, uint64_t(sm.target[s]));
  uint64_t base = 0;
  for (uint32_t tile = 0; tile < vocab; tile += kRowThreads) {
    const uint32_t i = tile + threadIdx.x;
    uint64_t m = 0;
    if (i < vocab) {
      const float zi = c.z(i);
      const uint32_t key = order_key(zi);
      const bool kept = c.minp_ok(zi) && (!cut.active || key > cut.key || (key == cut.key && i <= pidx));
      if (kept) m = mass_of(zi, c.mz);
    }
    uint64_t tot;
    const uint64_t incl = block_scan_u64(m, sm.scan, tot);
    if (m != 0) {
      const uint64_t lo = base + incl - m, up = base + incl;
      for (uint32_t s = 0; s < n; ++s) {
        const uint64_t t = sm.target[s];
        if (lo <= t && t < up) sm.tok[s] = int(i);
      }
    }
    base += tot;
    if (base > max_target) break;
  }
  __syncthreads();
  // Every target lies below the allowed mass, so a token was found; argmax is only a guard.
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    if (sm.tok[s] < 0) sm.tok[s] = int(argmax);
    sm.xt[s] = to_float(x[sm.tok[s]]);
  }
  __syncthreads();

  // Ranks under the raw logits: 1 + the number of raw logits above the token's.
  for (uint32_t tile = 0; tile < vocab; tile += kRowThreads) {
    const uint32_t i = tile + threadIdx.x;
    const float xi = i < vocab ? to_float(x[i]) : -CUDART_INF_F;
    for (uint32_t s = 0; s < n; ++s) {
      const unsigned b = __ballot_sync(kFullMask, xi > sm.xt[s]);
      if ((threadIdx.x & 31) == 0 && b != 0) atomicAdd(&sm.rank[s], unsigned(__popc(b)));
    }
  }
  __syncthreads();
  }

  const float log_m = logf(__fmul_rn(__ull2float_rn(m_allowed), kInvMassScale));
  if (threadIdx.x == 0) p.status[row] = 0;
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    const int t = sm.tok[s];
    const float xt = sm.xt[s], zt = __fdiv_rn(xt, c.temp);
    p.token[out0 + s] = t;
    p.logprob_raw[out0 + s] = logprob_from(xt, raw);
    p.logprob_processed[out0 + s] = logprob_from(zt, proc);
    p.logprob_truncated[out0 + s] = __fsub_rn(__fsub_rn(zt, c.mz), log_m);
    p.rank[out0 + s] = int32_t(sm.rank[s] + 1);
  }
}

}  // namespace sk

// Three CTAs per SM bound the registers at 85: with no minimum, ptxas held sm_90a at 64 and spilled.
#define SK_SAMPLE_ENTRY(NAME, T)                                                                  \
  extern "C" __global__ void __launch_bounds__(sk::kRowThreads, 3)                               \
      sampling_sample_##NAME(const __grid_constant__ sk::SampleParams p) {                        \
    __shared__ sk::SampleSmem sm;                                                                 \
    extern __shared__ __align__(16) unsigned char sk_cells[];                                     \
    sk::sample_row<T>(p, sm, *reinterpret_cast<sk::CellHist*>(sk_cells));                         \
  }
SK_SAMPLE_ENTRY(f32, float)
SK_SAMPLE_ENTRY(f16, __half)
SK_SAMPLE_ENTRY(bf16, __nv_bfloat16)

namespace sk {

// top_logprobs: the radix select of the sampler on the raw logits (temperature 1, no min-p), then
// one pass copies the n kept tokens (in index order) to shared memory, where thread 0 orders them.
// Passes: 1 (max, sum) + 3 (select) + at most 1 (tie scan) + 1 (copy). The logprobs use the
// sampler's (max, sum) arithmetic, so they equal its logprob_raw and log_softmax_gather bit for bit.
constexpr uint32_t kMaxTopLogprobs = 20;

template <typename T>
__device__ __forceinline__ void top_logprobs_row(const TopLogprobsParams& p, SampleSmem& sm) {
  const uint32_t row = blockIdx.x, vocab = p.vocab, n = p.n;
  const T* __restrict__ x = static_cast<const T*>(p.logits) + uint64_t(row) * vocab;
  bool bad = false;
  MaxSum raw = row_max_sum_raw(x, vocab, bad);
  raw = block_max_sum(raw, sm.ms);
  bad = __syncthreads_or(bad);
  const uint64_t out0 = uint64_t(row) * n;
  const bool no_finite = raw.m == -CUDART_INF_F;
  if (bad || no_finite) {
    if (threadIdx.x == 0) p.status[row] = (bad ? kStatusNonFinite : 0u) | (no_finite ? kStatusNoFinite : 0u);
    for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
      p.ids[out0 + s] = -1;
      p.logprobs[out0 + s] = CUDART_NAN_F;
    }
    return;
  }
  const RowCtx<T> c{x, vocab, 1.0f, raw.m, -CUDART_INF_F};
  const Cut none{false, 0, 0, 0, 0, 0, 0};
  const Cut cut = n < vocab ? radix_select(c, sm, false, uint64_t(n) - 1, none) : none;
  const uint32_t pidx = last_kept_tie(c, sm, cut);
  TopkList& l = sm.u.l;
  uint64_t pos = 0;
  for (uint32_t tile = 0; tile < vocab && pos < n; tile += kRowThreads) {
    const uint32_t i = tile + threadIdx.x;
    bool in = false;
    float xi = 0.0f;
    if (i < vocab) {
      xi = to_float(x[i]);
      const uint32_t key = order_key(xi);
      in = !cut.active || key > cut.key || (key == cut.key && i <= pidx);
    }
    uint64_t tot;
    const uint64_t incl = block_scan_u64(in ? 1 : 0, sm.scan, tot);
    if (in && pos + incl <= kMaxTopLogprobs) {
      l.idx[pos + incl - 1] = i;
      l.x[pos + incl - 1] = xi;
    }
    pos += tot;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint32_t len = uint32_t(min(pos, uint64_t(n)));
    // Insertion sort by (value desc, index asc); the copies arrived in index order.
    for (uint32_t a = 1; a < len; ++a) {
      const uint32_t ia = l.idx[a];
      const float xa = l.x[a];
      uint32_t b = a;
      while (b > 0 && l.x[b - 1] < xa) {
        l.idx[b] = l.idx[b - 1];
        l.x[b] = l.x[b - 1];
        --b;
      }
      l.idx[b] = ia;
      l.x[b] = xa;
    }
    for (uint32_t s = 0; s < n; ++s) {
      p.ids[out0 + s] = s < len ? int32_t(l.idx[s]) : -1;
      p.logprobs[out0 + s] = s < len ? logprob_from(l.x[s], raw) : CUDART_NAN_F;
    }
    p.status[row] = 0;
  }
}

}  // namespace sk

#define SK_TOP_LOGPROBS_ENTRY(NAME, T)                                                            \
  extern "C" __global__ void __launch_bounds__(sk::kRowThreads, 3)                               \
      sampling_top_logprobs_##NAME(const __grid_constant__ sk::TopLogprobsParams p) {             \
    __shared__ sk::SampleSmem sm;                                                                 \
    sk::top_logprobs_row<T>(p, sm);                                                               \
  }
SK_TOP_LOGPROBS_ENTRY(f32, float)
SK_TOP_LOGPROBS_ENTRY(f16, __half)
SK_TOP_LOGPROBS_ENTRY(bf16, __nv_bfloat16)
