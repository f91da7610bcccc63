/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux test tool: many callers, each with many signatures in flight
 *
 *   kmx-test-flood --key PATH [--clients N] [--calls M] [--algorithm A]
 *                  [--wait] [--timeout S] [--linger MS]
 *
 * Opens N connections of their own to the session bus (N callers to the
 * daemon), reads the key's Id on each (as a client finds its key: the
 * daemon knows the caller then), then sends M Key.Sign calls on each,
 * interleaved, without waiting for a reply.  Without --wait it makes sure
 * the bus has them all, waits MS milliseconds (--linger: the daemon has
 * started on them by then), closes every connection at once and exits:
 * the callers leave with their work queued.  With --wait it waits for
 * every reply (each call times out after S seconds, default 120) and
 * prints one line of counts:
 *
 *   ok=N refused=N refused-caller=N refused-total=N timeout=N other=N
 *
 * where "refused" are the Failed errors that say "too many requests in
 * flight", "-caller" those of the per-caller limit, "-total" those of the
 * daemon's total.  Other errors are counted, and the first few printed on
 * stderr.
 */
#include "config.h"

#include <gio/gio.h>
#include <stdio.h>
#include <string.h>

#define KEY_IFACE "org.keymux.Keystore1.Key"
#define KMX_NAME  "org.keymux.Keystore1"

static const char *opt_key = NULL;
static const char *opt_algorithm = "ed25519";
static int opt_clients = 10;
static int opt_calls = 100;
static int opt_timeout = 120;
static gboolean opt_wait = FALSE;
static int opt_linger_ms = 0;

typedef struct {
	guint pending;
	guint ok;
	guint refused;
	guint refused_caller;
	guint refused_total;
	guint timeout;
	guint other;
	GMainLoop *loop;
} Tally;

static void
sign_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Tally *t = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autofree char *remote = error != NULL ? g_dbus_error_get_remote_error(error) : NULL;

	if (reply != NULL) {
		t->ok++;
	} else if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
		t->timeout++;
	} else if (g_strcmp0(remote, "org.keymux.Keystore1.Error.Failed") == 0 &&
		   strstr(error->message, "too many requests in flight") != NULL) {
		t->refused++;
		if (strstr(error->message, "of this caller") != NULL)
			t->refused_caller++;
		else if (strstr(error->message, "in all") != NULL)
			t->refused_total++;
	} else {
		if (t->other++ < 5)
			g_printerr("kmx-test-flood: %s\n", error->message);
	}
	if (--t->pending == 0)
		g_main_loop_quit(t->loop);
}

/* a reply is expected (a callback NULL would send NO_REPLY_EXPECTED), but
 * a caller that leaves never reads it */
static void
ignore_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
}

static const GOptionEntry entries[] = {
    {"key", 0, 0, G_OPTION_ARG_STRING, &opt_key, "Object path of the key", "PATH"},
    {"clients", 0, 0, G_OPTION_ARG_INT, &opt_clients, "Connections (default 10)", "N"},
    {"calls", 0, 0, G_OPTION_ARG_INT, &opt_calls, "Calls per connection (default 100)", "M"},
    {"algorithm", 0, 0, G_OPTION_ARG_STRING, &opt_algorithm, "Sign algorithm", "A"},
    {"wait", 0, 0, G_OPTION_ARG_NONE, &opt_wait, "Wait for the replies and count them", NULL},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout, "Seconds per call with --wait", "S"},
    {"linger", 0, 0, G_OPTION_ARG_INT, &opt_linger_ms, "Milliseconds before leaving", "MS"},
    {NULL},
};

