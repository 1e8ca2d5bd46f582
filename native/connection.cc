#include "connection.h"

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include <poll.h>
#include <sys/socket.h>

#include "etf.h"
#include "io_epmd.h"

namespace erlpeb {

namespace {

// ei_init() sets up ei's own locks; once per process, whatever the number of environments.
std::once_flag eiInitOnce;

constexpr size_t kKeepScratch = 1024 * 1024;
constexpr unsigned kNoWait = 1000;  // ei never waits: it only parses packets already buffered
constexpr size_t kEiHeaderBuffer = 2048;  // EIRECVBUF in ei's receive code
constexpr uint8_t kCompressedTag = 80;
constexpr int kDrainRounds = 4;  // batches one drain takes before other I/O gets its turn

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

uint64_t IdArg(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) ThrowType(env, std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    ThrowType(env, std::string(what) + " must be a non-negative safe integer");
  }
  return static_cast<uint64_t>(d);
}

std::string AtomArg(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsString()) ThrowType(env, std::string(what) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  // 255 characters of at most 4 bytes each: Erlang's limit, checked in characters by the caller.
  if (s.size() > 1020) ThrowType(env, std::string(what) + " is too long for an atom");
  return s;
}

// A term from lib/connection.ts, appended to the packet without a version byte (an element of its
// tuple): info[at] is either the term's encode tape from the codec's fast path (tape, length,
// text, byteArrays at info[at], info[extra...extra + 2]), written straight into the packet, or,
// for what only the full encoder takes, term_to_binary's bytes (uncompressed: compressed bytes
// cannot be an element). Walking JS values from here through Node-API would cost several times
// more. False when the tape holds a value only the full encoder takes (nothing appended).
bool AppendTerm(Napi::Env env, const Napi::CallbackInfo& info, size_t at, size_t extra, std::string& out) {
  Napi::Value v = info[at];
  // (Node-API takes any typed array for a Buffer: the tape's type is looked at first, once.)
  bool typed = false;
  napi_typedarray_type type = napi_uint8_array;
  size_t tapeLength = 0;
  void* tapeData = nullptr;
  ERLPEB_NAPI(env, napi_is_typedarray(env, v, &typed));
  if (typed) ERLPEB_NAPI(env, napi_get_typedarray_info(env, v, &type, &tapeLength, &tapeData, nullptr, nullptr));
  const bool tape = typed && type == napi_float64_array;
  if (!tape && v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<uint8_t>>();
    const uint8_t* p = b.Data();
    if (b.Length() < 2 || p[0] != dist::kVersion || p[1] == kCompressedTag) {
      ThrowType(env, "an encoded term must be uncompressed external term format");
    }
    out.append(reinterpret_cast<const char*>(p) + 1, b.Length() - 1);
    return true;
  }
  if (!tape) ThrowType(env, "a term must come as an encode tape or a Buffer");
  const napi_value rest[3] = {info[extra], info[extra + 1], info[extra + 2]};
  size_t pos = out.size();
  if (!EncodeTape(AddonData::Of(env), env, static_cast<const double*>(tapeData), tapeLength, rest, out, &pos,
                  false, -1)) {
    return false;
  }
  out.resize(pos);  // the encoder took out.size() as capacity
  return true;
}

void ShrinkIfHuge(std::string& s) {
  if (s.capacity() > kKeepScratch) std::string().swap(s);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Core: main-thread side

Core::Core() {
  memset(&ec, 0, sizeof ec);
  callbacks = sockio::Callbacks();
  io.wake = &wake;
  io.stop = &stop;
  mbufSize = 4096;
  mbuf = static_cast<char*>(malloc(static_cast<size_t>(mbufSize)));
}

Core::~Core() {
  if (thread.joinable()) {  // only when construction failed half way
    stop.store(true, std::memory_order_release);
    wake.Notify();
    thread.join();
  }
  // ei keeps the cookie in ec: do not leave it behind in freed memory.
  volatile unsigned char* p = reinterpret_cast<volatile unsigned char*>(&ec);
  for (size_t i = 0; i < sizeof ec; ++i) p[i] = 0;
  free(mbuf);
}

// Writes what the socket takes now, without blocking; returns how much that was. *error is 0,
// EAGAIN when the socket is full, or the errno of a failed write.
size_t Core::WriteNowLocked(const char* p, size_t n, int* error) {
  size_t done = 0;
  *error = 0;
  while (done < n) {
    ssize_t w = send(sendFd, p + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      done += static_cast<size_t>(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      *error = w < 0 ? (errno == EWOULDBLOCK ? EAGAIN : errno) : EIO;
      break;
    }
  }
  return done;
}

// The first n queued bytes were written: calls in them can no longer be taken back. The bytes
// are dropped in bulk once they are most of the buffer, so that a long queue drained one
// partial write at a time is not moved again and again.
void Core::ConsumeLocked(size_t n) {
  if (n == 0) return;
  outHead += n;
  size_t keep = 0;
  for (const QueuedCall& q : outCalls) {
    if (q.begin >= outHead) outCalls[keep++] = q;
  }
  outCalls.resize(keep);
  if (outHead == out.size()) {
    ClearQueueLocked();
  } else if (outHead > 64 * 1024 && outHead * 2 > out.size()) {
    out.erase(0, outHead);
    for (QueuedCall& q : outCalls) {
      q.begin -= outHead;
      q.end -= outHead;
    }
    outHead = 0;
  }
}

void Core::ClearQueueLocked() {
  out.clear();
  outHead = 0;
  outCalls.clear();
  ShrinkIfHuge(out);
}

// Writes as much of the queue as the socket takes: 0 when all of it (or when there is no socket,
// and the queue waits for one), EAGAIN when the socket is full, or the errno of a failed write.
int Core::FlushLocked() {
  if (QueueEmptyLocked() || sendFd < 0) return 0;
  int error;
  ConsumeLocked(WriteNowLocked(out.data() + outHead, out.size() - outHead, &error));
  return QueueEmptyLocked() ? 0 : error;
}

void Core::Enqueue(const std::string& packets, size_t callFrom, uint64_t callId) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(outMu);
    size_t written = 0;
    if (!corked && sendFd >= 0 && QueueEmptyLocked()) {
      int error;
      written = WriteNowLocked(packets.data(), packets.size(), &error);
      if (written == packets.size()) return;
      // The rest (or all, after an error the I/O thread will report) waits in the queue.
    }
    size_t base = out.size();
    out.append(packets, written, std::string::npos);
    if (callId != 0 && written <= callFrom) outCalls.push_back({callId, base + callFrom - written, out.size()});
    if (!corked && !wakePending) {
      wakePending = true;
      notify = true;
    }
  }
  if (notify) Attend();
}

void Core::Uncork() {
  corked = false;
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(outMu);
    if (FlushLocked() == 0) return;
    if (!wakePending) {
      wakePending = true;
      notify = true;
    }
  }
  if (notify) Attend();
}

