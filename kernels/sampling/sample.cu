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
//   1   max and sum of exp of raw and processed logits (online), NaN / inf flags, argmax (greedy);
// top-k on (0 < k < vocab), k <= 1024:
//   2   the first two radix rounds (11 + 11 bits of the order key, counting) of the k-th token;
//   1   when at most 1024 candidates reach its 22-bit prefix (the usual case): copy them, in index
//       order, to shared memory; top-k, top-p, the draw and the ranks then run there. Else the
//       full-row path below resumes with the third round.
// full-row path (top-k off or k > 1024, or the list overflows):
//   3   top-k: radix select on the order key (11 + 11 + 10 bits), counting, when 0 < k < vocab;
//   1   mass of the min-p set, only when top-p is on and top-k is off;
//   3   top-p: radix select weighted by mass, when p < 1;
//   <=1 tie scan in index order to find the last kept tie, only when the cut splits a tie (early exit);
//   1   the mass of the allowed set, only when neither top-k nor top-p is on;
//   <=1 the draw (early exit once every sample's target is passed);
//   1   ranks (count of raw logits above each drawn token's).
// Measured on the VM (examples/sol_report.rs, bf16, vocab 131,072, 32-byte sectors requested / row
// bytes): top-k 50 + top-p 0.9: 4.00; top-k 1: 4.00; top-p 0.9 alone: 6.94; min-p or plain: 3.88;
// greedy: 1.00. The fewest bytes per row are vocab * sizeof(T) (one read); FLOPs ~ 4 * vocab per pass
// (the division, the exponential, compares and adds).
// Status: kStatusNoFinite (all -inf) or kStatusNonFinite (NaN, +inf, or a processed logit that
// overflowed): token 0, logprobs NaN, rank 0.
#include "common/philox.cuh"
#include "sampling/params.cuh"
#include "sampling/row.cuh"

