// Key tracking and typo hints for config objects.
#include "config/json_reader.hpp"

#include <algorithm>

namespace percetrain {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest_key(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(3, key.size() / 2) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(key, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

JsonObjectReader::JsonObjectReader(const nlohmann::json& object, std::string path, std::string file)
    : object_(object.is_null() ? nlohmann::json::object() : object), path_(std::move(path)), file_(std::move(file)) {
  if (!object_.is_object())
    fail(file_ + (path_.empty() ? "" : ": " + path_), "must be a JSON object, not " + object_.dump());
}

std::string JsonObjectReader::where(const std::string& key) const {
  return file_ + ": " + (path_.empty() ? key : path_ + "." + key);
}

JsonObjectReader JsonObjectReader::child(const char* key) {
  known_.push_back(key);
  auto it = object_.find(key);
  const nlohmann::json empty = nlohmann::json::object();
  return JsonObjectReader(it == object_.end() ? empty : *it, path_.empty() ? key : path_ + "." + key, file_);
}

const nlohmann::json& JsonObjectReader::raw(const char* key) {
  known_.push_back(key);
  static const nlohmann::json null_json;
  auto it = object_.find(key);
  return it == object_.end() ? null_json : *it;
}

void JsonObjectReader::finish() const {
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (std::find(known_.begin(), known_.end(), it.key()) != known_.end()) continue;
    const std::string guess = closest_key(it.key(), known_);
    std::string known_list;
    for (const auto& k : known_) known_list += (known_list.empty() ? "" : ", ") + k;
    fail(where(it.key()), "unknown key",
         guess.empty() ? "known keys here: " + known_list : "did you mean '" + guess + "'?");
  }
}

}  // namespace percetrain
