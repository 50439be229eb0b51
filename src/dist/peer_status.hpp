// Who is still there: every rank answers a one-line status on a small TCP port of its own, so
// that a rank whose collective failed can tell a lost peer (nothing listens: the process is
// gone) from a frozen one (the kernel accepts, nobody answers) and from a live one that has not
// reached the collective yet (it answers how many it has started).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace percetrain::dist_detail {

class PeerStatusServer {
 public:
  // Listens on every interface, on a port the kernel picks; `status` is called on the server's
  // thread for every connection and must be thread-safe.
  explicit PeerStatusServer(std::function<std::string()> status);
  ~PeerStatusServer();
  PeerStatusServer(const PeerStatusServer&) = delete;
  PeerStatusServer& operator=(const PeerStatusServer&) = delete;
  int port() const { return port_; }

 private:
  void serve();
  std::function<std::string()> status_;
  int listen_fd_ = -1, wake_[2] = {-1, -1}, port_ = 0;
  std::thread thread_;
};

// The local address this host uses to reach host:port (no packet is sent); "127.0.0.1" when it
// cannot be told.
std::string local_address_towards(const std::string& host, int port);

struct PeerAnswer {
  // kClosed: the connection was accepted and then closed (or reset) with no status line. A live
  // rank always answers, so this is a process being torn down: the kernel still completed the
  // handshake from the listening socket's backlog. kSilent: connected, and nothing within the time.
  enum Kind { kAnswered, kRefused, kClosed, kSilent, kUnreachable } kind = kUnreachable;
  std::string text;  // the status line, or the reason
};

// Asks every "address:port" in `endpoints` at once ("" = skip, answered with kAnswered and no
// text); returns within about `timeout`.
std::vector<PeerAnswer> ask_peers(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout);

}  // namespace percetrain::dist_detail
