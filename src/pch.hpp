// Precompiled header: the heavy third-party includes, compiled once for every target.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
