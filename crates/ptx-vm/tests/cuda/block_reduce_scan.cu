// Block-wide reduction and scan with CUB.
//
// Work split: 1-D grid, blocks of BLOCK_THREADS threads, each block owns a tile of
// BLOCK_THREADS * ITEMS_PER_THREAD consecutive elements; thread t owns the ITEMS_PER_THREAD
// consecutive elements starting at tile_base + t * ITEMS_PER_THREAD (CUB's blocked arrangement).
// Elements past n read as 0 and are not written.
//   block_reduce_sum_f32: block b writes the sum of its tile to sums[b].
//   block_scan_exclusive_i32: every element gets the exclusive prefix sum within its tile.

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

constexpr int BLOCK_THREADS = 128;
constexpr int ITEMS_PER_THREAD = 4;
constexpr int TILE = BLOCK_THREADS * ITEMS_PER_THREAD;

extern "C" __global__ void __launch_bounds__(BLOCK_THREADS)
block_reduce_sum_f32(const float* __restrict__ x, float* __restrict__ sums, int n) {
    using BlockReduce = cub::BlockReduce<float, BLOCK_THREADS>;
    __shared__ typename BlockReduce::TempStorage temp;
    const int base = blockIdx.x * TILE + threadIdx.x * ITEMS_PER_THREAD;
    float items[ITEMS_PER_THREAD];
    for (int i = 0; i < ITEMS_PER_THREAD; ++i) {
        items[i] = base + i < n ? x[base + i] : 0.0f;
    }
    const float total = BlockReduce(temp).Sum(items);
    if (threadIdx.x == 0) {
        sums[blockIdx.x] = total;
    }
}

extern "C" __global__ void __launch_bounds__(BLOCK_THREADS)
block_scan_exclusive_i32(const int* __restrict__ x, int* __restrict__ y, int n) {
    using BlockScan = cub::BlockScan<int, BLOCK_THREADS>;
    __shared__ typename BlockScan::TempStorage temp;
    const int base = blockIdx.x * TILE + threadIdx.x * ITEMS_PER_THREAD;
    int items[ITEMS_PER_THREAD];
    for (int i = 0; i < ITEMS_PER_THREAD; ++i) {
        items[i] = base + i < n ? x[base + i] : 0;
    }
    BlockScan(temp).ExclusiveSum(items, items);
    for (int i = 0; i < ITEMS_PER_THREAD; ++i) {
        if (base + i < n) {
            y[base + i] = items[i];
        }
    }
}
