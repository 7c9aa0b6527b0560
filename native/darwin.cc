// macOS: process identity via sysctl(KERN_PROC_PID) and KERN_PROCARGS2, boot session id via
// kern.bootsessionuuid, hardware UUID via gethostuuid. Written against the documented
// interfaces; built only on macOS.
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <sys/mount.h>
#include <sys/param.h>
#include <sys/sysctl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "platform.h"

namespace {

// The largest pid XNU hands out: forkproc (bsd/kern/kern_fork.c) wraps nextpid back to 100 once
// it reaches PID_MAX (99999, bsd/sys/proc_internal.h), so PID_MAX itself is never a pid.
const long long kPidLimit = 99998;

pl_status ok() { return pl_status{PL_OK, NULL, 0}; }
pl_status fail(int code, const char* reason, int err) { return pl_status{code, reason, err}; }

// Reads kinfo_proc; PL_GONE only when the kernel returns nothing and kill() agrees.
pl_status read_kinfo(long long pid, struct kinfo_proc* kp) {
  int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)pid};
  size_t len = sizeof *kp;
  memset(kp, 0, sizeof *kp);
  if (sysctl(mib, 4, kp, &len, NULL, 0) != 0) {
    int e = errno;
    if (e == EPERM || e == EACCES) return fail(PL_CAPTURE_ERROR, "permission_denied", e);
    return fail(PL_CAPTURE_ERROR, "sysctl_failed", e);
  }
  if (len == 0) {
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return fail(PL_GONE, "no_such_process", ESRCH);
    return fail(PL_CAPTURE_ERROR, "sysctl_inconsistent", 0);
  }
  if (len != sizeof *kp) return fail(PL_CAPTURE_ERROR, "sysctl_unparseable", 0);
  return ok();
}

unsigned long long start_usec(const struct kinfo_proc* kp) {
  return (unsigned long long)kp->kp_proc.p_starttime.tv_sec * 1000000ULL +
         (unsigned long long)kp->kp_proc.p_starttime.tv_usec;
}

// kern.argmax is ARG_MAX, a compile-time constant of the kernel (bsd/sys/syslimits.h) that no
// sysctl can change, so it is read once per process. A function-local static is initialised
// exactly once even with several threads (C++11 [stmt.dcl]), and never changes afterwards: the
// "no mutable globals" rule holds. 0 when it cannot be read (then no argv0, ever).
int cached_argmax() {
  static const int argmax = [] {
    int v = 0;
    size_t sz = sizeof v;
    int mib[2] = {CTL_KERN, KERN_ARGMAX};
    if (sysctl(mib, 2, &v, &sz, NULL, 0) != 0 || v <= 0) return 0;
    return v;
  }();
  return argmax;
}

// argv0 is advisory: every failure yields "no argv0", never a failed capture.
void read_argv0(long long pid, pl_proc* out) {
  int argmax = cached_argmax();
  if (argmax <= 0) return;
  unsigned char* buf = (unsigned char*)malloc((size_t)argmax);
  if (buf == NULL) return;
  // The buffer must hold the whole area: a short one gets the tail and loses the layout, and
  // the kernel says so only by filling it (pl_procargs2_truncated).
  size_t len = (size_t)argmax;
  int mib[3] = {CTL_KERN, KERN_PROCARGS2, (int)pid};
  if (sysctl(mib, 3, buf, &len, NULL, 0) == 0 && !pl_procargs2_truncated(len, (size_t)argmax)) {
    out->has_argv0 = pl_parse_procargs2(buf, len, out->argv0, sizeof out->argv0);
  }
  free(buf);
}

}  // namespace

extern "C" const char* pl_platform(void) { return "darwin"; }

extern "C" long long pl_pid_max(void) { return kPidLimit; }

