/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux test fixture: stands in for logind on a private "system" bus, or
 * for a desktop's screen saver on the session bus
 *
 * logind (the default): owns org.freedesktop.login1 and answers
 *   Manager.GetSessionByPID(u) -> o   the session --session (default
 *                                     /org/freedesktop/login1/session/c1),
 *                                     or NoSessionForPID with --no-session
 *   Manager.GetUser(u) -> o           /org/freedesktop/login1/user/_UID
 *   User.Display (so)                 ("c1", --display, default --session)
 *   Manager.Inhibit(ssss) -> h        one end of a pipe, whose closing it
 *                                     watches
 * prints "ready", then reads commands on stdin, one a line:
 *   true | false | sleep true | sleep false   emit Manager.PrepareForSleep(b)
 *   lock [PATH]                                emit Session.Lock on PATH
 *                                              (default: --session)
 * and prints what happens: "emitted ...", "get-session-by-pid PID",
 * "get-user UID", "inhibit N WHAT WHO WHY MODE", "released N" (with
 * --snapshot FILE, followed by "snapshot: LINE" for each line FILE holds at
 * that moment).
 *
 * --screen-saver NAME: owns NAME (org.gnome.ScreenSaver or
 * org.freedesktop.ScreenSaver) on the session bus instead and emits
 * NAME.ActiveChanged(b) on /org/gnome/ScreenSaver or /ScreenSaver for each
 * line "true" or "false".
 *
 * Exits at end of input.
 */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char introspection[] =
    "<node>"
    " <interface name='org.freedesktop.login1.Manager'>"
    "  <method name='GetSessionByPID'><arg type='u' direction='in'/>"
    "   <arg type='o' direction='out'/></method>"
    "  <method name='GetUser'><arg type='u' direction='in'/>"
    "   <arg type='o' direction='out'/></method>"
    "  <method name='Inhibit'><arg type='s' direction='in'/><arg type='s' direction='in'/>"
    "   <arg type='s' direction='in'/><arg type='s' direction='in'/>"
    "   <arg type='h' direction='out'/></method>"
    "  <signal name='PrepareForSleep'><arg type='b'/></signal>"
    " </interface>"
    " <interface name='org.freedesktop.login1.User'>"
    "  <property name='Display' type='(so)' access='read'/>"
    " </interface>"
    "</node>";

static GDBusConnection *bus;
static GMainLoop *loop;
static const char *session_path = "/org/freedesktop/login1/session/c1";
static const char *display_path = NULL;
static const char *snapshot_file = NULL;
static const char *screen_saver = NULL;
static gboolean no_session = FALSE;
static guint inhibitors = 0;

static void say(const char *format, ...) G_GNUC_PRINTF(1, 2);

static void
say(const char *format, ...)
{
	va_list args;

	va_start(args, format);
	vprintf(format, args);
	va_end(args);
	putchar('\n');
	fflush(stdout);
}

typedef struct {
	guint n;
	int fd;
} Inhibitor;

static gboolean
inhibitor_closed_cb(int fd, GIOCondition condition, gpointer user_data)
{
	Inhibitor *in = user_data;
	g_autofree char *contents = NULL;

	say("released %u", in->n);
	if (snapshot_file != NULL && g_file_get_contents(snapshot_file, &contents, NULL, NULL)) {
		g_auto(GStrv) lines = g_strsplit(contents, "\n", -1);
		for (guint i = 0; lines[i] != NULL; i++) {
			if (lines[i][0] != '\0')
				say("snapshot: %s", lines[i]);
		}
	}
	say("snapshot done");
	close(in->fd);
	g_free(in);
	return G_SOURCE_REMOVE;
}

