// Small string helpers shared by error lines and prompt building.
#pragma once

#include <string>
#include <vector>

namespace percetrain {

// "a, b, c" (or the parts with another separator between them).
inline std::string join(const std::vector<std::string>& parts, const std::string& separator = ", ") {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

}  // namespace percetrain
