// The "objective" section of a job config: which loss, its clip bounds, its normalisation.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "percetrain/util/enum_names.hpp"

namespace percetrain {

enum class ObjectiveKind { kCe, kPerce, kLossce, kEntce, kDft, kRho1, kWeightsFromData };
template <>
struct EnumNames<ObjectiveKind> {
  static constexpr std::pair<ObjectiveKind, const char*> values[] = {
      {ObjectiveKind::kCe, "ce"},         {ObjectiveKind::kPerce, "perce"},
      {ObjectiveKind::kLossce, "lossce"}, {ObjectiveKind::kEntce, "entce"},
      {ObjectiveKind::kDft, "dft"},       {ObjectiveKind::kRho1, "rho1"},
      {ObjectiveKind::kWeightsFromData, "weights_from_data"}};
};

// Which PIR a PerCE weight is made from: each token's own (token), or that of the first piece of
// the word the token belongs to (word: the later pieces of a word follow from its first one with
// or without the profile, so their own PIR says little).
enum class PirScope { kToken, kWord };
template <>
struct EnumNames<PirScope> {
  static constexpr std::pair<PirScope, const char*> values[] = {{PirScope::kToken, "token"}, {PirScope::kWord, "word"}};
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
  PirScope pir_scope = PirScope::kToken;  // perce
  double rho1_keep_ratio = 0.6;           // rho1: share of each sequence's tokens that train
  std::string reference_model;            // rho1: the frozen reference model's folder
  double data_weight_default = 1.0;       // weights_from_data: tokens the record gives no weight
};

}  // namespace percetrain
