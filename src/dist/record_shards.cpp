// Record jobs on several ranks: placement, the split of the visiting order, the lockstep that lets
// every rank stop together, and rank 0's merge of the part files.
#include "percetrain/dist/record_shards.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"

namespace fs = std::filesystem;

namespace percetrain {

RecordJobPlacement place_record_job(const std::string& device_spec, const DistributedSection& dist) {
  RecordJobPlacement p;
  const DistEnv env = DistEnv::from_environment();
  p.device = env.distributed() ? device_for_local_rank(device_spec, env.local_rank) : parse_device(device_spec);
  p.comm = make_communicator(env, dist.backend, dist.timeout_s, p.device);
  return p;
}

std::vector<size_t> split_by_cost(const std::vector<int64_t>& costs, int world) {
  if (world < 1) fail("dist", "internal: a split needs at least one rank");
  int64_t total = 0;
  for (int64_t c : costs) total += std::max<int64_t>(0, c);
  std::vector<size_t> bounds(static_cast<size_t>(world) + 1, costs.size());
  bounds[0] = 0;
  // Rank r starts at the first unit whose cost before it reaches r / world of the total (in
  // integers, so that every rank cuts at the same place).
  int64_t before = 0;
  int r = 1;
  for (size_t u = 0; u < costs.size() && r < world; ++u) {
    while (r < world && before * world >= total * r) bounds[static_cast<size_t>(r++)] = u;
    before += std::max<int64_t>(0, costs[u]);
  }
  return bounds;
}

std::string part_path(const std::string& out, int rank, int world) {
  return out + ".rank-" + std::to_string(rank) + "-of-" + std::to_string(world);
}

namespace {

// The world size a part file of `out` was written by, or 0 when `name` is no part of it.
int part_world(const std::string& out_name, const std::string& name) {
  const std::string prefix = out_name + ".rank-";
  if (name.compare(0, prefix.size(), prefix) != 0) return 0;
  std::string rest = name.substr(prefix.size());
  if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, ".tmp") == 0) rest.resize(rest.size() - 4);
  const size_t of = rest.find("-of-");
  if (of == std::string::npos || of == 0 || of + 4 >= rest.size()) return 0;
  const std::string rank = rest.substr(0, of), world = rest.substr(of + 4);
  auto digits = [](const std::string& s) {
    return s.size() < 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(rank) || !digits(world)) return 0;
  return std::stoi(world);
}

}  // namespace

std::vector<std::string> existing_parts(const std::string& out) {
  const fs::path path(out);
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::vector<std::string> parts;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return parts;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (part_world(path.filename().string(), entry.path().filename().string()) > 0)
      parts.push_back((path.has_parent_path() ? dir / entry.path().filename() : entry.path().filename()).string());
  std::sort(parts.begin(), parts.end());
  return parts;
}

void check_part_layout(const std::string& out, int world, bool resume, const std::string& option) {
  if (!resume) return;  // a fresh run writes its own files and ignores the rest
  const std::string name = fs::path(out).filename().string();
  for (const auto& part : existing_parts(out)) {
    const int there = part_world(name, fs::path(part).filename().string());
    if (there != world)
      fail(part, "was written by a run on " + std::to_string(there) + " ranks; this run has " + std::to_string(world),
           "continue it with " + std::to_string(there) + " ranks (torchrun --nproc_per_node " +
               std::to_string(there) + ") and " + option + ", or delete " + out + ".rank-* to start over");
  }
  if (world > 1 && fs::exists(out + ".tmp"))
    fail(out + ".tmp", "was written by a run on one rank; this run has " + std::to_string(world),
         "continue it on one rank (without torchrun) and " + option + ", or delete it to start over");
}

int ShardSync::round(int signal, bool working, bool* all_done) {
  std::vector<int64_t> state = {signal, working ? 1 : 0};
  comm_.all_reduce(state, ScalarReduce::kMax);
  *all_done = state[1] == 0;
  return static_cast<int>(state[0]);
}

int ShardSync::step(int signal) {
  if (!comm_.distributed()) return signal;
  bool all_done = false;
  return round(signal, true, &all_done);
}

int ShardSync::finish(int signal) {
  if (!comm_.distributed()) return signal;
  for (;;) {
    bool all_done = false;
    const int seen = round(signal, false, &all_done);
    if (seen != 0 || all_done) return seen;
  }
}

void merge_parts(const std::string& out, const std::vector<std::string>& parts, const std::vector<int>& owner,
                 const std::vector<std::string>& ids) {
  if (owner.size() != ids.size()) fail("merge", "internal: one owner per record is needed");
  std::vector<std::ifstream> in;
  std::vector<int64_t> line_numbers(parts.size(), 0);
  for (const auto& part : parts) {
    in.emplace_back(part, std::ios::binary);
    if (!in.back())
      fail(part, "cannot be read by rank 0",
           "every rank writes its part next to OUT, and rank 0 merges them: on several machines, --out must lie on "
           "a filesystem they share");
  }
  const std::string tmp = out + ".tmp";
  std::ofstream merged(tmp, std::ios::binary | std::ios::trunc);
  if (!merged) fail(tmp, "cannot open for writing");
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto r = static_cast<size_t>(owner[i]);
    if (r >= parts.size()) fail("merge", "internal: a record's owner is not a rank");
    const std::string where = parts[r] + ":" + std::to_string(++line_numbers[r]);
    if (!std::getline(in[r], line) || in[r].eof())
      fail(where, "is missing: the part ends before record \"" + ids[i] + "\"",
           "it was cut short or written by another run; delete it and run again with --resume");
    std::string id;
    try {
      id = nlohmann::json::parse(line).at("id").get<std::string>();
    } catch (const nlohmann::json::exception&) {
      fail(where, "is not a record line with an \"id\"", "delete the part and run again with --resume");
    }
    if (id != ids[i])
      fail(where, "holds record \"" + id + "\" where the data has \"" + ids[i] + "\"",
           "it was written from other data or options; delete it and run again");
    merged << line << '\n';
  }
  for (size_t r = 0; r < parts.size(); ++r)
    if (std::getline(in[r], line))
      fail(parts[r] + ":" + std::to_string(line_numbers[r] + 1), "holds more records than its share of the data",
           "it was written from other data or options; delete it and run again");
  merged.close();
  if (!merged) fail(tmp, "cannot write (disk full?)");
  fs::rename(tmp, out);
}

}  // namespace percetrain
