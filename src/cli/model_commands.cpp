// init-model (random Hugging Face folders for CI and demos) and logprobs (per-token debugging).
#include <torch/torch.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain::cli {
namespace {

Runner add_init_model_command(CLI::App& app) {
  struct Options {
    std::string arch, preset = "tiny", tokenizer, out, dtype = "float32";
    uint64_t seed = 0;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "init-model",
      "Write a randomly initialised model in Hugging Face layout (config.json, model.safetensors, "
      "tokenizer files), e.g. for CI and demos.\n"
      "Example: percetrain init-model --arch llama --tokenizer data/tokenizer --out build/tiny");
  cmd->add_option("--arch", opts->arch, "Architecture: llama, mistral, qwen2 or qwen3")
      ->required()
      ->check(CLI::IsMember({"llama", "mistral", "qwen2", "qwen3"}));
  cmd->add_option("--preset", opts->preset, "Size preset: tiny (64 hidden, 2 layers), small (256 hidden, 4 layers) or medium (512 hidden, 6 layers)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "Tokenizer folder or tokenizer.model; sets the vocabulary size and is copied into --out")
      ->required();
  cmd->add_option("--out", opts->out, "Output folder (replaced atomically if it exists)")->required();
  cmd->add_option("--seed", opts->seed, "Seed of the random initialisation")->capture_default_str();
  cmd->add_option("--dtype", opts->dtype, "Stored dtype: float32, bfloat16 or float16")->capture_default_str();
  // Shape options override the preset; CLI11 fills the optionals only when given.
  struct Shape {
    int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, intermediate = 0, head_dim = 0;
  };
  auto shape = std::make_shared<Shape>();
  auto* hidden = cmd->add_option("--hidden-size", shape->hidden, "Hidden size (overrides the preset)");
  auto* layers = cmd->add_option("--layers", shape->layers, "Number of decoder layers (overrides the preset)");
  auto* heads = cmd->add_option("--heads", shape->heads,
                                "Attention heads (overrides the preset); hidden size must be a multiple");
  auto* kv_heads = cmd->add_option("--kv-heads", shape->kv_heads,
                                   "Key/value heads for grouped-query attention; must divide --heads");
  auto* intermediate = cmd->add_option("--intermediate-size", shape->intermediate, "MLP width (overrides the preset)");
  auto* head_dim = cmd->add_option("--head-dim", shape->head_dim,
                                   "Head dimension, even (default hidden / heads; for qwen3 twice that)");
  return [opts, shape, hidden, layers, heads, kv_heads, intermediate, head_dim]() {
    ModelShapeOverrides overrides;
    auto take = [](CLI::Option* option, int64_t value, std::optional<int64_t>* field) {
      if (option->count()) *field = value;
    };
    take(hidden, shape->hidden, &overrides.hidden_size);
    take(layers, shape->layers, &overrides.num_hidden_layers);
    take(heads, shape->heads, &overrides.num_attention_heads);
    take(kv_heads, shape->kv_heads, &overrides.num_key_value_heads);
    take(intermediate, shape->intermediate, &overrides.intermediate_size);
    take(head_dim, shape->head_dim, &overrides.head_dim);
    const int64_t params = write_random_model(opts->arch, opts->preset, opts->tokenizer, opts->out, opts->seed,
                                              parse_dtype(opts->dtype, c10::Device(c10::kCPU), "--dtype"), overrides);
    const ModelConfig config = load_model_config(opts->out + "/config.json");
    std::cout << "wrote " << opts->arch << " (" << opts->preset << ", hidden " << config.hidden_size << ", "
              << config.num_hidden_layers << " layers, " << config.num_attention_heads << "/"
              << config.num_key_value_heads << " heads of " << config.head_dim << ", MLP " << config.intermediate_size
              << ", " << params << " parameters, vocabulary " << config.vocab_size << ") to " << opts->out << "\n";
    return 0;
  };
}

std::vector<int> parse_id_list(const std::string& text) {
  std::vector<int> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto begin = item.find_first_not_of(" \t"), end = item.find_last_not_of(" \t");
    if (begin == std::string::npos) fail("--ids", "empty entry in '" + text + "'", "write ids like 1,2,3");
    item = item.substr(begin, end - begin + 1);
    if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 9)
      fail("--ids", "'" + item + "' is not a token id", "write non-negative integers like 1,2,3");
    ids.push_back(std::stoi(item));
  }
  if (ids.empty()) fail("--ids", "no ids given", "write ids like 1,2,3");
  return ids;
}

