// Bucketed gradient reduction started from AccumulateGrad post-hooks, and the ZeRO shard.
#include "percetrain/dist/grad_reducer.hpp"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- layout ----------------------------------------------------------------------------------

BucketLayout BucketLayout::plan(const std::vector<int64_t>& param_numels, int64_t bucket_elements, int world_size,
                                bool pad_for_shards) {
  if (world_size < 1) fail("dist", "world size must be at least 1");
  BucketLayout layout;
  layout.world_size = world_size;
  layout.bucket_of.resize(param_numels.size());
  layout.slot_of.resize(param_numels.size());
  Bucket current;
  auto close = [&] {
    if (current.slots.empty()) return;
    layout.buckets.push_back(std::move(current));
    current = Bucket();
  };
  for (size_t k = param_numels.size(); k-- > 0;) {
    if (!current.slots.empty() && current.numel + param_numels[k] > bucket_elements) close();
    layout.bucket_of[k] = layout.buckets.size();
    layout.slot_of[k] = current.slots.size();
    current.slots.push_back({k, current.numel, param_numels[k]});
    current.numel += param_numels[k];
  }
  close();
  for (auto& b : layout.buckets) {
    b.padded = pad_for_shards ? (b.numel + world_size - 1) / world_size * world_size : b.numel;
    b.slice = pad_for_shards ? b.padded / world_size : 0;
    b.flat_offset = layout.flat_numel;
    b.shard_offset = layout.shard_numel;
    layout.flat_numel += b.padded;
    layout.shard_numel += b.slice;
  }
  return layout;
}

std::vector<BucketLayout::ShardPiece> BucketLayout::shard_pieces(int rank) const {
  std::vector<ShardPiece> pieces;
  for (const auto& b : buckets) {
    const int64_t lo = rank * b.slice, hi = lo + b.slice;
    for (const auto& slot : b.slots) {
      const int64_t start = std::max(lo, slot.offset), end = std::min(hi, slot.offset + slot.numel);
      if (start < end) pieces.push_back({slot.param, start - slot.offset, b.shard_offset + (start - lo), end - start});
    }
  }
  return pieces;
}

// ---- hooks -----------------------------------------------------------------------------------

struct GradReducer::HookTarget {
  std::function<void(size_t)> ready;  // cleared when the reducer goes away
};

namespace {

// Runs after AccumulateGrad wrote a parameter's .grad: on the last backward of a step, that
// gradient is final. (LibTorch's LambdaPostHook changed its signature across versions.)
class GradReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  GradReadyHook(std::shared_ptr<void> target, std::function<void(size_t)>* ready, size_t param)
      : target_(std::move(target)), ready_(ready), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (*ready_) (*ready_)(param_);
    return outputs;
  }

 private:
  std::shared_ptr<void> target_;  // keeps *ready_ alive
  std::function<void(size_t)>* ready_;
  size_t param_;
};

}  // namespace

// ---- reducer ---------------------------------------------------------------------------------

struct GradReducer::BucketState {
  at::Tensor flat;
  int64_t pending = 0;  // slots still to arrive in the last backward
  bool launched = false, completed = false, from_hook = false;
  Pending work;
  double launched_at = 0.0;
};

