/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PKCS#11 module's D-Bus client.
 *
 * A PKCS#11 module lives in someone else's process: it may not need a main
 * loop, must work from any thread, and must work again in a fork()ed child
 * after C_Initialize.  GDBusConnection does its I/O on GLib's one shared
 * "gdbus" worker thread, which a forked child does not have: every call of a
 * child would wait forever.  So each call here takes a connection of its
 * own from a small pool, writes the GDBusMessage blob and reads the reply on
 * the calling thread, with a socket timeout.  Messages are built and parsed
 * by GIO (GDBusMessage); only the EXTERNAL authentication handshake is
 * spoken here.  Calls in flight at once each have their own connection, so
 * 16 threads signing at once send 16 requests at once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "kmx-p11-bus.h"

#include <string.h>
#include <unistd.h>

#define KMX_NAME "org.keymux.Keystore1"
/* the largest reply accepted (GetManagedObjects of a very large store) */
#define KMX_P11_MAX_MESSAGE (64u * 1024u * 1024u)
/* idle connections kept for the next calls */
#define KMX_P11_POOL_MAX 16

struct _KmxP11Conn {
	GIOStream *stream;
	GSocket *socket;
	guint32 serial;
	pid_t pid;
};

static GMutex pool_lock;
static GQueue pool = G_QUEUE_INIT;

void
kmx_p11_conn_free(KmxP11Conn *conn)
{
	if (conn == NULL)
		return;
	g_clear_object(&conn->stream);
	g_free(conn);
}

/* one line of the authentication exchange, "\r\n" stripped */
static char *
kmx_p11_read_line(GInputStream *in, GError **error)
{
	g_autoptr(GString) line = g_string_new(NULL);

	while (line->len < 1024) {
		char c;
		gssize n = g_input_stream_read(in, &c, 1, NULL, error);
		if (n < 0)
			return NULL;
		if (n == 0) {
			g_set_error_literal(error,
					    G_IO_ERROR,
					    G_IO_ERROR_CONNECTION_CLOSED,
					    "the bus closed the connection during authentication");
			return NULL;
		}
		if (c == '\n' && line->len > 0 && line->str[line->len - 1] == '\r') {
			g_string_truncate(line, line->len - 1);
			return g_string_free(g_steal_pointer(&line), FALSE);
		}
		g_string_append_c(line, c);
	}
	g_set_error_literal(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "the bus sent an overlong line");
	return NULL;
}

/* the EXTERNAL mechanism: the bus knows our uid from the socket */
static gboolean
kmx_p11_authenticate(KmxP11Conn *conn, GError **error)
{
	GOutputStream *out = g_io_stream_get_output_stream(conn->stream);
	GInputStream *in = g_io_stream_get_input_stream(conn->stream);
	g_autofree char *uid = g_strdup_printf("%u", (unsigned)getuid());
	g_autoptr(GString) auth = g_string_new("AUTH EXTERNAL ");
	g_autofree char *reply = NULL;

	for (const char *p = uid; *p != '\0'; p++)
		g_string_append_printf(auth, "%02x", (unsigned char)*p);
	g_string_append(auth, "\r\n");
	/* the credentials byte, then the command */
	if (!g_output_stream_write_all(out, "", 1, NULL, NULL, error) ||
	    !g_output_stream_write_all(out, auth->str, auth->len, NULL, NULL, error))
		return FALSE;
	reply = kmx_p11_read_line(in, error);
	if (reply == NULL)
		return FALSE;
	if (!g_str_has_prefix(reply, "OK ")) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_PERMISSION_DENIED,
			    "the session bus refused us: %.64s",
			    reply);
		return FALSE;
	}
	return g_output_stream_write_all(out, "BEGIN\r\n", 7, NULL, NULL, error);
}

static GDBusMessage *kmx_p11_conn_call(KmxP11Conn *conn, GDBusMessage *message, GError **error);

