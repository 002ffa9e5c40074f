// Kernels for the sanitizer's severity, poison-fill and definedness tests (tests/san_*.rs).
//
// Each kernel is small and does one thing; the test says what the sanitizer must report for it.
// Hazards are deliberate where a `mode` asks for them: do not "fix" them.

constexpr int kWarps = 2;
constexpr int kThreads = 32 * kWarps;
constexpr unsigned kFull = 0xffffffffu;

// Each warp reduces its 32 floats with a butterfly (every lane ends with the same bits) and every
// lane stores the sum to slot[warp]: a write-after-write between the lanes of one store.
// mode 0: all lanes store the same value (a warning); out[block] = sum of the block's floats.
// mode 1: lanes store different values (sum + lane): an error.
// mode 2: as 0, and lane 0 of warp 1 reads warp 0's slot before the barrier: a read-after-write
//         error besides the warning.
extern "C" __global__ void __launch_bounds__(kThreads)
    warp_sum_to_slot(const float* __restrict__ x, float* __restrict__ out, float* __restrict__ early, int mode) {
  __shared__ float slot[kWarps];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  float v = x[blockIdx.x * kThreads + threadIdx.x];
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(kFull, v, o);
  slot[warp] = mode == 1 ? v + float(lane) : v;
  if (mode == 2 && warp == 1 && lane == 0) early[blockIdx.x] = slot[0];
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = slot[0] + slot[1];
}

// out[i] = (init ? 0 : out[i]) + x[i]: with init == 0 it reads its output before writing it.
extern "C" __global__ void __launch_bounds__(128)
    accumulate(const float* __restrict__ x, float* __restrict__ out, int n, int init) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = (init ? 0.0f : out[i]) + x[i];
}

// Definedness (Machine::with_definedness). The K rows of a tile past the sequence's end (n) are
// never loaded into shared memory, as FlashAttention-2 leaves them; their scores are computed
// anyway and masked to -inf by a select before the softmax, so nothing undefined escapes.
constexpr int kKeys = 32;  // one key row per lane
constexpr int kDim = 8;

// One warp: lane j scores key row j against q and writes softmax(masked scores)[j] to out[j].
// mode 0: clean. The twins let an unmasked score escape:
// mode 1: stores it to global memory (scores[j]);
// mode 2: branches on it;
// mode 3: uses it as an address.
extern "C" __global__ void __launch_bounds__(kKeys)
    masked_scores(const float* __restrict__ q, const float* __restrict__ k, float* __restrict__ out,
                  float* __restrict__ scores, int n, int mode) {
  __shared__ float ks[kKeys][kDim + 1];
  const int j = threadIdx.x;
  if (j < n) {
    for (int d = 0; d < kDim; ++d) ks[j][d] = k[j * kDim + d];
  }
  __syncwarp();
  float s = 0.0f;
  for (int d = 0; d < kDim; ++d) s += q[d] * ks[j][d];
  const float masked = j < n ? s : -INFINITY;
  float m = masked;
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(kFull, m, o));
  const float p = __expf(masked - m);
  float sum = p;
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(kFull, sum, o);
  float result = p / sum;
  if (mode == 1) scores[j] = s;
  if (mode == 2 && s > 1.0e30f) scores[j] = 1.0f;
  if (mode == 3) result += q[__float_as_uint(s) % kDim] * 0.0f;
  out[j] = result;
}

// The same with a tensor core: S (16 x 8) = Q (16 x 16) K^T with mma.sync m16n8k16 bf16, where
// key rows (columns of S) >= n were never loaded into shared memory. Only those columns of S are
// undefined. out = row softmax of S with columns >= n masked to -inf.
// mode 0: clean. mode 1: also stores the unmasked S (error). mode 2: stores the unmasked S only
// for columns < n (clean: the defined columns).
extern "C" __global__ void __launch_bounds__(32)
    masked_scores_mma(const unsigned* __restrict__ q, const unsigned* __restrict__ k, float* __restrict__ out,
                      float* __restrict__ scores, int n, int mode) {
  // Q and K are bf16, 16 per row, given as pairs packed in 32-bit words (8 words a row).
  __shared__ unsigned ks[8][8];
  const int lane = threadIdx.x;
  const int g = lane / 4, t = lane % 4;
  if (lane < 8 && lane < n) {
    for (int w = 0; w < 8; ++w) ks[lane][w] = k[lane * 8 + w];
  }
  __syncwarp();
  // A fragment (PTX ISA 9.7.14.5.9): rows g and g + 8, column pairs t and t + 4 (in words).
  const unsigned a0 = q[g * 8 + t], a1 = q[(g + 8) * 8 + t], a2 = q[g * 8 + t + 4], a3 = q[(g + 8) * 8 + t + 4];
  // B = K^T: column g of B is key row g; rows 2t, 2t+1 and 2t+8, 2t+9 of B are its words t and t + 4.
  const unsigned b0 = ks[g][t], b1 = ks[g][t + 4];
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  // Element i of C: row g (i < 2) or g + 8, column 2t + (i & 1).
  for (int half = 0; half < 2; ++half) {
    const int row = g + 8 * half;
    float v[2];
    for (int e = 0; e < 2; ++e) {
      const int col = 2 * t + e;
      const float s = c[2 * half + e];
      v[e] = col < n ? s : -INFINITY;
      if (mode == 1 || (mode == 2 && col < n)) scores[row * 8 + col] = s;
    }
    float m = fmaxf(v[0], v[1]);
    m = fmaxf(m, __shfl_xor_sync(kFull, m, 1));
    m = fmaxf(m, __shfl_xor_sync(kFull, m, 2));
    const float p0 = __expf(v[0] - m), p1 = __expf(v[1] - m);
    float sum = p0 + p1;
    sum += __shfl_xor_sync(kFull, sum, 1);
    sum += __shfl_xor_sync(kFull, sum, 2);
    out[row * 8 + 2 * t] = p0 / sum;
    out[row * 8 + 2 * t + 1] = p1 / sum;
  }
}
