// A device-side assert, for tests/core_exec.rs. PTX: nvcc -ptx -arch=compute_80 -lineinfo core_assert.cu -o core_assert.ptx
#include <cassert>
extern "C" __global__ void checked(const int* __restrict__ in, int* __restrict__ out) {
  int v = in[threadIdx.x];
  assert(v >= 0);
  out[threadIdx.x] = v * 2;
}
