// The ETF encoder: a JS value -> Erlang's external term format, following the term mapping in
// DESIGN.md byte for byte (the pure-TS codec writes the same bytes).
//
// It walks the value with an explicit stack of frames instead of recursion, so no nesting depth
// (up to maxDepth, which may be as large as 1,000,000) can overflow the C stack; the frames also
// give the path of a value that cannot be encoded.
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "byte_reader.h"
#include "etf.h"
#include "tape_encoder.h"
#include "term_codec.h"
#include "writer.h"

namespace erlpeb {
namespace {

// Handles made while walking a long array or object are released every kBatch elements (one
// handle scope per batch), so a million-element list does not keep a million handles alive.
constexpr uint32_t kBatch = 4096;

enum class FrameKind : uint8_t { kList, kTuple, kObject, kMap, kImproper };

// Erlang refuses a map with a repeated key (binary_to_term says badarg; a node that gets one in a
// distribution message drops the connection), so the encoder refuses to write one.
constexpr char kRepeatedObjectKey[] =
    "this key is written as the same binary as an earlier key (a lone surrogate becomes U+FFFD); "
    "Erlang refuses a map with a repeated key";
constexpr char kRepeatedMapKey[] =
    "this key encodes to the same term as an earlier key; Erlang refuses a map with a repeated key";

// A key of a Map, as the byte range of the output it was written to (an offset: the buffer may
// move as it grows).
struct KeyRange {
  size_t start;
  size_t len;
};

// The encoded keys of one Map, as byte ranges of the output (offsets: the buffer may move as it
// grows), in an open-addressing table (no allocation per key): finds a key that encodes to the same
// bytes as an earlier one.
class KeyRanges {
 public:
  void Reset(size_t entries) {
    size_t cap = 8;
    while (cap < entries * 2) cap *= 2;
    slots_.assign(cap, Slot{0, 0, 0});
    mask_ = cap - 1;
  }

  // Adds buf[start, start + len); false when the same bytes are in already.
  bool Add(const std::string& buf, size_t start, size_t len) {
    size_t h = std::hash<std::string_view>()(std::string_view(buf.data() + start, len));
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      Slot& e = slots_[s];
      if (e.start == 0) {
        e = Slot{start + 1, len, h};
        return true;
      }
      if (e.hash == h && e.len == len && std::memcmp(buf.data() + e.start - 1, buf.data() + start, len) == 0) return false;
    }
  }

 private:
  struct Slot {
    size_t start;  // + 1; 0: empty
    size_t len;
    size_t hash;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

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
  size_t keysBase;            // Map: where its keys' byte ranges start in keyRanges_
  size_t keyStart;            // Map: where the key being encoded starts in the output
  bool mixedKeys;             // Map: some key is not a number or an ASCII string
  bool keysChecked;           // object: its keys were compared (one had a lone surrogate)
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
      size_t owner = frames_.size();
      if (!EncodeValue(v) && owner != 0) {
        Frame& o = frames_[owner - 1];
        if (o.kind == FrameKind::kMap && o.i % 2 == 1) o.mixedKeys = true;  // v was a key
      }
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
    if (f.kind == FrameKind::kMap) {
      if (f.i % 2 == 0) {
        f.keyStart = pos_;
      } else {
        keyRanges_.push_back(KeyRange{f.keyStart, pos_ - f.keyStart});
      }
    }
    uint32_t i = f.i++;
    napi_value v;
    if (f.kind == FrameKind::kObject) {
      napi_value key;
      ERLPEB_NAPI(env_, napi_get_element(env_, f.keys, i, &key));
      f.key = key;
      // Only a key with a lone surrogate can be written as the bytes of another key: its UTF-8
      // is longer than its UTF-16 length, so ASCII keys (the common case) cost no more.
      if (WriteStringBinary(key) && !f.keysChecked && HasLoneSurrogate(key)) CheckObjectKeys(f);
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
    if (f.kind == FrameKind::kMap) {
      if (f.mixedKeys && f.n >= 4) CheckMapKeys(f);
      keyRanges_.resize(f.keysBase);
    }
    if (f.counted) depth_--;
    frames_.pop_back();
  }

