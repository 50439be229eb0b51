// Streams LaMP / LongLaMP records from JSONL or a JSON array, joins LaMP's golds by id.
#include "percetrain/data/records.hpp"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <filesystem>

#include "percetrain/util/error.hpp"
#include "percetrain/util/json.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain {
namespace {

using nlohmann::json;

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// The key whose value holds byte `pos` of an object's text: the last `"key":` before it.
// Only used to name the field of an invalid-UTF-8 error, which the JSON parser reports by offset.
std::string key_before(const std::string& text, size_t pos) {
  pos = std::min(pos, text.size());
  std::string best;
  for (size_t i = 0; i < pos; ++i) {
    if (text[i] != '"') continue;
    size_t j = i + 1;
    while (j < pos && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
    if (j >= pos) break;
    size_t k = j + 1;
    while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
    if (k < text.size() && text[k] == ':') best = text.substr(i + 1, j - i - 1);
    i = j;
  }
  return best;
}

std::string short_parse_error(const json::exception& e) {
  std::string what = e.what();
  if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
  return what;
}

}  // namespace

const std::string* ProfileItem::find(const std::string& name) const {
  for (const auto& f : fields)
    if (f.first == name) return &f.second;
  return nullptr;
}

RecordReader::RecordReader(const std::string& file, const std::string& golds_file) : file_(file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    fail(file, "is a folder, not a data file", "give the JSONL or JSON file of records itself");
  in_.open(file, std::ios::binary);
  if (!in_)
    fail(file, "cannot open the data file",
         "check the path: paths written in a config resolve against the config's folder, --set values and "
         "--data against the current folder");
  char bom[3] = {0, 0, 0};
  in_.read(bom, 3);
  if (in_.gcount() == 3 && bom[0] == '\xEF' && bom[1] == '\xBB' && bom[2] == '\xBF')
    fail(file, "starts with a UTF-8 byte-order mark (BOM), which JSON does not allow",
         "save it as UTF-8 without BOM, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' " + file);
  in_.clear();
  in_.seekg(0);
  int c;
  while ((c = in_.peek()) != EOF && std::isspace(c)) {
    if (c == '\n') ++line_;
    in_.get();
  }
  if (c == EOF) {
    finished_ = true;
  } else if (c == '[') {
    array_ = true;
    in_.get();
  } else if (c != '{') {
    fail(file, "neither a JSON array nor JSONL records",
         "expected '[' (a JSON array of records) or '{' (one record per line)");
  }
  line_ = 0;  // JSONL line numbers are counted by next_text from the start again
  if (!array_) {
    in_.clear();
    in_.seekg(0);
  }
  if (golds_file.empty()) return;
  const json j = read_json_file(golds_file);
  const json* list = &j;
  if (j.is_object()) {
    if (!j.contains("golds")) fail(golds_file + ": golds", "is missing", "LaMP golds files are {\"golds\": [{\"id\", \"output\"}]}");
    list = &j["golds"];
  }
  if (!list->is_array()) fail(golds_file + ": golds", "is not a list");
  for (size_t i = 0; i < list->size(); ++i) {
    const json& e = (*list)[i];
    const std::string where = golds_file + ": golds[" + std::to_string(i) + "]";
    if (!e.is_object()) fail(where, "is not an object");
    if (!e.contains("id") || e["id"].is_null()) fail(where + ".id", "is missing");
    if (!e.contains("output") || !e["output"].is_string()) fail(where + ".output", "is missing or not a string");
    golds_[value_text(e["id"])] = e["output"].get<std::string>();
  }
  have_golds_ = true;
}

RecordReader::~RecordReader() = default;

// The text of the next record and where it is; false at the end.
bool RecordReader::next_text(std::string* text, std::string* where) {
  if (finished_) return false;
  if (!array_) {
    std::string line;
    while (std::getline(in_, line)) {
      ++line_;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      *text = std::move(line);
      *where = file_ + ":" + std::to_string(line_);
      return true;
    }
    finished_ = true;
    return false;
  }
  // A JSON array: cut the next element out by tracking nesting and strings, so that each record
  // is parsed (and can fail) on its own.
  std::streambuf* buf = in_.rdbuf();
  auto skip_space = [&]() {
    int c;
    while ((c = buf->sgetc()) != EOF && std::isspace(c)) buf->sbumpc();
    return c;
  };
  int c = skip_space();
  if (c == ']' && index_ == 0) {
    buf->sbumpc();
    finished_ = true;
    return false;
  }
  if (c == EOF) fail(file_, "the JSON array is not closed", "is the file truncated?");
  text->clear();
  int depth = 0;
  bool in_string = false;
  while (true) {
    c = buf->sbumpc();
    if (c == EOF) fail(file_ + "[" + std::to_string(index_) + "]", "the JSON array ends inside a record", "is the file truncated?");
    const char ch = static_cast<char>(c);
    if (in_string) {
      text->push_back(ch);
      if (ch == '\\') {
        const int e = buf->sbumpc();
        if (e == EOF) continue;
        text->push_back(static_cast<char>(e));
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (depth == 0 && (ch == ',' || ch == ']')) {
      while (!text->empty() && std::isspace(static_cast<unsigned char>(text->back()))) text->pop_back();
      if (text->empty()) fail(file_ + "[" + std::to_string(index_) + "]", "empty element in the JSON array");
      if (ch == ']') {
        finished_ = true;
        if (skip_space() != EOF) fail(file_, "unexpected text after the JSON array");
      } else if (skip_space() == ']') {
        fail(file_ + "[" + std::to_string(index_ + 1) + "]", "trailing comma in the JSON array");
      }
      *where = file_ + "[" + std::to_string(index_++) + "]";
      return true;
    }
    text->push_back(ch);
    if (ch == '"') in_string = true;
    else if (ch == '{' || ch == '[') ++depth;
    else if (ch == '}' || ch == ']') --depth;
    if (depth < 0) fail(file_ + "[" + std::to_string(index_) + "]", "unbalanced brackets in the JSON array");
  }
}

bool RecordReader::next(Record* record, BadRecord* bad, bool* is_bad) {
  std::string text, where;
  if (!next_text(&text, &where)) return false;
  *is_bad = false;
  parse(text, where, record, bad, is_bad);
  return true;
}

void RecordReader::parse(const std::string& text, const std::string& where, Record* r, BadRecord* bad,
                         bool* is_bad) const {
  auto reject = [&](const std::string& field, const std::string& what) {
    *bad = BadRecord{where, field, what};
    *is_bad = true;
  };
  // Deeper nesting than any record needs would only feed recursive code (dump, destruction).
  const JsonLimits limits;
  if (json_nesting_depth(text, limits.max_depth) > limits.max_depth)
    return reject("", "is nested deeper than " + std::to_string(limits.max_depth) + " levels");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    const std::string msg = short_parse_error(e);
    if (msg.find("UTF-8") != std::string::npos) {
      reject(key_before(text, e.byte), "invalid UTF-8");
    } else {
      reject("", "not valid JSON: " + msg);
    }
    return;
  } catch (const json::exception& e) {  // out_of_range: a number beyond double, like 1e10000
    reject("", "not valid JSON: " + short_parse_error(e));
    return;
  }
  if (!j.is_object()) return reject("", "is not a JSON object");
  *r = Record{};
  r->where = where;
  if (j.contains("id") && !j["id"].is_null()) r->id = value_text(j["id"]);
  // The user: data.user_key when set; else "user_id", else "user", when a string or number (a
  // field of another shape there is not taken for an id).
  if (!user_key_.empty()) {
    if (j.contains(user_key_) && !j[user_key_].is_null()) {
      const json& u = j[user_key_];
      if (!u.is_string() && !u.is_number()) return reject(user_key_, "is not a user id (a string or a number)");
      r->user = value_text(u);
    }
  } else {
    for (const char* key : {"user_id", "user"})
      if (j.contains(key) && (j[key].is_string() || j[key].is_number())) {
        r->user = value_text(j[key]);
        break;
      }
  }

  if (!j.contains("input") || j["input"].is_null()) return reject("input", "is missing");
  if (!j["input"].is_string()) return reject("input", "is not a string");
  r->input = j["input"].get<std::string>();

  if (have_golds_) {
    if (r->id.empty()) return reject("id", "is missing, and the output must be joined from the golds file by id");
    const auto it = golds_.find(r->id);
    if (it == golds_.end()) return reject("output", "no gold output for id " + quote_name(r->id) + " in the golds file");
    r->output = it->second;
  } else {
    if (!j.contains("output") || j["output"].is_null())
      return reject("output", "is missing");
    if (!j["output"].is_string()) return reject("output", "is not a string");
    r->output = j["output"].get<std::string>();
  }

  if (!j.contains("profile") || j["profile"].is_null()) return reject("profile", "is missing");
  const json& profile = j["profile"];
  if (!profile.is_array()) return reject("profile", "is not a list");
  r->profile.reserve(profile.size());
  for (size_t i = 0; i < profile.size(); ++i) {
    const json& item = profile[i];
    if (!item.is_object()) return reject("profile[" + std::to_string(i) + "]", "is not an object");
    ProfileItem p;
    for (auto it = item.begin(); it != item.end(); ++it) p.fields.emplace_back(it.key(), value_text(it.value()));
    r->profile.push_back(std::move(p));
  }

  if (j.contains("personal_spans") && !j["personal_spans"].is_null()) {
    const json& spans = j["personal_spans"];
    if (!spans.is_array()) return reject("personal_spans", "is not a list");
    for (size_t i = 0; i < spans.size(); ++i) {
      const json& s = spans[i];
      const auto n = static_cast<int64_t>(r->output.size());
      if (!s.is_array() || s.size() != 2 || !s[0].is_number_integer() || !s[1].is_number_integer() ||
          s[0].get<int64_t>() < 0 || s[0].get<int64_t>() > s[1].get<int64_t>() || s[1].get<int64_t>() > n)
        return reject("personal_spans[" + std::to_string(i) + "]",
                      "must be [start, end] byte offsets with 0 <= start <= end <= " + std::to_string(n));
      r->personal_spans.emplace_back(s[0].get<int64_t>(), s[1].get<int64_t>());
    }
  }

  // Loss weights: finite and not negative (a negative weight would push a token's probability down).
  auto weight_ok = [](const json& w) { return w.is_number() && std::isfinite(w.get<double>()) && w.get<double>() >= 0; };
  const bool has_token_weights = j.contains("token_weights") && !j["token_weights"].is_null();
  const bool has_weighted_spans = j.contains("weighted_spans") && !j["weighted_spans"].is_null();
  if (has_token_weights && has_weighted_spans)
    return reject("weighted_spans", "is given together with token_weights; a record carries one or the other");
  if (has_token_weights) {
    const json& weights = j["token_weights"];
    if (!weights.is_array()) return reject("token_weights", "is not a list");
    for (size_t i = 0; i < weights.size(); ++i) {
      if (!weight_ok(weights[i]))
        return reject("token_weights[" + std::to_string(i) + "]", "must be a finite number >= 0, got " + weights[i].dump());
      r->token_weights.push_back(weights[i].get<double>());
    }
  }
  if (has_weighted_spans) {
    const json& spans = j["weighted_spans"];
    if (!spans.is_array()) return reject("weighted_spans", "is not a list");
    const auto n = static_cast<int64_t>(r->output.size());
    for (size_t i = 0; i < spans.size(); ++i) {
      const json& s = spans[i];
      const std::string field = "weighted_spans[" + std::to_string(i) + "]";
      if (!s.is_array() || s.size() != 3 || !s[0].is_number_integer() || !s[1].is_number_integer() ||
          s[0].get<int64_t>() < 0 || s[0].get<int64_t>() > s[1].get<int64_t>() || s[1].get<int64_t>() > n)
        return reject(field, "must be [start, end, weight] with byte offsets 0 <= start <= end <= " + std::to_string(n));
      if (!weight_ok(s[2])) return reject(field, "its weight must be a finite number >= 0, got " + s[2].dump());
      r->weighted_spans.push_back({s[0].get<int64_t>(), s[1].get<int64_t>(), s[2].get<double>()});
    }
  }
}

int64_t count_records(const std::string& file) {
  RecordReader reader(file);
  Record r;
  BadRecord b;
  bool is_bad = false;
  int64_t n = 0;
  while (reader.next(&r, &b, &is_bad)) ++n;
  return n;
}

}  // namespace percetrain
