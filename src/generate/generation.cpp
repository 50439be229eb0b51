// Batched decoding with a KV cache (greedy, temperature, top-k, top-p; EOS / stop-string /
// length stops) and the resumable predictions file.
#include "percetrain/generate/generation.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_set>

#include "percetrain/model/decoder.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain {

// ---------------------------------------------------------------------------------------------
at::Tensor top_k_filter(const at::Tensor& logits, int64_t k) {
  const int64_t V = logits.size(-1);
  if (k <= 0 || k >= V) return logits;
  auto kth = std::get<0>(logits.topk(k, -1)).narrow(-1, k - 1, 1);  // [B, 1]
  return logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
}

at::Tensor top_p_filter(const at::Tensor& logits, double p) {
  if (p >= 1.0) return logits;
  const int64_t V = logits.size(-1);
  auto sorted = logits.sort(-1, /*descending=*/false);
  auto cumulative = std::get<0>(sorted).softmax(-1).cumsum(-1);  // ascending
  auto remove_sorted = cumulative <= (1.0 - p);
  remove_sorted.narrow(-1, V - 1, 1).fill_(false);  // the most likely token always stays
  auto remove = remove_sorted.scatter(-1, std::get<1>(sorted), remove_sorted);
  return logits.masked_fill(remove, -std::numeric_limits<float>::infinity());
}

at::Tensor sampling_logits(const at::Tensor& logits, double temperature, int64_t top_k, double top_p) {
  auto scores = logits.to(torch::kFloat32);
  if (temperature > 0 && temperature != 1.0) scores = scores / temperature;
  return top_p_filter(top_k_filter(scores, top_k), top_p);
}

std::vector<int64_t> sample_rows(const at::Tensor& filtered_logits, const std::vector<double>& u) {
  TORCH_CHECK(filtered_logits.dim() == 2 && filtered_logits.size(0) == static_cast<int64_t>(u.size()),
              "sample_rows: one uniform draw per row");
  auto probs = filtered_logits.to(torch::kFloat32).softmax(-1).to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t V = probs.size(1);
  std::vector<int64_t> out(u.size());
  for (size_t b = 0; b < u.size(); ++b) {
    const double* p = probs.data_ptr<double>() + static_cast<int64_t>(b) * V;
    const double total = std::accumulate(p, p + V, 0.0);
    const double target = u[b] * total;
    double cumulative = 0.0;
    int64_t chosen = -1;
    for (int64_t v = 0; v < V; ++v) {
      if (p[v] <= 0.0) continue;
      chosen = v;  // the last token with mass, should rounding leave target beyond the sum
      cumulative += p[v];
      if (cumulative > target) break;
    }
    TORCH_CHECK(chosen >= 0, "sample_rows: a row has no token with probability > 0");
    out[b] = chosen;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A request's own uniform stream, from (seed, id): independent of batch composition and of the
// LibTorch version, so that resumed and batched runs draw exactly what a single run draws (the
// logits they are compared with can still differ by rounding; see Generator::generate).
struct RowStream {
  uint64_t state;
  RowStream(uint64_t seed, const std::string& id) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the id
    for (unsigned char ch : id) h = (h ^ ch) * 0x100000001b3ull;
    uint64_t s = seed;
    state = splitmix64(s) ^ h;
  }
  double next() { return static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53; }
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Generator::Generator(CausalLMImpl& model, const Tokenizer* tokenizer, GenerationOptions options)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)) {
  if (options_.max_new_tokens < 1) fail("generate.max_new_tokens", "must be at least 1");
  if (!options_.stop_strings.empty() && !tokenizer_)
    fail("generate.stop_strings", "stop strings need a tokenizer to decode the text");
}

