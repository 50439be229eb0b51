// tokenize: the tokens of texts under a tokenizer, each id next to its piece (or --json: one JSONL
// line of ids per text, for parity checks), and --bench: encode throughput, excluding loading.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain::cli {
namespace {

std::vector<std::string> read_texts(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open for reading");
  std::vector<std::string> texts;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file + ":" + std::to_string(n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      fail(where, "not a JSON object", "each line is {\"text\": \"...\"}");
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail(where, "expected a \"text\" string field", "each line is {\"text\": \"...\"}");
    texts.push_back(j["text"].get<std::string>());
  }
  return texts;
}

Runner add_tokenize_command(CLI::App& app) {
  struct Options {
    std::string tokenizer, text, input;
    bool no_special = false, bench = false, json = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "tokenize",
      "Print the tokens of texts: each id next to its piece (SentencePiece's \u2581 and byte-level BPE's \u0120 "
      "stand for a leading space, \u010a for a newline), or with --json one line {\"ids\": [...]} per text.\n"
      "Example: percetrain tokenize --tokenizer models/Qwen3-4B --text 'Hello world'");
  cmd->add_option("--tokenizer", opts->tokenizer, "Model folder, tokenizer.json or tokenizer.model")->required();
  auto* text = cmd->add_option("--text", opts->text, "One text to encode");
  auto* input = cmd->add_option("--input", opts->input, "JSONL file with a \"text\" field per line");
  text->excludes(input);
  cmd->parse_complete_callback([text, input]() {
    if (text->count() == 0 && input->count() == 0)
      throw CLI::RequiredError("--text or --input is required", CLI::ExitCodes::RequiredError);
  });
  cmd->add_flag("--no-special", opts->no_special,
                "Do not add the model's special tokens (BOS/EOS), like add_special_tokens=False");
  cmd->add_flag("--json", opts->json, "Print one JSON line {\"ids\": [...]} per text instead of the table");
  cmd->add_flag("--bench", opts->bench,
                "Instead of ids, print encode throughput (MB/s over all texts, loading excluded)");
  return [opts]() {
    const auto tokenizer = load_tokenizer(opts->tokenizer);
    const std::vector<std::string> texts = opts->input.empty() ? std::vector<std::string>{opts->text}
                                                               : read_texts(opts->input);
    const bool special = !opts->no_special;
    if (opts->bench) {
      size_t bytes = 0, tokens = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (const auto& t : texts) {
        bytes += t.size();
        tokens += tokenizer->encode(t, special).size();
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::cout << std::fixed << std::setprecision(2) << "bytes " << bytes << " tokens " << tokens << " seconds "
                << std::setprecision(3) << s << " MB/s " << std::setprecision(2) << bytes / 1e6 / s << "\n";
      return 0;
    }
    for (size_t n = 0; n < texts.size(); ++n) {
      const std::vector<int> ids = tokenizer->encode(texts[n], special);
      if (opts->json) {
        std::cout << nlohmann::json{{"ids", ids}}.dump() << "\n";
        continue;
      }
      const std::string count = std::to_string(ids.size()) + (ids.size() == 1 ? " token" : " tokens");
      std::cout << (n ? "\n" : "")
                << (texts.size() > 1 ? "text " + std::to_string(n + 1) + " of " + std::to_string(texts.size()) + ": " : "")
                << count << "\n";
      size_t width = 1;
      for (int id : ids) width = std::max(width, std::to_string(id).size());
      // Pieces can hold newlines or tabs (added tokens): escaped, one token per line stays true.
      for (int id : ids)
        std::cout << "  " << std::setw(static_cast<int>(width)) << id << "  "
                  << escape_control(tokenizer->id_to_piece(id), false) << "\n";
    }
    return 0;
  };
}

const CommandRegistration tokenize_registration(add_tokenize_command);

}  // namespace
}  // namespace percetrain::cli
