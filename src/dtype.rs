//! The floating-point element types kernels are instantiated for.

use half::{bf16, f16};
use ptx_vm::semantics::float::{f64_to_fmt, Fmt, Rnd};

use crate::device::Element;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A floating-point element type with kernels in this crate: `f32`, `f16` or `bf16`.
///
/// Sealed: the set is fixed by the kernels compiled into the crate.
pub trait Float: Element + sealed::Sealed + Copy + PartialEq + std::fmt::Debug {
    /// The suffix of kernel names for this type (`f32`, `f16`, `bf16`).
    const NAME: &'static str;
    /// Exact widening to f64.
    fn to_f64(self) -> f64;
    /// Rounds to nearest, ties to even (one rounding from f64).
    fn from_f64(x: f64) -> Self;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Float for f16 {
    const NAME: &'static str = "f16";
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(x: f64) -> Self {
        // Not `half::f16::from_f64`: it can round twice (via f32) and land one ulp off.
        f16::from_bits(f64_to_fmt(x, Fmt::F16, Rnd::Rn) as u16)
    }
}

impl Float for bf16 {
    const NAME: &'static str = "bf16";
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(x: f64) -> Self {
        bf16::from_bits(f64_to_fmt(x, Fmt::BF16, Rnd::Rn) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_f64_rounds_once_to_nearest_even() {
        // 20680.0000939 lies just above the midpoint 20680 of f16 neighbours 20672 and 20688; a
        // rounding through f32 lands on the midpoint and then ties to even (20672).
        assert_eq!(<f16 as Float>::from_f64(20680.0000939).to_f64(), 20688.0);
        assert_eq!(<f16 as Float>::from_f64(20680.0).to_f64(), 20672.0, "a true tie goes to even");
        // bf16: 1 + 2^-8 is the midpoint of 1 and 1 + 2^-7; a hair above it rounds up.
        assert_eq!(<bf16 as Float>::from_f64(1.0 + 2f64.powi(-8)).to_f64(), 1.0);
        assert_eq!(<bf16 as Float>::from_f64(1.0 + 2f64.powi(-8) + 2f64.powi(-40)).to_f64(), 1.0 + 2f64.powi(-7));
        assert!(<bf16 as Float>::from_f64(f64::NAN).to_f64().is_nan());
        assert_eq!(<f16 as Float>::from_f64(f64::NEG_INFINITY).to_f64(), f64::NEG_INFINITY);
    }
}
