/* Value, Array and SharedMemory: a block of caller-owned shared bytes.
 *
 * The three are one object with three kinds. Shared layout: the segment
 * header, struct mps__block_shm (type, element count, data size and offset),
 * a robust mutex on its own cache line (used only when has_lock), then the
 * data, 64-byte aligned and zeroed by the kernel. The library never reads
 * the data. Opening validates that the recorded sizes describe exactly the
 * bytes that were mapped, so a forged header cannot send a pointer past the
 * mapping. Crash semantics are the lock's: a holder that dies hands the
 * next acquirer MPS_OWNER_DIED and the data as the dead process left it.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "inspect.h"
#include "stats.h"

/* Layout word: struct mps__block_shm (internal.h). */
#define BLOCK_LAYOUT                                                                               \
  MPS__FOLD4(MPS__LAYOUT, sizeof(struct mps__block_shm), offsetof(struct mps__block_shm, count),   \
             offsetof(struct mps__block_shm, data_off), offsetof(struct mps__block_shm, mu))

#define MPS__BLOCK_DATA_OFF MPS__ALIGN_UP(sizeof(struct mps__block_shm), MPS__CACHELINE)
/* Where a small locked value goes: in the rest of its mutex's cache line. */
#define MPS__INLINE_OFF                                                                            \
  MPS__ALIGN_UP(offsetof(struct mps__block_shm, mu) + sizeof(pthread_mutex_t), 16)
#define MPS__INLINE_MAX (offsetof(struct mps__block_shm, mu) + MPS__CACHELINE - MPS__INLINE_OFF)

/* Every locked update touches the mutex and the value; sharing one cache
 * line halves the lines that move between cores per operation (measured in
 * bench/lock_bench: about 1.4x faster for a contended counter). Arrays and
 * larger values start on a line of their own. */
static size_t data_offset(enum mps__kind kind, bool has_lock, size_t data_size)
{
  if (kind == MPS__KIND_VALUE && has_lock && data_size <= MPS__INLINE_MAX)
    return MPS__INLINE_OFF;
  return MPS__BLOCK_DATA_OFF;
}

/* One handle type behind mps_value, mps_array and mps_shm. */
struct mps__block {
  mps__seg seg;
  struct mps_lock lock;
  void *data;
  struct mps__block_shm *shm;
};

MPS__SEG_HANDLE(struct mps__block);

struct mps_value {
  struct mps__block b;
};
struct mps_array {
  struct mps__block b;
};
struct mps_shm {
  struct mps__block b;
};

static const size_t type_sizes[] = {
    [MPS_CHAR] = sizeof(char),           [MPS_INT8] = sizeof(int8_t),
    [MPS_UINT8] = sizeof(uint8_t),       [MPS_INT16] = sizeof(int16_t),
    [MPS_UINT16] = sizeof(uint16_t),     [MPS_INT] = sizeof(int),
    [MPS_UINT] = sizeof(unsigned),       [MPS_LONG] = sizeof(long),
    [MPS_ULONG] = sizeof(unsigned long), [MPS_INT64] = sizeof(int64_t),
    [MPS_UINT64] = sizeof(uint64_t),     [MPS_FLOAT] = sizeof(float),
    [MPS_DOUBLE] = sizeof(double),
};

size_t mps_type_size(mps_type type)
{
  if ((int)type <= 0 || (size_t)type >= sizeof(type_sizes) / sizeof(type_sizes[0]))
    return 0;
  return type_sizes[type];
}

/* What to make: a kind, a type (0: untyped bytes) and a count of elements. */
struct block_spec {
  enum mps__kind kind;
  mps_type type;
  size_t count;
  size_t elem;
  bool lock;
  const void *init; /* count * elem bytes copied in before publishing, or NULL */
};

static int spec_check(struct block_spec *sp)
{
  if (sp->type != 0) {
    sp->elem = mps_type_size(sp->type);
    if (sp->elem == 0)
      return -EINVAL;
  }
  if (sp->count == 0 || sp->elem == 0)
    return -EINVAL;
  if (sp->count > MPS_SIZE_MAX / sp->elem)
    return sp->kind == MPS__KIND_ARRAY ? -EOVERFLOW : -EINVAL;
  return 0;
}

static void block_attach(struct mps__block *b)
{
  b->shm = (struct mps__block_shm *)b->seg.hdr;
  b->data = (char *)b->seg.hdr + b->shm->data_off;
  if (b->shm->has_lock)
    mps__lock_borrow(&b->lock, &b->shm->mu, &b->shm->hdr);
}

