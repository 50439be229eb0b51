// inspect-data: what the data pipeline makes of a file's records, printed for a person to read.
#include "percetrain/data/inspect.hpp"

#include <iomanip>
#include <ostream>

#include "percetrain/data/dataset.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/data/records.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

std::string pieces(const Tokenizer& tok, const std::vector<int32_t>& ids, size_t from) {
  std::string out;
  for (size_t i = from; i < ids.size(); ++i) out += (i > from ? "|" : "") + tok.id_to_piece(ids[i]);
  return out;
}

std::string indent(const std::string& text) {
  std::string out = "    ";
  for (const char ch : text) {
    out.push_back(ch);
    if (ch == '\n') out += "    ";
  }
  return out;
}

}  // namespace

void inspect_data(const DataConfig& c, const Tokenizer& tokenizer, const std::string& file, const std::string& golds,
                  int64_t limit, std::ostream& out) {
  const PairBuilder builder(c, tokenizer);
  const bool strict = c.on_bad_record == OnBadRecord::kStrict;

  RecordReader reader(file, golds);
  Record record;
  BadRecord bad;
  bool is_bad = false;
  DatasetStats s;
  int64_t shown = 0;
  out << std::fixed << std::setprecision(4);
  while ((c.max_records <= 0 || s.records < c.max_records) && reader.next(&record, &bad, &is_bad)) {
    ++s.records;
    if (is_bad) {
      const std::string where = bad.where + (bad.field.empty() ? "" : ": " + bad.field);
      if (strict) fail(where, bad.what, "fix the record, or set data.on_bad_record to \"skip\"");
      ++s.skipped;
      ++s.skipped_bad_records;
      out << "skipped " << where << ": " << bad.what << "\n";
      continue;
    }
    PairedExample ex;
    PairDetail d;
    PairProblem problem;
    if (!builder.build(record, &ex, &d, &problem)) {
      if (strict) fail(problem.where + (problem.field.empty() ? "" : ": " + problem.field), problem.what,
                       "set data.on_bad_record to \"skip\" to skip such records");
      ++s.skipped;
      ++(problem.kind == PairProblem::kTooLong ? s.skipped_too_long : s.skipped_bad_records);
      out << "skipped " << problem.message() << "\n";
      continue;
    }
    ++s.examples;
    s.truncated_profile += d.profile_truncated;
    s.truncated_input += d.input_truncated;
    s.response_tokens += ex.response_length;
    s.personalised_tokens += static_cast<int64_t>(ex.personalised.size());
    s.counterfactual_tokens += static_cast<int64_t>(ex.counterfactual.size());
    if (shown >= limit) continue;
    ++shown;
    out << "=== record " << record.where << (record.id.empty() ? "" : " (id " + record.id + ")") << " ===\n";
    out << "query: " << d.query << "\n";
    out << "retrieved (" << enum_name(c.retrieval) << ", " << d.retrieved.size() << " of " << record.profile.size()
              << " items; " << d.used.size() << " in the prompt" << (d.profile_truncated ? ", profile cut to fit" : "")
              << "):\n";
    for (size_t i = 0; i < d.retrieved.size(); ++i) {
      const auto& item = d.retrieved[i];
      const bool used = i < d.used.size();
      std::string text = used ? d.used[i].text : item.text;
      if (text.size() > 160) text = text.substr(0, 157) + "...";
      out << "  #" << i + 1 << " profile[" << item.index << "] score " << item.score
                << (used ? (d.used[i].truncated ? " (cut)" : "") : " (left out)") << ": " << text << "\n";
    }
    const size_t p_len = ex.personalised.size() - static_cast<size_t>(ex.response_length);
    const size_t c_len = ex.counterfactual.size() - static_cast<size_t>(ex.response_length);
    out << "personalised prompt (" << p_len << " tokens; " << ex.personalised.size() << " with the response):\n"
              << indent(d.personalised_prompt) << "\n";
    out << "counterfactual prompt (" << c_len << " tokens; " << ex.counterfactual.size()
              << " with the response" << (d.input_truncated ? "; input cut from the left by " +
                                                                  std::to_string(d.input_tokens_dropped) + " tokens" : "")
              << "):\n" << indent(d.counterfactual_prompt) << "\n";
    out << "response (" << ex.response_length << " tokens, identical in both sequences): "
              << pieces(tokenizer, ex.personalised, p_len) << "\n";
    if (!ex.personal_spans.empty()) {
      out << "personal spans:";
      for (const auto& sp : ex.personal_spans)
        out << " \"" << ex.response_text.substr(sp.first, sp.second - sp.first) << "\"";
      out << "\n";
    }
    out << "\n";
  }
  const double n = s.examples > 0 ? static_cast<double>(s.examples) : 1.0;
  out << std::setprecision(1);
  out << "file: " << file << (golds.empty() ? "" : " (golds " + golds + ")") << "\n"
            << "records: " << s.records << ", examples: " << s.examples << ", skipped: " << s.skipped
            << " (bad records " << s.skipped_bad_records << ", too long " << s.skipped_too_long << ")\n"
            << "tokens: personalised " << s.personalised_tokens << " (mean " << s.personalised_tokens / n
            << "), counterfactual " << s.counterfactual_tokens << " (mean " << s.counterfactual_tokens / n
            << "), response " << s.response_tokens << " (mean " << s.response_tokens / n << ")\n"
            << "truncated (max_length " << c.max_length << "): profile " << s.truncated_profile << ", input "
            << s.truncated_input << "\n";
}

}  // namespace percetrain
