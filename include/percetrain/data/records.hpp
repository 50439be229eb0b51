// LaMP / LongLaMP records as published (JSON array or JSONL, optional golds file), read as a stream.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace percetrain {

// One profile item: its fields as text, in file order. Strings are kept as they are; numbers,
// booleans and nested values are written as JSON (5.0 -> "5.0"); null is "".
struct ProfileItem {
  std::vector<std::pair<std::string, std::string>> fields;
  const std::string* find(const std::string& name) const;  // nullptr when absent
};

struct Record {
  std::string where;  // "file:line" (JSONL) or "file[index]" (JSON array), for messages
  std::string id;     // "" when the record has none; numbers are written as text
  std::string user;   // the user the record belongs to (see RecordReader::set_user_key); "" = none
  std::string input;
  std::string output;
  std::vector<ProfileItem> profile;
  // Optional ground truth (the demo set): [start, end) UTF-8 byte offsets into `output`.
  std::vector<std::pair<int64_t, int64_t>> personal_spans;
  // Optional fixed loss weights (objective weights_from_data), at most one of the two:
  // `token_weights`, one number per response token; `weighted_spans`, [start, end) UTF-8 byte
  // ranges of `output` with a weight each.
  std::vector<double> token_weights;
  struct WeightedSpan {
    int64_t start = 0, end = 0;
    double weight = 1.0;
  };
  std::vector<WeightedSpan> weighted_spans;
};

// A record that could not be read, with where it is and which field is at fault.
struct BadRecord {
  std::string where;  // "file:line" or "file[index]"
  std::string field;  // "input", "profile[2].summary", ... ("" for the record as a whole)
  std::string what;
};

// Streams records one at a time: JSONL line by line, a JSON array element by element (never the
// whole file in memory; gold outputs are the exception, they are short and joined by id).
// The format is detected from the first non-blank byte ('[' = array, '{' = JSONL).
class RecordReader {
 public:
  // `golds_file` (may be ""): LaMP's {"golds": [{"id", "output"}]}; its output wins over a
  // record's own and is required for records without one.
  RecordReader(const std::string& file, const std::string& golds_file = "");
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // The next record: returns true and fills `record`, or fills `bad` and returns true for a
  // malformed record (the stream stays usable), or returns false at the end. File-level damage
  // (unreadable file, broken array structure) throws percetrain::Error.
  bool next(Record* record, BadRecord* bad, bool* is_bad);

  // The field that names a record's user (as text, like ids); "" (the default): "user_id", else
  // "user". A record without it has an empty Record::user.
  void set_user_key(std::string key) { user_key_ = std::move(key); }

  const std::string& file() const { return file_; }

 private:
  bool next_text(std::string* text, std::string* where);
  void parse(const std::string& text, const std::string& where, Record* record, BadRecord* bad,
             bool* is_bad) const;

  std::string file_;
  std::ifstream in_;
  bool array_ = false, finished_ = false;
  int64_t line_ = 0, index_ = 0;
  std::map<std::string, std::string> golds_;
  bool have_golds_ = false;
  std::string user_key_;
};

// Counts the records of a file by streaming it (bad records included).
int64_t count_records(const std::string& file);


}  // namespace percetrain
