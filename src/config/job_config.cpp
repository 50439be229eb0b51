// The one place where job configs are parsed: JSON -> structs, --set overrides, validation.
#include "percetrain/config/job_config.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/json_reader.hpp"
#include "percetrain/data/pairing.hpp"

namespace percetrain {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

void check_one_of(const std::string& value, const std::vector<std::string>& allowed, const std::string& where) {
  for (const auto& a : allowed)
    if (value == a) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  const std::string guess = closest_key(value, allowed);
  fail(where, "'" + value + "' is not allowed", "use one of " + list + (guess.empty() ? "" : " (did you mean '" + guess + "'?)"));
}

void apply_override(json& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set " + assignment, "expected section.key=value", "e.g. --set train.lr=2e-5");
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;  // bare strings need no quotes on the command line
  }
  json* node = &root;
  std::stringstream parts(path);
  std::string part, last;
  std::vector<std::string> keys;
  while (std::getline(parts, part, '.')) keys.push_back(part);
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    json& next = (*node)[keys[i]];
    if (next.is_null()) next = json::object();
    if (!next.is_object()) fail("--set " + assignment, "'" + keys[i] + "' is not a section");
    node = &next;
  }
  (*node)[keys.back()] = value;
}

std::string resolve_path(const std::string& path, const fs::path& base) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (base / path).lexically_normal().string();
}

}  // namespace