KmxP11Conn *
kmx_p11_conn_new(const char *bus_address, GError **error)
{
	g_autoptr(KmxP11Conn) conn = g_new0(KmxP11Conn, 1);
	g_autofree char *address = g_strdup(bus_address);
	g_autoptr(GDBusMessage) hello = NULL;
	g_autoptr(GDBusMessage) reply = NULL;

	if (address == NULL)
		address = g_dbus_address_get_for_bus_sync(G_BUS_TYPE_SESSION, NULL, error);
	if (address == NULL)
		return NULL;
	conn->stream = g_dbus_address_get_stream_sync(address, NULL, NULL, error);
	if (conn->stream == NULL)
		return NULL;
	if (!G_IS_SOCKET_CONNECTION(conn->stream)) {
		g_set_error_literal(error,
				    G_IO_ERROR,
				    G_IO_ERROR_NOT_SUPPORTED,
				    "the session bus address is not a socket");
		return NULL;
	}
	conn->socket = g_socket_connection_get_socket(G_SOCKET_CONNECTION(conn->stream));
	conn->pid = getpid();
	g_socket_set_timeout(conn->socket, KMX_P11_TIMEOUT_SHORT);
	if (!kmx_p11_authenticate(conn, error))
		return NULL;
	hello = g_dbus_message_new_method_call("org.freedesktop.DBus",
					       "/org/freedesktop/DBus",
					       "org.freedesktop.DBus",
					       "Hello");
	reply = kmx_p11_conn_call(conn, hello, error);
	if (reply == NULL || g_dbus_message_to_gerror(reply, error))
		return NULL;
	return g_steal_pointer(&conn);
}

static gboolean
kmx_p11_read_all(GInputStream *in, guint8 *buf, gsize len, GError **error)
{
	gsize got = 0;

	if (!g_input_stream_read_all(in, buf, len, &got, NULL, error))
		return FALSE;
	if (got != len) {
		g_set_error_literal(error,
				    G_IO_ERROR,
				    G_IO_ERROR_CONNECTION_CLOSED,
				    "the bus closed the connection");
		return FALSE;
	}
	return TRUE;
}

/* send @message, return the reply to it (other messages are dropped) */
guint32
kmx_p11_conn_send(KmxP11Conn *conn, GDBusMessage *message, GError **error)
{
	GOutputStream *out = g_io_stream_get_output_stream(conn->stream);
	g_autofree guchar *blob = NULL;
	gsize blob_len = 0;
	guint32 serial = ++conn->serial;
	gboolean sent;

	if (serial == 0)
		serial = ++conn->serial;
	g_dbus_message_set_serial(message, serial);
	blob = g_dbus_message_to_blob(message, &blob_len, G_DBUS_CAPABILITY_FLAGS_NONE, error);
	if (blob == NULL)
		return 0;
	sent = g_output_stream_write_all(out, blob, blob_len, NULL, NULL, error);
	/* it may hold a PIN */
	explicit_bzero(blob, blob_len);
	return sent ? serial : 0;
}

static GDBusMessage *
kmx_p11_conn_call(KmxP11Conn *conn, GDBusMessage *message, GError **error)
{
	GInputStream *in = g_io_stream_get_input_stream(conn->stream);
	guint32 serial = kmx_p11_conn_send(conn, message, error);

	if (serial == 0)
		return NULL;

	for (;;) {
		guint8 header[16];
		g_autofree guint8 *buf = NULL;
		g_autoptr(GDBusMessage) reply = NULL;
		gssize needed;
		gboolean ok;

		if (!kmx_p11_read_all(in, header, sizeof header, error))
			return NULL;
		needed = g_dbus_message_bytes_needed(header, sizeof header, error);
		if (needed < 0)
			return NULL;
		if ((gsize)needed < sizeof header || (gsize)needed > KMX_P11_MAX_MESSAGE) {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_DATA,
				    "the bus sent a message of %" G_GSSIZE_FORMAT " bytes",
				    needed);
			return NULL;
		}
		buf = g_malloc(needed);
		memcpy(buf, header, sizeof header);
		ok = kmx_p11_read_all(in, buf + sizeof header, needed - sizeof header, error);
		if (ok)
			reply = g_dbus_message_new_from_blob(buf,
							     needed,
							     G_DBUS_CAPABILITY_FLAGS_NONE,
							     error);
		/* a reply may carry a plaintext or a shared secret */
		explicit_bzero(buf, needed);
		if (reply == NULL)
			return NULL;
		switch (g_dbus_message_get_message_type(reply)) {
		case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
		case G_DBUS_MESSAGE_TYPE_ERROR:
			if (g_dbus_message_get_reply_serial(reply) == serial)
				return g_steal_pointer(&reply);
			break;
		default:
			/* NameAcquired and the like: nobody here listens */
			break;
		}
	}
}

