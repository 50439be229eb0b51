// WordNet reader answering NLTK's wordnet.synsets(word) lemma names, from the plain database files.
#include "percetrain/eval/wordnet.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "percetrain/eval/text.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain::eval {
namespace {

constexpr const char* kFileSuffix[] = {"noun", "verb", "adj", "adv"};
constexpr char kPosLetter[] = {'n', 'v', 'a', 'r'};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(path.string(), "cannot read the WordNet database file",
         "install Debian's wordnet-base (bash scripts/setup.sh), or point --wordnet / PERCETRAIN_WORDNET "
         "at a folder holding index.noun, data.noun, noun.exc, ...");
  in.seekg(0, std::ios::end);
  std::string text(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  return text;
}

std::string_view first_token(std::string_view line) {
  const size_t end = line.find(' ');
  return line.substr(0, end == std::string_view::npos ? line.size() : end);
}

std::vector<std::string_view> tokens(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\n' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\n' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// The substitutions NLTK's morphy tries, per part of speech, in its order.
const std::vector<std::pair<std::string, std::string>>& substitutions(int pos) {
  static const std::vector<std::pair<std::string, std::string>> table[4] = {
      {{"s", ""}, {"ses", "s"}, {"ves", "f"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
       {"men", "man"}, {"ies", "y"}},
      {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
      {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
      {}};
  return table[pos];
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string resolve_wordnet_dir(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return explicit_dir;
  if (const char* env = std::getenv("PERCETRAIN_WORDNET"); env && *env) return env;
  return "/usr/share/wordnet";
}

std::shared_ptr<const WordNet> WordNet::open(const std::string& dir) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const WordNet>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[dir];
  if (!slot) slot = std::make_shared<const WordNet>(dir);
  return slot;
}

WordNet::WordNet(const std::string& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    fail(dir, "WordNet folder not found",
         "install Debian's wordnet-base (bash scripts/setup.sh), or point --wordnet / PERCETRAIN_WORDNET "
         "at a WordNet 3.0 dict folder");
  for (int pos = 0; pos < kPosCount; ++pos) {
    index_text_[pos] = read_file(fs::path(dir) / (std::string("index.") + kFileSuffix[pos]));
    data_text_[pos] = read_file(fs::path(dir) / (std::string("data.") + kFileSuffix[pos]));
    const std::string& text = index_text_[pos];
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + start, end - start);
      if (!line.empty() && line[0] != ' ') index_lines_[pos].push_back(line);
      start = end + 1;
    }
    std::istringstream exc(read_file(fs::path(dir) / (std::string(kFileSuffix[pos]) + ".exc")));
    std::string line;
    while (std::getline(exc, line)) {
      auto parts = tokens(line);
      if (parts.empty()) continue;
      std::vector<std::string> bases(parts.begin() + 1, parts.end());
      exceptions_[pos][std::string(parts[0])] = std::move(bases);
    }
  }
}

// Index line: lemma pos synset_cnt p_cnt [ptr_symbol]*p_cnt sense_cnt tagsense_cnt offset*synset_cnt
std::vector<long> WordNet::offsets(std::string_view line, int pos) const {
  std::vector<long> out;
  if (line.empty()) return out;
  const auto parts = tokens(line);
  try {
    const size_t n_synsets = std::stoul(std::string(parts.at(2)));
    const size_t n_pointers = std::stoul(std::string(parts.at(3)));
    const size_t first = 4 + n_pointers + 2;
    for (size_t k = 0; k < n_synsets; ++k) out.push_back(std::stol(std::string(parts.at(first + k))));
  } catch (const std::exception&) {
    fail(dir_ + "/index." + kFileSuffix[pos], "malformed line '" + std::string(line) + "'",
         "reinstall wordnet-base");
  }
  return out;
}

// The index files are sorted by lemma in byte order (WordNet's own library binary-searches them),
// so a lookup is a binary search over the line starts: no hash table to build at start-up.
std::string_view WordNet::index_line(std::string_view form, int pos) const {
  const auto& lines = index_lines_[pos];
  auto it = std::lower_bound(lines.begin(), lines.end(), form,
                             [](std::string_view line, std::string_view key) { return first_token(line) < key; });
  return it != lines.end() && first_token(*it) == form ? *it : std::string_view();
}

std::vector<std::string> WordNet::morphy(const std::string& form, char pos_letter) const {
  int pos = 0;
  while (pos < kPosCount && kPosLetter[pos] != pos_letter) ++pos;
  if (pos == kPosCount) fail("wordnet", std::string("unknown part of speech '") + pos_letter + "'");
  auto filter = [&](const std::vector<std::string>& forms) {
    std::vector<std::string> result;
    for (const auto& f : forms)
      if (!index_line(f, pos).empty() && std::find(result.begin(), result.end(), f) == result.end()) result.push_back(f);
    return result;
  };
  auto apply_rules = [&](const std::vector<std::string>& forms) {
    std::vector<std::string> result;
    for (const auto& f : forms)
      for (const auto& [old_suffix, new_suffix] : substitutions(pos))
        if (ends_with(f, old_suffix)) result.push_back(f.substr(0, f.size() - old_suffix.size()) + new_suffix);
    return result;
  };
  // An exception entry settles it, even when none of its forms is in the index.
  if (auto it = exceptions_[pos].find(form); it != exceptions_[pos].end()) {
    std::vector<std::string> forms{form};
    forms.insert(forms.end(), it->second.begin(), it->second.end());
    return filter(forms);
  }
  std::vector<std::string> forms = apply_rules({form});
  std::vector<std::string> first{form};
  first.insert(first.end(), forms.begin(), forms.end());
  if (auto results = filter(first); !results.empty()) return results;
  while (!forms.empty()) {
    forms = apply_rules(forms);
    if (auto results = filter(forms); !results.empty()) return results;
  }
  return {};
}

std::vector<std::string> WordNet::synset_lemma_names(std::string_view word) const {
  const std::string lemma = lower(word);
  std::vector<std::string> names;
  for (int pos = 0; pos < kPosCount; ++pos) {
    for (const auto& form : morphy(lemma, kPosLetter[pos])) {
      for (long offset : offsets(index_line(form, pos), pos)) {
        const std::string& data = data_text_[pos];
        if (offset < 0 || static_cast<size_t>(offset) >= data.size())
          fail(dir_ + "/data." + kFileSuffix[pos], "synset offset " + std::to_string(offset) + " out of range",
               "reinstall wordnet-base");
        size_t end = data.find('\n', offset);
        std::string_view line(data.data() + offset, (end == std::string::npos ? data.size() : end) - offset);
        line = line.substr(0, line.find('|'));
        // Data line: offset lex_filenum ss_type w_cnt(hex) [word lex_id(hex)]*w_cnt ...
        const auto parts = tokens(line);
        if (parts.size() < 4) fail(dir_ + "/data." + kFileSuffix[pos], "malformed synset at " + std::to_string(offset));
        const size_t n_words = std::stoul(std::string(parts[3]), nullptr, 16);
        for (size_t k = 0; k < n_words && 4 + 2 * k < parts.size(); ++k) {
          std::string name(parts[4 + 2 * k]);
          // NLTK strips a trailing syntactic marker such as "(a)", "(p)" or "(ip)".
          if (!name.empty() && name.back() == ')') {
            if (size_t open = name.find('('); open != std::string::npos) name.resize(open);
          }
          names.push_back(std::move(name));
        }
      }
    }
  }
  return names;
}

}  // namespace percetrain::eval
