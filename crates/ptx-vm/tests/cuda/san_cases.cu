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
