// Who sent a signal: the kernel on behalf of a terminal, or a process with kill(2). Node hands
// its listeners no siginfo, so `proclease run` could not tell a terminal's Ctrl-C (already
// delivered to the whole foreground process group, command included) from `kill -INT <wrapper>`
// (delivered to the wrapper alone), and forwarded both.
//
// pl_sigorigin_install(sig) puts an SA_SIGINFO handler in front of the one Node (libuv) installed
// for sig. It counts each delivery by si_code, then calls the previous handler exactly as the
// kernel would have (sa_sigaction or sa_handler, same mask and flags). The JS side reads the
// counters when its listener runs: libuv turns every delivery into one listener call, in order.
//
// This is the one file with process-wide mutable state, against the "no globals that change"
// rule: a signal handler receives nothing but (sig, siginfo, context), so what it records and
// the handler it chains to can only live in statics. They are kept minimal: per signal, the
// previous sigaction (written only by install, before the handler that reads it is in place) and
// lock-free atomic counters (async-signal-safe). No Node types here; the glue is in binding.cc.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

#include "platform.h"

namespace {

// Covers every standard signal (1..31) on Linux and macOS; real-time signals are not ours.
const int kSlots = 32;

struct Slot {
  struct sigaction previous;
  std::atomic<unsigned long> kernel{0};
  std::atomic<unsigned long> process{0};
  std::atomic<unsigned long> other{0};
};

static_assert(std::atomic<unsigned long>::is_always_lock_free, "counters must be async-signal-safe");

Slot slots[kSlots];

#ifdef SI_KERNEL
// Linux: a terminal's signals (n_tty's isig for the interrupt, quit and suspend keys, and the
// SIGHUP of a hangup) are sent with SI_KERNEL; kill(2), sigqueue(3) and tgkill(2) with SI_USER,
// SI_QUEUE and SI_TKILL.
void on_signal(int sig, siginfo_t* info, void* context) {
  int saved_errno = errno;
  if (sig > 0 && sig < kSlots) {
    Slot& s = slots[sig];
    int code = info != nullptr ? info->si_code : 1;
    if (code == SI_KERNEL) {
      s.kernel.fetch_add(1, std::memory_order_relaxed);
    } else if (code == SI_USER || code == SI_QUEUE || code == SI_TKILL) {
      s.process.fetch_add(1, std::memory_order_relaxed);
    } else {
      s.other.fetch_add(1, std::memory_order_relaxed);
    }
    // Exactly what the kernel would have done with the previous disposition. install() put us
    // only in front of a real handler, never SIG_DFL or SIG_IGN.
    const struct sigaction& prev = s.previous;
    errno = saved_errno;
    if (prev.sa_flags & SA_SIGINFO) {
      prev.sa_sigaction(sig, info, context);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
      prev.sa_handler(sig);
    }
  }
  errno = saved_errno;
}
#endif

}  // namespace

extern "C" int pl_sigorigin_install(int sig) {
#ifndef SI_KERNEL
  // macOS: psignal_internal (bsd/kern/kern_sig.c) gives every such signal si_code 0 and the pid
  // of the process in whose context it was raised (for Ctrl-C, whoever wrote to the terminal):
  // a terminal and kill(2) look alike, so there is nothing to record (docs/macos.md).
  (void)sig;
  return ENOTSUP;
#else
  if (sig <= 0 || sig >= kSlots || sig == SIGKILL || sig == SIGSTOP) return EINVAL;
  struct sigaction current;
  if (sigaction(sig, nullptr, &current) != 0) return errno;
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_signal) return 0;  // already in front
  // Only in front of a real handler (Node's, after process.on): a default or ignored disposition
  // cannot be chained to faithfully, and the origin is then nobody's business.
  if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN)) {
    return ESRCH;
  }
  // `previous` is written while the handler that reads it is not installed (libuv replaces
  // ours when its last listener goes, and we are asked again after a new process.on). The
  // signal is blocked in this thread meanwhile, so at least here no delivery splits the two.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, sig);
  // sigprocmask, not pthread_sigmask: on Linux both act on the calling thread only, and
  // pthread_sigmask moved into libc at GLIBC_2.32, above the prebuilds' symbol floor (2.17).
  sigprocmask(SIG_BLOCK, &block, &old);
  slots[sig].previous = current;
  struct sigaction mine = current;
  mine.sa_flags = current.sa_flags | SA_SIGINFO;
  mine.sa_sigaction = on_signal;
  int rc = sigaction(sig, &mine, nullptr) == 0 ? 0 : errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  return rc;
#endif
}

extern "C" int pl_sigorigin_counts(int sig, pl_sigorigin* out) {
  memset(out, 0, sizeof *out);
  if (sig <= 0 || sig >= kSlots) return EINVAL;
  out->kernel = slots[sig].kernel.load(std::memory_order_relaxed);
  out->process = slots[sig].process.load(std::memory_order_relaxed);
  out->other = slots[sig].other.load(std::memory_order_relaxed);
  return 0;
}

extern "C" long long pl_process_group(long long pid) {
  pid_t g = getpgid((pid_t)pid);
  return g < 0 ? -(long long)errno : (long long)g;
}

extern "C" long long pl_session(long long pid) {
  pid_t s = getsid((pid_t)pid);
  return s < 0 ? -(long long)errno : (long long)s;
}
