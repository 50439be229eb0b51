// JSON with limits: a nesting pre-scan before parsing, duplicate keys caught while parsing.
#include "percetrain/util/json.hpp"

#include <nlohmann/json.hpp>

#include <vector>

#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain {

size_t json_nesting_depth(std::string_view text, size_t max_depth, size_t* offset) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
      if (depth > max_depth) {
        if (offset) *offset = i;
        return depth;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

nlohmann::json parse_json(std::string_view text, const std::string& where, const JsonLimits& limits) {
  using json = nlohmann::json;
  size_t offset = 0;
  if (json_nesting_depth(text, limits.max_depth, &offset) > limits.max_depth)
    fail(where, "JSON nested deeper than " + std::to_string(limits.max_depth) + " levels (at byte " +
                    std::to_string(offset) + ")",
         "no dataset or config needs that; is the file what you meant to give?");
  // Duplicate keys: one set of seen keys per open object, and the path of keys for the message.
  std::vector<std::vector<std::string>> seen;
  std::vector<std::string> path;
  std::string pending_key;
  json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        seen.emplace_back();
        path.push_back(pending_key);
        pending_key.clear();
        break;
      case json::parse_event_t::object_end:
        seen.pop_back();
        path.pop_back();
        break;
      case json::parse_event_t::array_start:
        path.push_back(pending_key);
        pending_key.clear();
        break;
      case json::parse_event_t::array_end:
        path.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string key = parsed.get<std::string>();
        for (const auto& k : seen.back())
          if (k == key) {
            std::string dotted;
            for (const auto& p : path)
              if (!p.empty()) dotted += p + ".";
            fail(where + ": " + dotted + key, "is given twice", "keep one of them");
          }
        seen.back().push_back(key);
        pending_key = key;
        break;
      }
      case json::parse_event_t::value:
        pending_key.clear();
        break;
    }
    return true;
  };
  try {
    return limits.reject_duplicate_keys ? json::parse(text.begin(), text.end(), callback) : json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e10000
    std::string what = e.what();
    if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    fail(where, "not valid JSON: " + what);
  }
}

nlohmann::json read_json_file(const std::string& path, const JsonLimits& limits) {
  const std::string text = read_text_file(path, "the file");
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0)
    fail(path, "starts with a UTF-8 byte-order mark (BOM), which JSON does not allow",
         "save it as UTF-8 without BOM, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' " + path);
  return parse_json(text, path, limits);
}

}  // namespace percetrain
