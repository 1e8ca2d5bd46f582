#include "writer.h"

#include <zlib.h>

#include <memory>
#include <new>

namespace erlpeb {

void Writer::Grow(size_t n) {
  size_t need = pos_ + n;
  size_t cap = buf_.size() < 256 ? 256 : buf_.size();
  while (cap < need) cap *= 2;
  buf_.resize(cap);
}

size_t Writer::Utf16ToUtf8(const char16_t* s, size_t n, uint8_t* p, size_t* chars, bool* lone) {
  uint8_t* out = p;
  size_t c = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u = s[i];
    c++;
    if (u < 0x80) {
      *out++ = static_cast<uint8_t>(u);
    } else if (u < 0x800) {
      *out++ = static_cast<uint8_t>(0xC0 | (u >> 6));
      *out++ = static_cast<uint8_t>(0x80 | (u & 0x3F));
    } else if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
      uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      i++;
      *out++ = static_cast<uint8_t>(0xF0 | (cp >> 18));
      *out++ = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
      *out++ = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      *out++ = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    } else {
      if (u >= 0xD800 && u <= 0xDFFF) {
        u = 0xFFFD;
        *lone = true;
      }
      *out++ = static_cast<uint8_t>(0xE0 | (u >> 12));
      *out++ = static_cast<uint8_t>(0x80 | ((u >> 6) & 0x3F));
      *out++ = static_cast<uint8_t>(0x80 | (u & 0x3F));
    }
  }
  *chars = c;
  return static_cast<size_t>(out - p);
}

void CompressTerm(std::string& buf, size_t start, size_t* pos, int level) {
  size_t plain = *pos - start - 1;
  if (level < 0 || plain > 0xFFFFFFFFull) return;
  uLongf zlen = compressBound(static_cast<uLong>(plain));
  std::unique_ptr<Bytef[]> z(new Bytef[zlen]);
  int rc = compress2(z.get(), &zlen, reinterpret_cast<const Bytef*>(buf.data() + start + 1),
                     static_cast<uLong>(plain), level);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  if (rc != Z_OK || 6 + zlen >= 1 + plain) return;
  uint8_t* p = reinterpret_cast<uint8_t*>(&buf[start]);
  p[1] = tag::kCompressed;
  PutU32(p + 2, static_cast<uint32_t>(plain));
  std::memcpy(p + 6, z.get(), zlen);
  *pos = start + 6 + zlen;
}

}  // namespace erlpeb
