/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: where the daemon keeps things and what it was configured to do */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define KMX_TYPE_CONTEXT (kmx_context_get_type())
G_DECLARE_FINAL_TYPE(KmxContext, kmx_context, KMX, CONTEXT, GObject)

KmxContext *kmx_context_new(const char *data_dir, const char *config_path, GError **error);
KmxContext *kmx_context_new_default(GError **error);

const char *kmx_context_get_data_dir(KmxContext *self);
const char *kmx_context_get_config_path(KmxContext *self);
char *kmx_context_get_backend_dir(KmxContext *self, const char *backend_name);

char *kmx_context_get_string(KmxContext *self,
			     const char *group,
			     const char *key,
			     const char *fallback);
gint64 kmx_context_get_int(KmxContext *self, const char *group, const char *key, gint64 fallback);
gboolean kmx_context_get_boolean(KmxContext *self,
				 const char *group,
				 const char *key,
				 gboolean fallback);

G_END_DECLS