void Core::Attend() {
  attention.store(true, std::memory_order_release);
  wake.Notify();
}

bool Core::Cancel(uint64_t callId) {
  std::lock_guard<std::mutex> lock(outMu);
  for (size_t i = 0; i < outCalls.size(); ++i) {
    if (outCalls[i].id != callId) continue;
    size_t n = outCalls[i].end - outCalls[i].begin;
    out.erase(outCalls[i].begin, n);
    for (size_t j = i + 1; j < outCalls.size(); ++j) {
      outCalls[j].begin -= n;
      outCalls[j].end -= n;
    }
    outCalls.erase(outCalls.begin() + static_cast<ptrdiff_t>(i));
    if (QueueEmptyLocked()) ClearQueueLocked();
    return true;
  }
  return false;
}

void Core::DiscardQueued() {
  std::lock_guard<std::mutex> lock(outMu);
  ClearQueueLocked();
}

void Core::RequestConnect(const std::string& node, unsigned timeoutMs) {
  {
    std::lock_guard<std::mutex> lock(outMu);
    connectRequested = true;
    connectNode = node;
    connectTimeout = timeoutMs;
  }
  Attend();
}

void Core::Shutdown() {
  if (shutDown) return;
  shutDown = true;
  stop.store(true, std::memory_order_release);
  wake.Notify();
  if (thread.joinable()) thread.join();
  bool release;
  {
    std::lock_guard<std::mutex> lock(inMu);
    release = tsfnUsable;
    tsfnUsable = false;
  }
  if (release) tsfn.Release();
}

void Core::CleanupHook(void* arg) {
  auto* core = static_cast<Core*>(arg);
  core->hookActive = false;
  core->Shutdown();
}

void DrainEvents(Napi::Env env, Napi::Function, CoreRef* ref, void*) {
  if (static_cast<napi_env>(env) == nullptr || ref == nullptr) return;  // torn down with a drain queued
  ref->core->Drain(env);
}

// Events that arrive while a drain runs are taken by the same drain (a few rounds, then the event
// loop gets its turn): the I/O thread calls the thread-safe function only when no drain is pending
// or under way, because each call contends with this thread for the function's lock and wakes it
// once more.
void Core::Drain(Napi::Env env) {
  for (int round = 0;; ++round) {
    bool again = false;
    {
      std::lock_guard<std::mutex> lock(inMu);
      if (inbound.events.empty()) {
        drainPending = false;
        return;
      }
      if (round == kDrainRounds) {
        again = tsfnUsable;
        drainPending = again;
      } else {
        std::swap(inbound, draining);
      }
    }
    if (again) tsfn.NonBlockingCall();
    if (round == kDrainRounds) return;
    try {
      DrainOnce(env);
    } catch (...) {
      // Something threw on the way to JS or back: what came meanwhile still gets
      // a drain of its own.
      bool call;
      {
        std::lock_guard<std::mutex> lock(inMu);
        call = !inbound.events.empty() && tsfnUsable;
        drainPending = call;
      }
      if (call) tsfn.NonBlockingCall();
      throw;
    }
  }
}

