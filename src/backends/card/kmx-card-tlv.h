/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the BER-TLV of OpenPGP card data objects, read with bounds */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

gboolean kmx_card_tlv_find(const guint8 *data,
			   gsize len,
			   guint tag,
			   gboolean deep,
			   const guint8 **value,
			   gsize *value_len);
void kmx_card_tlv_append(GByteArray *out, guint tag, const guint8 *value, gsize len);

G_END_DECLS
