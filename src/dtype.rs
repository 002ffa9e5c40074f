//! The floating-point element types kernels are instantiated for.

use half::{bf16, f16};

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
        f16::from_f64(x)
    }
}

impl Float for bf16 {
    const NAME: &'static str = "bf16";
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(x: f64) -> Self {
        bf16::from_f64(x)
    }
}
