// cuda::barrier (mbarrier) with cuda::memcpy_async (cp.async + cp.async.mbarrier.arrive), for
// tests/core_exec.rs. PTX: nvcc -ptx -arch=compute_80 -lineinfo core_pipeline.cu -o core_pipeline.ptx
#include <cuda/pipeline>
#include <cuda/barrier>
#include <cooperative_groups.h>
namespace cg = cooperative_groups;
extern "C" __global__ void __launch_bounds__(128) pipe_copy(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float s[2][128];
  __shared__ cuda::barrier<cuda::thread_scope_block> bar;
  auto block = cg::this_thread_block();
  if (block.thread_rank() == 0) init(&bar, block.size());
  block.sync();
  for (int t = 0; t < n / 128; t++) {
    cuda::memcpy_async(&s[t & 1][threadIdx.x], &in[t * 128 + threadIdx.x], sizeof(float), bar);
    bar.arrive_and_wait();
    out[t * 128 + threadIdx.x] = s[t & 1][(threadIdx.x + 1) % 128] * 2;
    bar.arrive_and_wait();
  }
}