GradReducer::GradReducer(Communicator& comm, std::vector<at::Tensor> params, std::vector<at::Tensor> targets,
                         GradReducerOptions options)
    : comm_(comm), params_(std::move(params)), targets_(std::move(targets)), options_(options) {
  if (params_.empty()) fail("dist", "the gradient reducer got no parameters");
  if (targets_.empty()) targets_ = params_;
  if (targets_.size() != params_.size())
    fail("dist", "the gradient reducer got " + std::to_string(targets_.size()) + " targets for " +
                     std::to_string(params_.size()) + " parameters");
  if (options_.zero_stage < 0 || options_.zero_stage > 2)
    fail("dist zero_stage", "is " + std::to_string(options_.zero_stage) + "; it must be 0, 1 or 2");
  if (options_.zero_stage == 2 && !options_.overlap)
    fail("dist zero_stage", "2 reduce-scatters buckets during backward, so it needs overlap on",
         "use zero_stage 1 to reduce after backward");
  if (!(options_.bucket_mib > 0)) fail("dist bucket_mib", "must be positive");
  std::vector<int64_t> numels;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad() || !params_[i].is_leaf())
      fail("dist", "parameter " + std::to_string(i) + " is not a leaf tensor that requires grad");
    if (targets_[i].numel() != params_[i].numel())
      fail("dist", "target " + std::to_string(i) + " does not match its parameter's size");
    if (targets_[i].scalar_type() != targets_[0].scalar_type())
      fail("dist", "the reducer's targets must share one dtype (the buckets have it)");
    numels.push_back(params_[i].numel());
  }
  const bool zero = options_.zero_stage > 0;
  // Zero keeps fp32 masters (fp64 for an fp64 model); zero 0 reduces in the targets' dtype.
  const auto target_type = targets_[0].scalar_type();
  const auto bucket_type = zero && target_type != at::kDouble ? at::kFloat : target_type;
  bucket_options_ = torch::TensorOptions().dtype(bucket_type).device(params_[0].device());
  const int64_t bucket_elements =
      std::max<int64_t>(1, static_cast<int64_t>(options_.bucket_mib * 1024 * 1024) /
                               static_cast<int64_t>(c10::elementSize(bucket_type)));
  layout_ = BucketLayout::plan(numels, bucket_elements, comm_.world_size(), zero);
  buckets_.resize(layout_.buckets.size());
  arrived_.assign(params_.size(), 0);
  if (options_.zero_stage < 2)
    for (size_t b = 0; b < buckets_.size(); ++b)
      buckets_[b].flat = torch::zeros({layout_.buckets[b].padded}, bucket_options_);

  if (zero) {
    torch::NoGradGuard no_grad;
    pieces_ = layout_.shard_pieces(comm_.rank());
    shard_values_ = torch::zeros({layout_.shard_numel}, bucket_options_);
    shard_grads_ = torch::zeros({layout_.shard_numel}, bucket_options_);
    for (const auto& piece : pieces_) {
      auto values = shard_values_.narrow(0, piece.shard_offset, piece.numel);
      values.copy_(targets_[piece.param].detach().reshape({-1}).narrow(0, piece.param_offset, piece.numel));
      auto leaf = values.detach().requires_grad_(true);  // shares values' storage: the optimizer updates the shard
      leaf.mutable_grad() = shard_grads_.narrow(0, piece.shard_offset, piece.numel);
      shard_tensors_.push_back(leaf);
    }
  }

  if (options_.overlap) {
    hook_target_ = std::make_shared<HookTarget>();
    hook_target_->ready = [this](size_t param) { on_grad_ready(param); };
    for (size_t i = 0; i < params_.size(); ++i) {
      auto accumulator = torch::autograd::impl::grad_accumulator(params_[i]);
      accumulator->add_post_hook(std::make_unique<GradReadyHook>(hook_target_, &hook_target_->ready, i));
      accumulators_.push_back(accumulator);  // a tensor holds its accumulator only weakly
    }
  }
}

GradReducer::~GradReducer() {
  if (hook_target_) hook_target_->ready = nullptr;
}

void GradReducer::begin_step() {
  for (size_t b = 0; b < buckets_.size(); ++b) {
    auto& st = buckets_[b];
    st.pending = static_cast<int64_t>(layout_.buckets[b].slots.size());
    st.launched = st.completed = st.from_hook = false;
    st.work = Pending();
  }
  std::fill(arrived_.begin(), arrived_.end(), 0);
  next_launch_ = next_complete_ = 0;
  in_flight_ = 0;
  hook_error_ = nullptr;
  stats_ = ReducerStats();
  comm_busy_until_ = 0.0;
  last_backward_ = true;
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
  if (options_.zero_stage == 0)
    for (auto& t : targets_) t.mutable_grad() = at::Tensor();
  in_step_ = true;
}

void GradReducer::on_grad_ready(size_t param) {
  if (!in_step_ || !last_backward_ || arrived_[param] || hook_error_) return;
  try {
    fill_slot(param);
    if (--buckets_[layout_.bucket_of[param]].pending == 0) launch_ready(true);
  } catch (...) {
    hook_error_ = std::current_exception();  // thrown from finish(), not through autograd
  }
}

void GradReducer::fill_slot(size_t param) {
  const size_t b = layout_.bucket_of[param];
  auto& st = buckets_[b];
  if (!st.flat.defined())  // zero 2: a bucket exists only while it is filled and reduced
    st.flat = torch::zeros({layout_.buckets[b].padded}, bucket_options_);
  const auto& slot = layout_.buckets[b].slots[layout_.slot_of[param]];
  auto view = st.flat.narrow(0, slot.offset, slot.numel);
  auto& grad = params_[param].mutable_grad();
  torch::NoGradGuard no_grad;
  if (grad.defined())
    view.copy_(grad.reshape({-1}));
  else
    view.zero_();  // unused in this step (or this rank ran no backward): it adds nothing
  grad = at::Tensor();  // the bucket holds it now
  arrived_[param] = 1;
}

void GradReducer::launch_ready(bool from_hook) {
  // Every rank must start the same collectives in the same order: strictly by bucket index.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(next_launch_++, from_hook);
}

