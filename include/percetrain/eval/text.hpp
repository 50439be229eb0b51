// Text primitives shared by the metrics: UTF-8 <-> code points, Python-like lowercasing, splitting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace percetrain::eval {

// Decodes UTF-8; an invalid byte becomes U+FFFD so that scoring never fails on bad text.
std::u32string utf8_to_u32(std::string_view text);
std::string u32_to_utf8(std::u32string_view text);

// Lowercase like Python's str.lower() for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic,
// plus the two characters whose lowercase is ASCII (U+0130 -> "i\u0307", U+212A KELVIN -> "k").
// Other scripts are returned unchanged (see README: metric semantics).
std::string lower(std::string_view text);

// Splits on runs of whitespace (Python's str.split() with no argument, ASCII whitespace).
std::vector<std::string> split_whitespace(std::string_view text);

// Python's str.isspace() for a code point, and str.split() / str.rstrip() with no argument on
// UTF-8 text (Unicode whitespace: U+0085, U+00A0, U+2000-U+200A, U+3000, ... as well as ASCII).
bool is_python_space(char32_t c);
std::vector<std::string> split_python_whitespace(std::string_view text);
std::string_view rstrip_python_whitespace(std::string_view text);

}  // namespace percetrain::eval
