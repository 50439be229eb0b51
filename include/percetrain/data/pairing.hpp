// One record -> retrieved profile -> personalised and counterfactual prompts -> paired token ids.
//
// Templates: "{name}" is a slot, "{{" and "}}" are literal braces. `item_template` renders one
// profile item from its fields; `profile_template` renders the whole profile section from
// "{items}" (the rendered items joined by `item_separator`); `prompt_template` has the "{profile}"
// and "{input}" slots. The counterfactual prompt is the same prompt with "{profile}" rendered as
// "" — the profile section, header line included, disappears and nothing else changes; so a
// profile header belongs in `profile_template` ("Here are ...:\n{items}\n\n"), never in
// `prompt_template`. With no items (empty profile, top_k 0, or everything cut) the section is "",
// and both prompts are equal.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "percetrain/data/data_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/data/records.hpp"
#include "percetrain/data/retrieval.hpp"

namespace percetrain {

class Tokenizer;

// Fills the template fields of `config` (item/profile/prompt templates, separator, query pattern,
// date field) from a named preset; unknown names are an error listing the known ones.
void apply_data_preset(const std::string& name, DataConfig* config);
const std::vector<std::string>& data_preset_names();

// Renders a template; `lookup` returns nullptr for an unknown slot, which is an error naming the
// slot and `where`.
std::string render_template(const std::string& text, const std::string& where,
                            const std::function<const std::string*(const std::string&)>& lookup);
// The slot names a template uses, in order (checks the brace syntax).
std::vector<std::string> template_slots(const std::string& text, const std::string& where);

// The user message wrapped in the configured chat format (chat_format "none": the message itself,
// after system_prompt + "\n\n" when one is set; the others: tokenizer/chat_format.hpp).
std::string apply_chat_format(const DataConfig& config, const std::string& user_message);

struct PromptItem {
  int64_t index = 0;   // position in the record's profile
  double score = 0.0;  // retrieval score (BM25; 0 for the other methods)
  std::string text;    // as placed in the prompt (cut at a token boundary when `truncated`)
  bool truncated = false;
};

// What went into one example, for inspect-data and debugging.
struct PairDetail {
  std::string query;                   // the retrieval query taken from input
  std::vector<PromptItem> retrieved;   // ranked items before the length policy
  std::vector<PromptItem> used;        // items in the personalised prompt
  std::string personalised_prompt;     // prompt text (after the chat format), response excluded
  std::string counterfactual_prompt;
  int32_t personalised_prompt_tokens = 0, counterfactual_prompt_tokens = 0;
  bool profile_truncated = false;      // the profile lost items or tokens to the length policy
  bool input_truncated = false;
  int64_t input_tokens_dropped = 0;
};

// Why a record could not become an example.
struct PairProblem {
  enum Kind { kNone, kBadRecord, kTooLong } kind = kNone;
  std::string where, field, what;
  std::string message() const;  // "where: field: what"
};

class PairBuilder {
 public:
  // Applies `config.preset` to empty template fields and checks templates, query pattern and
  // tokenizer (EOS when add_eos) up front, so build() only fails for reasons of the record.
  PairBuilder(const DataConfig& config, const Tokenizer& tokenizer);
  ~PairBuilder();

  // False (and `problem` filled) when the record is unusable; `detail` may be null.
  bool build(const Record& record, PairedExample* out, PairDetail* detail, PairProblem* problem) const;

  const DataConfig& config() const { return config_; }

 private:
  struct Impl;
  DataConfig config_;
  const Tokenizer& tokenizer_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace percetrain
