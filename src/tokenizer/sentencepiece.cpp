// SentencePiece tokenizer (tokenizer.model) with HF Llama conventions, and the model-folder loader.
#include "percetrain/tokenizer/tokenizer.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "percetrain/util/error.hpp"
#include "tokenizer/spm_module/spm_backend.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char kSpaceMarker[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

bool starts_with_space_marker(const std::string& piece) {
  return piece.rfind(kSpaceMarker, 0) == 0;
}

// A config file beside the model; std::nullopt when absent. Malformed JSON names the file:
// a half-written tokenizer_config.json must not silently fall back to defaults.
std::optional<json> read_json_if_present(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), "cannot open for reading");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    fail(file.string(), "malformed JSON: " + what, "fix the file or remove it to use the defaults");
  }
  if (!j.is_object()) fail(file.string(), "expected a JSON object at the top level");
  return j;
}

// HF writes special tokens as "<s>" or as {"content": "<s>", "lstrip": false, ...}; null means
// the tokenizer has no such token.
struct TokenField {
  bool present = false;
  bool null = false;
  std::string content;
};

TokenField token_field(const json& cfg, const std::string& key, const std::string& file) {
  TokenField f;
  const auto it = cfg.find(key);
  if (it == cfg.end()) return f;
  f.present = true;
  if (it->is_null()) {
    f.null = true;
  } else if (it->is_string()) {
    f.content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    f.content = (*it)["content"].get<std::string>();
  } else {
    fail(file + ": " + key, "expected a token string or an object with a \"content\" string");
  }
  return f;
}

std::optional<bool> bool_field(const json& cfg, const std::string& key, const std::string& file) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) fail(file + ": " + key, "expected true or false");
  return it->get<bool>();
}

// generation_config.json ids are an int or a list of ints (several stop tokens); the first one
// is the tokenizer's own.
std::optional<int> id_field(const json& cfg, const std::string& key, const std::string& file) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  const json* v = &*it;
  if (v->is_array()) {
    if (v->empty()) return std::nullopt;
    v = &(*v)[0];
  }
  if (!v->is_number_integer()) fail(file + ": " + key, "expected an integer or a list of integers");
  return v->get<int>();
}

