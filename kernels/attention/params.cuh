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

// attention forward (fwd.cu): out = softmax(scores) V per query head, with the options below.
// Token rows of q, k, v and out are `*_row_stride` elements apart (a fused QKV buffer is passed as
// three strided views); within a row, heads are `head_dim` apart and the head dim is contiguous.
// Batches: with cu_seqlens_q/k null, sequence b has rows [b * seqlen_q, (b + 1) * seqlen_q) of q
// (likewise k); else rows [cu_seqlens_q[b], cu_seqlens_q[b + 1]) (varlen, FlashAttention's packing).
struct AttnFwdParams {
  const void* q;               // [total_q rows, heads, head_dim] T
  const void* k;               // [total_k rows, kv_heads, head_dim] T
  const void* v;               // [total_k rows, kv_heads, head_dim] T
  void* o;                     // [total_q rows, heads, head_dim] T, written
  float* lse;                  // [heads, total_q], natural log, written; null when not wanted
  const int32_t* cu_seqlens_q; // [batch + 1] or null (fixed length)
  const int32_t* cu_seqlens_k; // [batch + 1] or null
  const float* alibi_slopes;   // [heads] or null
  const float* sinks;          // [heads] sink logits (natural-log units) or null
  int64_t q_row_stride;        // elements between consecutive tokens
  int64_t k_row_stride;
  int64_t v_row_stride;
  int64_t o_row_stride;
  int32_t seqlen_q;            // fixed length only
  int32_t seqlen_k;            // fixed length only
  int32_t total_q;             // rows of q in all sequences: the row stride of lse
  int32_t heads;
  int32_t kv_heads;            // heads % kv_heads == 0; head h reads kv head h / (heads / kv_heads)
  int32_t head_dim;            // multiple of 8, <= the instantiation's; extra columns are masked
  int32_t window_left;         // keys j >= i' - left visible (i' = i + seqlen_k - seqlen_q); -1: all
  int32_t window_right;        // keys j <= i' + right visible; causal is 0; -1: all
  float scale_log2;            // log2(e) x (softcap if softcap > 0 else softmax scale)
  float softcap_prescale;      // softmax scale / softcap, or 0 when there is no softcap
  float alibi_unit;            // 1 / (softcap if softcap > 0 else softmax scale): bias -> score units
  int32_t pack;                // query heads of a kv group packed as rows of one query tile (1: none)
};
static_assert(sizeof(AttnFwdParams) == 152, "AttnFwdParams layout");
static_assert(offsetof(AttnFwdParams, q_row_stride) == 72, "AttnFwdParams layout");
static_assert(offsetof(AttnFwdParams, seqlen_q) == 104, "AttnFwdParams layout");
static_assert(offsetof(AttnFwdParams, head_dim) == 124, "AttnFwdParams layout");
static_assert(offsetof(AttnFwdParams, window_left) == 128, "AttnFwdParams layout");
static_assert(offsetof(AttnFwdParams, scale_log2) == 136, "AttnFwdParams layout");
static_assert(offsetof(AttnFwdParams, alibi_unit) == 144, "AttnFwdParams layout");

}  // namespace sk
