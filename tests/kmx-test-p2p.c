/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux test fixture: a client of Manager.OpenConnection
 *
 *   kmx-test-p2p list                      ListKeys and GetManagedObjects on a peer connection
 *   kmx-test-p2p sign|decrypt ID ALG IN OUT  Manager.Sign/Decrypt on one
 *   kmx-test-p2p call-and-close KEY        Key.Sign ed25519; prints "sent", closes
 *                                           the connection at a line on stdin
 *   kmx-test-p2p watch TEXT                prints the signals of a peer connection
 *                                           ("ready" once subscribed) until one has TEXT
 *   kmx-test-p2p prompter SECRET           a Prompter on a peer connection
 *   kmx-test-p2p churn N                   opens and closes N connections, a call on each
 *   kmx-test-p2p abandon N                 N times: takes the fd, never authenticates
 *   kmx-test-p2p garbage N                 N times: writes garbage instead of the handshake
 *   kmx-test-p2p hold N                    takes N fds, never authenticates; then asks
 *                                           one more: prints "full" if refused (the
 *                                           error), "room" if not; closes at a line on stdin
 *   kmx-test-p2p unlock PATH SECRET        Device.Unlock, the last message sent; prints
 *                                           "done", closes the connection at a line on stdin
 *   kmx-test-p2p import PATH FILE PASS     Device.ImportKey the same way
 *
 * Errors go to stderr as "error: <D-Bus error name>: message", exit 1.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "kmx-names.h"

static GDBusConnection *bus;

static G_NORETURN void
die(GError *error)
{
	g_autofree char *remote = g_dbus_error_get_remote_error(error);
	g_dbus_error_strip_remote_error(error);
	fprintf(stderr, "error: %s: %s\n", remote != NULL ? remote : "local", error->message);
	exit(1);
}

/* Manager.OpenConnection: its reply (the fd's handle in @fds), or %NULL */
static GVariant *
call_open_connection(GUnixFDList **fds, GError **error)
{
	return g_dbus_connection_call_with_unix_fd_list_sync(bus,
							     KMX_DBUS_NAME,
							     KMX_DBUS_PATH,
							     KMX_DBUS_MANAGER_INTERFACE,
							     "OpenConnection",
							     NULL,
							     G_VARIANT_TYPE("(h)"),
							     G_DBUS_CALL_FLAGS_NONE,
							     -1,
							     NULL,
							     fds,
							     NULL,
							     error);
}

/* the fd keymuxd gave back, or dies */
static int
open_fd(void)
{
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = call_open_connection(&fds, &error);
	gint32 handle = 0;
	int fd;

	if (reply == NULL)
		die(error);
	g_variant_get(reply, "(h)", &handle);
	fd = g_unix_fd_list_get(fds, handle, &error);
	if (fd < 0)
		die(error);
	return fd;
}

static GDBusConnection *
open_peer(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = g_socket_new_from_fd(open_fd(), &error);
	g_autoptr(GSocketConnection) stream = NULL;
	GDBusConnection *peer;

	if (socket == NULL)
		die(error);
	stream = g_socket_connection_factory_create_connection(socket);
	peer = g_dbus_connection_new_sync(G_IO_STREAM(stream),
					  NULL,
					  G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
					  NULL,
					  NULL,
					  &error);
	if (peer == NULL)
		die(error);
	return peer;
}

static GVariant *
call(GDBusConnection *c,
     const char *path,
     const char *iface,
     const char *method,
     GVariant *args,
     const char *type)
{
	g_autoptr(GError) error = NULL;
	GVariant *reply = g_dbus_connection_call_sync(c,
						      NULL,
						      path,
						      iface,
						      method,
						      args,
						      type != NULL ? G_VARIANT_TYPE(type) : NULL,
						      G_DBUS_CALL_FLAGS_NONE,
						      -1,
						      NULL,
						      &error);
	if (reply == NULL)
		die(error);
	return reply;
}

static int
cmd_list(void)
{
	g_autoptr(GDBusConnection) peer = open_peer();
	g_autoptr(GVariant)
	    keys = call(peer, KMX_DBUS_PATH, KMX_DBUS_MANAGER_INTERFACE, "ListKeys", NULL, "(ao)");
	g_autoptr(GVariant) objects = call(peer,
					   KMX_DBUS_PATH,
					   "org.freedesktop.DBus.ObjectManager",
					   "GetManagedObjects",
					   NULL,
					   "(a{oa{sa{sv}}})");
	g_autoptr(GVariant)
	    version = call(peer,
			   KMX_DBUS_PATH,
			   "org.freedesktop.DBus.Properties",
			   "Get",
			   g_variant_new("(ss)", KMX_DBUS_MANAGER_INTERFACE, "Version"),
			   "(v)");
	g_autoptr(GVariant) list = g_variant_get_child_value(keys, 0);
	g_autoptr(GVariant) all = g_variant_get_child_value(objects, 0);
	GVariantIter iter;
	const char *path;

	g_variant_iter_init(&iter, list);
	while (g_variant_iter_next(&iter, "&o", &path))
		printf("key %s\n", path);
	printf("objects %" G_GSIZE_FORMAT "\n", g_variant_n_children(all));
	g_autofree char *v = g_variant_print(version, FALSE);
	printf("version %s\n", v);
	return 0;
}

