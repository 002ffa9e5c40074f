// A module where one kernel reads a texture (tex.1d, which the VM does not implement) through a
// non-inlined device function, and another kernel does not: the module loads, the clean kernel
// runs, and only a launch of the texture kernel is refused, naming the instruction and its lines.

constexpr int THREADS = 64;

extern "C" __global__ void __launch_bounds__(THREADS)
scale_clean(int n, const float* __restrict__ x, float* __restrict__ y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = 3.0f * x[i];
    }
}

__device__ __noinline__ float fetch(cudaTextureObject_t tex, int i) {
    return tex1Dfetch<float>(tex, i);
}

extern "C" __global__ void __launch_bounds__(THREADS)
scale_from_texture(int n, cudaTextureObject_t tex, float* __restrict__ y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = 3.0f * fetch(tex, i);
    }
}
