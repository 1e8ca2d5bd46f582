// The ETF decoder: bytes -> JS value, following the term mapping in DESIGN.md.
//
// The input is untrusted, and all of its checking happens here. Every length and count is checked
// against the bytes that are left before anything is read or allocated (each element of a
// container takes at least one byte, so a count larger than what is left is rejected up front).
// Containers are decoded with an explicit stack of frames, never by recursion, bounded by
// maxDepth, so no input can overflow the C stack. ei's decode functions are not used: they do not
// check bounds.
//
// What comes out is an op tape (tape.h) that buildTerm in lib/native.ts turns into JS values in a
// single call: making values through Node-API costs hundreds of ns per property or Buffer, JS a
// few ns.
#include <napi.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <locale.h>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "byte_reader.h"
#include "etf.h"
#include "tape.h"
#include "term_codec.h"
#include "utf8.h"

namespace erlpeb {
namespace {

// V8 refuses strings longer than this; binaries that long stay Buffers.
constexpr size_t kMaxStringLength = (size_t{1} << 29) - 24;

// Working storage kept between decodes, at most (16 MiB each).
constexpr size_t kKeepTapeDoubles = size_t{2} << 20;
constexpr size_t kKeepTextBytes = size_t{16} << 20;

// V8's largest BigInt has 2^30 bits.
constexpr size_t kMaxBigIntBytes = size_t{1} << 27;

// Object keys met before, across decodes: key bytes (UTF-8) -> slot. buildTerm keeps slot -> the
// key as an internalized JS string, set by dop::kKeyNew and used by dop::kKey: the same field
// names come back in every session, and V8 stores a property much faster under an internalized key
// than under a fresh string it must look up first. Bounded: short keys only, and when full it
// starts over (slots are then reassigned by kKeyNew before any kKey uses them).
class KeyCache {
 public:
  static constexpr uint32_t kMaxKeys = 2048;
  static constexpr uint32_t kTableSize = 4096;  // a power of two, at least 2 x kMaxKeys
  static constexpr size_t kMaxKeyBytes = 64;

  struct Mark {
    size_t size;
    uint64_t clears;
  };

  KeyCache() : table_(kTableSize, -1) {}

  static uint32_t Hash(std::string_view k) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (unsigned char c : k) h = (h ^ c) * 16777619u;
    return h;
  }

  int32_t Find(std::string_view k, uint32_t h) const {
    for (uint32_t i = h & (kTableSize - 1);; i = (i + 1) & (kTableSize - 1)) {
      int32_t slot = table_[i];
      if (slot < 0) return -1;
      if (hashes_[slot] == h && keys_[slot] == k) return slot;
    }
  }

  // Adds k (not present) and returns its slot.
  uint32_t Add(std::string_view k, uint32_t h) {
    if (keys_.size() >= kMaxKeys) Clear();
    uint32_t slot = static_cast<uint32_t>(keys_.size());
    keys_.emplace_back(k);
    hashes_.push_back(h);
    Place(slot);
    return slot;
  }

  Mark mark() const { return Mark{keys_.size(), clears_}; }

  // Forgets the keys added since `m` (their kKeyNew ops never reached buildTerm).
  void Restore(Mark m) {
    if (m.clears != clears_) {
      Clear();
      return;
    }
    if (m.size == keys_.size()) return;
    keys_.resize(m.size);
    hashes_.resize(m.size);
    std::fill(table_.begin(), table_.end(), -1);
    for (uint32_t slot = 0; slot < keys_.size(); slot++) Place(slot);
  }

  void Clear() {
    keys_.clear();
    hashes_.clear();
    std::fill(table_.begin(), table_.end(), -1);
    clears_++;
  }

 private:
  void Place(uint32_t slot) {
    uint32_t i = hashes_[slot] & (kTableSize - 1);
    while (table_[i] >= 0) i = (i + 1) & (kTableSize - 1);
    table_[i] = static_cast<int32_t>(slot);
  }

  std::vector<int32_t> table_;
  std::vector<std::string> keys_;
  std::vector<uint32_t> hashes_;
  uint64_t clears_ = 0;
};

enum class FrameKind : uint8_t { kList, kTuple, kMap, kFun };

// A map key taken as text (maps decoded as objects); kept to decode it again should the map
// turn out to need a Map after all.
struct RawKey {
  bool raw;   // false: the key was decoded as an ordinary term
  size_t at;  // offset of its tag
};

struct Frame {
  FrameKind kind;
  bool allRaw;      // map: every key so far is an atom or a UTF-8 binary
  bool inTail;      // list: the elements are done, the tail is being decoded
  uint32_t n;       // list/tuple: elements; map: keys and values (2 per pair); fun: free variables
  uint32_t i;       // taken so far
  size_t at;        // offset of the container's tag
  size_t end;       // fun: one past its last byte
  size_t keysBase;  // map: where its keys start in rawKeys_
  size_t opsMark;   // fun: tape and text length before its free variables (they are dropped)
  size_t textMark;
  size_t unitsMark;
  KeyCache::Mark keysMark;
  // fun
  const uint8_t* module;
  uint32_t moduleLen;
  bool moduleLatin1;
  uint32_t arity;
  uint32_t index;
};

}  // namespace

// The decoder's working storage, kept per environment between calls.
struct DecoderState {
  std::vector<double> ops;
  std::string text;
  std::vector<Frame> frames;
  std::vector<RawKey> rawKeys;  // one per key of the maps being decoded
  KeyCache keys;

