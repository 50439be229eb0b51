// `percetrain eval`: load predictions and references, join them by id, score, report and compare.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "percetrain/eval/metrics.hpp"

namespace percetrain::eval {

struct IdText {
  std::string id, text;
};

// Predictions: JSONL (or a JSON array) of {"id": ..., "prediction": ...}, or a LaMP predictions
// file {"task": ..., "golds": [{"id", "output"}]}; ids may be strings or integers (compared as
// their decimal text). Errors name the file and line. `task` (may be null) receives the LaMP
// file's "task" ("" for other shapes).
std::vector<IdText> load_predictions(const std::string& path, std::string* task = nullptr);
// References: a dataset file (JSONL or JSON array of records with "id" and "output") or LaMP's
// golds file {"task"?: ..., "golds": [{"id", "output"}]}.
std::vector<IdText> load_references(const std::string& path, std::string* task = nullptr);

// LaMP's predictions format, what its eval_task.py reads: {"task": task, "golds": [{"id",
// "output"}]} with string ids, in the order given. Written through a temporary file and a rename.
std::string lamp_predictions_json(const std::vector<IdText>& predictions, const std::string& task);
void write_lamp_predictions(const std::vector<IdText>& predictions, const std::string& task, const std::string& path);
// Fails when both files name a LaMP task and the names differ (LaMP's evaluation asserts this).
void check_lamp_tasks(const std::string& predictions_task, const std::string& references_task,
                      const std::string& predictions_path, const std::string& references_path);

struct JoinedExample {
  std::string id, prediction, reference;
};
struct Join {
  std::vector<JoinedExample> examples;  // in reference order
  std::vector<std::string> missing;     // reference ids without a prediction
  std::vector<std::string> extra;       // prediction ids without a reference
};
// Duplicate ids on either side are an error.
Join join_by_id(const std::vector<IdText>& predictions, const std::vector<IdText>& references);

// Throws percetrain::Error listing the count and the first few ids of missing / extra ones,
// unless `allow_missing` (then the caller scores the joined examples only).
void check_join(const Join& join, bool allow_missing, const std::string& predictions_path,
                const std::string& references_path);

struct EvalOptions {
  bool rouge_stem = false;
  std::string wordnet_dir;  // empty: resolve_wordnet_dir()
};

struct ExampleScores {
  std::string id;
  double rouge1 = 0, rouge2 = 0, rougeL = 0, rougeLsum = 0, meteor = 0;
};

// Metric names in report order, the keys of `means`: rouge1, rouge2, rougeL, rougeLsum, meteor
// (means of per-example F-measures / scores, 0-1) and bleu (corpus BLEU, sacrebleu's 0-100 scale).
const std::vector<std::string>& metric_names();
// "ROUGE-1", ..., "BLEU": the label a table prints for a metric name.
std::string metric_label(const std::string& name);

struct EvalReport {
  std::vector<ExampleScores> examples;
  std::map<std::string, double> means;  // metric_names(); bleu is corpus-level, not a mean
  BleuScore bleu;
  std::vector<std::string> missing, extra;
  EvalOptions options;
  std::string wordnet_dir;
};

EvalReport evaluate(const Join& join, const EvalOptions& options);

std::string report_json(const EvalReport& report, bool with_examples = true);
// Writes report_json to `path` through a temporary sibling and a rename.
void write_report(const EvalReport& report, const std::string& path);
std::string format_table(const EvalReport& report);

// The "metrics" means of a file written by --out (or printed by --json).
std::map<std::string, double> read_metric_means(const std::string& path);
// Side by side: this run, the other file, and the relative change (this - other) / other.
std::string format_comparison(const std::map<std::string, double>& current, const std::string& current_name,
                              const std::map<std::string, double>& other, const std::string& other_name);

}  // namespace percetrain::eval
