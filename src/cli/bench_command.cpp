// `percetrain bench`: options only; the measurement is run_bench (src/bench/).
#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/bench/bench.hpp"

namespace percetrain::cli {
namespace {

Runner add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure training steps of ce and perce on a config's shapes with random tokens: ms/step, tokens/s, "
      "model FLOP/s against a matmul peak measured in the same process, peak memory, and PerCE's step-time "
      "overhead next to the theory 1 + L0 / (3 L1). Each variant runs in its own process.\n"
      "Example: percetrain bench --config configs/demo.json --with-length 512 --without-length 128");
  add_job_options(cmd, o->config, o->overrides, "model, train.micro_batch_size, batch_size, objective");
  cmd->add_option("--steps", o->steps, "Measured optimizer steps per variant")->capture_default_str()->check(at_least(1));
  cmd->add_option("--warmup", o->warmup, "Unmeasured steps first")->capture_default_str()->check(at_least(0));
  cmd->add_option("--rounds", o->rounds,
                  "Run the variants this many times, alternating, and report each one's median round "
                  "(steadier numbers on a shared machine)")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--with-length", o->with_length, "Tokens per sequence with the profile (default data.max_length)")
      ->check(at_least(1));
  cmd->add_option("--without-length", o->without_length, "Tokens per sequence without it (default a quarter)")
      ->check(at_least(1));
  cmd->add_option("--response-length", o->response_length, "Response tokens (default half the shorter one)")
      ->check(at_least(1));
  cmd->add_option("--random-config", o->random_config,
                  "A Hugging Face config.json: bench that shape with random weights (nothing written) instead "
                  "of model.path")
      ->check(CLI::ExistingFile);
  cmd->add_option("--variants", o->variants, "Comma-separated: ce, perce, perce+checkpointing, perce+unchunked")
      ->capture_default_str();
  cmd->add_option("--variant", o->variant)->group("");  // internal: child process
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  cmd->add_flag("--collectives", o->collectives,
                "Measure the ranks' collectives (all_reduce, reduce_scatter, all_gather) and the gradient reducer's "
                "overlap with backward instead; launch it with torchrun, e.g. torchrun --no_python --standalone "
                "--nproc_per_node 2 -r 1 -t 1 percetrain bench --config job.json --collectives");
  cmd->add_option("--profile", o->profile,
                  "Record the measured steps with LibTorch's profiler: writes PREFIX.VARIANT.json (open in "
                  "chrome://tracing or ui.perfetto.dev) and prints each variant's operators by self time "
                  "(timings under the profiler are a little slower)");
  return [o]() {
    const JobConfig config = load_job_config(o->config, o->overrides);
    return o->collectives ? run_collectives_bench(*o, config) : run_bench(*o, config);
  };
}

const CommandRegistration bench_registration(add_bench_command);

}  // namespace
}  // namespace percetrain::cli
