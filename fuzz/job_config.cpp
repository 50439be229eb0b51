// Fuzz target: a job config (`--config job.json`), parsed, validated and written back as the
// effective config.
#include "fuzz_util.hpp"
#include "percetrain/config/job_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return percetrain::fuzz::expect_only_errors([&] {
    const percetrain::JobConfig config = percetrain::parse_job_config(text, "/fuzz/job.json");
    percetrain::job_config_to_json(config);
    percetrain::job_config_inputs(config);
  });
}
