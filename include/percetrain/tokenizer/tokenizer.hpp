// The tokenizer interface the rest of percetrain sees, and the loader that picks an
// implementation from what a model folder holds.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace percetrain {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // add_special = true behaves like transformers' `add_special_tokens=True`: the BOS (and EOS)
  // the model's tokenizer_config.json asks for are added.
  virtual std::vector<int> encode(const std::string& text, bool add_special) const = 0;
  virtual std::string decode(const std::vector<int>& ids, bool skip_special) const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual int piece_to_id(const std::string& piece) const = 0;  // -1 when unknown
  virtual int vocab_size() const = 0;
  virtual bool is_special(int id) const = 0;

  // An upper bound of the bytes of text one token stands for (the longest piece as stored), so
  // that a text of B bytes has at least B / max_token_bytes() tokens: lengths can be checked
  // before tokenising a 50 MB field.
  size_t max_token_bytes() const;

  int bos_id() const { return bos_id_; }  // -1 when the tokenizer has none
  int eos_id() const { return eos_id_; }
  int pad_id() const { return pad_id_; }
  bool adds_bos() const { return add_bos_; }
  bool adds_eos() const { return add_eos_; }

 protected:
  int bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false;

 private:
  mutable size_t max_token_bytes_ = 0;
};

// `path` is a model folder (tokenizer.json or tokenizer.model, with tokenizer_config.json and
// friends beside it) or a tokenizer file itself. A folder with both prefers tokenizer.json, as
// transformers' fast tokenizers do, unless it uses a component percetrain does not implement.
// Unknown layouts are an error that names what was looked for.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// SentencePiece (`tokenizer.model`) with Llama's conventions: BOS added by default
// (tokenizer_config.json `add_bos_token`, default true), EOS only when `add_eos_token` is true.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_file);

// Hugging Face tokenizers' tokenizer.json: byte-level BPE (Qwen2/3, Llama 3, GPT-2 style), with
// its normalizer, Split/ByteLevel pre-tokenizers, added tokens and TemplateProcessing; BOS/EOS
// come from the post-processor, their ids also from the config files beside it. A component it
// does not implement is an error naming the component and where it sits in the file.
std::unique_ptr<Tokenizer> load_hf_json_tokenizer(const std::string& tokenizer_json);

// Files a saved model folder copies along with its weights, when present.
const std::vector<std::string>& tokenizer_file_names();

}  // namespace percetrain
