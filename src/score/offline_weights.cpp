// score's weights written back into the records they were computed for, as token_weights.
#include "percetrain/score/offline_weights.hpp"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "percetrain/report/score_report.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

using nlohmann::json;

namespace percetrain {
namespace {

// The id as records.cpp reads it: strings as they are, numbers as their JSON text.
std::string id_text(const json& id) { return id.is_string() ? id.get<std::string>() : id.dump(); }

}  // namespace

WeightedRecordsResult write_weighted_records(const std::string& data_file, const std::string& scores_file,
                                             const std::string& out) {
  std::map<std::string, std::vector<double>> weights;
  {
    std::ifstream in(scores_file);
    if (!in) fail(scores_file, "cannot be read", "write it with percetrain score --out");
    int64_t line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (line.empty()) continue;
      const RecordScore r = record_from_json_line(line, scores_file + ":" + std::to_string(line_number));
      std::vector<double>& w = weights[r.id];
      for (const auto& t : r.tokens) w.push_back(t.weight);
    }
  }

  // The records: a JSON array as a whole, JSONL line by line.
  const std::string text = read_text_file(data_file, "the data file");
  std::vector<std::pair<std::string, json>> records;  // where, record
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    const json all = json::parse(text, nullptr, false);
    if (all.is_discarded() || !all.is_array()) fail(data_file, "is not a valid JSON array of records");
    for (size_t i = 0; i < all.size(); ++i) records.emplace_back(data_file + "[" + std::to_string(i) + "]", all[i]);
  } else {
    std::ifstream in(data_file);
    int64_t line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = data_file + ":" + std::to_string(line_number);
      json record = json::parse(line, nullptr, false);
      if (record.is_discarded()) fail(where, "is not valid JSON");
      records.emplace_back(where, std::move(record));
    }
  }

  WeightedRecordsResult result;
  std::string written;
  for (auto& [where, record] : records) {
    if (!record.is_object()) fail(where, "is not a JSON object");
    if (!record.contains("id") || record["id"].is_null())
      fail(where + ": id", "is missing", "token weights are joined to their record by id");
    const auto it = weights.find(id_text(record["id"]));
    if (it != weights.end()) {
      record.erase("weighted_spans");
      record["token_weights"] = it->second;
      ++result.weighted;
    }
    written += record.dump() + "\n";
    ++result.records;
  }
  write_file_atomic(out, written, "the weighted records");
  return result;
}

}  // namespace percetrain
