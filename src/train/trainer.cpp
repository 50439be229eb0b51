// The training loop: AdamW with a warmup schedule, exact gradient accumulation, atomic
// checkpoints that resume bit for bit, validation, metrics.jsonl and a progress line.
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/trainer.hpp"

#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {

MicroBatchPass run_micro_batch(CausalLMImpl& model, const Objective& objective, const PairedBatch& batch,
                               int64_t chunk_tokens, bool always_counterfactual) {
  MicroBatchPass pass;
  ResponseTokens& t = pass.tokens;
  t.sequence = batch.sequence;
  t.num_sequences = static_cast<int64_t>(batch.examples.size());

  // Next-token log-probs of the response tokens: position t of the hidden states predicts t + 1.
  auto response_logprobs = [&](const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& select,
                               torch::Tensor* entropy) {
    const int64_t T = ids.size(1);
    auto hidden = model.hidden_states(ids, mask, position_ids_from_mask(mask));
    return model.selected_logprobs(hidden.slice(1, 0, T - 1), ids.slice(1, 1, T), select, chunk_tokens, entropy);
  };

  torch::Tensor entropy;
  t.logp_personalised = response_logprobs(batch.personalised_ids, batch.personalised_mask,
                                          batch.personalised_select,
                                          objective.needs_entropy() ? &entropy : nullptr);
  if (objective.needs_entropy()) t.entropy = entropy.detach();
  if (objective.needs_counterfactual() || always_counterfactual) {
    torch::Tensor without;
    {
      torch::InferenceMode inference;
      without = response_logprobs(batch.counterfactual_ids, batch.counterfactual_mask,
                                  batch.counterfactual_select, nullptr);
    }
    // Inference tensors may not be saved for backward; a normal copy may.
    t.logp_counterfactual = without.clone();
  }
  pass.terms = objective.terms(t);
  return pass;
}

MasterWeights::MasterWeights(CausalLMImpl& model, bool wanted) {
  for (const auto& p : model.named_parameters()) {
    names_.push_back(p.key());
    model_.push_back(p.value());
  }
  const auto type = model_.front().scalar_type();
  active_ = wanted && (type == torch::kBFloat16 || type == torch::kFloat16);
  if (!active_) {
    master_ = model_;
    return;
  }
  torch::NoGradGuard no_grad;
  for (const auto& p : model_) master_.push_back(p.detach().to(torch::kFloat32).clone().requires_grad_(true));
}

std::vector<std::pair<std::string, torch::Tensor>> MasterWeights::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], master_[i]);
  return out;
}

void MasterWeights::release_grads() {
  for (auto& p : model_) p.mutable_grad() = torch::Tensor();
  if (active_)
    for (auto& p : master_) p.mutable_grad() = torch::Tensor();
}

void MasterWeights::grads_to_master() {
  if (!active_) return;
  // One tensor at a time, so that both copies of all gradients never coexist.
  for (size_t i = 0; i < model_.size(); ++i) {
    auto& grad = model_[i].mutable_grad();
    master_[i].mutable_grad() = grad.defined() ? grad.to(torch::kFloat32) : torch::Tensor();
    grad = torch::Tensor();
  }
}

void MasterWeights::master_to_model() {
  if (!active_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) {
    model_[i].copy_(master_[i]);
    // Released until the next grads_to_master, so that the next backward's bf16 gradients do not
    // sit beside last step's fp32 ones: 18 bytes per parameter at the peak instead of 20.
    master_[i].mutable_grad() = torch::Tensor();
  }
}

void MasterWeights::save(const std::string& checkpoint_dir) const {
  if (active_) torch::save(master_, (fs::path(checkpoint_dir) / "master_weights.pt").string());
}

void MasterWeights::load(const std::string& checkpoint_dir) {
  if (!active_) return;
  const fs::path file = fs::path(checkpoint_dir) / "master_weights.pt";
  if (!fs::exists(file))
    fail(file.string(), "is missing: the checkpoint was written without fp32 master weights",
         "resume with the model.dtype and train.master_weights of the run that wrote it");
  std::vector<torch::Tensor> saved;
  torch::load(saved, file.string());
  if (saved.size() != master_.size()) fail(file.string(), "holds a different number of tensors than the model");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < master_.size(); ++i) master_[i].copy_(saved[i]);
}

