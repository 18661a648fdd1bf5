/* The read-only inspection API (mpshare/inspect.h): lists the named
 * objects in /dev/shm and describes one, for the `mpshare` command.
 *
 * It never maps a segment and never takes part in an object's protocol:
 * it copies the header and the kind's fixed struct with pread(), which
 * cannot fault on a file that shrinks meanwhile, then checks the copy as an
 * opener would (magic, layout words, kind, size, the kind's own check)
 * before reading any field of it. A segment in the middle of an update
 * gives a picture at most one update old; a damaged or foreign one gives
 * -EPROTO. Whether the creator runs comes from its pid and start time
 * (proc.c); how many processes map a segment, from /proc/<pid>/maps.
 *
 * No shared layout of its own; nothing written anywhere.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "inspect.h"
#include "stats.h"

static const struct mps__kind_view *const views[] = {
    &mps__lock_view,      &mps__rlock_view, &mps__value_view, &mps__array_view,   &mps__shm_view,
    &mps__semaphore_view, &mps__event_view, &mps__cond_view,  &mps__barrier_view, &mps__queue_view,
};

static const struct mps__kind_view *view_of(uint32_t kind)
{
  for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++)
    if ((uint32_t)views[i]->kind == kind)
      return views[i];
  return NULL;
}

/* ---- fields -------------------------------------------------------------- */

static mps_info_field *next_field(mps_info_field *f, size_t *n, const char *key)
{
  if (*n >= MPS_INFO_MAX_FIELDS)
    return NULL;
  f += (*n)++;
  memset(f, 0, sizeof(*f));
  f->key = key;
  return f;
}

void mps__info_num(mps_object_info *info, const char *key, int64_t v)
{
  mps_info_field *f = next_field(info->state, &info->n_state, key);
  if (f != NULL)
    f->value = v;
}

void mps__info_bool(mps_object_info *info, const char *key, bool v)
{
  mps_info_field *f = next_field(info->state, &info->n_state, key);
  if (f != NULL) {
    f->value = v;
    f->is_bool = true;
  }
}

void mps__info_text(mps_object_info *info, const char *key, const char *text)
{
  mps_info_field *f = next_field(info->state, &info->n_state, key);
  if (f != NULL)
    f->text = text;
}

void mps__info_mutex(mps_object_info *info, const mps__mutex *m)
{
  bool died;
  int owner = mps__mutex_owner(m, &died);
  mps__info_bool(info, "held", owner != 0);
  mps__info_num(info, "owner_pid", owner);
  mps__info_bool(info, "owner_alive", owner != 0 && !died && mps__proc_alive(owner, 0));
  /* The kernel clears a dead owner's id and sets this bit: the next
   * acquirer gets MPS_OWNER_DIED. */
  mps__info_bool(info, "owner_died", died);
}

void mps__info_counter(mps_object_info *info, const char *key, int64_t v)
{
  for (size_t i = 0; i < info->n_counters; i++)
    if (strcmp(info->counters[i].key, key) == 0)
      info->counters[i].value = v;
}

const mps_info_field *mps_info_get(const mps_info_field *fields, size_t n, const char *key)
{
  for (size_t i = 0; fields != NULL && key != NULL && i < n; i++)
    if (strcmp(fields[i].key, key) == 0)
      return &fields[i];
  return NULL;
}

/* ---- counters and recoveries -------------------------------------------- */

static const char *const family_names[][MPS__STAT_N] = {
    [MPS__FAMILY_LOCK] = {"acquisitions", "contended", "owner_died"},
    [MPS__FAMILY_QUEUE] = {"puts", "gets", "put_timeouts", "get_timeouts", "peak_depth",
                           "holes_skipped"},
    [MPS__FAMILY_WAIT] = {"waits", "timeouts", "wakeups"},
};

static void read_counters(const struct mps__hdr *h, enum mps__counter_family fam,
                          mps_object_info *info)
{
  for (unsigned id = 0; id < MPS__STAT_N && family_names[fam][id] != NULL; id++) {
    mps_info_field *f = next_field(info->counters, &info->n_counters, family_names[fam][id]);
    if (f != NULL)
      f->value = (int64_t)mps__stat_read(h, id, fam == MPS__FAMILY_QUEUE && id == MPS__ST_PEAK);
  }
}

