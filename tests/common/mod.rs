//! Shared helpers of the integration tests: backends, seeded inputs, poisoning and error rules.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::SeedableRng;
use scaling_kernels::Device;

/// Every backend available here. A backend that is not prints why it was skipped, so a run that
/// tested nothing on the GPU says so plainly.
pub fn backends() -> Vec<Device> {
    let mut devices = vec![Device::vm()];
    match Device::cuda(0) {
        Ok(d) => devices.push(d),
        Err(e) => eprintln!("SKIPPED on CUDA: {e}"),
    }
    devices
}

/// A seeded RNG: `SK_TEST_SEED` when set, else a fresh seed. The seed is printed (and shown by
/// cargo test when the test fails) so a failure can be replayed.
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("SK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!("{test}: seed {seed} (replay with SK_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// The byte outputs are filled with before a launch (`Device::fill_poison`): 0xFF makes every f32,
/// f16 and bf16 a NaN, so an element the kernel did not write cannot pass a comparison with a
/// finite reference, and on the VM a kernel that reads it before writing it is an initcheck error.
pub const POISON: u8 = scaling_kernels::device::POISON;

/// Largest absolute difference, treating NaN == NaN and equal infinities as equal, and any other
/// mismatch of non-finite values as infinite error.
pub fn max_abs_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g.is_nan() && w.is_nan() || g == w {
                0.0
            } else if !g.is_finite() || !w.is_finite() {
                f64::INFINITY
            } else {
                (g - w).abs()
            }
        })
        .fold(0.0, f64::max)
}
