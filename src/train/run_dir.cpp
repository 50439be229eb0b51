// The run folder: an flock'ed lock file with the owner's pid, and percetrain-run.json, the
// manifest of everything percetrain wrote there.
#include "percetrain/train/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "percetrain/util/error.hpp"
#include "percetrain/util/log.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/json.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

constexpr const char* kManifest = "percetrain-run.json";
constexpr const char* kLock = ".percetrain.lock";
constexpr const char* kFormat = "percetrain run folder";

// Files directly under `folder`, recursively, as paths relative to it (sorted).
std::vector<std::string> files_under(const fs::path& folder) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(folder))
    if (!entry.is_directory()) out.push_back(fs::relative(entry.path(), folder).string());
  std::sort(out.begin(), out.end());
  return out;
}

// Removes `dir` and the empty folders above it up to (not including) `stop`.
void remove_empty_folders(fs::path dir, const fs::path& stop) {
  std::error_code ec;
  while (!dir.empty() && dir != stop && fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) {
    fs::remove(dir, ec);
    dir = dir.parent_path();
  }
}

std::string list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 6; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 6) out += " and " + std::to_string(names.size() - 6) + " more";
  return out;
}

}  // namespace

RunDirectory::RunDirectory(const std::string& path) : path_(fs::absolute(fs::path(path)).lexically_normal().string()) {
  std::error_code ec;
  if (fs::exists(path_, ec) && !fs::is_directory(path_, ec)) fail(path_, "output.dir is a file, not a folder");
  fs::create_directories(path_, ec);
  if (ec) fail(path_, "cannot create output.dir: " + ec.message());

  // The lock: flock is released by the kernel when its holder dies, so a lock file left behind by
  // a killed run is free to take; the pid in it only names the owner in messages.
  const std::string lock_path = file(kLock);
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail(lock_path, std::string("cannot create the lock file: ") + std::strerror(errno));
  char buf[64] = {0};
  const ssize_t n = ::pread(lock_fd_, buf, sizeof(buf) - 1, 0);
  const std::string previous = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    fail(path_, "is in use by another percetrain job (pid " + (previous.empty() ? std::string("?") : previous) + ")",
         "wait for it to finish, or choose another output.dir");
  }
  if (!previous.empty() && previous != std::to_string(::getpid()))
    log_note(path_ + ": taking over the lock of pid " + previous + ", which is no longer running");
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    fail(lock_path, std::string("cannot write the lock file: ") + std::strerror(errno));

  // The manifest, and what an interrupted run left half done.
  if (fs::exists(file(kManifest), ec)) {
    const json m = read_json_file(file(kManifest));
    if (!m.is_object() || m.value("format", "") != kFormat)
      fail(file(kManifest), "is not a percetrain run manifest", "move it away, or choose another output.dir");
    try {
      files_ = m.at("files").get<std::map<std::string, std::vector<std::string>>>();
      writing_ = m.value("writing", std::vector<std::string>{});
      deleting_ = m.value("deleting", std::map<std::string, std::vector<std::string>>{});
    } catch (const json::exception& e) {
      fail(file(kManifest), std::string("is damaged: ") + e.what(), "move it away, or choose another output.dir");
    }
  }
  bool changed = false;
  for (const auto& staging : writing_) {
    log_note(path_ + ": removing " + staging + ", left half written by an interrupted run");
    fs::remove_all(file(staging), ec);
    changed = true;
  }
  writing_.clear();
  for (const auto& [folder, names] : std::map<std::string, std::vector<std::string>>(deleting_)) {
    remove_files(folder + ".deleting", names);
    remove_files(folder, names);
    if (fs::exists(file(folder + ".deleting"), ec) && !fs::exists(file(folder), ec))
      fs::rename(file(folder + ".deleting"), file(folder), ec);
    changed = true;
  }
  deleting_.clear();
  // Temporary files of atomic writes (".NAME.tmpPID", write_file_atomic) of any file a run writes
  // here (users.json too) that a killed run left; the lock says no other percetrain writes here now.
  static const std::regex temporary(R"(\.(.+)\.tmp[0-9]+)");
  for (const auto& entry : fs::directory_iterator(path_)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (entry.is_regular_file() && std::regex_match(name, m, temporary) && run_folder_writes(m[1].str()))
      fs::remove(entry.path(), ec);
  }
  if (changed) save_manifest();
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ < 0) return;
  // A clean exit leaves an empty lock file: the next run has nobody to take over from.
  if (::ftruncate(lock_fd_, 0) != 0) {
  }
  ::close(lock_fd_);
}

