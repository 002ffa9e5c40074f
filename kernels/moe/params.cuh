// Launch parameters of the moe family, passed by value as one `__grid_constant__` struct each.
// Mirrored field by field by `#[repr(C)]` structs in src/moe/params.rs; a test checks that sizes and
// offsets agree with the `.param` size in the PTX.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace sk {

// Per-token status codes of route (src/moe/route.rs `RouteStatus`). A token with a non-zero status
// is not routed: its ids are -1 and its weights 0.
constexpr int32_t kRouteOk = 0;
constexpr int32_t kRouteNan = 1;          // a NaN logit, or a non-finite bias entry
constexpr int32_t kRouteSoftmaxUndef = 2; // softmax of a +inf logit or of all -inf logits
constexpr int32_t kRouteZeroSum = 3;      // renormalisation over k weights that sum to zero

// route: logits [tokens, experts] T -> ids [tokens, k] i32, weights [tokens, k] f32, status [tokens].
struct RouteParams {
  const void* logits;    // [tokens, experts] T
  const float* bias;     // [experts] selection bias, or null
  int32_t* ids;          // [tokens, k], written
  float* weights;        // [tokens, k], written
  int32_t* status;       // [tokens], written
  uint64_t tokens;
  uint32_t experts;      // 1..=512
  uint32_t k;            // 1..=min(experts, 32)
  uint32_t n_group;      // 1..=32, divides experts; 1 = no group limit
  uint32_t topk_group;   // 1..=n_group
  uint32_t sigmoid;      // 0: softmax scores, 1: sigmoid scores
  uint32_t renormalize;  // 1: the k weights divided by their sum
  float scale;           // routed scaling factor, applied last
  uint32_t group_top2;   // group score: 0 = max of the group, 1 = sum of its top-2 selection scores
  uint32_t bf16;         // logits dtype: 0 = f32, 1 = bf16
  uint32_t pad;
};
static_assert(sizeof(RouteParams) == 88, "RouteParams layout");
static_assert(offsetof(RouteParams, bf16) == 80, "RouteParams layout");
static_assert(offsetof(RouteParams, tokens) == 40, "RouteParams layout");
static_assert(offsetof(RouteParams, experts) == 48, "RouteParams layout");
static_assert(offsetof(RouteParams, scale) == 72, "RouteParams layout");
static_assert(offsetof(RouteParams, group_top2) == 76, "RouteParams layout");

}  // namespace sk

namespace sk {

// permute (align): ids [entries = tokens * k] -> the rows of the expert-ordered (grouped) layout.
// Two launches over `blocks` chunks of `chunk` entries each: moe_permute_count writes each chunk's
// histogram into hist; moe_permute_scatter (same grid) derives every offset from hist and places
// its chunk's entries, optionally gathering their activation rows too (vec != 0).
struct AlignParams {
  const int32_t* ids;        // [entries]; -1 = unrouted, other values outside 0..experts are counted bad
  int32_t* counts;           // [experts] entries routed to each expert, before capacity
  int32_t* offsets;          // [experts + 1] first row of each expert (padded); [experts] = total rows
  int32_t* sorted_ids;       // [max_rows] entry index of each row; `entries` (the sentinel) for padding
  int32_t* block_expert;     // [max_blocks] expert of each block of block_size rows, -1 past the total
  int32_t* inverse;          // [entries] row of each entry, -1 when dropped, unrouted or bad
  int32_t* rank_counts;      // [ranks] rows kept per rank (without padding)
  int32_t* rank_offsets;     // [ranks + 1] first row of each rank's slice
  int32_t* status;           // [1] number of bad ids
  int32_t* hist;             // [blocks, experts + 1] workspace: per chunk, entries per expert, then bad ids
  const void* x;             // fused gather (vec != 0): [tokens, hidden] activations
  void* out;                 // fused gather: [max_rows, hidden]; padding rows zero, rows past the total untouched
  uint32_t entries;
  uint32_t experts;          // 1..=512
  uint32_t block_size;       // power of two; 1 = no padding
  uint32_t capacity;         // rows kept per expert; the first by (token, slot) stay
  uint32_t max_rows;
  uint32_t max_blocks;
  uint32_t experts_per_rank;
  uint32_t chunk;            // entries per block, a multiple of the block's threads
  uint32_t k;                // fused gather: slots per token (token = entry / k)
  uint32_t row_bytes;        // fused gather: hidden * sizeof(T)
  uint32_t vec;              // fused gather: bytes per access (16, 4 or 2); 0 = no gather
  uint32_t pad;
};
static_assert(sizeof(AlignParams) == 144, "AlignParams layout");
static_assert(offsetof(AlignParams, entries) == 96, "AlignParams layout");
static_assert(offsetof(AlignParams, experts_per_rank) == 120, "AlignParams layout");
static_assert(offsetof(AlignParams, vec) == 136, "AlignParams layout");

// gather: out[row] = x[sorted_ids[row] / k] for rows below offsets[experts]; padding rows zero.
struct GatherParams {
  const void* x;             // [tokens, hidden] activations
  const int32_t* sorted_ids; // [max_rows]
  const int32_t* offsets;    // [experts + 1]; offsets[experts] = total rows
  void* out;                 // [max_rows, hidden]; rows past the total are not written
  uint32_t max_rows;
  uint32_t experts;
  uint32_t k;
  uint32_t entries;          // the sentinel
  uint32_t row_bytes;        // hidden * sizeof(T)
  uint32_t vec;              // bytes per access: 16, 4 or 2
};
static_assert(sizeof(GatherParams) == 56, "GatherParams layout");
static_assert(offsetof(GatherParams, vec) == 52, "GatherParams layout");

// combine: out[t] = sum_j weights[t, j] * y[inverse[t * k + j]] in j order, fp32 accumulation.
struct CombineParams {
  const void* y;             // [rows, hidden] expert outputs in the permuted layout
  const float* weights;      // [tokens, k]
  const int32_t* inverse;    // [tokens, k]; -1 contributes nothing; other values outside 0..rows are bad
  void* out;                 // [tokens, hidden]
  int32_t* status;           // [tokens] number of bad positions of the token (written by chunk 0)
  uint64_t tokens;
  uint32_t k;
  uint32_t hidden;
  uint32_t rows;
  uint32_t vec;              // elements per access: 16 / sizeof(T) or 1
};
static_assert(sizeof(CombineParams) == 64, "CombineParams layout");
static_assert(offsetof(CombineParams, vec) == 60, "CombineParams layout");

}  // namespace sk

