// Node-API glue: argument checks, plain result objects, error codes. All platform work lives
// behind platform.h; results come back as { code, reason, errno } instead of exceptions so
// the TypeScript layer owns the error types.
//
// Teardown: worker.terminate() can stop an environment while a call is inside the addon. From
// then on every napi call fails, and node-addon-api, built without C++ exceptions, reports each
// failure through Error::ThrowAsJavaScriptException, whose napi_throw cannot succeed either and
// so aborted the whole process. binding.gyp defines NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS, the
// documented answer: a throw that fails only because the environment is stopping is dropped (the
// result of such a call is discarded anyway). Exceptions in a live environment still throw.
#include <errno.h>
#include <napi.h>
#include <unistd.h>
#include <uv.h>

#include <cmath>
#include <string>

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

Napi::Value CaptureWith(const Napi::CallbackInfo& info, pl_status (*probe)(long long, pl_proc*)) {
  Napi::Env env = info.Env();
  double pid = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  // Reject before any syscall: 0 and -1 are process groups to kill().
  if (!std::isfinite(pid) || pid != std::floor(pid) || pid < 1 || pid > 9007199254740991.0) {
    return Failure(env, pl_status{PL_INVALID_PID, "not_a_pid", 0});
  }
  pl_proc proc;
  pl_status st = probe((long long)pid, &proc);
  if (st.code != PL_OK) return Failure(env, st);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", true);
  o.Set("pid", pid);
  o.Set("starttime", proc.starttime);
  if (probe == pl_capture) {
    o.Set("argv0", proc.has_argv0 ? Napi::Value(Napi::String::New(env, proc.argv0)) : env.Null());
  }
  if (proc.state[0] != '\0') o.Set("state", proc.state);
  if (proc.threads >= 0) o.Set("threads", proc.threads);
  return o;
}

Napi::Value Capture(const Napi::CallbackInfo& info) { return CaptureWith(info, pl_capture); }
// For judging a holder: the same without argv0, which is never evidence and costs a read of the
// argument area on every call.
Napi::Value CaptureIdentity(const Napi::CallbackInfo& info) { return CaptureWith(info, pl_capture_identity); }

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

Napi::Value Procargs2Truncated(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Sizes that are not plain non-negative integers are no answer to trust.
  for (size_t k = 0; k < 2; k++) {
    if (info.Length() <= k || !info[k].IsNumber()) return Napi::Boolean::New(env, true);
    double v = info[k].As<Napi::Number>().DoubleValue();
    if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > 9007199254740991.0) return Napi::Boolean::New(env, true);
  }
  size_t returned = (size_t)info[0].As<Napi::Number>().DoubleValue();
  size_t capacity = (size_t)info[1].As<Napi::Number>().DoubleValue();
  return Napi::Boolean::New(env, pl_procargs2_truncated(returned, capacity) != 0);
}

// fsInfo(path): { ok, typeName, flags } of the filesystem holding path (macOS), or a failure
// with the errno so the caller can raise it as fs would.
Napi::Value FsInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return Failure(env, pl_status{PL_CAPTURE_ERROR, "not_a_path", EINVAL});
  std::string path = info[0].As<Napi::String>().Utf8Value();
  // An embedded NUL would silently name another path.
  if (path.empty() || path.find('\0') != std::string::npos) {
    return Failure(env, pl_status{PL_CAPTURE_ERROR, "not_a_path", EINVAL});
  }
  pl_fs fs;
  pl_status st = pl_fs_info(path.c_str(), &fs);
  if (st.code != PL_OK) return Failure(env, st);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", true);
  o.Set("typeName", fs.type_name);
  // f_flags is 32 bits wide on macOS: exact as a double.
  o.Set("flags", (double)fs.flags);
  return o;
}

// A signal number argument, or 0 when it is not one.
int SignalArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) return 0;
  double sig = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(sig) || sig != std::floor(sig) || sig < 1 || sig > 64) return 0;
  return (int)sig;
}

// signalOriginInstall(signo): 0 or an errno (see pl_sigorigin_install).
Napi::Value SignalOriginInstall(const Napi::CallbackInfo& info) {
  int sig = SignalArg(info);
  return Napi::Number::New(info.Env(), sig == 0 ? EINVAL : pl_sigorigin_install(sig));
}

// signalOriginCounts(signo): { kernel, process, other }, or null for a bad signal number.
Napi::Value SignalOriginCounts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sig = SignalArg(info);
  pl_sigorigin c;
  if (sig == 0 || pl_sigorigin_counts(sig, &c) != 0) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kernel", (double)c.kernel);
  o.Set("process", (double)c.process);
  o.Set("other", (double)c.other);
  return o;
}

// processGroup(pid) / session(pid): getpgid / getsid (0: this process), or -errno.
Napi::Value PidQuery(const Napi::CallbackInfo& info, long long (*query)(long long)) {
  double pid = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!std::isfinite(pid) || pid != std::floor(pid) || pid < 0 || pid > 2147483647.0) {
    return Napi::Number::New(info.Env(), -EINVAL);
  }
  return Napi::Number::New(info.Env(), (double)query((long long)pid));
}
Napi::Value ProcessGroup(const Napi::CallbackInfo& info) { return PidQuery(info, pl_process_group); }
Napi::Value Session(const Napi::CallbackInfo& info) { return PidQuery(info, pl_session); }

