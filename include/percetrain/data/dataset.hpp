// Records -> retrieved profile -> paired prompts -> token ids: the examples PerContrast needs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "percetrain/data/data_config.hpp"

namespace percetrain {

class Tokenizer;
struct PairDetail;

// One training example as two token sequences that differ only by the profile. Both end with
// the same `response_length` ids (tokenised separately from the prompts, so identical by
// construction); the loss covers exactly those.
struct PairedExample {
  std::string id;
  std::string user;  // the record's user (DataConfig::user_key); "" when it names none
  std::vector<int32_t> personalised;    // prompt with the retrieved profile, then the response
  std::vector<int32_t> counterfactual;  // the same prompt without the profile, then the response
  int32_t response_length = 0;

  // Additions for scoring and inspection (not needed for training):
  std::string response_text;  // the record's output, exactly as tokenised for the response
  // Ground-truth personal spans when the record has them (the demo set): [start, end) UTF-8
  // byte offsets into response_text.
  std::vector<std::pair<int64_t, int64_t>> personal_spans;
  int32_t profile_items = 0;  // profile items in the personalised prompt (the last may be cut)

  // Fixed loss weights from the record (token_weights / weighted_spans), one per response token,
  // NaN for a token the record gives no weight; empty when the record has none.
  std::vector<float> token_weights;
  // For pir_scope word (attach_word_heads): for each response token, the response index of the
  // first piece of its word (its own index when it starts a word or belongs to none).
  std::vector<int32_t> word_heads;
};

struct DatasetStats {
  int64_t records = 0;
  int64_t examples = 0;
  int64_t skipped = 0;            // bad records or responses that do not fit (skip mode)
  int64_t truncated_profile = 0;  // examples whose profile section was cut to fit
  int64_t truncated_input = 0;    // examples whose input was cut from the left to fit
  int64_t response_tokens = 0;
  int64_t skipped_bad_records = 0;   // of `skipped`: malformed records
  int64_t skipped_too_long = 0;      // of `skipped`: responses that alone do not fit max_length
  int64_t personalised_tokens = 0;   // all tokens of the personalised sequences
  int64_t counterfactual_tokens = 0; // all tokens of the counterfactual sequences
  std::vector<std::string> skip_messages;  // one line per skipped record (the first 100)
};

// Reads `file` (and `golds_file` when non-empty) and builds one example per record. A preset
// named in `config` fills templates left empty. In strict mode (on_bad_record = "strict") the first
// bad record or response that does not fit throws percetrain::Error naming file:line or
// file[index] and the field; in skip mode they are counted in `stats` (may be null) and skipped.
// `details` (may be null) receives what went into each example (retrieved items, prompts), one
// per returned example, for score reports and inspection.
std::vector<PairedExample> load_paired_examples(const DataConfig& config, const std::string& file,
                                                const std::string& golds_file,
                                                const Tokenizer& tokenizer, DatasetStats* stats,
                                                std::vector<PairDetail>* details = nullptr);

// The user of each example (PairedExample::user), in order. An example without one is an error
// naming it (`file`) and data.user_key.
std::vector<std::string> example_users(const std::vector<PairedExample>& examples, const std::string& file);

// The examples of each user: users in sorted order, each user's indices in file order (the same
// error as example_users for an example without a user).
std::map<std::string, std::vector<size_t>> examples_by_user(const std::vector<PairedExample>& examples,
                                                            const std::string& file);

// Byte spans [start, end) in `example.response_text` of each response token, contiguous from 0
// to the end of the text (special tokens such as EOS: an empty span where they stand). Found by
// decoding each token after the tokens since the last character boundary (linear, not a decode
// of every prefix), so text.substr(span) is the text the token adds to the decoded response.
// With SentencePiece the first piece's dummy-prefix space, which decoding drops, is not in the
// text, so spans index the text as stored. A multi-byte character split across tokens (byte
// fallback, byte-level BPE) belongs wholly to the token that completes it; the tokens before it
// get an empty span at the character's start. Where the tokenizer's decode does not reproduce
// the text (SentencePiece normalisation, e.g. runs of spaces), spans advance by decoded length
// and are approximate from there on.
std::vector<std::pair<int64_t, int64_t>> response_token_spans(const Tokenizer& tokenizer,
                                                               const PairedExample& example);

// The words of `text` as runs of token indices, from the tokens' byte spans [start, end) (as
// response_token_spans gives them). A token with text starts a new word when it is the first
// token with text, when its text begins with ASCII whitespace (the leading space of "▁cat" /
// "Ġcat"), or when the previous token with text ended with whitespace (after a newline token).
// So a word is a maximal run of tokens without a leading-space boundary: "cat" + "s" + "." is
// one word. Tokens with empty text (a character's leading bytes, EOS) join the next word;
// trailing ones (EOS) and runs whose text is all whitespace form no word. `score`'s word AUROC and
// objective.pir_scope word both use this definition.
std::vector<std::vector<size_t>> token_words(const std::string& text,
                                             const std::vector<std::pair<int64_t, int64_t>>& spans);

// Fills every example's word_heads from its response's words (token_words over
// response_token_spans).
void attach_word_heads(const Tokenizer& tokenizer, std::vector<PairedExample>* examples);

}  // namespace percetrain
