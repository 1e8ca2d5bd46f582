// The ETF decoder: bytes -> JS value, following the term mapping in DESIGN.md.
//
// The input is untrusted; all of its checking happens in the parsing core (term_parser.h), which
// turns it into an op tape (tape.h). buildTerm in lib/native.ts then turns the tape into JS values
// in a single call: making values through Node-API costs hundreds of ns per property or Buffer,
// JS a few ns.
#include <napi.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "etf.h"
#include "term_codec.h"
#include "term_parser.h"

namespace erlpeb {
namespace {

// Working storage kept between decodes, at most (16 MiB each).
constexpr size_t kKeepTapeDoubles = size_t{2} << 20;
constexpr size_t kKeepTextBytes = size_t{16} << 20;

ParseOptions ToParseOptions(const DecodeSettings& settings) {
  ParseOptions o;
  o.binariesAsStrings = (settings.flags & kBinariesAsStrings) != 0;
  o.stringsAsStrings = (settings.flags & kStringsAsStrings) != 0;
  o.mapsAsObjects = (settings.flags & kMapsAsObjects) != 0;
  o.maxDepth = settings.maxDepth;
  o.maxUncompressedSize = settings.maxUncompressedSize;
  return o;
}

}  // namespace

void ResetKeyCache(AddonData& data) {
  if (data.decoderState) data.decoderState->keys.Clear();
}

void DecoderStateDeleter::operator()(DecoderState* state) const { delete state; }

namespace {

// Gives the per-environment decoder state back once a decode (or a batch) is done with it.
void ReturnState(AddonData& data) {
  data.decodeBusy = false;
  DecoderState& s = *data.decoderState;
  // Keep what a large term needed (reallocating costs page faults every time), but not what
  // one huge term needed.
  if (s.ops.capacity() > kKeepTapeDoubles) std::vector<double>().swap(s.ops);
  if (s.text.capacity() > kKeepTextBytes) std::string().swap(s.text);
  if (s.frames.capacity() > 4096) std::vector<DecoderState::Frame>().swap(s.frames);
  if (s.rawKeys.capacity() > 4096) std::vector<DecoderState::RawKey>().swap(s.rawKeys);
}

// The ops as a Float64Array for buildTerm: the one kept for this environment (keep: the caller
// holds the environment's state), or a larger one in its place.
napi_value TapeOf(AddonData& data, napi_env env, const std::vector<double>& ops, bool keep) {
  napi_value tape = nullptr;
  size_t capacity = 0;
  if (keep && !data.decodeTape.IsEmpty()) {
    ERLPEB_NAPI(env, napi_get_reference_value(env, data.decodeTape, &tape));
    napi_typedarray_type type;
    ERLPEB_NAPI(env, napi_get_typedarray_info(env, tape, &type, &capacity, nullptr, nullptr, nullptr));
  }
  if (tape == nullptr || capacity < ops.size()) {
    capacity = 1024;
    while (capacity < ops.size()) capacity *= 2;
    napi_value buffer;
    void* raw;
    ERLPEB_NAPI(env, napi_create_arraybuffer(env, capacity * sizeof(double), &raw, &buffer));
    ERLPEB_NAPI(env, napi_create_typedarray(env, napi_float64_array, capacity, buffer, 0, &tape));
    if (keep && capacity <= kKeepTapeDoubles) data.decodeTape = Napi::Persistent(Napi::Object(env, tape));
  }
  void* tapeData = nullptr;
  ERLPEB_NAPI(env, napi_get_typedarray_info(env, tape, nullptr, nullptr, &tapeData, nullptr, nullptr));
  if (!ops.empty()) std::memcpy(tapeData, ops.data(), ops.size() * sizeof(double));
  return tape;
}

napi_value TextOf(napi_env env, const std::string& text, bool ascii) {
  napi_value v;
  if (ascii) {
    ERLPEB_NAPI(env, napi_create_string_latin1(env, text.data(), text.size(), &v));
  } else {
    ERLPEB_NAPI(env, napi_create_string_utf8(env, text.data(), text.size(), &v));
  }
  return v;
}

// Holds the per-environment decoder state while a decode uses it; a nested decode gets its own.
struct StateLease {
  AddonData& data;
  bool held;
  std::unique_ptr<DecoderState> own;
  explicit StateLease(AddonData& d) : data(d), held(!d.decodeBusy) {
    if (held) {
      data.decodeBusy = true;
      if (!data.decoderState) data.decoderState.reset(new DecoderState());
    } else {
      own.reset(new DecoderState());
    }
    state().Clear();
  }
  ~StateLease() {
    if (held) ReturnState(data);
  }
  DecoderState& state() { return held ? *data.decoderState : *own; }
};

// Decodes one term at bytes[*offset] and makes its JS value. `source`: a JS Uint8Array over
// exactly `bytes` (so binaries can be copied from it), or null to make one when needed.
// With mustEnd, the term must take all of the bytes (checked before any JS value is made).
napi_value DecodeToValue(AddonData& data, napi_env env, const uint8_t* bytes, size_t len, size_t* offset,
                         const ParseOptions& options, const char* context, napi_value source, bool mustEnd) {
  StateLease lease(data);
  DecoderState& state = lease.state();
  std::vector<double>& ops = state.ops;
  std::string& text = state.text;
  // The key cache is kept in step with buildTerm's: keys added by a decode that never reaches
  // buildTerm are taken out again. A nested decode (none is known to happen) does not use it.
  struct KeyCacheGuard {
    KeyCache* cache;
    KeyCache::Mark mark;
    ~KeyCacheGuard() {
      if (cache != nullptr) cache->Restore(mark);
    }
  } keyGuard{lease.held ? &state.keys : nullptr, state.keys.mark()};
  TermParser decoder(bytes, len, *offset, options, context, state, lease.held);
  try {
    mustEnd ? decoder.RunWhole() : decoder.Run();
  } catch (const ParseError& e) {
    ThrowDecodeError(data, env, e.message, e.offset);
  }
  *offset = decoder.pos();

  napi_value args[4];
  args[0] = TapeOf(data, env, ops, lease.held);
  ERLPEB_NAPI(env, napi_create_double(env, static_cast<double>(ops.size()), &args[1]));
  args[2] = TextOf(env, text, decoder.textAscii());
  if (!decoder.needsSource()) {
    ERLPEB_NAPI(env, napi_get_undefined(env, &args[3]));
  } else if (source != nullptr) {
    args[3] = source;
  } else {
    ERLPEB_NAPI(env, napi_create_buffer_copy(env, len, bytes, nullptr, &args[3]));
  }
  napi_value build, undefined, result;
  ERLPEB_NAPI(env, napi_get_reference_value(env, data.buildTerm, &build));
  ERLPEB_NAPI(env, napi_get_undefined(env, &undefined));
  ERLPEB_NAPI(env, napi_call_function(env, undefined, build, 4, args, &result));
  keyGuard.cache = nullptr;  // buildTerm has taken the new keys
  return result;
}

}  // namespace

Napi::Value DecodeTerm(AddonData& data, Napi::Env env, const uint8_t* bytes, size_t len, size_t* offset,
                       const DecodeSettings& settings) {
  return Napi::Value(env, DecodeToValue(data, env, bytes, len, offset, ToParseOptions(settings), "", nullptr, false));
}

napi_value DecodeBinary(AddonData& data, napi_env env, const uint8_t* bytes, size_t len,
                        const DecodeSettings& settings, napi_value source) {
  ParseOptions options = ToParseOptions(settings);
  std::unique_ptr<uint8_t[]> inflated;
  TermSpan term;
  try {
    term = UnwrapBinary(bytes, len, options.maxUncompressedSize, &inflated);
  } catch (const ParseError& e) {
    ThrowDecodeError(data, env, e.message, e.offset);
  }
  // An inflated term is not the bytes of `source`: binaries are copied from a Buffer made of it.
  size_t offset = term.offset;
  return DecodeToValue(data, env, term.bytes, term.len, &offset, options, term.context, inflated ? nullptr : source,
                       true);
}

Napi::Value BinaryToTerm(AddonData& data, Napi::Env env, const uint8_t* bytes, size_t len,
                         const DecodeSettings& settings) {
  return Napi::Value(env, DecodeBinary(data, env, bytes, len, settings, nullptr));
}

}  // namespace erlpeb

