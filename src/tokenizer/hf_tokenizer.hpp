// Internal to the tokenizer loaders: the error a tokenizer.json with a component percetrain does
// not implement raises, so that a folder with a tokenizer.model can fall back to SentencePiece.
#pragma once

#include "percetrain/util/error.hpp"

namespace percetrain {

class UnsupportedTokenizerComponent : public Error {
 public:
  using Error::Error;
};

}  // namespace percetrain
