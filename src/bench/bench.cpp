// `percetrain bench`: step time, tokens/s, model-FLOP utilisation and peak memory of ce vs perce
// (and gradient checkpointing, and an unchunked loss) on a config's shapes, through the trainer's
// own TrainStep. Each variant runs in a child process of its own so that its peak memory is its own.
#include "percetrain/bench/bench.hpp"

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "percetrain/config/job_config.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/phases.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"

extern char** environ;

namespace percetrain {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Random paired examples of the bench shapes: the personalised sequence is L1 tokens, the
// counterfactual L0, both ending with the same R response tokens.
std::vector<PairedExample> random_examples(int64_t count, int64_t L1, int64_t L0, int64_t R, int64_t vocab) {
  std::mt19937_64 rng(1234);
  std::vector<PairedExample> out;
  for (int64_t i = 0; i < count; ++i) {
    PairedExample e;
    e.id = std::to_string(i);
    std::vector<int32_t> response(R);
    for (auto& t : response) t = 3 + static_cast<int32_t>(rng() % (vocab - 3));
    for (int64_t k = 0; k < L1 - R; ++k) e.personalised.push_back(3 + static_cast<int32_t>(rng() % (vocab - 3)));
    for (int64_t k = 0; k < L0 - R; ++k) e.counterfactual.push_back(3 + static_cast<int32_t>(rng() % (vocab - 3)));
    e.personalised.insert(e.personalised.end(), response.begin(), response.end());
    e.counterfactual.insert(e.counterfactual.end(), response.begin(), response.end());
    e.response_length = static_cast<int32_t>(R);
    out.push_back(std::move(e));
  }
  return out;
}

// Matmul FLOPs of a forward over one sequence of T tokens of which R are scored.
double forward_flops(const ModelConfig& c, double T, double R) {
  const double C = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;
  const double per_layer_params = C * H * D + 2 * C * KV * D + H * D * C + 3 * C * c.intermediate_size;
  const double attention = 2 * 2 * H * D * T * T;  // QK^T and PV over the full (masked) square
  return c.num_hidden_layers * (2 * per_layer_params * T + attention) + 2 * c.vocab_size * C * R;
}

// The part of a backward pass that computes weight gradients (as much as the forward's products
// with weights): what a frozen base skips.
double weight_grad_flops(const ModelConfig& c, double T, double R) {
  const double C = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;
  const double per_layer_params = C * H * D + 2 * C * KV * D + H * D * C + 3 * C * c.intermediate_size;
  return c.num_hidden_layers * 2 * per_layer_params * T + 2 * c.vocab_size * C * R;
}

// Bytes of every tensor the optimizer keeps per parameter (AdamW: exp_avg, exp_avg_sq).
double optimizer_state_bytes(torch::optim::Optimizer& optimizer) {
  double bytes = 0;
  for (const auto& [key, state] : optimizer.state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    for (const auto& t : {s.exp_avg(), s.exp_avg_sq(), s.max_exp_avg_sq()})
      if (t.defined()) bytes += static_cast<double>(t.numel() * t.element_size());
  }
  return bytes;
}

double measure_matmul_peak(const torch::Device& device, c10::ScalarType dtype) {
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  torch::mm(a, b);
  synchronize(device);
  const int reps = 5;
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) torch::mm(a, b);
  synchronize(device);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return 2.0 * n * n * n * reps / seconds;
}

std::string profile_path(const std::string& prefix, std::string variant) {
  std::replace(variant.begin(), variant.end(), '+', '-');
  return prefix + "." + variant + ".json";
}

