// CUB block- and warp-level collectives beyond reduce/scan/radix sort, for tests/sweep_cub.rs.
//
// Work split: one block of BLOCK threads per tile of TILE = BLOCK * ITEMS elements; thread t owns
// the ITEMS elements CUB's blocked arrangement gives it (tile offsets t * ITEMS ...). The warp
// kernels use one block of BLOCK threads = 4 warps, each warp working on its own 32 (or 32 * ITEMS)
// elements. n is always a whole number of tiles here.

#include <cub/block/block_discontinuity.cuh>
#include <cub/block/block_exchange.cuh>
#include <cub/block/block_histogram.cuh>
#include <cub/block/block_load.cuh>
#include <cub/block/block_merge_sort.cuh>
#include <cub/block/block_run_length_decode.cuh>
#include <cub/block/block_store.cuh>
#include <cub/warp/warp_merge_sort.cuh>
#include <cub/warp/warp_reduce.cuh>
#include <cub/warp/warp_scan.cuh>

constexpr int BLOCK = 128;
constexpr int ITEMS = 4;
constexpr int TILE = BLOCK * ITEMS;
constexpr int BINS = 64;

struct Neq {
    __device__ bool operator()(int a, int b) const { return a != b; }
};

struct MaxOp {
    __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};

// 64-bin histogram of bytes (values taken mod 64) per block: hist[b * BINS + bin].
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_histogram(const unsigned char* __restrict__ in, unsigned int* __restrict__ hist) {
    using H = cub::BlockHistogram<unsigned char, BLOCK, ITEMS, BINS, cub::BLOCK_HISTO_ATOMIC>;
    using HS = cub::BlockHistogram<unsigned char, BLOCK, ITEMS, BINS, cub::BLOCK_HISTO_SORT>;
    __shared__ typename HS::TempStorage temp;
    __shared__ unsigned int smem_hist[2][BINS];
    unsigned char items[ITEMS];
    for (int j = 0; j < ITEMS; ++j) {
        items[j] = in[blockIdx.x * TILE + threadIdx.x * ITEMS + j] % BINS;
    }
    H().Histogram(items, smem_hist[0]);
    HS(temp).Histogram(items, smem_hist[1]);
    __syncthreads();
    for (int b = threadIdx.x; b < BINS; b += BLOCK) {
        hist[blockIdx.x * 2 * BINS + b] = smem_hist[0][b];
        hist[blockIdx.x * 2 * BINS + BINS + b] = smem_hist[1][b];
    }
}

// Loads with BLOCK_LOAD_WARP_TRANSPOSE, exchanges blocked -> striped -> blocked, stores with
// BLOCK_STORE_TRANSPOSE after adding the thread's rank within its items: out[i] = in[i] * 2 + i % ITEMS.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_load_exchange_store(const int* __restrict__ in, int* __restrict__ out) {
    using Load = cub::BlockLoad<int, BLOCK, ITEMS, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
    using Load2 = cub::BlockLoad<int, BLOCK, ITEMS, cub::BLOCK_LOAD_TRANSPOSE>;
    using Exchange = cub::BlockExchange<int, BLOCK, ITEMS>;
    using Store = cub::BlockStore<int, BLOCK, ITEMS, cub::BLOCK_STORE_TRANSPOSE>;
    __shared__ union {
        typename Load::TempStorage load;
        typename Load2::TempStorage load2;
        typename Exchange::TempStorage exchange;
        typename Store::TempStorage store;
    } temp;
    int items[ITEMS];
    int items2[ITEMS];
    const int base = blockIdx.x * TILE;
    Load(temp.load).Load(in + base, items);
    __syncthreads();
    Load2(temp.load2).Load(in + base, items2);
    __syncthreads();
    for (int j = 0; j < ITEMS; ++j) {
        items[j] = items[j] + items2[j] + j;  // blocked: item j is element t * ITEMS + j
    }
    Exchange(temp.exchange).BlockedToStriped(items);
    __syncthreads();
    Exchange(temp.exchange).StripedToBlocked(items);
    __syncthreads();
    Store(temp.store).Store(out + base, items);
}

// Head flags: flags[i] = 1 where in[i] != in[i - 1] (the tile's first element compares with the
// previous tile's last, or is 1 for the first tile); tail flags likewise with in[i + 1].
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_discontinuity(const int* __restrict__ in, int* __restrict__ heads, int* __restrict__ tails, int n) {
    using D = cub::BlockDiscontinuity<int, BLOCK>;
    __shared__ typename D::TempStorage temp;
    const int base = blockIdx.x * TILE + threadIdx.x * ITEMS;
    int items[ITEMS];
    int h[ITEMS];
    int t[ITEMS];
    for (int j = 0; j < ITEMS; ++j) {
        items[j] = in[base + j];
    }
    if (blockIdx.x == 0) {
        D(temp).FlagHeads(h, items, Neq());
    } else {
        D(temp).FlagHeads(h, items, Neq(), in[blockIdx.x * TILE - 1]);
    }
    __syncthreads();
    const int next = blockIdx.x * TILE + TILE;
    if (next >= n) {
        D(temp).FlagTails(t, items, Neq());
    } else {
        D(temp).FlagTails(t, items, Neq(), in[next]);
    }
    for (int j = 0; j < ITEMS; ++j) {
        heads[base + j] = h[j];
        tails[base + j] = t[j];
    }
}