// Opens libpercetrain_spm.so once (see spm_backend.hpp for why sentencepiece lives in its own
// symbol scope). Looked for beside the running executable, then where the build put it.
std::unique_ptr<SpmBackend> create_spm_backend() {
  using Create = SpmBackend* (*)();
  static Create create = []() -> Create {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("PERCETRAIN_SPM_MODULE")) candidates.push_back(env);
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      candidates.push_back((exe.parent_path() / "libpercetrain_spm.so").string());
      candidates.push_back((exe.parent_path() / ".." / "lib" / "percetrain" / "libpercetrain_spm.so").string());
    }
    candidates.push_back(PERCETRAIN_SPM_MODULE);
    std::string tried;
    for (const auto& path : candidates) {
      if (!fs::exists(path, ec)) {
        tried += (tried.empty() ? "" : ", ") + path;
        continue;
      }
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!handle) fail(path, std::string("cannot load the SentencePiece module: ") + ::dlerror());
      if (auto fn = reinterpret_cast<Create>(::dlsym(handle, "percetrain_spm_create"))) return fn;
      fail(path, "is not percetrain's SentencePiece module");
    }
    fail("libpercetrain_spm.so", "not found (looked at " + tried + ")",
         "build the percetrain_spm target, or set PERCETRAIN_SPM_MODULE to its path");
  }();
  return std::unique_ptr<SpmBackend>(create());
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_file) : file_(model_file) {
    std::error_code ec;
    if (!fs::exists(model_file, ec))
      fail(model_file, "no such file", "expected a SentencePiece tokenizer.model");
    if (fs::is_directory(model_file, ec))
      fail(model_file, "is a folder, not a SentencePiece model file",
           "pass the tokenizer.model inside it, or load the folder with load_tokenizer");
    sp_ = create_spm_backend();
    std::string why;
    if (!sp_->load(model_file, &why)) {
      // The library reports a protobuf parse failure as its own source line; say it plainly.
      if (why.find("ParseFromArray") != std::string::npos)
        why = "not a SentencePiece model protobuf";
      fail(model_file, "cannot load SentencePiece model: " + why,
           "expected a tokenizer.model written by sentencepiece; is it truncated or corrupt?");
    }
    size_ = sp_->piece_size();
    if (size_ <= 0) fail(model_file, "SentencePiece model has no pieces");

    bos_id_ = sp_->bos_id();
    eos_id_ = sp_->eos_id();
    pad_id_ = sp_->pad_id();
    add_bos_ = true;  // Llama's defaults; tokenizer_config.json may say otherwise
    add_eos_ = false;
    detect_dummy_prefix();
    read_configs(fs::path(model_file).parent_path());
  }

  std::vector<int> encode(const std::string& text, bool add_special) const override {
    std::vector<int> body;
    std::string why;
    if (!sp_->encode(text, &body, &why)) fail(file_, "cannot encode text: " + why);
    std::vector<int> ids;
    ids.reserve(body.size() + 2);
    if (add_special && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
    ids.insert(ids.end(), body.begin(), body.end());
    if (add_special && add_eos_ && eos_id_ >= 0) ids.push_back(eos_id_);
    return ids;
  }

  // Special ids (control and <unk>) split the sequence into runs that SentencePiece decodes.
  // It drops the dummy-prefix space of the first visible piece only, so a run that follows
  // visible text gets that space back: [<s> ▁Hello </s> ▁world] -> "Hello world" when skipping
  // (as sp.decode), "<s> Hello</s> world" when not (specials rendered as their pieces count as
  // visible text, which is also how HF's tokenizer.json Llama decoder spaces them).
  std::string decode(const std::vector<int>& ids, bool skip_special) const override {
    std::string out;
    std::vector<int> run;
    const auto flush = [&] {
      if (run.empty()) return;
      std::string text;
      std::string why;
      if (!sp_->decode(run, &text, &why)) fail(file_, "cannot decode ids: " + why);
      if (!out.empty() && strips_dummy_prefix_ && starts_with_space_marker(sp_->id_to_piece(run[0])))
        out += ' ';
      out += text;
      run.clear();
    };
    for (const int id : ids) {
      check_id(id);
      if (is_special(id)) {
        flush();
        if (!skip_special) out += sp_->id_to_piece(id);
      } else {
        run.push_back(id);
      }
    }
    flush();
    return out;
  }

  std::string id_to_piece(int id) const override {
    check_id(id);
    return sp_->id_to_piece(id);
  }

  int piece_to_id(const std::string& piece) const override {
    const int id = sp_->piece_to_id(piece);  // SentencePiece answers unk_id for unknown pieces
    if (id < 0 || id >= size_) return -1;
    if (sp_->is_unknown(id) && sp_->id_to_piece(id) != piece) return -1;
    return id;
  }

  int vocab_size() const override { return size_; }

  // <s>, </s> (control pieces) and <unk>: HF counts unk among all_special_ids and skips it with
  // skip_special_tokens=True. Byte-fallback pieces (<0x41>) are text, not special.
  bool is_special(int id) const override {
    return id >= 0 && id < size_ && (sp_->is_control(id) || sp_->is_unknown(id));
  }

 private:
  void check_id(int id) const {
    if (id < 0 || id >= size_)
      fail(file_, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                      std::to_string(size_) + ")");
  }

  // Models trained with add_dummy_prefix (Llama) drop the leading space of the first decoded
  // piece; find out once from the model itself rather than parsing its normalizer spec.
  void detect_dummy_prefix() {
    for (int id = 0; id < size_; ++id) {
      if (sp_->is_control(id) || sp_->is_unknown(id) || sp_->is_byte(id) || sp_->is_unused(id)) continue;
      const std::string piece = sp_->id_to_piece(id);
      if (!starts_with_space_marker(piece)) continue;
      std::string text;
      std::string why;
      if (!sp_->decode(std::vector<int>{id}, &text, &why)) return;
      const std::string spelled = " " + piece.substr(sizeof(kSpaceMarker) - 1);
      strips_dummy_prefix_ = text.size() < spelled.size();
      return;
    }
  }

  int resolve(const TokenField& f, const std::string& key, const std::string& file) const {
    if (f.null) return -1;
    const int id = piece_to_id(f.content);
    if (id < 0)
      fail(file + ": " + key, "token '" + f.content + "' is not in the SentencePiece vocabulary",
           "added tokens (added_tokens.json) are not supported by the SentencePiece tokenizer yet");
    return id;
  }

  int checked_config_id(int id, const std::string& key, const std::string& file) const {
    if (id < 0 || id >= size_)
      fail(file + ": " + key,
           "id " + std::to_string(id) + " is outside the SentencePiece vocabulary [0, " +
               std::to_string(size_) + ")",
           "added tokens are not supported by the SentencePiece tokenizer yet");
    return id;
  }

  // Later files override earlier ones, in the order transformers reads them: the model's ids,
  // then tokenizer_config.json, special_tokens_map.json, and generation_config.json's bos/eos
  // ids (what the model was trained to emit). A pad token that is not in the vocabulary
  // (usually an added "[PAD]") is ignored: pad_id stays as the model says; padding is masked.
  void read_configs(const fs::path& dir) {
    const auto apply_tokens = [&](const json& cfg, const std::string& file) {
      if (const auto f = token_field(cfg, "bos_token", file); f.present)
        bos_id_ = resolve(f, "bos_token", file);
      if (const auto f = token_field(cfg, "eos_token", file); f.present)
        eos_id_ = resolve(f, "eos_token", file);
      if (const auto f = token_field(cfg, "pad_token", file); f.present) {
        const int id = f.null ? -1 : piece_to_id(f.content);
        if (f.null || id >= 0) pad_id_ = id;
      }
    };
    const auto tc_file = dir / "tokenizer_config.json";
    if (const auto cfg = read_json_if_present(tc_file)) {
      const std::string file = tc_file.string();
      if (const auto b = bool_field(*cfg, "add_bos_token", file)) add_bos_ = *b;
      if (const auto b = bool_field(*cfg, "add_eos_token", file)) add_eos_ = *b;
      apply_tokens(*cfg, file);
    }
    const auto stm_file = dir / "special_tokens_map.json";
    if (const auto cfg = read_json_if_present(stm_file)) apply_tokens(*cfg, stm_file.string());
    const auto gen_file = dir / "generation_config.json";
    if (const auto cfg = read_json_if_present(gen_file)) {
      const std::string file = gen_file.string();
      if (const auto id = id_field(*cfg, "bos_token_id", file))
        bos_id_ = checked_config_id(*id, "bos_token_id", file);
      if (const auto id = id_field(*cfg, "eos_token_id", file))
        eos_id_ = checked_config_id(*id, "eos_token_id", file);
    }
  }

  std::unique_ptr<SpmBackend> sp_;
  std::string file_;
  int size_ = 0;
  bool strips_dummy_prefix_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

// Lives here until tokenizer.json support adds a second implementation to choose from.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const fs::path p(path);
  const char* json_hint =
      "a later change adds it; a folder with a SentencePiece tokenizer.model works today";
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "tokenizer.model", ec))
      return load_sentencepiece_tokenizer((p / "tokenizer.model").string());
    if (fs::exists(p / "tokenizer.json", ec))
      fail(path, "has only tokenizer.json, and tokenizer.json support is not built yet", json_hint);
    fail(path, "no tokenizer.model or tokenizer.json in this folder",
         "point at a Hugging Face model folder or at a tokenizer file");
  }
  if (!fs::exists(p, ec))
    fail(path, "no such file or folder", "expected a model folder or a tokenizer file");
  if (p.extension() == ".model") return load_sentencepiece_tokenizer(path);
  if (p.extension() == ".json") fail(path, "tokenizer.json support is not built yet", json_hint);
  fail(path, "not a known tokenizer file",
       "expected a model folder, a SentencePiece .model file or a tokenizer.json");
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.model",         "tokenizer.json",         "tokenizer_config.json",
      "special_tokens_map.json", "generation_config.json", "added_tokens.json"};
  return names;
}

}  // namespace percetrain