static int
cmd_op(const char *method, const char *id, const char *alg, const char *in, const char *out)
{
	g_autoptr(GDBusConnection) peer = open_peer();
	g_autoptr(GError) error = NULL;
	g_autofree char *data = NULL;
	gsize len = 0;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) result = NULL;
	const guint8 *bytes;

	if (!g_file_get_contents(in, &data, &len, &error))
		die(error);
	reply = call(peer,
		     KMX_DBUS_PATH,
		     KMX_DBUS_MANAGER_INTERFACE,
		     method,
		     g_variant_new("(ss@aya{sv})",
				   id,
				   alg,
				   g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1),
				   NULL),
		     "(ay)");
	result = g_variant_get_child_value(reply, 0);
	bytes = g_variant_get_fixed_array(result, &len, 1);
	if (!g_file_set_contents(out, (const char *)bytes, (gssize)len, &error))
		die(error);
	return 0;
}

static void
call_and_close_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);

	printf("reply %s\n", reply != NULL ? "ok" : error->message);
	fflush(stdout);
}

static int
cmd_call_and_close(const char *key)
{
	g_autoptr(GDBusConnection) peer = open_peer();
	char line[16];
	g_autoptr(GError) error = NULL;
	guint8 one = 1;

	g_dbus_connection_call(
	    peer,
	    NULL,
	    key,
	    KMX_DBUS_KEY_INTERFACE,
	    "Sign",
	    g_variant_new("(s@aya{sv})",
			  "ed25519",
			  g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, &one, 1, 1),
			  NULL),
	    G_VARIANT_TYPE("(ay)"),
	    G_DBUS_CALL_FLAGS_NONE,
	    G_MAXINT,
	    NULL,
	    call_and_close_cb,
	    NULL);
	if (!g_dbus_connection_flush_sync(peer, NULL, &error))
		die(error);
	printf("sent\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 1;
	if (!g_dbus_connection_close_sync(peer, NULL, &error))
		die(error);
	printf("closed\n");
	fflush(stdout);
	return 0;
}

static const char *watch_until;

static void
watch_cb(GDBusConnection *c,
	 const char *sender,
	 const char *path,
	 const char *iface,
	 const char *signal,
	 GVariant *parameters,
	 gpointer user_data)
{
	g_autofree char *p = g_variant_print(parameters, FALSE);
	g_autofree char *line = g_strdup_printf("signal %s %s.%s %s", path, iface, signal, p);

	printf("%s\n", line);
	fflush(stdout);
	if (strstr(line, watch_until) != NULL)
		g_main_loop_quit(user_data);
}

static int
cmd_watch(const char *until)
{
	g_autoptr(GDBusConnection) peer = open_peer();
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	g_autoptr(GVariant) ping = NULL;

	watch_until = until;
	g_dbus_connection_signal_subscribe(peer,
					   NULL,
					   NULL,
					   NULL,
					   NULL,
					   NULL,
					   G_DBUS_SIGNAL_FLAGS_NONE,
					   watch_cb,
					   loop,
					   NULL);
	/* a round trip: the daemon has our connection set up */
	ping = call(peer, KMX_DBUS_PATH, KMX_DBUS_MANAGER_INTERFACE, "ListDevices", NULL, "(ao)");
	printf("ready\n");
	fflush(stdout);
	g_main_loop_run(loop);
	return 0;
}

static const char *prompter_secret;

static void
prompter_method_cb(GDBusConnection *c,
		   const char *sender,
		   const char *path,
		   const char *iface,
		   const char *method,
		   GVariant *parameters,
		   GDBusMethodInvocation *invocation,
		   gpointer user_data)
{
	const char *device = NULL;

	g_variant_get(parameters, "(&o&s@a{sv})", &device, NULL, NULL);
	printf("asked %s\n", device);
	fflush(stdout);
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(s)", prompter_secret));
}

