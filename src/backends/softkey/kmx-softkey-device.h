/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a soft-key store, one directory of key files */
#pragma once

#include "kmx-device.h"
#include "kmx-softkey-key.h"

G_BEGIN_DECLS

#define KMX_TYPE_SOFTKEY_DEVICE (kmx_softkey_device_get_type())
G_DECLARE_FINAL_TYPE(KmxSoftkeyDevice, kmx_softkey_device, KMX, SOFTKEY_DEVICE, KmxDevice)

KmxSoftkeyDevice *kmx_softkey_device_new(const char *backend_name,
					 const char *store_name,
					 const char *dir);
GPtrArray *kmx_softkey_device_load(KmxSoftkeyDevice *self, const char *unsafe);
char *kmx_softkey_device_get_key_path(KmxSoftkeyDevice *self, const char *id, const char *suffix);
KmxSecret *kmx_softkey_device_dup_file_key(KmxSoftkeyDevice *self, GError **error);
gboolean kmx_softkey_device_delete_key(KmxSoftkeyDevice *self, KmxSoftkeyKey *key, GError **error);
void kmx_softkey_device_drop_secrets(KmxSoftkeyDevice *self);

G_END_DECLS
