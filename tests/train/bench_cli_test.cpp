// `percetrain bench` end to end on the demo config's tiny model: rounds, the PerCE/CE ratio and
// the profiler's per-operator table.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.hpp"

namespace percetrain {
namespace {

std::string run_bench_cli(const std::string& args, int* status, bool with_stderr) {
  const auto r = testing_util::run_percetrain(args + (with_stderr ? "" : " 2>/dev/null"), with_stderr);
  *status = r.status;
  return r.output;
}

TEST(BenchCli, AlternatesRoundsAndReportsMediansRatioAndProfile) {
  testing_util::ScratchDir dir("bench-cli");
  const std::string config = (testing_util::source_dir() / "configs" / "demo.json").string();
  const std::string common = "bench --config " + config + " --set model.path=" + (dir.path() / "model").string() +
                             " --steps 1 --warmup 0 --with-length 40 --without-length 24 --response-length 8";
  int status = 0;
  const std::string out = run_bench_cli(common + " --variants ce,perce --rounds 2 --json", &status, false);
  ASSERT_EQ(status, 0) << out;
  const auto report = nlohmann::json::parse(out);
  ASSERT_EQ(report["results"].size(), 2u) << out;
  for (const auto& r : report["results"]) {
    ASSERT_EQ(r["rounds_ms_per_step"].size(), 2u) << r.dump();
    EXPECT_GT(r["ms_per_step"].get<double>(), 0.0);
    EXPECT_GT(r["peak_rss_mib"].get<double>(), 0.0);
  }
  EXPECT_GT(report["perce_over_ce"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(report["theoretical_perce_over_ce"].get<double>(), 1.0 + 24.0 / (3.0 * 40.0));

  // bench measured the demo's random model in memory: it writes no model folder.
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "model"));

  // The same shape from its config.json alone, with random weights.
  ASSERT_EQ(testing_util::run_percetrain("init-model --arch llama --tokenizer " +
                                         (testing_util::source_dir() / "data" / "tokenizer").string() + " --out " +
                                         (dir.path() / "model").string())
                .status,
            0);
  const std::string random = run_bench_cli(common + " --variants ce --json --random-config " +
                                               (dir.path() / "model" / "config.json").string(),
                                           &status, false);
  ASSERT_EQ(status, 0) << random;
  EXPECT_GT(nlohmann::json::parse(random)["results"][0]["ms_per_step"].get<double>(), 0.0);

  const std::string prefix = (dir.path() / "trace").string();
  const std::string table = run_bench_cli(common + " --variants ce --profile " + prefix, &status, true);
  ASSERT_EQ(status, 0) << table;
  EXPECT_TRUE(std::filesystem::exists(prefix + ".ce.json")) << table;
  EXPECT_NE(table.find("self time per step by operator"), std::string::npos) << table;
  EXPECT_NE(table.find("aten::mm"), std::string::npos) << table;
  std::ifstream trace(prefix + ".ce.json");
  const std::string events((std::istreambuf_iterator<char>(trace)), std::istreambuf_iterator<char>());
  EXPECT_NE(events.find("\"percetrain::rms_norm\""), std::string::npos) << "the fused kernels are labelled";
}

}  // namespace
}  // namespace percetrain

// bench --collectives on one rank: the collectives of the single-rank communicator and backward
// alone (the reducer needs several ranks); under torchrun the same command prints the reducer's
// table (docs/distributed.md). A measurement, so only its shape is checked.
TEST(BenchCli, CollectivesRunOnOneRank) {
  const auto r = percetrain::testing_util::run_percetrain(
      "bench --config " + (percetrain::testing_util::source_dir() / "configs" / "demo.json").string() +
      " --collectives --steps 1 --warmup 0");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 rank(s), single"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("25 MiB fp32: all_reduce"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("backward alone"), std::string::npos) << r.output;
}
