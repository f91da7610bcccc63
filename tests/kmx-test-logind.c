/* keymux test fixture: stands in for logind on a private "system" bus
 *
 * Owns org.freedesktop.login1, prints "ready", then emits
 * org.freedesktop.login1.Manager.PrepareForSleep(b) for each line "true" or
 * "false" read on stdin.  Exits at end of input.
 */
#include "config.h"

#include <gio/gio.h>
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) bus = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
	g_autoptr(GVariant) reply = NULL;
	char line[64];

	if (bus == NULL) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	reply = g_dbus_connection_call_sync(bus,
					    "org.freedesktop.DBus",
					    "/org/freedesktop/DBus",
					    "org.freedesktop.DBus",
					    "RequestName",
					    g_variant_new("(su)", "org.freedesktop.login1", 0),
					    G_VARIANT_TYPE("(u)"),
					    G_DBUS_CALL_FLAGS_NONE,
					    -1,
					    NULL,
					    &error);
	if (reply == NULL) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		gboolean start = strncmp(line, "true", 4) == 0;
		if (!g_dbus_connection_emit_signal(bus,
						   NULL,
						   "/org/freedesktop/login1",
						   "org.freedesktop.login1.Manager",
						   "PrepareForSleep",
						   g_variant_new("(b)", start),
						   &error)) {
			g_printerr("%s\n", error->message);
			return 1;
		}
		g_dbus_connection_flush_sync(bus, NULL, NULL);
		printf("emitted %s\n", start ? "true" : "false");
		fflush(stdout);
	}
	return 0;
}
