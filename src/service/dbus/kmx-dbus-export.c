/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: devices and keys on the bus
 *
 * A device is the root of a GDBus subtree at devices/<escaped id>; its keys
 * are the nodes below it.  Nothing is allocated per key for the bus: method
 * calls, properties and introspection are answered from the model, so a
 * store of 10,000 keys costs what its keys cost.  The root object's
 * org.freedesktop.DBus.ObjectManager is ours too: GetManagedObjects is built
 * from the model, and every change is announced with InterfacesAdded,
 * InterfacesRemoved and PropertiesChanged, so clients never poll.
 */
#include "config.h"

#include <string.h>

#include "kmx-dbus-private.h"
#include "kmx-error.h"
#include "kmx-key-table.h"
#include "kmx-names.h"

#define PROPERTIES_IFACE     "org.freedesktop.DBus.Properties"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"

struct _KmxExportedDevice {
	KmxDBusService *service; /* borrowed: the service owns us */
	KmxDevice *device;
	GArray *links; /* KmxExportedLink: the bus, and every peer connection */
	char *path;
	KmxKeyTable *keys; /* what the bus was told of */
	/* Keys, the sorted key paths as an ao, serialised: built when first
	 * asked for after the keys changed, shared by Properties.Get,
	 * GetManagedObjects and (a single device's) ListKeys */
	GVariant *key_paths;
	gulong notify_id;
	gulong keys_changed_id;
	gulong key_label_id;
	/* the last state announced, to send only what changed */
	KmxDeviceFlags flags;
	char *label;
	int pin_retries;
	GVariant *details;
};

/* the device's subtree on one connection */
typedef struct {
	GDBusConnection *connection;
	guint registration_id;
} KmxExportedLink;

const char *
kmx_exported_device_get_path(KmxExportedDevice *edev)
{
	return edev->path;
}

/* ---- properties from the model ------------------------------------------ */

static gint
kmx_compare_strings(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/**
 * kmx_exported_device_get_key_paths:
 *
 * Returns: (transfer full): the key object paths, sorted
 */
GPtrArray *
kmx_exported_device_get_key_paths(KmxExportedDevice *edev)
{
	GPtrArray *paths = g_ptr_array_new_full(kmx_key_table_size(edev->keys) + 1, g_free);
	KmxKeyTableIter iter;
	KmxKey *key;

	kmx_key_table_iter_init(&iter, edev->keys);
	while (kmx_key_table_iter_next(&iter, &key))
		g_ptr_array_add(paths, g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL));
	g_ptr_array_sort(paths, kmx_compare_strings);
	return paths;
}

/* the Keys property made afresh, serialised as it is written: no tree of
 * 10,000 GVariants (~2 MB for a moment, and a heap left that much larger),
 * no list of 10,000 paths; GLib checks each path as it goes in */
static GVariant *
kmx_key_paths_new(KmxExportedDevice *edev)
{
	g_autoptr(GPtrArray) ids = g_ptr_array_new_full(kmx_key_table_size(edev->keys), NULL);
	g_autoptr(GString) path = g_string_new(edev->path);
	KmxVariantArray *paths = kmx_variant_array_new(G_VARIANT_TYPE_OBJECT_PATH);
	KmxKeyTableIter iter;
	KmxKey *key;
	gsize prefix;

	kmx_key_table_iter_init(&iter, edev->keys);
	while (kmx_key_table_iter_next(&iter, &key))
		g_ptr_array_add(ids, (gpointer)kmx_key_get_id(key));
	/* the paths share everything up to the id: sorted as the ids are */
	g_ptr_array_sort(ids, kmx_compare_strings);
	g_string_append_c(path, '/');
	prefix = path->len;
	for (guint i = 0; i < ids->len; i++) {
		g_string_truncate(path, prefix);
		g_string_append(path, ids->pdata[i]);
		kmx_variant_array_append(paths, g_variant_new_object_path(path->str));
	}
	return kmx_variant_array_end(paths, FALSE);
}

/**
 * kmx_exported_device_get_key_paths_variant:
 *
 * The paths are ours (the escaped device id, key ids), and
 * g_variant_new_objv() checks each once when they change; from then on the
 * serialised array is trusted, not checked again for every reply.
 *
 * Returns: (transfer none): the Keys property, an ao, not floating
 */
