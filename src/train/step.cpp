// The optimizer step with exact gradient accumulation, its schedule, plan and optimizer.
#include "percetrain/train/step.hpp"

#include <torch/torch.h>

#include <cmath>

#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/grad_reducer.hpp"
#include "percetrain/model/decoder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/pass/paired_pass.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

double learning_rate_at(const TrainSection& train, int64_t step, int64_t total_steps) {
  const int64_t warmup = train.warmup_steps > 0
                             ? train.warmup_steps
                             : static_cast<int64_t>(std::llround(train.warmup_ratio * total_steps));
  if (step < warmup) return train.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (train.schedule == Schedule::kConstant) return train.lr;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) /
                                            static_cast<double>(std::max<int64_t>(1, total_steps - warmup)));
  const double floor = train.min_lr_ratio;
  const double decay =
      train.schedule == Schedule::kLinear ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return train.lr * (floor + (1.0 - floor) * decay);
}

bool is_decayed(const std::string& name, int64_t dim) { return name.find("norm") == std::string::npos && dim >= 2; }

c10::ScalarType training_dtype(const JobConfig& config, const c10::Device& device) {
  const auto dtype = parse_dtype(config.model.dtype, device, "model.dtype");
  if (dtype == torch::kFloat16)
    fail(config.file + ": model.dtype", "float16 training needs loss scaling, which percetrain does not do",
         "use bfloat16: the same memory with float32's exponent range");
  return dtype;
}

std::unique_ptr<FusedAdamW> make_optimizer(const MasterWeights& masters, const TrainSection& train) {
  std::vector<torch::Tensor> decayed, not_decayed;
  for (const auto& [name, tensor] : masters.named_parameters())
    (is_decayed(name, tensor.dim()) ? decayed : not_decayed).push_back(tensor);
  return make_optimizer(std::move(decayed), std::move(not_decayed), train);
}

