/*
 * The PKCS#11 module's D-Bus client: synchronous calls to keymuxd on
 * connections of its own, safe across fork() (see kmx-p11-bus.c)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

/* for calls that never prompt: a daemon that does not answer in this time
 * is treated as gone */
#define KMX_P11_TIMEOUT_SHORT 15
/* for calls that may prompt (DESIGN §5: no D-Bus timeout) */
#define KMX_P11_TIMEOUT_NONE 0

/*
 * kmx_p11_bus_call: call @method on keymuxd's object @path and wait for the
 * reply, at most @timeout_s seconds (0: no limit).  Takes (sinks) @params.
 * Returns the reply body, of @reply_type, or NULL with @error set: a
 * G_DBUS_ERROR with the remote error name kept (g_dbus_error_get_remote_error)
 * or a G_IO_ERROR when the bus could not be reached.
 */
GVariant *kmx_p11_bus_call(const char *path,
			   const char *interface,
			   const char *method,
			   GVariant *params,
			   const GVariantType *reply_type,
			   guint timeout_s,
			   GError **error);

/*
 * kmx_p11_bus_wipe_bytes: zero the bytes of every "ay" in @reply, a reply
 * body kmx_p11_bus_call() returned whose last reference the caller holds
 * (a plaintext, a shared secret), before it is unreferenced.
 */
void kmx_p11_bus_wipe_bytes(GVariant *reply);

/*
 * One connection of the module's own to the session bus, authenticated and
 * past Hello: the pool's, and the watch's (kmx-p11-watch.c).  Its socket is
 * non-blocking; kmx_p11_conn_send() waits at most KMX_P11_TIMEOUT_SHORT.
 */
typedef struct _KmxP11Conn KmxP11Conn;

/* @bus_address: NULL for the session bus's (which may start dbus-launch) */
KmxP11Conn *kmx_p11_conn_new(const char *bus_address, GError **error);
void kmx_p11_conn_free(KmxP11Conn *conn);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxP11Conn, kmx_p11_conn_free)
int kmx_p11_conn_get_fd(KmxP11Conn *conn);
/* send @message with the connection's next serial, returned (0: @error set);
 * the reply is the caller's to read */
guint32 kmx_p11_conn_send(KmxP11Conn *conn, GDBusMessage *message, GError **error);

/* drop every idle connection */
void kmx_p11_bus_reset(void);

/* pthread_atfork handlers: the pool's lock is consistent in a child */
void kmx_p11_bus_lock(void);
void kmx_p11_bus_unlock(void);
