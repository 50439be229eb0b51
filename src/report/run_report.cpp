// metrics.jsonl and job_config.json of a training run as one self-contained HTML page.
#include "percetrain/report/run_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "percetrain/report/score_report.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

using nlohmann::json;

namespace percetrain {
namespace {

// The training series in the order a reader looks at them, with what each one means.
const std::vector<std::pair<const char*, const char*>> kTrainingSeries = {
    {"loss", "objective loss per optimizer step"},
    {"ce", "cross-entropy of the response tokens"},
    {"pir_mean", "mean PIR (log P with profile - log P without) of the response tokens"},
    {"pir_p10", "10th percentile of PIR"},
    {"pir_p50", "median PIR"},
    {"pir_p90", "90th percentile of PIR"},
    {"clipped_low", "share of tokens whose PIR fell below clip_min"},
    {"clipped_high", "share of tokens whose PIR rose above clip_max"},
    {"lr", "learning rate"},
    {"grad_norm", "gradient norm before clipping"},
};
const std::vector<std::pair<const char*, const char*>> kValidationSeries = {
    {"valid_loss", "objective loss on the validation set"},
    {"valid_ce", "cross-entropy on the validation set"},
    {"valid_pir_mean", "mean PIR on the validation set"},
    {"valid_rougeL", "ROUGE-L of greedy generations on the validation subset"},
    {"valid_meteor", "METEOR of greedy generations on the validation subset"},
};
const std::map<std::string, std::string> kOtherDescriptions = {
    {"epoch", "epochs done"},
    {"tokens", "tokens through forward passes in the step (both sequences)"},
    {"response_tokens", "response tokens in the step"},
    {"step_seconds", "wall time of the step"},
    {"tokens_per_s", "throughput of the step"},
    {"peak_memory_mib", "peak memory (CUDA allocator, or process RSS on the CPU)"},
    {"valid_response_tokens", "response tokens in the validation set"},
    {"generate_records", "validation records generated (train.eval_generate)"},
    {"generate_seconds", "wall time of validation by generation"},
};

int known_rank(const std::string& name, const std::vector<std::pair<const char*, const char*>>& list) {
  for (size_t i = 0; i < list.size(); ++i)
    if (name == list[i].first) return static_cast<int>(i);
  return -1;
}

std::string describe(const std::string& name) {
  for (const auto* list : {&kTrainingSeries, &kValidationSeries})
    if (const int k = known_rank(name, *list); k >= 0) return (*list)[static_cast<size_t>(k)].second;
  const auto it = kOtherDescriptions.find(name);
  return it == kOtherDescriptions.end() ? "" : it->second;
}

// The y axis's title: what the number measures and its unit, where the name alone does not say.
std::string axis_title(const std::string& name) {
  static const std::map<std::string, std::string> titles = {
      {"loss", "loss (nats/token)"},
      {"ce", "CE (nats/token)"},
      {"pir_mean", "PIR (nats)"},
      {"pir_p10", "PIR (nats)"},
      {"pir_p50", "PIR (nats)"},
      {"pir_p90", "PIR (nats)"},
      {"clipped_low", "share of tokens"},
      {"clipped_high", "share of tokens"},
      {"lr", "learning rate"},
      {"grad_norm", "gradient norm"},
      {"epoch", "epochs"},
      {"tokens", "tokens"},
      {"response_tokens", "tokens"},
      {"step_seconds", "seconds"},
      {"tokens_per_s", "tokens/s"},
      {"peak_memory_mib", "MiB"},
      {"valid_rougeL", "ROUGE-L"},
      {"valid_meteor", "METEOR"},
      {"valid_response_tokens", "tokens"},
      {"generate_records", "records"},
      {"generate_seconds", "seconds"},
  };
  const auto it = titles.find(name);
  return it == titles.end() ? name : it->second;
}

std::string num(double v, const char* spec = "%.4g") {
  char buf[48];
  std::snprintf(buf, sizeof(buf), spec, v);
  return buf;
}

std::string px(double v) { return num(v, "%.1f"); }

// Round tick steps (1, 2, 2.5, 5 x 10^k) covering [lo, hi] in about `target` intervals.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  // At most a few dozen ticks: with huge values a step below their spacing leaves t unchanged,
  // and non-finite bounds make no sense at all; either would loop forever.
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && ticks.size() < static_cast<size_t>(4 * target + 4);
       t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

// Ticks of a log axis over the decades [10^d0, 10^d1]: every decade (every k-th one when there are
// many), with 2 and 5 in between when the axis spans at most two decades.
std::vector<double> log_ticks(int d0, int d1) {
  std::vector<double> ticks;
  const int every = std::max(1, (d1 - d0 + 5) / 6);
  for (int d = d0; d <= d1; d += every) {
    ticks.push_back(std::pow(10.0, d));
    if (d1 - d0 <= 2 && d < d1)
      for (double m : {2.0, 5.0}) ticks.push_back(m * std::pow(10.0, d));
  }
  std::sort(ticks.begin(), ticks.end());
  return ticks;
}

void widen(double* lo, double* hi) {
  if (*hi > *lo) return;
  const double pad = *lo == 0 ? 1.0 : std::abs(*lo) * 0.05;
  *lo -= pad;
  *hi += pad;
}

// A chart: one quantity, its training series and, where the run logged one, the validation series
// of the same quantity ("loss" and "valid_loss") drawn over it.
struct Chart {
  std::vector<const MetricSeries*> series;  // training (or the only) series first
};

bool constant(const MetricSeries& s) {
  for (const auto& p : s.points)
    if (p.second != s.points.front().second) return false;
  return true;
}

// The y axis is logarithmic when every value is positive and they span more than a decade: a loss
// falling from 6 to 0.19 would otherwise flatten everything after its first steps.
bool wants_log_axis(double lo, double hi) { return lo > 0 && hi > 10 * lo && std::isfinite(hi); }

// One line chart: steps on x, values on y, round ticks on both axes, every point marked when
// there are few (validation runs log a handful); a legend when it holds two series.
std::string chart_svg(const Chart& chart) {
  constexpr double W = 390, H = 220, left = 74, right = 14, top = 12, bottom = 38;
  const MetricSeries& first = *chart.series.front();
  double x0 = first.points.front().first, x1 = x0, y0 = first.points.front().second, y1 = y0;
  for (const auto* s : chart.series)
    for (const auto& [x, y] : s->points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  const bool log_axis = wants_log_axis(y0, y1);
  std::vector<double> yticks;
  std::function<double(double)> fy = [](double y) { return y; };  // value -> axis coordinate
  if (log_axis) {
    const int d0 = static_cast<int>(std::floor(std::log10(y0))), d1 = static_cast<int>(std::ceil(std::log10(y1)));
    yticks = log_ticks(d0, d1);
    fy = [](double y) { return std::log10(y); };
    y0 = d0, y1 = d1;
  } else {
    widen(&y0, &y1);
    yticks = nice_ticks(y0, y1, 4);
    // The y axis spans whole tick steps so that the curve never touches the frame's edge.
    const double ystep = yticks.size() > 1 ? yticks[1] - yticks[0] : (y1 - y0);
    y0 = std::min(y0, std::floor(y0 / ystep) * ystep);
    y1 = std::max(y1, std::ceil(y1 / ystep) * ystep);
    yticks = nice_ticks(y0, y1, 4);
  }
  widen(&x0, &x1);
  const auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  const auto sy = [&](double y) { return top + (y1 - fy(y)) / (y1 - y0) * (H - top - bottom); };
  const std::string label = html_escape(first.name);
  const std::string title = html_escape(axis_title(first.name)) + (log_axis ? ", log scale" : "");
  std::string svg = "<svg class=\"chart\" viewBox=\"0 0 " + px(W) + " " + px(H) + "\" width=\"" + px(W) +
                    "\" height=\"" + px(H) + "\" role=\"img\" aria-label=\"" + label + " by step\">";
  svg += "<rect class=\"frame\" x=\"" + px(left) + "\" y=\"" + px(top) + "\" width=\"" + px(W - left - right) +
         "\" height=\"" + px(H - top - bottom) + "\"/>";
  for (double t : yticks) {
    svg += "<line class=\"grid\" x1=\"" + px(left) + "\" x2=\"" + px(W - right) + "\" y1=\"" + px(sy(t)) + "\" y2=\"" +
           px(sy(t)) + "\"/><text class=\"yl\" x=\"" + px(left - 5) + "\" y=\"" + px(sy(t) + 4) + "\">" + num(t, "%.6g") +
           "</text>";
  }
  for (double t : nice_ticks(x0, x1, 5)) {
    svg += "<line class=\"tick\" x1=\"" + px(sx(t)) + "\" x2=\"" + px(sx(t)) + "\" y1=\"" + px(H - bottom) +
           "\" y2=\"" + px(H - bottom + 4) + "\"/><text class=\"xl\" x=\"" + px(sx(t)) + "\" y=\"" +
           px(H - bottom + 16) + "\">" + num(t, "%.6g") + "</text>";
  }
  svg += "<text class=\"axis\" x=\"" + px(left + (W - left - right) / 2) + "\" y=\"" + px(H - 4) + "\">step</text>";
  const double mid = top + (H - top - bottom) / 2;
  svg += "<text class=\"axis ytitle\" x=\"12\" y=\"" + px(mid) + "\" transform=\"rotate(-90 12 " + px(mid) + ")\">" +
         title + "</text>";
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const MetricSeries& s = *chart.series[k];
    const std::string kind = k == 0 ? "" : " valid";
    std::string path;
    for (const auto& [x, y] : s.points) path += px(sx(x)) + "," + px(sy(y)) + " ";
    if (s.points.size() > 1) svg += "<polyline class=\"line" + kind + "\" points=\"" + path + "\"/>";
    if (s.points.size() <= 40)
      for (const auto& [x, y] : s.points)
        svg += "<circle class=\"pt" + kind + "\" cx=\"" + px(sx(x)) + "\" cy=\"" + px(sy(y)) + "\" r=\"2.5\"><title>" +
               html_escape(s.name) + " at step " + num(x, "%.6g") + ": " + num(y, "%.6g") + "</title></circle>";
  }
  if (chart.series.size() > 1) {  // the legend, top right inside the frame
    double y = top + 14;
    for (size_t k = 0; k < chart.series.size(); ++k, y += 14) {
      const std::string kind = k == 0 ? "" : " valid";
      svg += "<line class=\"line" + kind + "\" x1=\"" + px(W - right - 120) + "\" x2=\"" + px(W - right - 104) +
             "\" y1=\"" + px(y - 4) + "\" y2=\"" + px(y - 4) + "\"/><text class=\"key\" x=\"" + px(W - right - 100) +
             "\" y=\"" + px(y) + "\">" + html_escape(chart.series[k]->name) + (k == 0 ? " (training)" : "") +
             "</text>";
    }
  }
  svg += "</svg>";
  return svg;
}

std::string series_caption(const MetricSeries& s) {
  const auto& last = s.points.back();
  double lo = last.second, hi = last.second;
  for (const auto& p : s.points) lo = std::min(lo, p.second), hi = std::max(hi, p.second);
  return "last " + num(last.second, "%.6g") + " at step " + num(last.first, "%.6g") + "; min " + num(lo, "%.6g") +
         ", max " + num(hi, "%.6g") + "; " + std::to_string(s.points.size()) + " points";
}

// "section.key" -> value as JSON text, for the config table; strings stay JSON-quoted so that
// "\n" in a template and trailing spaces are visible.
void flatten(const json& j, const std::string& prefix, std::vector<std::pair<std::string, std::string>>* out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [key, value] : j.items()) flatten(value, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  out->emplace_back(prefix, j.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string read_file_text(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::ostringstream text;
  if (*ok) text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string run_series_section(const std::string& name) {
  if (known_rank(name, kTrainingSeries) >= 0) return "Training";
  if (name.rfind("valid_", 0) == 0) return "Validation";
  return "Other";
}

RunMetrics parse_run_metrics(const std::string& text, const std::string& where) {
  RunMetrics m;
  std::map<std::string, MetricSeries> by_name;
  size_t begin = 0;
  for (int64_t number = 1; begin < text.size(); ++number) {
    size_t end = text.find('\n', begin);
    const bool complete = end != std::string::npos;
    if (!complete) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto skip = [&](const std::string& why) {
      ++m.skipped;
      if (m.first_problem.empty()) m.first_problem = where + ":" + std::to_string(number) + ": " + why;
    };
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      if (!complete) {
        m.torn_last_line = true;
        skip("the last line is cut off (a write was interrupted); left out");
      } else {
        skip("not a JSON object; left out");
      }
      continue;
    }
    const auto step = j.find("step");
    if (step == j.end() || !step->is_number()) {
      skip("no numeric \"step\"; left out");
      continue;
    }
    ++m.lines;
    for (const auto& [key, value] : j.items()) {
      if (key == "step" || !value.is_number()) continue;
      const double v = value.get<double>();
      if (!std::isfinite(v)) continue;
      auto& s = by_name[key];
      s.name = key;
      s.points.emplace_back(step->get<double>(), v);
    }
  }
  std::vector<MetricSeries> series;
  for (auto& [name, s] : by_name) series.push_back(std::move(s));
  auto rank = [](const std::string& name) {
    if (const int k = known_rank(name, kTrainingSeries); k >= 0) return std::make_pair(0, k);
    if (const int k = known_rank(name, kValidationSeries); k >= 0) return std::make_pair(1, k);
    if (name.rfind("valid_", 0) == 0) return std::make_pair(1, 1000);
    return std::make_pair(2, 0);
  };
  std::stable_sort(series.begin(), series.end(),
                   [&](const MetricSeries& a, const MetricSeries& b) { return rank(a.name) < rank(b.name); });
  m.series = std::move(series);
  return m;
}

std::string render_run_report(const RunMetrics& metrics, const std::string& job_config_json,
                              const RunReportOptions& options) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
      "<title>" + html_escape(options.title) + "</title><style>"
      "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1300px}"
      "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em}"
      ".meta{color:#666;font-size:.85em}.warn{color:#a33}"
      ".charts{display:flex;flex-wrap:wrap;gap:1em}"
      "figure{margin:0;border:1px solid #e4e4e4;padding:.4em .5em;background:#fff}"
      "figcaption{font-size:.8em;max-width:380px}figcaption b{font-family:monospace;font-size:1.1em}"
      ".chart .frame{fill:#fbfbfb;stroke:#bbb}.chart .grid{stroke:#e6e6e6}.chart .tick{stroke:#999}"
      ".chart text{font-size:11px;fill:#444}.chart .ytitle{font-size:10px}.chart .yl{text-anchor:end}.chart .xl,.chart .axis{text-anchor:middle}"
      ".chart .line{fill:none;stroke:#2166ac;stroke-width:1.6}.chart .pt{fill:#2166ac}"
      ".chart .line.valid{stroke:#b2182b;stroke-dasharray:5 3}.chart .pt.valid{fill:#b2182b}.chart .key{font-size:10px}"
      ".flat{font-size:.85em;color:#444}"
      "table{border-collapse:collapse;font-size:.85em}td,th{padding:2px 10px;border-bottom:1px solid #eee;"
      "text-align:left;vertical-align:top}td.k{font-family:monospace;white-space:nowrap}"
      "td.v{font-family:monospace;white-space:pre-wrap;word-break:break-all}"
      "</style></head><body>\n";
  out += "<h1>" + html_escape(options.title) + "</h1>";
  if (!options.run_dir.empty()) {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(options.run_dir, ec);
    out += "<p class=\"meta\">run folder " + html_escape(ec ? options.run_dir : absolute.lexically_normal().string()) +
           "</p>";
  }
  out += "<p>" + std::to_string(metrics.series.size()) + " series from " + std::to_string(metrics.lines) +
         " lines of metrics.jsonl, steps on the horizontal axes.";
  if (metrics.skipped > 0)
    out += " <span class=\"warn\">" + std::to_string(metrics.skipped) + " damaged line(s) left out; first: " +
           html_escape(metrics.first_problem) + "</span>";
  out += "</p>\n";
  // Charts by section; a valid_X series joins X's chart when the run logged X. A chart whose
  // series never change (clipped_high always 0, a fixed lr, a single validation) is listed with
  // its value instead: a flat line teaches nothing and pushes the curves that move off the page.
  std::map<std::string, const MetricSeries*> by_name;
  for (const auto& s : metrics.series) by_name[s.name] = &s;
  std::vector<std::string> sections;
  std::map<std::string, std::vector<Chart>> charts;
  std::map<std::string, std::vector<const MetricSeries*>> flat;
  for (const auto& s : metrics.series) {
    if (s.name.rfind("valid_", 0) == 0 && known_rank(s.name.substr(6), kTrainingSeries) >= 0 &&
        by_name.count(s.name.substr(6)))
      continue;  // drawn with its training partner
    const std::string section = run_series_section(s.name);
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) sections.push_back(section);
    Chart chart{{&s}};
    if (const auto it = by_name.find("valid_" + s.name); it != by_name.end() && known_rank(s.name, kTrainingSeries) >= 0)
      chart.series.push_back(it->second);
    bool all_constant = true;
    for (const auto* c : chart.series) all_constant = all_constant && constant(*c);
    if (all_constant)
      for (const auto* c : chart.series) flat[section].push_back(c);
    else
      charts[section].push_back(chart);
  }
  for (const auto& section : sections) {
    out += "<h2>" + section + "</h2>";
    if (!charts[section].empty()) out += "<div class=\"charts\">";
    for (const auto& chart : charts[section]) {
      const MetricSeries& s = *chart.series.front();
      const std::string what = describe(s.name);
      out += "<figure>" + chart_svg(chart) + "<figcaption><b>" + html_escape(s.name) + "</b>" +
             (what.empty() ? "" : " &mdash; " + html_escape(what)) + "<br><span class=\"meta\">" + series_caption(s) +
             "</span>";
      for (size_t k = 1; k < chart.series.size(); ++k)
        out += "<br><b>" + html_escape(chart.series[k]->name) + "</b> <span class=\"meta\">(dashed, red) " +
               series_caption(*chart.series[k]) + "</span>";
      out += "</figcaption></figure>";
    }
    if (!charts[section].empty()) out += "</div>\n";
    if (!flat[section].empty()) {
      out += "<p class=\"flat\">Not charted, the same value at every logged step:";
      for (size_t k = 0; k < flat[section].size(); ++k) {
        const MetricSeries& s = *flat[section][k];
        const double a = s.points.front().first, b = s.points.back().first;
        out += std::string(k ? ";" : "") + " <b>" + html_escape(s.name) + "</b> " + num(s.points.front().second, "%.6g") +
               " (" + (s.points.size() == 1 ? "step " + num(a, "%.6g")
                                            : std::to_string(s.points.size()) + " steps, " + num(a, "%.6g") +
                                                  "&ndash;" + num(b, "%.6g")) +
               ")";
      }
      out += "</p>\n";
    }
  }

  out += "<h2>Configuration</h2>";
  if (job_config_json.empty()) {
    out += "<p class=\"warn\">The run folder has no job_config.json.</p>\n";
  } else {
    const json config = json::parse(job_config_json, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) {
      out += "<p class=\"warn\">job_config.json is not valid JSON; shown as text.</p><pre>" +
             html_escape(job_config_json) + "</pre>\n";
    } else {
      std::vector<std::pair<std::string, std::string>> rows;
      flatten(config, "", &rows);
      out += "<p class=\"meta\">The effective config the run wrote (job_config.json); strings are shown as JSON.</p>"
             "<table><tr><th>key</th><th>value</th></tr>";
      for (const auto& [key, value] : rows)
        out += "<tr><td class=\"k\">" + html_escape(key) + "</td><td class=\"v\">" + html_escape(value) + "</td></tr>";
      out += "</table>\n";
    }
  }
  out += "</body></html>\n";
  return out;
}

std::string write_run_report(const std::string& run_dir, const std::string& out_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    fail(run_dir, "is not a folder", "give the output.dir of a training run, the folder with metrics.jsonl");
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  bool ok = false;
  const std::string text = read_file_text(metrics_path, &ok);
  if (!ok)
    fail(metrics_path, "cannot read the metrics file",
         "is this the output.dir of a training run? percetrain train writes metrics.jsonl there");
  const RunMetrics metrics = parse_run_metrics(text, metrics_path);
  if (metrics.series.empty())
    fail(metrics_path, "has no metrics lines" + (metrics.first_problem.empty() ? "" : " (" + metrics.first_problem + ")"),
         "the run has not logged a step yet: see train.log_every");
  const std::string config = read_file_text((fs::path(run_dir) / "job_config.json").string(), &ok);
  RunReportOptions options;
  options.run_dir = run_dir;
  fs::path name = fs::path(run_dir).lexically_normal();
  if (name.filename().empty()) name = name.parent_path();  // "run/" -> "run"
  options.title = "percetrain run report: " + name.string();
  write_file_atomic(out_path, render_run_report(metrics, ok ? config : "", options), "the report");
  std::string summary = "wrote " + out_path + ": " + std::to_string(metrics.series.size()) + " series from " +
                        std::to_string(metrics.lines) + " metrics lines";
  if (metrics.skipped > 0) summary += " (" + std::to_string(metrics.skipped) + " damaged line(s) left out)";
  if (!ok) summary += "; no job_config.json";
  return summary;
}

}  // namespace percetrain
