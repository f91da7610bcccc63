/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: what the D-Bus frontend's parts share among themselves */
#pragma once

#include "kmx-dbus-service.h"
#include "kmx-generated.h"
#include "kmx-manager.h"

G_BEGIN_DECLS

/* kmx-dbus-service.c */
KmxManager *kmx_dbus_service_get_manager(KmxDBusService *self);
KmxCaller *kmx_dbus_service_get_caller(KmxDBusService *self,
				       GDBusConnection *connection,
				       const char *sender);
typedef void (*KmxDBusAuthorized)(KmxDBusService *self,
				  GDBusMethodInvocation *invocation,
				  gpointer user_data);
void kmx_dbus_service_authorize(KmxDBusService *self,
				GDBusMethodInvocation *invocation,
				KmxDBusAuthorized callback,
				gpointer user_data,
				GDestroyNotify destroy);
char *kmx_dbus_device_path(KmxDevice *device);
char *kmx_dbus_key_path(KmxKey *key);
gsize kmx_dbus_received_size(GDBusConnection *connection, GDBusMessage *message);
void kmx_dbus_scrub_received(GDBusConnection *connection, gsize size);

/* kmx-dbus-export.c: one device's subtree */
typedef struct _KmxExportedDevice KmxExportedDevice;
KmxExportedDevice *kmx_exported_device_new(KmxDBusService *service, KmxDevice *device);
gboolean kmx_exported_device_attach(KmxExportedDevice *edev,
				    GDBusConnection *connection,
				    GError **error);
void kmx_exported_device_announce(KmxExportedDevice *edev);
void kmx_exported_device_rebind(KmxExportedDevice *edev, KmxDevice *device);
void kmx_exported_device_detach(KmxExportedDevice *edev, GDBusConnection *connection);
void kmx_exported_device_free(KmxExportedDevice *edev);
GPtrArray *kmx_exported_device_get_key_paths(KmxExportedDevice *edev);
GVariant *kmx_exported_device_get_key_paths_variant(KmxExportedDevice *edev);
guint kmx_exported_device_get_n_keys(KmxExportedDevice *edev);
void kmx_dbus_service_keys_changed(KmxDBusService *self);
const char *kmx_exported_device_get_path(KmxExportedDevice *edev);
void kmx_exported_device_foreach_managed_object(KmxExportedDevice *edev,
						void (*func)(GVariant *entry, gpointer user_data),
						gpointer user_data);
void kmx_dbus_return_property(GDBusMethodInvocation *invocation,
			      GDBusInterfaceInfo *info,
			      GVariant *(*getter)(gpointer object, const char *name),
			      gpointer object);

/* kmx-variant-array.c: an array serialised as it is written */
typedef struct _KmxVariantArray KmxVariantArray;
KmxVariantArray *kmx_variant_array_new(const GVariantType *element_type);
void kmx_variant_array_append(KmxVariantArray *self, GVariant *element);
GVariant *kmx_variant_array_end(KmxVariantArray *self, gboolean in_tuple);
void kmx_variant_array_free(KmxVariantArray *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxVariantArray, kmx_variant_array_free)
void kmx_dbus_service_foreach_managed_object(KmxDBusService *self,
					     void (*func)(GVariant *entry, gpointer user_data),
					     gpointer user_data);
GVariant *kmx_dbus_service_build_managed_objects(KmxDBusService *self);

/* kmx-dbus-methods.c: unmarshalling into requests */
void kmx_dbus_call_key(KmxDBusService *service,
		       KmxKey *key,
		       const char *method,
		       GVariant *parameters,
		       GDBusMethodInvocation *invocation);
void kmx_dbus_call_device(KmxDBusService *service,
			  KmxDevice *device,
			  const char *method,
			  GVariant *parameters,
			  GDBusMethodInvocation *invocation);
void kmx_dbus_call_key_by_id(KmxDBusService *service,
			     KmxRequestKind kind,
			     GVariant *parameters,
			     GDBusMethodInvocation *invocation);
void kmx_dbus_scrub_arrived(GDBusConnection *connection, GDBusMethodInvocation *invocation);

/* kmx-dbus-prompter.c */
#define KMX_TYPE_REMOTE_PROMPTER (kmx_remote_prompter_get_type())
G_DECLARE_FINAL_TYPE(KmxRemotePrompter, kmx_remote_prompter, KMX, REMOTE_PROMPTER, KmxPrompter)
KmxRemotePrompter *kmx_remote_prompter_new(GDBusConnection *connection,
					   const char *sender,
					   const char *path);
GDBusConnection *kmx_remote_prompter_get_connection(KmxRemotePrompter *self);
const char *kmx_remote_prompter_get_sender(KmxRemotePrompter *self);
const char *kmx_remote_prompter_get_path(KmxRemotePrompter *self);

/* kmx-dbus-locks.c */
#define KMX_TYPE_DBUS_LOCKS (kmx_dbus_locks_get_type())
G_DECLARE_FINAL_TYPE(KmxDBusLocks, kmx_dbus_locks, KMX, DBUS_LOCKS, GObject)
KmxDBusLocks *kmx_dbus_locks_new(KmxManager *manager);
void kmx_dbus_locks_start(KmxDBusLocks *self, GDBusConnection *session_bus);
void kmx_dbus_locks_stop(KmxDBusLocks *self);

G_END_DECLS
