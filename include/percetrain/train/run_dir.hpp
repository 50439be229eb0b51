// output.dir, owned explicitly: a lock keeps a second job out, and a manifest
// (percetrain-run.json) records every file percetrain wrote there, so that resuming, pruning,
// --overwrite and replacing final/ touch only those files, and leftovers of an interrupted write
// are recognised and cleaned up.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace percetrain {

// Whether a run writes (or may replace) the entry `name` at the top of output.dir: its files,
// checkpoints, final/, best/, adapters/, tb/ (TensorBoard event files), the manifest and lock,
// and their staging names.
bool run_folder_writes(const std::string& name);

class RunDirectory {
 public:
  // Creates the folder if needed and takes its lock (one line on stderr when a stale lock of a
  // dead process is taken over); a live owner is an error naming its pid. Finishes what an
  // interrupted run left: folders it was writing are removed, folders it was deleting are deleted.
  explicit RunDirectory(const std::string& path);
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& relative) const;  // path_ / relative

  // Whether the manifest records anything (a run was started here).
  bool holds_run() const { return !files_.empty(); }
  // Names percetrain writes (job_config.json, metrics.jsonl, checkpoint-*, final) that exist here
  // but are not in the manifest: somebody else's, never touched.
  std::vector<std::string> foreign_run_files() const;
  // A fresh run starts only where there are none: otherwise one error line lists them.
  void refuse_foreign_run_files() const;
  // --overwrite: removes every file the manifest lists (and the folders they leave empty).
  void remove_recorded_run();

  // A file at the top of the folder that percetrain wrote (job_config.json, metrics.jsonl).
  void record_file(const std::string& relative);
  bool recorded(const std::string& relative) const;

  // A file that percetrain writes by itself inside a folder of its own (tb/events.out.tfevents.*):
  // recorded before it is created, so that a kill never leaves a file of ours unrecorded;
  // remove_file_in() deletes the file, then its record (the folder's record goes with its last file).
  void record_file_in(const std::string& folder, const std::string& name);
  void remove_file_in(const std::string& folder, const std::string& name);

  // A folder percetrain writes whole (checkpoint-N, final, adapters/<user>): begin_folder() gives
  // a fresh staging folder recorded as being written; publish_folder() fsyncs it, replaces `name`
  // (only the files the manifest lists for it; other files there survive, with a warning),
  // records its files and fsyncs the folders above.
  std::string begin_folder(const std::string& name);
  void publish_folder(const std::string& name);
  // Deletes a recorded folder: renamed aside first (so it never looks complete while half
  // deleted), then only its recorded files are removed.
  void remove_folder(const std::string& name);
  // The recorded files of a folder (relative to it).
  std::vector<std::string> folder_files(const std::string& name) const;
  // The recorded folders (checkpoint-N, final, adapters/<user>, ...).
  std::vector<std::string> recorded_folders() const;

 private:
  void save_manifest() const;
  void remove_files(const std::string& folder, const std::vector<std::string>& files);

  std::string path_;
  int lock_fd_ = -1;
  // relative folder ("" = top) -> files in it that percetrain wrote
  std::map<std::string, std::vector<std::string>> files_;
  std::vector<std::string> writing_;                           // staging folders being written
  std::map<std::string, std::vector<std::string>> deleting_;  // folders renamed aside for deletion
};

}  // namespace percetrain
