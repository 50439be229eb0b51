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

// Python's str.isspace(), str.split() and str.strip() on UTF-8 text: util/text.hpp.

}  // namespace percetrain::eval