static int
cmd_prompter(const char *secret)
{
	static const char xml[] =
	    "<node><interface name='org.keymux.Keystore1.Prompter'><method name='AskSecret'>"
	    "<arg type='o' direction='in'/><arg type='s' direction='in'/>"
	    "<arg type='a{sv}' direction='in'/><arg type='s' direction='out'/>"
	    "</method></interface></node>";
	static const GDBusInterfaceVTable vtable = {.method_call = prompter_method_cb};
	g_autoptr(GDBusConnection) peer = open_peer();
	g_autoptr(GDBusNodeInfo) info = g_dbus_node_info_new_for_xml(xml, NULL);
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;

	prompter_secret = secret;
	if (g_dbus_connection_register_object(peer,
					      "/prompter",
					      info->interfaces[0],
					      &vtable,
					      NULL,
					      NULL,
					      &error) == 0)
		die(error);
	reply = call(peer,
		     KMX_DBUS_PATH,
		     KMX_DBUS_MANAGER_INTERFACE,
		     "RegisterPrompter",
		     g_variant_new("(o)", "/prompter"),
		     NULL);
	printf("ready\n");
	fflush(stdout);
	g_main_loop_run(loop);
	return 0;
}

static int
cmd_churn(guint n)
{
	for (guint i = 0; i < n; i++) {
		g_autoptr(GDBusConnection) peer = open_peer();
		G_GNUC_UNUSED g_autoptr(GVariant) r = call(peer,
							   KMX_DBUS_PATH,
							   KMX_DBUS_MANAGER_INTERFACE,
							   "ListDevices",
							   NULL,
							   "(ao)");
		g_autoptr(GError) error = NULL;

		if (!g_dbus_connection_close_sync(peer, NULL, &error))
			die(error);
	}
	printf("done\n");
	return 0;
}

static int
cmd_bad(guint n, gboolean garbage)
{
	static const char junk[] = "\0AUTH NONSENSE\r\nBEGIN\r\n\xff\xfe garbage \x01\x02\r\n";

	for (guint i = 0; i < n; i++) {
		int fd = open_fd();
		if (garbage && write(fd, junk, sizeof(junk)) < 0)
			perror("write");
		close(fd);
	}
	printf("done\n");
	return 0;
}

static int
cmd_hold(guint n)
{
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	char line[16];

	for (guint i = 0; i < n; i++)
		(void)open_fd(); /* kept open until we exit */
	reply = call_open_connection(&fds, &error);
	if (reply != NULL)
		printf("room\n");
	else
		printf("full %s\n", error->message);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return 0;
}

/* one call with a secret, the last message on the connection; it stays
 * open until a line on stdin, for the daemon's memory to be searched */
static int
cmd_secret_and_hold(const char *device, const char *method, GVariant *args)
{
	g_autoptr(GDBusConnection) peer = open_peer();
	G_GNUC_UNUSED g_autoptr(GVariant)
	    reply = call(peer, device, KMX_DBUS_DEVICE_INTERFACE, method, args, NULL);
	char line[16];

	printf("done\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return 0;
}

static int
cmd_import(const char *device, const char *file, const char *passphrase)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents(file, &data, &len, &error))
		die(error);
	return cmd_secret_and_hold(
	    device,
	    "ImportKey",
	    g_variant_new("(@ayss@a{sv})",
			  g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1),
			  passphrase,
			  "",
			  g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0)));
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;

	bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (bus == NULL)
		die(error);
	if (argc == 2 && g_str_equal(argv[1], "list"))
		return cmd_list();
	if (argc == 6 && g_str_equal(argv[1], "sign"))
		return cmd_op("Sign", argv[2], argv[3], argv[4], argv[5]);
	if (argc == 6 && g_str_equal(argv[1], "decrypt"))
		return cmd_op("Decrypt", argv[2], argv[3], argv[4], argv[5]);
	if (argc == 3 && g_str_equal(argv[1], "call-and-close"))
		return cmd_call_and_close(argv[2]);
	if (argc == 3 && g_str_equal(argv[1], "watch"))
		return cmd_watch(argv[2]);
	if (argc == 3 && g_str_equal(argv[1], "prompter"))
		return cmd_prompter(argv[2]);
	if (argc == 3 && g_str_equal(argv[1], "churn"))
		return cmd_churn((guint)atoi(argv[2]));
	if (argc == 3 && g_str_equal(argv[1], "abandon"))
		return cmd_bad((guint)atoi(argv[2]), FALSE);
	if (argc == 3 && g_str_equal(argv[1], "garbage"))
		return cmd_bad((guint)atoi(argv[2]), TRUE);
	if (argc == 3 && g_str_equal(argv[1], "hold"))
		return cmd_hold((guint)atoi(argv[2]));
	if (argc == 4 && g_str_equal(argv[1], "unlock"))
		return cmd_secret_and_hold(
		    argv[2],
		    "Unlock",
		    g_variant_new("(s@a{sv})",
				  argv[3],
				  g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0)));
	if (argc == 5 && g_str_equal(argv[1], "import"))
		return cmd_import(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: see the comment at the top of kmx-test-p2p.c\n");
	return 2;
}
