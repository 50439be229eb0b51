// SentencePiece tokenizer (tokenizer.model) with HF Llama conventions, and the model-folder loader.
#include "percetrain/tokenizer/tokenizer.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "percetrain/util/error.hpp"
#include "tokenizer/config_files.hpp"
#include "tokenizer/hf_tokenizer.hpp"
#include "tokenizer/spm_module/spm_backend.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;

const char kSpaceMarker[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

bool starts_with_space_marker(const std::string& piece) {
  return piece.rfind(kSpaceMarker, 0) == 0;
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

  // Later files override earlier ones (see tokenizer_files::read_special_ids).
  void read_configs(const fs::path& dir) {
    tokenizer_files::SpecialIds ids{bos_id_, eos_id_, pad_id_, std::nullopt, std::nullopt};
    tokenizer_files::read_special_ids(
        dir, &ids,
        [&](const std::string& token, const std::string& where) {
          const int id = piece_to_id(token);
          if (id < 0)
            fail(where, "token '" + token + "' is not in the SentencePiece vocabulary",
                 "added tokens (added_tokens.json) are not supported by the SentencePiece tokenizer yet");
          return id;
        },
        [&](const std::string& token) { return piece_to_id(token); },
        [&](int id, const std::string& where) {
          if (id < 0 || id >= size_)
            fail(where,
                 "id " + std::to_string(id) + " is outside the SentencePiece vocabulary [0, " +
                     std::to_string(size_) + ")",
                 "added tokens are not supported by the SentencePiece tokenizer yet");
          return id;
        });
    bos_id_ = ids.bos;
    eos_id_ = ids.eos;
    pad_id_ = ids.pad;
    if (ids.add_bos) add_bos_ = *ids.add_bos;
    if (ids.add_eos) add_eos_ = *ids.add_eos;
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

// A folder with tokenizer.json prefers it, as transformers' fast tokenizers do; when it uses a
// component percetrain does not implement (e.g. Llama 2's Metaspace) and a tokenizer.model sits
// beside it, SentencePiece reads the folder instead: it is the exact reference for those models.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    const bool has_model = fs::exists(p / "tokenizer.model", ec);
    if (fs::exists(p / "tokenizer.json", ec)) {
      try {
        return load_hf_json_tokenizer((p / "tokenizer.json").string());
      } catch (const UnsupportedTokenizerComponent&) {
        if (!has_model) throw;
      }
    }
    if (has_model) return load_sentencepiece_tokenizer((p / "tokenizer.model").string());
    fail(path, "no tokenizer.model or tokenizer.json in this folder",
         "point at a Hugging Face model folder or at a tokenizer file");
  }
  if (!fs::exists(p, ec))
    fail(path, "no such file or folder", "expected a model folder or a tokenizer file");
  if (p.extension() == ".model") return load_sentencepiece_tokenizer(path);
  if (p.extension() == ".json") return load_hf_json_tokenizer(path);
  fail(path, "not a known tokenizer file",
       "expected a model folder, a SentencePiece .model file or a tokenizer.json");
}

size_t Tokenizer::max_token_bytes() const {
  if (max_token_bytes_ == 0) {
    size_t longest = 1;
    for (int id = 0; id < vocab_size(); ++id) longest = std::max(longest, id_to_piece(id).size());
    max_token_bytes_ = longest;
  }
  return max_token_bytes_;
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.model",         "tokenizer.json",         "tokenizer_config.json",
      "special_tokens_map.json", "generation_config.json", "added_tokens.json"};
  return names;
}

}  // namespace percetrain
