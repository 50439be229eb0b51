// eval: ROUGE-1/2/L and METEOR of predictions against references, joined by id; --compare.
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "percetrain/eval/evaluation.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain::cli {
namespace {

Runner add_eval_command(CLI::App& app) {
  struct Options {
    std::string predictions, references, out, compare, wordnet;
    bool json = false, stem = false, allow_missing = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Score predictions against references by id: ROUGE-1, ROUGE-2, ROUGE-L (F-measure, Google "
      "rouge-score semantics) and METEOR (NLTK meteor_score semantics, WordNet synonyms), per "
      "example and averaged.\n"
      "Example: percetrain eval --predictions preds.jsonl --references data/test.jsonl --out metrics.json");
  cmd->add_option("--predictions", opts->predictions, "JSONL with {\"id\", \"prediction\"} per line")->required();
  cmd->add_option("--references", opts->references,
                  "Dataset file (JSONL or JSON array with \"id\" and \"output\") or LaMP golds file")
      ->required();
  cmd->add_option("--out", opts->out, "Write means and per-example scores as JSON (atomically)");
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
    const auto predictions = eval::load_predictions(opts->predictions);
    const auto references = eval::load_references(opts->references);
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
    if (!opts->out.empty()) eval::write_report(report, opts->out);
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
