// Offline lookup of Hugging Face repository ids in the local Hub cache (see hf_cache.hpp).
#include "percetrain/util/hf_cache.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string expand_home(const std::string& path) {
  if (path == "~" || path.rfind("~/", 0) == 0) return env("HOME") + path.substr(1);
  return path;
}

// One part of a repository id, as huggingface_hub's validate_repo_id allows it.
bool valid_id_part(const std::string& part) {
  if (part.empty() || part.size() > 96 || part == "." || part == "..") return false;
  if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.') return false;
  if (part.find("--") != std::string::npos || part.find("..") != std::string::npos) return false;
  for (const char c : part) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

struct RepoId {
  std::string id, revision;  // revision "" when none was given
};

RepoId split_revision(const std::string& value) {
  const auto at = value.find('@');
  if (at == std::string::npos) return {value, ""};
  return {value.substr(0, at), value.substr(at + 1)};
}

std::string first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\n')) line.pop_back();
  return line;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) names.push_back(fs::relative(it->path(), dir, ec).string());
  return names;
}

std::string download_command(const RepoId& repo) {
  const std::string revision = repo.revision.empty() ? "" : " --revision " + repo.revision;
  return "huggingface-cli download " + repo.id + revision + " (or: hf download " + repo.id + revision + ")";
}

}  // namespace

std::string hf_hub_cache_dir() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"})
    if (!env(name).empty()) return expand_home(env(name));
  if (!env("HF_HOME").empty()) return (fs::path(expand_home(env("HF_HOME"))) / "hub").string();
  const std::string xdg = env("XDG_CACHE_HOME");
  const fs::path cache = xdg.empty() ? fs::path(env("HOME")) / ".cache" : fs::path(expand_home(xdg));
  return (cache / "huggingface" / "hub").string();
}

bool looks_like_hf_repo_id(const std::string& value) {
  const RepoId repo = split_revision(value);
  if (repo.revision.empty() && value.find('@') != std::string::npos) return false;
  const auto slash = repo.id.find('/');
  if (slash == std::string::npos) return valid_id_part(repo.id);
  return repo.id.find('/', slash + 1) == std::string::npos && valid_id_part(repo.id.substr(0, slash)) &&
         valid_id_part(repo.id.substr(slash + 1));
}

std::string resolve_model_location(const std::string& value, const std::string& local, const std::string& where) {
  std::error_code ec;
  if (value.empty() || fs::exists(local, ec) || !looks_like_hf_repo_id(value)) return local;
  const RepoId repo = split_revision(value);
  const bool owner_and_name = repo.id.find('/') != std::string::npos;
  const fs::path cache = hf_hub_cache_dir();
  std::string folder_name = "models--" + repo.id;
  for (size_t pos = 0; (pos = folder_name.find('/', pos)) != std::string::npos;) folder_name.replace(pos, 1, "--");
  const fs::path repo_dir = cache / folder_name;
  if (!fs::is_directory(repo_dir, ec)) {
    if (!owner_and_name && repo.revision.empty()) return local;  // a plain name: a missing local folder
    fail(where, quote_name(value) + " is neither a local path (" + local + " does not exist) nor a model in the " +
                    "Hugging Face cache (" + repo_dir.string() + " does not exist)",
         "download it with: " + download_command(repo) +
             "; percetrain reads the cache offline (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub) "
             "and downloads nothing");
  }
  const std::string revision = repo.revision.empty() ? "main" : repo.revision;
  std::string commit;
  const fs::path ref = repo_dir / "refs" / revision;
  if (fs::is_regular_file(ref, ec)) commit = first_line(ref);
  else if (fs::is_directory(repo_dir / "snapshots" / revision, ec)) commit = revision;
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  if (commit.empty() || !fs::is_directory(snapshot, ec)) {
    std::string known;
    for (const auto& name : names_in(repo_dir / "refs")) known += (known.empty() ? "" : ", ") + name;
    fail(where, "the Hugging Face cache holds " + repo.id + " (" + repo_dir.string() + ") but not revision " +
                    quote_name(revision) + (commit.empty() ? "" : " (refs/" + revision + " names the missing snapshot " + commit + ")"),
         (known.empty() ? std::string("it has no refs") : "its refs: " + known) +
             "; a commit hash names a folder under snapshots/; download it with: " +
             download_command({repo.id, revision}));
  }
  return snapshot.string();
}

}  // namespace percetrain
