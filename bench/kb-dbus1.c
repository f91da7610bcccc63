/*
 * kmx-bench-dbus1: the listing calls of kmx-bench-dbus scale, made with the
 * reference D-Bus library (libdbus-1) instead of GDBus
 *
 *   scale      Manager.ListKeys and ObjectManager.GetManagedObjects latency
 *
 * GDBus parses a reply into a GVariant and checks every object path twice on
 * the way; libdbus checks the message once when it arrives and the client
 * reads it in place with DBusMessageIter.  So the two clients side by side
 * tell what the client library costs and what is left for keymuxd and the
 * bus.  GLib here only parses the options and reports; every call and
 * every byte of a reply go through libdbus.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"

#include <dbus/dbus.h>
#include <string.h>

#define KMX_PREFIX	"org.keymux.Keystore1"
#define MANAGER_PATH	"/org/keymux/Keystore1"
#define CALL_TIMEOUT_MS (120 * 1000)

static gchar *opt_address;
static gchar *opt_name;

/* a DBusError as a GError; a remote error name makes it the peer's refusal */
static void
take_dbus_error(GError **error, DBusError *derr, const gchar *what, gboolean remote)
{
	g_set_error(error,
		    KB_ERROR,
		    remote ? KB_ERROR_PEER : KB_ERROR_FAILED,
		    "%s: %s: %s",
		    what,
		    derr->name != NULL ? derr->name : "?",
		    derr->message != NULL ? derr->message : "");
	dbus_error_free(derr);
}

static DBusConnection *
connect_bus(GError **error)
{
	DBusError derr = DBUS_ERROR_INIT;
	DBusConnection *conn;

	if (opt_address == NULL || opt_name == NULL) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "--address and --name are required");
		return NULL;
	}
	conn = dbus_connection_open_private(opt_address, &derr);
	if (conn == NULL) {
		take_dbus_error(error, &derr, "connecting", FALSE);
		return NULL;
	}
	dbus_connection_set_exit_on_disconnect(conn, FALSE);
	if (!dbus_bus_register(conn, &derr)) {
		take_dbus_error(error, &derr, "Hello", FALSE);
		dbus_connection_close(conn);
		dbus_connection_unref(conn);
		return NULL;
	}
	return conn;
}

/* reads every basic value of the value it points at, the way a client that
 * looks at the whole reply does; counts them and their string bytes so the
 * reading cannot be left out by the compiler */
static void
walk(DBusMessageIter *it, gsize *values, gsize *bytes)
{
	int type = dbus_message_iter_get_arg_type(it);

	if (dbus_type_is_container(type)) {
		DBusMessageIter sub;

		dbus_message_iter_recurse(it, &sub);
		while (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID) {
			walk(&sub, values, bytes);
			dbus_message_iter_next(&sub);
		}
	} else if (type == DBUS_TYPE_STRING || type == DBUS_TYPE_OBJECT_PATH ||
		   type == DBUS_TYPE_SIGNATURE) {
		const char *s = NULL;

		dbus_message_iter_get_basic(it, &s);
		*bytes += strlen(s);
		(*values)++;
	} else if (type != DBUS_TYPE_INVALID && type != DBUS_TYPE_UNIX_FD) {
		DBusBasicValue v;

		dbus_message_iter_get_basic(it, &v);
		(*values)++;
	}
}

/* one call; the reply checked for its signature and read whole.  n: the
 * elements of the top-level array (paths or objects) */