  void Clear() {
    ops.clear();
    text.clear();
    frames.clear();
    rawKeys.clear();
  }
};

void ResetKeyCache(AddonData& data) {
  if (data.decoderState) data.decoderState->keys.Clear();
}

void DecoderStateDeleter::operator()(DecoderState* state) const { delete state; }

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// FLOAT_EXT text: [+-]digits[.digits][e[+-]digits], nothing else (as "%.20e" writes it).
bool IsFloatText(const char* s, size_t n) {
  size_t i = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  size_t digits = i;
  while (i < n && IsDigit(s[i])) i++;
  if (i == digits) return false;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && IsDigit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t expDigits = i;
    while (i < n && IsDigit(s[i])) i++;
    if (i == expDigits) return false;
  }
  return i == n;
}

class Decoder {
 public:
  Decoder(AddonData& data, napi_env env, const uint8_t* bytes, size_t len, size_t pos,
          const DecodeSettings& settings, const char* context, DecoderState& state, bool useKeyCache)
      : data_(data),
        env_(env),
        b_(bytes),
        len_(len),
        pos_(pos),
        maxDepth_(settings.maxDepth),
        binariesAsStrings_((settings.flags & kBinariesAsStrings) != 0),
        stringsAsStrings_((settings.flags & kStringsAsStrings) != 0),
        mapsAsObjects_((settings.flags & kMapsAsObjects) != 0),
        context_(context),
        useKeyCache_(useKeyCache),
        state_(state),
        ops_(state.ops),
        text_(state.text),
        frames_(state.frames),
        rawKeys_(state.rawKeys) {}

  size_t pos() const { return pos_; }
  size_t textUnits() const { return units_; }
  bool textAscii() const { return ascii_; }
  bool needsSource() const { return needsSource_; }

  // Decodes one term onto the tape.
  void Run() {
    for (;;) {
      if (mapsAsObjects_ && !frames_.empty()) {
        Frame& f = frames_.back();
        if (f.kind == FrameKind::kMap && (f.i & 1) == 0 && TakeRawKey(f)) {
          f.i++;
          continue;
        }
      }
      size_t at = pos_;
      if (pos_ >= len_) Fail("truncated term: a term was expected", at);
      uint8_t t = b_[pos_++];
      switch (t) {
        case tag::kList: {
          Need(4, at, "list");
          uint32_t n = GetU32(b_ + pos_);
          pos_ += 4;
          // n elements and a tail, at least a byte each.
          if (uint64_t{n} + 1 > len_ - pos_) FailCount("list", n, "elements", at);
          EnterContainer(at);
          if (n == 0 && b_[pos_] == tag::kNil) {
            pos_++;
            Op(dop::kNil);
            break;
          }
          // LIST_EXT of no elements: what follows is only the tail.
          Push(FrameKind::kList, n, at).inTail = n == 0;
          continue;
        }
        case tag::kSmallTuple:
        case tag::kLargeTuple: {
          uint32_t n;
          if (t == tag::kSmallTuple) {
            Need(1, at, "tuple");
            n = b_[pos_];
            pos_ += 1;
          } else {
            Need(4, at, "tuple");
            n = GetU32(b_ + pos_);
            pos_ += 4;
          }
          if (n > len_ - pos_) FailCount("tuple", n, "elements", at);
          EnterContainer(at);
          if (n == 0) {
            Op(dop::kTuple, 0);
            break;
          }
          Push(FrameKind::kTuple, n, at);
          continue;
        }
        case tag::kMap: {
          Need(4, at, "map");
          uint32_t pairs = GetU32(b_ + pos_);
          pos_ += 4;
          if (uint64_t{pairs} * 2 > len_ - pos_) FailCount("map", pairs, "pairs", at);
          EnterContainer(at);
          if (pairs == 0) {
            Op(mapsAsObjects_ ? dop::kObject : dop::kMap, 0);
            break;
          }
          Frame& f = Push(FrameKind::kMap, pairs * 2, at);
          f.allRaw = true;
          f.keysBase = rawKeys_.size();
          continue;
        }
        case tag::kNewFun: {
          Frame f{};
          f.kind = FrameKind::kFun;
          f.at = at;
          ReadFunHeader(&f);
          EnterContainer(at);
          f.opsMark = ops_.size();
          f.textMark = text_.size();
          f.unitsMark = units_;
          f.keysMark = state_.keys.mark();
          if (f.n == 0) {
            FinishFun(f);
            break;
          }
          frames_.push_back(f);
          continue;
        }
        default:
          DecodeLeaf(t, at);
      }
      // A value is complete: hand it to the frames waiting for it, finishing each it completes.
      for (;;) {
        if (frames_.empty()) return;
        if (!Accept()) break;
        FinishFrame();
      }
    }
  }

 private:
  // ---- errors and bounds ----

  [[noreturn]] void Fail(const std::string& message, size_t at) {
    ThrowDecodeError(data_, env_, message + context_, at);
  }

  [[noreturn]] void FailCount(const char* what, uint64_t n, const char* unit, size_t at) {
    Fail(std::string("truncated ") + what + ": " + std::to_string(n) + " " + unit + " but only " +
             std::to_string(len_ - pos_) + " bytes left",
         at);
  }

  // n more bytes must be there; else the term that starts at `at` is truncated.
  void Need(size_t n, size_t at, const char* what) {
    if (len_ - pos_ < n) Fail(std::string("truncated ") + what, at);
  }

