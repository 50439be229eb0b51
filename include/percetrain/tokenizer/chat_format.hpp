// Chat formats of instruction-tuned models: the prompt up to and including the assistant header,
// so that the response tokens a loss sees are exactly those the chat model generates after it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "percetrain/util/enum_names.hpp"

namespace percetrain {

// none: raw text. chatml: Qwen2/2.5 (<|im_start|>role\n...<|im_end|>\n). qwen3: chatml plus the
// empty thinking block Qwen3's own template writes before a non-reasoning answer (and after the
// header when enable_thinking=false), so training targets the answer as Qwen3 emits it without
// reasoning. llama3: Meta's header/eot format. llama2: [INST] <<SYS>> ... [/INST].
enum class ChatFormat { kNone, kChatml, kQwen3, kLlama3, kLlama2 };
template <>
struct EnumNames<ChatFormat> {
  static constexpr std::pair<ChatFormat, const char*> values[] = {{ChatFormat::kNone, "none"},
                                                                  {ChatFormat::kChatml, "chatml"},
                                                                  {ChatFormat::kQwen3, "qwen3"},
                                                                  {ChatFormat::kLlama3, "llama3"},
                                                                  {ChatFormat::kLlama2, "llama2"}};
};

// Error naming the known formats when `name` is not one of them.
ChatFormat parse_chat_format(const std::string& name, const std::string& where);

// The prompt text, without BOS: encode it with add_special=true, so that the tokenizer adds the
// BOS its model expects (Llama 2 and 3) or none (Qwen). An empty system prompt writes no system
// turn. llama3 and llama2 strip the messages' surrounding whitespace (Unicode whitespace too, as
// Python's str.strip()), as their templates do.
std::string format_chat_prompt(ChatFormat format, const std::string& system, const std::string& user);

// The text that ends an assistant turn: <|im_end|> (chatml, qwen3), <|eot_id|> (llama3),
// " </s>" (llama2: the template writes " " + answer + " " + EOS; the EOS is an id, so callers
// append eos_id rather than encoding "</s>"), "" for none (callers append EOS when they want one).
std::string chat_turn_end(ChatFormat format);

}  // namespace percetrain
