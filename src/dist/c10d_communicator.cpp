// The c10d communicator: a TCPStore rendezvous the way torchrun expects it, ProcessGroupGloo on
// the CPU or ProcessGroupNCCL on CUDA, Gloo's missing flat collectives built from what it has,
// and every failure turned into one error line that names the ranks at fault.
#include "c10d_communicator.hpp"

#include <torch/torch.h>
#include <torch/version.h>

// Debian's LibTorch exports USE_C10D_GLOO with torch_cpu; other builds may not, and the header
// hides the class without it (Gloo itself is inside libtorch_cpu).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef PERCETRAIN_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <atomic>
#include <mutex>
#include <sstream>

#include "peer_status.hpp"
#include "percetrain/util/error.hpp"

#define PERCETRAIN_TORCH_VERSION (TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR)

namespace percetrain::dist_detail {
namespace {

#if PERCETRAIN_TORCH_VERSION >= 200
// 2.x: Gloo and NCCL are c10d::Backend objects behind a dispatching ProcessGroup; the backend
// still has every collective as a public virtual, so it is called directly.
using ProcessGroupBase = c10d::Backend;
#else
using ProcessGroupBase = c10d::ProcessGroup;
#endif
using WorkPtr = c10::intrusive_ptr<c10d::Work>;
using std::chrono::milliseconds;

const char* const kFaultHint =
    "the launcher stops the other ranks; resume from the last checkpoint, or let torchrun --max_restarts restart "
    "the job (docs/distributed.md, \"Faults\")";

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string seconds_text(double s) {
  std::ostringstream out;
  out.precision(s < 10 ? 2 : 3);
  out << s << " s";
  return out.str();
}

// The first line of an exception's message, without c10's backtrace.
std::string cause_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  const size_t newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  if (text.size() > 240) text = text.substr(0, 240) + "...";
  return text;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

c10d::ReduceOp reduce_op(ScalarReduce op) {
  switch (op) {
    case ScalarReduce::kMax:
      return c10d::ReduceOp::MAX;
    case ScalarReduce::kMin:
      return c10d::ReduceOp::MIN;
    default:
      return c10d::ReduceOp::SUM;
  }
}

// Process groups made by this process so far: each one's store keys get their own prefix.
std::atomic<int> g_generation{0};

class C10dCommunicator;

class C10dPending final : public Pending::State {
 public:
  C10dPending(C10dCommunicator& comm, const char* op, int64_t index, WorkPtr work, std::function<void()> finish,
              bool track_completion);
  void wait() override;
  double completed_at() const override { return completed_at_->load(); }

 private:
  C10dCommunicator& comm_;
  const char* op_;
  int64_t index_;
  WorkPtr work_;
  std::function<void()> finish_;
  std::shared_ptr<std::atomic<double>> completed_at_ = std::make_shared<std::atomic<double>>(-1.0);
};

class C10dCommunicator final : public Communicator {
 public:
  C10dCommunicator(const DistEnv& env, DistBackend backend, milliseconds timeout, const c10::Device& device);
  ~C10dCommunicator() override;
  std::string backend() const override { return backend_ == DistBackend::kNccl ? "nccl" : "gloo"; }

  Pending all_reduce_sum(const at::Tensor& flat) override {
    check(flat, "all_reduce_sum");
    return start("all_reduce", [flat, this] {
      std::vector<at::Tensor> tensors{flat};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      return pg_->allreduce(tensors, options);
    });
  }

  Pending reduce_scatter_sum(const at::Tensor& flat, const at::Tensor& shard) override {
    check(flat, "reduce_scatter_sum");
    check(shard, "reduce_scatter_sum");
    const int64_t n = shard.numel();
    if (flat.numel() != n * world_size())
      fail("dist", "reduce_scatter_sum: " + std::to_string(flat.numel()) + " elements do not make " +
                       std::to_string(world_size()) + " shards of " + std::to_string(n));
    if (backend_ == DistBackend::kNccl)
      return start("reduce_scatter", [flat, shard, this] {
        at::Tensor in = flat, out = shard;
        c10d::ReduceScatterOptions options;
        options.reduceOp = c10d::ReduceOp::SUM;
        return pg_->_reduce_scatter_base(out, in, options);
      });
    // Gloo has none (1.13 throws for both forms; 2.3+ does this same all-reduce inside): the
    // whole buffer is summed, and this rank keeps its slice.
    const at::Tensor mine = flat.narrow(0, rank() * n, n);
    return start(
        "reduce_scatter",
        [flat, this] {
          std::vector<at::Tensor> tensors{flat};
          c10d::AllreduceOptions options;
          options.reduceOp = c10d::ReduceOp::SUM;
          return pg_->allreduce(tensors, options);
        },
        [mine, shard] {
          if (mine.data_ptr() != shard.data_ptr()) shard.copy_(mine.view_as(shard));
        });
  }

