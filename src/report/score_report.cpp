// Score records as JSONL, the dataset summary, and the self-contained HTML report.
#include "percetrain/report/score_report.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "percetrain/data/dataset.hpp"
#include "percetrain/util/error.hpp"

using nlohmann::json;

namespace percetrain {

namespace {

std::string format_float(float value) {
  if (!std::isfinite(value)) return value != value ? "null" : (value > 0 ? "1e999" : "-1e999");
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, result.ptr);
}

std::string format_double(double value, int digits = 6) {
  if (!std::isfinite(value)) return "null";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*g", digits, value);
  return buf;
}

std::string json_string(const std::string& text) {
  return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string fmt_auroc(double v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%.3f", v);
  return buf;
}

float json_float(const json& j) {
  if (j.is_null()) return std::nanf("");
  return static_cast<float>(j.get<double>());
}

}  // namespace

double RecordScore::mean_pir() const {
  if (tokens.empty()) return 0.0;
  double sum = 0.0;
  for (const auto& t : tokens) sum += t.pir;
  return sum / static_cast<double>(tokens.size());
}

std::vector<size_t> RecordScore::top_tokens(size_t k) const {
  std::vector<size_t> order(tokens.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tokens[a].pir > tokens[b].pir; });
  order.resize(std::min(k, order.size()));
  return order;
}

bool RecordScore::in_personal_span(size_t i) const {
  const auto& t = tokens[i];
  for (const auto& s : personal_spans)
    if (t.start < s.second && s.first < t.end) return true;
  return false;
}

bool RecordScore::starts_personal_span(size_t i) const {
  const auto& t = tokens[i];
  for (const auto& s : personal_spans)
    if (t.start < s.second && s.first < t.end && t.start <= s.first) return true;
  return false;
}

std::vector<std::vector<size_t>> record_words(const RecordScore& r) {
  std::vector<std::pair<int64_t, int64_t>> spans;
  spans.reserve(r.tokens.size());
  for (const auto& t : r.tokens) spans.emplace_back(t.start, t.end);
  return token_words(r.output, spans);
}

double auroc(const std::vector<std::pair<double, bool>>& scored) {
  // A NaN score has no rank: std::sort with NaNs breaks its ordering (undefined behaviour) and the
  // tie loop below never advanced past one (NaN == NaN is false), spinning forever. An AUROC over
  // NaNs means nothing, so it is NaN ("n/a") rather than one over the other scores.
  for (const auto& s : scored)
    if (std::isnan(s.first)) return std::nan("");
  std::vector<std::pair<double, bool>> sorted = scored;
  std::sort(sorted.begin(), sorted.end(),
            [](const std::pair<double, bool>& a, const std::pair<double, bool>& b) { return a.first < b.first; });
  double positives = 0, negatives = 0, rank_sum = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    do ++j;  // at least one step, whatever the values compare as
    while (j < sorted.size() && sorted[j].first == sorted[i].first);
    const double mid_rank = 0.5 * static_cast<double>(i + 1 + j);  // average of ranks i+1 .. j
    for (size_t k = i; k < j; ++k) {
      if (sorted[k].second) {
        positives += 1;
        rank_sum += mid_rank;
      } else {
        negatives += 1;
      }
    }
    i = j;
  }
  if (positives == 0 || negatives == 0) return std::nan("");
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