JobConfig parse_job_config(const std::string& json_text, const std::string& file,
                           const std::vector<std::string>& overrides) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail(file, std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) fail(file, "a job config must be a JSON object");
  for (const auto& o : overrides) apply_override(root, o);

  JobConfig c;
  c.file = file;
  JsonObjectReader top(root, "", file);

  auto m = top.child("model");
  m.get("path", c.model.path).get("device", c.model.device).get("dtype", c.model.dtype);
  m.get("init_arch", c.model.init_arch).get("init_preset", c.model.init_preset).get("init_seed", c.model.init_seed);
  m.finish();
  if (c.model.path.empty()) fail(m.where("path"), "is required", "the Hugging Face model folder to fine-tune");

  auto t = top.child("tokenizer");
  t.get("path", c.tokenizer.path);
  t.finish();

  auto d = top.child("data");
  DataConfig& data = c.data;
  d.get("train_file", data.train_file).get("valid_file", data.valid_file).get("test_file", data.test_file);
  d.get("train_golds_file", data.train_golds_file).get("valid_golds_file", data.valid_golds_file);
  d.get("test_golds_file", data.test_golds_file).get("preset", data.preset);
  // The preset fills the templates first; the keys read below override it.
  if (!data.preset.empty()) {
    try {
      apply_data_preset(data.preset, &data);
    } catch (const Error& e) {
      fail(d.where("preset"), "'" + data.preset + "' is not a preset",
           "use one of " + [] { std::string l; for (const auto& n : data_preset_names()) l += (l.empty() ? "" : ", ") + n; return l; }());
    }
  }
  d.get("item_template", data.item_template).get("prompt_template", data.prompt_template);
  d.get("profile_template", data.profile_template).get("item_separator", data.item_separator);
  d.get("query_pattern", data.query_pattern).get("retrieval", data.retrieval).get("top_k", data.top_k);
  d.get("bm25_k1", data.bm25_k1).get("bm25_b", data.bm25_b).get("date_field", data.date_field);
  d.get("max_length", data.max_length).get("profile_token_budget", data.profile_token_budget);
  d.get("add_eos", data.add_eos).get("on_bad_record", data.on_bad_record).get("max_records", data.max_records);
  d.get("chat_format", data.chat_format).get("system_prompt", data.system_prompt);
  d.finish();
  check_one_of(data.retrieval, {"bm25", "bm25_lamp", "recency", "first", "all"}, d.where("retrieval"));
  check_one_of(data.on_bad_record, {"strict", "skip"}, d.where("on_bad_record"));
  check_one_of(data.chat_format, {"none", "chatml", "qwen3", "llama3", "llama2"}, d.where("chat_format"));
  if (data.top_k < 0) fail(d.where("top_k"), "must not be negative");
  if (data.max_length < 8) fail(d.where("max_length"), "must be at least 8 tokens");

  auto o = top.child("objective");
  o.get("name", c.objective.name).get("clip_min", c.objective.clip_min).get("clip_max", c.objective.clip_max);
  o.get("normalize", c.objective.normalize).get("chunk_tokens", c.objective.chunk_tokens);
  o.finish();
  check_one_of(c.objective.name, {"ce", "perce", "lossce", "entce"}, o.where("name"));
  check_one_of(c.objective.normalize, {"tokens", "sequences"}, o.where("normalize"));
  if (!(c.objective.clip_min <= c.objective.clip_max))
    fail(o.where("clip_min"), "must not exceed clip_max");
  if (c.objective.chunk_tokens < 0) fail(o.where("chunk_tokens"), "must not be negative", "0 sizes chunks automatically");

  auto tr = top.child("train");
  TrainSection& s = c.train;
  tr.get("lr", s.lr).get("schedule", s.schedule).get("warmup_ratio", s.warmup_ratio);
  tr.get("warmup_steps", s.warmup_steps).get("min_lr_ratio", s.min_lr_ratio).get("weight_decay", s.weight_decay);
  tr.get("beta1", s.beta1).get("beta2", s.beta2).get("adam_eps", s.adam_eps).get("grad_clip", s.grad_clip);
  tr.get("batch_size", s.batch_size).get("micro_batch_size", s.micro_batch_size).get("epochs", s.epochs);
  tr.get("max_steps", s.max_steps).get("seed", s.seed).get("log_every", s.log_every);
  tr.get("eval_every", s.eval_every).get("save_every", s.save_every).get("keep_last", s.keep_last);
  tr.get("resume", s.resume).get("gradient_checkpointing", s.gradient_checkpointing);
  tr.get("master_weights", s.master_weights);
  tr.finish();
  check_one_of(s.schedule, {"constant", "linear", "cosine"}, tr.where("schedule"));
  check_one_of(s.resume, {"never", "auto"}, tr.where("resume"));
  if (!(s.lr > 0)) fail(tr.where("lr"), "must be positive");
  if (s.micro_batch_size < 1) fail(tr.where("micro_batch_size"), "must be positive");
  if (s.batch_size < 1 || s.batch_size % s.micro_batch_size != 0)
    fail(tr.where("batch_size"), "must be a positive multiple of micro_batch_size (" +
                                     std::to_string(s.micro_batch_size) + ")",
         "gradient accumulation steps = batch_size / micro_batch_size");
  if (s.epochs < 1 && s.max_steps < 1) fail(tr.where("epochs"), "give epochs or max_steps");
  if (s.warmup_ratio < 0 || s.warmup_ratio >= 1) fail(tr.where("warmup_ratio"), "must be in [0, 1)");
  if (s.keep_last < 1) fail(tr.where("keep_last"), "must be at least 1");
  if (s.log_every < 1) fail(tr.where("log_every"), "must be at least 1");

  auto g = top.child("generate");
  GenerateSection& gen = c.generate;
  g.get("max_new_tokens", gen.max_new_tokens).get("temperature", gen.temperature).get("top_p", gen.top_p);
  g.get("top_k", gen.top_k).get("seed", gen.seed).get("stop_strings", gen.stop_strings);
  g.get("batch_size", gen.batch_size);
  g.finish();
  if (gen.max_new_tokens < 1) fail(g.where("max_new_tokens"), "must be at least 1");
  if (!(gen.temperature >= 0)) fail(g.where("temperature"), "must not be negative", "0 decodes greedily");
  if (!(gen.top_p > 0 && gen.top_p <= 1)) fail(g.where("top_p"), "must be in (0, 1]", "1 turns it off");
  if (gen.top_k < 0) fail(g.where("top_k"), "must not be negative", "0 turns it off");
  if (gen.batch_size < 1) fail(g.where("batch_size"), "must be at least 1");
  for (const auto& stop : gen.stop_strings)
    if (stop.empty()) fail(g.where("stop_strings"), "must not contain an empty string");

  auto out = top.child("output");
  out.get("dir", c.output.dir);
  out.finish();
  top.finish();

  const fs::path base = fs::path(file).parent_path();
  c.model.path = resolve_path(c.model.path, base);
  c.tokenizer.path = resolve_path(c.tokenizer.path, base);
  for (std::string* p : {&data.train_file, &data.valid_file, &data.test_file, &data.train_golds_file,
                         &data.valid_golds_file, &data.test_golds_file})
    *p = resolve_path(*p, base);
  c.output.dir = resolve_path(c.output.dir, base);
  return c;
}

