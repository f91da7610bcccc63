/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: secrets in locked, non-dumpable memory that wipe themselves
 *
 * Every secret keymux handles itself (passwords, PINs, file keys, decrypted
 * key files, plaintexts on their way out) lives in a KmxSecret: memory
 * locked into RAM, excluded from core dumps and wiped on fork, zeroed when
 * the secret is freed.  Small secrets share 64 KiB locked chunks, cut into
 * slots of a few sizes, so 10,000 decrypted keys do not take 10,000 locked
 * pages: a normal user may lock only 8 MiB.  Larger ones get a mapping of
 * their own.  When mlock() fails the secret still works, unlocked, and we
 * say so once.
 *
 * libcrypto keeps the private keys it loads (RSA factors and exponents, EC
 * scalars, X25519 keys) in its secure heap once kmx_secure_memory_init() has
 * made one: locked, out of core dumps and wiped on free like KmxSecret.
 */
#include "config.h"

#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kmx-secret.h"

struct _KmxSecret {
	gatomicrefcount ref;
	gsize len;     /* bytes in use */
	gsize map_len; /* size of the mapping */
	gboolean locked;
	gboolean mapped;
	gint slab;    /* size class of a slot, or -1 */
	guint8 *data; /* always NUL-terminated at data[len] */
};

#define KMX_SLAB_CHUNK (64 * 1024)
static const gsize kmx_slab_sizes[] = {64, 256, 1024, 4096};
static GMutex kmx_slab_mutex;
static gpointer kmx_slab_free[G_N_ELEMENTS(kmx_slab_sizes)]; /* intrusive lists */
static gboolean kmx_slab_chunk_locked[G_N_ELEMENTS(kmx_slab_sizes)];

static gint kmx_secure_lock_failed = 0;

/* libcrypto's secure heap: an eighth of the 8 MiB an ordinary user may lock
 * (RLIMIT_MEMLOCK), the rest is for KmxSecret's chunks.  A loaded RSA-2048
 * key takes about 1.1 KiB of it, RSA-4096 1.8 KiB, P-384 0.6 KiB, P-256 and
 * X25519 32 bytes; sizes are powers of two, in units of 32 bytes */
#define KMX_SECURE_HEAP_SIZE	 (1024 * 1024)
#define KMX_SECURE_HEAP_MIN_SIZE (64 * 1024)
#define KMX_SECURE_HEAP_UNIT	 32
static gsize kmx_secure_heap_size = 0; /* set before any thread starts */

/* LeakSanitizer does not look inside libcrypto's secure heap, so it reports
 * everything referenced only from there (each thread's DRBG state) as
 * leaked: no secure heap in an AddressSanitizer build */
#if defined(__SANITIZE_ADDRESS__)
#define KMX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KMX_ASAN 1
#endif
#endif
#ifndef KMX_ASAN
#define KMX_ASAN 0
#endif

static void
kmx_secure_lock_failed_once(void)
{
	if (g_atomic_int_compare_and_exchange(&kmx_secure_lock_failed, 0, 1))
		g_warning("cannot lock secret memory (RLIMIT_MEMLOCK reached?): "
			  "secrets stay in unlocked memory, still wiped after use");
}

/**
 * kmx_secure_memory_init:
 *
 * Gives libcrypto a secure heap, so that the private keys it loads from
 * then on, and the temporaries it makes of them in secure memory, are kept
 * there: locked, excluded from core dumps, zeroed when freed.  libcrypto
 * gives the private numbers it decodes (RSA d, p, q, dP, dQ, qInv, an EC
 * scalar) secure, constant-time bignums itself once the heap exists.
 * Sized to share RLIMIT_MEMLOCK with KmxSecret.  Call it once, at start-up,
 * before libcrypto loads a key; a failure is a warning, not an error.
 * Nothing happens in an AddressSanitizer build.
 */
void
kmx_secure_memory_init(void)
{
	struct rlimit limit = {0};
	gsize size = KMX_SECURE_HEAP_SIZE;
	int rc;

	if (KMX_ASAN || CRYPTO_secure_malloc_initialized())
		return;
	if (getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
		while (size > KMX_SECURE_HEAP_MIN_SIZE && size > limit.rlim_cur / 8)
			size /= 2;
	}
	rc = CRYPTO_secure_malloc_init(size, KMX_SECURE_HEAP_UNIT);
	if (rc == 0) {
		g_warning("cannot set up libcrypto's secure heap: the keys libcrypto loads "
			  "stay in ordinary memory, still wiped when freed");
		return;
	}
	/* 2: the heap works but mlock() failed */
	if (rc == 2)
		kmx_secure_lock_failed_once();
	kmx_secure_heap_size = size;
}

