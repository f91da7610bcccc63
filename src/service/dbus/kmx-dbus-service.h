/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the D-Bus frontend of the manager */
#pragma once

#include <gio/gio.h>

#include "kmx-manager.h"

G_BEGIN_DECLS

#define KMX_TYPE_DBUS_SERVICE (kmx_dbus_service_get_type())
G_DECLARE_FINAL_TYPE(KmxDBusService, kmx_dbus_service, KMX, DBUS_SERVICE, GObject)

KmxDBusService *kmx_dbus_service_new(KmxManager *manager);
gboolean kmx_dbus_service_export(KmxDBusService *self, GDBusConnection *connection, GError **error);
void kmx_dbus_service_unexport(KmxDBusService *self);

G_END_DECLS