std::string record_to_json_line(const RecordScore& r, size_t top_tokens) {
  std::string out = "{\"id\":" + json_string(r.id) + ",\"mean_pir\":" + format_double(r.mean_pir(), 9) +
                    ",\"num_tokens\":" + std::to_string(r.tokens.size()) + ",\"top\":[";
  const auto top = r.top_tokens(top_tokens);
  for (size_t k = 0; k < top.size(); ++k) {
    const auto& t = r.tokens[top[k]];
    out += (k ? ",{" : "{") + std::string("\"index\":") + std::to_string(top[k]) + ",\"piece\":" +
           json_string(t.piece) + ",\"pir\":" + format_float(t.pir) + "}";
  }
  out += "],\"tokens\":[";
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    const auto& t = r.tokens[i];
    out += (i ? ",{" : "{") + std::string("\"id\":") + std::to_string(t.id) + ",\"piece\":" + json_string(t.piece) +
           ",\"span\":[" + std::to_string(t.start) + "," + std::to_string(t.end) +
           "],\"logp_with\":" + format_float(t.logp_with) + ",\"logp_without\":" + format_float(t.logp_without) +
           ",\"pir\":" + format_float(t.pir) + ",\"weight\":" + format_float(t.weight) + "}";
  }
  out += "],\"output\":" + json_string(r.output) + ",\"profile\":[";
  for (size_t i = 0; i < r.profile.size(); ++i) {
    const auto& p = r.profile[i];
    out += (i ? ",{" : "{") + std::string("\"index\":") + std::to_string(p.index) +
           ",\"score\":" + format_double(p.score, 9) + ",\"truncated\":" + (p.truncated ? "true" : "false") +
           ",\"text\":" + json_string(p.text) + "}";
  }
  out += "]";
  if (!r.personal_spans.empty()) {
    out += ",\"personal_spans\":[";
    for (size_t i = 0; i < r.personal_spans.size(); ++i)
      out += (i ? ",[" : "[") + std::to_string(r.personal_spans[i].first) + "," +
             std::to_string(r.personal_spans[i].second) + "]";
    out += "]";
  }
  out += "}";
  return out;
}

RecordScore record_from_json_line(const std::string& line, const std::string& where) {
  RecordScore r;
  try {
    const json j = json::parse(line);
    r.id = j.at("id").get<std::string>();
    r.output = j.at("output").get<std::string>();
    for (const auto& t : j.at("tokens")) {
      TokenScore s;
      s.id = t.at("id").get<int32_t>();
      s.piece = t.at("piece").get<std::string>();
      s.start = t.at("span").at(0).get<int64_t>();
      s.end = t.at("span").at(1).get<int64_t>();
      s.logp_with = json_float(t.at("logp_with"));
      s.logp_without = json_float(t.at("logp_without"));
      s.pir = json_float(t.at("pir"));
      s.weight = json_float(t.at("weight"));
      r.tokens.push_back(std::move(s));
    }
    for (const auto& p : j.at("profile")) {
      RetrievedProfileItem item;
      item.index = p.at("index").get<int64_t>();
      item.score = p.at("score").is_null() ? 0.0 : p.at("score").get<double>();
      item.truncated = p.at("truncated").get<bool>();
      item.text = p.at("text").get<std::string>();
      r.profile.push_back(std::move(item));
    }
    if (j.contains("personal_spans"))
      for (const auto& s : j.at("personal_spans")) r.personal_spans.emplace_back(s.at(0).get<int64_t>(), s.at(1).get<int64_t>());
  } catch (const json::exception& e) {
    fail(where, std::string("is not a score record: ") + e.what(), "was it written by `percetrain score`?");
  }
  return r;
}

PartialOutput read_partial_output(const std::string& path) {
  PartialOutput partial;
  std::ifstream in(path, std::ios::binary);
  if (!in) return partial;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (in.eof()) break;  // no newline after it: an interrupted write
    try {
      partial.ids.push_back(json::parse(line).at("id").get<std::string>());
    } catch (const json::exception&) {
      break;  // a damaged line ends what can be kept
    }
    partial.complete_bytes += line.size() + 1;
  }
  return partial;
}

// ---- summary ------------------------------------------------------------------------------

ScoreSummary::ScoreSummary(double clip_min, double clip_max) : clip_min_(clip_min), clip_max_(clip_max) {}