void Core::DrainOnce(Napi::Env env) {
  if (closed || wrapper == nullptr || draining.events.empty()) {
    draining.Clear();
    return;
  }
  Napi::HandleScope scope(env);
  AddonData& data = AddonData::Of(env);
  const size_t n = draining.events.size();
  const auto* all = reinterpret_cast<const uint8_t*>(draining.bytes.data());
  // Four numbers per event in a Float64Array the wrapper keeps (no JS value per number): kind, id,
  // and where its term is on the batch's tape (-1: values[i] is the value itself).
  // onEvents(meta, n, values, tape, text, source) makes the terms with buildTerm.
  Napi::Float64Array meta = wrapper->Meta(env, 4 * n);
  double* m = meta.Data();
  Napi::Array values = Napi::Array::New(env, n);
  TermBatch batch(data, decode);
  for (size_t i = 0; i < n; ++i) {
    const Event& e = draining.events[i];
    uint32_t kind = static_cast<uint32_t>(e.kind);
    const uint8_t* bytes = all + e.begin;
    const size_t len = e.end - e.begin;
    double opsBegin = -1, opsEnd = -1;
    Napi::Value value;
    switch (e.kind) {
      case EventKind::kReply:
      case EventKind::kMessage:
      case EventKind::kDown: {
        try {
          // A message is a whole external term (version byte, possibly compressed); a reply and
          // an exit reason are terms inside one.
          bool batched = false;
          if (batch.usable()) {
            size_t at = e.begin + e.termAt;
            bool whole = false;
            bool fits = true;
            if (e.kind == EventKind::kMessage) {
              // Only what needs no inflating goes on the batch's tape: offsets there count
              // from the bytes of the drain.
              fits = len >= 2 && bytes[0] == dist::kVersion && bytes[1] != kCompressedTag;
              at = e.begin + 1;
              whole = true;
            }
            if (fits) {
              size_t b = 0, x = 0;
              if (batch.Add(env, all, at, e.end, whole, e.begin, &b, &x, &value)) {
                opsBegin = static_cast<double>(b);
                opsEnd = static_cast<double>(x);
                value = Napi::Value();  // built in JS from the tape
              } else {
                kind |= kDecodeFailed;
              }
              batched = true;
            }
          }
          if (!batched) {
            size_t offset = e.termAt;
            value = e.kind == EventKind::kMessage ? BinaryToTerm(data, env, bytes, len, decode)
                                                  : DecodeTerm(data, env, bytes, len, &offset, decode);
          }
        } catch (const Napi::Error& err) {
          value = err.Value();
          kind |= kDecodeFailed;
        } catch (const std::bad_alloc&) {
          value = Napi::RangeError::New(env, "erl-peb: out of memory decoding a term").Value();
          kind |= kDecodeFailed;
        }
        break;
      }
      case EventKind::kConnected:
        break;
      default:
        value = Napi::String::New(env, reinterpret_cast<const char*>(bytes), len);
        break;
    }
    m[4 * i] = kind;
    m[4 * i + 1] = static_cast<double>(e.id);
    m[4 * i + 2] = opsBegin;
    m[4 * i + 3] = opsEnd;
    // A hole reads as undefined: only values made here are set (each Set is a call into V8).
    if (!value.IsEmpty()) values.Set(static_cast<uint32_t>(i), value);
  }
  Napi::Function cb = wrapper->onEvents.Value();
  if (cb.IsEmpty()) {
    draining.Clear();
    return;
  }
  napi_value made[3];
  if (batch.usable() && !batch.empty()) {
    batch.Finish(env, all, draining.bytes.size(), made);
  } else {
    made[0] = made[1] = made[2] = env.Undefined();
  }
  batch.Release();  // decodes made by listeners use the environment's state again
  draining.Clear();
  ShrinkIfHuge(draining.bytes);
  // onEvents rethrows a listener's error on the next tick; a throw that still gets here (Node-API
  // only warns of it before Node 22) leaves the next drain to the catch in Drain.
  cb.Call({meta, Napi::Number::New(env, static_cast<double>(n)), values, Napi::Value(env, made[0]),
           Napi::Value(env, made[1]), Napi::Value(env, made[2])});
}

// ---------------------------------------------------------------------------------------------
// Core: I/O thread

