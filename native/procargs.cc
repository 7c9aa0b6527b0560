// Parser for the KERN_PROCARGS2 layout, kept free of platform headers so it is compiled and
// unit-tested on every platform, not only on macOS where the data comes from.
//
// Layout: int argc | exec path NUL | NUL padding | argv[0] NUL | argv[1] NUL ... | env ...
#include <string.h>
#include "platform.h"

extern "C" int pl_parse_procargs2(const unsigned char* buf, size_t len, char* out, size_t cap) {
  if (buf == NULL || out == NULL || cap == 0) return 0;
  out[0] = '\0';
  int argc = 0;
  if (len < sizeof(argc)) return 0;
  memcpy(&argc, buf, sizeof(argc));
  if (argc <= 0) return 0;

  size_t i = sizeof(argc);
  while (i < len && buf[i] != '\0') i++;  // exec path
  if (i >= len) return 0;                 // path not terminated: the layout is lost
  while (i < len && buf[i] == '\0') i++;  // padding
  if (i >= len) return 0;

  size_t start = i;
  while (i < len && buf[i] != '\0') i++;
  size_t n = i - start;  // an unterminated argv[0] at the end of the buffer is taken as is
  if (n == 0) return 0;
  if (n >= cap) n = cap - 1;
  memcpy(out, buf + start, n);
  out[n] = '\0';
  return 1;
}