/**
 * kmx_secure_heap_can_keep:
 *
 * Whether a key loaded by libcrypto may be kept for later operations: when
 * the secure heap is three quarters full, the rest is left to keys loaded
 * for one operation and freed after it, so that loading a key never fails
 * for want of secure memory.
 *
 * Returns: %TRUE without a secure heap
 */
gboolean
kmx_secure_heap_can_keep(void)
{
	return kmx_secure_heap_size == 0 || CRYPTO_secure_used() < kmx_secure_heap_size / 4 * 3;
}

/**
 * kmx_secure_zero:
 * @data: memory to wipe
 * @len: its length
 *
 * Zeroes memory in a way the compiler may not optimise away.
 */
void
kmx_secure_zero(void *data, gsize len)
{
	if (data != NULL && len > 0)
		explicit_bzero(data, len);
}

/**
 * kmx_secure_memory_is_locked:
 *
 * Returns: %FALSE once an mlock() of a secret has failed (RLIMIT_MEMLOCK)
 */
gboolean
kmx_secure_memory_is_locked(void)
{
	return !g_atomic_int_get(&kmx_secure_lock_failed);
}

/**
 * kmx_secret_new:
 * @len: the number of bytes
 *
 * Returns: (transfer full): a zero-filled secret of @len bytes (plus a NUL)
 */
static gboolean
kmx_secure_map(gsize len, guint8 **out)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gboolean locked;

	if (p == MAP_FAILED) {
		/* out of mappings: behave like g_malloc(), still wiped on free */
		*out = NULL;
		return FALSE;
	}
	(void)madvise(p, len, MADV_DONTDUMP);
#ifdef MADV_WIPEONFORK
	(void)madvise(p, len, MADV_WIPEONFORK);
#endif
	locked = mlock(p, len) == 0;
	if (!locked)
		kmx_secure_lock_failed_once();
	*out = p;
	return locked;
}

/* a slot of size class @cls from the shared chunks */
static guint8 *
kmx_slab_alloc(guint cls, gboolean *locked)
{
	gpointer slot;

	g_mutex_lock(&kmx_slab_mutex);
	slot = kmx_slab_free[cls];
	if (slot == NULL) {
		guint8 *chunk = NULL;
		gsize size = kmx_slab_sizes[cls];

		kmx_slab_chunk_locked[cls] = kmx_secure_map(KMX_SLAB_CHUNK, &chunk);
		if (chunk == NULL) {
			g_mutex_unlock(&kmx_slab_mutex);
			return NULL;
		}
		/* thread the new slots onto the free list, last first */
		for (gsize off = KMX_SLAB_CHUNK; off >= size; off -= size) {
			*(gpointer *)(chunk + off - size) = kmx_slab_free[cls];
			kmx_slab_free[cls] = chunk + off - size;
		}
		slot = kmx_slab_free[cls];
	}
	kmx_slab_free[cls] = *(gpointer *)slot;
	*(gpointer *)slot = NULL;
	*locked = kmx_slab_chunk_locked[cls];
	g_mutex_unlock(&kmx_slab_mutex);
	return slot;
}

static void
kmx_slab_release(guint cls, guint8 *slot)
{
	kmx_secure_zero(slot, kmx_slab_sizes[cls]);
	g_mutex_lock(&kmx_slab_mutex);
	*(gpointer *)slot = kmx_slab_free[cls];
	kmx_slab_free[cls] = slot;
	g_mutex_unlock(&kmx_slab_mutex);
}

/**
 * kmx_secret_new:
 * @len: the number of bytes
 *
 * Returns: (transfer full): a zero-filled secret of @len bytes (plus a NUL)
 */
