// Small file helpers shared by every stage that writes output.
#pragma once

#include <string>

namespace percetrain {

// Writes `bytes` to `path` so that readers see the old file or the complete new one, never a
// half-written one: a temporary file in the same folder, flushed, then renamed over `path`.
// `what` names the file's role in errors ("the metrics file").
void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what = "the file");

}  // namespace percetrain
