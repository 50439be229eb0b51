// inspect-data end to end: the binary on the demo config prints prompts, retrieval and counts.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "test_util.hpp"

namespace percetrain {
namespace {

std::string run(const std::string& args, int* status) {
  const auto r = testing_util::run_percetrain(args);
  *status = r.status;
  return r.output;
}

TEST(InspectData, DemoConfigShowsBothPromptsAndCounts) {
  const std::string config = (testing_util::source_dir() / "data" / "demo" / "job.json").string();
  int status = 0;
  const std::string out = run("inspect-data --config " + config + " --data " +
                                  (testing_util::source_dir() / "data" / "demo" / "valid.jsonl").string() +
                                  " --limit 1",
                              &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("=== record "), std::string::npos) << out;
  EXPECT_NE(out.find("retrieved (bm25, 4 of "), std::string::npos) << out;
  EXPECT_NE(out.find("score "), std::string::npos) << out;
  EXPECT_NE(out.find("personalised prompt ("), std::string::npos) << out;
  EXPECT_NE(out.find("Here are some of the user's past reviews:"), std::string::npos) << out;
  EXPECT_NE(out.find("counterfactual prompt ("), std::string::npos) << out;
  EXPECT_NE(out.find("identical in both sequences"), std::string::npos) << out;
  EXPECT_NE(out.find("records: 32, examples: 32, skipped: 0"), std::string::npos) << out;
  EXPECT_EQ(out.find("=== record", out.find("=== record") + 1), std::string::npos) << "--limit 1 printed more";

  const std::string bad = run("inspect-data --config " + config + " --set data.preset=lamp9", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.find("data.preset"), std::string::npos) << bad;
}

// A record with 200 KB of input after the preset's query marker: std::regex recursed once per
// character and the process died of a stack overflow (SIGSEGV), whatever on_bad_record said.
TEST(InspectData, HugeInputAfterTheQueryMarkerDoesNotCrash) {
  const testing_util::ScratchDir dir("percetrain-huge-input");
  std::string words;
  for (int i = 0; i < 40000; ++i) words += "word ";
  {
    std::ofstream out(dir / "big.jsonl", std::ios::binary);
    out << R"({"id": "big", "input": "Generate a review for a product with description )" << words
        << R"(", "output": "Fine.", "profile": [{"overall": 4.0, "summary": "Nice", "reviewText": "Good mug.", "description": "Mug."}]})"
        << "\n";
  }
  const std::string config = (testing_util::source_dir() / "data" / "demo" / "job.json").string();
  for (const std::string policy : {"strict", "skip"}) {
    int status = 0;
    const std::string out = run("inspect-data --config " + config + " --data " + (dir / "big.jsonl").string() +
                                    " --set data.on_bad_record=" + policy + " --limit 1",
                                &status);
    EXPECT_LT(status, 128) << out;
    EXPECT_TRUE(status == 0 || status == 1) << status << ": " << out.substr(0, 500);
    if (status == 0) EXPECT_NE(out.find("records: 1"), std::string::npos) << out.substr(0, 500);
  }
}

TEST(DemoData, ScriptReproducesTheCommittedFilesByteForByte) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "/usr/bin/python3 is absent";
  const std::string script = (testing_util::source_dir() / "scripts" / "make_demo_data.py").string();
  const std::string out = (testing_util::source_dir() / "data" / "demo").string();
  const auto r = testing_util::run_command("/usr/bin/python3 " + script + " --check --out " + out);
  EXPECT_EQ(r.status, 0) << r.output;
}

}  // namespace
}  // namespace percetrain
