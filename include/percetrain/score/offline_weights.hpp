// From `score` output to fixed offline weights: a dataset whose records carry the PerCE weights a
// model gave their tokens (`token_weights`), for training with objective weights_from_data.
#pragma once

#include <cstdint>
#include <string>

namespace percetrain {

struct WeightedRecordsResult {
  int64_t records = 0;   // records written
  int64_t weighted = 0;  // of those, records that got token_weights (the others have no scores)
};

// Copies the records of `data_file` (JSONL or a JSON array) to `out` as JSONL, every field kept,
// and sets "token_weights" of each record that `scores_file` (score's JSONL) scored to the weight
// column of its tokens, joined by id (a weighted_spans field is dropped: a record carries one or
// the other). Records without a score line are copied unchanged. Records need ids. Written
// atomically (a temporary file renamed over `out`).
WeightedRecordsResult write_weighted_records(const std::string& data_file, const std::string& scores_file,
                                             const std::string& out);

}  // namespace percetrain