double learning_rate_at(const TrainSection& train, int64_t step, int64_t total_steps) {
  const int64_t warmup = train.warmup_steps > 0
                             ? train.warmup_steps
                             : static_cast<int64_t>(std::llround(train.warmup_ratio * total_steps));
  if (step < warmup) return train.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (train.schedule == "constant") return train.lr;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) /
                                            static_cast<double>(std::max<int64_t>(1, total_steps - warmup)));
  const double floor = train.min_lr_ratio;
  const double decay = train.schedule == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return train.lr * (floor + (1.0 - floor) * decay);
}

void ensure_model_folder(const JobConfig& config) {
  if (fs::exists(fs::path(config.model.path) / "config.json")) return;
  if (config.model.init_arch.empty())
    fail(config.model.path, "is not a Hugging Face model folder (no config.json)",
         "set model.path to a model folder, or model.init_arch to create a random one");
  const std::string tokenizer = config.tokenizer.path.empty() ? config.model.path : config.tokenizer.path;
  write_random_model(config.model.init_arch, config.model.init_preset, tokenizer, config.model.path,
                     config.model.init_seed);
}

namespace {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

double quantile(std::vector<float> values, double q) {
  if (values.empty()) return 0.0;
  const size_t k = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}


std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "checkpoint-%06lld", static_cast<long long>(step));
  return buf;
}

// Complete checkpoints in `dir` (those with a trainer_state.json), by step.
std::map<int64_t, fs::path> list_checkpoints(const fs::path& dir) {
  std::map<int64_t, fs::path> found;
  if (!fs::is_directory(dir)) return found;
  static const std::regex pattern("checkpoint-([0-9]+)");
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, m, pattern) &&
        fs::exists(entry.path() / "trainer_state.json"))
      found[std::stoll(m[1])] = entry.path();
  }
  return found;
}

// Per-step statistics accumulated over micro-batches.
struct StepStats {
  double loss = 0.0;      // the normalised objective loss of the step
  double ce_sum = 0.0;    // sum of -log p over response tokens
  int64_t tokens = 0;     // response tokens
  int64_t processed = 0;  // all non-padding tokens through a forward
  std::vector<float> pir;
  int64_t clipped_low = 0, clipped_high = 0;
};

void add_pass_stats(StepStats& stats, const MicroBatchPass& pass, const ObjectiveSection& objective) {
  stats.ce_sum += -pass.tokens.logp_personalised.detach().sum().item<double>();
  if (pass.terms.pir.defined()) {
    auto pir = pass.terms.pir.to(torch::kCPU, torch::kFloat32).contiguous();
    stats.pir.insert(stats.pir.end(), pir.data_ptr<float>(), pir.data_ptr<float>() + pir.numel());
    stats.clipped_low += (pir < objective.clip_min).sum().item<int64_t>();
    stats.clipped_high += (pir > objective.clip_max).sum().item<int64_t>();
  }
}

struct Validation {
  double ce = 0.0, objective = 0.0, pir_mean = 0.0;
  int64_t tokens = 0;
};

Validation validate(CausalLMImpl& model, const Objective& objective, const std::vector<PairedExample>& examples,
                    const JobConfig& config, int64_t pad_id, const torch::Device& device) {
  torch::InferenceMode inference;
  Validation v;
  double pir_sum = 0.0, objective_sum = 0.0, ce_sum = 0.0;
  const auto all = epoch_steps(examples.size(), static_cast<int64_t>(examples.size()), 0, 0, false);
  for (const auto& step : all)
    for (const auto& micro : micro_batches(step, examples, config.train.micro_batch_size)) {
      auto batch = collate_paired(examples, micro, pad_id, device, true);
      auto pass = run_micro_batch(model, objective, batch, config.objective.chunk_tokens, true);
      ce_sum += -pass.tokens.logp_personalised.sum().item<double>();
      objective_sum += pass.terms.token_loss.sum().item<double>();
      pir_sum += (pass.tokens.logp_personalised - pass.tokens.logp_counterfactual).sum().item<double>();
      v.tokens += batch.response_tokens;
    }
  const double n = static_cast<double>(std::max<int64_t>(1, v.tokens));
  v.ce = ce_sum / n;
  v.objective = objective_sum / n;
  v.pir_mean = pir_sum / n;
  return v;
}

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled), live_(enabled && ::isatty(2)) {}
  void update(const std::string& text, bool force_line) {
    if (!enabled_) return;
    if (live_) {
      std::fprintf(stderr, "\r%-100s", text.c_str());
      if (force_line) std::fprintf(stderr, "\n");
    } else if (force_line) {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
    std::fflush(stderr);
  }
  void line(const std::string& text) {
    if (!enabled_) return;
    std::fprintf(stderr, live_ ? "\r%-100s\n" : "%s\n", text.c_str());
    std::fflush(stderr);
  }

 private:
  bool enabled_, live_;
};

}  // namespace