  void EnterContainer(size_t at) {
    if (frames_.size() >= maxDepth_) Fail("nesting deeper than " + std::to_string(maxDepth_), at);
  }

  // ---- tape ----

  void Op(int op) { ops_.push_back(op); }
  void Op(int op, double a) {
    ops_.push_back(op);
    ops_.push_back(a);
  }
  void Op(int op, double a, double b) {
    ops_.push_back(op);
    ops_.push_back(a);
    ops_.push_back(b);
  }
  void Op(int op, double a, double b, double c) {
    ops_.push_back(op);
    ops_.push_back(a);
    ops_.push_back(b);
    ops_.push_back(c);
  }

  // Appends to the text; returns where it starts (in UTF-16 units).
  size_t TextAscii(const uint8_t* p, size_t n) {
    size_t start = units_;
    text_.append(reinterpret_cast<const char*>(p), n);
    units_ += n;
    return start;
  }

  size_t TextUtf8(const uint8_t* p, size_t n, size_t units) {
    size_t start = units_;
    text_.append(reinterpret_cast<const char*>(p), n);
    units_ += units;
    ascii_ = false;
    return start;
  }

  size_t TextLatin1(const uint8_t* p, size_t n) {
    if (IsAscii(p, n)) return TextAscii(p, n);
    size_t start = units_;
    Latin1ToUtf8(p, n, text_);
    units_ += n;
    ascii_ = false;
    return start;
  }

  // An atom's name into the text; its length (UTF-16 units) in *units.
  size_t TextAtom(const uint8_t* p, uint32_t n, bool latin1, size_t* units) {
    if (latin1 || IsAscii(p, n)) {
      *units = n;
      return TextLatin1(p, n);
    }
    size_t chars = 0;
    *units = n;
    Utf8Measure(p, n, &chars, units);  // already checked by ReadAtom
    return TextUtf8(p, n, *units);
  }

  // ---- atoms ----

  // Reads an atom's length and bytes (the tag already taken) and checks them.
  void ReadAtom(uint8_t t, size_t at, const uint8_t** p, uint32_t* n, bool* latin1) {
    uint32_t len;
    if (t == tag::kSmallAtom || t == tag::kSmallAtomUtf8) {
      Need(1, at, "atom");
      len = b_[pos_];
      pos_ += 1;
    } else {
      Need(2, at, "atom");
      len = GetU16(b_ + pos_);
      pos_ += 2;
    }
    Need(len, at, "atom");
    *p = b_ + pos_;
    *n = len;
    pos_ += len;
    *latin1 = t == tag::kAtom || t == tag::kSmallAtom;
    if (*latin1) {
      if (len > 255) Fail("atom longer than 255 characters", at);
    } else {
      size_t chars = 0, units = 0;
      if (!Utf8Measure(*p, len, &chars, &units)) Fail("atom is not valid UTF-8", at);
      if (chars > 255) Fail("atom longer than 255 characters", at);
    }
  }

  static bool IsAtomTag(uint8_t t) {
    return t == tag::kAtom || t == tag::kSmallAtom || t == tag::kAtomUtf8 || t == tag::kSmallAtomUtf8;
  }

  // An atom in a field that is always an Atom (a node or module name), whatever its name: its
  // name goes to the text, position and length in *textPos / *textLen.
  void ReadAtomField(const char* what, size_t* textPos, size_t* textLen) {
    size_t at = pos_;
    if (pos_ >= len_) Fail(std::string("truncated ") + what, at);
    uint8_t t = b_[pos_++];
    if (!IsAtomTag(t)) Fail(std::string(what) + " must be an atom, not tag " + std::to_string(t), at);
    const uint8_t* p;
    uint32_t n;
    bool latin1;
    ReadAtom(t, at, &p, &n, &latin1);
    *textPos = TextAtom(p, n, latin1, textLen);
  }

  // ---- map keys as text ----

  // In a map decoded as an object, takes the next key as text when it is an atom or a binary that
  // is valid UTF-8. Returns false (and takes nothing) for any other key.
  bool TakeRawKey(Frame& f) {
    if (pos_ >= len_) return false;
    size_t at = pos_;
    uint8_t t = b_[pos_];
    if (IsAtomTag(t)) {
      pos_++;
      const uint8_t* p;
      uint32_t n;
      bool latin1;
      ReadAtom(t, at, &p, &n, &latin1);
      if (latin1 && !IsAscii(p, n)) {
        size_t units;
        size_t start = TextAtom(p, n, latin1, &units);
        Op(dop::kString, static_cast<double>(start), static_cast<double>(units));
      } else {
        size_t chars = n, units = n;
        if (!latin1) Utf8Measure(p, n, &chars, &units);
        Key(p, n, units);
      }
      rawKeys_.push_back(RawKey{true, at});
      return true;
    }
    if (t == tag::kBinary || t == tag::kBitBinary) {
      size_t header = t == tag::kBinary ? 5 : 6;
      // Anything unusual (truncation, bits other than 8) is left to the ordinary decoder.
      if (len_ - pos_ >= header && (t == tag::kBinary || b_[pos_ + 5] == 8)) {
        uint32_t n = GetU32(b_ + pos_ + 1);
        const uint8_t* p = b_ + pos_ + header;
        size_t chars = 0, units = 0;
        if (n <= len_ - pos_ - header && n <= kMaxStringLength && Utf8Measure(p, n, &chars, &units)) {
          pos_ += header + n;
          Key(p, n, units);
          rawKeys_.push_back(RawKey{true, at});
          return true;
        }
      }
    }
    f.allRaw = false;
    return false;
  }

