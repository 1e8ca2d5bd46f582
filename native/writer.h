// The output side shared by the ETF encoders (the one that reads JS values in term_encoder.cc and
// the tape encoder in tape_encoder.cc). No Node-API here: the fuzz targets link it without Node.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "byte_reader.h"
#include "etf_tags.h"

namespace erlpeb {

inline constexpr uint8_t kAtomTrue[] = {tag::kSmallAtomUtf8, 4, 't', 'r', 'u', 'e'};
inline constexpr uint8_t kAtomFalse[] = {tag::kSmallAtomUtf8, 5, 'f', 'a', 'l', 's', 'e'};
inline constexpr uint8_t kAtomUndefined[] = {tag::kSmallAtomUtf8, 9, 'u', 'n', 'd', 'e', 'f', 'i', 'n', 'e', 'd'};

// ETF bytes appended to a std::string whose size() is its capacity (grown geometrically, never
// trimmed here, so a reused buffer is never refilled).
class Writer {
 public:
  Writer(std::string& buf, size_t pos) : buf_(buf), pos_(pos) {}
  size_t pos() const { return pos_; }

  // UTF-16 text as UTF-8 at p (room for 3 bytes per unit): a lone surrogate becomes U+FFFD, as
  // V8 and Buffer.from(string) make it, and sets *lone (left alone otherwise). Returns the bytes
  // written; *chars counts code points.
  static size_t Utf16ToUtf8(const char16_t* s, size_t n, uint8_t* p, size_t* chars, bool* lone);

 protected:
  uint8_t* Reserve(size_t n) {
    if (buf_.size() - pos_ < n) Grow(n);
    return reinterpret_cast<uint8_t*>(&buf_[0]) + pos_;
  }

  void Grow(size_t n);

  void Put8(uint8_t b) {
    *Reserve(1) = b;
    pos_ += 1;
  }

  void PutBytes(const uint8_t* p, size_t n) {
    uint8_t* out = Reserve(n);
    if (n != 0) std::memcpy(out, p, n);
    pos_ += n;
  }

  void WriteHeader32(uint8_t t, uint32_t n) {
    uint8_t* p = Reserve(5);
    p[0] = t;
    PutU32(p + 1, n);
    pos_ += 5;
  }

  void WriteFloat(double d) {
    uint8_t* p = Reserve(9);
    p[0] = tag::kNewFloat;
    PutF64(p + 1, d);
    pos_ += 9;
  }

  // The smallest integer encoding of -mag (neg) or mag.
  void WriteInteger(bool neg, uint64_t mag) {
    if (mag == 0) neg = false;
    if (!neg && mag <= 255) {
      uint8_t* p = Reserve(2);
      p[0] = tag::kSmallInteger;
      p[1] = static_cast<uint8_t>(mag);
      pos_ += 2;
      return;
    }
    if ((!neg && mag <= 0x7FFFFFFFull) || (neg && mag <= 0x80000000ull)) {
      int64_t v = neg ? -static_cast<int64_t>(mag) : static_cast<int64_t>(mag);
      uint8_t* p = Reserve(5);
      p[0] = tag::kInteger;
      PutU32(p + 1, static_cast<uint32_t>(static_cast<int32_t>(v)));
      pos_ += 5;
      return;
    }
    uint8_t n = 0;
    for (uint64_t m = mag; m != 0; m >>= 8) n++;
    uint8_t* p = Reserve(3 + n);
    p[0] = tag::kSmallBig;
    p[1] = n;
    p[2] = neg ? 1 : 0;
    for (uint8_t k = 0; k < n; k++) p[3 + k] = static_cast<uint8_t>(mag >> (8 * k));
    pos_ += 3 + n;
  }

  // A JS number as an integer or a float; false (nothing written) for NaN, ±Infinity and
  // integral numbers beyond 2^53 - 1, which have no single right encoding.
  bool WriteNumber(double d) {
    if (d >= -2147483648.0 && d <= 2147483647.0) {
      int32_t i = static_cast<int32_t>(d);
      if (static_cast<double>(i) == d) {  // integral (and -0 is 0)
        WriteInteger(i < 0, i < 0 ? static_cast<uint64_t>(-static_cast<int64_t>(i)) : static_cast<uint64_t>(i));
      } else {
        WriteFloat(d);
      }
      return true;
    }
    if (!std::isfinite(d)) return false;
    if (std::trunc(d) != d) {
      WriteFloat(d);
      return true;
    }
    if (std::fabs(d) > 9007199254740991.0) return false;
    WriteInteger(d < 0, static_cast<uint64_t>(std::fabs(d)));
    return true;
  }

  // Finishes an atom whose UTF-8 name (n bytes, `chars` code points) was written at p + 2 (p from
  // Reserve(3 + n)). False when the name is too long.
  bool FinishAtom(uint8_t* p, size_t n, size_t chars) {
    if (chars > 255) return false;
    if (n <= 255) {
      p[0] = tag::kSmallAtomUtf8;
      p[1] = static_cast<uint8_t>(n);
      pos_ += 2 + n;
    } else {
      std::memmove(p + 3, p + 2, n);
      p[0] = tag::kAtomUtf8;
      PutU16(p + 1, static_cast<uint16_t>(n));
      pos_ += 3 + n;
    }
    return true;
  }

  std::string& buf_;
  size_t pos_;
};

// Replaces the plain term at buf[start..*pos) (version byte first) with its compressed form
// (131, 80, u32 size, zlib data) when that is shorter, as Erlang's term_to_binary does.
void CompressTerm(std::string& buf, size_t start, size_t* pos, int level);

}  // namespace erlpeb
