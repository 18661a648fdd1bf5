/* mps_strerror / mps_err_name and the version calls. */
#include <limits.h>
#include <stdint.h>

#include "helpers.h"

Test(error, every_documented_error_has_its_own_text, .timeout = 10)
{
  int codes[] = {EINVAL, EAGAIN,    ETIMEDOUT, EMSGSIZE, EEXIST, ENOENT, EPIPE, ENOMEM,
                 EPERM,  EOVERFLOW, EPROTO,    EDEADLK,  ECHILD, EMFILE, EDOM,  EUSERS};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *neg = mps_strerror(-codes[i]);
    cr_assert_not_null(neg);
    cr_expect_str_eq(neg, mps_strerror(codes[i]), "sign does not matter");
    cr_expect_str_eq(mps_err_name(codes[i]), mps_err_name(-codes[i]));
    cr_expect_str_neq(mps_err_name(-codes[i]), "UNKNOWN");
    for (size_t j = 0; j < i; j++)
      cr_expect_str_neq(neg, mps_strerror(-codes[j]));
  }
  cr_expect_str_eq(mps_err_name(-EPROTO), "EPROTO");
  cr_expect_str_eq(mps_err_name(-EMFILE), "EMFILE");
  cr_expect_str_eq(mps_err_name(EDOM), "EDOM");
  cr_expect_str_eq(mps_err_name(MPS_OWNER_DIED), "MPS_OWNER_DIED");
  cr_expect_str_neq(mps_strerror(MPS_OWNER_DIED), mps_strerror(-EPERM));
  cr_expect_str_eq(mps_strerror(0), "success");
  cr_expect_str_neq(mps_strerror(-ENOTDIR), "unknown error", "a system errno still gets a text");
  cr_expect_str_eq(mps_err_name(ENOTDIR), "ENOTDIR", "and its name");
  cr_expect_str_eq(mps_strerror(-99999), "unknown error");
  cr_expect_str_eq(mps_err_name(-99999), "UNKNOWN");
}

Test(error, the_extremes_are_unknown_never_undefined, .timeout = 10)
{
  long long odd[] = {INT_MIN,
                     INT_MAX,
                     -INT_MAX,
                     LLONG_MIN,
                     LLONG_MAX,
                     -4096,
                     4096 + 1,
                     -MPS_OWNER_DIED,
                     (long long)INT_MIN - 1,
                     -(1LL << 32) - EPIPE};
  for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
    cr_expect_str_eq(mps_strerror(odd[i]), "unknown error", "%lld", odd[i]);
    cr_expect_str_eq(mps_err_name(odd[i]), "UNKNOWN", "%lld", odd[i]);
  }
}

Test(error, takes_what_the_calls_return_without_a_cast, .timeout = 10)
{
  ssize_t got = -EMSGSIZE; /* as mps_queue_get returns it */
  long l = -EPIPE;
  int8_t small = -EINTR;
  cr_expect_str_eq(mps_err_name(got), "EMSGSIZE");
  cr_expect_str_eq(mps_err_name(l), "EPIPE");
  cr_expect_str_eq(mps_err_name(small), "EINTR");
  cr_expect_str_eq(mps_strerror(got), mps_strerror(-EMSGSIZE));
}

Test(error, the_strings_are_static, .timeout = 10)
{
  /* Not overwritten by a later call, as strerror()'s buffer may be. */
  const char *a = mps_strerror(-ENOTDIR), *b = mps_strerror(-99999);
  const char *an = mps_err_name(-ENOTDIR);
  (void)mps_strerror(-EISDIR);
  (void)mps_strerror(-12345);
  (void)mps_err_name(-EISDIR);
  cr_expect_str_eq(a, mps_strerror(-ENOTDIR));
  cr_expect_str_eq(b, "unknown error");
  cr_expect_str_eq(an, "ENOTDIR");
  cr_expect_eq(a, mps_strerror(ENOTDIR), "the same static string each time");
}

/* Every E-name a public header or a man page documents has a name and a
 * text of its own in the table, so that a new error cannot be documented
 * without one. (The pages' section headings, ERRORS and EXAMPLES, are no
 * errno names.) */
Test(error, every_errno_in_the_headers_is_in_the_table, .timeout = 10)
{
  const char *src = getenv("MPS_SRCDIR");
  cr_assert_not_null(src, "MPS_SRCDIR is set by make check");
  char cmd[4096];
  snprintf(cmd, sizeof(cmd),
           "cat '%s'/include/mpshare/*.h '%s'/man/*.[137] | grep -v '^\\.SH' | "
           "grep -oE '\\bE[A-Z]{2,}[A-Z0-9]*\\b' | sort -u",
           src, src);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f);
  char name[64];
  int n = 0;
  while (fscanf(f, "%63s", name) == 1) {
    n++;
    int found = 0;
    /* Our own text, not glibc's fallback (whose texts are capitalised). */
    for (int code = 1; code < 4096 && !found; code++)
      found = strcmp(mps_err_name(-code), name) == 0 &&
              strcmp(mps_strerror(-code), "unknown error") != 0 &&
              strcmp(mps_strerror(-code), strerror(code)) != 0;
    cr_expect(found, "%s is documented in a header but not in lib/error.c's table", name);
  }
  cr_assert_eq(pclose(f), 0);
  cr_assert_gt(n, 10, "the headers were read");
}

Test(error, version_matches_the_headers, .timeout = 10)
{
  cr_assert_str_eq(mps_version(), MPS_VERSION_STRING);
  cr_assert_eq(mps_version_number(), (unsigned)MPS_VERSION_NUMBER);
  cr_assert_gt(MPS_VERSION_NUMBER, 0);
}
