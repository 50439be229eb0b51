// inspect-data: shows what the data pipeline makes of a config's records, before any GPU time.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/data/records.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain::cli {
namespace {

namespace fs = std::filesystem;

std::string tokenizer_path(const JobConfig& job) {
  if (!job.tokenizer.path.empty()) return job.tokenizer.path;
  std::error_code ec;
  if (!fs::exists(job.model.path, ec) && !job.model.init_arch.empty())
    fail(job.file + ": tokenizer.path", "is needed: model.path " + job.model.path + " does not exist yet",
         "model.init_arch creates it at train time; set tokenizer.path to a tokenizer folder such as data/tokenizer");
  return job.model.path;
}

std::string pieces(const Tokenizer& tok, const std::vector<int32_t>& ids, size_t from) {
  std::string out;
  for (size_t i = from; i < ids.size(); ++i) out += (i > from ? "|" : "") + tok.id_to_piece(ids[i]);
  return out;
}

std::string indent(const std::string& text) {
  std::string out = "    ";
  for (const char ch : text) {
    out.push_back(ch);
    if (ch == '\n') out += "    ";
  }
  return out;
}

Runner add_inspect_data_command(CLI::App& app) {
  struct Options {
    std::string config, data, golds;
    std::vector<std::string> overrides;
    int64_t limit = 3;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "inspect-data",
      "Print, for the first records of a data file, both prompts (with and without the profile) with "
      "their token counts, the response tokens and the retrieved profile items with their scores; then "
      "counts of records, tokens, truncations and skips over the whole file.\n"
      "Example: percetrain inspect-data --config configs/demo.json --limit 2");
  cmd->add_option("--config", opts->config, "Job config (JSON); its data and tokenizer sections are used")->required();
  cmd->add_option("--data", opts->data, "Records to read (default: data.train_file)");
  cmd->add_option("--golds", opts->golds, "LaMP golds file for --data (default: the one paired with the file)");
  cmd->add_option("--limit", opts->limit, "Records to print in full")->capture_default_str();
  cmd->add_option("--set", opts->overrides, "Override a config value, e.g. --set data.top_k=2");
  return [opts]() {
    const JobConfig job = load_job_config(opts->config, opts->overrides);
    const DataConfig& c = job.data;
    std::string file = opts->data, golds = opts->golds;
    if (file.empty()) {
      file = c.train_file;
      if (golds.empty()) golds = c.train_golds_file;
    } else if (golds.empty()) {
      if (file == c.valid_file) golds = c.valid_golds_file;
      else if (file == c.test_file) golds = c.test_golds_file;
      else if (file == c.train_file) golds = c.train_golds_file;
    }
    if (file.empty()) fail("--data", "no data file", "give --data or set data.train_file in the config");
    const auto tokenizer = load_tokenizer(tokenizer_path(job));
    const PairBuilder builder(c, *tokenizer);
    const bool strict = c.on_bad_record != "skip";

    RecordReader reader(file, golds);
    Record record;
    BadRecord bad;
    bool is_bad = false;
    DatasetStats s;
    int64_t shown = 0;
    std::cout << std::fixed << std::setprecision(4);
    while ((c.max_records <= 0 || s.records < c.max_records) && reader.next(&record, &bad, &is_bad)) {
      ++s.records;
      if (is_bad) {
        const std::string where = bad.where + (bad.field.empty() ? "" : ": " + bad.field);
        if (strict) fail(where, bad.what, "fix the record, or set data.on_bad_record to \"skip\"");
        ++s.skipped;
        ++s.skipped_bad_records;
        std::cout << "skipped " << where << ": " << bad.what << "\n";
        continue;
      }
      PairedExample ex;
      PairDetail d;
      PairProblem problem;
      if (!builder.build(record, &ex, &d, &problem)) {
        if (strict) fail(problem.where + (problem.field.empty() ? "" : ": " + problem.field), problem.what,
                         "set data.on_bad_record to \"skip\" to skip such records");
        ++s.skipped;
        ++(problem.kind == PairProblem::kTooLong ? s.skipped_too_long : s.skipped_bad_records);
        std::cout << "skipped " << problem.message() << "\n";
        continue;
      }
      ++s.examples;
      s.truncated_profile += d.profile_truncated;
      s.truncated_input += d.input_truncated;
      s.response_tokens += ex.response_length;
      s.personalised_tokens += static_cast<int64_t>(ex.personalised.size());
      s.counterfactual_tokens += static_cast<int64_t>(ex.counterfactual.size());
      if (shown >= opts->limit) continue;
      ++shown;
      std::cout << "=== record " << record.where << (record.id.empty() ? "" : " (id " + record.id + ")") << " ===\n";
      std::cout << "query: " << d.query << "\n";
      std::cout << "retrieved (" << c.retrieval << ", " << d.retrieved.size() << " of " << record.profile.size()
                << " items; " << d.used.size() << " in the prompt" << (d.profile_truncated ? ", profile cut to fit" : "")
                << "):\n";
      for (size_t i = 0; i < d.retrieved.size(); ++i) {
        const auto& item = d.retrieved[i];
        const bool used = i < d.used.size();
        std::string text = used ? d.used[i].text : item.text;
        if (text.size() > 160) text = text.substr(0, 157) + "...";
        std::cout << "  #" << i + 1 << " profile[" << item.index << "] score " << item.score
                  << (used ? (d.used[i].truncated ? " (cut)" : "") : " (left out)") << ": " << text << "\n";
      }
      const size_t p_len = ex.personalised.size() - static_cast<size_t>(ex.response_length);
      const size_t c_len = ex.counterfactual.size() - static_cast<size_t>(ex.response_length);
      std::cout << "personalised prompt (" << p_len << " tokens; " << ex.personalised.size() << " with the response):\n"
                << indent(d.personalised_prompt) << "\n";
      std::cout << "counterfactual prompt (" << c_len << " tokens; " << ex.counterfactual.size()
                << " with the response" << (d.input_truncated ? "; input cut from the left by " +
                                                                    std::to_string(d.input_tokens_dropped) + " tokens" : "")
                << "):\n" << indent(d.counterfactual_prompt) << "\n";
      std::cout << "response (" << ex.response_length << " tokens, identical in both sequences): "
                << pieces(*tokenizer, ex.personalised, p_len) << "\n";
      if (!ex.personal_spans.empty()) {
        std::cout << "personal spans:";
        for (const auto& sp : ex.personal_spans)
          std::cout << " \"" << ex.response_text.substr(sp.first, sp.second - sp.first) << "\"";
        std::cout << "\n";
      }
      std::cout << "\n";
    }
    const double n = s.examples > 0 ? static_cast<double>(s.examples) : 1.0;
    std::cout << std::setprecision(1);
    std::cout << "file: " << file << (golds.empty() ? "" : " (golds " + golds + ")") << "\n"
              << "records: " << s.records << ", examples: " << s.examples << ", skipped: " << s.skipped
              << " (bad records " << s.skipped_bad_records << ", too long " << s.skipped_too_long << ")\n"
              << "tokens: personalised " << s.personalised_tokens << " (mean " << s.personalised_tokens / n
              << "), counterfactual " << s.counterfactual_tokens << " (mean " << s.counterfactual_tokens / n
              << "), response " << s.response_tokens << " (mean " << s.response_tokens / n << ")\n"
              << "truncated (max_length " << c.max_length << "): profile " << s.truncated_profile << ", input "
              << s.truncated_input << "\n";
    return 0;
  };
}

const CommandRegistration inspect_data_registration(add_inspect_data_command);

}  // namespace
}  // namespace percetrain::cli