int
main(int argc, char **argv)
{
	g_autoptr(GOptionContext) options = g_option_context_new("— flood keymuxd");
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) connections = g_ptr_array_new_with_free_func(g_object_unref);
	g_autofree char *address = NULL;
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	static const guint8 message[32] = "keymux flood: sign this, please";
	Tally t = {0};

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error)) {
		g_printerr("kmx-test-flood: %s\n", error->message);
		return 2;
	}
	if (opt_key == NULL || opt_clients < 1 || opt_calls < 1 || opt_timeout < 1) {
		g_printerr("kmx-test-flood: give --key, and positive numbers\n");
		return 2;
	}
	address = g_dbus_address_get_for_bus_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (address == NULL) {
		g_printerr("kmx-test-flood: %s\n", error->message);
		return 1;
	}
	/* a connection of its own each: a caller each, as separate processes */
	for (int i = 0; i < opt_clients; i++) {
		GDBusConnection *c = g_dbus_connection_new_for_address_sync(
		    address,
		    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
			G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
		    NULL,
		    NULL,
		    &error);
		if (c == NULL) {
			g_printerr("kmx-test-flood: connection %d: %s\n", i, error->message);
			return 1;
		}
		g_dbus_connection_set_exit_on_close(c, FALSE);
		g_ptr_array_add(connections, c);
	}
	for (guint i = 0; i < connections->len; i++) {
		g_autoptr(GVariant) id = NULL;

		id = g_dbus_connection_call_sync(g_ptr_array_index(connections, i),
						 KMX_NAME,
						 opt_key,
						 "org.freedesktop.DBus.Properties",
						 "Get",
						 g_variant_new("(ss)", KEY_IFACE, "Id"),
						 G_VARIANT_TYPE("(v)"),
						 G_DBUS_CALL_FLAGS_NO_AUTO_START,
						 opt_timeout * 1000,
						 NULL,
						 &error);
		if (id == NULL) {
			g_printerr("kmx-test-flood: the key's Id: %s\n", error->message);
			return 1;
		}
	}
	t.loop = loop;
	t.pending = (guint)opt_clients * (guint)opt_calls;
	/* round after round, so that every caller floods at the same time */
	for (int j = 0; j < opt_calls; j++) {
		for (guint i = 0; i < connections->len; i++) {
			GVariant *data = g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE,
								   message,
								   sizeof(message),
								   1);
			g_dbus_connection_call(
			    g_ptr_array_index(connections, i),
			    KMX_NAME,
			    opt_key,
			    KEY_IFACE,
			    "Sign",
			    g_variant_new("(s@aya{sv})", opt_algorithm, data, NULL),
			    G_VARIANT_TYPE("(ay)"),
			    G_DBUS_CALL_FLAGS_NO_AUTO_START,
			    opt_timeout * 1000,
			    NULL,
			    opt_wait ? sign_cb : ignore_cb,
			    opt_wait ? &t : NULL);
		}
	}
	if (!opt_wait) {
		/* the bus answers in order: once it answered a call that went
		 * after them, it has every sign call, which a bus that sees a
		 * caller hang up with unread messages would drop.  Then every
		 * caller leaves at once */
		for (guint i = 0; i < connections->len; i++) {
			g_autoptr(GVariant) id = NULL;

			id = g_dbus_connection_call_sync(g_ptr_array_index(connections, i),
							 "org.freedesktop.DBus",
							 "/org/freedesktop/DBus",
							 "org.freedesktop.DBus",
							 "GetId",
							 NULL,
							 G_VARIANT_TYPE("(s)"),
							 G_DBUS_CALL_FLAGS_NONE,
							 -1,
							 NULL,
							 &error);
			if (id == NULL) {
				g_printerr("kmx-test-flood: %s\n", error->message);
				return 1;
			}
		}
		if (opt_linger_ms > 0)
			g_usleep((gulong)opt_linger_ms * 1000);
		for (guint i = 0; i < connections->len; i++)
			(void)g_dbus_connection_close_sync(g_ptr_array_index(connections, i),
							   NULL,
							   NULL);
		printf("sent=%u\n", (guint)opt_clients * (guint)opt_calls);
		return 0;
	}
	g_main_loop_run(loop);
	printf("ok=%u refused=%u refused-caller=%u refused-total=%u timeout=%u other=%u\n",
	       t.ok,
	       t.refused,
	       t.refused_caller,
	       t.refused_total,
	       t.timeout,
	       t.other);
	return 0;
}
