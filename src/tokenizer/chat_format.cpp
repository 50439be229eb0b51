// Chat prompt formats, checked against transformers' apply_chat_template (tests/reference/test_tokenizers.py).
#include "percetrain/tokenizer/chat_format.hpp"

#include <string_view>

#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain {
namespace {

// Jinja's |trim is Python's str.strip(): every character str.isspace() accepts, not only ASCII
// (text pasted from web pages often ends in a no-break space, and the templates drop it).
std::string strip(const std::string& s) { return std::string(strip_python_whitespace(s)); }

}  // namespace

ChatFormat parse_chat_format(const std::string& name, const std::string& where) {
  ChatFormat format;
  if (!enum_from_name(name, &format))
    fail(where, "unknown chat format '" + name + "'", "expected " + join_choices(enum_names<ChatFormat>()));
  return format;
}

std::string format_chat_prompt(ChatFormat format, const std::string& system, const std::string& user) {
  switch (format) {
    case ChatFormat::kNone:
      return system.empty() ? user : system + "\n\n" + user;
    case ChatFormat::kChatml:
    case ChatFormat::kQwen3: {
      std::string out;
      if (!system.empty()) out += "<|im_start|>system\n" + system + "<|im_end|>\n";
      out += "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
      if (format == ChatFormat::kQwen3) out += "<think>\n\n</think>\n\n";
      return out;
    }
    case ChatFormat::kLlama3: {
      std::string out;
      if (!system.empty())
        out += "<|start_header_id|>system<|end_header_id|>\n\n" + strip(system) + "<|eot_id|>";
      out += "<|start_header_id|>user<|end_header_id|>\n\n" + strip(user) + "<|eot_id|>";
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }
    case ChatFormat::kLlama2: {
      std::string content = system.empty() ? user : "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + user;
      return "[INST] " + strip(content) + " [/INST]";
    }
  }
  fail("chat format", "unhandled format");
}

std::string chat_turn_end(ChatFormat format) {
  switch (format) {
    case ChatFormat::kNone: return "";
    case ChatFormat::kChatml:
    case ChatFormat::kQwen3: return "<|im_end|>";
    case ChatFormat::kLlama3: return "<|eot_id|>";
    case ChatFormat::kLlama2: return " </s>";
  }
  fail("chat format", "unhandled format");
}

}  // namespace percetrain
