// permute: group the routed (token, slot) entries by expert (vLLM's moe_align_block_size contract,
// Megatron's permute), then gather the activations into that order.
//
// The entries split into chunks of p.chunk, one block each, in two launches over the same grid:
// moe_permute_count: chunk c's histogram of expert ids into hist[c][0..E), its bad ids (outside
//   0..E, other than -1, which is unrouted) into hist[c][E]. Shared-memory integer atomics: their
//   order cannot reach a count. (Grouping a warp's equal ids with match.any first, one atomic per
//   group, cost 60% more warp instructions on the VM at the DeepSeek-V3 shape.)
// moe_permute_scatter: every block reads all of hist (E + 1 columns, chunk order fixed) and derives
//   (a) the entries of earlier chunks per expert, where its own ranks start, and (b) the totals;
//   from the totals, kept_e = min(count_e, capacity), each group padded up to block_size and a block
//   scan over experts gives the offsets (every block gets the same ones; block 0 writes them, the
//   counts, the per-rank counts and offsets and the bad-id status). Then warp w walks slice w of the
//   chunk twice, 32 entries a round: first counting its entries per expert (match.any groups the
//   lanes of one expert; the lowest adds the group's size), then, after a scan over warps, giving
//   each entry the rank cursor[e] (earlier chunks) + entries of lower warps + of earlier rounds +
//   of lower lanes of its group, so the order is stable by (token, slot). Ranks >= capacity are dropped (drop policy:
//   token order, the earliest entries of an expert stay) with inverse -1. The sentinel padding,
//   block_expert and the rows past the total are split over the grid. With vec != 0 the block also
//   copies each placed entry's activation row (and zeroes padding rows): gather fused in.
//   No atomic reaches any output, so the layout is the same bits on every run and grid schedule.
// moe_permute_select (+ _count_w, _scatter_w; permute_by_weight): the drop-by-weight policy, below.
//   Cost: each expert over capacity walks all n ids 6 times (a count, 4 radix passes, a tie pass):
//   unique bytes stay the ids and weights once, but the L2 traffic and issue grow as (experts over
//   capacity) x n: fine where capacity drops are rare, a per-expert sort would be the next step.
// moe_gather_v<N>: one warp per row of the permuted layout, N-byte accesses (16 when the row and
//   the pointers allow, else the element size); padding rows are zero.
//
// Cost (entries n = T * k, E experts, R ranks, rows r, hidden h of s bytes, B = n / chunk blocks):
// align's fewest bytes are the ids read once and every output written once, 4(2n + r_max + 2E +
// 2R + blocks); the two launches read the ids twice and write + read hist, 4B(E + 1) bytes, on
// top. The totals cannot be known before every id is counted, so a one-pass version would need
// the ids held on chip across a grid-wide barrier. No FLOPs. gather reads and writes r * h * s bytes
// (the fewest for a materialised permutation), no FLOPs.
// Measured on the VM (examples/sol_report.rs, 16k tokens, block 64): DeepSeek-V3 (131072 entries,
// 64 blocks) count 84k warp instructions, scatter 0.91M (2.52M with a 32-step shuffle scan per
// entry instead of match.any); unique bytes over both launches 1.40x align's fewest (the second
// ids read and the 66 KB of histograms), route + permute 1.06x their joint fewest. Mixtral (32768
// entries, 16 blocks): 1.33x and 1.13x. The H100 model puts scatter at 2.8 us of integer issue
// against a 0.5 us byte floor (one CTA per SM: its serial scan and slice walk).
#include "moe/params.cuh"

