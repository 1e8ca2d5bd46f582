#include "tape_encoder.h"

#include <stdexcept>
#include <unordered_set>
#include <vector>

#include "tape.h"

namespace erlpeb {

void TapeEncoder::Malformed() { throw std::runtime_error("erl-peb: malformed encode tape"); }

inline double TapeEncoder::Next() {
  if (i_ >= n_) Malformed();
  return t_[i_++];
}

inline size_t TapeEncoder::Count() {
  double d = Next();
  if (!(d >= 0 && d <= 4294967295.0) || std::trunc(d) != d) Malformed();
  return static_cast<size_t>(d);
}

bool TapeEncoder::Run(const double* t, size_t n, const char16_t* text, size_t textLen, const TapeBytes& bytesAt) {
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
        size_t bytes = Utf16ToUtf8(text + ti, len, p + 5, &chars, &lone_);
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
        size_t bytes = Utf16ToUtf8(text + ti, len, p + 2, &chars, &lone_);
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
  // Keys of a plain object differ in JS, and well-formed UTF-16 strings that differ have UTF-8
  // that differs: only a lone surrogate (written as U+FFFD) can make two keys one. Erlang refuses
  // such a map, so the full encoder takes the value and reports it.
  if (lone_ && HasCollidingKeys(text)) return false;
  return true;
}

// A second walk over a tape Run has accepted (ops and text positions are known good), looking
// for a map with two keys that are written as the same bytes.
bool TapeEncoder::HasCollidingKeys(const char16_t* text) const {
  struct Open {
    size_t left;  // values still to come (a list's closing kNil counts as one)
    bool map;
    size_t seen;
    std::unordered_set<std::u16string> keys;  // as written: a lone surrogate replaced by U+FFFD
  };
  std::vector<Open> open;
  size_t i = 0;
  size_t ti = 0;
  auto arg = [&]() { return i < n_ ? t_[i++] : 0.0; };
  while (i < n_) {
    int op = static_cast<int>(t_[i++]);  // Run has seen every op: small and integral
    bool isKey = false;
    if (!open.empty()) {
      Open& o = open.back();
      isKey = o.map && o.seen % 2 == 0;
      o.seen++;
      o.left--;
    }
    size_t kids = 0;
    bool map = false;
    switch (op) {
      case eop::kString: {
        size_t len = static_cast<size_t>(arg());
        if (isKey) {
          std::u16string key(text + ti, len);
          for (size_t k = 0; k < len; k++) {
            char16_t u = key[k];
            if (u >= 0xD800 && u <= 0xDBFF && k + 1 < len && key[k + 1] >= 0xDC00 && key[k + 1] <= 0xDFFF) {
              k++;
            } else if (u >= 0xD800 && u <= 0xDFFF) {
              key[k] = 0xFFFD;
            }
          }
          if (!open.back().keys.insert(std::move(key)).second) return true;
        }
        ti += len;
        break;
      }
      case eop::kAtom:
        ti += static_cast<size_t>(arg());
        break;
      case eop::kNumber:
      case eop::kFloat:
      case eop::kBytes:
        arg();
        break;
      case eop::kList:
        kids = static_cast<size_t>(arg()) + 1;
        break;
      case eop::kMap:
        kids = 2 * static_cast<size_t>(arg());
        map = true;
        break;
      case eop::kTuple:
        kids = static_cast<size_t>(arg());
        break;
      default:
        break;
    }
    if (kids != 0) {
      open.push_back(Open{kids, map, 0, {}});
    } else {
      while (!open.empty() && open.back().left == 0) open.pop_back();
    }
  }
  return false;
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

}  // namespace erlpeb
