// nvcc-arch: compute_90a
// The Hopper GEMM of hopper_gemm.cu with the ring-slot release of commit 705c19b undone: one arrival
// on a slot's empty barrier per consumer warpgroup (its first thread, after that warp's
// wgmma.wait_group) instead of one per warp. The other three warps' wgmma reads of the slot are then
// ordered with nothing the producer waits for, so the TMA refill of the slot races with them: a
// race racecheck must report whenever a slot is reused (tests/hopper_gemm.rs).
#define RELEASE_THREADS 128
#include "hopper_gemm.cu"
