// A launch that prints and then faults, for Machine::last_report (tests/diff_partial.rs): every
// block prints a line per warp, then block `trap_block` prints once more and traps, so a partial
// report must keep the earlier blocks' output and the faulting block's output up to the trap.
#include <cstdio>

extern "C" __global__ void diff_print_then_trap(int *out, int trap_block) {
    int b = blockIdx.x;
    if (threadIdx.x % 32 == 0) {
        printf("block %d warp %d before\n", b, threadIdx.x / 32);
    }
    out[b * blockDim.x + threadIdx.x] = b;
    __syncthreads();
    if (b == trap_block) {
        if (threadIdx.x == 0) {
            printf("block %d about to trap\n", b);
            __trap();
        }
    }
    if (threadIdx.x == 0) {
        printf("block %d after\n", b);
    }
}
