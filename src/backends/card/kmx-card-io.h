/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a card's PC/SC connection, with a deadline on every exchange */
#pragma once

#include <glib.h>
#include <winscard.h>

G_BEGIN_DECLS

typedef struct _KmxCardIo KmxCardIo;

KmxCardIo *kmx_card_io_new(SCARDCONTEXT ctx, SCARDHANDLE handle);
gboolean kmx_card_io_free(KmxCardIo *self);
gboolean kmx_card_io_is_stuck(KmxCardIo *self, gboolean *recovered);
LONG kmx_card_io_transmit(KmxCardIo *self,
			  const SCARD_IO_REQUEST *pci,
			  const guint8 *apdu,
			  gsize apdu_len,
			  guint8 *out,
			  gsize *out_len,
			  guint timeout_ms);

G_END_DECLS