GVariant *
kmx_exported_device_get_key_paths_variant(KmxExportedDevice *edev)
{
	if (edev->key_paths == NULL)
		edev->key_paths = kmx_key_paths_new(edev);
	return edev->key_paths;
}

/**
 * kmx_exported_device_get_n_keys:
 */
guint
kmx_exported_device_get_n_keys(KmxExportedDevice *edev)
{
	return kmx_key_table_size(edev->keys);
}

static GVariant *
kmx_key_paths_variant(KmxExportedDevice *edev)
{
	return g_variant_ref(kmx_exported_device_get_key_paths_variant(edev));
}

/* the device's Details, with the admin secret's retry counter */
static GVariant *
kmx_exported_details(KmxDevice *device)
{
	g_autoptr(GVariant) details = kmx_device_dup_details(device);
	GVariantDict dict;

	if (kmx_device_get_admin_retries(device) < 0)
		return g_steal_pointer(&details);
	g_variant_dict_init(&dict, details);
	g_variant_dict_insert(&dict, "admin-retries", "i", kmx_device_get_admin_retries(device));
	return g_variant_ref_sink(g_variant_dict_end(&dict));
}

static GVariant *
kmx_device_property_new(KmxExportedDevice *edev, const char *name)
{
	KmxDevice *device = edev->device;
	KmxDeviceFlags flags = kmx_device_get_flags(device);

	if (g_str_equal(name, "Id"))
		return g_variant_new_string(kmx_device_get_id(device));
	if (g_str_equal(name, "Backend"))
		return g_variant_new_string(kmx_device_get_backend_name(device));
	if (g_str_equal(name, "Label"))
		return g_variant_new_take_string(kmx_device_dup_label(device));
	if (g_str_equal(name, "Locked"))
		return g_variant_new_boolean((flags & KMX_DEVICE_FLAG_LOCKED) != 0);
	if (g_str_equal(name, "Registered"))
		return g_variant_new_boolean((flags & KMX_DEVICE_FLAG_REGISTERED) != 0);
	if (g_str_equal(name, "Available"))
		return g_variant_new_boolean((flags & KMX_DEVICE_FLAG_AVAILABLE) != 0);
	if (g_str_equal(name, "PinRetries"))
		return g_variant_new_int32(kmx_device_get_pin_retries(device));
	if (g_str_equal(name, "Keys"))
		return kmx_key_paths_variant(edev);
	if (g_str_equal(name, "Details"))
		return kmx_exported_details(device);
	return NULL;
}

static GVariant *
kmx_key_property_new(KmxExportedDevice *edev, KmxKey *key, const char *name)
{
	KmxDeviceFlags flags = kmx_device_get_flags(edev->device);

	if (g_str_equal(name, "Id"))
		return g_variant_new_string(kmx_key_get_id(key));
	if (g_str_equal(name, "Device"))
		return g_variant_new_object_path(edev->path);
	if (g_str_equal(name, "Label"))
		return g_variant_new_take_string(kmx_key_dup_label(key));
	if (g_str_equal(name, "Algorithm"))
		return g_variant_new_string(kmx_key_type_to_string(kmx_key_get_key_type(key)));
	if (g_str_equal(name, "Usage")) {
		g_auto(GStrv) usage = kmx_key_usage_to_strv(kmx_key_get_usage(key));
		return g_variant_new_strv((const char *const *)usage, -1);
	}
	if (g_str_equal(name, "PublicKey")) {
		gsize len;
		const guint8 *spki = kmx_key_get_public_key_data(key, &len);
		return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE,
						 spki,
						 spki != NULL ? len : 0,
						 1);
	}
	if (g_str_equal(name, "Locked"))
		return g_variant_new_boolean((flags & KMX_DEVICE_FLAG_LOCKED) != 0);
	if (g_str_equal(name, "Available"))
		return g_variant_new_boolean((flags & KMX_DEVICE_FLAG_AVAILABLE) != 0);
	if (g_str_equal(name, "Exportable"))
		return g_variant_new_boolean(kmx_key_get_exportable(key));
	return NULL;
}

/* the property functions return a reference of their own, never floating */
static GVariant *
kmx_owned(GVariant *v)
{
	if (v != NULL && g_variant_is_floating(v))
		g_variant_ref_sink(v);
	return v;
}

