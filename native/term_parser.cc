// The parsing core of the ETF decoder (see term_parser.h): no Node-API here.
#include "term_parser.h"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <locale.h>
#include <new>
#include <string_view>
#include <unordered_set>

#include "byte_reader.h"
#include "etf_tags.h"
#include "tape.h"
#include "utf8.h"

namespace erlpeb {
namespace {

// V8 refuses strings longer than this; binaries that long stay Buffers.
constexpr size_t kMaxStringLength = (size_t{1} << 29) - 24;

// V8's largest BigInt has 2^30 bits.
constexpr size_t kMaxBigIntBytes = size_t{1} << 27;

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

bool IsAtomTag(uint8_t t) {
  return t == tag::kAtom || t == tag::kSmallAtom || t == tag::kAtomUtf8 || t == tag::kSmallAtomUtf8;
}

// zlib state freed on every path.
struct Inflater {
  z_stream zs{};
  bool live = false;
  ~Inflater() {
    if (live) inflateEnd(&zs);
  }
};

}  // namespace

TermSpan UnwrapBinary(const uint8_t* bytes, size_t len, uint64_t maxUncompressedSize,
                      std::unique_ptr<uint8_t[]>* inflated) {
  if (len == 0) throw ParseError{"empty input: no version byte", 0};
  if (bytes[0] != tag::kVersion) {
    throw ParseError{"not an Erlang term: version byte " + std::to_string(bytes[0]) + ", not 131", 0};
  }
  if (len < 2 || bytes[1] != tag::kCompressed) return TermSpan{bytes, len, 1, ""};

  // 131, 80, u32 size of the inflated term, zlib data.
  if (len < 6) throw ParseError{"truncated compressed term", 2};
  uint64_t size = GetU32(bytes + 2);
  if (size > maxUncompressedSize) {
    throw ParseError{"compressed term inflates to " + std::to_string(size) + " bytes, more than maxUncompressedSize (" +
                         std::to_string(maxUncompressedSize) + ")",
                     2};
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
  // What zlib read, from where it stopped: total_in is not brought up to date when it returns
  // Z_NEED_DICT (a stream asking for a preset dictionary, which a term never has).
  size_t consumed = static_cast<size_t>(in - (bytes + 6)) - inf.zs.avail_in;
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) {
    throw ParseError{"corrupt compressed data", 6 + consumed};
  }
  if (produced > size) {
    throw ParseError{"compressed term inflates to more than the " + std::to_string(size) + " bytes its header says", 2};
  }
  if (rc != Z_STREAM_END) throw ParseError{"truncated compressed data", len};
  if (produced != size) {
    throw ParseError{"compressed term inflates to " + std::to_string(produced) + " bytes, not the " +
                         std::to_string(size) + " its header says",
                     2};
  }
  if (6 + consumed != len) throw ParseError{"trailing bytes", 6 + consumed};
  *inflated = std::move(out);
  return TermSpan{inflated->get(), static_cast<size_t>(size), 0, " in compressed term"};
}

TermParser::TermParser(const uint8_t* bytes, size_t len, size_t pos, const ParseOptions& options,
                       const char* context, DecoderState& state, bool useKeyCache, size_t unitsBase)
    : b_(bytes),
      len_(len),
      pos_(pos),
      maxDepth_(options.maxDepth),
      binariesAsStrings_(options.binariesAsStrings),
      stringsAsStrings_(options.stringsAsStrings),
      mapsAsObjects_(options.mapsAsObjects),
      context_(context),
      useKeyCache_(useKeyCache),
      state_(state),
      ops_(state.ops),
      text_(state.text),
      frames_(state.frames),
      rawKeys_(state.rawKeys),
      units_(unitsBase) {}

// The private members are defined `inline`, as they were when they sat in the class body: the
// compiler then folds the small ones into Run's loop, which decoding speed depends on.

void TermParser::RunWhole() {
  Run();
  if (pos_ != len_) Fail("trailing bytes", pos_);
}

// Decodes one term onto the tape.
void TermParser::Run() {
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
        f.atomKeys = false;
        f.binaryKeys = false;
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

// ---- errors and bounds ----

void TermParser::Fail(const std::string& message, size_t at) { throw ParseError{message + context_, at}; }

void TermParser::FailCount(const char* what, uint64_t n, const char* unit, size_t at) {
  Fail(std::string("truncated ") + what + ": " + std::to_string(n) + " " + unit + " but only " +
           std::to_string(len_ - pos_) + " bytes left",
       at);
}

// n more bytes must be there; else the term that starts at `at` is truncated.
inline void TermParser::Need(size_t n, size_t at, const char* what) {
  if (len_ - pos_ < n) Fail(std::string("truncated ") + what, at);
}

inline void TermParser::EnterContainer(size_t at) {
  if (frames_.size() >= maxDepth_) Fail("nesting deeper than " + std::to_string(maxDepth_), at);
}

// ---- tape ----

inline void TermParser::Op(int op) { ops_.push_back(op); }
inline void TermParser::Op(int op, double a) {
  ops_.push_back(op);
  ops_.push_back(a);
}
inline void TermParser::Op(int op, double a, double b) {
  ops_.push_back(op);
  ops_.push_back(a);
  ops_.push_back(b);
}
inline void TermParser::Op(int op, double a, double b, double c) {
  ops_.push_back(op);
  ops_.push_back(a);
  ops_.push_back(b);
  ops_.push_back(c);
}

// Appends to the text; returns where it starts (in UTF-16 units).
inline size_t TermParser::TextAscii(const uint8_t* p, size_t n) {
  size_t start = units_;
  text_.append(reinterpret_cast<const char*>(p), n);
  units_ += n;
  return start;
}

inline size_t TermParser::TextUtf8(const uint8_t* p, size_t n, size_t units) {
  size_t start = units_;
  text_.append(reinterpret_cast<const char*>(p), n);
  units_ += units;
  ascii_ = false;
  return start;
}

inline size_t TermParser::TextLatin1(const uint8_t* p, size_t n) {
  if (IsAscii(p, n)) return TextAscii(p, n);
  size_t start = units_;
  Latin1ToUtf8(p, n, text_);
  units_ += n;
  ascii_ = false;
  return start;
}

// An atom's name into the text; its length (UTF-16 units) in *units.
inline size_t TermParser::TextAtom(const uint8_t* p, uint32_t n, bool latin1, size_t* units) {
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
inline void TermParser::ReadAtom(uint8_t t, size_t at, const uint8_t** p, uint32_t* n, bool* latin1) {
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

// An atom in a field that is always an Atom (a node or module name), whatever its name: its
// name goes to the text, position and length in *textPos / *textLen.
inline void TermParser::ReadAtomField(const char* what, size_t* textPos, size_t* textLen) {
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
inline bool TermParser::TakeRawKey(Frame& f) {
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
    f.atomKeys = true;
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
        f.binaryKeys = true;
        return true;
      }
    }
  }
  f.allRaw = false;
  return false;
}

// An object key given as UTF-8 bytes (`units` UTF-16 units long): from the key cache when it is
// there (kKey), else as text, added to the cache when short (kKeyNew).
inline void TermParser::Key(const uint8_t* p, size_t n, size_t units) {
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

inline TermParser::Frame& TermParser::Push(FrameKind kind, uint32_t n, size_t at) {
  Frame f{};
  f.kind = kind;
  f.n = n;
  f.at = at;
  frames_.push_back(f);
  return frames_.back();
}

// The innermost frame takes the value just put on the tape; true when that completes it.
inline bool TermParser::Accept() {
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

inline void TermParser::FinishFrame() {
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

// Whether two keys of a map whose keys were all taken as text are the same text. Only an atom and a
// binary can be (`a` and <<"a">>: distinct atoms, or distinct binaries, are distinct texts), and
// one object cannot hold both: the map is then a Map.
bool TermParser::KeysRepeat(const Frame& f) {
  std::unordered_set<std::string> seen;
  const uint32_t pairs = f.n / 2;
  const size_t saved = pos_;
  for (uint32_t j = 0; j < pairs; j++) {
    const size_t at = rawKeys_[f.keysBase + j].at;
    const uint8_t t = b_[at];
    std::string text;
    if (IsAtomTag(t)) {
      const uint8_t* p;
      uint32_t n;
      bool latin1;
      pos_ = at + 1;
      ReadAtom(t, at, &p, &n, &latin1);  // read once already: it cannot fail now
      if (latin1) Latin1ToUtf8(p, n, text);
      else text.assign(reinterpret_cast<const char*>(p), n);
    } else {
      const size_t header = t == tag::kBinary ? 5 : 6;
      text.assign(reinterpret_cast<const char*>(b_ + at + header), GetU32(b_ + at + 1));
    }
    if (!seen.insert(std::move(text)).second) {
      pos_ = saved;
      return true;
    }
  }
  pos_ = saved;
  return false;
}

inline void TermParser::FinishMap(const Frame& f) {
  uint32_t pairs = f.n / 2;
  if (mapsAsObjects_ && f.allRaw && !(f.atomKeys && f.binaryKeys && KeysRepeat(f))) {
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
inline void TermParser::ReadFunHeader(Frame* f) {
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

inline void TermParser::FinishFun(const Frame& f) {
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

inline void TermParser::ReadIntegerTerm(const char* what) {
  size_t at = pos_;
  if (pos_ >= len_) Fail(std::string("truncated ") + what, at);
  uint8_t t = b_[pos_++];
  if (t != tag::kSmallInteger && t != tag::kInteger && t != tag::kSmallBig && t != tag::kLargeBig) {
    Fail(std::string(what) + " must be an integer, not tag " + std::to_string(t), at);
  }
  DecodeLeaf(t, at);
}

inline void TermParser::ReadPidTerm(const char* what) {
  size_t at = pos_;
  if (pos_ >= len_) Fail(std::string("truncated ") + what, at);
  uint8_t t = b_[pos_++];
  if (t != tag::kPid && t != tag::kNewPid) Fail(std::string(what) + " must be a pid, not tag " + std::to_string(t), at);
  DecodeLeaf(t, at);
}

// ---- leaves ----

inline void TermParser::Binary(const uint8_t* p, uint32_t n) {
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

inline void TermParser::DecodeLeaf(uint8_t t, size_t at) {
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

inline void TermParser::Big(uint32_t n, uint8_t sign, size_t at) {
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

inline void TermParser::Float(double d, size_t at) {
  if (!std::isfinite(d)) Fail("float is not finite", at);
  // An integral float (-0.0 included) becomes a Float, so that it re-encodes as a float.
  Op(std::trunc(d) == d ? dop::kFloatObj : dop::kFloat, d);
}

}  // namespace erlpeb
