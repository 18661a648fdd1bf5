/* Segments: the shared memory under every mpshare object.
 *
 * A segment is one mapping, anonymous (MAP_SHARED|MAP_ANONYMOUS, inherited by
 * fork) or named (shm_open, reachable by unrelated processes). It starts
 * with struct mps__hdr: magic, layout words, object kind and size, the
 * creator's identity (pid, its start time, uid, wall-clock creation time,
 * library version) and the object's counters (stats.c). The
 * object's own shared struct follows in the same mapping and holds offsets,
 * never pointers, since each process maps it at its own address.
 *
 * A named segment is created with O_EXCL and mode 0600, sized, initialised
 * by its object, and only then published by storing the magic (release).
 * The creator holds an open-file-description lock on the file from just
 * after shm_open until it publishes (or dies: the kernel drops the lock
 * with its last descriptor). An opener that finds the file still empty or
 * unpublished waits up to 200 ms for the creator, then asks the kernel
 * whether that lock is still held (F_OFD_GETLK, which takes nothing): if
 * it is, a live creator is slow (a large queue on a loaded machine), and
 * open fails with EAGAIN, which a caller may retry; if not, the creator
 * died before publishing and the segment, never to be trusted, is EPROTO.
 *
 * Creation reserves every page of the segment before it succeeds
 * (posix_fallocate for a named one, MADV_POPULATE_WRITE for an anonymous
 * one): tmpfs files are sparse, and a page first touched when /dev/shm is
 * full raises SIGBUS in whoever touches it. A create that cannot reserve
 * fails with ENOMEM and leaves nothing behind; once it has succeeded, no
 * use of the object can fault for lack of space. A file that is not an
 * mpshare segment, is shorter than its header says, or has another kind or
 * layout is refused with EPROTO before anything past its header is read.
 *
 * Every object gets its segment through mps__seg_object, which runs these
 * steps in this order for all of them; the object brings only its own
 * init (before publishing) and check (after the header check).
 */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"

/* How long an opener waits for a creator to publish a new segment (the
 * fuzzers build with a shorter wait, to spend their time elsewhere), on
 * the clock: counted in polls, the wait grew with the machine's load (a
 * 1 ms poll took 4 ms at load 10), and the tests' bounds failed. */
#ifndef MPS__PUBLISH_WAIT_NS
#define MPS__PUBLISH_WAIT_NS (200 * 1000 * 1000L)
#endif
#define MPS__PUBLISH_POLL_NS (1000 * 1000L)

int mps__name_check(const char *name, char out[MPS_NAME_MAX + 2])
{
  if (name == NULL)
    return -EINVAL;
  if (name[0] == '/')
    name++;
  size_t len = strnlen(name, MPS_NAME_MAX + 1);
  if (len == 0 || len > MPS_NAME_MAX || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
      strcmp(name, "..") == 0)
    return -EINVAL;
  out[0] = '/';
  memcpy(out + 1, name, len + 1);
  return 0;
}

static int map_fd(mps__seg *s, int fd, size_t size)
{
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return errno == ENOMEM ? -ENOMEM : -errno;
  s->hdr = p;
  s->size = size;
  return 0;
}

/* The header of a new segment: what it is and who made it, so that a
 * reader of /dev/shm can tell (inspect.c) whether its creator still runs. */
/* posix_fallocate's and madvise's "no room" as the contract names it. */
static int no_room(int err)
{
  return err == ENOSPC || err == EFBIG || err == ENOMEM || err == EFAULT ? -ENOMEM : -err;
}

static int reserve_anon(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
  /* EINVAL: a kernel before 5.14; its shared anonymous memory was charged
   * at mmap time and has no size limit that could raise SIGBUS. */
  if (madvise(p, size, MADV_POPULATE_WRITE) < 0 && errno != EINVAL)
    return no_room(errno);
#else
  (void)p;
  (void)size;
#endif
  return 0;
}

/* The creator's "still being made" mark: a write lock on the whole file,
 * owned by the open file description, so it goes with the creator's last
 * descriptor, whatever the creator does or however it dies. */
