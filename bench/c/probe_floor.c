// The floor for one process-identity probe: the same syscalls the addon makes on Linux
// (open /proc/<pid> as a directory, tgkill(pid, pid, 0) for the thread-group-leader check,
// openat + read stat, parse after the last ')', openat + read cmdline), with nothing else.
// Usage: probe_floor ITERATIONS PID...   Prints: ns_per_call <float>
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long read_at(int dirfd, const char *name, char *buf, size_t cap) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  ssize_t n = read(fd, buf, cap);
  int e = errno;
  close(fd);
  return n < 0 ? -e : (long)n;
}

// Returns 0 and fills starttime/argv0, or -1.
static int probe(long pid, char *starttime, size_t stcap, char *argv0, size_t acap) {
  char path[40];
  snprintf(path, sizeof path, "/proc/%ld", pid);
  int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dirfd < 0) return -1;
  if (syscall(SYS_tgkill, (pid_t)pid, (pid_t)pid, 0) != 0 && errno == ESRCH) {
    close(dirfd);
    return -1;
  }
  char stat[1024];
  long n = read_at(dirfd, "stat", stat, sizeof stat - 1);
  if (n <= 0) {
    close(dirfd);
    return -1;
  }
  stat[n] = '\0';
  char *rpar = strrchr(stat, ')');
  if (rpar == NULL) {
    close(dirfd);
    return -1;
  }
  // After ") ": field 3 is the first token; starttime is field 22, i.e. 19 tokens later.
  char *p = rpar + 2;
  for (int field = 3; field < 22 && p != NULL; field++) {
    p = strchr(p, ' ');
    if (p != NULL) p++;
  }
  if (p == NULL) {
    close(dirfd);
    return -1;
  }
  size_t len = strcspn(p, " \n");
  if (len == 0 || len >= stcap) {
    close(dirfd);
    return -1;
  }
  memcpy(starttime, p, len);
  starttime[len] = '\0';
  long c = read_at(dirfd, "cmdline", argv0, acap - 1);
  close(dirfd);
  argv0[c > 0 ? c : 0] = '\0';
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ITERATIONS PID...\n", argv[0]);
    return 2;
  }
  long iterations = strtol(argv[1], NULL, 10);
  int npids = argc - 2;
  long *pids = calloc((size_t)npids, sizeof *pids);
  for (int i = 0; i < npids; i++) pids[i] = strtol(argv[i + 2], NULL, 10);

  char starttime[32];
  char argv0[4096];
  for (int i = 0; i < npids; i++) {
    if (probe(pids[i], starttime, sizeof starttime, argv0, sizeof argv0) != 0) {
      fprintf(stderr, "probe of %ld failed\n", pids[i]);
      return 1;
    }
    printf("pid %ld starttime %s\n", pids[i], starttime);
  }

  unsigned long sink = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long it = 0; it < iterations; it++) {
    for (int i = 0; i < npids; i++) {
      if (probe(pids[i], starttime, sizeof starttime, argv0, sizeof argv0) != 0) return 1;
      sink += (unsigned char)starttime[0] + (unsigned char)argv0[0];
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
  printf("ns_per_call %.1f\n", ns / (double)(iterations * npids));
  fprintf(stderr, "sink %lu\n", sink);  // keeps the loop from being optimized away
  return 0;
}
