// percetrain report: metrics.jsonl parsing (torn and damaged lines), one chart per series, hostile
// text escaped, the config table, and the command's errors.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "percetrain/report/run_report.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

using testing_util::ScratchDir;
using testing_util::throws_error;

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

const char kMetrics[] =
    "{\"step\":10,\"loss\":5.9,\"ce\":7.4,\"pir_mean\":0.002,\"clipped_low\":1.0,\"clipped_high\":0.0,\"lr\":0.002,"
    "\"grad_norm\":0.93,\"tokens_per_s\":33870.6}\n"
    "{\"step\":20,\"loss\":4.2,\"ce\":5.3,\"pir_mean\":0.006,\"clipped_low\":0.9,\"clipped_high\":0.01,\"lr\":0.004,"
    "\"grad_norm\":1.02,\"tokens_per_s\":34291.4}\n"
    "{\"step\":20,\"valid_ce\":3.29,\"valid_loss\":2.63,\"valid_rougeL\":0.41}\n"
    "{\"step\":30,\"loss\":3.1,\"ce\":4.0,\"pir_mean\":0.01,\"clipped_lo";  // torn: the run was killed mid-write

TEST(RunReport, ParsesEveryNumericSeriesAndDropsATornLastLine) {
  const RunMetrics m = parse_run_metrics(kMetrics, "metrics.jsonl");
  EXPECT_EQ(m.lines, 3);
  EXPECT_EQ(m.skipped, 1);
  EXPECT_TRUE(m.torn_last_line);
  EXPECT_NE(m.first_problem.find("metrics.jsonl:4: the last line is cut off"), std::string::npos) << m.first_problem;
  std::vector<std::string> names;
  for (const auto& s : m.series) names.push_back(s.name);
  // Training series in reading order, then validation (known ones first, then any other valid_*),
  // then the rest by name.
  EXPECT_EQ(names, (std::vector<std::string>{"loss", "ce", "pir_mean", "clipped_low", "clipped_high", "lr", "grad_norm",
                                             "valid_loss", "valid_ce", "valid_rougeL", "tokens_per_s"}));
  ASSERT_EQ(m.series[0].points.size(), 2u);  // step 30's torn line contributes nothing
  EXPECT_EQ(m.series[0].points[1], (std::pair<double, double>{20, 4.2}));
  EXPECT_EQ(run_series_section("valid_rougeL"), "Validation");
  EXPECT_EQ(run_series_section("grad_norm"), "Training");
  EXPECT_EQ(run_series_section("tokens_per_s"), "Other");

  // A damaged line in the middle is skipped too; a complete last line without a newline is kept.
  const RunMetrics d = parse_run_metrics("{\"step\":1,\"loss\":2}\nnot json\n{\"loss\":3}\n{\"step\":2,\"loss\":1}", "m");
  EXPECT_EQ(d.lines, 2);
  EXPECT_EQ(d.skipped, 2);
  EXPECT_FALSE(d.torn_last_line);
  EXPECT_EQ(d.first_problem, "m:2: not a JSON object; left out");
}