static int block_init(void *p, const void *arg)
{
  struct mps__block_shm *shm = p;
  const struct block_spec *sp = arg;
  size_t data_size = sp->count * sp->elem;
  shm->type = sp->type;
  shm->has_lock = sp->lock;
  shm->count = sp->count;
  shm->data_size = data_size;
  shm->data_off = data_offset(sp->kind, sp->lock, data_size);
  /* Before the segment is published: no opener sees the zeroes first. */
  if (sp->init != NULL)
    memcpy((char *)shm + shm->data_off, sp->init, data_size);
  return sp->lock ? mps__mutex_init(&shm->mu, false) : 0;
}

/* Every recorded number must agree with the others and with the mapping.
 * The header's kind is the one the opener asked for: the segment layer
 * checked it. */
static int block_validate(const void *p, size_t size)
{
  const struct mps__block_shm *shm = p;
  enum mps__kind kind = (enum mps__kind)shm->hdr.kind;
  size_t elem = shm->type == 0 ? 1 : mps_type_size(shm->type);
  if (elem == 0 || shm->has_lock > 1 ||
      shm->data_off != data_offset(kind, shm->has_lock, shm->data_size) || shm->count == 0 ||
      shm->data_size > size - MPS__BLOCK_DATA_OFF || shm->count > shm->data_size / elem ||
      shm->count * elem != shm->data_size)
    return -EPROTO;
  if (kind == MPS__KIND_SHM && (shm->type != 0 || shm->has_lock))
    return -EPROTO;
  return shm->has_lock ? mps__mutex_check(&shm->mu, false) : 0;
}

/* Allocates the handle and makes (sp != NULL: ANON or CREATE) or opens
 * the block. */
static void *block_new(size_t handle_size, enum mps__seg_mode mode, const char *name,
                       struct block_spec *sp, enum mps__kind kind)
{
  mps__seg_spec spec = {kind, MPS__BLOCK_DATA_OFF, NULL, block_validate, NULL, BLOCK_LAYOUT};
  if (sp != NULL) {
    int err = spec_check(sp);
    if (err < 0)
      return mps__fail(err);
    spec = (mps__seg_spec){
        sp->kind, MPS__BLOCK_DATA_OFF + sp->count * sp->elem, block_init, NULL, sp, BLOCK_LAYOUT};
  }
  struct mps__block *b = mps__seg_object(handle_size, mode, name, &spec);
  if (b != NULL)
    block_attach(b);
  return b;
}

static int block_close(struct mps__block *b) { return mps__seg_free_handle(b); }

/* The lock handle is part of the value's handle, which the caller holds
 * as const for the getters; the lock itself is shared state, never const. */
static mps_lock *block_lock(const struct mps__block *b)
{
  return mps__seg_live(b) && b->shm->has_lock ? (mps_lock *)&b->lock : NULL;
}

/* ---- Value -------------------------------------------------------------- */

mps_value *mps_value_new(mps_type type, bool lock)
{
  struct block_spec sp = {MPS__KIND_VALUE, type, 1, 0, lock, NULL};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_value), MPS__SEG_ANON, NULL, &sp, 0);
}

mps_value *mps_value_new_init(mps_type type, const void *init, bool lock)
{
  struct block_spec sp = {MPS__KIND_VALUE, type, 1, 0, lock, init};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_value), MPS__SEG_ANON, NULL, &sp, 0);
}

mps_value *mps_value_create_init(const char *name, mps_type type, const void *init, bool lock)
{
  struct block_spec sp = {MPS__KIND_VALUE, type, 1, 0, lock, init};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_value), MPS__SEG_CREATE, name, &sp, 0);
}

mps_value *mps_value_new_sized(size_t size, bool lock)
{
  struct block_spec sp = {MPS__KIND_VALUE, 0, size, 1, lock, NULL};
  return block_new(sizeof(mps_value), MPS__SEG_ANON, NULL, &sp, 0);
}

mps_value *mps_value_create(const char *name, mps_type type, bool lock)
{
  struct block_spec sp = {MPS__KIND_VALUE, type, 1, 0, lock, NULL};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_value), MPS__SEG_CREATE, name, &sp, 0);
}

mps_value *mps_value_create_sized(const char *name, size_t size, bool lock)
{
  struct block_spec sp = {MPS__KIND_VALUE, 0, size, 1, lock, NULL};
  return block_new(sizeof(mps_value), MPS__SEG_CREATE, name, &sp, 0);
}

mps_value *mps_value_open(const char *name)
{
  return block_new(sizeof(mps_value), MPS__SEG_OPEN, name, NULL, MPS__KIND_VALUE);
}

int mps_value_close(mps_value *v) { return block_close((struct mps__block *)v); }
void *mps_value_ptr(const mps_value *v) { return mps__seg_live(v) ? v->b.data : NULL; }
mps_lock *mps_value_get_lock(const mps_value *v)
{
  return block_lock((const struct mps__block *)v);
}
size_t mps_value_size(const mps_value *v) { return mps__seg_live(v) ? v->b.shm->data_size : 0; }
mps_type mps_value_type(const mps_value *v)
{
  return mps__seg_live(v) ? (mps_type)v->b.shm->type : MPS_TYPE_NONE;
}

