// Batch scoring: score_micro_batch under inference mode over a fixed plan, streamed to OUT.tmp in
// file order, resumable, then the summary and the HTML report from the finished file.
#include "percetrain/score/scorer.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "percetrain/data/pairing.hpp"
#include "percetrain/dist/record_shards.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/pass/paired_pass.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"
#include "percetrain/util/interrupt.hpp"

namespace fs = std::filesystem;

namespace percetrain {

std::string summary_path_for(const std::string& out) {
  const std::string suffix = ".jsonl";
  if (out.size() > suffix.size() && out.compare(out.size() - suffix.size(), suffix.size(), suffix) == 0)
    return out.substr(0, out.size() - suffix.size()) + ".summary.json";
  return out + ".summary.json";
}

std::vector<std::vector<size_t>> scoring_plan(const std::vector<PairedExample>& examples, int64_t micro_batch_size,
                                              int64_t window, const std::vector<std::string>& groups) {
  if (!groups.empty() && groups.size() != examples.size()) fail("score", "internal: one group per example is needed");
  // The examples of each group in file order, the groups in order of first appearance.
  std::vector<std::vector<size_t>> members;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string key = groups.empty() ? std::string() : groups[i];
    auto [it, added] = index.emplace(key, members.size());
    if (added) members.emplace_back();
    members[it->second].push_back(i);
  }
  std::vector<std::vector<size_t>> plan;
  const size_t w = static_cast<size_t>(std::max<int64_t>(1, window));
  for (const auto& member : members)
    for (size_t start = 0; start < member.size(); start += w) {
      std::vector<size_t> group(member.begin() + start, member.begin() + std::min(member.size(), start + w));
      for (auto& micro : micro_batches(group, examples, std::max<int64_t>(1, micro_batch_size)))
        plan.push_back(std::move(micro));
    }
  return plan;
}

namespace {

ObjectiveSection perce_section(const ObjectiveSection& config) {
  ObjectiveSection s = config;
  s.name = ObjectiveKind::kPerce;  // the weights PerCE would give, whatever the config trains with
  s.pir_scope = PirScope::kToken;   // each token's own PIR; the summary's word AUROC covers words
  return s;
}

}  // namespace

std::vector<RecordScore> score_micro_batch(CausalLMImpl& model, const Tokenizer& tokenizer, const JobConfig& config,
                                           const std::vector<PairedExample>& examples,
                                           const std::vector<PairDetail>* details, const std::vector<size_t>& indices,
                                           int64_t* processed_tokens) {
  torch::InferenceMode inference;
  const auto objective = make_objective(perce_section(config.objective));
  const int64_t pad_id = tokenizer.pad_id() >= 0 ? tokenizer.pad_id() : 0;
  const auto device = model.output_weight().device();
  const PairedBatch batch = collate_paired(examples, indices, pad_id, device, true);
  std::vector<torch::Tensor> columns;
  if (batch.response_tokens > 0) {
    const PairedPass pass = run_paired_pass(model, *objective, batch, config.objective.chunk_tokens, true);
    columns = {pass.tokens.logp_personalised, pass.tokens.logp_counterfactual, pass.terms.pir, pass.terms.weights};
  }
  if (processed_tokens) *processed_tokens += batch.personalised_tokens + batch.counterfactual_tokens;
  // One transfer for everything: [4, N] float32 on the CPU.
  torch::Tensor table = columns.empty() ? torch::zeros({4, 0})
                                        : torch::stack(columns).to(torch::kCPU, torch::kFloat32).contiguous();
  const float* values = table.data_ptr<float>();
  const int64_t N = table.size(1);

  std::vector<RecordScore> out;
  int64_t offset = 0;  // rows are contiguous in the flattened order, in the order of `indices`
  for (size_t row = 0; row < indices.size(); ++row) {
    const PairedExample& e = examples[indices[row]];
    RecordScore r;
    r.id = e.id;
    r.output = e.response_text;
    r.personal_spans = e.personal_spans;
    if (details) {
      for (const auto& item : (*details)[indices[row]].used)
        r.profile.push_back({item.index, item.score, item.text, item.truncated});
    }
    const auto spans = response_token_spans(tokenizer, e);
    const int64_t n = e.response_length, scored = scored_response_tokens(e);
    for (int64_t k = 0; k < scored; ++k) {
      const int64_t j = n - scored + k;  // position in the response
      TokenScore t;
      t.id = e.personalised[e.personalised.size() - static_cast<size_t>(n - j)];
      t.piece = tokenizer.id_to_piece(t.id);
      t.start = spans[static_cast<size_t>(j)].first;
      t.end = spans[static_cast<size_t>(j)].second;
      const int64_t c = offset + k;
      if (c >= N) fail("score", "internal: fewer scored tokens than the batch selects");
      t.logp_with = values[c];
      t.logp_without = values[N + c];
      t.pir = values[2 * N + c];
      t.weight = values[3 * N + c];
      r.tokens.push_back(std::move(t));
    }
    offset += scored;
    out.push_back(std::move(r));
  }
  if (offset != N) fail("score", "internal: the batch selects a different number of tokens than the examples have");
  return out;
}

