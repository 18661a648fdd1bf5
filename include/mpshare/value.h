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

/* The size of one element of `type`.
 * Returns: the size in bytes, or 0 if type is not an mps_type (MPS_TYPE_NONE
 * included).
 * Errors: none. */
MPS_API size_t mps_type_size(mps_type type);

typedef struct mps_value mps_value;
typedef struct mps_array mps_array;
typedef struct mps_shm mps_shm;

/* ---- Value and RawValue -------------------------------------------------
 *
 * Value memory is aligned to 16 bytes; a locked value of at most 16 bytes
 * shares its lock's cache line (one line moves between CPUs per locked
 * update), anything larger starts on a cache line of its own. */

/* Creates an anonymous zeroed value of `type`, shared with the children
 * forked after it; lock=false makes a RawValue.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (unknown type or MPS_TYPE_NONE), ENOMEM.
 * Owns: the caller owns the handle (mps_value_close). */
MPS_API mps_value *mps_value_new(mps_type type, bool lock);

/* Python's Value('i', 5): as mps_value_new, with the memory starting as a
 * copy of the mps_type_size(type) bytes at init (NULL: zeroed), e.g.
 * `int five = 5; mps_value_new_init(MPS_INT, &five, true)`.
 * Returns, Errors: as mps_value_new.
 * Owns: the caller owns the handle; init stays the caller's. */
MPS_API mps_value *mps_value_new_init(mps_type type, const void *init, bool lock);

/* As mps_value_new, for `size` bytes of the caller's own layout (a struct).
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (size 0 or above MPS_SIZE_MAX), ENOMEM.
 * Owns: the caller owns the handle (mps_value_close). */
MPS_API mps_value *mps_value_new_sized(size_t size, bool lock);

/* Named values (mode 0600), as mps_value_new, _new_init and _new_sized; an
 * opener never sees a value before its initial contents are in place.
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name, type or size), EEXIST (the name
 * exists), EACCES, ENOMEM.
 * Owns: the caller owns the handle (mps_value_close). */
MPS_API mps_value *mps_value_create(const char *name, mps_type type, bool lock);
MPS_API mps_value *mps_value_create_init(const char *name, mps_type type, const void *init,
                                         bool lock);
MPS_API mps_value *mps_value_create_sized(const char *name, size_t size, bool lock);

/* Opens the named value `name`.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (bad name), ENOENT, EACCES, EAGAIN (a
 * process is still creating it: retry), EPROTO (not an mpshare value of
 * this layout, inconsistent sizes, or a damaged lock), ENOMEM.
 * Owns: the caller owns the handle (mps_value_close). */
MPS_API mps_value *mps_value_open(const char *name);

/* Releases the handle and this process's mapping.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: v is freed; the pointer from mps_value_ptr and the lock from
 * mps_value_get_lock die with it. */
MPS_API int mps_value_close(mps_value *v);

/* The value's memory, its lock, its size and its type.
 * Returns: the memory (NULL for NULL); the lock (NULL for a raw value or
 * NULL); the size in bytes (0 for NULL); the type (MPS_TYPE_NONE for a
 * sized value or NULL).
 * Errors: none (a NULL handle is the answers above; errno untouched).
 * Owns: the memory and the lock belong to the value: they live until
 * mps_value_close. */
MPS_API void *mps_value_ptr(const mps_value *v);
MPS_API mps_lock *mps_value_get_lock(const mps_value *v);
MPS_API size_t mps_value_size(const mps_value *v);
MPS_API mps_type mps_value_type(const mps_value *v);

/* ---- Array and RawArray ------------------------------------------------- */

/* Creates an anonymous zeroed array of n elements of `type`, shared with the
 * children forked after it; lock=false makes a RawArray. _init: Python's
 * Array('i', range(10)), the n elements start as a copy of the
 * n * mps_type_size(type) bytes at init (NULL: zeroed).
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (unknown type, n == 0), EOVERFLOW
 * (n * size above MPS_SIZE_MAX), ENOMEM.
 * Owns: the caller owns the handle (mps_array_close); init stays the
 * caller's. */
MPS_API mps_array *mps_array_new(mps_type type, size_t n, bool lock);
MPS_API mps_array *mps_array_new_init(mps_type type, size_t n, const void *init, bool lock);

/* Named arrays (mode 0600), as mps_array_new and _new_init; an opener never
 * sees an array before its initial contents are in place.
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: as mps_array_new, and EINVAL (bad name), EEXIST, EACCES.
 * Owns: the caller owns the handle (mps_array_close). */
MPS_API mps_array *mps_array_create(const char *name, mps_type type, size_t n, bool lock);
MPS_API mps_array *mps_array_create_init(const char *name, mps_type type, size_t n,
                                         const void *init, bool lock);

/* Opens the named array `name`.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (bad name), ENOENT, EACCES, EAGAIN (a
 * process is still creating it: retry), EPROTO (as for mps_value_open),
 * ENOMEM.
 * Owns: the caller owns the handle (mps_array_close). */
MPS_API mps_array *mps_array_open(const char *name);

/* Releases the handle and this process's mapping.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: a is freed; its data pointer and lock die with it. */
MPS_API int mps_array_close(mps_array *a);

/* The elements, their count, their type and the array's lock.
 * Returns: NULL, 0, MPS_TYPE_NONE and NULL for NULL; the lock is NULL for a
 * raw array.
 * Errors: none (errno untouched).
 * Owns: the data and the lock belong to the array. */
MPS_API void *mps_array_data(const mps_array *a);
MPS_API size_t mps_array_len(const mps_array *a);
MPS_API mps_type mps_array_type(const mps_array *a);
MPS_API mps_lock *mps_array_get_lock(const mps_array *a);

/* ---- SharedMemory --------------------------------------------------------- */

/* Creates the named block `name` of `size` raw bytes, zeroed and aligned to
 * 64 bytes, for the caller's own layout.
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name, size 0 or above MPS_SIZE_MAX),
 * EEXIST, EACCES, ENOMEM.
 * Owns: the caller owns the handle (mps_shm_close). */
MPS_API mps_shm *mps_shm_create(const char *name, size_t size);

/* Opens the named block `name`.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (bad name), ENOENT, EACCES, EAGAIN (a
 * process is still creating it: retry), EPROTO (not an mpshare shared
 * memory block of this layout, or inconsistent sizes), ENOMEM.
 * Owns: the caller owns the handle (mps_shm_close). */
MPS_API mps_shm *mps_shm_open(const char *name);

/* The block's bytes and its size.
 * Returns: the bytes and the size; NULL and 0 for NULL.
 * Errors: none (errno untouched).
 * Owns: the bytes belong to the block: they live until mps_shm_close. */
MPS_API void *mps_shm_data(const mps_shm *s);
MPS_API size_t mps_shm_size(const mps_shm *s);

/* Releases the handle and this process's mapping.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: s is freed. */
MPS_API int mps_shm_close(mps_shm *s);

#ifdef __cplusplus
}
#endif
#endif
