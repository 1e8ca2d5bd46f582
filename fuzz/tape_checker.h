// Checks, for the fuzz targets, what a successful parse hands to buildTerm (lib/native.ts): every
// op well formed, every offset inside the source, every text range inside the text, the stack of
// values ending with exactly one, the text valid UTF-8 of the length the parser says. buildTerm
// trusts all of this, so a break here is a bug even when nothing crashes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../native/term_parser.h"

namespace erlpeb {
namespace fuzz {

// Stops the process with a message (libFuzzer then saves the input): for invariants, which are
// checked in every build, unlike assert().
[[noreturn]] void Die(const char* what, const std::string& detail = "");
#define FUZZ_CHECK(cond, detail)                     \
  do {                                               \
    if (!(cond)) ::erlpeb::fuzz::Die(#cond, detail); \
  } while (0)

class TapeChecker {
 public:
  // What buildTerm knows of the key slots: the key each slot was last given by a dop::kKeyNew of a
  // tape that reached it (a failed parse's tape never does).
  struct KeySlots {
    std::vector<std::u16string> key;
    std::vector<bool> set;
    KeySlots() : key(KeyCache::kMaxKeys), set(KeyCache::kMaxKeys, false) {}
  };

  // sourceLen: the length of the bytes the tape's offsets count in.
  TapeChecker(const DecoderState& state, const TermParser& parser, size_t sourceLen);

  // Checks the tape, dies on a broken invariant, and returns it in a canonical form: ops and
  // numbers as they are, every text range replaced by its text, and an object key written the same
  // way whether it came as text (kString), as a new cached key (kKeyNew) or as a cached one (kKey).
  // Two parses of the same bytes with and without the key cache must give the same form. Updates
  // `slots` as buildTerm would.
  std::string Check(KeySlots& slots);

 private:
  double Arg();
  uint32_t U32Arg(const char* what);
  size_t IndexArg(const char* what, size_t limit);
  void Text(std::string& out);  // a (position, length) pair of the text, resolved
  void Source(size_t* offset, size_t* length);
  void Number(std::string& out, double d);

  const double* ops_;
  size_t n_;
  size_t i_ = 0;
  std::u16string text_;  // the text as buildTerm gets it
  bool needsSource_;
  size_t sourceLen_;
};

}  // namespace fuzz
}  // namespace erlpeb