namespace {

std::string format_eta(double seconds) {
  if (!(seconds >= 0)) return "?";
  char buf[32];
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, s / 60 % 60);
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  return buf;
}

std::string format_rate(double tokens_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f tok/s", tokens_per_s);
  return buf;
}

}  // namespace

ScoreResult score_examples(CausalLMImpl& model, const Tokenizer& tokenizer, const JobConfig& config,
                           const std::vector<PairedExample>& examples, const std::vector<PairDetail>& details,
                           const ScoreOptions& options, AdapterLibrary* adapters, Communicator* comm) {
  if (options.out.empty()) fail("--out", "is required");
  if (details.size() != examples.size()) fail("score", "internal: one PairDetail per example is needed");
  std::unique_ptr<Communicator> single;
  if (comm == nullptr) {
    single = make_single_rank_communicator();
    comm = single.get();
  }
  const bool sharded = comm->distributed();
  const int rank = comm->rank(), world = comm->world_size();
  if (sharded && options.stop_after_records > 0) fail("score", "internal: stop_after_records is for one rank");
  const bool talk = options.progress && comm->is_root();  // lines about the whole job: rank 0's
  const std::string who = sharded ? "rank " + std::to_string(rank) + ": " : "";
  model.eval();
  ScoreResult result;
  result.rank = rank;
  result.world_size = world;
  // Per-user adapters: each record's group is its user when the user has an adapter, else "" (the base).
  std::vector<std::string> groups;
  if (adapters) {
    auto assignment = adapters->assign(example_users(examples, "score"));
    groups = std::move(assignment.groups);
    result.records_without_adapter = assignment.records_without;
    if (talk) std::fprintf(stderr, "%s\n", assignment.summary.c_str());
  }
  const fs::path out_path(options.out);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  check_part_layout(options.out, world, options.resume);

  const int64_t micro = options.micro_batch_size > 0 ? options.micro_batch_size : 2 * config.train.micro_batch_size;
  const auto plan = scoring_plan(examples, micro, std::max<int64_t>(options.window, micro), groups);
  // This rank's share: the whole plan on one rank; on several, a contiguous stretch of its
  // micro-batches of about equal tokens (the one-rank micro-batches, so every record rounds as it
  // does there; with adapters a stretch also holds few users).
  std::vector<int> owner(examples.size(), 0);
  size_t first_unit = 0, end_unit = plan.size();
  if (sharded) {
    std::vector<int64_t> costs;
    for (const auto& micro_batch : plan) {
      int64_t tokens = 0;
      for (size_t i : micro_batch)
        tokens += static_cast<int64_t>(examples[i].personalised.size() + examples[i].counterfactual.size());
      costs.push_back(tokens);
    }
    const auto bounds = split_by_cost(costs, world);
    for (int r = 0; r < world; ++r)
      for (size_t u = bounds[static_cast<size_t>(r)]; u < bounds[static_cast<size_t>(r) + 1]; ++u)
        for (size_t i : plan[u]) owner[i] = r;
    first_unit = bounds[static_cast<size_t>(rank)];
    end_unit = bounds[static_cast<size_t>(rank) + 1];
  }
  std::vector<size_t> mine;  // this rank's records in file order: the order of its file
  std::vector<size_t> position(examples.size(), examples.size());
  for (size_t i = 0; i < examples.size(); ++i)
    if (owner[i] == rank) {
      position[i] = mine.size();
      mine.push_back(i);
    }
  // One rank streams to OUT.tmp and renames it to OUT; several stream to their parts.
  const std::string target = sharded ? part_path(options.out, rank, world) : options.out;
  const fs::path final_path(target), tmp_path(target + ".tmp");

  // ---- what an interrupted run left -----------------------------------------------------------
  size_t done = 0;
  bool complete = false;  // the part was finished by a run that stopped before the merge
  if (options.resume && sharded && fs::exists(final_path)) {
    complete = true;  // the merge checks its ids
    done = mine.size();
    if (options.progress)
      std::fprintf(stderr, "%sresuming: %s is complete (%zu records)\n", who.c_str(), final_path.c_str(), done);
  } else if (options.resume && fs::exists(tmp_path)) {
    const PartialOutput partial = read_partial_output(tmp_path.string());
    if (partial.ids.size() > mine.size())
      fail(tmp_path.string(), "holds more records than the data has" + std::string(sharded ? " for this rank" : ""),
           "delete it, or check --data and --limit");
    for (size_t k = 0; k < partial.ids.size(); ++k)
      if (partial.ids[k] != examples[mine[k]].id)
        fail(tmp_path.string() + ":" + std::to_string(k + 1),
             "holds record \"" + partial.ids[k] + "\" where the data has \"" + examples[mine[k]].id + "\"",
             "it was written from other data or options; delete it to start over");
    fs::resize_file(tmp_path, partial.complete_bytes);  // drop a partial last line
    done = partial.ids.size();
    if (options.progress)
      std::fprintf(stderr, "%sresuming: %zu of %zu records already in %s\n", who.c_str(), done, mine.size(),
                   tmp_path.c_str());
  } else if (options.resume && options.progress) {
    std::fprintf(stderr, "%sresume: %s does not exist; starting from the first record\n", who.c_str(),
                 tmp_path.c_str());
  }

  result.out = options.out;
  std::ofstream tmp;
  if (!complete) {
    tmp.open(tmp_path, std::ios::binary | (done > 0 ? std::ios::app : std::ios::trunc));
    if (!tmp) fail(tmp_path.string(), "cannot open for writing");
  }

  // Records finish out of order within a window (sorted by length); they are written in file
  // order as soon as every earlier record is ready.
  std::vector<std::string> ready(mine.size());
  std::vector<bool> have(mine.size(), false);
  size_t next_to_write = done;
  const bool live = options.progress && ::isatty(2);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  double last_progress = -1.0;
  bool stopped = false;
  int signal = 0;
  ShardSync sync(*comm);

  for (size_t u = first_unit; u < end_unit && !complete; ++u) {
    const auto& micro_batch = plan[u];
    bool needed = false;
    for (size_t i : micro_batch) needed |= position[i] >= done;
    if (!needed) continue;  // every record already in the file
    int64_t processed = 0;
    if (adapters) adapters->use(model, groups[micro_batch.front()]);
    auto scores = score_micro_batch(model, tokenizer, config, examples, &details, micro_batch, &processed);
    // NaN log-probs make every statistic and the weights meaningless (and used to hang the AUROC).
    for (size_t k = 0; k < micro_batch.size(); ++k)
      for (const auto& t : scores[k].tokens)
        if (!std::isfinite(t.logp_with) || !std::isfinite(t.logp_without)) {
          const std::string& group = adapters ? groups[micro_batch.front()] : std::string();
          fail("score: record " + quote_name(scores[k].id),
               "non-finite log-probabilities from model " + config.model.path +
                   (options.adapter.empty() ? "" : " + adapter " + options.adapter) +
                   (group.empty() ? "" : " + adapter " + (fs::path(adapters->dir()) / group).string()),
               "its weights or lora_alpha give NaN or infinity; check them, or load a half-precision model in float32");
        }
    result.processed_tokens += processed;
    for (size_t k = 0; k < micro_batch.size(); ++k) {
      const size_t p = position[micro_batch[k]];
      if (p < done) continue;  // scored again only because its micro-batch was unfinished
      ready[p] = record_to_json_line(scores[k], options.top_tokens) + "\n";
      have[p] = true;
      result.response_tokens += static_cast<int64_t>(scores[k].tokens.size());
      ++result.scored_now;
    }
    while (next_to_write < mine.size() && have[next_to_write]) {
      tmp << ready[next_to_write];
      std::string().swap(ready[next_to_write]);
      ++next_to_write;
      if (options.stop_after_records > 0 && static_cast<int64_t>(next_to_write) >= options.stop_after_records &&
          next_to_write < mine.size()) {
        stopped = true;
        break;
      }
    }
    tmp.flush();
    if (!tmp) fail(tmp_path.string(), "cannot write (disk full?)");
    // Several ranks stop together, at the step where any of them saw the signal.
    signal = sync.step(interrupt_signal());
    if (signal != 0 && (sharded || next_to_write < mine.size())) stopped = true;
    const double seconds = elapsed();
    if (options.progress && (seconds - last_progress >= (live ? 0.5 : 10.0) || stopped)) {
      last_progress = seconds;
      const double per_record = seconds / static_cast<double>(std::max<size_t>(1, next_to_write - done));
      const double eta = per_record * static_cast<double>(mine.size() - next_to_write);
      char text[200];
      std::snprintf(text, sizeof(text), "%sscore: %zu/%zu records | %lld tokens | %s | ETA %s", who.c_str(),
                    next_to_write, mine.size(), (long long)result.response_tokens,
                    format_rate(seconds > 0 ? result.processed_tokens / seconds : 0.0).c_str(),
                    format_eta(next_to_write > done ? eta : -1.0).c_str());
      std::fprintf(stderr, live ? "\r%-90s" : "%s\n", text);
      std::fflush(stderr);
    }
    if (stopped) break;
  }
  if (tmp.is_open()) tmp.close();
  result.seconds = elapsed();
  result.tokens_per_s = result.seconds > 0 ? static_cast<double>(result.processed_tokens) / result.seconds : 0.0;
  if (live) std::fprintf(stderr, "\n");
  if (stopped) {
    result.records = static_cast<int64_t>(next_to_write);
    if (signal != 0) {
      if (sharded && next_to_write == mine.size()) fs::rename(tmp_path, final_path);  // kept whole for --resume
      throw Interrupted(signal, who + "scored " + std::to_string(next_to_write) + " of " +
                                    std::to_string(mine.size()) + " records into " +
                                    (next_to_write == mine.size() && sharded ? final_path : tmp_path).string(),
                        "");
    }
    return result;
  }
  if (next_to_write != mine.size()) fail("score", "internal: not every record was written");
  if (!complete) fs::rename(tmp_path, final_path);

  if (sharded) {
    // Every rank's part is complete once every rank has finished; then rank 0 merges them.
    signal = sync.finish(interrupt_signal());
    if (signal != 0)
      throw Interrupted(signal, who + "all " + std::to_string(mine.size()) + " records of this rank are in " + target,
                        "");
    std::vector<int64_t> sums = {result.scored_now, result.response_tokens, result.processed_tokens};
    comm->all_reduce(sums);
    std::vector<double> slowest = {result.seconds};
    comm->all_reduce(slowest, ScalarReduce::kMax);
    result.scored_now = sums[0];
    result.response_tokens = sums[1];
    result.processed_tokens = sums[2];
    result.seconds = slowest[0];
    comm->decided_by_root(
        [&] {
          std::vector<std::string> parts, ids;
          for (int r = 0; r < world; ++r) parts.push_back(part_path(options.out, r, world));
          for (const auto& e : examples) ids.push_back(e.id);
          merge_parts(options.out, parts, owner, ids);
          for (const auto& part : existing_parts(options.out)) fs::remove(part);
          return std::vector<int64_t>();
        },
        0, "merge the ranks' part files into " + options.out);
  }
  result.tokens_per_s = result.seconds > 0 ? static_cast<double>(result.processed_tokens) / result.seconds : 0.0;
  result.finished = true;
  result.records = static_cast<int64_t>(examples.size());
  if (!comm->is_root()) return result;  // rank 0 writes the summary and the report

  // ---- summary and report, from the finished file (it may hold an earlier run's lines) -------
  ScoreSummary summary(config.objective.clip_min, config.objective.clip_max);
  std::vector<RecordScore> shown;
  {
    std::ifstream in(out_path, std::ios::binary);
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      RecordScore r = record_from_json_line(line, out_path.string() + ":" + std::to_string(number));
      summary.add(r);
      if (!options.html.empty() && static_cast<int64_t>(shown.size()) < options.html_records) shown.push_back(std::move(r));
    }
  }
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.1f", result.tokens_per_s);
  result.summary_file = summary_path_for(options.out);
  write_file_atomic(result.summary_file,
                    summary.to_json({{"tokens_per_s", rate},
                                     {"micro_batch_size", std::to_string(micro)},
                                     {"ranks", std::to_string(world)},
                                     {"records_scored_by_last_run", std::to_string(result.scored_now)},
                                     {"adapters", adapters ? "\"" + adapters->dir() + "\"" : std::string("null")},
                                     {"records_without_adapter",
                                      adapters ? std::to_string(result.records_without_adapter) : std::string("null")}}));
  if (!options.html.empty()) {
    HtmlReportOptions html;
    html.source = options.source;
    html.total_records = result.records;
    write_file_atomic(options.html, render_html_report(shown, summary, html), "the HTML report");
    result.html = options.html;
  }
  if (options.progress) {
    std::fprintf(stderr, "%s", summary.to_text().c_str());
    std::fprintf(stderr, "scoring throughput: %lld tokens (both sequences) in %.1f s = %s (micro-batches of %lld%s)\n",
                 (long long)result.processed_tokens, result.seconds, format_rate(result.tokens_per_s).c_str(),
                 (long long)micro, sharded ? (", " + std::to_string(world) + " ranks").c_str() : "");
  }
  return result;
}

