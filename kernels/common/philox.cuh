// Philox 4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator, so a draw is a pure function of (key, counter) and never depends on
// which thread, block or batch slot computes it. Checked against Random123's known-answer vectors by
// the Rust twin in src/sampling/philox.rs (which the tests run the kernel against as well).
#pragma once
#include <stdint.h>

namespace sk {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // round multipliers
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key schedule (Weyl) increments
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;

struct Philox4 {
  uint32_t v[4];
};

__device__ __forceinline__ Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int r = 0; r < kPhiloxRounds; ++r) {
    if (r > 0) {  // the key is bumped between rounds, not before the first
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint32_t lo0 = kPhiloxM0 * ctr.v[0], hi0 = __umulhi(kPhiloxM0, ctr.v[0]);
    const uint32_t lo1 = kPhiloxM1 * ctr.v[2], hi1 = __umulhi(kPhiloxM1, ctr.v[2]);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The 64 random bits of draw `sample` at `position` of the request seeded `seed`: key = seed,
// counter = (position lo, position hi, sample, 0), bits = word0 | word1 << 32.
__device__ __forceinline__ uint64_t philox_bits64(uint64_t seed, uint64_t position, uint32_t sample) {
  const Philox4 out = philox4x32_10(Philox4{{uint32_t(position), uint32_t(position >> 32), sample, 0u}},
                                    uint32_t(seed), uint32_t(seed >> 32));
  return uint64_t(out.v[0]) | (uint64_t(out.v[1]) << 32);
}

// The same with the counter's last word set to `stream`, so that different uses of one (seed,
// position, index) (speculative acceptance, its residual draw) get independent bits.
__device__ __forceinline__ uint64_t philox_bits64_stream(uint64_t seed, uint64_t position, uint32_t index,
                                                         uint32_t stream) {
  const Philox4 out = philox4x32_10(Philox4{{uint32_t(position), uint32_t(position >> 32), index, stream}},
                                    uint32_t(seed), uint32_t(seed >> 32));
  return uint64_t(out.v[0]) | (uint64_t(out.v[1]) << 32);
}

}  // namespace sk