void GradReducer::launch(size_t b, bool from_hook) {
  auto& st = buckets_[b];
  const auto& bucket = layout_.buckets[b];
  st.launched = true;
  st.from_hook = from_hook;
  st.launched_at = now_s();
  stats_.bytes += bucket.padded * static_cast<int64_t>(st.flat.element_size());
  ++stats_.buckets;
  if (from_hook) ++stats_.started_in_backward;
  if (options_.zero_stage == 0)
    st.work = comm_.all_reduce_sum(st.flat);
  else
    st.work = comm_.reduce_scatter_sum(st.flat, shard_grads_.narrow(0, bucket.shard_offset, bucket.slice));
  ++in_flight_;
  if (options_.zero_stage == 2 && options_.max_buckets_in_flight > 0)
    while (in_flight_ > options_.max_buckets_in_flight) complete(next_complete_++);
}

void GradReducer::complete(size_t b) {
  auto& st = buckets_[b];
  st.work.wait();
  const double end = st.work.completed_at() >= 0 ? std::min(st.work.completed_at(), now_s()) : now_s();
  const double start = std::max(st.launched_at, comm_busy_until_);
  if (end > start) stats_.comm_seconds += end - start;
  comm_busy_until_ = std::max(comm_busy_until_, end);
  st.completed = true;
  --in_flight_;
  if (options_.zero_stage == 0) {
    for (const auto& slot : layout_.buckets[b].slots) {
      auto& target = targets_[slot.param];
      target.mutable_grad() = st.flat.narrow(0, slot.offset, slot.numel).view(target.sizes());
    }
  } else if (options_.zero_stage == 2) {
    st.flat = at::Tensor();
  }
}

void GradReducer::finish() {
  if (!in_step_) begin_step();  // nothing ran on this rank: its part is zeros
  if (hook_error_) {
    in_step_ = false;
    std::rethrow_exception(hook_error_);
  }
  // What the hooks did not start: everything without overlap; otherwise buckets with a
  // parameter that got no gradient this step, and those queued behind them.
  for (size_t b = next_launch_; b < buckets_.size(); ++b) {
    for (const auto& slot : layout_.buckets[b].slots)
      if (!arrived_[slot.param]) fill_slot(slot.param);
    buckets_[b].pending = 0;
  }
  launch_ready(false);
  const double t0 = now_s();
  while (next_complete_ < buckets_.size()) complete(next_complete_++);
  stats_.wait_seconds = now_s() - t0;
  in_step_ = false;
}

double clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm, Communicator* parts_over) {
  torch::NoGradGuard no_grad;
  // Squares summed in fp64: the norm (and so the clipping coefficient) then agrees to fp64
  // rounding whichever way the gradient is split over tensors or ranks (fp32 sums did not).
  std::vector<double> squares{0.0};
  for (const auto& g : grads)
    if (g.defined()) squares[0] += g.to(at::kDouble).pow(2).sum().item<double>();
  if (parts_over) parts_over->all_reduce(squares);
  const double norm = std::sqrt(squares[0]);
  const double coefficient = max_norm / (norm + 1e-6);  // torch::nn::utils::clip_grad_norm_'s
  if (max_norm > 0 && coefficient < 1)
    for (const auto& g : grads)
      if (g.defined()) g.mul_(coefficient);
  return norm;
}

double GradReducer::clip_grad_norm(double max_norm) {
  if (options_.zero_stage > 0) return percetrain::clip_grad_norm({shard_grads_}, max_norm, &comm_);
  std::vector<at::Tensor> grads;
  for (const auto& t : targets_) grads.push_back(t.grad());
  return percetrain::clip_grad_norm(grads, max_norm);
}

void GradReducer::gather_parameters() {
  if (options_.zero_stage == 0) fail("dist", "gather_parameters is for zero stages 1 and 2");
  torch::NoGradGuard no_grad;
  const double t0 = now_s();
  struct Gathering {
    size_t bucket;
    at::Tensor full;
    Pending work;
  };
  std::vector<Gathering> window;  // two buckets in flight: one transfers while one is copied out
  auto drain = [&](size_t keep) {
    while (window.size() > keep) {
      auto& g = window.front();
      g.work.wait();
      for (const auto& slot : layout_.buckets[g.bucket].slots) {
        auto& p = params_[slot.param];
        p.copy_(g.full.narrow(0, slot.offset, slot.numel).view(p.sizes()));
      }
      window.erase(window.begin());
    }
  };
  for (size_t b = 0; b < layout_.buckets.size(); ++b) {
    const auto& bucket = layout_.buckets[b];
    Gathering g{b, torch::empty({bucket.padded}, shard_values_.options()), Pending()};
    g.work = comm_.all_gather(shard_values_.narrow(0, bucket.shard_offset, bucket.slice), g.full);
    stats_.gather_bytes += bucket.padded * static_cast<int64_t>(g.full.element_size());
    window.push_back(std::move(g));
    drain(1);
  }
  drain(0);
  stats_.gather_seconds = now_s() - t0;
}

void broadcast_tensors(Communicator& comm, const std::vector<at::Tensor>& tensors, int root) {
  if (!comm.distributed()) return;
  for (const auto& t : tensors) comm.broadcast(t.detach(), root);
}

}  // namespace percetrain
