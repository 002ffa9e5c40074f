// The device heap (malloc/free in device code), for tests/sweep_misc.rs: nvcc emits calls of the
// extern functions malloc and free, which the VM does not provide.
//
// Work split: one block of BLOCK threads; thread t allocates 4 ints, fills them from in[t] and
// writes in[t] + (in[t] + 3) to out[t].

constexpr int BLOCK = 64;

extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_heap_malloc(const int* __restrict__ in, int* __restrict__ out) {
    const int t = threadIdx.x;
    int* h = (int*)malloc(4 * sizeof(int));
    int heap_ok = 0;
    if (h != nullptr) {
        for (int j = 0; j < 4; ++j) {
            h[j] = in[t] + j;
        }
        heap_ok = h[0] + h[3];
        free(h);
    }
    out[t] = heap_ok;
}
