// libpercetrain_spm.so: SpmBackend on top of libsentencepiece (see spm_backend.hpp for why this
// is a module of its own).
#include "spm_backend.hpp"

#include <sentencepiece_processor.h>

namespace percetrain {
namespace {

class SentencePieceBackend final : public SpmBackend {
 public:
  bool load(const std::string& model_file, std::string* error) override {
    const auto status = sp_.Load(model_file);
    if (!status.ok()) *error = status.error_message();
    return status.ok();
  }
  int piece_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  int pad_id() const override { return sp_.pad_id(); }
  bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const override {
    const auto status = sp_.Encode(text, ids);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const override {
    const auto status = sp_.Decode(ids, text);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  std::string id_to_piece(int id) const override { return sp_.IdToPiece(id); }
  int piece_to_id(const std::string& piece) const override { return sp_.PieceToId(piece); }
  bool is_unknown(int id) const override { return sp_.IsUnknown(id); }
  bool is_control(int id) const override { return sp_.IsControl(id); }
  bool is_byte(int id) const override { return sp_.IsByte(id); }
  bool is_unused(int id) const override { return sp_.IsUnused(id); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace
}  // namespace percetrain

extern "C" __attribute__((visibility("default"))) percetrain::SpmBackend* percetrain_spm_create() {
  return new percetrain::SentencePieceBackend();
}
