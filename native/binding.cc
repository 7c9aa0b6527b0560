// Node-API glue: argument checks, plain result objects, error codes. All platform work lives
// behind platform.h; results come back as { code, reason, errno } instead of exceptions so
// the TypeScript layer owns the error types.
#include <napi.h>

#include <cmath>

#include "platform.h"

namespace {

const char* CodeName(int code) {
  switch (code) {
    case PL_GONE: return "process_gone";
    case PL_INVALID_PID: return "invalid_pid";
    default: return "capture_error";
  }
}

Napi::Object Failure(Napi::Env env, const pl_status& st) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", false);
  o.Set("code", CodeName(st.code));
  o.Set("reason", st.reason != nullptr ? st.reason : "unknown");
  o.Set("errno", st.sys_errno);
  return o;
}

Napi::Object Value(Napi::Env env, const char* value) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", true);
  o.Set("value", value);
  return o;
}

Napi::Value Capture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double pid = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  // Reject before any syscall: 0 and -1 are process groups to kill().
  if (!std::isfinite(pid) || pid != std::floor(pid) || pid < 1 || pid > 9007199254740991.0) {
    return Failure(env, pl_status{PL_INVALID_PID, "not_a_pid", 0});
  }
  pl_proc proc;
  pl_status st = pl_capture((long long)pid, &proc);
  if (st.code != PL_OK) return Failure(env, st);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", true);
  o.Set("pid", pid);
  o.Set("starttime", proc.starttime);
  o.Set("argv0", proc.has_argv0 ? Napi::Value(Napi::String::New(env, proc.argv0)) : env.Null());
  if (proc.state[0] != '\0') o.Set("state", proc.state);
  if (proc.threads >= 0) o.Set("threads", proc.threads);
  return o;
}

Napi::Value IdResult(Napi::Env env, pl_status (*read)(char*, size_t)) {
  char buf[PL_ID_MAX];
  buf[0] = '\0';
  pl_status st = read(buf, sizeof buf);
  if (st.code != PL_OK) return Failure(env, st);
  return Value(env, buf);
}

Napi::Value BootId(const Napi::CallbackInfo& info) { return IdResult(info.Env(), pl_boot_id); }
Napi::Value MachineId(const Napi::CallbackInfo& info) { return IdResult(info.Env(), pl_machine_id); }
Napi::Value PidNamespace(const Napi::CallbackInfo& info) { return IdResult(info.Env(), pl_pid_namespace); }

Napi::Value PidMax(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)pl_pid_max());
}

Napi::Value Platform(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), pl_platform());
}

// Returns the descriptor argument, or -1 when it is not a plausible descriptor.
int FdArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) return -1;
  double fd = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(fd) || fd != std::floor(fd) || fd < 0 || fd > 2147483647.0) return -1;
  return (int)fd;
}

// Both return 0 or an errno; never block.
Napi::Value LockExclusiveNB(const Napi::CallbackInfo& info) {
  int fd = FdArg(info);
  return Napi::Number::New(info.Env(), fd < 0 ? EBADF : pl_lock_exclusive_nb(fd));
}

Napi::Value Unlock(const Napi::CallbackInfo& info) {
  int fd = FdArg(info);
  return Napi::Number::New(info.Env(), fd < 0 ? EBADF : pl_unlock(fd));
}

Napi::Value ParseProcargs2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) return env.Null();
  Napi::Buffer<unsigned char> b = info[0].As<Napi::Buffer<unsigned char>>();
  char out[PL_ARGV0_MAX];
  if (!pl_parse_procargs2(b.Data(), b.Length(), out, sizeof out)) return env.Null();
  return Napi::String::New(env, out);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("capture", Napi::Function::New(env, Capture));
  exports.Set("bootId", Napi::Function::New(env, BootId));
  exports.Set("machineId", Napi::Function::New(env, MachineId));
  exports.Set("pidNamespace", Napi::Function::New(env, PidNamespace));
  exports.Set("pidMax", Napi::Function::New(env, PidMax));
  exports.Set("platform", Napi::Function::New(env, Platform));
  exports.Set("lockExclusiveNB", Napi::Function::New(env, LockExclusiveNB));
  exports.Set("unlock", Napi::Function::New(env, Unlock));
  exports.Set("parseProcargs2", Napi::Function::New(env, ParseProcargs2));
  return exports;
}

}  // namespace

NODE_API_MODULE(proclease, Init)
