// The CUDA math library on the VM, for tests/sweep_math.rs.
//
// Work split: 1-D grid, one thread per input element i < n. Every kernel evaluates a fixed list of
// functions on (x[i], y[i]) and writes function k's result to out[k * n + i] (integer results to
// iout[k * n + i]), so one launch covers the whole library and the test checks each column.
// The order of the columns is the order of the F(...) lines; tests/sweep_math.rs lists the same.

#include <cuda_fp16.h>
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(128)
sweep_math_f32(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ out,
               int* __restrict__ iout, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float a = x[i];
        const float b = y[i];
        int k = 0;
#define F(e) out[(k++) * n + i] = (e)
        F(sinf(a)); F(cosf(a)); F(tanf(a));
        { float s, c; sincosf(a, &s, &c); F(s); F(c); }
        F(asinf(a)); F(acosf(a)); F(atanf(a)); F(atan2f(a, b));
        F(sinhf(a)); F(coshf(a)); F(tanhf(a));
        F(asinhf(a)); F(acoshf(a)); F(atanhf(a));
        F(expf(a)); F(exp2f(a)); F(exp10f(a)); F(expm1f(a));
        F(logf(a)); F(log2f(a)); F(log10f(a)); F(log1pf(a));
        F(powf(a, b)); F(sqrtf(a)); F(rsqrtf(a)); F(cbrtf(a)); F(rcbrtf(a)); F(hypotf(a, b));
        F(fmodf(a, b)); F(remainderf(a, b));
        { int q; F(remquof(a, b, &q)); iout[0 * n + i] = q; }
        F(erff(a)); F(erfcf(a)); F(erfinvf(a)); F(erfcinvf(a)); F(lgammaf(a)); F(tgammaf(a));
        F(j0f(a)); F(y0f(a)); F(normcdff(a)); F(normcdfinvf(a));
        F(ldexpf(a, (int)b));
        { int e; F(frexpf(a, &e)); iout[1 * n + i] = e; }
        { float ip; F(modff(a, &ip)); F(ip); }
        F(scalbnf(a, (int)b));
        iout[2 * n + i] = ilogbf(a);
        F(logbf(a)); F(nextafterf(a, b)); F(copysignf(a, b)); F(fdimf(a, b)); F(fmaf(a, b, 0.5f));
        F(truncf(a)); F(roundf(a)); F(rintf(a)); F(nearbyintf(a)); F(floorf(a)); F(ceilf(a));
        iout[3 * n + i] = (int)lrintf(a);
        iout[4 * n + i] = (int)llroundf(a);
        // Intrinsics.
        F(__sinf(a)); F(__cosf(a)); F(__expf(a)); F(__logf(a)); F(__powf(a, b)); F(__fdividef(a, b));
        F(__frcp_rn(a)); F(__fsqrt_rn(a)); F(__fmaf_rn(a, b, 0.5f));
#undef F
    }
}

extern "C" __global__ void __launch_bounds__(128)
sweep_math_f64(const double* __restrict__ x, const double* __restrict__ y, double* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const double a = x[i];
        const double b = y[i];
        int k = 0;
#define F(e) out[(k++) * n + i] = (e)
        F(sin(a)); F(cos(a)); F(exp(a)); F(log(a)); F(pow(a, b)); F(sqrt(a)); F(erf(a)); F(lgamma(a));
        F(atan2(a, b)); F(fma(a, b, 0.5));
#undef F
    }
}

// Half and bf16 math: inputs are f32, converted on the device, results widened back to f32.
extern "C" __global__ void __launch_bounds__(128)
sweep_math_half(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const __half a = __float2half(x[i]);
        const __half b = __float2half(y[i]);
        const __nv_bfloat16 c = __float2bfloat16(x[i]);
        const __nv_bfloat16 d = __float2bfloat16(y[i]);
        const __half2 a2 = __halves2half2(a, b);
        const __half2 b2 = __halves2half2(b, a);
        const __nv_bfloat162 c2 = __halves2bfloat162(c, d);
        const __nv_bfloat162 d2 = __halves2bfloat162(d, c);
        int k = 0;
#define F(e) out[(k++) * n + i] = (e)
        F(__half2float(hsqrt(a))); F(__half2float(hexp(a))); F(__half2float(hlog(a)));
        F(__half2float(hsin(a))); F(__half2float(hcos(a))); F(__half2float(hrcp(a)));
        F(__half2float(__hadd(a, b))); F(__half2float(__hmul(a, b))); F(__half2float(__hdiv(a, b)));
        F(__half2float(__hfma(a, b, a)));
        { __half2 r = __hfma2(a2, b2, a2); F(__low2float(r)); F(__high2float(r)); }
        { __half2 r = h2sqrt(__habs2(a2)); F(__low2float(r)); F(__high2float(r)); }
        { __half2 r = __hmax2(a2, b2); F(__low2float(r)); F(__high2float(r)); }
        { __half2 r = h2exp(a2); F(__low2float(r)); F(__high2float(r)); }
        F(__bfloat162float(hsqrt(__habs(c)))); F(__bfloat162float(hexp(c)));
        F(__bfloat162float(__hadd(c, d))); F(__bfloat162float(__hmul(c, d)));
        F(__bfloat162float(__hdiv(c, d)));
        { __nv_bfloat162 r = __hfma2(c2, d2, c2); F(__low2float(r)); F(__high2float(r)); }
        { __nv_bfloat162 r = __hmul2(c2, d2); F(__low2float(r)); F(__high2float(r)); }
        { __nv_bfloat162 r = h2exp(c2); F(__low2float(r)); F(__high2float(r)); }
#undef F
    }
}

// Packed and scalar half/bf16 comparisons (nvcc emits set.cmp.{f16x2,u32}.f16x2 and set.nan for
// them): a2 = (x[i], y[i]), b2 = (y[i], x[(i + 1) % n]) as half2 and the same as bf162; each
// column is an int.
extern "C" __global__ void __launch_bounds__(128)
sweep_math_half_compare(const float* __restrict__ x, const float* __restrict__ y, int* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float p = x[i];
        const float q = y[i];
        const float r = x[(i + 1) % n];
        const __half2 a = __floats2half2_rn(p, q);
        const __half2 b = __floats2half2_rn(q, r);
        const __nv_bfloat162 c = __floats2bfloat162_rn(p, q);
        const __nv_bfloat162 d = __floats2bfloat162_rn(q, r);
        int k = 0;
#define O(e) out[(k++) * n + i] = (int)(e)
        O(__hbeq2(a, b));
        O(__hbgt2(a, b));
        O(__hble2(c, d));
        O(__half2float(__heq2(a, b).x));
        O(__half2float(__hlt2(a, b).y));
        O(__half2float(__hisnan2(a).y));
        O(__bfloat162float(__hgt2(c, d).y));
        O(__heq2_mask(a, b));
        O(__hlt2_mask(c, d));
        O(__hgtu(__low2half(a), __low2half(b)));
        O(__hisnan(__high2half(a)));
        O(__half_as_ushort(__hmax_nan(__low2half(a), __high2half(b))));
#undef O
    }
}
