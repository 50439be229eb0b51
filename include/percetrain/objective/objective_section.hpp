// The "objective" section of a job config: which loss, its clip bounds, its normalisation.
#pragma once

#include <cstdint>
#include <utility>

#include "percetrain/util/enum_names.hpp"

namespace percetrain {

enum class ObjectiveKind { kCe, kPerce, kLossce, kEntce };
template <>
struct EnumNames<ObjectiveKind> {
  static constexpr std::pair<ObjectiveKind, const char*> values[] = {
      {ObjectiveKind::kCe, "ce"}, {ObjectiveKind::kPerce, "perce"},
      {ObjectiveKind::kLossce, "lossce"}, {ObjectiveKind::kEntce, "entce"}};
};

// tokens: divide by the response tokens of the optimizer step; sequences: average per-sequence
// means over the step's sequences (the paper's per-example 1/n).
enum class Normalization { kTokens, kSequences };
template <>
struct EnumNames<Normalization> {
  static constexpr std::pair<Normalization, const char*> values[] = {{Normalization::kTokens, "tokens"},
                                                                     {Normalization::kSequences, "sequences"}};
};

struct ObjectiveSection {
  ObjectiveKind name = ObjectiveKind::kPerce;
  double clip_min = 0.8;  // m in the paper
  double clip_max = 5.0;  // M in the paper
  Normalization normalize = Normalization::kTokens;
  int64_t chunk_tokens = 0;  // positions per vocabulary-projection chunk; 0 = 256 MiB budget
};

}  // namespace percetrain
