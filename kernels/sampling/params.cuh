// Launch parameters of the sampling family, passed by value as one `__grid_constant__` struct.
// Mirrored field by field by `#[repr(C)]` structs in src/sampling/params.rs; a test checks that
// sizes and offsets agree with the `.param` size in the PTX.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace sk {

// Row status bits (SampleParams::status, LogSoftmaxGatherParams::status).
constexpr uint32_t kStatusNoFinite = 1u;   // no finite logit in the row (all -inf)
constexpr uint32_t kStatusNonFinite = 2u;  // a NaN or +inf logit, or a processed logit overflowed
constexpr uint32_t kStatusBadTarget = 4u;  // log_softmax_gather: target id outside [0, vocab)
constexpr uint32_t kStatusBadId = 8u;      // apply_penalties: a history or bias id outside [0, vocab)

// sample: `n` draws from each of `batch` rows of `vocab` logits. Per-row parameters are arrays of
// `batch`; outputs are [batch, n] (sample-major within a row) except `status` [batch].
struct SampleParams {
  const void* logits;             // [batch, vocab] T
  const float* temperature;       // 0 = greedy
  const uint32_t* top_k;          // 0 = off
  const float* top_p;             // 1 = off
  const float* min_p;             // 0 = off
  const uint64_t* seed;
  const uint64_t* position;
  int32_t* token;                 // [batch, n]
  float* logprob_raw;             // [batch, n]
  float* logprob_processed;       // [batch, n]
  float* logprob_truncated;       // [batch, n]
  int32_t* rank;                  // [batch, n]
  uint32_t* status;               // [batch]
  uint32_t batch;
  uint32_t vocab;
  uint32_t n;
  uint32_t pad;
};
static_assert(sizeof(SampleParams) == 120, "SampleParams layout");
static_assert(offsetof(SampleParams, batch) == 104, "SampleParams layout");
static_assert(offsetof(SampleParams, vocab) == 108, "SampleParams layout");
static_assert(offsetof(SampleParams, n) == 112, "SampleParams layout");

// apply_penalties: out = logits with vLLM's repetition / frequency / presence penalties over each
// row's token history (CSR: ids with counts) and then a sparse logit bias (CSR: ids with values).
struct PenaltiesParams {
  const void* logits;             // [batch, vocab] T
  float* out;                     // [batch, vocab]
  const uint32_t* hist_offsets;   // [batch + 1]
  const int32_t* hist_ids;        // [hist_offsets[batch]]
  const uint32_t* hist_counts;    // [hist_offsets[batch]]
  const float* repetition;        // [batch], 1 = off
  const float* frequency;         // [batch], 0 = off
  const float* presence;          // [batch], 0 = off
  const uint32_t* bias_offsets;   // [batch + 1]
  const int32_t* bias_ids;        // [bias_offsets[batch]]
  const float* bias_values;       // [bias_offsets[batch]]
  uint32_t* status;               // [batch]
  uint32_t batch;
  uint32_t vocab;
};
static_assert(sizeof(PenaltiesParams) == 104, "PenaltiesParams layout");
static_assert(offsetof(PenaltiesParams, batch) == 96, "PenaltiesParams layout");

// top_logprobs: the n largest raw logits of each row, ordered by (value desc, index asc), with
// their log-softmax values. n <= 20 and n <= vocab (host-checked).
struct TopLogprobsParams {
  const void* logits;  // [rows, vocab] T
  int32_t* ids;        // [rows, n]
  float* logprobs;     // [rows, n]
  uint32_t* status;    // [rows]
  uint32_t rows;
  uint32_t vocab;
  uint32_t n;
  uint32_t pad;
};
static_assert(sizeof(TopLogprobsParams) == 48, "TopLogprobsParams layout");
static_assert(offsetof(TopLogprobsParams, n) == 40, "TopLogprobsParams layout");

// log_softmax_gather: for each of `tokens` rows, log softmax(logits[row])[target[row]] and
// optionally the entropy of softmax(logits[row]).
struct LogSoftmaxGatherParams {
  const void* logits;     // [tokens, vocab] T
  const int32_t* target;  // [tokens]
  float* logprob;         // [tokens]
  float* entropy;         // [tokens] or null
  uint32_t* status;       // [tokens]
  uint32_t tokens;
  uint32_t vocab;
};
static_assert(sizeof(LogSoftmaxGatherParams) == 48, "LogSoftmaxGatherParams layout");
static_assert(offsetof(LogSoftmaxGatherParams, tokens) == 40, "LogSoftmaxGatherParams layout");

// Answer selection over `groups` ragged groups of samples; group g is [offsets[g], offsets[g+1]).
// majority_vote: the most frequent answer id per group (ties to the lowest id) and its count.
struct MajorityVoteParams {
  const uint64_t* answers;  // [offsets[groups]]
  const uint32_t* offsets;  // [groups + 1], non-decreasing (host-checked)
  uint64_t* answer;         // [groups]
  uint32_t* votes;          // [groups]
  uint32_t groups;
  uint32_t pad;
};
static_assert(sizeof(MajorityVoteParams) == 40, "MajorityVoteParams layout");
static_assert(offsetof(MajorityVoteParams, groups) == 32, "MajorityVoteParams layout");

// best_of_n: the sample with the largest reward per group (ties to the lowest sample index).
struct BestOfNParams {
  const float* reward;      // [offsets[groups]]
  const uint32_t* offsets;  // [groups + 1]
  int32_t* index;           // [groups], within the group
  float* best;              // [groups]
  uint32_t groups;
  uint32_t pad;
};
static_assert(sizeof(BestOfNParams) == 40, "BestOfNParams layout");
static_assert(offsetof(BestOfNParams, groups) == 32, "BestOfNParams layout");

// Chain speculative verification: for each of `batch` rows, `k` draft tokens with the draft
// model's distributions and the target model's k + 1 distributions (probabilities, rows summing
// to 1). Outputs the accepted count and the emitted tokens (accepted drafts, then the correction or
// bonus token; -1 after it).
struct ChainSpecParams {
  const int32_t* draft;         // [batch, k]
  const float* draft_probs;     // [batch, k, vocab]; unused (may be null) when greedy
  const float* target_probs;    // [batch, k + 1, vocab]
  const uint64_t* seed;         // [batch]
  const uint64_t* position;     // [batch]
  int32_t* accepted;            // [batch]
  int32_t* emitted;             // [batch, k + 1]
  uint32_t batch;
  uint32_t k;
  uint32_t vocab;
  uint32_t greedy;              // 1: accept while the draft equals the target's argmax
};
static_assert(sizeof(ChainSpecParams) == 72, "ChainSpecParams layout");
static_assert(offsetof(ChainSpecParams, batch) == 56, "ChainSpecParams layout");
static_assert(offsetof(ChainSpecParams, greedy) == 68, "ChainSpecParams layout");

}  // namespace sk
