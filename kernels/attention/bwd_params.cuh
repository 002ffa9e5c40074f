// Launch parameters of the attention backward (bwd.cu), one struct for its four entry points.
// Mirrored by `AttnBwdParams` in src/attention/bwd.rs; a test checks sizes, offsets and the PTX
// `.param` size.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace sk {

// Layouts as the forward (params.cuh, AttnFwdParams): token rows `*_row_stride` elements apart, heads
// `head_dim` apart within a row, the head dim contiguous; lse and the workspace are [heads, total_q].
struct AttnBwdParams {
  const void* q;               // [total_q rows, heads, head_dim] T
  const void* k;               // [total_k rows, kv_heads, head_dim] T
  const void* v;               // [total_k rows, kv_heads, head_dim] T
  const void* o;               // [total_q rows, heads, head_dim] T, the forward's output
  const void* dout;            // [total_q rows, heads, head_dim] T, the upstream gradient
  const float* lse;            // [heads, total_q], natural log, from the forward (sink included)
  void* dq;                    // like q, written
  void* dk;                    // like k, written
  void* dv;                    // like v, written
  float* dsinks;               // [heads], written when sinks is not null
  float* dot_do_o;             // workspace [heads, total_q]: D = rowsum(dout * o), fp32
  const int32_t* cu_seqlens_q; // [batch + 1] or null (fixed length)
  const int32_t* cu_seqlens_k; // [batch + 1] or null
  const float* alibi_slopes;   // [heads] or null
  const float* sinks;          // [heads] or null
  int64_t q_row_stride;
  int64_t k_row_stride;
  int64_t v_row_stride;
  int64_t o_row_stride;
  int64_t do_row_stride;
  int64_t dq_row_stride;
  int64_t dk_row_stride;
  int64_t dv_row_stride;
  int32_t seqlen_q;            // fixed length only
  int32_t seqlen_k;            // fixed length only
  int32_t total_q;
  int32_t heads;
  int32_t kv_heads;
  int32_t head_dim;            // multiple of 8, <= the instantiation's
  int32_t window_left;         // as the forward; -1: unbounded
  int32_t window_right;        // causal is 0
  float scale_log2;            // log2(e) x (softcap if softcap > 0 else softmax scale)
  float softcap_prescale;      // softmax scale / softcap, or 0 when there is no softcap
  float grad_scale;            // the softmax scale: d logit / d(q.k) without softcap
  int32_t batch;
};
static_assert(sizeof(AttnBwdParams) == 232, "AttnBwdParams layout");
static_assert(offsetof(AttnBwdParams, q_row_stride) == 120, "AttnBwdParams layout");
static_assert(offsetof(AttnBwdParams, seqlen_q) == 184, "AttnBwdParams layout");
static_assert(offsetof(AttnBwdParams, scale_log2) == 216, "AttnBwdParams layout");
static_assert(offsetof(AttnBwdParams, batch) == 228, "AttnBwdParams layout");

}  // namespace sk