  Pending all_gather(const at::Tensor& shard, const at::Tensor& flat) override {
    check(flat, "all_gather");
    check(shard, "all_gather");
    const int64_t n = shard.numel();
    if (flat.numel() != n * world_size())
      fail("dist", "all_gather: " + std::to_string(flat.numel()) + " elements do not hold " +
                       std::to_string(world_size()) + " shards of " + std::to_string(n));
    if (backend_ == DistBackend::kNccl)
      return start("all_gather", [flat, shard, this] {
        at::Tensor in = shard, out = flat;
        return pg_->_allgather_base(out, in);
      });
    // Gloo 1.13 has no flat all-gather; its list form writes each rank's part into views of the
    // flat output (the same traffic as a flat one, plus one local copy).
    return start("all_gather", [flat, shard, n, this] {
      std::vector<at::Tensor> inputs{shard.reshape({-1})};
      std::vector<std::vector<at::Tensor>> outputs(1);
      const at::Tensor flat1d = flat.reshape({-1});
      for (int r = 0; r < world_size(); ++r) outputs[0].push_back(flat1d.narrow(0, r * n, n));
      return pg_->allgather(outputs, inputs);
    });
  }

  void broadcast(const at::Tensor& tensor, int root) override {
    check(tensor, "broadcast");
    start("broadcast", [tensor, root, this] {
      std::vector<at::Tensor> tensors{tensor};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      return pg_->broadcast(tensors, options);
    }).wait();
  }

  void barrier() override {
    start("barrier", [this] { return pg_->barrier(); }).wait();
  }

  void all_reduce(std::vector<double>& values, ScalarReduce op) override { scalars(values, at::kDouble, op); }
  void all_reduce(std::vector<int64_t>& values, ScalarReduce op) override { scalars(values, at::kLong, op); }

  // Turns the exception of collective #index into the communicator's one error and throws it.
  [[noreturn]] void fail_collective(const char* op, int64_t index, double waited_s, const std::exception& cause);
  void finished() { ++finished_; }

 private:
  Pending start(const char* op, const std::function<WorkPtr()>& launch, std::function<void()> finish = {}) {
    throw_if_failed();
    const int64_t index = ++started_;
    WorkPtr work;
    try {
      work = launch();
    } catch (const std::exception& e) {
      fail_collective(op, index, 0.0, e);
    }
    return Pending(std::make_unique<C10dPending>(*this, op, index, std::move(work), std::move(finish),
                                                 backend_ == DistBackend::kGloo));
  }

  template <class T>
  void scalars(std::vector<T>& values, at::ScalarType type, ScalarReduce op) {
    if (values.empty()) return;
    const c10::Device where = backend_ == DistBackend::kNccl ? device() : c10::Device(c10::kCPU);
    const at::Tensor t =
        torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, type).clone().to(where);
    start("all_reduce(scalars)", [t, op, this] {
      std::vector<at::Tensor> tensors{t};
      c10d::AllreduceOptions options;
      options.reduceOp = reduce_op(op);
      return pg_->allreduce(tensors, options);
    }).wait();
    const at::Tensor back = t.to(c10::kCPU).contiguous();
    std::copy(back.data_ptr<T>(), back.data_ptr<T>() + values.size(), values.begin());
  }

  void check(const at::Tensor& t, const char* op) const {
    if (!t.defined() || !t.is_contiguous())
      fail("dist", std::string(op) + " needs a defined, contiguous tensor");
    if (backend_ == DistBackend::kNccl && !t.is_cuda())
      fail("dist", std::string(op) + " got a " + t.device().str() + " tensor; nccl works on CUDA tensors");
  }

  void throw_if_failed() {
    if (!failed_) return;
    std::lock_guard<std::mutex> lock(failure_mutex_);
    throw Error(where(), failure_, kFaultHint);
  }

