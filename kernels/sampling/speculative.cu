// Chain speculative sampling (Leviathan et al. 2023; Chen et al. 2023) and its greedy variant.
//
// Row r has k draft tokens d_j drawn from the draft distributions q_j and the target distributions
// p_0..p_k. For j = 0, 1, ...: accept d_j when u_j * q_j[d_j] < p_j[d_j] (u_j uniform in [0, 1), so
// with probability min(1, p/q)); on the first rejection emit a token from the residual
// max(0, p_j - q_j) renormalised (p_j itself if rounding left no residual) and stop; when all k are
// accepted emit a bonus token from p_k. Every emitted token is then distributed as the target says.
// Greedy: accept while d_j == argmax p_j (lowest index on ties), emit argmax p_j at the first
// mismatch, or argmax p_k as the bonus. A draft id outside [0, vocab) is rejected (never read).
//
// Randomness: Philox 4x32-10 keyed by seed[r], counter (position[r], j, stream): stream 1 gives
// u_j (24 bits), stream 2 the residual or bonus draw (64 bits, exact over 2^-40 fixed-point
// weights, in index order, as the sampler draws).
//
// Work split: one CTA of 256 threads per row; the accept test is one thread's, the residual /
// bonus draw and the greedy argmax are block passes over one distribution (early exit for draws).
// Reads per row: k draft ids, 2 probabilities per accepted draft, at most one residual pass over
// p_j and q_j (2 * vocab * 4 bytes) or one bonus pass over p_k; greedy reads p_0..p_j fully.
#include "common/philox.cuh"
#include "sampling/params.cuh"
#include "sampling/row.cuh"

namespace sk {

constexpr float kSpecMassScale = 1099511627776.0f;  // 2^40

struct SpecSmem {
  uint64_t scan[kRowWarps];
  float val[kRowWarps];
  uint32_t idx[kRowWarps];
  int32_t tok;
};

// Index of the largest probability, lowest index on ties (NaN never wins).
__device__ __forceinline__ uint32_t block_argmax(const float* __restrict__ p, uint32_t vocab, SpecSmem& sm) {
  float bv = -CUDART_INF_F;
  uint32_t bi = 0xffffffffu;
  for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) {
    const float v = p[i];
    if (bi == 0xffffffffu || v > bv) {
      bv = v;
      bi = i;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(kFullMask, bv, o);
    const uint32_t i = __shfl_xor_sync(kFullMask, bi, o);
    if (i != 0xffffffffu && (bi == 0xffffffffu || v > bv || (v == bv && i < bi))) {
      bv = v;
      bi = i;
    }
  }
  if ((threadIdx.x & 31) == 0) {
    sm.val[threadIdx.x >> 5] = bv;
    sm.idx[threadIdx.x >> 5] = bi;
  }
  __syncthreads();
  float v0 = sm.val[0];
  uint32_t i0 = sm.idx[0];
  for (int w = 1; w < kRowWarps; ++w) {
    const float v = sm.val[w];
    const uint32_t i = sm.idx[w];
    if (i != 0xffffffffu && (i0 == 0xffffffffu || v > v0 || (v == v0 && i < i0))) {
      v0 = v;
      i0 = i;
    }
  }
  __syncthreads();
  return i0 == 0xffffffffu ? 0 : i0;
}

__device__ __forceinline__ uint64_t weight_of(const float* __restrict__ p, const float* __restrict__ q, uint32_t i) {
  const float w = q != nullptr ? fmaxf(__fsub_rn(p[i], q[i]), 0.0f) : p[i];
  return w > 0.0f ? __float2ull_rz(__fmul_rn(fminf(w, 1.0f), kSpecMassScale)) : 0;
}

// A draw from the weights max(0, p - q) (or p when q is null), exact over their fixed-point values,
// in index order; -1 when every weight is 0.
__device__ __forceinline__ int32_t block_draw(const float* __restrict__ p, const float* __restrict__ q, uint32_t vocab, uint64_t bits,
                              SpecSmem& sm) {
  uint64_t m = 0;
  for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) m += weight_of(p, q, i);
  const uint64_t total = block_sum_u64(m, sm.scan);
  if (total == 0) return -1;
  const uint64_t target = __umul64hi(total, bits);
  if (threadIdx.x == 0) sm.tok = -1;
  __syncthreads();
  uint64_t base = 0;
  for (uint32_t tile = 0; tile < vocab; tile += kRowThreads) {
    const uint32_t i = tile + threadIdx.x;
    const uint64_t w = i < vocab ? weight_of(p, q, i) : 0;
    uint64_t tot;
    const uint64_t incl = block_scan_u64(w, sm.scan, tot);
    if (w != 0 && base + incl - w <= target && target < base + incl) sm.tok = int32_t(i);
    base += tot;
    if (base > target) break;
  }
  __syncthreads();
  return sm.tok;
}

template <bool kGreedy>
__device__ __forceinline__ void chain_speculative_row(const ChainSpecParams& p, SpecSmem& sm) {
  const uint32_t row = blockIdx.x, k = p.k, vocab = p.vocab;
  const int32_t* __restrict__ draft = p.draft + uint64_t(row) * k;
  const float* __restrict__ tp = p.target_probs + uint64_t(row) * (k + 1) * vocab;
  const float* __restrict__ dp = kGreedy ? nullptr : p.draft_probs + uint64_t(row) * k * vocab;
  int32_t* __restrict__ out = p.emitted + uint64_t(row) * (k + 1);
  const uint64_t seed = p.seed[row], pos = p.position[row];
  uint32_t j = 0;
  int32_t last = -1;
  for (; j < k; ++j) {
    const int32_t d = draft[j];
    const bool in_range = d >= 0 && uint32_t(d) < vocab;
    const float* pj = tp + uint64_t(j) * vocab;
    bool accept;
    if (kGreedy) {
      const uint32_t am = block_argmax(pj, vocab, sm);
      accept = in_range && uint32_t(d) == am;
      if (!accept) last = int32_t(am);
    } else {
      const float* qj = dp + uint64_t(j) * vocab;
      const float u = float(philox_bits64_stream(seed, pos, j, 1) >> 40) * 5.9604644775390625e-8f;  // 2^-24
      accept = in_range && __fmul_rn(u, qj[d]) < pj[d];
      if (!accept) {
        const uint64_t bits = philox_bits64_stream(seed, pos, j, 2);
        last = block_draw(pj, in_range ? qj : nullptr, vocab, bits, sm);
        if (last < 0) last = block_draw(pj, nullptr, vocab, bits, sm);
      }
    }
    if (!accept) break;
    if (threadIdx.x == 0) out[j] = d;
  }
  if (j == k) {
    const float* pk = tp + uint64_t(k) * vocab;
    last = kGreedy ? int32_t(block_argmax(pk, vocab, sm))
                    : block_draw(pk, nullptr, vocab, philox_bits64_stream(seed, pos, k, 2), sm);
  }
  if (threadIdx.x == 0) {
    p.accepted[row] = int32_t(j);
    out[j] = last < 0 ? 0 : last;
    for (uint32_t t = j + 1; t <= k; ++t) out[t] = -1;
  }
}

}  // namespace sk

// One entry point; `greedy` is uniform per launch, so the branch costs nothing per row.
extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_chain_speculative(const __grid_constant__ sk::ChainSpecParams p) {
  __shared__ sk::SpecSmem sm;
  if (p.greedy) {
    sk::chain_speculative_row<true>(p, sm);
  } else {
    sk::chain_speculative_row<false>(p, sm);
  }
}
