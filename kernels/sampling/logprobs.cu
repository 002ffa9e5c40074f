// log_softmax_gather: the trainer's side of RL. For each row (token position) of logits, the log
// probability of the target id and optionally the entropy of the softmax.
//
// The row's (max, sum of exp) is computed by row_max_sum_raw and block_max_sum, the exact calls the
// sampler's first pass makes, with the same CTA shape, so the logprob equals the sampler's
// `logprob_raw` bit for bit on the same logits. Entropy H = ln S - sum_i e_i (x_i - m) / S with
// e_i = exp(x_i - m), one more pass.
//
// Work split: one CTA of 256 threads per row (grid = tokens), thread-strided over the vocab.
// Passes: 1 (logprob only) or 2 (with entropy). Fewest bytes per row vocab * sizeof(T) + 12;
// FLOPs ~ 3 * vocab (5 * vocab with entropy).
// Status per row: kStatusNonFinite (NaN or +inf logit), kStatusNoFinite (all -inf), kStatusBadTarget
// (target outside [0, vocab); never read): logprob and entropy NaN.
#include "sampling/params.cuh"
#include "sampling/row.cuh"

namespace sk {

template <typename T>
__device__ __forceinline__ void log_softmax_gather_row(const LogSoftmaxGatherParams& p) {
  __shared__ MaxSum ms[kRowWarps];
  __shared__ float part[kRowWarps];
  const uint32_t row = blockIdx.x;
  const T* __restrict__ x = static_cast<const T*>(p.logits) + uint64_t(row) * p.vocab;
  bool bad = false;
  MaxSum st = row_max_sum_raw(x, p.vocab, bad);
  st = block_max_sum(st, ms);
  bad = __syncthreads_or(bad);
  const int32_t target = p.target[row];
  const bool bad_target = target < 0 || uint32_t(target) >= p.vocab;
  const bool no_finite = st.m == -CUDART_INF_F;
  const uint32_t status = (bad ? kStatusNonFinite : 0u) | (no_finite ? kStatusNoFinite : 0u) |
                          (bad_target ? kStatusBadTarget : 0u);
  if (p.entropy != nullptr) {
    float acc = 0.0f;
    if (status == 0) {
      for (uint32_t i = threadIdx.x; i < p.vocab; i += kRowThreads) {
        const float xi = to_float(x[i]);
        if (xi == -CUDART_INF_F) continue;
        const float d = __fsub_rn(xi, st.m);
        acc = __fmaf_rn(exp_rn(d), d, acc);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc = __fadd_rn(acc, __shfl_xor_sync(kFullMask, acc, o));
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      float sum = 0.0f;
      for (int w = 0; w < kRowWarps; ++w) sum = __fadd_rn(sum, part[w]);
      p.entropy[row] = status != 0 ? CUDART_NAN_F : __fsub_rn(logf(st.s), __fdiv_rn(sum, st.s));
    }
  }
  if (threadIdx.x == 0) {
    p.status[row] = status;
    p.logprob[row] = status != 0 ? CUDART_NAN_F : logprob_from(to_float(x[target]), st);
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_log_softmax_gather_f32(const __grid_constant__ sk::LogSoftmaxGatherParams p) {
  sk::log_softmax_gather_row<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_log_softmax_gather_f16(const __grid_constant__ sk::LogSoftmaxGatherParams p) {
  sk::log_softmax_gather_row<__half>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kRowThreads)
    sampling_log_softmax_gather_bf16(const __grid_constant__ sk::LogSoftmaxGatherParams p) {
  sk::log_softmax_gather_row<__nv_bfloat16>(p);
}
