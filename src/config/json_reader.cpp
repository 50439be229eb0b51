// Key tracking and typo hints for config objects.
#include "config/json_reader.hpp"

#include <algorithm>

namespace percetrain {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest_key(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(3, key.size() / 2) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(key, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

namespace {

struct ForeignKey {
  const char* name;     // as Hugging Face / TRL / PEFT spell it
  const char* ours;     // percetrain's key
  const char* note;     // where the meaning differs, what to write; "" when it is the same setting
};

// TrainingArguments (and TRL's SFTConfig, PEFT's LoraConfig) names whose percetrain key differs.
constexpr ForeignKey kForeignKeys[] = {
    {"learning_rate", "train.lr", ""},
    {"num_train_epochs", "train.epochs", "a whole number of epochs; train.max_steps for a partial one"},
    {"per_device_train_batch_size", "train.micro_batch_size",
     "examples per forward/backward on each rank; train.batch_size is the examples per optimizer step over all "
     "ranks, so Hugging Face's per_device_train_batch_size x gradient_accumulation_steps x ranks"},
    {"train_batch_size", "train.batch_size", "examples per optimizer step over all ranks"},
    {"gradient_accumulation_steps", "train.batch_size",
     "percetrain accumulates batch_size / micro_batch_size micro-batches: set train.batch_size to "
     "gradient_accumulation_steps x train.micro_batch_size x ranks"},
    {"max_grad_norm", "train.grad_clip", "0 turns clipping off"},
    {"lr_scheduler_type", "train.schedule", "constant, linear or cosine"},
    {"adam_beta1", "train.beta1", ""},
    {"adam_beta2", "train.beta2", ""},
    {"adam_epsilon", "train.adam_eps", ""},
    {"logging_steps", "train.log_every", ""},
    {"eval_steps", "train.eval_every", ""},
    {"eval_strategy", "train.eval_every", "steps between validations; 0: at the end of each epoch"},
    {"evaluation_strategy", "train.eval_every", "steps between validations; 0: at the end of each epoch"},
    {"save_steps", "train.save_every", ""},
    {"save_total_limit", "train.keep_last", ""},
    {"metric_for_best_model", "train.best_metric", "valid_ce, valid_loss, valid_rougeL or valid_meteor"},
    {"resume_from_checkpoint", "train.resume", "\"auto\", or train --resume"},
    {"output_dir", "output.dir", ""},
    {"model_name_or_path", "model.path", "a model folder or a Hugging Face repository id in the local cache"},
    {"bf16", "model.dtype", "e.g. \"bfloat16\""},
    {"fp16", "model.dtype", "e.g. \"float16\""},
    {"torch_dtype", "model.dtype", ""},
    {"use_cpu", "model.device", "e.g. \"cpu\""},
    {"no_cuda", "model.device", "e.g. \"cpu\""},
    {"max_seq_length", "data.max_length", "tokens of the personalised sequence, response included"},
    {"lora_r", "lora.rank", ""},
    {"r", "lora.rank", ""},
    {"lora_alpha", "lora.alpha", ""},
    {"lora_dropout", "lora.dropout", ""},
};

}  // namespace

std::string hugging_face_key_hint(const std::string& dotted_key) {
  const auto dot = dotted_key.rfind('.');
  const std::string name = dot == std::string::npos ? dotted_key : dotted_key.substr(dot + 1);
  for (const auto& key : kForeignKeys) {
    if (name != key.name) continue;
    // "r" means the LoRA rank only inside the lora section.
    if (name == "r" && dotted_key != "lora.r") continue;
    std::string hint = dotted_key + " is Hugging Face's name; percetrain calls it " + key.ours;
    if (*key.note) hint += std::string(": ") + key.note;
    return hint;
  }
  return "";
}

JsonObjectReader::JsonObjectReader(const nlohmann::json& object, std::string path, std::string file,
                                   const std::map<std::string, std::string>* origins)
    : object_(object.is_null() ? nlohmann::json::object() : object),
      path_(std::move(path)),
      file_(std::move(file)),
      origins_(origins) {
  if (!object_.is_object())
    fail(file_ + (path_.empty() ? "" : ": " + path_), "must be a JSON object, not " + object_.dump());
}

std::string JsonObjectReader::where(const std::string& key) const {
  const std::string dotted = path_.empty() ? key : path_ + "." + key;
  if (origins_) {
    const auto it = origins_->find(dotted);
    if (it != origins_->end()) return it->second;
  }
  return file_ + ": " + dotted;
}

JsonObjectReader JsonObjectReader::child(const char* key) {
  known_.push_back(key);
  auto it = object_.find(key);
  const nlohmann::json empty = nlohmann::json::object();
  return JsonObjectReader(it == object_.end() ? empty : *it, path_.empty() ? key : path_ + "." + key, file_, origins_);
}

const nlohmann::json& JsonObjectReader::raw(const char* key) {
  known_.push_back(key);
  static const nlohmann::json null_json;
  auto it = object_.find(key);
  return it == object_.end() ? null_json : *it;
}

void JsonObjectReader::finish() const {
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (std::find(known_.begin(), known_.end(), it.key()) != known_.end()) continue;
    const std::string foreign = hugging_face_key_hint(path_.empty() ? it.key() : path_ + "." + it.key());
    if (!foreign.empty()) fail(where(it.key()), "unknown key", foreign);
    const std::string guess = closest_key(it.key(), known_);
    std::string known_list;
    for (const auto& k : known_) known_list += (known_list.empty() ? "" : ", ") + k;
    fail(where(it.key()), "unknown key",
         guess.empty() ? "known keys here: " + known_list : "did you mean '" + guess + "'?");
  }
}

}  // namespace percetrain
