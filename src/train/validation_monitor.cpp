// Validation by generation, the best model so far (best/) and early stopping.
#include "percetrain/train/validation_monitor.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/record_shards.hpp"
#include "percetrain/eval/evaluation.hpp"
#include "percetrain/eval/wordnet.hpp"
#include "percetrain/generate/generation.hpp"
#include "percetrain/model/decoder.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

using nlohmann::json;

namespace percetrain {

GenerationValidator::GenerationValidator(const JobConfig& config, const std::vector<PairedExample>& valid_examples,
                                         const std::string& tokenizer_path, int64_t model_eos_id)
    : tokenizer_(load_tokenizer(tokenizer_path)),
      stop_strings_(config.generate.stop_strings),
      max_new_tokens_(config.train.eval_generate.max_new_tokens),
      batch_size_(config.generate.batch_size) {
  const int64_t limit = config.train.eval_generate.max_records;
  for (const auto& e : valid_examples) {
    if (limit > 0 && static_cast<int64_t>(prompts_.size()) >= limit) break;
    const auto prompt_length = static_cast<int64_t>(e.personalised.size()) - e.response_length;
    if (prompt_length < 1) continue;  // nothing to condition on
    prompts_.push_back({std::vector<int>(e.personalised.begin(), e.personalised.begin() + prompt_length), e.response_text});
  }
  if (prompts_.empty())
    fail(config.file + ": train.eval_generate", "no validation example has a prompt to generate from",
         "check data.valid_file");
  for (int64_t id : {static_cast<int64_t>(tokenizer_->eos_id()), model_eos_id})
    if (id >= 0 && std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) eos_ids_.push_back(id);
  eval::WordNet::open(eval::resolve_wordnet_dir());  // METEOR's database: fail now, not mid-run
}

GenerationValidator::~GenerationValidator() = default;

GenerationScores GenerationValidator::run(CausalLMImpl& model, Communicator* comm) const {
  const auto t0 = std::chrono::steady_clock::now();
  GenerationOptions options;
  options.max_new_tokens = max_new_tokens_;
  options.temperature = 0.0;  // greedy: the same model always gives the same score
  options.stop_strings = stop_strings_;
  options.eos_ids = eos_ids_;
  Generator generator(model, tokenizer_.get(), options);
  // The one-rank batches, in order; with several ranks each takes a contiguous stretch of them, so
  // that every record is decoded in the batch it has on one rank (the same logits, the same text).
  std::vector<size_t> starts;
  std::vector<int64_t> costs;
  for (size_t start = 0; start < prompts_.size(); start += static_cast<size_t>(batch_size_)) {
    starts.push_back(start);
    int64_t cost = 0;
    for (size_t i = start; i < std::min(prompts_.size(), start + static_cast<size_t>(batch_size_)); ++i)
      cost += static_cast<int64_t>(prompts_[i].ids.size()) + max_new_tokens_;
    costs.push_back(cost);
  }
  const bool several = comm && comm->distributed();
  const auto bounds = split_by_cost(costs, several ? comm->world_size() : 1);
  const int rank = several ? comm->rank() : 0;
  eval::Join join;
  for (size_t b = bounds[static_cast<size_t>(rank)]; b < bounds[static_cast<size_t>(rank) + 1]; ++b) {
    const size_t start = starts[b];
    std::vector<GenerationRequest> batch;
    for (size_t i = start; i < std::min(prompts_.size(), start + static_cast<size_t>(batch_size_)); ++i)
      batch.push_back({std::to_string(i), prompts_[i].ids, ""});
    for (const auto& r : generator.generate(batch)) {
      const size_t i = std::stoul(r.id);
      join.examples.push_back({r.id, r.prediction, prompts_[i].reference});
    }
  }
  // Means over all records; with several ranks, each rank's sums added over the ranks (equal to
  // the one-rank means up to the order of the additions).
  GenerationScores s;
  s.records = static_cast<int64_t>(join.examples.size());
  if (!join.examples.empty()) {
    const eval::EvalReport report = eval::evaluate(join, eval::EvalOptions{});
    s.rougeL = report.means.at("rougeL");
    s.meteor = report.means.at("meteor");
  }
  if (several) {
    const double n = static_cast<double>(s.records);
    std::vector<double> sums = {s.rougeL * n, s.meteor * n, n};
    comm->all_reduce(sums);
    s.records = static_cast<int64_t>(sums[2]);
    s.rougeL = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
    s.meteor = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

BestTracker::BestTracker(BestMetric metric, int64_t patience)
    : metric_(metric), key_(metric == BestMetric::kNone ? "" : enum_name(metric)), patience_(patience) {}

bool BestTracker::higher_is_better() const {
  return metric_ == BestMetric::kValidRougeL || metric_ == BestMetric::kValidMeteor;
}

std::vector<int64_t> BestTracker::state() const {
  int64_t best_bits = 0;
  std::memcpy(&best_bits, &best_, sizeof(best_bits));
  return {has_best_ ? 1 : 0, best_bits, best_step_, since_best_};
}

void BestTracker::set_state(const std::vector<int64_t>& state) {
  has_best_ = state.at(0) != 0;
  std::memcpy(&best_, &state.at(1), sizeof(best_));
  best_step_ = state.at(2);
  since_best_ = state.at(3);
}

bool BestTracker::observe(const json& row) {
  if (!active() || !row.contains(key_) || !row[key_].is_number()) return false;
  const double value = row[key_].get<double>();
  const bool better = !has_best_ || (higher_is_better() ? value > best_ : value < best_);
  if (better) {
    has_best_ = true;
    best_ = value;
    best_step_ = row.value("step", int64_t{0});
    since_best_ = 0;
  } else {
    ++since_best_;
  }
  return better;
}

ValidationMonitor::ValidationMonitor(const JobConfig& config, RunDirectory* run, Communicator& comm,
                                     const std::vector<PairedExample>& valid_examples,
                                     const std::string& tokenizer_path, const std::string& metrics_path,
                                     int64_t model_eos_id, ModelWriter write_model)
    : run_(run),
      comm_(comm),
      write_model_(std::move(write_model)),
      every_(config.train.eval_generate.every),
      tracker_(config.train.best_metric, config.train.early_stopping_patience) {
  if ((every_ > 0 || tracker_.active()) && valid_examples.empty())
    fail(config.file + (every_ > 0 ? ": train.eval_generate.every" : ": train.best_metric"),
         "needs validation examples, and there are none", "set data.valid_file");
  if (every_ > 0) generator_ = std::make_unique<GenerationValidator>(config, valid_examples, tokenizer_path, model_eos_id);
  // The rows of the steps the resumed checkpoint has seen (MetricsLog trimmed the rest), in order:
  // rank 0 reads them, and every rank takes its tracker's state, so that all decide alike.
  const auto state = comm.decided_by_root(
      [&]() -> std::vector<int64_t> {
        std::ifstream in(metrics_path);
        for (std::string line; std::getline(in, line);) {
          const json row = json::parse(line, nullptr, false);
          if (!row.is_discarded()) tracker_.observe(row);
        }
        return tracker_.state();
      },
      BestTracker::kStateSize, "read the run's metrics.jsonl");
  tracker_.set_state(state);
}

ValidationMonitor::~ValidationMonitor() = default;

void ValidationMonitor::observe(const json& row) { improved_ |= tracker_.observe(row); }

bool ValidationMonitor::after_step(CausalLMImpl& model, int64_t step, bool last, MetricsLog* metrics,
                                   ProgressLine& progress) {
  if (generator_ && (step % every_ == 0 || last)) {
    const bool was_training = model.is_training();
    model.eval();
    const GenerationScores s = generator_->run(model, &comm_);
    if (was_training) model.train();
    const json row = {{"step", step},
                      {"valid_rougeL", s.rougeL},
                      {"valid_meteor", s.meteor},
                      {"generate_records", s.records},
                      {"generate_seconds", s.seconds}};
    if (metrics) metrics->append(row);
    observe(row);  // the same numbers on every rank
    char line[200];
    std::snprintf(line, sizeof(line), "valid generation at step %lld: ROUGE-L %.4f | METEOR %.4f (%lld records, greedy, %.1f s)",
                  (long long)step, s.rougeL, s.meteor, (long long)s.records, s.seconds);
    progress.line(line);
  }
  if (improved_) {
    if (run_) save_best(model, step);  // rank 0; the replicas are equal
    comm_.barrier();                    // best/ is published before any rank goes on (or stops)
    improved_ = false;
  }
  return tracker_.exhausted();
}

void ValidationMonitor::save_best(CausalLMImpl& model, int64_t step) {
  const std::string staging = run_->begin_folder("best");
  write_model_(model, staging);
  const json about = {{"metric", tracker_.key()}, {"value", tracker_.best()}, {"step", step}};
  write_file_atomic((std::filesystem::path(staging) / "best_metric.json").string(), about.dump(2) + "\n",
                    "the best model's metric");
  run_->publish_folder("best");
}

std::string ValidationMonitor::stop_reason() const {
  char text[240];
  std::snprintf(text, sizeof(text), "early stopping: %s has not improved for %lld evaluations (best %.6g at step %lld)",
                tracker_.key().c_str(), (long long)tracker_.since_best(), tracker_.best(), (long long)tracker_.best_step());
  return text;
}

}  // namespace percetrain
