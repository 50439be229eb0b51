// Reads one JSON object of a config file into plain structs, remembering which keys were used,
// so that an unknown key is an error naming it and the closest known key.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "percetrain/util/error.hpp"

namespace percetrain {

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate closest to `key` when it is plausibly a typo of it, else "".
std::string closest_key(const std::string& key, const std::vector<std::string>& candidates);

// What to write instead of a key people bring from Hugging Face (TrainingArguments, TRL's
// SFTConfig, PEFT's LoraConfig) that percetrain names otherwise: for "train.learning_rate" (or a
// bare "learning_rate"), "learning_rate is Hugging Face's name; percetrain calls it train.lr".
// "" for any other key. One name per setting: the effective config, --set and resume checks
// all use percetrain's, so these are refused with the translation rather than accepted.
std::string hugging_face_key_hint(const std::string& dotted_key);

class JsonObjectReader {
 public:
  // `path` is the dotted location of this object ("train", "data.profile"), `file` the config.
  // `origins` maps dotted keys set on the command line to the --set argument that set them, which
  // errors about those keys name instead of the file.
  JsonObjectReader(const nlohmann::json& object, std::string path, std::string file,
                   const std::map<std::string, std::string>* origins = nullptr);

  // Optional values: `out` keeps its default when the key is absent or null.
  template <typename T>
  JsonObjectReader& get(const char* key, T& out) {
    known_.push_back(key);
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return *this;
    check_type<T>(*it, key);
    try {
      out = it->template get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(where(key), "has the wrong type: " + it->dump());
    }
    return *this;
  }
  template <typename T>
  JsonObjectReader& require(const char* key, T& out) {
    if (!object_.contains(key) || object_[key].is_null()) fail(where(key), "is required");
    return get(key, out);
  }
  // A nested object (empty object when absent); its own reader checks its keys.
  JsonObjectReader child(const char* key);
  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const nlohmann::json& raw(const char* key);  // marks the key known; null json when absent

  // Throws for the first key that no get/require/child/raw asked for.
  void finish() const;
  std::string where(const std::string& key) const;

 private:
  template <typename T>
  void check_type(const nlohmann::json& value, const char* key) const {
    bool ok = true;
    if constexpr (std::is_same_v<T, bool>) ok = value.is_boolean();
    else if constexpr (std::is_integral_v<T>) ok = value.is_number_integer();
    else if constexpr (std::is_floating_point_v<T>) ok = value.is_number();
    else if constexpr (std::is_same_v<T, std::string>) ok = value.is_string();
    if (!ok) fail(where(key), "has the wrong type: " + value.dump());
    if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>)
      if (value.get<int64_t>() < 0) fail(where(key), "must not be negative");
  }

  nlohmann::json object_;
  std::string path_, file_;
  const std::map<std::string, std::string>* origins_ = nullptr;
  std::vector<std::string> known_;
};

}  // namespace percetrain
