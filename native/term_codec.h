// The native ETF codec as used by other native code (the connection): encode a JS value into
// bytes, decode bytes into a JS value. Both run on the main thread only (they touch JS values).
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "addon_data.h"

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

}  // namespace erlpeb