/* Newest first; entries whose code is unknown (half written) are left out. */
static void read_recoveries(const struct mps__hdr *h, mps_object_info *info)
{
  uint64_t total = atomic_load(&h->stats.recoveries);
  info->recoveries = total;
  for (uint64_t k = 0; k < MPS__RECOVERY_RING && k < total; k++) {
    const struct mps__recovery *r = &h->stats.ring[(total - 1 - k) % MPS__RECOVERY_RING];
    const char *what = mps__repair_name(r->what);
    if (what == NULL)
      continue;
    mps_info_recovery *out = &info->recent[info->n_recent++];
    out->pid = r->pid;
    out->time = (double)r->time_ns / 1e9;
    out->what = what;
  }
}

/* ---- one segment --------------------------------------------------------- */

/* The header checks of mps__seg_open, on a copy; the view, or NULL. */
static const struct mps__kind_view *check_hdr(const struct mps__hdr *h, uint64_t file_size)
{
  const struct mps__kind_view *v = view_of(h->kind);
  if (atomic_load(&h->magic) != MPS__MAGIC || h->layout != MPS__LAYOUT || v == NULL ||
      h->obj_layout != v->layout || h->size != file_size || h->size < v->fixed)
    return NULL;
  return v;
}

static void fill_identity(const struct mps__hdr *h, mps_object_info *info)
{
  info->creator_pid = h->creator_pid;
  info->creator_start = h->creator_start;
  info->creator_uid = h->creator_uid;
  info->creator_alive = mps__proc_alive(h->creator_pid, h->creator_start);
  info->created = (double)h->created_ns / 1e9;
  info->version = h->version;
}

/* Copies and reads the segment open on fd. 0 or -EPROTO (info then says
 * "foreign"), -ENOMEM. */
static int describe_fd(int fd, uint64_t file_size, mps_object_info *info)
{
  struct mps__hdr h;
  if (file_size < sizeof(h) || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
    return -EPROTO;
  const struct mps__kind_view *v = check_hdr(&h, file_size);
  if (v == NULL)
    return -EPROTO;
  void *copy = malloc(v->fixed);
  if (copy == NULL)
    return -ENOMEM;
  int err = pread(fd, copy, v->fixed, 0) == (ssize_t)v->fixed ? 0 : -EPROTO;
  /* The checks again on the copy that is read: the header may have changed. */
  if (err == 0 && check_hdr(copy, file_size) != v)
    err = -EPROTO;
  info->kind = v->name;
  if (err == 0) {
    read_counters(copy, v->family, info);
    err = v->describe(copy, file_size, info);
  }
  if (err == 0) {
    fill_identity(copy, info);
    read_recoveries(copy, info);
  }
  free(copy);
  return err;
}

/* Resets info to a foreign file of this name and size. */
static void info_reset(mps_object_info *info, const char *path, uint64_t size)
{
  memset(info, 0, sizeof(*info));
  snprintf(info->name, sizeof(info->name), "%s", path);
  info->kind = "foreign";
  info->size = size;
  info->attached = -1;
}

/* Describes /dev/shm/<path + 1>; st receives the file's identity. */
static int describe_path(const char *path, mps_object_info *info, struct stat *st)
{
  char file[sizeof("/dev/shm") + MPS_NAME_MAX + 2];
  snprintf(file, sizeof(file), "/dev/shm%s", path);
  info_reset(info, path, 0);
  memset(st, 0, sizeof(*st));
  int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return errno == ELOOP ? -EPROTO : -errno;
  int err = fstat(fd, st) < 0 ? -errno : 0;
  if (err == 0 && !S_ISREG(st->st_mode))
    err = -EPROTO;
  if (err == 0) {
    info->size = (uint64_t)st->st_size;
    err = describe_fd(fd, info->size, info);
  }
  close(fd);
  if (err < 0) {
    info_reset(info, path, info->size);
    info->status = err;
  }
  return err;
}

/* ---- who maps what --------------------------------------------------------- */

struct file_id {
  dev_t dev;
  ino_t ino;
};

/* Adds one to counts[i] for each live process with a mapping of files[i]
 * (several mappings in one process count once). */
static void count_mappers(const struct file_id *files, int *counts, size_t n)
{
  DIR *d = opendir("/proc");
  if (d == NULL)
    return;
  bool *seen = calloc(n ? n : 1, sizeof(bool));
  struct dirent *e;
  while (seen != NULL && (e = readdir(d)) != NULL) {
    char path[300], line[512];
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    snprintf(path, sizeof(path), "/proc/%s/maps", e->d_name);
    FILE *f = fopen(path, "re");
    if (f == NULL)
      continue;
    memset(seen, 0, n * sizeof(bool));
    while (fgets(line, sizeof(line), f) != NULL) {
      unsigned maj, min;
      unsigned long long ino;
      if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) != 3 || ino == 0)
        continue;
      for (size_t i = 0; i < n; i++)
        if (!seen[i] && files[i].ino == ino && files[i].dev == makedev(maj, min))
          seen[i] = true, counts[i]++;
    }
    fclose(f);
  }
  free(seen);
  closedir(d);
}

