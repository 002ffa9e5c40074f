// Device printf (CUDA C++ Programming Guide, "Formatted Output"): nvcc lowers each call to
// vprintf(format, argument buffer), and the VM formats the buffer as the host's printf would.
//
// printf_conversions: thread 0 prints every conversion CUDA documents, with flags, widths and
// precisions (also `*`); its arguments come from the parameters so nothing is folded at compile
// time. The values printf returns (arguments parsed) are stored to `ret`.
// printf_order: every thread prints twice, with a __syncthreads between, to show the order.
// printf_flood: more than the 1 MiB printf buffer, one 1001-byte line per thread.
// double_or_report: a printf on an error path that a valid input never takes.

#include <cstdio>

constexpr int ORDER_THREADS = 40;
constexpr int SCALE_THREADS = 64;
constexpr int FLOOD_THREADS = 128;
constexpr int FLOOD_WIDTH = 1000;

extern "C" __global__ void __launch_bounds__(32)
printf_conversions(int i, long long ll, unsigned long long ull, double d, float f, const char* __restrict__ s,
                   int* __restrict__ ret) {
    if (threadIdx.x != 0 || blockIdx.x != 0) {
        return;
    }
    ret[0] = printf("int %d|%i|%u|%5d|%-5d|%05d|%+d|% d|%.3d|%.0d\n", i, -i, -i, i, i, -i, i, i, 7, 0);
    ret[1] = printf("hex %x|%X|%#x|%#o|%o|%08.3x|%-#8x|\n", i, i, i, i, i, i, i);
    ret[2] = printf("long %ld|%lld|%llu|%lu|%llx\n", (long)ll, ll, ull, (unsigned long)ull, ull);
    ret[3] = printf("short %hd|%hhd|%hu|%hhu\n", (short)70000, (signed char)200, (unsigned short)65535, (unsigned char)255);
    ret[4] = printf("char %c|%3c|%-3c|\n", 'A', 'B', 'C');
    ret[5] = printf("str %s|%8s|%-8s|%.2s|%8.3s|\n", s, s, s, s, s);
    ret[6] = printf("fixed %f|%F|%.2f|%10.3f|%-10.1f|%+f|% f|%010.2f|%.0f|%#.0f\n", d, d, d, -d, d, d, d, -d, 2.5, 3.0);
    ret[7] = printf("sci %e|%E|%.2e|%12.3e|%.0e\n", d * 1000.0, d / 10000.0, d, -d * 1e100, 5e-324);
    ret[8] = printf("general %g|%G|%g|%g|%.3g|%#g|%g\n", f * 100000.0f, 1e-5, 1234567.0, 0.0001, d, 1.5, 0.0);
    ret[9] = printf("hexfloat %a|%A|%.2a\n", 1.0, -0.5, 1.0 / 3.0);
    ret[10] = printf("float %f|%.1f|%g\n", f, f, f);
    ret[11] = printf("star %*d|%-*d|%.*f|%*.*e|\n", 6, i, 6, i, 2, d, 12, 3, d);
    ret[12] = printf("pointer %p|%p\n", (void*)0x7f001234abcdull, (void*)nullptr);
    ret[13] = printf("percent 100%% done\n");
}

extern "C" __global__ void __launch_bounds__(ORDER_THREADS) printf_order() {
    printf("A %d.%d\n", blockIdx.x, threadIdx.x);
    __syncthreads();
    printf("B %d.%d\n", blockIdx.x, threadIdx.x);
}

extern "C" __global__ void __launch_bounds__(FLOOD_THREADS) printf_flood() {
    printf("%*d\n", FLOOD_WIDTH, blockIdx.x * blockDim.x + threadIdx.x);
}

extern "C" __global__ void __launch_bounds__(SCALE_THREADS)
double_or_report(int n, const int* __restrict__ x, int* __restrict__ y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    if (x[i] < 0) {
        printf("double_or_report: negative input %d at %d\n", x[i], i);
        return;
    }
    y[i] = 2 * x[i];
}
