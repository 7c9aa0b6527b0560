// The floor for one uncontended acquire + release of the file store: the system calls the engine
// made for one acquire + release of a limit-1 key (strace of `node bench/lease-scale-worker.mjs
// trace-one`, engine of commit 70c0ccb), in the same order, with nothing else: no record
// serialization, no identity work, no event loop.
//   acquire: stat root, stat key dir, open+flock the gate, stat the gate (fd and path) and the key
//            file, uname, list the key dir, read+bump the fence, getpid, write the record to a temporary
//            file, lock it through a read-only descriptor, re-check the gate, rename into place,
//            stat the record, close the gate;
//   release: stat root, stat key dir, open+flock the gate, stat the gate and the slot, unlink,
//            close the gate and the record's descriptor.
// When the engine's sequence changes, `npm run bench:lease` prints both counts; update this file
// to the new sequence before quoting the ratio.
// Usage: lease_floor ITERATIONS DIR   (DIR must not exist)   Prints: ns_per_op <float> syscalls <n>
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SYSCALLS_PER_OP 40

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void st(const char *path) {
  struct statx sx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0) die(path);
}

static void fst(int fd) {
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) != 0) die("fstat");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lease_floor ITERATIONS DIR\n");
    return 2;
  }
  long iters = atol(argv[1]);
  const char *root = argv[2];
  char keydir[4096], gate[4200], keyfile[4200], slot[4200], tmp[4200];
  if (mkdir(root, 0700) != 0) die(root);
  if (strlen(root) > 3000) die("DIR too long");
  snprintf(keydir, sizeof keydir, "%s/k-u-0bfe935e70c321c7ca3afc75ce0d0ca2", root);
  if (mkdir(keydir, 0700) != 0) die(keydir);
  snprintf(gate, sizeof gate, "%s/gate", keydir);
  snprintf(keyfile, sizeof keyfile, "%s/key", keydir);
  snprintf(slot, sizeof slot, "%s/slot-0", keydir);
  int kf = open(keyfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (kf < 0 || write(kf, "u", 1) != 1) die(keyfile);
  close(kf);

  // A record of the size the engine writes (419 bytes for this key).
  char record[419];
  memset(record, 'x', sizeof record);
  char fence[32], dents[32768];
  unsigned long long fenceValue = 1;
  struct utsname uts;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iters; i++) {
    // acquire
    st(root);
    getuid();
    st(keydir);
    getuid();
    int g = open(gate, O_RDWR | O_CREAT | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (g < 0) die(gate);
    if (flock(g, LOCK_EX | LOCK_NB) != 0) die("flock gate");
    fst(g);
    st(gate);
    st(keyfile);
    uname(&uts);
    int d = open(keydir, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_DIRECTORY);
    if (d < 0) die(keydir);
    fst(d);
    while (syscall(SYS_getdents64, d, dents, sizeof dents) > 0) {
    }
    close(d);
    if (pread(g, fence, 21, 0) < 0) die("pread fence");
    int n = snprintf(fence, sizeof fence, "%020llu", fenceValue++);
    if (pwrite(g, fence, (size_t)n, 0) != n) die("pwrite fence");
    getpid();
    snprintf(tmp, sizeof tmp, "%s/tmp-%016lx%016lx", keydir, (unsigned long)i, (unsigned long)i * 2654435761u);
    int w = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w < 0) die(tmp);
    if (pwrite(w, record, sizeof record, 0) != (ssize_t)sizeof record) die("pwrite record");
    int r = open(tmp, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (r < 0) die(tmp);
    if (flock(r, LOCK_EX | LOCK_NB) != 0) die("flock record");
    close(w);
    fst(g);
    st(gate);
    if (rename(tmp, slot) != 0) die("rename");
    fst(r);
    close(g);
    // release
    st(root);
    getuid();
    st(keydir);
    getuid();
    g = open(gate, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (g < 0) die(gate);
    if (flock(g, LOCK_EX | LOCK_NB) != 0) die("flock gate");
    fst(g);
    st(gate);
    st(slot);
    if (unlink(slot) != 0) die("unlink");
    close(g);
    close(r);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
  printf("ns_per_op %.1f syscalls %d\n", ns / (double)iters, SYSCALLS_PER_OP);
  return 0;
}
