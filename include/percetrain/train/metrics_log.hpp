// What a run tells its user while it trains: metrics.jsonl rows and the progress line.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace percetrain {

// output.dir/metrics.jsonl, one JSON object per line. A resumed run keeps only the rows of the
// steps its checkpoint has seen, so the file reads as one uninterrupted run. A failed write
// (disk full) stops the job with an error naming the file.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, int64_t keep_through_step);
  void append(const nlohmann::json& row);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// A live line on a terminal (rewritten in place), plain lines otherwise; nothing when disabled.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  // Rewrites the live line; a plain line is printed only when `force_line`.
  void update(const std::string& text, bool force_line);
  void line(const std::string& text);  // a line of its own
  bool live() const { return live_; }

 private:
  bool enabled_, live_;
};

// "1h05m" or "3m07s"; "?" for a negative or infinite time.
std::string format_duration(double seconds);

}  // namespace percetrain