  // An object key given as UTF-8 bytes (`units` UTF-16 units long): from the key cache when it is
  // there (kKey), else as text, added to the cache when short (kKeyNew).
  void Key(const uint8_t* p, size_t n, size_t units) {
    if (useKeyCache_ && n <= KeyCache::kMaxKeyBytes) {
      std::string_view bytes(reinterpret_cast<const char*>(p), n);
      uint32_t h = KeyCache::Hash(bytes);
      int32_t slot = state_.keys.Find(bytes, h);
      if (slot >= 0) {
        Op(dop::kKey, slot);
        return;
      }
      size_t start = units == n ? TextAscii(p, n) : TextUtf8(p, n, units);
      Op(dop::kKeyNew, state_.keys.Add(bytes, h), static_cast<double>(start), static_cast<double>(units));
      return;
    }
    size_t start = units == n ? TextAscii(p, n) : TextUtf8(p, n, units);
    Op(dop::kString, static_cast<double>(start), static_cast<double>(units));
  }

  // ---- containers ----

  Frame& Push(FrameKind kind, uint32_t n, size_t at) {
    Frame f{};
    f.kind = kind;
    f.n = n;
    f.at = at;
    frames_.push_back(f);
    return frames_.back();
  }

  // The innermost frame takes the value just put on the tape; true when that completes it.
  bool Accept() {
    Frame& f = frames_.back();
    switch (f.kind) {
      case FrameKind::kList:
        if (f.inTail) return true;
        f.i++;
        if (f.i < f.n) return false;
        if (pos_ < len_ && b_[pos_] == tag::kNil) {
          pos_++;
          return true;
        }
        f.inTail = true;
        return false;
      case FrameKind::kTuple:
      case FrameKind::kFun:
        f.i++;
        return f.i == f.n;
      case FrameKind::kMap:
        if ((f.i & 1) == 0) {
          rawKeys_.push_back(RawKey{false, 0});
        }
        f.i++;
        return f.i == f.n;
    }
    return false;
  }

  void FinishFrame() {
    Frame f = frames_.back();
    frames_.pop_back();
    switch (f.kind) {
      case FrameKind::kList:
        if (f.inTail) {
          Op(dop::kImproper, f.n);
        } else {
          Op(dop::kList, f.n);
        }
        return;
      case FrameKind::kTuple:
        Op(dop::kTuple, f.n);
        return;
      case FrameKind::kMap:
        FinishMap(f);
        return;
      case FrameKind::kFun:
        FinishFun(f);
        return;
    }
  }

  void FinishMap(const Frame& f) {
    uint32_t pairs = f.n / 2;
    if (mapsAsObjects_ && f.allRaw) {
      Op(dop::kObject, pairs);
    } else {
      // Keys taken as text go back to what they are as terms: a binary, an Atom, true...
      if (mapsAsObjects_) {
        for (uint32_t j = 0; j < pairs; j++) {
          const RawKey& key = rawKeys_[f.keysBase + j];
          if (!key.raw) continue;
          size_t saved = pos_;
          pos_ = key.at + 1;
          DecodeLeaf(b_[key.at], key.at);
          pos_ = saved;
          Op(dop::kSetKey, pairs, j);
        }
      }
      Op(dop::kMap, pairs);
    }
    rawKeys_.resize(f.keysBase);
  }

  // NEW_FUN_EXT up to its free variables: size, arity, uniq, index, numfree, module, old index,
  // old uniq, pid. Every field is checked; the free variables follow as the frame's elements.
  void ReadFunHeader(Frame* f) {
    size_t at = f->at;
    Need(4, at, "fun");
    uint32_t size = GetU32(b_ + pos_);
    // The size counts itself (4 bytes) but not the tag.
    if (size < 4 || size > len_ - (at + 1)) Fail("truncated fun: its size is " + std::to_string(size), at);
    f->end = at + 1 + size;
    pos_ += 4;
    Need(1 + 16 + 4 + 4, at, "fun");
    f->arity = b_[pos_];
    f->index = GetU32(b_ + pos_ + 17);
    uint32_t numFree = GetU32(b_ + pos_ + 21);
    pos_ += 25;
    size_t moduleAt = pos_;
    if (pos_ >= len_) Fail("truncated fun module", moduleAt);
    uint8_t t = b_[pos_++];
    if (!IsAtomTag(t)) Fail("fun module must be an atom, not tag " + std::to_string(t), moduleAt);
    ReadAtom(t, moduleAt, &f->module, &f->moduleLen, &f->moduleLatin1);
    // Checked, then dropped from the tape: the Fun keeps only its bytes.
    size_t opsMark = ops_.size(), textMark = text_.size(), unitsMark = units_;
    ReadIntegerTerm("fun old index");
    ReadIntegerTerm("fun old uniq");
    ReadPidTerm("fun pid");
    ops_.resize(opsMark);
    text_.resize(textMark);
    units_ = unitsMark;
    if (pos_ > f->end) Fail("fun fields run past its size", at);
    if (numFree > f->end - pos_) {
      Fail("truncated fun: " + std::to_string(numFree) + " free variables but only " +
               std::to_string(f->end - pos_) + " bytes left in it",
           at);
    }
    f->n = numFree;
  }