static void
inhibit(GDBusMethodInvocation *invocation, GVariant *parameters)
{
	const char *what, *who, *why, *mode;
	g_autoptr(GUnixFDList) fds = g_unix_fd_list_new();
	g_autoptr(GError) error = NULL;
	Inhibitor *in;
	int pipe_fds[2];

	g_variant_get(parameters, "(&s&s&s&s)", &what, &who, &why, &mode);
	if (!g_unix_open_pipe(pipe_fds, FD_CLOEXEC, &error) ||
	    g_unix_fd_list_append(fds, pipe_fds[1], &error) < 0) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return;
	}
	close(pipe_fds[1]);
	in = g_new0(Inhibitor, 1);
	in->n = ++inhibitors;
	in->fd = pipe_fds[0];
	g_unix_fd_add(in->fd, G_IO_HUP | G_IO_ERR, inhibitor_closed_cb, in);
	say("inhibit %u %s %s '%s' %s", in->n, what, who, why, mode);
	g_dbus_method_invocation_return_value_with_unix_fd_list(invocation,
								g_variant_new("(h)", 0),
								fds);
}

static void
method_call(GDBusConnection *connection,
	    const char *sender,
	    const char *object_path,
	    const char *interface_name,
	    const char *method_name,
	    GVariant *parameters,
	    GDBusMethodInvocation *invocation,
	    gpointer user_data)
{
	guint32 n = 0;

	if (g_str_equal(method_name, "GetSessionByPID")) {
		g_variant_get(parameters, "(u)", &n);
		say("get-session-by-pid %u", n);
		if (no_session)
			g_dbus_method_invocation_return_dbus_error(
			    invocation,
			    "org.freedesktop.login1.NoSessionForPID",
			    "PID does not belong to any known session");
		else
			g_dbus_method_invocation_return_value(invocation,
							      g_variant_new("(o)", session_path));
	} else if (g_str_equal(method_name, "GetUser")) {
		g_autofree char *path = NULL;
		g_variant_get(parameters, "(u)", &n);
		say("get-user %u", n);
		path = g_strdup_printf("/org/freedesktop/login1/user/_%u", n);
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(o)", path));
	} else if (g_str_equal(method_name, "Inhibit")) {
		inhibit(invocation, parameters);
	} else {
		g_dbus_method_invocation_return_dbus_error(
		    invocation,
		    "org.freedesktop.DBus.Error.UnknownMethod",
		    method_name);
	}
}

static GVariant *
get_property(GDBusConnection *connection,
	     const char *sender,
	     const char *object_path,
	     const char *interface_name,
	     const char *property_name,
	     GError **error,
	     gpointer user_data)
{
	return g_variant_new("(so)", "c1", display_path != NULL ? display_path : session_path);
}

static const GDBusInterfaceVTable vtable = {.method_call = method_call,
					    .get_property = get_property};

static void
emit(const char *path, const char *iface, const char *signal, GVariant *parameters)
{
	g_autoptr(GError) error = NULL;

	if (!g_dbus_connection_emit_signal(bus, NULL, path, iface, signal, parameters, &error)) {
		g_printerr("%s\n", error->message);
		exit(1);
	}
	g_dbus_connection_flush_sync(bus, NULL, NULL);
}

static void
command(char *line)
{
	g_strstrip(line);
	if (screen_saver != NULL) {
		gboolean active = g_str_equal(line, "true");
		emit(g_str_equal(screen_saver, "org.gnome.ScreenSaver") ? "/org/gnome/ScreenSaver"
									: "/ScreenSaver",
		     screen_saver,
		     "ActiveChanged",
		     g_variant_new("(b)", active));
		say("emitted ActiveChanged %s", active ? "true" : "false");
		return;
	}
	if (g_str_has_prefix(line, "sleep "))
		line += strlen("sleep ");
	if (g_str_equal(line, "true") || g_str_equal(line, "false")) {
		gboolean start = g_str_equal(line, "true");
		emit("/org/freedesktop/login1",
		     "org.freedesktop.login1.Manager",
		     "PrepareForSleep",
		     g_variant_new("(b)", start));
		say("emitted %s", start ? "true" : "false");
	} else if (g_str_has_prefix(line, "lock")) {
		const char *path = line[4] == ' ' ? line + 5 : session_path;
		if (!g_variant_is_object_path(path)) {
			g_printerr("not an object path: %s\n", path);
			exit(1);
		}
		emit(path, "org.freedesktop.login1.Session", "Lock", NULL);
		say("emitted lock %s", path);
	} else if (line[0] != '\0') {
		g_printerr("unknown command: %s\n", line);
		exit(1);
	}
}

