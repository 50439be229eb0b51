// Presets, templates, chat format and the length policy that turn a record into paired token ids.
#include "percetrain/data/pairing.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "percetrain/data/dataset.hpp"
#include "percetrain/tokenizer/chat_format.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain {
namespace {

struct Preset {
  const char* name;
  const char* item_template;
  const char* profile_template;
  const char* prompt_template;
  const char* query_pattern;
  const char* date_field;
};

// Field names and input phrasing:
// - LongLaMP (Kumar et al. 2024, arXiv 2407.11016, appendix "input-output formats", and the
//   LongLaMP datasets on the Hugging Face hub): product review items {reviewText, summary,
//   overall, description}, input 'Generate the review text written by a reviewer who has given an
//   overall rating of {rating} for a product with description "{description}". The summary of the
//   review text is "{summary}".'; topic writing items {content, summary, id}, input 'Generate the
//   content for a Reddit post "{summary}"'; abstract generation items {title, abstract, id, year},
//   input 'Generate an abstract for the title "{title}" using the following items: ...'.
// - LaMP (Salemi et al. 2023; github.com/LaMP-Benchmark/LaMP, LaMP/prompts/prompts.py and
//   prompts/utils.py): LaMP-4 items {title, text}, query after "article:"; LaMP-5 items
//   {title, abstract}, query after "paper:"; LaMP-7 items {text}, query after the first ":". The
//   item phrasings ("... is the title for ...") follow prompts.py. LaMP-1 (citation: the
//   author's paper titles; query from "[1]" on, the two candidates), LaMP-2 (movie tagging,
//   {description, tag}), LaMP-3 (product rating, {text, score}) and LaMP-6 (email subjects,
//   {title, text}; the Avocado data are not public) likewise.
// Queries drop the fixed instruction words so that BM25 matches content, as LaMP's code does.
const Preset kPresets[] = {
    {"longlamp_product_review", "{summary} (rated {overall}): {reviewText}",
     "Here are some of the user's past reviews:\n{items}\n\n", "{profile}{input}\n",
     R"(product with description ([\s\S]*))", "date"},
    {"longlamp_topic_writing", "{summary}: {content}",
     "Here are some of the user's past posts:\n{items}\n\n", "{profile}{input}\n",
     R"(reddit post:?\s*([\s\S]*))", "date"},
    {"longlamp_abstract_generation", "{title}: {abstract}",
     "Here are some of the author's past abstracts:\n{items}\n\n", "{profile}{input}\n",
     R"(for the title:?\s*([\s\S]*))", "year"},
    {"lamp1", "\"{title}\"", "Here are the titles of some of the author's papers:\n{items}\n\n", "{profile}{input}\n",
     R"((\[1\][\s\S]*))", "date"},
    {"lamp2", "the tag for the movie: \"{description}\" is \"{tag}\"",
     "Here are some of the user's past movies and their tags:\n{items}\n\n", "{profile}{input}\n",
     R"(description:?\s*([\s\S]*))", "date"},
    {"lamp3", "{score} is the score for \"{text}\"", "Here are some of the user's past reviews:\n{items}\n\n",
     "{profile}{input}\n", R"(review:?\s*([\s\S]*))", "date"},
    {"lamp4", "\"{title}\" is the title for \"{text}\"",
     "Here are some of the user's past articles and their headlines:\n{items}\n\n", "{profile}{input}\n",
     R"(article:?\s*([\s\S]*))", "date"},
    {"lamp5", "\"{title}\" is a title for \"{abstract}\"",
     "Here are some of the user's past papers and their titles:\n{items}\n\n", "{profile}{input}\n",
     R"(paper:?\s*([\s\S]*))", "date"},
    {"lamp6", "\"{title}\" is the title for \"{text}\"", "Here are some of the user's past emails:\n{items}\n\n",
     "{profile}{input}\n", R"(^[^:]*:\s*([\s\S]*))", "date"},
    {"lamp7", "\"{text}\"", "Here are some of the user's past tweets:\n{items}\n\n", "{profile}{input}\n",
     R"(^[^:]*:\s*([\s\S]*))", "date"},
};

// Drops a UTF-8 sequence cut off at the end (a token boundary may fall inside a character with
// byte-level tokenizers) and the replacement character decoders write for one.
void trim_partial_utf8(std::string* s) {
  const std::string replacement = "\xEF\xBF\xBD";
  while (s->size() >= 3 && s->compare(s->size() - 3, 3, replacement) == 0) s->resize(s->size() - 3);
  size_t i = s->size(), continuation = 0;
  while (i > 0 && (static_cast<unsigned char>((*s)[i - 1]) & 0xC0) == 0x80 && continuation < 3) {
    --i;
    ++continuation;
  }
  if (i == 0) return;
  const auto lead = static_cast<unsigned char>((*s)[i - 1]);
  size_t need = 0;
  if ((lead & 0xE0) == 0xC0) need = 1;
  else if ((lead & 0xF0) == 0xE0) need = 2;
  else if ((lead & 0xF8) == 0xF0) need = 3;
  if (lead >= 0x80 && need != continuation) s->resize(i - 1);
}

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The first / last `bytes` bytes of valid UTF-8, shortened so that no character is split.
std::string utf8_prefix(const std::string& s, size_t bytes) {
  size_t end = std::min(bytes, s.size());
  while (end > 0 && end < s.size() && is_continuation_byte(s[end])) --end;
  return s.substr(0, end);
}
std::string utf8_suffix(const std::string& s, size_t bytes) {
  size_t begin = s.size() > bytes ? s.size() - bytes : 0;
  while (begin < s.size() && is_continuation_byte(s[begin])) ++begin;
  return s.substr(begin);
}

}  // namespace