static gboolean
call(DBusConnection *conn,
     const gchar *iface,
     const gchar *method,
     const gchar *signature,
     gsize *n,
     GError **error)
{
	g_autofree gchar *what = g_strdup_printf("%s.%s", iface, method);
	DBusError derr = DBUS_ERROR_INIT;
	DBusMessage *msg;
	DBusMessage *reply;
	DBusMessageIter it;
	DBusMessageIter array;
	gsize values = 0, bytes = 0;

	msg = dbus_message_new_method_call(opt_name, MANAGER_PATH, iface, method);
	if (msg == NULL) {
		g_set_error(error, KB_ERROR, KB_ERROR_FAILED, "%s: out of memory", what);
		return FALSE;
	}
	dbus_message_set_auto_start(msg, FALSE);
	reply = dbus_connection_send_with_reply_and_block(conn, msg, CALL_TIMEOUT_MS, &derr);
	dbus_message_unref(msg);
	if (reply == NULL) {
		/* an error reply has a name of the peer's; a local failure libdbus's own */
		take_dbus_error(error,
				&derr,
				what,
				derr.name != NULL &&
				    !g_str_has_prefix(derr.name, DBUS_ERROR_NO_REPLY));
		return FALSE;
	}
	if (!dbus_message_has_signature(reply, signature) || !dbus_message_iter_init(reply, &it)) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "%s: reply of type (%s), not (%s)",
			    what,
			    dbus_message_get_signature(reply),
			    signature);
		dbus_message_unref(reply);
		return FALSE;
	}
	/* once through: the elements of the array (paths, or objects), each
	 * read whole */
	*n = 0;
	dbus_message_iter_recurse(&it, &array);
	while (dbus_message_iter_get_arg_type(&array) != DBUS_TYPE_INVALID) {
		(*n)++;
		walk(&array, &values, &bytes);
		dbus_message_iter_next(&array);
	}
	dbus_message_unref(reply);
	if (values < *n) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "%s: %" G_GSIZE_FORMAT " values in %" G_GSIZE_FORMAT " elements",
			    what,
			    values,
			    *n);
		return FALSE;
	}
	return TRUE;
}

typedef struct {
	DBusConnection *conn;
	const gchar *iface;
	const gchar *method;
	const gchar *signature;
	gsize n;
} ScaleCall;

static gboolean
scale_call(gpointer data, GError **error)
{
	ScaleCall *c = data;

	return call(c->conn, c->iface, c->method, c->signature, &c->n, error);
}

static gboolean
time_calls(DBusConnection *conn,
	   const gchar *iface,
	   const gchar *method,
	   const gchar *signature,
	   guint repeat,
	   gdouble seconds,
	   gdouble *p50_us,
	   gdouble *max_us,
	   gsize *n,
	   GError **error)
{
	ScaleCall c = {conn, iface, method, signature, 0};

	if (!kb_scale_time(scale_call, &c, repeat, seconds, p50_us, max_us, error))
		return FALSE;
	*n = c.n;
	return TRUE;
}

static int
cmd_scale(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("scale - listing latency (libdbus)");
	g_autoptr(GError) error = NULL;
	DBusConnection *conn;
	gint repeat = 20;
	gdouble seconds = 5;
	gdouble lk_p50 = 0, lk_max = 0, gmo_p50 = 0, gmo_max = 0;
	gsize keys = 0, objects = 0;
	g_autofree gchar *methods = NULL;
	gboolean lk, gmo, ok;
	GOptionEntry entries[] = {
	    {"address", 0, 0, G_OPTION_ARG_STRING, &opt_address, "Bus address", "ADDR"},
	    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Service bus name", "NAME"},
	    {"repeat", 'r', 0, G_OPTION_ARG_INT, &repeat, "Calls of each", "N"},
	    {"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &seconds, "At most this long each", "S"},
	    {"methods",
	     'm',
	     0,
	     G_OPTION_ARG_STRING,
	     &methods,
	     "listkeys, gmo or both (default): only those are called",
	     "WHICH"},
	    {NULL}};

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error) ||
	    !kb_scale_methods(methods, &lk, &gmo, &error))
		return kb_report_error("scale-libdbus", error);
	if (repeat < 1)
		repeat = 1;
	conn = connect_bus(&error);
	if (conn == NULL)
		return kb_report_error("scale-libdbus", error);
	ok = (!lk || time_calls(conn,
				KMX_PREFIX ".Manager",
				"ListKeys",
				"ao",
				repeat,
				seconds,
				&lk_p50,
				&lk_max,
				&keys,
				&error)) &&
	     (!gmo || time_calls(conn,
				 "org.freedesktop.DBus.ObjectManager",
				 "GetManagedObjects",
				 "a{oa{sa{sv}}}",
				 repeat,
				 seconds,
				 &gmo_p50,
				 &gmo_max,
				 &objects,
				 &error));
	dbus_connection_close(conn);
	dbus_connection_unref(conn);
	if (!ok)
		return kb_report_error("scale-libdbus", error);
	/* the reply's size is kmx-bench-dbus's to report: the same reply */
	kb_scale_print("scale-libdbus", keys, objects, lk_p50, lk_max, gmo_p50, gmo_max, 0);
	return 0;
}

int
main(int argc, char **argv)
{
	const gchar *cmd = argc > 1 ? argv[1] : "";

	if (g_strcmp0(cmd, "scale") == 0)
		return cmd_scale(argc - 1, argv + 1);
	g_printerr("usage: %s scale [OPTIONS]\n", argv[0]);
	return 2;
}
