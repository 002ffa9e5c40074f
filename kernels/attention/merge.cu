// merge_states: combine two partial attention results over disjoint key sets.
//
// Given (O_a, lse_a) and (O_b, lse_b), each a softmax-weighted average over its own keys with the
// natural-log sum of exponentials, the result over the union is
//     m = max(lse_a, lse_b),  w_a = exp(lse_a - m),  w_b = exp(lse_b - m)
//     O = (w_a O_a + w_b O_b) / (w_a + w_b),          lse = m + log(w_a + w_b).
// An empty part has lse = -inf and weight exactly 0; its O is never read, so merging with it returns
// the other part bit for bit. Both empty: O = 0, lse = -inf. A NaN lse gives NaN O and lse.
//
// Work split: a flat grid-stride loop over chunks of `vec` elements; chunk c covers row c / (d/vec).
// Each thread reads one lse pair (L1-cached, shared by the d/vec threads of a row), one chunk of
// O_a and O_b, writes one chunk of O; the thread of a row's first chunk writes lse.
// With 16-bit T and vec = 8, each access is one 16-byte `ld.global.v4` / `st.global.v4`.
//
// Cost per row of d elements of T (s = sizeof(T)): FLOPs ~3d + O(1) (two products and a sum per
// element; exp2/log2 per row are special-function ops); fewest bytes 3·d·s + 12.
#include "attention/params.cuh"
#include "common/dtype.cuh"
#include "common/math.cuh"

namespace sk {

constexpr int kMergeThreads = 256;

// How a row's two parts combine, decided once per row from the LSEs so the element loop has no
// per-element branches.
enum class MergeMode { kNan, kEmpty, kTakeA, kTakeB, kBlend };

template <typename T>
__device__ __forceinline__ void merge_chunk(const MergeStatesParams& p, uint64_t chunk) {
  const uint32_t chunks_per_row = p.head_dim / p.vec;
  const uint64_t row = chunk / chunks_per_row;
  const uint64_t first = chunk * p.vec;  // element offset of this chunk

  const float la = p.lse_a[row];
  const float lb = p.lse_b[row];
  const float m = fmaxf(la, lb);
  // exp2((l - m) log2 e): exactly 1 for the larger part, exactly 0 for an empty one.
  const float wa = exp2f((la - m) * kLog2e);
  const float wb = exp2f((lb - m) * kLog2e);
  const float inv = 1.0f / (wa + wb);
  const float ra = wa * inv;
  const float rb = wb * inv;
  MergeMode mode = MergeMode::kBlend;
  if (isnan(la) || isnan(lb)) {
    mode = MergeMode::kNan;
  } else if (m == -CUDART_INF_F) {
    mode = MergeMode::kEmpty;
  } else if (rb == 0.0f) {
    mode = MergeMode::kTakeA;  // b is empty or negligible: never read it (it may be garbage)
  } else if (ra == 0.0f) {
    mode = MergeMode::kTakeB;
  }

  const T* __restrict__ a = static_cast<const T*>(p.o_a) + first;
  const T* __restrict__ b = static_cast<const T*>(p.o_b) + first;
  T* __restrict__ o = static_cast<T*>(p.o) + first;
  const T fill = from_float<T>(mode == MergeMode::kNan ? CUDART_NAN_F : 0.0f);

  if (p.vec == 1) {
    switch (mode) {
      case MergeMode::kTakeA: *o = *a; break;
      case MergeMode::kTakeB: *o = *b; break;
      case MergeMode::kBlend: *o = from_float<T>(fmaf(ra, to_float(*a), rb * to_float(*b))); break;
      default: *o = fill;
    }
  } else {
    // vec == Vec16<T>::kElems; the host checked head_dim % vec == 0 and 16-byte alignment.
    using V = Vec16<T>;
    V vo;
    switch (mode) {
      case MergeMode::kTakeA: vo = *reinterpret_cast<const V*>(a); break;
      case MergeMode::kTakeB: vo = *reinterpret_cast<const V*>(b); break;
      case MergeMode::kBlend: {
        const V va = *reinterpret_cast<const V*>(a);
        const V vb = *reinterpret_cast<const V*>(b);
#pragma unroll
        for (int i = 0; i < V::kElems; ++i) vo.v[i] = from_float<T>(fmaf(ra, to_float(va.v[i]), rb * to_float(vb.v[i])));
        break;
      }
      default:
#pragma unroll
        for (int i = 0; i < V::kElems; ++i) vo.v[i] = fill;
    }
    *reinterpret_cast<V*>(o) = vo;
  }

  if (p.lse != nullptr && first % p.head_dim == 0) {
    p.lse[row] = mode == MergeMode::kNan     ? CUDART_NAN_F
                 : mode == MergeMode::kEmpty ? -CUDART_INF_F
                                             : m + log2f(wa + wb) * kLn2;
  }
}

template <typename T>
__device__ __forceinline__ void merge_states(const MergeStatesParams& p) {
  const uint64_t chunks = p.rows * (p.head_dim / p.vec);
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  for (uint64_t c = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks; c += stride) {
    merge_chunk<T>(p, c);
  }
}

}  // namespace sk

extern "C" __global__ void __launch_bounds__(sk::kMergeThreads)
    attention_merge_states_f32(const __grid_constant__ sk::MergeStatesParams p) {
  sk::merge_states<float>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kMergeThreads)
    attention_merge_states_f16(const __grid_constant__ sk::MergeStatesParams p) {
  sk::merge_states<__half>(p);
}
extern "C" __global__ void __launch_bounds__(sk::kMergeThreads)
    attention_merge_states_bf16(const __grid_constant__ sk::MergeStatesParams p) {
  sk::merge_states<__nv_bfloat16>(p);
}