// Values so large that a tick step is below their spacing (1e20 and the next doubles) or that the
// range overflows: the tick loop never advanced and the report hung.
TEST(RunReport, HugeValuesEndInBoundedTime) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the suite has threads (LibTorch's pools)
  EXPECT_EXIT(
      {
        ::alarm(5);
        const RunMetrics m = parse_run_metrics(
            "{\"step\":1,\"loss\":1e20,\"ce\":-1.7e308}\n{\"step\":2,\"loss\":100000000000000016384,\"ce\":1.7e308}\n",
            "m");
        const std::string html = render_run_report(m, "{}", RunReportOptions());
        std::exit(html.find("<svg") != std::string::npos ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(RunReport, OneSvgPerSeriesAndHostileTextEscaped) {
  std::string metrics = kMetrics;
  metrics += "\n{\"step\":40,\"<script>alert(1)</script>\":1.5,\"note\":\"<b>not a number</b>\"}\n";
  const RunMetrics m = parse_run_metrics(metrics, "metrics.jsonl");
  const std::string config =
      R"({"data": {"prompt_template": "{profile}{input}\n</td><script>alert('x')</script>", "top_k": 4},
          "output": {"dir": "a&b \"quoted\""}, "train": {"lr": 2e-05, "list": [1, "<i>"]}})";
  RunReportOptions options;
  options.run_dir = "runs/<img src=x onerror=alert(2)>";
  const std::string html = render_run_report(m, config, options);
  EXPECT_EQ(m.series.size(), 12u);  // the hostile key is a numeric series too; "note" is not a number
  // Charts: loss (with valid_loss), ce (with valid_ce), pir_mean, clipped_low, clipped_high, lr,
  // grad_norm, tokens_per_s; valid_rougeL and the hostile key have one value each: listed, escaped.
  EXPECT_EQ(count(html, "<svg"), 8u);
  EXPECT_NE(html.find("<b>&lt;script&gt;alert(1)&lt;/script&gt;</b> 1.5 (step 40)"), std::string::npos) << html;
  // Every '<' opens one of the page's own tags: no dataset or config text is markup.
  const std::set<std::string> own = {"!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
                                     "span", "b", "br", "div", "figure", "figcaption", "svg", "rect", "line",
                                     "text", "polyline", "circle", "table", "tr", "th", "td", "pre"};
  for (size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
    size_t k = at + 1 + (html[at + 1] == '/' ? 1 : 0), e = k;
    while (e < html.size() && (std::isalnum(static_cast<unsigned char>(html[e])) || html[e] == '!')) ++e;
    EXPECT_TRUE(own.count(html.substr(k, e - k))) << "unexpected tag at " << at << ": " << html.substr(at, 40);
  }
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;/td&gt;&lt;script&gt;alert(&#39;x&#39;)"), std::string::npos);
  EXPECT_NE(html.find("a&amp;b \\&quot;quoted\\&quot;"), std::string::npos);  // JSON-quoted, then escaped
  EXPECT_NE(html.find("runs/&lt;img src=x"), std::string::npos);
  // The config as a flat table, strings JSON-quoted so that "\n" shows.
  EXPECT_NE(html.find("<td class=\"k\">data.prompt_template</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"k\">train.lr</td><td class=\"v\">2e-05</td>"), std::string::npos) << html;
  EXPECT_NE(html.find("{profile}{input}\\n"), std::string::npos);
  // Self-contained: no scripts, no URLs, a CSP that forbids loading anything.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src=\""), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(html.find("1 damaged line(s) left out"), std::string::npos);
  EXPECT_NE(html.find("<h2>Validation</h2>"), std::string::npos);
  // Without a config the page says so; a broken config is shown escaped as text.
  EXPECT_NE(render_run_report(m, "", options).find("has no job_config.json"), std::string::npos);
  const std::string broken = render_run_report(m, "{\"a\": <b>", options);
  EXPECT_NE(broken.find("not valid JSON"), std::string::npos);
  EXPECT_NE(broken.find("{&quot;a&quot;: &lt;b&gt;"), std::string::npos);
}

// The chart of one series (by its aria-label) in the page.
std::string chart_of(const std::string& html, const std::string& name) {
  const size_t begin = html.find("aria-label=\"" + name + " by step\"");
  if (begin == std::string::npos) return "";
  return html.substr(begin, html.find("</svg>", begin) - begin);
}

// A run as a newcomer's demo logs it: the loss falls from 6 to 0.19, validation every 100 steps,
// clipped_high stays 0 and the learning rate is fixed.
std::string demo_like_metrics() {
  std::string text;
  for (int step = 10; step <= 400; step += 10) {
    const double loss = 0.19 + 5.81 * std::exp(-step / 40.0);
    text += "{\"step\":" + std::to_string(step) + ",\"loss\":" + std::to_string(loss) +
            ",\"pir_mean\":" + std::to_string(0.001 * step - 0.2) + ",\"clipped_high\":0,\"lr\":0.002}\n";
    if (step % 100 == 0)
      text += "{\"step\":" + std::to_string(step) + ",\"valid_loss\":" + std::to_string(loss + 0.3) +
              ",\"valid_rougeL\":" + std::to_string(0.1 + step / 4000.0) + "}\n";
  }
  return text;
}

TEST(RunReport, YAxesHaveTitlesAndLogScaleWhereValuesSpanADecade) {
  const std::string html = render_run_report(parse_run_metrics(demo_like_metrics(), "m"), "{}", RunReportOptions());
  const std::string loss = chart_of(html, "loss");
  ASSERT_FALSE(loss.empty()) << html;
  // 0.19 .. 4.7: a log axis over the decades 0.1 .. 10 with 2 and 5 between, titled as such.
  EXPECT_NE(loss.find(">loss (nats/token), log scale</text>"), std::string::npos) << loss;
  for (const char* tick : {">0.1</text>", ">0.2</text>", ">0.5</text>", ">1</text>", ">2</text>", ">5</text>", ">10</text>"})
    EXPECT_NE(loss.find(tick), std::string::npos) << tick << "\n" << loss;
  // Equal ratios take equal heights: 0.1 -> 1 and 1 -> 10 are as tall as each other.
  auto tick_y = [&](const std::string& label) {
    const size_t at = loss.find(">" + label + "</text>");
    const size_t y = loss.rfind(" y=\"", at);
    return std::stod(loss.substr(y + 4));
  };
  EXPECT_NEAR(tick_y("0.1") - tick_y("1"), tick_y("1") - tick_y("10"), 0.2);
  // PIR crosses zero: linear, titled with its unit, no log.
  const std::string pir = chart_of(html, "pir_mean");
  EXPECT_NE(pir.find(">PIR (nats)</text>"), std::string::npos) << pir;
  EXPECT_EQ(pir.find("log scale"), std::string::npos) << pir;
  // Validation of a quantity alone on its axis, titled.
  EXPECT_NE(chart_of(html, "valid_rougeL").find(">ROUGE-L</text>"), std::string::npos) << html;
}

TEST(RunReport, TrainingAndValidationOfOneQuantityShareAChart) {
  const RunMetrics m = parse_run_metrics(demo_like_metrics(), "m");
  const std::string html = render_run_report(m, "{}", RunReportOptions());
  const std::string loss = chart_of(html, "loss");
  // One chart holds both: the training line and the validation line with its 4 points, and a legend.
  EXPECT_EQ(count(loss, "<polyline class=\"line\""), 1u) << loss;
  EXPECT_EQ(count(loss, "<polyline class=\"line valid\""), 1u) << loss;
  EXPECT_EQ(count(loss, "<circle class=\"pt valid\""), 4u) << loss;
  EXPECT_NE(loss.find(">loss (training)</text>"), std::string::npos) << loss;
  EXPECT_NE(loss.find(">valid_loss</text>"), std::string::npos) << loss;
  EXPECT_EQ(chart_of(html, "valid_loss"), "");  // not a chart of its own
  // Constant series are listed with their value, not charted.
  EXPECT_EQ(chart_of(html, "clipped_high"), "");
  EXPECT_EQ(chart_of(html, "lr"), "");
  EXPECT_NE(html.find("Not charted, the same value at every logged step: <b>clipped_high</b> 0 (40 steps, 10&ndash;400); "
                      "<b>lr</b> 0.002 (40 steps, 10&ndash;400)"),
            std::string::npos)
      << html;
  // loss+valid_loss, pir_mean, valid_rougeL.
  EXPECT_EQ(count(html, "<svg"), 3u);
}

TEST(RunReport, WritesThePageAndFailsWithOneClearLine) {
  ScratchDir dir("run-report");
  const auto run = dir / "run";
  EXPECT_TRUE(throws_error([&] { write_run_report(run.string(), (dir / "r.html").string()); }, "is not a folder"));
  std::filesystem::create_directories(run);
  EXPECT_TRUE(throws_error([&] { write_run_report(run.string(), (dir / "r.html").string()); },
                           "metrics.jsonl: cannot read the metrics file"));
  std::ofstream(run / "metrics.jsonl") << "{\"step\":1,\"loss";
  EXPECT_TRUE(throws_error([&] { write_run_report(run.string(), (dir / "r.html").string()); },
                           "has no metrics lines (" + (run / "metrics.jsonl").string() + ":1: the last line is cut off"));
  std::ofstream(run / "metrics.jsonl") << kMetrics;
  const std::string summary = write_run_report(run.string() + "/", (dir / "r.html").string());
  EXPECT_NE(summary.find("11 series from 3 metrics lines (1 damaged line(s) left out); no job_config.json"),
            std::string::npos)
      << summary;
  std::ifstream page(dir / "r.html");
  const std::string html((std::istreambuf_iterator<char>(page)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("<title>percetrain run report: " + run.string() + "</title>"), std::string::npos);

  // The command: default output RUN_DIR/report.html; a missing folder is one error line.
  const auto run_cli = [](const std::string& args, int* status) {
    FILE* pipe = ::popen((std::string(PERCETRAIN_BINARY) + " " + args + " 2>&1").c_str(), "r");
    std::string out;
    char buffer[4096];
    while (pipe && std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
    *status = pipe ? ::pclose(pipe) : -1;
    return out;
  };
  int status = 0;
  std::string out = run_cli("report " + run.string(), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(std::filesystem::exists(run / "report.html")) << out;
  out = run_cli("report " + (dir / "absent").string(), &status);
  EXPECT_NE(status, 0);
  EXPECT_EQ(out, "percetrain: error: " + (dir / "absent").string() +
                     ": is not a folder (give the output.dir of a training run, the folder with metrics.jsonl)\n");
}

}  // namespace
}  // namespace percetrain
