/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a slot of an OpenPGP card */
#pragma once

#include "kmx-card-device.h"

G_BEGIN_DECLS

#define KMX_TYPE_CARD_KEY (kmx_card_key_get_type())
G_DECLARE_FINAL_TYPE(KmxCardKey, kmx_card_key, KMX, CARD_KEY, KmxKey)

KmxKey *kmx_card_key_new(KmxCardDevice *device, KmxCardSlot slot, KmxKeyType type, GBytes *spki)
    G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
