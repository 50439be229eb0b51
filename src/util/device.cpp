// Parses device and dtype options, checking that what is asked for exists on this machine.
#include "percetrain/util/device.hpp"

#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/version.h>
#ifdef PERCETRAIN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda.h>
#endif
#ifdef PERCETRAIN_WITH_NCCL
#include <nccl.h>
#endif

#include "percetrain/util/error.hpp"

namespace percetrain {

namespace {
// How to ask for the CPU instead, in the words of the setting that asked for CUDA.
std::string cpu_instead(const std::string& where) {
  if (where.rfind("--", 0) == 0) return "use " + where + " cpu (or auto)";
  return "set " + where + " to \"cpu\" or \"auto\" (on the command line: --set " + where + "=cpu)";
}
}  // namespace

c10::Device parse_device(const std::string& spec, const std::string& where) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      fail(where, "'" + spec + "' was asked for but this build or machine has no CUDA device",
           cpu_instead(where) + ", or build against a CUDA LibTorch (bash scripts/build.sh --cuda)");
    int index = 0;
    if (spec.size() > 5) {
      const std::string digits = spec.substr(5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
        fail(where, "'" + spec + "' is not a device", "use cpu, cuda, cuda:N or auto");
      index = std::stoi(digits);
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      fail(where, "'" + spec + "' does not exist: " + std::to_string(count) + " CUDA device(s) found");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  fail(where, "'" + spec + "' is not a device", "use cpu, cuda, cuda:N or auto");
}

c10::ScalarType parse_dtype(const std::string& spec, const c10::Device& device, const std::string& where) {
  if (spec == "float32" || spec == "fp32") return c10::kFloat;
  if (spec == "bfloat16" || spec == "bf16") return c10::kBFloat16;
  if (spec == "float16" || spec == "fp16") return c10::kHalf;
  if (spec == "auto") {
    // Every GPU that training LLMs is practical on (Ampere and later) has bf16 units; CPUs
    // without them run bf16 matmuls far slower than fp32.
    return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  }
  fail(where, "'" + spec + "' is not a dtype", "use float32, bfloat16, float16 or auto");
}

std::string dtype_name(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return "float32";
    case c10::kBFloat16: return "bfloat16";
    case c10::kHalf: return "float16";
    case c10::kDouble: return "float64";
    default: return c10::toString(type);
  }
}

double peak_memory_mib(const c10::Device& device) {
#ifdef PERCETRAIN_WITH_CUDA
  if (device.is_cuda()) {
    // Index 0 of every StatArray is the aggregate over pools, in LibTorch 1.13 and 2.x alike.
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

void reset_peak_memory(const c10::Device& device) {
#ifdef PERCETRAIN_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

std::string build_summary() {
  auto text = "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
              std::to_string(TORCH_VERSION_PATCH);
#ifdef PERCETRAIN_WITH_CUDA
  text += ", CUDA " + std::to_string(CUDA_VERSION / 1000) + "." + std::to_string(CUDA_VERSION % 1000 / 10) +
          " compiled in";
#ifdef PERCETRAIN_WITH_NCCL
  text += " with NCCL " + std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + "." + std::to_string(NCCL_PATCH);
#else
  text += " without NCCL";
#endif
  text += ", " + std::to_string(torch::cuda::device_count()) + " GPU(s) visible";
#else
  text += ", CPU only (no CUDA compiled in)";
#endif
  return text;
}

}  // namespace percetrain
