// permute: group the routed (token, slot) entries by expert (vLLM's moe_align_block_size contract,
// Megatron's permute), then gather the activations into that order.
//
// moe_permute_align (one block; the contract is a single global order, and T * k ids are few bytes):
//   1. counts: a shared-memory histogram of the ids (integer atomics: their order cannot reach the
//      counts); -1 is unrouted, any other id outside 0..E is counted in status and treated as -1.
//   2. offsets: thread 0 walks the experts in order: kept_e = min(count_e, capacity), each group
//      padded up to block_size, offsets the running sum; block_expert and the per-rank counts and
//      offsets (rank = e / experts_per_rank) fall out of the same walk.
//   3. scatter, stable: chunks of kAlignThreads entries in order; an entry's rank in its expert is
//      cursor[e] (earlier chunks) + the same-expert entries of lower warps (a per-warp histogram) +
//      lower lanes of its warp (a 32-step shuffle scan). Ranks >= capacity are dropped (drop policy:
//      token order — the earliest (token, slot) entries of an expert stay); inverse = -1 for them.
//   No atomic reaches sorted_ids or inverse, so the layout is the same bits on every run.
// moe_gather_v<N>: one warp per row of the permuted layout, N-byte accesses (16 when the row and
//   the pointers allow, else the element size); padding rows are zero.
//
// Cost (entries n = T * k, E experts, R ranks, rows r, hidden h of s bytes): align reads 4n, writes
// 4(2n + r_max + 2E + 2R + blocks) bytes, no FLOPs; gather reads and writes r * h * s bytes (the
// fewest for a materialised permutation), no FLOPs.
// Measured on the VM (examples/sol_report.rs, DeepSeek-V3 shape, 1024 tokens, block 64): gather
// moves its fewest bytes (16-byte requests, 4 sectors each); align moves its fewest bytes too but,
// being one block, the model puts it far above its byte floor: it is the kernel to split first
// (per-block histograms + a scan launch) when token counts grow.
#include "moe/params.cuh"

