// Read-only WordNet 3.0 database (Debian's wordnet-base files), enough for METEOR's synonym stage.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace percetrain::eval {

// Where the WordNet database lives: `explicit_dir` if non-empty, else $PERCETRAIN_WORDNET, else
// /usr/share/wordnet.
std::string resolve_wordnet_dir(const std::string& explicit_dir = "");

class WordNet {
 public:
  // Loads (once per folder, then cached) the index, exception and data files under `dir`; throws
  // percetrain::Error naming the folder and the wordnet-base package when a file is missing.
  static std::shared_ptr<const WordNet> open(const std::string& dir);

  // The lemma names of every synset NLTK's wordnet.synsets(word) returns (all four parts of speech,
  // after morphy), in NLTK's order, with syntactic markers like "(a)" removed and case kept.
  std::vector<std::string> synset_lemma_names(std::string_view word) const;

  // The base forms NLTK's _morphy(word, pos) finds; pos is one of 'n', 'v', 'a', 'r'.
  std::vector<std::string> morphy(const std::string& word, char pos) const;

  explicit WordNet(const std::string& dir);

 private:
  static constexpr int kPosCount = 4;  // n, v, a, r (NLTK's POS_LIST order)
  // The index line of `form` for one part of speech, or an empty view.
  std::string_view index_line(std::string_view form, int pos) const;
  std::vector<long> offsets(std::string_view line, int pos) const;

  std::string dir_;
  std::array<std::string, kPosCount> index_text_, data_text_;
  std::array<std::vector<std::string_view>, kPosCount> index_lines_;  // sorted as in the files
  std::array<std::unordered_map<std::string, std::vector<std::string>>, kPosCount> exceptions_;
};

}  // namespace percetrain::eval
