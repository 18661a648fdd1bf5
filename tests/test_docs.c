/* The documents and the interface lists stay true: README.md's complete C
 * programs build and run, the man pages lint clean and give every errno
 * the header comments give, the exported symbols match lib/libmpshare.sym
 * and the headers, and no two files of lib/ call each other. Each check is
 * a script in tests/ that prints what is wrong. */
#include "helpers.h"

static void run_script(const char *script, const char *args)
{
  const char *src = getenv("MPS_SRCDIR"), *build = getenv("MPS_BUILDDIR");
  cr_assert(src != NULL && build != NULL, "MPS_SRCDIR and MPS_BUILDDIR are set by make check");
  char cmd[4096];
  snprintf(cmd, sizeof(cmd), "sh '%s/tests/%s' %s 2>&1", src, script, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  static char out[1 << 16];
  size_t len = fread(out, 1, sizeof(out) - 1, p);
  out[len] = '\0';
  int status = pclose(p);
  cr_log_info("%s", out);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed:\n%s", script, out);
}

static const char *env(const char *name)
{
  const char *v = getenv(name);
  cr_assert_not_null(v, "%s is set by make check", name);
  return v;
}

Test(docs, readme_programs_compile_and_run, .timeout = 240)
{
  char args[2048];
  snprintf(args, sizeof(args), "'%s' '%s' '%s'", env("MPS_SRCDIR"), env("MPS_BUILDDIR"),
           env("MPS_CC"));
  run_script("readme_blocks.sh", args);
}

Test(docs, exported_symbols_match_the_list, .timeout = 60)
{
  char args[2048];
  snprintf(args, sizeof(args), "'%s' '%s'", env("MPS_SRCDIR"), env("MPS_BUILDDIR"));
  run_script("check_symbols.sh", args);
}

/* Every public call's header comment has its Returns and Errors, and its
 * man page names every errno the comment gives. */
Test(docs, header_comments_keep_their_shape_and_agree_with_the_man_pages, .timeout = 60)
{
  char args[2048];
  snprintf(args, sizeof(args), "'%s'", env("MPS_SRCDIR"));
  run_script("check_comments.sh", args);
}

/* Dependencies in lib/ run one way (docs/DESIGN.md): no two files call
 * into each other, directly or around a loop. */
Test(docs, lib_files_never_call_each_other, .timeout = 60)
{
  char args[2048];
  snprintf(args, sizeof(args), "'%s' '%s'", env("MPS_SRCDIR"), env("MPS_BUILDDIR"));
  run_script("check_calls.sh", args);
}

/* ... and that check finds loops: a tree made for it, with a direct one and
 * one around three files, fails with both named. */
Test(docs, the_call_check_finds_loops, .timeout = 60)
{
  char args[2048];
  snprintf(args, sizeof(args), "--self-test '%s'", env("MPS_CC"));
  run_script("check_calls.sh", args);
}

Test(docs, man_pages_lint_clean_and_their_examples_run, .timeout = 240)
{
  char args[2048];
  snprintf(args, sizeof(args), "'%s' '%s' '%s' '%s'", env("MPS_SRCDIR"), env("MPS_BUILDDIR"),
           env("MPS_CC"), env("MPS_MANDOC"));
  run_script("lint_man.sh", args);
}

/* MPS_WITH_LOCK only writes its rc: GCC then warns about a caller that
 * never reads it, the promise lock.h makes. */
Test(docs, with_lock_unread_rc_is_a_gcc_warning, .timeout = 60)
{
  char cmd[4096];
  snprintf(cmd, sizeof(cmd), "%s --version 2>&1 | grep -q 'Free Software Foundation'",
           env("MPS_CC"));
  if (system(cmd) != 0)
    cr_skip_test("not GCC: Clang does not warn through the macro (lock.h says so)");
  snprintf(cmd, sizeof(cmd),
           "printf '#include <mpshare.h>\\nint f(mps_lock *l);\\n"
           "int f(mps_lock *l) { int n = 0, rc; MPS_WITH_LOCK(l, rc) n++; return n; }\\n' | "
           "%s -Wall -fsyntax-only -I'%s/include' -I'%s/include' -x c - 2>&1",
           env("MPS_CC"), env("MPS_SRCDIR"), env("MPS_BUILDDIR"));
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char out[4096];
  size_t len = fread(out, 1, sizeof(out) - 1, p);
  out[len] = '\0';
  pclose(p);
  cr_assert_not_null(strstr(out, "set but not used"), "no warning for an unread rc:\n%s", out);
}