namespace sk {

constexpr int kAlignThreads = 256;
constexpr int kAlignWarps = kAlignThreads / 32;
constexpr int kAlignMaxExperts = 512;
constexpr int kGatherThreads = 256;
constexpr unsigned kAllLanes = 0xffffffffu;

// Drop by weight (permute_by_weight): moe_permute_select, one block per expert, finds the key
// (weight, then lower entry first) of the capacity-th best entry of each expert over capacity;
// the count and scatter launches then see every entry below it as unrouted (never as bad). Keys:
// the weight's bits mapped so that unsigned order is float order (NaN by its bits: deterministic).
// Kept here, not in params.cuh: an edit there rebuilds every kernel of the crate.
struct AlignWeightParams {
  AlignParams a;
  const float* weights;  // [entries]
  int32_t* select;       // [experts, 3] workspace: threshold key, threshold entry, entries before capacity
};

__device__ __forceinline__ uint32_t weight_key(float w) {
  const uint32_t u = __float_as_uint(w);
  return u ^ ((u >> 31) != 0 ? 0xffffffffu : 0x80000000u);
}

// Whether valid entry i of expert e survives the weight threshold (always, without one).
__device__ __forceinline__ bool weight_kept(const float* w, const int32_t* sel, int e, uint64_t i) {
  if (w == nullptr) return true;
  const uint32_t key = weight_key(w[i]);
  const uint32_t tk = uint32_t(sel[3 * e]);
  return key > tk || (key == tk && i <= uint64_t(uint32_t(sel[3 * e + 1])));
}

__device__ __forceinline__ void permute_select(const AlignWeightParams& q) {
  const AlignParams& p = q.a;
  __shared__ int32_t bins[256];
  __shared__ int32_t wtot[kAlignWarps];
  __shared__ uint32_t sh_digit;
  __shared__ int32_t sh_need, sh_index;
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int e = blockIdx.x;
  const unsigned below = (1u << lane) - 1u;
  int32_t total = 0;
  for (uint64_t i = tid; i < p.entries; i += kAlignThreads) total += p.ids[i] == e;
  for (int off = 16; off > 0; off /= 2) total += __shfl_xor_sync(kAllLanes, total, off);
  if (lane == 0) wtot[warp] = total;
  __syncthreads();
  total = 0;
  for (int w = 0; w < kAlignWarps; ++w) total += wtot[w];
  int32_t* out = q.select + 3 * e;
  if (uint32_t(total) <= p.capacity) {
    if (tid == 0) {
      out[0] = 0;  // every key is >= 0 and every entry <= i32 max: all kept
      out[1] = 0x7fffffff;
      out[2] = total;
    }
    return;
  }
  // Radix select, 8 bits a pass from the top: the capacity-th largest key.
  uint32_t prefix = 0, mask = 0;
  int32_t need = int32_t(p.capacity);
  for (int shift = 24; shift >= 0; shift -= 8) {
    bins[tid] = 0;
    __syncthreads();
    for (uint64_t i = tid; i < p.entries; i += kAlignThreads) {
      if (p.ids[i] != e) continue;
      const uint32_t key = weight_key(q.weights[i]);
      if ((key & mask) == prefix) atomicAdd(&bins[(key >> shift) & 255], 1);
    }
    __syncthreads();
    if (tid == 0) {
      int b = 255;
      while (need > bins[b]) need -= bins[b--];
      sh_digit = uint32_t(b);
      sh_need = need;
    }
    __syncthreads();
    prefix |= sh_digit << shift;
    mask |= 255u << shift;
    need = sh_need;
    __syncthreads();
  }
  // Among the entries with exactly that key, the need-th lowest entry is the last one kept.
  int32_t seen = 0;
  for (uint64_t base = 0; base < p.entries; base += kAlignThreads) {
    const uint64_t i = base + tid;
    const bool f = i < p.entries && p.ids[i] == e && weight_key(q.weights[i]) == prefix;
    const unsigned ballot = __ballot_sync(kAllLanes, f);
    if (lane == 0) wtot[warp] = __popc(ballot);
    __syncthreads();
    int32_t before = seen, step = 0;
    for (int w = 0; w < kAlignWarps; ++w) {
      if (w < warp) before += wtot[w];
      step += wtot[w];
    }
    if (f && before + __popc(ballot & below) + 1 == need) sh_index = int32_t(i);
    seen += step;
    __syncthreads();
    if (seen >= need) break;
  }
  if (tid == 0) {
    out[0] = int32_t(prefix);
    out[1] = sh_index;
    out[2] = total;
  }
}

__device__ __forceinline__ void permute_count(const AlignParams& p, const float* w = nullptr,
                                              const int32_t* sel = nullptr) {
  __shared__ int32_t cnt[kAlignMaxExperts + 1];
  const int tid = threadIdx.x;
  const int E = int(p.experts);
  for (int e = tid; e <= E; e += kAlignThreads) cnt[e] = 0;
  __syncthreads();
  const uint64_t begin = uint64_t(blockIdx.x) * p.chunk;
  const uint64_t end = min(begin + p.chunk, uint64_t(p.entries));
  for (uint64_t i = begin + tid; i < end; i += kAlignThreads) {
    const int e = p.ids[i];
    if (e >= 0 && e < E) {
      if (weight_kept(w, sel, e, i)) atomicAdd(&cnt[e], 1);
    } else if (e != -1) {
      atomicAdd(&cnt[E], 1);
    }
  }
  __syncthreads();
  int32_t* __restrict__ row = p.hist + uint64_t(blockIdx.x) * (E + 1);
  for (int e = tid; e <= E; e += kAlignThreads) row[e] = cnt[e];
}

// Exclusive block-wide scan of (a, b) pairs, kAlignThreads threads; also returns the totals.
__device__ __forceinline__ void block_scan2(int32_t& a, int32_t& b, int32_t& total_a, int32_t& total_b) {
  __shared__ int32_t wa[kAlignWarps], wb[kAlignWarps];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  int32_t ia = a, ib = b;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const int32_t ua = __shfl_up_sync(kAllLanes, ia, d);
    const int32_t ub = __shfl_up_sync(kAllLanes, ib, d);
    if (lane >= d) {
      ia += ua;
      ib += ub;
    }
  }
  if (lane == 31) {
    wa[warp] = ia;
    wb[warp] = ib;
  }
  __syncthreads();
  int32_t ba = 0, bb = 0;
  total_a = 0;
  total_b = 0;
  for (int w = 0; w < kAlignWarps; ++w) {
    if (w < warp) {
      ba += wa[w];
      bb += wb[w];
    }
    total_a += wa[w];
    total_b += wb[w];
  }
  a = ba + ia - a;
  b = bb + ib - b;
}