// Self time per operator in a chrome trace written by LibTorch's legacy profiler: an event's
// duration minus that of the events nested directly inside it on the same thread.
void print_profile_summary(const std::string& path, int64_t steps) {
  std::ifstream in(path);
  if (!in) fail(path, "the profiler wrote no trace");
  json trace = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (trace.is_object() && trace.contains("traceEvents")) trace = trace["traceEvents"];
  if (!trace.is_array()) fail(path, "not a chrome trace (expected a JSON array of events)");
  struct Event {
    double start, end;
    std::string name;
  };
  std::map<std::string, std::vector<Event>> by_thread;
  for (const auto& e : trace)
    if (e.value("ph", "") == "X")
      by_thread[e.at("tid").dump()].push_back(
          {e.at("ts").get<double>(), e.at("ts").get<double>() + e.at("dur").get<double>(), e.value("name", "?")});
  struct Total {
    double self_us = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Total> totals;
  double all_us = 0;
  for (auto& [tid, events] : by_thread) {
    std::sort(events.begin(), events.end(),
              [](const Event& a, const Event& b) { return a.start != b.start ? a.start < b.start : a.end > b.end; });
    std::vector<std::pair<const Event*, double>> open;  // event, time of its direct children
    auto close_until = [&](double t) {
      while (!open.empty() && open.back().first->end <= t) {
        auto [e, children] = open.back();
        open.pop_back();
        const double self = std::max(0.0, e->end - e->start - children);
        totals[e->name].self_us += self;
        totals[e->name].calls += 1;
        all_us += self;
        if (!open.empty()) open.back().second += e->end - e->start;
      }
    };
    for (const auto& e : events) {
      close_until(e.start);
      open.emplace_back(&e, 0.0);
    }
    close_until(std::numeric_limits<double>::infinity());
  }
  std::vector<std::pair<std::string, Total>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_us > b.second.self_us; });
  std::fprintf(stderr, "%s: self time per step by operator (all threads)\n", path.c_str());
  std::fprintf(stderr, "  %-44s %10s %7s %8s\n", "operator", "ms/step", "share", "calls");
  for (size_t i = 0; i < rows.size() && i < 20; ++i)
    std::fprintf(stderr, "  %-44s %10.1f %6.1f%% %8lld\n", rows[i].first.substr(0, 44).c_str(),
                 rows[i].second.self_us / 1000.0 / steps, 100.0 * rows[i].second.self_us / all_us,
                 static_cast<long long>(rows[i].second.calls / steps));
}

json run_variant(const BenchOptions& o, const JobConfig& config) {
  const std::string& v = o.variant;
  const bool perce = v.rfind("perce", 0) == 0;
  // The variant's config: its objective (random examples have no words) and checkpointing.
  JobConfig run_config = config;
  run_config.objective.name = perce ? ObjectiveKind::kPerce : ObjectiveKind::kCe;
  run_config.objective.pir_scope = PirScope::kToken;
  run_config.train.gradient_checkpointing |= v.find("checkpointing") != std::string::npos;
  // The trainer's own phases: placement, the model for training (adapters on a frozen base for
  // a LoRA config), the optimizer, the step. bench writes no model: random weights of the
  // config's shape where there is no folder.
  Placement place = place_run(run_config);
  const auto device = place.device;
  LoadedModel weights;
  std::error_code ec;
  if (!o.random_config.empty()) {
    weights = random_causal_lm(o.random_config, device, place.dtype, 0);
  } else if (!config.model.init_arch.empty() && !std::filesystem::exists(config.model.path, ec)) {
    weights = random_preset_lm(config.model, tokenizer_path(config), device, place.dtype);
  } else {
    prepare_model_folder(config.model, tokenizer_path(config), false);
    weights = load_causal_lm(config.model.path, device, place.dtype);
  }
  ModelForTraining m = prepare_model_for_training(std::move(weights), run_config, place, {}, tokenizer_path(config));
  LoadedModel& loaded = m.loaded;
  auto& model = *loaded.model;
  const bool lora = config.lora.enabled();
  if (lora) attach_lora(model, config.lora, config.train.seed);  // the base frozen, the adapters train

  const int64_t L1 = o.with_length, L0 = o.without_length, R = o.response_length;
  const int64_t B = config.train.micro_batch_size;
  const int64_t accumulation = config.train.batch_size / config.train.micro_batch_size;
  // One optimizer step of the trainer itself over batch_size random examples of the bench shapes.
  const auto examples = random_examples(config.train.batch_size, L1, L0, R, loaded.config.vocab_size);
  std::vector<size_t> indices(examples.size());
  std::iota(indices.begin(), indices.end(), 0);
  Optimization optimization = build_optimization(model, config.train, *place.comm);
  const MasterWeights& masters = *optimization.masters;
  StepSettings settings = StepSettings::from(run_config, 0, device);
  if (v.find("unchunked") != std::string::npos) settings.chunk_tokens = B * R;
  TrainStep train_step(model, *m.objective, *optimization.optimizer, *optimization.sync, settings, place.comm.get());
  const double lr = config.train.lr;
  int64_t steps = 0;
  auto step = [&] { train_step.run(examples, indices, lr, steps++); };
  reset_peak_memory(device);
  for (int64_t i = 0; i < o.warmup; ++i) step();
  synchronize(device);
  double seconds = 0;
  {
    std::optional<torch::autograd::profiler::RecordProfile> profiler;
    if (!o.profile.empty()) profiler.emplace(profile_path(o.profile, v));
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < o.steps; ++i) step();
    synchronize(device);
    seconds = std::chrono::duration<double>(Clock::now() - t0).count() / o.steps;
  }  // the profiler writes its trace here, outside the measured time

  // Model states after the measured steps, by kind (activations come on top).
  double parameters = 0, trainable = 0, weight_bytes = 0, gradient_bytes = 0, master_bytes = 0;
  for (const auto& p : model.parameters()) weight_bytes += static_cast<double>(p.numel() * p.element_size());
  for (const auto& [name, t] : lora_parameters(model)) weight_bytes += static_cast<double>(t.numel() * t.element_size());
  for (const auto& p : model.parameters()) parameters += static_cast<double>(p.numel());
  for (const auto& [name, t] : trainable_parameters(model)) {
    trainable += static_cast<double>(t.numel());
    gradient_bytes += static_cast<double>(t.numel() * t.element_size());  // one gradient per trainable weight
  }
  if (masters.active())
    for (const auto& t : masters.parameters()) master_bytes += static_cast<double>(t.numel() * t.element_size());
  const double optimizer_bytes = optimizer_state_bytes(*optimization.optimizer);
  const double tokens = static_cast<double>(B * accumulation * (L1 + (perce ? L0 : 0)));
  double flops = 3 * forward_flops(loaded.config, L1, R);  // forward + backward (2x)
  if (lora) flops -= weight_grad_flops(loaded.config, L1, R);  // no weight gradients of the frozen base
  if (v.find("checkpointing") != std::string::npos) flops += forward_flops(loaded.config, L1, 0);
  flops += 2 * 2 * loaded.config.vocab_size * loaded.config.hidden_size * R;  // loss recompute in backward
  if (perce) flops += forward_flops(loaded.config, L0, R);
  flops *= static_cast<double>(B * accumulation);
  return {{"variant", v},
          {"model", describe_loaded_model(loaded)},
          {"ms_per_step", seconds * 1000},
          {"tokens_per_s", tokens / seconds},
          {"model_flops_per_s", flops / seconds},
          {"matmul_peak_flops_per_s", measure_matmul_peak(device, place.dtype)},
          {"device", device.str()},
          {"dtype", dtype_name(place.dtype)},
          {"master_weights", masters.active()},
          {"lora", lora ? "r" + std::to_string(config.lora.rank) : std::string("-")},
          {"parameters", parameters},
          {"trainable_parameters", trainable},
          {"weight_bytes", weight_bytes},
          {"gradient_bytes", gradient_bytes},
          {"master_bytes", master_bytes},
          {"optimizer_state_bytes", optimizer_bytes},
          {"peak_device_mib", device.is_cuda() ? peak_memory_mib(device) : 0.0}};
}

