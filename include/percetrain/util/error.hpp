// The one exception type library code throws; only main() catches it and prints one line.
#pragma once

#include <stdexcept>
#include <string>

namespace percetrain {

// `where` names the file, record or key at fault; `hint` says what the user can do about it.
class Error : public std::runtime_error {
 public:
  Error(const std::string& where, const std::string& what, const std::string& hint = "");
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// A mistake in the command line that shows only once the job's paths are known (an --out that
// is one of the job's inputs): main() exits with status 2 for it, as for a parse error.
class UsageError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] inline void fail(const std::string& where, const std::string& what,
                              const std::string& hint = "") {
  throw Error(where, what, hint);
}

}  // namespace percetrain
