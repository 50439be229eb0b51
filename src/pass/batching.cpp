// Collation of paired examples and the seeded, reproducible visiting order of a run.
#include "percetrain/pass/batching.hpp"

#include "percetrain/util/error.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

namespace percetrain {

int64_t scored_response_tokens(const PairedExample& e) {
  const int64_t n = e.response_length;
  return std::max<int64_t>(0, std::min({n, static_cast<int64_t>(e.personalised.size()) - 1,
                                        static_cast<int64_t>(e.counterfactual.size()) - 1}));
}

namespace {

struct Padded {
  torch::Tensor ids, mask, select;
  int64_t tokens = 0;
};

Padded pad_side(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices,
                bool personalised, int64_t pad_id) {
  const int64_t B = static_cast<int64_t>(indices.size());
  int64_t T = 2;
  for (size_t i : indices) {
    const auto& seq = personalised ? examples[i].personalised : examples[i].counterfactual;
    T = std::max<int64_t>(T, static_cast<int64_t>(seq.size()));
  }
  Padded p;
  p.ids = torch::full({B, T}, pad_id, torch::kLong);
  p.mask = torch::zeros({B, T}, torch::kLong);
  p.select = torch::zeros({B, T - 1}, torch::kBool);
  auto ids = p.ids.accessor<int64_t, 2>();
  auto mask = p.mask.accessor<int64_t, 2>();
  auto select = p.select.accessor<bool, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& e = examples[indices[b]];
    const auto& seq = personalised ? e.personalised : e.counterfactual;
    const int64_t L = static_cast<int64_t>(seq.size());
    for (int64_t t = 0; t < L; ++t) {
      ids[b][t] = seq[t];
      mask[b][t] = 1;
    }
    // Position t predicts token t + 1: the last k tokens are predicted from [L - k - 1, L - 1).
    const int64_t k = scored_response_tokens(e);
    for (int64_t t = L - k - 1; t < L - 1; ++t) select[b][t] = true;
    p.tokens += L;
  }
  return p;
}

}  // namespace

PairedBatch collate_paired(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices,
                           int64_t pad_id, const torch::Device& device, bool with_counterfactual) {
  PairedBatch batch;
  batch.examples = indices;
  auto with = pad_side(examples, indices, /*personalised=*/true, pad_id);
  batch.personalised_ids = with.ids.to(device);
  batch.personalised_mask = with.mask.to(device);
  batch.personalised_select = with.select.to(device);
  batch.personalised_tokens = with.tokens;
  if (with_counterfactual) {
    auto without = pad_side(examples, indices, /*personalised=*/false, pad_id);
    batch.counterfactual_ids = without.ids.to(device);
    batch.counterfactual_mask = without.mask.to(device);
    batch.counterfactual_select = without.select.to(device);
    batch.counterfactual_tokens = without.tokens;
  }
  std::vector<int64_t> sequence;
  for (size_t b = 0; b < indices.size(); ++b)
    sequence.insert(sequence.end(), scored_response_tokens(examples[indices[b]]), static_cast<int64_t>(b));
  batch.response_tokens = static_cast<int64_t>(sequence.size());
  batch.sequence = torch::tensor(sequence, torch::kLong).to(device);

  // Per-token extras, flattened like `sequence`: the scored tokens of an example are the last k
  // of its response.
  bool any_weights = false, any_heads = false;
  for (size_t i : indices) {
    any_weights |= !examples[i].token_weights.empty();
    any_heads |= !examples[i].word_heads.empty();
  }
  if (any_weights || any_heads) {
    std::vector<float> weights;
    std::vector<int64_t> heads;
    int64_t offset = 0;
    for (size_t i : indices) {
      const auto& e = examples[i];
      const int64_t n = e.response_length, k = scored_response_tokens(e), first = n - k;
      for (int64_t j = first; j < n; ++j) {
        if (any_weights)
          weights.push_back(e.token_weights.empty() ? std::numeric_limits<float>::quiet_NaN()
                                                    : e.token_weights[static_cast<size_t>(j)]);
        if (any_heads) {
          // A head cut off with the start of the response leaves the token its own PIR.
          const int64_t head = e.word_heads.empty() ? j : e.word_heads[static_cast<size_t>(j)];
          heads.push_back(offset + (head >= first && head <= j ? head : j) - first);
        }
      }
      offset += k;
    }
    if (any_weights) batch.data_weights = torch::tensor(weights, torch::kFloat32).to(device);
    if (any_heads) batch.word_head = torch::tensor(heads, torch::kLong).to(device);
  }
  return batch;
}

void check_token_ids_fit(const std::vector<PairedExample>& examples, const std::string& tokenizer_path,
                         int64_t tokenizer_vocab_size, int64_t model_vocab_size, const std::string& model_path) {
  int32_t largest = -1;
  for (const auto& e : examples)
    for (const auto* seq : {&e.personalised, &e.counterfactual})
      for (int32_t id : *seq) largest = std::max(largest, id);
  if (largest >= model_vocab_size)
    fail(model_path,
         "its vocabulary has " + std::to_string(model_vocab_size) + " tokens, but the tokenizer " + tokenizer_path +
             (tokenizer_vocab_size >= 0 ? " (" + std::to_string(tokenizer_vocab_size) + " tokens)" : std::string()) +
             " produced id " + std::to_string(largest),
         "use the tokenizer the model was trained with (tokenizer.path)");
}

std::vector<std::vector<size_t>> epoch_steps(size_t num_examples, int64_t batch_size, uint64_t seed,
                                             int64_t epoch, bool shuffle) {
  std::vector<size_t> order(num_examples);
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    // std::mt19937_64's output is fixed by the standard; the Fisher-Yates walk below is ours,
    // so the order is the same with every standard library.
    std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
    for (size_t i = num_examples; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  }
  std::vector<std::vector<size_t>> steps;
  for (size_t start = 0; start < num_examples; start += static_cast<size_t>(batch_size))
    steps.emplace_back(order.begin() + start, order.begin() + std::min(num_examples, start + batch_size));
  return steps;
}

std::vector<std::vector<size_t>> micro_batches(const std::vector<size_t>& step,
                                               const std::vector<PairedExample>& examples,
                                               int64_t micro_batch_size) {
  std::vector<size_t> sorted = step;
  std::stable_sort(sorted.begin(), sorted.end(), [&](size_t a, size_t b) {
    const size_t la = examples[a].personalised.size(), lb = examples[b].personalised.size();
    return la != lb ? la > lb : a < b;
  });
  std::vector<std::vector<size_t>> out;
  for (size_t start = 0; start < sorted.size(); start += static_cast<size_t>(micro_batch_size))
    out.emplace_back(sorted.begin() + start,
                     sorted.begin() + std::min(sorted.size(), start + micro_batch_size));
  return out;
}

}  // namespace percetrain