static GVariant *
kmx_device_property(KmxExportedDevice *edev, const char *name)
{
	return kmx_owned(kmx_device_property_new(edev, name));
}

static GVariant *
kmx_key_property(KmxExportedDevice *edev, KmxKey *key, const char *name)
{
	return kmx_owned(kmx_key_property_new(edev, key, name));
}

/* adds a property and drops our reference to its value; built directly,
 * not through a format string GLib would parse for every property of
 * every key of a GetManagedObjects reply */
static void
kmx_builder_take(GVariantBuilder *b, const char *name, GVariant *owned)
{
	g_variant_builder_add_value(
	    b,
	    g_variant_new_dict_entry(g_variant_new_string(name), g_variant_new_variant(owned)));
	g_variant_unref(owned);
}

static GVariant *
kmx_all_properties(GDBusInterfaceInfo *info, KmxExportedDevice *edev, KmxKey *key)
{
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	for (guint i = 0; info->properties[i] != NULL; i++) {
		const char *name = info->properties[i]->name;
		GVariant *v;

		/* the device's Keys goes into a reply or a signal serialised:
		 * the shared array if it is there, else one made for it and
		 * dropped with it.  Kept, it would add 1.15 MB (10,000 keys)
		 * to GetManagedObjects' peak and to the rest that follows,
		 * for a ListKeys that may never come */
		if (key == NULL && g_str_equal(name, "Keys"))
			v = edev->key_paths != NULL ? g_variant_ref(edev->key_paths)
						    : kmx_key_paths_new(edev);
		else
			v = key != NULL ? kmx_key_property(edev, key, name)
					: kmx_device_property(edev, name);
		if (v != NULL)
			kmx_builder_take(&b, name, v);
	}
	return g_variant_builder_end(&b);
}

/* {interface: {property: value}} of one object, for the ObjectManager */
static GVariant *
kmx_object_interfaces(KmxExportedDevice *edev, KmxKey *key)
{
	GDBusInterfaceInfo *info = key != NULL ? kmx_dbus_key_interface_info()
					       : kmx_dbus_device_interface_info();
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("a{sa{sv}}"));
	g_variant_builder_add(&b, "{s@a{sv}}", info->name, kmx_all_properties(info, edev, key));
	return g_variant_builder_end(&b);
}

/* ---- signals ------------------------------------------------------------- */

static void
kmx_emit(KmxExportedDevice *edev,
	 const char *path,
	 const char *interface,
	 const char *signal,
	 GVariant *parameters)
{
	g_variant_ref_sink(parameters);
	/* every connection the device is served on hears of it */
	for (guint i = 0; i < edev->links->len; i++) {
		KmxExportedLink *link = &g_array_index(edev->links, KmxExportedLink, i);
		g_autoptr(GError) error = NULL;

		if (!g_dbus_connection_emit_signal(link->connection,
						   NULL,
						   path,
						   interface,
						   signal,
						   parameters,
						   &error))
			g_debug("cannot emit %s: %s", signal, error->message);
	}
	g_variant_unref(parameters);
}

static void
kmx_emit_interfaces_added(KmxExportedDevice *edev, const char *path, KmxKey *key)
{
	kmx_emit(edev,
		 KMX_DBUS_PATH,
		 OBJECT_MANAGER_IFACE,
		 "InterfacesAdded",
		 g_variant_new("(o@a{sa{sv}})", path, kmx_object_interfaces(edev, key)));
}

static void
kmx_emit_interfaces_removed(KmxExportedDevice *edev, const char *path, const char *interface)
{
	const char *ifaces[] = {interface, NULL};
	kmx_emit(edev,
		 KMX_DBUS_PATH,
		 OBJECT_MANAGER_IFACE,
		 "InterfacesRemoved",
		 g_variant_new("(o^as)", path, ifaces));
}

static void
kmx_emit_properties_changed(KmxExportedDevice *edev,
			    const char *path,
			    const char *interface,
			    GVariantBuilder *changed)
{
	kmx_emit(edev,
		 path,
		 PROPERTIES_IFACE,
		 "PropertiesChanged",
		 g_variant_new("(sa{sv}as)", interface, changed, NULL));
}

