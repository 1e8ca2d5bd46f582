// libFuzzer target `encode`: the native encoder's tape path (EncodeTapeInto in
// native/tape_encoder.cc, what termToBinary and peb.encode use for JSON-like values) on tapes made
// from the input.
//
// Input: byte 0: bit 0 picks the mode, bits 1..4 the compression (0..9 a zlib level, else none);
// the rest drives the mode:
// - shaped: the bytes choose a well-formed tape (as the JS walk in lib/codec/native.ts writes one):
//   strings with any UTF-16 units (lone surrogates too), any doubles, atoms up to and past 255
//   characters, lists, maps (keys distinct as JS keys, but maybe written as the same UTF-8),
//   tuples, Floats, byte arrays. The encoder must succeed exactly when every value has an Erlang
//   form (a map with two keys written alike has none); the parsing core must then accept its output, and the term
//   it reads, put back on a tape, must encode to the very same bytes.
// - raw: the bytes are the tape, ops and numbers as they come. The encoder must not crash (a
//   malformed tape is a C++ exception, which the addon turns into a JS error); whatever it writes
//   is then parsed, which must not crash either.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "../native/tape_encoder.h"
#include "../native/tape.h"
#include "../native/term_parser.h"
#include "tape_checker.h"

namespace {

using erlpeb::DecoderState;
using erlpeb::ParseError;
using erlpeb::ParseOptions;
using erlpeb::TermParser;
using erlpeb::TermSpan;
using erlpeb::fuzz::Die;
using erlpeb::fuzz::TapeChecker;
namespace dop = erlpeb::dop;
namespace eop = erlpeb::eop;

// The input read from the front; zeros once it runs out.
struct Bytes {
  const uint8_t* p;
  size_t n;
  size_t i = 0;
  uint8_t Next() { return i < n ? p[i++] : 0; }
  bool Done() const { return i >= n; }
  double NextDouble() {
    uint64_t bits = 0;
    for (int k = 0; k < 8; k++) bits = (bits << 8) | Next();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
};

// An encode tape, its text and its byte arrays, as lib/codec/native.ts hands them over.
struct EncodeTape {
  std::vector<double> ops;
  std::u16string text;
  std::vector<std::pair<const uint8_t*, size_t>> arrays;

  bool Encode(std::string& buf, size_t* pos, int level) const {
    auto bytesAt = [this](uint32_t index, const uint8_t** data, size_t* length) {
      if (index >= arrays.size()) return false;  // as a value that is no Uint8Array
      *data = arrays[index].first;
      *length = arrays[index].second;
      return true;
    };
    *pos = 0;
    return erlpeb::EncodeTapeInto(ops.data(), ops.size(), text.data(), text.size(), bytesAt, buf, pos, level);
  }
};

// Chooses a well-formed tape from the input, and whether each value has an Erlang form.
class Shaper {
 public:
  Shaper(Bytes& in, EncodeTape& tape) : in_(in), t_(tape) {}

