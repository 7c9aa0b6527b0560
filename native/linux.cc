// Linux: process identity from /proc, boot id from the random driver, locks via flock.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "platform.h"

namespace {

// Absolute ceiling of any Linux pid (PID_MAX_LIMIT on 64-bit kernels).
const long long kPidLimit = 4194304;

pl_status ok() { return pl_status{PL_OK, NULL, 0}; }
pl_status fail(int code, const char* reason, int err) { return pl_status{code, reason, err}; }

// Reads a whole small file relative to dirfd. Returns bytes read or -errno; -EFBIG if it
// does not fit (kernel files here are far smaller than the buffers we pass).
// With one_line, a read that ends in '\n' is taken as the whole file: /proc/<pid>/stat is a
// single line produced in one read, and the read that would only confirm EOF costs ~8% of a
// probe. A short read ending inside comm (which may hold '\n') cannot carry the 20 fields
// parse_stat requires, so it fails closed as unparseable rather than misread.
long read_small(int dirfd, const char* name, char* buf, size_t cap, bool one_line = false) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  size_t total = 0;
  for (;;) {
    if (total == cap) {
      close(fd);
      return -EFBIG;
    }
    ssize_t n = read(fd, buf + total, cap - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0) break;
    total += (size_t)n;
    if (one_line && buf[total - 1] == '\n') break;
  }
  close(fd);
  return (long)total;
}

// Like read_small but for files where only the first cap bytes matter (cmdline).
long read_prefix(int dirfd, const char* name, char* buf, size_t cap) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  ssize_t n;
  do {
    n = read(fd, buf, cap);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  return n < 0 ? -e : (long)n;
}

// Probe existence without /proc: ESRCH is proof of absence, EPERM proves presence.
int signal_probe(long long pid) {
  return kill((pid_t)pid, 0) == 0 ? 0 : errno;
}

// /proc must describe our own pid namespace, or every lookup would hit the wrong process.
// Decided once per process: a process cannot change the /proc it was started under.
bool proc_is_ours() {
  static const bool ours = [] {
    char link[64];
    ssize_t n = readlink("/proc/self", link, sizeof(link) - 1);
    if (n <= 0) return false;
    link[n] = '\0';
    char* end = NULL;
    long v = strtol(link, &end, 10);
    return end != link && *end == '\0' && v == (long)getpid();
  }();
  return ours;
}

// The failure to report when a /proc read of a process we believed present fails.
pl_status classify_read_failure(long long pid, int err) {
  if (err == ESRCH || err == ENOENT) {
    int k = signal_probe(pid);
    if (k == ESRCH) return fail(PL_GONE, "no_such_process", ESRCH);
    if (k == EPERM) return fail(PL_CAPTURE_ERROR, "proc_hidden", err);
    return fail(PL_CAPTURE_ERROR, "proc_unreadable", err);
  }
  if (err == EACCES || err == EPERM) return fail(PL_CAPTURE_ERROR, "permission_denied", err);
  return fail(PL_CAPTURE_ERROR, "proc_read_failed", err);
}

bool all_digits(const char* s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// Parses /proc/<pid>/stat. comm may hold spaces, parens and newlines, so fields are taken
// after the LAST ')'.
pl_status parse_stat(long long pid, char* buf, size_t len, pl_proc* out) {
  buf[len] = '\0';
  char* lpar = (char*)memchr(buf, '(', len);
  char* rpar = NULL;
  for (size_t i = len; i > 0; i--) {
    if (buf[i - 1] == ')') {
      rpar = buf + i - 1;
      break;
    }
  }
  if (lpar == NULL || rpar == NULL || rpar < lpar || lpar == buf) {
    return fail(PL_CAPTURE_ERROR, "stat_unparseable", 0);
  }
  char pidtext[24];
  int m = snprintf(pidtext, sizeof pidtext, "%lld (", pid);
  if (m <= 0 || (size_t)(lpar - buf + 1) != (size_t)m || memcmp(buf, pidtext, (size_t)m) != 0) {
    return fail(PL_CAPTURE_ERROR, "stat_pid_mismatch", 0);
  }

  // Tokens after ") ": [0]=state(3) ... [17]=num_threads(20) ... [19]=starttime(22)
  const char* p = rpar + 1;
  const char* end = buf + len;
  const char* tok[20];
  size_t toklen[20];
  int count = 0;
  while (p < end && count < 20) {
    while (p < end && (*p == ' ' || *p == '\n')) p++;
    if (p >= end) break;
    const char* s = p;
    while (p < end && *p != ' ' && *p != '\n') p++;
    tok[count] = s;
    toklen[count] = (size_t)(p - s);
    count++;
  }
  if (count < 20 || toklen[0] != 1) return fail(PL_CAPTURE_ERROR, "stat_unparseable", 0);
  if (!all_digits(tok[17], toklen[17]) || toklen[17] > 9) {
    return fail(PL_CAPTURE_ERROR, "stat_unparseable", 0);
  }
  if (!all_digits(tok[19], toklen[19]) || toklen[19] >= sizeof(out->starttime)) {
    return fail(PL_CAPTURE_ERROR, "stat_unparseable", 0);
  }
  out->state[0] = tok[0][0];
  out->state[1] = '\0';
  out->threads = atoi(tok[17]);
  memcpy(out->starttime, tok[19], toklen[19]);
  out->starttime[toklen[19]] = '\0';
  return ok();
}

pl_status read_uuid_file(const char* path, char* out, size_t cap, bool dashes) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(PL_CAPTURE_ERROR, "id_unreadable", errno);
  char buf[80];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0) return fail(PL_CAPTURE_ERROR, "id_unreadable", e);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
  buf[n] = '\0';
  size_t want = dashes ? 36 : 32;
  if ((size_t)n != want || cap <= want) return fail(PL_CAPTURE_ERROR, "id_malformed", 0);
  for (size_t i = 0; i < want; i++) {
    char c = buf[i];
    bool dash_pos = dashes && (i == 8 || i == 13 || i == 18 || i == 23);
    if (dash_pos ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return fail(PL_CAPTURE_ERROR, "id_malformed", 0);
    }
  }
  memcpy(out, buf, want + 1);
  return ok();
}

}  // namespace

