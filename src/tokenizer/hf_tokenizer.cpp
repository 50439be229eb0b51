// Hugging Face tokenizer.json (byte-level BPE) with the semantics of the Rust `tokenizers` library.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/hf_tokenizer.hpp"

#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "percetrain/tokenizer/tokenizer.hpp"
#include "tokenizer/config_files.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the valid UTF-8 sequence at s[i], 0 when it is not valid (overlong, surrogate, > U+10FFFF).
size_t utf8_valid_len(const unsigned char* s, size_t n, size_t i) {
  const unsigned c = s[i];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
  else return 0;
  if (i + len > n) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((s[i + k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i + k] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

// Byte offset of the first invalid sequence, or npos.
size_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8_valid_len(p, s.size(), i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Like Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(const std::string& bytes) {
  if (first_invalid_utf8(bytes) == std::string::npos) return bytes;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve(n + 8);
  for (size_t i = 0; i < n;) {
    const size_t len = utf8_valid_len(p, n, i);
    if (len > 0) {
      out.append(bytes, i, len);
      i += len;
      continue;
    }
    // Maximal subpart: the longest prefix of a valid sequence that is present (at least 1 byte).
    size_t k = 1;
    const unsigned c = p[i];
    unsigned lo = 0x80, hi = 0xBF;
    size_t need = 0;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = (c == 0xE0 ? 0xA0 : 0x80), hi = (c == 0xED ? 0x9F : 0xBF);
    else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = (c == 0xF0 ? 0x90 : 0x80), hi = (c == 0xF4 ? 0x8F : 0xBF);
    for (size_t j = 0; j < need && i + k < n; ++j) {
      const unsigned b = p[i + k];
      if (j == 0 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
      ++k;
    }
    out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

void append_utf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes one code point of valid UTF-8 at s[*i], advancing *i.
uint32_t next_code_point(std::string_view s, size_t* i) {
  utf8proc_int32_t cp = 0;
  const auto len = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + *i,
                                    static_cast<utf8proc_ssize_t>(s.size() - *i), &cp);
  *i += len > 0 ? static_cast<size_t>(len) : 1;
  return static_cast<uint32_t>(cp);
}

// Unicode White_Space, which is what Rust's char::is_whitespace and Oniguruma's \s test.
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_alphanumeric(uint32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// GPT-2's reversible byte <-> printable character table (byte-level BPE's alphabet): printable
// Latin-1 bytes stand for themselves, the other 68 bytes for U+0100 upwards, in byte order.
struct ByteAlphabet {
  std::array<uint32_t, 256> byte_to_cp{};
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteAlphabet() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
  // The bytes a byte-level token string stands for; false when it has a character outside the table.
  bool to_bytes(const std::string& token, std::string* out) const {
    out->clear();
    for (size_t i = 0; i < token.size();) {
      const auto it = cp_to_byte.find(next_code_point(token, &i));
      if (it == cp_to_byte.end()) return false;
      *out += static_cast<char>(it->second);
    }
    return true;
  }
  std::string to_token(std::string_view bytes) const {
    std::string out;
    for (const unsigned char b : bytes) append_utf8(&out, byte_to_cp[b]);
    return out;
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet table;
  return table;
}

// ---------------------------------------------------------------------------------------------
// Regex (PCRE2, UTF + Unicode properties, JIT)

// The Rust library compiles these patterns with Oniguruma, whose \s is Unicode White_Space;
// PCRE2's \s in UCP mode misses U+0085, so \s and \S are spelled out.
std::string oniguruma_whitespace(const std::string& pattern) {
  static const std::string ws = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Zs}\\x{2028}\\x{2029}";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char d = pattern[i + 1];
      if (d == 's') out += in_class ? ws : "[" + ws + "]";
      else if (d == 'S' && !in_class) out += "[^" + ws + "]";
      else out += pattern.substr(i, 2);
      ++i;
      continue;
    }
    if (c == '[' && !in_class) in_class = true;
    else if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

class Regex {
 public:
  Regex(const std::string& pattern, bool literal, const std::string& where) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    const std::string source = literal ? pattern : oniguruma_whitespace(pattern);
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &err, &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail(where, "cannot compile regex '" + pattern + "': " + reinterpret_cast<char*>(msg) + " at offset " +
                      std::to_string(offset));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;  // else the interpreter runs it
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls f(start, end) for every non-overlapping non-empty match in s, left to right.
  template <class F>
  void for_each_match(std::string_view s, F&& f) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0;
    while (pos <= s.size()) {
      // pcre2_jit_match skips the per-call checks of pcre2_match: one call per pre-token adds up.
      const auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
      const int rc = jit_ ? pcre2_jit_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                          : pcre2_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        fail("regex", "match failed with PCRE2 error " + std::to_string(rc));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t start = ov[0], end = ov[1];
      if (end > start) {
        f(start, end);
        pos = end;
      } else {  // empty match: step over one character
        pos = start + 1;
        while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
      }
    }
    pcre2_match_data_free(md);
  }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

const char kGpt2Pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// ---------------------------------------------------------------------------------------------
// Components

[[noreturn]] void unsupported(const std::string& where, const std::string& what, const std::string& hint) {
  throw UnsupportedTokenizerComponent(where, what, hint);
}

const json& member(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) fail(where, "expected a JSON object");
  const auto it = obj.find(key);
  if (it == obj.end()) fail(where + "." + key, "missing");
  return *it;
}

bool flag(const json& obj, const char* key, bool def, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(where + "." + key, "expected true or false");
  return it->get<bool>();
}

// Token ids index tables with one entry per id up to the largest, so a hostile id (4294967296)
// must not size them: ids stay below 2^22 (the largest vocabularies have ~260k tokens).
constexpr int64_t kMaxTokenId = int64_t{1} << 22;
bool is_token_id(const json& id) {
  return id.is_number_integer() && !(id.is_number_unsigned() && id.get<uint64_t>() >= uint64_t{kMaxTokenId}) &&
         id.get<int64_t>() >= 0 && id.get<int64_t>() < kMaxTokenId;
}

std::string type_of(const json& obj, const std::string& where) {
  const json& t = member(obj, "type", where);
  if (!t.is_string()) fail(where + ".type", "expected a string");
  return t.get<std::string>();
}

enum class Form { NFC, NFD, NFKC, NFKD };

struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel } kind = kSplit;
  enum Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous } behavior = kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
  std::unique_ptr<Regex> regex;  // Split's pattern, or ByteLevel's GPT-2 regex when use_regex
};

struct AddedToken {
  std::string content;
  int id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Added tokens matched leftmost-longest, like the Rust library's Aho-Corasick pass.
class AddedTokenMatcher {
 public:
  void add(const AddedToken* t) {
    if (t->content.empty()) return;
    by_first_[static_cast<unsigned char>(t->content[0])].push_back(t);
    any_ = true;
  }
  void finish() {
    for (auto& v : by_first_)
      std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->content.size() > b->content.size(); });
  }
  bool empty() const { return !any_; }
  // Splits s into (token or nullptr, piece) in order, applying single_word / lstrip / rstrip.
  template <class F>
  void split(std::string_view s, F&& emit) const {
    size_t offset = 0;  // end of what has been emitted
    size_t i = 0;
    while (i < s.size()) {
      const auto& cands = by_first_[static_cast<unsigned char>(s[i])];
      const AddedToken* hit = nullptr;
      for (const AddedToken* t : cands)
        if (s.compare(i, t->content.size(), t->content) == 0) {
          hit = t;
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      size_t start = i, stop = i + hit->content.size();
      if (hit->single_word && !at_word_boundary(s, start, stop)) {
        i = stop;  // the match is consumed but not used, like the Rust library
        continue;
      }
      if (hit->lstrip) {
        size_t k = start;
        while (k > offset) {
          size_t p = k - 1;
          while (p > offset && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
          size_t q = p;
          if (!is_white_space(next_code_point(s, &q))) break;
          k = p;
        }
        start = k;
      }
      if (hit->rstrip) {
        while (stop < s.size()) {
          size_t q = stop;
          if (!is_white_space(next_code_point(s, &q))) break;
          stop = q;
        }
      }
      if (offset < start) emit(nullptr, s.substr(offset, start - offset));
      emit(hit, s.substr(start, stop - start));
      offset = i = stop;
    }
    if (offset < s.size()) emit(nullptr, s.substr(offset));
  }

 private:
  static bool at_word_boundary(std::string_view s, size_t start, size_t stop) {
    if (start > 0) {
      size_t p = start - 1;
      while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
      if (is_alphanumeric(next_code_point(s, &p))) return false;
    }
    if (stop < s.size()) {
      size_t q = stop;
      if (is_alphanumeric(next_code_point(s, &q))) return false;
    }
    return true;
  }
  std::array<std::vector<const AddedToken*>, 256> by_first_;
  bool any_ = false;
};

// Open-addressing map from a pair of token ids to (merge rank, merged id).
class MergeTable {
 public:
  struct Value {
    int rank;
    int id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, Value{0, 0});
    mask_ = cap - 1;
  }
  void put(int a, int b, Value v) {
    const uint64_t key = pack(a, b);
    size_t i = slot(key);
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    keys_[i] = key;
    values_[i] = v;
  }
  const Value* find(int a, int b) const {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The tokenizer

class HfJsonTokenizer final : public Tokenizer {
 public:
  explicit HfJsonTokenizer(const std::string& file) : file_(file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) fail(file, "no such file", "expected a Hugging Face tokenizer.json");
    const json root = tokenizer_files::read_json(file);
    if (!root.is_object()) fail(file, "expected a JSON object at the top level");
    parse_model(member(root, "model", file));
    parse_added_tokens(root);
    parse_normalizer(root);
    parse_pre_tokenizer(root);
    parse_post_processor(root);
    parse_decoder(root);
    for (const char* key : {"truncation", "padding"}) {
      const auto it = root.find(key);
      if (it != root.end() && !it->is_null())
        unsupported(file_ + ": " + key, "is set; percetrain does not truncate or pad inside the tokenizer",
                    "set it to null; the data pipeline truncates and pads");
    }
    build_decode_table();
    read_configs(fs::path(file).parent_path());
  }

  std::vector<int> encode(const std::string& text, bool add_special) const override {
    if (const size_t bad = first_invalid_utf8(text); bad != std::string::npos)
      fail(file_, "text to encode is not valid UTF-8 (byte " + std::to_string(bad) + ")",
           "tokenizers encode Unicode text; fix the input's encoding");
    std::vector<int> ids;
    ids.reserve(text.size() / 3 + 4);
    if (add_special) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
    raw_matcher_.split(text, [&](const AddedToken* t, std::string_view piece) {
      if (t) {
        ids.push_back(t->id);
        return;
      }
      encode_section(piece, &ids);
    });
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string decode(const std::vector<int>& ids, bool skip_special) const override {
    std::string bytes;
    for (const int id : ids) {
      check_id(id);
      if (skip_special && special_[id]) continue;
      bytes += decoded_[id];
    }
    return utf8_lossy(bytes);
  }

  std::string id_to_piece(int id) const override {
    check_id(id);
    return pieces_[id];
  }

  int piece_to_id(const std::string& piece) const override {
    const auto it = piece_ids_.find(piece);
    return it == piece_ids_.end() ? -1 : it->second;
  }

  int vocab_size() const override { return static_cast<int>(pieces_.size()); }

  bool is_special(int id) const override { return id >= 0 && id < vocab_size() && special_[id]; }

 private:
  // ---- parsing

  void parse_model(const json& m) {
    const std::string where = file_ + ": model";
    const std::string type = m.contains("type") ? type_of(m, where) : "BPE";
    if (type != "BPE")
      unsupported(where + ".type", "unsupported model '" + type + "'", "percetrain implements byte-level BPE models");
    if (m.contains("dropout") && !m["dropout"].is_null())
      unsupported(where + ".dropout", "BPE dropout is not supported", "set it to null for inference and training data");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const auto it = m.find(key);
      if (it != m.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
        unsupported(where + "." + key, "is set; only byte-level BPE without affixes is supported", "");
    }
    ignore_merges_ = flag(m, "ignore_merges", false, where);

    const json& vocab = member(m, "vocab", where);
    if (!vocab.is_object()) fail(where + ".vocab", "expected an object of token -> id");
    int max_id = -1;
    for (const auto& [token, id] : vocab.items()) {
      if (!is_token_id(id))
        fail(where + ".vocab",
             "id of '" + token + "' is not a non-negative integer below " + std::to_string(kMaxTokenId));
      max_id = std::max(max_id, id.get<int>());
    }
    pieces_.assign(static_cast<size_t>(max_id + 1), std::string());
    piece_ids_.reserve(vocab.size() * 2);
    bytes_ids_.reserve(vocab.size() * 2);
    const ByteAlphabet& alphabet = byte_alphabet();
    std::string bytes;
    for (const auto& [token, idj] : vocab.items()) {
      const int id = idj.get<int>();  // checked above
      pieces_[id] = token;
      piece_ids_[token] = id;
      if (alphabet.to_bytes(token, &bytes)) bytes_ids_.emplace(bytes, id);
    }
    for (int b = 0; b < 256; ++b) {
      const auto it = bytes_ids_.find(std::string(1, static_cast<char>(b)));
      byte_ids_[b] = it == bytes_ids_.end() ? -1 : it->second;
    }

    const json& merges = member(m, "merges", where);
    if (!merges.is_array()) fail(where + ".merges", "expected a list");
    merges_.reserve(merges.size());
    int rank = 0;
    for (const auto& mj : merges) {
      std::string a, b;
      if (mj.is_string()) {
        const std::string s = mj.get<std::string>();
        const auto sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail(where + ".merges[" + std::to_string(rank) + "]", "expected two tokens separated by one space, got '" + s + "'");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
        a = mj[0].get<std::string>();
        b = mj[1].get<std::string>();
      } else {
        fail(where + ".merges[" + std::to_string(rank) + "]", "expected \"a b\" or [\"a\", \"b\"]");
      }
      const int ia = piece_to_id(a), ib = piece_to_id(b), im = piece_to_id(a + b);
      if (ia < 0 || ib < 0 || im < 0)
        fail(where + ".merges[" + std::to_string(rank) + "]",
             "merge '" + a + " " + b + "' uses a token that is not in the vocabulary");
      merges_.put(ia, ib, {rank, im});
      ++rank;
    }
  }

  void parse_added_tokens(const json& root) {
    const auto it = root.find("added_tokens");
    if (it == root.end() || it->is_null()) return;
    const std::string where = file_ + ": added_tokens";
    if (!it->is_array()) fail(where, "expected a list");
    added_.reserve(it->size());  // pointers into added_ stay valid
    for (size_t i = 0; i < it->size(); ++i) {
      const json& t = (*it)[i];
      const std::string w = where + "[" + std::to_string(i) + "]";
      AddedToken a;
      const json& content = member(t, "content", w);
      const json& id = member(t, "id", w);
      if (!content.is_string()) fail(w + ".content", "expected a string");
      if (!is_token_id(id)) fail(w + ".id", "expected a non-negative integer below " + std::to_string(kMaxTokenId));
      a.content = content.get<std::string>();
      a.id = id.get<int>();
      a.special = flag(t, "special", false, w);
      a.lstrip = flag(t, "lstrip", false, w);
      a.rstrip = flag(t, "rstrip", false, w);
      a.single_word = flag(t, "single_word", false, w);
      a.normalized = flag(t, "normalized", !a.special, w);
      added_.push_back(a);
    }
    for (const AddedToken& a : added_) {
      if (a.id >= static_cast<int>(pieces_.size())) pieces_.resize(a.id + 1);
      pieces_[a.id] = a.content;
      piece_ids_[a.content] = a.id;
      // Special and non-normalized tokens are matched in the raw text, the others after normalizing.
      (a.special || !a.normalized ? raw_matcher_ : normalized_matcher_).add(&a);
    }
    raw_matcher_.finish();
    normalized_matcher_.finish();
  }

  void parse_normalizer(const json& root) {
    const auto it = root.find("normalizer");
    if (it == root.end() || it->is_null()) return;
    add_normalizer(*it, file_ + ": normalizer");
  }

  void add_normalizer(const json& n, const std::string& where) {
    const std::string type = type_of(n, where);
    if (type == "Sequence") {
      const json& list = member(n, "normalizers", where);
      if (!list.is_array()) fail(where + ".normalizers", "expected a list");
      for (size_t i = 0; i < list.size(); ++i) add_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "NFC") {
      forms_.push_back(Form::NFC);
    } else if (type == "NFD") {
      forms_.push_back(Form::NFD);
    } else if (type == "NFKC") {
      forms_.push_back(Form::NFKC);
    } else if (type == "NFKD") {
      forms_.push_back(Form::NFKD);
    } else {
      unsupported(where + ".type", "unsupported normalizer '" + type + "'",
                  "percetrain implements NFC, NFD, NFKC, NFKD and Sequence");
    }
  }

  void parse_pre_tokenizer(const json& root) {
    const auto it = root.find("pre_tokenizer");
    if (it != root.end() && !it->is_null()) add_pre_tokenizer(*it, file_ + ": pre_tokenizer");
    const bool byte_level = std::any_of(steps_.begin(), steps_.end(), [](const auto& s) { return s.kind == PreTokenizerStep::kByteLevel; });
    if (!byte_level)
      unsupported(file_ + ": pre_tokenizer", "has no ByteLevel step; only byte-level BPE is supported",
                  "SentencePiece-style tokenizer.json files (Metaspace) are read from their tokenizer.model instead");
    for (int b = 0; b < 256; ++b)
      if (byte_ids_[b] < 0)
        fail(file_ + ": model.vocab", "byte-level alphabet character for byte " + std::to_string(b) + " is missing",
             "a byte-level BPE vocabulary has all 256 byte characters");
  }

  void add_pre_tokenizer(const json& p, const std::string& where) {
    const std::string type = type_of(p, where);
    if (type == "Sequence") {
      const json& list = member(p, "pretokenizers", where);
      if (!list.is_array()) fail(where + ".pretokenizers", "expected a list");
      for (size_t i = 0; i < list.size(); ++i) add_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
    } else if (type == "Split") {
      PreTokenizerStep s;
      const json& pattern = member(p, "pattern", where);
      if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
        s.regex = std::make_unique<Regex>(pattern["Regex"].get<std::string>(), false, where + ".pattern.Regex");
      } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
        s.regex = std::make_unique<Regex>(pattern["String"].get<std::string>(), true, where + ".pattern.String");
      } else {
        fail(where + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
      }
      const json& behavior = member(p, "behavior", where);
      const std::string b = behavior.is_string() ? behavior.get<std::string>() : "";
      if (b == "Removed") s.behavior = PreTokenizerStep::kRemoved;
      else if (b == "Isolated") s.behavior = PreTokenizerStep::kIsolated;
      else if (b == "MergedWithPrevious") s.behavior = PreTokenizerStep::kMergedWithPrevious;
      else if (b == "MergedWithNext") s.behavior = PreTokenizerStep::kMergedWithNext;
      else if (b == "Contiguous") s.behavior = PreTokenizerStep::kContiguous;
      else unsupported(where + ".behavior", "unknown split behavior '" + behavior.dump() + "'",
                       "expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
      s.invert = flag(p, "invert", false, where);
      steps_.push_back(std::move(s));
    } else if (type == "ByteLevel") {
      PreTokenizerStep s;
      s.kind = PreTokenizerStep::kByteLevel;
      s.add_prefix_space = flag(p, "add_prefix_space", true, where);
      if (flag(p, "use_regex", true, where)) s.regex = std::make_unique<Regex>(kGpt2Pattern, false, where);
      steps_.push_back(std::move(s));
    } else {
      unsupported(where + ".type", "unsupported pre-tokenizer '" + type + "'",
                  "percetrain implements Split, ByteLevel and Sequence");
    }
  }

  void parse_post_processor(const json& root) {
    const auto it = root.find("post_processor");
    if (it != root.end() && !it->is_null()) add_post_processor(*it, file_ + ": post_processor");
    add_bos_ = !prefix_.empty();
    add_eos_ = !suffix_.empty();
  }

  void add_post_processor(const json& p, const std::string& where) {
    const std::string type = type_of(p, where);
    if (type == "Sequence") {
      const json& list = member(p, "processors", where);
      if (!list.is_array()) fail(where + ".processors", "expected a list");
      for (size_t i = 0; i < list.size(); ++i) add_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
    } else if (type == "ByteLevel") {
      // Only adjusts offsets; ids are unchanged.
    } else if (type == "TemplateProcessing") {
      const json& single = member(p, "single", where);
      const json& specials = member(p, "special_tokens", where);
      if (!single.is_array()) fail(where + ".single", "expected a list");
      std::vector<int> before, after;
      int sequences = 0;
      for (size_t i = 0; i < single.size(); ++i) {
        const std::string w = where + ".single[" + std::to_string(i) + "]";
        const json& piece = single[i];
        if (piece.contains("Sequence")) {
          const json& id = member(piece["Sequence"], "id", w + ".Sequence");
          if (id != "A") fail(w + ".Sequence.id", "a single-sequence template can only hold sequence A");
          ++sequences;
        } else if (piece.contains("SpecialToken")) {
          const json& name = member(piece["SpecialToken"], "id", w + ".SpecialToken");
          if (!name.is_string()) fail(w + ".SpecialToken.id", "expected a string");
          const auto sp = specials.find(name.get<std::string>());
          if (sp == specials.end())
            fail(w, "special token '" + name.get<std::string>() + "' is not listed in special_tokens");
          const json& ids = member(*sp, "ids", where + ".special_tokens." + name.get<std::string>());
          auto& dst = sequences == 0 ? before : after;
          for (const auto& id : ids) {
            if (!id.is_number_integer()) fail(where + ".special_tokens", "ids must be integers");
            dst.push_back(id.get<int>());
          }
        } else {
          fail(w, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
      }
      if (sequences != 1) fail(where + ".single", "expected exactly one sequence A");
      prefix_.insert(prefix_.begin(), before.begin(), before.end());
      suffix_.insert(suffix_.end(), after.begin(), after.end());
    } else {
      unsupported(where + ".type", "unsupported post-processor '" + type + "'",
                  "percetrain implements TemplateProcessing, ByteLevel and Sequence");
    }
  }

  void parse_decoder(const json& root) {
    const auto it = root.find("decoder");
    if (it == root.end() || it->is_null())
      unsupported(file_ + ": decoder", "is null; byte-level BPE needs the ByteLevel decoder", "");
    add_decoder(*it, file_ + ": decoder");
    if (!byte_level_decoder_) unsupported(file_ + ": decoder", "has no ByteLevel step", "");
  }

  void add_decoder(const json& d, const std::string& where) {
    const std::string type = type_of(d, where);
    if (type == "Sequence") {
      const json& list = member(d, "decoders", where);
      if (!list.is_array()) fail(where + ".decoders", "expected a list");
      for (size_t i = 0; i < list.size(); ++i) add_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
    } else if (type == "ByteLevel") {
      byte_level_decoder_ = true;
    } else {
      unsupported(where + ".type", "unsupported decoder '" + type + "'", "percetrain implements ByteLevel");
    }
  }

  // What each id decodes to, as the Rust ByteLevel decoder does it: a token's characters mapped
  // back to bytes, or its UTF-8 as is when one of them is outside the byte alphabet.
  void build_decode_table() {
    const ByteAlphabet& alphabet = byte_alphabet();
    decoded_.resize(pieces_.size());
    special_.assign(pieces_.size(), 0);
    for (size_t id = 0; id < pieces_.size(); ++id)
      if (!alphabet.to_bytes(pieces_[id], &decoded_[id])) decoded_[id] = pieces_[id];
    for (const AddedToken& a : added_)
      if (a.special) special_[a.id] = 1;
  }

  void read_configs(const fs::path& dir) {
    tokenizer_files::SpecialIds ids;
    if (!prefix_.empty()) ids.bos = prefix_.front();
    if (!suffix_.empty()) ids.eos = suffix_.back();
    tokenizer_files::read_special_ids(
        dir, &ids,
        [&](const std::string& token, const std::string& where) {
          const int id = piece_to_id(token);
          if (id < 0) fail(where, "token '" + token + "' is not in tokenizer.json's vocabulary or added tokens");
          return id;
        },
        [&](const std::string& token) { return piece_to_id(token); },
        [&](int id, const std::string& where) {
          check_id(id, where);
          return id;
        });
    bos_id_ = ids.bos;
    eos_id_ = ids.eos;
    pad_id_ = ids.pad;
  }

  void check_id(int id, const std::string& where = "") const {
    if (id < 0 || id >= vocab_size())
      fail(where.empty() ? file_ : where, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                              std::to_string(vocab_size()) + ")");
  }

  // ---- encoding

  void encode_section(std::string_view raw, std::vector<int>* ids) const {
    std::string normalized;
    std::string_view text = raw;
    if (!forms_.empty() && !is_ascii(raw)) {
      normalized = normalize(raw);
      text = normalized;
    }
    if (normalized_matcher_.empty()) {
      pre_tokenize_and_model(text, ids);
      return;
    }
    normalized_matcher_.split(text, [&](const AddedToken* t, std::string_view piece) {
      if (t) ids->push_back(t->id);
      else pre_tokenize_and_model(piece, ids);
    });
  }

  static bool is_ascii(std::string_view s) {
    for (const unsigned char c : s)
      if (c >= 0x80) return false;
    return true;
  }

  std::string normalize(std::string_view s) const {
    std::string cur(s);
    for (const Form f : forms_) {
      int options = UTF8PROC_STABLE;
      if (f == Form::NFC) options |= UTF8PROC_COMPOSE;
      else if (f == Form::NFD) options |= UTF8PROC_DECOMPOSE;
      else if (f == Form::NFKC) options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      else options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      utf8proc_uint8_t* out = nullptr;
      const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(cur.data()),
                                  static_cast<utf8proc_ssize_t>(cur.size()), &out, static_cast<utf8proc_option_t>(options));
      if (n < 0) fail(file_ + ": normalizer", std::string("normalisation failed: ") + utf8proc_errmsg(n));
      cur.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
      std::free(out);
    }
    return cur;
  }

  // Pieces are views into the section, or into `owned` when a step had to build new text.
  void pre_tokenize_and_model(std::string_view text, std::vector<int>* ids) const {
    if (text.empty()) return;
    std::deque<std::string> owned;
    std::vector<std::string_view> pieces{text}, next;
    for (const PreTokenizerStep& step : steps_) {
      next.clear();
      for (const std::string_view piece : pieces) apply_step(step, piece, &next, &owned);
      pieces.swap(next);
    }
    for (const std::string_view piece : pieces) bpe(piece, ids);
  }

  static void apply_step(const PreTokenizerStep& step, std::string_view piece, std::vector<std::string_view>* out,
                         std::deque<std::string>* owned) {
    if (step.kind == PreTokenizerStep::kByteLevel) {
      if (step.add_prefix_space && piece.substr(0, 1) != " ") {
        owned->push_back(" " + std::string(piece));
        piece = owned->back();
      }
      if (!step.regex) {
        out->push_back(piece);
        return;
      }
      size_t prev = 0;
      step.regex->for_each_match(piece, [&](size_t s, size_t e) {
        if (prev < s) out->push_back(piece.substr(prev, s - prev));
        out->push_back(piece.substr(s, e - s));
        prev = e;
      });
      if (prev < piece.size()) out->push_back(piece.substr(prev));
      return;
    }
    // Split: alternate (range, is_delimiter) over the whole piece, then apply the behavior.
    struct Span {
      size_t s, e;
      bool match;
    };
    std::vector<Span> spans;
    size_t prev = 0;
    step.regex->for_each_match(piece, [&](size_t s, size_t e) {
      if (prev < s) spans.push_back({prev, s, step.invert});
      spans.push_back({s, e, !step.invert});
      prev = e;
    });
    if (prev < piece.size()) spans.push_back({prev, piece.size(), step.invert});
    const auto push = [&](size_t s, size_t e) {
      if (e > s) out->push_back(piece.substr(s, e - s));
    };
    switch (step.behavior) {
      case PreTokenizerStep::kIsolated:
        for (const Span& sp : spans) push(sp.s, sp.e);
        break;
      case PreTokenizerStep::kRemoved:
        for (const Span& sp : spans)
          if (!sp.match) push(sp.s, sp.e);
        break;
      case PreTokenizerStep::kMergedWithPrevious: {
        size_t start = 0;
        bool open = false;
        for (const Span& sp : spans) {
          if (sp.match && open) {
            push(start, sp.e);
            open = false;
          } else if (sp.match) {
            push(sp.s, sp.e);
          } else {
            if (open) push(start, sp.s);
            start = sp.s;
            open = true;
          }
        }
        if (open) push(start, piece.size());
        break;
      }
      case PreTokenizerStep::kMergedWithNext: {
        size_t start = 0;
        bool open = false;
        for (const Span& sp : spans) {
          if (sp.match) {
            if (open) push(start, sp.s);
            start = sp.s;
            open = true;
          } else {
            push(open ? start : sp.s, sp.e);
            open = false;
          }
        }
        if (open) push(start, piece.size());
        break;
      }
      case PreTokenizerStep::kContiguous: {
        size_t start = 0;
        bool in_run = false;
        for (const Span& sp : spans) {
          if (sp.match) {
            if (!in_run) start = sp.s, in_run = true;
          } else {
            if (in_run) push(start, sp.s), in_run = false;
            push(sp.s, sp.e);
          }
        }
        if (in_run) push(start, piece.size());
        break;
      }
    }
  }

  // Byte-level BPE of one pre-token: merges applied lowest rank first (leftmost on ties).
  void bpe(std::string_view word, std::vector<int>* ids) const {
    if (word.size() == 1) {
      ids->push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
      return;
    }
    const bool cacheable = word.size() < kMaxCachedWordBytes;
    std::string key;
    if (ignore_merges_ || cacheable) key.assign(word);
    if (ignore_merges_) {
      const auto it = bytes_ids_.find(key);
      if (it != bytes_ids_.end()) {
        ids->push_back(it->second);
        return;
      }
    }
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      const auto it = cache_.find(key);
      if (it != cache_.end()) {
        ids->insert(ids->end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int> sym(word.size());
    for (size_t i = 0; i < word.size(); ++i) sym[i] = byte_ids_[static_cast<unsigned char>(word[i])];
    if (sym.size() <= kSmallWord) merge_small(&sym);
    else merge_large(&sym);
    ids->insert(ids->end(), sym.begin(), sym.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kCacheCapacity) cache_.clear();
      cache_.emplace(std::move(key), std::move(sym));
    }
  }

  // Quadratic but allocation-free; most words are a few bytes.
  void merge_small(std::vector<int>* symbols) const {
    std::vector<int>& s = *symbols;
    while (s.size() > 1) {
      int best_rank = INT32_MAX, best_id = -1;
      size_t best = 0;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const MergeTable::Value* v = merges_.find(s[i], s[i + 1]);
        if (v && v->rank < best_rank) best_rank = v->rank, best_id = v->id, best = i;
      }
      if (best_id < 0) break;
      s[best] = best_id;
      s.erase(s.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
  }

  // Linked symbols and a heap of candidate merges, validated lazily, for long pre-tokens
  // (runs of spaces, long numbers in Llama 3, minified code).
  void merge_large(std::vector<int>* symbols) const {
    std::vector<int>& s = *symbols;
    const int n = static_cast<int>(s.size());
    std::vector<int> prev(n), next(n);
    for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
    struct Cand {
      int rank, pos;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    const auto consider = [&](int i) {
      if (i < 0 || next[i] < 0) return;
      if (const MergeTable::Value* v = merges_.find(s[i], s[next[i]])) heap.push({v->rank, i});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    std::vector<char> dead(n, 0);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      if (dead[c.pos] || next[c.pos] < 0) continue;
      const MergeTable::Value* v = merges_.find(s[c.pos], s[next[c.pos]]);
      if (!v || v->rank != c.rank) continue;  // stale: a neighbour changed since it was queued
      const int right = next[c.pos];
      s[c.pos] = v->id;
      dead[right] = 1;
      next[c.pos] = next[right];
      if (next[right] >= 0) prev[next[right]] = c.pos;
      consider(prev[c.pos]);
      consider(c.pos);
    }
    std::vector<int> out;
    for (int i = 0; i >= 0; i = next[i]) out.push_back(s[i]);
    s.swap(out);
  }

  static constexpr size_t kSmallWord = 24;
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kCacheCapacity = 100000;

  std::string file_;
  std::vector<std::string> pieces_;                 // id -> token as written in tokenizer.json
  std::unordered_map<std::string, int> piece_ids_;  // token -> id, vocabulary and added tokens
  std::unordered_map<std::string, int> bytes_ids_;  // the bytes a vocabulary token stands for -> id
  std::array<int, 256> byte_ids_{};
  MergeTable merges_;
  bool ignore_merges_ = false;
  std::vector<Form> forms_;
  std::vector<PreTokenizerStep> steps_;
  std::vector<AddedToken> added_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  std::vector<int> prefix_, suffix_;  // TemplateProcessing around the sequence
  bool byte_level_decoder_ = false;
  std::vector<std::string> decoded_;
  std::vector<char> special_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_json_tokenizer(const std::string& tokenizer_json) {
  return std::make_unique<HfJsonTokenizer>(tokenizer_json);
}

}  // namespace percetrain
