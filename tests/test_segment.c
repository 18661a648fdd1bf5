/* Segments: names, modes, and refusal of foreign, truncated, unpublished,
 * wrong-kind and other-layout segments (EPROTO, never a crash). */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "helpers.h"
#include "internal.h" /* white-box: offsets of the shared structs */

/* Writes `len` bytes of `data` as /dev/shm/<name without '/'>. */
static void forge(const char *name, const void *data, size_t len)
{
  char path[256];
  snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
  cr_assert_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* Overwrites bytes of an existing segment file, as a corruption would. */
static void poke(const char *name, off_t off, const void *data, size_t len)
{
  char path[256];
  snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
  int fd = open(path, O_RDWR);
  cr_assert(fd >= 0);
  cr_assert_eq(pwrite(fd, data, len, off), (ssize_t)len);
  close(fd);
}

static void expect_open_fails(const char *name, int err)
{
  errno = 0;
  cr_expect_null(mps_lock_open(name));
  cr_expect_eq(errno, err, "lock_open: errno %d, expected %d", errno, err);
  cr_expect_null(mps_value_open(name));
  cr_expect_eq(errno, err, "value_open: errno %d, expected %d", errno, err);
  cr_expect_null(mps_array_open(name));
  cr_expect_eq(errno, err);
  cr_expect_null(mps_shm_open(name));
  cr_expect_eq(errno, err);
}

Test(segment, garbage_file_is_refused, .timeout = 10)
{
  char name[64], junk[4096];
  test_name(name, "garbage");
  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (char)(i * 7 + 3);
  forge(name, junk, sizeof(junk));
  expect_open_fails(name, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, short_and_empty_files_are_refused, .timeout = 10)
{
  char name[64];
  test_name(name, "short");
  forge(name, "MPSHARE", 7);
  expect_open_fails(name, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
  forge(name, "", 0); /* what a creator leaves if it dies before sizing */
  expect_open_fails(name, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, truncated_segment_is_refused, .timeout = 10)
{
  char name[64], path[128];
  test_name(name, "trunc");
  mps_array *a = mps_array_create(name, MPS_DOUBLE, 1000, true);
  cr_assert_not_null(a);
  mps_array_close(a);
  snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
  cr_assert_eq(truncate(path, 512), 0);
  expect_open_fails(name, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, wrong_kind_is_refused, .timeout = 10)
{
  char name[64];
  test_name(name, "kind");
  mps_value *v = mps_value_create(name, MPS_INT, true);
  cr_assert_not_null(v);
  cr_expect_null(mps_lock_open(name));
  cr_expect_eq(errno, EPROTO);
  cr_expect_null(mps_array_open(name));
  cr_expect_eq(errno, EPROTO);
  cr_expect_null(mps_shm_open(name));
  cr_expect_eq(errno, EPROTO);
  mps_value_close(v);
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, other_layout_version_is_refused, .timeout = 10)
{
  char name[64];
  test_name(name, "layout");
  mps_lock *l = mps_lock_create(name);
  cr_assert_not_null(l);
  mps_lock_close(l);
  uint32_t other = 0xdeadbeef;
  poke(name, offsetof(struct mps__hdr, layout), &other, sizeof(other));
  expect_open_fails(name, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
}

/* The kind's own layout word is checked too: a lock of another build. */
Test(segment, other_object_layout_is_refused, .timeout = 10)
{
  char name[64];
  test_name(name, "objlayout");
  mps_lock *l = mps_lock_create(name);
  cr_assert_not_null(l);
  mps_lock_close(l);
  uint32_t other = 0x12345678;
  poke(name, offsetof(struct mps__hdr, obj_layout), &other, sizeof(other));
  errno = 0;
  cr_expect_null(mps_lock_open(name));
  cr_expect_eq(errno, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, forged_sizes_are_refused, .timeout = 10)
{
  char name[64];
  test_name(name, "forged");
  mps_array *a = mps_array_create(name, MPS_INT, 16, false);
  cr_assert_not_null(a);
  mps_array_close(a);
  /* Claim a huge element count: the array must not believe it. */
  uint64_t count = UINT64_C(1) << 40;
  poke(name, offsetof(struct mps__block_shm, count), &count, sizeof(count));
  cr_expect_null(mps_array_open(name));
  cr_expect_eq(errno, EPROTO);
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, unpublished_segment_is_refused_after_a_wait, .timeout = 10)
{
  char name[64];
  test_name(name, "unpub");
  char zeros[256] = {0}; /* sized, but the creator died before the magic */
  forge(name, zeros, sizeof(zeros));
  double t0 = test_now();
  expect_open_fails(name, EPROTO);
  cr_assert_lt(test_now() - t0, 5.0, "gives up within a bounded time");
  cr_assert_eq(mps_unlink(name), 0);
}

Test(segment, named_segments_are_mode_0600, .timeout = 10)
{
  char name[64], path[128];
  test_name(name, "mode");
  mode_t old = umask(0); /* even a permissive umask gives exactly 0600 */
  mps_shm *s = mps_shm_create(name, 100);
  umask(old);
  cr_assert_not_null(s);
  struct stat st;
  snprintf(path, sizeof(path), "/dev/shm/%s", name + 1);
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
  mps_shm_close(s);
  cr_assert_eq(mps_unlink(name), 0);
  assert_no_segments_left();
}

Test(segment, names_follow_shm_open_rules, .timeout = 10)
{
  char long_ok[MPS_NAME_MAX + 2], too_long[MPS_NAME_MAX + 2];
  int k = snprintf(long_ok, sizeof(long_ok), "/mps-test-long-%d-", (int)getpid());
  memset(long_ok + k, 'n', (size_t)(MPS_NAME_MAX + 1 - k));
  long_ok[MPS_NAME_MAX + 1] = '\0'; /* exactly MPS_NAME_MAX after the '/' */
  memset(too_long, 'x', MPS_NAME_MAX + 1);
  too_long[MPS_NAME_MAX + 1] = '\0';
  const char *bad[] = {"", "/", ".", "..", "/..", "a/b", "/a/b", "a/", too_long};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    errno = 0;
    cr_expect_null(mps_lock_create(bad[i]), "name '%s' accepted", bad[i]);
    cr_expect_eq(errno, EINVAL, "name '%s': errno %d", bad[i], errno);
    cr_expect_eq(mps_unlink(bad[i]), -EINVAL);
  }
  cr_expect_eq(mps_unlink(NULL), -EINVAL);
  mps_lock *l = mps_lock_create(long_ok);
  cr_assert_not_null(l, "a %d-byte name: %s", MPS_NAME_MAX, strerror(errno));
  mps_lock_close(l);
  /* The leading '/' is optional: both spell the same name. */
  cr_assert_eq(mps_unlink(long_ok + 1), 0);
}

Test(segment, create_refuses_an_existing_name, .timeout = 10)
{
  char name[64];
  test_name(name, "exists");
  mps_value *v = mps_value_create(name, MPS_INT, false);
  cr_assert_not_null(v);
  cr_expect_null(mps_value_create(name, MPS_INT, false));
  cr_expect_eq(errno, EEXIST);
  cr_expect_null(mps_lock_create(name + 1), "with or without the '/'");
  cr_expect_eq(errno, EEXIST);
  mps_value_close(v);
  cr_assert_eq(mps_unlink(name), 0);
  assert_no_segments_left();
}
