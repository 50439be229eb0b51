// Jobs that go through a dataset's records (score, generate) on several ranks: each rank takes a
// contiguous stretch of the one-rank visiting order (whole batches of it, so that every record is
// computed in the batch it has on one rank), streams its records to a part file of its own, and
// rank 0 merges the parts into the one output in data order.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/dist_section.hpp"

namespace percetrain {

// This process's rank and device for a record job: the single-rank communicator and the
// model.device spec as it is, unless torchrun started several ranks (then one device per local
// rank, and train.distributed's backend and timeout).
struct RecordJobPlacement {
  std::unique_ptr<Communicator> comm;
  c10::Device device{c10::kCPU};
};
RecordJobPlacement place_record_job(const std::string& device_spec, const DistributedSection& dist);

// Cuts units of work (in visiting order, each with a cost) into `world` contiguous stretches of
// about equal cost: world + 1 boundaries, rank r takes units [b[r], b[r + 1]). Depends only on
// the costs, so every rank computes the same split without a message.
std::vector<size_t> split_by_cost(const std::vector<int64_t>& costs, int world);

// OUT's part for `rank` of `world`: "OUT.rank-R-of-W", written as its own ".tmp" and renamed when
// complete, as OUT is on one rank.
std::string part_path(const std::string& out, int rank, int world);

// The part files (and their .tmp) of OUT that are there now, of any world size.
std::vector<std::string> existing_parts(const std::string& out);

// Before a job that continues (resume) or starts OUT: an error when what is there was written by
// a run with another number of ranks (OUT.tmp by one rank, parts of another world size), which
// this run could neither continue nor safely ignore. `option` names the resume flag in the hint.
void check_part_layout(const std::string& out, int world, bool resume, const std::string& option = "--resume");

// Keeps ranks whose shards take different times in step, so that a signal on any rank stops every
// rank after its current unit (each rank's part then holds whole records, for --resume), and a
// lost rank is named by the communicator within its timeout instead of a survivor waiting on it at
// the end. Every rank calls step() after each unit of its own work, then finish() once; one rank:
// no messages.
class ShardSync {
 public:
  explicit ShardSync(Communicator& comm) : comm_(comm) {}
  // The largest signal number any rank has seen (0: go on). `signal`: this rank's.
  int step(int signal);
  // Takes part in the others' steps until every rank has finished (0) or one saw a signal
  // (its number).
  int finish(int signal);

 private:
  int round(int signal, bool working, bool* all_done);
  Communicator& comm_;
};

// Rank 0's merge: writes `out` (through OUT.tmp, renamed when complete) with record i (data order)
// as the next line of parts[owner[i]]; each part holds its records in data order. Every line's
// "id" must be ids[i] and every part must be used up, or the error names the part and line.
void merge_parts(const std::string& out, const std::vector<std::string>& parts, const std::vector<int>& owner,
                 const std::vector<std::string>& ids);

}  // namespace percetrain
