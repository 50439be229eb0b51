// The c10d process-group communicator behind make_communicator (the one file that sees c10d).
#pragma once

#include <chrono>
#include <memory>

#include "percetrain/dist/communicator.hpp"

namespace percetrain::dist_detail {

// `backend` is kGloo or kNccl (already resolved and checked against the build).
std::unique_ptr<Communicator> make_c10d_communicator(const DistEnv& env, DistBackend backend,
                                                     std::chrono::milliseconds timeout, const c10::Device& device);

}  // namespace percetrain::dist_detail
