#include "tape_checker.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../native/tape.h"
#include "../native/utf8.h"

namespace erlpeb {
namespace fuzz {

void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz invariant broken: %s %s\n", what, detail.c_str());
  std::abort();
}

namespace {

// Strict UTF-8 (already checked with Utf8Measure) to UTF-16, as V8 makes a string of it.
std::u16string Utf8ToUtf16(const std::string& s) {
  std::u16string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    uint32_t c = p[i];
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (len == 2) c &= 0x1F;
    if (len == 3) c &= 0x0F;
    if (len == 4) c &= 0x07;
    for (size_t k = 1; k < len; k++) c = (c << 6) | (p[i + k] & 0x3F);
    i += len;
    if (c >= 0x10000) {
      c -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (c >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (c & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(c));
    }
  }
  return out;
}

bool IsSafeInteger(double d) { return std::trunc(d) == d && std::fabs(d) <= 9007199254740991.0; }

enum Kind : uint8_t { kValue, kKeyString };

}  // namespace

TapeChecker::TapeChecker(const DecoderState& state, const TermParser& parser, size_t sourceLen)
    : ops_(state.ops.data()), n_(state.ops.size()), needsSource_(parser.needsSource()), sourceLen_(sourceLen) {
  const std::string& text = state.text;
  size_t chars = 0, units = 0;
  FUZZ_CHECK(Utf8Measure(reinterpret_cast<const uint8_t*>(text.data()), text.size(), &chars, &units),
             "the text is not valid UTF-8");
  FUZZ_CHECK(units == parser.textUnits(), std::to_string(units) + " units, the parser says " +
                                              std::to_string(parser.textUnits()));
  if (parser.textAscii()) {
    FUZZ_CHECK(IsAscii(reinterpret_cast<const uint8_t*>(text.data()), text.size()), "text said ASCII is not");
  }
  text_ = Utf8ToUtf16(text);
  FUZZ_CHECK(text_.size() == units, "UTF-16 length");
}

double TapeChecker::Arg() {
  FUZZ_CHECK(i_ < n_, "an op's arguments run past the end of the tape");
  return ops_[i_++];
}

uint32_t TapeChecker::U32Arg(const char* what) {
  double d = Arg();
  FUZZ_CHECK(std::trunc(d) == d && d >= 0 && d <= 4294967295.0, what);
  return static_cast<uint32_t>(d);
}

size_t TapeChecker::IndexArg(const char* what, size_t limit) {
  double d = Arg();
  FUZZ_CHECK(std::trunc(d) == d && d >= 0 && d <= static_cast<double>(limit), what);
  return static_cast<size_t>(d);
}

void TapeChecker::Text(std::string& out) {
  size_t pos = IndexArg("text position", text_.size());
  size_t len = IndexArg("text length", text_.size() - pos);
  out.push_back('"');
  out.append(reinterpret_cast<const char*>(text_.data() + pos), 2 * len);
  out.push_back('"');
}

void TapeChecker::Source(size_t* offset, size_t* length) {
  FUZZ_CHECK(needsSource_, "an op refers to the source, but the parser says none does");
  *offset = IndexArg("source offset", sourceLen_);
  *length = IndexArg("source length", sourceLen_ - *offset);
}

void TapeChecker::Number(std::string& out, double d) {
  char bits[sizeof d];
  std::memcpy(bits, &d, sizeof d);
  out.append(bits, sizeof d);
}

std::string TapeChecker::Check(KeySlots& slots) {
  std::string out;
  std::vector<uint8_t> stack;  // the Kind of each value made so far and not yet taken
  auto take = [&](uint64_t n, const char* what) {
    FUZZ_CHECK(n <= stack.size(), std::string(what) + ": takes " + std::to_string(n) + " values of " +
                                      std::to_string(stack.size()));
    stack.resize(stack.size() - n);
  };
  while (i_ < n_) {
    int op = static_cast<int>(Arg());
    out.push_back(static_cast<char>(op));
    uint8_t made = kValue;
    switch (op) {
      case dop::kInt: {
        double d = Arg();
        FUZZ_CHECK(IsSafeInteger(d), "kInt not a safe integer");
        Number(out, d);
        break;
      }
      case dop::kFloat:
      case dop::kFloatObj: {
        double d = Arg();
        FUZZ_CHECK(std::isfinite(d), "float not finite");
        FUZZ_CHECK((std::trunc(d) == d) == (op == dop::kFloatObj), "kFloat integral or kFloatObj not");
        Number(out, d);
        break;
      }
      case dop::kBigInt: {
        size_t before = out.size();
        Text(out);
        size_t digits = out.size() - before - 2;  // 2 bytes per unit
        FUZZ_CHECK(digits >= 2 && digits % 4 == 0, "bigint digits come in pairs");
        for (size_t k = before + 1; k + 1 < out.size(); k += 2) {
          char c = out[k];
          FUZZ_CHECK(out[k + 1] == 0 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')), "bigint hex digit");
        }
        double neg = Arg();
        FUZZ_CHECK(neg == 0 || neg == 1, "bigint sign");
        Number(out, neg);
        break;
      }
      case dop::kTrue:
      case dop::kFalse:
      case dop::kNull:
      case dop::kNil:
        break;
      case dop::kAtom:
        Text(out);
        break;
      case dop::kString:
        out.back() = 'S';
        Text(out);
        made = kKeyString;
        break;
      case dop::kKeyNew: {
        out.back() = 'S';
        size_t slot = IndexArg("key slot", KeyCache::kMaxKeys - 1);
        size_t pos = IndexArg("key position", text_.size());
        size_t len = IndexArg("key length", text_.size() - pos);
        i_ -= 2;
        Text(out);
        slots.key[slot] = text_.substr(pos, len);
        slots.set[slot] = true;
        made = kKeyString;
        break;
      }
      case dop::kKey: {
        out.back() = 'S';
        size_t slot = IndexArg("key slot", KeyCache::kMaxKeys - 1);
        FUZZ_CHECK(slots.set[slot], "kKey names a slot no kKeyNew gave a key");
        const std::u16string& k = slots.key[slot];
        out.push_back('"');
        out.append(reinterpret_cast<const char*>(k.data()), 2 * k.size());
        out.push_back('"');
        made = kKeyString;
        break;
      }
      case dop::kBinary:
      case dop::kByteList: {
        size_t offset, length;
        Source(&offset, &length);
        Number(out, static_cast<double>(offset));
        Number(out, static_cast<double>(length));
        break;
      }
      case dop::kBitBinary: {
        size_t offset, length;
        Source(&offset, &length);
        FUZZ_CHECK(length >= 1, "bit binary of no bytes");
        double bits = Arg();
        FUZZ_CHECK(bits >= 1 && bits <= 7 && std::trunc(bits) == bits, "bit binary bits");
        Number(out, static_cast<double>(offset));
        Number(out, static_cast<double>(length));
        Number(out, bits);
        break;
      }
      case dop::kList:
      case dop::kTuple: {
        uint32_t n = U32Arg("count");
        if (op == dop::kList) FUZZ_CHECK(n >= 1, "a list of no elements is kNil");
        take(n, "list/tuple");
        Number(out, n);
        break;
      }
      case dop::kImproper: {
        uint32_t n = U32Arg("count");
        take(uint64_t{n} + 1, "improper list");
        Number(out, n);
        break;
      }
      case dop::kMap:
      case dop::kObject: {
        uint32_t pairs = U32Arg("pairs");
        FUZZ_CHECK(2 * uint64_t{pairs} <= stack.size(), "map takes more values than there are");
        if (op == dop::kObject) {
          for (size_t k = stack.size() - 2 * size_t{pairs}; k < stack.size(); k += 2) {
            FUZZ_CHECK(stack[k] == kKeyString, "an object key that is not a string");
          }
        }
        take(2 * uint64_t{pairs}, "map");
        Number(out, pairs);
        break;
      }
      case dop::kSetKey: {
        uint32_t pairs = U32Arg("pairs");
        uint32_t j = U32Arg("key index");
        FUZZ_CHECK(j < pairs, "kSetKey index");
        FUZZ_CHECK(2 * uint64_t{pairs} + 1 <= stack.size(), "kSetKey: not enough values");
        uint8_t key = stack.back();
        stack.pop_back();
        stack[stack.size() - 2 * size_t{pairs} + 2 * j] = key;
        Number(out, pairs);
        Number(out, j);
        continue;  // makes no value
      }
      case dop::kPid:
      case dop::kPort: {
        Text(out);
        for (int k = 0; k < 3; k++) Number(out, U32Arg("pid/port field"));
        break;
      }
      case dop::kRef: {
        Text(out);
        Number(out, U32Arg("ref creation"));
        uint32_t count = U32Arg("ref count");
        FUZZ_CHECK(count >= 1 && count <= 5, "ref count");
        Number(out, count);
        for (uint32_t k = 0; k < count; k++) Number(out, U32Arg("ref id"));
        break;
      }
      case dop::kExport:
        Text(out);
        Text(out);
        Number(out, IndexArg("export arity", 255));
        break;
      case dop::kFun: {
        size_t offset, length;
        Source(&offset, &length);
        Number(out, static_cast<double>(offset));
        Number(out, static_cast<double>(length));
        Text(out);
        Number(out, IndexArg("fun arity", 255));
        Number(out, U32Arg("fun index"));
        break;
      }
      default:
        Die("unknown op", std::to_string(op));
    }
    stack.push_back(made);
  }
  FUZZ_CHECK(stack.size() == 1, "the tape leaves " + std::to_string(stack.size()) + " values, not 1");
  return out;
}

}  // namespace fuzz
}  // namespace erlpeb
