/* Every input the fuzzers start from or once crashed on stays a test: each
 * libFuzzer target's entry point, linked with fuzz/replay.c instead of
 * libFuzzer, replays the seed corpus (real segments of every kind, written
 * now by fuzz/seeds) and fuzz/regress/TARGET (the inputs of fixed fuzzer
 * findings). A crash or abort fails the test; a hang trips its timeout. */
#include "helpers.h"

#include <sys/stat.h>

static const char *env(const char *name)
{
  const char *v = getenv(name);
  cr_assert_not_null(v, "%s is set by make check", name);
  return v;
}

static int run(const char *cmd)
{
  int status = system(cmd);
  cr_assert(status != -1, "system(%s)", cmd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void replay(const char *target)
{
  char dir[] = "/tmp/mps-replay-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char cmd[4096];
  snprintf(cmd, sizeof(cmd), "'%s/fuzz/seeds' '%s' >/dev/null", env("MPS_BUILDDIR"), dir);
  cr_assert_eq(run(cmd), 0, "fuzz/seeds failed");

  char seeds[1024], regress[1024];
  snprintf(seeds, sizeof(seeds), "%s/fuzz_%s", dir, target);
  snprintf(regress, sizeof(regress), "%s/fuzz/regress/fuzz_%s", env("MPS_SRCDIR"), target);
  snprintf(cmd, sizeof(cmd), "'%s/fuzz/replay_%s'%s%s%s%s%s%s 2>&1", env("MPS_BUILDDIR"), target,
           is_dir(seeds) ? " '" : "", is_dir(seeds) ? seeds : "", is_dir(seeds) ? "'" : "",
           is_dir(regress) ? " '" : "", is_dir(regress) ? regress : "", is_dir(regress) ? "'" : "");
  int rc = run(cmd);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  run(cmd);
  cr_assert_eq(rc, 0, "replay of %s's inputs ended with status %d", target, rc);
}

Test(fuzz_replay, queue_inputs, .timeout = 120) { replay("queue"); }
Test(fuzz_replay, lock_inputs, .timeout = 120) { replay("lock"); }
Test(fuzz_replay, sync_inputs, .timeout = 120) { replay("sync"); }
Test(fuzz_replay, open_inputs, .timeout = 120) { replay("open"); }
