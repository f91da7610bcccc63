/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl monitor: print devices and keys as they come, go and change
 *
 * Everything comes from the ObjectManager signals and PropertiesChanged,
 * which keymuxd emits for every change: nothing is polled.
 */
#include "config.h"

#include <stdio.h>

#include <glib-unix.h>

#include "keymuxctl.h"

typedef struct {
	KmxCli *cli;
	GMainLoop *loop;
	GHashTable *known;   /* object path → "device ID" or "key ID" */
	gboolean running;    /* keymuxd owns its name */
	GPtrArray *followed; /* the devices and keys whose changes are printed */
	GError *error;
} KmxMonitor;

static void
kmx_monitor_emit(KmxMonitor *self,
		 const char *event,
		 const char *kind,
		 const char *id,
		 const char *device,
		 GVariant *properties)
{
	if (self->cli->json) {
		g_autoptr(KmxJson) json = kmx_json_new();
		g_autoptr(GDateTime) now = g_date_time_new_now_utc();
		g_autofree char *time = g_date_time_format_iso8601(now);
		kmx_json_begin_object(json);
		kmx_json_key(json, "time");
		kmx_json_string(json, time);
		kmx_json_key(json, "event");
		kmx_json_string(json, event);
		if (kind != NULL) {
			kmx_json_key(json, kind);
			kmx_json_string(json, id);
		}
		if (device != NULL) {
			kmx_json_key(json, "device");
			kmx_json_string(json, device);
		}
		if (properties != NULL) {
			kmx_json_key(json, "properties");
			kmx_json_variant(json, properties);
		}
		kmx_json_end_object(json);
		kmx_json_print(json);
		return;
	}
	{
		g_autoptr(GString) line = g_string_new(event);
		if (id != NULL)
			g_string_append_printf(line, " %s", id);
		if (device != NULL)
			g_string_append_printf(line, " device=%s", device);
		if (properties != NULL) {
			GVariantIter iter;
			const char *name;
			GVariant *value;
			g_variant_iter_init(&iter, properties);
			while (g_variant_iter_next(&iter, "{&sv}", &name, &value)) {
				g_autofree char *text = NULL;
				/* lists of paths repeat what key-added and key-removed say */
				if (!g_variant_is_of_type(value,
							  G_VARIANT_TYPE_OBJECT_PATH_ARRAY)) {
					text = g_variant_print(value, FALSE);
					g_string_append_printf(line, " %s=%s", name, text);
				}
				g_variant_unref(value);
			}
		}
		g_print("%s\n", line->str);
		/* output goes to files and pipes: each event as it happens */
		fflush(stdout);
	}
}

static GVariant *
kmx_monitor_string(const char *value)
{
	return g_variant_new_string(value != NULL ? value : "");
}

/* the properties worth showing when an object appears */
static GVariant *
kmx_monitor_summary(gpointer object)
{
	g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);

	if (KEYMUX_IS_DEVICE(object)) {
		KeymuxDevice *device = object;
		g_variant_builder_add(&builder,
				      "{sv}",
				      "Label",
				      kmx_monitor_string(kmx_cli_label(device)));
		g_variant_builder_add(&builder,
				      "{sv}",
				      "Locked",
				      g_variant_new_boolean(keymux_device_get_locked(device)));
		g_variant_builder_add(&builder,
				      "{sv}",
				      "Available",
				      g_variant_new_boolean(keymux_device_get_available(device)));
	} else {
		KeymuxKey *key = object;
		g_variant_builder_add(&builder,
				      "{sv}",
				      "Algorithm",
				      kmx_monitor_string(keymux_key_get_algorithm(key)));
		g_variant_builder_add(&builder,
				      "{sv}",
				      "Label",
				      kmx_monitor_string(kmx_cli_label(key)));
	}
	return g_variant_ref_sink(g_variant_builder_end(&builder));
}

static void
kmx_monitor_properties_changed(GDBusProxy *proxy,
			       GVariant *changed,
			       const char *const *invalidated,
			       gpointer user_data)
{
	KmxMonitor *self = user_data;

	if (g_variant_n_children(changed) == 0)
		return;
	if (KEYMUX_IS_DEVICE(proxy)) {
		kmx_monitor_emit(self,
				 "device-changed",
				 "id",
				 keymux_device_get_id(KEYMUX_DEVICE(proxy)),
				 NULL,
				 changed);
	} else if (KEYMUX_IS_KEY(proxy)) {
		kmx_monitor_emit(self,
				 "key-changed",
				 "id",
				 keymux_key_get_id(KEYMUX_KEY(proxy)),
				 kmx_cli_key_device_id(self->cli, KEYMUX_KEY(proxy)),
				 changed);
		/* a new label changes nothing we remember, an id never changes */
	}
}

/* remembers what @object is, for when it goes, and follows its changes */
static void
kmx_monitor_remember(KmxMonitor *self, gpointer object)
{
	const char *path = g_dbus_proxy_get_object_path(object);

	if (KEYMUX_IS_DEVICE(object)) {
		g_hash_table_insert(self->known,
				    g_strdup(path),
				    g_strdup_printf("device %s", keymux_device_get_id(object)));
	} else {
		g_hash_table_insert(self->known,
				    g_strdup(path),
				    g_strdup_printf("key %s %s",
						    keymux_key_get_id(object),
						    kmx_cli_key_device_id(self->cli, object)));
	}
	if (g_ptr_array_find(self->followed, object, NULL))
		return;
	g_signal_connect(object,
			 "g-properties-changed",
			 G_CALLBACK(kmx_monitor_properties_changed),
			 self);
	g_ptr_array_add(self->followed, g_object_ref(object));
}