void ScoreSummary::add(const RecordScore& record) {
  ++records_;
  sorted_valid_ = false;
  for (size_t i = 0; i < record.tokens.size(); ++i) {
    const auto& t = record.tokens[i];
    // NaN PIRs (the scorer refuses non-finite log-probabilities, so only a caller's own) are
    // counted but kept out of the distribution: sorting them is undefined behaviour.
    if (std::isnan(t.pir)) {
      ++nan_count_;
      continue;
    }
    pir_.push_back(t.pir);
    clipped_low_ += t.pir < clip_min_ ? 1 : 0;
    clipped_high_ += t.pir > clip_max_ ? 1 : 0;
    auto& p = pieces_[t.piece];
    ++p.count;
    p.sum += t.pir;
    if (!record.personal_spans.empty()) {
      const bool personal = record.in_personal_span(i);
      if (personal) {
        ++personal_count_;
        personal_sum_ += t.pir;
      } else {
        ++other_count_;
        other_sum_ += t.pir;
      }
      if (t.end > t.start) {
        token_truth_.emplace_back(t.pir, personal);
        const bool first = record.starts_personal_span(i);
        if (first || !personal) first_truth_.emplace_back(t.pir, first);
        auto& logp = logp_sums_[first ? 0 : personal ? 1 : 2];
        logp.first += t.logp_with;
        ++logp.second;
        if (first) {  // a first piece is personal too
          logp_sums_[1].first += t.logp_with;
          ++logp_sums_[1].second;
        }
      }
    }
  }
  const auto total = static_cast<int64_t>(record.output.size());
  for (const auto& word : record_words(record)) {
    double sum = 0;
    int64_t begin = total, end = 0;
    for (size_t i : word) {
      const auto& t = record.tokens[i];
      sum += t.pir;
      if (t.end <= t.start) continue;  // no text: its PIR counts, its span does not
      begin = std::min(begin, std::clamp<int64_t>(t.start, 0, total));
      end = std::max(end, std::clamp<int64_t>(t.end, 0, total));
    }
    if (std::isnan(sum) || end <= begin) continue;
    std::string text = record.output.substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
    const size_t first = text.find_first_not_of(" \t\n\r\f\v"), last = text.find_last_not_of(" \t\n\r\f\v");
    if (first == std::string::npos) continue;
    auto& w = words_[text.substr(first, last - first + 1)];
    ++w.count;
    w.sum += sum;
  }
  if (!record.personal_spans.empty()) {
    for (const auto& word : record_words(record)) {
      double sum = 0;
      bool personal = false;
      for (size_t i : word) {
        sum += record.tokens[i].pir;  // NaN makes the word NaN, and auroc() then n/a
        personal |= record.in_personal_span(i);
      }
      word_truth_.emplace_back(sum, personal);
    }
  }
}

ScoreSummary::GroundTruthAuroc ScoreSummary::ground_truth_auroc() const {
  GroundTruthAuroc a;
  if (nan_count_ > 0) {  // a ranking that leaves out the NaN tokens would look better than it is
    a.tokens = a.first_pieces = a.words = std::nan("");
    return a;
  }
  a.tokens = auroc(token_truth_);
  a.first_pieces = auroc(first_truth_);
  a.words = auroc(word_truth_);
  for (const auto& [pir, first] : first_truth_) a.first_piece_count += first;
  for (const auto& [pir, personal] : word_truth_) (personal ? a.personal_words : a.other_words) += 1;
  return a;
}

double ScoreSummary::mean() const {
  if (pir_.empty()) return 0.0;
  double sum = 0.0;
  for (float v : pir_) sum += v;
  return sum / static_cast<double>(pir_.size());
}

double ScoreSummary::quantile(double q) const {
  if (pir_.empty()) return 0.0;
  if (!sorted_valid_) {
    sorted_ = pir_;
    std::sort(sorted_.begin(), sorted_.end());
    sorted_valid_ = true;
  }
  const auto k = static_cast<size_t>(std::llround(q * static_cast<double>(sorted_.size() - 1)));
  return sorted_[std::min(k, sorted_.size() - 1)];
}

double ScoreSummary::clipped_low_share() const {
  return pir_.empty() ? 0.0 : static_cast<double>(clipped_low_) / static_cast<double>(pir_.size());
}
double ScoreSummary::clipped_high_share() const {
  return pir_.empty() ? 0.0 : static_cast<double>(clipped_high_) / static_cast<double>(pir_.size());
}

ScoreSummary::Histogram ScoreSummary::histogram() const {
  Histogram h;
  h.counts.assign(24, 0);
  for (float v : pir_) {
    if (std::isnan(v)) continue;  // no bin; a NaN cast to an index is undefined behaviour
    const double k = std::floor((v - h.low) / h.width);
    const auto bin = static_cast<int64_t>(std::clamp(k, 0.0, static_cast<double>(h.counts.size() - 1)));
    ++h.counts[static_cast<size_t>(bin)];
  }
  return h;
}

