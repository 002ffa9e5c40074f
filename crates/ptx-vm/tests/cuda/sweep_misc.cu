// Device intrinsics, atomics on 16/32/64-bit words, packed halves, trap and assert on the VM,
// for tests/sweep_misc.rs.
//
// Work split: kernels launch one block (or a few); each thread reads its inputs by thread index
// and writes one row of results out[k * nthreads + t] for column k, so the test checks each column
// against a CPU result.

#include <cassert>
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

constexpr int BLOCK = 64;

// Integer and bit intrinsics on (a[t], b[t]); 64-bit results as two 32-bit halves.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_bits(const unsigned long long* __restrict__ a, const unsigned long long* __restrict__ b,
                unsigned long long* __restrict__ out) {
    const int t = threadIdx.x;
    const unsigned long long x = a[t];
    const unsigned long long y = b[t];
    const unsigned int xl = (unsigned int)x;
    const unsigned int yl = (unsigned int)y;
    int k = 0;
#define O(e) out[(k++) * BLOCK + t] = (unsigned long long)(e)
    O(__funnelshift_l(xl, yl, (unsigned)(y >> 32)));
    O(__funnelshift_r(xl, yl, (unsigned)(y >> 32)));
    O(__funnelshift_lc(xl, yl, (unsigned)(y >> 32)));
    O(__funnelshift_rc(xl, yl, (unsigned)(y >> 32)));
    O(__brev(xl));
    O(__brevll(x));
    O(__byte_perm(xl, yl, (unsigned)(x >> 32) & 0x7777));
    O(__popcll(x));
    O(__clzll((long long)x));
    O(__ffsll((long long)x));
    O(__ffs((int)xl));
    O(__mul64hi((long long)x, (long long)y));
    O(__umul64hi(x, y));
    O(__umulhi(xl, yl));
    O(__mulhi((int)xl, (int)yl));
    O(__sad((int)xl, (int)yl, 7u));
    O(__usad(xl, yl, 7u));
    O(__vabsdiffu4(xl, yl));
    O(__vadd4(xl, yl));
    O(__vsub2(xl, yl));
    O(__vmaxu4(xl, yl));
    O(__dp4a((int)xl, (int)yl, 5));
    O(__dp4a(xl, yl, 5u));
    O(__dp2a_lo((int)xl, (int)yl, 5));
    O(__dp2a_hi(xl, yl, 5u));
    O(__hadd((int)xl, (int)yl));
    O(__rhadd((int)xl, (int)yl));
    O(__uhadd(xl, yl));
#undef O
}

// Warp-level intrinsics; per-thread results.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_warp(const unsigned long long* __restrict__ a, unsigned long long* __restrict__ out) {
    const int t = threadIdx.x;
    const unsigned long long x = a[t];
    const double d = (double)(long long)(x % 1000) * 0.25;
    int k = 0;
#define O(e) out[(k++) * BLOCK + t] = (unsigned long long)(e)
    O(__shfl_sync(0xffffffffu, x, (t + 5) % 32));
    O(__shfl_down_sync(0xffffffffu, (long long)x, 3));
    {
        double r = __shfl_xor_sync(0xffffffffu, d, 7);
        O(__double_as_longlong(r));
    }
    O(__reduce_add_sync(0xffffffffu, (unsigned)x & 0xffff));
    O(__reduce_min_sync(0xffffffffu, (int)(x % 1000) - 500));
    O(__reduce_max_sync(0xffffffffu, (unsigned)(x % 1000)));
    O(__match_any_sync(0xffffffffu, (unsigned)(x % 4)));
    O(__match_any_sync(0xffffffffu, x % 3));
    {
        int pred = 0;
        unsigned m = __match_all_sync(0xffffffffu, 42, &pred);
        O(m ^ (unsigned)pred);
    }
    O(__activemask());
    // A subset of the warp: the even lanes sync and shuffle among themselves.
    unsigned long long sub = 0;
    if (t % 2 == 0) {
        __syncwarp(0x55555555u);
        sub = __shfl_sync(0x55555555u, x, (t + 2) % 32);
    }
    O(sub);
#undef O
}

struct Pair {
    int a;
    float b;
    char tag[8];
};

__shared__ int shared_word;

// Memory intrinsics, address-space queries, cache hints, local memcpy/memset.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_memory(const int* __restrict__ in, int* __restrict__ out, long long* __restrict__ clk) {
    const int t = threadIdx.x;
    int k = 0;