  // ---- values ----

  // True for a number or an ASCII string: distinct ones of those never encode alike.
  bool EncodeValue(napi_value v) {
    napi_valuetype t;
    ERLPEB_NAPI(env_, napi_typeof(env_, v, &t));
    switch (t) {
      case napi_number: {
        double d;
        ERLPEB_NAPI(env_, napi_get_value_double(env_, v, &d));
        EncodeNumber(d);
        return true;
      }
      case napi_string:
        return !WriteStringBinary(v);
      case napi_object:
        EncodeObject(v);
        return false;
      case napi_boolean: {
        bool b;
        ERLPEB_NAPI(env_, napi_get_value_bool(env_, v, &b));
        if (b) {
          PutBytes(kAtomTrue, sizeof kAtomTrue);
        } else {
          PutBytes(kAtomFalse, sizeof kAtomFalse);
        }
        return false;
      }
      case napi_null:
      case napi_undefined:
        PutBytes(kAtomUndefined, sizeof kAtomUndefined);
        return false;
      case napi_bigint:
        WriteBigInt(v);
        return false;
      case napi_symbol:
        WriteSymbol(v);
        return false;
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
  // True when the string is not all ASCII.
  bool WriteStringBinary(napi_value s) {
    size_t units = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, s, nullptr, 0, &units));
    size_t cap = units * 3 + 1;
    uint8_t* p = Reserve(5 + cap);
    size_t n = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf8(env_, s, reinterpret_cast<char*>(p + 5), cap, &n));
    p[0] = tag::kBinary;
    PutU32(p + 1, static_cast<uint32_t>(n));
    pos_ += 5 + n;
    return n != units;
  }

  bool HasLoneSurrogate(napi_value s) {
    size_t units = 0;
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, s, nullptr, 0, &units));
    std::u16string u(units + 1, u'\0');
    ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, s, &u[0], units + 1, &units));
    for (size_t k = 0; k < units; k++) {
      char16_t c = u[k];
      if (c >= 0xD800 && c <= 0xDBFF && k + 1 < units && u[k + 1] >= 0xDC00 && u[k + 1] <= 0xDFFF) {
        k++;
      } else if (c >= 0xD800 && c <= 0xDFFF) {
        return true;
      }
    }
    return false;
  }

  // Compares the UTF-8 of all the object's keys (once, when the first key with a lone surrogate
  // is met) and fails at the first key written as the same bytes as an earlier one.
  void CheckObjectKeys(Frame& f) {
    f.keysChecked = true;
    std::unordered_set<std::string> written;
    written.reserve(f.n);
    for (uint32_t j = 0; j < f.n; j++) {
      // A scope per key: an object of a million keys must not keep a million handles.
      napi_handle_scope scope;
      ERLPEB_NAPI(env_, napi_open_handle_scope(env_, &scope));
      napi_value key;
      ERLPEB_NAPI(env_, napi_get_element(env_, f.keys, j, &key));
      size_t units = 0;
      ERLPEB_NAPI(env_, napi_get_value_string_utf16(env_, key, nullptr, 0, &units));
      std::string utf8(units * 3 + 1, '\0');
      size_t n = 0;
      ERLPEB_NAPI(env_, napi_get_value_string_utf8(env_, key, &utf8[0], utf8.size(), &n));
      utf8.resize(n);
      bool repeated = !written.insert(std::move(utf8)).second;
      ERLPEB_NAPI(env_, napi_close_handle_scope(env_, scope));
      if (repeated) {
        ERLPEB_NAPI(env_, napi_get_element(env_, f.keys, j, &f.key));
        f.i = j + 1;  // the path names this key
        Fail(kRepeatedObjectKey);
      }
    }
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
    frames_.back().keysBase = keyRanges_.size();
  }

  // Keys distinct in JS may still encode the same ('a' and Buffer.from('a'), 1 and 1n, two equal
  // Tuples): when a Map has a key that is not a number or an ASCII string (distinct ones of those
  // never encode alike), the encoded bytes of its keys are compared once it is written, and the
  // first key written as an earlier one is refused.
  void CheckMapKeys(Frame& f) {
    size_t count = keyRanges_.size() - f.keysBase;
    keyTable_.Reset(count);
    for (size_t j = 0; j < count; j++) {
      const KeyRange& r = keyRanges_[f.keysBase + j];
      if (!keyTable_.Add(buf_, r.start, r.len)) {
        f.i = static_cast<uint32_t>(2 * j + 1);  // the path names this key
        Fail(kRepeatedMapKey);
      }
    }
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
  std::vector<KeyRange> keyRanges_;  // the keys of the open Maps, innermost last
  KeyRanges keyTable_;
  napi_value objectPrototype_ = nullptr;
  napi_value termKind_ = nullptr;
};


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