std::string RunDirectory::file(const std::string& relative) const { return (fs::path(path_) / relative).string(); }

namespace {
// The names a run writes at the top of output.dir (its checkpoints and final model included).
const std::regex& run_names() {
  static const std::regex ours(
      R"((job_config\.json|metrics\.jsonl|users\.json|final|best|adapters|tb|checkpoint-[0-9]+(\.partial)?))");
  return ours;
}
}  // namespace

bool run_folder_writes(const std::string& name) {
  if (std::regex_match(name, run_names()) || name == kManifest || name == kLock) return true;
  // Staging and deletion names of the folders above ("final.partial", "checkpoint-2.deleting").
  for (const std::string suffix : {".partial", ".deleting"})
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        std::regex_match(name.substr(0, name.size() - suffix.size()), run_names()))
      return true;
  return false;
}

std::vector<std::string> RunDirectory::foreign_run_files() const {
  const std::regex& ours = run_names();
  std::vector<std::string> foreign;
  for (const auto& entry : fs::directory_iterator(path_)) {
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, ours)) continue;
    const bool is_folder = entry.is_directory();
    // A folder of folders (adapters/<user>) is ours when the manifest records one inside it.
    const auto inside = files_.lower_bound(name + "/");
    const bool ours_inside = inside != files_.end() && inside->first.rfind(name + "/", 0) == 0;
    if (is_folder ? !files_.count(name) && !ours_inside : !recorded(name)) foreign.push_back(name + (is_folder ? "/" : ""));
  }
  std::sort(foreign.begin(), foreign.end());
  return foreign;
}

void RunDirectory::refuse_foreign_run_files() const {
  if (const auto foreign = foreign_run_files(); !foreign.empty())
    fail(path_, "holds files that percetrain did not record writing (" + join(foreign) + ")",
         "choose another output.dir, or move them away");
}

void RunDirectory::remove_recorded_run() {
  std::vector<std::string> folders;
  for (const auto& [folder, names] : files_)
    if (!folder.empty()) folders.push_back(folder);
  for (const auto& folder : folders) remove_folder(folder);
  // Files first, then their record: a kill in between leaves a record of a missing file (harmless),
  // never a file of ours without its record.
  if (files_.count("")) {
    remove_files("", files_[""]);
    files_.erase("");
    save_manifest();
  }
}

void RunDirectory::record_file(const std::string& relative) {
  if (recorded(relative)) return;
  files_[""].push_back(relative);
  save_manifest();
}

void RunDirectory::record_file_in(const std::string& folder, const std::string& name) {
  auto& names = files_[folder];
  if (std::find(names.begin(), names.end(), name) != names.end()) return;
  names.push_back(name);
  save_manifest();
}

void RunDirectory::remove_file_in(const std::string& folder, const std::string& name) {
  const auto it = files_.find(folder);
  if (it == files_.end() || std::find(it->second.begin(), it->second.end(), name) == it->second.end()) return;
  std::error_code ec;
  fs::remove(fs::path(file(folder)) / name, ec);
  if (ec) fail((fs::path(file(folder)) / name).string(), "cannot remove: " + ec.message());
  it->second.erase(std::remove(it->second.begin(), it->second.end(), name), it->second.end());
  if (it->second.empty()) {
    files_.erase(it);
    remove_empty_folders(file(folder), fs::path(path_));
  }
  save_manifest();
}

bool RunDirectory::recorded(const std::string& relative) const {
  const auto it = files_.find("");
  return it != files_.end() && std::find(it->second.begin(), it->second.end(), relative) != it->second.end();
}