struct IntLess {
    __device__ bool operator()(int a, int b) const { return a < b; }
};

struct Less {
    __device__ bool operator()(float a, float b) const { return a < b; }
};

// Sorts each tile of floats ascending with keys and int values (the element's index): a stable
// merge sort, so equal keys keep their order.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_merge_sort(const float* __restrict__ keys, float* __restrict__ keys_out, int* __restrict__ vals_out) {
    using S = cub::BlockMergeSort<float, BLOCK, ITEMS, int>;
    __shared__ typename S::TempStorage temp;
    const int base = blockIdx.x * TILE + threadIdx.x * ITEMS;
    float k[ITEMS];
    int v[ITEMS];
    for (int j = 0; j < ITEMS; ++j) {
        k[j] = keys[base + j];
        v[j] = base + j;
    }
    S(temp).StableSort(k, v, Less());
    for (int j = 0; j < ITEMS; ++j) {
        keys_out[base + j] = k[j];
        vals_out[base + j] = v[j];
    }
}

// Per warp of 32 consecutive elements: sum (lane 0 writes sums[w]), max over the first 20 lanes
// (a partial-warp reduce, lane 0 writes maxes[w]), inclusive and exclusive prefix sums.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_warp(const int* __restrict__ in, int* __restrict__ sums, int* __restrict__ maxes,
               int* __restrict__ incl, int* __restrict__ excl) {
    using WR = cub::WarpReduce<int>;
    using WS = cub::WarpScan<int>;
    __shared__ typename WR::TempStorage rtemp[BLOCK / 32];
    __shared__ typename WS::TempStorage stemp[BLOCK / 32];
    const int w = threadIdx.x / 32;
    const int i = blockIdx.x * BLOCK + threadIdx.x;
    const int v = in[i];
    const int s = WR(rtemp[w]).Sum(v);
    const int m = WR(rtemp[w]).Reduce(v, MaxOp(), 20);
    int inc;
    int exc;
    WS(stemp[w]).InclusiveSum(v, inc);
    WS(stemp[w]).ExclusiveSum(v, exc);
    if (threadIdx.x % 32 == 0) {
        sums[blockIdx.x * (BLOCK / 32) + w] = s;
        maxes[blockIdx.x * (BLOCK / 32) + w] = m;
    }
    incl[i] = inc;
    excl[i] = exc;
}

// Each warp sorts its 32 * ITEMS consecutive ints ascending (blocked arrangement within the warp).
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_warp_merge_sort(const int* __restrict__ in, int* __restrict__ out) {
    using WS = cub::WarpMergeSort<int, ITEMS, 32>;
    __shared__ typename WS::TempStorage temp[BLOCK / 32];
    const int w = threadIdx.x / 32;
    const int base = blockIdx.x * TILE + threadIdx.x * ITEMS;
    int k[ITEMS];
    for (int j = 0; j < ITEMS; ++j) {
        k[j] = in[base + j];
    }
    WS(temp[w]).Sort(k, IntLess());
    for (int j = 0; j < ITEMS; ++j) {
        out[base + j] = k[j];
    }
}

// Run-length decode of one block's runs: thread t holds run t (value vals[t], length lens[t] in
// 1..=3: the decoder does not skip empty runs); the decoded sequence is written to out (at most
// BLOCK * 3 items), its length to *total.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cub_run_length_decode(const int* __restrict__ vals, const int* __restrict__ lens,
                            int* __restrict__ out, int* __restrict__ total) {
    constexpr int DECODED = 4;
    using R = cub::BlockRunLengthDecode<int, BLOCK, 1, DECODED>;
    __shared__ typename R::TempStorage temp;
    int v[1] = {vals[threadIdx.x]};
    int l[1] = {lens[threadIdx.x]};
    int size = 0;
    R rld(temp, v, l, size);
    for (int offset = 0; offset < size; offset += BLOCK * DECODED) {
        int items[DECODED];
        rld.RunLengthDecode(items, offset);
        for (int j = 0; j < DECODED; ++j) {
            const int at = offset + threadIdx.x * DECODED + j;
            if (at < size) {
                out[at] = items[j];
            }
        }
    }
    if (threadIdx.x == 0) {
        *total = size;
    }
}
