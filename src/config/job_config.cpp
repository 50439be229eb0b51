// The one place where job configs are parsed: JSON -> structs, --set overrides, validation. Each
// visitor below walks the field list of config_fields.hpp.
#include "percetrain/config/job_config.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <type_traits>

#include "config/config_fields.hpp"
#include "config/json_reader.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/hf_cache.hpp"
#include "percetrain/util/json.hpp"

namespace percetrain {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string format_number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void check_bounds(double value, const Bounds& b, const std::string& where) {
  const bool low = b.min_open ? !(value > b.min) : !(value >= b.min);
  const bool high = b.max_open ? !(value < b.max) : !(value <= b.max);
  if (!low && !high) return;
  std::string range;
  if (std::isinf(b.max)) range = (b.min_open ? "greater than " : "at least ") + format_number(b.min);
  else
    range = std::string("in ") + (b.min_open ? "(" : "[") + format_number(b.min) + ", " + format_number(b.max) +
            (b.max_open ? ")" : "]");
  fail(where, format_number(value) + " is out of range: it must be " + range, b.hint);
}

// JSON object -> section struct, with type checks, enum names and bounds.
class Reader {
 public:
  explicit Reader(JsonObjectReader reader) : r_(std::move(reader)) {}

  template <class T>
  void operator()(const char* key, T& out, const Bounds& bounds = {}) {
    if constexpr (std::is_enum_v<T>) {
      std::string name = enum_name(out);
      r_.get(key, name);
      if (!enum_from_name(name, &out)) {
        const auto names = enum_names<T>();
        const std::string guess = closest_key(name, names);
        fail(r_.where(key), "'" + name + "' is not allowed",
             (guess.empty() ? "" : "did you mean '" + guess + "'? ") + "use " + join_choices(names));
      }
    } else {
      r_.get(key, out);
      if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
        check_bounds(static_cast<double>(out), bounds, r_.where(key));
    }
  }
  void path(const char* key, std::string& out) { r_.get(key, out); }
  template <class S>
  void section(const char* key, S& out) {
    Reader child(r_.child(key));
    describe(out, child);
    child.r_.finish();
  }
  void finish() const { r_.finish(); }

 private:
  JsonObjectReader r_;
};

// Section struct -> JSON object (the effective config).
class Writer {
 public:
  explicit Writer(json& out) : out_(out) {}
  template <class T>
  void operator()(const char* key, T& value, const Bounds& = {}) {
    if constexpr (std::is_enum_v<T>) out_[key] = enum_name(value);
    else out_[key] = value;
  }
  void path(const char* key, std::string& value) { out_[key] = value; }
  template <class S>
  void section(const char* key, S& value) {
    json child = json::object();
    Writer w(child);
    describe(value, w);
    out_[key] = std::move(child);
  }

 private:
  json& out_;
};

// Relative paths -> absolute paths: a path written in the config file against the config's folder,
// one given with --set against the current folder. The keys that name a model (or adapter or
// tokenizer) folder may also name a Hugging Face repository id in the local cache.
class PathResolver {
 public:
  PathResolver(fs::path config_folder, const std::map<std::string, std::string>& origins, std::string file,
               bool model_is_created, std::string prefix = "")
      : config_folder_(std::move(config_folder)),
        origins_(origins),
        file_(std::move(file)),
        model_is_created_(model_is_created),
        prefix_(std::move(prefix)) {}
  template <class T>
  void operator()(const char*, T&, const Bounds& = {}) {}
  void path(const char* key, std::string& value) {
    if (value.empty()) return;
    const std::string dotted = prefix_ + key;
    const auto origin = origins_.find(dotted);
    const bool from_command_line = origin != origins_.end();
    const fs::path base = from_command_line ? fs::current_path() : config_folder_;
    const std::string local =
        fs::path(value).is_absolute() ? value : (base / value).lexically_normal().string();
    const bool names_a_model = dotted == "model.path" || dotted == "tokenizer.path" ||
                               dotted == "objective.reference_model" || dotted == "lora.init_adapter";
    const std::string where = from_command_line ? origin->second : file_ + ": " + dotted;
    if (!names_a_model) {
      value = local;
    } else if (dotted == "model.path" && model_is_created_) {
      // With model.init_arch, model.path is the folder train creates unless it names a
      // repository that is in the cache.
      try {
        value = resolve_model_location(value, local, where);
      } catch (const Error&) {
        value = local;
      }
    } else {
      value = resolve_model_location(value, local, where);
    }
  }
  template <class S>
  void section(const char* key, S& value) {
    PathResolver child(config_folder_, origins_, file_, model_is_created_, prefix_ + key + ".");
    describe(value, child);
  }

