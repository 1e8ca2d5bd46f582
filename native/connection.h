// Connection: one hidden C-node connection to an Erlang node, backing lib/connection.ts.
//
// Threads. Each connection owns one I/O thread for its whole life. The thread connects (when the
// main thread asks), then loops on poll() over the socket and a wake-up fd, reading everything
// that arrives (ei answers the node's ticks) and writing whatever is queued. The one exception
// to "the I/O thread alone touches the socket": the main thread writes a call's packet itself,
// non-blocking and under the write lock, when nothing is queued before it, which saves a thread
// wake-up per call; what the socket does not take at once is left to the I/O thread.
// Results reach the main thread through one thread-safe function, called only when no drain is
// already pending; the drain takes everything queued at once. JS values are only ever touched on
// the main thread: a call is encoded when it is made, replies are decoded in the drain.
//
// Lifetime. Core holds what both threads share; the JS wrapper and the thread-safe function each
// keep it alive, so a drain still queued after the wrapper is gone finds valid memory. The thread
// is stopped and joined by close(), by the wrapper's finalizer (garbage collection), or by an
// environment cleanup hook (process exit, a worker_threads Worker ending), whichever comes first.
#pragma once

#include <napi.h>
#include <ei.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "addon_data.h"
#include "io_dist.h"
#include "io_socket.h"
#include "io_wakeup.h"
#include "term_codec.h"

namespace erlpeb {

// Registers the Connection class on `exports` (called from the addon's Init).
void RegisterConnection(Napi::Env env, Napi::Object exports);

// What the I/O thread reports. The numbers are those lib/connection.ts switches on.
enum class EventKind : uint8_t {
  kReply = 0,          // id: call id; term: the reply
  kMessage = 1,        // term: a message sent to this node's pid or to a name on it
  kDown = 2,           // id: monitor id; term: the exit reason
  kConnected = 3,      // the connection is up
  kConnectFailed = 4,  // bytes: why
  kDisconnected = 5,   // bytes: why
};
constexpr uint32_t kDecodeFailed = 0x80;  // or-ed into the kind: the term did not decode

struct Event {
  EventKind kind;
  uint64_t id;
  size_t begin, end;  // in Batch::bytes
  size_t termAt;      // offset of the term from `begin`
};

struct Batch {
  std::vector<Event> events;
  std::string bytes;
  void Clear() {
    events.clear();
    bytes.clear();
  }
};

// A packet of a call in the send queue, so that a call that timed out before it was written can
// be taken back instead of being sent late.
struct QueuedCall {
  uint64_t id;
  size_t begin, end;
};

struct Core;
struct CoreRef {
  std::shared_ptr<Core> core;
};

void DrainEvents(Napi::Env env, Napi::Function, CoreRef* ref, void*);
using EventsTsfn = Napi::TypedThreadSafeFunction<CoreRef, void, DrainEvents>;

class Connection;

struct Core {
  Core();
  ~Core();

  // Set before the thread starts, read-only afterwards.
  ei_cnode ec;
  ei_socket_callbacks callbacks;
  IoEnv io;
  dist::Identity me;
  DecodeSettings decode;
  EncodeSettings encode;
  uint32_t maxMessageSize = 64u * 1024 * 1024;
  int epmdPort = 4369;
  Wakeup wake;
  std::atomic<bool> stop{false};
  std::thread thread;

