// Reading the small JSON files beside a tokenizer (tokenizer_config.json, special_tokens_map.json,
// generation_config.json), shared by the SentencePiece and tokenizer.json implementations.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace percetrain::tokenizer_files {

// The file's JSON object; std::nullopt when absent. Malformed JSON names the file: a half-written
// tokenizer_config.json must not silently fall back to defaults.
std::optional<nlohmann::json> read_json_if_present(const std::filesystem::path& file);

// The whole file as JSON, or an error naming the file.
nlohmann::json read_json(const std::filesystem::path& file);

// HF writes special tokens as "<s>" or as {"content": "<s>", "lstrip": false, ...}; null means
// the tokenizer has no such token.
struct TokenField {
  bool present = false;
  bool null = false;
  std::string content;
};
TokenField token_field(const nlohmann::json& cfg, const std::string& key, const std::string& file);
std::optional<bool> bool_field(const nlohmann::json& cfg, const std::string& key, const std::string& file);
// generation_config.json ids are an int or a list of ints (several stop tokens); the first one
// is the tokenizer's own.
std::optional<int> id_field(const nlohmann::json& cfg, const std::string& key, const std::string& file);

// BOS/EOS/PAD ids from the files beside a tokenizer, later files overriding earlier ones in the
// order transformers reads them: tokenizer_config.json, special_tokens_map.json, then
// generation_config.json's bos/eos ids (what the model was trained to emit). `resolve` turns a
// token string into an id (it may fail); `check_id` validates a generation_config id. A pad
// token that is not in the vocabulary is ignored (padding is masked anyway).
struct SpecialIds {
  int bos = -1, eos = -1, pad = -1;
  std::optional<bool> add_bos, add_eos;  // tokenizer_config.json's add_bos_token / add_eos_token
};
void read_special_ids(const std::filesystem::path& dir, SpecialIds* ids,
                      const std::function<int(const std::string& token, const std::string& where)>& resolve,
                      const std::function<int(const std::string& token)>& lookup,
                      const std::function<int(int id, const std::string& where)>& check_id);

}  // namespace percetrain::tokenizer_files
