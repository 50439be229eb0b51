// Hugging Face repository ids ("Qwen/Qwen3-4B", "Qwen/Qwen3-4B@main") as model locations, resolved
// offline from the local Hub cache the way huggingface-cli download and transformers leave it.
#pragma once

#include <string>

namespace percetrain {

// The Hub cache: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface_hub's order).
std::string hf_hub_cache_dir();

// Whether `value` is shaped like a repository id: "name" or "owner/name" (letters, digits, '-',
// '_', '.'), optionally followed by "@revision".
bool looks_like_hf_repo_id(const std::string& value);

// A model location given as `value` (model.path, --model, --adapter, ...), where `local` is
// `value` resolved against its base folder. A local path that exists always wins. Otherwise a
// repository id found in the cache resolves to its snapshot folder, models--owner--name/
// snapshots/<commit>, for the revision after '@' (default main: a branch or tag under refs/, or a
// commit naming a snapshot folder). An "owner/name" id that is neither local nor cached is an
// error naming the command that downloads it (nothing is downloaded here); anything else is
// returned as `local`, for the loader to report as missing. `where` names the key or option.
std::string resolve_model_location(const std::string& value, const std::string& local, const std::string& where);

}  // namespace percetrain
