/* Shared by the libFuzzer targets: the fuzzer's bytes become a named
 * segment, which the target opens and drives with short timeouts.
 *
 * Input: byte 0 picks the object kind within the target (modulo the
 * number of kinds), the rest is the whole segment file. Every call that
 * takes a timeout gets 0 or 1 ms; each call that took a lock gives it
 * back. The harness checks only what the library promises: no crash, no
 * abort, no endless wait (libFuzzer's -timeout), results within their
 * documented range. */
#ifndef MPS_FUZZ_COMMON_H
#define MPS_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mpshare.h>

#define FUZZ_T 0.001 /* seconds */

/* Writes the segment file; returns its name (static), or NULL. */
static inline const char *fuzz_segment(const uint8_t *data, size_t size)
{
  static char name[64];
  snprintf(name, sizeof(name), "/mps-fuzz-%d", (int)getpid());
  int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return NULL;
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  close(fd);
  return name;
}

/* Reads every byte of a region the library handed out: a stray pointer
 * faults here. */
static inline unsigned fuzz_touch(const void *p, size_t n)
{
  const volatile unsigned char *c = p;
  unsigned sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += c[i];
  return sum;
}

/* The selector byte of the input being run: byte 0, which picked the
 * driver; a driver may use its other bits. */
static uint8_t fuzz_sel;

/* The whole entry point of a target with n drivers: the input minus its
 * selector byte becomes a named segment, drivers[byte 0 % n] drives it,
 * and the name is unlinked. */
static inline int fuzz_run(const uint8_t *data, size_t size, void (*const drivers[])(const char *),
                           size_t n)
{
  if (size < 1)
    return 0;
  const char *name = fuzz_segment(data + 1, size - 1);
  if (name == NULL)
    return 0;
  fuzz_sel = data[0];
  drivers[data[0] % n](name);
  mps_unlink(name);
  return 0;
}

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#endif
