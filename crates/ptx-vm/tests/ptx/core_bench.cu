// Kernels the VM's core tests and the throughput example run (PTX: core_bench.ptx, regenerate with
// nvcc -ptx -arch=compute_80 -lineinfo core_bench.cu -o core_bench.ptx).
#include <cub/cub.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

struct ReduceParams { const float* x; float* y; int n; };

// One thread per element.
extern "C" __global__ void __launch_bounds__(256) saxpy(const float* __restrict__ x, float* __restrict__ y, int n, float a) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

// Grid-stride sum: warp shuffles, then one shared slot per warp, then one atomic per block.
extern "C" __global__ void __launch_bounds__(256) reduce_sum(const __grid_constant__ ReduceParams p) {
  __shared__ float partial[32];
  float v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += gridDim.x * blockDim.x) v += p.x[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    if (threadIdx.x == 0) atomicAdd(p.y, v);
  }
}

// Per-block sum written to out[blockIdx.x] (deterministic: no atomics).
extern "C" __global__ void __launch_bounds__(256) block_sum(const float* __restrict__ x, float* __restrict__ out) {
  typedef cub::BlockReduce<float, 256> R;
  __shared__ typename R::TempStorage t;
  float v = x[blockIdx.x * 256 + threadIdx.x];
  float s = R(t).Sum(v);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// 256 threads x 4 keys: one block sorts 1024 keys.
extern "C" __global__ void __launch_bounds__(256) cub_sort(const unsigned* __restrict__ in, unsigned* __restrict__ out) {
  typedef cub::BlockRadixSort<unsigned, 256, 4> S;
  __shared__ typename S::TempStorage t;
  unsigned k[4];
  const unsigned* b = in + blockIdx.x * 1024;
  for (int i = 0; i < 4; i++) k[i] = b[threadIdx.x * 4 + i];
  S(t).Sort(k);
  for (int i = 0; i < 4; i++) out[blockIdx.x * 1024 + threadIdx.x * 4 + i] = k[i];
}

extern "C" __global__ void __launch_bounds__(256) cub_scan(const int* __restrict__ in, int* __restrict__ out) {
  typedef cub::BlockScan<int, 256> S;
  __shared__ typename S::TempStorage t;
  int v = in[blockIdx.x * 256 + threadIdx.x];
  S(t).ExclusiveSum(v, v);
  out[blockIdx.x * 256 + threadIdx.x] = v;
}

// C[M,N] = A[M,K] B[K,N], 16x16 tiles through shared memory; M, N, K multiples of 16.
constexpr int kTile = 16;
extern "C" __global__ void __launch_bounds__(256) matmul_tiled(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M, int N, int K) {
  __shared__ float as[kTile][kTile];
  __shared__ float bs[kTile][kTile];
  int r = blockIdx.y * kTile + threadIdx.y, c = blockIdx.x * kTile + threadIdx.x;
  float acc = 0;
  for (int k0 = 0; k0 < K; k0 += kTile) {
    as[threadIdx.y][threadIdx.x] = A[r * K + k0 + threadIdx.x];
    bs[threadIdx.y][threadIdx.x] = B[(k0 + threadIdx.y) * N + c];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTile; k++) acc += as[threadIdx.y][k] * bs[k][threadIdx.x];
    __syncthreads();
  }
  C[r * N + c] = acc;
}

// One warp per row of n floats: max, exp, sum, scale.
extern "C" __global__ void __launch_bounds__(128) softmax_rows(const float* __restrict__ x, float* __restrict__ y, int rows, int n) {
  int row = blockIdx.x * 4 + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* xr = x + (size_t)row * n;
  float m = -INFINITY;
  for (int i = lane; i < n; i += 32) m = fmaxf(m, xr[i]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
  float s = 0;
  for (int i = lane; i < n; i += 32) s += __expf(xr[i] - m);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
  for (int i = lane; i < n; i += 32) y[(size_t)row * n + i] = __expf(xr[i] - m) / s;
}

__device__ __noinline__ float scale_add(float a, int b) { return a * b + 1.0f; }

// A local array indexed at run time (lives in the __local_depot) and a real call.
extern "C" __global__ void __launch_bounds__(128) local_and_call(const int* __restrict__ in, float* __restrict__ out, int k) {
  float arr[16];
  for (int i = 0; i < 16; i++) arr[i] = in[threadIdx.x * 16 + i];
  out[threadIdx.x] = scale_add(arr[(k + threadIdx.x) & 15], k);
}

// 256-bin histogram in shared memory, merged with global atomics.
extern "C" __global__ void __launch_bounds__(256) histogram(const unsigned char* __restrict__ in, unsigned* __restrict__ bins, int n) {
  __shared__ unsigned h[256];
  h[threadIdx.x] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&h[in[i]], 1u);
  __syncthreads();
  atomicAdd(&bins[threadIdx.x], h[threadIdx.x]);
}

// bf16/f16 in, f32 out, through dynamic shared memory and a neighbour read.
extern "C" __global__ void __launch_bounds__(128) mixed_precision(const __nv_bfloat16* __restrict__ a, const half* __restrict__ b, float* __restrict__ o) {
  extern __shared__ float dyn[];
  int i = threadIdx.x;
  dyn[i] = __bfloat162float(a[i]) + __half2float(b[i]);
  __syncthreads();
  float v = dyn[(i + 1) % blockDim.x];
  __nv_bfloat162 p = __floats2bfloat162_rn(v, v * 2);
  o[i] = __low2float(p) + __high2float(p);
}
