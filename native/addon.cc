// The addon's entry point. Each environment (the main thread, every worker_threads Worker) gets its
// own AddonData, freed by its finalizer when that environment goes away; nothing is shared
// between environments.
//
// Exports:
//   setup(classes)                    the JS classes and helpers the native code uses (once, from lib/native.ts)
//   termToBinary(value, compressLevel, maxDepth) -> Buffer
//   binaryToTerm(bytes, flags, maxDepth, maxUncompressedSize) -> term
//   tapeToBinary(tape, length, text, byteArrays, compressLevel, scratch)  termToBinary's fast path (below)
// Options arrive already validated and resolved to numbers by lib/codec/options.ts.
#include <napi.h>

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "addon_data.h"
#include "etf.h"
#include "term_codec.h"
#include "connection.h"

namespace erlpeb {
namespace {

// termToBinary keeps its output buffer between calls, unless a call made it larger than this.
constexpr size_t kKeepEncodeBuffer = 4 * 1024 * 1024;

// Runs the body of a binding; any C++ exception becomes a JS exception, never a crash.
template <typename Body>
napi_value Guard(napi_env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    napi_throw_range_error(env, nullptr, "erl-peb: out of memory");
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  } catch (...) {
    napi_throw_error(env, nullptr, "erl-peb: unexpected native error");
  }
  return nullptr;
}

AddonData& ReadyData(napi_env env) {
  void* raw = nullptr;
  ERLPEB_NAPI(env, napi_get_instance_data(env, &raw));
  AddonData* data = static_cast<AddonData*>(raw);
  if (data == nullptr || !data->ready) {
    throw Napi::Error::New(env, "erl-peb: the native addon was used before setup(); load it through lib/native");
  }
  return *data;
}

Napi::Value Setup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData& data = AddonData::Of(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "setup: expected an object of classes");
  Napi::Object classes = info[0].As<Napi::Object>();
  auto fn = [&](const char* name) {
    Napi::Value v = classes.Get(name);
    if (!v.IsFunction()) throw Napi::TypeError::New(env, std::string("setup: ") + name + " must be a function");
    return Napi::Persistent(v.As<Napi::Function>());
  };
  data.DecodeError = fn("DecodeError");
  data.EncodeError = fn("EncodeError");
  data.ConnectionError = fn("ConnectionError");
  data.TimeoutError = fn("TimeoutError");
  data.ClosedError = fn("ClosedError");
  data.RemoteError = fn("RemoteError");
  data.Tuple = fn("Tuple");
  data.Pid = fn("Pid");
  data.Ref = fn("Ref");
  data.Port = fn("Port");
  data.Fun = fn("Fun");
  data.Export = fn("Export");
  data.BitBinary = fn("BitBinary");
  data.ImproperList = fn("ImproperList");
  data.Float = fn("Float");
  data.atom = fn("atom");
  data.Map = fn("Map");
  data.mapEntries = fn("mapEntries");
  data.mapFromEntries = fn("mapFromEntries");
  data.buildTerm = fn("buildTerm");
  Napi::Value proto = classes.Get("objectPrototype");
  if (!proto.IsObject()) throw Napi::TypeError::New(env, "setup: objectPrototype must be an object");
  data.objectPrototype = Napi::Persistent(proto.As<Napi::Object>());
  Napi::Value termKind = classes.Get("termKind");
  if (!termKind.IsSymbol()) throw Napi::TypeError::New(env, "setup: termKind must be a symbol");
  data.termKind = Napi::Persistent(termKind.As<Napi::Symbol>());
  // Taken now, so that a later replacement of Symbol.keyFor does not change what the codec does.
  Napi::Value keyFor = env.Global().Get("Symbol").As<Napi::Object>().Get("keyFor");
  if (!keyFor.IsFunction()) throw Napi::TypeError::New(env, "setup: Symbol.keyFor is missing");
  data.symbolKeyFor = Napi::Persistent(keyFor.As<Napi::Function>());
  data.atoms.clear();  // cached Atoms belong to the atom() handed over before
  ResetKeyCache(data);  // and cached keys to the buildTerm handed over before
  data.ready = true;
  return env.Undefined();
}

// Clears the shared encode buffer's busy flag on every way out.
struct BufferLease {
  AddonData& data;
  bool held;
  BufferLease(AddonData& d) : data(d), held(!d.encodeBufferBusy) {
    if (held) data.encodeBufferBusy = true;
  }
  ~BufferLease() {
    if (held) data.encodeBufferBusy = false;
  }
};

napi_value TermToBinaryBinding(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    size_t argc = 3;
    napi_value argv[3];
    ERLPEB_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    AddonData& data = ReadyData(env);
    if (argc < 3) throw Napi::TypeError::New(env, "termToBinary(value, compressLevel, maxDepth)");
    int32_t level = -1;
    uint32_t maxDepth = 0;
    ERLPEB_NAPI(env, napi_get_value_int32(env, argv[1], &level));
    ERLPEB_NAPI(env, napi_get_value_uint32(env, argv[2], &maxDepth));
    EncodeSettings settings;
    settings.compressLevel = level;
    settings.maxDepth = maxDepth;

    // A getter may call termToBinary while this call is still using the shared buffer: that
    // inner call gets a buffer of its own.
    BufferLease lease(data);
    std::string own;
    std::string& buf = lease.held ? data.encodeBuffer : own;
    size_t pos = 0;
    EncodeBinaryInto(data, env, argv[0], buf, &pos, settings);
    napi_value result;
    ERLPEB_NAPI(env, napi_create_buffer_copy(env, pos, buf.data(), nullptr, &result));
    if (lease.held && buf.size() > kKeepEncodeBuffer) std::string().swap(buf);
    return result;
  });
}

