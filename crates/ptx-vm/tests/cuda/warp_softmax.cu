// Row softmax, one warp per row: y[r][c] = exp(x[r][c] - max_r) / sum_c exp(x[r][c] - max_r).
//
// Work split: blocks of SOFTMAX_WARPS warps; warp w of block b owns row b * SOFTMAX_WARPS + w
// (warps past the last row return). Lane l reads columns l, l + 32, ... (any row length: the
// tail is masked), reduces max and sum across the warp with butterfly shuffles, then writes its
// columns. Per element: 1 exp, ~4 FLOPs; reads 4 bytes, writes 4.

constexpr int WARP = 32;
constexpr int SOFTMAX_WARPS = 4;
constexpr unsigned FULL_MASK = 0xffffffffu;

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) {
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    }
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

extern "C" __global__ void __launch_bounds__(SOFTMAX_WARPS * WARP)
softmax_rows_f32(const float* __restrict__ x, float* __restrict__ y, int rows, int cols) {
    const int row = blockIdx.x * SOFTMAX_WARPS + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= rows) {
        return;
    }
    const float* xr = x + (long long)row * cols;
    float* yr = y + (long long)row * cols;
    float m = -INFINITY;
    for (int c = lane; c < cols; c += WARP) {
        m = fmaxf(m, xr[c]);
    }
    m = warp_max(m);
    float s = 0.0f;
    for (int c = lane; c < cols; c += WARP) {
        s += __expf(xr[c] - m);
    }
    const float inv = 1.0f / warp_sum(s);
    for (int c = lane; c < cols; c += WARP) {
        yr[c] = __expf(xr[c] - m) * inv;
    }
}
