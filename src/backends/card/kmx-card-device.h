/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: one OpenPGP card in a PC/SC reader */
#pragma once

#include "kmx-device.h"
#include "kmx-key.h"

G_BEGIN_DECLS

/**
 * KmxCardSlot:
 *
 * The three key slots of an OpenPGP card, in the order of its data objects
 * (C1/C2/C3, C5, CD).
 */
typedef enum {
	KMX_CARD_SLOT_SIG,
	KMX_CARD_SLOT_DEC,
	KMX_CARD_SLOT_AUT,
	KMX_CARD_SLOT_COUNT,
} KmxCardSlot;

#define KMX_TYPE_CARD_DEVICE (kmx_card_device_get_type())
G_DECLARE_FINAL_TYPE(KmxCardDevice, kmx_card_device, KMX, CARD_DEVICE, KmxDevice)

KmxCardDevice *kmx_card_device_probe(const char *backend_name,
				     const char *reader,
				     guint timeout_ms,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;
void kmx_card_device_set_gone(KmxCardDevice *self);

const char *kmx_card_slot_to_string(KmxCardSlot slot);
gboolean kmx_card_slot_from_string(const char *name, KmxCardSlot *slot);

/* what the card sends, parsed; hostile bytes (also for the fuzz target) */
gboolean kmx_card_device_parse_app_data(KmxCardDevice *self,
					const guint8 *data,
					gsize len,
					GError **error);
GBytes *kmx_card_device_parse_public(KmxCardDevice *self,
				     KmxCardSlot slot,
				     const guint8 *data,
				     gsize len,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* on the device's executor */
gboolean kmx_card_device_check_key(KmxCardDevice *self,
				   KmxCardSlot slot,
				   const char *key_id,
				   GError **error);
GBytes *kmx_card_device_sign(KmxCardDevice *self,
			     KmxCardSlot slot,
			     GBytes *data,
			     KmxSecret *secret,
			     GCancellable *cancellable,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_card_device_decipher(KmxCardDevice *self,
				 GBytes *data,
				 KmxSecret *secret,
				 GCancellable *cancellable,
				 GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