template <typename V>
__device__ __forceinline__ void copy_row(const AlignParams& p, uint64_t row, int32_t entry, int lane) {
  const uint32_t n = p.row_bytes / sizeof(V);
  V* __restrict__ dst = reinterpret_cast<V*>(static_cast<char*>(p.out) + row * p.row_bytes);
  if (entry < 0) {
    for (uint32_t c = lane; c < n; c += 32) dst[c] = V{};
  } else {
    const uint64_t token = uint32_t(entry) / p.k;
    const V* __restrict__ src = reinterpret_cast<const V*>(static_cast<const char*>(p.x) + token * p.row_bytes);
    for (uint32_t c = lane; c < n; c += 32) dst[c] = src[c];
  }
}

// The activation row of `entry` (or zeros for entry < 0) into row `row` of the gathered layout.
__device__ __forceinline__ void fused_copy(const AlignParams& p, uint64_t row, int32_t entry, int lane) {
  if (p.vec == 16) {
    copy_row<uint4>(p, row, entry, lane);
  } else if (p.vec == 4) {
    copy_row<uint32_t>(p, row, entry, lane);
  } else {
    copy_row<uint16_t>(p, row, entry, lane);
  }
}

__device__ __forceinline__ void permute_scatter(const AlignParams& p, const float* w = nullptr,
                                                const int32_t* sel = nullptr) {
  __shared__ int32_t off[kAlignMaxExperts + 1];         // padded first row of each expert; [E] = total
  __shared__ int32_t kept_before[kAlignMaxExperts + 1]; // kept rows of lower experts; [E] = all kept
  __shared__ int32_t total[kAlignMaxExperts + 1];       // entries per expert over all chunks; [E] = bad
  __shared__ int32_t cursor[kAlignMaxExperts];          // rank of the next entry of each expert
  __shared__ int32_t wcnt[kAlignWarps][kAlignMaxExperts];
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int E = int(p.experts);
  const uint32_t chunks = gridDim.x;
  const uint32_t me = blockIdx.x;
  const int32_t bs = int32_t(p.block_size);

  // (a), (b): column sums of hist in chunk order (integers: any order would do, but this is fixed).
  for (int e = tid; e <= E; e += kAlignThreads) {
    const int32_t* col = p.hist + e;
    int32_t before = 0;
    for (uint32_t c = 0; c < me; ++c) before += col[uint64_t(c) * (E + 1)];
    int32_t all = before;
    for (uint32_t c = me; c < chunks; ++c) all += col[uint64_t(c) * (E + 1)];
    total[e] = all;
    if (e < E) cursor[e] = before;
  }
  __syncthreads();

  // Offsets: thread t owns experts 2t and 2t + 1 (E <= 2 * kAlignThreads).
  const int e0 = 2 * tid, e1 = 2 * tid + 1;
  const int32_t k0 = e0 < E ? int32_t(min(uint32_t(total[e0]), p.capacity)) : 0;  // capacity may be u32 max
  const int32_t k1 = e1 < E ? int32_t(min(uint32_t(total[e1]), p.capacity)) : 0;
  const int32_t p0 = (k0 + bs - 1) & ~(bs - 1);
  const int32_t p1 = (k1 + bs - 1) & ~(bs - 1);
  int32_t rows = p0 + p1, kept = k0 + k1, all_rows, all_kept;
  block_scan2(rows, kept, all_rows, all_kept);
  if (e0 < E) {
    off[e0] = rows;
    kept_before[e0] = kept;
  }
  if (e1 < E) {
    off[e1] = rows + p0;
    kept_before[e1] = kept + k0;
  }
  if (tid == 0) {
    off[E] = all_rows;
    kept_before[E] = all_kept;
  }
  __syncthreads();

  const int epr = int(p.experts_per_rank);
  if (me == 0) {
    for (int e = tid; e <= E; e += kAlignThreads) {
      p.offsets[e] = off[e];
      if (e < E) p.counts[e] = w == nullptr ? total[e] : sel[3 * e + 2];
      if (e % epr == 0) {
        const int r = e / epr;
        p.rank_offsets[r] = off[e];
        if (e < E) p.rank_counts[r] = kept_before[e + epr] - kept_before[e];
      }
    }
    if (tid == 0) p.status[0] = total[E];
  }

  // block_expert, split over the grid: the expert whose padded rows hold the block's first row.
  const uint64_t gthreads = uint64_t(chunks) * kAlignThreads;
  for (uint64_t b = uint64_t(me) * kAlignThreads + tid; b < p.max_blocks; b += gthreads) {
    const int64_t row = int64_t(b) * bs;
    int32_t ex = -1;
    if (row < off[E]) {
      int lo = 0, hi = E - 1;  // the first e with off[e + 1] > row
      while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (off[mid + 1] > row) {
          hi = mid;
        } else {
          lo = mid + 1;
        }
      }
      ex = lo;
    }
    p.block_expert[b] = ex;
  }
  // Rows past the total: the sentinel (and no activation row).
  for (uint64_t r = uint64_t(off[E]) + uint64_t(me) * kAlignThreads + tid; r < p.max_rows; r += gthreads) {
    p.sorted_ids[r] = int32_t(p.entries);
  }
  // Padding rows of expert e, by block e mod chunks: the sentinel, and zero activations.
  for (int e = int(me); e < E; e += int(chunks)) {
    const int32_t kept_e = int32_t(min(uint32_t(total[e]), p.capacity));
    const int32_t first = off[e] + kept_e;
    for (int32_t r = first + tid; r < off[e + 1]; r += kAlignThreads) p.sorted_ids[r] = int32_t(p.entries);
    if (p.vec != 0) {
      for (int32_t r = first + warp; r < off[e + 1]; r += kAlignWarps) fused_copy(p, uint64_t(r), -1, lane);
    }
  }

  // Warp w owns the contiguous slice w of the chunk, so ranks are stable by warp, then by round
  // within the warp, then by lane. Pass 1: per-warp counts; then an exclusive scan over warps per
  // expert (starting at cursor[e]); pass 2: ranks, rows, and the fused copy.
  for (int i = tid; i < kAlignWarps * E; i += kAlignThreads) wcnt[i / E][i % E] = 0;
  __syncthreads();
  const uint64_t begin = uint64_t(me) * p.chunk;
  const uint64_t end = min(begin + p.chunk, uint64_t(p.entries));
  const uint32_t slice = p.chunk / kAlignWarps;
  const uint64_t wbegin = begin + uint64_t(warp) * slice;
  const uint64_t wend = min(wbegin + slice, end);
  const unsigned below = (1u << lane) - 1u;
  for (uint64_t base = wbegin; base < wend; base += 32) {
    const uint64_t i = base + lane;
    int e = i < wend ? p.ids[i] : -1;
    if (e < 0 || e >= E || !weight_kept(w, sel, e, i)) e = -1;
    const unsigned same = __match_any_sync(kAllLanes, e);
    if (e >= 0 && (same & below) == 0) wcnt[warp][e] += __popc(same);
    __syncwarp();
  }
  __syncthreads();
  for (int x = tid; x < E; x += kAlignThreads) {
    int32_t run = cursor[x];
    for (int w = 0; w < kAlignWarps; ++w) {
      const int32_t c = wcnt[w][x];
      wcnt[w][x] = run;
      run += c;
    }
  }
  __syncthreads();
  for (uint64_t base = wbegin; base < wend; base += 32) {
    const uint64_t i = base + lane;
    int e = i < wend ? p.ids[i] : -1;
    if (e < 0 || e >= E || !weight_kept(w, sel, e, i)) e = -1;
    const unsigned same = __match_any_sync(kAllLanes, e);
    int32_t row = -1;
    if (e >= 0) {
      const int32_t rank = wcnt[warp][e] + __popc(same & below);
      if (uint32_t(rank) < p.capacity) {
        row = off[e] + rank;
        p.sorted_ids[row] = int32_t(i);
      }
    }
    if (i < wend) p.inverse[i] = row;
    __syncwarp();
    if (e >= 0 && (same & below) == 0) wcnt[warp][e] += __popc(same);
    if (p.vec != 0) {
      for (int j = 0; j < 32; ++j) {
        const int32_t r = __shfl_sync(kAllLanes, row, j);
        if (r >= 0) fused_copy(p, uint64_t(r), int32_t(base + j), lane);
      }
    }
    __syncwarp();
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
    moe_permute_count(const __grid_constant__ sk::AlignParams p) {
  sk::permute_count(p);
}
extern "C" __global__ void __launch_bounds__(sk::kAlignThreads)
    moe_permute_scatter(const __grid_constant__ sk::AlignParams p) {
  sk::permute_scatter(p);
}
extern "C" __global__ void __launch_bounds__(sk::kAlignThreads)
    moe_permute_select(const __grid_constant__ sk::AlignWeightParams q) {
  sk::permute_select(q);
}
extern "C" __global__ void __launch_bounds__(sk::kAlignThreads)
    moe_permute_count_w(const __grid_constant__ sk::AlignWeightParams q) {
  sk::permute_count(q.a, q.weights, q.select);
}
extern "C" __global__ void __launch_bounds__(sk::kAlignThreads)
    moe_permute_scatter_w(const __grid_constant__ sk::AlignWeightParams q) {
  sk::permute_scatter(q.a, q.weights, q.select);
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
