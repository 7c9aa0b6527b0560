// flock(2) on an already-open descriptor. Shared by Linux and macOS.
#include <errno.h>
#include <sys/file.h>
#include "platform.h"

extern "C" int pl_lock_exclusive_nb(int fd) {
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

extern "C" int pl_unlock(int fd) {
  for (;;) {
    if (flock(fd, LOCK_UN) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}
