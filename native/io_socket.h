// The socket under a connection, plugged into ei as a user-supplied socket implementation (ussi).
//
// Why not ei's default TCP callbacks: they wait with select(), which is undefined for a descriptor
// >= FD_SETSIZE (a busy Node process easily has that many), and every _tmo write costs four
// fcntl() calls, a select() and a write(), every read a select() and a read(). Here ei keeps doing
// the distribution protocol (handshake, ticks, parsing control messages), but
//  - reads are served from a buffer the I/O thread fills with one recv() per wake-up, and the loop
//    hands a packet to ei only once all of it is buffered, so ei never waits on the network;
//  - once connected, ei's writes are "corked": appended to a buffer the loop queues and writes
//    without blocking (a node that stops reading cannot stall the thread);
//  - every wait polls the socket and the wake-up fd, so close() interrupts a connect at once.
// All timeouts are implemented here (EI_SCLBK_FLG_FULL_IMPL). The descriptor stays in blocking
// mode, as ei requires; non-blocking I/O uses MSG_DONTWAIT. MSG_NOSIGNAL: no SIGPIPE.
#pragma once

#include <ei.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io_wakeup.h"

namespace erlpeb {

struct SockCtx;

// Per connection; the setup context ei hands to the socket callback.
struct IoEnv {
  Wakeup* wake = nullptr;
  std::atomic<bool>* stop = nullptr;
  SockCtx* sock = nullptr;  // the socket ei created last and has not closed
  // What happened during the last connect, to explain a failure (ei only says "error").
  int lastError = 0;
  int handshakeWrites = 0;
  bool eof = false;
  char status[32] = {0};  // the handshake status the node sent: "ok", "nok", "not_allowed", ...
  // ei's timeouts are per socket operation; this bounds the whole handshake.
  bool hasDeadline = false;
  std::chrono::steady_clock::time_point deadline;

  void ResetDiagnostics() {
    lastError = 0;
    handshakeWrites = 0;
    eof = false;
    status[0] = 0;
  }
};

struct SockCtx {
  IoEnv* env = nullptr;
  int fd = -1;
  bool corked = false;
  std::vector<char> in;
  size_t inPos = 0, inEnd = 0;
  std::string out;  // what ei wrote while corked (answers to ticks), for the loop to queue

  size_t Buffered() const { return inEnd - inPos; }
  const unsigned char* Next() const { return reinterpret_cast<const unsigned char*>(in.data()) + inPos; }
};

namespace sockio {

constexpr size_t kReadChunk = 64 * 1024;

inline int Err() { return errno != 0 ? errno : EIO; }

// Waits until fd has `events`, up to tmo ms (EI_SCLBK_INF_TMO: forever). 0 when ready, ETIMEDOUT,
// ECANCELED when the connection is being stopped, or an errno.
inline int WaitFor(SockCtx* c, short events, unsigned tmo) {
  using Clock = std::chrono::steady_clock;
  bool forever = tmo == EI_SCLBK_INF_TMO;
  Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(forever ? 0 : tmo);
  if (c->env->hasDeadline && (forever || c->env->deadline < deadline)) {
    deadline = c->env->deadline;
    forever = false;
  }
  for (;;) {
    if (c->env->stop->load(std::memory_order_acquire)) return ECANCELED;
    int ms = -1;
    if (!forever) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      ms = static_cast<int>(std::max<long long>(0, std::min<long long>(left, 1 << 30)));
    }
    pollfd p[2] = {{c->fd, events, 0}, {c->env->wake->fd(), POLLIN, 0}};
    int r = poll(p, 2, ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Err();
    }
    if (p[1].revents != 0) {
      // A wake-up meant for the loop (a call queued meanwhile): the loop looks at its queues
      // after every connect anyway, so it is only the stop flag that matters here.
      c->env->wake->Drain();
      if (c->env->stop->load(std::memory_order_acquire)) return ECANCELED;
    }
    if (p[0].revents != 0) return 0;
    if (r == 0 || (!forever && Clock::now() >= deadline)) return ETIMEDOUT;
  }
}

inline int Note(SockCtx* c, int err) {
  c->env->lastError = err;
  return err;
}

inline int Socket(void** ctx, void* setup) {
  auto* env = static_cast<IoEnv*>(setup);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Err();
  auto* c = new (std::nothrow) SockCtx();
  if (c == nullptr) {
    close(fd);
    return ENOMEM;
  }
  c->env = env;
  c->fd = fd;
  env->sock = c;
  *ctx = c;
  return 0;
}

inline int Close(void* ctx) {
  auto* c = static_cast<SockCtx*>(ctx);
  if (c->env->sock == c) c->env->sock = nullptr;
  int r = close(c->fd);
  delete c;
  return r == 0 ? 0 : Err();
}

// A connection never listens or accepts: it is a client of one node.
inline int Listen(void*, void*, int*, int) { return ENOTSUP; }
inline int Accept(void**, void*, int*, unsigned) { return ENOTSUP; }

inline int Connect(void* ctx, void* addr, int len, unsigned tmo) {
  auto* c = static_cast<SockCtx*>(ctx);
  int flags = fcntl(c->fd, F_GETFL, 0);
  if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) return Note(c, Err());
  int err = connect(c->fd, static_cast<sockaddr*>(addr), static_cast<socklen_t>(len)) == 0 ? 0 : Err();
  if (err == EINPROGRESS || err == EINTR) {
    err = WaitFor(c, POLLOUT, tmo);
    if (err == 0) {
      socklen_t sl = sizeof err;
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0) err = Err();
    }
  }
  fcntl(c->fd, F_SETFL, flags);  // ei wants the descriptor back in blocking mode
  return Note(c, err);
}

