/*
 * kmx-bench-ideald: the ideal d-bus daemon
 *
 * A minimal GDBus service with the part of keymuxd's API the bench uses
 * (Manager.ListDevices/ListKeys/FindKey, ObjectManager.GetManagedObjects,
 * Device.ImportKey, Key.Sign/Decrypt). Keys live in memory only; each method
 * does the gnutls operation in-process on a pool of one thread per core and
 * replies from there. Whatever keymuxd costs above this is keymuxd's own.
 * Manager.OpenConnection() -> (h) serves the same objects on one end of a
 * socketpair, as keymuxd does: the ideal peer-to-peer daemon.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KMX_PREFIX   "org.keymux.Keystore1"
#define MANAGER_PATH "/org/keymux/Keystore1"
#define DEVICE_ID    "softkey:login"
#define ERROR_PREFIX "org.keymux.Keystore1.Error."

static const gchar introspection_xml[] =
    "<node>"
    " <interface name='org.freedesktop.DBus.ObjectManager'>"
    "  <method name='GetManagedObjects'>"
    "   <arg name='objects' type='a{oa{sa{sv}}}' direction='out'/>"
    "  </method>"
    " </interface>"
    " <interface name='org.keymux.Keystore1.Manager'>"
    "  <method name='ListDevices'><arg name='devices' type='ao' direction='out'/></method>"
    "  <method name='ListKeys'><arg name='keys' type='ao' direction='out'/></method>"
    "  <method name='FindKey'>"
    "   <arg name='id' type='s' direction='in'/>"
    "   <arg name='keys' type='ao' direction='out'/>"
    "  </method>"
    "  <method name='OpenConnection'><arg name='fd' type='h' direction='out'/></method>"
    "  <property name='Version' type='s' access='read'/>"
    " </interface>"
    " <interface name='org.keymux.Keystore1.Device'>"
    "  <method name='ImportKey'>"
    "   <arg name='data' type='ay' direction='in'/>"
    "   <arg name='passphrase' type='s' direction='in'/>"
    "   <arg name='label' type='s' direction='in'/>"
    "   <arg name='options' type='a{sv}' direction='in'/>"
    "   <arg name='keys' type='ao' direction='out'/>"
    "  </method>"
    "  <property name='Id' type='s' access='read'/>"
    " </interface>"
    " <interface name='org.keymux.Keystore1.Key'>"
    "  <method name='Sign'>"
    "   <arg name='algorithm' type='s' direction='in'/>"
    "   <arg name='data' type='ay' direction='in'/>"
    "   <arg name='options' type='a{sv}' direction='in'/>"
    "   <arg name='signature' type='ay' direction='out'/>"
    "  </method>"
    "  <method name='Decrypt'>"
    "   <arg name='algorithm' type='s' direction='in'/>"
    "   <arg name='data' type='ay' direction='in'/>"
    "   <arg name='options' type='a{sv}' direction='in'/>"
    "   <arg name='plaintext' type='ay' direction='out'/>"
    "  </method>"
    "  <property name='Id' type='s' access='read'/>"
    "  <property name='Algorithm' type='s' access='read'/>"
    "  <property name='Label' type='s' access='read'/>"
    "  <property name='PublicKey' type='ay' access='read'/>"
    " </interface>"
    "</node>";

typedef struct {
	gchar *id;
	gchar *path;
	gchar *label;
	const gchar *algorithm;
	GBytes *data; /* the key as imported; each worker thread parses its own copy */
	GBytes *spki;
	gnutls_pk_algorithm_t pk;
} IdealKey;

typedef struct {
	GDBusConnection *conn;
	GDBusNodeInfo *info;
	GHashTable *keys; /* id -> IdealKey */
	GPtrArray *order; /* IdealKey, in import order */
	GThreadPool *pool;
	gchar *device_path;
	GMainLoop *loop;
} Ideal;

typedef struct {
	GDBusMethodInvocation *invocation;
	IdealKey *key;
	KbAlg alg;
	GBytes *input;
} Job;

static GPrivate thread_keys = G_PRIVATE_INIT((GDestroyNotify)g_hash_table_unref);

