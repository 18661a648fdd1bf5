/* Runs a libFuzzer target's entry point over saved inputs, without
 * libFuzzer: linked with each fuzz/fuzz_*.c by `make check`, so that every
 * input a fuzzer ever crashed on (fuzz/regress/TARGET/) and the seed
 * corpus stay tests with gcc, and under ASan in `make check-sanitize`.
 *
 * Usage: replay_TARGET FILE|DIR...  Each file is one input; a directory
 * is every regular file in it. A crash, an abort or a hang (the test
 * harness's timeout) fails the run; otherwise it prints how many inputs
 * it replayed and exits 0. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replayed;

static void replay_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    exit(2);
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  do {
    if (len == cap) {
      cap = cap ? 2 * cap : 65536;
      buf = realloc(buf, cap);
      if (buf == NULL) {
        perror("realloc");
        exit(2);
      }
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
  } while (n > 0);
  fclose(f);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  replayed++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

static void replay_dir(const char *dir)
{
  struct dirent **names;
  int n = scandir(dir, &names, NULL, by_name);
  if (n < 0) {
    perror(dir);
    exit(2);
  }
  for (int i = 0; i < n; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
      replay_file(path);
    free(names[i]);
  }
  free(names);
}

int main(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
      replay_dir(argv[i]);
    else
      replay_file(argv[i]);
  }
  printf("replay: %d inputs, no crash\n", replayed);
  return 0;
}
