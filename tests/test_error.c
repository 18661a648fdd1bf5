/* mps_strerror / mps_err_name and the version calls. */
#include "helpers.h"

Test(error, every_documented_error_has_its_own_text, .timeout = 10)
{
  int codes[] = {EINVAL, EAGAIN, ETIMEDOUT, EMSGSIZE, EEXIST, ENOENT, EPIPE,
                 ENOMEM, EPERM, EOVERFLOW, EPROTO, EDEADLK, ECHILD};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *neg = mps_strerror(-codes[i]);
    cr_assert_not_null(neg);
    cr_expect_str_eq(neg, mps_strerror(codes[i]), "sign does not matter");
    cr_expect_str_neq(mps_err_name(-codes[i]), "UNKNOWN");
    for (size_t j = 0; j < i; j++)
      cr_expect_str_neq(neg, mps_strerror(-codes[j]));
  }
  cr_expect_str_eq(mps_err_name(-EPROTO), "EPROTO");
  cr_expect_str_eq(mps_err_name(MPS_OWNER_DIED), "MPS_OWNER_DIED");
  cr_expect_str_neq(mps_strerror(MPS_OWNER_DIED), mps_strerror(-EPERM));
  cr_expect_str_eq(mps_strerror(0), "success");
  cr_expect_not_null(mps_strerror(-ENOTDIR), "a system errno still gets a text");
  cr_expect_str_eq(mps_strerror(-99999), "unknown error");
  cr_expect_str_eq(mps_err_name(-99999), "UNKNOWN");
}

Test(error, version_matches_the_headers, .timeout = 10)
{
  cr_assert_str_eq(mps_version(), MPS_VERSION_STRING);
  cr_assert_eq(mps_version_number(), (unsigned)MPS_VERSION_NUMBER);
  cr_assert_gt(MPS_VERSION_NUMBER, 0);
}