  // Writes, and requests to the I/O thread, under outMu. `out` is the one queue of bytes to the
  // socket: its head is what goes out next (it may be the rest of a packet the socket took only
  // part of). The main thread writes a call's packet to the socket itself (non-blocking) when
  // `out` is empty, which saves waking the I/O thread for every request; what the socket does
  // not take at once is queued, and the I/O thread writes the queue when the socket has room.
  // Every write happens under outMu, so packets never interleave.
  std::mutex outMu;
  int sendFd = -1;                   // the socket while connected, else -1
  std::string out;                   // bytes to write, in order, from outHead on
  size_t outHead = 0;                // bytes of `out` already written (dropped in bulk, not one write at a time)
  std::vector<QueuedCall> outCalls;  // call packets within `out` (offsets into `out`)
  bool wakePending = false;          // a wake-up is on its way: no need for another
  bool connectRequested = false;
  // Set (after the above) when the I/O thread has something to do under outMu: it takes the lock
  // only then, so that replies are not kept waiting while the main thread writes.
  std::atomic<bool> attention{false};
  std::string connectNode;
  unsigned connectTimeout = 0;
  // What the I/O thread hands over, under inMu (apart from outMu, so that reading never waits for
  // a write the main thread is making).
  std::mutex inMu;
  Batch inbound;
  bool drainPending = false;
  bool tsfnUsable = true;  // false once the thread-safe function is released or finalized
  EventsTsfn tsfn;

  // I/O thread only.
  int fd = -1;
  char* mbuf = nullptr;  // ei's receive buffer (malloc'ed: ei reallocs it)
  int mbufSize = 0;
  Batch local;
  std::string lostReason;

  // Main thread only.
  Connection* wrapper = nullptr;
  bool corked = false;  // calls queue, and Uncork() writes them at once (lib/connection.ts: one write per turn)
  bool closed = false;
  bool shutDown = false;
  bool hookActive = false;
  napi_env env = nullptr;
  Batch draining;

  // Main thread.
  void Enqueue(const std::string& packets, size_t callFrom, uint64_t callId);
  void Uncork();
  void Attend();  // any thread: the I/O thread has something to do under outMu
  size_t WriteNowLocked(const char* p, size_t n, int* error);
  int FlushLocked();
  void ConsumeLocked(size_t n);
  bool QueueEmptyLocked() const { return outHead == out.size(); }
  void ClearQueueLocked();
  bool Cancel(uint64_t callId);
  void DiscardQueued();
  void RequestConnect(const std::string& node, unsigned timeoutMs);
  void Shutdown();  // stop and join the thread, release the thread-safe function; idempotent
  void Drain(Napi::Env env);
  void DrainOnce(Napi::Env env);  // the events in `draining` to JS
  static void CleanupHook(void* arg);

  // I/O thread.
  void Run();
  void DoConnect(const std::string& node, unsigned timeoutMs);
  bool ReadRound(SockCtx* s);
  bool ParsePackets(SockCtx* s);
  void Lose(const std::string& reason);
  void CloseSocket();
  void AddEvent(EventKind kind, uint64_t id, const void* bytes, size_t n, size_t termAt);
  void AddText(EventKind kind, const std::string& text);
  void Publish();
};

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Connection(const Napi::CallbackInfo& info);
  ~Connection() override;

  Napi::FunctionReference onEvents;  // weak while nothing waits: see Ref()
  Napi::Float64Array Meta(Napi::Env env, size_t length);  // kinds and ids of a drain, reused

 private:
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Call(const Napi::CallbackInfo& info);
  // A gen_server call being written into scratch_ (see BeginGenCall).
  struct GenCall {
    uint64_t id;
    size_t callFrom;  // where the call's bytes start (its monitor packet, if any)
    size_t packetAt;  // where the call's own packet starts
  };
  GenCall BeginGenCall(uint64_t id, uint64_t monitorId, bool isPid);
  void EndGenCall(Napi::Env env, const GenCall& call, const char* tooLarge);
  Napi::Value Rpc(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Demonitor(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value DiscardQueued(const Napi::CallbackInfo& info);
  Napi::Value Cork(const Napi::CallbackInfo& info);
  Napi::Value Uncork(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Self(const Napi::CallbackInfo& info);

  void CheckOpen(Napi::Env env);
  // Encodes a registered name (a string) or a pid as it goes into a control message.
  bool EncodeTarget(Napi::Env env, Napi::Value target, std::string& out);

  std::shared_ptr<Core> core_;
  Napi::Reference<Napi::Float64Array> meta_;
  std::string scratch_;  // packets being built
  std::string target_;
  bool refed_ = false;
};

}  // namespace erlpeb