static void
kmx_exported_key_label_cb(KmxDevice *device, KmxKey *key, KmxExportedDevice *edev)
{
	g_autofree char *path = NULL;
	GVariantBuilder b;

	if (kmx_key_table_lookup(edev->keys, kmx_key_get_id(key)) != key)
		return;
	path = g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL);
	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	kmx_builder_take(&b, "Label", kmx_key_property(edev, key, "Label"));
	kmx_emit_properties_changed(edev, path, KMX_DBUS_KEY_INTERFACE, &b);
}

/* ---- following the model --------------------------------------------------- */

static void
kmx_exported_device_sync_keys(KmxExportedDevice *edev, gboolean announce)
{
	GPtrArray *keys = kmx_device_get_keys(edev->device);
	g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
	gboolean changed = FALSE;
	/* the first look at the device (start-up: 10,000 keys) has nothing
	 * to compare with, and nothing can have gone */
	gboolean first = kmx_key_table_size(edev->keys) == 0;
	KmxKeyTableIter iter;
	KmxKey *known;

	for (guint i = 0; i < keys->len; i++) {
		KmxKey *key = g_ptr_array_index(keys, i);
		const char *key_id = kmx_key_get_id(key);

		known = first ? NULL : kmx_key_table_lookup(edev->keys, key_id);
		if (known == key)
			continue;
		if (known != NULL) {
			/* the same key on a device object that came back */
			g_autofree char *old_label = kmx_key_dup_label(known);
			g_autofree char *new_label = kmx_key_dup_label(key);

			kmx_key_table_insert(edev->keys, key);
			if (announce && g_strcmp0(old_label, new_label) != 0)
				kmx_exported_key_label_cb(edev->device, key, edev);
			continue;
		}
		kmx_key_table_insert(edev->keys, key);
		changed = TRUE;
		if (announce) {
			g_autofree char *path = g_strconcat(edev->path, "/", key_id, NULL);
			kmx_emit_interfaces_added(edev, path, key);
		}
	}
	kmx_key_table_iter_init(&iter, edev->keys);
	while (!first && kmx_key_table_iter_next(&iter, &known)) {
		/* still on the device: its own table says so */
		if (kmx_device_find_key(edev->device, kmx_key_get_id(known)) != NULL)
			continue;
		changed = TRUE;
		g_ptr_array_add(gone, g_strconcat(edev->path, "/", kmx_key_get_id(known), NULL));
		kmx_key_table_iter_remove(&iter);
	}
	if (changed) {
		g_clear_pointer(&edev->key_paths, g_variant_unref);
		kmx_dbus_service_keys_changed(edev->service);
	}
	for (guint i = 0; announce && i < gone->len; i++)
		kmx_emit_interfaces_removed(edev, gone->pdata[i], KMX_DBUS_KEY_INTERFACE);
	if (changed && announce) {
		GVariantBuilder b;
		g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
		g_variant_builder_add(&b,
				      "{sv}",
				      "Keys",
				      kmx_exported_device_get_key_paths_variant(edev));
		kmx_emit_properties_changed(edev, edev->path, KMX_DBUS_DEVICE_INTERFACE, &b);
	}
}

static void
kmx_exported_device_remember_state(KmxExportedDevice *edev)
{
	edev->flags = kmx_device_get_flags(edev->device);
	g_free(edev->label);
	edev->label = kmx_device_dup_label(edev->device);
	edev->pin_retries = kmx_device_get_pin_retries(edev->device);
	g_clear_pointer(&edev->details, g_variant_unref);
	edev->details = kmx_exported_details(edev->device);
}