static void
return_error(GDBusMethodInvocation *invocation, const gchar *name, const gchar *message)
{
	g_autofree gchar *full = g_strconcat(ERROR_PREFIX, name, NULL);
	g_dbus_method_invocation_return_dbus_error(invocation, full, message);
}

static GVariant *
bytes_variant(const guint8 *data, gsize len)
{
	return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1);
}

static void
worker(gpointer data, gpointer user_data)
{
	Job *job = data;
	GHashTable *cache = g_private_get(&thread_keys);
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	const guint8 *in;
	gsize len;
	KbKey *key;

	/* one parsed key per thread: no lock on the hot path */
	if (cache == NULL) {
		cache = g_hash_table_new_full(g_str_hash,
					      g_str_equal,
					      g_free,
					      (GDestroyNotify)kb_key_free);
		g_private_set(&thread_keys, cache);
	}
	key = g_hash_table_lookup(cache, job->key->id);
	if (key == NULL) {
		key = kb_key_new_from_data(g_bytes_get_data(job->key->data, NULL),
					   g_bytes_get_size(job->key->data),
					   NULL,
					   &error);
		if (key != NULL)
			g_hash_table_insert(cache, g_strdup(job->key->id), key);
	}
	in = g_bytes_get_data(job->input, &len);
	if (key != NULL) {
		if (kb_alg_is_decrypt(job->alg))
			kb_key_decrypt(key, job->alg, in, len, out, &error);
		else
			kb_key_sign(key, job->alg, in, len, out, &error);
	}
	if (error != NULL)
		return_error(job->invocation, "Failed", error->message);
	else
		g_dbus_method_invocation_return_value(
		    job->invocation,
		    g_variant_new("(@ay)", bytes_variant(out->data, out->len)));
	g_object_unref(job->invocation);
	g_bytes_unref(job->input);
	g_free(job);
}

static const gchar *
key_algorithm_name(gnutls_pk_algorithm_t pk)
{
	switch (pk) {
	case GNUTLS_PK_EDDSA_ED25519:
		return "ed25519";
	case GNUTLS_PK_ECDSA:
		return "ecdsa-p256";
	case GNUTLS_PK_RSA:
		return "rsa2048";
	default:
		return "unknown";
	}
}

static void
key_method_call(GDBusConnection *conn,
		const gchar *sender,
		const gchar *path,
		const gchar *iface,
		const gchar *method,
		GVariant *params,
		GDBusMethodInvocation *invocation,
		gpointer user_data)
{
	Ideal *self = g_object_get_data(G_OBJECT(conn), "kb-ideal");
	IdealKey *ikey = user_data;
	g_autoptr(GVariant) data = NULL;
	g_autoptr(GVariant) options = NULL;
	g_autoptr(GError) error = NULL;
	const gchar *alg_name;
	const guint8 *p;
	gsize len;
	Job *job;
	KbAlg alg;

	g_variant_get(params, "(&s@ay@a{sv})", &alg_name, &data, &options);
	if (!kb_alg_from_string(alg_name, &alg, &error)) {
		return_error(invocation, "InvalidArgument", error->message);
		return;
	}
	if ((g_strcmp0(method, "Decrypt") == 0) != kb_alg_is_decrypt(alg)) {
		return_error(invocation, "InvalidArgument", "algorithm does not fit the method");
		return;
	}
	if ((alg == KB_ALG_ED25519 && ikey->pk != GNUTLS_PK_EDDSA_ED25519) ||
	    (alg == KB_ALG_ECDSA_SHA256 && ikey->pk != GNUTLS_PK_ECDSA) ||
	    ((alg == KB_ALG_RSA_PKCS1_SHA256 || alg == KB_ALG_RSA_OAEP_SHA256) &&
	     ikey->pk != GNUTLS_PK_RSA)) {
		return_error(invocation, "NotSupported", "the key cannot do this algorithm");
		return;
	}
	p = g_variant_get_fixed_array(data, &len, 1);
	job = g_new0(Job, 1);
	job->invocation = g_object_ref(invocation);
	job->key = ikey;
	job->alg = alg;
	job->input = g_bytes_new(p, len);
	g_thread_pool_push(self->pool, job, NULL);
}

