// Checks of option values that CLI11 runs while parsing (see job_options.hpp).
#include "cli/job_options.hpp"

#include <algorithm>
#include <filesystem>

#include "config/json_reader.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain::cli {

CLI::Validator at_least(int64_t min) {
  return CLI::Validator(
      [min](std::string& input) -> std::string {
        const std::string bad = "must be a whole number >= " + std::to_string(min) + ", not " + quote_name(input);
        const size_t digits = input.rfind('-', 0) == 0 || input.rfind('+', 0) == 0 ? 1 : 0;
        if (input.size() == digits || input.find_first_not_of("0123456789", digits) != std::string::npos) return bad;
        int64_t value = 0;
        try {
          value = std::stoll(input);
        } catch (const std::exception&) {
          return "is too large: " + input;
        }
        if (value < min) return bad;
        input = std::to_string(value);
        return "";
      },
      ">= " + std::to_string(min));
}

CLI::Validator device_spec() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        const bool indexed = input.rfind("cuda:", 0) == 0 && input.size() > 5 && input.size() <= 8 &&
                             input.find_first_not_of("0123456789", 5) == std::string::npos;
        if (input == "cpu" || input == "cuda" || input == "auto" || indexed) return "";
        return quote_name(input) + " is not a device: use cpu, cuda, cuda:N or auto";
      },
      "");
}

CLI::Validator dtype_spec() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        for (const char* name : {"float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "auto"})
          if (input == name) return "";
        return quote_name(input) + " is not a dtype: use float32, bfloat16, float16 or auto";
      },
      "");
}

CLI::Validator config_assignment() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        const auto eq = input.find('=');
        if (eq == std::string::npos || eq == 0)
          return quote_name(input) + " is not section.key=value, e.g. --set train.lr=2e-5";
        const std::string key = input.substr(0, eq);
        static const std::vector<std::string> keys = job_config_keys();
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) return "";
        const std::string foreign = hugging_face_key_hint(key);
        if (!foreign.empty()) return "unknown config key " + quote_name(key) + ": " + foreign;
        const std::string guess = closest_key(key, keys);
        return "unknown config key " + quote_name(key) +
               (guess.empty() ? "; keys look like train.lr or data.top_k" : "; did you mean '" + guess + "'?");
      },
      "");
}

CLI::Validator existing_config_file() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        std::error_code ec;
        const auto path = std::filesystem::absolute(input, ec).lexically_normal();
        if (std::filesystem::is_regular_file(path, ec)) return "";
        const std::string what = std::filesystem::exists(path, ec) ? " is not a file" : " does not exist";
        return quote_name(path.string()) + what + " (the current folder is " + std::filesystem::current_path(ec).string() +
               ")";
      },
      "FILE");
}

}  // namespace percetrain::cli