/* one PropertiesChanged with what changed since the last one */
static void
kmx_exported_device_sync_state(KmxExportedDevice *edev)
{
	KmxDeviceFlags old_flags = edev->flags;
	g_autofree char *old_label = g_strdup(edev->label);
	int old_retries = edev->pin_retries;
	g_autoptr(GVariant) old_details = g_variant_ref(edev->details);
	KmxDeviceFlags flags;
	KmxDeviceFlags key_flags = KMX_DEVICE_FLAG_LOCKED | KMX_DEVICE_FLAG_AVAILABLE;
	GVariantBuilder b;
	gboolean any = FALSE;

	kmx_exported_device_remember_state(edev);
	flags = edev->flags;
	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	if ((old_flags ^ flags) & KMX_DEVICE_FLAG_LOCKED) {
		kmx_builder_take(&b, "Locked", kmx_device_property(edev, "Locked"));
		any = TRUE;
	}
	if ((old_flags ^ flags) & KMX_DEVICE_FLAG_REGISTERED) {
		kmx_builder_take(&b, "Registered", kmx_device_property(edev, "Registered"));
		any = TRUE;
	}
	if ((old_flags ^ flags) & KMX_DEVICE_FLAG_AVAILABLE) {
		kmx_builder_take(&b, "Available", kmx_device_property(edev, "Available"));
		any = TRUE;
	}
	if (g_strcmp0(old_label, edev->label) != 0) {
		g_variant_builder_add(&b, "{sv}", "Label", g_variant_new_string(edev->label));
		any = TRUE;
	}
	if (old_retries != edev->pin_retries) {
		g_variant_builder_add(&b,
				      "{sv}",
				      "PinRetries",
				      g_variant_new_int32(edev->pin_retries));
		any = TRUE;
	}
	if (!g_variant_equal(old_details, edev->details)) {
		g_variant_builder_add(&b, "{sv}", "Details", edev->details);
		any = TRUE;
	}
	if (any)
		kmx_emit_properties_changed(edev, edev->path, KMX_DBUS_DEVICE_INTERFACE, &b);
	else
		g_variant_builder_clear(&b);

	/* every key mirrors its device's Locked and Available */
	if ((old_flags ^ flags) & key_flags) {
		KmxKeyTableIter iter;
		KmxKey *key;

		kmx_key_table_iter_init(&iter, edev->keys);
		while (kmx_key_table_iter_next(&iter, &key)) {
			g_autofree char *path =
			    g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL);
			GVariantBuilder kb;

			g_variant_builder_init(&kb, G_VARIANT_TYPE_VARDICT);
			if ((old_flags ^ flags) & KMX_DEVICE_FLAG_LOCKED)
				g_variant_builder_add(
				    &kb,
				    "{sv}",
				    "Locked",
				    g_variant_new_boolean(flags & KMX_DEVICE_FLAG_LOCKED));
			if ((old_flags ^ flags) & KMX_DEVICE_FLAG_AVAILABLE)
				g_variant_builder_add(
				    &kb,
				    "{sv}",
				    "Available",
				    g_variant_new_boolean(flags & KMX_DEVICE_FLAG_AVAILABLE));
			kmx_emit_properties_changed(edev, path, KMX_DBUS_KEY_INTERFACE, &kb);
		}
	}
}

static void
kmx_exported_device_notify_cb(KmxDevice *device, GParamSpec *pspec, KmxExportedDevice *edev)
{
	kmx_exported_device_sync_state(edev);
}

static void
kmx_exported_device_keys_changed_cb(KmxDevice *device, KmxExportedDevice *edev)
{
	kmx_exported_device_sync_keys(edev, TRUE);
}

/* ---- the subtree --------------------------------------------------------- */

/* the key a node names, or NULL for the device itself; FALSE if no such node */
static gboolean
kmx_exported_device_lookup(KmxExportedDevice *edev, const char *node, KmxKey **key)
{
	*key = NULL;
	if (node == NULL)
		return TRUE;
	*key = kmx_key_table_lookup(edev->keys, node);
	return *key != NULL;
}

static char **
kmx_subtree_enumerate(GDBusConnection *connection,
		      const char *sender,
		      const char *object_path,
		      gpointer user_data)
{
	KmxExportedDevice *edev = user_data;
	GPtrArray *nodes = g_ptr_array_new_full(kmx_key_table_size(edev->keys) + 1, NULL);
	KmxKeyTableIter iter;
	KmxKey *key;

	kmx_key_table_iter_init(&iter, edev->keys);
	while (kmx_key_table_iter_next(&iter, &key))
		g_ptr_array_add(nodes, g_strdup(kmx_key_get_id(key)));
	g_ptr_array_add(nodes, NULL);
	return (char **)g_ptr_array_free(nodes, FALSE);
}

static GDBusInterfaceInfo **
kmx_subtree_introspect(GDBusConnection *connection,
		       const char *sender,
		       const char *object_path,
		       const char *node,
		       gpointer user_data)
{
	KmxExportedDevice *edev = user_data;
	GDBusInterfaceInfo **infos;
	KmxKey *key;

	if (!kmx_exported_device_lookup(edev, node, &key))
		return NULL;
	infos = g_new0(GDBusInterfaceInfo *, 2);
	infos[0] = g_dbus_interface_info_ref(key != NULL ? kmx_dbus_key_interface_info()
							 : kmx_dbus_device_interface_info());
	return infos;
}

