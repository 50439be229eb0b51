// torchrun's environment, the single-rank communicator and the choice of backend.
#include "percetrain/dist/communicator.hpp"

#include <torch/torch.h>

#include <cstdlib>

#include "c10d_communicator.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

const char* const kLaunchHint =
    "torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; a manual launch must set them all "
    "(docs/distributed.md)";

int integer_variable(const DistEnv::Lookup& lookup, const std::string& name, int low, int high, int fallback,
                     bool required) {
  const auto text = lookup(name);
  if (!text) {
    if (required) fail("environment variable " + name, "is not set although WORLD_SIZE is", kLaunchHint);
    return fallback;
  }
  char* end = nullptr;
  const long value = std::strtol(text->c_str(), &end, 10);
  if (text->empty() || *end != '\0' || value < low || value > high)
    fail("environment variable " + name,
         "is '" + *text + "', not an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]",
         kLaunchHint);
  return static_cast<int>(value);
}

void copy_unless_same(const at::Tensor& dst, const at::Tensor& src) {
  if (dst.numel() != src.numel())
    fail("dist", "a collective got tensors of " + std::to_string(src.numel()) + " and " +
                     std::to_string(dst.numel()) + " elements where one rank needs them equal");
  if (dst.data_ptr() != src.data_ptr()) dst.copy_(src.view_as(dst));
}

class SingleRankCommunicator final : public Communicator {
 public:
  explicit SingleRankCommunicator(const c10::Device& device)
      : Communicator(0, 1, device, std::chrono::milliseconds(0)) {}
  std::string backend() const override { return "single"; }
  Pending all_reduce_sum(const at::Tensor&) override { return {}; }
  Pending reduce_scatter_sum(const at::Tensor& flat, const at::Tensor& shard) override {
    copy_unless_same(shard, flat);
    return {};
  }
  Pending all_gather(const at::Tensor& shard, const at::Tensor& flat) override {
    copy_unless_same(flat, shard);
    return {};
  }
  void broadcast(const at::Tensor&, int) override {}
  void barrier() override {}
  void all_reduce(std::vector<double>&, ScalarReduce) override {}
  void all_reduce(std::vector<int64_t>&, ScalarReduce) override {}
};

}  // namespace

DistEnv DistEnv::parse(const Lookup& lookup) {
  DistEnv env;
  if (!lookup("WORLD_SIZE")) return env;
  env.world_size = integer_variable(lookup, "WORLD_SIZE", 1, 1 << 20, 1, true);
  if (env.world_size == 1) return env;
  env.rank = integer_variable(lookup, "RANK", 0, env.world_size - 1, 0, true);
  env.local_rank = integer_variable(lookup, "LOCAL_RANK", 0, env.world_size - 1, 0, true);
  env.local_world_size = integer_variable(lookup, "LOCAL_WORLD_SIZE", 1, env.world_size, 1, false);
  const auto addr = lookup("MASTER_ADDR");
  if (!addr || addr->empty()) fail("environment variable MASTER_ADDR", "is not set although WORLD_SIZE is", kLaunchHint);
  env.master_addr = *addr;
  env.master_port = integer_variable(lookup, "MASTER_PORT", 1, 65535, 0, true);
  env.agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  env.restart_count = integer_variable(lookup, "TORCHELASTIC_RESTART_COUNT", 0, 1 << 30, 0, false);
  return env;
}

DistEnv DistEnv::from_environment() {
  return parse([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  });
}

void Pending::wait() {
  if (!state_ || waited_) return;
  waited_ = true;  // a failure is the communicator's for good: it is not waited for twice
  state_->wait();
}

bool Communicator::any(bool flag) {
  std::vector<int64_t> v{flag ? 1 : 0};
  all_reduce(v, ScalarReduce::kMax);
  return v[0] != 0;
}

int64_t Communicator::max_over_ranks(int64_t value) {
  std::vector<int64_t> v{value};
  all_reduce(v, ScalarReduce::kMax);
  return v[0];
}

std::vector<int64_t> Communicator::decided_by_root(const std::function<std::vector<int64_t>()>& decide, size_t count,
                                                   const std::string& what) {
  if (!distributed()) return decide();
  std::vector<int64_t> verdict(count + 1, 0);  // [0]: rank 0 failed; then its numbers (the others add zeros)
  std::exception_ptr error;
  if (is_root()) {
    try {
      const auto numbers = decide();
      std::copy(numbers.begin(), numbers.begin() + static_cast<std::ptrdiff_t>(std::min(count, numbers.size())),
                verdict.begin() + 1);
    } catch (...) {
      error = std::current_exception();
      verdict[0] = 1;
    }
  }
  all_reduce(verdict);  // also the barrier after whatever rank 0 did
  if (error) std::rethrow_exception(error);
  if (verdict[0]) fail("rank " + std::to_string(rank()), "rank 0 could not " + what + " (its error says why)");
  return std::vector<int64_t>(verdict.begin() + 1, verdict.end());
}

std::unique_ptr<Communicator> make_single_rank_communicator(const c10::Device& device) {
  return std::make_unique<SingleRankCommunicator>(device);
}

bool nccl_available() {
#ifdef PERCETRAIN_WITH_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(const DistEnv& env, DistBackend backend, double timeout_s,
                                                const c10::Device& device) {
  if (!env.distributed()) return make_single_rank_communicator(device);
  if (!(timeout_s > 0)) fail("dist timeout", "must be positive, got " + std::to_string(timeout_s));
  if (backend == DistBackend::kAuto)
    backend = device.is_cuda() && nccl_available() ? DistBackend::kNccl : DistBackend::kGloo;
  if (backend == DistBackend::kNccl && !nccl_available())
    fail("dist backend", "nccl is not in this build",
         "build against a CUDA LibTorch with NCCL headers (docs/distributed.md), or use gloo");
  if (backend == DistBackend::kNccl && !device.is_cuda())
    fail("dist backend", "nccl needs a CUDA device, the run is on " + device.str(), "use gloo on the CPU");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000.0));
  return dist_detail::make_c10d_communicator(env, backend, timeout, device);
}

std::unique_ptr<Communicator> make_communicator(DistBackend backend, double timeout_s, const c10::Device& device) {
  return make_communicator(DistEnv::from_environment(), backend, timeout_s, device);
}

c10::Device device_for_local_rank(const std::string& spec, int local_rank) {
  if (spec == "cuda" || (spec == "auto" && torch::cuda::is_available()))
    return parse_device("cuda:" + std::to_string(local_rank));
  return parse_device(spec);
}

}  // namespace percetrain
