// LibTorch's AdamW with its update done in one pass over each parameter on the CPU.
#pragma once

#include <torch/optim/adamw.h>

namespace percetrain {

// The same algorithm, options, state and serialization as torch::optim::AdamW (checkpoints move
// freely between the two); step() updates each fp32/fp64 CPU parameter and both moments in one
// parallel loop where LibTorch makes seven passes. Other devices, dtypes, sparse gradients and
// amsgrad take LibTorch's own step.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace percetrain