void TermToBinary(AddonData& data, Napi::Value value, std::string& out, const EncodeSettings& settings) {
  size_t pos = out.size();
  EncodeBinaryInto(data, value.Env(), value, out, &pos, settings);
  out.resize(pos);
}

bool EncodeTapeArgs(AddonData& data, napi_env env, const napi_value args[4], std::string& buf, size_t* pos,
                    bool binary, int compressLevel) {
  napi_typedarray_type type;
  size_t tapeLength = 0;
  void* tape = nullptr;
  bool isTyped = false;
  ERLPEB_NAPI(env, napi_is_typedarray(env, args[0], &isTyped));
  if (!isTyped) throw Napi::TypeError::New(env, "an encode tape must be a Float64Array");
  ERLPEB_NAPI(env, napi_get_typedarray_info(env, args[0], &type, &tapeLength, &tape, nullptr, nullptr));
  if (type != napi_float64_array) throw Napi::TypeError::New(env, "bad encode tape");
  return EncodeTape(data, env, static_cast<const double*>(tape), tapeLength, args + 1, buf, pos, binary,
                    compressLevel);
}

bool EncodeTape(AddonData& data, napi_env env, const double* tape, size_t tapeLength, const napi_value rest[3],
                std::string& buf, size_t* pos, bool binary, int compressLevel) {
  uint32_t n = 0;
  ERLPEB_NAPI(env, napi_get_value_uint32(env, rest[0], &n));
  if (n > tapeLength) throw Napi::TypeError::New(env, "bad encode tape");
  size_t units = 0;
  ERLPEB_NAPI(env, napi_get_value_string_utf16(env, rest[1], nullptr, 0, &units));
  std::u16string& text = data.encodeText;
  text.resize(units + 1);
  ERLPEB_NAPI(env, napi_get_value_string_utf16(env, rest[1], &text[0], units + 1, &units));
  napi_value byteArrays = rest[2];
  auto bytesAt = [&](uint32_t index, const uint8_t** bytes, size_t* length) {
    napi_value v;
    bool typed = false;
    ERLPEB_NAPI(env, napi_get_element(env, byteArrays, index, &v));
    ERLPEB_NAPI(env, napi_is_typedarray(env, v, &typed));
    if (!typed) return false;
    napi_typedarray_type t;
    void* raw = nullptr;
    ERLPEB_NAPI(env, napi_get_typedarray_info(env, v, &t, length, &raw, nullptr, nullptr));
    static const uint8_t kNone[1] = {0};
    *bytes = raw != nullptr ? static_cast<const uint8_t*>(raw) : kNone;
    return t == napi_uint8_array;
  };
  const double* t = tape;
  bool ok;
  if (binary) {
    ok = EncodeTapeInto(t, n, text.data(), units, bytesAt, buf, pos, compressLevel);
  } else {
    TapeEncoder encoder(buf, *pos);
    ok = encoder.Run(t, n, text.data(), units, bytesAt);
    if (ok) *pos = encoder.pos();
  }
  if (text.capacity() > (size_t{4} << 20)) std::u16string().swap(text);  // as termToBinary keeps its buffer
  return ok;
}

}  // namespace erlpeb
