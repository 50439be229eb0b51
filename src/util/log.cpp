// Notes and warnings on stderr (util/log.hpp).
#include "percetrain/util/log.hpp"

#include <cstdio>
#include <cstdlib>

#include "percetrain/util/text.hpp"

namespace percetrain {
namespace {

// torchrun's RANK; 0 when absent (one process).
int process_rank() {
  const char* rank = std::getenv("RANK");
  return rank ? std::atoi(rank) : 0;
}

void print(const std::string& line) {
  const std::string text = escape_control(line, false) + "\n";
  std::fputs(text.c_str(), stderr);
}

}  // namespace

void log_note(const std::string& line) {
  if (process_rank() == 0) print(line);
}

void log_warning(const std::string& line) {
  const int rank = process_rank();
  print("warning: " + (rank == 0 ? std::string() : "rank " + std::to_string(rank) + ": ") + line);
}

}  // namespace percetrain
