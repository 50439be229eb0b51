// The rank side of the DistLaunch tests: each test here runs only in a process that torchrun
// started with PERCETRAIN_DIST_SCENARIO naming its scenario (tests/dist/dist_launch_test.cpp);
// elsewhere it skips. Expected values are computed locally for every rank, never communicated.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "dist/dist_test_util.hpp"
#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/grad_reducer.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

#define REQUIRE_SCENARIO(name)                                                                   \
  if (env_or("PERCETRAIN_DIST_SCENARIO", "") != name)                                            \
  GTEST_SKIP() << "runs on the ranks that torchrun starts for the DistLaunch tests (scenario " \
               << name << ")"

// One process group per process, as in a real run (rank 0 hosts the store on a fixed port).
Communicator& comm() {
  static const std::unique_ptr<Communicator> c =
      make_communicator(DistBackend::kGloo, std::stod(env_or("PERCETRAIN_DIST_TIMEOUT_S", "30")), c10::kCPU);
  return *c;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Written whole, then renamed, so that a reader never sees half of it.
void publish(const std::string& name, const std::string& text) {
  const std::string path = env_or("PERCETRAIN_DIST_DIR", ".") + "/" + name;
  std::ofstream(path + ".tmp") << text;
  std::rename((path + ".tmp").c_str(), path.c_str());
}

// What main() does with an error, plus a file for the launching test; the process ends here.
[[noreturn]] void exit_with(const Error& e, double elapsed_s) {
  publish("error." + std::to_string(comm().rank()), "elapsed_s=" + std::to_string(elapsed_s) + "\n" + e.what() + "\n");
  std::fprintf(stderr, "percetrain: %s\n", e.what());
  std::exit(1);
}

torch::Tensor rank_values(int rank, int64_t n, torch::ScalarType type) {
  return ((torch::arange(n, torch::kDouble) * 0.731 + rank * 17.3).sin() * 100.0).to(type);
}

TEST(DistWorker, Collectives) {
  REQUIRE_SCENARIO("exact");
  auto& c = comm();
  ASSERT_EQ(c.world_size(), 2);
  EXPECT_EQ(c.backend(), "gloo");
  const int me = c.rank();
  for (auto type : {torch::kFloat, torch::kDouble}) {
    for (int64_t n : {1, 7, 100003}) {
      const auto t = rank_values(me, n, type);
      c.all_reduce_sum(t).wait();
      EXPECT_TRUE(torch::equal(t, rank_values(0, n, type) + rank_values(1, n, type))) << n;
    }
  }
  {
    const auto flat = rank_values(me, 10, torch::kFloat);
    const auto shard = torch::empty({5});
    c.reduce_scatter_sum(flat, shard).wait();
    const auto sum = rank_values(0, 10, torch::kFloat) + rank_values(1, 10, torch::kFloat);
    EXPECT_TRUE(torch::equal(shard, sum.narrow(0, 5 * me, 5)));
    const auto in_place = rank_values(me, 10, torch::kFloat);  // the shard is a view of the input
    c.reduce_scatter_sum(in_place, in_place.narrow(0, 5 * me, 5)).wait();
    EXPECT_TRUE(torch::equal(in_place.narrow(0, 5 * me, 5), sum.narrow(0, 5 * me, 5)));
  }
  {
    const auto shard = rank_values(me, 3, torch::kFloat);
    const auto flat = torch::zeros({6});
    c.all_gather(shard, flat).wait();
    EXPECT_TRUE(torch::equal(flat, torch::cat({rank_values(0, 3, torch::kFloat), rank_values(1, 3, torch::kFloat)})));
  }
  {
    const auto t = torch::full({4}, static_cast<float>(me) + 0.25f);
    c.broadcast(t, 1);
    EXPECT_TRUE(torch::equal(t, torch::full({4}, 1.25f)));
  }
  c.barrier();
  std::vector<double> d{0.1 + me, -1.0 * me, 3.0};
  c.all_reduce(d);
  EXPECT_EQ(d, (std::vector<double>{0.1 + 1.1, -1.0, 6.0}));
  std::vector<int64_t> i{me, 5 - me};
  c.all_reduce(i, ScalarReduce::kMax);
  EXPECT_EQ(i, (std::vector<int64_t>{1, 5}));
  i = {me, 5 - me};
  c.all_reduce(i, ScalarReduce::kMin);
  EXPECT_EQ(i, (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(c.any(me == 1));
  EXPECT_FALSE(c.any(false));
}

// Rank 0 runs 2 micro-batches, rank 1 runs 3 (or none): the reduced gradient is the sum of both
// ranks' accumulated gradients, bit for bit (two addends: the order cannot matter).
TEST(DistWorker, ReducerSumsGradients) {
  REQUIRE_SCENARIO("exact");
  auto& c = comm();
  const int me = c.rank();
  struct Case {
    bool overlap;
    int rank1_micro_batches;
    bool fp64_targets;
  };
  for (const Case& k : {Case{true, 3, false}, Case{false, 3, false}, Case{true, 0, false}, Case{true, 3, true}}) {
    SCOPED_TRACE("overlap " + std::to_string(k.overlap) + ", rank 1 micro-batches " +
                 std::to_string(k.rank1_micro_batches) + ", fp64 targets " + std::to_string(k.fp64_targets));
    auto model = dist_test::tiny_model();
    const auto g0 = dist_test::local_gradients(model, 0, 2);
    const auto g1 = dist_test::local_gradients(model, 1, k.rank1_micro_batches);
    auto params = dist_test::parameters(model);
    std::vector<torch::Tensor> targets;
    if (k.fp64_targets)
      for (const auto& p : params) targets.push_back(p.detach().to(torch::kDouble).requires_grad_(true));
    GradReducerOptions options;
    options.bucket_mib = 0.004;
    options.overlap = k.overlap;
    GradReducer reducer(c, params, targets, options);
    reducer.begin_step();
    const int mine = me == 0 ? 2 : k.rank1_micro_batches;
    for (int m = 0; m < mine; ++m) {
      reducer.set_last_backward(m == mine - 1);
      dist_test::micro_batch_loss(model, me, m).backward();
    }
    reducer.finish();
    const auto& out = k.fp64_targets ? targets : params;
    for (size_t p = 0; p < params.size(); ++p) {
      const auto expected = k.fp64_targets ? g0[p].to(torch::kDouble) + g1[p].to(torch::kDouble) : g0[p] + g1[p];
      ASSERT_TRUE(out[p].grad().defined()) << p;
      EXPECT_TRUE(torch::equal(out[p].grad(), expected)) << "parameter " << p;
    }
    if (k.fp64_targets)
      for (const auto& p : params) EXPECT_FALSE(p.grad().defined());
    const auto& s = reducer.stats();
    EXPECT_EQ(s.buckets, static_cast<int64_t>(reducer.layout().buckets.size()));
    if (!k.overlap || (me == 1 && k.rank1_micro_batches == 0)) EXPECT_EQ(s.started_in_backward, 0);
    if (k.overlap && mine > 0) EXPECT_GT(s.started_in_backward, 0);
    std::printf("rank %d reducer overlap=%d: %lld buckets, %lld bytes, %lld started in backward, comm %.4f s, "
                "wait %.4f s\n",
                me, k.overlap, static_cast<long long>(s.buckets), static_cast<long long>(s.bytes),
                static_cast<long long>(s.started_in_backward), s.comm_seconds, s.wait_seconds);
  }
}

// ZeRO 1 (after backward) and 2 (during backward): each rank's shard holds its slice of the sum,
// the shards of both ranks cover every parameter element once, and a sharded AdamW step
// followed by the all-gather gives every rank the parameters of a whole AdamW step.
TEST(DistWorker, ZeroShardsSumAndStep) {
  REQUIRE_SCENARIO("exact");
  auto& c = comm();
  const int me = c.rank();
  for (int zero : {1, 2}) {
    SCOPED_TRACE("zero " + std::to_string(zero));
    auto model = dist_test::tiny_model();
    const auto g0 = dist_test::local_gradients(model, 0, 2);
    const auto g1 = dist_test::local_gradients(model, 1, 3);
    auto params = dist_test::parameters(model);
    std::vector<torch::Tensor> reference;
    for (size_t p = 0; p < params.size(); ++p) {
      reference.push_back(params[p].detach().clone().requires_grad_(true));
      reference.back().mutable_grad() = g0[p] + g1[p];
    }
    GradReducerOptions options;
    options.bucket_mib = 0.004;
    options.zero_stage = zero;
    options.overlap = zero == 2;
    options.max_buckets_in_flight = 2;
    GradReducer reducer(c, params, {}, options);
    reducer.begin_step();
    const int mine = me == 0 ? 2 : 3;
    for (int m = 0; m < mine; ++m) {
      reducer.set_last_backward(m == mine - 1);
      dist_test::micro_batch_loss(model, me, m).backward();
    }
    reducer.finish();

    int64_t total = 0;
    for (const auto& p : params) total += p.numel();
    std::vector<torch::Tensor> coverage;
    for (const auto& p : params) coverage.push_back(torch::zeros({p.numel()}));
    for (const auto& piece : reducer.shard_pieces()) {
      EXPECT_TRUE(torch::equal(reducer.shard_grads().narrow(0, piece.shard_offset, piece.numel),
                               reference[piece.param].grad().reshape({-1}).narrow(0, piece.param_offset, piece.numel)));
      coverage[piece.param].narrow(0, piece.param_offset, piece.numel).add_(1);
    }
    const auto covered = torch::cat(coverage);
    c.all_reduce_sum(covered).wait();
    EXPECT_TRUE(torch::equal(covered, torch::ones({total}))) << "every element owned by exactly one rank";
    EXPECT_LE(reducer.layout().shard_numel * 2 - total, 2 * static_cast<int64_t>(reducer.layout().buckets.size()));

    const double norm = reducer.clip_grad_norm(1.0);
    double expected_sq = 0.0;
    for (const auto& r : reference) expected_sq += r.grad().to(torch::kDouble).pow(2).sum().item<double>();
    EXPECT_NEAR(norm, std::sqrt(expected_sq), 1e-9 * std::sqrt(expected_sq));
    torch::nn::utils::clip_grad_norm_(reference, 1.0);

    auto adamw = torch::optim::AdamWOptions(0.01).weight_decay(0.1);
    torch::optim::AdamW sharded(reducer.shard(), adamw);
    torch::optim::AdamW whole(reference, adamw);
    sharded.step();
    whole.step();
    reducer.gather_parameters();
    double worst = 0.0;
    for (size_t p = 0; p < params.size(); ++p)
      worst = std::max(worst, (params[p] - reference[p]).abs().max().item<double>());
    // 0 here; elementwise kernels may round a tensor's vectorised body and its tail differently.
    EXPECT_LE(worst, 1e-6) << "sharded AdamW + all-gather vs one AdamW over the summed gradients";
    std::vector<torch::Tensor> flats;
    for (const auto& p : params) flats.push_back(p.detach().reshape({-1}));
    const auto all = torch::cat(flats);
    const auto twice = all.clone();
    c.all_reduce_sum(twice).wait();
    EXPECT_TRUE(torch::equal(twice, all * 2)) << "ranks hold identical parameters after the all-gather";
    std::printf("rank %d zero %d: shard of %lld elements for %lld parameters, gather %lld bytes in %.4f s, worst "
                "difference from AdamW %.3g\n",
                me, zero, static_cast<long long>(reducer.layout().shard_numel), static_cast<long long>(total),
                static_cast<long long>(reducer.stats().gather_bytes), reducer.stats().gather_seconds, worst);
  }
}

// Rank 1 announces itself and waits to be killed (kill -9 from the launching test) while rank 0
// waits in an all-reduce: rank 0 must fail at once with an error naming rank 1, and exit.
TEST(DistWorker, LosePeer) {
  REQUIRE_SCENARIO("lose_peer");
  auto& c = comm();
  c.barrier();
  if (c.rank() == 1) {
    publish("ready.1", std::to_string(::getpid()));
    std::this_thread::sleep_for(std::chrono::seconds(60));
    FAIL() << "rank 1 was not killed";
  }
  const double t0 = now_s();
  try {
    for (int i = 0; i < 1000; ++i) c.all_reduce_sum(torch::ones({1 << 16})).wait();
  } catch (const Error& e) {
    const double elapsed = now_s() - t0;
    try {
      c.barrier();
    } catch (const Error& again) {
      EXPECT_EQ(std::string(again.what()), std::string(e.what())) << "a failed communicator repeats its error";
    }
    exit_with(e, elapsed);
  }
  FAIL() << "rank 0 saw no error";
}

// Rank 1 stays alive but never joins; rank 0's all-reduce must fail after the timeout with an
// error that says rank 1 is alive but behind. torchrun then stops rank 1.
TEST(DistWorker, Hang) {
  REQUIRE_SCENARIO("hang");
  auto& c = comm();
  c.barrier();
  if (c.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return;
  }
  const double t0 = now_s();
  try {
    c.all_reduce_sum(torch::ones({16})).wait();
  } catch (const Error& e) {
    exit_with(e, now_s() - t0);
  }
  FAIL() << "rank 0 saw no error";
}


}  // namespace
}  // namespace percetrain
