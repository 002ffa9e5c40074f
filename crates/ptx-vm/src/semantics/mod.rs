//! The semantics of PTX instructions as pure functions, with no interpreter state: rounding and
//! conversions, warp collectives, tensor-core fragments and matrix loads. The interpreter calls
//! these; each is tested here against the PTX ISA's own definitions.

pub mod compare;
pub mod float;
pub mod ldmatrix;
pub mod mma;
pub mod printf;
pub mod simd;
pub mod tensor_map;
pub mod warp;
pub mod wgmma;