  std::string where() const {
    return "dist rank " + std::to_string(rank()) + " of " + std::to_string(world_size());
  }
  std::string status_line() const {
    return "rank=" + std::to_string(rank()) + " started=" + std::to_string(started_.load()) +
           " failed=" + (failed_ ? "1" : "0");
  }
  std::string diagnose(int64_t index) const;

  DistEnv env_;
  DistBackend backend_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<ProcessGroupBase> pg_;
  std::unique_ptr<PeerStatusServer> status_;
  std::vector<std::string> peers_;  // status endpoints by rank; "" for this one
  std::atomic<int64_t> started_{0}, finished_{0};
  std::atomic<bool> failed_{false};
  std::mutex failure_mutex_;
  std::string failure_;
};

C10dPending::C10dPending(C10dCommunicator& comm, const char* op, int64_t index, WorkPtr work,
                         std::function<void()> finish, bool track_completion)
    : comm_(comm), op_(op), index_(index), work_(std::move(work)), finish_(std::move(finish)) {
  if (!track_completion) return;  // NCCL's future completes with the stream, not the transfer
  try {
    auto completed_at = completed_at_;
    work_->getFuture()->addCallback([completed_at](c10::ivalue::Future&) { completed_at->store(now_s()); });
  } catch (const std::exception&) {
    // A backend without futures: wait() returning is then the completion time.
  }
}

void C10dPending::wait() {
  const double t0 = now_s();
  try {
    // Gloo's own timeout (the Options) bounds each transfer; this bounds the whole wait, also
    // for an operation that never starts.
    work_->wait(comm_.timeout());
  } catch (const std::exception& e) {
    comm_.fail_collective(op_, index_, now_s() - t0, e);
  }
  if (finish_) finish_();
  comm_.finished();
}

C10dCommunicator::C10dCommunicator(const DistEnv& env, DistBackend backend, milliseconds timeout,
                                   const c10::Device& device)
    : Communicator(env.rank, env.world_size, device, timeout), env_(env), backend_(backend) {
  const std::string endpoint = env.master_addr + ":" + std::to_string(env.master_port);
  const bool hosts_store = !env.agent_store && env.rank == 0;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = hosts_store;
    options.numWorkers = static_cast<size_t>(env.world_size);
    // The process group's own rendezvous waits for every rank; waiting here too would make a
    // missing rank cost two timeouts.
    options.waitWorkers = false;
    options.timeout = timeout;
    options.multiTenant = !env.agent_store;
    store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    fail(where(),
         std::string(hosts_store ? "cannot host" : "cannot reach") + " the rendezvous store at " + endpoint +
             " within " + seconds_text(timeout.count() / 1000.0) + ": " + cause_line(e),
         hosts_store ? "is the port free? torchrun --standalone picks a free one"
                     : "is rank 0 (or torchrun's agent) up and MASTER_ADDR reachable from this host?");
  }
  // torchrun's agent store outlives restarts: keys of an earlier attempt must not be read as
  // this attempt's (the restarted ranks would connect to addresses of dead processes).
  std::string prefix = "percetrain/" + std::to_string(g_generation++);
  if (env.agent_store) prefix = "/worker/attempt_" + std::to_string(env.restart_count) + "/" + prefix;
  store_ = c10::make_intrusive<c10d::PrefixStore>(prefix, store_);

  status_ = std::make_unique<PeerStatusServer>([this] { return status_line(); });
  const std::string my_status =
      local_address_towards(env.master_addr, env.master_port) + ":" + std::to_string(status_->port());
  try {
    store_->set("status/" + std::to_string(env.rank), bytes_of(my_status));
    if (backend == DistBackend::kGloo) {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      // Gloo listens on the address this host reaches the master with (the one peers can reach
      // too), unless GLOO_SOCKET_IFNAME names an interface, as in PyTorch.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      options->devices.push_back(
          ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                            : c10d::ProcessGroupGloo::createDeviceForHostname(my_status.substr(0, my_status.rfind(':'))));
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env.rank, env.world_size, options);
    } else {
#ifdef PERCETRAIN_WITH_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, env.rank, env.world_size, options);
#endif
    }
    for (int r = 0; r < env.world_size; ++r) {
      if (r == env.rank) {
        peers_.emplace_back();
        continue;
      }
      const auto value = store_->get("status/" + std::to_string(r));
      peers_.emplace_back(value.begin(), value.end());
    }
  } catch (const std::exception& e) {
    std::vector<int> missing;
    try {
      for (int r = 0; r < env.world_size; ++r)
        if (!store_->check({"status/" + std::to_string(r)})) missing.push_back(r);
    } catch (const std::exception&) {
    }
    fail(where(),
         "the process group did not form within " + seconds_text(timeout.count() / 1000.0) +
             (missing.empty() ? "" : ": " + rank_list(missing) + " never joined") + " [" + cause_line(e) + "]",
         "did every rank start? WORLD_SIZE must count them all");
  }
}

