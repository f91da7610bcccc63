/* keymux: secrets in locked, non-dumpable memory that wipe themselves
 *
 * Every secret keymux handles itself (passwords, PINs, file keys, decrypted
 * key files, plaintexts on their way out) lives in a KmxSecret: its own
 * anonymous mapping, locked into RAM, excluded from core dumps and wiped on
 * fork, zeroed before it is unmapped.  A normal user may lock only 8 MiB, so
 * when mlock() fails the secret still works, unlocked, and we say so once.
 */
#include "config.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kmx-secret.h"

struct _KmxSecret {
	gatomicrefcount ref;
	gsize len;     /* bytes in use */
	gsize map_len; /* size of the mapping */
	gboolean locked;
	gboolean mapped;
	guint8 *data; /* always NUL-terminated at data[len] */
};

static gint kmx_secure_lock_failed = 0;

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
KmxSecret *
kmx_secret_new(gsize len)
{
	KmxSecret *self = g_new0(KmxSecret, 1);
	gsize page = (gsize)sysconf(_SC_PAGESIZE);
	void *p;

	g_return_val_if_fail(len < G_MAXSIZE - page, NULL);
	g_atomic_ref_count_init(&self->ref);
	self->len = len;
	self->map_len = (len + 1 + page - 1) / page * page;
	p = mmap(NULL, self->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		/* out of mappings: behave like g_malloc(), still wiped on free */
		self->data = g_malloc0(self->map_len);
		return self;
	}
	self->mapped = TRUE;
	self->data = p;
	(void)madvise(p, self->map_len, MADV_DONTDUMP);
#ifdef MADV_WIPEONFORK
	(void)madvise(p, self->map_len, MADV_WIPEONFORK);
#endif
	if (mlock(p, self->map_len) == 0) {
		self->locked = TRUE;
	} else if (g_atomic_int_compare_and_exchange(&kmx_secure_lock_failed, 0, 1)) {
		g_warning("cannot lock secret memory (RLIMIT_MEMLOCK reached?): "
			  "secrets stay in unlocked memory, still wiped after use");
	}
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