/* ---- public calls ---------------------------------------------------------- */

int mps_inspect(const char *name, mps_object_info *info)
{
  char path[MPS_NAME_MAX + 2];
  struct stat st;
  if (info == NULL)
    return -EINVAL;
  int err = mps__name_check(name, path);
  if (err < 0)
    return err;
  err = describe_path(path, info, &st);
  if (err == 0) {
    struct file_id id = {st.st_dev, st.st_ino};
    info->attached = 0;
    count_mappers(&id, &info->attached, 1);
  }
  return err;
}

static int by_name(const void *a, const void *b)
{
  return strcmp(((const mps_object_info *)a)->name, ((const mps_object_info *)b)->name);
}

/* Describes every entry of d that passes `flags` into *list. */
static int list_dir(DIR *d, unsigned flags, mps_object_info **list, size_t *n, struct file_id **ids)
{
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char path[MPS_NAME_MAX + 2];
    struct stat st;
    if (e->d_name[0] == '.' || mps__name_check(e->d_name, path) < 0)
      continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      mps_object_info *l = realloc(*list, cap * sizeof(**list));
      struct file_id *i = realloc(*ids, cap * sizeof(**ids));
      *list = l ? l : *list;
      *ids = i ? i : *ids;
      if (l == NULL || i == NULL)
        return -ENOMEM;
    }
    int err = describe_path(path, &(*list)[*n], &st);
    if (err == -ENOENT || err == -EACCES || err == -ENOMEM || st.st_ino == 0 ||
        st.st_uid != getuid())
      continue; /* gone meanwhile, or not this user's */
    if (err < 0 && !(flags & MPS_INSPECT_ALL))
      continue;
    (*ids)[*n] = (struct file_id){st.st_dev, st.st_ino};
    (*list)[(*n)++].attached = err < 0 ? -1 : 0;
  }
  return 0;
}

int mps_inspect_list(mps_object_info **list, size_t *n, unsigned flags)
{
  if (list == NULL || n == NULL || (flags & ~MPS_INSPECT_ALL) != 0)
    return -EINVAL;
  *list = NULL;
  *n = 0;
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return -errno;
  struct file_id *ids = NULL;
  int err = list_dir(d, flags, list, n, &ids);
  closedir(d);
  if (err == 0) {
    int *counts = calloc(*n ? *n : 1, sizeof(int));
    err = counts == NULL ? -ENOMEM : 0;
    if (counts != NULL)
      count_mappers(ids, counts, *n);
    for (size_t i = 0; counts != NULL && i < *n; i++)
      if ((*list)[i].attached == 0)
        (*list)[i].attached = counts[i];
    free(counts);
  }
  free(ids);
  if (err < 0) {
    free(*list);
    *list = NULL;
    *n = 0;
    return err;
  }
  qsort(*list, *n, sizeof(**list), by_name);
  return 0;
}

void mps_inspect_free(mps_object_info *list) { free(list); }