TrainSummary train_on_examples(const JobConfig& config, const TrainOptions& options,
                               const std::vector<PairedExample>& train_examples,
                               const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                               int64_t pad_id) {
  const TrainSection& train = config.train;
  const fs::path out_dir(config.output.dir);
  fs::create_directories(out_dir);
  ProgressLine progress(options.progress);
  if (train_examples.empty()) fail(config.file + ": data.train_file", "holds no usable training examples");
  ensure_model_folder(config);
  const auto device = parse_device(config.model.device);
  const auto dtype = parse_dtype(config.model.dtype, device, "model.dtype");
  if (dtype == torch::kFloat16)
    fail(config.file + ": model.dtype", "float16 training needs loss scaling, which percetrain does not do",
         "use bfloat16: the same memory with float32's exponent range");
  int64_t train_response_tokens = 0;
  for (const auto& e : train_examples) train_response_tokens += scored_response_tokens(e);

  const int64_t steps_per_epoch =
      (static_cast<int64_t>(train_examples.size()) + train.batch_size - 1) / train.batch_size;
  const int64_t total_steps = train.max_steps > 0 ? train.max_steps : train.epochs * steps_per_epoch;

  // ---- resume point ------------------------------------------------------------------------
  int64_t start_step = 0;
  fs::path resume_from;
  if (options.resume || train.resume == "auto") {
    auto checkpoints = list_checkpoints(out_dir);
    if (!checkpoints.empty()) {
      start_step = checkpoints.rbegin()->first;
      resume_from = checkpoints.rbegin()->second;
    } else if (options.resume) {
      fail(out_dir.string(), "--resume was given but there is no checkpoint to resume from");
    }
  }
  const std::string model_source = resume_from.empty() ? config.model.path : resume_from.string();
  LoadedModel loaded = load_causal_lm(model_source, device, dtype);
  CausalLMImpl& model = *loaded.model;
  model.train();
  model.set_gradient_checkpointing(train.gradient_checkpointing);

  auto objective = make_objective(config.objective);

  // Mixed precision: a bf16 (or fp16) model computes forward and backward; the optimizer updates
  // fp32 master copies and writes them back. Without them, updates below bf16's resolution
  // (8 mantissa bits: lr 5e-6 on a weight of 0.02 is one part in 4000) would round to nothing.
  MasterWeights masters(model, train.master_weights);
  if (!resume_from.empty()) masters.load(resume_from.string());

  // AdamW; norms and biases are not decayed.
  std::vector<torch::Tensor> decayed, not_decayed;
  for (const auto& p : masters.named_parameters()) {
    const std::string& name = p.first;
    const bool is_norm_or_bias = name.find("norm") != std::string::npos || p.second.dim() < 2;
    (is_norm_or_bias ? not_decayed : decayed).push_back(p.second);
  }
  auto adamw = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(train.lr)
                                                            .betas({train.beta1, train.beta2})
                                                            .eps(train.adam_eps)
                                                            .weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, adamw(train.weight_decay));
  groups.emplace_back(not_decayed, adamw(0.0));
  FusedAdamW optimizer(groups, torch::optim::AdamWOptions(train.lr));
  if (!resume_from.empty()) torch::load(optimizer, (resume_from / "optimizer.pt").string());
  reset_peak_memory(device);

  // metrics.jsonl keeps only the steps the resumed state has seen.
  const fs::path metrics_path = out_dir / "metrics.jsonl";
  {
    std::vector<std::string> kept;
    if (start_step > 0 && fs::exists(metrics_path)) {
      std::ifstream in(metrics_path);
      std::string line;
      while (std::getline(in, line)) {
        auto j = json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= start_step) kept.push_back(line);
      }
    }
    std::string text;
    for (const auto& l : kept) text += l + "\n";
    write_file_atomic(metrics_path.string(), text);
  }
  std::ofstream metrics(metrics_path, std::ios::app);
  write_file_atomic((out_dir / "job_config.json").string(), job_config_to_json(config));

  std::string summary_line = "train: " + std::to_string(train_examples.size()) + " examples (" +
                             std::to_string(train_response_tokens) + " response tokens), " +
                             std::to_string(total_steps) + " steps of " + std::to_string(train.batch_size) +
                             " (micro-batches of " + std::to_string(train.micro_batch_size) + "), objective " +
                             objective->name() + ", " + loaded.config.model_type + " on " + device.str() +
                             " in " + dtype_name(dtype) + (masters.active() ? " (fp32 master weights)" : "");
  if (start_step > 0) summary_line += ", resuming after step " + std::to_string(start_step);
  progress.line(summary_line);

  auto save_checkpoint = [&](int64_t step) {
    const fs::path final_dir = out_dir / checkpoint_name(step);
    const fs::path staging = out_dir / (checkpoint_name(step) + ".partial");
    SaveOptions save;
    save.tokenizer_source = tokenizer_path;
    save_causal_lm(model, staging.string(), save);
    torch::save(optimizer, (staging / "optimizer.pt").string());
    masters.save(staging.string());
    json state = {{"step", step},
                  {"total_steps", total_steps},
                  {"steps_per_epoch", steps_per_epoch},
                  {"seed", train.seed},
                  {"objective", objective->name()},
                  {"train_examples", train_examples.size()}};
    write_file_atomic((staging / "trainer_state.json").string(), state.dump(2) + "\n");
    fs::remove_all(final_dir);
    fs::rename(staging, final_dir);
    auto checkpoints = list_checkpoints(out_dir);
    while (static_cast<int64_t>(checkpoints.size()) > train.keep_last) {
      fs::remove_all(checkpoints.begin()->second);
      checkpoints.erase(checkpoints.begin());
    }
    return final_dir.string();
  };

  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = start_step;
  const auto t_start = std::chrono::steady_clock::now();
  int64_t tokens_since_start = 0;
  std::vector<std::vector<size_t>> epoch_plan;
  int64_t planned_epoch = -1;

  for (int64_t step = start_step; step < total_steps; ++step) {
    const int64_t epoch = step / steps_per_epoch;
    if (epoch != planned_epoch) {
      epoch_plan = epoch_steps(train_examples.size(), train.batch_size, train.seed, epoch);
      planned_epoch = epoch;
    }
    const auto& step_examples = epoch_plan[step % steps_per_epoch];
    const double lr = learning_rate_at(train, step, total_steps);
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    const auto t_step = std::chrono::steady_clock::now();
    masters.release_grads();
    int64_t step_tokens = 0;
    for (size_t i : step_examples) step_tokens += scored_response_tokens(train_examples[i]);
    const int64_t step_sequences = static_cast<int64_t>(step_examples.size());

    StepStats stats;
    for (const auto& micro : micro_batches(step_examples, train_examples, train.micro_batch_size)) {
      auto batch = collate_paired(train_examples, micro, pad_id, device, objective->needs_counterfactual());
      if (batch.response_tokens == 0) continue;
      auto pass = run_micro_batch(model, *objective, batch, config.objective.chunk_tokens);
      auto scale = normalisation_scale(config.objective.normalize, batch.sequence, batch.examples.size(),
                                       step_tokens, step_sequences)
                       .to(pass.terms.token_loss.scalar_type());
      auto loss = (pass.terms.token_loss * scale).sum();
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        const auto checkpoints = list_checkpoints(out_dir);
        fail("train step " + std::to_string(step + 1), "the loss is not finite (" + std::to_string(loss_value) + ")",
             checkpoints.empty() ? "no checkpoint was written yet; lower train.lr or check the data"
                                 : "the last good checkpoint is " + checkpoints.rbegin()->second.string() +
                                       "; lower train.lr and resume");
      }
      loss.backward();
      stats.loss += loss_value;
      stats.tokens += batch.response_tokens;
      stats.processed += batch.personalised_tokens + batch.counterfactual_tokens;
      add_pass_stats(stats, pass, config.objective);
    }

    masters.grads_to_master();
    const auto& params = masters.parameters();
    double grad_norm = 0.0;
    if (train.grad_clip > 0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(params, train.grad_clip);
    } else {
      for (const auto& p : params)
        if (p.grad().defined()) grad_norm += p.grad().pow(2).sum().item<double>();
      grad_norm = std::sqrt(grad_norm);
    }
    optimizer.step();
    masters.master_to_model();

    const double step_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_step).count();
    tokens_since_start += stats.processed;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const int64_t done = step + 1;
    summary.steps_done = done;
    summary.last_loss = stats.loss;

    double pir_mean = 0.0;
    for (float v : stats.pir) pir_mean += v;
    if (!stats.pir.empty()) pir_mean /= static_cast<double>(stats.pir.size());
    const double tokens_per_s = elapsed > 0 ? tokens_since_start / elapsed : 0.0;
    const double eta = elapsed / static_cast<double>(done - start_step) * static_cast<double>(total_steps - done);

    if (done % train.log_every == 0 || done == total_steps) {
      json m = {{"step", done},
                {"epoch", static_cast<double>(done) / static_cast<double>(steps_per_epoch)},
                {"loss", stats.loss},
                {"ce", stats.tokens ? stats.ce_sum / stats.tokens : 0.0},
                {"lr", lr},
                {"grad_norm", grad_norm},
                {"response_tokens", stats.tokens},
                {"tokens", stats.processed},
                {"step_seconds", step_seconds},
                {"tokens_per_s", stats.processed / std::max(1e-9, step_seconds)},
                {"peak_memory_mib", peak_memory_mib(device)}};
      if (!stats.pir.empty()) {
        const double n = static_cast<double>(stats.pir.size());
        m["pir_mean"] = pir_mean;
        m["pir_p10"] = quantile(stats.pir, 0.10);
        m["pir_p50"] = quantile(stats.pir, 0.50);
        m["pir_p90"] = quantile(stats.pir, 0.90);
        m["clipped_low"] = stats.clipped_low / n;
        m["clipped_high"] = stats.clipped_high / n;
      }
      metrics << m.dump() << "\n";
      metrics.flush();
    }
    char text[256];
    std::snprintf(text, sizeof(text), "step %lld/%lld | loss %.4f | ce %.4f | pir %+.3f | lr %.2e | %.0f tok/s | ETA %s",
                  (long long)done, (long long)total_steps, stats.loss, stats.tokens ? stats.ce_sum / stats.tokens : 0.0,
                  pir_mean, lr, tokens_per_s, format_duration(eta).c_str());
    progress.update(text, done % train.log_every == 0 && !::isatty(2));

    const bool end_of_epoch = done % steps_per_epoch == 0;
    const bool last = done == total_steps;
    if (!valid_examples.empty() &&
        ((train.eval_every > 0 && done % train.eval_every == 0) || (train.eval_every == 0 && end_of_epoch) || last)) {
      model.eval();
      auto v = validate(model, *objective, valid_examples, config, pad_id, device);
      model.train();
      json m = {{"step", done}, {"valid_ce", v.ce}, {"valid_loss", v.objective}, {"valid_pir_mean", v.pir_mean},
                {"valid_response_tokens", v.tokens}};
      metrics << m.dump() << "\n";
      metrics.flush();
      char line[200];
      std::snprintf(line, sizeof(line), "valid at step %lld: ce %.4f | %s loss %.4f | mean PIR %+.4f",
                    (long long)done, v.ce, objective->name().c_str(), v.objective, v.pir_mean);
      progress.line(line);
    }
    const bool stop_now = options.stop_after_steps > 0 && done >= options.stop_after_steps && !last;
    if ((train.save_every > 0 && done % train.save_every == 0) || last || stop_now)
      summary.last_checkpoint = save_checkpoint(done);
    if (stop_now) {
      progress.line("stopped after step " + std::to_string(done) + "; continue with --resume");
      return summary;
    }
  }

  SaveOptions save;
  save.tokenizer_source = tokenizer_path;
  summary.final_model_dir = (out_dir / "final").string();
  save_causal_lm(model, summary.final_model_dir, save);
  progress.line("done: " + std::to_string(total_steps) + " steps; model in " + summary.final_model_dir +
                ", metrics in " + metrics_path.string());
  return summary;
}

}  // namespace percetrain