void Core::Run() {
  bool wantWrite = false;  // the queue still holds bytes the socket did not take
  bool look = false;       // the queue must be looked at (after a connect)
  while (!stop.load(std::memory_order_acquire)) {
    const bool attend = attention.exchange(false, std::memory_order_acq_rel);
    std::string node;
    unsigned timeoutMs = 0;
    bool doConnect = false;
    if (attend) {
      std::lock_guard<std::mutex> lock(outMu);
      if (connectRequested) {
        connectRequested = false;
        doConnect = true;
        node.swap(connectNode);
        timeoutMs = connectTimeout;
      }
    }
    if (doConnect) {
      DoConnect(node, timeoutMs);
      Publish();
      look = true;  // calls queued while there was no connection
      continue;
    }

    SockCtx* s = fd >= 0 ? io.sock : nullptr;
    if (s == nullptr) wantWrite = false;
    // outMu only when there is something to write: the main thread holds it while it writes.
    if (s != nullptr && (attend || look || wantWrite || !s->out.empty())) {
      look = false;
      int err;
      {
        std::lock_guard<std::mutex> lock(outMu);
        wakePending = false;
        // What ei wrote (answers to ticks) joins the queue behind whole packets.
        if (!s->out.empty()) {
          out += s->out;
          s->out.clear();
        }
        err = FlushLocked();
        wantWrite = !QueueEmptyLocked();
      }
      if (err != 0 && err != EAGAIN) {
        Lose(std::string("cannot write to the node: ") + strerror(err));
        Publish();
        continue;
      }
    }
    // While disconnected wakePending stays set: queued calls wait for the next connect, and
    // only connect and stop requests need to wake the thread.

    pollfd p[2] = {{wake.fd(), POLLIN, 0}, {-1, 0, 0}};
    if (s != nullptr) {
      p[1].fd = s->fd;
      p[1].events = static_cast<short>(POLLIN | (wantWrite ? POLLOUT : 0));
    }
    // No timeout: the node ticks this connection when it has heard nothing from it (even while
    // it sends), and ei answers each tick, so the connection never needs to tick on its own.
    int r = poll(p, s != nullptr ? 2 : 1, -1);
    if (r < 0) continue;  // EINTR
    if (p[0].revents != 0) wake.Drain();
    if (s != nullptr && (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      if (!ReadRound(s)) Lose(lostReason);
      Publish();
    }
  }
  CloseSocket();
}

namespace {

std::string Ms(unsigned ms) { return std::to_string(ms) + " ms"; }

// What went wrong in ei_xconnect_host_port_tmo, from what the socket callbacks saw.
std::string ExplainHandshake(const IoEnv& io, const std::string& node, const std::string& where,
                             unsigned timeoutMs) {
  int e = io.lastError;
  if (e == ECANCELED) return "closed while connecting";
  if (e == ETIMEDOUT) {
    return io.handshakeWrites == 0 ? "no answer from " + where + " within " + Ms(timeoutMs)
                                   : node + " did not complete the handshake within " + Ms(timeoutMs);
  }
  if (e == ECONNREFUSED) return where + " refused the connection";
  std::string status = io.status;
  if (!status.empty() && status != "ok" && status != "ok_simultaneous" && status != "alive") {
    std::string why = "the node refused the connection (status '" + status + "')";
    if (status == "not_allowed") {
      why += ": it does not accept this node's name (long names such as name@host.domain or name@1.2.3.4 "
             "and short names such as name@host do not mix), or net_kernel:allow/1 excludes it";
    } else if (status == "nok") {
      why += ": it is already setting up a connection from this node's name";
    }
    return why;
  }
  if (io.handshakeWrites >= 2 && (io.eof || e == ECONNRESET || e == EPIPE)) {
    return node + " rejected the handshake: the cookie does not match the node's";
  }
  if (io.eof || e == ECONNRESET) return node + " closed the connection during the handshake";
  if (e != 0) return "handshake with " + node + " failed: " + strerror(e);
  return "handshake with " + node + " failed (erl_errno " + std::to_string(erl_errno) + ")";
}

}  // namespace

void Core::DoConnect(const std::string& node, unsigned timeoutMs) {
  CloseSocket();  // a connect request replaces any connection (lib/connection.ts never overlaps them)
  epmd::Deadline deadline(timeoutMs);
  size_t at = node.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == node.size()) {
    AddText(EventKind::kConnectFailed, "invalid node name '" + node + "'");
    return;
  }
  const std::string alive = node.substr(0, at);
  const std::string host = node.substr(at + 1);
  std::string error;
  in_addr addr{};
  if (epmd::Resolve(host, &addr, &error) != epmd::Status::kOk) {
    AddText(EventKind::kConnectFailed, error);
    return;
  }
  int port = 0;
  epmd::Status st = epmd::LookupPort(&io, addr, epmdPort, alive, host, deadline, &port, &error);
  if (st == epmd::Status::kCanceled) error = "closed while connecting";
  if (st == epmd::Status::kTimeout) error += " within " + Ms(timeoutMs);
  if (st != epmd::Status::kOk) {
    AddText(EventKind::kConnectFailed, error);
    return;
  }

  io.ResetDiagnostics();
  io.hasDeadline = true;
  io.deadline = deadline.at;
  unsigned left = deadline.LeftMs();
  int newFd = left == 0 ? -1 : ei_xconnect_host_port_tmo(&ec, &addr, port, left);
  io.hasDeadline = false;
  const std::string where = node + " (" + host + ":" + std::to_string(port) + ")";
  if (left == 0) io.lastError = ETIMEDOUT;
  if (newFd < 0) {
    AddText(EventKind::kConnectFailed, ExplainHandshake(io, node, where, timeoutMs));
    return;
  }
  SockCtx* s = io.sock;
  if (s == nullptr || s->fd != newFd) {
    ei_close_connection(newFd);
    AddText(EventKind::kConnectFailed, "handshake with " + node + " left an unknown socket");
    return;
  }
  s->corked = true;
  fd = newFd;
  {
    std::lock_guard<std::mutex> lock(outMu);
    sendFd = newFd;
  }
  AddEvent(EventKind::kConnected, 0, nullptr, 0, 0);
}