namespace {

pl_status capture(long long pid, bool want_argv0, pl_proc* out) {
  memset(out, 0, sizeof *out);
  out->threads = -1;
  if (pid < 1 || pid > kPidLimit) return fail(PL_INVALID_PID, "out_of_range", 0);

  struct kinfo_proc kp;
  pl_status st = read_kinfo(pid, &kp);
  if (st.code != PL_OK) return st;
  if (kp.kp_proc.p_stat == SZOMB) return fail(PL_GONE, "zombie", 0);
  unsigned long long first = start_usec(&kp);

  if (want_argv0) read_argv0(pid, out);

  // No directory handle pins the process here: read again to catch a pid reused mid-capture.
  st = read_kinfo(pid, &kp);
  if (st.code != PL_OK) return st;
  if (kp.kp_proc.p_stat == SZOMB) return fail(PL_GONE, "zombie", 0);
  if (start_usec(&kp) != first) return fail(PL_GONE, "pid_reused", 0);

  snprintf(out->starttime, sizeof out->starttime, "%llu", first);
  // p_stat as fill_externproc (bsd/kern/kern_sysctl.c) reports it: XNU sets SIDL, SRUN, SSTOP
  // and SZOMB but never SSLEEP, so a sleeping process reads 'R'. The letter only tells stopped
  // and zombie apart from the rest.
  const char* states = "?IRSTZ";  // SIDL=1 SRUN=2 SSLEEP=3 SSTOP=4 SZOMB=5 (bsd/sys/proc.h)
  int s = kp.kp_proc.p_stat;
  out->state[0] = (s >= 1 && s <= 5) ? states[s] : '?';
  out->state[1] = '\0';
  if (!out->has_argv0) out->argv0[0] = '\0';
  return ok();
}

}  // namespace

extern "C" pl_status pl_capture(long long pid, pl_proc* out) { return capture(pid, true, out); }

extern "C" pl_status pl_capture_identity(long long pid, pl_proc* out) { return capture(pid, false, out); }

extern "C" pl_status pl_boot_id(char* out, size_t cap) {
  char buf[64];
  size_t len = sizeof buf;
  if (sysctlbyname("kern.bootsessionuuid", buf, &len, NULL, 0) != 0) {
    return fail(PL_CAPTURE_ERROR, "id_unreadable", errno);
  }
  if (len < 37 || len > sizeof buf || buf[len - 1] != '\0') return fail(PL_CAPTURE_ERROR, "id_malformed", 0);
  if (strlen(buf) != 36 || cap <= 36) return fail(PL_CAPTURE_ERROR, "id_malformed", 0);
  for (size_t i = 0; i < 36; i++) {
    char c = (char)tolower((unsigned char)buf[i]);
    bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_pos ? c != '-' : !isxdigit((unsigned char)c)) return fail(PL_CAPTURE_ERROR, "id_malformed", 0);
    out[i] = c;
  }
  out[36] = '\0';
  return ok();
}

extern "C" pl_status pl_machine_id(char* out, size_t cap) {
  uuid_t id;
  struct timespec wait = {1, 0};
  if (gethostuuid(id, &wait) != 0) return fail(PL_CAPTURE_ERROR, "id_unreadable", errno);
  if (cap < 37) return fail(PL_CAPTURE_ERROR, "id_malformed", 0);
  uuid_unparse_lower(id, out);
  return ok();
}

extern "C" pl_status pl_pid_namespace(char* out, size_t cap) {
  (void)out;
  (void)cap;
  return fail(PL_CAPTURE_ERROR, "unsupported_platform", 0);
}

extern "C" int pl_exit_handle_open(long long pid) {
  if (pid < 1 || pid > kPidLimit) return -EINVAL;
  int kq = kqueue();
  if (kq < 0) return -errno;
  struct kevent ev;
  EV_SET(&ev, (uintptr_t)pid, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, NULL);
  if (kevent(kq, &ev, 1, NULL, 0, NULL) != 0) {
    int e = errno;
    close(kq);
    return -e;
  }
  return kq;  // readable once the exit event is queued
}

// statfs(2) with 64-bit inodes (the default since 10.6): f_fstypename is the name the filesystem
// registered (vfs_name: "apfs", "nfs", "smbfs", "macfuse", ...), f_flags the mount flags, of
// which MNT_LOCAL (bsd/sys/mount.h) says the data is stored locally.
extern "C" pl_status pl_fs_info(const char* path, pl_fs* out) {
  memset(out, 0, sizeof *out);
  struct statfs sf;
  for (;;) {
    if (statfs(path, &sf) == 0) break;
    if (errno != EINTR) return fail(PL_CAPTURE_ERROR, "statfs_failed", errno);
  }
  size_t n = strnlen(sf.f_fstypename, sizeof sf.f_fstypename);
  if (n >= sizeof out->type_name) n = sizeof out->type_name - 1;
  memcpy(out->type_name, sf.f_fstypename, n);
  out->type_name[n] = '\0';
  out->flags = (unsigned long long)sf.f_flags;
  return ok();
}
