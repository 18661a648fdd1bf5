/* Shared values and arrays (multiprocessing.Value/Array/RawValue/RawArray)
 * and raw shared memory blocks (multiprocessing.shared_memory.SharedMemory).
 *
 * A value or array lives in its own shared segment; its memory starts
 * zeroed. With lock=true it carries a robust lock (mps_value_get_lock), which
 * the caller takes around compound updates; with lock=false it is "raw" and
 * get_lock returns NULL. The memory is the caller's to use through the
 * pointer; the library never reads it.
 */
#ifndef MPSHARE_VALUE_H
#define MPSHARE_VALUE_H

#include <mpshare/common.h>
#include <mpshare/lock.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ctypes type codes: MPS_CHAR is 'c', MPS_INT8 'b', MPS_UINT8 'B', MPS_INT16
 * 'h', MPS_UINT16 'H', MPS_INT 'i', MPS_UINT 'I', MPS_LONG 'l', MPS_ULONG
 * 'L', MPS_INT64 'q', MPS_UINT64 'Q', MPS_FLOAT 'f', MPS_DOUBLE 'd'. */
typedef enum mps_type {
  MPS_TYPE_NONE = 0, /* no type: a sized value, shared memory, or a NULL handle */
  MPS_CHAR,
  MPS_INT8,
  MPS_UINT8,
  MPS_INT16,
  MPS_UINT16,
  MPS_INT,
  MPS_UINT,
  MPS_LONG,
  MPS_ULONG,
  MPS_INT64,
  MPS_UINT64,
  MPS_FLOAT,
  MPS_DOUBLE,
} mps_type;

/* Size in bytes of one element of `type`, or 0 if it is not an mps_type. */
MPS_API size_t mps_type_size(mps_type type);

typedef struct mps_value mps_value;
typedef struct mps_array mps_array;
typedef struct mps_shm mps_shm;

/* Creates an anonymous zeroed value of `type`; lock=false makes a RawValue.
 * NULL with errno EINVAL (unknown type) or ENOMEM. */
MPS_API mps_value *mps_value_new(mps_type type, bool lock);

/* Python's Value('i', 5): an anonymous value of `type` whose memory starts
 * as a copy of the mps_type_size(type) bytes at init (NULL: zeroed), e.g.
 * `int five = 5; mps_value_new_init(MPS_INT, &five, true)`. Errors as
 * mps_value_new. The caller keeps init. */
MPS_API mps_value *mps_value_new_init(mps_type type, const void *init, bool lock);

/* Same for a value of `size` bytes of the caller's own (a struct). EINVAL if
 * size is 0 or above MPS_SIZE_MAX. Value memory is aligned to 16 bytes; a
 * locked value of at most 16 bytes shares its lock's cache line (one line
 * moves between CPUs per locked update), anything larger starts on a cache
 * line of its own. */
MPS_API mps_value *mps_value_new_sized(size_t size, bool lock);

/* Named values: create fails with EEXIST if the name exists; open fails with
 * ENOENT, or EPROTO if the name is not an mpshare value of this layout. Both
 * also fail with EINVAL for a bad name or argument. */
MPS_API mps_value *mps_value_create(const char *name, mps_type type, bool lock);
MPS_API mps_value *mps_value_create_sized(const char *name, size_t size, bool lock);
MPS_API mps_value *mps_value_open(const char *name);
/* Named value with initial contents, as mps_value_new_init; an opener never
 * sees the value before its contents are in place. */
MPS_API mps_value *mps_value_create_init(const char *name, mps_type type, const void *init,
                                         bool lock);

/* Releases the handle and this process's mapping; the pointer from
 * mps_value_ptr and the lock from mps_value_get_lock die with it. NULL is a
 * no-op. Returns 0. */
MPS_API int mps_value_close(mps_value *v);

/* The value's memory (never NULL for a valid handle; NULL for NULL). */
MPS_API void *mps_value_ptr(const mps_value *v);
/* Its lock, owned by the value: NULL for a raw value (or NULL v). */
MPS_API mps_lock *mps_value_get_lock(const mps_value *v);
/* Its size in bytes (0 for NULL), and its type (MPS_TYPE_NONE for a sized
 * value or NULL). */
MPS_API size_t mps_value_size(const mps_value *v);
MPS_API mps_type mps_value_type(const mps_value *v);

/* Creates an anonymous zeroed array of n elements of `type`. NULL with errno
 * EINVAL (unknown type, n == 0), EOVERFLOW (n * size above MPS_SIZE_MAX),
 * ENOMEM. */
MPS_API mps_array *mps_array_new(mps_type type, size_t n, bool lock);
MPS_API mps_array *mps_array_create(const char *name, mps_type type, size_t n, bool lock);
/* Python's Array('i', range(10)): the n elements start as a copy of the
 * n * mps_type_size(type) bytes at init (NULL: zeroed). Errors as
 * mps_array_new / mps_array_create; the caller keeps init. */
MPS_API mps_array *mps_array_new_init(mps_type type, size_t n, const void *init, bool lock);
MPS_API mps_array *mps_array_create_init(const char *name, mps_type type, size_t n,
                                         const void *init, bool lock);
MPS_API mps_array *mps_array_open(const char *name);
MPS_API int mps_array_close(mps_array *a);
MPS_API void *mps_array_data(const mps_array *a);
MPS_API size_t mps_array_len(const mps_array *a);
MPS_API mps_type mps_array_type(const mps_array *a);
MPS_API mps_lock *mps_array_get_lock(const mps_array *a);

/* A named block of `size` raw bytes, zeroed, aligned to 64 bytes (for the
 * caller's own layout). create: EEXIST, EINVAL (bad name, size 0 or above
 * MPS_SIZE_MAX), ENOMEM; open: ENOENT, EPROTO. mps_unlink removes the name. */
MPS_API mps_shm *mps_shm_create(const char *name, size_t size);
MPS_API mps_shm *mps_shm_open(const char *name);
MPS_API void *mps_shm_data(const mps_shm *s);
MPS_API size_t mps_shm_size(const mps_shm *s);
MPS_API int mps_shm_close(mps_shm *s);

#ifdef __cplusplus
}
#endif
#endif