JobConfig load_job_config(const std::string& file, const std::vector<std::string>& overrides) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_job_config(text.str(), file, overrides);
}

std::string job_config_to_json(const JobConfig& c) {
  const DataConfig& d = c.data;
  const TrainSection& s = c.train;
  json j = {
      {"model", {{"path", c.model.path}, {"device", c.model.device}, {"dtype", c.model.dtype},
                 {"init_arch", c.model.init_arch}, {"init_preset", c.model.init_preset},
                 {"init_seed", c.model.init_seed}}},
      {"tokenizer", {{"path", c.tokenizer.path}}},
      {"data", {{"train_file", d.train_file}, {"valid_file", d.valid_file}, {"test_file", d.test_file},
                {"train_golds_file", d.train_golds_file}, {"valid_golds_file", d.valid_golds_file},
                {"test_golds_file", d.test_golds_file}, {"preset", d.preset},
                {"item_template", d.item_template}, {"prompt_template", d.prompt_template},
                {"profile_template", d.profile_template}, {"item_separator", d.item_separator},
                {"query_pattern", d.query_pattern}, {"retrieval", d.retrieval}, {"top_k", d.top_k},
                {"bm25_k1", d.bm25_k1}, {"bm25_b", d.bm25_b}, {"date_field", d.date_field},
                {"max_length", d.max_length}, {"profile_token_budget", d.profile_token_budget},
                {"add_eos", d.add_eos}, {"on_bad_record", d.on_bad_record},
                {"max_records", d.max_records}, {"chat_format", d.chat_format},
                {"system_prompt", d.system_prompt}}},
      {"objective", {{"name", c.objective.name}, {"clip_min", c.objective.clip_min},
                     {"clip_max", c.objective.clip_max}, {"normalize", c.objective.normalize},
                     {"chunk_tokens", c.objective.chunk_tokens}}},
      {"train", {{"lr", s.lr}, {"schedule", s.schedule}, {"warmup_ratio", s.warmup_ratio},
                 {"warmup_steps", s.warmup_steps}, {"min_lr_ratio", s.min_lr_ratio},
                 {"weight_decay", s.weight_decay}, {"beta1", s.beta1}, {"beta2", s.beta2},
                 {"adam_eps", s.adam_eps}, {"grad_clip", s.grad_clip}, {"batch_size", s.batch_size},
                 {"micro_batch_size", s.micro_batch_size}, {"epochs", s.epochs},
                 {"max_steps", s.max_steps}, {"seed", s.seed}, {"log_every", s.log_every},
                 {"eval_every", s.eval_every}, {"save_every", s.save_every},
                 {"keep_last", s.keep_last}, {"resume", s.resume},
                 {"gradient_checkpointing", s.gradient_checkpointing},
                 {"master_weights", s.master_weights}}},
      {"generate", {{"max_new_tokens", c.generate.max_new_tokens},
                    {"temperature", c.generate.temperature}, {"top_p", c.generate.top_p},
                    {"top_k", c.generate.top_k}, {"seed", c.generate.seed},
                    {"stop_strings", c.generate.stop_strings},
                    {"batch_size", c.generate.batch_size}}},
      {"output", {{"dir", c.output.dir}}}};
  return j.dump(2) + "\n";
}

}  // namespace percetrain
