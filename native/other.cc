// Every platform without an implementation: compiles, and every probe fails closed.
#include <errno.h>
#include "platform.h"

namespace {
pl_status unsupported() { return pl_status{PL_CAPTURE_ERROR, "unsupported_platform", 0}; }
}  // namespace

extern "C" const char* pl_platform(void) { return "unsupported"; }
extern "C" long long pl_pid_max(void) { return -1; }
extern "C" pl_status pl_capture(long long, pl_proc* out) {
  out->has_argv0 = 0;
  out->threads = -1;
  return unsupported();
}
extern "C" pl_status pl_capture_identity(long long pid, pl_proc* out) { return pl_capture(pid, out); }
extern "C" pl_status pl_boot_id(char*, size_t) { return unsupported(); }
extern "C" pl_status pl_machine_id(char*, size_t) { return unsupported(); }
extern "C" pl_status pl_pid_namespace(char*, size_t) { return unsupported(); }
extern "C" int pl_lock_exclusive_nb(int) { return ENOTSUP; }
extern "C" int pl_unlock(int) { return ENOTSUP; }
extern "C" int pl_exit_handle_open(long long) { return -ENOTSUP; }
extern "C" pl_status pl_fs_info(const char*, pl_fs*) { return unsupported(); }
extern "C" int pl_sigorigin_install(int) { return ENOTSUP; }
extern "C" int pl_sigorigin_counts(int, pl_sigorigin* out) {
  out->kernel = out->process = out->other = 0;
  return 0;
}
extern "C" long long pl_process_group(long long) { return -ENOTSUP; }
extern "C" long long pl_session(long long) { return -ENOTSUP; }
