// Indirect calls (function pointers, virtual functions), for tests/sweep_misc.rs: nvcc lowers them
// to `call` through a register with a prototype and vtables in .global variables initialised with
// function addresses.
//
// Work split: one block of BLOCK threads; thread t reads in[t] and writes out[k * BLOCK + t].

constexpr int BLOCK = 64;

__device__ int twice(int v) { return 2 * v; }
__device__ int square(int v) { return v * v; }
__device__ int negate(int v) { return -v; }

struct Shape {
    __device__ virtual int area() const = 0;
    __device__ virtual ~Shape() {}
};
struct Rect : Shape {
    int w, h;
    __device__ Rect(int w_, int h_) : w(w_), h(h_) {}
    __device__ int area() const override { return w * h; }
};
struct Tri : Shape {
    int b, h;
    __device__ Tri(int b_, int h_) : b(b_), h(h_) {}
    __device__ int area() const override { return b * h / 2; }
};

__device__ __noinline__ int area_of(const Shape* s) { return s->area(); }

extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_indirect_calls(const int* __restrict__ in, int* __restrict__ out) {
    const int t = threadIdx.x;
    int k = 0;
#define O(e) out[(k++) * BLOCK + t] = (int)(e)
    // Function pointers through a table, chosen at run time.
    int (*const table[3])(int) = {twice, square, negate};
    int (*f)(int) = table[in[t] % 3 < 0 ? 0 : in[t] % 3];
    O(f(in[t]));
    // Virtual functions on objects built in local memory.
    Rect r(in[t] % 7, 3);
    Tri tr(in[t] % 5, 4);
    const Shape* s = (t % 2 == 0) ? static_cast<const Shape*>(&r) : static_cast<const Shape*>(&tr);
    O(area_of(s));
#undef O
}
