// load_paired_examples: the record stream through PairBuilder, with strict / skip handling.
#include "percetrain/data/dataset.hpp"

#include <algorithm>

#include "percetrain/data/pairing.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

std::vector<PairedExample> load_paired_examples(const DataConfig& config, const std::string& file,
                                                const std::string& golds_file, const Tokenizer& tokenizer,
                                                DatasetStats* stats) {
  DatasetStats local;
  DatasetStats& s = stats ? *stats : local;
  s = DatasetStats{};
  const bool strict = config.on_bad_record != "skip";
  const PairBuilder builder(config, tokenizer);
  RecordReader reader(file, golds_file);

  std::vector<PairedExample> examples;
  Record record;
  BadRecord bad;
  bool is_bad = false;
  auto skip = [&](const std::string& message) {
    ++s.skipped;
    if (s.skip_messages.size() < 100) s.skip_messages.push_back(message);
  };
  while ((config.max_records <= 0 || s.records < config.max_records) && reader.next(&record, &bad, &is_bad)) {
    ++s.records;
    if (is_bad) {
      if (strict)
        fail(bad.where + (bad.field.empty() ? "" : ": " + bad.field), bad.what,
             "fix the record, or set data.on_bad_record to \"skip\" to count and skip such records");
      ++s.skipped_bad_records;
      skip(bad.where + (bad.field.empty() ? "" : ": " + bad.field) + ": " + bad.what);
      continue;
    }
    PairedExample example;
    PairDetail detail;
    PairProblem problem;
    if (!builder.build(record, &example, &detail, &problem)) {
      const std::string where = problem.where + (problem.field.empty() ? "" : ": " + problem.field);
      if (strict)
        fail(where, problem.what,
             problem.kind == PairProblem::kTooLong
                 ? "raise data.max_length, or set data.on_bad_record to \"skip\" to skip such records"
                 : "fix the record, or set data.on_bad_record to \"skip\" to count and skip such records");
      if (problem.kind == PairProblem::kTooLong) ++s.skipped_too_long;
      else ++s.skipped_bad_records;
      skip(problem.message());
      continue;
    }
    ++s.examples;
    s.truncated_profile += detail.profile_truncated ? 1 : 0;
    s.truncated_input += detail.input_truncated ? 1 : 0;
    s.response_tokens += example.response_length;
    s.personalised_tokens += static_cast<int64_t>(example.personalised.size());
    s.counterfactual_tokens += static_cast<int64_t>(example.counterfactual.size());
    examples.push_back(std::move(example));
  }
  return examples;
}

std::vector<std::pair<int64_t, int64_t>> response_token_spans(const Tokenizer& tokenizer,
                                                               const PairedExample& example) {
  const auto n = static_cast<size_t>(example.response_length);
  const auto total = static_cast<int64_t>(example.response_text.size());
  std::vector<int> ids(example.personalised.end() - static_cast<std::ptrdiff_t>(n), example.personalised.end());
  std::vector<std::pair<int64_t, int64_t>> spans;
  spans.reserve(n);
  int64_t previous = 0;
  for (size_t i = 0; i < n; ++i) {
    int64_t end = total;
    if (!tokenizer.is_special(ids[i])) {
      const std::string prefix = tokenizer.decode(std::vector<int>(ids.begin(), ids.begin() + i + 1), true);
      end = std::min<int64_t>(static_cast<int64_t>(prefix.size()), total);
    } else {
      end = previous;
    }
    end = std::max(end, previous);
    spans.emplace_back(previous, end);
    previous = end;
  }
  return spans;
}

}  // namespace percetrain
