#include <napi.h>
Napi::Object Init(Napi::Env env, Napi::Object exports) { exports.Set("hello", Napi::String::New(env, "x")); return exports; }
NODE_API_MODULE(erl_peb, Init)