  // False when some value has no Erlang form (the encoder must then refuse the tape).
  bool Value(int depth) {
    budget_--;
    uint8_t b = in_.Next();
    bool leafOnly = depth >= 24 || budget_ <= 0 || in_.Done();
    switch (b % 12) {
      case 0: {
        size_t len = Units(b >= 200 ? 300 : 24);
        t_.ops.push_back(eop::kString);
        t_.ops.push_back(static_cast<double>(len));
        return true;
      }
      case 1:
        return Number();
      case 2:
        t_.ops.push_back(eop::kTrue);
        return true;
      case 3:
        t_.ops.push_back(eop::kFalse);
        return true;
      case 4:
        t_.ops.push_back(eop::kUndefined);
        return true;
      case 6:
      case 7:
      case 9: {
        if (leafOnly) break;
        uint32_t n = in_.Next() % 6;
        int op = b % 12 == 6 ? eop::kList : b % 12 == 7 ? eop::kMap : eop::kTuple;
        if (op == eop::kTuple && b >= 240) n = 250 + in_.Next() % 12;  // around SMALL/LARGE_TUPLE
        if (op == eop::kList && n == 0) break;                         // the walk writes [] as kNil
        t_.ops.push_back(op);
        t_.ops.push_back(n);
        bool ok = true;
        std::set<std::u16string> keys, written;
        for (uint32_t k = 0; k < n; k++) {
          if (op == eop::kMap) ok = Key(keys, written) && ok;
          ok = Value(depth + 1) && ok;
        }
        if (op == eop::kList) t_.ops.push_back(eop::kNil);
        return ok;
      }
      case 8: {
        size_t start = t_.text.size();
        size_t len = Units(b >= 200 ? 600 : 20);
        t_.ops.push_back(eop::kAtom);
        t_.ops.push_back(static_cast<double>(len));
        // Code points: a surrogate pair is one, a lone surrogate (written as U+FFFD) one.
        size_t chars = 0;
        for (size_t k = start; k < t_.text.size(); k++, chars++) {
          char16_t u = t_.text[k];
          if (u >= 0xD800 && u <= 0xDBFF && k + 1 < t_.text.size() && t_.text[k + 1] >= 0xDC00 &&
              t_.text[k + 1] <= 0xDFFF) {
            k++;
          }
        }
        return chars <= 255;
      }
      case 10: {
        double d = Double();
        t_.ops.push_back(eop::kFloat);
        t_.ops.push_back(d);
        return std::isfinite(d);
      }
      case 11: {
        uint32_t index = in_.Next() % (t_.arrays.size() + 1);  // one past: not a byte array
        t_.ops.push_back(eop::kBytes);
        t_.ops.push_back(index);
        return index < t_.arrays.size();
      }
    }
    t_.ops.push_back(eop::kNil);
    return true;
  }

  // A key of a plain object: unlike every earlier key of it (as JS keys are), but maybe written
  // as the same UTF-8 (a lone surrogate becomes U+FFFD), which has no Erlang form.
  bool Key(std::set<std::u16string>& keys, std::set<std::u16string>& written) {
    size_t start = t_.text.size();
    size_t len = Units(in_.Next() % 4 == 0 ? 2 : 16);  // short keys meet each other more often
    while (keys.count(t_.text.substr(start)) != 0) {
      t_.text.push_back(u'k');
      len++;
    }
    std::u16string key = t_.text.substr(start);
    keys.insert(key);
    t_.ops.push_back(eop::kString);
    t_.ops.push_back(static_cast<double>(len));
    for (size_t k = 0; k < key.size(); k++) {
      char16_t u = key[k];
      if (u >= 0xD800 && u <= 0xDBFF && k + 1 < key.size() && key[k + 1] >= 0xDC00 && key[k + 1] <= 0xDFFF) {
        k++;
      } else if (u >= 0xD800 && u <= 0xDFFF) {
        key[k] = 0xFFFD;
      }
    }
    return written.insert(key).second;
  }

 private:
  // Appends up to `max` UTF-16 units to the text: mostly ASCII, else any unit at all.
  size_t Units(size_t max) {
    size_t len = in_.Next() % (max + 1);
    for (size_t k = 0; k < len; k++) {
      uint8_t u = in_.Next();
      t_.text.push_back(u < 0xC0 ? static_cast<char16_t>(u & 0x7F) : static_cast<char16_t>((u << 8) | in_.Next()));
    }
    return len;
  }

  double Double() {
    uint8_t kind = in_.Next();
    if (kind < 128) return static_cast<double>(static_cast<int8_t>(in_.Next())) / (kind % 4 == 0 ? 1 : kind % 4 + 1);
    return in_.NextDouble();
  }