// The first handshake packet is this node's name message, whose capability flags ei fixes
// without DFLAG_DIST_MONITOR_NAME (0x20). A node only sends MONITOR_P_EXIT to a peer with that
// flag, and the connection monitors call targets (by name and by pid) to learn at once that a
// name is not registered or a process died, so the flag is added as the packet is written.
// The packet is the documented 'N' (OTP 23+: flags in 8 bytes) or 'n' (4 bytes) name message
// after a 2-byte length; anything else is left alone, and calls then time out instead.
inline void AnnounceMonitorName(std::string& pkt) {
  if (pkt.size() < 3) return;
  auto* p = reinterpret_cast<unsigned char*>(&pkt[0]);
  size_t len = (size_t{p[0]} << 8) | p[1];
  if (len + 2 != pkt.size()) return;
  if (p[2] == 'N' && pkt.size() >= 2 + 1 + 8 + 4 + 2) {
    p[2 + 1 + 7] |= 0x20;  // flags: 8 bytes big-endian, the low byte last
  } else if (p[2] == 'n' && pkt.size() >= 2 + 1 + 2 + 4) {
    p[2 + 1 + 2 + 3] |= 0x20;  // version, then flags: 4 bytes big-endian
  }
}

inline int SendIov(SockCtx* c, const iovec* iov, int iovcnt, ssize_t* len, unsigned tmo) {
  if (!c->corked && c->env->handshakeWrites == 0) {
    std::string pkt;
    for (int i = 0; i < iovcnt; ++i) pkt.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    AnnounceMonitorName(pkt);
    for (;;) {
      ssize_t n = send(c->fd, pkt.data(), pkt.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        c->env->handshakeWrites++;
        *len = n;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Note(c, Err());
      int err = WaitFor(c, POLLOUT, tmo);
      if (err != 0) return Note(c, err);
    }
  }
  if (c->corked) {
    size_t total = 0;
    for (int i = 0; i < iovcnt; ++i) {
      c->out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      total += iov[i].iov_len;
    }
    *len = static_cast<ssize_t>(total);
    return 0;
  }
  for (;;) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      c->env->handshakeWrites++;
      *len = n;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Note(c, Err());
    int err = WaitFor(c, POLLOUT, tmo);
    if (err != 0) return Note(c, err);
  }
}

inline int Writev(void* ctx, const void* iov, int iovcnt, ssize_t* len, unsigned tmo) {
  return SendIov(static_cast<SockCtx*>(ctx), static_cast<const iovec*>(iov), iovcnt, len, tmo);
}

inline int Write(void* ctx, const char* buf, ssize_t* len, unsigned tmo) {
  iovec v{const_cast<char*>(buf), static_cast<size_t>(*len)};
  return SendIov(static_cast<SockCtx*>(ctx), &v, 1, len, tmo);
}