namespace percetrain {

TrainSummary run_training(const JobConfig& config, const TrainOptions& options) {
  if (config.data.train_file.empty()) fail(config.file + ": data.train_file", "is required for training");
  ensure_model_folder(config);
  const std::string tokenizer_path = config.tokenizer.path.empty() ? config.model.path : config.tokenizer.path;
  auto tokenizer = load_tokenizer(tokenizer_path);
  const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

  auto load = [&](const std::string& file, const std::string& golds, const char* split) {
    DatasetStats stats;
    auto examples = load_paired_examples(config.data, file, golds, *tokenizer, &stats);
    if (options.progress) {
      std::fprintf(stderr, "%s: %lld records -> %lld examples (%lld skipped, %lld with the profile cut, %lld with the input cut)\n",
                   split, (long long)stats.records, (long long)stats.examples, (long long)stats.skipped,
                   (long long)stats.truncated_profile, (long long)stats.truncated_input);
    }
    return examples;
  };
  auto train_examples = load(config.data.train_file, config.data.train_golds_file, config.data.train_file.c_str());
  std::vector<PairedExample> valid_examples;
  if (!config.data.valid_file.empty())
    valid_examples = load(config.data.valid_file, config.data.valid_golds_file, config.data.valid_file.c_str());
  return train_on_examples(config, options, train_examples, valid_examples, tokenizer_path, pad_id);
}

}  // namespace percetrain
