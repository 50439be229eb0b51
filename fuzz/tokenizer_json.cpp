// Fuzz target: a Hugging Face tokenizer.json, loaded, then used: a few texts encoded (with and
// without special tokens) and decoded back, and the first ids turned into pieces.
#include <algorithm>
#include <vector>

#include "fuzz_util.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = percetrain::fuzz::write_scratch("tokenizer.json", data, size);
  return percetrain::fuzz::expect_only_errors([&] {
    const auto tokenizer = percetrain::load_hf_json_tokenizer(path);
    static const char* const kTexts[] = {"", "Hello world! It's 2024.", "  tabs\tand\nnewlines  ",
                                         "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80",
                                         "<|endoftext|><s></s>[CLS]", "\xFF\xFE broken UTF-8 \xC3"};
    for (const char* text : kTexts)
      for (const bool special : {false, true}) {
        const std::vector<int> ids = tokenizer->encode(text, special);
        tokenizer->decode(ids, false);
        tokenizer->decode(ids, true);
      }
    const int n = std::min(tokenizer->vocab_size(), 64);
    for (int id = 0; id < n; ++id) tokenizer->piece_to_id(tokenizer->id_to_piece(id));
    tokenizer->max_token_bytes();
  });
}
