/*
 * kmx-bench-lib: Ed25519 signatures through libkeymux, one client, one
 * call at a time: over its peer connection (Manager.OpenConnection) and,
 * for comparison, the same call through the bus
 *
 *   kmx-bench-lib SECONDS
 *
 * Prints "p2p <signatures/s> <p50 µs> <p99 µs>" and the same for "bus".
 * Needs keymuxd on
 * the session bus; makes an Ed25519 key in softkey:login if it has none.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>
#include <stdlib.h>

#include "keymux.h"

static void
die(GError *error)
{
	fprintf(stderr, "kmx-bench-lib: %s\n", error->message);
	exit(1);
}

static int
cmp_gint64(gconstpointer a, gconstpointer b)
{
	gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
	return x < y ? -1 : x > y;
}

/* signs for @seconds; prints @what, signatures per second, p50 and p99 µs */
static void
rate(const char *what, KeymuxKey *key, GBytes *msg, double seconds)
{
	gint64 start = g_get_monotonic_time(), now = start, before;
	g_autoptr(GArray) lat = g_array_new(FALSE, FALSE, sizeof(gint64));

	do {
		GError *error = NULL;
		g_autoptr(GBytes) sig = NULL;
		gint64 d;

		before = now;
		sig = keymux_key_sign_sync(key, "ed25519", msg, KEYMUX_CALL_FLAGS_NONE, NULL, &error);
		if (sig == NULL)
			die(error);
		now = g_get_monotonic_time();
		d = now - before;
		g_array_append_val(lat, d);
	} while (now - start < (gint64)(seconds * G_USEC_PER_SEC));
	g_array_sort(lat, cmp_gint64);
	printf("%s %.0f %" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n",
	       what,
	       (double)lat->len * G_USEC_PER_SEC / (double)(now - start),
	       g_array_index(lat, gint64, lat->len / 2),
	       g_array_index(lat, gint64, lat->len * 99 / 100));
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	GError *error = NULL;
	double seconds = argc > 1 ? g_ascii_strtod(argv[1], NULL) : 3.0;
	g_autoptr(KeymuxClient) client = keymux_client_new_sync(NULL, &error);
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KeymuxKey) key = NULL;
	g_autoptr(KeymuxKey) bus_key = NULL;
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(GBytes) msg = g_bytes_new_static("a 32-byte challenge, as ssh has", 32);
	GList *keys;

	if (client == NULL)
		die(error);
	if (!keymux_client_get_peer_to_peer(client)) {
		fprintf(stderr, "kmx-bench-lib: keymuxd gave no peer connection\n");
		return 1;
	}
	device = keymux_client_lookup_device(client, "softkey:login");
	if (device == NULL) {
		fprintf(stderr, "kmx-bench-lib: no softkey:login\n");
		return 1;
	}
	keys = keymux_device_get_keys(device);
	for (GList *l = keys; l != NULL && key == NULL; l = l->next) {
		if (g_strcmp0(keymux_key_get_algorithm(l->data), "ed25519") == 0)
			key = g_object_ref(l->data);
	}
	g_list_free_full(keys, g_object_unref);
	if (key == NULL &&
	    (key = keymux_device_generate_key_sync(device, "ed25519", "bench", 0, NULL, &error)) ==
		NULL)
		die(error);
	rate("p2p", key, msg, seconds);

	/* the same key's object through the bus */
	bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (bus == NULL)
		die(error);
	bus_key = g_initable_new(KEYMUX_TYPE_KEY,
				 NULL,
				 &error,
				 "g-connection",
				 bus,
				 "g-name",
				 "org.keymux.Keystore1",
				 "g-object-path",
				 g_dbus_proxy_get_object_path(G_DBUS_PROXY(key)),
				 "g-interface-name",
				 "org.keymux.Keystore1.Key",
				 NULL);
	if (bus_key == NULL)
		die(error);
	rate("bus", bus_key, msg, seconds);
	return 0;
}
