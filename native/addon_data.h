// Per-environment state of the addon (one per main thread or worker_threads Worker): the JS classes
// handed over once by lib/native.ts, and the atom cache. No mutable statics anywhere in native/.
#pragma once
#include <napi.h>

#include <string>
#include <unordered_map>

namespace erlpeb {

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
  // name -> the same Atom object JS's atom() returns; filled on first sight, never evicted (as
  // the JS atom table), so `atom('ok') === decoded` holds.
  std::unordered_map<std::string, Napi::ObjectReference> atoms;
  bool ready = false;  // setup() has run

  static AddonData& Of(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace erlpeb
