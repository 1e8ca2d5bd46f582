// Per-environment state of the addon (one per main thread or worker_threads Worker): the JS classes
// handed over once by lib/native.ts, and the atom cache. No mutable statics anywhere in native/.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace erlpeb {

struct DecoderState;
struct DecoderStateDeleter {
  void operator()(DecoderState* state) const;
};

struct AddonData {
  // Error classes (lib/errors.ts).
  Napi::FunctionReference DecodeError;
  Napi::FunctionReference EncodeError;
  Napi::FunctionReference ConnectionError;
  Napi::FunctionReference TimeoutError;
  Napi::FunctionReference ClosedError;
  Napi::FunctionReference RemoteError;
  // Term classes (lib/terms.ts) and helpers.
  Napi::FunctionReference Tuple;
  Napi::FunctionReference Pid;
  Napi::FunctionReference Ref;
  Napi::FunctionReference Port;
  Napi::FunctionReference Fun;
  Napi::FunctionReference Export;
  Napi::FunctionReference BitBinary;
  Napi::FunctionReference ImproperList;
  Napi::FunctionReference Float;
  Napi::FunctionReference atom;  // atom(name): the interned Atom
  Napi::FunctionReference Map;   // the global Map constructor
  Napi::ObjectReference objectPrototype;
  Napi::Reference<Napi::Symbol> termKind;  // Symbol.for('erl-peb.termKind')
  // Helpers from lib/native.ts: Node-API has no Map iteration or bulk construction, and one call
  // into JS per Map is far cheaper than one per entry.
  Napi::FunctionReference mapEntries;      // (map) => [k0, v0, k1, v1, ...]
  Napi::FunctionReference mapFromEntries;  // ([k0, v0, ...]) => Map
  Napi::FunctionReference symbolKeyFor;    // the original Symbol.keyFor
  // (tape, length, text, source) => term: makes the JS values of a decoded term from the op tape
  // the decoder writes (see term_decoder.cc); JS builds objects far faster than Node-API calls can.
  Napi::FunctionReference buildTerm;
  Napi::ObjectReference decodeTape;  // the Float64Array handed to buildTerm, replaced when too small
  // name -> the same Atom object JS's atom() returns; filled on first sight, never evicted (as
  // the JS atom table), so `atom('ok') === decoded` holds. (The codec itself makes atoms in
  // buildTerm through atom(), whose table is this cache's JS twin; native code that needs an
  // Atom without going through JS may use this map.)
  std::unordered_map<std::string, Napi::ObjectReference> atoms;
  bool ready = false;  // setup() has run
  // termToBinary's output buffer, kept between calls so that encoding does not allocate; `busy`
  // while in use (a getter may call termToBinary again, which then takes a buffer of its own).
  std::string encodeBuffer;
  bool encodeBufferBusy = false;
  std::u16string encodeText;  // the strings of an encode tape, as UTF-16
  // The decoder's working storage (its tape, text and stacks), kept between calls so decoding
  // does not allocate; `busy` as for encodeBuffer. Defined in term_decoder.cc.
  std::unique_ptr<DecoderState, DecoderStateDeleter> decoderState;
  bool decodeBusy = false;

  static AddonData& Of(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace erlpeb