static GVariant *
key_get_property(GDBusConnection *conn,
		 const gchar *sender,
		 const gchar *path,
		 const gchar *iface,
		 const gchar *name,
		 GError **error,
		 gpointer user_data)
{
	IdealKey *ikey = user_data;
	if (g_strcmp0(name, "Id") == 0)
		return g_variant_new_string(ikey->id);
	if (g_strcmp0(name, "Algorithm") == 0)
		return g_variant_new_string(ikey->algorithm);
	if (g_strcmp0(name, "Label") == 0)
		return g_variant_new_string(ikey->label);
	if (g_strcmp0(name, "PublicKey") == 0)
		return bytes_variant(g_bytes_get_data(ikey->spki, NULL),
				     g_bytes_get_size(ikey->spki));
	g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "no property %s", name);
	return NULL;
}

static const GDBusInterfaceVTable key_vtable = {key_method_call, key_get_property, NULL};

static GVariant *
key_properties(IdealKey *ikey)
{
	GVariantBuilder b;
	g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
	g_variant_builder_add(&b, "{sv}", "Id", g_variant_new_string(ikey->id));
	g_variant_builder_add(&b, "{sv}", "Algorithm", g_variant_new_string(ikey->algorithm));
	g_variant_builder_add(&b, "{sv}", "Label", g_variant_new_string(ikey->label));
	g_variant_builder_add(
	    &b,
	    "{sv}",
	    "PublicKey",
	    bytes_variant(g_bytes_get_data(ikey->spki, NULL), g_bytes_get_size(ikey->spki)));
	return g_variant_builder_end(&b);
}

static void
device_import(Ideal *self, GVariant *params, GDBusMethodInvocation *invocation)
{
	g_autoptr(GVariant) data = NULL;
	g_autoptr(GVariant) options = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KbKey) key = NULL;
	const gchar *passphrase, *label;
	const guint8 *p;
	gsize len;
	IdealKey *ikey;
	guint reg;

	g_variant_get(params, "(@ay&s&s@a{sv})", &data, &passphrase, &label, &options);
	p = g_variant_get_fixed_array(data, &len, 1);
	key = kb_key_new_from_data(p, len, passphrase, &error);
	if (key == NULL) {
		return_error(invocation, "InvalidArgument", error->message);
		return;
	}
	if (g_hash_table_contains(self->keys, key->id)) {
		return_error(invocation, "Exists", "the key is already on the device");
		return;
	}
	ikey = g_new0(IdealKey, 1);
	ikey->id = g_strdup(key->id);
	ikey->path = g_strdup_printf("%s/%s", self->device_path, key->id);
	ikey->label = g_strdup(label);
	ikey->pk = key->pk;
	ikey->algorithm = key_algorithm_name(key->pk);
	ikey->data = g_bytes_new(p, len);
	ikey->spki = g_bytes_ref(key->spki);
	reg = g_dbus_connection_register_object(
	    self->conn,
	    ikey->path,
	    g_dbus_node_info_lookup_interface(self->info, KMX_PREFIX ".Key"),
	    &key_vtable,
	    ikey,
	    NULL,
	    &error);
	if (reg == 0) {
		return_error(invocation, "Failed", error->message);
		return;
	}
	g_hash_table_insert(self->keys, ikey->id, ikey);
	g_ptr_array_add(self->order, ikey);
	{
		GVariantBuilder ifaces;
		g_variant_builder_init(&ifaces, G_VARIANT_TYPE("a{sa{sv}}"));
		g_variant_builder_add(&ifaces,
				      "{s@a{sv}}",
				      KMX_PREFIX ".Key",
				      key_properties(ikey));
		g_dbus_connection_emit_signal(self->conn,
					      NULL,
					      MANAGER_PATH,
					      "org.freedesktop.DBus.ObjectManager",
					      "InterfacesAdded",
					      g_variant_new("(oa{sa{sv}})", ikey->path, &ifaces),
					      NULL);
	}
	{
		const gchar *paths[] = {ikey->path, NULL};
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(^ao)", paths));
	}
}

