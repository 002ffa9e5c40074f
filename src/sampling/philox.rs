//! Philox 4x32-10, the counter-based generator behind every draw (`kernels/common/philox.cuh`).
//!
//! The host twin of the device code: tests use it to predict the kernel's random bits exactly, and
//! it is checked here against Random123's published known-answer vectors.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox 4x32 with 10 rounds: four 32-bit words of output for a counter and a key (Salmon et al.,
/// SC'11; the key is bumped between rounds).
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The 64 random bits of draw `sample` at `position` of the request seeded `seed`, as the sampler
/// uses them: key = seed (low word first), counter = (position low, position high, sample, 0),
/// bits = word 0 | word 1 << 32.
pub fn philox_bits64(seed: u64, position: u64, sample: u32) -> u64 {
    let out = philox4x32_10([position as u32, (position >> 32) as u32, sample, 0], [seed as u32, (seed >> 32) as u32]);
    u64::from(out[0]) | (u64::from(out[1]) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_random123_known_answers() {
        // Random123 1.14, tests/kat_vectors, the three `philox4x32 10` lines: counter, key, output.
        let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            ([0, 0, 0, 0], [0, 0], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
            ([u32::MAX; 4], [u32::MAX; 2], [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]),
            (
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
            ),
        ];
        for (ctr, key, want) in kat {
            assert_eq!(philox4x32_10(ctr, key), want, "ctr {ctr:x?} key {key:x?}");
        }
    }

    #[test]
    fn bits64_is_the_first_two_words() {
        let w = philox4x32_10([5, 0, 3, 0], [7, 0]);
        assert_eq!(philox_bits64(7, 5, 3), u64::from(w[0]) | u64::from(w[1]) << 32);
        assert_ne!(philox_bits64(7, 5, 3), philox_bits64(7, 5, 4));
        assert_ne!(philox_bits64(7, 5, 3), philox_bits64(7, 1 << 32 | 5, 3));
    }
}
