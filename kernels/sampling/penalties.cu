// apply_penalties: the logits processing vLLM does before temperature, written as fp32 logits for
// the sampler to read.
//
// For a token with count c > 0 in the row's history: repetition penalty r (x / r when x > 0, else
// x * r), then x - frequency * c - presence; then each bias entry adds its value. Tokens outside
// the history and the bias are copied unchanged (widened to fp32). History ids must be unique per
// row (each is written once, computed from the input logit, so a duplicate with the same count is
// harmless); bias entries are applied by one thread in their order, so duplicates add up
// deterministically. An id outside [0, vocab) is never read or written: it sets kStatusBadId.
//
// Work split: one CTA of 256 threads per row: a copy pass (vocab reads and writes), then the
// history entries thread-strided, then the bias entries on thread 0. Fewest bytes per row:
// vocab * (sizeof(T) + 4) + 8 per history entry + 8 per bias entry; FLOPs ~4 per history entry.
#include "sampling/params.cuh"
#include "sampling/row.cuh"

namespace sk {

template <typename T>
__device__ __forceinline__ void apply_penalties_row(const PenaltiesParams& p) {
  const uint32_t row = blockIdx.x, vocab = p.vocab;
  const T* __restrict__ x = static_cast<const T*>(p.logits) + uint64_t(row) * vocab;
  float* __restrict__ y = p.out + uint64_t(row) * vocab;
  for (uint32_t i = threadIdx.x; i < vocab; i += kRowThreads) y[i] = to_float(x[i]);
  __syncthreads();
  bool bad = false;
  const float rep = p.repetition[row], freq = p.frequency[row], pres = p.presence[row];
  for (uint32_t e = p.hist_offsets[row] + threadIdx.x; e < p.hist_offsets[row + 1]; e += kRowThreads) {
    const int32_t id = p.hist_ids[e];
    const uint32_t c = p.hist_counts[e];
    if (id < 0 || uint32_t(id) >= vocab) {
      bad = true;
      continue;
    }
    if (c == 0) continue;
    float v = to_float(x[id]);
    v = v > 0.0f ? __fdiv_rn(v, rep) : __fmul_rn(v, rep);
    y[id] = __fsub_rn(__fsub_rn(v, __fmul_rn(freq, float(c))), pres);
  }
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) {
    for (uint32_t e = p.bias_offsets[row]; e < p.bias_offsets[row + 1]; ++e) {
      const int32_t id = p.bias_ids[e];
      if (id < 0 || uint32_t(id) >= vocab) {
        bad = true;
        continue;
      }
      y[id] = __fadd_rn(y[id], p.bias_values[e]);
    }
    p.status[row] = bad ? kStatusBadId : 0u;
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_apply_penalties_f32(const __grid_constant__ sk::PenaltiesParams p) {
  sk::apply_penalties_row<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_apply_penalties_f16(const __grid_constant__ sk::PenaltiesParams p) {
  sk::apply_penalties_row<__half>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_apply_penalties_bf16(const __grid_constant__ sk::PenaltiesParams p) {
  sk::apply_penalties_row<__nv_bfloat16>(p);
}
