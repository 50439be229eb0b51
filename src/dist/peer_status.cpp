// The status port of each rank and the parallel asking of every peer after a failure.
#include "peer_status.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "percetrain/util/error.hpp"

namespace percetrain::dist_detail {
namespace {

using Clock = std::chrono::steady_clock;

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

bool resolve_ipv4(const std::string& host, int port, sockaddr_in* out) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found) return false;
  std::memcpy(out, found->ai_addr, sizeof(sockaddr_in));
  ::freeaddrinfo(found);
  return true;
}

}  // namespace

PeerStatusServer::PeerStatusServer(std::function<std::string()> status) : status_(std::move(status)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("dist", std::string("cannot open the status socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(listen_fd_);
    fail("dist", "cannot listen on the status socket: " + reason);
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

PeerStatusServer::~PeerStatusServer() {
  const char byte = 0;
  [[maybe_unused]] const ssize_t written = ::write(wake_[1], &byte, 1);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void PeerStatusServer::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    const std::string line = status_() + "\n";  // far below a socket buffer: one write suffices
    [[maybe_unused]] const ssize_t sent = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
}

std::string local_address_towards(const std::string& host, int port) {
  sockaddr_in remote{};
  if (!resolve_ipv4(host, port, &remote)) return "127.0.0.1";
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "127.0.0.1";
  sockaddr_in local{};
  socklen_t len = sizeof local;
  std::string out = "127.0.0.1";
  char text[INET_ADDRSTRLEN] = {0};
  // connect() on a datagram socket only picks the route and the source address.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
      ::inet_ntop(AF_INET, &local.sin_addr, text, sizeof text))
    out = text;
  ::close(fd);
  return out;
}

std::vector<PeerAnswer> ask_peers(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout) {
  struct Ask {
    int fd = -1;
    bool connected = false, done = true;
    std::string text;
  };
  std::vector<PeerAnswer> answers(endpoints.size());
  std::vector<Ask> asks(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (endpoints[i].empty()) {
      answers[i].kind = PeerAnswer::kAnswered;
      continue;
    }
    const size_t colon = endpoints[i].rfind(':');
    sockaddr_in addr{};
    if (colon == std::string::npos ||
        !resolve_ipv4(endpoints[i].substr(0, colon), std::atoi(endpoints[i].c_str() + colon + 1), &addr)) {
      answers[i] = {PeerAnswer::kUnreachable, "cannot resolve " + endpoints[i]};
      continue;
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      answers[i] = {PeerAnswer::kUnreachable, std::strerror(errno)};
      continue;
    }
    set_nonblocking(fd);
    asks[i].fd = fd;
    asks[i].done = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      asks[i].connected = true;
    } else if (errno != EINPROGRESS) {
      answers[i] = {errno == ECONNREFUSED ? PeerAnswer::kRefused : PeerAnswer::kUnreachable, std::strerror(errno)};
      asks[i].done = true;
    }
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (size_t i = 0; i < asks.size(); ++i)
      if (!asks[i].done) {
        fds.push_back({asks[i].fd, static_cast<short>(asks[i].connected ? POLLIN : POLLOUT), 0});
        which.push_back(i);
      }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (fds.empty() || left <= 0) break;
    if (::poll(fds.data(), fds.size(), static_cast<int>(left)) < 0 && errno != EINTR) break;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      Ask& a = asks[which[k]];
      PeerAnswer& answer = answers[which[k]];
      if (!a.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) {
          a.connected = true;
        } else {
          answer = {err == ECONNREFUSED ? PeerAnswer::kRefused : PeerAnswer::kUnreachable, std::strerror(err)};
          a.done = true;
        }
        continue;
      }
      char buffer[256];
      const ssize_t n = ::recv(a.fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        a.text.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (!a.text.empty() && a.text.back() == '\n') a.text.pop_back();
        answer = a.text.empty() ? PeerAnswer{PeerAnswer::kClosed, "closed without an answer"}
                                : PeerAnswer{PeerAnswer::kAnswered, a.text};
        a.done = true;
      }
    }
  }
  for (size_t i = 0; i < asks.size(); ++i) {
    if (!asks[i].done)
      answers[i] = asks[i].connected ? PeerAnswer{PeerAnswer::kSilent, "connected, but no answer"}
                                     : PeerAnswer{PeerAnswer::kUnreachable, "no answer to connect"};
    if (asks[i].fd >= 0) ::close(asks[i].fd);
  }
  return answers;
}

}  // namespace percetrain::dist_detail
