// Small file helpers shared by every stage that reads input or writes output.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace percetrain {

// The whole file as bytes. A missing file, a directory or an unreadable file is one error naming
// `path` and `what` ("the data file").
std::string read_text_file(const std::string& path, const std::string& what = "the file");

// Writes `bytes` to `path` so that readers see the old file or the complete new one, never a
// half-written one: a temporary file in the same folder, flushed and fsynced, then renamed over
// `path`, and the folder fsynced. `what` names the file's role in errors ("the metrics file").
void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what = "the file");

// Streams bytes into a new file through `produce`, which calls the writer it is given (any number
// of times); a write that fails (disk full, ...) is remembered, later writes are dropped, and after
// `produce` returns the file is fsynced and closed, or one error names the file and the cause.
// Serialisers that cannot report write errors themselves (torch::save) write through this.
using ByteWriter = std::function<void(const void* data, size_t size)>;
void write_file_checked(const std::string& path, const std::function<void(const ByteWriter&)>& produce);

// Flushes a file's or a folder's contents (and, for a folder, its entries) to the disk; an error
// names the path.
void fsync_path(const std::string& path);
// fsync_path on every regular file under `folder` (recursively), then on every folder bottom-up.
void fsync_tree(const std::string& folder);

}  // namespace percetrain