namespace erlpeb {

TermBatch::TermBatch(AddonData& data, const DecodeSettings& settings)
    : data_(data), options_(ToParseOptions(settings)), held_(!data.decodeBusy) {
  if (!held_) return;
  data_.decodeBusy = true;
  if (!data_.decoderState) data_.decoderState.reset(new DecoderState());
  state_ = data_.decoderState.get();
  state_->Clear();
  keysMark_ = state_->keys.mark();
}

TermBatch::~TermBatch() { Release(); }

void TermBatch::Release() {
  if (!held_) return;
  // Keys whose kKeyNew ops never reached buildTerm are taken out again.
  if (!finished_) state_->keys.Restore(keysMark_);
  held_ = false;
  ReturnState(data_);
}

bool TermBatch::Add(Napi::Env env, const uint8_t* bytes, size_t pos, size_t end, bool mustEnd, size_t origin,
                    size_t* opsBegin, size_t* opsEnd, Napi::Value* error) {
  DecoderState& s = *state_;
  const size_t opsMark = s.ops.size();
  const size_t textMark = s.text.size();
  const KeyCache::Mark keysMark = s.keys.mark();
  TermParser parser(bytes, end, pos, options_, "", s, true, units_);
  auto undo = [&] {
    s.ops.resize(opsMark);
    s.text.resize(textMark);
    s.frames.clear();
    s.rawKeys.clear();
    s.keys.Restore(keysMark);
  };
  try {
    mustEnd ? parser.RunWhole() : parser.Run();
  } catch (const ParseError& e) {
    undo();
    try {
      ThrowDecodeError(data_, env, e.message, e.offset - origin);
    } catch (const Napi::Error& err) {
      *error = err.Value();
    }
    return false;
  } catch (...) {
    undo();
    throw;
  }
  units_ = parser.textUnits();
  ascii_ = ascii_ && parser.textAscii();
  needsSource_ = needsSource_ || parser.needsSource();
  *opsBegin = opsMark;
  *opsEnd = s.ops.size();
  return true;
}

void TermBatch::Finish(Napi::Env env, const uint8_t* bytes, size_t len, napi_value out[3]) {
  out[0] = TapeOf(data_, env, state_->ops, true);
  out[1] = TextOf(env, state_->text, ascii_);
  if (needsSource_) {
    ERLPEB_NAPI(env, napi_create_buffer_copy(env, len, bytes, nullptr, &out[2]));
  } else {
    ERLPEB_NAPI(env, napi_get_undefined(env, &out[2]));
  }
  finished_ = true;
}

}  // namespace erlpeb
