// Names of the choice values a config key accepts, listed once per enum: parsing, writing the
// effective config and error hints all read the same list.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace percetrain {

// Specialise with `static constexpr std::pair<E, const char*> values[] = {...};`.
template <class E>
struct EnumNames;

template <class E>
std::string enum_name(E value) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (v == value) return name;
  return "?";
}

// False when `text` names no value.
template <class E>
bool enum_from_name(const std::string& text, E* out) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (text == name) {
      *out = v;
      return true;
    }
  return false;
}

template <class E>
std::vector<std::string> enum_names() {
  std::vector<std::string> out;
  for (const auto& entry : EnumNames<E>::values) out.emplace_back(entry.second);
  return out;
}

// "a, b or c".
inline std::string join_choices(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

}  // namespace percetrain