  bool Number() {
    uint8_t kind = in_.Next() % 4;
    double d;
    if (kind == 0) {
      d = in_.Next();
    } else if (kind == 1) {  // near the int32 and 2^53 edges
      static const double edges[] = {2147483647.0, -2147483648.0, 9007199254740991.0, -9007199254740991.0,
                                     4294967296.0, 9007199254740992.0, 255, 256};
      d = edges[in_.Next() % 8] + static_cast<int8_t>(in_.Next() % 5) - 2;
    } else {
      d = Double();
    }
    t_.ops.push_back(eop::kNumber);
    t_.ops.push_back(d);
    if (!std::isfinite(d)) return false;
    return !(std::trunc(d) == d && std::fabs(d) > 9007199254740991.0);
  }

  Bytes& in_;
  EncodeTape& t_;
  int budget_ = 2000;
};

// The term a parse left on the decode tape, as the encode tape that writes it again; dies on an op
// the tape encoder never produces.
class Retaper {
 public:
  Retaper(const DecoderState& state, const uint8_t* source) : ops_(state.ops), source_(source) {
    // The text as UTF-16 units, as positions on the tape count it (valid UTF-8: TapeChecker saw it).
    const std::string& s = state.text;
    for (size_t i = 0; i < s.size();) {
      uint32_t c = static_cast<uint8_t>(s[i]);
      size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      c &= len == 1 ? 0x7F : len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07;
      for (size_t k = 1; k < len; k++) c = (c << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
      i += len;
      if (c >= 0x10000) {
        text_.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
        text_.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
      } else {
        text_.push_back(static_cast<char16_t>(c));
      }
    }
  }

  EncodeTape Run() {
    std::vector<size_t> stack;
    for (size_t i = 0; i < ops_.size();) {
      Node node;
      node.op = static_cast<int>(ops_[i++]);
      switch (node.op) {
        case dop::kInt:
        case dop::kFloat:
        case dop::kFloatObj:
          node.a = ops_[i++];
          break;
        case dop::kTrue:
        case dop::kFalse:
        case dop::kNull:
        case dop::kNil:
          break;
        case dop::kAtom:
        case dop::kBinary:
          node.a = ops_[i++];
          node.b = ops_[i++];
          break;
        case dop::kList:
        case dop::kTuple:
        case dop::kMap: {
          size_t n = static_cast<size_t>(ops_[i++]);
          if (node.op == dop::kMap) n *= 2;
          node.kids.assign(stack.end() - static_cast<std::ptrdiff_t>(n), stack.end());
          stack.resize(stack.size() - n);
          break;
        }
        default:
          Die("the parse of the encoder's output has an op the encoder cannot have meant", std::to_string(node.op));
      }
      nodes_.push_back(std::move(node));
      stack.push_back(nodes_.size() - 1);
    }
    EncodeTape out;
    Emit(stack.back(), out);
    return out;
  }

 private:
  struct Node {
    int op;
    double a = 0, b = 0;
    std::vector<size_t> kids;
  };

  void Emit(size_t at, EncodeTape& out) {
    const Node& node = nodes_[at];
    switch (node.op) {
      case dop::kInt:
      case dop::kFloat:
        out.ops.push_back(eop::kNumber);
        out.ops.push_back(node.a);
        return;
      case dop::kFloatObj:
        out.ops.push_back(eop::kFloat);
        out.ops.push_back(node.a);
        return;
      case dop::kTrue:
        out.ops.push_back(eop::kTrue);
        return;
      case dop::kFalse:
        out.ops.push_back(eop::kFalse);
        return;
      case dop::kNull:
        out.ops.push_back(eop::kUndefined);
        return;
      case dop::kNil:
        out.ops.push_back(eop::kNil);
        return;
      case dop::kAtom:
        out.ops.push_back(eop::kAtom);
        out.ops.push_back(node.b);
        out.text.append(text_, static_cast<size_t>(node.a), static_cast<size_t>(node.b));
        return;
      case dop::kBinary:
        out.ops.push_back(eop::kBytes);
        out.ops.push_back(static_cast<double>(out.arrays.size()));
        out.arrays.emplace_back(source_ + static_cast<size_t>(node.a), static_cast<size_t>(node.b));
        return;
      case dop::kList:
      case dop::kTuple:
      case dop::kMap:
        out.ops.push_back(node.op == dop::kList ? eop::kList : node.op == dop::kTuple ? eop::kTuple : eop::kMap);
        out.ops.push_back(static_cast<double>(node.op == dop::kMap ? node.kids.size() / 2 : node.kids.size()));
        for (size_t kid : node.kids) Emit(kid, out);
        if (node.op == dop::kList) out.ops.push_back(eop::kNil);
        return;
    }
  }

  const std::vector<double>& ops_;
  const uint8_t* source_;
  std::u16string text_;
  std::vector<Node> nodes_;
};

// Parses ETF bytes (version byte first) with the default options and no key cache. True when it is
// a term; the tape is then checked.
bool ParseOutput(const std::string& bytes, DecoderState& state, std::unique_ptr<uint8_t[]>* inflated, TermSpan* term,
                 std::string* error) {
  ParseOptions options;
  options.maxUncompressedSize = 64ull * 1024 * 1024;
  state.Clear();
  try {
    *term = erlpeb::UnwrapBinary(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                 options.maxUncompressedSize, inflated);
    TermParser parser(term->bytes, term->len, term->offset, options, term->context, state, false);
    parser.RunWhole();
    TapeChecker::KeySlots slots;
    TapeChecker(state, parser, term->len).Check(slots);
    return true;
  } catch (const ParseError& e) {
    *error = e.message + " at " + std::to_string(e.offset);
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t o = data[0];
  bool raw = (o & 1) != 0;
  int level = (o >> 1) & 15;
  if (level > 9) level = -1;
  Bytes in{data + 1, size - 1};
  static DecoderState* state = new DecoderState();

  EncodeTape tape;
  // Byte arrays the tape may name: pieces of the input.
  for (size_t k = 0; k < 3 && k * 16 < in.n; k++) {
    tape.arrays.emplace_back(in.p + k * 16, std::min<size_t>(in.n - k * 16, in.p[k * 16] % 64));
  }
  bool valid = true;
  if (raw) {
    size_t units = in.Next();
    for (size_t k = 0; k < units; k++) tape.text.push_back(static_cast<char16_t>((in.Next() << 8) | in.Next()));
    while (!in.Done() && tape.ops.size() < 4096) {
      uint8_t b = in.Next();
      tape.ops.push_back(b >= 0xF0 ? in.NextDouble() : b % 16);
    }
  } else {
    Shaper shaper(in, tape);
    valid = shaper.Value(0);
  }

  std::string out;
  size_t pos = 0;
  bool encoded;
  try {
    encoded = tape.Encode(out, &pos, level);
  } catch (const std::runtime_error& e) {
    if (!raw) Die("a well-formed tape is called malformed", e.what());
    return 0;
  }
  if (!raw) FUZZ_CHECK(encoded == valid, valid ? "a value with an Erlang form is refused" : "a value with none is taken");
  if (!encoded) return 0;
  FUZZ_CHECK(pos <= out.size(), "the encoder's end is past its buffer");
  out.resize(pos);

  std::unique_ptr<uint8_t[]> inflated;
  TermSpan term{};
  std::string error;
  bool parsed = ParseOutput(out, *state, &inflated, &term, &error);
  if (raw) return 0;  // a tape that lies about its counts makes bytes that lie too
  FUZZ_CHECK(parsed, "the parser refuses the encoder's output: " + error);

  EncodeTape again = Retaper(*state, term.bytes).Run();
  std::string out2;
  size_t pos2 = 0;
  FUZZ_CHECK(again.Encode(out2, &pos2, level), "the term read back is refused");
  out2.resize(pos2);
  FUZZ_CHECK(out2 == out, "the term read back encodes to other bytes");
  if (std::getenv("FUZZ_SHOW") != nullptr) std::fprintf(stderr, "round trip of %zu bytes\n", out.size());
  return 0;
}