static void
device_method_call(GDBusConnection *conn,
		   const gchar *sender,
		   const gchar *path,
		   const gchar *iface,
		   const gchar *method,
		   GVariant *params,
		   GDBusMethodInvocation *invocation,
		   gpointer user_data)
{
	Ideal *self = user_data;
	if (g_strcmp0(method, "ImportKey") == 0)
		device_import(self, params, invocation);
	else
		return_error(invocation, "NotSupported", "not in the ideal daemon");
}

static GVariant *
device_get_property(GDBusConnection *conn,
		    const gchar *sender,
		    const gchar *path,
		    const gchar *iface,
		    const gchar *name,
		    GError **error,
		    gpointer user_data)
{
	if (g_strcmp0(name, "Id") == 0)
		return g_variant_new_string(DEVICE_ID);
	g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "no property %s", name);
	return NULL;
}

static const GDBusInterfaceVTable device_vtable = {device_method_call, device_get_property, NULL};

static gboolean
is_hex(const gchar *s)
{
	for (; *s != '\0'; s++) {
		if (!g_ascii_isxdigit(*s))
			return FALSE;
	}
	return TRUE;
}

static void manager_method_call(GDBusConnection *conn,
				const gchar *sender,
				const gchar *path,
				const gchar *iface,
				const gchar *method,
				GVariant *params,
				GDBusMethodInvocation *invocation,
				gpointer user_data);
static GVariant *manager_get_property(GDBusConnection *conn,
				      const gchar *sender,
				      const gchar *path,
				      const gchar *iface,
				      const gchar *name,
				      GError **error,
				      gpointer user_data);
static const GDBusInterfaceVTable manager_vtable = {manager_method_call,
						    manager_get_property,
						    NULL};

/* the manager, the device and every key imported so far, on @conn */
static gboolean
export_all(Ideal *self, GDBusConnection *conn, gboolean keys, GError **error)
{
	if (!g_dbus_connection_register_object(
		conn,
		MANAGER_PATH,
		g_dbus_node_info_lookup_interface(self->info, KMX_PREFIX ".Manager"),
		&manager_vtable,
		self,
		NULL,
		error) ||
	    !g_dbus_connection_register_object(
		conn,
		MANAGER_PATH,
		g_dbus_node_info_lookup_interface(self->info, "org.freedesktop.DBus.ObjectManager"),
		&manager_vtable,
		self,
		NULL,
		error) ||
	    !g_dbus_connection_register_object(
		conn,
		self->device_path,
		g_dbus_node_info_lookup_interface(self->info, KMX_PREFIX ".Device"),
		&device_vtable,
		self,
		NULL,
		error))
		return FALSE;
	for (guint i = 0; keys && i < self->order->len; i++) {
		IdealKey *ikey = g_ptr_array_index(self->order, i);
		if (!g_dbus_connection_register_object(
			conn,
			ikey->path,
			g_dbus_node_info_lookup_interface(self->info, KMX_PREFIX ".Key"),
			&key_vtable,
			ikey,
			NULL,
			error))
			return FALSE;
	}
	return TRUE;
}

static void
peer_closed(GDBusConnection *conn, gboolean remote, GError *error, gpointer user_data)
{
	g_object_unref(conn); /* the reference peer_ready kept */
}

static void
peer_ready(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Ideal *self = user_data;
	g_autoptr(GError) error = NULL;
	GDBusConnection *conn = g_dbus_connection_new_finish(res, &error);

	if (conn == NULL) {
		g_printerr("kmx-bench-ideald: peer connection: %s\n", error->message);
		return;
	}
	g_object_set_data(G_OBJECT(conn), "kb-ideal", self);
	g_dbus_connection_set_exit_on_close(conn, FALSE);
	if (!export_all(self, conn, TRUE, &error)) {
		g_printerr("kmx-bench-ideald: peer connection: %s\n", error->message);
		g_dbus_connection_close(conn, NULL, NULL, NULL);
		g_object_unref(conn);
		return;
	}
	g_signal_connect(conn, "closed", G_CALLBACK(peer_closed), NULL);
	g_dbus_connection_start_message_processing(conn);
}

/* Manager.OpenConnection: one end of a socketpair for the caller, the
 * other served as a GDBus authentication server, as keymuxd does */
