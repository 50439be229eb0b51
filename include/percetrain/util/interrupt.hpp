// SIGINT / SIGTERM / SIGHUP for long jobs: the first signal asks the job to stop at its next safe
// point (train: after the current optimizer step, with a checkpoint; score and generate: after the
// current batch, with their output flushed); a second one exits at once.
#pragma once

#include <string>

#include "percetrain/util/error.hpp"

namespace percetrain {

// Installs the handlers (train, score and generate call it; other commands keep the defaults).
void install_interrupt_handlers();

// The signal that asked to stop, or 0.
int interrupt_signal();

// "SIGINT", "SIGTERM", "SIGHUP".
std::string signal_name(int signal);

// Thrown by a job that stopped at a safe point after a signal; main exits with 128 + signal.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& what, const std::string& hint)
      : Error("interrupted by " + signal_name(signal), what, hint), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace percetrain
