// init-model (random Hugging Face folders for CI and demos) and logprobs (per-token debugging,
// padded batches and loss gradients for parity checks).
#include <torch/torch.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/io/safetensors.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/pass/paired_pass.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain::cli {
namespace {

Runner add_init_model_command(CLI::App& app) {
  struct Options {
    std::string arch, preset = "tiny", tokenizer, out, dtype = "float32";
    uint64_t seed = 0;
    bool overwrite = false;
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
      ->capture_default_str()
      ->check(CLI::IsMember({"tiny", "small", "medium"}));
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "Tokenizer folder or tokenizer.model; sets the vocabulary size and is copied into --out")
      ->required();
  cmd->add_option("--out", opts->out,
                  "Output folder: new or empty (written whole, then renamed into place), or see --overwrite")
      ->required();
  cmd->add_flag("--overwrite", opts->overwrite,
                "Write over a folder that holds files: replaces its model files (weights, config.json, tokenizer "
                "files) and keeps the others; never the --tokenizer folder");
  cmd->add_option("--seed", opts->seed, "Seed of the random initialisation")->capture_default_str()->check(at_least(0));
  cmd->add_option("--dtype", opts->dtype, "Stored dtype: float32, bfloat16 or float16")
      ->capture_default_str()
      ->check(dtype_spec());
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
  for (auto* option : {hidden, layers, heads, kv_heads, intermediate, head_dim}) option->check(at_least(1));
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
                                              parse_dtype(opts->dtype, c10::Device(c10::kCPU), "--dtype"), overrides,
                                              opts->overwrite);
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

// "0.5,1,2": the fixed loss weights of --weights.
std::vector<float> parse_weight_list(const std::string& text) {
  std::vector<float> weights;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    double value = NAN;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" \t", used) != std::string::npos || !std::isfinite(value))
      fail("--weights", "'" + item + "' is not a finite number", "write weights like 1,0.8,2.5");
    weights.push_back(static_cast<float>(value));
  }
  return weights;
}

