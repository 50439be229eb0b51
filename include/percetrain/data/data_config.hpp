// What a job's "data" section says: where records are, how a profile item and a prompt become
// text, how profile items are retrieved, and the length policy.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "percetrain/tokenizer/chat_format.hpp"
#include "percetrain/util/enum_names.hpp"

namespace percetrain {

// How profile items are chosen for a query (see rank_profile in retrieval.hpp).
enum class Retrieval { kBm25, kBm25Lamp, kRecency, kFirst, kAll };
template <>
struct EnumNames<Retrieval> {
  static constexpr std::pair<Retrieval, const char*> values[] = {
      {Retrieval::kBm25, "bm25"}, {Retrieval::kBm25Lamp, "bm25_lamp"}, {Retrieval::kRecency, "recency"}, {Retrieval::kFirst, "first"}, {Retrieval::kAll, "all"}};
};

// strict: the first bad record stops the job; skip: bad records are counted and skipped.
enum class OnBadRecord { kStrict, kSkip };
template <>
struct EnumNames<OnBadRecord> {
  static constexpr std::pair<OnBadRecord, const char*> values[] = {{OnBadRecord::kStrict, "strict"},
                                                                   {OnBadRecord::kSkip, "skip"}};
};

struct DataConfig {
  std::string train_file;  // JSON array or JSONL of records {id?, input, output, profile: [...]}
  std::string valid_file;
  std::string test_file;
  // LaMP's split layout: outputs in a separate {"golds": [{"id", "output"}]} file, joined by id.
  std::string train_golds_file;
  std::string valid_golds_file;
  std::string test_golds_file;

  // A named preset fills the templates below (see presets in data/); explicit keys override it.
  std::string preset;
  std::string item_template;    // one profile item as text, e.g. "{summary}: {reviewText}"
  std::string prompt_template;  // with "{profile}" and "{input}" slots
  std::string profile_template = "{items}";  // the profile section, "{items}" = joined items
  std::string item_separator = "\n";
  std::string query_pattern;    // regex with one capture group selecting the query from input; "" = all

  Retrieval retrieval = Retrieval::kBm25;
  int64_t top_k = 4;
  double bm25_k1 = 1.2;
  double bm25_b = 0.75;
  std::string date_field = "date";  // for recency

  int64_t max_length = 2048;        // tokens of the personalised sequence, response included
  int64_t profile_token_budget = 0; // 0: as much as max_length allows
  bool add_eos = true;              // the response ends with EOS, and the loss covers it
  OnBadRecord on_bad_record = OnBadRecord::kStrict;
  int64_t max_records = 0;          // 0: all

  ChatFormat chat_format = ChatFormat::kNone;
  std::string system_prompt;

  // The record field naming the user a record belongs to (per-user adapters: lora.per_user,
  // score/generate --adapters). "": a "user_id" field, else a "user" field (the demo set's).
  // LaMP's records carry none (in its user-based split each record is its own user: "id").
  std::string user_key;
};

}  // namespace percetrain
