// Signal handlers that only set a flag (the first time) or exit (the second time): both are
// async-signal-safe.
#include "percetrain/util/interrupt.hpp"

#include <signal.h>
#include <unistd.h>

#include <csignal>

namespace percetrain {
namespace {

volatile std::sig_atomic_t received = 0;

void on_signal(int sig) {
  if (received != 0) _exit(128 + sig);
  received = sig;
  static const char message[] =
      "\npercetrain: stopping at the next safe point and saving; send the signal again to quit at once\n";
  ssize_t ignored = ::write(2, message, sizeof(message) - 1);
  (void)ignored;
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // interrupted system calls resume; the loops poll the flag
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);
}

int interrupt_signal() { return received; }


std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal " + std::to_string(signal);
  }
}

}  // namespace percetrain
