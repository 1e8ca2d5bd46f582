// libFuzzer target `decode`: the ETF parsing core (native/term_parser.h) on any bytes.
//
// Input: byte 0 picks the options (the same mapping test/hardening/fuzz-corpus.test.ts reads), the
// rest is what binaryToTerm is given:
//   bit 0..2  binaries: 'string', strings: 'string', maps: 'object' (DecodeFlag's bits)
//   bit 3     maxDepth 3 (else the default, 1024)
//   bit 4     maxUncompressedSize 100 (else 1 MiB: the default is 64 MiB, which only makes a
//             compressed input slower to run, through the same checks)
//   bit 5     no key cache (as a nested decode)
//
// Each input is parsed twice, with and without the key cache, into storage kept across inputs as
// the addon keeps it. Either both fail with the same error, inside the input, or both succeed, the
// tape passes TapeChecker, and both tapes say the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "../native/term_parser.h"
#include "tape_checker.h"

namespace {

using erlpeb::DecoderState;
using erlpeb::KeyCache;
using erlpeb::ParseError;
using erlpeb::ParseOptions;
using erlpeb::TermParser;
using erlpeb::TermSpan;
using erlpeb::fuzz::TapeChecker;

struct Outcome {
  bool ok = false;
  ParseError error;
  std::string tape;  // TapeChecker's canonical form
};

// What term_decoder.cc does with the bytes, minus making JS values.
Outcome Parse(const uint8_t* data, size_t size, const ParseOptions& options, DecoderState& state, bool useKeyCache,
              TapeChecker::KeySlots& slots) {
  Outcome r;
  state.Clear();
  KeyCache::Mark mark = state.keys.mark();
  std::unique_ptr<uint8_t[]> inflated;
  size_t limit = size;  // what an error offset may be at most
  try {
    TermSpan term = erlpeb::UnwrapBinary(data, size, options.maxUncompressedSize, &inflated);
    limit = term.len;
    TermParser parser(term.bytes, term.len, term.offset, options, term.context, state, useKeyCache);
    parser.RunWhole();
    FUZZ_CHECK(parser.pos() == term.len, "a whole parse ends at the end");
    r.tape = TapeChecker(state, parser, term.len).Check(slots);
    r.ok = true;
  } catch (const ParseError& e) {
    FUZZ_CHECK(e.offset <= limit, "error offset " + std::to_string(e.offset) + " past " + std::to_string(limit));
    FUZZ_CHECK(!e.message.empty(), "an error with no message");
    r.error = e;
    state.keys.Restore(mark);  // as the decoder's KeyCacheGuard: these keys never reached buildTerm
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // Kept across inputs, as the addon keeps its per-environment state.
  static DecoderState* cached = new DecoderState();
  static DecoderState* plain = new DecoderState();
  static TapeChecker::KeySlots* slots = new TapeChecker::KeySlots();
  static TapeChecker::KeySlots* unusedSlots = new TapeChecker::KeySlots();

  uint8_t o = data[0];
  ParseOptions options;
  options.binariesAsStrings = (o & 1) != 0;
  options.stringsAsStrings = (o & 2) != 0;
  options.mapsAsObjects = (o & 4) != 0;
  options.maxDepth = (o & 8) != 0 ? 3 : 1024;
  options.maxUncompressedSize = (o & 16) != 0 ? 100 : 1024 * 1024;
  bool useKeyCache = (o & 32) == 0;

  // An exact-size copy, so that AddressSanitizer sees any read past the end.
  size_t n = size - 1;
  std::unique_ptr<uint8_t[]> bytes(new uint8_t[n]);
  if (n != 0) std::memcpy(bytes.get(), data + 1, n);
  const uint8_t* input = bytes.get();

  Outcome a = Parse(input, n, options, *cached, useKeyCache, *slots);
  Outcome b = Parse(input, n, options, *plain, false, *unusedSlots);
  if (std::getenv("FUZZ_SHOW") != nullptr) {
    std::fprintf(stderr, "%s\n", a.ok ? "a term" : (a.error.message + " at " + std::to_string(a.error.offset)).c_str());
  }
  FUZZ_CHECK(a.ok == b.ok, "the key cache changes the verdict");
  if (a.ok) {
    FUZZ_CHECK(a.tape == b.tape, "the key cache changes the term");
  } else {
    FUZZ_CHECK(a.error.offset == b.error.offset && a.error.message == b.error.message,
               "the key cache changes the error: " + a.error.message + " / " + b.error.message);
  }
  return 0;
}
