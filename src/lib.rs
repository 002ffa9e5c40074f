//! scaling-kernels