std::vector<GenerationResult> Generator::generate(const std::vector<GenerationRequest>& batch) {
  torch::InferenceMode inference;
  const auto B = static_cast<int64_t>(batch.size());
  std::vector<GenerationResult> results(batch.size());
  if (B == 0) return results;
  const auto weight = model_.output_weight();
  const auto device = weight.device();
  const int64_t vocab = model_.config().vocab_size;

  // Left padding: every row's last prompt token sits in the last column, so each step appends
  // one column for all rows.
  int64_t S0 = 0;
  for (const auto& r : batch) {
    if (r.prompt.empty()) fail(r.id, "the prompt has no tokens");
    S0 = std::max<int64_t>(S0, static_cast<int64_t>(r.prompt.size()));
  }
  std::vector<int64_t> ids_flat(B * S0, 0), mask_flat(B * S0, 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& prompt = batch[b].prompt;
    const int64_t offset = b * S0 + S0 - static_cast<int64_t>(prompt.size());
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] < 0 || prompt[i] >= vocab)
        fail(batch[b].id, "token id " + std::to_string(prompt[i]) + " is outside the vocabulary of " +
                              std::to_string(vocab) + " ids", "does the tokenizer belong to this model?");
      ids_flat[offset + i] = prompt[i];
      mask_flat[offset + i] = 1;
    }
    results[b].id = batch[b].id;
    stats_.prompt_tokens += static_cast<int64_t>(prompt.size());
  }
  auto ids = torch::tensor(ids_flat, torch::kLong).view({B, S0}).to(device);
  auto mask = torch::tensor(mask_flat, torch::kLong).view({B, S0}).to(device);

  std::vector<RowStream> streams;
  for (const auto& r : batch) streams.emplace_back(options_.seed, r.id);
  const std::unordered_set<int64_t> eos(options_.eos_ids.begin(), options_.eos_ids.end());
  std::vector<int64_t> active(B);  // rows of `results` still decoding, in batch order
  std::iota(active.begin(), active.end(), 0);

  KVCache cache;
  cache.reserve = S0 + options_.max_new_tokens;
  // Next-token logits at the last column: [B', C] @ [V, C]^T -> [B', V] fp32.
  auto last_logits = [&](const torch::Tensor& hidden) {
    return torch::matmul(hidden.select(1, hidden.size(1) - 1), weight.t()).to(torch::kFloat32);
  };
  const auto start = Clock::now();
  auto logits = options_.use_cache
                    ? last_logits(model_.forward_step(ids, mask, position_ids_from_mask(mask), cache))
                    : last_logits(model_.hidden_states(ids, mask, position_ids_from_mask(mask)));
  double prefill_seconds = 0.0;

  for (int64_t step = 0;; ++step) {
    // NaN or infinite logits (NaN weights, an absurd lora_alpha, a float16 overflow) would be
    // "sampled" into garbage text with rc 0: refused, naming the first such row.
    if (!torch::isfinite(logits).all().item<bool>()) {
      const auto finite = torch::isfinite(logits).all(-1).to(torch::kCPU).contiguous();
      size_t row = 0;
      while (row + 1 < active.size() && finite[static_cast<int64_t>(row)].item<bool>()) ++row;
      fail("generate: record " + quote_name(batch[active[row]].id), "non-finite log-probabilities from " + options_.source,
           "its weights or lora_alpha give NaN or infinity; check them, or load a half-precision model in float32");
    }
    std::vector<int64_t> chosen;
    if (options_.temperature <= 0) {
      auto best = logits.argmax(-1).to(torch::kCPU).contiguous();
      chosen.assign(best.data_ptr<int64_t>(), best.data_ptr<int64_t>() + best.numel());
    } else {
      std::vector<double> u;
      for (int64_t r : active) u.push_back(streams[r].next());
      chosen = sample_rows(sampling_logits(logits, options_.temperature, options_.top_k, options_.top_p), u);
    }
    if (step == 0) prefill_seconds = seconds_since(start);

    std::vector<int64_t> keep;  // positions in `active` that go on
    for (size_t i = 0; i < active.size(); ++i) {
      GenerationResult& result = results[active[i]];
      result.tokens.push_back(static_cast<int>(chosen[i]));
      if (eos.count(chosen[i])) {
        result.stop_reason = "eos";
        continue;
      }
      if (!options_.stop_strings.empty()) {
        const std::string text = tokenizer_->decode(result.tokens, /*skip_special=*/true);
        size_t cut = std::string::npos;
        for (const auto& stop : options_.stop_strings) cut = std::min(cut, text.find(stop));
        if (cut != std::string::npos) {
          result.stop_reason = "stop_string";
          result.prediction = text.substr(0, cut);
          continue;
        }
      }
      if (static_cast<int64_t>(result.tokens.size()) >= options_.max_new_tokens) {
        result.stop_reason = "length";
        continue;
      }
      keep.push_back(static_cast<int64_t>(i));
    }
    if (keep.empty()) break;

    if (keep.size() < active.size()) {  // finished rows leave the batch (and the cache)
      auto rows = torch::tensor(keep, torch::kLong).to(device);
      mask = mask.index_select(0, rows);
      if (options_.use_cache) cache.select_rows(rows);
      else ids = ids.index_select(0, rows);
      std::vector<int64_t> still, next_chosen;
      for (int64_t i : keep) {
        still.push_back(active[i]);
        next_chosen.push_back(chosen[i]);
      }
      active.swap(still);
      chosen.swap(next_chosen);
    }
    const auto rows = static_cast<int64_t>(active.size());
    auto column = torch::tensor(chosen, torch::kLong).view({rows, 1}).to(device);
    mask = torch::cat({mask, torch::ones({rows, 1}, mask.options())}, 1);
    if (options_.use_cache) {
      auto positions = mask.sum(1, /*keepdim=*/true) - 1;  // real tokens before the new one
      logits = last_logits(model_.forward_step(column, mask, positions, cache));
    } else {
      ids = torch::cat({ids, column}, 1);
      logits = last_logits(model_.hidden_states(ids, mask, position_ids_from_mask(mask)));
    }
  }
  const double total_seconds = seconds_since(start);

  for (auto& result : results) {
    if (result.stop_reason != "stop_string" && tokenizer_) {
      std::vector<int> text_ids = result.tokens;
      if (result.stop_reason == "eos") text_ids.pop_back();
      result.prediction = tokenizer_->decode(text_ids, /*skip_special=*/true);
    }
    stats_.generated_tokens += static_cast<int64_t>(result.tokens.size());
    stats_.decode_tokens += static_cast<int64_t>(result.tokens.size()) - 1;
  }
  stats_.sequences += B;
  stats_.prefill_seconds += prefill_seconds;
  stats_.decode_seconds += total_seconds - prefill_seconds;
  return results;
}