typedef struct {
	KmxExportedDevice *edev;
	KmxKey *key; /* NULL for the device */
} KmxNode;

static GVariant *
kmx_device_property_get(gpointer object, const char *name)
{
	KmxNode *node = object;
	return kmx_device_property(node->edev, name);
}

static GVariant *
kmx_key_property_get(gpointer object, const char *name)
{
	KmxNode *node = object;
	return kmx_key_property(node->edev, node->key, name);
}

/**
 * kmx_dbus_return_property:
 * @getter: a property's value, or %NULL
 *
 * Answers Properties.Get, GetAll and Set for an interface whose properties
 * are all read-only, once the caller passed the authorisation hook.
 */
void
kmx_dbus_return_property(GDBusMethodInvocation *invocation,
			 GDBusInterfaceInfo *info,
			 GVariant *(*getter)(gpointer object, const char *name),
			 gpointer object)
{
	const char *method = g_dbus_method_invocation_get_method_name(invocation);
	GVariant *parameters = g_dbus_method_invocation_get_parameters(invocation);

	if (g_str_equal(method, "Get")) {
		const char *name = NULL;
		g_autoptr(GVariant) v = NULL;

		g_variant_get(parameters, "(&s&s)", NULL, &name);
		v = getter(object, name);
		if (v != NULL)
			g_variant_take_ref(v);
		if (v == NULL) {
			g_dbus_method_invocation_return_error(invocation,
							      G_DBUS_ERROR,
							      G_DBUS_ERROR_UNKNOWN_PROPERTY,
							      "no property %s",
							      name);
			return;
		}
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(v)", v));
	} else if (g_str_equal(method, "GetAll")) {
		GVariantBuilder b;

		g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
		for (guint i = 0; info->properties != NULL && info->properties[i] != NULL; i++) {
			const char *name = info->properties[i]->name;
			GVariant *v = getter(object, name);
			if (v != NULL) {
				g_variant_take_ref(v);
				g_variant_builder_add(&b, "{sv}", name, v);
				g_variant_unref(v);
			}
		}
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(a{sv})", &b));
	} else {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_PROPERTY_READ_ONLY,
						      "every property is read-only");
	}
}

static void
kmx_subtree_properties(KmxDBusService *service, GDBusMethodInvocation *invocation, gpointer data)
{
	KmxExportedDevice *edev = data;
	const char *path = g_dbus_method_invocation_get_object_path(invocation);
	const char *node = strlen(path) > strlen(edev->path) ? path + strlen(edev->path) + 1 : NULL;
	KmxNode n = {edev, NULL};

	/* the key may have gone while the caller was identified */
	if (!kmx_exported_device_lookup(edev, node, &n.key)) {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_UNKNOWN_OBJECT,
						      "no key at %s",
						      path);
		return;
	}
	if (n.key != NULL)
		kmx_dbus_return_property(invocation,
					 kmx_dbus_key_interface_info(),
					 kmx_key_property_get,
					 &n);
	else
		kmx_dbus_return_property(invocation,
					 kmx_dbus_device_interface_info(),
					 kmx_device_property_get,
					 &n);
}

static void
kmx_subtree_method(KmxDBusService *service, GDBusMethodInvocation *invocation, gpointer data)
{
	KmxExportedDevice *edev = data;
	const char *path = g_dbus_method_invocation_get_object_path(invocation);
	const char *node = strlen(path) > strlen(edev->path) ? path + strlen(edev->path) + 1 : NULL;
	const char *method = g_dbus_method_invocation_get_method_name(invocation);
	GVariant *parameters = g_dbus_method_invocation_get_parameters(invocation);
	KmxKey *key;

	if (!kmx_exported_device_lookup(edev, node, &key)) {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_UNKNOWN_OBJECT,
						      "no key at %s",
						      path);
		return;
	}
	if (key != NULL)
		kmx_dbus_call_key(service, key, method, parameters, invocation);
	else
		kmx_dbus_call_device(service, edev->device, method, parameters, invocation);
}

