// Loading, joining, scoring and reporting for `percetrain eval`.
#include "percetrain/eval/evaluation.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "percetrain/eval/metrics.hpp"
#include "percetrain/eval/wordnet.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain::eval {
namespace {

using nlohmann::json;

std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot read the " + what + " file", "check the path");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string id_text(const json& id, const std::string& where) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number_integer()) return std::to_string(id.get<long long>());
  fail(where, "\"id\" must be a string or an integer, got " + id.dump(), "");
}

// Records of a JSONL file or of a JSON array, each with its "path:line" (or "path[index]").
std::vector<std::pair<json, std::string>> read_records(const std::string& path, const std::string& what,
                                                       json* whole_object) {
  const std::string text = read_text(path, what);
  const size_t first = text.find_first_not_of(" \t\r\n");
  std::vector<std::pair<json, std::string>> records;
  if (first == std::string::npos) return records;
  if (text[first] == '[' || text[first] == '{') {
    json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_array()) {
      for (size_t i = 0; i < doc.size(); ++i) records.emplace_back(doc[i], path + "[" + std::to_string(i) + "]");
      return records;
    }
    if (doc.is_object() && whole_object && doc.contains("golds")) {
      *whole_object = std::move(doc);
      return records;
    }
    if (text[first] == '[') {
      try {
        json strict = json::parse(text);
        (void)strict;
      } catch (const json::exception& e) {  // out_of_range too: 1e10000
        fail(path, std::string("not valid JSON: ") + e.what(), "fix the file or write one JSON object per line");
      }
    }
  }
  std::istringstream lines(text);
  std::string line;
  for (size_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    try {
      records.emplace_back(json::parse(line), where);
    } catch (const json::exception& e) {  // out_of_range too: 1e10000
      fail(where, std::string("not valid JSON: ") + e.what(), "write one JSON object per line (JSONL)");
    }
  }
  return records;
}

std::vector<IdText> extract(const std::vector<std::pair<json, std::string>>& records, const std::string& text_key,
                            const std::string& hint) {
  std::vector<IdText> out;
  out.reserve(records.size());
  for (const auto& [record, where] : records) {
    if (!record.is_object()) fail(where, "expected a JSON object, got " + std::string(record.type_name()), hint);
    if (!record.contains("id")) fail(where, "record has no \"id\"", hint);
    auto it = record.find(text_key);
    if (it == record.end()) fail(where, "record has no \"" + text_key + "\"", hint);
    if (!it->is_string()) fail(where, "\"" + text_key + "\" must be a string, got " + std::string(it->type_name()), hint);
    out.push_back({id_text(record["id"], where), it->get<std::string>()});
  }
  return out;
}

std::string first_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < 5; ++i) out += (i ? ", " : "") + ids[i];
  if (ids.size() > 5) out += ", ...";
  return out;
}

std::string fixed(double value, int digits = 4) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

// The entries of LaMP's {"task"?, "golds": [...]} object as records; fills *task.
void golds_records(const json& doc, const std::string& path, const std::string& hint,
                   std::vector<std::pair<json, std::string>>* records, std::string* task) {
  const json& golds = doc["golds"];
  if (!golds.is_array()) fail(path + ": golds", "\"golds\" must be an array", hint);
  if (doc.contains("task")) {
    if (!doc["task"].is_string()) fail(path + ": task", "\"task\" must be a string", hint);
    if (task) *task = doc["task"].get<std::string>();
  }
  for (size_t i = 0; i < golds.size(); ++i) records->emplace_back(golds[i], path + ": golds[" + std::to_string(i) + "]");
}

}  // namespace

std::vector<IdText> load_predictions(const std::string& path, std::string* task) {
  if (task) task->clear();
  json golds_doc;
  auto records = read_records(path, "predictions", &golds_doc);
  const std::string hint =
      "predictions are JSONL lines like {\"id\": \"7\", \"prediction\": \"...\"} or LaMP's {\"task\", \"golds\": "
      "[{\"id\", \"output\"}]}";
  std::vector<IdText> out;
  if (!golds_doc.is_null()) {
    golds_records(golds_doc, path, hint, &records, task);
    out = extract(records, "output", hint);
  } else {
    out = extract(records, "prediction", hint);
  }
  if (out.empty()) fail(path, "no predictions in the file", "write one {\"id\", \"prediction\"} object per line");
  return out;
}

std::vector<IdText> load_references(const std::string& path, std::string* task) {
  if (task) task->clear();
  json golds_doc;
  auto records = read_records(path, "references", &golds_doc);
  const std::string hint =
      "references are dataset records with \"id\" and \"output\", or LaMP's {\"golds\": [{\"id\", \"output\"}]}";
  if (!golds_doc.is_null()) golds_records(golds_doc, path, hint, &records, task);
  auto out = extract(records, "output", hint);
  if (out.empty()) fail(path, "no references in the file", hint);
  return out;
}

