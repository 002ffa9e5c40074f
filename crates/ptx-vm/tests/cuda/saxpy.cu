// Grid-stride saxpy: y[i] = a * x[i] + y[i] for i < n.
//
// Work split: any grid of 1-D blocks of SAXPY_THREADS threads; thread t of the grid handles
// elements t, t + gridDim.x * blockDim.x, ... so a grid smaller than n still covers every element.
// Each element: 2 FLOPs, reads 8 bytes, writes 4.

constexpr int SAXPY_THREADS = 256;

extern "C" __global__ void __launch_bounds__(SAXPY_THREADS)
saxpy_f32(int n, float a, const float* __restrict__ x, float* __restrict__ y) {
    const int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = fmaf(a, x[i], y[i]);
    }
}