// Runs one variant in a child process (this executable again) and adds its peak memory.
json run_child(const BenchOptions& o, const std::string& variant) {
  std::vector<std::string> args = {std::filesystem::read_symlink("/proc/self/exe").string(), "bench",
                                   "--config", o.config, "--variant", variant,
                                   "--steps", std::to_string(o.steps), "--warmup", std::to_string(o.warmup),
                                   "--with-length", std::to_string(o.with_length),
                                   "--without-length", std::to_string(o.without_length),
                                   "--response-length", std::to_string(o.response_length)};
  for (const auto& [flag, value] : {std::pair{"--profile", o.profile}, std::pair{"--random-config", o.random_config}})
    if (!value.empty()) {
      args.push_back(flag);
      args.push_back(value);
    }
  for (const auto& s : o.overrides) {
    args.push_back("--set");
    args.push_back(s);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe(fds) != 0) fail("bench", "cannot create a pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0)
    fail("bench", "cannot start a child process for variant " + variant);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  std::string output;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) output.append(buf, n);
  close(fds[0]);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("bench", "variant " + variant + " failed (see the error above)");
  json result = json::parse(output.substr(output.rfind("{\"")));
  result["peak_rss_mib"] = static_cast<double>(usage.ru_maxrss) / 1024.0;
  if (!o.profile.empty()) {
    result["profile"] = profile_path(o.profile, variant);
    print_profile_summary(result["profile"], o.steps);
  }
  return result;
}

}  // namespace