C10dCommunicator::~C10dCommunicator() {
  status_.reset();
  if (failed_ || started_ != finished_) {
    // A failed (or never waited for) collective may still occupy the process group's threads,
    // and its destructor would wait for them up to the timeout: the process is ending anyway.
    (void)pg_.release();
    (void)store_.release();
  }
}

void C10dCommunicator::fail_collective(const char* op, int64_t index, double waited_s, const std::exception& cause) {
  std::lock_guard<std::mutex> lock(failure_mutex_);
  if (!failed_) {
    failure_ = std::string(op) + " #" + std::to_string(index) + " failed after " + seconds_text(waited_s) +
               " of waiting: " + diagnose(index) + " [" + backend() + ": " + cause_line(cause) + "]";
    failed_ = true;
  }
  throw Error(where(), failure_, kFaultHint);
}

std::string C10dCommunicator::diagnose(int64_t index) const {
  const auto answers = ask_peers(peers_, std::min<milliseconds>(timeout(), milliseconds(2000)));
  std::vector<int> gone, unreachable, frozen, failed;
  std::vector<std::pair<int, int64_t>> behind;
  for (int r = 0; r < world_size(); ++r) {
    if (r == rank()) continue;
    const auto& a = answers[static_cast<size_t>(r)];
    switch (a.kind) {
      case PeerAnswer::kRefused:
      case PeerAnswer::kClosed:  // killed moments ago: its sockets are being closed
        gone.push_back(r);
        break;
      case PeerAnswer::kUnreachable:
        unreachable.push_back(r);
        break;
      case PeerAnswer::kSilent:
        frozen.push_back(r);
        break;
      case PeerAnswer::kAnswered: {
        const size_t at = a.text.find("started=");
        const int64_t started = at == std::string::npos ? -1 : std::atoll(a.text.c_str() + at + 8);
        if (a.text.find("failed=1") != std::string::npos)
          failed.push_back(r);
        else if (started >= 0 && started < index)
          behind.emplace_back(r, started);
        break;
      }
    }
  }
  std::vector<std::string> parts;
  const bool store_host_gone =
      !env_.agent_store && std::find(gone.begin(), gone.end(), 0) != gone.end();
  if (!gone.empty())
    parts.push_back(rank_list(gone) + (gone.size() == 1 ? " was" : " were") +
                    " lost (its status port refuses or drops connections: the process exited, was killed or crashed" +
                    (store_host_gone ? "; rank 0 also hosted the rendezvous store" : "") + ")");
  if (!unreachable.empty())
    parts.push_back(rank_list(unreachable) + " cannot be reached (host down or network cut: " +
                    answers[static_cast<size_t>(unreachable.front())].text + ")");
  if (!frozen.empty())
    parts.push_back(rank_list(frozen) + " accepts connections but does not answer (frozen or stopped)");
  if (!behind.empty()) {
    std::string text;
    for (size_t i = 0; i < behind.size(); ++i)
      text += (i ? ", " : "") + std::to_string(behind[i].first) + " (at #" + std::to_string(behind[i].second) + ")";
    parts.push_back(std::string(behind.size() == 1 ? "rank " : "ranks ") + text +
                    " is alive but has not reached this collective within the " +
                    seconds_text(timeout().count() / 1000.0) + " timeout: stuck, or slower than the timeout");
  }
  if (parts.empty())
    parts.push_back(failed.empty() ? "every rank answers and has reached it (a transport error)"
                                   : rank_list(failed) + " failed too, no rank is missing (a transport error)");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out;
}

}  // namespace

std::unique_ptr<Communicator> make_c10d_communicator(const DistEnv& env, DistBackend backend, milliseconds timeout,
                                                     const c10::Device& device) {
#ifndef PERCETRAIN_WITH_NCCL
  if (backend == DistBackend::kNccl) fail("dist backend", "nccl is not in this build");
#endif
  return std::make_unique<C10dCommunicator>(env, backend, timeout, device);
}

}  // namespace percetrain::dist_detail