std::vector<ScoreSummary::Piece> ScoreSummary::top_pieces(size_t limit, int64_t min_count) const {
  std::vector<Piece> out;
  for (const auto& [piece, s] : pieces_)
    if (s.count >= min_count) out.push_back({piece, s.count, s.sum / static_cast<double>(s.count)});
  std::stable_sort(out.begin(), out.end(), [](const Piece& a, const Piece& b) { return a.mean_pir > b.mean_pir; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::vector<ScoreSummary::Piece> ScoreSummary::top_words(size_t limit, int64_t min_count) const {
  std::vector<Piece> out;
  for (const auto& [word, s] : words_)
    if (s.count >= min_count) out.push_back({word, s.count, s.sum / static_cast<double>(s.count)});
  std::stable_sort(out.begin(), out.end(), [](const Piece& a, const Piece& b) { return a.mean_pir > b.mean_pir; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::string ScoreSummary::to_json(const std::vector<std::pair<std::string, std::string>>& extra) const {
  json j;
  j["records"] = records_;
  j["tokens"] = tokens();
  json pir;
  pir["mean"] = mean();
  json q;
  for (double p : {0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99}) {
    char key[8];
    std::snprintf(key, sizeof(key), "p%02d", static_cast<int>(std::lround(p * 100)));
    q[key] = quantile(p);
  }
  pir["quantiles"] = q;
  pir["min"] = pir_.empty() ? 0.0 : quantile(0.0);
  pir["max"] = pir_.empty() ? 0.0 : quantile(1.0);
  const auto h = histogram();
  pir["histogram"] = {{"low", h.low}, {"width", h.width}, {"counts", h.counts},
                      {"note", "the first and last bins also count everything beyond them"}};
  if (nan_count_ > 0) pir["nan_tokens"] = nan_count_;
  j["pir"] = pir;
  j["clip"] = {{"min", clip_min_}, {"max", clip_max_}, {"share_below_min", clipped_low_share()},
               {"share_above_max", clipped_high_share()}};
  json pieces = json::array();
  for (const auto& p : top_pieces(50, 3)) pieces.push_back({{"piece", p.piece}, {"count", p.count}, {"mean_pir", p.mean_pir}});
  j["top_pieces"] = pieces;
  j["top_pieces_min_count"] = 3;
  json words = json::array();
  for (const auto& w : top_words(50, 3)) words.push_back({{"word", w.piece}, {"count", w.count}, {"mean_pir", w.mean_pir}});
  j["top_words"] = words;
  j["top_words_note"] = "a word's PIR is the sum of its pieces' PIRs (the whole word's log-ratio); words seen at least 3 times";
  if (personal_count_ + other_count_ > 0) {
    j["ground_truth"] = {{"personal_tokens", personal_count_}, {"personal_mean_pir", personal_mean()},
                         {"other_tokens", other_count_}, {"other_mean_pir", other_mean()}};
    const auto a = ground_truth_auroc();
    auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    j["ground_truth"]["auroc"] = {
        {"tokens", number(a.tokens)},
        {"first_pieces", number(a.first_pieces)},
        {"words", number(a.words)},
        {"first_piece_count", a.first_piece_count},
        {"personal_words", a.personal_words},
        {"other_words", a.other_words},
        {"note", "PIR separating personal-span tokens from the rest; first pieces of spans from tokens outside "
                 "spans; whole words (sum of PIRs) touching a span from the rest. Ties count half; tokens "
                 "without text (EOS) are left out; null where a side is empty"}};
    auto mean = [&](int k) {
      return logp_sums_[k].second ? json(logp_sums_[k].first / static_cast<double>(logp_sums_[k].second)) : json(nullptr);
    };
    j["ground_truth"]["mean_logp"] = {
        {"first_pieces", mean(0)}, {"personal", mean(1)}, {"other", mean(2)},
        {"note", "mean log P(token | profile, input, preceding tokens) over tokens with text (EOS left out): first "
                 "pieces of personal spans, every personal-span token, the other tokens"}};
  }
  for (const auto& [key, value] : extra) j[key] = json::parse(value);
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string ScoreSummary::to_text() const {
  char buf[512];
  std::string out;
  std::snprintf(buf, sizeof(buf),
                "scored %lld records, %lld tokens | PIR mean %+.4f, p10 %+.3f, p50 %+.3f, p90 %+.3f | "
                "clipped: %.1f%% below %.2g, %.1f%% above %.2g\n",
                (long long)records_, (long long)tokens(), mean(), quantile(0.1), quantile(0.5), quantile(0.9),
                100 * clipped_low_share(), clip_min_, 100 * clipped_high_share(), clip_max_);
  out += buf;
  if (nan_count_ > 0)
    out += "warning: " + std::to_string(nan_count_) + " tokens have a NaN PIR and are left out of these statistics\n";
  if (personal_count_ + other_count_ > 0) {
    std::snprintf(buf, sizeof(buf), "ground-truth personal spans: %lld tokens, mean PIR %+.4f | other tokens: %lld, mean PIR %+.4f\n",
                  (long long)personal_count_, personal_mean(), (long long)other_count_, other_mean());
    out += buf;
    const auto a = ground_truth_auroc();
    auto show = [](double v) { return std::isfinite(v) ? fmt_auroc(v) : std::string("n/a"); };
    out += "PIR AUROC vs ground truth (ties count half): span tokens " + show(a.tokens) + " | first pieces of spans " +
           show(a.first_pieces) + " (" + std::to_string(a.first_piece_count) + ") | whole words " + show(a.words) +
           " (" + std::to_string(a.personal_words) + " personal of " + std::to_string(a.personal_words + a.other_words) +
           ")\n";
  }
  const auto top = top_pieces(10, 3);
  if (!top.empty()) {
    out += "most personal pieces (seen >= 3 times):";
    for (const auto& p : top) {
      std::snprintf(buf, sizeof(buf), " %s (%+.2f, %lld)", json_string(p.piece).c_str(), p.mean_pir, (long long)p.count);
      out += buf;
    }
    out += "\n";
  }
  const auto words = top_words(10, 3);
  if (!words.empty()) {
    out += "most personal words (seen >= 3 times, PIR summed over the word's pieces):";
    for (const auto& w : words) {
      std::snprintf(buf, sizeof(buf), " %s (%+.2f, %lld)", json_string(w.piece).c_str(), w.mean_pir, (long long)w.count);
      out += buf;
    }
    out += "\n";
  }
  return out;
}

// ---- HTML ---------------------------------------------------------------------------------

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

// Diverging scale in 21 classes: PIR -3 (blue) .. 0 (white) .. +3 (red), clamped.
constexpr int kShades = 10;
constexpr double kShadeRange = 3.0;

int shade_class(float pir) {
  if (!std::isfinite(pir)) return 0;
  const double x = std::clamp(static_cast<double>(pir) / kShadeRange, -1.0, 1.0);
  return static_cast<int>(std::lround(x * kShades));
}

// Shade class k in [-kShades, kShades] blends white towards #2166ac (negative) or #b2182b.
std::string shade_hex(int k) {
  const double a = std::abs(k) / static_cast<double>(kShades);
  auto blend = [&](int neg, int pos) { return static_cast<int>(std::lround(255 + a * ((k < 0 ? neg : pos) - 255))); };
  char buf[16];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", blend(0x21, 0xb2), blend(0x66, 0x18), blend(0xac, 0x2b));
  return buf;
}

std::string shade_css() {
  std::string css;
  for (int k = -kShades; k <= kShades; ++k)
    css += std::string(".s") + (k < 0 ? "m" : "") + std::to_string(std::abs(k)) + "{background:" + shade_hex(k) +
           (std::abs(k) > kShades * 55 / 100 ? ";color:#fff" : "") + "}";
  return css;
}

// SVG shapes take `fill`, not `background`.
std::string shade_fill(float pir) { return shade_hex(shade_class(pir)); }

std::string shade_name(float pir) {
  const int k = shade_class(pir);
  return std::string("s") + (k < 0 ? "m" : "") + std::to_string(std::abs(k));
}

std::string fmt(double v, const char* spec = "%+.3f") {
  char buf[48];
  std::snprintf(buf, sizeof(buf), spec, v);
  return buf;
}

// Counts above bars stay narrow: 12345 -> "12k".
std::string compact_count(int64_t n) {
  if (n < 10000) return std::to_string(n);
  if (n < 1000000) return std::to_string((n + 500) / 1000) + "k";
  return std::to_string((n + 500000) / 1000000) + "M";
}

// Round count ticks (1, 2, 5 x 10^k) from 0 to at least `peak`, about four of them.
std::vector<int64_t> count_ticks(int64_t peak) {
  int64_t step = 1;
  for (int64_t magnitude = 1;; magnitude *= 10) {
    bool found = false;
    for (int64_t m : {1, 2, 5})
      if (m * magnitude * 4 >= peak) {
        step = m * magnitude;
        found = true;
        break;
      }
    if (found) break;
  }
  std::vector<int64_t> ticks;
  for (int64_t t = 0; t < peak + step; t += step) ticks.push_back(t);
  return ticks;
}

// Bars shaded like the tokens, each with its count above it; a count axis on the left and PIR
// ticks below. The outer bins also hold everything beyond them, which the axis title says.
std::string histogram_svg(const ScoreSummary& summary) {
  const auto h = summary.histogram();
  const int64_t raw_peak = std::max<int64_t>(1, *std::max_element(h.counts.begin(), h.counts.end()));
  const auto ticks = count_ticks(raw_peak);
  const double peak = static_cast<double>(ticks.back());
  const int left = 52, right = 8, top = 18, bottom = 40, plot_h = 170;
  const int bins = static_cast<int>(h.counts.size()), bar = 24, plot_w = bins * bar;
  const int W = left + plot_w + right, H = top + plot_h + bottom;
  auto y_of = [&](double count) { return top + plot_h - static_cast<int>(std::lround(count / peak * plot_h)); };
  std::string svg = "<svg class=\"hist\" viewBox=\"0 0 " + std::to_string(W) + " " + std::to_string(H) +
                    "\" width=\"" + std::to_string(W) + "\" height=\"" + std::to_string(H) +
                    "\" role=\"img\" aria-label=\"PIR histogram\">";
  for (int64_t t : ticks) {
    const int y = y_of(static_cast<double>(t));
    svg += "<line x1=\"" + std::to_string(left) + "\" x2=\"" + std::to_string(left + plot_w) + "\" y1=\"" +
           std::to_string(y) + "\" y2=\"" + std::to_string(y) + "\" stroke=\"#eee\"/><text x=\"" +
           std::to_string(left - 5) + "\" y=\"" + std::to_string(y + 4) +
           "\" font-size=\"10\" text-anchor=\"end\" fill=\"#444\">" + std::to_string(t) + "</text>";
  }
  for (int k = 0; k < bins; ++k) {
    const double lo = h.low + k * h.width;
    const int64_t count = h.counts[static_cast<size_t>(k)];
    const int x = left + k * bar, y = y_of(static_cast<double>(count));
    const std::string label = k == 0 ? "< " + fmt(lo + h.width, "%.1f")
                              : k + 1 == bins ? ">= " + fmt(lo, "%.1f")
                                              : "[" + fmt(lo, "%.1f") + ", " + fmt(lo + h.width, "%.1f") + ")";
    svg += "<rect fill=\"" + shade_fill(static_cast<float>(lo + h.width / 2)) + "\" stroke=\"#777\" x=\"" +
           std::to_string(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" + std::to_string(bar - 1) +
           "\" height=\"" + std::to_string(top + plot_h - y) + "\"><title>PIR " + html_escape(label) + ": " +
           std::to_string(count) + " tokens</title></rect>";
    if (count > 0)
      svg += "<text x=\"" + std::to_string(x + bar / 2) + "\" y=\"" + std::to_string(y - 3) +
             "\" font-size=\"9\" text-anchor=\"middle\" fill=\"#333\">" + compact_count(count) + "</text>";
  }
  const int axis_y = top + plot_h;
  svg += "<line x1=\"" + std::to_string(left) + "\" y1=\"" + std::to_string(top) + "\" x2=\"" + std::to_string(left) +
         "\" y2=\"" + std::to_string(axis_y) + "\" stroke=\"#888\"/><line x1=\"" + std::to_string(left) + "\" y1=\"" +
         std::to_string(axis_y) + "\" x2=\"" + std::to_string(left + plot_w) + "\" y2=\"" + std::to_string(axis_y) +
         "\" stroke=\"#888\"/>";
  for (int v = -6; v <= 6; v += 2) {
    const int x = left + static_cast<int>(std::lround((v - h.low) / h.width)) * bar;
    svg += "<line x1=\"" + std::to_string(x) + "\" x2=\"" + std::to_string(x) + "\" y1=\"" + std::to_string(axis_y) +
           "\" y2=\"" + std::to_string(axis_y + 4) + "\" stroke=\"#888\"/><text x=\"" + std::to_string(x) + "\" y=\"" +
           std::to_string(axis_y + 15) + "\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">" +
           (v > 0 ? "+" : "") + std::to_string(v) + "</text>";
  }
  svg += "<text x=\"" + std::to_string(left + plot_w / 2) + "\" y=\"" + std::to_string(H - 6) +
         "\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">PIR (bins of 0.5; the outer bins hold "
         "everything beyond &#177;6)</text><text x=\"12\" y=\"" + std::to_string(top + plot_h / 2) +
         "\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\" transform=\"rotate(-90 12 " +
         std::to_string(top + plot_h / 2) + ")\">tokens</text></svg>";
  return svg;
}

std::string visible_piece(const std::string& piece) {
  return piece.empty() ? "(empty)" : piece;
}

std::string render_record(const RecordScore& r, size_t number) {
  std::string out = "<section class=\"rec\"><h3>#" + std::to_string(number) + " <code>" + html_escape(r.id) +
                    "</code> <span class=\"meta\">" + std::to_string(r.tokens.size()) + " tokens, mean PIR " +
                    fmt(r.mean_pir()) + "</span></h3><div class=\"cols\"><div class=\"resp\">";
  const auto total = static_cast<int64_t>(r.output.size());
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    const auto& t = r.tokens[i];
    const int64_t s = std::clamp<int64_t>(t.start, 0, total), e = std::clamp<int64_t>(t.end, s, total);
    const std::string tip = "piece " + visible_piece(t.piece) + " (id " + std::to_string(t.id) + ")\nlog P with profile " +
                            fmt(t.logp_with, "%.4f") + "\nlog P without " + fmt(t.logp_without, "%.4f") + "\nPIR " +
                            fmt(t.pir, "%+.4f") + "\nweight " + fmt(t.weight, "%.3f");
    std::string cls = "t " + shade_name(t.pir);
    if (r.in_personal_span(i)) cls += " gt";
    std::string text = html_escape(r.output.substr(static_cast<size_t>(s), static_cast<size_t>(e - s)));
    if (text.empty()) {
      if (e == s && i + 1 < r.tokens.size() && r.tokens[i + 1].start == s && r.tokens[i + 1].end > s) continue;
      text = "<span class=\"sp\">" + html_escape(visible_piece(t.piece)) + "</span>";
    }
    out += "<span class=\"" + cls + "\" title=\"" + html_escape(tip) + "\">" + text + "</span>";
  }
  out += "</div><aside class=\"prof\"><h4>Profile items in the prompt (" + std::to_string(r.profile.size()) + ")</h4>";
  if (r.profile.empty()) out += "<p class=\"meta\">none: both prompts are equal, every PIR is 0</p>";
  for (const auto& p : r.profile)
    out += "<div class=\"item\"><span class=\"meta\">item " + std::to_string(p.index) + ", score " +
           fmt(p.score, "%.3f") + (p.truncated ? ", cut to fit" : "") + "</span><br>" + html_escape(p.text) + "</div>";
  out += "</aside></div></section>\n";
  return out;
}

}  // namespace

std::string render_html_report(const std::vector<RecordScore>& records, const ScoreSummary& summary,
                               const HtmlReportOptions& options) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
      "<title>" + html_escape(options.title) + "</title><style>"
      "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1300px}"
      "h1{font-size:1.4em}h3{font-size:1em;margin:.2em 0}h4{font-size:.9em;margin:.2em 0}"
      ".meta{color:#666;font-weight:normal;font-size:.85em}"
      ".rec{border-top:1px solid #ddd;padding:.6em 0}.cols{display:flex;gap:1.2em}"
      ".resp{flex:3;white-space:pre-wrap;line-height:1.9;font-family:serif;font-size:1.05em}"
      ".prof{flex:2;font-size:.8em;max-height:18em;overflow:auto;background:#fafafa;padding:.4em}"
      ".item{margin:.3em 0;white-space:pre-wrap}"
      ".t{border-radius:2px;padding:1px 0}.t:hover{outline:2px solid #000}"
      ".gt{border-bottom:3px solid #1a9850}.sp{font-size:.7em;color:#555;border:1px dotted #999}"
      "table{border-collapse:collapse;font-size:.85em}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}"
      "td.p{text-align:left;font-family:monospace;white-space:pre}"
      ".legend span{display:inline-block;min-width:2.6em;padding:1px 4px;text-align:center;font-size:.75em;"
      "white-space:nowrap;box-sizing:border-box}.legend span.lw{font-size:.85em;color:#444}"
      ".top{display:flex;gap:2em;flex-wrap:wrap}" +
      shade_css() + "</style></head><body>\n";
  out += "<h1>" + html_escape(options.title) + "</h1>";
  if (!options.source.empty()) out += "<p class=\"meta\">" + html_escape(options.source) + "</p>";
  out += "<p>" + std::to_string(summary.records()) + " records, " + std::to_string(summary.tokens()) +
         " response tokens. PIR = log P(token | profile, input) &minus; log P(token | input); mean " +
         fmt(summary.mean(), "%+.4f") + ", median " + fmt(summary.quantile(0.5), "%+.4f") + ". PerCE weight = clip(PIR, " +
         fmt(summary.clip_min(), "%g") + ", " + fmt(summary.clip_max(), "%g") + "): " +
         fmt(100 * summary.clipped_low_share(), "%.1f") + "% of tokens at the lower bound, " +
         fmt(100 * summary.clipped_high_share(), "%.1f") + "% at the upper.</p>";
  if (summary.personal_tokens() + summary.other_tokens() > 0)
    out += "<p>Ground-truth personal spans (underlined in green): " + std::to_string(summary.personal_tokens()) +
           " tokens with mean PIR <b>" + fmt(summary.personal_mean(), "%+.4f") + "</b>; other tokens: " +
           std::to_string(summary.other_tokens()) + " with mean PIR <b>" + fmt(summary.other_mean(), "%+.4f") + "</b>. " +
           [&] {
             const auto a = summary.ground_truth_auroc();
             auto show = [](double v) { return std::isfinite(v) ? fmt(v, "%.3f") : std::string("n/a"); };
             return "PIR AUROC (ties count half): span tokens <b>" + show(a.tokens) + "</b>, first pieces of spans <b>" +
                    show(a.first_pieces) + "</b>, whole words <b>" + show(a.words) + "</b>.";
           }() + "</p>";
  // Red where the profile makes the token more likely (PIR > 0: the personal tokens PerCE weighs
  // up), blue where it makes it less likely.
  out += "<p class=\"legend\">PIR: <span class=\"lw\">&larr; less likely with the profile</span>";
  for (int k = -kShades; k <= kShades; k += 2) {
    const float v = static_cast<float>(k * kShadeRange / kShades);
    out += "<span class=\"" + shade_name(v) + "\">" + fmt(v, "%+.1f") + "</span>";
  }
  out += "<span class=\"lw\">more likely with the profile &rarr;</span> (white: the profile changes nothing; "
         "clamped at &plusmn;3). Hover a token for its piece, log-probs, PIR and weight.</p>";
  out += "<div class=\"top\"><div><h4>PIR histogram</h4>" + histogram_svg(summary) + "</div>";
  out += "<div><h4>Most personal words (seen at least 3 times)</h4><p class=\"meta\">A word's PIR is the sum of its "
         "pieces' PIRs: the whole word's log P(word | profile, input) &minus; log P(word | input).</p><table><tr>"
         "<th>word</th><th>count</th><th>mean PIR</th></tr>";
  const auto words = summary.top_words(20, 3);
  for (const auto& w : words)
    out += "<tr><td class=\"p " + shade_name(static_cast<float>(w.mean_pir)) + "\">" + html_escape(w.piece) + "</td><td>" +
           std::to_string(w.count) + "</td><td>" + fmt(w.mean_pir) + "</td></tr>";
  if (words.empty()) out += "<tr><td class=\"p\" colspan=\"3\">no word seen 3 times</td></tr>";
  out += "</table></div><div><h4>Most personal pieces (seen at least 3 times)</h4><table><tr><th>piece</th><th>count</th><th>mean PIR</th></tr>";
  for (const auto& p : summary.top_pieces(20, 3))
    out += "<tr><td class=\"p " + shade_name(static_cast<float>(p.mean_pir)) + "\">" + html_escape(visible_piece(p.piece)) +
           "</td><td>" + std::to_string(p.count) + "</td><td>" + fmt(p.mean_pir) + "</td></tr>";
  out += "</table></div></div>\n";
  const int64_t total = std::max<int64_t>(options.total_records, static_cast<int64_t>(records.size()));
  out += "<h2>Records</h2><p class=\"meta\">";
  if (static_cast<int64_t>(records.size()) < total)
    out += "Showing the first " + std::to_string(records.size()) + " of " + std::to_string(total) +
           " records (--html-records); the JSONL output holds them all.";
  else
    out += "All " + std::to_string(total) + " records.";
  out += "</p>\n";
  for (size_t i = 0; i < records.size(); ++i) out += render_record(records[i], i + 1);
  out += "</body></html>\n";
  return out;
}

}  // namespace percetrain
