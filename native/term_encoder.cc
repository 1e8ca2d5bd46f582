// The ETF encoder: a JS value -> Erlang's external term format, following the term mapping in
// DESIGN.md byte for byte (the pure-TS codec writes the same bytes).
//
// It walks the value with an explicit stack of frames instead of recursion, so no nesting depth
// (up to maxDepth, which may be as large as 1,000,000) can overflow the C stack; the frames also
// give the path of a value that cannot be encoded.
#include <napi.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "byte_reader.h"
#include "etf.h"
#include "tape.h"
#include "term_codec.h"

namespace erlpeb {
namespace {

constexpr uint8_t kAtomTrue[] = {tag::kSmallAtomUtf8, 4, 't', 'r', 'u', 'e'};
constexpr uint8_t kAtomFalse[] = {tag::kSmallAtomUtf8, 5, 'f', 'a', 'l', 's', 'e'};
constexpr uint8_t kAtomUndefined[] = {tag::kSmallAtomUtf8, 9, 'u', 'n', 'd', 'e', 'f', 'i', 'n', 'e', 'd'};

// Handles made while walking a long array or object are released every kBatch elements (one
// handle scope per batch), so a million-element list does not keep a million handles alive.
constexpr uint32_t kBatch = 4096;

enum class FrameKind : uint8_t { kList, kTuple, kObject, kMap, kImproper };

struct Frame {
  FrameKind kind;
  bool counted;  // counts toward the nesting depth (it wrote a container tag)
  bool inTail;   // improper list: the elements are done, the tail is being encoded
  uint32_t n;    // elements (keys and values for a Map: 2 per entry)
  uint32_t i;    // elements taken so far
  napi_value src;             // the elements array, the object, or the Map's flat entries
  napi_value keys;            // object: its own enumerable string keys
  napi_value key;             // object: the key being encoded (for error paths)
  napi_value tail;            // improper list: the tail
  napi_handle_scope batch;    // the current batch scope, if any
};

const char* TypedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "an Int8Array";
    case napi_uint8_array: return "a Uint8Array";
    case napi_uint8_clamped_array: return "a Uint8ClampedArray";
    case napi_int16_array: return "an Int16Array";
    case napi_uint16_array: return "a Uint16Array";
    case napi_int32_array: return "an Int32Array";
    case napi_uint32_array: return "a Uint32Array";
    case napi_float32_array: return "a Float32Array";
    case napi_float64_array: return "a Float64Array";
    case napi_bigint64_array: return "a BigInt64Array";
    case napi_biguint64_array: return "a BigUint64Array";
    default: break;
  }
  return "a typed array";
}

