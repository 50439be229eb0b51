// Small string helpers shared by error lines, prompt building, retrieval and the metrics.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace percetrain {

// "a, b, c" (or the parts with another separator between them).
inline std::string join(const std::vector<std::string>& parts, const std::string& separator = ", ") {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// `text` with its control characters written as escapes (\n, \r, \t, \0, \xHH; U+0080-U+009F as
// \u00HH) and, unless told not to, backslashes doubled: a user id or file name with a newline or
// NUL in it then stays on an error's one line and is shown whole (printing a C string stops at a NUL).
inline std::string escape_control(std::string_view text, bool double_backslashes = true) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\' && double_backslashes) out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == 0) out += "\\0";
    else if (c < 0x20 || c == 0x7f) out += std::string("\\x") + kHex[c >> 4] + kHex[c & 0xf];
    else if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
             static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
      const auto d = static_cast<unsigned char>(text[++i]);  // C1 controls: NEL (U+0085) breaks lines
      out += std::string("\\u00") + kHex[d >> 4] + kHex[d & 0xf];
    } else out += static_cast<char>(c);
  }
  return out;
}

// A user-given name (user id, record id, folder name) in single quotes for a message, escaped as
// escape_control does.
inline std::string quote_name(std::string_view name) { return "'" + escape_control(name) + "'"; }

// Python's str.isspace() for one code point (Unicode White_Space minus U+180E, plus the ASCII
// information separators 0x1C-0x1F, which Python counts as whitespace).
inline bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The code point that starts at text[i] and its length in bytes; a malformed sequence is one
// byte of U+FFFD (so never whitespace).
inline char32_t utf8_code_point_at(std::string_view text, size_t i, size_t* length) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  const size_t n = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
  *length = 1;
  if (n == 0 || i + n > text.size()) return 0xFFFD;
  char32_t c = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return 0xFFFD;
    c = (c << 6) | (b & 0x3F);
  }
  *length = n;
  return c;
}

// Calls f(std::string_view word) for each word of Python's str.split() with no argument on UTF-8
// text, in order: runs of Unicode whitespace separate words. The views point into `text`.
template <class F>
void for_each_python_word(std::string_view text, F&& f) {
  size_t i = 0, start = std::string_view::npos, length = 1;
  for (; i < text.size(); i += length) {
    const bool space = is_python_space(utf8_code_point_at(text, i, &length));
    if (space && start != std::string_view::npos) {
      f(text.substr(start, i - start));
      start = std::string_view::npos;
    } else if (!space && start == std::string_view::npos) {
      start = i;
    }
  }
  if (start != std::string_view::npos) f(text.substr(start));
}

// Python's str.split() with no argument on UTF-8 text, as copies.
inline std::vector<std::string> split_python_whitespace(std::string_view text) {
  std::vector<std::string> out;
  for_each_python_word(text, [&](std::string_view word) { out.emplace_back(word); });
  return out;
}

// Python's str.strip() (or, with left = false, str.rstrip()) with no argument on UTF-8 text.
inline std::string_view strip_python_whitespace(std::string_view text, bool left = true) {
  size_t i = 0, first = std::string_view::npos, end = 0, length = 1;
  for (; i < text.size(); i += length) {
    if (is_python_space(utf8_code_point_at(text, i, &length))) continue;
    if (first == std::string_view::npos) first = i;
    end = i + length;
  }
  if (first == std::string_view::npos) return text.substr(0, 0);
  return left ? text.substr(first, end - first) : text.substr(0, end);
}

}  // namespace percetrain
