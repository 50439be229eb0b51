// metrics.jsonl and its TensorBoard event file (trimmed on resume, appended per row), and the
// progress line on stderr.
#include "percetrain/train/metrics_log.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "percetrain/train/run_dir.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace fs = std::filesystem;

namespace percetrain {
namespace {

// ---- The tfevents format, by hand ---------------------------------------------------------------
// A record is: uint64 length, masked CRC-32C of those 8 bytes, the bytes, masked CRC-32C of them
// (all little-endian). The bytes are a tensorflow.Event protobuf; the few fields written here are
// encoded directly: Event {double wall_time = 1; int64 step = 2; string file_version = 3;
// Summary summary = 5}, Summary {repeated Value value = 1}, Value {string tag = 1;
// float simple_value = 2}.

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <class T>
void put_little_endian(std::string& out, T value) {
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // x86-64 and aarch64 are little-endian, as the format is
  out.append(reinterpret_cast<const char*>(bytes), sizeof(T));
}

void put_bytes_field(std::string& out, int field, const std::string& bytes) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

std::string event_bytes(double wall_time, int64_t step, const std::string& summary, const std::string& file_version) {
  std::string e;
  e.push_back(0x09);  // field 1, fixed64
  put_little_endian(e, wall_time);
  if (step != 0) {
    e.push_back(0x10);  // field 2, varint
    put_varint(e, static_cast<uint64_t>(step));
  }
  if (!file_version.empty()) put_bytes_field(e, 3, file_version);
  if (!summary.empty()) put_bytes_field(e, 5, summary);
  return e;
}

std::string record(const std::string& data) {
  std::string r;
  const uint64_t length = data.size();
  put_little_endian(r, length);
  put_little_endian(r, masked_crc32c(r.data(), 8));
  r += data;
  put_little_endian(r, masked_crc32c(data.data(), data.size()));
  return r;
}

std::string file_version_record(double wall_time) { return record(event_bytes(wall_time, 0, "", "brain.Event:2")); }

// The record of one metrics.jsonl row: every finite number but the step, as in metrics.jsonl
// (which writes NaN and infinities as null). "" when the row has none.
std::string row_record(const nlohmann::json& row, double wall_time) {
  const std::string user = row.contains("user") && row["user"].is_string() ? row["user"].get<std::string>() : "";
  std::string summary;
  for (const auto& [key, value] : row.items()) {
    if (!value.is_number()) continue;
    const double v = value.get<double>();
    const std::string tag = tensorboard_tag(key, user);
    if (tag.empty() || !std::isfinite(v)) continue;
    std::string entry;
    put_bytes_field(entry, 1, tag);
    entry.push_back(0x15);  // field 2, fixed32
    put_little_endian(entry, static_cast<float>(v));
    put_bytes_field(summary, 1, entry);
  }
  if (summary.empty()) return "";
  return record(event_bytes(wall_time, row.value("step", int64_t{0}), summary, ""));
}

double now_wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool read_varint(const std::string& s, size_t& at, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && at < s.size(); shift += 7) {
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// step -> the wall times of that step's events, in order, in an event file of ours, read up to
// the first damaged or incomplete record (a run killed mid-write leaves one at the end).
std::map<int64_t, std::vector<double>> wall_times(const std::string& path) {
  std::map<int64_t, std::vector<double>> out;
  std::error_code ec;
  if (!fs::exists(path, ec)) return out;
  const std::string text = read_text_file(path, "the TensorBoard event file");
  for (size_t at = 0; at + 12 <= text.size();) {
    uint64_t length;
    uint32_t length_crc, data_crc;
    std::memcpy(&length, text.data() + at, 8);
    std::memcpy(&length_crc, text.data() + at + 8, 4);
    if (length_crc != masked_crc32c(text.data() + at, 8) || length > text.size() - at - 16) break;
    const std::string data = text.substr(at + 12, length);
    std::memcpy(&data_crc, text.data() + at + 12 + length, 4);
    if (data_crc != masked_crc32c(data.data(), data.size())) break;
    at += 16 + length;
    // The Event's fields: only wall_time (1) and step (2) matter here; others are skipped.
    double wall = 0;
    int64_t step = 0;
    for (size_t p = 0; p < data.size();) {
      uint64_t key, n;
      if (!read_varint(data, p, key)) break;
      const int wire = static_cast<int>(key & 7), field = static_cast<int>(key >> 3);
      if (wire == 0) {
        if (!read_varint(data, p, n)) break;
        if (field == 2) step = static_cast<int64_t>(n);
      } else if (wire == 1 && p + 8 <= data.size()) {
        if (field == 1) std::memcpy(&wall, data.data() + p, 8);
        p += 8;
      } else if (wire == 2 && read_varint(data, p, n) && n <= data.size() - p) {
        p += n;
      } else if (wire == 5 && p + 4 <= data.size()) {
        p += 4;
      } else {
        break;
      }
    }
    if (step > 0) out[step].push_back(wall);
  }
  return out;
}

std::string hostname() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0 || !name[0]) return "localhost";
  return name;
}

}  // namespace

