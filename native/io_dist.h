// Distribution packets a connection writes, and the bounds-checked matching of what it reads.
//
// Packets are written here rather than through ei_send_tmo/ei_reg_send_tmo: the main thread builds
// each packet whole (control message and message, version bytes included) when a call is made, so
// the I/O thread only copies bytes to the socket, many packets per send(). ei has no call for the
// monitor control messages at all, and ei_reg_send takes the name as Latin-1 where Erlang's atoms
// are Unicode. The packet format is the one ei writes: 4-byte length, the pass-through byte 'p',
// the control tuple and the message, each with its version byte (the ERTS "Distribution Protocol"
// chapter: no atom cache, since ei does not announce one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "etf_tags.h"

namespace erlpeb {
namespace dist {

constexpr uint8_t kPassThrough = 112;
using namespace erlpeb::tag;  // NOLINT: the ETF tags, by their short names

// Control message operations.
constexpr uint8_t kOpSend = 2;
constexpr uint8_t kOpRegSend = 6;
constexpr uint8_t kOpMonitor = 19;
constexpr uint8_t kOpDemonitor = 20;
// ei_receive_encoded reports a trace-token variant as the plain operation (it subtracts 10 from
// every type above 10), so MONITOR_P_EXIT (21) arrives as 11.
constexpr int kReceivedMonitorExit = 21 - 10;

inline void PutU16(std::string& s, uint32_t v) {
  s += static_cast<char>((v >> 8) & 0xff);
  s += static_cast<char>(v & 0xff);
}

inline void PutU32(std::string& s, uint32_t v) {
  s += static_cast<char>((v >> 24) & 0xff);
  s += static_cast<char>((v >> 16) & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
  s += static_cast<char>(v & 0xff);
}

inline uint32_t GetU16(const unsigned char* p) { return (uint32_t{p[0]} << 8) | p[1]; }
inline uint32_t GetU32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// An atom from UTF-8 bytes. Callers keep names within Erlang's 255 characters (at most 1020 bytes).
inline void PutAtom(std::string& s, const char* name, size_t n) {
  if (n <= 255) {
    s += static_cast<char>(kSmallAtomUtf8);
    s += static_cast<char>(n);
  } else {
    s += static_cast<char>(kAtomUtf8);
    PutU16(s, static_cast<uint32_t>(n));
  }
  s.append(name, n);
}
inline void PutAtom(std::string& s, const std::string& name) { PutAtom(s, name.data(), name.size()); }

// Starts a packet at the end of s; returns where its length goes, for EndPacket.
inline size_t BeginPacket(std::string& s) {
  size_t at = s.size();
  s.append(4, '\0');
  s += static_cast<char>(kPassThrough);
  return at;
}

// Writes the packet length; false when the packet is too large for the 4-byte length.
inline bool EndPacket(std::string& s, size_t at) {
  size_t len = s.size() - at - 4;
  if (len > 0xFFFFFFFFull) return false;
  auto* p = reinterpret_cast<unsigned char*>(&s[at]);
  p[0] = static_cast<unsigned char>(len >> 24);
  p[1] = static_cast<unsigned char>(len >> 16);
  p[2] = static_cast<unsigned char>(len >> 8);
  p[3] = static_cast<unsigned char>(len);
  return true;
}

// This C-node as it appears in terms: its name, creation, pid, and the prefixes of its packets.
struct Identity {
  std::string node;
  uint32_t creation = 0;
  uint32_t selfNum = 0, selfSerial = 0;
  uint32_t callMagic = 0;     // first word of a call's reference (Erlang keeps 18 bits of it)
  uint32_t monitorMagic = 0;  // first word of a monitor's reference
  std::string nodeAtom;       // the node name, encoded
  std::string selfPid;        // NEW_PID_EXT of our pid
  std::string regSendHead;    // control tuple of REG_SEND up to the name: {6, Self, '', ...
  std::string sendHead;       // control tuple of SEND up to the pid: {2, '', ...
  std::string genCallHead;    // message {'$gen_call', {Self, ...

  void Init(const std::string& name, uint32_t num, uint32_t serial, uint32_t cre, uint32_t magic) {
    node = name;
    creation = cre;
    selfNum = num;
    selfSerial = serial;
    callMagic = magic & 0x3ffff;
    monitorMagic = callMagic ^ 0x20000;
    nodeAtom.clear();
    PutAtom(nodeAtom, node);
    selfPid.clear();
    selfPid += static_cast<char>(kNewPid);
    selfPid += nodeAtom;
    PutU32(selfPid, num);
    PutU32(selfPid, serial);
    PutU32(selfPid, creation);

    regSendHead.clear();
    regSendHead += static_cast<char>(kVersion);
    regSendHead += static_cast<char>(kSmallTuple);
    regSendHead += static_cast<char>(4);
    regSendHead += static_cast<char>(kSmallInteger);
    regSendHead += static_cast<char>(kOpRegSend);
    regSendHead += selfPid;
    PutAtom(regSendHead, "", 0);

    sendHead.clear();
    sendHead += static_cast<char>(kVersion);
    sendHead += static_cast<char>(kSmallTuple);
    sendHead += static_cast<char>(3);
    sendHead += static_cast<char>(kSmallInteger);
    sendHead += static_cast<char>(kOpSend);
    PutAtom(sendHead, "", 0);

    genCallHead.clear();
    genCallHead += static_cast<char>(kVersion);
    genCallHead += static_cast<char>(kSmallTuple);
    genCallHead += static_cast<char>(3);
    PutAtom(genCallHead, "$gen_call");
    genCallHead += static_cast<char>(kSmallTuple);
    genCallHead += static_cast<char>(2);
    genCallHead += selfPid;
  }

  // A reference of this node whose second and third words carry `id`.
  void PutRef(std::string& s, uint32_t magic, uint64_t id) const {
    s += static_cast<char>(kNewerReference);
    PutU16(s, 3);
    s += nodeAtom;
    PutU32(s, creation);
    PutU32(s, magic);
    PutU32(s, static_cast<uint32_t>(id));
    PutU32(s, static_cast<uint32_t>(id >> 32));
  }

  // The control message of a packet to `target` (an encoded atom or pid).
  void PutSendControl(std::string& s, const std::string& target, bool isPid) const {
    if (isPid) {
      s += sendHead;
    } else {
      s += regSendHead;
    }
    s += target;
  }

  // A whole MONITOR_P or DEMONITOR_P packet: {Op, Self, Target, Ref}.
  void PutMonitorPacket(std::string& s, uint8_t op, const std::string& target, uint64_t monitorId) const {
    size_t at = BeginPacket(s);
    s += static_cast<char>(kVersion);
    s += static_cast<char>(kSmallTuple);
    s += static_cast<char>(4);
    s += static_cast<char>(kSmallInteger);
    s += static_cast<char>(op);
    s += selfPid;
    s += target;
    PutRef(s, monitorMagic, monitorId);
    EndPacket(s, at);
  }
};

// Reads ETF without ever reading past the end.
struct Reader {
  const unsigned char* p;
  size_t n;
  size_t i = 0;

  bool Has(size_t k) const { return n - i >= k; }  // i <= n always holds
  bool U8(uint8_t* v) {
    if (!Has(1)) return false;
    *v = p[i++];
    return true;
  }

  // An atom; *name/*len point into the input.
  bool Atom(const unsigned char** name, size_t* len) {
    uint8_t t;
    if (!U8(&t)) return false;
    size_t l;
    if (t == kSmallAtomUtf8 || t == kSmallAtom) {
      if (!Has(1)) return false;
      l = p[i++];
    } else if (t == kAtomUtf8 || t == kAtom) {
      if (!Has(2)) return false;
      l = GetU16(p + i);
      i += 2;
    } else {
      return false;
    }
    if (!Has(l)) return false;
    *name = p + i;
    *len = l;
    i += l;
    return true;
  }

  bool SkipAtom() {
    const unsigned char* name;
    size_t len;
    return Atom(&name, &len);
  }

  bool SkipPid() {
    uint8_t t;
    if (!U8(&t) || (t != kNewPid && t != kPid)) return false;
    if (!SkipAtom()) return false;
    size_t rest = t == kNewPid ? 12 : 9;
    if (!Has(rest)) return false;
    i += rest;
    return true;
  }

  // A pid or an atom (a registered name), as in the first field of MONITOR_P_EXIT.
  bool SkipProc() {
    if (!Has(1)) return false;
    uint8_t t = p[i];
    return (t == kNewPid || t == kPid) ? SkipPid() : SkipAtom();
  }

  // A reference of `me` whose first word is `magic`; *id is what its other two words carry.
  bool OurRef(const Identity& me, uint32_t magic, uint64_t* id) {
    uint8_t t;
    if (!U8(&t) || t != kNewerReference || !Has(2)) return false;
    uint32_t words = GetU16(p + i);
    i += 2;
    const unsigned char* name;
    size_t len;
    if (words != 3 || !Atom(&name, &len)) return false;
    if (len != me.node.size() || memcmp(name, me.node.data(), len) != 0) return false;
    if (!Has(16)) return false;
    uint32_t creation = GetU32(p + i);
    uint32_t w0 = GetU32(p + i + 4);
    uint32_t w1 = GetU32(p + i + 8);
    uint32_t w2 = GetU32(p + i + 12);
    i += 16;
    if (creation != me.creation || (w0 & 0x3ffff) != magic) return false;
    *id = (uint64_t{w2} << 32) | w1;
    return true;
  }
};

// Skips one term (any tag a control message may hold, and the rest of the external format), to
// check where it ends before ei, which does not check lengths, parses it.
inline bool SkipTerm(Reader& r, int depth = 0) {
  if (depth > 64) return false;
  uint8_t t;
  if (!r.U8(&t)) return false;
  auto skip = [&r](size_t k) {
    if (!r.Has(k)) return false;
    r.i += k;
    return true;
  };
  auto u16 = [&r](size_t* v) {
    if (!r.Has(2)) return false;
    *v = GetU16(r.p + r.i);
    r.i += 2;
    return true;
  };
  auto u32 = [&r](size_t* v) {
    if (!r.Has(4)) return false;
    *v = GetU32(r.p + r.i);
    r.i += 4;
    return true;
  };
  auto elements = [&](size_t n) {
    if (n > r.n - r.i) return false;  // every element takes at least a byte
    for (size_t k = 0; k < n; ++k) {
      if (!SkipTerm(r, depth + 1)) return false;
    }
    return true;
  };
  size_t n = 0;
  switch (t) {
    case kSmallInteger: return skip(1);
    case 98: return skip(4);          // INTEGER_EXT
    case 70: return skip(8);          // NEW_FLOAT_EXT
    case 99: return skip(31);         // FLOAT_EXT
    case kAtom:
    case kAtomUtf8: return u16(&n) && skip(n);
    case kSmallAtom:
    case kSmallAtomUtf8: return r.Has(1) && skip(1 + r.p[r.i]);
    case kNewPid: r.i--; return r.SkipPid();
    case kPid: r.i--; return r.SkipPid();
    case 89: return r.SkipAtom() && skip(8);   // NEW_PORT_EXT
    case 102: return r.SkipAtom() && skip(5);  // PORT_EXT
    case 120: return r.SkipAtom() && skip(12); // V4_PORT_EXT
    case kNewerReference: return u16(&n) && n <= 5 && r.SkipAtom() && skip(4 + 4 * n);
    case 114: return u16(&n) && n <= 5 && r.SkipAtom() && skip(1 + 4 * n);  // NEW_REFERENCE_EXT
    case 101: return r.SkipAtom() && skip(5);                                 // REFERENCE_EXT
    case kSmallTuple: return r.Has(1) && elements(r.p[r.i++]);
    case 105: return u32(&n) && elements(n);                                  // LARGE_TUPLE_EXT
    case 106: return true;                                                    // NIL_EXT
    case 107: return u16(&n) && skip(n);                                      // STRING_EXT
    case 108: return u32(&n) && elements(n) && SkipTerm(r, depth + 1);       // LIST_EXT, then the tail
    case 109: return u32(&n) && skip(n);                                      // BINARY_EXT
    case 77: return u32(&n) && skip(1 + n);                                   // BIT_BINARY_EXT
    case 110: return r.Has(1) && skip(2 + r.p[r.i]);                          // SMALL_BIG_EXT
    case 111: return u32(&n) && skip(1 + n);                                  // LARGE_BIG_EXT
    case 116: return u32(&n) && n <= (r.n - r.i) / 2 && elements(2 * n);    // MAP_EXT
    case 113: return elements(3);                                             // EXPORT_EXT
    case 112: return u32(&n) && n >= 4 && skip(n - 4);                        // NEW_FUN_EXT (size counts itself)
    default: return false;
  }
}

// Where the control message of a packet ends (`pkt` starts after the 4-byte length, at the
// pass-through byte); 0 when it is not a well-formed pass-through packet.
inline size_t ControlEnd(const unsigned char* pkt, size_t len) {
  Reader r{pkt, len};
  uint8_t pass, version;
  if (!r.U8(&pass) || pass != kPassThrough || !r.U8(&version) || version != kVersion) return 0;
  Reader t{pkt, len, r.i};
  if (!r.Has(1) || r.p[r.i] != kSmallTuple) return 0;
  return SkipTerm(t) ? t.i : 0;
}

// A message {Tag, Reply} where Tag is one of our call references: *id is the call, *at where
// Reply starts.
inline bool MatchReply(const unsigned char* p, size_t n, const Identity& me, uint64_t* id, size_t* at) {
  Reader r{p, n};
  uint8_t v, t, arity;
  if (!r.U8(&v) || v != kVersion || !r.U8(&t) || t != kSmallTuple || !r.U8(&arity) || arity != 2) return false;
  if (!r.OurRef(me, me.callMagic, id)) return false;
  *at = r.i;
  return r.i < n;
}

// The rest of a MONITOR_P_EXIT control tuple after its operation: FromProc, ToPid, Ref, Reason.
// *id is our monitor, *at where Reason starts.
inline bool MatchMonitorExit(const unsigned char* p, size_t n, const Identity& me, uint64_t* id, size_t* at) {
  Reader r{p, n};
  if (!r.SkipProc() || !r.SkipPid() || !r.OurRef(me, me.monitorMagic, id)) return false;
  *at = r.i;
  return r.i < n;
}

}  // namespace dist
}  // namespace erlpeb