// ---------------------------------------------------------------------------------------------
std::string prediction_json_line(const GenerationResult& r) {
  nlohmann::ordered_json line;
  line["id"] = r.id;
  line["prediction"] = r.prediction;
  line["generated_tokens"] = r.tokens.size();
  line["stop_reason"] = r.stop_reason;
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

namespace fs = std::filesystem;

// The ids of OUT.tmp's complete lines, in order; the file is cut after the last one, so that a
// line half-written when the earlier run stopped is dropped.
std::vector<std::string> keep_complete_lines(const std::string& tmp, const std::set<std::string>& wanted) {
  std::ifstream in(tmp, std::ios::binary);
  if (!in) fail(tmp, "cannot read the unfinished predictions file");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string content = text.str();
  std::vector<std::string> ids;
  std::set<std::string> seen;
  size_t good_end = 0;
  for (size_t begin = 0; begin < content.size();) {
    const size_t newline = content.find('\n', begin);
    if (newline == std::string::npos) break;  // no newline: written only in part
    nlohmann::json line;
    try {
      line = nlohmann::json::parse(content.substr(begin, newline - begin));
    } catch (const nlohmann::json::exception&) {
      break;
    }
    if (!line.is_object() || !line.contains("id") || !line["id"].is_string() ||
        !line.contains("prediction") || !line.contains("stop_reason"))
      break;
    const std::string id = line["id"].get<std::string>();
    if (!wanted.count(id))
      fail(tmp, "holds a prediction for id '" + id + "', which is not in this data",
           "was it written for another --data file? delete it to start over");
    if (!seen.insert(id).second) break;
    ids.push_back(id);
    good_end = begin = newline + 1;
  }
  in.close();
  fs::resize_file(tmp, good_end);
  return ids;
}

}  // namespace