bool IsIdentifier(const std::u16string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char16_t c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void AppendAscii(std::u16string& out, const std::string& s) {
  for (char c : s) out.push_back(static_cast<char16_t>(c));
}

// s as JSON.stringify writes it (lone surrogates escaped, as it does since ES2019).
void AppendJsonString(std::u16string& out, const std::u16string& s) {
  static const char kHex[] = "0123456789abcdef";
  auto escape = [&](char16_t c) {
    out += u"\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out.push_back(static_cast<char16_t>(kHex[(c >> shift) & 0xF]));
  };
  out.push_back(u'"');
  for (size_t i = 0; i < s.size(); i++) {
    char16_t c = s[i];
    switch (c) {
      case u'"': out += u"\\\""; break;
      case u'\\': out += u"\\\\"; break;
      case u'\b': out += u"\\b"; break;
      case u'\f': out += u"\\f"; break;
      case u'\n': out += u"\\n"; break;
      case u'\r': out += u"\\r"; break;
      case u'\t': out += u"\\t"; break;
      default:
        if (c < 0x20) {
          escape(c);
        } else if (c >= 0xD800 && c <= 0xDBFF) {
          if (i + 1 < s.size() && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
            out.push_back(c);
            out.push_back(s[++i]);
          } else {
            escape(c);
          }
        } else if (c >= 0xDC00 && c <= 0xDFFF) {
          escape(c);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back(u'"');
}

// The output side shared by both encoders: ETF bytes appended to a std::string whose size() is
// its capacity (grown geometrically, never trimmed here, so a reused buffer is never refilled).
class Writer {
 public:
  Writer(std::string& buf, size_t pos) : buf_(buf), pos_(pos) {}
  size_t pos() const { return pos_; }

 protected:
  uint8_t* Reserve(size_t n) {
    if (buf_.size() - pos_ < n) Grow(n);
    return reinterpret_cast<uint8_t*>(&buf_[0]) + pos_;
  }

  void Grow(size_t n) {
    size_t need = pos_ + n;
    size_t cap = buf_.size() < 256 ? 256 : buf_.size();
    while (cap < need) cap *= 2;
    buf_.resize(cap);
  }

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

  // UTF-16 text as UTF-8 at p (room for 3 bytes per unit): a lone surrogate becomes U+FFFD, as
  // V8 and Buffer.from(string) make it. Returns the bytes written; *chars counts code points.
  static size_t Utf16ToUtf8(const char16_t* s, size_t n, uint8_t* p, size_t* chars) {
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
        if (u >= 0xD800 && u <= 0xDFFF) u = 0xFFFD;
        *out++ = static_cast<uint8_t>(0xE0 | (u >> 12));
        *out++ = static_cast<uint8_t>(0x80 | ((u >> 6) & 0x3F));
        *out++ = static_cast<uint8_t>(0x80 | (u & 0x3F));
      }
    }
    *chars = c;
    return static_cast<size_t>(out - p);
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

class Encoder : Writer {
 public:
  Encoder(AddonData& data, napi_env env, std::string& buf, size_t pos, const EncodeSettings& settings)
      : Writer(buf, pos), data_(data), env_(env), maxDepth_(settings.maxDepth) {}

  ~Encoder() {
    // Only reached with frames left when an error unwinds: close their scopes innermost first.
    for (size_t k = frames_.size(); k-- > 0;) {
      if (frames_[k].batch != nullptr) napi_close_handle_scope(env_, frames_[k].batch);
    }
  }

  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  using Writer::pos;

  void Run(napi_value root) {
    // Fetched once per call, in the caller's scope, so they outlive every batch scope.
    ERLPEB_NAPI(env_, napi_get_reference_value(env_, data_.objectPrototype, &objectPrototype_));
    ERLPEB_NAPI(env_, napi_get_reference_value(env_, data_.termKind, &termKind_));
    napi_value v = root;
    for (;;) {
      EncodeValue(v);
      for (;;) {
        if (frames_.empty()) return;
        Frame& f = frames_.back();
        if (f.i < f.n) {
          v = NextElement(f);
          break;
        }
        if (f.kind == FrameKind::kImproper && !f.inTail) {
          f.inTail = true;
          v = f.tail;
          break;
        }
        FinishFrame();
      }
    }
  }

 private:
  // ---- errors ----

  [[noreturn]] void Fail(const std::string& message) {
    std::u16string path = BuildPath();
    napi_value pathValue;
    ERLPEB_NAPI(env_, napi_create_string_utf16(env_, path.data(), path.size(), &pathValue));
    ThrowEncodeError(data_, env_, message, pathValue);
  }

  std::u16string BuildPath() {
    std::u16string path = u"$";
    for (const Frame& f : frames_) {
      uint32_t at = f.i == 0 ? 0 : f.i - 1;
      switch (f.kind) {
        case FrameKind::kList:
        case FrameKind::kTuple:
          AppendAscii(path, "[" + std::to_string(at) + "]");
          break;
        case FrameKind::kImproper:
          if (f.inTail) {
            path += u".tail";
          } else {
            AppendAscii(path, "[" + std::to_string(at) + "]");
          }
          break;
        case FrameKind::kMap:
          AppendAscii(path, (at % 2 == 0 ? ".keys[" : ".values[") + std::to_string(at / 2) + "]");
          break;
        case FrameKind::kObject: {
          std::u16string key;
          size_t units = 0;
          if (f.key != nullptr && napi_get_value_string_utf16(env_, f.key, nullptr, 0, &units) == napi_ok) {
            key.resize(units + 1);
            size_t got = 0;
            napi_get_value_string_utf16(env_, f.key, &key[0], units + 1, &got);
            key.resize(got);
          }
          if (IsIdentifier(key)) {
            path += u".";
            path += key;
          } else {
            path += u"[";
            AppendJsonString(path, key);
            path += u"]";
          }
          break;
        }
      }
    }
    return path;
  }

  [[noreturn]] void FailUnsupported(napi_value v) {
    bool is = false;
    if (napi_is_arraybuffer(env_, v, &is) == napi_ok && is) {
      Fail("an ArrayBuffer has no Erlang counterpart; use a Buffer or Uint8Array");
    }
    if (napi_is_dataview(env_, v, &is) == napi_ok && is) {
      Fail("a DataView has no Erlang counterpart; use a Buffer or Uint8Array");
    }
    // Name the class when it can be found without trouble; this is only for the message.
    std::string name;
    napi_value ctor, ctorName;
    napi_valuetype t;
    if (napi_get_named_property(env_, v, "constructor", &ctor) == napi_ok && napi_typeof(env_, ctor, &t) == napi_ok &&
        t == napi_function && napi_get_named_property(env_, ctor, "name", &ctorName) == napi_ok &&
        napi_typeof(env_, ctorName, &t) == napi_ok && t == napi_string) {
      char tmp[128];
      size_t n = 0;
      if (napi_get_value_string_utf8(env_, ctorName, tmp, sizeof tmp, &n) == napi_ok) name.assign(tmp, n);
    }
    bool pending = false;
    if (napi_is_exception_pending(env_, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env_, &ignored);
    }
    if (name.empty()) Fail("an object of this kind has no Erlang counterpart");
    bool vowel = std::strchr("AEIOUaeiou", name[0]) != nullptr;
    Fail(std::string(vowel ? "an " : "a ") + name + " has no Erlang counterpart");
  }

  // ---- frames ----

  void CheckDepth() {
    if (depth_ + 1 > maxDepth_) Fail("nesting deeper than " + std::to_string(maxDepth_) + " (a cycle?)");
  }

  void Push(FrameKind kind, bool counted, napi_value src, uint32_t n) {
    if (counted) depth_++;
    Frame f{};
    f.kind = kind;
    f.counted = counted;
    f.n = n;
    f.src = src;
    frames_.push_back(f);
  }

  napi_value NextElement(Frame& f) {
    if (f.i != 0 && f.i % kBatch == 0) {
      if (f.batch != nullptr) ERLPEB_NAPI(env_, napi_close_handle_scope(env_, f.batch));
      f.batch = nullptr;
      ERLPEB_NAPI(env_, napi_open_handle_scope(env_, &f.batch));
    }
    uint32_t i = f.i++;
    napi_value v;
    if (f.kind == FrameKind::kObject) {
      napi_value key;
      ERLPEB_NAPI(env_, napi_get_element(env_, f.keys, i, &key));
      f.key = key;
      WriteStringBinary(key);
      ERLPEB_NAPI(env_, napi_get_property(env_, f.src, key, &v));
    } else {
      ERLPEB_NAPI(env_, napi_get_element(env_, f.src, i, &v));
    }
    return v;
  }

  void FinishFrame() {
    Frame& f = frames_.back();
    if (f.batch != nullptr) ERLPEB_NAPI(env_, napi_close_handle_scope(env_, f.batch));
    f.batch = nullptr;
    if (f.kind == FrameKind::kList) Put8(tag::kNil);
    if (f.counted) depth_--;
    frames_.pop_back();
  }

  // ---- values ----

  void EncodeValue(napi_value v) {
    napi_valuetype t;
    ERLPEB_NAPI(env_, napi_typeof(env_, v, &t));
    switch (t) {
      case napi_number: {
        double d;
        ERLPEB_NAPI(env_, napi_get_value_double(env_, v, &d));
        EncodeNumber(d);
        return;
      }
      case napi_string:
        WriteStringBinary(v);
        return;
      case napi_object:
        EncodeObject(v);
        return;
      case napi_boolean: {
        bool b;
        ERLPEB_NAPI(env_, napi_get_value_bool(env_, v, &b));
        if (b) {
          PutBytes(kAtomTrue, sizeof kAtomTrue);
        } else {
          PutBytes(kAtomFalse, sizeof kAtomFalse);
        }
        return;
      }
      case napi_null:
      case napi_undefined:
        PutBytes(kAtomUndefined, sizeof kAtomUndefined);
        return;
      case napi_bigint:
        WriteBigInt(v);
        return;
      case napi_symbol:
        WriteSymbol(v);
        return;
      case napi_function:
        Fail("a function has no Erlang counterpart");
      case napi_external:
        break;
    }
    Fail("this value has no Erlang counterpart");
  }

  void EncodeNumber(double d) {
    if (WriteNumber(d)) return;
    if (!std::isfinite(d)) Fail("NaN and Infinity have no Erlang counterpart");
    Fail("unsafe integer; use a bigint");
  }

  void WriteBigInt(napi_value v) {
    int sign = 0;
    size_t count = 0;
    // Asking for the word count alone takes null for both the sign and the words.
    ERLPEB_NAPI(env_, napi_get_value_bigint_words(env_, v, nullptr, &count, nullptr));
    if (count <= 1) {
      uint64_t w = 0;
      size_t one = 1;
      ERLPEB_NAPI(env_, napi_get_value_bigint_words(env_, v, &sign, &one, &w));
      WriteInteger(sign != 0, w);
      return;
    }
    std::vector<uint64_t> words(count);
    ERLPEB_NAPI(env_, napi_get_value_bigint_words(env_, v, &sign, &count, words.data()));
    while (count > 0 && words[count - 1] == 0) count--;
    if (count <= 1) {
      WriteInteger(sign != 0, count == 0 ? 0 : words[0]);
      return;
    }
    size_t topBytes = 0;
    for (uint64_t m = words[count - 1]; m != 0; m >>= 8) topBytes++;
    size_t n = (count - 1) * 8 + topBytes;
    uint8_t* p;
    if (n <= 255) {
      p = Reserve(3 + n);
      p[0] = tag::kSmallBig;
      p[1] = static_cast<uint8_t>(n);
      p += 2;
      pos_ += 2;
    } else {
      p = Reserve(6 + n);
      p[0] = tag::kLargeBig;
      PutU32(p + 1, static_cast<uint32_t>(n));
      p += 5;
      pos_ += 5;
    }
    p[0] = sign != 0 ? 1 : 0;
    for (size_t k = 0; k < n; k++) p[1 + k] = static_cast<uint8_t>(words[k / 8] >> (8 * (k % 8)));
    pos_ += 1 + n;
  }

  // A JS string as BINARY_EXT, its UTF-8 written straight into the output: 3 bytes per UTF-16
  // unit is always enough (a surrogate pair is 2 units and 4 bytes).
  void WriteStringBinary(napi_value s) {
    size_t units = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, s, nullptr, 0, &units));
    size_t cap = units * 3 + 1;
    uint8_t* p = Reserve(5 + cap);
    size_t n = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf8(env_, s, reinterpret_cast<char*>(p + 5), cap, &n));
    p[0] = tag::kBinary;
    PutU32(p + 1, static_cast<uint32_t>(n));
    pos_ += 5 + n;
  }

  // An atom named by the JS string `name`.
  void WriteAtomName(napi_value name) {
    size_t units = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, name, nullptr, 0, &units));
    // A code point takes at most 2 UTF-16 units: past 510 units there are surely too many.
    if (units > 510) Fail("atom name longer than 255 characters");
    size_t cap = units * 3 + 1;
    uint8_t* p = Reserve(3 + cap);
    size_t n = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf8(env_, name, reinterpret_cast<char*>(p + 2), cap, &n));
    size_t chars = 0;
    for (size_t k = 0; k < n; k++) chars += (p[2 + k] & 0xC0) != 0x80;
    if (!FinishAtom(p, n, chars)) Fail("atom name longer than 255 characters");
  }

  void WriteSymbol(napi_value sym) {
    napi_value keyFor, undefined, name;
    ERLPEB_NAPI(env_, napi_get_reference_value(env_, data_.symbolKeyFor, &keyFor));
    ERLPEB_NAPI(env_, napi_get_undefined(env_, &undefined));
    ERLPEB_NAPI(env_, napi_call_function(env_, undefined, keyFor, 1, &sym, &name));
    napi_valuetype t;
    ERLPEB_NAPI(env_, napi_typeof(env_, name, &t));
    if (t != napi_string) Fail("a symbol not made by Symbol.for has no Erlang counterpart");
    WriteAtomName(name);
  }

  void EncodeObject(napi_value v) {
    bool isArray = false;
    ERLPEB_NAPI(env_, napi_is_array(env_, v, &isArray));
    if (isArray) {
      uint32_t n = 0;
      ERLPEB_NAPI(env_, napi_get_array_length(env_, v, &n));
      if (n == 0) {
        Put8(tag::kNil);
        return;
      }
      CheckDepth();
      WriteHeader32(tag::kList, n);
      Push(FrameKind::kList, true, v, n);
      return;
    }
    napi_value proto;
    ERLPEB_NAPI(env_, napi_get_prototype(env_, v, &proto));
    bool plain = false;
    ERLPEB_NAPI(env_, napi_strict_equals(env_, proto, objectPrototype_, &plain));
    if (!plain) {
      napi_valuetype pt;
      ERLPEB_NAPI(env_, napi_typeof(env_, proto, &pt));
      plain = pt == napi_null;
    }
    if (plain) {
      EncodePlainObject(v);
      return;
    }
    bool isTyped = false;
    ERLPEB_NAPI(env_, napi_is_typedarray(env_, v, &isTyped));
    if (isTyped) {
      WriteBytesBinary(v);
      return;
    }
    int32_t k = KindOf(proto);
    if (k != 0) {
      EncodeTermClass(k, v);
      return;
    }
    napi_value mapCtor;
    ERLPEB_NAPI(env_, napi_get_reference_value(env_, data_.Map, &mapCtor));
    bool isMap = false;
    ERLPEB_NAPI(env_, napi_instanceof(env_, v, mapCtor, &isMap));
    if (isMap) {
      EncodeMap(v);
      return;
    }
    FailUnsupported(v);
  }

  // The Kind stored under TERM_KIND on obj (or its prototype chain), or 0.
  int32_t KindOf(napi_value obj) {
    napi_value k;
    ERLPEB_NAPI(env_, napi_get_property(env_, obj, termKind_, &k));
    napi_valuetype t;
    ERLPEB_NAPI(env_, napi_typeof(env_, k, &t));
    if (t != napi_number) return 0;
    int32_t kind = 0;
    ERLPEB_NAPI(env_, napi_get_value_int32(env_, k, &kind));
    return kind;
  }

  void EncodePlainObject(napi_value v) {
    napi_value keys;
    ERLPEB_NAPI(env_, napi_get_all_property_names(env_, v, napi_key_own_only,
                                                  static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                                  napi_key_numbers_to_strings, &keys));
    uint32_t n = 0;
    ERLPEB_NAPI(env_, napi_get_array_length(env_, keys, &n));
    CheckDepth();
    WriteHeader32(tag::kMap, n);
    if (n == 0) return;
    Push(FrameKind::kObject, true, v, n);
    frames_.back().keys = keys;
  }

  void EncodeMap(napi_value v) {
    CheckDepth();
    napi_value fn, undefined, flat;
    ERLPEB_NAPI(env_, napi_get_reference_value(env_, data_.mapEntries, &fn));
    ERLPEB_NAPI(env_, napi_get_undefined(env_, &undefined));
    ERLPEB_NAPI(env_, napi_call_function(env_, undefined, fn, 1, &v, &flat));
    uint32_t n = 0;
    ERLPEB_NAPI(env_, napi_get_array_length(env_, flat, &n));
    WriteHeader32(tag::kMap, n / 2);
    if (n == 0) return;
    Push(FrameKind::kMap, true, flat, n & ~1u);
  }

  napi_value Get(napi_value obj, const char* name) {
    napi_value v;
    ERLPEB_NAPI(env_, napi_get_named_property(env_, obj, name, &v));
    return v;
  }

  napi_valuetype TypeOf(napi_value v) {
    napi_valuetype t;
    ERLPEB_NAPI(env_, napi_typeof(env_, v, &t));
    return t;
  }

  bool IsArray(napi_value v) {
    bool is = false;
    ERLPEB_NAPI(env_, napi_is_array(env_, v, &is));
    return is;
  }

  uint32_t ArrayLength(napi_value v) {
    uint32_t n = 0;
    ERLPEB_NAPI(env_, napi_get_array_length(env_, v, &n));
    return n;
  }

  // An integral number field within [0, max].
  double IntegerField(napi_value obj, const char* name, const char* label, double max) {
    napi_value v = Get(obj, name);
    double d = -1;
    if (TypeOf(v) == napi_number) ERLPEB_NAPI(env_, napi_get_value_double(env_, v, &d));
    if (!(d >= 0 && d <= max && std::trunc(d) == d)) {
      char range[64];
      std::snprintf(range, sizeof range, "%.0f", max);
      Fail(std::string(label) + " must be an integer from 0 to " + range);
    }
    return d;
  }

  uint32_t U32Field(napi_value obj, const char* name, const char* label) {
    return static_cast<uint32_t>(IntegerField(obj, name, label, 4294967295.0));
  }

  // The Atom in obj[name], written as an atom.
  void WriteAtomField(napi_value obj, const char* name, const char* label) {
    napi_value a = Get(obj, name);
    if (TypeOf(a) != napi_object || KindOf(a) != kind::kAtom) Fail(std::string(label) + " must be an Atom");
    napi_value atomName = Get(a, "name");
    if (TypeOf(atomName) != napi_string) Fail("Atom.name must be a string");
    WriteAtomName(atomName);
  }

  // The bytes of a Buffer/Uint8Array, or nullptr when v is not one.
  bool BytesOf(napi_value v, const uint8_t** data, size_t* length, napi_typedarray_type* type) {
    if (TypeOf(v) != napi_object) return false;
    bool isTyped = false;
    ERLPEB_NAPI(env_, napi_is_typedarray(env_, v, &isTyped));
    if (!isTyped) return false;
    void* raw = nullptr;
    ERLPEB_NAPI(env_, napi_get_typedarray_info(env_, v, type, length, &raw, nullptr, nullptr));
    *data = static_cast<const uint8_t*>(raw);
    return true;
  }

  // A typed array as BINARY_EXT: a Buffer or Uint8Array; any other kind is an EncodeError.
  void WriteBytesBinary(napi_value v) {
    const uint8_t* data = nullptr;
    size_t length = 0;
    napi_typedarray_type type = napi_uint8_array;
    BytesOf(v, &data, &length, &type);
    if (type != napi_uint8_array) {
      Fail(std::string(TypedArrayName(type)) + " has no Erlang counterpart; use a Buffer or Uint8Array");
    }
    if (length > 0xFFFFFFFFull) Fail("a binary cannot be larger than 4 GiB - 1");
    WriteHeader32(tag::kBinary, static_cast<uint32_t>(length));
    PutBytes(data, length);
  }

  void EncodeTermClass(int32_t k, napi_value v) {
    switch (k) {
      case kind::kAtom: {
        napi_value name = Get(v, "name");
        if (TypeOf(name) != napi_string) Fail("Atom.name must be a string");
        WriteAtomName(name);
        return;
      }
      case kind::kTuple: {
        napi_value elements = Get(v, "elements");
        if (TypeOf(elements) != napi_object || !IsArray(elements)) Fail("Tuple.elements must be an array");
        uint32_t n = ArrayLength(elements);
        CheckDepth();
        if (n <= 255) {
          uint8_t* p = Reserve(2);
          p[0] = tag::kSmallTuple;
          p[1] = static_cast<uint8_t>(n);
          pos_ += 2;
        } else {
          WriteHeader32(tag::kLargeTuple, n);
        }
        if (n != 0) Push(FrameKind::kTuple, true, elements, n);
        return;
      }
      case kind::kPid: {
        Put8(tag::kNewPid);
        WriteAtomField(v, "node", "Pid.node");
        uint32_t id = U32Field(v, "id", "Pid.id");
        uint32_t serial = U32Field(v, "serial", "Pid.serial");
        uint32_t creation = U32Field(v, "creation", "Pid.creation");
        uint8_t* p = Reserve(12);
        PutU32(p, id);
        PutU32(p + 4, serial);
        PutU32(p + 8, creation);
        pos_ += 12;
        return;
      }
      case kind::kRef: {
        napi_value ids = Get(v, "ids");
        uint32_t n = 0;
        if (TypeOf(ids) == napi_object && IsArray(ids)) n = ArrayLength(ids);
        if (n < 1 || n > 5) Fail("Ref.ids must be an array of 1 to 5 integers");
        uint8_t* p = Reserve(3);
        p[0] = tag::kNewerReference;
        PutU16(p + 1, static_cast<uint16_t>(n));
        pos_ += 3;
        WriteAtomField(v, "node", "Ref.node");
        uint32_t creation = U32Field(v, "creation", "Ref.creation");
        uint32_t words[5];
        for (uint32_t k2 = 0; k2 < n; k2++) {
          napi_value w;
          ERLPEB_NAPI(env_, napi_get_element(env_, ids, k2, &w));
          double d = -1;
          if (TypeOf(w) == napi_number) ERLPEB_NAPI(env_, napi_get_value_double(env_, w, &d));
          if (!(d >= 0 && d <= 4294967295.0 && std::trunc(d) == d)) {
            Fail("Ref.ids must be integers from 0 to 4294967295");
          }
          words[k2] = static_cast<uint32_t>(d);
        }
        p = Reserve(4 + 4 * n);
        PutU32(p, creation);
        for (uint32_t k2 = 0; k2 < n; k2++) PutU32(p + 4 + 4 * k2, words[k2]);
        pos_ += 4 + 4 * n;
        return;
      }
      case kind::kPort: {
        napi_value idValue = Get(v, "id");
        uint64_t id = 0;
        bool ok = false;
        napi_valuetype t = TypeOf(idValue);
        if (t == napi_number) {
          double d;
          ERLPEB_NAPI(env_, napi_get_value_double(env_, idValue, &d));
          ok = d >= 0 && d <= 9007199254740991.0 && std::trunc(d) == d;
          if (ok) id = static_cast<uint64_t>(d);
        } else if (t == napi_bigint) {
          bool lossless = false;
          ERLPEB_NAPI(env_, napi_get_value_bigint_uint64(env_, idValue, &id, &lossless));
          ok = lossless;
        }
        if (!ok) Fail("Port.id must be an integer from 0 to 2^64-1");
        bool v4 = id > 0xFFFFFFFFull;
        Put8(v4 ? tag::kV4Port : tag::kNewPort);
        WriteAtomField(v, "node", "Port.node");
        uint32_t creation = U32Field(v, "creation", "Port.creation");
        uint8_t* p = Reserve(12);
        if (v4) {
          PutU64(p, id);
          PutU32(p + 8, creation);
          pos_ += 12;
        } else {
          PutU32(p, static_cast<uint32_t>(id));
          PutU32(p + 4, creation);
          pos_ += 8;
        }
        return;
      }
      case kind::kFun: {
        const uint8_t* data = nullptr;
        size_t length = 0;
        napi_typedarray_type type = napi_int8_array;
        if (!BytesOf(Get(v, "bytes"), &data, &length, &type) || type != napi_uint8_array || length == 0 ||
            data[0] != tag::kNewFun) {
          Fail("Fun.bytes must be the bytes of a NEW_FUN_EXT term");
        }
        PutBytes(data, length);
        return;
      }
      case kind::kExport: {
        Put8(tag::kExport);
        WriteAtomField(v, "module", "Export.module");
        WriteAtomField(v, "function", "Export.function");
        uint32_t arity = static_cast<uint32_t>(IntegerField(v, "arity", "Export.arity", 255));
        uint8_t* p = Reserve(2);
        p[0] = tag::kSmallInteger;
        p[1] = static_cast<uint8_t>(arity);
        pos_ += 2;
        return;
      }
      case kind::kBitBinary: {
        const uint8_t* data = nullptr;
        size_t length = 0;
        napi_typedarray_type type = napi_int8_array;
        if (!BytesOf(Get(v, "buffer"), &data, &length, &type) || type != napi_uint8_array) {
          Fail("BitBinary.buffer must be a Buffer or Uint8Array");
        }
        uint32_t bits = static_cast<uint32_t>(IntegerField(v, "bits", "BitBinary.bits", 8));
        if (bits < 1) Fail("BitBinary.bits must be an integer from 1 to 8");
        if (length == 0) Fail("BitBinary.buffer must not be empty");
        if (length > 0xFFFFFFFFull) Fail("a binary cannot be larger than 4 GiB - 1");
        if (bits == 8) {
          WriteHeader32(tag::kBinary, static_cast<uint32_t>(length));
        } else {
          WriteHeader32(tag::kBitBinary, static_cast<uint32_t>(length));
          Put8(static_cast<uint8_t>(bits));
        }
        PutBytes(data, length);
        return;
      }
      case kind::kImproperList: {
        napi_value elements = Get(v, "elements");
        if (TypeOf(elements) != napi_object || !IsArray(elements)) Fail("ImproperList.elements must be an array");
        napi_value tail = Get(v, "tail");
        uint32_t n = ArrayLength(elements);
        if (n == 0) {
          // [ | Tail] is just Tail: no container of its own.
          Push(FrameKind::kImproper, false, elements, 0);
          frames_.back().tail = tail;
          return;
        }
        CheckDepth();
        WriteHeader32(tag::kList, n);
        if (TypeOf(tail) == napi_object && IsArray(tail) && ArrayLength(tail) == 0) {
          Push(FrameKind::kList, true, elements, n);  // an empty tail: a proper list
        } else {
          Push(FrameKind::kImproper, true, elements, n);
          frames_.back().tail = tail;
        }
        return;
      }
      case kind::kCharlist:
        WriteCharlist(v);
        return;
      case kind::kFloat: {
        napi_value value = Get(v, "value");
        if (TypeOf(value) != napi_number) Fail("Float.value must be a number");
        double d;
        ERLPEB_NAPI(env_, napi_get_value_double(env_, value, &d));
        if (!std::isfinite(d)) Fail("NaN and Infinity have no Erlang counterpart");
        WriteFloat(d);
        return;
      }
      default:
        FailUnsupported(v);
    }
  }

  void WriteCharlist(napi_value v) {
    napi_value value = Get(v, "value");
    if (TypeOf(value) != napi_string) Fail("Charlist.value must be a string");
    size_t units = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, value, nullptr, 0, &units));
    if (units == 0) {
      Put8(tag::kNil);
      return;
    }
    std::u16string s(units + 1, u'\0');
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, value, &s[0], units + 1, &units));
    // Code points, not UTF-16 units: a surrogate pair is one character (a lone surrogate is its unit).
    std::vector<uint32_t> cps;
    cps.reserve(units);
    uint32_t max = 0;
    for (size_t k = 0; k < units; k++) {
      uint32_t c = s[k];
      if (c >= 0xD800 && c <= 0xDBFF && k + 1 < units && s[k + 1] >= 0xDC00 && s[k + 1] <= 0xDFFF) {
        c = 0x10000 + ((c - 0xD800) << 10) + (s[k + 1] - 0xDC00);
        k++;
      }
      if (c > max) max = c;
      cps.push_back(c);
    }
    if (max <= 255 && cps.size() <= 65535) {
      uint8_t* p = Reserve(3 + cps.size());
      p[0] = tag::kString;
      PutU16(p + 1, static_cast<uint16_t>(cps.size()));
      for (size_t k = 0; k < cps.size(); k++) p[3 + k] = static_cast<uint8_t>(cps[k]);
      pos_ += 3 + cps.size();
      return;
    }
    // A charlist is a leaf for the nesting bound, whichever form it takes (as in the pure codec).
    WriteHeader32(tag::kList, static_cast<uint32_t>(cps.size()));
    for (uint32_t c : cps) WriteInteger(false, c);
    Put8(tag::kNil);
  }

  AddonData& data_;
  napi_env env_;
  uint32_t maxDepth_;
  uint32_t depth_ = 0;
  std::vector<Frame> frames_;
  napi_value objectPrototype_ = nullptr;
  napi_value termKind_ = nullptr;
};