#define O(e) out[(k++) * BLOCK + t] = (int)(e)
    O(__ldg(in + t));
    O(__ldcs(in + t));
    O(__ldlu(in + t));
    O(__ldca(in + t));
    O(__ldcg(in + t));
    __stcs(out + (k++) * BLOCK + t, in[t] + 1);
    __stwt(out + (k++) * BLOCK + t, in[t] + 2);
    __stcg(out + (k++) * BLOCK + t, in[t] + 3);
    if (t == 0) {
        shared_word = 17;
    }
    __syncthreads();
    O(__isGlobal(in) + 2 * __isShared(&shared_word) + 4 * __isLocal(&k) + 8 * __isGlobal(&shared_word));
    O((unsigned)__cvta_generic_to_shared(&shared_word) == 0 ? 100 : 0);
    O(shared_word);
    // CUDA has no __prmt: __byte_perm (sweep_misc_bits) is the prmt intrinsic.
    long long c0 = clock64();
    __nanosleep(100);
    __threadfence();
    __threadfence_block();
    long long c1 = clock64();
    O(c1 >= c0);
    clk[t] = c1 - c0;
    // Local structs copied with memcpy and cleared with memset.
    Pair p[2];
    memset(p, 0, sizeof(p));
    p[0].a = in[t];
    p[0].b = 1.5f;
    p[0].tag[3] = 'x';
    memcpy(&p[1], &p[0], sizeof(Pair));
    O(p[1].a + p[1].tag[3] + (int)p[1].b + p[1].tag[0]);
    assert(in[t] != -12345);
#undef O
}

// Atomics on 16-, 32- and 64-bit words; every thread of every block hits the same few words.
// words: [0] u32 CAS counter, [1] u64 CAS counter (words 2..3), ... see tests/sweep_misc.rs.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_atomics(const int* __restrict__ in, unsigned short* __restrict__ w16, unsigned int* __restrict__ w32,
                   unsigned long long* __restrict__ w64, long long* __restrict__ s64, double* __restrict__ d64,
                   unsigned long long* __restrict__ exch) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int v = in[t];
    // 16-bit CAS loop: an increment of w16[0], and of w16[1] by v & 0xff.
    unsigned short old = w16[0];
    unsigned short assumed;
    do {
        assumed = old;
        old = atomicCAS(&w16[0], assumed, (unsigned short)(assumed + 1));
    } while (old != assumed);
    old = w16[1];
    do {
        assumed = old;
        old = atomicCAS(&w16[1], assumed, (unsigned short)(assumed + (v & 0xff)));
    } while (old != assumed);
    // 32-bit CAS loop: running max of v.
    unsigned int o32 = w32[0];
    unsigned int a32;
    do {
        a32 = o32;
        o32 = atomicCAS(&w32[0], a32, max(a32, (unsigned)v));
    } while (o32 != a32);
    // 64-bit CAS loop: sum of v << 20.
    unsigned long long o64 = w64[0];
    unsigned long long a64;
    do {
        a64 = o64;
        o64 = atomicCAS(&w64[0], a64, a64 + ((unsigned long long)v << 20));
    } while (o64 != a64);
    atomicMin(&s64[0], (long long)v - 1000);
    atomicMax(&s64[1], (long long)v * 1000000000LL);
    atomicMin(&w64[1], (unsigned long long)v + 5);
    atomicMax(&w64[2], (unsigned long long)v << 33);
    atomicAdd(&d64[0], (double)v * 0.5);
    atomicAdd(&w64[3], (unsigned long long)v);
    exch[t] = atomicExch(&w64[4], (unsigned long long)t);
}

// Packed half and bf16 arithmetic; inputs as floats.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_half2(const float* __restrict__ x, float* __restrict__ out) {
    const int t = threadIdx.x;
    const __half2 a = __floats2half2_rn(x[t], x[t + BLOCK]);
    const __half2 b = __floats2half2_rn(x[t + 2 * BLOCK], x[t + 3 * BLOCK]);
    const __nv_bfloat162 c = __floats2bfloat162_rn(x[t], x[t + BLOCK]);
    const __nv_bfloat162 d = __floats2bfloat162_rn(x[t + 2 * BLOCK], x[t + 3 * BLOCK]);
    int k = 0;
#define O2(e) { auto r = (e); out[(k++) * BLOCK + t] = __low2float(r); out[(k++) * BLOCK + t] = __high2float(r); }
    O2(a + b);
    O2(a * b);
    O2(a - b);
    O2(a / b);
    O2(__hneg2(a));
    O2(__hmin2(a, b));
    O2(c + d);
    O2(c * d);
    O2(c - d);
    O2(c / d);
    O2(__hmax2(c, d));
    O2(__hfma2(c, d, c));
#undef O2
}

// __trap() on a path only thread 5 takes, when flag is set.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_trap(int* __restrict__ out, int flag) {
    out[threadIdx.x] = threadIdx.x;
    if (flag != 0 && threadIdx.x == 5) {
        __trap();
    }
}

// assert(v >= 0) for every thread: a negative input fails it.
extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_misc_assert(const int* __restrict__ in, int* __restrict__ out) {
    const int v = in[threadIdx.x];
    assert(v >= 0);
    out[threadIdx.x] = v + 1;
}