static void
manager_open_connection(Ideal *self, GDBusMethodInvocation *invocation)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketConnection) stream = NULL;
	g_autoptr(GUnixFDList) fds = NULL;
	g_autofree gchar *guid = g_dbus_generate_guid();
	int pair[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
		return_error(invocation, "Failed", g_strerror(errno));
		return;
	}
	socket = g_socket_new_from_fd(pair[0], &error);
	if (socket == NULL) {
		close(pair[0]);
		close(pair[1]);
		return_error(invocation, "Failed", error->message);
		return;
	}
	fds = g_unix_fd_list_new_from_array(&pair[1], 1);
	stream = g_socket_connection_factory_create_connection(socket);
	g_dbus_connection_new(G_IO_STREAM(stream),
			      guid,
			      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER |
				  G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
			      NULL,
			      NULL,
			      peer_ready,
			      self);
	g_dbus_method_invocation_return_value_with_unix_fd_list(invocation,
								g_variant_new("(h)", 0),
								fds);
}

static void
manager_method_call(GDBusConnection *conn,
		    const gchar *sender,
		    const gchar *path,
		    const gchar *iface,
		    const gchar *method,
		    GVariant *params,
		    GDBusMethodInvocation *invocation,
		    gpointer user_data)
{
	Ideal *self = user_data;
	GVariantBuilder b;

	if (g_strcmp0(method, "GetManagedObjects") == 0) {
		GVariantBuilder dev;
		g_variant_builder_init(&b, G_VARIANT_TYPE("a{oa{sa{sv}}}"));
		g_variant_builder_init(&dev, G_VARIANT_TYPE("a{sa{sv}}"));
		g_variant_builder_open(&dev, G_VARIANT_TYPE("{sa{sv}}"));
		g_variant_builder_add(&dev, "s", KMX_PREFIX ".Device");
		g_variant_builder_open(&dev, G_VARIANT_TYPE("a{sv}"));
		g_variant_builder_add(&dev, "{sv}", "Id", g_variant_new_string(DEVICE_ID));
		g_variant_builder_close(&dev);
		g_variant_builder_close(&dev);
		g_variant_builder_add(&b,
				      "{o@a{sa{sv}}}",
				      self->device_path,
				      g_variant_builder_end(&dev));
		for (guint i = 0; i < self->order->len; i++) {
			IdealKey *ikey = g_ptr_array_index(self->order, i);
			GVariantBuilder k;
			g_variant_builder_init(&k, G_VARIANT_TYPE("a{sa{sv}}"));
			g_variant_builder_add(&k,
					      "{s@a{sv}}",
					      KMX_PREFIX ".Key",
					      key_properties(ikey));
			g_variant_builder_add(&b,
					      "{o@a{sa{sv}}}",
					      ikey->path,
					      g_variant_builder_end(&k));
		}
		g_dbus_method_invocation_return_value(
		    invocation,
		    g_variant_new("(@a{oa{sa{sv}}})", g_variant_builder_end(&b)));
	} else if (g_strcmp0(method, "OpenConnection") == 0) {
		manager_open_connection(self, invocation);
	} else if (g_strcmp0(method, "ListDevices") == 0) {
		const gchar *paths[] = {self->device_path, NULL};
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(^ao)", paths));
	} else if (g_strcmp0(method, "ListKeys") == 0 || g_strcmp0(method, "FindKey") == 0) {
		g_autofree gchar *prefix = NULL;
		gboolean any = FALSE;
		if (g_strcmp0(method, "FindKey") == 0) {
			const gchar *id;
			g_variant_get(params, "(&s)", &id);
			if (strlen(id) < 8 || !is_hex(id)) {
				return_error(invocation,
					     "InvalidArgument",
					     "a key id is at least 8 hex digits");
				return;
			}
			prefix = g_ascii_strdown(id, -1);
		}
		g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
		for (guint i = 0; i < self->order->len; i++) {
			IdealKey *ikey = g_ptr_array_index(self->order, i);
			if (prefix != NULL && !g_str_has_prefix(ikey->id, prefix))
				continue;
			g_variant_builder_add(&b, "o", ikey->path);
			any = TRUE;
		}
		if (prefix != NULL && !any) {
			g_variant_builder_clear(&b);
			return_error(invocation, "NotFound", "no key has this id");
			return;
		}
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", &b));
	} else {
		return_error(invocation, "NotSupported", "not in the ideal daemon");
	}
}