std::string tensorboard_tag(const std::string& key, const std::string& user) {
  if (key == "step" || key == "user_step") return "";
  if (!user.empty()) return user + "/" + key;
  auto starts = [&](const char* prefix) { return key.rfind(prefix, 0) == 0; };
  if (starts("valid_")) return "valid/" + key.substr(6);
  if (starts("generate_")) return "valid/" + key;
  if (key == "tokens" || key == "tokens_per_s" || key == "response_tokens" || key == "step_seconds" ||
      key == "peak_memory_mib" || starts("comm_"))
    return "speed/" + key;
  return "train/" + key;
}

MetricsLog::MetricsLog(RunDirectory& run, int64_t keep_through_step) : path_(run.file("metrics.jsonl")) {
  std::vector<std::string> kept;
  if (keep_through_step > 0 && fs::exists(path_)) {
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("step", int64_t{0}) <= keep_through_step) kept.push_back(line);
    }
  }
  std::string text;
  for (const auto& l : kept) text += l + "\n";
  write_file_atomic(path_, text, "the metrics file");
  out_.open(path_, std::ios::app);
  if (!out_) fail(path_, "cannot open the metrics file for writing");

  // The event file: written whole from the kept rows under a new name (recorded first), then the
  // earlier ones removed, so that at any kill the newest recorded file that exists is complete
  // through the checkpoint and no step past it survives the next open.
  const std::string tb = run.file("tb");
  const std::vector<std::string> earlier = run.folder_files("tb");
  std::map<int64_t, std::vector<double>> times;
  for (auto it = earlier.rbegin(); it != earlier.rend() && times.empty(); ++it)
    times = wall_times((fs::path(tb) / *it).string());
  // Temporary files of a write that a kill interrupted (write_file_atomic's ".NAME.tmpPID").
  static const std::regex temporary(R"(\.(.+)\.tmp[0-9]+)");
  std::error_code ec;
  if (fs::is_directory(tb, ec))
    for (const auto& entry : fs::directory_iterator(tb)) {
      std::smatch m;
      const std::string name = entry.path().filename().string();
      if (std::regex_match(name, m, temporary) &&
          std::find(earlier.begin(), earlier.end(), m[1].str()) != earlier.end())
        fs::remove(entry.path(), ec);
    }
  const double now = now_wall_time();
  std::string events = file_version_record(now);
  std::map<int64_t, size_t> nth;  // rows of a step seen so far: the k-th row gets the k-th wall time
  for (const auto& line : kept) {
    const auto row = nlohmann::json::parse(line);
    const int64_t step = row.value("step", int64_t{0});
    const auto t = times.find(step);
    const size_t k = nth[step];
    const std::string r = row_record(row, t != times.end() && k < t->second.size() ? t->second[k] : now);
    nth[step] += !r.empty();
    events += r;
  }
  const std::string stem = "events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + hostname() +
                           "." + std::to_string(::getpid()) + ".";
  std::string name;
  for (int n = 0; name.empty() || fs::exists(fs::path(tb) / name, ec) ||
                  std::find(earlier.begin(), earlier.end(), name) != earlier.end();
       ++n)
    name = stem + std::to_string(n);
  event_path_ = (fs::path(tb) / name).string();
  run.record_file_in("tb", name);
  fs::create_directories(tb, ec);
  if (ec) fail(tb, "cannot create the TensorBoard folder: " + ec.message());
  write_file_atomic(event_path_, events, "the TensorBoard event file");
  for (const auto& old : earlier) run.remove_file_in("tb", old);
  events_.open(event_path_, std::ios::app | std::ios::binary);
  if (!events_) fail(event_path_, "cannot open the TensorBoard event file for writing");
}

void MetricsLog::append(const nlohmann::json& row) {
  out_ << row.dump() << "\n";
  out_.flush();
  if (!out_) fail(path_, "cannot write the metrics file", "check the free disk space; the run stopped here");
  const std::string r = row_record(row, now_wall_time());
  if (r.empty()) return;
  events_.write(r.data(), static_cast<std::streamsize>(r.size()));
  events_.flush();
  if (!events_)
    fail(event_path_, "cannot write the TensorBoard event file", "check the free disk space; the run stopped here");
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