/* ---- Array -------------------------------------------------------------- */

mps_array *mps_array_new(mps_type type, size_t n, bool lock)
{
  struct block_spec sp = {MPS__KIND_ARRAY, type, n, 0, lock, NULL};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_array), MPS__SEG_ANON, NULL, &sp, 0);
}

mps_array *mps_array_new_init(mps_type type, size_t n, const void *init, bool lock)
{
  struct block_spec sp = {MPS__KIND_ARRAY, type, n, 0, lock, init};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_array), MPS__SEG_ANON, NULL, &sp, 0);
}

mps_array *mps_array_create_init(const char *name, mps_type type, size_t n, const void *init,
                                 bool lock)
{
  struct block_spec sp = {MPS__KIND_ARRAY, type, n, 0, lock, init};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_array), MPS__SEG_CREATE, name, &sp, 0);
}

mps_array *mps_array_create(const char *name, mps_type type, size_t n, bool lock)
{
  struct block_spec sp = {MPS__KIND_ARRAY, type, n, 0, lock, NULL};
  if (type == MPS_TYPE_NONE)
    return mps__fail(-EINVAL);
  return block_new(sizeof(mps_array), MPS__SEG_CREATE, name, &sp, 0);
}

mps_array *mps_array_open(const char *name)
{
  return block_new(sizeof(mps_array), MPS__SEG_OPEN, name, NULL, MPS__KIND_ARRAY);
}

int mps_array_close(mps_array *a) { return block_close((struct mps__block *)a); }
void *mps_array_data(const mps_array *a) { return mps__seg_live(a) ? a->b.data : NULL; }
size_t mps_array_len(const mps_array *a) { return mps__seg_live(a) ? a->b.shm->count : 0; }
mps_type mps_array_type(const mps_array *a)
{
  return mps__seg_live(a) ? (mps_type)a->b.shm->type : MPS_TYPE_NONE;
}
mps_lock *mps_array_get_lock(const mps_array *a)
{
  return block_lock((const struct mps__block *)a);
}

/* ---- SharedMemory ------------------------------------------------------- */

mps_shm *mps_shm_create(const char *name, size_t size)
{
  struct block_spec sp = {MPS__KIND_SHM, 0, size, 1, false, NULL};
  return block_new(sizeof(mps_shm), MPS__SEG_CREATE, name, &sp, 0);
}

mps_shm *mps_shm_open(const char *name)
{
  return block_new(sizeof(mps_shm), MPS__SEG_OPEN, name, NULL, MPS__KIND_SHM);
}

int mps_shm_close(mps_shm *s) { return block_close((struct mps__block *)s); }
void *mps_shm_data(const mps_shm *s) { return mps__seg_live(s) ? s->b.data : NULL; }
size_t mps_shm_size(const mps_shm *s) { return mps__seg_live(s) ? s->b.shm->data_size : 0; }

/* ---- inspection ----------------------------------------------------------- */

static int block_describe(const void *copy, size_t size, mps_object_info *info)
{
  const struct mps__block_shm *shm = copy;
  if (block_validate(copy, size) < 0)
    return -EPROTO;
  static const char *const type_names[] = {
      [MPS_CHAR] = "char",     [MPS_INT8] = "int8",     [MPS_UINT8] = "uint8",
      [MPS_INT16] = "int16",   [MPS_UINT16] = "uint16", [MPS_INT] = "int",
      [MPS_UINT] = "uint",     [MPS_LONG] = "long",     [MPS_ULONG] = "ulong",
      [MPS_INT64] = "int64",   [MPS_UINT64] = "uint64", [MPS_FLOAT] = "float",
      [MPS_DOUBLE] = "double",
  };
  mps__info_text(info, "type", shm->type == 0 ? "bytes" : type_names[shm->type]);
  mps__info_num(info, "length", (int64_t)shm->count);
  mps__info_num(info, "data_size", (int64_t)shm->data_size);
  mps__info_bool(info, "has_lock", shm->has_lock != 0);
  if (shm->has_lock)
    mps__info_mutex(info, &shm->mu);
  return 0;
}

#define BLOCK_VIEW(k, n)                                                                           \
  {                                                                                                \
    k, n, BLOCK_LAYOUT, sizeof(struct mps__block_shm), MPS__FAMILY_LOCK, block_describe            \
  }
const struct mps__kind_view mps__value_view = BLOCK_VIEW(MPS__KIND_VALUE, "value");
const struct mps__kind_view mps__array_view = BLOCK_VIEW(MPS__KIND_ARRAY, "array");
const struct mps__kind_view mps__shm_view = BLOCK_VIEW(MPS__KIND_SHM, "shm");
