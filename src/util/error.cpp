// Formats errors as "<where>: <what> (<hint>)".
#include "percetrain/util/error.hpp"

#include "percetrain/util/text.hpp"

namespace percetrain {
namespace {
std::string format(const std::string& where, const std::string& what, const std::string& hint) {
  std::string out = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) out += " (" + hint + ")";
  // An error is one line: a newline or NUL from a user's data (a user id, a record id, a folder
  // name) that a message quotes must neither split it nor cut it short.
  return escape_control(out, /*double_backslashes=*/false);
}
}  // namespace

Error::Error(const std::string& where, const std::string& what, const std::string& hint)
    : std::runtime_error(format(where, what, hint)), where_(where) {}

}  // namespace percetrain