namespace sk {

// stats: per-expert counts, load-balancing loss, z-loss and the sign of each expert's load error.
// Pass 1 (moe_stats_partial): per block, the sum over its tokens of softmax(x) per expert and of
// logsumexp(x)^2, into partial[block][experts + 1]. Pass 2 (moe_stats_final, one block): the sums
// over blocks in block order, the counts from the ids, the losses.
struct StatsParams {
  const void* logits;   // [tokens, experts] T
  const int32_t* ids;   // [tokens, k]; -1 and out-of-range ids are not counted
  float* partial;       // [blocks, experts + 1] workspace
  int32_t* counts;      // [experts], written by pass 2
  int32_t* load_sign;   // [experts] +1 under the mean load, -1 over, 0 at it; pass 2
  float* losses;        // [2] load-balancing loss, z-loss; pass 2
  uint64_t tokens;
  uint32_t experts;     // 1..=512
  uint32_t k;
  uint32_t blocks;      // blocks of pass 1
  uint32_t pad;
};
static_assert(sizeof(StatsParams) == 72, "StatsParams layout");
static_assert(offsetof(StatsParams, blocks) == 64, "StatsParams layout");

}  // namespace sk

namespace sk {

// combine backward, in the permuted layout of permute: for each row r holding entry i = t * k + j,
//   dy[r] = weights[i] * dout[t],  dweights[i] = <dout[t], y[r]>;
// padding rows of dy are zero and entries that hold no row get dweights 0.
struct CombineBwdParams {
  const void* dout;          // [tokens, hidden] T
  const void* y;             // [max_rows, hidden] T (the forward's expert outputs)
  const float* weights;      // [entries]
  const int32_t* sorted_ids; // [max_rows]
  const int32_t* offsets;    // [experts + 1]
  const int32_t* inverse;    // [entries]
  void* dy;                  // [max_rows, hidden] T; rows past offsets[experts] not written
  float* dweights;           // [entries]
  uint32_t entries;
  uint32_t k;
  uint32_t hidden;
  uint32_t experts;
  uint32_t vec;              // elements per access: 16 / sizeof(T) (hidden a multiple of it, 16-byte
                             // aligned dout, y, dy) or 1
  uint32_t pad;
};
static_assert(sizeof(CombineBwdParams) == 88, "CombineBwdParams layout");
static_assert(offsetof(CombineBwdParams, experts) == 76, "CombineBwdParams layout");
static_assert(offsetof(CombineBwdParams, vec) == 80, "CombineBwdParams layout");

}  // namespace sk

namespace sk {

// route backward: d loss / d logits from d loss / d weights, through the forward's selection
// (ids fixed), renormalisation, scaling and the softmax or sigmoid; the bias has no gradient.
struct RouteBwdParams {
  const void* logits;      // [tokens, experts] T (the forward's)
  const int32_t* ids;      // [tokens, k] (the forward's)
  const float* dweights;   // [tokens, k]
  const int32_t* status;   // [tokens] (the forward's); a token with status != 0 gets dlogits 0
  float* dlogits;          // [tokens, experts], written
  uint64_t tokens;
  uint32_t experts;
  uint32_t k;
  uint32_t sigmoid;
  uint32_t renormalize;
  float scale;
  uint32_t pad;
};
static_assert(sizeof(RouteBwdParams) == 72, "RouteBwdParams layout");
static_assert(offsetof(RouteBwdParams, scale) == 64, "RouteBwdParams layout");

}  // namespace sk

namespace sk {

// stats backward: dlogits (+)= g_aux * d aux / d logits + g_z * d z / d logits, the counts held
// constant (they are not differentiable).
struct StatsBwdParams {
  const void* logits;     // [tokens, experts] T
  const int32_t* counts;  // [experts] (stats' output)
  float* dlogits;         // [tokens, experts]
  uint64_t tokens;
  uint32_t experts;
  uint32_t k;
  float g_aux;
  float g_z;
  uint32_t accumulate;    // 1: add to dlogits (e.g. route_backward's), 0: overwrite
  uint32_t pad;
};
static_assert(sizeof(StatsBwdParams) == 56, "StatsBwdParams layout");
static_assert(offsetof(StatsBwdParams, accumulate) == 48, "StatsBwdParams layout");

}  // namespace sk
