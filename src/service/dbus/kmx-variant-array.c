/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a large GVariant array written as one serialised buffer
 *
 * GVariantBuilder keeps every element as a GVariant of its own until the
 * array is serialised: for GetManagedObjects of 10,000 keys that is 10,000
 * entries of ~650 bytes with their GVariant and GBytes headers and malloc's
 * overhead (~8 MB), alive together with GDBus's wire copy of the reply.
 * This writer serialises each element into one growing buffer as it comes
 * (GLib's own g_variant_store(), at the element type's alignment) and drops
 * it; it records where each element ends and, at the end, appends those
 * ends as the array's framing offsets, as the GVariant serialisation format
 * lays out an array of variable-size elements:
 *
 *   element 0, zero padding to the alignment, element 1, ..., element n-1,
 *   then the n end offsets, little-endian, each 1, 2, 4 or 8 bytes: the
 *   smallest size for which the whole (elements + n offsets) still fits.
 *
 * The result is trusted: every element is GLib's own serialisation of a
 * value made by GLib's constructors, and the framing is the normal form;
 * kmx-variant-array-test compares it byte for byte with what
 * GVariantBuilder makes, for offsets of 0 to 4 bytes (8 would need 4 GiB)
 * and element types of each alignment.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kmx-dbus-private.h"

struct _KmxVariantArray {
	GVariantType *type; /* the array's */
	gsize align_mask;   /* the element type's alignment, minus one */
	guint8 *data;	    /* pages of our own (mmap), or NULL */
	gsize len;
	gsize allocated;
	GArray *ends; /* gsize: where each element ends */
};

/* the buffer is a mapping of its own, grown with mremap(): the kernel moves
 * its pages instead of copying them, and pages not yet written take no
 * memory.  Grown on the heap by doubling, each step would hold the old and
 * the new copy at once (keymuxd's realloc() moves and wipes, never grows in
 * place), and the last step's unused half would be touched by the wipe:
 * a reply of 6.5 MB cost 8 MB while it was built.  What the buffer holds
 * is a reply's public data (paths, labels, public keys), never a secret */
static gsize
kmx_page_round(gsize size)
{
	gsize page = (gsize)sysconf(_SC_PAGESIZE);

	return (size + page - 1) / page * page;
}

static void
kmx_variant_array_reserve(KmxVariantArray *self, gsize need)
{
	gsize size;
	void *p;

	/* a page at least: an element may be empty (an empty ay) */
	if (self->data != NULL && need <= self->allocated)
		return;
	size = kmx_page_round(MAX(MAX(need, self->allocated * 2), 1));
	if (self->data == NULL)
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = mremap(self->data, self->allocated, size, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		/* out of memory: what g_malloc() does then */
		g_critical("cannot map %" G_GSIZE_FORMAT " bytes: %s", size, g_strerror(errno));
		abort();
	}
	self->data = p;
	self->allocated = size;
}

typedef struct {
	void *data;
	gsize size;
} KmxMapping;

static void
kmx_mapping_free(gpointer data)
{
	KmxMapping *m = data;

	munmap(m->data, m->size);
	g_free(m);
}

/* the alignment the serialisation format gives a type: a basic type its
 * size (1 for strings), a variant 8, an array or maybe its element's, a
 * tuple or dict entry its largest member's.  *fixed: whether all values
 * of the type have one size */
static gsize
kmx_variant_type_alignment(const GVariantType *type, gboolean *fixed)
{
	const char *s = g_variant_type_peek_string(type);
	gsize align = 1;
	gboolean all_fixed = TRUE;

	switch (s[0]) {
	case 'y':
	case 'b':
		*fixed = TRUE;
		return 1;
	case 'n':
	case 'q':
		*fixed = TRUE;
		return 2;
	case 'i':
	case 'u':
	case 'h':
		*fixed = TRUE;
		return 4;
	case 'x':
	case 't':
	case 'd':
		*fixed = TRUE;
		return 8;
	case 's':
	case 'o':
	case 'g':
		*fixed = FALSE;
		return 1;
	case 'v':
		*fixed = FALSE;
		return 8;
	case 'a':
	case 'm': {
		gboolean element_fixed;

		*fixed = FALSE;
		return kmx_variant_type_alignment(g_variant_type_element(type), &element_fixed);
	}
	default:
		break;
	}
	/* a tuple or a dict entry */
	for (const GVariantType *m = g_variant_type_first(type); m != NULL;
	     m = g_variant_type_next(m)) {
		gboolean member_fixed;

		align = MAX(align, kmx_variant_type_alignment(m, &member_fixed));
		all_fixed = all_fixed && member_fixed;
	}
	*fixed = all_fixed;
	return align;
}

