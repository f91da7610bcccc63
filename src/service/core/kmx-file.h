/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: atomic, durable file writes */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

gboolean kmx_file_write_atomic(const char *path,
			       const void *data,
			       gsize len,
			       int mode,
			       GError **error);
gboolean kmx_file_remove_durable(const char *path, GError **error);
gboolean kmx_file_fsync_dir(const char *dir, GError **error);

G_END_DECLS
