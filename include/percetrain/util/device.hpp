// Device and dtype selection from user-facing strings ("auto", "cuda:1", "bfloat16", ...).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace percetrain {

// cpu | cuda | cuda:N | auto (the first CUDA device when there is one, else the CPU). `where`
// names the option or key the spec came from, so that the hint names the setting to change: a
// job's device is its config's model.device; --device belongs to logprobs and generate --benchmark.
c10::Device parse_device(const std::string& spec, const std::string& where = "model.device");

// float32 | bfloat16 | float16 | auto (float32 on the CPU; bfloat16 on CUDA). `where` names the option or key in errors.
c10::ScalarType parse_dtype(const std::string& spec, const c10::Device& device,
                            const std::string& where = "dtype");

// "float32", "bfloat16", "float16": the names config.json uses for torch_dtype.
std::string dtype_name(c10::ScalarType type);

// Peak memory in MiB: on CUDA the caching allocator's peak of allocated bytes on that device since
// the last reset_peak_memory (what `torch.cuda.max_memory_allocated` reports); on the CPU the
// process's resident-set high-water mark, which cannot be reset. Builds without CUDA support
// report the latter.
double peak_memory_mib(const c10::Device& device);
void reset_peak_memory(const c10::Device& device);

// What this binary was built against and what it sees, for --version: the LibTorch version,
// whether CUDA (and NCCL) were compiled in and with which versions, and the visible GPUs.
std::string build_summary();

}  // namespace percetrain
