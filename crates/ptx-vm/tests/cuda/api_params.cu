// A kernel with one parameter of each kind a caller pushes through ptx_vm::ParamBuilder: a pointer,
// int, double, char, long long, short, a struct by value, and the output pointer. Thread 0 writes
// each value's bits back, widened to 64 bits, so a test can compare what the kernel saw with what
// the builder pushed. The sum over in[0..n) checks that the pointer and n arrived together.
//
// PTX layout (nvcc 13, compute_80): in@0 .u64, n@8 .u32, d@16 .f64, c@24 .u8, ll@32 .u64, s@40 .u16,
// blob@48 .align 8 .b8[16], out@64 .u64: 72 bytes.

struct ApiBlob {
  int a;
  float b;
  double c;
};

extern "C" __global__ void __launch_bounds__(32) api_params_mixed(const float* __restrict__ in, int n, double d,
                                                                  char c, long long ll, short s, ApiBlob blob,
                                                                  unsigned long long* __restrict__ out) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += in[i];
  out[0] = __float_as_uint(sum);
  out[1] = static_cast<unsigned long long>(static_cast<long long>(n));
  out[2] = static_cast<unsigned long long>(__double_as_longlong(d));
  out[3] = static_cast<unsigned long long>(static_cast<long long>(c));
  out[4] = static_cast<unsigned long long>(ll);
  out[5] = static_cast<unsigned long long>(static_cast<long long>(s));
  out[6] = static_cast<unsigned long long>(static_cast<long long>(blob.a));
  out[7] = __float_as_uint(blob.b);
  out[8] = static_cast<unsigned long long>(__double_as_longlong(blob.c));
}
