// Reading tokenizer_config.json, special_tokens_map.json and generation_config.json.
#include "tokenizer/config_files.hpp"

#include <fstream>
#include <iterator>

#include "percetrain/util/error.hpp"
#include "percetrain/util/json.hpp"

namespace percetrain::tokenizer_files {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), "cannot open for reading");
  // Parsing from memory is several times faster than from the stream (tokenizer.json is ~10 MB).
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const JsonLimits limits;
  if (json_nesting_depth(text, limits.max_depth) > limits.max_depth)
    fail(file.string(), "malformed JSON: nested deeper than " + std::to_string(limits.max_depth) + " levels");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    fail(file.string(), "malformed JSON: " + what, "fix the file or remove it to use the defaults");
  }
}

std::optional<json> read_json_if_present(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  json j = read_json(file);
  if (!j.is_object()) fail(file.string(), "expected a JSON object at the top level");
  return j;
}

TokenField token_field(const json& cfg, const std::string& key, const std::string& file) {
  TokenField f;
  const auto it = cfg.find(key);
  if (it == cfg.end()) return f;
  f.present = true;
  if (it->is_null()) {
    f.null = true;
  } else if (it->is_string()) {
    f.content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    f.content = (*it)["content"].get<std::string>();
  } else {
    fail(file + ": " + key, "expected a token string or an object with a \"content\" string");
  }
  return f;
}

std::optional<bool> bool_field(const json& cfg, const std::string& key, const std::string& file) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) fail(file + ": " + key, "expected true or false");
  return it->get<bool>();
}

std::optional<int> id_field(const json& cfg, const std::string& key, const std::string& file) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  const json* v = &*it;
  if (v->is_array()) {
    if (v->empty()) return std::nullopt;
    v = &(*v)[0];
  }
  if (!v->is_number_integer()) fail(file + ": " + key, "expected an integer or a list of integers");
  return v->get<int>();
}

void read_special_ids(const fs::path& dir, SpecialIds* ids,
                      const std::function<int(const std::string&, const std::string&)>& resolve,
                      const std::function<int(const std::string&)>& lookup,
                      const std::function<int(int, const std::string&)>& check_id) {
  const auto apply_tokens = [&](const json& cfg, const std::string& file) {
    if (const auto f = token_field(cfg, "bos_token", file); f.present)
      ids->bos = f.null ? -1 : resolve(f.content, file + ": bos_token");
    if (const auto f = token_field(cfg, "eos_token", file); f.present)
      ids->eos = f.null ? -1 : resolve(f.content, file + ": eos_token");
    if (const auto f = token_field(cfg, "pad_token", file); f.present) {
      const int id = f.null ? -1 : lookup(f.content);
      if (f.null || id >= 0) ids->pad = id;
    }
  };
  const auto tc_file = dir / "tokenizer_config.json";
  if (const auto cfg = read_json_if_present(tc_file)) {
    const std::string file = tc_file.string();
    ids->add_bos = bool_field(*cfg, "add_bos_token", file);
    ids->add_eos = bool_field(*cfg, "add_eos_token", file);
    apply_tokens(*cfg, file);
  }
  const auto stm_file = dir / "special_tokens_map.json";
  if (const auto cfg = read_json_if_present(stm_file)) apply_tokens(*cfg, stm_file.string());
  const auto gen_file = dir / "generation_config.json";
  if (const auto cfg = read_json_if_present(gen_file)) {
    const std::string file = gen_file.string();
    if (const auto id = id_field(*cfg, "bos_token_id", file)) ids->bos = check_id(*id, file + ": bos_token_id");
    if (const auto id = id_field(*cfg, "eos_token_id", file)) ids->eos = check_id(*id, file + ": eos_token_id");
  }
}

}  // namespace percetrain::tokenizer_files