const std::vector<std::string>& data_preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& p : kPresets) n.push_back(p.name);
    return n;
  }();
  return names;
}

void apply_data_preset(const std::string& name, DataConfig* c) {
  for (const auto& p : kPresets) {
    if (name != p.name) continue;
    c->item_template = p.item_template;
    c->profile_template = p.profile_template;
    c->prompt_template = p.prompt_template;
    c->item_separator = "\n";
    c->query_pattern = p.query_pattern;
    c->date_field = p.date_field;
    return;
  }
  fail("data.preset", "'" + name + "' is not a preset", "use one of " + join(data_preset_names(), ", "));
}

std::vector<std::string> template_slots(const std::string& text, const std::string& where) {
  std::vector<std::string> slots;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') { ++i; continue; }
      fail(where, "a lone '}' at offset " + std::to_string(i), "write '}}' for a literal brace");
    }
    if (ch != '{') continue;
    if (i + 1 < text.size() && text[i + 1] == '{') { ++i; continue; }
    const size_t end = text.find('}', i + 1);
    if (end == std::string::npos) fail(where, "a '{' at offset " + std::to_string(i) + " is not closed", "write '{{' for a literal brace");
    const std::string name = text.substr(i + 1, end - i - 1);
    if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != std::string::npos)
      fail(where, "'{" + name + "}' is not a slot name", "slots are {field} with letters, digits, _ - .; write '{{' for a literal brace");
    slots.push_back(name);
    i = end;
  }
  return slots;
}

std::string render_template(const std::string& text, const std::string& where,
                            const std::function<const std::string*(const std::string&)>& lookup) {
  std::string out;
  out.reserve(text.size() * 2);
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if ((ch == '{' || ch == '}') && i + 1 < text.size() && text[i + 1] == ch) {
      out.push_back(ch);
      ++i;
      continue;
    }
    if (ch != '{') {
      out.push_back(ch);
      continue;
    }
    const size_t end = text.find('}', i + 1);
    if (end == std::string::npos) fail(where, "a '{' at offset " + std::to_string(i) + " is not closed");
    const std::string name = text.substr(i + 1, end - i - 1);
    const std::string* value = lookup(name);
    if (!value) fail(where, "'{" + name + "}' has no value");
    out += *value;
    i = end;
  }
  return out;
}

