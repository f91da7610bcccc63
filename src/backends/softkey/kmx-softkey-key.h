/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a soft-key store */
#pragma once

#include "kmx-key.h"
#include "kmx-softkey-store.h"

G_BEGIN_DECLS

#define KMX_TYPE_SOFTKEY_KEY (kmx_softkey_key_get_type())
G_DECLARE_FINAL_TYPE(KmxSoftkeyKey, kmx_softkey_key, KMX, SOFTKEY_KEY, KmxKey)

KmxSoftkeyKey *kmx_softkey_key_new(KmxDevice *device,
				   const char *id,
				   const KmxSoftkeyKeyInfo *info);
KmxSoftkeyKey *kmx_softkey_key_new_take(KmxDevice *device, const char *id, KmxSoftkeyKeyInfo *info);
char *kmx_softkey_key_get_path(KmxSoftkeyKey *self, const char *suffix, GError **error);
void kmx_softkey_key_drop_secrets(KmxSoftkeyKey *self);

G_END_DECLS
