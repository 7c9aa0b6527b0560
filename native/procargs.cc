// Parser for the KERN_PROCARGS2 layout, kept free of platform headers so it is compiled and
// unit-tested on every platform, not only on macOS where the data comes from.
//
// Layout (docs/macos.md): int argc | exec path NUL | NUL padding | argv[0] NUL | argv[1] NUL ...
// | env NUL ... The padding is exactly what exec_extract_strings (bsd/kern/kern_exec.c) adds to
// round the exec path, its NUL included, up to a multiple of the pointer size, counted from the
// path's first byte (the kernel's string area starts with "executable_path=", 16 bytes, which
// sysctl_procargsx strips). So argv[0] starts at 4 + roundup(strlen(path) + 1, 8): a NUL there
// is an empty argv[0], never padding to skip, or argv[1] or an environment entry would be read.
#include <string.h>
#include "platform.h"

namespace {
// Every process on a supported macOS is 64-bit (no 32-bit processes since 10.15).
const size_t kPointerSize = 8;
}  // namespace

extern "C" int pl_parse_procargs2(const unsigned char* buf, size_t len, char* out, size_t cap) {
  if (buf == NULL || out == NULL || cap == 0) return 0;
  out[0] = '\0';
  int argc = 0;
  if (len < sizeof(argc)) return 0;
  memcpy(&argc, buf, sizeof(argc));
  if (argc <= 0) return 0;

  const size_t path = sizeof(argc);
  size_t i = path;
  while (i < len && buf[i] != '\0') i++;  // exec path
  if (i >= len) return 0;                 // path not terminated: the layout is lost
  size_t used = i + 1 - path;             // path and its NUL
  size_t start = path + (used + kPointerSize - 1) / kPointerSize * kPointerSize;
  if (start >= len) return 0;
  for (size_t p = i; p < start; p++) {
    if (buf[p] != '\0') return 0;  // not the kernel's padding: the layout is not what we know
  }

  i = start;
  while (i < len && buf[i] != '\0') i++;
  size_t n = i - start;  // an unterminated argv[0] at the end of the buffer is taken as is
  if (n == 0) return 0;  // empty argv[0]: null, whatever follows
  if (n >= cap) n = cap - 1;
  memcpy(out, buf + start, n);
  out[n] = '\0';
  return 1;
}

// sysctl_procargsx (bsd/kern/kern_sysctl.c), given a buffer smaller than the arguments area,
// copies the area's tail and reports exactly the buffer size: argc, the path and argv[0] are
// then not where the layout says. An answer that filled the buffer may be such a tail, so it is
// never parsed (an area that fits exactly is rare and only costs the advisory argv0).
extern "C" int pl_procargs2_truncated(size_t returned, size_t capacity) {
  return capacity == 0 || returned >= capacity;
}
