// Test-time answer selection over ragged groups of samples (one group per prompt).
//
// majority_vote: per group, the answer id (e.g. a hash of the extracted final answer) that occurs
// most often, ties to the lowest id, and its count. Each lane takes samples j = lane, lane + 32, ...
// and counts how often answers[j] occurs in the group (O(n^2 / 32) compares per lane: groups are
// the n samples of one prompt, tens to hundreds); then the warp keeps (count desc, id asc).
// An empty group gives answer 0 with 0 votes.
//
// best_of_n: per group, the index (within the group) of the largest reward, ties to the lowest
// index; a NaN reward never wins over a number; an all-NaN group gives index 0 and NaN; an empty
// group gives -1 and NaN.
//
// Work split: one warp per group, kSelectWarps groups per CTA. Fewest bytes: each answer or reward
// read once, two words written per group; majority_vote reads the group n times (from L1).
#include "sampling/params.cuh"
#include "sampling/row.cuh"

namespace sk {

constexpr int kSelectWarps = 4;

__device__ __forceinline__ bool vote_better(uint32_t c, uint64_t a, uint32_t bc, uint64_t ba) {
  return c > bc || (c == bc && a < ba);
}

__device__ __forceinline__ void majority_vote_group(const MajorityVoteParams& p, uint32_t g) {
  const int lane = threadIdx.x & 31;
  const uint32_t lo = p.offsets[g], hi = p.offsets[g + 1];
  uint32_t best_c = 0;
  uint64_t best_a = 0;
  for (uint32_t j = lo + lane; j < hi; j += 32) {
    const uint64_t a = p.answers[j];
    uint32_t c = 0;
    for (uint32_t i = lo; i < hi; ++i) c += p.answers[i] == a ? 1u : 0u;
    if (vote_better(c, a, best_c, best_a)) {
      best_c = c;
      best_a = a;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const uint32_t c = __shfl_xor_sync(kFullMask, best_c, o);
    const uint64_t a = __shfl_xor_sync(kFullMask, best_a, o);
    if (vote_better(c, a, best_c, best_a)) {
      best_c = c;
      best_a = a;
    }
  }
  if (lane == 0) {
    p.answer[g] = best_a;
    p.votes[g] = best_c;
  }
}

// (reward desc, index asc) with NaN below every number; idx 0xffffffff is "none yet".
__device__ __forceinline__ bool reward_better(float r, uint32_t i, float br, uint32_t bi) {
  if (bi == 0xffffffffu) return i != 0xffffffffu;
  if (i == 0xffffffffu) return false;
  if (isnan(r)) return isnan(br) && i < bi;
  if (isnan(br)) return true;
  return r > br || (r == br && i < bi);
}

__device__ __forceinline__ void best_of_n_group(const BestOfNParams& p, uint32_t g) {
  const int lane = threadIdx.x & 31;
  const uint32_t lo = p.offsets[g], hi = p.offsets[g + 1];
  float best_r = CUDART_NAN_F;
  uint32_t best_i = 0xffffffffu;
  for (uint32_t j = lo + lane; j < hi; j += 32) {
    const float r = p.reward[j];
    if (reward_better(r, j - lo, best_r, best_i)) {
      best_r = r;
      best_i = j - lo;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float r = __shfl_xor_sync(kFullMask, best_r, o);
    const uint32_t i = __shfl_xor_sync(kFullMask, best_i, o);
    if (reward_better(r, i, best_r, best_i)) {
      best_r = r;
      best_i = i;
    }
  }
  if (lane == 0) {
    p.index[g] = best_i == 0xffffffffu ? -1 : int32_t(best_i);
    p.best[g] = best_r;
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kSelectWarps * 32)
    sampling_majority_vote(const __grid_constant__ sk::MajorityVoteParams p) {
  const uint32_t g = blockIdx.x * sk::kSelectWarps + (threadIdx.x >> 5);
  if (g < p.groups) sk::majority_vote_group(p, g);
}
extern "C" __global__ void __launch_bounds__(sk::kSelectWarps * 32)
    sampling_best_of_n(const __grid_constant__ sk::BestOfNParams p) {
  const uint32_t g = blockIdx.x * sk::kSelectWarps + (threadIdx.x >> 5);
  if (g < p.groups) sk::best_of_n_group(p, g);
}
