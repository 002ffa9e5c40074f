// Execution-model fidelity: threads that exit before a barrier, named barriers with counts, a
// real deadlock, shared memory that starts as stale data, and a launch that faults part-way.
//
// Work split: one block per launch unless said otherwise; thread t of the block owns element t.
//   exec_early_exit_block_sum: threads t >= n and t == skip (-1: none) exit before the first
//     barrier; the others sum in[0..n) except in[skip] with a shared-memory tree (one
//     __syncthreads per level, which only the live threads reach); the first live thread writes
//     the sum to out[0].
//   exec_syncthreads_reductions_after_exit: threads t >= n exit; the others write
//     __syncthreads_count(in[t] > 0), __syncthreads_or(in[t] > 5), __syncthreads_and(in[t] > 0)
//     to out[3t..3t+3].
//   exec_named_barrier_after_exit: warps 0-1 produce into shared memory, arrive at barrier 1
//     (count 128) and exit; warps 2-3 wait there, read the products, then meet at a
//     __syncthreads that only they reach. Thread `skip` (a consumer) exits before barrier 1;
//     barrier 1 counts its warp as arrived.
//   exec_two_barriers_deadlock: warp 1 waits at barrier 1 (count 64) that warp 0 never reaches,
//     warp 0 at __syncthreads: a real deadlock.
//   exec_read_unwritten_shared: every thread reads shared words nobody wrote.
//   exec_fault_in_block: block `bad` reads an unwritten global word (an initcheck finding), then
//     writes far out of bounds (a fault); every thread of the other blocks writes out[i] = i.

constexpr int BLOCK = 128;

extern "C" __global__ void __launch_bounds__(BLOCK)
exec_early_exit_block_sum(const int* __restrict__ in, int* __restrict__ out, int n, int skip) {
    __shared__ int buf[BLOCK];
    const int t = threadIdx.x;
    if (t >= n || t == skip) {
        return;
    }
    // Live threads take the slots 0..live in order, so that every slot the tree folds has a live
    // owner.
    const int live = skip >= 0 && skip < n ? n - 1 : n;
    const int r = skip >= 0 && t > skip ? t - 1 : t;
    buf[r] = in[t];
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if (r < s && r + s < live) {
            buf[r] += buf[r + s];
        }
        __syncthreads();
    }
    if (r == 0) {
        out[0] = buf[0];
    }
}

extern "C" __global__ void __launch_bounds__(BLOCK)
exec_syncthreads_reductions_after_exit(const int* __restrict__ in, int* __restrict__ out, int n) {
    const int t = threadIdx.x;
    if (t >= n) {
        return;
    }
    const int v = in[t];
    const int count = __syncthreads_count(v > 0);
    const int any = __syncthreads_or(v > 5);
    const int all = __syncthreads_and(v > 0);
    out[3 * t] = count;
    out[3 * t + 1] = any;
    out[3 * t + 2] = all;
}

extern "C" __global__ void __launch_bounds__(BLOCK)
exec_named_barrier_after_exit(const int* __restrict__ in, int* __restrict__ out, int skip) {
    __shared__ int products[64];
    __shared__ int sums[64];
    const int t = threadIdx.x;
    if (t < 64) {
        products[t] = 2 * in[t];
        asm volatile("bar.arrive 1, 128;" ::: "memory");
        return;
    }
    if (t == skip) {
        return;
    }
    asm volatile("bar.sync 1, 128;" ::: "memory");
    const int c = t - 64;
    sums[c] = products[c] + products[63 - c];
    __syncthreads();
    // sums[c ^ 1] belongs to another consumer; its owner may be the skipped thread.
    const int partner = (c ^ 1) + 64 == skip ? 0 : sums[c ^ 1];
    out[c] = sums[c] + partner;
}

extern "C" __global__ void __launch_bounds__(64) exec_two_barriers_deadlock(int* __restrict__ out) {
    if (threadIdx.x >= 32) {
        asm volatile("bar.sync 1, 64;" ::: "memory");
    }
    __syncthreads();
    out[threadIdx.x] = 1;
}

extern "C" __global__ void __launch_bounds__(32)
exec_read_unwritten_shared(float* __restrict__ f, unsigned* __restrict__ u) {
    __shared__ float sf[32];
    __shared__ unsigned su[32];
    const int t = threadIdx.x;
    f[t] = static_cast<volatile float*>(sf)[t];
    u[t] = static_cast<volatile unsigned*>(su)[t];
}

extern "C" __global__ void __launch_bounds__(32)
exec_fault_in_block(const float* __restrict__ never_written, float* __restrict__ out, float* __restrict__ small,
                    int bad) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = static_cast<float>(i);
    if (blockIdx.x == bad && threadIdx.x == 0) {
        v = never_written[0];
    }
    out[i] = v;
    if (blockIdx.x == bad && threadIdx.x == 0) {
        small[1 << 20] = v;
    }
}
