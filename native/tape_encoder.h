// The encoder's fast path: ETF bytes from an encode tape (tape.h) that the JS walk in
// lib/codec/native.ts writes for JSON-like values. No Node-API here: the fuzz targets link it
// without Node.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "writer.h"

namespace erlpeb {

// The bytes of the tape's byte array `index` (eop::kBytes); false when it is not a Buffer/Uint8Array.
using TapeBytes = std::function<bool(uint32_t index, const uint8_t** data, size_t* length)>;

// Encodes what the JS walk put on an encode tape. The tape comes from our own JS, but it is still
// read with every index checked: a malformed one throws std::runtime_error.
class TapeEncoder : Writer {
 public:
  TapeEncoder(std::string& buf, size_t pos) : Writer(buf, pos) {}
  using Writer::pos;

  // False when the tape holds a value this path leaves to the full encoder (which reports it):
  // one with no Erlang form, or a map whose keys are written as the same bytes.
  bool Run(const double* t, size_t n, const char16_t* text, size_t textLen, const TapeBytes& bytesAt);

 private:
  [[noreturn]] static void Malformed();
  double Next();
  size_t Count();
  bool HasCollidingKeys(const char16_t* text) const;

  const double* t_ = nullptr;
  size_t n_ = 0;
  size_t i_ = 0;
  bool lone_ = false;  // some string on the tape had a lone surrogate
};

// The version byte and the term described by an encode tape (`text` holds its strings),
// compressed (tag 80) when compressLevel >= 0 and that is shorter. False (buf and *pos unusable)
// when the tape holds a value this path does not take: the caller encodes the value with
// EncodeBinaryInto instead.
bool EncodeTapeInto(const double* tape, size_t n, const char16_t* text, size_t textLen, const TapeBytes& bytesAt,
                    std::string& buf, size_t* pos, int compressLevel);

}  // namespace erlpeb