std::unique_ptr<FusedAdamW> make_optimizer(std::vector<torch::Tensor> decayed, std::vector<torch::Tensor> not_decayed,
                                           const TrainSection& train) {
  auto adamw = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(train.lr)
                                                            .betas({train.beta1, train.beta2})
                                                            .eps(train.adam_eps)
                                                            .weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, adamw(train.weight_decay));
  groups.emplace_back(not_decayed, adamw(0.0));
  return std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(train.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

StepPlan::StepPlan(size_t num_examples, int64_t batch_size, uint64_t seed, int64_t epochs, int64_t max_steps)
    : num_examples_(num_examples), batch_size_(batch_size), seed_(seed) {
  steps_per_epoch_ = (static_cast<int64_t>(num_examples) + batch_size - 1) / batch_size;
  total_steps_ = max_steps > 0 ? max_steps : epochs * steps_per_epoch_;
}

const std::vector<size_t>& StepPlan::examples(int64_t step) {
  const int64_t epoch = step / steps_per_epoch_;
  if (epoch != planned_epoch_) {
    epoch_ = epoch_steps(num_examples_, batch_size_, seed_, epoch);
    planned_epoch_ = epoch;
  }
  return epoch_[static_cast<size_t>(step % steps_per_epoch_)];
}

StepSettings StepSettings::from(const JobConfig& config, int64_t pad_id, const c10::Device& device) {
  StepSettings s;
  s.micro_batch_size = config.train.micro_batch_size;
  s.pad_id = pad_id;
  s.device = device;
  s.chunk_tokens = config.objective.chunk_tokens;
  s.normalize = config.objective.normalize;
  s.grad_clip = config.train.grad_clip;
  s.clip_min = config.objective.clip_min;
  s.clip_max = config.objective.clip_max;
  return s;
}

double StepResult::pir_mean() const {
  double sum = 0.0;
  for (float v : pir) sum += v;
  return pir.empty() ? 0.0 : sum / static_cast<double>(pir.size());
}

namespace {

// One rank: gradients through the masters.
class LocalGradSync : public GradSync {
 public:
  explicit LocalGradSync(MasterWeights& masters) : masters_(masters) {}
  void begin_step() override { masters_.release_grads(); }
  void finish() override { masters_.grads_to_master(); }
  void release() override { masters_.release_grads(); }
  double clip_grad_norm(double max_norm) override {
    std::vector<torch::Tensor> grads;
    for (const auto& p : masters_.parameters()) grads.push_back(p.grad());
    return percetrain::clip_grad_norm(grads, max_norm);
  }
  void after_update() override { masters_.master_to_model(); }

 private:
  MasterWeights& masters_;
};

// Several ranks: the reducer sums over them (into the masters, or into this rank's shard).
class ReducerGradSync : public GradSync {
 public:
  ReducerGradSync(MasterWeights& masters, GradReducer& reducer) : masters_(masters), reducer_(reducer) {}
  void begin_step() override {
    masters_.release_grads();
    reducer_.begin_step();
  }
  void before_backward(bool last) override { reducer_.set_last_backward(last); }
  void finish() override { reducer_.finish(); }
  void release() override { masters_.release_grads(); }
  double clip_grad_norm(double max_norm) override { return reducer_.clip_grad_norm(max_norm); }
  void after_update() override {
    if (reducer_.options().zero_stage > 0) reducer_.gather_parameters();
    else masters_.master_to_model();
  }
  const ReducerStats* stats() const override { return &reducer_.stats(); }

 private:
  MasterWeights& masters_;
  GradReducer& reducer_;
};

}  // namespace

Optimization::Optimization() = default;
Optimization::Optimization(Optimization&&) noexcept = default;
Optimization::~Optimization() = default;

const torch::optim::Optimizer* Optimization::replicated_optimizer() const { return zero == 0 ? optimizer.get() : nullptr; }

void Optimization::restore(const std::string& checkpoint, int rank) {
  if (zero > 0) restore_shard_state(checkpoint, rank, *optimizer, reducer->shard_values());
  else restore_training_state(checkpoint, *optimizer, *masters);
}

void Optimization::save_shard(const std::string& staging, int rank) const {
  if (zero > 0) save_shard_state(staging, rank, *optimizer, reducer->shard_values());
}

Optimization build_optimization(CausalLMImpl& model, const TrainSection& train, Communicator& comm) {
  Optimization o;
  o.zero = comm.distributed() ? train.distributed.zero : 0;
  const NamedTensors trainable = trainable_parameters(model);
  // Mixed precision: a bf16 model computes forward and backward; the optimizer updates fp32
  // master copies and writes them back. Without them, updates below bf16's resolution (8
  // mantissa bits: lr 5e-6 on a weight of 0.02 is one part in 4000) would round to nothing.
  // Under ZeRO the reducer's fp32 shard plays that part.
  o.masters = std::make_unique<MasterWeights>(trainable, train.master_weights && o.zero == 0);
  if (!comm.distributed()) {
    o.optimizer = make_optimizer(*o.masters, train);
    o.sync = std::make_unique<LocalGradSync>(*o.masters);
    return o;
  }
  std::vector<torch::Tensor> params;
  for (const auto& [name, tensor] : trainable) params.push_back(tensor);
  broadcast_tensors(comm, params);  // replicas start equal
  GradReducerOptions options;
  options.bucket_mib = train.distributed.bucket_mib;
  options.overlap = train.distributed.overlap;
  options.zero_stage = static_cast<int>(o.zero);
  o.reducer = std::make_unique<GradReducer>(comm, params, o.zero == 0 ? o.masters->parameters() : std::vector<torch::Tensor>{},
                                            options);
  if (o.zero > 0) {
    // This rank's 1/N of the flat parameter space, each piece decayed as its parameter is.
    std::vector<torch::Tensor> decayed, not_decayed;
    const auto& pieces = o.reducer->shard_pieces();
    for (size_t i = 0; i < pieces.size(); ++i) {
      const auto& [name, tensor] = trainable[pieces[i].param];
      (is_decayed(name, tensor.dim()) ? decayed : not_decayed).push_back(o.reducer->shard()[i]);
    }
    o.optimizer = make_optimizer(std::move(decayed), std::move(not_decayed), train);
  } else {
    o.optimizer = make_optimizer(*o.masters, train);
  }
  o.sync = std::make_unique<ReducerGradSync>(*o.masters, *o.reducer);
  return o;
}

TrainStep::TrainStep(CausalLMImpl& model, const Objective& objective, torch::optim::Optimizer& optimizer, GradSync& sync,
                     StepSettings settings, Communicator* comm)
    : model_(model),
      objective_(objective),
      optimizer_(optimizer),
      sync_(sync),
      settings_(settings),
      comm_(comm && comm->distributed() ? comm : nullptr) {}

// Sums over the ranks of what the log shows; the PIR values of every rank, gathered.
void TrainStep::reduce_result(StepResult& r) const {
  std::vector<double> sums = {r.loss, r.ce_sum};
  comm_->all_reduce(sums);
  r.loss = sums[0];
  r.ce_sum = sums[1];
  std::vector<int64_t> counts = {r.tokens, r.processed, r.clipped_low, r.clipped_high,
                                 static_cast<int64_t>(r.pir.size())};
  std::vector<int64_t> largest = {counts[4]};
  comm_->all_reduce(counts);
  comm_->all_reduce(largest, ScalarReduce::kMax);
  r.tokens = counts[0];
  r.processed = counts[1];
  r.clipped_low = counts[2];
  r.clipped_high = counts[3];
  if (largest[0] == 0) return;
  // A gather by all-reduce: each rank writes its values (and ones in a mask) into its own slot.
  const int64_t slot = largest[0], n = static_cast<int64_t>(r.pir.size());
  auto values = torch::zeros({comm_->world_size() * slot}, torch::kFloat32);
  auto mask = torch::zeros({comm_->world_size() * slot}, torch::kFloat32);
  if (n > 0) {
    values.slice(0, comm_->rank() * slot, comm_->rank() * slot + n).copy_(torch::from_blob(r.pir.data(), {n}));
    mask.slice(0, comm_->rank() * slot, comm_->rank() * slot + n).fill_(1.0f);
  }
  auto both = torch::cat({values, mask}).to(comm_->device());
  comm_->all_reduce_sum(both).wait();
  both = both.to(torch::kCPU);
  const auto gathered = both.slice(0, 0, values.numel()).masked_select(both.slice(0, values.numel()) > 0.5f).contiguous();
  r.pir.assign(gathered.data_ptr<float>(), gathered.data_ptr<float>() + gathered.numel());
}

namespace {

// LoRA dropout's rows for one micro-batch, from its forward until after its backward (which
// recomputes checkpointed layers): the masks follow the samples, not the rank or micro-batch.
class DropoutRows {
 public:
  DropoutRows(CausalLMImpl& model, int64_t step, const std::vector<size_t>& examples)
      : model_(has_lora(model) && lora_settings(model).dropout > 0 ? &model : nullptr) {
    if (model_) set_lora_dropout_rows(*model_, step, std::vector<int64_t>(examples.begin(), examples.end()));
  }
  ~DropoutRows() {
    if (model_) clear_lora_dropout_rows(*model_);
  }
  DropoutRows(const DropoutRows&) = delete;
  DropoutRows& operator=(const DropoutRows&) = delete;

 private:
  CausalLMImpl* model_;
};

}  // namespace

StepResult TrainStep::run(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices, double lr,
                          int64_t step) {
  set_learning_rate(optimizer_, lr);
  sync_.begin_step();
  // The normaliser covers the whole step, so that accumulating micro-batches gives the gradient
  // of one big batch.
  int64_t step_tokens = 0;
  for (size_t i : indices) step_tokens += scored_response_tokens(examples[i]);
  const int64_t step_sequences = static_cast<int64_t>(indices.size());

  // This rank's share of the step's micro-batches (all of them with one rank).
  std::vector<std::vector<size_t>> mine;
  {
    auto all = micro_batches(indices, examples, settings_.micro_batch_size);
    const size_t ranks = comm_ ? static_cast<size_t>(comm_->world_size()) : 1;
    const size_t rank = comm_ ? static_cast<size_t>(comm_->rank()) : 0;
    for (size_t k = rank; k < all.size(); k += ranks) mine.push_back(std::move(all[k]));
  }

  StepResult r;
  for (size_t k = 0; k < mine.size(); ++k) {
    const auto& micro = mine[k];
    sync_.before_backward(k + 1 == mine.size());
    auto batch = collate_paired(examples, micro, settings_.pad_id, settings_.device, objective_.needs_counterfactual());
    if (batch.response_tokens == 0) continue;
    DropoutRows rows(model_, step, batch.examples);
    auto pass = run_paired_pass(model_, objective_, batch, settings_.chunk_tokens, false, settings_.reference);
    auto scale = normalisation_scale(settings_.normalize, batch.sequence, static_cast<int64_t>(batch.examples.size()),
                                     step_tokens, step_sequences)
                     .to(pass.terms.token_loss.scalar_type());
    auto loss = (pass.terms.token_loss * scale).sum();
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      r.finite = false;
      r.loss = loss_value;
      if (!comm_) {
        sync_.release();
        return r;
      }
      break;  // peers wait in the reduction: this rank still takes part in it, then nobody updates
    }
    loss.backward();
    r.loss += loss_value;
    r.tokens += batch.response_tokens;
    r.processed += batch.personalised_tokens + batch.counterfactual_tokens;
    r.ce_sum += -pass.tokens.logp_personalised.detach().sum().item<double>();
    if (pass.terms.pir.defined()) {
      auto pir = pass.terms.pir.to(torch::kCPU, torch::kFloat32).contiguous();
      r.pir.insert(r.pir.end(), pir.data_ptr<float>(), pir.data_ptr<float>() + pir.numel());
      r.clipped_low += (pir < settings_.clip_min).sum().item<int64_t>();
      r.clipped_high += (pir > settings_.clip_max).sum().item<int64_t>();
    }
  }

  sync_.finish();  // the sum over the ranks, where the optimizer reads it
  if (comm_ && comm_->any(!r.finite)) {
    r.finite = false;
    sync_.release();
    return r;
  }
  r.grad_norm = sync_.clip_grad_norm(settings_.grad_clip);
  optimizer_.step();
  sync_.after_update();
  if (comm_) reduce_result(r);
  return r;
}