Runner add_logprobs_command(CLI::App& app) {
  struct Options {
    std::string model, adapter, text, device = "cpu", dtype = "auto", loss_grad;
    std::vector<std::string> ids, weights;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "logprobs",
      "Print each token's id, piece and log P(token | preceding tokens) under a model (the first "
      "token has none). With --text the model's tokenizer adds BOS as it does by default. Several "
      "--ids rows are scored as one right-padded batch, as training and score pad.\n"
      "Example: percetrain logprobs --model build/tiny --text 'Great coffee maker.'\n"
      "Gradient check: percetrain logprobs --model build/tiny --ids 1,450,4996 --ids 1,9 --loss-grad g.safetensors");
  cmd->add_option("--model", opts->model,
                  "Hugging Face model folder, or a repository id in the local Hugging Face cache (Qwen/Qwen3-4B[@REV])")
      ->required();
  cmd->add_option("--adapter", opts->adapter,
                  "PEFT LoRA adapter folder (or repository id in the local cache) to apply (unmerged) on --model");
  auto* text = cmd->add_option("--text", opts->text, "Text to tokenise and score");
  auto* ids = cmd->add_option("--ids", opts->ids,
                              "Comma-separated token ids to score, e.g. 1,450,4996; repeat for several rows of one "
                              "batch");
  text->excludes(ids);
  ids->excludes(text);
  cmd->parse_complete_callback([text, ids]() {
    if (text->count() == 0 && ids->count() == 0)
      throw CLI::RequiredError("--text or --ids is required", CLI::ExitCodes::RequiredError);
  });
  cmd->add_option("--device", opts->device, "cpu, cuda, cuda:N or auto")->capture_default_str()->check(device_spec());
  cmd->add_option("--dtype", opts->dtype, "float32, bfloat16, float16 or auto (float32 on CPU)")
      ->capture_default_str()
      ->check(dtype_spec());
  cmd->add_flag("--json", opts->json, "Print one JSON object (one line per row) instead of a table");
  auto* loss_grad = cmd->add_option(
      "--loss-grad", opts->loss_grad,
      "Debugging: also run the training loss -(1/n) sum_i w_i log p_i over every scored token of the batch "
      "(n of them; objective ce, or weights_from_data with --weights) through backward, and write each "
      "parameter's gradient under its Hugging Face name to this .safetensors file (metadata: loss, tokens)");
  auto* weights = cmd->add_option("--weights", opts->weights,
                                  "Fixed loss weights for --loss-grad, one comma-separated list per --ids row with one "
                                  "weight per scored token (all but the first)");
  weights->needs(loss_grad);
  weights->needs(ids);
  return [opts, text, ids, loss_grad, weights]() {
    opts->model = model_location(opts->model, "--model");
    opts->adapter = model_location(opts->adapter, "--adapter");
    const bool with_grad = loss_grad->count() > 0;
    if (with_grad && !opts->adapter.empty())
      fail("--loss-grad", "does not apply to an adapter", "give the base model without --adapter");
    refuse_outputs_onto_inputs({{opts->loss_grad, "--loss-grad"}}, {{opts->model, "--model", true}});
    const auto device = parse_device(opts->device, "--device");
    const auto dtype = parse_dtype(opts->dtype, device, "--dtype");
    auto tokenizer = load_tokenizer(opts->model);
    // Each row becomes an example whose response is all of its tokens but the first, so that the
    // batch goes through the training pass (collation, padding, chunked log-probs, objective).
    std::vector<PairedExample> rows;
    auto add_row = [&](std::vector<int> row) {
      PairedExample e;
      e.personalised.assign(row.begin(), row.end());
      e.counterfactual = e.personalised;
      e.response_length = static_cast<int32_t>(row.size()) - 1;
      rows.push_back(std::move(e));
    };
    if (text->count()) add_row(tokenizer->encode(opts->text, /*add_special=*/true));
    else
      for (const auto& list : opts->ids) add_row(parse_id_list(list));
    if (rows.front().personalised.empty()) fail("--text", "tokenises to no tokens");
    if (weights->count()) {
      if (opts->weights.size() != rows.size())
        fail("--weights", std::to_string(opts->weights.size()) + " lists for " + std::to_string(rows.size()) +
                              " --ids rows", "give one list per row");
      for (size_t b = 0; b < rows.size(); ++b) {
        auto w = parse_weight_list(opts->weights[b]);
        if (static_cast<int64_t>(w.size()) != rows[b].response_length)
          fail("--weights", "row " + std::to_string(b) + " has " + std::to_string(w.size()) + " weights for " +
                                std::to_string(rows[b].response_length) + " scored tokens",
               "give one weight per token after the first");
        rows[b].token_weights = std::move(w);
      }
    }
    LoadedModel loaded = load_causal_lm(opts->model, device, dtype);
    if (!opts->adapter.empty()) {
      verify_recorded_adapter(opts->adapter);
      load_lora_adapter(*loaded.model, opts->adapter);
    }
    std::cerr << describe_loaded_model(loaded) << (opts->adapter.empty() ? "" : " + adapter " + opts->adapter) << "\n";
    for (const auto& row : rows)
      for (int id : row.personalised)
        if (id < 0 || id >= loaded.config.vocab_size)
          fail("--ids", "token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(loaded.config.vocab_size));

    std::vector<size_t> all(rows.size());
    std::iota(all.begin(), all.end(), size_t{0});
    const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;  // as train and score pad
    const PairedBatch batch = collate_paired(rows, all, pad_id, device, /*with_counterfactual=*/false);
    ObjectiveSection section;
    section.name = weights->count() ? ObjectiveKind::kWeightsFromData : ObjectiveKind::kCe;
    const auto objective = make_objective(section);
    torch::Tensor flat;  // [N] log-probs of the scored tokens, row-major
    if (with_grad) {
      if (batch.response_tokens == 0) fail("--loss-grad", "no token to score", "give rows of at least 2 ids");
      loaded.model->train();
      auto pass = run_paired_pass(*loaded.model, *objective, batch, /*chunk_tokens=*/0);
      const auto scale = normalisation_scale(Normalization::kTokens, batch.sequence, static_cast<int64_t>(rows.size()),
                                             batch.response_tokens, static_cast<int64_t>(rows.size()))
                             .to(pass.terms.token_loss.scalar_type());
      auto loss = (pass.terms.token_loss * scale).sum();
      loss.backward();
      std::vector<std::pair<std::string, torch::Tensor>> grads;
      for (const auto& item : loaded.model->named_parameters())
        if (item.value().grad().defined()) grads.emplace_back(item.key(), item.value().grad());
      std::ostringstream loss_text;
      loss_text << std::setprecision(17) << loss.item<double>();
      write_safetensors(opts->loss_grad, grads,
                        {{"loss", loss_text.str()}, {"tokens", std::to_string(batch.response_tokens)},
                         {"objective", objective->name()}});
      std::cerr << "loss " << loss_text.str() << " over " << batch.response_tokens << " tokens; " << grads.size()
                << " gradients written to " << opts->loss_grad << "\n";
      flat = pass.tokens.logp_personalised.detach();
    } else if (batch.response_tokens > 0) {
      torch::InferenceMode inference;
      loaded.model->eval();
      flat = run_paired_pass(*loaded.model, *objective, batch, /*chunk_tokens=*/0).tokens.logp_personalised;
    } else {
      flat = torch::empty({0});
    }
    flat = flat.to(torch::kCPU, torch::kFloat32).contiguous();
    require_finite_logprobs(flat, "logprobs",
                            "model " + opts->model + (opts->adapter.empty() ? "" : " + adapter " + opts->adapter));

    int64_t offset = 0;
    for (size_t b = 0; b < rows.size(); ++b) {
      const auto& token_ids = rows[b].personalised;
      const auto T = static_cast<int64_t>(token_ids.size());
      std::vector<float> logprobs(T, NAN);
      double total = 0.0;
      for (int64_t t = 1; t < T; ++t) {
        logprobs[t] = flat[offset + t - 1].item<float>();
        total += logprobs[t];
      }
      offset += T - 1;

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
        if (rows.size() > 1) std::cout << (b ? "\n" : "") << "row " << b << "\n";
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
    }
    return 0;
  };
}

const CommandRegistration init_model_registration(add_init_model_command);
const CommandRegistration logprobs_registration(add_logprobs_command);

}  // namespace
}  // namespace percetrain::cli
