// Score records: JSONL round trip, partial files, the summary, and an HTML report that escapes
// hostile dataset text.
#include <gtest/gtest.h>

#include <filesystem>
#include <cctype>
#include <fstream>
#include <set>

#include "percetrain/report/score_report.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

RecordScore sample_record(const std::string& id, const std::string& output) {
  RecordScore r;
  r.id = id;
  r.output = output;
  // Two tokens over the whole output and an EOS with an empty span at the end.
  const int64_t half = static_cast<int64_t>(output.size() / 2);
  r.tokens.push_back({17, "\xE2\x96\x81" "a", 0, half, -1.5f, -2.25f, 0.75f, 0.8f});
  r.tokens.push_back({18, "b\"<", half, static_cast<int64_t>(output.size()), -0.1f, -3.1f, 3.0f, 3.0f});
  r.tokens.push_back({2, "</s>", static_cast<int64_t>(output.size()), static_cast<int64_t>(output.size()),
                      -0.5f, -0.25f, -0.25f, 0.8f});
  r.profile.push_back({3, 1.25, "item & <b>bold</b>", false});
  r.personal_spans.push_back({0, 1});
  return r;
}

TEST(ScoreRecords, JsonLineRoundTripsExactly) {
  const RecordScore r = sample_record("u1_r0", "Hello \"world\" \xC3\xA9");
  const std::string line = record_to_json_line(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const RecordScore back = record_from_json_line(line, "x:1");
  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.output, r.output);
  ASSERT_EQ(back.tokens.size(), r.tokens.size());
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    EXPECT_EQ(back.tokens[i].piece, r.tokens[i].piece);
    EXPECT_EQ(back.tokens[i].start, r.tokens[i].start);
    EXPECT_EQ(back.tokens[i].pir, r.tokens[i].pir);  // bit-exact floats
    EXPECT_EQ(back.tokens[i].logp_with, r.tokens[i].logp_with);
    EXPECT_EQ(back.tokens[i].weight, r.tokens[i].weight);
  }
  EXPECT_EQ(back.profile.at(0).text, r.profile[0].text);
  EXPECT_EQ(back.personal_spans, r.personal_spans);
  EXPECT_EQ(record_to_json_line(back), line);  // the same scores give the same bytes
  EXPECT_NE(line.find("\"top\":[{\"index\":1"), std::string::npos) << line;
  EXPECT_THROW(record_from_json_line("{\"id\": 3}", "x:2"), std::exception);
}

TEST(ScoreRecords, PartialOutputKeepsCompleteLinesOnly) {
  testing_util::ScratchDir dir;
  const std::string a = record_to_json_line(sample_record("a", "xy")) + "\n";
  const std::string b = record_to_json_line(sample_record("b", "zw")) + "\n";
  {
    std::ofstream out(dir / "s.jsonl.tmp", std::ios::binary);
    out << a << b << b.substr(0, b.size() / 2);
  }
  const auto p = read_partial_output((dir / "s.jsonl.tmp").string());
  EXPECT_EQ(p.ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.complete_bytes, a.size() + b.size());
  EXPECT_TRUE(read_partial_output((dir / "absent").string()).ids.empty());
}

TEST(ScoreSummary, DistributionClippingAndPieces) {
  ScoreSummary s(0.8, 5.0);
  s.add(sample_record("a", "abcd"));
  s.add(sample_record("b", "efgh"));
  EXPECT_EQ(s.records(), 2);
  EXPECT_EQ(s.tokens(), 6);
  EXPECT_NEAR(s.mean(), (0.75 + 3.0 - 0.25) / 3, 1e-6);
  EXPECT_NEAR(s.clipped_low_share(), 4.0 / 6, 1e-12);  // 0.75 and -0.25, twice
  EXPECT_EQ(s.clipped_high_share(), 0.0);
  EXPECT_FLOAT_EQ(s.quantile(0.0), -0.25f);
  EXPECT_FLOAT_EQ(s.quantile(1.0), 3.0f);
  const auto h = s.histogram();
  int64_t total = 0;
  for (auto c : h.counts) total += c;
  EXPECT_EQ(total, 6);
  const auto top = s.top_pieces(10, 2);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].piece, "b\"<");
  EXPECT_EQ(top[0].count, 2);
  // Ground truth: span [0, 1) overlaps the first token only.
  EXPECT_EQ(s.personal_tokens(), 2);
  EXPECT_NEAR(s.personal_mean(), 0.75, 1e-6);
  EXPECT_NEAR(s.other_mean(), (3.0 - 0.25) / 2, 1e-6);
  EXPECT_NE(s.to_json().find("\"share_below_min\""), std::string::npos);
}

TEST(HtmlReport, HostileTextIsEscapedAndNothingExternalIsLoaded) {
  const std::string hostile_output = "<script>alert(1)</script> \"quoted\" & <img src=x onerror=alert(2)>";
  RecordScore r = sample_record("<script>id</script>", hostile_output);
  r.profile[0].text = "</div><script>alert('profile')</script>\"&amp;";
  r.tokens[0].piece = "<script>";
  ScoreSummary s(0.8, 5.0);
  s.add(r);
  HtmlReportOptions options;
  options.source = "data <i>x</i>.jsonl";
  options.total_records = 10;
  const std::string html = render_html_report({r}, s, options);
  // No dataset text reaches the page unescaped: every '<' opens one of the report's own tags.
  const std::set<std::string> own = {"!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2",
                                     "h3", "h4", "p", "span", "b", "code", "section", "div", "aside", "br",
                                     "svg", "rect", "text", "line", "table", "tr", "td", "th"};
  for (size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
    size_t k = at + 1 + (html[at + 1] == '/' ? 1 : 0);
    size_t e = k;
    while (e < html.size() && (std::isalnum(static_cast<unsigned char>(html[e])) || html[e] == '!')) ++e;
    EXPECT_TRUE(own.count(html.substr(k, e - k))) << "unexpected tag at " << at << ": " << html.substr(at, 40);
  }
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&quot;quote"), std::string::npos);
  EXPECT_NE(html.find("d&quot; &amp; &lt;img src=x"), std::string::npos);
  EXPECT_NE(html.find("&lt;/div&gt;&lt;script&gt;alert(&#39;profile&#39;)"), std::string::npos);
  EXPECT_NE(html.find("&amp;amp;"), std::string::npos);
  // Self-contained: no scripts, no external URLs, a CSP that forbids loading anything.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src=\""), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(html.find("Showing the first 1 of 10 records"), std::string::npos);
  // Attribute text cannot close its quotes.
  EXPECT_NE(html.find("piece b&quot;&lt; (id 18)"), std::string::npos);
  // Hover text carries the numbers.
  EXPECT_NE(html.find("PIR +3.0000"), std::string::npos);
  EXPECT_EQ(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

}  // namespace
}  // namespace percetrain
