// `percetrain score`: PIR and PerCE weights of every response token of a dataset, computed by
// the paired pass training uses (run_paired_pass) under inference mode, streamed to JSONL.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/report/score_report.hpp"

namespace percetrain {

class AdapterLibrary;
class CausalLMImpl;
class Communicator;
class Tokenizer;
struct PairDetail;

struct ScoreOptions {
  std::string out;                 // JSONL, written as OUT.tmp and renamed at the end
  std::string html;                // "" = no HTML report
  int64_t html_records = 50;       // records shown in the HTML report
  bool resume = false;             // keep the complete lines of OUT.tmp and continue after them
  int64_t micro_batch_size = 0;    // examples per forward; 0 = 2 x train.micro_batch_size
  int64_t window = 64;             // records batched together (sorted by length), in file order
  size_t top_tokens = 5;           // per-record top tokens in the JSONL
  bool progress = true;
  std::string source;              // shown in the HTML header (data file, model)
  int64_t stop_after_records = 0;  // testing, one rank: stop (leaving OUT.tmp) once this many are written
  // run_scoring: a PEFT LoRA adapter folder applied to the model (unmerged), or a folder of
  // per-user adapters (AdapterLibrary) from which each record gets its user's; records of users
  // without one are scored on the base model. At most one of the two.
  std::string adapter, adapters;
};

struct ScoreResult {
  int64_t records = 0;           // records in the output
  int64_t scored_now = 0;        // records scored by this run (not taken from OUT.tmp)
  int64_t response_tokens = 0;   // scored by this run
  int64_t processed_tokens = 0;  // non-padding tokens through forward passes (both sequences)
  double seconds = 0.0;          // forward passes and output, this run
  double tokens_per_s = 0.0;     // processed_tokens / seconds
  std::string out, summary_file, html;
  bool finished = false;         // false when stopped by stop_after_records
  int64_t records_without_adapter = 0;  // with per-user adapters: records scored on the base
  int rank = 0, world_size = 1;  // of the job; only rank 0 holds summary_file and html
};

// The visiting order: windows of `window` examples in file order, each cut into micro-batches
// sorted by length. It depends only on the examples, so a resumed run batches (and so rounds)
// exactly like an uninterrupted one. With `groups` (one key per example, e.g. the adapter it
// needs) the plan visits the groups in order of first appearance and no micro-batch mixes two.
std::vector<std::vector<size_t>> scoring_plan(const std::vector<PairedExample>& examples,
                                              int64_t micro_batch_size, int64_t window,
                                              const std::vector<std::string>& groups = {});

// Scores one micro-batch (`indices` into `examples`) with run_paired_pass and a PerCE objective
// using config.objective's clip bounds, under inference mode. `details` (may be null) gives the
// profile items shown in reports. Results are in the order of `indices`.
std::vector<RecordScore> score_micro_batch(CausalLMImpl& model, const Tokenizer& tokenizer, const JobConfig& config,
                                           const std::vector<PairedExample>& examples,
                                           const std::vector<PairDetail>* details, const std::vector<size_t>& indices,
                                           int64_t* processed_tokens = nullptr);

// Scores `examples` into options.out (+ OUT.summary.json, + the HTML report when asked), in
// file order. With `adapters` each record is scored with its user's adapter (swapped in group by
// group), or on the base when its user has none; a record without a user is an error.
// With a `comm` of several ranks, each rank scores a contiguous stretch of the micro-batches of
// scoring_plan (the same micro-batches as on one rank, so the same bytes) into its part file
// (dist/record_shards.hpp; --resume continues each), and rank 0 merges the parts into OUT in file
// order and writes the summary and the report over all records; the others return after the merge.
ScoreResult score_examples(CausalLMImpl& model, const Tokenizer& tokenizer, const JobConfig& config,
                           const std::vector<PairedExample>& examples, const std::vector<PairDetail>& details,
                           const ScoreOptions& options, AdapterLibrary* adapters = nullptr,
                           Communicator* comm = nullptr);

// The whole job: model (created first for demo configs), tokenizer, data through the training
// pipeline, then score_examples; on the ranks torchrun started, if it did.
ScoreResult run_scoring(const JobConfig& config, const std::string& data_file, const std::string& golds_file,
                        const ScoreOptions& options);

// OUT.summary.json for OUT ("scores.jsonl" -> "scores.summary.json").
std::string summary_path_for(const std::string& out);

}  // namespace percetrain
