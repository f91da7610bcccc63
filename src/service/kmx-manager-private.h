/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: what the manager's parts share among themselves */
#pragma once

#include "kmx-manager.h"

G_BEGIN_DECLS

/* kmx-prompt.c: the prompting policy */
typedef void (*KmxPromptDone)(KmxRequest *req, KmxSecret *secret, GError *error);
void kmx_manager_prompt_unlock(KmxManager *self, KmxRequest *req, KmxPromptDone done);
void kmx_manager_prompt_admin(KmxManager *self, KmxRequest *req, KmxPromptDone done);
void kmx_manager_prompts_device_changed(KmxManager *self, KmxDevice *device);
void kmx_manager_prompts_cancel_all(KmxManager *self);
guint kmx_manager_get_prompt_timeout(KmxManager *self);
GHashTable *kmx_manager_get_prompts(KmxManager *self);

/* kmx-manager.c: the bound on the work in flight */
gboolean kmx_manager_admit_request(KmxManager *self, KmxCaller *caller, GError **error);
void kmx_manager_release_request(KmxManager *self, KmxCaller *caller);
guint kmx_manager_get_requests(KmxManager *self);

/* kmx-audit.c */
void kmx_audit_record(KmxRequest *req, const GError *error);

G_END_DECLS
