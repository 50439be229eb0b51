// The folder layout is the data flow: a source or header of one stage includes percetrain headers
// of its own stage or of stages below it, never above (docs/layout.md, "Layout").
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

// Lower numbers sit lower. Stages on one level may include each other's headers.
const std::map<std::string, int>& stage_levels() {
  static const std::map<std::string, int> levels = {
      {"util", 0},  {"io", 1},     {"tokenizer", 1}, {"model", 2},    {"data", 2},   {"pass", 3},
      {"objective", 3}, {"config", 4}, {"train", 5}, {"score", 5}, {"generate", 5}, {"eval", 5},
      {"bench", 5}, {"report", 5}, {"dist", 4}, {"cli", 6}};
  return levels;
}

TEST(Layout, IncludesPointDownTheStages) {
  const fs::path root = percetrain::testing_util::source_dir();
  const std::regex include_line(R"re(^\s*#\s*include\s+"(percetrain/)?([a-z_]+)/[^"]+")re");
  int files = 0;
  std::string violations;
  for (const fs::path top : {root / "src", root / "include" / "percetrain"}) {
    for (const auto& entry : fs::recursive_directory_iterator(top)) {
      if (!entry.is_regular_file()) continue;
      const auto ext = entry.path().extension();
      if (ext != ".cpp" && ext != ".hpp") continue;
      const fs::path relative = fs::relative(entry.path(), top);
      if (relative.begin() == relative.end() || std::next(relative.begin()) == relative.end()) continue;  // pch.hpp
      const std::string stage = relative.begin()->string();
      ASSERT_TRUE(stage_levels().count(stage)) << entry.path() << ": stage '" << stage << "' has no level here";
      ++files;
      std::ifstream in(entry.path());
      int line_number = 0;
      for (std::string line; std::getline(in, line);) {
        ++line_number;
        std::smatch m;
        if (!std::regex_search(line, m, include_line)) continue;
        const std::string target = m[2];
        const auto it = stage_levels().find(target);
        if (it == stage_levels().end()) continue;  // e.g. "spm_module/..." inside tokenizer
        if (it->second > stage_levels().at(stage))
          violations += entry.path().string() + ":" + std::to_string(line_number) + ": " + stage + " includes " +
                        target + "\n";
      }
    }
  }
  EXPECT_GT(files, 50);
  EXPECT_EQ(violations, "") << "includes that run back up the stages:\n" << violations;
}

}  // namespace
