// bench's human output says how far its rounds agree: min / median / max per variant, the PerCE /
// CE ratio per round, and a warning when a busy machine makes the numbers unreliable.
#include <gtest/gtest.h>

#include <string>

#include "percetrain/bench/bench.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

TEST(BenchRounds, SteadyRoundsShowTheirSpreadWithoutAWarning) {
  const std::string out = bench_rounds_report({"ce", "perce"}, {{100, 102, 101}, {110, 108, 109}}, 1.083);
  EXPECT_TRUE(has(out, "rounds (ms/step, min / median / max")) << out;
  EXPECT_TRUE(has(out, "ce                          100.0 / 101.0 / 102.0  spread 2%")) << out;
  EXPECT_TRUE(has(out, "perce                       108.0 / 109.0 / 110.0  spread 2%")) << out;
  // The ratio of the medians, then round by round (round k of both variants ran side by side).
  EXPECT_TRUE(has(out, "PerCE / CE step time: 1.079 (theory 1 + L0/(3 L1) = 1.083); per round: 1.100 1.059 1.079"))
      << out;
  EXPECT_FALSE(has(out, "warning")) << out;
}

TEST(BenchRounds, RoundsThatDisagreeWarnThatTheMachineWasBusy) {
  // The case: a loaded machine turned the ratio upside down in one round.
  const std::string out = bench_rounds_report({"ce", "perce"}, {{100, 160, 104}, {110, 105, 112}}, 1.083);
  EXPECT_TRUE(has(out, "spread 58%")) << out;
  EXPECT_TRUE(has(out, "per round: 1.100 0.656 1.077")) << out;
  EXPECT_TRUE(has(out, "warning: the rounds differ by up to 58% (ce: 100.0 to 160.0 ms/step): the machine was busy, "
                       "so these timings and the ratio are unreliable; rerun with more rounds (--rounds 5)"))
      << out;
}

TEST(BenchRounds, OneRoundSaysItMeasuredNoSpread) {
  const std::string out = bench_rounds_report({"ce", "perce"}, {{100}, {69}}, 1.083);
  EXPECT_FALSE(has(out, "rounds (ms/step")) << out;
  EXPECT_TRUE(has(out, "PerCE / CE step time: 0.690 (theory 1 + L0/(3 L1) = 1.083)\n")) << out;
  EXPECT_TRUE(has(out, "note: one round measures no spread; on a shared machine use --rounds 3 or more")) << out;
  // Without both ce and perce there is no ratio line.
  EXPECT_FALSE(has(bench_rounds_report({"perce"}, {{69, 70}}, 1.083), "PerCE / CE"));
}

TEST(BenchRounds, TheTableShowsTheRoundsThroughTheBinary) {
  testing_util::ScratchDir dir("bench-rounds");
  const std::string config = (testing_util::source_dir() / "configs" / "demo.json").string();
  const auto r = testing_util::run_percetrain(
      "bench --config " + config + " --set model.path=" + (dir.path() / "model").string() +
          " --steps 1 --warmup 0 --with-length 40 --without-length 24 --response-length 8 --variants ce,perce "
          "--rounds 2 2>/dev/null",
      false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "rounds (ms/step, min / median / max")) << r.output;
  EXPECT_TRUE(has(r.output, "(theory 1 + L0/(3 L1) = 1.200); per round: ")) << r.output;
}

}  // namespace
}  // namespace percetrain
