// Launch parameters of the attention family, passed by value as one `__grid_constant__` struct.
// Mirrored field by field by `#[repr(C)]` structs in src/attention/params.rs; a test checks that
// sizes and offsets agree with the `.param` size in the PTX.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace sk {

// merge_states: (O, lse) = merge((O_a, lse_a), (O_b, lse_b)) for `rows` = tokens * heads rows of
// `head_dim` elements, contiguous. LSE is natural-log, fp32, one per row.
struct MergeStatesParams {
  const void* o_a;     // [rows, head_dim] T
  const float* lse_a;  // [rows]
  const void* o_b;     // [rows, head_dim] T
  const float* lse_b;  // [rows]
  void* o;             // [rows, head_dim] T, written
  float* lse;          // [rows], written; may be null when the caller does not need it
  uint64_t rows;
  uint32_t head_dim;
  uint32_t vec;        // elements per access: 16 / sizeof(T) when head_dim and pointers allow, else 1
};
// The Rust mirror asserts the same numbers (src/attention/params.rs).
static_assert(sizeof(MergeStatesParams) == 64, "MergeStatesParams layout");
static_assert(offsetof(MergeStatesParams, rows) == 48, "MergeStatesParams layout");
static_assert(offsetof(MergeStatesParams, head_dim) == 56, "MergeStatesParams layout");
static_assert(offsetof(MergeStatesParams, vec) == 60, "MergeStatesParams layout");

}  // namespace sk
