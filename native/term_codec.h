// The native ETF codec as used by other native code (the connection): encode a JS value into
// bytes, decode bytes into a JS value. Both run on the main thread only (they touch JS values).
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "addon_data.h"
#include "term_parser.h"

namespace erlpeb {

// Bits of DecodeSettings::flags; the same numbers as DecodeFlag in lib/codec/options.ts.
enum DecodeFlag : uint32_t {
  kBinariesAsStrings = 1,
  kStringsAsStrings = 2,
  kMapsAsObjects = 4,
};

struct DecodeSettings {
  uint32_t flags = 0;
  uint32_t maxDepth = 1024;
  uint64_t maxUncompressedSize = 64ull * 1024 * 1024;
};

struct EncodeSettings {
  int compressLevel = -1;  // -1: not compressed
  uint32_t maxDepth = 1024;
};

// Appends the encoding of `value` to `out`, without the version byte. On a value with no Erlang
// counterpart throws a JS EncodeError (as a Napi::Error) whose path names where it is.
void EncodeTerm(AddonData& data, Napi::Value value, std::string& out, const EncodeSettings& settings);

// Decodes one term (no version byte) starting at bytes[*offset], advancing *offset past it. Every
// length is checked against `len` before it is read or allocated; bad input throws a JS
// DecodeError naming the byte offset (counted from `bytes`).
Napi::Value DecodeTerm(AddonData& data, Napi::Env env, const uint8_t* bytes, size_t len, size_t* offset,
                       const DecodeSettings& settings);

// The whole of termToBinary: appends the version byte and the term, compressed (tag 80) when
// settings.compressLevel >= 0 and that is shorter, as Erlang's term_to_binary does. Throws as EncodeTerm.
void TermToBinary(AddonData& data, Napi::Value value, std::string& out, const EncodeSettings& settings);

// The whole of binaryToTerm: the version byte, then one term, possibly compressed (its inflated
// size checked against settings.maxUncompressedSize before anything is allocated), then nothing
// else. Throws as DecodeTerm.
Napi::Value BinaryToTerm(AddonData& data, Napi::Env env, const uint8_t* bytes, size_t len,
                         const DecodeSettings& settings);

// The terms of many events parsed onto one tape and text, so that JavaScript makes all of their
// values in one entry from native code (entering JS costs more than making a small term): the
// connection's Drain parses each reply into the batch, then hands tape, text and source to its
// onEvents, which calls buildTerm on each event's part of the tape, in the order they were parsed
// (the key cache's JS twin depends on that order). Main thread only.
class TermBatch {
 public:
  TermBatch(AddonData& data, const DecodeSettings& settings);
  ~TermBatch();
  TermBatch(const TermBatch&) = delete;
  TermBatch& operator=(const TermBatch&) = delete;

  // False while another decode holds the environment's decoder state: decode one at a time then.
  bool usable() const { return held_; }

  // Parses one term at bytes[pos], inside bytes[0, end) (mustEnd: taking all of it). true with
  // the term's ops in [*opsBegin, *opsEnd); false with *error a DecodeError whose offset counts
  // from bytes[origin] (the batch is as it was before the call).
  bool Add(Napi::Env env, const uint8_t* bytes, size_t pos, size_t end, bool mustEnd, size_t origin,
           size_t* opsBegin, size_t* opsEnd, Napi::Value* error);

  bool empty() const { return state_->ops.empty(); }

  // tape (Float64Array), text (string) and source (a copy of bytes[0, len), or undefined when no
  // op reads it) for buildTerm. After this the batch's keys belong to JS: call it right before
  // handing them over.
  void Finish(Napi::Env env, const uint8_t* bytes, size_t len, napi_value out[3]);

  // Gives the environment's decoder state back (Add may not be called after this).
  void Release();

 private:
  AddonData& data_;
  ParseOptions options_;
  DecoderState* state_ = nullptr;
  bool held_ = false;
  bool finished_ = false;
  KeyCache::Mark keysMark_{};
  size_t units_ = 0;
  bool ascii_ = true;
  bool needsSource_ = false;
};

}  // namespace erlpeb