namespace sk {

constexpr uint32_t kMaxSamples = 64;            // samples per row per launch (host-checked)
constexpr int kBuckets = 2048;                  // 2^11: the widest radix digit
constexpr uint32_t kListMax = 1024;             // top-k list capacity (k <= 1024 takes the list path)
constexpr float kMassScale = 1099511627776.0f;  // 2^40
constexpr float kInvMassScale = 9.094947017729282e-13f;  // 2^-40

// Digits of the 32-bit order key, most significant first: bits 31..21, 20..10, 9..0.
__device__ __forceinline__ int radix_shift(int r) { return r == 0 ? 21 : (r == 1 ? 10 : 0); }
__device__ __forceinline__ int radix_bits(int r) { return r == 2 ? 10 : 11; }

__device__ __forceinline__ uint64_t mass_of(float z, float mz) {
  return __float2ull_rz(__fmul_rn(exp_rn(__fsub_rn(z, mz)), kMassScale));
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

struct SampleSmem {
  union {
    RadixHist h;
    TopkList l;
  } u;
  unsigned long long target[kMaxSamples];
  int tok[kMaxSamples];
  unsigned int rank[kMaxSamples];
  float xt[kMaxSamples];
  uint64_t scan[kRowWarps];
  MaxSum ms[kRowWarps];
  uint32_t arg_key[kRowWarps];
  uint32_t arg_idx[kRowWarps];
  unsigned long long above_cnt, above_mass, total_mass, total_cnt;
  uint32_t digit, found, pidx;
};

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

__device__ __forceinline__ SelectState select_start() { return SelectState{0, 0, 0, 0, 0, 0, 0, 0, true}; }

template <typename T>
__device__ Cut radix_select(const RowCtx<T>& c, SampleSmem& sm, bool by_mass, uint64_t target, const Cut& limit) {
  SelectState st = select_start();
  radix_rounds(c, sm, by_mass, target, limit, st, 3);
  return finish_select(c, by_mass, target, limit, st);
}

// The top-k list path: every candidate whose order key's top 22 bits reach the top-k cut's (at most
// kListMax of them) is copied, in index order, to shared memory; top-k, top-p, the draw and the
// ranks then run there. A token with a larger raw logit than a listed one has a larger or equal
// processed logit, so it is listed too: ranks need nothing outside the list. Fills sm.tok (ids),
// sm.xt and sm.rank as the full-row path does; returns the allowed mass (the same integer).
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

template <typename T>
__device__ uint64_t topk_list_sample(const SampleParams& p, const RowCtx<T>& c, SampleSmem& sm, uint32_t lower22,
                                     uint32_t top_k, float top_p, uint32_t n) {
  TopkList& l = sm.u.l;
  uint64_t pos = 0;
  for (uint32_t tile = 0; tile < c.vocab; tile += kRowThreads) {
    const uint32_t i = tile + threadIdx.x;
    bool in = false;
    float xi = 0.0f, zi = 0.0f;
    uint32_t key = 0;
    if (i < c.vocab) {
      xi = to_float(c.x[i]);
      zi = __fdiv_rn(xi, c.temp);
      key = order_key(zi);
      in = c.minp_ok(zi) && (key >> 10) >= lower22;
    }
    uint64_t tot;
    const uint64_t incl = block_scan_u64(in ? 1 : 0, sm.scan, tot);
    if (in && pos + incl <= kListMax) {
      const uint32_t q = uint32_t(pos + incl - 1);
      l.idx[q] = i;
      l.key[q] = key;
      l.x[q] = xi;
      l.mass[q] = mass_of(zi, c.mz);
    }
    pos += tot;
  }
  __syncthreads();
  const uint32_t len = uint32_t(min(pos, uint64_t(kListMax)));

  // Each listed token's place in the total order and the mass ahead of it (len <= 1024, so the
  // quadratic count costs about as much as one pass over a 128k row, in shared memory).
  constexpr int kPer = kListMax / kRowThreads;
  uint32_t place[kPer];
  uint64_t ahead[kPer];
  uint64_t mk = 0;
#pragma unroll
  for (int q = 0; q < kPer; ++q) {
    const uint32_t j = q * kRowThreads + threadIdx.x;
    place[q] = 0xffffffffu;
    ahead[q] = 0;
    if (j < len) {
      const uint32_t kj = l.key[j], ij = l.idx[j];
      uint32_t pl = 0;
      uint64_t b = 0;
      for (uint32_t t = 0; t < len; ++t) {
        const uint32_t kt = l.key[t];
        if (kt > kj || (kt == kj && l.idx[t] < ij)) {
          ++pl;
          b += l.mass[t];
        }
      }
      place[q] = pl;
      ahead[q] = b;
      if (pl < top_k) mk += l.mass[j];
    }
  }
  const uint64_t m_km = block_sum_u64(mk, sm.scan);
  uint64_t need = ~0ull;
  if (top_p < 1.0f) {
    const uint64_t p32 = uint64_t(__fmul_rn(top_p, 4294967296.0f));
    const uint64_t lo = m_km * p32, hi = __umul64hi(m_km, p32);
    need = ((hi << 32) | (lo >> 32)) + ((lo & 0xffffffffull) != 0 ? 1 : 0);
  }
  bool kept[kPer];
  uint64_t ma = 0;
#pragma unroll
  for (int q = 0; q < kPer; ++q) {
    const uint32_t j = q * kRowThreads + threadIdx.x;
    kept[q] = j < len && place[q] < top_k && ahead[q] < need;
    if (kept[q]) ma += l.mass[j];
  }
  const uint64_t m_allowed = block_sum_u64(ma, sm.scan);

  const uint32_t row = blockIdx.x;
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    sm.target[s] = __umul64hi(m_allowed, philox_bits64(p.seed[row], p.position[row], s));
    sm.tok[s] = -1;
    sm.rank[s] = 0;
  }
  __syncthreads();
  uint64_t max_target = 0;
  for (uint32_t s = 0; s < n; ++s) max_target = max(max_target, uint64_t(sm.target[s]));
  uint64_t base = 0;
#pragma unroll
  for (int q = 0; q < kPer; ++q) {
    if (q * kRowThreads < int(len) && base <= max_target) {
      const uint32_t j = q * kRowThreads + threadIdx.x;
      const uint64_t m = kept[q] ? l.mass[j] : 0;
      uint64_t tot;
      const uint64_t incl = block_scan_u64(m, sm.scan, tot);
      if (m != 0) {
        const uint64_t lo = base + incl - m, up = base + incl;
        for (uint32_t s = 0; s < n; ++s) {
          const uint64_t t = sm.target[s];
          if (lo <= t && t < up) sm.tok[s] = int(j);
        }
      }
      base += tot;
    }
  }
  __syncthreads();
  for (uint32_t s = threadIdx.x; s < n; s += kRowThreads) {
    const int j = max(sm.tok[s], 0);  // always found: every target lies below the allowed mass
    sm.xt[s] = l.x[j];
    sm.tok[s] = int(l.idx[j]);
  }
  __syncthreads();
  for (uint32_t tile = 0; tile < len; tile += kRowThreads) {
    const uint32_t j = tile + threadIdx.x;
    const float xj = j < len ? l.x[j] : -CUDART_INF_F;
    for (uint32_t s = 0; s < n; ++s) {
      const unsigned b = __ballot_sync(kFullMask, xj > sm.xt[s]);
      if ((threadIdx.x & 31) == 0 && b != 0) atomicAdd(&sm.rank[s], unsigned(__popc(b)));
    }
  }
  __syncthreads();
  return m_allowed;
}

template <typename T>
__device__ __forceinline__ void sample_row(const SampleParams& p, SampleSmem& sm) {
  const uint32_t row = blockIdx.x;
  const uint32_t vocab = p.vocab, n = p.n;
  const T* __restrict__ x = static_cast<const T*>(p.logits) + uint64_t(row) * vocab;
  const float temp = p.temperature[row];
  const bool greedy = temp == 0.0f;

  // Pass 1: raw and processed (max, sum), flags, argmax.
  bool bad = false;
  MaxSum raw{-CUDART_INF_F, 0.0f}, proc{-CUDART_INF_F, 0.0f};
  uint32_t best_key = 0, best_idx = 0xffffffffu;
  for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) {
    const float xi = to_float(x[i]);
    if (isnan(xi) || xi == CUDART_INF_F) {
      bad = true;
      continue;
    }
    if (xi == -CUDART_INF_F) continue;
    max_sum_add(raw, xi);
    const uint32_t k = order_key(xi);
    if (best_idx == 0xffffffffu || k > best_key) {
      best_key = k;
      best_idx = i;
    }
    if (!greedy) {
      const float zi = __fdiv_rn(xi, temp);
      if (zi == CUDART_INF_F) {
        bad = true;
      } else if (zi != -CUDART_INF_F) {
        max_sum_add(proc, zi);
      }
    }
  }
  raw = block_max_sum(raw, sm.ms);
  proc = block_max_sum(proc, sm.ms);
  bad = __syncthreads_or(bad);
  // Every processed logit overflowed to -inf (a huge negative row at a small temperature).
  if (!greedy && proc.m == -CUDART_INF_F && raw.m != -CUDART_INF_F) bad = true;
  // Argmax, lowest index on ties: warp shuffles, then thread 0 over the warps.
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
  const uint32_t argmax = sm.pidx;
  __syncthreads();

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