// A chat format renders the user message inside the model's template and ends with the
// assistant header, so the response ids are what the model generates after it.
std::string apply_chat_format(const DataConfig& config, const std::string& user_message) {
  const ChatFormat format = config.chat_format;
  if (format == ChatFormat::kNone)
    return config.system_prompt.empty() ? user_message : config.system_prompt + "\n\n" + user_message;
  return format_chat_prompt(format, config.system_prompt, user_message);
}

namespace {
// The ids that end the response: what the model emits after the answer. For chat formats the
// turn-end token (<|im_end|>, <|eot_id|>; llama2's template ends with " " + EOS), otherwise EOS.
std::vector<int> response_end_ids(const DataConfig& config, const Tokenizer& tokenizer) {
  const ChatFormat format = config.chat_format;
  const std::string end = chat_turn_end(format);
  if (format == ChatFormat::kNone || format == ChatFormat::kLlama2 || end.empty())
    return {tokenizer.eos_id()};
  return tokenizer.encode(end, false);
}
}  // namespace

std::string PairProblem::message() const {
  return where + (field.empty() ? "" : ": " + field) + ": " + what;
}

// data.query_pattern runs on PCRE2's interpreter, not std::regex: libstdc++'s std::regex recurses
// once per character matched by `[\s\S]*`, so a record with ~40 KB after the marker overflowed
// the stack (SIGSEGV, whatever on_bad_record said). PCRE2 (>= 10.30) keeps its backtracking state
// on the heap, bounded by its match and heap limits, which end a match with an error code instead.
// Options keep std::regex's ECMAScript meaning on bytes: ASCII case folding, '.' matches neither
// CR nor LF, '$' only at the very end.
struct PairBuilder::Impl {
  pcre2_code* query = nullptr;
  bool has_query = false;
  ~Impl() { pcre2_code_free(query); }
};

PairBuilder::PairBuilder(const DataConfig& config, const Tokenizer& tokenizer)
    : config_(config), tokenizer_(tokenizer), impl_(std::make_unique<Impl>()) {
  if (!config_.preset.empty() && config_.prompt_template.empty() && config_.item_template.empty())
    apply_data_preset(config_.preset, &config_);
  if (config_.item_template.empty())
    fail("data.item_template", "is empty", "set data.preset (" + join(data_preset_names(), ", ") + ") or data.item_template");
  if (config_.prompt_template.empty())
    fail("data.prompt_template", "is empty", "set data.preset or data.prompt_template with {profile} and {input}");
  template_slots(config_.item_template, "data.item_template");
  for (const auto& s : template_slots(config_.profile_template, "data.profile_template"))
    if (s != "items") fail("data.profile_template", "unknown slot '{" + s + "}'", "the only slot is {items}");
  int profile_slots = 0, input_slots = 0;
  for (const auto& s : template_slots(config_.prompt_template, "data.prompt_template")) {
    if (s == "profile") ++profile_slots;
    else if (s == "input") ++input_slots;
    else fail("data.prompt_template", "unknown slot '{" + s + "}'", "the slots are {profile} and {input}");
  }
  if (profile_slots != 1 || input_slots != 1)
    fail("data.prompt_template", "needs exactly one {profile} and one {input} slot",
         "without {profile} both prompts are the same and every PIR is zero");
  if (!config_.query_pattern.empty()) {
    pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
    pcre2_set_newline(context, PCRE2_NEWLINE_ANYCRLF);
    int err = 0;
    PCRE2_SIZE offset = 0;
    impl_->query = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(config_.query_pattern.data()),
                                 config_.query_pattern.size(), PCRE2_CASELESS | PCRE2_DOLLAR_ENDONLY, &err, &offset,
                                 context);
    pcre2_compile_context_free(context);
    if (!impl_->query) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail("data.query_pattern", std::string("not a valid regular expression: ") + reinterpret_cast<char*>(msg) +
                                     " at offset " + std::to_string(offset));
    }
    uint32_t groups = 0;
    pcre2_pattern_info(impl_->query, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups < 1)
      fail("data.query_pattern", "has no capture group", "capture the query part of input, e.g. \"article: (.*)\"");
    impl_->has_query = true;
  }
  if (config_.add_eos && tokenizer_.eos_id() < 0)
    fail("data.add_eos", "the tokenizer has no EOS token", "set data.add_eos to false");
  if (config_.max_length < 8) fail("data.max_length", "must be at least 8 tokens");
}

