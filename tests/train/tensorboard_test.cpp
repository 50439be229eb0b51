// TensorBoard event files through the binary (issue 25, item 5): output.dir/tb/ holds one event
// file whose records parse (lengths and masked CRC-32Cs checked here), whose first event is the
// file version and whose events are metrics.jsonl's rows, step for step, value for value (as
// float32); after --stop-after and --resume no step is there twice; the manifest records tb/, so
// --overwrite removes our event file and keeps a file somebody else put there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "percetrain/train/metrics_log.hpp"
#include "percetrain/util/checksum.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using percetrain::masked_crc32c;
using percetrain::tensorboard_tag;
using percetrain::testing_util::read_file;
using percetrain::testing_util::run_percetrain;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::source_dir;
using percetrain::testing_util::write_file;

namespace tensorboard_test {

struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;  // tag, simple_value
};

uint64_t varint(const std::string& s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    if (at >= s.size() || shift >= 64) throw std::runtime_error("truncated varint");
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
}

// Calls f(field, wire type, varint value, bytes) for each field of a protobuf message.
template <class F>
void fields(const std::string& m, F f) {
  for (size_t at = 0; at < m.size();) {
    const uint64_t key = varint(m, at);
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (wire == 0) {
      f(field, wire, varint(m, at), std::string());
    } else if (wire == 1 || wire == 5) {
      const size_t n = wire == 1 ? 8 : 4;
      if (at + n > m.size()) throw std::runtime_error("truncated fixed field");
      f(field, wire, 0, m.substr(at, n));
      at += n;
    } else if (wire == 2) {
      const uint64_t n = varint(m, at);
      if (n > m.size() - at) throw std::runtime_error("truncated bytes field");
      f(field, wire, 0, m.substr(at, n));
      at += n;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(wire));
    }
  }
}

// Every record of an event file, its framing and both CRCs checked; a bad one fails the test.
std::vector<Event> read_events(const fs::path& path) {
  const std::string text = read_file(path);
  std::vector<Event> events;
  size_t at = 0;
  while (at < text.size()) {
    EXPECT_LE(at + 12, text.size()) << path << ": a truncated record header at byte " << at;
    if (at + 12 > text.size()) break;
    uint64_t length;
    uint32_t length_crc, data_crc;
    std::memcpy(&length, text.data() + at, 8);
    std::memcpy(&length_crc, text.data() + at + 8, 4);
    EXPECT_EQ(length_crc, masked_crc32c(text.data() + at, 8)) << path << ": the length CRC at byte " << at;
    EXPECT_LE(at + 16 + length, text.size()) << path << ": a truncated record at byte " << at;
    if (at + 16 + length > text.size()) break;
    const std::string data = text.substr(at + 12, length);
    std::memcpy(&data_crc, text.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, masked_crc32c(data.data(), data.size())) << path << ": the data CRC at byte " << at;
    at += 16 + length;
    Event e;
    fields(data, [&](int field, int wire, uint64_t v, const std::string& bytes) {
      if (field == 1 && wire == 1) std::memcpy(&e.wall_time, bytes.data(), 8);
      if (field == 2 && wire == 0) e.step = static_cast<int64_t>(v);
      if (field == 3 && wire == 2) e.file_version = bytes;
      if (field == 5 && wire == 2)
        fields(bytes, [&](int f, int w, uint64_t, const std::string& value) {
          if (f != 1 || w != 2) return;
          std::pair<std::string, float> tv{"", std::nanf("")};
          fields(value, [&](int vf, int vw, uint64_t, const std::string& b) {
            if (vf == 1 && vw == 2) tv.first = b;
            if (vf == 2 && vw == 5) std::memcpy(&tv.second, b.data(), 4);
          });
          e.values.push_back(tv);
        });
    });
    events.push_back(e);
  }
  return events;
}