ValidationResult validate_examples(CausalLMImpl& model, const Objective& objective,
                                   const std::vector<PairedExample>& examples, const StepSettings& settings,
                                   Communicator* comm) {
  if (comm && !comm->distributed()) comm = nullptr;
  ValidationResult v;
  double pir_sum = 0.0, objective_sum = 0.0, ce_sum = 0.0;
  std::vector<size_t> all(examples.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto micros = micro_batches(all, examples, settings.micro_batch_size);
  torch::InferenceMode inference;
  for (size_t k = comm ? static_cast<size_t>(comm->rank()) : 0; k < micros.size();
       k += comm ? static_cast<size_t>(comm->world_size()) : 1) {
    const auto& micro = micros[k];
    auto batch = collate_paired(examples, micro, settings.pad_id, settings.device, true);
    auto pass = run_paired_pass(model, objective, batch, settings.chunk_tokens, true, settings.reference);
    ce_sum += -pass.tokens.logp_personalised.sum().item<double>();
    objective_sum += pass.terms.token_loss.sum().item<double>();
    // The objective's PIR (word-scope PIR under pir_scope word), as the training rows report it.
    pir_sum += (pass.terms.pir.defined() ? pass.terms.pir
                                         : pass.tokens.logp_personalised - pass.tokens.logp_counterfactual)
                   .sum()
                   .item<double>();
    v.tokens += batch.response_tokens;
  }
  if (comm) {
    std::vector<double> sums = {ce_sum, objective_sum, pir_sum, static_cast<double>(v.tokens)};
    comm->all_reduce(sums);
    ce_sum = sums[0];
    objective_sum = sums[1];
    pir_sum = sums[2];
    v.tokens = static_cast<int64_t>(sums[3]);
  }
  const double n = static_cast<double>(std::max<int64_t>(1, v.tokens));
  v.ce = ce_sum / n;
  v.objective = objective_sum / n;
  v.pir_mean = pir_sum / n;
  return v;
}

}  // namespace percetrain