bool Core::ReadRound(SockCtx* s) {
  // Bounded, so that a node that sends without pause cannot keep replies from being delivered
  // or requests from being written.
  for (int round = 0; round < 8; ++round) {
    ssize_t n = sockio::ReadAvailable(s);
    if (n == 0) {
      lostReason = "the node closed the connection";
      return false;
    }
    if (n == -2) {
      lostReason = std::string("connection error: ") + strerror(errno);
      return false;
    }
    if (n == -1) break;
    if (!ParsePackets(s)) return false;
    if (s->inEnd < s->in.size()) break;  // the socket had less than the room we offered: drained
  }
  sockio::Shrink(s);
  return true;
}

bool Core::ParsePackets(SockCtx* s) {
  while (s->Buffered() >= 4) {
    uint32_t len = dist::GetU32(s->Next());
    if (len > maxMessageSize) {
      // Refused before any of it is read into memory: the connection cannot skip a packet
      // without reading it, so it is dropped.
      lostReason = "the node sent a message of " + std::to_string(len) + " bytes, more than maxMessageSize (" +
                   std::to_string(maxMessageSize) + ")";
      return false;
    }
    if (s->Buffered() - 4 < len) {
      sockio::Reserve(s, 4 + static_cast<size_t>(len));
      break;
    }
    // ei copies the first 2048 bytes of a packet to parse the control message in them, and
    // checks no length while it does: the control message must be whole and within those.
    if (len != 0) {
      size_t end = dist::ControlEnd(s->Next() + 4, len);
      if (end == 0 || end > kEiHeaderBuffer) {
        lostReason = end == 0 ? "the node sent a malformed distribution packet"
                              : "the node sent a control message larger than ei can parse";
        return false;
      }
    }
    // The whole packet is buffered: ei parses it (and answers a tick) without touching the network.
    const size_t before = s->inPos;
    erlang_msg msg;
    int msglen = 0;
    int r = ei_receive_encoded_tmo(fd, &mbuf, &mbufSize, &msg, &msglen, kNoWait);
    if (s->inPos - before != 4 + static_cast<size_t>(len) || r < 0 || msglen < 0 || msglen > mbufSize) {
      lostReason = "the node sent a malformed distribution packet";
      return false;
    }
    const auto* payload = reinterpret_cast<const unsigned char*>(mbuf);
    const size_t n = static_cast<size_t>(msglen);
    uint64_t id = 0;
    size_t termAt = 0;
    if (r == ERL_SEND || r == ERL_REG_SEND) {
      if (dist::MatchReply(payload, n, me, &id, &termAt)) {
        AddEvent(EventKind::kReply, id, payload, n, termAt);
      } else {
        AddEvent(EventKind::kMessage, 0, payload, n, 0);
      }
    } else if (r == dist::kReceivedMonitorExit) {
      if (dist::MatchMonitorExit(payload, n, me, &id, &termAt)) {
        AddEvent(EventKind::kDown, id, payload, n, termAt);
      }
    }
    // Anything else (a tick, links, exit signals, monitors of our pid) needs nothing from us:
    // this node has no processes that could be linked or monitored.
    if (mbufSize > static_cast<int>(kKeepScratch)) {
      char* small = static_cast<char*>(malloc(4096));
      if (small != nullptr) {
        free(mbuf);
        mbuf = small;
        mbufSize = 4096;
      }
    }
  }
  if (s->inPos == s->inEnd) s->inPos = s->inEnd = 0;
  return true;
}

void Core::CloseSocket() {
  if (fd >= 0) {
    {
      std::lock_guard<std::mutex> lock(outMu);
      sendFd = -1;
      // A packet the socket took only part of cannot be finished on another connection.
      ClearQueueLocked();
    }
    ei_close_connection(fd);  // closes through our callbacks, which free the socket context
    fd = -1;
  }
}

void Core::Lose(const std::string& reason) {
  CloseSocket();
  AddText(EventKind::kDisconnected, reason);
}