  void FinishFun(const Frame& f) {
    if (pos_ != f.end) Fail("fun size does not match its contents", f.at);
    // The free variables were decoded only to check them.
    ops_.resize(f.opsMark);
    text_.resize(f.textMark);
    units_ = f.unitsMark;
    state_.keys.Restore(f.keysMark);
    size_t units;
    size_t module = TextAtom(f.module, f.moduleLen, f.moduleLatin1, &units);
    needsSource_ = true;
    ops_.push_back(dop::kFun);
    ops_.push_back(static_cast<double>(f.at));
    ops_.push_back(static_cast<double>(f.end - f.at));
    ops_.push_back(static_cast<double>(module));
    ops_.push_back(static_cast<double>(units));
    ops_.push_back(f.arity);
    ops_.push_back(f.index);
  }

  void ReadIntegerTerm(const char* what) {
    size_t at = pos_;
    if (pos_ >= len_) Fail(std::string("truncated ") + what, at);
    uint8_t t = b_[pos_++];
    if (t != tag::kSmallInteger && t != tag::kInteger && t != tag::kSmallBig && t != tag::kLargeBig) {
      Fail(std::string(what) + " must be an integer, not tag " + std::to_string(t), at);
    }
    DecodeLeaf(t, at);
  }

  void ReadPidTerm(const char* what) {
    size_t at = pos_;
    if (pos_ >= len_) Fail(std::string("truncated ") + what, at);
    uint8_t t = b_[pos_++];
    if (t != tag::kPid && t != tag::kNewPid) Fail(std::string(what) + " must be a pid, not tag " + std::to_string(t), at);
    DecodeLeaf(t, at);
  }

  // ---- leaves ----

  void Binary(const uint8_t* p, uint32_t n) {
    if (binariesAsStrings_ && n <= kMaxStringLength) {
      if (IsAscii(p, n)) {
        Op(dop::kString, static_cast<double>(TextAscii(p, n)), n);
        return;
      }
      size_t chars = 0, units = 0;
      if (Utf8Measure(p, n, &chars, &units)) {
        Op(dop::kString, static_cast<double>(TextUtf8(p, n, units)), static_cast<double>(units));
        return;
      }
    }
    needsSource_ = true;
    Op(dop::kBinary, static_cast<double>(p - b_), n);
  }

