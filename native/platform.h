// The small C-style interface between the Node-API glue (binding.cc) and one file per
// platform. Nothing here knows about Node: results are plain structs and status codes.
#ifndef PROCLEASE_PLATFORM_H
#define PROCLEASE_PLATFORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pl_code {
  PL_OK = 0,
  PL_GONE = 1,           // positive proof that no such process exists (or it is an exited zombie)
  PL_INVALID_PID = 2,    // not a pid this kernel can have
  PL_CAPTURE_ERROR = 3,  // cannot verify: never to be read as "gone"
};

typedef struct {
  int code;            // enum pl_code
  const char* reason;  // static string, machine-readable; NULL when code == PL_OK
  int sys_errno;       // errno behind the failure, 0 if none
} pl_status;

#define PL_ARGV0_MAX 4096
#define PL_ID_MAX 128

typedef struct {
  char starttime[32];         // exact decimal of the raw kernel start value
  char argv0[PL_ARGV0_MAX];   // NUL-terminated; valid when has_argv0
  int has_argv0;
  char state[4];              // one-letter state ("R", "S", "Z", ...), "" if unknown
  int threads;                // -1 when unknown
} pl_proc;

// Identity of one process. Validates the pid range itself.
pl_status pl_capture(long long pid, pl_proc* out);
// The same without argv0 (has_argv0 stays 0): all a judge needs, without reading the argument
// area (Linux cmdline; macOS a kern.argmax-sized KERN_PROCARGS2 copy).
pl_status pl_capture_identity(long long pid, pl_proc* out);
// The kernel's boot session id, lower-case UUID.
pl_status pl_boot_id(char* out, size_t cap);
// Stable machine id (Linux /etc/machine-id, macOS hardware UUID); PL_CAPTURE_ERROR if none.
pl_status pl_machine_id(char* out, size_t cap);
// Id of this process's pid namespace; PL_CAPTURE_ERROR where the concept does not exist.
pl_status pl_pid_namespace(char* out, size_t cap);
// Largest pid the kernel hands out, or -1 when it cannot be read.
long long pl_pid_max(void);
// Name of the platform implementation that was compiled in.
const char* pl_platform(void);

typedef struct {
  char type_name[32];        // statfs f_fstypename, NUL-terminated ("apfs", "nfs", "smbfs", ...)
  unsigned long long flags;  // statfs f_flags (MNT_LOCAL, ...)
} pl_fs;

// The filesystem a path is on, as macOS names it (statfs f_fstypename and f_flags). Only macOS
// implements it: Linux callers use statfs f_type, which Node already exposes.
pl_status pl_fs_info(const char* path, pl_fs* out);

// Non-blocking exclusive advisory lock on an open file (flock semantics: bound to the open file
// description, dropped by the kernel when the last descriptor to it closes). 0 or an errno.
int pl_lock_exclusive_nb(int fd);
int pl_unlock(int fd);

// A descriptor that becomes readable when the process exits (Linux pidfd, macOS kqueue with
// EVFILT_PROC/NOTE_EXIT), or -errno. Only a wake-up hint: it never proves anything by itself.
int pl_exit_handle_open(long long pid);

// Deliveries of one signal counted by origin since the process started (signal_origin_posix.cc).
typedef struct {
  unsigned long kernel;   // sent by the kernel (Linux SI_KERNEL): a terminal's keys, a hangup
  unsigned long process;  // sent by a process: kill(2), sigqueue(3), tgkill(2)
  unsigned long other;    // anything else, or any signal where the origin is not recorded
} pl_sigorigin;

// Puts the origin-recording handler in front of the current handler of sig, chaining to it.
// 0, or ESRCH when sig has no handler to chain to, ENOTSUP where origins cannot be told apart
// (macOS), EINVAL for a signal out of range.
int pl_sigorigin_install(int sig);
// The counters of sig; 0 or EINVAL.
int pl_sigorigin_counts(int sig, pl_sigorigin* out);
// getpgid(pid) / getsid(pid) (0: this process), or -errno.
long long pl_process_group(long long pid);
long long pl_session(long long pid);

// Platform-neutral parser of the macOS KERN_PROCARGS2 buffer: copies argv[0] into out and
// returns 1, or returns 0 when the buffer holds no usable argv[0].
int pl_parse_procargs2(const unsigned char* buf, size_t len, char* out, size_t cap);
// Whether a KERN_PROCARGS2 answer of `returned` bytes, asked with a buffer of `capacity` bytes,
// may be only the tail of the arguments area (1), so that it must not be parsed.
int pl_procargs2_truncated(size_t returned, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
