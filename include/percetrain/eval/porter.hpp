// NLTK's PorterStemmer in its default NLTK_EXTENSIONS mode (used by METEOR and ROUGE's --stem).
#pragma once

#include <string>
#include <string_view>

namespace percetrain::eval {

// Stems one word exactly as nltk.stem.porter.PorterStemmer().stem(word) does (lowercasing first).
std::string porter_stem(std::string_view word);

}  // namespace percetrain::eval