static GVariant *
manager_get_property(GDBusConnection *conn,
		     const gchar *sender,
		     const gchar *path,
		     const gchar *iface,
		     const gchar *name,
		     GError **error,
		     gpointer user_data)
{
	if (g_strcmp0(name, "Version") == 0)
		return g_variant_new_string("bench-ideal");
	g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "no property %s", name);
	return NULL;
}

static gboolean
on_signal(gpointer user_data)
{
	Ideal *self = user_data;
	g_main_loop_quit(self->loop);
	return G_SOURCE_REMOVE;
}

static void
on_name_lost(GDBusConnection *conn, const gchar *name, gpointer user_data)
{
	Ideal *self = user_data;
	g_printerr("kmx-bench-ideald: could not own %s (or lost the bus)\n", name);
	g_main_loop_quit(self->loop);
}

static void
on_closed(GDBusConnection *conn, gboolean remote, GError *error, gpointer user_data)
{
	Ideal *self = user_data;
	g_main_loop_quit(self->loop);
}

int
main(int argc, char **argv)
{
	g_autofree gchar *address = NULL;
	g_autofree gchar *name = NULL;
	gint threads = 0;
	GOptionEntry entries[] = {{"address",
				   0,
				   0,
				   G_OPTION_ARG_STRING,
				   &address,
				   "Bus address (default: the session bus)",
				   "ADDR"},
				  {"name",
				   0,
				   0,
				   G_OPTION_ARG_STRING,
				   &name,
				   "Bus name to own (default org.keymux.Keystore1)",
				   "NAME"},
				  {"threads",
				   0,
				   0,
				   G_OPTION_ARG_INT,
				   &threads,
				   "Worker threads (default: one per core)",
				   "N"},
				  {NULL}};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- the ideal d-bus daemon");
	g_autoptr(GError) error = NULL;
	Ideal self = {0};

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		g_printerr("kmx-bench-ideald: %s\n", error->message);
		return 1;
	}
	if (threads <= 0)
		threads = g_get_num_processors();

	self.info = g_dbus_node_info_new_for_xml(introspection_xml, &error);
	g_assert_no_error(error);
	self.keys = g_hash_table_new(g_str_hash, g_str_equal);
	self.order = g_ptr_array_new();
	self.loop = g_main_loop_new(NULL, FALSE);
	self.pool = g_thread_pool_new(worker, &self, threads, FALSE, &error);
	g_assert_no_error(error);
	{
		g_autofree gchar *escaped = g_dbus_escape_object_path(DEVICE_ID);
		self.device_path = g_strdup_printf("%s/devices/%s", MANAGER_PATH, escaped);
	}

	if (address != NULL)
		self.conn = g_dbus_connection_new_for_address_sync(
		    address,
		    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
			G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
		    NULL,
		    NULL,
		    &error);
	else
		self.conn = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (self.conn == NULL) {
		g_printerr("kmx-bench-ideald: cannot connect to the bus: %s\n", error->message);
		return 1;
	}
	g_object_set_data(G_OBJECT(self.conn), "kb-ideal", &self);
	g_dbus_connection_set_exit_on_close(self.conn, FALSE);
	g_signal_connect(self.conn, "closed", G_CALLBACK(on_closed), &self);

	/* export everything before owning the name: a client that sees the owner can call */
	if (!export_all(&self, self.conn, FALSE, &error)) {
		g_printerr("kmx-bench-ideald: cannot export objects: %s\n", error->message);
		return 1;
	}
	g_bus_own_name_on_connection(self.conn,
				     name != NULL ? name : KMX_PREFIX,
				     G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE,
				     NULL,
				     on_name_lost,
				     &self,
				     NULL);
	g_unix_signal_add(SIGTERM, on_signal, &self);
	g_unix_signal_add(SIGINT, on_signal, &self);
	g_main_loop_run(self.loop);
	/* leave at once: pending jobs are the clients' problem, as on a crash */
	return 0;
}
