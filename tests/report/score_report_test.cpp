// Score records: JSONL round trip, partial files, the summary, and an HTML report that escapes
// hostile dataset text.
#include <gtest/gtest.h>

#include <filesystem>
#include <cctype>
#include <cmath>
#include <tuple>
#include <fstream>
#include <set>

#include <unistd.h>

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

// "I love Merriweather knives.\nOk" in SentencePiece-like pieces (leading spaces belong to the
// piece), personal spans "Merriweather" [7, 19) and "knives" [20, 26), and an EOS.
RecordScore ground_truth_record() {
  RecordScore r;
  r.id = "gt";
  r.output = "I love Merriweather knives.\nOk";
  const std::vector<std::tuple<const char*, int64_t, int64_t, float>> pieces = {
      {"I", 0, 1, 0.1f},    {" love", 1, 6, 1.5f}, {" Merri", 6, 12, 2.0f}, {"weather", 12, 19, 0.2f},
      {" kni", 19, 23, 0.45f}, {"ves", 23, 26, 0.4f}, {".", 26, 27, 0.4f},    {"\n", 27, 28, -0.3f},
      {"Ok", 28, 30, 0.0f}, {"</s>", 30, 30, -1.0f}};
  int32_t id = 0;
  for (const auto& [piece, start, end, pir] : pieces) r.tokens.push_back({id++, piece, start, end, 0, 0, pir, 0.8f});
  r.personal_spans = {{7, 19}, {20, 26}};
  return r;
}

TEST(ScoreSummary, WordsAreRunsWithoutALeadingSpaceBoundary) {
  // I | love | Merri+weather | kni+ves+. | (the "\n" alone is whitespace: no word) | Ok; the EOS
  // (empty text, at the end) belongs to no word.
  const auto words = record_words(ground_truth_record());
  EXPECT_EQ(words, (std::vector<std::vector<size_t>>{{0}, {1}, {2, 3}, {4, 5, 6}, {8}}));
  // A token without text (the first byte of a split character) joins the word that follows.
  RecordScore r;
  r.output = "x \xC3\xA9y";
  r.tokens = {{0, "x", 0, 1, 0, 0, 0, 0}, {1, "<0xC3>", 1, 1, 0, 0, 0, 0}, {2, " \xC3\xA9", 1, 4, 0, 0, 0, 0},
              {3, "y", 4, 5, 0, 0, 0, 0}};
  EXPECT_EQ(record_words(r), (std::vector<std::vector<size_t>>{{0}, {1, 2, 3}}));
}

TEST(ScoreSummary, AurocOfPirAgainstGroundTruth) {
  EXPECT_DOUBLE_EQ(auroc({{0.1, false}, {0.2, false}, {0.9, true}}), 1.0);
  EXPECT_DOUBLE_EQ(auroc({{0.5, false}, {0.5, true}}), 0.5);  // ties count half
  EXPECT_DOUBLE_EQ(auroc({{0.4, true}, {0.8, true}, {0.3, false}, {0.6, false}}), 0.75);
  EXPECT_TRUE(std::isnan(auroc({{0.4, true}})));

  ScoreSummary s(0.8, 5.0);
  s.add(ground_truth_record());
  const auto a = s.ground_truth_auroc();
  // Tokens with text: personal (in a span) Merri 2.0, weather 0.2, kni 0.45, ves 0.4; the others
  // I 0.1, love 1.5, "." 0.4, "\n" -0.3, Ok 0.0 (EOS left out). Pairs won of 4 x 5 = 20:
  //   2.0 beats 5; 0.2 beats 0.1, -0.3, 0.0 = 3; 0.45 beats 0.1, 0.4, -0.3, 0.0 = 4;
  //   0.4 beats 0.1, -0.3, 0.0 and ties "." (0.4): 3.5. AUROC = 15.5 / 20 = 0.775.
  EXPECT_NEAR(a.tokens, 0.775, 1e-12);
  // First pieces: Merri (starts at 6 <= 7) and kni (19 <= 20), against the 5 tokens outside
  // spans (weather and ves are left out): 2.0 beats 5, 0.45 beats 4 -> 9 / 10.
  EXPECT_NEAR(a.first_pieces, 0.9, 1e-12);
  EXPECT_EQ(a.first_piece_count, 2);
  // Words by summed PIR: Merriweather 2.2 and knives. 1.25 (personal) against I 0.1, love 1.5,
  // Ok 0.0: 2.2 beats 3, 1.25 beats 2 -> 5 / 6.
  EXPECT_NEAR(a.words, 5.0 / 6, 1e-6);
  EXPECT_EQ(a.personal_words, 2);
  EXPECT_EQ(a.other_words, 3);
  const std::string json = s.to_json();
  EXPECT_NE(json.find("\"first_pieces\": 0.9"), std::string::npos) << json;
  EXPECT_NE(json.find("\"tokens\": 0.775"), std::string::npos) << json;
  const std::string text = s.to_text();
  EXPECT_NE(text.find("span tokens 0.775 | first pieces of spans 0.900 (2) | whole words 0.833 (2 personal of 5)"),
            std::string::npos)
      << text;
  // Without ground truth there is no AUROC at all.
  RecordScore plain = ground_truth_record();
  plain.personal_spans.clear();
  ScoreSummary none(0.8, 5.0);
  none.add(plain);
  EXPECT_EQ(none.to_json().find("auroc"), std::string::npos);
  EXPECT_TRUE(std::isnan(none.ground_truth_auroc().tokens));
}