// Encodes what the JS walk in lib/codec/native.ts put on an encode tape (tape.h). The tape comes
// from our own JS, but it is still read with every index checked.
class TapeEncoder : Writer {
 public:
  TapeEncoder(std::string& buf, size_t pos) : Writer(buf, pos) {}
  using Writer::pos;

  // False when the tape holds a value this path leaves to the full encoder (which reports it).
  bool Run(const double* t, size_t n, const char16_t* text, size_t textLen, const TapeBytes& bytesAt) {
    t_ = t;
    n_ = n;
    size_t ti = 0;
    while (i_ < n_) {
      // Any double may be here: only a small integral one is an op (casting one outside int's
      // range to int is undefined behaviour).
      double d = Next();
      int op = d >= 0 && d <= 255 && std::trunc(d) == d ? static_cast<int>(d) : 0;
      switch (op) {
        case eop::kString: {
          size_t len = Count();
          if (len > textLen - ti) Malformed();
          uint8_t* p = Reserve(5 + 3 * len);
          size_t chars;
          size_t bytes = Utf16ToUtf8(text + ti, len, p + 5, &chars);
          p[0] = tag::kBinary;
          PutU32(p + 1, static_cast<uint32_t>(bytes));
          pos_ += 5 + bytes;
          ti += len;
          break;
        }
        case eop::kNumber:
          if (!WriteNumber(Next())) return false;
          break;
        case eop::kTrue:
          PutBytes(kAtomTrue, sizeof kAtomTrue);
          break;
        case eop::kFalse:
          PutBytes(kAtomFalse, sizeof kAtomFalse);
          break;
        case eop::kUndefined:
          PutBytes(kAtomUndefined, sizeof kAtomUndefined);
          break;
        case eop::kNil:
          Put8(tag::kNil);
          break;
        case eop::kList:
          WriteHeader32(tag::kList, static_cast<uint32_t>(Count()));
          break;
        case eop::kMap:
          WriteHeader32(tag::kMap, static_cast<uint32_t>(Count()));
          break;
        case eop::kTuple: {
          size_t arity = Count();
          if (arity <= 255) {
            uint8_t* p = Reserve(2);
            p[0] = tag::kSmallTuple;
            p[1] = static_cast<uint8_t>(arity);
            pos_ += 2;
          } else {
            WriteHeader32(tag::kLargeTuple, static_cast<uint32_t>(arity));
          }
          break;
        }
        case eop::kAtom: {
          size_t len = Count();
          if (len > textLen - ti) Malformed();
          if (len > 510) return false;  // surely more than 255 characters
          uint8_t* p = Reserve(3 + 3 * len);
          size_t chars;
          size_t bytes = Utf16ToUtf8(text + ti, len, p + 2, &chars);
          if (!FinishAtom(p, bytes, chars)) return false;
          ti += len;
          break;
        }
        case eop::kFloat: {
          double d = Next();
          if (!std::isfinite(d)) return false;
          WriteFloat(d);
          break;
        }
        case eop::kBytes: {
          const uint8_t* data = nullptr;
          size_t length = 0;
          if (!bytesAt(static_cast<uint32_t>(Count()), &data, &length) || length > 0xFFFFFFFFull) return false;
          WriteHeader32(tag::kBinary, static_cast<uint32_t>(length));
          PutBytes(data, length);
          break;
        }
        default:
          Malformed();
      }
    }
    if (ti != textLen) Malformed();
    return true;
  }