extern "C" const char* pl_platform(void) { return "linux"; }

extern "C" long long pl_pid_max(void) {
  char buf[32];
  long n = read_small(AT_FDCWD, "/proc/sys/kernel/pid_max", buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* end = NULL;
  long long v = strtoll(buf, &end, 10);
  if (end == buf || v <= 0 || v > kPidLimit) return -1;
  return v;
}

namespace {

pl_status capture(long long pid, bool want_argv0, pl_proc* out) {
  memset(out, 0, sizeof *out);
  out->threads = -1;
  if (pid < 1 || pid > kPidLimit) return fail(PL_INVALID_PID, "out_of_range", 0);
  if (!proc_is_ours()) return fail(PL_CAPTURE_ERROR, "proc_foreign_namespace", 0);

  char path[40];
  snprintf(path, sizeof path, "/proc/%lld", pid);
  int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dirfd < 0) return classify_read_failure(pid, errno);

  // A thread id has a /proc entry too, but is not a process. tgkill(pid, pid, 0) fails with
  // ESRCH unless pid leads its thread group. Asked after the dirfd is open: if that task
  // dies later, the reads below fail with ESRCH instead of describing a newcomer.
  if (syscall(SYS_tgkill, (pid_t)pid, (pid_t)pid, 0) != 0 && errno == ESRCH) {
    close(dirfd);
    return fail(PL_GONE, "not_a_process", ESRCH);
  }

  char stat[1024];
  long n = read_small(dirfd, "stat", stat, sizeof stat - 1, true);
  if (n < 0) {
    close(dirfd);
    if (n == -EFBIG) return fail(PL_CAPTURE_ERROR, "stat_unparseable", 0);
    return classify_read_failure(pid, (int)-n);
  }
  pl_status st = parse_stat(pid, stat, (size_t)n, out);
  if (st.code != PL_OK) {
    close(dirfd);
    return st;
  }
  // An exited, unreaped process: a zombie leader with no live threads, or dead (X).
  if ((out->state[0] == 'Z' && out->threads <= 1) || out->state[0] == 'X') {
    close(dirfd);
    return fail(PL_GONE, "zombie", 0);
  }

  if (!want_argv0) {
    close(dirfd);
    return ok();
  }
  // argv0 is advisory: any failure here leaves it null rather than failing the capture.
  long c = read_prefix(dirfd, "cmdline", out->argv0, sizeof out->argv0 - 1);
  close(dirfd);
  if (c > 0) {
    out->argv0[c] = '\0';
    out->has_argv0 = out->argv0[0] != '\0';
  } else {
    out->argv0[0] = '\0';
  }
  return ok();
}

}  // namespace

extern "C" pl_status pl_capture(long long pid, pl_proc* out) { return capture(pid, true, out); }

extern "C" pl_status pl_capture_identity(long long pid, pl_proc* out) { return capture(pid, false, out); }

extern "C" pl_status pl_boot_id(char* out, size_t cap) {
  return read_uuid_file("/proc/sys/kernel/random/boot_id", out, cap, true);
}

extern "C" pl_status pl_machine_id(char* out, size_t cap) {
  pl_status st = read_uuid_file("/etc/machine-id", out, cap, false);
  if (st.code == PL_OK) return st;
  return read_uuid_file("/var/lib/dbus/machine-id", out, cap, false);
}

// stat(2) without glibc's stat64@GLIBC_2.33 wrapper, which would stop the prebuilt binary from
// loading on glibc < 2.33 (RHEL 8, Debian 11, Ubuntu 20.04). On 64-bit Linux glibc's struct stat
// is the kernel's and glibc's own stat() is this very syscall; elsewhere (source builds only) the
// libc call is kept.
static int stat_no_glibc_wrapper(const char* path, struct stat* sb) {
#if defined(SYS_newfstatat) && __SIZEOF_LONG__ == 8
  return (int)syscall(SYS_newfstatat, AT_FDCWD, path, sb, 0);
#else
  return stat(path, sb);
#endif
}

extern "C" pl_status pl_pid_namespace(char* out, size_t cap) {
  struct stat sb;
  if (stat_no_glibc_wrapper("/proc/self/ns/pid", &sb) != 0) return fail(PL_CAPTURE_ERROR, "ns_unreadable", errno);
  int n = snprintf(out, cap, "%llu", (unsigned long long)sb.st_ino);
  if (n <= 0 || (size_t)n >= cap) return fail(PL_CAPTURE_ERROR, "ns_unreadable", 0);
  return ok();
}

extern "C" int pl_exit_handle_open(long long pid) {
  if (pid < 1 || pid > kPidLimit) return -EINVAL;
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);  // pidfds are always close-on-exec
  return fd < 0 ? -errno : (int)fd;
}

// Linux lock roots are judged by statfs f_type (fs.statfsSync), which needs no addon.
extern "C" pl_status pl_fs_info(const char*, pl_fs* out) {
  memset(out, 0, sizeof *out);
  return fail(PL_CAPTURE_ERROR, "unsupported_platform", 0);
}