void Core::AddEvent(EventKind kind, uint64_t id, const void* bytes, size_t n, size_t termAt) {
  size_t begin = local.bytes.size();
  if (n != 0) local.bytes.append(static_cast<const char*>(bytes), n);
  local.events.push_back({kind, id, begin, begin + n, termAt});
}

void Core::AddText(EventKind kind, const std::string& text) { AddEvent(kind, 0, text.data(), text.size(), 0); }

void Core::Publish() {
  if (local.events.empty()) return;
  std::lock_guard<std::mutex> lock(inMu);
  if (inbound.events.empty()) {
    std::swap(inbound, local);
  } else {
    size_t base = inbound.bytes.size();
    inbound.bytes += local.bytes;
    for (Event e : local.events) {
      e.begin += base;
      e.end += base;
      inbound.events.push_back(e);
    }
  }
  local.Clear();
  ShrinkIfHuge(local.bytes);
  if (!drainPending && tsfnUsable) {
    drainPending = true;
    tsfn.NonBlockingCall();
  }
}

// ---------------------------------------------------------------------------------------------
// Connection: the JS class

Napi::Function Connection::Define(Napi::Env env) {
  return DefineClass(env, "Connection",
                     {
                         InstanceMethod<&Connection::Connect>("connect"),
                         InstanceMethod<&Connection::Call>("call"),
                         InstanceMethod<&Connection::Rpc>("rpc"),
                         InstanceMethod<&Connection::Send>("send"),
                         InstanceMethod<&Connection::Demonitor>("demonitor"),
                         InstanceMethod<&Connection::Cancel>("cancel"),
                         InstanceMethod<&Connection::DiscardQueued>("discardQueued"),
                         InstanceMethod<&Connection::Cork>("cork"),
                         InstanceMethod<&Connection::Uncork>("uncork"),
                         InstanceMethod<&Connection::Ref>("ref"),
                         InstanceMethod<&Connection::Unref>("unref"),
                         InstanceMethod<&Connection::Close>("close"),
                         InstanceMethod<&Connection::Self>("self"),
                     });
}

void RegisterConnection(Napi::Env env, Napi::Object exports) { exports.Set("Connection", Connection::Define(env)); }

// new Connection({alive, host, cookie, creation, magic, maxMessageSize, epmdPort, decodeFlags,
//                 maxDepth, maxUncompressedSize}, onEvents). Options are validated in TypeScript;
// this only refuses what would be unsafe.
Connection::Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    ThrowType(env, "Connection(options, onEvents)");
  }
  Napi::Object o = info[0].As<Napi::Object>();
  auto str = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsString()) ThrowType(env, std::string(key) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  };
  auto num = [&](const char* key, double min, double max) {
    Napi::Value v = o.Get(key);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= min && d <= max)) ThrowType(env, std::string(key) + " is out of range");
    return d;
  };
  const std::string alive = str("alive");
  const std::string host = str("host");
  std::string cookie = str("cookie");
  if (alive.empty() || alive.size() > EI_MAXALIVELEN || host.empty() || host.size() > EI_MAXHOSTNAMELEN ||
      alive.size() + 1 + host.size() > MAXNODELEN) {
    ThrowType(env, "node name too long");
  }
  if (cookie.empty() || cookie.size() > EI_MAX_COOKIE_SIZE) ThrowType(env, "invalid cookie length");

  core_ = std::make_shared<Core>();
  Core& c = *core_;
  if (!c.wake.ok() || c.mbuf == nullptr) throw Napi::Error::New(env, "cannot allocate a connection");
  // ei takes lengths as int: keep every packet well inside that.
  c.maxMessageSize = static_cast<uint32_t>(num("maxMessageSize", 1024, 4294967295.0));
  if (c.maxMessageSize > 0x7ff00000u) c.maxMessageSize = 0x7ff00000u;
  c.epmdPort = static_cast<int>(num("epmdPort", 1, 65535));
  c.decode.flags = static_cast<uint32_t>(num("decodeFlags", 0, 0xffff));
  c.decode.maxDepth = static_cast<uint32_t>(num("maxDepth", 1, 4294967295.0));
  c.decode.maxUncompressedSize = static_cast<uint64_t>(num("maxUncompressedSize", 1, 9007199254740991.0));
  const uint32_t creation = static_cast<uint32_t>(num("creation", 1, 4294967295.0));
  const uint32_t magic = static_cast<uint32_t>(num("magic", 0, 4294967295.0));

  std::call_once(eiInitOnce, [] { ei_init(); });
  const std::string nodeName = alive + "@" + host;
  int rc = ei_connect_xinit_ussi(&c.ec, host.c_str(), alive.c_str(), nodeName.c_str(), nullptr, cookie.c_str(),
                                 creation, &c.callbacks, sizeof c.callbacks, &c.io);
  std::fill(cookie.begin(), cookie.end(), '\0');
  if (rc < 0) throw Napi::Error::New(env, "cannot set up the C-node " + nodeName);
  const erlang_pid* self = ei_self(&c.ec);
  c.me.Init(nodeName, self->num, self->serial, self->creation, magic);

  auto ref = std::make_unique<CoreRef>(CoreRef{core_});
  c.tsfn = EventsTsfn::New(
      env, "erl-peb connection", 0, 1, ref.get(),
      [](Napi::Env, void*, CoreRef* r) {
        {
          std::lock_guard<std::mutex> lock(r->core->inMu);
          r->core->tsfnUsable = false;
        }
        delete r;
      },
      static_cast<void*>(nullptr));
  ref.release();
  c.tsfn.Unref(env);  // idle until lib/connection.ts says something is waiting
  c.env = env;
  c.wrapper = this;
  // Registered after the thread-safe function, so it runs before the function's own cleanup
  // (hooks run in reverse order): the thread is joined before the function goes away.
  if (napi_add_env_cleanup_hook(env, Core::CleanupHook, core_.get()) == napi_ok) c.hookActive = true;
  onEvents = Napi::Weak(info[1].As<Napi::Function>());
  Core* p = core_.get();
  c.thread = std::thread([p] { p->Run(); });
}