Runner add_logprobs_command(CLI::App& app) {
  struct Options {
    std::string model, adapter, text, ids, device = "cpu", dtype = "auto";
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "logprobs",
      "Print each token's id, piece and log P(token | preceding tokens) under a model (the first "
      "token has none). With --text the model's tokenizer adds BOS as it does by default.\n"
      "Example: percetrain logprobs --model build/tiny --text 'Great coffee maker.'");
  cmd->add_option("--model", opts->model, "Hugging Face model folder")->required();
  cmd->add_option("--adapter", opts->adapter, "PEFT LoRA adapter folder to apply (unmerged) on --model");
  auto* text = cmd->add_option("--text", opts->text, "Text to tokenise and score");
  auto* ids = cmd->add_option("--ids", opts->ids, "Comma-separated token ids to score, e.g. 1,450,4996");
  text->excludes(ids);
  ids->excludes(text);
  cmd->add_option("--device", opts->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--dtype", opts->dtype, "float32, bfloat16, float16 or auto (float32 on CPU)")->capture_default_str();
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of a table");
  return [opts, text, ids]() {
    if (text->count() == 0 && ids->count() == 0) fail("logprobs", "give --text or --ids");
    const auto device = parse_device(opts->device);
    const auto dtype = parse_dtype(opts->dtype, device, "--dtype");
    auto tokenizer = load_tokenizer(opts->model);
    std::vector<int> token_ids =
        text->count() ? tokenizer->encode(opts->text, /*add_special=*/true) : parse_id_list(opts->ids);
    if (token_ids.empty()) fail("--text", "tokenises to no tokens");
    LoadedModel loaded = load_causal_lm(opts->model, device, dtype);
    if (!opts->adapter.empty()) load_lora_adapter(*loaded.model, opts->adapter);
    std::cerr << describe_loaded_model(loaded) << (opts->adapter.empty() ? "" : " + adapter " + opts->adapter) << "\n";
    for (int id : token_ids)
      if (id < 0 || id >= loaded.config.vocab_size)
        fail("--ids", "token id " + std::to_string(id) + " is outside the vocabulary of " +
                          std::to_string(loaded.config.vocab_size));

    torch::InferenceMode inference;
    loaded.model->eval();
    const auto T = static_cast<int64_t>(token_ids.size());
    auto input = torch::tensor(std::vector<int64_t>(token_ids.begin(), token_ids.end())).view({1, T}).to(device);
    auto mask = torch::ones({1, T}, torch::kLong).to(device);
    std::vector<float> logprobs(T, NAN);
    if (T > 1) {
      auto lp = loaded.model->next_token_logprobs(input, mask).to(torch::kCPU).contiguous();
      for (int64_t t = 1; t < T; ++t) logprobs[t] = lp[0][t - 1].item<float>();
    }
    double total = 0.0;
    for (int64_t t = 1; t < T; ++t) total += logprobs[t];

    if (opts->json) {
      nlohmann::json out;
      out["model"] = opts->model;
      if (!opts->adapter.empty()) out["adapter"] = opts->adapter;
      out["tokens"] = nlohmann::json::array();
      for (int64_t t = 0; t < T; ++t) {
        nlohmann::json tok = {{"id", token_ids[t]}, {"piece", tokenizer->id_to_piece(token_ids[t])}};
        tok["logprob"] = t == 0 ? nlohmann::json(nullptr) : nlohmann::json(logprobs[t]);
        out["tokens"].push_back(tok);
      }
      out["total_logprob"] = total;
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << std::setw(5) << "pos" << std::setw(9) << "id" << "  " << std::setw(12) << "logprob"
                << "  piece\n";
      for (int64_t t = 0; t < T; ++t) {
        std::cout << std::setw(5) << t << std::setw(9) << token_ids[t] << "  " << std::setw(12);
        if (t == 0) std::cout << "-";
        else std::cout << std::fixed << std::setprecision(4) << logprobs[t];
        std::cout << "  " << tokenizer->id_to_piece(token_ids[t]) << "\n";
      }
      std::cout << "total log P = " << std::fixed << std::setprecision(4) << total << " over "
                << T - 1 << " predicted tokens\n";
    }
    return 0;
  };
}

const CommandRegistration init_model_registration(add_init_model_command);
const CommandRegistration logprobs_registration(add_logprobs_command);

}  // namespace
}  // namespace percetrain::cli