 private:
  [[noreturn]] static void Malformed() { throw std::runtime_error("erl-peb: malformed encode tape"); }

  double Next() {
    if (i_ >= n_) Malformed();
    return t_[i_++];
  }

  size_t Count() {
    double d = Next();
    if (!(d >= 0 && d <= 4294967295.0) || std::trunc(d) != d) Malformed();
    return static_cast<size_t>(d);
  }

  const double* t_ = nullptr;
  size_t n_ = 0;
  size_t i_ = 0;
};

// Replaces the plain term at buf[start..*pos) (version byte first) with its compressed form
// (131, 80, u32 size, zlib data) when that is shorter, as Erlang's term_to_binary does.
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

}  // namespace

void EncodeInto(AddonData& data, napi_env env, napi_value value, std::string& buf, size_t* pos,
                const EncodeSettings& settings) {
  Encoder encoder(data, env, buf, *pos, settings);
  encoder.Run(value);
  *pos = encoder.pos();
}

void EncodeTerm(AddonData& data, Napi::Value value, std::string& out, const EncodeSettings& settings) {
  size_t pos = out.size();
  EncodeInto(data, value.Env(), value, out, &pos, settings);
  out.resize(pos);
}

void EncodeBinaryInto(AddonData& data, napi_env env, napi_value value, std::string& buf, size_t* pos,
                      const EncodeSettings& settings) {
  size_t start = *pos;
  if (buf.size() < start + 256) buf.resize(start + 256);
  buf[start] = static_cast<char>(tag::kVersion);
  size_t end = start + 1;
  EncodeInto(data, env, value, buf, &end, settings);
  *pos = end;
  CompressTerm(buf, start, pos, settings.compressLevel);
}

bool EncodeTapeInto(const double* tape, size_t n, const char16_t* text, size_t textLen, const TapeBytes& bytesAt,
                    std::string& buf, size_t* pos, int compressLevel) {
  size_t start = *pos;
  if (buf.size() < start + 256) buf.resize(start + 256);
  buf[start] = static_cast<char>(tag::kVersion);
  TapeEncoder encoder(buf, start + 1);
  if (!encoder.Run(tape, n, text, textLen, bytesAt)) return false;
  *pos = encoder.pos();
  CompressTerm(buf, start, pos, compressLevel);
  return true;
}

void TermToBinary(AddonData& data, Napi::Value value, std::string& out, const EncodeSettings& settings) {
  size_t pos = out.size();
  EncodeBinaryInto(data, value.Env(), value, out, &pos, settings);
  out.resize(pos);
}

}  // namespace erlpeb
