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
 * A block glibc got from mmap() of its own (from 256 KiB up, main.c) is
 * neither wiped nor moved here: freeing it unmaps it and realloc() moves
 * its pages with mremap(), so no copy of it is left in the process, and the
 * kernel zeroes the pages before anyone maps them again.  Wiping and
 * copying it cost a large reply as much as writing it (GDBus grows the
 * buffer of a 1 MB ListKeys reply by doubling, then frees it).
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

/* glibc's chunk header, the size word right before the block, has
 * IS_MMAPPED (2) set for a block mapped on its own; a block of an arena
 * never has it.  Only large blocks are asked: a small one is wiped
 * whatever its header says */
#define KMX_CHUNK_IS_MMAPPED 2
#define KMX_MAPPED_MIN	     (128 * 1024)

static int
kmx_block_is_mapped(void *ptr, size_t usable)
{
	size_t size;

	if (usable < KMX_MAPPED_MIN)
		return 0;
	memcpy(&size, (const char *)ptr - sizeof(size), sizeof(size));
	return (size & KMX_CHUNK_IS_MMAPPED) != 0;
}

void
free(void *ptr)
{
	size_t usable;

	if (ptr == NULL)
		return;
	usable = malloc_usable_size(ptr);
	if (!kmx_block_is_mapped(ptr, usable))
		explicit_bzero(ptr, usable);
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
	/* mremap(), or a copy and the old block unmapped */
	if (kmx_block_is_mapped(ptr, have))
		return __libc_realloc(ptr, size);
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
