// A training run as one self-contained HTML page: the curves of metrics.jsonl and the config.
// Torch-free: it only reads the text files `percetrain train` writes into its output folder.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace percetrain {

// One numeric key of metrics.jsonl over the steps that logged it.
struct MetricSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (step, value), in file order
};

struct RunMetrics {
  std::vector<MetricSeries> series;  // report order (see run_series_order)
  int64_t lines = 0;                 // lines that were read as metrics
  int64_t skipped = 0;               // damaged or step-less lines left out (a torn last line included)
  bool torn_last_line = false;       // the last line had no newline and did not parse: a write cut short
  std::string first_problem;         // "metrics.jsonl:7: ..." for the first skipped line, else ""
};

// Parses metrics.jsonl text: every line a JSON object with "step"; every other key whose value is
// a number becomes a series, whatever its name (future keys plot without code changes). A last
// line cut off mid-write is dropped; other damaged lines are skipped and counted, never fatal.
// `where` names the file in `first_problem`.
RunMetrics parse_run_metrics(const std::string& text, const std::string& where);

// The report's order: the training series (loss, ce, pir_mean, pir quantiles, clipped_low /
// clipped_high, lr, grad_norm), then every valid_* series, then everything else by name.
// Returns the section ("Training", "Validation", "Other") of a series name.
std::string run_series_section(const std::string& name);

struct RunReportOptions {
  std::string title = "percetrain run";
  std::string run_dir;  // shown in the header
};

// The page: inline CSS, inline SVG line charts (steps on x; a y-axis title with the unit; a
// logarithmic y axis where the values are positive and span more than a decade), one per series
// except that a validation series is drawn over its training series (valid_loss over loss,
// valid_ce over ce, valid_pir_mean over pir_mean) and series whose value never changes are listed
// with that value instead of charted; the job config as an escaped two-column table
// (`job_config_json` may be "" when the run has none), no scripts, no
// external resources, and a Content-Security-Policy that forbids loading any.
std::string render_run_report(const RunMetrics& metrics, const std::string& job_config_json,
                              const RunReportOptions& options);

// `percetrain report`: reads RUN_DIR/metrics.jsonl (required, with at least one metrics line) and
// RUN_DIR/job_config.json (optional), writes the page to `out_path` atomically. Returns a one-line
// summary for the terminal. Errors are percetrain::Error naming the file at fault.
std::string write_run_report(const std::string& run_dir, const std::string& out_path);

}  // namespace percetrain