// Calls back once when a process exits, through the event loop (a uv_poll on the descriptor from
// pl_exit_handle_open). The engine uses it only to wake a waiter early; proof still comes from
// a fresh judgement under the gate.
//
// Lifetime: the poll handle lives in a heap State freed only by uv_close's callback. Each State
// registers an async cleanup hook, so a stopping environment (worker.terminate) closes the poll
// and waits for that callback before the addon can be unloaded.
class ExitWatch : public Napi::ObjectWrap<ExitWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ExitWatch", {InstanceMethod("close", &ExitWatch::Close)});
  }

  // new ExitWatch(pid, callback); throws with .errno when the process cannot be watched.
  explicit ExitWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExitWatch>(info) {
    Napi::Env env = info.Env();
    double pid = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
    if (info.Length() < 2 || !info[1].IsFunction() || !std::isfinite(pid) || pid != std::floor(pid) || pid < 1 ||
        pid > 2147483647.0) {
      Napi::TypeError::New(env, "ExitWatch(pid, callback)").ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "no event loop").ThrowAsJavaScriptException();
      return;
    }
    int fd = pl_exit_handle_open((long long)pid);
    if (fd < 0) {
      Napi::Error err = Napi::Error::New(env, "cannot watch process");
      err.Set("errno", Napi::Number::New(env, -fd));
      err.ThrowAsJavaScriptException();
      return;
    }
    State* st = new State();
    st->fd = fd;
    st->env = env;
    st->poll.data = st;
    if (uv_poll_init(loop, &st->poll, fd) != 0) {
      // Never initialised, so never closed through libuv.
      close(fd);
      delete st;
      Napi::Error::New(env, "cannot poll process handle").ThrowAsJavaScriptException();
      return;
    }
    if (napi_add_async_cleanup_hook(env, OnEnvCleanup, st, &st->hook) != napi_ok) {
      st->hook = nullptr;
      BeginClose(st);
      Napi::Error::New(env, "cannot register cleanup").ThrowAsJavaScriptException();
      return;
    }
    if (uv_poll_start(&st->poll, UV_READABLE, OnReadable) != 0) {
      BeginClose(st);
      Napi::Error::New(env, "cannot poll process handle").ThrowAsJavaScriptException();
      return;
    }
    st->callback = Napi::Persistent(info[1].As<Napi::Function>());
    st->owner = this;
    state_ = st;
    // A watch alone never keeps the process alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(&st->poll));
  }

  ~ExitWatch() override { Stop(); }

 private:
  struct State {
    uv_poll_t poll;
    int fd = -1;
    napi_env env = nullptr;
    napi_async_cleanup_hook_handle hook = nullptr;
    Napi::FunctionReference callback;
    ExitWatch* owner = nullptr;
    bool closing = false;
  };

  // Starts closing a State that is not closing yet; OnClosed finishes the job.
  static void BeginClose(State* st) {
    if (st->closing) return;
    st->closing = true;
    if (st->owner != nullptr) st->owner->state_ = nullptr;
    st->owner = nullptr;
    st->callback.Reset();
    uv_poll_stop(&st->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&st->poll), OnClosed);
  }

  static void OnClosed(uv_handle_t* handle) {
    State* st = static_cast<State*>(handle->data);
    close(st->fd);
    // Lets a stopping environment proceed (and the addon be unloaded) only now.
    if (st->hook != nullptr) napi_remove_async_cleanup_hook(st->hook);
    delete st;
  }

  static void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) {
    BeginClose(static_cast<State*>(arg));
  }

  static void OnReadable(uv_poll_t* poll, int, int) {
    State* st = static_cast<State*>(poll->data);
    if (st->closing) return;
    napi_env env = st->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) {
      BeginClose(st);
      return;
    }
    napi_value fn = st->callback.IsEmpty() ? nullptr : static_cast<napi_value>(st->callback.Value());
    BeginClose(st);
    napi_value global;
    napi_value result;
    if (fn != nullptr && napi_get_global(env, &global) == napi_ok &&
        napi_make_callback(env, nullptr, global, fn, 0, nullptr, &result) != napi_ok) {
      // The callback threw: hand it to the process's uncaught-exception handling, never drop it.
      // A stopping environment (worker.terminate) also fails the call, with nothing pending and
      // nothing to report: napi_fatal_exception of an empty value would abort the process.
      bool pending = false;
      napi_value err;
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
          napi_get_and_clear_last_exception(env, &err) == napi_ok) {
        napi_fatal_exception(env, err);
      }
    }
    napi_close_handle_scope(env, scope);
  }

  void Stop() {
    if (state_ != nullptr) BeginClose(state_);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  State* state_ = nullptr;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ExitWatch", ExitWatch::Define(env));
  exports.Set("capture", Napi::Function::New(env, Capture));
  exports.Set("captureIdentity", Napi::Function::New(env, CaptureIdentity));
  exports.Set("bootId", Napi::Function::New(env, BootId));
  exports.Set("machineId", Napi::Function::New(env, MachineId));
  exports.Set("pidNamespace", Napi::Function::New(env, PidNamespace));
  exports.Set("pidMax", Napi::Function::New(env, PidMax));
  exports.Set("platform", Napi::Function::New(env, Platform));
  exports.Set("lockExclusiveNB", Napi::Function::New(env, LockExclusiveNB));
  exports.Set("unlock", Napi::Function::New(env, Unlock));
  exports.Set("parseProcargs2", Napi::Function::New(env, ParseProcargs2));
  exports.Set("procargs2Truncated", Napi::Function::New(env, Procargs2Truncated));
  exports.Set("fsInfo", Napi::Function::New(env, FsInfo));
  exports.Set("signalOriginInstall", Napi::Function::New(env, SignalOriginInstall));
  exports.Set("signalOriginCounts", Napi::Function::New(env, SignalOriginCounts));
  exports.Set("processGroup", Napi::Function::New(env, ProcessGroup));
  exports.Set("session", Napi::Function::New(env, Session));
  return exports;
}

}  // namespace

NODE_API_MODULE(proclease, Init)
