// The device heap (malloc/free in device code), for tests/sweep_misc.rs: nvcc emits calls of the
// extern functions malloc and free.
//
// Work split: one block of BLOCK threads.
//   sweep_heap_malloc: thread t allocates 4 ints, fills them from in[t], writes
//   in[t] + (in[t] + 3) to out[t] and frees them.
//   sweep_heap_exhaust: thread t allocates `bytes`, writes 1 to got[t] when it got memory (and
//   touches its last byte), 0 when malloc returned null; nothing is freed.

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

extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_heap_exhaust(int* __restrict__ got, unsigned long long bytes) {
    char* p = (char*)malloc(bytes);
    if (p != nullptr) {
        p[bytes - 1] = 1;
    }
    got[threadIdx.x] = p != nullptr;
}