Connection::~Connection() {
  if (!core_) return;
  core_->wrapper = nullptr;
  core_->Shutdown();
  if (core_->hookActive) {
    napi_remove_env_cleanup_hook(core_->env, Core::CleanupHook, core_.get());
    core_->hookActive = false;
  }
}

Napi::Float64Array Connection::Meta(Napi::Env env, size_t length) {
  if (meta_.IsEmpty() || meta_.Value().ElementLength() < length) {
    meta_ = Napi::Persistent(Napi::Float64Array::New(env, std::max<size_t>(length, 256)));
  }
  return meta_.Value();
}

void Connection::CheckOpen(Napi::Env env) {
  if (core_->closed) {
    AddonData& data = AddonData::Of(env);
    throw Napi::Error(env, data.ClosedError.New({}));
  }
}

bool Connection::EncodeTarget(Napi::Env env, Napi::Value target, std::string& out) {
  if (target.IsString()) {
    std::string name = AtomArg(env, target, "a registered name");
    if (name.empty()) ThrowType(env, "a registered name cannot be empty");
    dist::PutAtom(out, name);
    return false;
  }
  if (!target.IsObject()) ThrowType(env, "the destination must be a registered name or a Pid");
  EncodeTerm(AddonData::Of(env), target, out, core_->encode);
  uint8_t t = out.empty() ? 0 : static_cast<uint8_t>(out[0]);
  if (t == dist::kNewPid) return true;
  if (t == dist::kSmallAtomUtf8 || t == dist::kAtomUtf8) return false;  // an Atom
  ThrowType(env, "the destination must be a registered name or a Pid");
}

// connect(node, timeoutMs): answered by a kConnected or kConnectFailed event.
Napi::Value Connection::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (!info[0].IsString()) ThrowType(env, "node must be a string");
  uint64_t timeout = IdArg(env, info[1], "timeout");
  core_->RequestConnect(info[0].As<Napi::String>().Utf8Value(),
                        static_cast<unsigned>(std::min<uint64_t>(std::max<uint64_t>(timeout, 1), 0x7fffffff)));
  return env.Undefined();
}

// call(id, target, request, monitorId[, length, text, byteArrays]): {'$gen_call', {Self, Ref},
// Request} to a name or pid, preceded by MONITOR_P of the target when monitorId is not 0. request:
// see AppendTerm. Returns false, queueing nothing, when the request needs the full encoder.
Napi::Value Connection::Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint64_t id = IdArg(env, info[0], "id");
  uint64_t monitorId = IdArg(env, info[3], "monitorId");
  target_.clear();
  bool isPid = EncodeTarget(env, info[1], target_);
  GenCall call = BeginGenCall(id, monitorId, isPid);
  if (!AppendTerm(env, info, 2, 4, scratch_)) return Napi::Boolean::New(env, false);
  EndGenCall(env, call, "the request is too large for one distribution packet");
  return Napi::Boolean::New(env, true);
}

// Starts, in scratch_, a gen_server call to target_: MONITOR_P of the target first when monitorId
// is not 0, then the packet up to and including `{'$gen_call', {Self, Ref}, ` (the request follows).
Connection::GenCall Connection::BeginGenCall(uint64_t id, uint64_t monitorId, bool isPid) {
  Core& c = *core_;
  std::string& s = scratch_;
  s.clear();
  if (monitorId != 0) c.me.PutMonitorPacket(s, dist::kOpMonitor, target_, monitorId);
  GenCall call{id, s.size(), 0};
  call.packetAt = dist::BeginPacket(s);
  c.me.PutSendControl(s, target_, isPid);
  s += c.me.genCallHead;
  c.me.PutRef(s, c.me.callMagic, id);
  return call;
}

