// Kernels with planted bugs (and their fixed twins) for the sanitizer and counter tests.
//
// Each kernel is small and does one thing; the test says what the sanitizer or the counters must
// report for it. Bugs are deliberate: do not "fix" them.

constexpr int kThreads = 128;
constexpr int kTile = 32;

// Writes out[i] = i for i <= n: thread n writes one element past the end. (Bug: <= instead of <.)
extern "C" __global__ void __launch_bounds__(kThreads) oob_write(float* __restrict__ out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = float(i);
}

// Block sum of kThreads floats through shared memory. `sync` = 0 drops the barrier between the
// store and the tree reduction, a read-after-write race between warps.
extern "C" __global__ void __launch_bounds__(kThreads)
    block_sum(const float* __restrict__ x, float* __restrict__ out, int sync) {
  __shared__ float s[kThreads];
  s[threadIdx.x] = x[blockIdx.x * kThreads + threadIdx.x];
  if (sync) __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    if (sync) __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// One warp sums 32 floats through shared memory, ordered by __syncwarp only: clean.
extern "C" __global__ void __launch_bounds__(32) warp_sum_syncwarp(const float* __restrict__ x, float* __restrict__ out) {
  __shared__ float s[32];
  const unsigned lane = threadIdx.x;
  s[lane] = x[blockIdx.x * 32 + lane];
  __syncwarp();
  for (unsigned stride = 16; stride > 0; stride /= 2) {
    float v = lane < stride ? s[lane + stride] : 0.0f;
    __syncwarp();
    if (lane < stride) s[lane] += v;
    __syncwarp();
  }
  if (lane == 0) out[blockIdx.x] = s[0];
}

// Reads shared memory nobody wrote: s[threadIdx.x + 1] for the last thread was never stored.
extern "C" __global__ void __launch_bounds__(kThreads) read_unwritten_shared(float* __restrict__ out) {
  __shared__ float s[kThreads + 1];
  s[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x + 1];
}

// 32x32 float transpose through a shared tile; one block of 32x8 threads per tile, each thread
// moving 4 elements. Reads of the tile walk a column: with kTile columns every element of the column
// sits in one bank (32-way conflict); with kTile + 1 they spread over all banks.
template <int kCols>
__device__ void transpose_tile(const float* __restrict__ in, float* __restrict__ out) {
  __shared__ float tile[kTile][kCols];
  for (int r = threadIdx.y; r < kTile; r += 8) tile[r][threadIdx.x] = in[r * kTile + threadIdx.x];
  __syncthreads();
  for (int r = threadIdx.y; r < kTile; r += 8) out[r * kTile + threadIdx.x] = tile[threadIdx.x][r];
}

extern "C" __global__ void __launch_bounds__(256) transpose_naive(const float* __restrict__ in, float* __restrict__ out) {
  transpose_tile<kTile>(in, out);
}

extern "C" __global__ void __launch_bounds__(256) transpose_padded(const float* __restrict__ in, float* __restrict__ out) {
  transpose_tile<kTile + 1>(in, out);
}

// Fully coalesced float4 copy: thread i copies 16 bytes at offset 16 i.
extern "C" __global__ void __launch_bounds__(kThreads)
    copy_float4(const float4* __restrict__ in, float4* __restrict__ out, int n4) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n4) out[i] = in[i];
}

// Every block writes out[0]: conflicting non-atomic writes from different blocks.
extern "C" __global__ void __launch_bounds__(32) global_write_conflict(int* __restrict__ out) {
  if (threadIdx.x == 0) out[0] = blockIdx.x;
}

// Every block adds into out[0] atomically: no conflict.
extern "C" __global__ void __launch_bounds__(32) global_atomic_add(int* __restrict__ out) {
  if (threadIdx.x == 0) atomicAdd(out, 1);
}
