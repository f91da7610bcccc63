/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the BER-TLV of OpenPGP card data objects, read with bounds
 *
 * Everything a card returns is hostile: every length is checked against
 * what is left before anything is read, tags are at most two bytes (all
 * the OpenPGP card uses), lengths at most two, and a search descends into
 * constructed objects no deeper than a real card nests them.
 */
#include "config.h"

#include "kmx-card-tlv.h"

#define KMX_CARD_TLV_MAX_DEPTH 4

/* one TLV at @data[*pos]: its tag, value and whether it is constructed */
static gboolean
kmx_card_tlv_next(const guint8 *data,
		  gsize len,
		  gsize *pos,
		  guint *tag,
		  gboolean *constructed,
		  const guint8 **value,
		  gsize *value_len)
{
	gsize i = *pos;
	gsize n;

	if (i >= len)
		return FALSE;
	*constructed = (data[i] & 0x20) != 0;
	*tag = data[i++];
	if ((*tag & 0x1F) == 0x1F) {
		/* a two-byte tag; a longer one is nothing a card sends */
		if (i >= len || (data[i] & 0x80) != 0)
			return FALSE;
		*tag = (*tag << 8) | data[i++];
	}
	if (i >= len)
		return FALSE;
	n = data[i++];
	if (n == 0x81) {
		if (len - i < 1)
			return FALSE;
		n = data[i++];
	} else if (n == 0x82) {
		if (len - i < 2)
			return FALSE;
		n = ((gsize)data[i] << 8) | data[i + 1];
		i += 2;
	} else if (n > 0x7F) {
		return FALSE;
	}
	if (n > len - i)
		return FALSE;
	*value = data + i;
	*value_len = n;
	*pos = i + n;
	return TRUE;
}

static gboolean
kmx_card_tlv_find_depth(const guint8 *data,
			gsize len,
			guint tag,
			guint depth,
			const guint8 **value,
			gsize *value_len)
{
	gsize pos = 0;

	while (pos < len) {
		const guint8 *v = NULL;
		gboolean constructed = FALSE;
		guint t = 0;
		gsize n = 0;

		if (!kmx_card_tlv_next(data, len, &pos, &t, &constructed, &v, &n))
			return FALSE;
		if (t == tag) {
			*value = v;
			*value_len = n;
			return TRUE;
		}
		if (constructed && depth > 0 &&
		    kmx_card_tlv_find_depth(v, n, tag, depth - 1, value, value_len))
			return TRUE;
	}
	return FALSE;
}

/**
 * kmx_card_tlv_find:
 * @data: hostile bytes from a card
 * @tag: a one- or two-byte tag (0x4F, 0x7F49)
 * @deep: look inside constructed objects too
 * @value: (out): points into @data
 * @value_len: (out): within @data
 *
 * Returns: %TRUE if @tag is there and everything before it is well-formed
 */
gboolean
kmx_card_tlv_find(const guint8 *data,
		  gsize len,
		  guint tag,
		  gboolean deep,
		  const guint8 **value,
		  gsize *value_len)
{
	g_return_val_if_fail(data != NULL || len == 0, FALSE);
	g_return_val_if_fail(value != NULL && value_len != NULL, FALSE);
	return kmx_card_tlv_find_depth(data,
				       len,
				       tag,
				       deep ? KMX_CARD_TLV_MAX_DEPTH : 0,
				       value,
				       value_len);
}

/**
 * kmx_card_tlv_append:
 * Appends a TLV (a one- or two-byte tag, a value under 64 KiB).
 */
void
kmx_card_tlv_append(GByteArray *out, guint tag, const guint8 *value, gsize len)
{
	guint8 head[5];
	guint n = 0;

	g_return_if_fail(len <= 0xFFFF);
	if (tag > 0xFF)
		head[n++] = (guint8)(tag >> 8);
	head[n++] = (guint8)tag;
	if (len < 0x80) {
		head[n++] = (guint8)len;
	} else if (len <= 0xFF) {
		head[n++] = 0x81;
		head[n++] = (guint8)len;
	} else {
		head[n++] = 0x82;
		head[n++] = (guint8)(len >> 8);
		head[n++] = (guint8)len;
	}
	g_byte_array_append(out, head, n);
	g_byte_array_append(out, value, (guint)len);
}
