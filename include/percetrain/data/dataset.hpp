// Records -> retrieved profile -> paired prompts -> token ids: the examples PerContrast needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/data/data_config.hpp"

namespace percetrain {

class Tokenizer;

// One training example as two token sequences that differ only by the profile. Both end with
// the same `response_length` ids (tokenised separately from the prompts, so identical by
// construction); the loss covers exactly those.
struct PairedExample {
  std::string id;
  std::vector<int32_t> personalised;    // prompt with the retrieved profile, then the response
  std::vector<int32_t> counterfactual;  // the same prompt without the profile, then the response
  int32_t response_length = 0;
};

struct DatasetStats {
  int64_t records = 0;
  int64_t examples = 0;
  int64_t skipped = 0;            // bad records or responses that do not fit (skip mode)
  int64_t truncated_profile = 0;  // examples whose profile section was cut to fit
  int64_t truncated_input = 0;    // examples whose input was cut from the left to fit
  int64_t response_tokens = 0;
};

// Reads `file` (and `golds_file` when non-empty) and builds one example per record.
std::vector<PairedExample> load_paired_examples(const DataConfig& config, const std::string& file,
                                                const std::string& golds_file,
                                                const Tokenizer& tokenizer, DatasetStats* stats);

}  // namespace percetrain