KmxSecret *
kmx_secret_new(gsize len)
{
	KmxSecret *self = g_new0(KmxSecret, 1);
	gsize page = (gsize)sysconf(_SC_PAGESIZE);

	g_return_val_if_fail(len < G_MAXSIZE - page, NULL);
	g_atomic_ref_count_init(&self->ref);
	self->len = len;
	self->slab = -1;
	for (guint i = 0; i < G_N_ELEMENTS(kmx_slab_sizes); i++) {
		if (len + 1 <= kmx_slab_sizes[i]) {
			self->data = kmx_slab_alloc(i, &self->locked);
			if (self->data != NULL) {
				self->slab = (gint)i;
				self->map_len = kmx_slab_sizes[i];
				return self;
			}
			break;
		}
	}
	self->map_len = (len + 1 + page - 1) / page * page;
	self->locked = kmx_secure_map(self->map_len, &self->data);
	if (self->data == NULL) {
		self->data = g_malloc0(self->map_len);
		return self;
	}
	self->mapped = TRUE;
	return self;
}

/**
 * kmx_secret_new_from_data:
 * @data: bytes to copy
 * @len: their length
 *
 * Returns: (transfer full): a secret holding a copy of @data
 */
KmxSecret *
kmx_secret_new_from_data(const void *data, gsize len)
{
	KmxSecret *self = kmx_secret_new(len);
	if (len > 0)
		memcpy(self->data, data, len);
	return self;
}

/**
 * kmx_secret_new_take:
 * @data: (transfer full): key material in a library's buffer, allocated
 *   with malloc() (as gnutls and GLib allocate)
 * @len: its length
 * @free_func: how that library frees @data, e.g. gnutls_free or g_free
 *
 * Moves key material that a library returned into secret memory: @data is
 * copied, then wiped and freed.  The whole block is wiped, not only @len
 * bytes: a library may have worked in a larger one (gnutls decrypts RSA in
 * a buffer the size of the modulus).
 *
 * Returns: (transfer full): a secret holding what @data held
 */
KmxSecret *
kmx_secret_new_take(void *data, gsize len, GDestroyNotify free_func)
{
	KmxSecret *self = kmx_secret_new_from_data(data, len);

	if (data != NULL)
		kmx_secure_zero(data, MAX(len, malloc_usable_size(data)));
	if (free_func != NULL && data != NULL)
		free_func(data);
	return self;
}

/**
 * kmx_secret_new_from_string:
 * @str: (nullable): a NUL-terminated string
 *
 * Returns: (transfer full): a secret holding a copy of @str ("" for %NULL)
 */
KmxSecret *
kmx_secret_new_from_string(const char *str)
{
	if (str == NULL)
		str = "";
	return kmx_secret_new_from_data(str, strlen(str));
}

KmxSecret *
kmx_secret_ref(KmxSecret *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	g_atomic_ref_count_inc(&self->ref);
	return self;
}

void
kmx_secret_unref(KmxSecret *self)
{
	if (self == NULL)
		return;
	if (!g_atomic_ref_count_dec(&self->ref))
		return;
	if (self->slab >= 0) {
		kmx_slab_release((guint)self->slab, self->data);
		g_free(self);
		return;
	}
	kmx_secure_zero(self->data, self->map_len);
	if (self->locked)
		munlock(self->data, self->map_len);
	if (self->mapped)
		munmap(self->data, self->map_len);
	else
		g_free(self->data);
	g_free(self);
}

guint8 *
kmx_secret_get_data(KmxSecret *self)
{
	return self->data;
}

gsize
kmx_secret_get_length(const KmxSecret *self)
{
	return self->len;
}

/**
 * kmx_secret_get_string:
 * @self: a secret
 *
 * Returns: the secret as a NUL-terminated string; it may hold embedded NULs
 * when it was not made from a string
 */
const char *
kmx_secret_get_string(const KmxSecret *self)
{
	return (const char *)self->data;
}

gboolean
kmx_secret_is_empty(const KmxSecret *self)
{
	return self == NULL || self->len == 0;
}

/**
 * kmx_secret_truncate:
 * @self: a secret
 * @len: the new length, at most the current one
 *
 * Shortens the secret, wiping the bytes cut off.
 */
void
kmx_secret_truncate(KmxSecret *self, gsize len)
{
	g_return_if_fail(len <= self->len);
	kmx_secure_zero(self->data + len, self->len - len);
	self->len = len;
}

/**
 * kmx_secret_equal:
 *
 * Compares two secrets in time independent of where they differ.
 */
gboolean
kmx_secret_equal(const KmxSecret *a, const KmxSecret *b)
{
	guint8 diff = 0;

	if (a->len != b->len)
		return FALSE;
	for (gsize i = 0; i < a->len; i++)
		diff |= a->data[i] ^ b->data[i];
	return diff == 0;
}