ScoreResult run_scoring(const JobConfig& config, const std::string& data_file, const std::string& golds_file,
                        const ScoreOptions& options) {
  // The ranks first: a missing one fails the rendezvous before minutes of loading.
  const RecordJobPlacement place = place_record_job(config.model.device, config.train.distributed);
  const bool talk = options.progress && place.comm->is_root();
  prepare_model_folder(config.model, tokenizer_path(config), false);
  auto tokenizer = load_tokenizer(tokenizer_path(config));
  DatasetStats stats;
  std::vector<PairDetail> details;
  auto examples = load_paired_examples(config.data, data_file, golds_file, *tokenizer, &stats, &details);
  if (talk)
    std::fprintf(stderr, "%s: %lld records -> %lld examples (%lld skipped, %lld with the profile cut)%s\n",
                 data_file.c_str(), (long long)stats.records, (long long)stats.examples, (long long)stats.skipped,
                 (long long)stats.truncated_profile,
                 place.comm->distributed() ? ("; scored on " + std::to_string(place.comm->world_size()) + " ranks").c_str()
                                           : "");
  if (examples.empty()) fail(data_file, "holds no usable records");
  const auto dtype = parse_dtype(config.model.dtype, place.device, "model.dtype");
  LoadedModel loaded = load_causal_lm(config.model.path, place.device, dtype);
  check_token_ids_fit(examples, tokenizer_path(config), tokenizer->vocab_size(), loaded.config.vocab_size,
                      loaded.folder);
  if (talk) std::fprintf(stderr, "%s\n", describe_loaded_model(loaded).c_str());
  if (!options.adapter.empty() && !options.adapters.empty())
    fail("--adapters", "cannot be combined with --adapter", "give one adapter for every record, or a folder of per-user ones");
  std::optional<AdapterLibrary> library;
  if (!options.adapters.empty()) library.emplace(options.adapters, verify_recorded_adapter);
  if (!options.adapter.empty()) {
    verify_recorded_adapter(options.adapter);
    load_lora_adapter(*loaded.model, options.adapter);
    if (talk) std::fprintf(stderr, "adapter: %s\n", options.adapter.c_str());
  }
  ScoreOptions o = options;
  if (o.source.empty())
    o.source = "model " + config.model.path + (options.adapter.empty() ? "" : " + adapter " + options.adapter) +
               (options.adapters.empty() ? "" : " + per-user adapters " + options.adapters) + " | data " + data_file;
  return score_examples(*loaded.model, *tokenizer, config, examples, details, o, library ? &*library : nullptr,
                        place.comm.get());
}

}  // namespace percetrain
