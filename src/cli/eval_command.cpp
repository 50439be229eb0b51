// eval: ROUGE-1/2/L/Lsum, METEOR and BLEU of predictions against references, joined by id;
// --compare; --write-lamp converts predictions to LaMP's format.
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "percetrain/eval/evaluation.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain::cli {
namespace {

Runner add_eval_command(CLI::App& app) {
  struct Options {
    std::string predictions, references, out, compare, wordnet, write_lamp, task;
    bool json = false, stem = false, allow_missing = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Score predictions against references by id: ROUGE-1, ROUGE-2, ROUGE-L, ROUGE-Lsum (F-measure, "
      "Google rouge-score semantics) and METEOR (NLTK meteor_score semantics, WordNet synonyms), per "
      "example and averaged, and corpus BLEU (sacrebleu semantics, 0-100). Predictions and references "
      "may also be LaMP JSON files {\"task\", \"golds\": [{\"id\", \"output\"}]}.\n"
      "Example: percetrain eval --predictions preds.jsonl --references data/test.jsonl --out metrics.json\n"
      "Example: percetrain eval --predictions preds.jsonl --write-lamp lamp_preds.json --task LaMP_4");
  cmd->add_option("--predictions", opts->predictions,
                  "JSONL with {\"id\", \"prediction\"} per line, or a LaMP predictions file")
      ->required();
  auto* references = cmd->add_option("--references", opts->references,
                  "Dataset file (JSONL or JSON array with \"id\" and \"output\") or LaMP golds file; required "
                  "unless --write-lamp is given");
  auto* write_lamp = cmd->add_option("--write-lamp", opts->write_lamp,
                  "Write the predictions as LaMP's {\"task\", \"golds\": [{\"id\", \"output\"}]} JSON (what "
                  "LaMP's eval_task.py reads); with --references, also score them");
  auto* task =
      cmd->add_option("--task", opts->task, "Task name for --write-lamp, as LaMP's evaluation expects it (e.g. LaMP_4)");
  // LaMP's evaluation checks the task name, so --write-lamp and --task come together.
  task->needs(write_lamp);
  write_lamp->needs(task);
  cmd->parse_complete_callback([references, write_lamp]() {
    if (references->count() == 0 && write_lamp->count() == 0)
      throw CLI::RequiredError("--references is required (or --write-lamp to convert the predictions)",
                               CLI::ExitCodes::RequiredError);
  });
  cmd->add_option("--out", opts->out, "Write means and per-example scores as JSON (atomically; an existing file is replaced, and eval says so)");
  cmd->add_flag("--json", opts->json, "Print the JSON report (without per-example scores) instead of the table");
  cmd->add_option("--compare", opts->compare,
                  "Metrics JSON of another run (e.g. the CE baseline): print both side by side with the "
                  "relative change of this run");
  cmd->add_flag("--stem", opts->stem, "Porter-stem ROUGE tokens (rouge-score use_stemmer=True); off by default");
  cmd->add_flag("--allow-missing", opts->allow_missing,
                "Score only the ids present on both sides instead of failing on missing or extra ids");
  cmd->add_option("--wordnet", opts->wordnet,
                  "WordNet 3.0 database folder (default $PERCETRAIN_WORDNET, else /usr/share/wordnet "
                  "from Debian's wordnet-base)");
  return [opts]() {
    refuse_outputs_onto_inputs({{opts->write_lamp, "--write-lamp"}, {opts->out, "--out"}},
                               {{opts->predictions, "--predictions"},
                                {opts->references, "--references"},
                                {opts->compare, "--compare"},
                                {opts->wordnet, "--wordnet", true}});
    std::string predictions_task, references_task;
    const auto predictions = eval::load_predictions(opts->predictions, &predictions_task);
    if (!opts->write_lamp.empty()) {
      eval::write_lamp_predictions(predictions, opts->task, opts->write_lamp);
      std::cerr << "wrote " << predictions.size() << " predictions for " << opts->task << " to " << opts->write_lamp
                << "\n";
      if (opts->references.empty()) return 0;
    }
    const auto references = eval::load_references(opts->references, &references_task);
    eval::check_lamp_tasks(predictions_task, references_task, opts->predictions, opts->references);
    const auto join = eval::join_by_id(predictions, references);
    eval::check_join(join, opts->allow_missing, opts->predictions, opts->references);
    if (!join.missing.empty() || !join.extra.empty())
      std::cerr << "percetrain: warning: scoring " << join.examples.size() << " joined examples; "
                << join.missing.size() << " reference ids lack a prediction, " << join.extra.size()
                << " predictions lack a reference\n";
    std::map<std::string, double> other;
    if (!opts->compare.empty()) other = eval::read_metric_means(opts->compare);  // fail before scoring
    eval::EvalOptions options;
    options.rouge_stem = opts->stem;
    options.wordnet_dir = opts->wordnet;
    const auto report = eval::evaluate(join, options);
    if (!opts->out.empty()) {
      // Like score and generate, eval replaces an output file (atomically); it says so.
      std::error_code ec;
      const bool replacing = std::filesystem::exists(opts->out, ec);
      eval::write_report(report, opts->out);
      std::cerr << "wrote " << opts->out << (replacing ? " (replacing the file that was there)" : "") << "\n";
    }
    if (opts->json) {
      std::cout << eval::report_json(report, /*with_examples=*/false);
    } else if (!opts->compare.empty()) {
      std::cout << "examples  " << report.examples.size() << "\n"
                << eval::format_comparison(report.means, opts->out.empty() ? "this run" : opts->out, other,
                                           opts->compare);
    } else {
      std::cout << eval::format_table(report);
    }
    return 0;
  };
}

const CommandRegistration eval_registration(add_eval_command);

}  // namespace
}  // namespace percetrain::cli
