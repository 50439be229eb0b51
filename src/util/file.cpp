// Reading whole files with clear errors, and durable writes (temporary file, fsync, rename).
#include "percetrain/util/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "percetrain/util/error.hpp"
#include "percetrain/util/log.hpp"

namespace fs = std::filesystem;

namespace percetrain {

std::string read_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    fail(path, "is a folder, not " + what, "give the path of the file itself");
  if (!fs::exists(path, ec)) fail(path, what + " does not exist", "check the path (relative paths written in a config resolve against the config's folder, "
                                   "--set values and options against the current folder)");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot read " + what + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(path, "reading " + what + " failed");
  return text.str();
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open to flush it to disk: ") + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0 && saved != EINVAL) fail(path, std::string("cannot flush to disk: ") + std::strerror(saved));
}

void fsync_tree(const std::string& folder) {
  std::vector<std::string> folders = {folder};
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (entry.is_regular_file()) fsync_path(entry.path().string());
    else if (entry.is_directory()) folders.push_back(entry.path().string());
  }
  for (auto it = folders.rbegin(); it != folders.rend(); ++it) fsync_path(*it);
}

void write_file_checked(const std::string& path, const std::function<void(const ByteWriter&)>& produce) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, std::string("cannot create: ") + std::strerror(errno), "check the folder's permissions");
  int error = 0;
  const ByteWriter writer = [&](const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (error == 0 && size > 0) {
      const ssize_t n = ::write(fd, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        error = errno;
        break;
      }
      p += n;
      size -= static_cast<size_t>(n);
    }
  };
  try {
    produce(writer);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0)
    fail(path, std::string("writing failed: ") + std::strerror(error),
         error == ENOSPC ? "the disk is full; free some space" : "");
}

void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what) {
  const fs::path target(path);
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const fs::path tmp = folder / ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
  try {
    write_file_checked(tmp.string(), [&](const ByteWriter& write) { write(bytes.data(), bytes.size()); });
  } catch (const Error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    fail(path, "cannot write " + what + ": " + e.what(), "check the free disk space and the folder's permissions");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(path, "cannot replace " + what + ": " + ec.message(), "check the folder's permissions");
  }
  fsync_path(folder.string());
}

void write_folder_whole(const std::string& folder, const std::function<std::vector<std::string>(const std::string&)>& fill,
                        const FolderWrite& how) {
  const fs::path target = fs::absolute(fs::path(folder).lexically_normal());
  const fs::path parent = target.parent_path();
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_directory(target, ec))
    fail(target.string(), "exists and is not a folder", "choose another output folder");
  const bool existing = fs::is_directory(target, ec) && !fs::is_empty(target, ec);
  if (existing && !how.overwrite)
    fail(target.string(), "exists and is not empty; percetrain writes over " + how.kind + " only with --overwrite",
         "add --overwrite to replace " + how.what + "'s files and keep the rest, or choose a new folder");
  auto ours = [&](const fs::directory_entry& entry) {
    return entry.is_regular_file() && how.ours && how.ours(entry.path().filename().string());
  };
  std::vector<std::string> kept;  // what an overwrite leaves in place: not ours to remove
  if (existing)
    for (const auto& entry : fs::directory_iterator(target))
      if (!ours(entry)) kept.push_back(entry.path().filename().string());
  std::sort(kept.begin(), kept.end());
  fs::create_directories(parent);
  const std::string pid = std::to_string(::getpid());
  const fs::path staging = parent / ("." + target.filename().string() + ".tmp." + pid);
  fs::remove_all(staging, ec);
  fs::create_directories(staging);
  try {
    const std::vector<std::string> written = fill(staging.string());
    fsync_tree(staging.string());
    if (kept.empty()) {
      // Swap the finished folder in; the earlier one (ours alone) is removed only afterwards.
      const fs::path previous = parent / ("." + target.filename().string() + ".old." + pid);
      const bool had_previous = fs::exists(target);
      if (had_previous) fs::rename(target, previous);
      fs::rename(staging, target);
      fsync_path(parent.string());
      if (had_previous) fs::remove_all(previous);
    } else {
      // The user's own files stay: ours are renamed in one by one (each replace is atomic), then
      // the earlier files of ours that the new folder lacks are removed.
      for (const auto& f : written) fs::rename(staging / f, target / f);
      for (const auto& entry : fs::directory_iterator(target))
        if (ours(entry) && std::find(written.begin(), written.end(), entry.path().filename().string()) == written.end())
          fs::remove(entry.path());
      fs::remove_all(staging, ec);
      fsync_path(target.string());
      std::string names;
      for (size_t i = 0; i < kept.size() && i < 8; ++i) names += (i ? ", " : "") + kept[i];
      if (kept.size() > 8) names += " and " + std::to_string(kept.size() - 8) + " more";
      log_note(target.string() + ": kept " + names + ", which percetrain did not write");
    }
  } catch (const std::exception& e) {
    fs::remove_all(staging, ec);
    if (dynamic_cast<const Error*>(&e)) throw;
    fail(folder, "could not save " + how.what + ": " + e.what());
  }
}

namespace {

// "dir/" -> "dir": one spelling per path, so that comparisons see the same folder.
fs::path without_trailing_slash(fs::path path) {
  if (path.filename().empty() && path.has_parent_path() && path != path.root_path()) path = path.parent_path();
  return path;
}

fs::path absolute_path(const std::string& path) {
  std::error_code ec;
  return without_trailing_slash(fs::absolute(fs::path(path), ec).lexically_normal());
}

// Symlinks and ".." resolved as far as the path exists.
fs::path resolved(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = absolute_path(path);
  const fs::path canonical = fs::weakly_canonical(absolute, ec);
  return ec ? absolute : without_trailing_slash(canonical.lexically_normal());
}

// `path` below `folder` (not equal): the relative path, else empty.
fs::path inside(const fs::path& path, const fs::path& folder) {
  const fs::path relative = path.lexically_relative(folder);
  if (relative.empty() || relative == "." || *relative.begin() == "..") return {};
  return relative;
}

}  // namespace

void refuse_outputs_onto_inputs(const std::vector<JobOutput>& outputs, const std::vector<JobInput>& inputs) {
  const std::string hint = "choose an output path outside the job's inputs";
  for (size_t i = 0; i < outputs.size(); ++i) {
    const JobOutput& out = outputs[i];
    if (out.path.empty()) continue;
    const auto fail = [&out](const std::string& where, const std::string& what, const std::string& hint) {
      if (out.command_line) throw UsageError(where, what, hint);
      throw Error(where, what, hint);
    };
    const fs::path o = resolved(out.path);
    const fs::path given = absolute_path(out.path);
    const std::string where =
        out.option + " " + given.string() + (given == o ? "" : " (which resolves to " + o.string() + ")");
    for (const JobInput& in : inputs) {
      if (in.path.empty()) continue;
      const fs::path p = resolved(in.path);
      if (o == p)
        fail(where, "is " + in.role + ", which this job reads; writing it would replace it", hint);
      if (in.folder && !inside(o, p).empty())
        fail(where, "is inside " + in.role + " " + p.string() + ", which percetrain only reads", hint);
      if (const fs::path relative = inside(p, o); out.folder && !relative.empty() &&
                                                  (!out.writes || out.writes(relative.begin()->string())))
        fail(where, "holds " + in.role + " " + p.string() + ", which this job reads and could replace", hint);
    }
    for (size_t j = 0; j < i; ++j)
      if (!outputs[j].path.empty() && resolved(outputs[j].path) == o)
        fail(where, "is also where " + outputs[j].option + " is written", "give each output its own path");
  }
}

}  // namespace percetrain
