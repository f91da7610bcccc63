/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: secrets remembered in the login keyring (DESIGN.md §5) */
#pragma once

#include <gio/gio.h>

#include "kmx-secret.h"

G_BEGIN_DECLS

#define KMX_REMEMBERED_SCHEMA "org.keymux.Keystore1.Secret"

void kmx_remembered_lookup_async(const char *device_id,
				 GCancellable *cancellable,
				 GAsyncReadyCallback callback,
				 gpointer user_data);
KmxSecret *kmx_remembered_lookup_finish(GAsyncResult *result, GError **error);
void kmx_remembered_store(const char *device_id, const char *label, KmxSecret *secret);
void kmx_remembered_clear(const char *device_id);
gboolean kmx_remembered_clear_sync(const char *device_id, GError **error);

G_END_DECLS
