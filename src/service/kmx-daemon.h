/* keymux: the daemon: backends, the D-Bus export, requests, prompting */
#pragma once

#include <gio/gio.h>

#include "kmx-context.h"
#include "kmx-device.h"
#include "kmx-generated.h"
#include "kmx-key.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

#define KMX_TYPE_DAEMON (kmx_daemon_get_type())
G_DECLARE_FINAL_TYPE(KmxDaemon, kmx_daemon, KMX, DAEMON, GObject)

KmxDaemon *kmx_daemon_new(KmxContext *context, GError **error);
gboolean kmx_daemon_export(KmxDaemon *self, GDBusConnection *connection, GError **error);
void kmx_daemon_lock_all(KmxDaemon *self);
void kmx_daemon_shutdown(KmxDaemon *self);
GPtrArray *kmx_daemon_get_devices(KmxDaemon *self);

G_END_DECLS
