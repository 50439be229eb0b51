// Per-token scores as plain data: their JSONL lines, the dataset summary and the HTML report.
// Torch-free: `percetrain score` fills these structs, this module only writes and reads text.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace percetrain {

struct TokenScore {
  int32_t id = 0;
  std::string piece;           // the tokenizer's piece for `id`
  int64_t start = 0, end = 0;  // [start, end) UTF-8 byte span in the record's output
  float logp_with = 0.0f;      // log P(y_i | p, x, y_<i)
  float logp_without = 0.0f;   // log P(y_i | x, y_<i)
  float pir = 0.0f;            // logp_with - logp_without, as the objective computes it
  float weight = 0.0f;         // clip(PIR, clip_min, clip_max): PerCE's weight
};

struct RetrievedProfileItem {
  int64_t index = 0;     // position in the record's profile
  double score = 0.0;    // retrieval score (BM25; 0 for other methods)
  std::string text;      // as placed in the personalised prompt
  bool truncated = false;
};

struct RecordScore {
  std::string id;
  std::string output;  // the gold response the tokens cover
  std::vector<TokenScore> tokens;
  std::vector<RetrievedProfileItem> profile;  // the items in the personalised prompt
  std::vector<std::pair<int64_t, int64_t>> personal_spans;  // ground truth when the data has it

  double mean_pir() const;  // 0 without tokens
  // Indices of the `k` tokens with the highest PIR, highest first (ties: earlier first).
  std::vector<size_t> top_tokens(size_t k) const;
  // Whether token `i`'s span overlaps a ground-truth personal span.
  bool in_personal_span(size_t i) const;
  // Whether token `i` is the first piece of a personal span: it overlaps the span and starts at
  // or before the span's start (the token where the personal word enters the text).
  bool starts_personal_span(size_t i) const;
};

// The words of a record's output as runs of token indices: token_words (data/dataset.hpp) over
// the tokens' spans, the one definition of a word that pir_scope word also uses.
std::vector<std::vector<size_t>> record_words(const RecordScore& record);

// Area under the ROC curve of `score` separating positives from negatives: the probability that
// a random positive scores above a random negative, ties counting half (Mann-Whitney U / PN).
// NaN without positives or without negatives.
double auroc(const std::vector<std::pair<double, bool>>& scored);

// One JSONL line (no newline). Floats are written in their shortest round-trip form, so the
// line reads back to the same float32 values and identical scores give identical bytes.
std::string record_to_json_line(const RecordScore& record, size_t top_tokens = 5);
// Reads a line written by record_to_json_line; `where` ("file:line") names it in errors.
RecordScore record_from_json_line(const std::string& line, const std::string& where);

// The complete lines at the start of a partially written JSONL file (a trailing line without
// its newline is dropped): their count, their byte length and their record ids.
struct PartialOutput {
  std::vector<std::string> ids;
  uint64_t complete_bytes = 0;
};
PartialOutput read_partial_output(const std::string& path);

// Dataset-wide statistics over the scored tokens, filled record by record.
class ScoreSummary {
 public:
  ScoreSummary(double clip_min, double clip_max);
  void add(const RecordScore& record);

  struct Piece {
    std::string piece;
    int64_t count = 0;
    double mean_pir = 0.0;
  };
  struct Histogram {
    double low = -6.0, width = 0.5;  // bins [low + k*width, low + (k+1)*width)
    std::vector<int64_t> counts;     // the first and last bins also hold everything beyond
  };