namespace sk {

constexpr int kAlignThreads = 256;
constexpr int kAlignWarps = kAlignThreads / 32;
constexpr int kAlignMaxExperts = 512;
constexpr int kGatherThreads = 256;
constexpr unsigned kAllLanes = 0xffffffffu;

__device__ __forceinline__ void permute_align(const AlignParams& p) {
  __shared__ int32_t cnt[kAlignMaxExperts];
  __shared__ int32_t off[kAlignMaxExperts];
  __shared__ int32_t cursor[kAlignMaxExperts];
  __shared__ int32_t wcnt[kAlignWarps][kAlignMaxExperts];
  __shared__ int32_t bad;
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int E = int(p.experts);

  for (int e = tid; e < E; e += kAlignThreads) {
    cnt[e] = 0;
    cursor[e] = 0;
  }
  if (tid == 0) bad = 0;
  for (uint32_t r = tid; r < p.max_rows; r += kAlignThreads) p.sorted_ids[r] = int32_t(p.entries);
  __syncthreads();
  for (uint32_t i = tid; i < p.entries; i += kAlignThreads) {
    const int e = p.ids[i];
    if (e >= 0 && e < E) {
      atomicAdd(&cnt[e], 1);
    } else if (e != -1) {
      atomicAdd(&bad, 1);
    }
  }
  __syncthreads();

  if (tid == 0) {
    const int32_t bs = int32_t(p.block_size);
    int32_t row = 0, rank_kept = 0;
    for (int e = 0; e < E; ++e) {
      const int32_t kept = int32_t(min(uint32_t(cnt[e]), p.capacity));  // capacity may be u32 max
      const int32_t padded = (kept + bs - 1) / bs * bs;
      if (e % int(p.experts_per_rank) == 0) p.rank_offsets[e / int(p.experts_per_rank)] = row;
      for (int32_t b = row / bs; b < (row + padded) / bs; ++b) p.block_expert[b] = e;
      off[e] = row;
      p.offsets[e] = row;
      p.counts[e] = cnt[e];
      row += padded;
      rank_kept += kept;
      if ((e + 1) % int(p.experts_per_rank) == 0) {
        p.rank_counts[e / int(p.experts_per_rank)] = rank_kept;
        rank_kept = 0;
      }
    }
    p.offsets[E] = row;
    p.rank_offsets[E / int(p.experts_per_rank)] = row;
    p.status[0] = bad;
    for (uint32_t b = row / bs; b < p.max_blocks; ++b) p.block_expert[b] = -1;
  }
  __syncthreads();

  for (uint32_t base = 0; base < p.entries; base += kAlignThreads) {
    for (int i = tid; i < kAlignWarps * E; i += kAlignThreads) wcnt[i / E][i % E] = 0;
    __syncthreads();
    const uint32_t i = base + tid;
    int e = i < p.entries ? p.ids[i] : -1;
    if (e < 0 || e >= E) e = -1;
    int lower = 0, same = 0;  // same-expert lanes below this one, and in the whole warp
    for (int src = 0; src < 32; ++src) {
      const int es = __shfl_sync(kAllLanes, e, src);
      if (es == e) {
        same += 1;
        lower += src < lane;
      }
    }
    if (e >= 0 && lower == 0) wcnt[warp][e] = same;
    __syncthreads();
    if (e >= 0) {
      int32_t rank = cursor[e] + lower;
      for (int w = 0; w < warp; ++w) rank += wcnt[w][e];
      if (uint32_t(rank) < p.capacity) {
        const int32_t row = off[e] + rank;
        p.sorted_ids[row] = int32_t(i);
        p.inverse[i] = row;
      } else {
        p.inverse[i] = -1;
      }
    } else if (i < p.entries) {
      p.inverse[i] = -1;
    }
    __syncthreads();
    for (int x = tid; x < E; x += kAlignThreads) {
      int32_t s = 0;
      for (int w = 0; w < kAlignWarps; ++w) s += wcnt[w][x];
      cursor[x] += s;
    }
    __syncthreads();
  }
}

template <typename V>
__device__ __forceinline__ void gather(const GatherParams& p) {
  constexpr int kWarps = kGatherThreads / 32;
  const int lane = threadIdx.x % 32;
  const uint32_t total = uint32_t(p.offsets[p.experts]);
  const uint32_t n = p.row_bytes / sizeof(V);
  const uint64_t stride = uint64_t(gridDim.x) * kWarps;
  for (uint64_t row = uint64_t(blockIdx.x) * kWarps + threadIdx.x / 32; row < total; row += stride) {
    const int32_t entry = p.sorted_ids[row];
    V* __restrict__ dst = reinterpret_cast<V*>(static_cast<char*>(p.out) + row * p.row_bytes);
    if (entry < 0 || uint32_t(entry) >= p.entries) {
      for (uint32_t c = lane; c < n; c += 32) dst[c] = V{};
    } else {
      const uint64_t token = uint32_t(entry) / p.k;
      const V* __restrict__ src = reinterpret_cast<const V*>(static_cast<const char*>(p.x) + token * p.row_bytes);
      for (uint32_t c = lane; c < n; c += 32) dst[c] = src[c];
    }
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kAlignThreads)
    moe_permute_align(const __grid_constant__ sk::AlignParams p) {
  sk::permute_align(p);
}
extern "C" __global__ void __launch_bounds__(sk::kGatherThreads)
    moe_gather_v16(const __grid_constant__ sk::GatherParams p) {
  sk::gather<uint4>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kGatherThreads)
    moe_gather_v4(const __grid_constant__ sk::GatherParams p) {
  sk::gather<uint32_t>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kGatherThreads)
    moe_gather_v2(const __grid_constant__ sk::GatherParams p) {
  sk::gather<uint16_t>(p);
}