// Closes the packet BeginGenCall started and queues it (with its monitor packet) for the socket.
void Connection::EndGenCall(Napi::Env env, const GenCall& call, const char* tooLarge) {
  std::string& s = scratch_;
  if (!dist::EndPacket(s, call.packetAt)) ThrowType(env, tooLarge);
  core_->Enqueue(s, call.callFrom, call.id);
  ShrinkIfHuge(s);
}

// rpc(id, module, fn, args, monitorId[, length, text, byteArrays]): {call, Module, Fn, Args, user}
// to rex as a gen_server call. args: the list, see AppendTerm (false as for call).
Napi::Value Connection::Rpc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint64_t id = IdArg(env, info[0], "id");
  std::string module = AtomArg(env, info[1], "module");
  std::string fn = AtomArg(env, info[2], "function");
  uint64_t monitorId = IdArg(env, info[4], "monitorId");
  target_.clear();
  dist::PutAtom(target_, "rex");
  GenCall call = BeginGenCall(id, monitorId, false);
  std::string& s = scratch_;
  s += static_cast<char>(dist::kSmallTuple);
  s += static_cast<char>(5);
  dist::PutAtom(s, "call");
  dist::PutAtom(s, module);
  dist::PutAtom(s, fn);
  if (!AppendTerm(env, info, 3, 5, s)) return Napi::Boolean::New(env, false);
  dist::PutAtom(s, "user");
  EndGenCall(env, call, "the arguments are too large for one distribution packet");
  return Napi::Boolean::New(env, true);
}

// send(target, term[, length, text, byteArrays]): term: see AppendTerm (false as for call).
Napi::Value Connection::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  Core& c = *core_;
  target_.clear();
  bool isPid = EncodeTarget(env, info[0], target_);
  std::string& s = scratch_;
  s.clear();
  size_t at = dist::BeginPacket(s);
  c.me.PutSendControl(s, target_, isPid);
  s += static_cast<char>(dist::kVersion);
  if (!AppendTerm(env, info, 1, 2, s)) return Napi::Boolean::New(env, false);
  if (!dist::EndPacket(s, at)) ThrowType(env, "the message is too large for one distribution packet");
  c.Enqueue(s, 0, 0);
  ShrinkIfHuge(s);
  return Napi::Boolean::New(env, true);
}

// demonitor(target, monitorId)
Napi::Value Connection::Demonitor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  target_.clear();
  EncodeTarget(env, info[0], target_);
  uint64_t monitorId = IdArg(env, info[1], "monitorId");
  std::string& s = scratch_;
  s.clear();
  core_->me.PutMonitorPacket(s, dist::kOpDemonitor, target_, monitorId);
  core_->Enqueue(s, 0, 0);
  return env.Undefined();
}

// cancel(id): takes a call back if it has not been written yet; true when it was.
Napi::Value Connection::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (core_->closed) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, core_->Cancel(IdArg(env, info[0], "id")));
}

Napi::Value Connection::Cork(const Napi::CallbackInfo& info) {
  if (!core_->closed) core_->corked = true;
  return info.Env().Undefined();
}

Napi::Value Connection::Uncork(const Napi::CallbackInfo& info) {
  if (!core_->closed) core_->Uncork();
  return info.Env().Undefined();
}

Napi::Value Connection::DiscardQueued(const Napi::CallbackInfo& info) {
  if (!core_->closed) core_->DiscardQueued();
  return info.Env().Undefined();
}

// ref()/unref(): while something waits on the connection (a connect, calls, receivers), it keeps
// the event loop alive, and it is kept alive itself: the callback is then held strongly, since
// the JS side may otherwise be reachable only through promises this connection will settle.
Napi::Value Connection::Ref(const Napi::CallbackInfo& info) {
  if (!core_->shutDown && !refed_) {
    core_->tsfn.Ref(info.Env());
    onEvents.Ref();
    refed_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value Connection::Unref(const Napi::CallbackInfo& info) {
  if (!core_->shutDown && refed_) {
    core_->tsfn.Unref(info.Env());
    onEvents.Unref();
    refed_ = false;
  }
  return info.Env().Undefined();
}

Napi::Value Connection::Close(const Napi::CallbackInfo& info) {
  if (!core_->closed) {
    core_->closed = true;
    if (refed_) {
      onEvents.Unref();
      refed_ = false;
    }
    core_->Shutdown();
    if (core_->hookActive) {
      napi_remove_env_cleanup_hook(core_->env, Core::CleanupHook, core_.get());
      core_->hookActive = false;
    }
  }
  return info.Env().Undefined();
}

// self(): [node, num, serial, creation] of this node's pid.
Napi::Value Connection::Self(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const dist::Identity& me = core_->me;
  Napi::Array a = Napi::Array::New(env, 4);
  a.Set(0u, Napi::String::New(env, me.node));
  a.Set(1u, Napi::Number::New(env, me.selfNum));
  a.Set(2u, Napi::Number::New(env, me.selfSerial));
  a.Set(3u, Napi::Number::New(env, me.creation));
  return a;
}

}  // namespace erlpeb