  void DecodeLeaf(uint8_t t, size_t at) {
    switch (t) {
      case tag::kSmallInteger:
        Need(1, at, "integer");
        Op(dop::kInt, b_[pos_++]);
        return;
      case tag::kInteger:
        Need(4, at, "integer");
        Op(dop::kInt, static_cast<int32_t>(GetU32(b_ + pos_)));
        pos_ += 4;
        return;
      case tag::kSmallBig: {
        Need(2, at, "integer");
        uint32_t n = b_[pos_];
        uint8_t sign = b_[pos_ + 1];
        pos_ += 2;
        Big(n, sign, at);
        return;
      }
      case tag::kLargeBig: {
        Need(5, at, "integer");
        uint32_t n = GetU32(b_ + pos_);
        uint8_t sign = b_[pos_ + 4];
        pos_ += 5;
        Big(n, sign, at);
        return;
      }
      case tag::kNewFloat:
        Need(8, at, "float");
        pos_ += 8;
        Float(GetF64(b_ + pos_ - 8), at);
        return;
      case tag::kFloat: {
        Need(31, at, "float");
        const char* s = reinterpret_cast<const char*>(b_ + pos_);
        size_t n = 0;
        while (n < 31 && s[n] != '\0') n++;
        if (!IsFloatText(s, n)) Fail("float text is not a number", at);
        char text[32];
        std::memcpy(text, s, n);
        text[n] = '\0';
        // The text always uses '.', whatever the process locale says.
        locale_t c = newlocale(LC_NUMERIC_MASK, "C", static_cast<locale_t>(0));
        if (c == static_cast<locale_t>(0)) throw std::bad_alloc();
        double d = strtod_l(text, nullptr, c);
        freelocale(c);
        pos_ += 31;
        Float(d, at);
        return;
      }
      case tag::kAtom:
      case tag::kSmallAtom:
      case tag::kAtomUtf8:
      case tag::kSmallAtomUtf8: {
        const uint8_t* p;
        uint32_t n;
        bool latin1;
        ReadAtom(t, at, &p, &n, &latin1);
        if (n == 4 && std::memcmp(p, "true", 4) == 0) {
          Op(dop::kTrue);
        } else if (n == 5 && std::memcmp(p, "false", 5) == 0) {
          Op(dop::kFalse);
        } else if (n == 9 && std::memcmp(p, "undefined", 9) == 0) {
          Op(dop::kNull);
        } else {
          size_t units;
          size_t start = TextAtom(p, n, latin1, &units);
          Op(dop::kAtom, static_cast<double>(start), static_cast<double>(units));
        }
        return;
      }
      case tag::kBinary: {
        Need(4, at, "binary");
        uint32_t n = GetU32(b_ + pos_);
        pos_ += 4;
        Need(n, at, "binary");
        pos_ += n;
        Binary(b_ + pos_ - n, n);
        return;
      }
      case tag::kBitBinary: {
        Need(5, at, "bit binary");
        uint32_t n = GetU32(b_ + pos_);
        uint8_t bits = b_[pos_ + 4];
        pos_ += 5;
        if (bits < 1 || bits > 8) Fail("bit binary with " + std::to_string(bits) + " bits in its last byte", at);
        if (n == 0 && bits != 8) Fail("empty bit binary with " + std::to_string(bits) + " bits in its last byte", at);
        Need(n, at, "bit binary");
        pos_ += n;
        if (bits == 8) {
          Binary(b_ + pos_ - n, n);
        } else {
          needsSource_ = true;
          Op(dop::kBitBinary, static_cast<double>(pos_ - n), n, bits);
        }
        return;
      }
      case tag::kString: {
        Need(2, at, "string");
        uint32_t n = GetU16(b_ + pos_);
        pos_ += 2;
        Need(n, at, "string");
        pos_ += n;
        if (stringsAsStrings_) {
          Op(dop::kString, static_cast<double>(TextLatin1(b_ + pos_ - n, n)), n);
        } else {
          needsSource_ = true;
          Op(dop::kByteList, static_cast<double>(pos_ - n), n);
        }
        return;
      }
      case tag::kNil:
        Op(dop::kNil);
        return;
      case tag::kPid:
      case tag::kNewPid: {
        size_t node, nodeLen;
        ReadAtomField("pid node", &node, &nodeLen);
        size_t creationSize = t == tag::kPid ? 1 : 4;
        Need(8 + creationSize, at, "pid");
        uint32_t id = GetU32(b_ + pos_);
        uint32_t serial = GetU32(b_ + pos_ + 4);
        uint32_t creation = t == tag::kPid ? b_[pos_ + 8] : GetU32(b_ + pos_ + 8);
        pos_ += 8 + creationSize;
        Op(dop::kPid, static_cast<double>(node), static_cast<double>(nodeLen));
        ops_.push_back(id);
        ops_.push_back(serial);
        ops_.push_back(creation);
        return;
      }
      case tag::kPort:
      case tag::kNewPort:
      case tag::kV4Port: {
        size_t node, nodeLen;
        ReadAtomField("port node", &node, &nodeLen);
        size_t idSize = t == tag::kV4Port ? 8 : 4;
        size_t creationSize = t == tag::kPort ? 1 : 4;
        Need(idSize + creationSize, at, "port");
        uint64_t id = idSize == 8 ? GetU64(b_ + pos_) : GetU32(b_ + pos_);
        uint32_t creation = creationSize == 1 ? b_[pos_ + idSize] : GetU32(b_ + pos_ + idSize);
        pos_ += idSize + creationSize;
        Op(dop::kPort, static_cast<double>(node), static_cast<double>(nodeLen));
        ops_.push_back(static_cast<double>(id >> 32));
        ops_.push_back(static_cast<double>(id & 0xFFFFFFFFu));
        ops_.push_back(creation);
        return;
      }
      case tag::kReference:
      case tag::kNewReference:
      case tag::kNewerReference: {
        uint32_t count = 1;
        if (t != tag::kReference) {
          Need(2, at, "reference");
          count = GetU16(b_ + pos_);
          pos_ += 2;
          if (count < 1 || count > 5) Fail("reference with " + std::to_string(count) + " ids (1 to 5 allowed)", at);
        }
        size_t node, nodeLen;
        ReadAtomField("reference node", &node, &nodeLen);
        size_t creationSize = t == tag::kNewerReference ? 4 : 1;
        Need(creationSize + 4 * count, at, "reference");
        uint32_t creation;
        uint32_t ids[5];
        if (t == tag::kReference) {
          ids[0] = GetU32(b_ + pos_);
          creation = b_[pos_ + 4];
        } else {
          creation = creationSize == 1 ? b_[pos_] : GetU32(b_ + pos_);
          for (uint32_t k = 0; k < count; k++) ids[k] = GetU32(b_ + pos_ + creationSize + 4 * k);
        }
        pos_ += creationSize + 4 * count;
        Op(dop::kRef, static_cast<double>(node), static_cast<double>(nodeLen));
        ops_.push_back(creation);
        ops_.push_back(count);
        for (uint32_t k = 0; k < count; k++) ops_.push_back(ids[k]);
        return;
      }
      case tag::kExport: {
        size_t module, moduleLen, function, functionLen;
        ReadAtomField("export module", &module, &moduleLen);
        ReadAtomField("export function", &function, &functionLen);
        size_t arityAt = pos_;
        Need(2, at, "export");
        if (b_[pos_] != tag::kSmallInteger) Fail("export arity must be a small integer", arityAt);
        uint32_t arity = b_[pos_ + 1];
        pos_ += 2;
        Op(dop::kExport, static_cast<double>(module), static_cast<double>(moduleLen));
        ops_.push_back(static_cast<double>(function));
        ops_.push_back(static_cast<double>(functionLen));
        ops_.push_back(arity);
        return;
      }
      default:
        Fail("unknown tag " + std::to_string(t), at);
    }
  }

  void Big(uint32_t n, uint8_t sign, size_t at) {
    if (sign > 1) Fail("integer with sign byte " + std::to_string(sign), at);
    Need(n, at, "integer");
    const uint8_t* p = b_ + pos_;
    pos_ += n;
    size_t m = n;  // without the zero bytes at the top (non-minimal encodings are accepted)
    while (m > 0 && p[m - 1] == 0) m--;
    if (m <= 7) {
      uint64_t mag = 0;
      for (size_t k = 0; k < m; k++) mag |= uint64_t{p[k]} << (8 * k);
      if (mag <= 9007199254740991ull) {
        double d = static_cast<double>(mag);
        Op(dop::kInt, sign != 0 && mag != 0 ? -d : d);
        return;
      }
    }
    if (m > kMaxBigIntBytes) Fail("integer too large for a JS bigint", at);
    // The magnitude as hex digits, most significant first, for BigInt('0x...').
    static const char kHex[] = "0123456789abcdef";
    size_t start = units_;
    size_t before = text_.size();
    text_.resize(before + 2 * m);
    char* out = &text_[before];
    for (size_t k = 0; k < m; k++) {
      uint8_t byte = p[m - 1 - k];
      out[2 * k] = kHex[byte >> 4];
      out[2 * k + 1] = kHex[byte & 15];
    }
    units_ += 2 * m;
    Op(dop::kBigInt, static_cast<double>(start), static_cast<double>(2 * m), sign);
  }

