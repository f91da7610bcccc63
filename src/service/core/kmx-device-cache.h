/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the registration cache of devices that come and go */
#pragma once

#include <gio/gio.h>

#include "kmx-device.h"

G_BEGIN_DECLS

gboolean kmx_device_cache_save(const char *dir, KmxDevice *device, GError **error);
gboolean kmx_device_cache_remove(const char *dir, const char *device_id, GError **error);
KmxDevice *kmx_device_cache_parse(const char *backend_name,
				  const char *data,
				  gsize len,
				  GError **error);
GPtrArray *kmx_device_cache_load(const char *dir, const char *backend_name);

G_END_DECLS