std::string RunDirectory::begin_folder(const std::string& name) {
  const std::string staging = name + ".partial";
  std::error_code ec;
  if (fs::exists(file(staging), ec))
    fail(file(staging), "exists and percetrain did not write it", "move it away, or choose another output.dir");
  writing_.push_back(staging);
  save_manifest();  // before the folder exists: a kill from here on leaves it recorded for cleanup
  fs::create_directories(file(staging));
  return file(staging);
}

void RunDirectory::publish_folder(const std::string& name) {
  const std::string staging = name + ".partial";
  const fs::path from(file(staging)), to(file(name));
  fsync_tree(from.string());
  const std::vector<std::string> written = files_under(from);
  std::error_code ec;
  std::vector<std::string> kept;
  if (fs::exists(to, ec)) {
    // Our earlier version goes (its files, then its record); anything else there stays.
    if (const auto it = files_.find(name); it != files_.end()) {
      for (const auto& f : it->second) fs::remove(to / f, ec);
      files_.erase(it);
      save_manifest();
    }
    remove_empty_folders(to, fs::path(path_));
    if (fs::exists(to, ec)) kept = files_under(to);
    for (const auto& f : kept)
      if (std::find(written.begin(), written.end(), f) != written.end())
        fail((to / f).string(), "exists and percetrain did not write it", "move it away, or choose another output.dir");
  }
  // Recorded before the rename: a kill between the two leaves a manifest entry for a folder
  // that does not exist (ignored), never an unrecorded folder of ours.
  files_[name] = written;
  save_manifest();
  if (kept.empty()) {
    fs::rename(from, to);
  } else {
    // Somebody's own files are in the folder: keep them and move ours in beside them.
    for (const auto& f : written) {
      fs::create_directories((to / f).parent_path());
      fs::rename(from / f, to / f);
    }
    fs::remove_all(from, ec);
    log_note(to.string() + ": kept " + list(kept) + ", which percetrain did not write");
  }
  fsync_path(to.parent_path().string());
  if (to.parent_path() != fs::path(path_)) fsync_path(path_);
  writing_.erase(std::remove(writing_.begin(), writing_.end(), staging), writing_.end());
  save_manifest();
}

void RunDirectory::remove_folder(const std::string& name) {
  const auto it = files_.find(name);
  if (it == files_.end()) return;
  // Recorded as being deleted first, then renamed aside, so that a kill at any point leaves
  // either the complete folder under its name or a folder the next start finishes deleting.
  deleting_[name] = it->second;
  files_.erase(it);
  save_manifest();
  std::error_code ec;
  if (fs::exists(file(name), ec)) fs::rename(file(name), file(name + ".deleting"), ec);
  remove_files(name + ".deleting", deleting_[name]);
  remove_files(name, deleting_[name]);
  // What is left is somebody else's: it goes back under its own name.
  if (fs::exists(file(name + ".deleting"), ec) && !fs::exists(file(name), ec))
    fs::rename(file(name + ".deleting"), file(name), ec);
  deleting_.erase(name);
  save_manifest();
}

std::vector<std::string> RunDirectory::folder_files(const std::string& name) const {
  const auto it = files_.find(name);
  return it == files_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> RunDirectory::recorded_folders() const {
  std::vector<std::string> out;
  for (const auto& [folder, names] : files_)
    if (!folder.empty()) out.push_back(folder);
  return out;
}

void RunDirectory::remove_files(const std::string& folder, const std::vector<std::string>& files) {
  const fs::path base = folder.empty() ? fs::path(path_) : fs::path(file(folder));
  std::error_code ec;
  if (!folder.empty() && !fs::exists(base, ec)) return;
  for (const auto& f : files) {
    fs::remove(base / f, ec);
    if (!folder.empty()) remove_empty_folders((base / f).parent_path(), base);
  }
  if (folder.empty()) return;
  remove_empty_folders(base, fs::path(path_));
  if (fs::exists(base, ec))
    log_note(base.string() + ": kept " + list(files_under(base)) + ", which percetrain did not write");
}

void RunDirectory::save_manifest() const {
  const json m = {{"format", kFormat}, {"version", 1}, {"files", files_}, {"writing", writing_}, {"deleting", deleting_}};
  write_file_atomic(file(kManifest), m.dump(1) + "\n", "the run manifest");
}

}  // namespace percetrain