 private:
  fs::path config_folder_;
  const std::map<std::string, std::string>& origins_;
  std::string file_;
  bool model_is_created_;
  std::string prefix_;
};

// Every key as "section.key".
class KeyLister {
 public:
  explicit KeyLister(std::vector<std::string>& out, std::string prefix = "") : out_(out), prefix_(std::move(prefix)) {}
  template <class T>
  void operator()(const char* key, T&, const Bounds& = {}) {
    out_.push_back(prefix_ + key);
  }
  void path(const char* key, std::string&) { out_.push_back(prefix_ + key); }
  template <class S>
  void section(const char* key, S& value) {
    KeyLister child(out_, prefix_ + key + ".");
    describe(value, child);
  }

 private:
  std::vector<std::string>& out_;
  std::string prefix_;
};

// Applies one --set to the JSON root and records which argument set the key (for errors and for
// resolving its path against the current folder).
void apply_override(json& root, const std::string& assignment, const std::vector<std::string>& known_keys,
                    std::map<std::string, std::string>* origins) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError("--set " + assignment, "expected section.key=value", "e.g. --set train.lr=2e-5");
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  if (std::find(known_keys.begin(), known_keys.end(), path) == known_keys.end()) {
    const std::string foreign = hugging_face_key_hint(path);
    const std::string guess = closest_key(path, known_keys);
    throw UsageError("--set " + assignment, "unknown key '" + path + "'",
                     !foreign.empty()       ? foreign
                     : guess.empty() ? "keys look like train.lr or data.top_k"
                                     : "did you mean '" + guess + "'?");
  }
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;  // bare strings need no quotes on the command line
  }
  json* node = &root;
  std::stringstream parts(path);
  std::vector<std::string> keys;
  for (std::string part; std::getline(parts, part, '.');) keys.push_back(part);
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    json& next = (*node)[keys[i]];
    if (next.is_null()) next = json::object();
    if (!next.is_object()) fail("--set " + assignment, "'" + keys[i] + "' is not a section");
    node = &next;
  }
  (*node)[keys.back()] = value;
  (*origins)[path] = "--set " + assignment;
}

// lora.target_modules: projection names (or all-linear), with a guess for a misspelt one.
void validate_lora(const LoraSection& lora, const std::string& where) {
  std::vector<std::string> known = lora_module_names();
  known.push_back(kAllLinear);
  for (const auto& name : lora.target_modules)
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      const std::string guess = closest_key(name, known);
      fail(where, "'" + name + "' is not a projection LoRA can adapt",
           (guess.empty() ? "" : "did you mean '" + guess + "'? ") + "use " + join_choices(known));
    }
  expand_target_modules(lora.target_modules, where);  // an empty list
}

// What the field bounds cannot say: relations between keys.
void validate(const JobConfig& c, const std::string& file, const std::map<std::string, std::string>& origins) {
  auto where = [&](const std::string& key) {
    const auto origin = origins.find(key);
    return origin != origins.end() ? origin->second : file + ": " + key;
  };
  if (c.model.path.empty()) fail(where("model.path"), "is required", "the Hugging Face model folder to fine-tune");
  if (!(c.objective.clip_min <= c.objective.clip_max)) fail(where("objective.clip_min"), "must not exceed clip_max");
  const TrainSection& s = c.train;
  if (s.batch_size % s.micro_batch_size != 0)
    fail(where("train.batch_size"),
         "must be a positive multiple of micro_batch_size (" + std::to_string(s.micro_batch_size) + ")",
         "gradient accumulation steps = batch_size / micro_batch_size");
  if (s.epochs < 1 && s.max_steps < 1) fail(where("train.epochs"), "give epochs or max_steps");
  // What a per-user run cannot honour is refused, never ignored: each user's adapter is written
  // when the user is done (resume continues with the first unfinished user), and validation by
  // generation, best/ and early stopping belong to one model's run.
  if (c.lora.per_user) {
    const std::string hint = "leave it unset with lora.per_user, or train one shared adapter without lora.per_user";
    if (s.save_every > 0)
      fail(where("train.save_every"), "does not apply to lora.per_user: each user's adapter is saved when it is done",
           "set train.save_every 0 (--set train.save_every=0); --resume continues with the first unfinished user");
    if (s.eval_generate.every > 0)
      fail(where("train.eval_generate.every"), "is not available with lora.per_user", hint);
    if (s.best_metric != BestMetric::kNone) fail(where("train.best_metric"), "is not available with lora.per_user", hint);
    if (s.early_stopping_patience > 0)
      fail(where("train.early_stopping_patience"), "is not available with lora.per_user", hint);
  }
  const bool generated_metric = s.best_metric == BestMetric::kValidRougeL || s.best_metric == BestMetric::kValidMeteor;
  if (generated_metric && s.eval_generate.every == 0)
    fail(where("train.best_metric"), "'" + enum_name(s.best_metric) + "' is measured by validation by generation, which is off",
         "set train.eval_generate.every to the steps between generation evaluations");
  if (s.early_stopping_patience > 0 && s.best_metric == BestMetric::kNone)
    fail(where("train.early_stopping_patience"), "needs train.best_metric: the metric whose improvement it waits for",
         "e.g. \"best_metric\": \"valid_rougeL\" or \"valid_ce\"");
  if (c.objective.name == ObjectiveKind::kRho1 && c.objective.reference_model.empty())
    fail(where("objective.reference_model"), "is required for rho1",
         "the Hugging Face folder of the frozen reference model whose losses rho1 compares against");
  for (const auto& stop : c.generate.stop_strings)
    if (stop.empty()) fail(where("generate.stop_strings"), "must not contain an empty string");
  validate_lora(c.lora, where("lora.target_modules"));
  if (c.lora.per_user && c.lora.rank == 0)
    fail(where("lora.per_user"), "needs lora.rank: per-user adapters are LoRA adapters", "e.g. lora.rank 8");
  if (c.lora.per_user && !c.lora.init_adapter.empty())
    fail(where("lora.init_adapter"), "cannot be combined with lora.per_user: every user starts from a fresh adapter",
         "merge the shared adapter into the base with merge-adapter and use the merged model as model.path");
}

}  // namespace