napi_value BinaryToTermBinding(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    size_t argc = 4;
    napi_value argv[4];
    ERLPEB_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    AddonData& data = ReadyData(env);
    if (argc < 4) throw Napi::TypeError::New(env, "binaryToTerm(bytes, flags, maxDepth, maxUncompressedSize)");
    bool isTyped = false;
    ERLPEB_NAPI(env, napi_is_typedarray(env, argv[0], &isTyped));
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* raw = nullptr;
    if (isTyped) ERLPEB_NAPI(env, napi_get_typedarray_info(env, argv[0], &type, &length, &raw, nullptr, nullptr));
    if (!isTyped || type != napi_uint8_array) ThrowDecodeError(data, env, "input must be a Buffer or Uint8Array", 0);
    DecodeSettings settings;
    double maxUncompressed = 0;
    ERLPEB_NAPI(env, napi_get_value_uint32(env, argv[1], &settings.flags));
    ERLPEB_NAPI(env, napi_get_value_uint32(env, argv[2], &settings.maxDepth));
    ERLPEB_NAPI(env, napi_get_value_double(env, argv[3], &maxUncompressed));
    settings.maxUncompressedSize = maxUncompressed > 0 ? static_cast<uint64_t>(maxUncompressed) : 0;
    static const uint8_t kEmpty[1] = {0};
    const uint8_t* bytes = raw != nullptr ? static_cast<const uint8_t*>(raw) : kEmpty;
    return DecodeBinary(data, env, bytes, raw != nullptr ? length : 0, settings, argv[0]);
  });
}

// tapeToBinary(tape, length, text, byteArrays, compressLevel, scratch): the bytes of what the JS
// walk in lib/codec/native.ts put on an encode tape (byteArrays: the Buffers it met). Returns the
// byte count when they were written into `scratch` (a Uint8Array: JS makes a small Buffer faster
// than Node-API can), a Buffer when they did not fit, or -1 when the tape holds a value the full
// encoder (termToBinary) must take.
napi_value TapeToBinaryBinding(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    size_t argc = 6;
    napi_value argv[6];
    ERLPEB_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    AddonData& data = ReadyData(env);
    if (argc < 6) throw Napi::TypeError::New(env, "tapeToBinary(tape, length, text, byteArrays, compressLevel, scratch)");
    int32_t level = -1;
    ERLPEB_NAPI(env, napi_get_value_int32(env, argv[4], &level));
    BufferLease lease(data);
    std::string own;
    std::string& buf = lease.held ? data.encodeBuffer : own;
    size_t pos = 0;
    napi_value result;
    if (!EncodeTapeArgs(data, env, argv, buf, &pos, true, level)) {
      ERLPEB_NAPI(env, napi_create_int32(env, -1, &result));
      return result;
    }
    napi_typedarray_type scratchType;
    size_t scratchLength = 0;
    void* scratch = nullptr;
    ERLPEB_NAPI(env, napi_get_typedarray_info(env, argv[5], &scratchType, &scratchLength, &scratch, nullptr, nullptr));
    if (scratchType == napi_uint8_array && pos <= scratchLength && scratch != nullptr) {
      std::memcpy(scratch, buf.data(), pos);
      ERLPEB_NAPI(env, napi_create_double(env, static_cast<double>(pos), &result));
    } else {
      ERLPEB_NAPI(env, napi_create_buffer_copy(env, pos, buf.data(), nullptr, &result));
    }
    if (lease.held && buf.size() > kKeepEncodeBuffer) std::string().swap(buf);
    return result;
  });
}

void ExportFunction(napi_env env, Napi::Object exports, const char* name, napi_callback cb) {
  napi_value fn;
  ERLPEB_NAPI(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn));
  exports.Set(name, Napi::Value(env, fn));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());  // deleted by the default finalizer at env teardown
  exports.Set("setup", Napi::Function::New(env, Setup, "setup"));
  ExportFunction(env, exports, "termToBinary", TermToBinaryBinding);
  ExportFunction(env, exports, "binaryToTerm", BinaryToTermBinding);
  ExportFunction(env, exports, "tapeToBinary", TapeToBinaryBinding);

  // Other native parts register their exports here, each from its own file, e.g. the Erlang
  // connection (connection.cc):
  RegisterConnection(env, exports);

  return exports;
}

}  // namespace
}  // namespace erlpeb

static Napi::Object InitErlPeb(Napi::Env env, Napi::Object exports) { return erlpeb::Init(env, exports); }

NODE_API_MODULE(erl_peb, InitErlPeb)