std::string lamp_predictions_json(const std::vector<IdText>& predictions, const std::string& task) {
  json golds = json::array();
  for (const auto& p : predictions) golds.push_back({{"id", p.id}, {"output", p.text}});
  json doc = {{"task", task}, {"golds", std::move(golds)}};
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void write_lamp_predictions(const std::vector<IdText>& predictions, const std::string& task, const std::string& path) {
  if (task.empty()) fail("--task", "is empty", "name the LaMP task, e.g. --task LaMP_4 (LaMP's evaluation checks it)");
  write_file_atomic(path, lamp_predictions_json(predictions, task), "the LaMP predictions file");
}

void check_lamp_tasks(const std::string& predictions_task, const std::string& references_task,
                      const std::string& predictions_path, const std::string& references_path) {
  if (!predictions_task.empty() && !references_task.empty() && predictions_task != references_task)
    fail(predictions_path, "is for task '" + predictions_task + "' but " + references_path + " is for '" +
                               references_task + "'",
         "compare predictions and golds of the same task");
}


Join join_by_id(const std::vector<IdText>& predictions, const std::vector<IdText>& references) {
  std::unordered_map<std::string, const std::string*> by_id;
  for (const auto& p : predictions)
    if (!by_id.emplace(p.id, &p.text).second)
      fail("predictions", "id '" + p.id + "' appears more than once", "keep one prediction per id");
  Join join;
  std::set<std::string> seen;
  for (const auto& r : references) {
    if (!seen.insert(r.id).second)
      fail("references", "id '" + r.id + "' appears more than once", "keep one reference per id");
    auto it = by_id.find(r.id);
    if (it == by_id.end()) {
      join.missing.push_back(r.id);
    } else {
      join.examples.push_back({r.id, *it->second, r.text});
    }
  }
  for (const auto& p : predictions)
    if (!seen.count(p.id)) join.extra.push_back(p.id);
  return join;
}

void check_join(const Join& join, bool allow_missing, const std::string& predictions_path,
                const std::string& references_path) {
  if (!allow_missing && !join.missing.empty())
    fail(predictions_path, std::to_string(join.missing.size()) + " reference id(s) have no prediction (" +
                               first_ids(join.missing) + ")",
         "generate the missing ones, or pass --allow-missing to score only the joined examples");
  if (!allow_missing && !join.extra.empty())
    fail(predictions_path, std::to_string(join.extra.size()) + " prediction id(s) are not in " + references_path +
                               " (" + first_ids(join.extra) + ")",
         "check that the references file matches, or pass --allow-missing to score only the joined examples");
  if (join.examples.empty())
    fail(predictions_path, "no prediction id matches a reference id in " + references_path,
         "check that both files use the same ids");
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"rouge1", "rouge2", "rougeL", "rougeLsum", "meteor", "bleu"};
  return names;
}

std::string metric_label(const std::string& name) {
  if (name == "rouge1") return "ROUGE-1";
  if (name == "rouge2") return "ROUGE-2";
  if (name == "rougeL") return "ROUGE-L";
  if (name == "rougeLsum") return "ROUGE-Lsum";
  if (name == "meteor") return "METEOR";
  if (name == "bleu") return "BLEU";
  return name;
}

EvalReport evaluate(const Join& join, const EvalOptions& options) {
  EvalReport report;
  report.options = options;
  report.missing = join.missing;
  report.extra = join.extra;
  report.wordnet_dir = resolve_wordnet_dir(options.wordnet_dir);
  const auto wordnet = WordNet::open(report.wordnet_dir);
  BleuStats bleu_stats;  // corpus BLEU adds the statistics up; it is not a mean of sentence scores
  for (const auto& example : join.examples) {
    ExampleScores s;
    s.id = example.id;
    const RougeScores r = rouge(example.reference, example.prediction, options.rouge_stem);
    s.rouge1 = r.rouge1.fmeasure;
    s.rouge2 = r.rouge2.fmeasure;
    s.rougeL = r.rougeL.fmeasure;
    s.rougeLsum = r.rougeLsum.fmeasure;
    s.meteor = meteor(meteor_tokenize(example.reference), meteor_tokenize(example.prediction), *wordnet);
    report.examples.push_back(s);
    bleu_stats += bleu_segment_stats(example.prediction, {example.reference});
  }
  double sums[5] = {0, 0, 0, 0, 0};
  for (const auto& s : report.examples) {
    sums[0] += s.rouge1;
    sums[1] += s.rouge2;
    sums[2] += s.rougeL;
    sums[3] += s.rougeLsum;
    sums[4] += s.meteor;
  }
  const double n = std::max<size_t>(report.examples.size(), 1);
  for (int k = 0; k < 5; ++k) report.means[metric_names()[k]] = sums[k] / n;
  report.bleu = bleu_from_stats(bleu_stats);
  report.means["bleu"] = report.bleu.score;
  return report;
}

