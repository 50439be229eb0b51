// rho1's reference model and pir_scope word's word heads, prepared for the trainer.
#include "percetrain/train/objective_inputs.hpp"

#include <torch/torch.h>

#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

LoadedModel load_reference_model(const JobConfig& config, const Objective& objective, const c10::Device& device,
                                 c10::ScalarType dtype, const std::vector<PairedExample>& examples,
                                 const std::string& tokenizer_path) {
  if (!objective.needs_reference()) return {};
  // parse_job_config made sure that a config with rho1 names its reference model.
  LoadedModel reference = load_causal_lm(config.objective.reference_model, device, dtype);
  check_token_ids_fit(examples, tokenizer_path, -1, reference.config.vocab_size, reference.folder);
  reference.model->eval();
  for (auto& p : reference.model->parameters()) p.set_requires_grad(false);
  return reference;
}

void prepare_examples_for_objective(const JobConfig& config, const Tokenizer& tokenizer,
                                    std::vector<PairedExample>* examples) {
  if (config.objective.name == ObjectiveKind::kPerce && config.objective.pir_scope == PirScope::kWord)
    attach_word_heads(tokenizer, examples);
}

}  // namespace percetrain