static gboolean
stdin_cb(GIOChannel *channel, GIOCondition condition, gpointer user_data)
{
	g_autofree char *line = NULL;
	GIOStatus status = g_io_channel_read_line(channel, &line, NULL, NULL, NULL);

	if (status == G_IO_STATUS_AGAIN)
		return G_SOURCE_CONTINUE;
	if (status != G_IO_STATUS_NORMAL) {
		g_main_loop_quit(loop);
		return G_SOURCE_REMOVE;
	}
	command(line);
	return G_SOURCE_CONTINUE;
}

static gboolean
own(const char *name, GError **error)
{
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_sync(bus,
						"org.freedesktop.DBus",
						"/org/freedesktop/DBus",
						"org.freedesktop.DBus",
						"RequestName",
						g_variant_new("(su)", name, 4 /* DO_NOT_QUEUE */),
						G_VARIANT_TYPE("(u)"),
						G_DBUS_CALL_FLAGS_NONE,
						-1,
						NULL,
						error);
	guint32 result = 0;

	if (reply == NULL)
		return FALSE;
	g_variant_get(reply, "(u)", &result);
	if (result != 1) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS, "%s is owned already", name);
		return FALSE;
	}
	return TRUE;
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GOptionContext) options = g_option_context_new("");
	g_autoptr(GDBusNodeInfo) node = NULL;
	g_autoptr(GIOChannel) in = NULL;
	g_autofree char *user_path = NULL;
	const GOptionEntry entries[] = {
	    {"no-session", 0, 0, G_OPTION_ARG_NONE, &no_session, "GetSessionByPID fails", NULL},
	    {"session", 0, 0, G_OPTION_ARG_STRING, &session_path, "The session", "PATH"},
	    {"display", 0, 0, G_OPTION_ARG_STRING, &display_path, "User.Display", "PATH"},
	    {"snapshot", 0, 0, G_OPTION_ARG_FILENAME, &snapshot_file, "Print at release", "FILE"},
	    {"screen-saver", 0, 0, G_OPTION_ARG_STRING, &screen_saver, "Be this", "NAME"},
	    G_OPTION_ENTRY_NULL,
	};

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error)) {
		g_printerr("%s\n", error->message);
		return 2;
	}
	bus = g_bus_get_sync(screen_saver != NULL ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM,
			     NULL,
			     &error);
	if (bus == NULL) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	if (screen_saver == NULL) {
		node = g_dbus_node_info_new_for_xml(introspection, &error);
		g_assert_no_error(error);
		user_path = g_strdup_printf("/org/freedesktop/login1/user/_%u", (guint)getuid());
		if (g_dbus_connection_register_object(bus,
						      "/org/freedesktop/login1",
						      node->interfaces[0],
						      &vtable,
						      NULL,
						      NULL,
						      &error) == 0 ||
		    g_dbus_connection_register_object(bus,
						      user_path,
						      node->interfaces[1],
						      &vtable,
						      NULL,
						      NULL,
						      &error) == 0) {
			g_printerr("%s\n", error->message);
			return 1;
		}
	}
	if (!own(screen_saver != NULL ? screen_saver : "org.freedesktop.login1", &error)) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	loop = g_main_loop_new(NULL, FALSE);
	in = g_io_channel_unix_new(STDIN_FILENO);
	g_io_add_watch(in, G_IO_IN | G_IO_HUP | G_IO_ERR, stdin_cb, NULL);
	say("ready");
	g_main_loop_run(loop);
	g_main_loop_unref(loop);
	g_object_unref(bus);
	return 0;
}
