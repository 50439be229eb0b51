// The ranks of a data-parallel job and the collectives between them: c10d process groups (Gloo
// on the CPU, NCCL on CUDA) rendezvoused from torchrun's environment, or one rank and no cost.
//
// The trainer holds one on every rank (the single-rank one when not launched by torchrun), so its
// code reads the same on one rank and on many: the optimizer's GradSync (train/step.hpp), the
// Checkpointer's barriers and decided_by_root below hide the difference. Only rank 0 writes files;
// the numbers it logs are all_reduce()d over the ranks first.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "percetrain/dist/dist_section.hpp"

namespace percetrain {

// This process's place in the job, as the launcher (torchrun, or a script that sets the same
// variables) describes it: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT.
struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  // torchrun's agent hosts the store (every rank is a client and keys live on across restarts,
  // so they are namespaced by restart_count); otherwise rank 0 hosts it.
  bool agent_store = false;
  int restart_count = 0;

  bool distributed() const { return world_size > 1; }

  using Lookup = std::function<std::optional<std::string>(const std::string& name)>;
  // World size 1 when WORLD_SIZE is absent; an error names a missing or malformed variable.
  static DistEnv parse(const Lookup& lookup);
  static DistEnv from_environment();
};

// A collective in flight. wait() returns once its result is in place, or throws the
// communicator's percetrain::Error; waiting again (or on a default-constructed one) is free.
class Pending {
 public:
  class State {
   public:
    virtual ~State() = default;
    virtual void wait() = 0;
    // steady_clock seconds at which the collective completed, as the backend observed it;
    // negative when the backend does not say (wait() returning is then the completion).
    virtual double completed_at() const { return -1.0; }
  };

  Pending() = default;
  explicit Pending(std::unique_ptr<State> state) : state_(std::move(state)) {}
  void wait();
  bool in_flight() const { return state_ != nullptr && !waited_; }
  double completed_at() const { return state_ ? state_->completed_at() : -1.0; }

 private:
  std::unique_ptr<State> state_;
  bool waited_ = false;
};

enum class ScalarReduce { kSum, kMax, kMin };

// Tensors handed to collectives are contiguous, on device(), and alike on every rank (same
// dtype and size, issued in the same order). Every failure, a lost peer or a peer that does not
// take part within timeout(), is one percetrain::Error that names the ranks at fault where they
// can be told; after one, every later call throws the same error.
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return world_size_ > 1; }
  const c10::Device& device() const { return device_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  virtual std::string backend() const = 0;  // "single", "gloo" or "nccl"

  // flat <- sum over ranks of flat, in place.
  virtual Pending all_reduce_sum(const at::Tensor& flat) = 0;
  // shard (flat.numel() / world_size elements) <- this rank's slice of the sum over ranks of
  // flat. flat is scratch afterwards: Gloo has no reduce-scatter, so it all-reduces flat in place
  // (twice the traffic of a real one); NCCL leaves it alone.
  virtual Pending reduce_scatter_sum(const at::Tensor& flat, const at::Tensor& shard) = 0;
  // flat <- every rank's shard, by rank.
  virtual Pending all_gather(const at::Tensor& shard, const at::Tensor& flat) = 0;
  virtual void broadcast(const at::Tensor& tensor, int root = 0) = 0;
  virtual void barrier() = 0;
  // A few host numbers (token counts, losses, flags), the same op on every element.
  virtual void all_reduce(std::vector<double>& values, ScalarReduce op = ScalarReduce::kSum) = 0;
  virtual void all_reduce(std::vector<int64_t>& values, ScalarReduce op = ScalarReduce::kSum) = 0;
  // True on every rank when `flag` is true on any (a non-finite loss skips the step everywhere).
  bool any(bool flag);
  int64_t max_over_ranks(int64_t value);  // e.g. a signal any rank received
  // "Rank 0 decides, the others follow": runs `decide` on rank 0 alone and gives its first
  // `count` numbers to every rank (one rank: just decide()). An error on rank 0 is rethrown there;
  // the others fail with one line saying that rank 0 could not `what`.
  std::vector<int64_t> decided_by_root(const std::function<std::vector<int64_t>()>& decide, size_t count,
                                       const std::string& what);

 protected:
  Communicator(int rank, int world_size, const c10::Device& device, std::chrono::milliseconds timeout)
      : rank_(rank), world_size_(world_size), device_(device), timeout_(timeout) {}

 private:
  int rank_, world_size_;
  c10::Device device_;
  std::chrono::milliseconds timeout_;
};

// One rank: every collective leaves its data as it is (copies only where input and output are
// different tensors); no c10d objects, no threads.
std::unique_ptr<Communicator> make_single_rank_communicator(const c10::Device& device = c10::kCPU);

// The single-rank communicator when `env` has one rank; otherwise a c10d process group after a
// rendezvous through c10d's TCPStore at MASTER_ADDR:MASTER_PORT. auto = NCCL for a CUDA device
// when this LibTorch has it, else Gloo. `timeout_s` bounds the rendezvous and every collective.
std::unique_ptr<Communicator> make_communicator(const DistEnv& env, DistBackend backend, double timeout_s,
                                                const c10::Device& device);
std::unique_ptr<Communicator> make_communicator(DistBackend backend, double timeout_s, const c10::Device& device);

// The device of this rank for a --device spec: "cuda", or "auto" on a CUDA machine, is
// cuda:<local_rank> (one GPU per process, as torchrun's --nproc_per_node means); "cuda:N" and
// "cpu" are taken as they are.
c10::Device device_for_local_rank(const std::string& spec, int local_rank);

// Whether this build can make an NCCL process group.
bool nccl_available();

}  // namespace percetrain