static void
kmx_subtree_method_call(GDBusConnection *connection,
			const char *sender,
			const char *object_path,
			const char *interface_name,
			const char *method_name,
			GVariant *parameters,
			GDBusMethodInvocation *invocation,
			gpointer user_data)
{
	KmxExportedDevice *edev = user_data;

	kmx_dbus_scrub_arrived(connection, invocation);
	/* property reads come here too (no get_property in the vtable), so
	 * that they pass the same asynchronous hook */
	kmx_dbus_service_authorize(edev->service,
				   invocation,
				   g_str_equal(interface_name, PROPERTIES_IFACE)
				       ? kmx_subtree_properties
				       : kmx_subtree_method,
				   edev,
				   NULL);
}

static const GDBusInterfaceVTable kmx_subtree_vtable = {
    .method_call = kmx_subtree_method_call,
};

static const GDBusInterfaceVTable *
kmx_subtree_dispatch(GDBusConnection *connection,
		     const char *sender,
		     const char *object_path,
		     const char *interface_name,
		     const char *node,
		     gpointer *out_user_data,
		     gpointer user_data)
{
	KmxExportedDevice *edev = user_data;
	KmxKey *key;

	if (!kmx_exported_device_lookup(edev, node, &key))
		return NULL;
	*out_user_data = edev;
	return &kmx_subtree_vtable;
}

static const GDBusSubtreeVTable kmx_subtree_vtable_tree = {
    .enumerate = kmx_subtree_enumerate,
    .introspect = kmx_subtree_introspect,
    .dispatch = kmx_subtree_dispatch,
};

/**
 * kmx_exported_device_new:
 *
 * Mirrors @device; it goes on a connection with kmx_exported_device_attach().
 */
KmxExportedDevice *
kmx_exported_device_new(KmxDBusService *service, KmxDevice *device)
{
	KmxExportedDevice *edev = g_new0(KmxExportedDevice, 1);

	edev->service = service;
	edev->device = g_object_ref(device);
	edev->path = kmx_dbus_device_path(device);
	edev->links = g_array_new(FALSE, TRUE, sizeof(KmxExportedLink));
	edev->keys = kmx_key_table_new(TRUE);
	kmx_exported_device_sync_keys(edev, FALSE);
	kmx_exported_device_remember_state(edev);
	edev->notify_id =
	    g_signal_connect(device, "notify", G_CALLBACK(kmx_exported_device_notify_cb), edev);
	edev->keys_changed_id = g_signal_connect(device,
						 "keys-changed",
						 G_CALLBACK(kmx_exported_device_keys_changed_cb),
						 edev);
	edev->key_label_id = g_signal_connect(device,
					      "key-label-changed",
					      G_CALLBACK(kmx_exported_key_label_cb),
					      edev);
	return edev;
}

/**
 * kmx_exported_device_attach:
 * @connection: the bus, or a peer connection
 *
 * Serves the device and its keys on @connection too.
 */
gboolean
kmx_exported_device_attach(KmxExportedDevice *edev, GDBusConnection *connection, GError **error)
{
	KmxExportedLink link = {NULL, 0};

	link.registration_id =
	    g_dbus_connection_register_subtree(connection,
					       edev->path,
					       &kmx_subtree_vtable_tree,
					       G_DBUS_SUBTREE_FLAGS_DISPATCH_TO_UNENUMERATED_NODES,
					       edev,
					       NULL,
					       error);
	if (link.registration_id == 0)
		return FALSE;
	link.connection = g_object_ref(connection);
	g_array_append_val(edev->links, link);
	return TRUE;
}

/**
 * kmx_exported_device_announce:
 *
 * Tells every connection of the device and its keys: InterfacesAdded for
 * a device that comes after start-up.
 */
void
kmx_exported_device_announce(KmxExportedDevice *edev)
{
	KmxKeyTableIter iter;
	KmxKey *key;

	kmx_emit_interfaces_added(edev, edev->path, NULL);
	kmx_key_table_iter_init(&iter, edev->keys);
	while (kmx_key_table_iter_next(&iter, &key)) {
		g_autofree char *path = g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL);
		kmx_emit_interfaces_added(edev, path, key);
	}
}