int
kmx_p11_conn_get_fd(KmxP11Conn *conn)
{
	return g_socket_get_fd(conn->socket);
}

static KmxP11Conn *
kmx_p11_pool_take(GError **error)
{
	KmxP11Conn *conn;
	pid_t pid = getpid();

	g_mutex_lock(&pool_lock);
	while ((conn = g_queue_pop_head(&pool)) != NULL && conn->pid != pid)
		kmx_p11_conn_free(conn);
	g_mutex_unlock(&pool_lock);
	if (conn != NULL)
		return conn;
	return kmx_p11_conn_new(NULL, error);
}

static void
kmx_p11_pool_give(KmxP11Conn *conn)
{
	g_mutex_lock(&pool_lock);
	if (g_queue_get_length(&pool) < KMX_P11_POOL_MAX) {
		g_queue_push_head(&pool, conn);
		conn = NULL;
	}
	g_mutex_unlock(&pool_lock);
	kmx_p11_conn_free(conn);
}

void
kmx_p11_bus_lock(void)
{
	g_mutex_lock(&pool_lock);
}

void
kmx_p11_bus_unlock(void)
{
	g_mutex_unlock(&pool_lock);
}

void
kmx_p11_bus_reset(void)
{
	KmxP11Conn *conn;

	g_mutex_lock(&pool_lock);
	while ((conn = g_queue_pop_head(&pool)) != NULL)
		kmx_p11_conn_free(conn);
	g_mutex_unlock(&pool_lock);
}

/*
 * What is wiped of a reply: the raw message read from the socket (above, as
 * soon as GDBusMessage has parsed it) and, here, the body's byte arrays.
 * GDBusMessage parses an "ay" into a serialised GVariant of its own (or a
 * child sharing the body's serialised data): its data is the one copy left,
 * and nobody else holds a reference once the message is gone.  Not wiped:
 * the kernel's socket buffers, which the process cannot reach.
 */
void
kmx_p11_bus_wipe_bytes(GVariant *reply)
{
	gsize n;

	if (reply == NULL || !g_variant_is_container(reply))
		return;
	n = g_variant_n_children(reply);
	for (gsize i = 0; i < n; i++) {
		g_autoptr(GVariant) child = g_variant_get_child_value(reply, i);

		if (g_variant_is_of_type(child, G_VARIANT_TYPE_BYTESTRING)) {
			gsize len = g_variant_get_size(child);
			if (len > 0)
				explicit_bzero((gpointer)g_variant_get_data(child), len);
		} else if (g_variant_is_container(child)) {
			kmx_p11_bus_wipe_bytes(child);
		}
	}
}

GVariant *
kmx_p11_bus_call(const char *path,
		 const char *interface,
		 const char *method,
		 GVariant *params,
		 const GVariantType *reply_type,
		 guint timeout_s,
		 GError **error)
{
	g_autoptr(GVariant) body = params != NULL ? g_variant_ref_sink(params) : NULL;
	g_autoptr(GDBusMessage) message = NULL;
	g_autoptr(GDBusMessage) reply = NULL;
	g_autoptr(KmxP11Conn) conn = NULL;
	GVariant *result;

	conn = kmx_p11_pool_take(error);
	if (conn == NULL)
		return NULL;
	message = g_dbus_message_new_method_call(KMX_NAME, path, interface, method);
	if (body != NULL)
		g_dbus_message_set_body(message, body);
	g_socket_set_timeout(conn->socket, timeout_s);
	reply = kmx_p11_conn_call(conn, message, error);
	if (reply == NULL)
		return NULL; /* the connection is out of step: dropped */
	g_socket_set_timeout(conn->socket, KMX_P11_TIMEOUT_SHORT);
	kmx_p11_pool_give(g_steal_pointer(&conn));
	if (g_dbus_message_to_gerror(reply, error))
		return NULL;
	result = g_dbus_message_get_body(reply);
	result = result != NULL ? g_variant_ref(result)
				: g_variant_ref_sink(g_variant_new_tuple(NULL, 0));
	if (reply_type != NULL && !g_variant_is_of_type(result, reply_type)) {
		g_autofree char *want = g_variant_type_dup_string(reply_type);
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "%s returned %s, not %s",
			    method,
			    g_variant_get_type_string(result),
			    want);
		g_variant_unref(result);
		return NULL;
	}
	return result;
}