  void Float(double d, size_t at) {
    if (!std::isfinite(d)) Fail("float is not finite", at);
    // An integral float (-0.0 included) becomes a Float, so that it re-encodes as a float.
    Op(std::trunc(d) == d ? dop::kFloatObj : dop::kFloat, d);
  }

  AddonData& data_;
  napi_env env_;
  const uint8_t* b_;
  size_t len_;
  size_t pos_;
  uint32_t maxDepth_;
  bool binariesAsStrings_;
  bool stringsAsStrings_;
  bool mapsAsObjects_;
  const char* context_;
  bool useKeyCache_;
  DecoderState& state_;
  std::vector<double>& ops_;
  std::string& text_;
  std::vector<Frame>& frames_;
  std::vector<RawKey>& rawKeys_;
  size_t units_ = 0;  // length of text_ in UTF-16 units
  bool ascii_ = true;
  bool needsSource_ = false;
};

// zlib state freed on every path.
struct Inflater {
  z_stream zs{};
  bool live = false;
  ~Inflater() {
    if (live) inflateEnd(&zs);
  }
};

// Holds the per-environment decoder state while a decode uses it; a nested decode gets its own.
struct StateLease {
  AddonData& data;
  bool held;
  std::unique_ptr<DecoderState> own;
  explicit StateLease(AddonData& d) : data(d), held(!d.decodeBusy) {
    if (held) {
      data.decodeBusy = true;
      if (!data.decoderState) data.decoderState.reset(new DecoderState());
    } else {
      own.reset(new DecoderState());
    }
    state().Clear();
  }
  ~StateLease() {
    if (held) {
      data.decodeBusy = false;
      DecoderState& s = *data.decoderState;
      // Keep what a large term needed (reallocating costs page faults every time), but not what
      // one huge term needed.
      if (s.ops.capacity() > kKeepTapeDoubles) std::vector<double>().swap(s.ops);
      if (s.text.capacity() > kKeepTextBytes) std::string().swap(s.text);
      if (s.frames.capacity() > 4096) std::vector<Frame>().swap(s.frames);
      if (s.rawKeys.capacity() > 4096) std::vector<RawKey>().swap(s.rawKeys);
    }
  }
  DecoderState& state() { return held ? *data.decoderState : *own; }
};

// Decodes one term at bytes[*offset] and makes its JS value. `source`: a JS Uint8Array over
// exactly `bytes` (so binaries can be copied from it), or null to make one when needed.
// With mustEnd, the term must take all of the bytes (checked before any JS value is made).
napi_value DecodeToValue(AddonData& data, napi_env env, const uint8_t* bytes, size_t len, size_t* offset,
                         const DecodeSettings& settings, const char* context, napi_value source, bool mustEnd) {
  StateLease lease(data);
  DecoderState& state = lease.state();
  std::vector<double>& ops = state.ops;
  std::string& text = state.text;
  // The key cache is kept in step with buildTerm's: keys added by a decode that never reaches
  // buildTerm are taken out again. A nested decode (none is known to happen) does not use it.
  struct KeyCacheGuard {
    KeyCache* cache;
    KeyCache::Mark mark;
    ~KeyCacheGuard() {
      if (cache != nullptr) cache->Restore(mark);
    }
  } keyGuard{lease.held ? &state.keys : nullptr, state.keys.mark()};
  Decoder decoder(data, env, bytes, len, *offset, settings, context, state, lease.held);
  decoder.Run();
  *offset = decoder.pos();
  if (mustEnd && *offset != len) ThrowDecodeError(data, env, std::string("trailing bytes") + context, *offset);

  // The tape as a Float64Array: the one kept for this environment, or a larger one in its place.
  napi_value tape = nullptr;
  size_t capacity = 0;
  if (lease.held && !data.decodeTape.IsEmpty()) {
    ERLPEB_NAPI(env, napi_get_reference_value(env, data.decodeTape, &tape));
    napi_typedarray_type type;
    ERLPEB_NAPI(env, napi_get_typedarray_info(env, tape, &type, &capacity, nullptr, nullptr, nullptr));
  }
  if (tape == nullptr || capacity < ops.size()) {
    capacity = 1024;
    while (capacity < ops.size()) capacity *= 2;
    napi_value buffer;
    void* raw;
    ERLPEB_NAPI(env, napi_create_arraybuffer(env, capacity * sizeof(double), &raw, &buffer));
    ERLPEB_NAPI(env, napi_create_typedarray(env, napi_float64_array, capacity, buffer, 0, &tape));
    if (lease.held && capacity <= kKeepTapeDoubles) data.decodeTape = Napi::Persistent(Napi::Object(env, tape));
  }
  void* tapeData = nullptr;
  ERLPEB_NAPI(env, napi_get_typedarray_info(env, tape, nullptr, nullptr, &tapeData, nullptr, nullptr));
  if (!ops.empty()) std::memcpy(tapeData, ops.data(), ops.size() * sizeof(double));

  napi_value args[4];
  args[0] = tape;
  ERLPEB_NAPI(env, napi_create_double(env, static_cast<double>(ops.size()), &args[1]));
  if (decoder.textAscii()) {
    ERLPEB_NAPI(env, napi_create_string_latin1(env, text.data(), text.size(), &args[2]));
  } else {
    ERLPEB_NAPI(env, napi_create_string_utf8(env, text.data(), text.size(), &args[2]));
  }
  if (!decoder.needsSource()) {
    ERLPEB_NAPI(env, napi_get_undefined(env, &args[3]));
  } else if (source != nullptr) {
    args[3] = source;
  } else {
    ERLPEB_NAPI(env, napi_create_buffer_copy(env, len, bytes, nullptr, &args[3]));
  }
  napi_value build, undefined, result;
  ERLPEB_NAPI(env, napi_get_reference_value(env, data.buildTerm, &build));
  ERLPEB_NAPI(env, napi_get_undefined(env, &undefined));
  ERLPEB_NAPI(env, napi_call_function(env, undefined, build, 4, args, &result));
  keyGuard.cache = nullptr;  // buildTerm has taken the new keys
  return result;
}

}  // namespace

