// Reading JSON that users hand us: limited nesting (a record nested 100,000 deep must be an error
// line, not a stack overflow in a recursive consumer) and, for configs, no duplicate keys.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace percetrain {

struct JsonLimits {
  // Deepest nesting of arrays and objects accepted. Hugging Face tokenizer.json files nest about
  // 8 deep, LaMP records 4; 128 leaves room and keeps every recursive consumer far from its stack.
  size_t max_depth = 128;
  bool reject_duplicate_keys = false;  // configs: a key given twice is a mistake, not "the last wins"
};

// The deepest nesting of `text` ([ and { outside strings), scanning no further than max_depth + 1;
// `offset` (may be null) receives where that depth was first exceeded.
size_t json_nesting_depth(std::string_view text, size_t max_depth, size_t* offset = nullptr);

// Parses `text`; errors are percetrain::Error naming `where` (and the key path of a duplicate).
nlohmann::json parse_json(std::string_view text, const std::string& where, const JsonLimits& limits = {});

// Reads and parses a whole file (a directory, a missing file or a UTF-8 byte-order mark is named).
nlohmann::json read_json_file(const std::string& path, const JsonLimits& limits = {});

}  // namespace percetrain