/**
 * kmx_secret_to_bytes:
 * @self: a secret
 *
 * Returns: (transfer full): a #GBytes over the secret's memory, holding a
 * reference to it, so the memory is wiped when the last user lets go
 */
GBytes *
kmx_secret_to_bytes(KmxSecret *self)
{
	return g_bytes_new_with_free_func(self->data,
					  self->len,
					  (GDestroyNotify)kmx_secret_unref,
					  kmx_secret_ref(self));
}

/**
 * kmx_secret_read_stream:
 * @in: what holds a secret (a private key file, stdin)
 * @max: the most bytes to take
 *
 * Reads @in to its end straight into secret memory: every buffer it grows
 * through is a #KmxSecret, wiped when left behind.  More than @max bytes
 * is %G_IO_ERROR_MESSAGE_TOO_LARGE, found without reading further.
 *
 * Returns: (transfer full): the content, or %NULL with @error set
 */
KmxSecret *
kmx_secret_read_stream(GInputStream *in, gsize max, GCancellable *cancellable, GError **error)
{
	g_autoptr(KmxSecret) buf = kmx_secret_new(MIN(max + 1, 4096));
	gsize n = 0;

	g_return_val_if_fail(max < G_MAXSIZE / 2, NULL);
	for (;;) {
		gssize got;

		if (n == kmx_secret_get_length(buf)) {
			KmxSecret *bigger;

			if (n > max)
				break;
			bigger = kmx_secret_new(MIN(2 * n, max + 1));
			memcpy(kmx_secret_get_data(bigger), kmx_secret_get_data(buf), n);
			kmx_secret_unref(buf);
			buf = bigger;
		}
		got = g_input_stream_read(in,
					  kmx_secret_get_data(buf) + n,
					  kmx_secret_get_length(buf) - n,
					  cancellable,
					  error);
		if (got < 0)
			return NULL;
		if (got == 0)
			break;
		n += (gsize)got;
	}
	if (n > max) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_MESSAGE_TOO_LARGE,
			    "more than %" G_GSIZE_FORMAT " bytes: too large to be a key",
			    max);
		return NULL;
	}
	kmx_secret_truncate(buf, n);
	return g_steal_pointer(&buf);
}

/**
 * kmx_secret_read_file:
 * @file: a regular file that holds a secret
 * @max: the largest size taken
 *
 * kmx_secret_read_stream() of a regular file of 1 to @max bytes, read no
 * further than the size it had when asked: a device file, a FIFO, an empty
 * or a larger file is refused, not read forever, and one that grew while
 * it was read is an error.
 *
 * Returns: (transfer full): the content, or %NULL with @error set
 */
KmxSecret *
kmx_secret_read_file(GFile *file, gsize max, GCancellable *cancellable, GError **error)
{
	g_autoptr(GFileInfo) info = NULL;
	g_autoptr(GFileInputStream) in = NULL;
	g_autoptr(GError) error_local = NULL;
	KmxSecret *data;
	goffset size;

	info = g_file_query_info(file,
				 G_FILE_ATTRIBUTE_STANDARD_TYPE "," G_FILE_ATTRIBUTE_STANDARD_SIZE,
				 G_FILE_QUERY_INFO_NONE,
				 cancellable,
				 error);
	if (info == NULL)
		return NULL;
	if (g_file_info_get_file_type(info) != G_FILE_TYPE_REGULAR) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_NOT_REGULAR_FILE,
			    "it is not a regular file");
		return NULL;
	}
	size = g_file_info_get_size(info);
	if (size <= 0 || (guint64)size > max) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    size <= 0 ? "the file is empty" : "the file is too large to be a key");
		return NULL;
	}
	in = g_file_read(file, cancellable, error);
	if (in == NULL)
		return NULL;
	data = kmx_secret_read_stream(G_INPUT_STREAM(in), (gsize)size, cancellable, &error_local);
	if (data == NULL &&
	    g_error_matches(error_local, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "the file changed while it was read");
		return NULL;
	}
	if (data == NULL) {
		g_propagate_error(error, g_steal_pointer(&error_local));
		return NULL;
	}
	if (kmx_secret_is_empty(data)) {
		kmx_secret_unref(data);
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "the file changed while it was read");
		return NULL;
	}
	return data;
}