/**
 * kmx_exported_device_rebind:
 * @device: the object that stands for the same device from now on
 *
 * A registered device came back: the bus sees what changed (its state,
 * keys added or gone), not a device removed and added.
 */
void
kmx_exported_device_rebind(KmxExportedDevice *edev, KmxDevice *device)
{
	g_signal_handler_disconnect(edev->device, edev->notify_id);
	g_signal_handler_disconnect(edev->device, edev->keys_changed_id);
	g_signal_handler_disconnect(edev->device, edev->key_label_id);
	g_set_object(&edev->device, device);
	/* the new device's keys take the place of the old ones of the same id */
	kmx_exported_device_sync_keys(edev, TRUE);
	kmx_exported_device_sync_state(edev);
	edev->notify_id =
	    g_signal_connect(device, "notify", G_CALLBACK(kmx_exported_device_notify_cb), edev);
	edev->keys_changed_id = g_signal_connect(device,
						 "keys-changed",
						 G_CALLBACK(kmx_exported_device_keys_changed_cb),
						 edev);
	edev->key_label_id = g_signal_connect(device,
					      "key-label-changed",
					      G_CALLBACK(kmx_exported_key_label_cb),
					      edev);
}

static void
kmx_exported_link_clear(KmxExportedLink *link)
{
	g_dbus_connection_unregister_subtree(link->connection, link->registration_id);
	g_clear_object(&link->connection);
}

/**
 * kmx_exported_device_detach:
 * @connection: (nullable): one connection, or %NULL for all
 *
 * Takes the device off @connection without a word: the daemon is
 * stopping, or a peer connection closed.
 */
void
kmx_exported_device_detach(KmxExportedDevice *edev, GDBusConnection *connection)
{
	for (guint i = edev->links->len; i > 0; i--) {
		KmxExportedLink *link = &g_array_index(edev->links, KmxExportedLink, i - 1);

		if (connection != NULL && link->connection != connection)
			continue;
		kmx_exported_link_clear(link);
		g_array_remove_index_fast(edev->links, i - 1);
	}
}

/**
 * kmx_exported_device_free:
 *
 * Takes the device off the bus, announcing it.
 */
void
kmx_exported_device_free(KmxExportedDevice *edev)
{
	KmxKeyTableIter iter;
	KmxKey *key;

	g_signal_handler_disconnect(edev->device, edev->notify_id);
	g_signal_handler_disconnect(edev->device, edev->keys_changed_id);
	g_signal_handler_disconnect(edev->device, edev->key_label_id);
	kmx_key_table_iter_init(&iter, edev->keys);
	while (kmx_key_table_iter_next(&iter, &key)) {
		g_autofree char *path = g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL);
		kmx_emit_interfaces_removed(edev, path, KMX_DBUS_KEY_INTERFACE);
	}
	kmx_emit_interfaces_removed(edev, edev->path, KMX_DBUS_DEVICE_INTERFACE);
	kmx_exported_device_detach(edev, NULL);
	g_array_unref(edev->links);
	kmx_key_table_free(edev->keys);
	g_clear_pointer(&edev->key_paths, g_variant_unref);
	g_object_unref(edev->device);
	g_clear_pointer(&edev->details, g_variant_unref);
	g_free(edev->label);
	g_free(edev->path);
	g_free(edev);
}

/**
 * kmx_exported_device_foreach_managed_object:
 * @func: gets each {oa{sa{sv}}} entry of GetManagedObjects, floating: it
 *   takes it
 *
 * The device's entry, then its keys'.  Each is made when @func is called
 * and is @func's: a reply written as it goes (kmx_variant_array_append())
 * holds no tree of 10,000 entries.
 */
void
kmx_exported_device_foreach_managed_object(KmxExportedDevice *edev,
					   void (*func)(GVariant *entry, gpointer user_data),
					   gpointer user_data)
{
	KmxKeyTableIter iter;
	KmxKey *key;

	func(g_variant_new_dict_entry(g_variant_new_object_path(edev->path),
				      kmx_object_interfaces(edev, NULL)),
	     user_data);
	kmx_key_table_iter_init(&iter, edev->keys);
	while (kmx_key_table_iter_next(&iter, &key)) {
		g_autofree char *path = g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL);

		func(g_variant_new_dict_entry(g_variant_new_object_path(path),
					      kmx_object_interfaces(edev, key)),
		     user_data);
	}
}
