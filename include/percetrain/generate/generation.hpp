// Decoding responses: the sampling filters, the batched KV-cache decoding loop with its stop
// conditions, and the predictions file (streamed to OUT.tmp, renamed when complete, resumable).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace percetrain {

class CausalLMImpl;
class Tokenizer;

struct GenerationOptions {
  int64_t max_new_tokens = 512;
  double temperature = 0.4;  // 0 = greedy (argmax of the logits)
  double top_p = 1.0;        // 1 = off
  int64_t top_k = 0;         // 0 = off
  uint64_t seed = 0;
  std::vector<std::string> stop_strings;  // needs a tokenizer: checked on the decoded text
  std::vector<int64_t> eos_ids;           // a row stops after generating any of these
  // false: every step recomputes the whole prefix with CausalLMImpl::hidden_states (the
  // reference the cache is tested against, and the baseline of the speed comparison).
  bool use_cache = true;
  std::string source = "the model";  // names the model (and adapter) in the non-finite logits error
};

struct GenerationRequest {
  std::string id;
  std::vector<int> prompt;  // token ids, not empty
  std::string group;        // write_predictions: requests of one group decode together (e.g. one adapter)
};

struct GenerationResult {
  std::string id;
  std::vector<int> tokens;   // generated ids; a stopping EOS is included
  std::string prediction;    // decoded text without special tokens, cut before a stop string
  std::string stop_reason;   // "eos" | "stop_string" | "length"
};

struct GenerationStats {
  int64_t sequences = 0, prompt_tokens = 0, generated_tokens = 0;
  // The first token of a batch comes from the prefill (the prompt's forward); the rest from
  // decode steps, which are what the KV cache speeds up.
  int64_t decode_tokens = 0;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  double decode_tokens_per_second() const {
    return decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0.0;
  }
};

// Logit filters with Hugging Face's semantics; filtered entries become -inf. logits: [B, V].
// top_k_filter: keeps the entries >= the k-th largest of each row (ties kept); k <= 0 or
// k >= V keeps everything. top_p_filter (TopPLogitsWarper): keeps the smallest set of most
// likely tokens whose probability reaches p (computed as HF does: drop the tokens whose
// ascending cumulative probability is <= 1 - p), always at least the most likely token.
at::Tensor top_k_filter(const at::Tensor& logits, int64_t k);
at::Tensor top_p_filter(const at::Tensor& logits, double p);
// Temperature scaling, then top-k, then top-p (the order of HF's warpers) -> fp32 [B, V].
at::Tensor sampling_logits(const at::Tensor& logits, double temperature, int64_t top_k, double top_p);

// Samples one id per row of fp32 `filtered_logits` [B, V] (on any device) with uniform draws
// `u` in [0, 1), one per row, by inverting the cumulative distribution in fp64 on the CPU.
std::vector<int64_t> sample_rows(const at::Tensor& filtered_logits, const std::vector<double>& u);

class Generator {
 public:
  // `tokenizer` decodes predictions and checks stop strings; it may be null when neither is
  // needed (benchmarks; tokens only). The model must stay alive while the generator is used.
  Generator(CausalLMImpl& model, const Tokenizer* tokenizer, GenerationOptions options);

  // Decodes one left-padded batch -> one result per request, in order. Each request samples
  // from its own stream seeded by (seed, id), and padded positions never reach real ones, so a
  // request's random draws do not depend on the batch it is decoded in, and its tokens do not
  // either as long as its logits come out the same. They are computed in a [rows, padded length]
  // batch, and matrix kernels may round a row differently for another shape (batch size, left
  // padding, rows that finished): where that moves a sampling boundary past a draw (or breaks a
  // greedy argmax tie), the record goes on differently from that token. Measured on the CPU
  // (LibTorch 1.13, demo model, temperature 1): 0 of 2,048 records differ between batch sizes.
  std::vector<GenerationResult> generate(const std::vector<GenerationRequest>& batch);

  const GenerationOptions& options() const { return options_; }
  const GenerationStats& stats() const { return stats_; }

 private:
  CausalLMImpl& model_;
  const Tokenizer* tokenizer_;
  GenerationOptions options_;
  GenerationStats stats_;
};

// One predictions line (no newline): {"id", "prediction", "generated_tokens", "stop_reason"}.
std::string prediction_json_line(const GenerationResult& result);

struct PredictionRunOptions {
  int64_t batch_size = 8;
  // Continue from OUT.tmp: its complete lines are kept and their ids skipped. Without it an
  // existing OUT.tmp is an error rather than silently thrown away.
  bool resume = false;
  // Called after each batch is written and flushed (progress; tests interrupt by throwing).
  std::function<void(int64_t done, int64_t total)> on_batch;
  // Called before each batch with its requests' group (GenerationRequest::group), e.g. to put the
  // group's adapter on the model.
  std::function<void(const std::string& group)> before_batch;
};

struct PredictionRunSummary {
  int64_t total = 0;      // requests
  int64_t resumed = 0;    // taken from an earlier run's OUT.tmp
  int64_t generated = 0;  // decoded by this run
};

// The batches write_predictions decodes `requests` in (indices into it): the groups one after
// another in order of first appearance, each cut into batches of at most `batch_size` in request
// order. Several ranks split this list, so that each record meets the batch it has on one rank.
std::vector<std::vector<size_t>> prediction_batches(const std::vector<GenerationRequest>& requests,
                                                   int64_t batch_size);

// Decodes `requests` in order, batch by batch, appending one line per request to
// `out_file`.tmp (flushed after every batch), and renames it to `out_file` when all are done.
// With groups, the groups are decoded one after another (in order of first appearance), no batch
// mixes two, and `out_file` still lists the predictions in the order of `requests`.
PredictionRunSummary write_predictions(Generator& generator, const std::vector<GenerationRequest>& requests,
                                       const std::string& out_file, const PredictionRunOptions& options);

}  // namespace percetrain