  const float min_p = p.min_p[row], top_p = p.top_p[row];
  const uint32_t top_k = p.top_k[row];
  RowCtx<T> c{x, vocab, temp, proc.m, min_p > 0.0f ? logf(min_p) : -CUDART_INF_F};
  const Cut none{false, 0, 0, 0, 0, 0, 0};

  // top-k over the min-p set.
  Cut ck = none;
  bool have_total = false;
  uint64_t m_km = 0;  // mass of what min-p and top-k keep
  bool listed = false;
  uint32_t lower22 = 0;
  if (top_k > 0 && top_k < vocab) {
    SelectState st = select_start();
    const uint64_t kth = uint64_t(top_k) - 1;
    if (top_k <= kListMax) {
      radix_rounds(c, sm, false, kth, none, st, 2);
      listed = (st.found ? st.above_cnt + st.bucket_count : st.total_cnt) <= kListMax;
      lower22 = st.found ? st.prefix >> 10 : 0;
    }
    if (!listed) {
      radix_rounds(c, sm, false, kth, none, st, 3);
      ck = finish_select(c, false, kth, none, st);
      have_total = true;
      m_km = ck.active ? ck.above_mass + uint64_t(ck.take) * ck.mass_each : ck.total_mass;
    }
  }
  uint64_t m_allowed = 0;
  if (listed) {
    m_allowed = topk_list_sample(p, c, sm, lower22, top_k, top_p, n);
  } else {
  const bool p_on = top_p < 1.0f;
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
    // need = ceil(M * p32 / 2^32), p32 = p * 2^32 (exact: p is an fp32 <= 1).
    const uint64_t p32 = uint64_t(__fmul_rn(top_p, 4294967296.0f));
    const uint64_t lo = m_km * p32, hi = __umul64hi(m_km, p32);
    const uint64_t need = (hi << 32) | (lo >> 32);
    const uint64_t need_ceil = need + ((lo & 0xffffffffull) != 0 ? 1 : 0);
    const Cut cp = radix_select(c, sm, true, need_ceil - 1, ck);
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
    const float xt = sm.xt[s], zt = c.z(t);
    p.token[out0 + s] = t;
    p.logprob_raw[out0 + s] = logprob_from(xt, raw);
    p.logprob_processed[out0 + s] = logprob_from(zt, proc);
    p.logprob_truncated[out0 + s] = __fsub_rn(__fsub_rn(zt, c.mz), log_m);
    p.rank[out0 + s] = int32_t(sm.rank[s] + 1);
  }
}

}  // namespace sk

#define SK_SAMPLE_ENTRY(NAME, T)                                                                  \
  extern "C" __global__ void __launch_bounds__(sk::kRowThreads)                                  \
      sampling_sample_##NAME(const __grid_constant__ sk::SampleParams p) {                        \
    __shared__ sk::SampleSmem sm;                                                                 \
    sk::sample_row<T>(p, sm);                                                                     \
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
  extern "C" __global__ void __launch_bounds__(sk::kRowThreads)                                  \
      sampling_top_logprobs_##NAME(const __grid_constant__ sk::TopLogprobsParams p) {             \
    __shared__ sk::SampleSmem sm;                                                                 \
    sk::top_logprobs_row<T>(p, sm);                                                               \
  }
SK_TOP_LOGPROBS_ENTRY(f32, float)
SK_TOP_LOGPROBS_ENTRY(f16, __half)
SK_TOP_LOGPROBS_ENTRY(bf16, __nv_bfloat16)
