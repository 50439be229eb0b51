// `percetrain inspect-data`: what the data pipeline makes of a file's records, before any GPU time.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "percetrain/data/data_config.hpp"

namespace percetrain {

class Tokenizer;

// Prints, for the first `limit` records of `file` (with LaMP `golds` when not empty), both prompts
// with their token counts, the response tokens and the retrieved profile items with their scores;
// then counts of records, tokens, truncations and skips over the whole file.
void inspect_data(const DataConfig& config, const Tokenizer& tokenizer, const std::string& file,
                  const std::string& golds, int64_t limit, std::ostream& out);

}  // namespace percetrain