std::vector<std::vector<size_t>> prediction_batches(const std::vector<GenerationRequest>& requests,
                                                   int64_t batch_size) {
  if (batch_size < 1) fail("generate.batch_size", "must be at least 1");
  // Group by group (in order of first appearance; without groups that is the request order).
  std::map<std::string, size_t> group_rank;
  for (const auto& r : requests) group_rank.emplace(r.group, group_rank.size());
  std::vector<size_t> order(requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return group_rank.at(requests[a].group) < group_rank.at(requests[b].group);
  });
  std::vector<std::vector<size_t>> batches;
  for (size_t begin = 0, end = 0; begin < order.size(); begin = end) {
    end = begin + 1;
    while (end < order.size() && end - begin < static_cast<size_t>(batch_size) &&
           requests[order[end]].group == requests[order[begin]].group)
      ++end;
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(begin), order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return batches;
}

PredictionRunSummary write_predictions(Generator& generator, const std::vector<GenerationRequest>& requests,
                                       const std::string& out_file, const PredictionRunOptions& options) {
  if (options.batch_size < 1) fail("generate.batch_size", "must be at least 1");
  std::set<std::string> ids;
  for (const auto& r : requests)
    if (!ids.insert(r.id).second)
      fail(out_file, "record id '" + r.id + "' appears more than once",
           "predictions are matched to references (and resumed) by id, so ids must be unique");

  const std::string tmp = out_file + ".tmp";
  PredictionRunSummary summary;
  summary.total = static_cast<int64_t>(requests.size());
  std::set<std::string> done;
  if (fs::exists(tmp)) {
    if (!options.resume)
      fail(tmp, "exists: an earlier run did not finish",
           "pass --resume to continue it, or delete the file to start over");
    for (auto& id : keep_complete_lines(tmp, ids)) done.insert(id);
  }
  summary.resumed = static_cast<int64_t>(done.size());

  const fs::path parent = fs::path(out_file).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  std::ofstream out(tmp, std::ios::binary | std::ios::app);
  if (!out) fail(tmp, "cannot open for writing");

  bool grouped = false;
  std::vector<GenerationRequest> todo;
  for (const auto& r : requests) {
    grouped |= !r.group.empty();
    if (!done.count(r.id)) todo.push_back(r);
  }
  for (const auto& indices : prediction_batches(todo, options.batch_size)) {
    std::vector<GenerationRequest> batch;
    for (size_t i : indices) batch.push_back(todo[i]);
    if (options.before_batch) options.before_batch(batch.front().group);
    std::string lines;
    for (const auto& result : generator.generate(batch)) lines += prediction_json_line(result) + "\n";
    out << lines;
    out.flush();
    if (!out) fail(tmp, "writing failed", "is the disk full?");
    summary.generated += static_cast<int64_t>(batch.size());
    if (options.on_batch) options.on_batch(summary.resumed + summary.generated, summary.total);
  }
  out.close();
  if (!out) fail(tmp, "writing failed", "is the disk full?");
  if (grouped) {
    // Decoded group by group: put the lines back into the order of the requests.
    std::map<std::string, std::string> lines;
    {
      std::ifstream in(tmp, std::ios::binary);
      for (std::string line; std::getline(in, line);) lines[nlohmann::json::parse(line)["id"].get<std::string>()] = line;
    }
    std::string text;
    for (const auto& r : requests) text += lines.at(r.id) + "\n";
    write_file_atomic(tmp, text, "the predictions");
  }
  fs::rename(tmp, out_file);
  return summary;
}

}  // namespace percetrain