  int64_t records() const { return records_; }
  int64_t nan_tokens() const { return nan_count_; }
  int64_t tokens() const { return static_cast<int64_t>(pir_.size()); }
  double mean() const;
  double quantile(double q) const;  // nearest rank on the sorted PIRs; 0 without tokens
  double clipped_low_share() const;   // PIR < clip_min
  double clipped_high_share() const;  // PIR > clip_max
  Histogram histogram() const;
  // Pieces seen at least `min_count` times, by mean PIR (highest first), at most `limit`.
  std::vector<Piece> top_pieces(size_t limit, int64_t min_count) const;
  // Whole words (record_words; the text from the output with surrounding whitespace trimmed, so
  // a trailing "." or "," stays with its word) seen at least `min_count` times, by mean word PIR
  // (highest first), at most `limit`. A word's PIR is the SUM of its pieces' PIRs: by the chain
  // rule the log-ratio log P(word | profile, x) - log P(word | x) of the whole word, which a mean
  // would dilute when one piece ("▁Merri" of "Merriweather") carries it. Words with a NaN piece
  // are left out. `Piece::piece` holds the word.
  std::vector<Piece> top_words(size_t limit, int64_t min_count) const;
  // Ground truth (records with personal spans): tokens inside / outside them and their mean PIR.
  int64_t personal_tokens() const { return personal_count_; }
  int64_t other_tokens() const { return other_count_; }
  double personal_mean() const { return personal_count_ ? personal_sum_ / personal_count_ : 0.0; }
  double other_mean() const { return other_count_ ? other_sum_ / other_count_ : 0.0; }
  // How well PIR separates ground truth (NaN where a side is empty), over tokens with text (EOS
  // and empty pieces excluded, as in the end-to-end test):
  //   tokens:       tokens in personal spans vs all other tokens;
  //   first pieces: the first piece of each span (starts_personal_span) vs tokens outside spans
  //                 (later pieces of a span are left out: they follow from the first);
  //   words:        record_words, scored by the sum of their tokens' PIRs (the log-ratio of the
  //                 whole word, by the chain rule), personal when a token is in a span, vs the rest.
  struct GroundTruthAuroc {
    double tokens = 0, first_pieces = 0, words = 0;
    int64_t first_piece_count = 0, personal_words = 0, other_words = 0;
  };
  GroundTruthAuroc ground_truth_auroc() const;
  double clip_min() const { return clip_min_; }
  double clip_max() const { return clip_max_; }

  // Pretty JSON (scores.summary.json); `extra` adds top-level string/number fields verbatim
  // (already JSON-encoded values), e.g. {"tokens_per_s", "1234.5"}.
  std::string to_json(const std::vector<std::pair<std::string, std::string>>& extra = {}) const;
  std::string to_text() const;  // a few lines for the terminal

 private:
  double clip_min_, clip_max_;
  int64_t records_ = 0, clipped_low_ = 0, clipped_high_ = 0;
  int64_t nan_count_ = 0;  // NaN PIRs: counted, kept out of every statistic
  std::vector<float> pir_;
  mutable std::vector<float> sorted_;
  mutable bool sorted_valid_ = false;
  struct PieceSum {
    int64_t count = 0;
    double sum = 0.0;
  };
  std::map<std::string, PieceSum> pieces_;
  std::map<std::string, PieceSum> words_;  // word text -> occurrences and their summed PIRs
  int64_t personal_count_ = 0, other_count_ = 0;
  double personal_sum_ = 0.0, other_sum_ = 0.0;
  std::vector<std::pair<double, bool>> token_truth_, first_truth_, word_truth_;  // (PIR, personal)
  std::pair<double, int64_t> logp_sums_[3] = {};  // log P with the profile: first pieces, personal, other
};

std::string html_escape(const std::string& text);

struct HtmlReportOptions {
  std::string title = "percetrain score";
  std::string source;          // what was scored (data file, model), shown in the header
  int64_t total_records = 0;   // records in the JSONL (the report may show fewer)
};

// One self-contained HTML page (inline CSS and SVG, no scripts, no external resources): the
// summary, a PIR histogram, the most personal pieces and `records` with tokens shaded by PIR.
// Every piece of dataset text is escaped.
std::string render_html_report(const std::vector<RecordScore>& records, const ScoreSummary& summary,
                               const HtmlReportOptions& options);

}  // namespace percetrain
