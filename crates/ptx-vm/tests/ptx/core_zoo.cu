// Many CUDA intrinsics in few kernels, for the VM core tests (tests/core_zoo.rs). Regenerate the PTX with
// nvcc -ptx -arch=compute_80 -lineinfo core_zoo.cu -o core_zoo.ptx
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <cuda_pipeline.h>
namespace cg = cooperative_groups;
extern "C" __global__ void zoo_int(const unsigned* __restrict__ in, unsigned* __restrict__ out, int n) {
  unsigned x = in[threadIdx.x], y = in[threadIdx.x + 32];
  int sx = (int)x;
  unsigned r = 0;
  r += __brev(x) ^ __clz(x) ^ __ffs(y) ^ __popc(x) ^ __byte_perm(x, y, 0x5410) ^ __funnelshift_l(x, y, 7) ^ __funnelshift_rc(x, y, 40);
  r += x / (y | 1) + x % (y | 1) + sx / (int)(y | 1) + __umulhi(x, y) + __mulhi(sx, (int)y) + __usad(x, y, 3);
  r += (unsigned)(((unsigned long long)x * y) >> 7) + (unsigned)(((long long)sx * (long long)y) % 1000003);
  r += __sad(sx, (int)y, 1) + min(x, y) + max(sx, (int)y) + abs(sx) + __ffsll((long long)x << 20);
  unsigned long long w = (unsigned long long)x << 32 | y;
  r += (unsigned)(w / (x | 1)) + (unsigned)(w % 97) + __popcll(w) + __clzll(w) + (unsigned)(__brevll(w) >> 13);
  r += __hadd(sx, (int)y) + __rhadd(sx, 3);
  out[threadIdx.x] = r;
}
extern "C" __global__ void zoo_float(const float* __restrict__ in, float* __restrict__ out, double* __restrict__ dout) {
  float x = in[threadIdx.x], y = in[threadIdx.x + 32];
  float r = expf(x) + logf(fabsf(y) + 1) + sinf(x) + cosf(y) + tanhf(x) + powf(fabsf(x), 0.7f) + sqrtf(fabsf(y)) + rsqrtf(fabsf(x) + 1);
  r += __fdividef(x, y + 3) + x / (y + 3) + fminf(x, y) + fmaxf(x, y) + floorf(x) + ceilf(y) + truncf(x) + roundf(y) + rintf(x);
  r += __saturatef(x) + copysignf(x, y) + erff(x) + exp2f(y) + log2f(fabsf(x) + 2) + atan2f(y, x) + fmodf(x, 1.5f);
  r += (float)(int)x + (float)(unsigned)fabsf(y) + __int_as_float(__float_as_int(x) ^ 1) + __frcp_rn(y + 4) + __fsqrt_rz(fabsf(x));
  out[threadIdx.x] = r;
  double d = x, e = y;
  double dr = exp(d) + log(fabs(e) + 1) + sin(d) + sqrt(fabs(e)) + d / (e + 3) + pow(fabs(d), 0.3) + fma(d, e, 1.0) + floor(d) + (double)(long long)(e * 1000);
  dout[threadIdx.x] = dr;
}
extern "C" __global__ void zoo_half(const __nv_bfloat162* __restrict__ a, const half2* __restrict__ b, float* __restrict__ out) {
  __nv_bfloat162 x = a[threadIdx.x], y = a[threadIdx.x + 32];
  half2 h = b[threadIdx.x], g = b[threadIdx.x + 32];
  __nv_bfloat162 z = __hfma2(x, y, __hadd2(x, y));
  z = __hmax2(z, __hmul2(x, y));
  half2 k = __hfma2(h, g, __hsub2(h, g));
  k = __hmin2(k, __hneg2(g));
  half hh = __hadd(__low2half(k), __high2half(h));
  float f = __bfloat162float(z.x) + __bfloat162float(z.y) + __half2float(k.x) + __half2float(k.y) + __half2float(hh);
  f += __bfloat162float(__float2bfloat16_rz(f)) + __half2float(__float2half_rd(f)) + (float)__hlt(h.x, g.x) + __half2float(hexp(h.x));
  out[threadIdx.x] = f;
}
extern "C" __global__ void zoo_warp(const unsigned* __restrict__ in, unsigned* __restrict__ out) {
  unsigned x = in[threadIdx.x];
  unsigned r = __ballot_sync(0xffffffff, x & 1) ^ __any_sync(0xffffffff, x > 5) ^ __all_sync(0xffffffff, x < 1000) ^ __activemask();
  r += __match_any_sync(0xffffffff, x & 3) + __reduce_add_sync(0xffffffff, x) + __reduce_max_sync(0xffffffff, x) + __reduce_or_sync(0xffffffff, x);
  unsigned m; r += __match_all_sync(0xffffffff, x >> 30, (int*)&m) + m;
  r += __shfl_up_sync(0xffffffff, x, 3) + __shfl_down_sync(0xffffffff, x, 2, 16) + __shfl_sync(0xffffffff, x, 7);
  auto tile = cg::tiled_partition<8>(cg::this_thread_block());
  r += tile.shfl_xor(x, 2) + tile.thread_rank();
  r += __syncthreads_count(x & 2) + __syncthreads_and(x < 100) + __syncthreads_or(x == 5);
  __syncwarp();
  out[threadIdx.x] = r;
}
extern "C" __global__ void zoo_mem(const float* __restrict__ in, float* __restrict__ out, unsigned* __restrict__ cnt, float* __restrict__ facc, double* __restrict__ dacc) {
  __shared__ __align__(16) float s[256];
  __pipeline_memcpy_async(&s[threadIdx.x * 4], &in[threadIdx.x * 4], 16);
  __pipeline_commit();
  __pipeline_wait_prior(0);
  __syncthreads();
  float4 v = reinterpret_cast<const float4*>(s)[threadIdx.x ^ 1];
  float4 g = __ldg(reinterpret_cast<const float4*>(in) + threadIdx.x);
  out[threadIdx.x] = v.x + v.y + v.z + v.w + g.x * 2;
  atomicAdd(cnt, 1u); atomicMax(cnt + 1, threadIdx.x); atomicMin(cnt + 2, threadIdx.x + 3); atomicExch(cnt + 3, 9u);
  atomicCAS(cnt + 4, 0u, threadIdx.x + 1); atomicInc(cnt + 5, 7u); atomicDec(cnt + 6, 7u); atomicOr(cnt + 7, 1u << (threadIdx.x & 31));
  atomicAdd(facc, 0.5f); atomicAdd(dacc, 0.25);
  long long t0 = clock64();
  __nanosleep(10);
  __threadfence();
  if (clock64() < t0) out[0] = -1;
}
