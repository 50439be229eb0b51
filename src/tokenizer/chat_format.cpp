// Chat prompt formats, checked against transformers' apply_chat_template (tests/reference/test_tokenizers.py).
#include "percetrain/tokenizer/chat_format.hpp"

#include <string_view>

#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

// What Jinja's |trim (Python's str.strip()) removes: every character str.isspace() accepts, in
// UTF-8. Not only ASCII: text pasted from web pages often ends in a no-break space, and the
// templates drop it.
constexpr std::string_view kSpaces[] = {
    "\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ",
    "\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80",                                           // U+0085 U+00A0 U+1680
    "\xE2\x80\x80", "\xE2\x80\x81", "\xE2\x80\x82", "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85",
    "\xE2\x80\x86", "\xE2\x80\x87", "\xE2\x80\x88", "\xE2\x80\x89", "\xE2\x80\x8A",           // U+2000-U+200A
    "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80",  // U+2028 U+2029 U+202F U+205F U+3000
};

// The length of the whitespace character `v` starts (front) or ends with; 0 when none.
size_t space_length(std::string_view v, bool front) {
  for (const std::string_view space : kSpaces)
    if (v.size() >= space.size() && (front ? v.substr(0, space.size()) : v.substr(v.size() - space.size())) == space)
      return space.size();
  return 0;
}

std::string strip(const std::string& s) {
  std::string_view v = s;
  while (const size_t n = space_length(v, true)) v.remove_prefix(n);
  while (const size_t n = space_length(v, false)) v.remove_suffix(n);
  return std::string(v);
}

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
