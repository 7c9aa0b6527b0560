// The floor for one uncontended acquire + release of the file store: the system calls the engine
// made for one acquire + release of a limit-1 key (strace of `node bench/lease-scale-worker.mjs
// trace-one`, engine of this commit's parent), in the same order, with nothing else: no record or
// summary serialization, no identity work, no event loop. The gate holds the fence counter at
// offset 0 and the key's summary at offset 64.
//   acquire: stat root, stat key dir, open+flock the gate, stat the gate (fd and path) and the key
//            file, read the summary, stat the key dir and read the counter (is the summary
//            current?), uname, check the slot file is absent, read+bump the fence, getpid, write
//            the record to a temporary file, lock it through a read-only descriptor, re-check the
//            gate, rename into place, stat the record, save the summary (stat key dir, read
//            counter, write), close the gate;
//   release: stat root, stat key dir, open+flock the gate, stat the gate (fd and path) and the
//            slot, read the summary and check it is current (stat key dir, read counter), unlink,
//            save it (stat key dir, read counter, write), close the gate and the record's
//            descriptor.
// No directory listing and no utimensat in the steady state. When the engine's sequence changes, `npm run bench:lease` prints both counts; update
// this file to the new sequence before quoting the ratio.
// Usage: lease_floor ITERATIONS DIR   (DIR must not exist)   Prints: ns_per_op <float> syscalls <n>
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SYSCALLS_PER_OP 48

// What Node's fs.*stat* asks for (libuv: basic stats and birth time).
#define STAT_MASK (STATX_BASIC_STATS | STATX_BTIME)
#define SUMMARY_AT 64
#define SUMMARY_READ 16384

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void st(const char *path) {
  struct statx sx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STAT_MASK, &sx) != 0) die(path);
}

static void fst(int fd) {
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STAT_MASK, &sx) != 0) die("fstat");
}

static void readCounter(int g, char *fence) {
  if (pread(g, fence, 21, 0) != 21) die("pread fence");
}

// saveSummary: the key dir's mtime and the counter go into the summary, then it is written.
static void saveSummary(int g, const char *keydir, char *fence, const char *summary, size_t len) {
  st(keydir);
  readCounter(g, fence);
  if (pwrite(g, summary, len, SUMMARY_AT) != (ssize_t)len) die("pwrite summary");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lease_floor ITERATIONS DIR\n");
    return 2;
  }
  long iters = atol(argv[1]);
  const char *root = argv[2];
  char keydir[4096], gate[4200], keyfile[4200], slot[4200], tmp[4200];
  if (strlen(root) > 3000) die("DIR too long");
  if (mkdir(root, 0700) != 0) die(root);
  snprintf(keydir, sizeof keydir, "%s/k-u-0bfe935e70c321c7ca3afc75ce0d0ca2", root);
  if (mkdir(keydir, 0700) != 0) die(keydir);
  snprintf(gate, sizeof gate, "%s/gate", keydir);
  snprintf(keyfile, sizeof keyfile, "%s/key", keydir);
  snprintf(slot, sizeof slot, "%s/slot-0", keydir);
  static const char keyJson[] = "{\"v\":1,\"key\":\"u\"}\n";
  int kf = open(keyfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (kf < 0 || write(kf, keyJson, sizeof keyJson - 1) != (ssize_t)(sizeof keyJson - 1)) die(keyfile);
  close(kf);

  // Sizes the engine writes for this key: the record (padded), the summary with one slot taken
  // and with none.
  char record[420], held[173], empty[166], summaryIn[SUMMARY_READ];
  memset(record, 'x', sizeof record);
  memset(held, 's', sizeof held);
  memset(empty, 's', sizeof empty);
  char fence[32];
  unsigned long long fenceValue = 1;
  struct utsname uts;

  // The gate as the engine leaves it between passes: counter, then the empty summary.
  int g = open(gate, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (g < 0) die(gate);
  int n = snprintf(fence, sizeof fence, "%020llu", fenceValue);
  if (pwrite(g, fence, (size_t)n + 1, 0) != n + 1) die("pwrite fence");
  if (pwrite(g, empty, sizeof empty, SUMMARY_AT) != (ssize_t)sizeof empty) die("pwrite summary");
  close(g);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iters; i++) {
    // acquire
    st(root);
    getuid();
    st(keydir);
    getuid();
    g = open(gate, O_RDWR | O_CREAT | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (g < 0) die(gate);
    if (flock(g, LOCK_EX | LOCK_NB) != 0) die("flock gate");
    fst(g);
    st(gate);
    st(keyfile);
    if (pread(g, summaryIn, sizeof summaryIn, SUMMARY_AT) <= 0) die("pread summary");
    st(keydir);
    readCounter(g, fence);
    uname(&uts);
    if (access(slot, F_OK) == 0 || errno != ENOENT) die("slot present");
    readCounter(g, fence);
    n = snprintf(fence, sizeof fence, "%020llu", ++fenceValue);
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
    saveSummary(g, keydir, fence, held, sizeof held);
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
    if (pread(g, summaryIn, sizeof summaryIn, SUMMARY_AT) <= 0) die("pread summary");
    st(keydir);
    readCounter(g, fence);
    if (unlink(slot) != 0) die("unlink");
    saveSummary(g, keydir, fence, empty, sizeof empty);
    close(g);
    close(r);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
  printf("ns_per_op %.1f syscalls %d\n", ns / (double)iters, SYSCALLS_PER_OP);
  return 0;
}
