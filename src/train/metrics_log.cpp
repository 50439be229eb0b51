// metrics.jsonl (trimmed on resume, appended per step) and the progress line on stderr.
#include "percetrain/train/metrics_log.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain {

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through_step) : path_(path) {
  std::vector<std::string> kept;
  if (keep_through_step > 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("step", int64_t{0}) <= keep_through_step) kept.push_back(line);
    }
  }
  std::string text;
  for (const auto& l : kept) text += l + "\n";
  write_file_atomic(path, text, "the metrics file");
  out_.open(path, std::ios::app);
  if (!out_) fail(path, "cannot open the metrics file for writing");
}

void MetricsLog::append(const nlohmann::json& row) {
  out_ << row.dump() << "\n";
  out_.flush();
  if (!out_) fail(path_, "cannot write the metrics file", "check the free disk space; the run stopped here");
}

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled), live_(enabled && ::isatty(2)) {}

void ProgressLine::update(const std::string& text, bool force_line) {
  if (!enabled_) return;
  if (live_) {
    std::fprintf(stderr, "\r%-100s", text.c_str());
    if (force_line) std::fprintf(stderr, "\n");
  } else if (force_line) {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

void ProgressLine::line(const std::string& text) {
  if (!enabled_) return;
  std::fprintf(stderr, live_ ? "\r%-100s\n" : "%s\n", text.c_str());
  std::fflush(stderr);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

}  // namespace percetrain
