// NLTK's Porter stemmer (mode NLTK_EXTENSIONS), on code points as Python strings are.
#include "percetrain/eval/porter.hpp"

#include <functional>
#include <map>
#include <vector>

#include "percetrain/eval/text.hpp"

namespace percetrain::eval {
namespace {

using Word = std::u32string;
using Condition = std::function<bool(const Word&)>;

struct Rule {
  Word suffix;  // U"*d" stands for "ends in a double consonant"
  Word replacement;
  Condition condition;  // empty: unconditional
};

bool is_vowel_letter(char32_t c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool is_consonant(const Word& w, size_t i) {
  if (is_vowel_letter(w[i])) return false;
  if (w[i] == 'y') return i == 0 ? true : !is_consonant(w, i - 1);
  return true;
}

// Number of "vc" transitions in the consonant/vowel pattern: Porter's m.
int measure(const Word& stem) {
  int m = 0;
  for (size_t i = 0; i + 1 < stem.size(); ++i)
    if (!is_consonant(stem, i) && is_consonant(stem, i + 1)) ++m;
  return m;
}

bool contains_vowel(const Word& stem) {
  for (size_t i = 0; i < stem.size(); ++i)
    if (!is_consonant(stem, i)) return true;
  return false;
}

bool ends_with(const Word& w, const Word& suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Word drop(const Word& w, size_t n) { return w.substr(0, w.size() - n); }

bool ends_double_consonant(const Word& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

// Porter's *o, with NLTK's extra case of a two-letter vowel-consonant word.
bool ends_cvc(const Word& w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) &&
      w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

// The first rule whose suffix matches decides: it applies if its condition holds, else the word
// is returned unchanged (later rules are not tried).
Word apply_rules(const Word& word, const std::vector<Rule>& rules) {
  for (const auto& rule : rules) {
    if (rule.suffix == U"*d" && ends_double_consonant(word)) {
      Word stem = drop(word, 2);
      return (!rule.condition || rule.condition(stem)) ? stem + rule.replacement : word;
    }
    if (ends_with(word, rule.suffix)) {
      Word stem = drop(word, rule.suffix.size());
      return (!rule.condition || rule.condition(stem)) ? stem + rule.replacement : word;
    }
  }
  return word;
}

bool positive_measure(const Word& stem) { return measure(stem) > 0; }
bool measure_gt_1(const Word& stem) { return measure(stem) > 1; }

Word step1a(const Word& w) {
  if (ends_with(w, U"ies") && w.size() == 4) return drop(w, 3) + U"ie";
  return apply_rules(w, {{U"sses", U"ss", {}}, {U"ies", U"i", {}}, {U"ss", U"ss", {}}, {U"s", U"", {}}});
}

Word step1b(const Word& w) {
  if (ends_with(w, U"ied")) return drop(w, 3) + (w.size() == 4 ? U"ie" : U"i");
  if (ends_with(w, U"eed")) {
    Word stem = drop(w, 3);
    return measure(stem) > 0 ? stem + U"ee" : w;
  }
  Word stem;
  bool stripped = false;
  for (const Word& suffix : {Word(U"ed"), Word(U"ing")}) {
    if (ends_with(w, suffix) && contains_vowel(drop(w, suffix.size()))) {
      stem = drop(w, suffix.size());
      stripped = true;
      break;
    }
  }
  if (!stripped) return w;
  const char32_t last = stem.empty() ? 0 : stem.back();
  return apply_rules(stem, {{U"at", U"ate", {}},
                            {U"bl", U"ble", {}},
                            {U"iz", U"ize", {}},
                            {U"*d", Word(1, last), [last](const Word&) { return last != 'l' && last != 's' && last != 'z'; }},
                            {U"", U"e", [](const Word& s) { return measure(s) == 1 && ends_cvc(s); }}});
}

Word step1c(const Word& w) {
  return apply_rules(w, {{U"y", U"i", [](const Word& s) { return s.size() > 1 && is_consonant(s, s.size() - 1); }}});
}

Word step2(const Word& w) {
  if (ends_with(w, U"alli") && positive_measure(drop(w, 4))) return step2(drop(w, 4) + U"al");
  const Condition pm = positive_measure;
  return apply_rules(w, {{U"ational", U"ate", pm}, {U"tional", U"tion", pm}, {U"enci", U"ence", pm},
                         {U"anci", U"ance", pm},   {U"izer", U"ize", pm},    {U"bli", U"ble", pm},
                         {U"alli", U"al", pm},     {U"entli", U"ent", pm},   {U"eli", U"e", pm},
                         {U"ousli", U"ous", pm},   {U"ization", U"ize", pm}, {U"ation", U"ate", pm},
                         {U"ator", U"ate", pm},    {U"alism", U"al", pm},    {U"iveness", U"ive", pm},
                         {U"fulness", U"ful", pm}, {U"ousness", U"ous", pm}, {U"aliti", U"al", pm},
                         {U"iviti", U"ive", pm},   {U"biliti", U"ble", pm},  {U"fulli", U"ful", pm},
                         // NLTK tests the measure of the word minus "ogi", not of the stem.
                         {U"logi", U"log", [w](const Word&) { return positive_measure(drop(w, 3)); }}});
}

Word step3(const Word& w) {
  const Condition pm = positive_measure;
  return apply_rules(w, {{U"icate", U"ic", pm}, {U"ative", U"", pm}, {U"alize", U"al", pm},
                         {U"iciti", U"ic", pm}, {U"ical", U"ic", pm}, {U"ful", U"", pm}, {U"ness", U"", pm}});
}

Word step4(const Word& w) {
  const Condition gt1 = measure_gt_1;
  return apply_rules(
      w, {{U"al", U"", gt1},   {U"ance", U"", gt1},  {U"ence", U"", gt1}, {U"er", U"", gt1},  {U"ic", U"", gt1},
          {U"able", U"", gt1}, {U"ible", U"", gt1},  {U"ant", U"", gt1},  {U"ement", U"", gt1}, {U"ment", U"", gt1},
          {U"ent", U"", gt1},
          {U"ion", U"", [](const Word& s) { return measure(s) > 1 && !s.empty() && (s.back() == 's' || s.back() == 't'); }},
          {U"ou", U"", gt1},   {U"ism", U"", gt1},   {U"ate", U"", gt1},  {U"iti", U"", gt1},  {U"ous", U"", gt1},
          {U"ive", U"", gt1},  {U"ize", U"", gt1}});
}

Word step5a(const Word& w) {
  if (!ends_with(w, U"e")) return w;
  Word stem = drop(w, 1);
  const int m = measure(stem);
  if (m > 1) return stem;
  if (m == 1 && !ends_cvc(stem)) return stem;
  return w;
}

Word step5b(const Word& w) {
  return apply_rules(w, {{U"ll", U"l", [w](const Word&) { return measure(drop(w, 1)) > 1; }}});
}

const std::map<Word, Word>& irregular_pool() {
  static const std::map<Word, Word> pool = {
      {U"sky", U"sky"},         {U"skies", U"sky"},       {U"dying", U"die"},     {U"lying", U"lie"},
      {U"tying", U"tie"},       {U"news", U"news"},       {U"innings", U"inning"}, {U"inning", U"inning"},
      {U"outings", U"outing"},  {U"outing", U"outing"},   {U"cannings", U"canning"}, {U"canning", U"canning"},
      {U"howe", U"howe"},       {U"proceed", U"proceed"}, {U"exceed", U"exceed"}, {U"succeed", U"succeed"}};
  return pool;
}

}  // namespace

std::string porter_stem(std::string_view word) {
  const Word original = utf8_to_u32(word);
  Word w = utf8_to_u32(lower(word));
  // NLTK looks the word up before lowercasing but returns the lowercased entry.
  if (auto it = irregular_pool().find(original); it != irregular_pool().end()) return u32_to_utf8(it->second);
  if (original.size() <= 2) return u32_to_utf8(w);
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  w = step5b(w);
  return u32_to_utf8(w);
}

}  // namespace percetrain::eval
