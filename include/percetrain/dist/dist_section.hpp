// The "train.distributed" section of a job config (no LibTorch: configs are parsed without it).
#pragma once

#include <cstdint>
#include <utility>

#include "percetrain/util/enum_names.hpp"

namespace percetrain {

enum class DistBackend { kAuto, kNccl, kGloo };
template <>
struct EnumNames<DistBackend> {
  static constexpr std::pair<DistBackend, const char*> values[] = {
      {DistBackend::kAuto, "auto"}, {DistBackend::kNccl, "nccl"}, {DistBackend::kGloo, "gloo"}};
};

// Read only when the launcher starts several ranks (WORLD_SIZE > 1); a single process ignores it.
struct DistributedSection {
  DistBackend backend = DistBackend::kAuto;  // auto: NCCL on CUDA, Gloo on the CPU
  double timeout_s = 600;                    // a rank that is lost or stuck ends every rank after this
  // 0: replicated fp32 masters and optimizer state; 1: both sharded over the ranks; 2: also the
  // gradients, reduce-scattered bucket by bucket during backward.
  int64_t zero = 0;
  double bucket_mib = 25;  // gradient buckets
  bool overlap = true;     // start each bucket's reduction from autograd hooks during backward
};

}  // namespace percetrain
