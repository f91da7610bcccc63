/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: where a device's blocking work runs */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/**
 * KmxExecutorKind:
 * @KMX_EXECUTOR_SERIAL: one thread of its own, requests in order (cards, the TPM)
 * @KMX_EXECUTOR_POOL: the shared pool, one thread per core (pure CPU work)
 */
typedef enum {
	KMX_EXECUTOR_SERIAL,
	KMX_EXECUTOR_POOL,
} KmxExecutorKind;

typedef struct _KmxExecutor KmxExecutor;

KmxExecutor *kmx_executor_new(KmxExecutorKind kind,
			      guint max_threads,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxExecutor *kmx_executor_get_shared_pool(void);
KmxExecutor *kmx_executor_get_storage_pool(void);
KmxExecutor *kmx_executor_ref(KmxExecutor *self);
void kmx_executor_unref(KmxExecutor *self);
KmxExecutorKind kmx_executor_get_kind(KmxExecutor *self);
gboolean kmx_executor_is_current(KmxExecutor *self);
void kmx_executor_run(KmxExecutor *self, GTask *task, GTaskThreadFunc func);
void kmx_executor_run_func(KmxExecutor *self, GFunc func, gpointer data);

void kmx_core_mark_main_thread(void);
gboolean kmx_core_is_main_thread(void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxExecutor, kmx_executor_unref)

G_END_DECLS