inline int Read(void* ctx, char* buf, ssize_t* len, unsigned tmo) {
  auto* c = static_cast<SockCtx*>(ctx);
  size_t want = static_cast<size_t>(*len);
  if (c->Buffered() > 0) {
    size_t n = std::min(want, c->Buffered());
    memcpy(buf, c->in.data() + c->inPos, n);
    c->inPos += n;
    *len = static_cast<ssize_t>(n);
    return 0;
  }
  for (;;) {
    ssize_t n = recv(c->fd, buf, want, MSG_DONTWAIT);
    if (n >= 0) {
      if (n == 0) c->env->eof = true;
      // The status packet of the handshake ('s' + text), kept to explain a refusal.
      if (!c->corked && c->env->handshakeWrites == 1 && n >= 2 && n < 32 && buf[0] == 's') {
        memcpy(c->env->status, buf + 1, static_cast<size_t>(n - 1));
        c->env->status[n - 1] = 0;
      }
      *len = n;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Note(c, Err());
    int err = WaitFor(c, POLLIN, tmo);
    if (err != 0) return Note(c, err);
  }
}

inline int HandshakeHeaderSize(void*, int* sz) {
  *sz = 2;
  return 0;
}

inline int HandshakeComplete(void* ctx) {
  auto* c = static_cast<SockCtx*>(ctx);
  int one = 1;
  // Small request/reply packets: never wait for Nagle. Keepalive finds a vanished peer.
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  return 0;
}

inline int GetFd(void* ctx, int* fd) {
  *fd = static_cast<SockCtx*>(ctx)->fd;
  return 0;
}

inline ei_socket_callbacks Callbacks() {
  ei_socket_callbacks cbs{};
  cbs.flags = EI_SCLBK_FLG_FULL_IMPL;
  cbs.socket = Socket;
  cbs.close = Close;
  cbs.listen = Listen;
  cbs.EI_ACCEPT_NAME = Accept;
  cbs.connect = Connect;
  cbs.writev = Writev;
  cbs.write = Write;
  cbs.read = Read;
  cbs.handshake_packet_header_size = HandshakeHeaderSize;
  cbs.connect_handshake_complete = HandshakeComplete;
  cbs.accept_handshake_complete = nullptr;
  cbs.get_fd = GetFd;
  return cbs;
}

// Reads whatever the socket holds into c->in, without blocking. Returns the number of bytes read,
// 0 at end of stream, -1 when nothing is available (or there is no room), -2 on error (errno set).
inline ssize_t ReadAvailable(SockCtx* c) {
  if (c->inPos == c->inEnd) c->inPos = c->inEnd = 0;
  if (c->in.size() < kReadChunk) c->in.resize(kReadChunk);
  if (c->in.size() - c->inEnd < kReadChunk / 4 && c->inPos > 0) {
    memmove(c->in.data(), c->in.data() + c->inPos, c->inEnd - c->inPos);
    c->inEnd -= c->inPos;
    c->inPos = 0;
  }
  size_t room = c->in.size() - c->inEnd;
  if (room == 0) return -1;
  for (;;) {
    ssize_t n = recv(c->fd, c->in.data() + c->inEnd, room, MSG_DONTWAIT);
    if (n > 0) {
      c->inEnd += static_cast<size_t>(n);
      return n;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    return -2;
  }
}

// Makes room for `need` bytes from c->inPos on (one whole packet), compacting first.
inline void Reserve(SockCtx* c, size_t need) {
  if (c->in.size() - c->inPos >= need) return;
  if (c->inPos > 0) {
    memmove(c->in.data(), c->in.data() + c->inPos, c->inEnd - c->inPos);
    c->inEnd -= c->inPos;
    c->inPos = 0;
  }
  if (c->in.size() < need) c->in.resize(need);
}

// After a large packet: give the memory back instead of keeping the high-water mark. Only when
// nothing is buffered, since room reserved for a packet still arriving must stay.
inline void Shrink(SockCtx* c) {
  if (c->in.size() > 4 * kReadChunk && c->Buffered() == 0) {
    std::vector<char>(kReadChunk).swap(c->in);
    c->inPos = c->inEnd = 0;
  }
  if (c->out.capacity() > 4 * kReadChunk && c->out.empty()) std::string().swap(c->out);
}

}  // namespace sockio
}  // namespace erlpeb
