/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the manager: devices, the request pipeline, prompting, locking,
 * audit — with no D-Bus in it */
#pragma once

#include <gio/gio.h>

#include "kmx-caller.h"
#include "kmx-context.h"
#include "kmx-device.h"
#include "kmx-key.h"
#include "kmx-prompter.h"
#include "kmx-request.h"

G_BEGIN_DECLS

#define KMX_TYPE_MANAGER (kmx_manager_get_type())
G_DECLARE_FINAL_TYPE(KmxManager, kmx_manager, KMX, MANAGER, GObject)

typedef void (*KmxAuthorized)(KmxCaller *caller, const GError *error, gpointer user_data);

KmxManager *kmx_manager_new(KmxContext *context, GError **error);
KmxContext *kmx_manager_get_context(KmxManager *self);
const char *const *kmx_manager_get_backend_names(KmxManager *self);
GPtrArray *kmx_manager_get_devices(KmxManager *self);
KmxDevice *kmx_manager_find_device(KmxManager *self, const char *device_id);
gboolean kmx_manager_register_device(KmxManager *self, KmxDevice *device, GError **error);
gboolean kmx_manager_unregister_device(KmxManager *self, KmxDevice *device, GError **error);
GPtrArray *kmx_manager_find_keys(KmxManager *self, const char *id, GError **error);
KmxKey *kmx_manager_pick_key(KmxManager *self, const char *id, GError **error);

void kmx_manager_authorize(KmxManager *self,
			   KmxCaller *caller,
			   KmxAuthorized callback,
			   gpointer user_data);

void kmx_manager_add_prompter(KmxManager *self, KmxPrompter *prompter);
void kmx_manager_remove_prompter(KmxManager *self, KmxPrompter *prompter);
GPtrArray *kmx_manager_get_prompters(KmxManager *self);
void kmx_manager_set_system_prompter(KmxManager *self, KmxPrompter *prompter);
KmxPrompter *kmx_manager_get_system_prompter(KmxManager *self);

void kmx_manager_trim_later(KmxManager *self);

void kmx_manager_lock_device(KmxManager *self, KmxDevice *device);
void kmx_manager_lock_all(KmxManager *self);
void kmx_manager_lock_all_then(KmxManager *self, GFunc done, gpointer user_data);
void kmx_manager_shutdown(KmxManager *self);

/* kmx-audit.c: what a frontend accepted that is no request */
void kmx_audit_record_event(KmxCaller *caller,
			    const char *operation,
			    const char *subject,
			    const char *detail);

G_END_DECLS
