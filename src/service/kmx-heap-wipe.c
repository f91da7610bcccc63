/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxd: heap memory is wiped when it is freed
 *
 * Secrets keymux handles itself live in KmxSecret and libcrypto's secure
 * heap, but the libraries it calls copy them into the ordinary heap and free
 * those copies without wiping them: gnutls (no allocator hook since 3.3),
 * nettle and GMP temporaries of its private-key operations, libtasn1
 * parsing a key, and GDBus, which serialises a reply (a plaintext, a shared
 * secret) into a buffer it frees after the write.  glibc leaves freed chunks
 * as they were (malloc_trim() only returns whole pages), so a root attacker
 * reading the daemon's memory after Lock would find them.
 *
 * keymuxd therefore defines free(), realloc() and reallocarray() itself:
 * the executable comes first in symbol lookup, so every library's calls land
 * here.  free() zeroes the whole usable size of a chunk before glibc takes
 * it back; realloc() never lets glibc move a block (which would free the old
 * one unwiped) but moves it here and frees the old one through free().
 * malloc() and friends stay glibc's.  Only keymuxd links this file, and not
 * with AddressSanitizer, whose allocator it would bypass.  Memory glibc
 * frees inside itself (stdio buffers, getaddrinfo) is not seen: it never
 * holds a secret.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* glibc's own entry points, behind the public names defined here */
void __libc_free(void *ptr);
void *__libc_realloc(void *ptr, size_t size);

void
free(void *ptr)
{
	if (ptr == NULL)
		return;
	explicit_bzero(ptr, malloc_usable_size(ptr));
	__libc_free(ptr);
}

void *
realloc(void *ptr, size_t size)
{
	size_t have;
	void *moved;

	if (ptr == NULL)
		return malloc(size);
	if (size == 0) {
		/* what glibc does: free, and no new block */
		free(ptr);
		return NULL;
	}
	have = malloc_usable_size(ptr);
	if (size <= have) {
		/* glibc shrinks in place: wipe the part it takes back */
		explicit_bzero((char *)ptr + size, have - size);
		return __libc_realloc(ptr, size);
	}
	moved = malloc(size);
	if (moved == NULL)
		return NULL;
	memcpy(moved, ptr, have);
	free(ptr);
	return moved;
}

void *
reallocarray(void *ptr, size_t nmemb, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(ptr, total);
}
