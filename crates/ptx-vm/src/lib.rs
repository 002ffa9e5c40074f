//! Executes the PTX that nvcc emits on the CPU, with CUDA semantics.
