// Formats errors as "<where>: <what> (<hint>)".
#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {
std::string format(const std::string& where, const std::string& what, const std::string& hint) {
  std::string out = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) out += " (" + hint + ")";
  return out;
}
}  // namespace

Error::Error(const std::string& where, const std::string& what, const std::string& hint)
    : std::runtime_error(format(where, what, hint)), where_(where) {}

}  // namespace percetrain
