// UTF-8 helpers for the codec: an ASCII fast check, strict validation (what Erlang accepts in an
// atom: no overlong forms, no surrogates, nothing above U+10FFFF) and Latin-1 to UTF-8.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace erlpeb {

inline bool IsAscii(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) return false;
  }
  for (; i < n; i++) {
    if (p[i] & 0x80) return false;
  }
  return true;
}

// Checks p[0..n) as strict UTF-8 and counts it: code points (*chars) and UTF-16 units (*units,
// 2 for a code point above U+FFFF). False when the bytes are not valid UTF-8.
inline bool Utf8Measure(const uint8_t* p, size_t n, size_t* chars, size_t* units) {
  size_t c = 0, u = 0, i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (!(w & 0x8080808080808080ull)) {
        i += 8;
        c += 8;
        u += 8;
        continue;
      }
    }
    uint8_t b = p[i];
    size_t len;
    if (b < 0x80) {
      len = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      if (i + 1 >= n || (p[i + 1] & 0xC0) != 0x80) return false;
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      if (i + 2 >= n) return false;
      uint8_t lo = b == 0xE0 ? 0xA0 : 0x80;
      uint8_t hi = b == 0xED ? 0x9F : 0xBF;
      if (p[i + 1] < lo || p[i + 1] > hi || (p[i + 2] & 0xC0) != 0x80) return false;
      len = 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      if (i + 3 >= n) return false;
      uint8_t lo = b == 0xF0 ? 0x90 : 0x80;
      uint8_t hi = b == 0xF4 ? 0x8F : 0xBF;
      if (p[i + 1] < lo || p[i + 1] > hi || (p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80) return false;
      len = 4;
      u++;  // a surrogate pair in UTF-16
    } else {
      return false;
    }
    i += len;
    c++;
    u++;
  }
  *chars = c;
  *units = u;
  return true;
}

// Latin-1 bytes as UTF-8, appended to out.
inline void Latin1ToUtf8(const uint8_t* p, size_t n, std::string& out) {
  out.reserve(out.size() + n * 2);
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
}

}  // namespace erlpeb