Napi::Value DecodeTerm(AddonData& data, Napi::Env env, const uint8_t* bytes, size_t len, size_t* offset,
                       const DecodeSettings& settings) {
  return Napi::Value(env, DecodeToValue(data, env, bytes, len, offset, settings, "", nullptr, false));
}

napi_value DecodeBinary(AddonData& data, napi_env env, const uint8_t* bytes, size_t len,
                        const DecodeSettings& settings, napi_value source) {
  if (len == 0) ThrowDecodeError(data, env, "empty input: no version byte", 0);
  if (bytes[0] != tag::kVersion) {
    ThrowDecodeError(data, env, "not an Erlang term: version byte " + std::to_string(bytes[0]) + ", not 131", 0);
  }
  if (len < 2 || bytes[1] != tag::kCompressed) {
    size_t offset = 1;
    return DecodeToValue(data, env, bytes, len, &offset, settings, "", source, true);
  }

  // 131, 80, u32 size of the inflated term, zlib data.
  if (len < 6) ThrowDecodeError(data, env, "truncated compressed term", 2);
  uint64_t size = GetU32(bytes + 2);
  if (size > settings.maxUncompressedSize) {
    ThrowDecodeError(data, env,
                     "compressed term inflates to " + std::to_string(size) + " bytes, more than maxUncompressedSize (" +
                         std::to_string(settings.maxUncompressedSize) + ")",
                     2);
  }
  // One byte more than announced, to notice data that inflates to more.
  std::unique_ptr<uint8_t[]> out(new (std::nothrow) uint8_t[size + 1]);
  if (!out) throw std::bad_alloc();
  Inflater inf;
  if (inflateInit(&inf.zs) != Z_OK) throw std::bad_alloc();
  inf.live = true;
  const uint8_t* in = bytes + 6;
  size_t inLeft = len - 6;
  uint64_t outLeft = size + 1;
  inf.zs.next_out = out.get();
  int rc = Z_OK;
  // zlib counts in 32-bit units: feed both sides in slices.
  constexpr uint64_t kSlice = uint64_t{1} << 30;
  while (rc == Z_OK) {
    if (inf.zs.avail_in == 0 && inLeft != 0) {
      inf.zs.next_in = const_cast<Bytef*>(in);
      inf.zs.avail_in = static_cast<uInt>(inLeft < kSlice ? inLeft : kSlice);
      in += inf.zs.avail_in;
      inLeft -= inf.zs.avail_in;
    }
    if (inf.zs.avail_out == 0) {
      if (outLeft == 0) break;
      inf.zs.avail_out = static_cast<uInt>(outLeft < kSlice ? outLeft : kSlice);
      outLeft -= inf.zs.avail_out;
    }
    rc = inflate(&inf.zs, Z_NO_FLUSH);
    if (rc == Z_BUF_ERROR && inf.zs.avail_in == 0 && inLeft == 0) break;  // the input ran out
    if (rc == Z_BUF_ERROR) rc = Z_OK;                                     // wants another slice
  }
  uint64_t produced = inf.zs.total_out;
  size_t consumed = inf.zs.total_in;
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) {
    ThrowDecodeError(data, env, "corrupt compressed data", 6 + consumed);
  }
  if (produced > size) {
    ThrowDecodeError(data, env,
                     "compressed term inflates to more than the " + std::to_string(size) + " bytes its header says",
                     2);
  }
  if (rc != Z_STREAM_END) ThrowDecodeError(data, env, "truncated compressed data", len);
  if (produced != size) {
    ThrowDecodeError(data, env,
                     "compressed term inflates to " + std::to_string(produced) + " bytes, not the " +
                         std::to_string(size) + " its header says",
                     2);
  }
  if (6 + consumed != len) ThrowDecodeError(data, env, "trailing bytes", 6 + consumed);
  size_t offset = 0;
  return DecodeToValue(data, env, out.get(), static_cast<size_t>(size), &offset, settings, " in compressed term",
                       nullptr, true);
}

Napi::Value BinaryToTerm(AddonData& data, Napi::Env env, const uint8_t* bytes, size_t len,
                         const DecodeSettings& settings) {
  return Napi::Value(env, DecodeBinary(data, env, bytes, len, settings, nullptr));
}

}  // namespace erlpeb
