// What an objective needs besides the trained model's own log-probs: rho1's frozen reference
// model, and the word heads of pir_scope word. The trainer calls these once while it sets up.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/model/hf_folder.hpp"

namespace percetrain {

class Objective;
class Tokenizer;

// For an objective that needs one (rho1): objective.reference_model loaded in the run's device
// and dtype, frozen (eval mode, no gradients), its vocabulary checked against the examples.
// Otherwise an empty LoadedModel (model is null).
LoadedModel load_reference_model(const JobConfig& config, const Objective& objective, const c10::Device& device,
                                 c10::ScalarType dtype, const std::vector<PairedExample>& examples,
                                 const std::string& tokenizer_path);

// Fills word heads (attach_word_heads) when perce runs with objective.pir_scope word; else nothing.
void prepare_examples_for_objective(const JobConfig& config, const Tokenizer& tokenizer,
                                    std::vector<PairedExample>* examples);

}  // namespace percetrain
