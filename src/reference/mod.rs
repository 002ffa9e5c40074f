//! Plain float64 CPU implementations of every kernel's contract.
//!
//! Written from the math, not from the kernels, so tests compare two independent routes. They are
//! public: your own tests can use them.

pub mod attention;
pub mod attention_bwd;
pub mod decode;
pub mod moe;
pub mod sampling;