std::string report_json(const EvalReport& report, bool with_examples) {
  json out;
  out["count"] = report.examples.size();
  json metrics = json::object();
  for (const auto& name : metric_names()) metrics[name] = report.means.at(name);
  out["metrics"] = metrics;
  out["options"] = {{"rouge_stemmer", report.options.rouge_stem},
                    {"rouge", "F-measure, rouge-score tokenizer; rougeLsum splits lines at \\n"},
                    {"meteor_tokenizer", "percetrain meteor_tokenize (see README)"},
                    {"bleu", "sacrebleu corpus BLEU, 13a, exp smoothing, 0-100"},
                    {"wordnet", report.wordnet_dir}};
  const auto& b = report.bleu;
  out["bleu_detail"] = {{"precisions", std::vector<double>(std::begin(b.precisions), std::end(b.precisions))},
                        {"brevity_penalty", b.brevity_penalty},
                        {"sys_len", b.stats.sys_len},
                        {"ref_len", b.stats.ref_len},
                        {"correct", std::vector<int64_t>(std::begin(b.stats.correct), std::end(b.stats.correct))},
                        {"total", std::vector<int64_t>(std::begin(b.stats.total), std::end(b.stats.total))}};
  out["missing_ids"] = report.missing;
  out["extra_ids"] = report.extra;
  if (with_examples) {
    json examples = json::array();
    for (const auto& s : report.examples)
      examples.push_back({{"id", s.id}, {"rouge1", s.rouge1}, {"rouge2", s.rouge2}, {"rougeL", s.rougeL},
                          {"rougeLsum", s.rougeLsum}, {"meteor", s.meteor}});
    out["examples"] = std::move(examples);
  }
  return out.dump(2) + "\n";
}

void write_report(const EvalReport& report, const std::string& path) {
  write_file_atomic(path, report_json(report), "the metrics file");
}

std::string format_table(const EvalReport& report) {
  std::ostringstream out;
  out << "examples  " << report.examples.size();
  if (!report.missing.empty()) out << "  (" << report.missing.size() << " reference ids without prediction skipped)";
  if (!report.extra.empty()) out << "  (" << report.extra.size() << " predictions without reference skipped)";
  out << "\n";
  for (const auto& name : metric_names()) {
    out << std::left << std::setw(12) << metric_label(name) << fixed(report.means.at(name));
    if (name == "bleu") out << "  (corpus, 0-100; BP " << fixed(report.bleu.brevity_penalty, 3) << ")";
    out << "\n";
  }
  return out.str();
}

std::map<std::string, double> read_metric_means(const std::string& path) {
  const std::string text = read_text(path, "metrics");
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    fail(path, "not a JSON object", "pass a file written by percetrain eval --out");
  auto it = doc.find("metrics");
  if (it == doc.end() || !it->is_object())
    fail(path, "has no \"metrics\" object", "pass a file written by percetrain eval --out");
  std::map<std::string, double> means;
  for (const auto& [key, value] : it->items())
    if (value.is_number()) means[key] = value.get<double>();
  return means;
}

std::string format_comparison(const std::map<std::string, double>& current, const std::string& current_name,
                              const std::map<std::string, double>& other, const std::string& other_name) {
  std::ostringstream out;
  const int width = static_cast<int>(std::max<size_t>({current_name.size(), other_name.size(), 8})) + 2;
  out << std::left << std::setw(12) << "metric" << std::right << std::setw(width) << current_name
      << std::setw(width) << other_name << std::setw(10) << "change" << "\n";
  for (const auto& name : metric_names()) {
    auto a = current.find(name), b = other.find(name);
    out << std::left << std::setw(12) << metric_label(name) << std::right << std::setw(width)
        << (a == current.end() ? "-" : fixed(a->second)) << std::setw(width)
        << (b == other.end() ? "-" : fixed(b->second));
    std::string change = "n/a";
    if (a != current.end() && b != other.end() && b->second != 0) {
      const double rel = 100.0 * (a->second - b->second) / b->second;
      change = (rel >= 0 ? "+" : "") + fixed(rel, 1) + "%";
    }
    out << std::setw(10) << change << "\n";
  }
  return out.str();
}

}  // namespace percetrain::eval