std::string bench_rounds_report(const std::vector<std::string>& variants,
                                const std::vector<std::vector<double>>& rounds_ms, double theory) {
  auto median_of = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];  // the same (upper) median the table shows
  };
  auto fixed = [](double v, const char* spec) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), spec, v);
    return std::string(buf);
  };
  std::string out;
  size_t rounds = 0, ce = variants.size(), perce = variants.size();
  double worst = 0;
  std::string worst_text;
  for (size_t i = 0; i < variants.size() && i < rounds_ms.size(); ++i) {
    if (variants[i] == "ce") ce = i;
    if (variants[i] == "perce") perce = i;
    const auto& r = rounds_ms[i];
    if (r.empty()) continue;
    rounds = std::max(rounds, r.size());
    const double lo = *std::min_element(r.begin(), r.end()), hi = *std::max_element(r.begin(), r.end());
    const double median = median_of(r), spread = median > 0 ? (hi - lo) / median : 0.0;
    if (r.size() > 1) {
      if (out.empty()) out += "rounds (ms/step, min / median / max, spread = (max - min) / median):\n";
      char line[160];
      std::snprintf(line, sizeof(line), "  %-22s %10.1f / %.1f / %.1f  spread %.0f%%\n", variants[i].c_str(), lo,
                    median, hi, 100 * spread);
      out += line;
    }
    if (spread > worst) {
      worst = spread;
      worst_text = variants[i] + ": " + fixed(lo, "%.1f") + " to " + fixed(hi, "%.1f") + " ms/step";
    }
  }
  if (ce < variants.size() && perce < variants.size() && ce < rounds_ms.size() && perce < rounds_ms.size() &&
      !rounds_ms[ce].empty() && !rounds_ms[perce].empty() && median_of(rounds_ms[ce]) > 0) {
    out += "PerCE / CE step time: " + fixed(median_of(rounds_ms[perce]) / median_of(rounds_ms[ce]), "%.3f") +
           " (theory 1 + L0/(3 L1) = " + fixed(theory, "%.3f") + ")";
    const size_t n = std::min(rounds_ms[ce].size(), rounds_ms[perce].size());
    if (n > 1) {
      out += "; per round:";
      for (size_t k = 0; k < n; ++k)
        out += " " + (rounds_ms[ce][k] > 0 ? fixed(rounds_ms[perce][k] / rounds_ms[ce][k], "%.3f") : "n/a");
    }
    out += "\n";
  }
  if (rounds == 1) {
    out += "note: one round measures no spread; on a shared machine use --rounds 3 or more and compare the rounds\n";
  } else if (worst > kBenchSpreadWarning) {
    out += "warning: the rounds differ by up to " + fixed(100 * worst, "%.0f") + "% (" + worst_text +
           "): the machine was busy, so these timings and the ratio are unreliable; rerun with more rounds (--rounds " +
           std::to_string(std::max<size_t>(5, rounds + 2)) + ") when it is quieter\n";
  }
  return out;
}

