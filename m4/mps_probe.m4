# MPS_PROBE_CFLAG(FLAG, VARIABLE)
# Appends FLAG to VARIABLE when the C compiler accepts it without any
# warning (the probe compiles with -Werror and includes <stdio.h>, so that
# a flag that only warns, such as _FORTIFY_SOURCE without optimisation, is
# left out rather than breaking an --enable-werror build).
AC_DEFUN([MPS_PROBE_CFLAG], [
  AS_VAR_PUSHDEF([mps_cv], [mps_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [mps_cv], [
    mps_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <stdio.h>]], [[puts("x");]])],
      [AS_VAR_SET([mps_cv], [yes])], [AS_VAR_SET([mps_cv], [no])])
    CFLAGS=$mps_save_CFLAGS])
  AS_VAR_IF([mps_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([mps_cv])
])

# MPS_PROBE_LDFLAG(FLAG, VARIABLE)
# Appends FLAG to VARIABLE when a program links with it without a warning.
AC_DEFUN([MPS_PROBE_LDFLAG], [
  AS_VAR_PUSHDEF([mps_cv], [mps_cv_ldflag_$1])
  AC_CACHE_CHECK([whether the linker accepts $1], [mps_cv], [
    mps_save_LDFLAGS=$LDFLAGS
    mps_save_CFLAGS=$CFLAGS
    LDFLAGS="$LDFLAGS $1"
    CFLAGS="$CFLAGS -Werror"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([mps_cv], [yes])], [AS_VAR_SET([mps_cv], [no])])
    LDFLAGS=$mps_save_LDFLAGS
    CFLAGS=$mps_save_CFLAGS])
  AS_VAR_IF([mps_cv], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([mps_cv])
])
