// The part of libsentencepiece percetrain uses, behind a vtable, implemented in a separately
// loaded module (libpercetrain_spm.so). Why: Debian's libsentencepiece carries its own copy of
// protobuf-lite (3.14) whose exported symbols clash with the libprotobuf (3.21) that LibTorch
// loads; in one symbol scope one or the other crashes or aborts at start-up. The module is
// opened with RTLD_LOCAL | RTLD_DEEPBIND so that sentencepiece binds to its own copy, and every
// call crosses over through virtual functions, which need no symbol lookup.
#pragma once

#include <string>
#include <vector>

namespace percetrain {

class SpmBackend {
 public:
  virtual ~SpmBackend() = default;
  // false with *error set when the file is not a SentencePiece model.
  virtual bool load(const std::string& model_file, std::string* error) = 0;
  virtual int piece_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int pad_id() const = 0;
  virtual bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const = 0;
  virtual bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual int piece_to_id(const std::string& piece) const = 0;
  virtual bool is_unknown(int id) const = 0;
  virtual bool is_control(int id) const = 0;
  virtual bool is_byte(int id) const = 0;
  virtual bool is_unused(int id) const = 0;
};

}  // namespace percetrain

// The module's one exported symbol; the caller owns the result.
extern "C" percetrain::SpmBackend* percetrain_spm_create();