static void
kmx_monitor_added(KeymuxClient *client, gpointer object, gpointer user_data)
{
	KmxMonitor *self = user_data;
	g_autoptr(GVariant) summary = kmx_monitor_summary(object);

	kmx_monitor_remember(self, object);
	if (KEYMUX_IS_DEVICE(object)) {
		kmx_monitor_emit(self,
				 "device-added",
				 "id",
				 keymux_device_get_id(object),
				 NULL,
				 summary);
	} else {
		kmx_monitor_emit(self,
				 "key-added",
				 "id",
				 keymux_key_get_id(object),
				 kmx_cli_key_device_id(self->cli, object),
				 summary);
	}
}

static void
kmx_monitor_removed(KeymuxClient *client, gpointer object, gpointer user_data)
{
	KmxMonitor *self = user_data;
	const char *path = g_dbus_proxy_get_object_path(object);
	const char *what = g_hash_table_lookup(self->known, path);
	g_auto(GStrv) parts = NULL;

	if (g_ptr_array_find(self->followed, object, NULL)) {
		g_signal_handlers_disconnect_by_data(object, self);
		g_ptr_array_remove_fast(self->followed, object);
	}
	/* the properties may be gone already, so use what was seen on arrival */
	if (what == NULL)
		return;
	parts = g_strsplit(what, " ", 3);
	if (g_strcmp0(parts[0], "device") == 0)
		kmx_monitor_emit(self, "device-removed", "id", parts[1], NULL, NULL);
	else
		kmx_monitor_emit(self, "key-removed", "id", parts[1], parts[2], NULL);
	g_hash_table_remove(self->known, path);
}

static void
kmx_monitor_running_changed(GObject *object, GParamSpec *pspec, gpointer user_data)
{
	KmxMonitor *self = user_data;
	gboolean running = keymux_client_get_running(KEYMUX_CLIENT(object));

	if (running == self->running)
		return;
	self->running = running;
	kmx_monitor_emit(self,
			 self->running ? "service-started" : "service-stopped",
			 NULL,
			 NULL,
			 NULL,
			 NULL);
}

static void
kmx_monitor_bus_closed(GDBusConnection *bus,
		       gboolean remote_peer_vanished,
		       GError *error,
		       gpointer user_data)
{
	KmxMonitor *self = user_data;

	if (self->error == NULL) {
		self->error = g_error_new(KEYMUX_ERROR,
					  KEYMUX_ERROR_UNAVAILABLE,
					  "the bus connection closed: %s",
					  error != NULL ? error->message : "no reason given");
	}
	g_main_loop_quit(self->loop);
}

static gboolean
kmx_monitor_quit(gpointer user_data)
{
	KmxMonitor *self = user_data;

	g_main_loop_quit(self->loop);
	return G_SOURCE_CONTINUE;
}

gboolean
kmx_cmd_monitor(KmxCli *cli, int argc, char **argv, GError **error)
{
	KmxMonitor self = {.cli = cli};
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	g_autoptr(GHashTable)
	    known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_autoptr(GPtrArray) followed = g_ptr_array_new_with_free_func(g_object_unref);
	GList *objects;
	guint sigint;
	guint sigterm;

	if (!kmx_cli_parse_options(cli,
				   "monitor",
				   "",
				   "Print devices and keys as they are added, removed or changed, "
				   "one line per event, until Ctrl-C.",
				   NULL,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("monitor", argc, 0, 0, error))
		return FALSE;
	/* a monitor may start before keymuxd and see it arrive */
	if (!kmx_cli_connect(cli, FALSE, error))
		return FALSE;

	self.loop = loop;
	self.known = known;
	self.followed = followed;
	objects = g_list_concat(keymux_client_get_devices(cli->client),
				keymux_client_get_keys(cli->client));
	for (GList *l = objects; l != NULL; l = l->next)
		kmx_monitor_remember(&self, l->data);
	g_list_free_full(objects, g_object_unref);

	g_signal_connect(cli->client, "device-added", G_CALLBACK(kmx_monitor_added), &self);
	g_signal_connect(cli->client, "key-added", G_CALLBACK(kmx_monitor_added), &self);
	g_signal_connect(cli->client, "device-removed", G_CALLBACK(kmx_monitor_removed), &self);
	g_signal_connect(cli->client, "key-removed", G_CALLBACK(kmx_monitor_removed), &self);
	g_signal_connect(cli->client,
			 "notify::running",
			 G_CALLBACK(kmx_monitor_running_changed),
			 &self);
	g_signal_connect(cli->bus, "closed", G_CALLBACK(kmx_monitor_bus_closed), &self);
	sigint = g_unix_signal_add(SIGINT, kmx_monitor_quit, &self);
	sigterm = g_unix_signal_add(SIGTERM, kmx_monitor_quit, &self);

	self.running = keymux_client_get_running(cli->client);
	/* on stderr, so stdout holds only events; tests wait for this line */
	g_printerr("keymuxctl: monitoring %s (%s), Ctrl-C to stop\n",
		   KMX_DBUS_NAME,
		   self.running ? "running" : "not running yet");
	g_main_loop_run(loop);

	g_source_remove(sigint);
	g_source_remove(sigterm);
	g_signal_handlers_disconnect_by_data(cli->client, &self);
	for (guint i = 0; i < followed->len; i++)
		g_signal_handlers_disconnect_by_data(g_ptr_array_index(followed, i), &self);
	g_signal_handlers_disconnect_by_data(cli->bus, &self);
	if (self.error != NULL) {
		g_propagate_error(error, self.error);
		return FALSE;
	}
	return TRUE;
}
