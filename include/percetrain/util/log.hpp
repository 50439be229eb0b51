// How library code tells the user something that is not an error: one line on stderr, control
// characters escaped, and under torchrun from rank 0 alone (another rank's warning names it).
// Progress displays (ProgressLine, the scorer's live line) and command output stay in their own
// code; errors are thrown (error.hpp) and printed by main().
#pragma once

#include <string>

namespace percetrain {

// "PATH: removing checkpoint-000004.partial, left half written by an interrupted run".
void log_note(const std::string& line);
// "warning: ..." (with "rank N: " on ranks other than 0, which print warnings too).
void log_warning(const std::string& line);

}  // namespace percetrain