std::vector<json> rows(const fs::path& metrics) {
  std::vector<json> out;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::vector<fs::path> event_files(const fs::path& tb) {
  std::vector<fs::path> out;
  if (!fs::exists(tb)) return out;
  for (const auto& e : fs::directory_iterator(tb))
    if (e.path().filename().string().find("tfevents") != std::string::npos) out.push_back(e.path());
  return out;
}

// The run's one event file matches its metrics.jsonl; returns its events after the header.
std::vector<Event> check_run(const fs::path& run) {
  const auto files = event_files(run / "tb");
  EXPECT_EQ(files.size(), 1u) << run;
  if (files.size() != 1) return {};
  const std::string name = files[0].filename().string();
  EXPECT_TRUE(std::regex_match(name, std::regex(R"(events\.out\.tfevents\.[0-9]{10,}\.[^.].*\.[0-9]+\.[0-9]+)"))) << name;
  auto events = read_events(files[0]);
  EXPECT_FALSE(events.empty());
  if (events.empty()) return {};
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_TRUE(events[0].values.empty());
  events.erase(events.begin());
  const auto expected = rows(run / "metrics.jsonl");
  EXPECT_EQ(events.size(), expected.size()) << "one event per metrics.jsonl row";
  std::set<std::pair<int64_t, std::string>> seen;
  for (size_t i = 0; i < std::min(events.size(), expected.size()); ++i) {
    const json& row = expected[i];
    EXPECT_EQ(events[i].step, row.at("step").get<int64_t>()) << "row " << i;
    EXPECT_GT(events[i].wall_time, 1.6e9);
    std::vector<std::pair<std::string, float>> want;
    for (const auto& [key, value] : row.items())
      if (value.is_number() && key != "step") want.emplace_back(tensorboard_tag(key, ""), value.get<float>());
    EXPECT_EQ(events[i].values, want) << "row " << i;
    for (const auto& [tag, value] : events[i].values)
      EXPECT_TRUE(seen.insert({events[i].step, tag}).second) << tag << " at step " << events[i].step << " twice";
  }
  return events;
}

std::string train_args(const ScratchDir& dir, const std::string& extra) {
  return "train --quiet --config " + (source_dir() / "configs" / "demo.json").string() + " --set model.path=" +
         (dir / "model").string() + " --set output.dir=" + (dir / "run").string() +
         " --set data.max_records=32 --set train.epochs=2 --set train.log_every=1 --set train.eval_every=2"
         " --set train.save_every=3 " + extra;
}

}  // namespace tensorboard_test

using namespace tensorboard_test;

TEST(TensorBoard, TagsGroupTheCurves) {
  EXPECT_EQ(tensorboard_tag("loss", ""), "train/loss");
  EXPECT_EQ(tensorboard_tag("pir_p90", ""), "train/pir_p90");
  EXPECT_EQ(tensorboard_tag("valid_ce", ""), "valid/ce");
  EXPECT_EQ(tensorboard_tag("valid_rougeL", ""), "valid/rougeL");
  EXPECT_EQ(tensorboard_tag("generate_seconds", ""), "valid/generate_seconds");
  EXPECT_EQ(tensorboard_tag("tokens_per_s", ""), "speed/tokens_per_s");
  EXPECT_EQ(tensorboard_tag("comm_bytes", ""), "speed/comm_bytes");
  EXPECT_EQ(tensorboard_tag("loss", "u07"), "u07/loss");
  EXPECT_EQ(tensorboard_tag("valid_ce", "u07"), "u07/valid_ce");
  EXPECT_EQ(tensorboard_tag("step", ""), "");
  EXPECT_EQ(tensorboard_tag("user_step", "u07"), "");
}

TEST(TensorBoard, EventFileMirrorsMetricsThroughResume) {
  ScratchDir dir("tensorboard");
  ASSERT_EQ(run_percetrain("init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                           " --out " + (dir / "model").string())
                .status,
            0);
  const fs::path run = dir / "run";
  auto r = run_percetrain(train_args(dir, "--stop-after 4"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto first = check_run(run);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first.back().step, 4);
  const json manifest = json::parse(read_file(run / "percetrain-run.json"));
  const auto recorded = manifest.at("files").at("tb").get<std::vector<std::string>>();
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0], event_files(run / "tb").at(0).filename().string());

  // The checkpoint is at step 3: the resumed run rewrites steps 1..3 (with their wall times) and
  // writes 4.. anew, once.
  r = run_percetrain(train_args(dir, "--resume"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto resumed = check_run(run);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.back().step, 8);
  for (size_t i = 0; i < resumed.size() && resumed[i].step <= 3; ++i) {
    ASSERT_LT(i, first.size());
    EXPECT_EQ(resumed[i].wall_time, first[i].wall_time) << "step " << resumed[i].step << " keeps its wall time";
    EXPECT_EQ(resumed[i].values, first[i].values);
  }
  const auto names = json::parse(read_file(run / "percetrain-run.json")).at("files").at("tb").get<std::vector<std::string>>();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0], recorded[0]) << "a resumed run writes its event file under a fresh name";

  // --overwrite removes our event file and keeps somebody else's.
  write_file(run / "tb" / "events.out.tfevents.1.elsewhere.1.0", "not ours");
  r = run_percetrain(train_args(dir, "--overwrite --stop-after 1"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(run / "tb" / "events.out.tfevents.1.elsewhere.1.0"), "not ours");
  EXPECT_EQ(event_files(run / "tb").size(), 2u);
  EXPECT_FALSE(fs::exists(run / "tb" / names[0]));
}

TEST(TensorBoard, AnUnrecordedTbFolderIsNotOurs) {
  ScratchDir dir("tensorboard-foreign");
  ASSERT_EQ(run_percetrain("init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                           " --out " + (dir / "model").string())
                .status,
            0);
  fs::create_directories(dir / "run" / "tb");
  write_file(dir / "run" / "tb" / "events.out.tfevents.1.elsewhere.1.0", "somebody's curves");
  const auto r = run_percetrain(train_args(dir, "--stop-after 1"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("tb/"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "run" / "tb" / "events.out.tfevents.1.elsewhere.1.0"), "somebody's curves");
}