int run_bench(BenchOptions& o, const JobConfig& config) {
  if (o.with_length <= 0) o.with_length = config.data.max_length;
  if (o.without_length <= 0) o.without_length = std::max<int64_t>(2, o.with_length / 4);
  if (o.response_length <= 0) o.response_length = std::max<int64_t>(1, std::min(o.with_length, o.without_length) / 2);
  if (o.response_length >= std::min(o.with_length, o.without_length))
    fail("--response-length", "must be shorter than both sequences");
  if (!o.variant.empty()) {
    std::cout << run_variant(o, config).dump() << "\n";
    return 0;
  }
  std::vector<std::string> variants;
  std::stringstream list(o.variants);
  for (std::string v; std::getline(list, v, ',');) {
    if (v != "ce" && v != "perce" && v != "perce+checkpointing" && v != "perce+unchunked")
      fail("--variants", "unknown variant '" + v + "'", "use ce, perce, perce+checkpointing, perce+unchunked");
    variants.push_back(v);
  }
  if (o.rounds < 1) fail("--rounds", "must be at least 1");
  // Rounds alternate the variants, so that a shared machine's slow spells hit them alike; each
  // variant reports its median round (by ms/step).
  std::vector<std::vector<json>> runs(variants.size());
  for (int64_t round = 0; round < o.rounds; ++round)
    for (size_t i = 0; i < variants.size(); ++i) {
      if (!o.json)
        std::cerr << "bench: running " << variants[i] << " (round " << round + 1 << " of " << o.rounds << ")...\n";
      runs[i].push_back(run_child(o, variants[i]));
    }
  std::vector<std::vector<double>> rounds_ms;  // in the order the rounds ran, for the per-round ratio
  for (const auto& r : runs) {
    rounds_ms.emplace_back();
    for (const auto& run : r) rounds_ms.back().push_back(run["ms_per_step"].get<double>());
  }
  json results = json::array();
  for (auto& r : runs) {
    std::sort(r.begin(), r.end(), [](const json& a, const json& b) {
      return a["ms_per_step"].get<double>() < b["ms_per_step"].get<double>();
    });
    json median = r[r.size() / 2];
    median["rounds_ms_per_step"] = json::array();
    for (const auto& run : r) median["rounds_ms_per_step"].push_back(run["ms_per_step"]);
    results.push_back(median);
  }
  const double theory = 1.0 + static_cast<double>(o.without_length) / (3.0 * o.with_length);
  double ce_ms = 0, perce_ms = 0;
  for (const auto& r : results) {
    if (r["variant"] == "ce") ce_ms = r["ms_per_step"];
    if (r["variant"] == "perce") perce_ms = r["ms_per_step"];
  }
  json report = {{"config", o.config},
                 {"with_length", o.with_length},
                 {"without_length", o.without_length},
                 {"response_length", o.response_length},
                 {"micro_batch_size", config.train.micro_batch_size},
                 {"batch_size", config.train.batch_size},
                 {"results", results},
                 {"theoretical_perce_over_ce", theory}};
  if (ce_ms > 0 && perce_ms > 0) report["perce_over_ce"] = perce_ms / ce_ms;
  if (o.json) {
    std::cout << report.dump(2) << "\n";
    return 0;
  }
  if (!results.empty()) std::printf("%s\n", results[0].value("model", "").c_str());
  std::printf("shapes: L1=%lld (with profile), L0=%lld (without), R=%lld response tokens, batch %lld (micro %lld)\n",
              (long long)o.with_length, (long long)o.without_length, (long long)o.response_length,
              (long long)config.train.batch_size, (long long)config.train.micro_batch_size);
  const bool on_cuda = !results.empty() && results[0]["device"].get<std::string>().rfind("cuda", 0) == 0;
  std::printf("%-22s %10s %12s %12s %7s %10s %6s\n", "variant", "ms/step", "tokens/s", "GFLOP/s", "MFU",
              on_cuda ? "GPU MiB" : "peak MiB", "lora");
  for (const auto& r : results) {
    const double achieved = r["model_flops_per_s"], peak = r["matmul_peak_flops_per_s"];
    std::printf("%-22s %10.1f %12.0f %12.2f %6.1f%% %10.0f %6s\n", r["variant"].get<std::string>().c_str(),
                r["ms_per_step"].get<double>(), r["tokens_per_s"].get<double>(), achieved / 1e9,
                100.0 * achieved / peak, r[on_cuda ? "peak_device_mib" : "peak_rss_mib"].get<double>(),
                r.value("lora", "-").c_str());
  }
  if (!results.empty() && results[0].contains("optimizer_state_bytes")) {
    // Model states per parameter of the model (activations and the allocator's slack come on top).
    const json& r = results[0];
    const double n = r["parameters"], mib = 1024.0 * 1024.0;
    const double w = r["weight_bytes"], g = r["gradient_bytes"], m = r["master_bytes"], o = r["optimizer_state_bytes"];
    std::printf("model states: %.0f parameters, %.0f trainable (%.3f%%); weights %.1f MiB, gradients %.1f MiB, fp32 "
                "masters %.1f MiB, optimizer state %.1f MiB = %.2f bytes per parameter\n",
                n, r["trainable_parameters"].get<double>(), 100.0 * r["trainable_parameters"].get<double>() / n, w / mib,
                g / mib, m / mib, o / mib, (w + g + m + o) / n);
  }
  if (!results.empty())
    std::printf("matmul peak: %.2f GFLOP/s (%s, %s)\n", results[0]["matmul_peak_flops_per_s"].get<double>() / 1e9,
                results[0]["device"].get<std::string>().c_str(), results[0]["dtype"].get<std::string>().c_str());
  std::printf("%s", bench_rounds_report(variants, rounds_ms, theory).c_str());
  std::printf("%s; MFU = model FLOP/s / matmul peak\n",
              on_cuda ? "GPU MiB is the CUDA caching allocator's peak of allocated memory during the measured steps"
                      : "peak MiB is the process's maximum resident set");
  return 0;
}

}  // namespace percetrain
