// The parsing core of the ETF decoder: untrusted bytes -> an op tape (tape.h) plus a text, or a
// ParseError naming the byte offset of what is wrong.
//
// It uses no Node-API: term_decoder.cc turns the tape into JS values (through buildTerm in
// lib/native.ts) and a ParseError into a DecodeError, and the fuzz targets in fuzz/ run it as it
// is, without Node.
//
// Every length and count is checked against the bytes that are left before anything is read or
// allocated (each element of a container takes at least one byte, so a count larger than what is
// left is rejected up front). Containers are decoded with an explicit stack of frames, never by
// recursion, bounded by maxDepth, so no input can overflow the C stack. ei's decode functions are
// not used: they do not check bounds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "key_cache.h"

namespace erlpeb {

// The decode options as the parser takes them (DecodeSettings in term_codec.h, without Node-API).
struct ParseOptions {
  bool binariesAsStrings = false;
  bool stringsAsStrings = false;
  bool mapsAsObjects = false;
  uint32_t maxDepth = 1024;
  uint64_t maxUncompressedSize = 64ull * 1024 * 1024;
};

// Thrown for bad input: the message, and the byte offset it is about (counted from the bytes the
// parser was given; for a compressed term, from the inflated bytes).
struct ParseError {
  std::string message;
  size_t offset;
};

// The parser's working storage: what a parse leaves (ops, text) and its stacks. Kept between
// parses so that parsing does not allocate; the key cache lives on across parses by design.
struct DecoderState {
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
    bool atomKeys;    // map: some key taken as text is an atom
    bool binaryKeys;  // map: some key taken as text is a binary
    bool inTail;      // list: the elements are done, the tail is being decoded
    uint32_t n;       // list/tuple: elements; map: keys and values (2 per pair); fun: free variables
    uint32_t i;       // taken so far
    size_t at;        // offset of the container's tag
    size_t end;       // fun: one past its last byte
    size_t keysBase;  // map: where its keys start in rawKeys
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

  std::vector<double> ops;
  std::string text;  // UTF-8 (all ASCII when the parser's textAscii() says so)
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

// Where binary_to_term's term is, once its framing is taken off (see UnwrapBinary).
struct TermSpan {
  const uint8_t* bytes;  // the bytes the term's offsets count from
  size_t len;
  size_t offset;        // where the term starts in them
  const char* context;  // appended to the messages of errors found in them
};

// binary_to_term's framing: the version byte, then either the term or a compressed wrapper
// (80, u32 size, zlib data), inflated into *inflated, its announced size checked against
// maxUncompressedSize before anything is allocated. Throws ParseError.
TermSpan UnwrapBinary(const uint8_t* bytes, size_t len, uint64_t maxUncompressedSize,
                      std::unique_ptr<uint8_t[]>* inflated);

// Parses one term starting at bytes[pos] onto state's tape (cleared first by the caller), checking
// every byte. Throws ParseError for bad input and std::bad_alloc when memory runs out.
class TermParser {
 public:
  // context: appended to every error message (" in compressed term"). useKeyCache: object keys
  // go through state.keys (kKey / kKeyNew ops), else they are plain text (kString). unitsBase:
  // where this term's text starts in the text buildTerm gets, in UTF-16 units (several terms
  // parsed onto one tape and text, as TermBatch does).
  TermParser(const uint8_t* bytes, size_t len, size_t pos, const ParseOptions& options, const char* context,
             DecoderState& state, bool useKeyCache, size_t unitsBase = 0);

  // One term; pos() is then just past it.
  void Run();
  // One term that must take all the bytes ("trailing bytes" otherwise).
  void RunWhole();

  size_t pos() const { return pos_; }
  size_t textUnits() const { return units_; }      // unitsBase + length of the text in UTF-16 units
  bool textAscii() const { return ascii_; }         // the text is all ASCII
  bool needsSource() const { return needsSource_; }  // some op refers to the source bytes

 private:
  using Frame = DecoderState::Frame;
  using FrameKind = DecoderState::FrameKind;
  using RawKey = DecoderState::RawKey;

  [[noreturn]] void Fail(const std::string& message, size_t at);
  [[noreturn]] void FailCount(const char* what, uint64_t n, const char* unit, size_t at);
  void Need(size_t n, size_t at, const char* what);
  void EnterContainer(size_t at);

  void Op(int op);
  void Op(int op, double a);
  void Op(int op, double a, double b);
  void Op(int op, double a, double b, double c);
  size_t TextAscii(const uint8_t* p, size_t n);
  size_t TextUtf8(const uint8_t* p, size_t n, size_t units);
  size_t TextLatin1(const uint8_t* p, size_t n);
  size_t TextAtom(const uint8_t* p, uint32_t n, bool latin1, size_t* units);

  void ReadAtom(uint8_t t, size_t at, const uint8_t** p, uint32_t* n, bool* latin1);
  bool KeysRepeat(const DecoderState::Frame& f);
  void ReadAtomField(const char* what, size_t* textPos, size_t* textLen);
  bool TakeRawKey(Frame& f);
  void Key(const uint8_t* p, size_t n, size_t units);

  Frame& Push(FrameKind kind, uint32_t n, size_t at);
  bool Accept();
  void FinishFrame();
  void FinishMap(const Frame& f);
  void ReadFunHeader(Frame* f);
  void FinishFun(const Frame& f);
  void ReadIntegerTerm(const char* what);
  void ReadPidTerm(const char* what);

  void Binary(const uint8_t* p, uint32_t n);
  void DecodeLeaf(uint8_t t, size_t at);
  void Big(uint32_t n, uint8_t sign, size_t at);
  void Float(double d, size_t at);

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

}  // namespace erlpeb