// A NaN score made auroc() spin forever (NaN == NaN is false in the tie loop) and made sorting
// undefined. Run in a child under alarm(): a hang fails the test instead of hanging the suite.
TEST(ScoreSummary, NanScoresEndInBoundedTimeAndStayOutOfTheStatistics) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the suite has threads (LibTorch's pools)
  const double nan = std::nan("");
  EXPECT_EXIT(
      {
        ::alarm(5);
        const bool ok = std::isnan(auroc({{nan, true}, {0.2, false}})) && std::isnan(auroc({{0.2, true}, {nan, false}})) &&
                        std::isnan(auroc({{nan, true}, {nan, false}, {nan, true}})) &&
                        auroc({{-INFINITY, false}, {INFINITY, true}, {INFINITY, false}}) == 0.75;
        std::exit(ok ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        ::alarm(5);
        RecordScore r = ground_truth_record();
        r.tokens[1].pir = static_cast<float>(nan);
        r.tokens[3].pir = static_cast<float>(nan);
        ScoreSummary s(0.8, 5.0);
        s.add(r);
        s.add(ground_truth_record());
        const auto a = s.ground_truth_auroc();
        int64_t binned = 0;
        for (auto c : s.histogram().counts) binned += c;
        bool ok = std::isnan(a.tokens) && std::isnan(a.first_pieces) && std::isnan(a.words);
        ok = ok && s.nan_tokens() == 2 && s.tokens() == 2 * static_cast<int64_t>(r.tokens.size()) - 2;
        ok = ok && binned == s.tokens() && std::isfinite(s.mean());
        for (double q : {0.0, 0.1, 0.5, 0.9, 1.0}) ok = ok && std::isfinite(s.quantile(q));
        ok = ok && s.to_json().find("\"nan_tokens\": 2") != std::string::npos;
        ok = ok && s.to_text().find("2 tokens have a NaN PIR") != std::string::npos;
        std::exit(ok ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(HtmlReport, HistogramHasCountsAndAxesAndTheLegendCannotClip) {
  RecordScore r;
  r.id = "h";
  r.output = "abcd";
  for (float pir : {0.1f, 0.2f, 0.3f, 2.2f}) r.tokens.push_back({0, "x", 0, 1, 0, 0, pir, 0.8f});
  ScoreSummary s(0.8, 5.0);
  s.add(r);
  const std::string html = render_html_report({r}, s, {});
  const size_t begin = html.find("<svg class=\"hist\""), end = html.find("</svg>", begin);
  ASSERT_NE(begin, std::string::npos);
  const std::string svg = html.substr(begin, end - begin);
  // Bin [0, 0.5) holds 3 tokens, [2, 2.5) one: their counts sit above the bars; the count axis
  // runs 0, 1, 2, 3 (peak 3 in steps of 1), the PIR axis from -6 to +6.
  EXPECT_NE(svg.find("text-anchor=\"middle\" fill=\"#333\">3</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find("text-anchor=\"middle\" fill=\"#333\">1</text>"), std::string::npos) << svg;
  for (const char* tick : {">0</text>", ">1</text>", ">2</text>", ">3</text>", ">-6</text>", ">+6</text>", ">0</text>"})
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  EXPECT_NE(svg.find(">tokens</text>"), std::string::npos);
  EXPECT_NE(svg.find("PIR (bins of 0.5"), std::string::npos);
  EXPECT_NE(svg.find("<title>PIR [0.0, 0.5): 3 tokens</title>"), std::string::npos) << svg;
  // Legend swatches grow with their labels instead of clipping them.
  EXPECT_NE(html.find(".legend span{display:inline-block;min-width:"), std::string::npos);
  EXPECT_EQ(html.find(".legend span{display:inline-block;width:"), std::string::npos);
}

TEST(HtmlReport, LegendSaysWhatTheColoursMean) {
  ScoreSummary s(0.8, 5.0);
  s.add(ground_truth_record());
  const std::string html = render_html_report({ground_truth_record()}, s, {});
  // Blue (negative PIR) on the left, red (positive: the profile raises the token's probability) on
  // the right, in words.
  const size_t less = html.find("less likely with the profile"), minus = html.find(">-3.0</span>"),
               plus = html.find(">+3.0</span>"), more = html.find("more likely with the profile");
  ASSERT_NE(less, std::string::npos) << html;
  ASSERT_NE(more, std::string::npos) << html;
  EXPECT_LT(less, minus);
  EXPECT_LT(minus, plus);
  EXPECT_LT(plus, more);
  EXPECT_NE(html.find("<span class=\"s10\">+3.0</span>"), std::string::npos);
  EXPECT_NE(html.find(".s10{background:#b2182b"), std::string::npos);  // red
  EXPECT_NE(html.find(".sm10{background:#2166ac"), std::string::npos);  // blue
}

TEST(HtmlReport, MostPersonalWordsAreWholeWordsWithTheirSummedPir) {
  ScoreSummary s(0.8, 5.0);
  for (int k = 0; k < 3; ++k) s.add(ground_truth_record());
  // Words (record_words) by the sum of their pieces' PIRs: " Merri" 2.0 + "weather" 0.2, " love"
  // 1.5, " kni" 0.45 + "ves" 0.4 + "." 0.4, "I" 0.1, "Ok" 0.0; leading spaces trimmed.
  const auto words = s.top_words(10, 3);
  ASSERT_EQ(words.size(), 5u);
  EXPECT_EQ(words[0].piece, "Merriweather");
  EXPECT_EQ(words[0].count, 3);
  EXPECT_NEAR(words[0].mean_pir, 2.2, 1e-6);
  EXPECT_EQ(words[1].piece, "love");
  EXPECT_EQ(words[2].piece, "knives.");
  EXPECT_NEAR(words[2].mean_pir, 1.25, 1e-6);
  EXPECT_EQ(words[4].piece, "Ok");
  EXPECT_TRUE(s.top_words(10, 4).empty());
  const std::string html = render_html_report({ground_truth_record()}, s, {});
  EXPECT_NE(html.find("<h4>Most personal words (seen at least 3 times)</h4>"), std::string::npos) << html;
  EXPECT_NE(html.find("<td class=\"p s7\">Merriweather</td><td>3</td><td>+2.200</td>"), std::string::npos) << html;
  // The words come first; the piece table stays beside them.
  EXPECT_LT(html.find("Most personal words"), html.find("Most personal pieces"));
  EXPECT_NE(html.find("<td class=\"p s7\"> Merri</td><td>3</td><td>+2.000</td>"), std::string::npos) << html;
  EXPECT_NE(s.to_json().find("\"word\": \"Merriweather\""), std::string::npos);
  EXPECT_NE(s.to_text().find("most personal words (seen >= 3 times, PIR summed over the word's pieces): "
                             "\"Merriweather\" (+2.20, 3)"),
            std::string::npos)
      << s.to_text();
  // A word with a NaN piece is left out.
  RecordScore nan_record = ground_truth_record();
  nan_record.tokens[3].pir = std::nanf("");
  ScoreSummary n(0.8, 5.0);
  for (int k = 0; k < 3; ++k) n.add(nan_record);
  for (const auto& w : n.top_words(10, 1)) EXPECT_NE(w.piece, "Merriweather");
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