/**
 * kmx_variant_array_new:
 * @element_type: a definite type whose values have no fixed size (a string,
 *   a container with one, a variant)
 *
 * Returns: (transfer full): a writer of an array of @element_type
 */
KmxVariantArray *
kmx_variant_array_new(const GVariantType *element_type)
{
	KmxVariantArray *self;
	gboolean fixed;
	gsize align;

	g_return_val_if_fail(g_variant_type_is_definite(element_type), NULL);
	align = kmx_variant_type_alignment(element_type, &fixed);
	/* an array of fixed-size elements has no framing offsets: not this */
	g_return_val_if_fail(!fixed, NULL);
	self = g_new0(KmxVariantArray, 1);
	self->type = g_variant_type_new_array(element_type);
	self->align_mask = align - 1;
	self->ends = g_array_new(FALSE, FALSE, sizeof(gsize));
	return self;
}

/**
 * kmx_variant_array_free:
 */
void
kmx_variant_array_free(KmxVariantArray *self)
{
	if (self == NULL)
		return;
	g_variant_type_free(self->type);
	if (self->data != NULL)
		munmap(self->data, self->allocated);
	g_clear_pointer(&self->ends, g_array_unref);
	g_free(self);
}

/**
 * kmx_variant_array_append:
 * @element: (transfer none): a value of the element type, floating or not;
 *   a floating one is consumed
 *
 * Serialises @element at the end of the array.
 */
void
kmx_variant_array_append(KmxVariantArray *self, GVariant *element)
{
	g_autoptr(GVariant) owned = g_variant_ref_sink(element);
	gsize old_len = self->len;
	gsize start;
	gsize size = g_variant_get_size(owned);
	gsize end;

	g_return_if_fail(g_variant_is_of_type(owned, g_variant_type_element(self->type)));
	/* zero padding up to the element's alignment, from the array's start */
	start = (old_len + self->align_mask) & ~self->align_mask;
	if (!g_size_checked_add(&end, start, size) || end > G_MAXSIZE / 4) {
		/* far beyond a D-Bus message's limit (128 MiB) */
		g_critical("an array of more than %" G_GSIZE_FORMAT " bytes", G_MAXSIZE / 4);
		return;
	}
	kmx_variant_array_reserve(self, end);
	memset(self->data + old_len, 0, start - old_len);
	g_variant_store(owned, self->data + start);
	self->len = end;
	g_array_append_val(self->ends, end);
}

/**
 * kmx_variant_array_end:
 * @in_tuple: a tuple of the one array instead of the array (a method's
 *   reply): the same bytes, as a tuple's last member has no framing offset
 *
 * Appends the framing offsets and frees @self.
 *
 * Returns: (transfer full): the array, or the tuple, not floating
 */
GVariant *
kmx_variant_array_end(KmxVariantArray *self, gboolean in_tuple)
{
	g_autoptr(GVariantType) type = NULL;
	g_autoptr(GBytes) bytes = NULL;
	gsize body = self->len;
	gsize n = self->ends->len;
	guint offset_size = 8;
	gsize len;

	/* the smallest offset size that can address the whole array */
	if (n == 0)
		offset_size = 0;
	else if (body + n <= G_MAXUINT8)
		offset_size = 1;
	else if (body + 2 * n <= G_MAXUINT16)
		offset_size = 2;
	else if (body + 4 * n <= G_MAXUINT32)
		offset_size = 4;
	len = body + offset_size * n; /* body and n are bounded in _append() */
	kmx_variant_array_reserve(self, len);
	for (gsize i = 0; i < n; i++) {
		guint64 le = GUINT64_TO_LE((guint64)g_array_index(self->ends, gsize, i));

		/* the low bytes of a little-endian number come first */
		memcpy(self->data + body + i * offset_size, &le, offset_size);
	}
	if (len == 0) {
		bytes = g_bytes_new(NULL, 0);
	} else {
		KmxMapping *m = g_new(KmxMapping, 1);

		/* the pages past the end go back now (never written: nothing
		 * to wipe); the reply lives until GDBus has written it */
		m->size = kmx_page_round(len);
		if (m->size < self->allocated &&
		    munmap(self->data + m->size, self->allocated - m->size) == 0)
			self->allocated = m->size;
		m->size = self->allocated;
		m->data = g_steal_pointer(&self->data);
		bytes = g_bytes_new_with_free_func(m->data, len, kmx_mapping_free, m);
	}
	type = in_tuple ? g_variant_type_new_tuple((const GVariantType *const *)&self->type, 1)
			: g_variant_type_copy(self->type);
	kmx_variant_array_free(self);
	return g_variant_ref_sink(g_variant_new_from_bytes(type, bytes, TRUE));
}
