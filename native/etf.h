// Helpers shared by the encoder, the decoder and the binding: throwing the JS error classes,
// turning a failed Node-API call into a C++ exception.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "addon_data.h"
#include "etf_tags.h"
#include "term_codec.h"
#include "tape_encoder.h"

namespace erlpeb {

// Numbers stored under TERM_KIND on the term class prototypes (Kind in lib/terms.ts).
namespace kind {
constexpr int32_t kAtom = 1;
constexpr int32_t kTuple = 2;
constexpr int32_t kPid = 3;
constexpr int32_t kRef = 4;
constexpr int32_t kPort = 5;
constexpr int32_t kFun = 6;
constexpr int32_t kExport = 7;
constexpr int32_t kBitBinary = 8;
constexpr int32_t kImproperList = 9;
constexpr int32_t kCharlist = 10;
constexpr int32_t kFloat = 11;
}  // namespace kind

// A Node-API call failed: rethrow whatever JS exception it left pending (a getter that threw, say)
// as a C++ exception, which the binding hands back to JS unchanged.
[[noreturn]] inline void ThrowPending(napi_env env) { throw Napi::Error::New(env); }

#define ERLPEB_NAPI(env, call)                                 \
  do {                                                         \
    if ((call) != napi_ok) ::erlpeb::ThrowPending(env);        \
  } while (0)

// new DecodeError(message, offset), thrown.
[[noreturn]] inline void ThrowDecodeError(AddonData& data, napi_env env, const std::string& message,
                                          size_t offset) {
  Napi::Env e(env);
  Napi::Object err = data.DecodeError.New(
      {Napi::String::New(e, message), Napi::Number::New(e, static_cast<double>(offset))});
  throw Napi::Error(env, err);
}

// new EncodeError(message, path), thrown.
[[noreturn]] inline void ThrowEncodeError(AddonData& data, napi_env env, const std::string& message,
                                          napi_value path) {
  Napi::Env e(env);
  Napi::Object err = data.EncodeError.New({Napi::String::New(e, message), Napi::Value(env, path)});
  throw Napi::Error(env, err);
}

// The encoder core, used by EncodeTerm and by the termToBinary binding: writes the encoding of
// `value` into buf from *pos on, treating buf.size() as capacity (grown geometrically), and leaves
// *pos just past the last byte written. buf is not trimmed, so a reused buffer is never refilled.
void EncodeInto(AddonData& data, napi_env env, napi_value value, std::string& buf, size_t* pos,
                const EncodeSettings& settings);

// EncodeInto with the version byte first, and compressed when settings ask and it helps.
void EncodeBinaryInto(AddonData& data, napi_env env, napi_value value, std::string& buf, size_t* pos,
                      const EncodeSettings& settings);

// EncodeTapeInto (the encoder's tape path, free of Node-API) is declared in tape_encoder.h.

// The term on an encode tape lib/codec/native.ts passes as (tape, length, text, byteArrays),
// written at buf[*pos] (buf.size() the capacity, as for EncodeInto; *pos then just past it):
// with the version byte (and compressed when compressLevel >= 0 and that is shorter) when
// `binary`, else the bare term. False when the tape holds a value only the full encoder takes
// (*pos is then as it was); a TypeError when the arguments are not a tape.
bool EncodeTapeArgs(AddonData& data, napi_env env, const napi_value args[4], std::string& buf, size_t* pos,
                    bool binary, int compressLevel);

// EncodeTapeArgs for a caller that has read the tape (a Float64Array of tapeLength numbers) itself:
// rest is (length, text, byteArrays).
bool EncodeTape(AddonData& data, napi_env env, const double* tape, size_t tapeLength, const napi_value rest[3],
                std::string& buf, size_t* pos, bool binary, int compressLevel);

// binaryToTerm on bytes[0..len): version byte, an optional compressed wrapper, one term, nothing
// else. `source`: the JS Uint8Array the bytes belong to (binaries are copied from it), or null.
napi_value DecodeBinary(AddonData& data, napi_env env, const uint8_t* bytes, size_t len,
                        const DecodeSettings& settings, napi_value source);

// Empties the decoder's key cache: setup() hands over a new buildTerm, whose own cache is empty.
void ResetKeyCache(AddonData& data);

}  // namespace erlpeb
