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

// A folder written whole (a model folder, an adapter folder): `fill` writes the files into a fresh
// staging sibling (".NAME.tmp.PID") and returns their names; the staging folder is fsynced and
// renamed into place, the parent fsynced, and an earlier folder removed only afterwards. An
// existing, non-empty `folder` is somebody's finished work: replaced only with `overwrite`, and
// then only the files `ours` claims (the earlier ones of ours that the new folder lacks are
// removed); every other file is kept in place and named in a note. Any failure removes the
// staging folder and is one error naming `folder` and `what` ("the model").
struct FolderWrite {
  std::string what = "the folder";  // in errors: "could not save the model"
  std::string kind = "a folder";    // "writes over a model folder only with --overwrite"
  bool overwrite = false;
  std::function<bool(const std::string& file_name)> ours;  // the files this kind of folder holds
};
void write_folder_whole(const std::string& folder, const std::function<std::vector<std::string>(const std::string&)>& fill,
                        const FolderWrite& how);

// What a job reads, so that none of its outputs lands on it: a file (data, golds, config, a
// run's metrics) or a folder it only reads (model, adapter, tokenizer), into which nothing may be
// written. Empty paths are skipped.
struct JobInput {
  std::string path;
  std::string role;     // how messages name it: "--data", "model.path", "the config file"
  bool folder = false;  // a folder whose every file is an input
};
// One path a job writes: a file, or a folder it writes into (output.dir, --out of init-model).
struct JobOutput {
  std::string path;
  std::string option;   // "--out", "output.dir", "OUT.summary.json (from --out)"
  bool folder = false;
  // For folder outputs: whether the job may write over the input at this path relative to the
  // folder (its first component, e.g. "metrics.jsonl", "final"); unset: everything in it.
  std::function<bool(const std::string& first_component)> writes = nullptr;
  // Given on the command line (--out): a clash is a UsageError (exit status 2); else (output.dir
  // from the config) an Error.
  bool command_line = true;
};
// Called before any work: an output that resolves (symlinks and ".." included:
// weakly_canonical on both sides) to an input, or into an input folder, or an output folder that
// holds an input it may write over, or two outputs that are one path, is one error naming the
// option, both paths and what to do (a UsageError for command-line outputs). Nothing is created
// or changed.
void refuse_outputs_onto_inputs(const std::vector<JobOutput>& outputs, const std::vector<JobInput>& inputs);

}  // namespace percetrain