PairBuilder::~PairBuilder() = default;

bool PairBuilder::build(const Record& record, PairedExample* out, PairDetail* detail, PairProblem* problem) const {
  const DataConfig& c = config_;
  auto reject = [&](PairProblem::Kind kind, const std::string& field, const std::string& what) {
    *problem = PairProblem{kind, record.where, field, what};
    return false;
  };

  // Items as text. Every item must render, retrieved or not: a broken record is reported the
  // same whatever the retrieval method.
  const auto n_items = static_cast<int64_t>(record.profile.size());
  std::vector<std::string> item_texts(n_items), dates(n_items);
  for (int64_t i = 0; i < n_items; ++i) {
    const ProfileItem& item = record.profile[i];
    std::string missing;
    item_texts[i] = render_template(c.item_template, "data.item_template", [&](const std::string& name) {
      const std::string* v = item.find(name);
      if (!v && missing.empty()) missing = name;
      static const std::string empty;
      return v ? v : &empty;
    });
    if (!missing.empty())
      return reject(PairProblem::kBadRecord, "profile[" + std::to_string(i) + "]." + missing,
                    "is missing (data.item_template uses {" + missing + "})");
    if (const std::string* d = item.find(c.date_field)) dates[i] = *d;
  }

  std::string query = record.input;
  if (impl_->has_query) {
    pcre2_match_data* m = pcre2_match_data_create_from_pattern(impl_->query, nullptr);
    if (!m) throw std::bad_alloc();
    const int rc = pcre2_match(impl_->query, reinterpret_cast<PCRE2_SPTR>(record.input.data()), record.input.size(), 0,
                               0, m, nullptr);
    if (rc >= 0) {
      // An unset group 1 (in an alternative that did not match) is empty, as std::regex had it.
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m);
      query = rc > 1 && ov[2] != PCRE2_UNSET ? record.input.substr(ov[2], ov[3] - ov[2]) : std::string();
    }
    pcre2_match_data_free(m);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return reject(PairProblem::kBadRecord, "input",
                    std::string("data.query_pattern cannot be matched on it (") + reinterpret_cast<char*>(msg) +
                        "); simplify data.query_pattern or skip the record");
    }
  }
  // bm25_lamp searches what LaMP's code searches for the preset's task (raw fields, its query),
  // not the rendered items; without a LaMP preset it ranks the rendered items.
  const std::vector<std::string>* search_texts = &item_texts;
  std::vector<std::string> lamp_texts;
  if (c.retrieval == Retrieval::kBm25Lamp) {
    if (const LampRetrievalTask* task = lamp_retrieval_task(c.preset)) {
      lamp_texts.resize(n_items);
      for (int64_t i = 0; i < n_items; ++i) {
        std::string missing;
        lamp_texts[i] = lamp_corpus_text(*task, record.profile[i], &missing);
        if (!missing.empty())
          return reject(PairProblem::kBadRecord, "profile[" + std::to_string(i) + "]." + missing,
                        std::string("is missing (bm25_lamp searches it for ") + task->task + ")");
      }
      search_texts = &lamp_texts;
      query = lamp_query(*task, record.input);
    }
  }
  const auto ranked = rank_profile(c.retrieval, c.top_k, query, *search_texts, dates, c.bm25_k1, c.bm25_b);

  // Tokens of each ranked item on its own: the unit of the profile budget.
  std::vector<std::vector<int>> item_ids(ranked.size());
  // Length limits from byte lengths first: a text of B bytes has at least B / max_token_bytes
  // tokens (4x margin for normalisers that shrink text), so a 50 MB field is rejected or cut
  // before it is tokenised, not after minutes and gigabytes.
  const auto byte_limit = static_cast<size_t>(c.max_length) * tokenizer_.max_token_bytes() * 4;
  if (record.output.size() > byte_limit)
    return reject(PairProblem::kTooLong, "output",
                  "the response (" + std::to_string(record.output.size()) + " bytes) cannot fit in max_length " +
                      std::to_string(c.max_length) + " tokens");
  int64_t profile_full = 0;
  for (size_t r = 0; r < ranked.size(); ++r) {
    std::string& text = item_texts[ranked[r].index];
    if (text.size() > byte_limit) text = utf8_prefix(text, byte_limit);  // more than any prompt can hold
    item_ids[r] = tokenizer_.encode(text, false);
    profile_full += static_cast<int64_t>(item_ids[r].size());
  }
  const std::string input = record.input.size() > byte_limit ? utf8_suffix(record.input, byte_limit) : record.input;
  const std::vector<int> input_ids = tokenizer_.encode(input, false);

  std::vector<int> response = tokenizer_.encode(record.output, false);
  if (c.add_eos)
    for (int id : response_end_ids(c, tokenizer_)) response.push_back(id);
  const auto response_length = static_cast<int64_t>(response.size());
  if (response_length == 0) return reject(PairProblem::kBadRecord, "output", "is empty");

  const std::vector<int> bos = tokenizer_.adds_bos() && tokenizer_.bos_id() >= 0
                                   ? std::vector<int>{tokenizer_.bos_id()} : std::vector<int>{};
  struct Built {
    std::vector<PromptItem> used;
    std::string input, prompt;
    std::vector<int> ids;
  };
  // The personalised prompt with `budget` profile tokens (items in rank order, the last cut at a
  // token boundary) and the first `drop` input tokens removed.
  auto render = [&](int64_t budget, int64_t drop, bool with_profile) {
    Built b;
    std::vector<std::string> texts;
    if (with_profile) {
      int64_t left = budget;
      for (size_t r = 0; r < ranked.size() && left > 0; ++r) {
        PromptItem item{ranked[r].index, ranked[r].score, item_texts[ranked[r].index], false};
        const auto n = static_cast<int64_t>(item_ids[r].size());
        if (n > left) {
          item.text = tokenizer_.decode(std::vector<int>(item_ids[r].begin(), item_ids[r].begin() + left), true);
          trim_partial_utf8(&item.text);
          item.truncated = true;
        }
        left -= std::min(n, left);
        if (item.text.empty()) break;
        texts.push_back(item.text);
        b.used.push_back(std::move(item));
      }
    }
    b.input = input;
    if (drop > 0) {
      b.input = tokenizer_.decode(std::vector<int>(input_ids.begin() + drop, input_ids.end()), true);
      trim_partial_utf8(&b.input);
    }
    const std::string items = join(texts, c.item_separator);
    const std::string section = texts.empty() ? std::string()
        : render_template(c.profile_template, "data.profile_template",
                          [&](const std::string& s) { return s == "items" ? &items : nullptr; });
    const std::string user = render_template(c.prompt_template, "data.prompt_template", [&](const std::string& s) {
      return s == "profile" ? &section : s == "input" ? &b.input : nullptr;
    });
    b.prompt = apply_chat_format(c, user);
    b.ids = bos;
    const auto body = tokenizer_.encode(b.prompt, false);
    b.ids.insert(b.ids.end(), body.begin(), body.end());
    return b;
  };
  auto fits = [&](const Built& b) { return static_cast<int64_t>(b.ids.size()) + response_length <= c.max_length; };

  const int64_t cap = c.profile_token_budget > 0 ? std::min(profile_full, c.profile_token_budget) : profile_full;
  int64_t budget = cap, drop = 0;
  Built chosen = render(cap, 0, true);
  if (!fits(chosen)) {
    Built none = render(0, 0, true);
    if (fits(none)) {
      // Largest budget that fits; the prompt length is close to monotone in it, and whatever is
      // chosen was measured, so max_length holds exactly.
      int64_t lo = 0, hi = cap;
      Built best = std::move(none);
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        Built b = render(mid, 0, true);
        if (fits(b)) { lo = mid; best = std::move(b); } else { hi = mid; }
      }
      budget = lo;
      chosen = std::move(best);
    } else {
      // No profile at all, and the input cut from the left: fewest dropped tokens that fit.
      budget = 0;
      const auto n_input = static_cast<int64_t>(input_ids.size());
      Built all_dropped = render(0, n_input, true);
      if (!fits(all_dropped))
        return reject(PairProblem::kTooLong, "output",
                      "the response (" + std::to_string(response_length) + " tokens) does not fit in max_length " +
                          std::to_string(c.max_length) + " with the prompt template (" +
                          std::to_string(all_dropped.ids.size()) + " tokens without profile or input)");
      int64_t lo = 0, hi = n_input;  // lo does not fit, hi fits
      Built best = std::move(all_dropped);
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        Built b = render(0, mid, true);
        if (fits(b)) { hi = mid; best = std::move(b); } else { lo = mid; }
      }
      drop = hi;
      chosen = std::move(best);
    }
  }
  const Built counterfactual = render(0, drop, false);

  out->id = record.id.empty() ? record.where : record.id;
  out->user = record.user;
  out->personalised.assign(chosen.ids.begin(), chosen.ids.end());
  out->personalised.insert(out->personalised.end(), response.begin(), response.end());
  out->counterfactual.assign(counterfactual.ids.begin(), counterfactual.ids.end());
  out->counterfactual.insert(out->counterfactual.end(), response.begin(), response.end());
  out->response_length = static_cast<int32_t>(response_length);
  out->response_text = record.output;
  out->personal_spans = record.personal_spans;
  out->profile_items = static_cast<int32_t>(chosen.used.size());
  out->token_weights.clear();
  if (!record.token_weights.empty() || !record.weighted_spans.empty()) {
    const float none = std::numeric_limits<float>::quiet_NaN();  // the objective's default weight
    out->token_weights.assign(static_cast<size_t>(response_length), none);
    if (!record.token_weights.empty()) {
      // One weight per response token as `score` lists them (end-of-response ids included), or
      // one per token of the text alone (the end ids then take the default).
      const auto given = static_cast<int64_t>(record.token_weights.size());
      const int64_t text_tokens = response_length - (c.add_eos ? static_cast<int64_t>(response_end_ids(c, tokenizer_).size()) : 0);
      if (given != response_length && given != text_tokens)
        return reject(PairProblem::kBadRecord, "token_weights",
                      "has " + std::to_string(given) + " weights, but the output is " + std::to_string(text_tokens) +
                          " tokens" + (text_tokens != response_length ? " (" + std::to_string(response_length) +
                                                                             " with the end-of-response ids)" : std::string()) +
                          " under this tokenizer");
      for (int64_t i = 0; i < given; ++i) out->token_weights[static_cast<size_t>(i)] = static_cast<float>(record.token_weights[i]);
    } else {
      // A token takes the largest weight among the spans it overlaps; tokens without text (EOS)
      // overlap none.
      const auto spans = response_token_spans(tokenizer_, *out);
      for (size_t i = 0; i < spans.size(); ++i)
        for (const auto& w : record.weighted_spans)
          if (spans[i].first < w.end && w.start < spans[i].second &&
              !(out->token_weights[i] >= static_cast<float>(w.weight)))
            out->token_weights[i] = static_cast<float>(w.weight);
    }
  }

  const bool profile_cut = budget < profile_full;
  if (detail) {
    *detail = PairDetail{};
    detail->query = query;
    for (const auto& r : ranked) detail->retrieved.push_back(PromptItem{r.index, r.score, item_texts[r.index], false});
    detail->used = chosen.used;
    detail->personalised_prompt = chosen.prompt;
    detail->counterfactual_prompt = counterfactual.prompt;
    detail->personalised_prompt_tokens = static_cast<int32_t>(chosen.ids.size());
    detail->counterfactual_prompt_tokens = static_cast<int32_t>(counterfactual.ids.size());
    detail->profile_truncated = profile_cut;
    detail->input_truncated = drop > 0;
    detail->input_tokens_dropped = drop;
  }
  *problem = PairProblem{};
  return true;
}

}  // namespace percetrain
