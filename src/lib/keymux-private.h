/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libkeymux: what its parts share among themselves */
#pragma once

#include "keymux.h"

G_BEGIN_DECLS

#define KEYMUX_DBUS_NAME	       "org.keymux.Keystore1"
#define KEYMUX_DBUS_PATH	       "/org/keymux/Keystore1"
#define KEYMUX_DBUS_MANAGER_INTERFACE  "org.keymux.Keystore1.Manager"
#define KEYMUX_DBUS_DEVICE_INTERFACE   "org.keymux.Keystore1.Device"
#define KEYMUX_DBUS_KEY_INTERFACE      "org.keymux.Keystore1.Key"
#define KEYMUX_DBUS_PROMPTER_INTERFACE "org.keymux.Keystore1.Prompter"

/* keymux-client.c */
void _keymux_call(GDBusProxy *proxy,
		  const char *method,
		  GVariant *args,
		  const char *reply_type,
		  gpointer source,
		  gpointer tag,
		  GCancellable *cancellable,
		  GAsyncReadyCallback callback,
		  gpointer user_data);
GVariant *_keymux_call_finish(gpointer source, GAsyncResult *result, gpointer tag, GError **error);
GVariant *_keymux_call_sync(GDBusProxy *proxy,
			    const char *method,
			    GVariant *args,
			    const char *reply_type,
			    GCancellable *cancellable,
			    GError **error);
gboolean _keymux_void_finish(gpointer source, GAsyncResult *result, gpointer tag, GError **error);
gboolean _keymux_void_sync(GDBusProxy *proxy,
			   const char *method,
			   GVariant *args,
			   GCancellable *cancellable,
			   GError **error);
GBytes *_keymux_bytes_of(GVariant *reply);
GVariant *_keymux_options(KeymuxCallFlags flags);
KeymuxKey *_keymux_client_key(KeymuxClient *client, const char *path);
GList *_keymux_client_keys(KeymuxClient *client, GVariant *paths);
GDBusProxy *_keymux_client_get_manager(KeymuxClient *client);
const char *_keymux_client_get_name(KeymuxClient *client);

/* keymux-objects.c */
void _keymux_object_set_client(GDBusProxy *proxy, KeymuxClient *client);
KeymuxClient *_keymux_object_dup_client(GDBusProxy *proxy);
GDBusInterfaceInfo *_keymux_interface_info(const char *name);

G_END_DECLS
