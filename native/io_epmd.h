// Name resolution and the EPMD port lookup for a connection, done by the I/O thread itself so
// that a failure says which step failed (no such host, no EPMD, no such node) and close()
// interrupts it. The distribution connection then goes to the port directly.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_socket.h"

namespace erlpeb {
namespace epmd {

using Clock = std::chrono::steady_clock;

enum class Status { kOk, kFailed, kCanceled, kTimeout };

struct Deadline {
  Clock::time_point at;
  explicit Deadline(unsigned ms) : at(Clock::now() + std::chrono::milliseconds(ms)) {}
  unsigned LeftMs() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count();
    return left <= 0 ? 0u : static_cast<unsigned>(left);
  }
};

// Resolves an IPv4 address for `host` (ei speaks IPv4 only). getaddrinfo() cannot be interrupted:
// an unresponsive DNS server delays close() of a connecting connection until it gives up.
inline Status Resolve(const std::string& host, in_addr* out, std::string* error) {
  if (inet_pton(AF_INET, host.c_str(), out) == 1) return Status::kOk;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = "cannot resolve host '" + host + "' (" + gai_strerror(rc) + ")";
    return Status::kFailed;
  }
  *out = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return Status::kOk;
}

// Waits for `events` on fd until the deadline, waking early when the connection is stopped.
inline Status Wait(IoEnv* env, int fd, short events, const Deadline& d) {
  for (;;) {
    if (env->stop->load(std::memory_order_acquire)) return Status::kCanceled;
    unsigned left = d.LeftMs();
    if (left == 0) return Status::kTimeout;
    pollfd p[2] = {{fd, events, 0}, {env->wake->fd(), POLLIN, 0}};
    int r = poll(p, 2, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return Status::kFailed;
    if (r > 0 && p[1].revents != 0) env->wake->Drain();
    if (r > 0 && p[0].revents != 0) return Status::kOk;
  }
}

// PORT_PLEASE2_REQ for `alive` to EPMD at addr:epmdPort. On kOk *port is the node's distribution
// port; otherwise *error says what went wrong, naming the host as the user wrote it.
inline Status LookupPort(IoEnv* env, const in_addr& addr, int epmdPort, const std::string& alive,
                         const std::string& host, const Deadline& d, int* port, std::string* error) {
  if (alive.empty() || alive.size() > 255) {
    *error = "invalid node name";
    return Status::kFailed;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::string("cannot create a socket: ") + strerror(errno);
    return Status::kFailed;
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  const std::string where = "EPMD on " + host + " (port " + std::to_string(epmdPort) + ")";

  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = addr;
  sa.sin_port = htons(static_cast<uint16_t>(epmdPort));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS) {
    *error = "cannot reach " + where + ": " + strerror(errno);
    return Status::kFailed;
  }
  Status s = Wait(env, fd, POLLOUT, d);
  if (s == Status::kTimeout) *error = "no answer from " + where;
  if (s != Status::kOk) return s;
  int soErr = 0;
  socklen_t sl = sizeof soErr;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &sl);
  if (soErr != 0) {
    *error = soErr == ECONNREFUSED ? where + " refused the connection (is Erlang running on that host?)"
                                   : "cannot reach " + where + ": " + strerror(soErr);
    return Status::kFailed;
  }

  std::string req(3, '\0');
  req[0] = static_cast<char>(((alive.size() + 1) >> 8) & 0xff);
  req[1] = static_cast<char>((alive.size() + 1) & 0xff);
  req[2] = static_cast<char>(122);  // PORT_PLEASE2_REQ
  req += alive;
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      s = Wait(env, fd, POLLOUT, d);
      if (s == Status::kTimeout) *error = "no answer from " + where;
      if (s != Status::kOk) return s;
      continue;
    }
    *error = "lost the connection to " + where;
    return Status::kFailed;
  }

  // PORT2_RESP: 119, result, then (when result is 0) the port and more we do not need.
  unsigned char resp[4];
  size_t got = 0;
  while (got < sizeof resp) {
    ssize_t n = recv(fd, resp + got, sizeof resp - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      s = Wait(env, fd, POLLIN, d);
      if (s == Status::kTimeout) *error = "no answer from " + where;
      if (s != Status::kOk) return s;
      continue;
    }
    *error = "lost the connection to " + where;
    return Status::kFailed;
  }
  if (got >= 2 && resp[0] == 119 && resp[1] != 0) {
    *error = "no node named '" + alive + "' is registered with " + where + " (is it running?)";
    return Status::kFailed;
  }
  if (got < 4 || resp[0] != 119) {
    *error = "unexpected answer from " + where;
    return Status::kFailed;
  }
  *port = (resp[2] << 8) | resp[3];
  return Status::kOk;
}

}  // namespace epmd
}  // namespace erlpeb
