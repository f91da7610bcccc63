/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: secrets in locked, non-dumpable memory that wipe themselves */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _KmxSecret KmxSecret;

KmxSecret *kmx_secret_new(gsize len) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_secret_new_from_data(const void *data, gsize len) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_secret_new_from_string(const char *str) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_secret_new_take(void *data,
			       gsize len,
			       GDestroyNotify free_func) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_secret_ref(KmxSecret *self);
void kmx_secret_unref(KmxSecret *self);

guint8 *kmx_secret_get_data(KmxSecret *self);
gsize kmx_secret_get_length(const KmxSecret *self);
const char *kmx_secret_get_string(const KmxSecret *self);
gboolean kmx_secret_is_empty(const KmxSecret *self);
void kmx_secret_truncate(KmxSecret *self, gsize len);
gboolean kmx_secret_equal(const KmxSecret *a, const KmxSecret *b);
GBytes *kmx_secret_to_bytes(KmxSecret *self) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_secret_read_stream(GInputStream *in,
				  gsize max,
				  GCancellable *cancellable,
				  GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxSecret *kmx_secret_read_file(GFile *file, gsize max, GCancellable *cancellable, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;

void kmx_secure_zero(void *data, gsize len);
gboolean kmx_secure_memory_is_locked(void);
void kmx_secure_memory_init(void);
gboolean kmx_secure_heap_can_keep(void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSecret, kmx_secret_unref)

G_END_DECLS
