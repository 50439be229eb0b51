// What a run tells its user while it trains: metrics.jsonl rows and the progress line.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace percetrain {

class RunDirectory;

// output.dir/metrics.jsonl, one JSON object per line, and the same scalars as a TensorBoard event
// file in output.dir/tb/ (events.out.tfevents.<seconds>.<host>.<pid>.<n>, recorded in the run's
// manifest). A resumed run keeps only the rows of the steps its checkpoint has seen, so both read
// as one uninterrupted run: the event file is rewritten at open from the kept rows (with the wall
// times the earlier event file gave those steps) under a fresh name, and the earlier one removed.
// A failed write (disk full) stops the job with an error naming the file.
class MetricsLog {
 public:
  MetricsLog(RunDirectory& run, int64_t keep_through_step);
  void append(const nlohmann::json& row);
  const std::string& path() const { return path_; }

 private:
  std::string path_, event_path_;
  std::ofstream out_, events_;
};

// The TensorBoard tag of the metrics.jsonl key `key` of a row (`user`: the row's "user", or ""):
// valid_X -> valid/X, generate_X -> valid/generate_X, the throughput keys (tokens, tokens_per_s,
// response_tokens, step_seconds, peak_memory_mib, comm_*) -> speed/X, anything else -> train/X;
// rows of a per-user run -> <user>/<key> (one group per user). "" for keys that are not curves
// ("step", "user_step").
std::string tensorboard_tag(const std::string& key, const std::string& user);

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
