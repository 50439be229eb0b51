// The one list of a job config's keys: describe(section, visitor) names every field of a section
// once, with its bounds, and the visitors in job_config.cpp read it from JSON, write the effective
// config, resolve paths and list the keys for --set. A field added to a section struct but not
// here fails JobConfigFields tests (the effective config would lack it).
#pragma once

#include <limits>

#include "percetrain/config/job_config.hpp"

namespace percetrain {

// The closed or open interval a number must lie in; the hint says why when it does not.
struct Bounds {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;
  const char* hint = "";
};
inline Bounds at_least(double min, const char* hint = "") { return {min, Bounds{}.max, false, false, hint}; }
inline Bounds above(double min, const char* hint = "") { return {min, Bounds{}.max, true, false, hint}; }
inline Bounds closed(double min, double max, const char* hint = "") { return {min, max, false, false, hint}; }
inline Bounds half_open(double min, double max, const char* hint = "") { return {min, max, false, true, hint}; }
inline Bounds open_closed(double min, double max, const char* hint = "") { return {min, max, true, false, hint}; }

// A visitor V offers:
//   v(key, member)            a plain value (number, bool, string, enum, list of strings)
//   v(key, member, Bounds)    a number with bounds
//   v.path(key, member)       a path, resolved against the config file's folder
//   v.section(key, member)    a nested section (describe() is called for it)

template <class V>
void describe(ModelSection& s, V& v) {
  v.path("path", s.path);
  v("device", s.device);
  v("dtype", s.dtype);
  v("init_arch", s.init_arch);
  v("init_preset", s.init_preset);
  v("init_seed", s.init_seed);
}

template <class V>
void describe(LoraSection& s, V& v) {
  v("rank", s.rank, at_least(0, "0 turns adapters off: every weight is fine-tuned"));
  v("alpha", s.alpha, above(0, "the adapter's scaling is alpha / rank"));
  v("dropout", s.dropout, half_open(0, 1));
  v("target_modules", s.target_modules);
  v("use_rslora", s.use_rslora);
  v("per_user", s.per_user);
  v.path("init_adapter", s.init_adapter);
}

template <class V>
void describe(TokenizerSection& s, V& v) {
  v.path("path", s.path);
}

template <class V>
void describe(DataConfig& s, V& v) {
  v.path("train_file", s.train_file);
  v.path("valid_file", s.valid_file);
  v.path("test_file", s.test_file);
  v.path("train_golds_file", s.train_golds_file);
  v.path("valid_golds_file", s.valid_golds_file);
  v.path("test_golds_file", s.test_golds_file);
  v("preset", s.preset);
  v("item_template", s.item_template);
  v("prompt_template", s.prompt_template);
  v("profile_template", s.profile_template);
  v("item_separator", s.item_separator);
  v("query_pattern", s.query_pattern);
  v("retrieval", s.retrieval);
  v("top_k", s.top_k, at_least(0));
  v("bm25_k1", s.bm25_k1, at_least(0));
  v("bm25_b", s.bm25_b, closed(0, 1));
  v("date_field", s.date_field);
  v("max_length", s.max_length, at_least(8, "tokens of the personalised sequence, response included"));
  v("profile_token_budget", s.profile_token_budget, at_least(0, "0: as much as max_length allows"));
  v("add_eos", s.add_eos);
  v("on_bad_record", s.on_bad_record);
  v("max_records", s.max_records, at_least(0, "0: all"));
  v("chat_format", s.chat_format);
  v("system_prompt", s.system_prompt);
  v("user_key", s.user_key);
}

template <class V>
void describe(ObjectiveSection& s, V& v) {
  v("name", s.name);
  v("clip_min", s.clip_min);
  v("clip_max", s.clip_max);
  v("normalize", s.normalize);
  v("chunk_tokens", s.chunk_tokens, at_least(0, "0 sizes chunks automatically"));
  v("pir_scope", s.pir_scope);
  v("rho1_keep_ratio", s.rho1_keep_ratio, open_closed(0, 1, "the share of each sequence's tokens that train"));
  v.path("reference_model", s.reference_model);
  v("data_weight_default", s.data_weight_default, at_least(0));
}

template <class V>
void describe(EvalGenerateSection& s, V& v) {
  v("every", s.every, at_least(0, "0 turns validation by generation off"));
  v("max_records", s.max_records, at_least(0, "0: the whole validation set"));
  v("max_new_tokens", s.max_new_tokens, at_least(1));
}

template <class V>
void describe(TrainSection& s, V& v) {
  v("lr", s.lr, above(0));
  v("schedule", s.schedule);
  v("warmup_ratio", s.warmup_ratio, half_open(0, 1));
  v("warmup_steps", s.warmup_steps, at_least(0));
  v("min_lr_ratio", s.min_lr_ratio, closed(0, 1));
  v("weight_decay", s.weight_decay, at_least(0));
  v("beta1", s.beta1, half_open(0, 1));
  v("beta2", s.beta2, half_open(0, 1));
  v("adam_eps", s.adam_eps, above(0));
  v("grad_clip", s.grad_clip, at_least(0, "0 turns clipping off"));
  v("batch_size", s.batch_size, at_least(1));
  v("micro_batch_size", s.micro_batch_size, at_least(1));
  v("epochs", s.epochs, at_least(0));
  v("max_steps", s.max_steps, at_least(0, "0: run train.epochs"));
  v("seed", s.seed);
  v("log_every", s.log_every, at_least(1));
  v("eval_every", s.eval_every, at_least(0, "0: at the end of each epoch"));
  v("save_every", s.save_every, at_least(0, "0: at the end only"));
  v("keep_last", s.keep_last, at_least(1));
  v("resume", s.resume);
  v("gradient_checkpointing", s.gradient_checkpointing);
  v("master_weights", s.master_weights);
  v.section("distributed", s.distributed);
  v.section("eval_generate", s.eval_generate);
  v("best_metric", s.best_metric);
  v("early_stopping_patience", s.early_stopping_patience, at_least(0, "0 turns early stopping off"));
}

template <class V>
void describe(DistributedSection& s, V& v) {
  v("backend", s.backend);
  v("timeout_s", s.timeout_s, above(0));
  v("zero", s.zero, closed(0, 2, "0: replicated optimizer state, 1: sharded, 2: gradients sharded too"));
  v("bucket_mib", s.bucket_mib, above(0));
  v("overlap", s.overlap);
}


template <class V>
void describe(GenerateSection& s, V& v) {
  v("max_new_tokens", s.max_new_tokens, at_least(1));
  v("temperature", s.temperature, at_least(0, "0 decodes greedily"));
  v("top_p", s.top_p, open_closed(0, 1, "1 turns it off"));
  v("top_k", s.top_k, at_least(0, "0 turns it off"));
  v("seed", s.seed);
  v("stop_strings", s.stop_strings);
  v("batch_size", s.batch_size, at_least(1));
}

template <class V>
void describe(OutputSection& s, V& v) {
  v.path("dir", s.dir);
}

// The sections of a job config, in the order the effective config lists them.
template <class V>
void describe(JobConfig& c, V& v) {
  v.section("model", c.model);
  v.section("lora", c.lora);
  v.section("tokenizer", c.tokenizer);
  v.section("data", c.data);
  v.section("objective", c.objective);
  v.section("train", c.train);
  v.section("generate", c.generate);
  v.section("output", c.output);
}

}  // namespace percetrain
