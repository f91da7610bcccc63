/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: who asks: a bus connection, an ssh client */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _KmxCaller KmxCaller;

/* the frontend's way of finding out who @caller is: call kmx_caller_resolved() */
typedef void (*KmxCallerResolve)(KmxCaller *caller, gpointer user_data);
typedef void (*KmxCallerReady)(KmxCaller *caller, gpointer user_data);

KmxCaller *kmx_caller_new(const char *name, KmxCallerResolve resolve, gpointer resolve_data);
KmxCaller *kmx_caller_new_as(const char *name, KmxCaller *other);
KmxCaller *kmx_caller_new_for_peer(const char *name, guint32 uid, guint32 pid);
KmxCaller *kmx_caller_ref(KmxCaller *self);
void kmx_caller_unref(KmxCaller *self);

const char *kmx_caller_get_name(KmxCaller *self);
gboolean kmx_caller_is_resolved(KmxCaller *self);
gboolean kmx_caller_get_uid(KmxCaller *self, guint32 *uid);
guint32 kmx_caller_get_pid(KmxCaller *self);
const char *kmx_caller_get_exe(KmxCaller *self);

void kmx_caller_when_resolved(KmxCaller *self, KmxCallerReady ready, gpointer user_data);
void kmx_caller_resolved(KmxCaller *self, gboolean known, guint32 uid, guint32 pid);

void kmx_caller_track(KmxCaller *self, GCancellable *cancellable);
void kmx_caller_untrack(KmxCaller *self, GCancellable *cancellable);
void kmx_caller_gone(KmxCaller *self);
gboolean kmx_caller_is_gone(KmxCaller *self);

guint kmx_caller_get_requests(KmxCaller *self);
void kmx_caller_add_request(KmxCaller *self);
void kmx_caller_remove_request(KmxCaller *self);
gboolean kmx_caller_note_refused(KmxCaller *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxCaller, kmx_caller_unref)

G_END_DECLS
