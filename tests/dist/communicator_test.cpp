// The communicator's environment parsing, the single-rank no-op, bucket layouts and ZeRO
// partitions, and the reducer on one rank: everything that needs no second process.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <random>

#include "dist/dist_test_util.hpp"
#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/grad_reducer.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

using testing_util::throws_error;

DistEnv parse_env(const std::map<std::string, std::string>& vars) {
  return DistEnv::parse([&](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(DistEnv, OneRankWithoutWorldSize) {
  const auto env = parse_env({{"RANK", "3"}});
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.rank, 0);
  EXPECT_FALSE(env.distributed());
  EXPECT_EQ(parse_env({{"WORLD_SIZE", "1"}}).world_size, 1);
}

TEST(DistEnv, ReadsTorchrunVariables) {
  const auto env = parse_env({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                              {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"},
                              {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 2);
  EXPECT_EQ(env.master_addr, "node0");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_TRUE(env.agent_store);
  EXPECT_EQ(env.restart_count, 2);
  EXPECT_FALSE(parse_env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "h"},
                          {"MASTER_PORT", "1"}, {"TORCHELASTIC_USE_AGENT_STORE", "False"}})
                   .agent_store);
}

TEST(DistEnv, BadVariablesAreNamed) {
  const std::map<std::string, std::string> good = {
      {"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}};
  auto without = [&](const std::string& name) {
    auto vars = good;
    vars.erase(name);
    return vars;
  };
  auto with = [&](const std::string& name, const std::string& value) {
    auto vars = good;
    vars[name] = value;
    return vars;
  };
  EXPECT_TRUE(throws_error([&] { parse_env(without("RANK")); }, "environment variable RANK: is not set"));
  EXPECT_TRUE(throws_error([&] { parse_env(without("LOCAL_RANK")); }, "LOCAL_RANK"));
  EXPECT_TRUE(throws_error([&] { parse_env(without("MASTER_ADDR")); }, "MASTER_ADDR"));
  EXPECT_TRUE(throws_error([&] { parse_env(with("RANK", "2")); }, "RANK: is '2', not an integer in [0, 1]"));
  EXPECT_TRUE(throws_error([&] { parse_env(with("MASTER_PORT", "http")); }, "MASTER_PORT"));
  EXPECT_TRUE(throws_error([&] { parse_env(with("WORLD_SIZE", "0")); }, "WORLD_SIZE"));
}

TEST(SingleRankCommunicator, EveryCollectiveIsANoOp) {
  const auto comm = make_communicator(parse_env({}), DistBackend::kAuto, 1.0, c10::kCPU);
  EXPECT_EQ(comm->backend(), "single");
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_TRUE(comm->is_root());
  EXPECT_FALSE(comm->distributed());

  const auto t = torch::arange(6, torch::kFloat) * 0.37;
  const auto before = t.clone();
  auto pending = comm->all_reduce_sum(t);
  EXPECT_FALSE(pending.in_flight());
  pending.wait();
  EXPECT_TRUE(torch::equal(t, before));
  comm->broadcast(t, 0);
  comm->barrier();
  EXPECT_TRUE(torch::equal(t, before));

  const auto shard = torch::zeros({6});
  comm->reduce_scatter_sum(t, shard).wait();
  EXPECT_TRUE(torch::equal(shard, before));
  const auto gathered = torch::zeros({6});
  comm->all_gather(t, gathered).wait();
  EXPECT_TRUE(torch::equal(gathered, before));
  comm->all_gather(t, t).wait();  // in place: nothing to copy

  std::vector<double> d{1.5, -2.0};
  std::vector<int64_t> i{7, 9};
  comm->all_reduce(d, ScalarReduce::kMax);
  comm->all_reduce(i);
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(i, (std::vector<int64_t>{7, 9}));
  EXPECT_TRUE(comm->any(true));
  EXPECT_FALSE(comm->any(false));
}

TEST(SingleRankCommunicator, BackendChoiceIsChecked) {
  const auto env = parse_env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "127.0.0.1"},
                              {"MASTER_PORT", "29500"}});
  if (!nccl_available())
    EXPECT_TRUE(throws_error([&] { make_communicator(env, DistBackend::kNccl, 5.0, c10::kCPU); },
                             "nccl is not in this build"));
  EXPECT_TRUE(throws_error([&] { make_communicator(env, DistBackend::kGloo, 0.0, c10::kCPU); }, "must be positive"));
  DistBackend backend;
  ASSERT_TRUE(enum_from_name("gloo", &backend));
  EXPECT_EQ(backend, DistBackend::kGloo);
}

TEST(BucketLayout, ReverseOrderBucketsOfWholeParameters) {
  // Parameters of 4, 10, 3, 30, 2 elements into buckets of at most 14, last parameter first.
  const auto layout = BucketLayout::plan({4, 10, 3, 30, 2}, 14, 1, false);
  ASSERT_EQ(layout.buckets.size(), 4u);
  auto params_of = [&](size_t b) {
    std::vector<size_t> out;
    for (const auto& s : layout.buckets[b].slots) out.push_back(s.param);
    return out;
  };
  EXPECT_EQ(params_of(0), (std::vector<size_t>{4}));     // 30 does not fit beside 2
  EXPECT_EQ(params_of(1), (std::vector<size_t>{3}));     // a parameter over the limit goes alone
  EXPECT_EQ(params_of(2), (std::vector<size_t>{2, 1}));  // 3 + 10 fit
  EXPECT_EQ(params_of(3), (std::vector<size_t>{0}));
  EXPECT_EQ(layout.flat_numel, 49);
  EXPECT_EQ(layout.buckets[2].slots[1].offset, 3);
  EXPECT_EQ(layout.buckets[3].flat_offset, 45);
  EXPECT_EQ(layout.bucket_of[1], 2u);
  EXPECT_EQ(layout.slot_of[1], 1u);
  // ZeRO pads each bucket to the world size: 2, 30, 13, 4 -> 3, 30, 15, 6 for three ranks.
  const auto sharded = BucketLayout::plan({4, 10, 3, 30, 2}, 14, 3, true);
  EXPECT_EQ(sharded.flat_numel, 54);
  EXPECT_EQ(sharded.shard_numel, 18);
  EXPECT_EQ(sharded.buckets[2].slice, 5);
  EXPECT_EQ(sharded.buckets[2].shard_offset, 11);
}

TEST(BucketLayout, ZeroShardsCoverTheFlatSpaceExactlyOnce) {
  std::mt19937 rng(5);
  for (int world : {1, 2, 3, 4, 7}) {
    for (int64_t bucket : {1, 9, 64, 1000}) {
      std::vector<int64_t> numels;
      for (int k = 0; k < 13; ++k) numels.push_back(static_cast<int64_t>(rng() % 40));
      const auto layout = BucketLayout::plan(numels, bucket, world, true);
      EXPECT_EQ(layout.flat_numel % world, 0);
      EXPECT_EQ(layout.shard_numel * world, layout.flat_numel);
      // Count how often every element of every parameter is owned, and that each rank's
      // pieces tile its shard without gaps beyond padding or overlaps.
      std::vector<std::vector<int>> owned(numels.size());
      for (size_t p = 0; p < numels.size(); ++p) owned[p].assign(static_cast<size_t>(numels[p]), 0);
      int64_t total = 0;
      for (int r = 0; r < world; ++r) {
        std::vector<int> shard_use(static_cast<size_t>(layout.shard_numel), 0);
        for (const auto& piece : layout.shard_pieces(r)) {
          for (int64_t k = 0; k < piece.numel; ++k) {
            ++owned[piece.param][static_cast<size_t>(piece.param_offset + k)];
            ++shard_use[static_cast<size_t>(piece.shard_offset + k)];
          }
          total += piece.numel;
        }
        for (int use : shard_use) EXPECT_LE(use, 1);
      }
      for (const auto& counts : owned)
        for (int c : counts) EXPECT_EQ(c, 1) << "world " << world << ", bucket " << bucket;
      EXPECT_EQ(total, std::accumulate(numels.begin(), numels.end(), int64_t{0}));
    }
  }
}

// One rank: the reducer hands back exactly the local gradients, with hooks or without, and its
// zero shard is the whole flat gradient.
TEST(GradReducer, OneRankGivesTheLocalGradients) {
  auto comm = make_single_rank_communicator();
  for (int zero : {0, 1, 2}) {
    for (bool overlap : {true, false}) {
      if (zero == 2 && !overlap) continue;
      auto model = dist_test::tiny_model();
      const auto expected = dist_test::local_gradients(model, 0, 2);
      auto params = dist_test::parameters(model);
      GradReducerOptions options;
      options.bucket_mib = 0.004;  // ~1,000 floats: several buckets
      options.overlap = overlap;
      options.zero_stage = zero;
      GradReducer reducer(*comm, params, {}, options);
      EXPECT_GT(reducer.layout().buckets.size(), 3u);
      reducer.begin_step();
      for (int k = 0; k < 2; ++k) {
        reducer.set_last_backward(k == 1);
        dist_test::micro_batch_loss(model, 0, k).backward();
      }
      reducer.finish();
      EXPECT_EQ(reducer.stats().started_in_backward > 0, overlap);
      if (zero == 0) {
        for (size_t i = 0; i < params.size(); ++i)
          EXPECT_TRUE(torch::equal(params[i].grad(), expected[i])) << "param " << i << " overlap " << overlap;
      } else {
        for (const auto& piece : reducer.shard_pieces())
          EXPECT_TRUE(torch::equal(reducer.shard_grads().narrow(0, piece.shard_offset, piece.numel),
                                   expected[piece.param].reshape({-1}).narrow(0, piece.param_offset, piece.numel)));
        for (const auto& p : params) EXPECT_FALSE(p.grad().defined());
        const auto before = params[3].detach().clone();
        reducer.gather_parameters();  // no step: the values come back unchanged
        EXPECT_TRUE(torch::equal(params[3], before));
      }
    }
  }
}


// Activation checkpointing back-propagates through each layer in a nested backward: the
// accumulators' hooks still fire there, once per parameter.
TEST(GradReducer, HooksFireThroughActivationCheckpointing) {
  auto comm = make_single_rank_communicator();
  auto model = dist_test::tiny_model();
  const auto expected = dist_test::local_gradients(model, 1, 1);
  model->set_gradient_checkpointing(true);
  auto params = dist_test::parameters(model);
  GradReducerOptions options;
  options.bucket_mib = 0.004;
  GradReducer reducer(*comm, params, {}, options);
  reducer.begin_step();
  dist_test::micro_batch_loss(model, 1, 0).backward();
  reducer.finish();
  EXPECT_EQ(reducer.stats().started_in_backward, reducer.stats().buckets);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i].grad(), expected[i])) << i;
}

}  // namespace
}  // namespace percetrain