JobConfig parse_job_config(const std::string& json_text, const std::string& given_file,
                           const std::vector<std::string>& overrides) {
  // Errors name the config by its absolute path, whatever the current folder.
  const std::string file = given_file.empty() ? given_file : fs::absolute(given_file).lexically_normal().string();
  if (json_text.compare(0, 3, "\xEF\xBB\xBF") == 0)
    fail(file, "starts with a UTF-8 byte-order mark (BOM), which JSON does not allow", "save it as UTF-8 without BOM");
  JsonLimits limits;
  limits.reject_duplicate_keys = true;
  json root = parse_json(json_text, file, limits);
  if (!root.is_object()) fail(file, "a job config must be a JSON object");
  const auto keys = job_config_keys();
  std::map<std::string, std::string> origins;  // dotted key -> the --set argument that set it
  for (const auto& o : overrides) apply_override(root, o, keys, &origins);

  JobConfig c;
  c.file = file;
  try {
    // A data preset fills the templates first; the keys of the data section override it.
    const json preset = root.value("/data/preset"_json_pointer, json());
    if (preset.is_string() && !preset.get<std::string>().empty()) {
      try {
        apply_data_preset(preset.get<std::string>(), &c.data);
      } catch (const Error&) {
        const auto origin = origins.find("data.preset");
        fail(origin != origins.end() ? origin->second : file + ": data.preset",
             "'" + preset.get<std::string>() + "' is not a preset", "use one of " + join_choices(data_preset_names()));
      }
    }
    Reader reader(JsonObjectReader(root, "", file, &origins));
    describe(c, reader);
    reader.finish();
    validate(c, file, origins);

    // Absolute, so that errors, the effective config and resume checks name one file whatever the
    // current folder.
    PathResolver resolve(fs::path(file).parent_path(), origins, file, !c.model.init_arch.empty());
    describe(c, resolve);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    // A bad value given with --set is a command-line mistake: exit status 2, naming the argument.
    if (e.where().rfind("--set ", 0) == 0) throw UsageError("", e.what());
    throw;
  }
  return c;
}

void check_launch(const JobConfig& c, int world_size) {
  if (world_size <= 1) return;
}

JobConfig load_job_config(const std::string& file, const std::vector<std::string>& overrides) {
  return parse_job_config(read_text_file(file, "the config file"), file, overrides);
}

std::string job_config_to_json(const JobConfig& config) {
  JobConfig copy = config;
  json j = json::object();
  Writer writer(j);
  describe(copy, writer);
  return j.dump(2) + "\n";
}

std::vector<std::string> job_config_keys() {
  JobConfig c;
  std::vector<std::string> keys;
  KeyLister lister(keys);
  describe(c, lister);
  return keys;
}

std::string tokenizer_path(const JobConfig& config) {
  if (!config.tokenizer.path.empty()) return config.tokenizer.path;
  std::error_code ec;
  if (!config.model.init_arch.empty() && !fs::exists(config.model.path, ec))
    fail(config.file + ": tokenizer.path", "is needed: model.path " + config.model.path + " does not exist yet",
         "model.init_arch creates it at train time with the vocabulary of tokenizer.path, e.g. data/tokenizer");
  return config.model.path;
}

std::vector<JobInput> job_config_inputs(const JobConfig& config) {
  const std::string in = " (" + config.file + ")";
  std::error_code ec;
  const bool tokenizer_folder = fs::is_directory(config.tokenizer.path, ec);
  return {{config.file, "the config file"},
          {config.model.path, "model.path" + in, true},
          {config.tokenizer.path, "tokenizer.path" + in, tokenizer_folder},
          {config.data.train_file, "data.train_file" + in},
          {config.data.valid_file, "data.valid_file" + in},
          {config.data.test_file, "data.test_file" + in},
          {config.data.train_golds_file, "data.train_golds_file" + in},
          {config.data.valid_golds_file, "data.valid_golds_file" + in},
          {config.data.test_golds_file, "data.test_golds_file" + in},
          {config.objective.reference_model, "objective.reference_model" + in, true},
          {config.lora.init_adapter, "lora.init_adapter" + in, true}};
}

}  // namespace percetrain