static int mark_creating(int fd)
{
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

static bool creator_alive(int fd)
{
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
  return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

static void fill_hdr(struct mps__hdr *h, enum mps__kind kind, size_t size)
{
  h->layout = MPS__LAYOUT;
  h->kind = kind;
  h->size = size;
  h->creator_pid = mps__self_pid();
  h->creator_start = mps__proc_start(h->creator_pid);
  h->creator_uid = (uint32_t)getuid();
  h->version = MPS_VERSION_NUMBER;
  h->created_ns = mps__wall_ns();
}

int mps__seg_anon(mps__seg *s, enum mps__kind kind, size_t size)
{
  if (size < sizeof(struct mps__hdr))
    return -EINVAL;
  memset(s, 0, sizeof(*s));
  s->fd = -1;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return -ENOMEM;
  int err = reserve_anon(p, size);
  if (err < 0) {
    munmap(p, size);
    return err;
  }
  s->hdr = p;
  s->size = size;
  fill_hdr(s->hdr, kind, size);
  mps__seg_publish(s);
  return 0;
}

/* shm_open's errno as the contract names it. */
static int open_error(void)
{
  if (errno == ENAMETOOLONG)
    return -EINVAL;
  if (errno == EMFILE || errno == ENFILE || errno == ENOSPC)
    return -ENOMEM;
  return -errno;
}

int mps__seg_create(mps__seg *s, const char *name, enum mps__kind kind, size_t size)
{
  memset(s, 0, sizeof(*s));
  s->fd = -1;
  int err = mps__name_check(name, s->name);
  if (err < 0)
    return err;
  if (size < sizeof(struct mps__hdr))
    return -EINVAL;
  int fd = shm_open(s->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return open_error();
  if ((err = mark_creating(fd)) < 0)
    goto fail;
  /* The umask may have taken bits away; the contract is exactly 0600. */
  if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
    err = no_room(errno);
    goto fail;
  }
  /* A segment larger than the free space fails before it fills the
   * filesystem page by page; posix_fallocate is what guarantees it. */
  struct statvfs fs;
  if (fstatvfs(fd, &fs) == 0 && fs.f_blocks != 0 && size / fs.f_frsize > fs.f_bavail) {
    err = -ENOMEM;
    goto fail;
  }
  if ((err = posix_fallocate(fd, 0, (off_t)size)) != 0) {
    err = no_room(err);
    goto fail;
  }
  err = map_fd(s, fd, size);
  if (err < 0)
    goto fail;
  s->fd = fd; /* kept, with its lock, until published or aborted */
  fill_hdr(s->hdr, kind, size);
  return 0;
fail:
  close(fd);
  shm_unlink(s->name);
  return err;
}

static void drop_creating(mps__seg *s)
{
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
}

void mps__seg_publish(mps__seg *s)
{
  atomic_store_explicit(&s->hdr->magic, MPS__MAGIC, memory_order_release);
  s->name[0] = '\0';
  drop_creating(s); /* after the magic: an opener sees one or the other */
}

void mps__seg_abort(mps__seg *s)
{
  if (s->name[0] != '\0')
    shm_unlink(s->name);
  drop_creating(s);
  mps__seg_close(s);
}

/* The size of a segment that is still being created: 0 while the creator
 * has not sized or published it yet, else the file size. */
static int settled_size(int fd, size_t *size)
{
  struct timespec pause = {0, MPS__PUBLISH_POLL_NS};
  mps__deadline end;
  (void)mps__deadline_init(&end, (double)MPS__PUBLISH_WAIT_NS * 1e-9);
  for (;;) {
    struct stat st;
    if (fstat(fd, &st) < 0)
      return -errno;
    if (!S_ISREG(st.st_mode))
      return -EPROTO;
    if ((size_t)st.st_size >= sizeof(struct mps__hdr)) {
      *size = (size_t)st.st_size;
      return 0;
    }
    if (mps__deadline_passed(&end))
      return creator_alive(fd) ? -EAGAIN : -EPROTO;
    nanosleep(&pause, NULL);
  }
}

static int check_hdr(mps__seg *s, int fd, enum mps__kind kind, size_t min_size)
{
  struct timespec pause = {0, MPS__PUBLISH_POLL_NS};
  uint64_t magic;
  mps__deadline end;
  (void)mps__deadline_init(&end, (double)MPS__PUBLISH_WAIT_NS * 1e-9);
  for (;;) {
    magic = atomic_load_explicit(&s->hdr->magic, memory_order_acquire);
    if (magic != 0 || mps__deadline_passed(&end))
      break;
    nanosleep(&pause, NULL);
  }
  const struct mps__hdr *h = s->hdr;
  if (magic == 0 && creator_alive(fd))
    return -EAGAIN;
  if (magic != MPS__MAGIC || h->layout != MPS__LAYOUT || h->kind != (uint32_t)kind ||
      h->size != s->size || h->size < min_size)
    return -EPROTO;
  return 0;
}

int mps__seg_open(mps__seg *s, const char *name, enum mps__kind kind, size_t min_size)
{
  char path[MPS_NAME_MAX + 2];
  memset(s, 0, sizeof(*s));
  s->fd = -1;
  int err = mps__name_check(name, path);
  if (err < 0)
    return err;
  int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    return open_error();
  size_t size = 0;
  err = settled_size(fd, &size);
  if (err == 0)
    err = size > MPS_SIZE_MAX + min_size ? -EPROTO : map_fd(s, fd, size);
  if (err == 0 && (err = check_hdr(s, fd, kind, min_size)) < 0)
    mps__seg_close(s);
  close(fd);
  return err;
}

void mps__seg_close(mps__seg *s)
{
  if (s->hdr != NULL)
    munmap(s->hdr, s->size);
  s->hdr = NULL;
  s->size = 0;
}

/* A new object: its segment, then its init. A named one is published only
 * once init succeeded, and unlinked if init failed. An anonymous one was
 * published by mps__seg_anon; nobody else maps it yet, and publishing again
 * stores the same magic. */
static int object_make(mps__seg *s, enum mps__seg_mode mode, const char *name,
                       const mps__seg_spec *spec)
{
  int err = mode == MPS__SEG_CREATE ? mps__seg_create(s, name, spec->kind, spec->size)
                                    : mps__seg_anon(s, spec->kind, spec->size);
  if (err < 0)
    return err;
  s->hdr->obj_layout = spec->layout;
  err = spec->init ? spec->init(s->hdr, spec->arg) : 0;
  if (err < 0)
    mps__seg_abort(s);
  else
    mps__seg_publish(s);
  return err;
}

static int object_open(mps__seg *s, const char *name, const mps__seg_spec *spec)
{
  int err = mps__seg_open(s, name, spec->kind, spec->size);
  if (err == 0 && s->hdr->obj_layout != spec->layout) {
    mps__seg_close(s);
    return -EPROTO;
  }
  if (err == 0 && spec->check != NULL && (err = spec->check(s->hdr, s->size)) < 0)
    mps__seg_close(s);
  return err;
}

void *mps__seg_object(size_t handle_size, enum mps__seg_mode mode, const char *name,
                      const mps__seg_spec *spec)
{
  mps__seg *s = calloc(1, handle_size);
  if (s == NULL)
    return mps__fail(-ENOMEM);
  int err = mode == MPS__SEG_OPEN ? object_open(s, name, spec) : object_make(s, mode, name, spec);
  if (err < 0) {
    free(s);
    return mps__fail(err);
  }
  s->magic = MPS__LIVE;
  return s;
}

int mps__seg_free_handle(void *handle)
{
  if (handle == NULL)
    return 0;
  if (!mps__seg_live(handle))
    return -EINVAL;
  mps__seg *s = handle;
  s->magic = MPS__DEAD;
  mps__seg_close(s);
  free(handle);
  return 0;
}

int mps__seg_unlink(const char *name)
{
  char path[MPS_NAME_MAX + 2];
  int err = mps__name_check(name, path);
  if (err < 0)
    return err;
  return shm_unlink(path) < 0 ? open_error() : 0;
}
