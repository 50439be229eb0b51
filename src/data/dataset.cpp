// load_paired_examples: the record stream through PairBuilder, with strict / skip handling.
#include "percetrain/data/dataset.hpp"

#include <algorithm>

#include "percetrain/data/pairing.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

std::vector<PairedExample> load_paired_examples(const DataConfig& config, const std::string& file,
                                                const std::string& golds_file, const Tokenizer& tokenizer,
                                                DatasetStats* stats, std::vector<PairDetail>* details) {
  DatasetStats local;
  DatasetStats& s = stats ? *stats : local;
  s = DatasetStats{};
  const bool strict = config.on_bad_record == OnBadRecord::kStrict;
  const PairBuilder builder(config, tokenizer);
  RecordReader reader(file, golds_file);
  reader.set_user_key(config.user_key);

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
    if (details) details->push_back(std::move(detail));
  }
  return examples;
}

std::vector<std::string> example_users(const std::vector<PairedExample>& examples, const std::string& file) {
  std::vector<std::string> users;
  users.reserve(examples.size());
  for (const auto& e : examples) {
    if (e.user.empty())
      fail(file + ": " + e.id, "names no user",
           "per-user adapters need each record's user: a \"user_id\" or \"user\" field, or set data.user_key to the "
           "field that holds it");
    users.push_back(e.user);
  }
  return users;
}

std::map<std::string, std::vector<size_t>> examples_by_user(const std::vector<PairedExample>& examples,
                                                            const std::string& file) {
  const auto users = example_users(examples, file);
  std::map<std::string, std::vector<size_t>> out;
  for (size_t i = 0; i < users.size(); ++i) out[users[i]].push_back(i);
  return out;
}

namespace {

bool ends_with_replacement_character(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> response_token_spans(const Tokenizer& tokenizer,
                                                               const PairedExample& example) {
  const auto n = static_cast<size_t>(example.response_length);
  const std::string& text = example.response_text;
  const auto total = static_cast<int64_t>(text.size());
  const std::vector<int> ids(example.personalised.end() - static_cast<std::ptrdiff_t>(n), example.personalised.end());
  auto decode = [&](size_t from, size_t to) {  // ids[from, to)
    return tokenizer.decode(std::vector<int>(ids.begin() + from, ids.begin() + to), true);
  };
  // Tokens are decoded after a context that starts at the previous character boundary, so that
  // SentencePiece's dropping of the first piece's leading space hits the context, not the token,
  // and each decode covers a few tokens only (a prefix decode per token would be O(n^2)).
  std::vector<std::pair<int64_t, int64_t>> spans;
  spans.reserve(n);
  size_t context = 0, pending = 0;  // decode from `context`; `pending`: first unresolved token
  std::string base;                  // decode(context, pending)
  int64_t position = 0;              // byte offset of the first unresolved token
  for (size_t i = 0; i < n; ++i) {
    if (tokenizer.is_special(ids[i])) {
      spans.emplace_back(position, position);
      continue;
    }
    const std::string full = decode(context, i + 1);
    const bool extends = full.compare(0, base.size(), base) == 0;
    const std::string added = extends ? full.substr(base.size()) : full;
    int64_t end = 0;
    if (extends && text.compare(static_cast<size_t>(position), added.size(), added) == 0) {
      end = position + static_cast<int64_t>(added.size());
    } else if (ends_with_replacement_character(added) && i + 1 < n && i - pending < 8) {
      spans.emplace_back(position, position);  // ends inside a multi-byte character
      continue;
    } else {
      end = std::min<int64_t>(total, position + static_cast<int64_t>(added.size()));  // text normalised
    }
    spans.emplace_back(position, end);
    position = end;
    context = pending;
    pending = i + 1;
    base = decode(context, pending);
  }
  // Whatever the decodes did not reach (normalised away) goes to the last non-special token.
  if (position < total) {
    for (size_t i = n; i-- > 0;)
      if (!tokenizer.is_special(ids[i])) {
        spans[i].second = total;
        for (size_t k = i + 1; k < n; ++k) spans[k] = {total, total};
        break;
      }
  }
  return spans;
}

namespace {

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

std::vector<std::vector<size_t>> token_words(const std::string& text,
                                             const std::vector<std::pair<int64_t, int64_t>>& spans) {
  std::vector<std::vector<size_t>> words;
  std::vector<size_t> current, pending;  // pending: empty tokens waiting for the next word
  bool current_has_text = false, previous_ends_space = false, seen_text = false;
  auto close = [&] {
    if (current_has_text) words.push_back(std::move(current));
    current.clear();
    current_has_text = false;
  };
  const auto total = static_cast<int64_t>(text.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    const int64_t s = std::clamp<int64_t>(spans[i].first, 0, total);
    const int64_t e = std::clamp<int64_t>(spans[i].second, s, total);
    if (e == s) {
      pending.push_back(i);
      continue;
    }
    const char first = text[static_cast<size_t>(s)], last = text[static_cast<size_t>(e - 1)];
    if (!seen_text || is_ascii_space(first) || previous_ends_space) close();
    current.insert(current.end(), pending.begin(), pending.end());
    pending.clear();
    current.push_back(i);
    seen_text = true;
    previous_ends_space = is_ascii_space(last);
    for (int64_t k = s; k < e && !current_has_text; ++k) current_has_text = !is_ascii_space(text[static_cast<size_t>(k)]);
  }
  close();  // trailing empty tokens (EOS) stay out
  return words;
}

void attach_word_heads(const Tokenizer& tokenizer, std::vector<PairedExample>* examples) {
  for (auto& e : *examples) {
    e.word_heads.resize(static_cast<size_t>(e.response_length));
    for (size_t i = 0; i < e.word_heads.size(); ++i) e.word_heads[i] = static_cast<int32_t>(i);
    for (const auto& word : token_words(e.response_text, response_token_spans(tokenizer, e)))
      for (size_t i : word) e.word_heads[i] = static_cast<int32_t>(word.front());
  }
}

}  // namespace percetrain
