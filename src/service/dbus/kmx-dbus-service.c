/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the D-Bus frontend of the manager
 *
 * Puts the manager on the bus: the root object (Manager and the
 * ObjectManager), one subtree per device (kmx-dbus-export.c), callers
 * identified by their unique name and forgotten when they leave the bus,
 * prompters registered by clients, and the session's lock and the
 * system's sleep (kmx-dbus-locks.c).  The same
 * objects are served on peer connections (Manager.OpenConnection: one end
 * of a socketpair, for the caller that asked alone, which is that one
 * caller whoever holds it); a peer connection that closes cancels what it
 * had in flight and drops its prompters.  Every
 * method call and property read of every object goes through
 * kmx_dbus_service_authorize(), the manager's one authorisation hook,
 * asynchronously: no vtable here has a get_property, so GDBus hands
 * property reads to method_call as well.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "kmx-dbus-private.h"
#include "kmx-error.h"
#include "kmx-gcr-prompter.h"
#include "kmx-names.h"

#define PROPERTIES_IFACE     "org.freedesktop.DBus.Properties"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"
/* not part of the API: a signal keymuxd sends only to itself, a method
 * no peer has */
#define SCRUB_IFACE "org.keymux.Keystore1.Private"

/* peer connections open or being opened at once, at most */
#define KMX_MAX_PEERS 256
/* a handshake not done by then is given up: it held one of those */
#define KMX_PEER_HANDSHAKE_SECONDS 10

/* one connection the objects are served on: the bus, or a peer's */
typedef struct {
	KmxDBusService *self; /* borrowed: the service owns us */
	GDBusConnection *connection;
	KmxCaller *caller; /* a peer connection's one caller; NULL on the bus */
	guint manager_id;
	guint object_manager_id;
	guint filter_id;
	gulong closed_id;
} KmxDBusLink;

struct _KmxDBusService {
	GObject parent_instance;
	KmxManager *manager;
	GDBusConnection *connection; /* the bus */
	KmxDBusLink *bus;
	GHashTable *peers;    /* GDBusConnection -> KmxDBusLink */
	guint peers_opening;  /* handshakes not done yet */
	guint peer_serial;    /* names peer callers */
	KmxCaller *nobody;    /* the caller of a peer connection that closed */
	GHashTable *exported; /* device id -> KmxExportedDevice */
	GVariant *key_paths;  /* ListKeys' reply, (ao); NULL once keys change */
	GHashTable *callers;  /* unique name -> KmxCaller */
	guint name_owner_changed_id;
	KmxDBusLocks *locks;
	GCancellable *cancellable;
	GMainContext *main_context;
};

G_DEFINE_TYPE(KmxDBusService, kmx_dbus_service, G_TYPE_OBJECT)

KmxManager *
kmx_dbus_service_get_manager(KmxDBusService *self)
{
	return self->manager;
}

/**
 * kmx_dbus_received_size:
 * @connection: the connection @message came in on
 * @message: a message that carries a secret, not wiped yet
 *
 * Returns: the length @message had on the wire (the same fields in the same
 * byte order give the same length), for kmx_dbus_scrub_received(); the
 * copy serialised to measure it is wiped.  Measure before wiping the secret
 * in @message: GDBus cannot serialise a string of NULs
 */
gsize
kmx_dbus_received_size(GDBusConnection *connection, GDBusMessage *message)
{
	gsize size = 0;
	guchar *blob = g_dbus_message_to_blob(message,
					      &size,
					      g_dbus_connection_get_capabilities(connection),
					      NULL);

	if (blob == NULL)
		return 0;
	kmx_secure_zero(blob, size);
	g_free(blob);
	return size;
}

/**
 * kmx_dbus_scrub_received:
 * @connection: the connection a message with a secret came in on
 * @size: that message's kmx_dbus_received_size()
 *
 * GDBus reads every message of a connection into one buffer that it keeps
 * and reuses, and parses it from there: with the secret wiped in the parsed
 * message, its bytes are still in that buffer, beyond the end of any
 * shorter message read since.  So keymuxd sends itself a longer message, a
 * signal to its own unique name that nothing subscribes to: GDBus reads it
 * into the buffer over the secret, then drops it.  Should the buffer have
 * to grow for it, the old one is wiped as it is freed (kmx-heap-wipe.c).
 *
 * A peer connection (Manager.OpenConnection) has no bus to send through,
 * and a connection cannot send to itself: keymuxd calls a method on an
 * object path longer than the message, which the peer does not serve; its
 * D-Bus library answers UnknownMethod with an error that names the path,
 * and that reply is read over the secret (and dropped: no call waits for
 * it).  Any peer that answers calls does, and GDBus answers from its
 * worker thread, whatever the peer's main loop does.
 */
void
kmx_dbus_scrub_received(GDBusConnection *connection, gsize size)
{
	const char *self_name = g_dbus_connection_get_unique_name(connection);
	g_autoptr(GDBusMessage) pad = NULL;
	g_autoptr(GBytes) zeros = NULL;

	if (size == 0 || g_dbus_connection_is_closed(connection))
		return;
	if (self_name == NULL) {
		g_autofree char *padding = g_strnfill(size, 'x');
		g_autofree char *path = g_strconcat(KMX_DBUS_PATH "/Scrub/", padding, NULL);

		pad = g_dbus_message_new_method_call(NULL, path, SCRUB_IFACE, "Scrub");
		g_dbus_connection_send_message(connection,
					       pad,
					       G_DBUS_SEND_MESSAGE_FLAGS_NONE,
					       NULL,
					       NULL);
		return;
	}
	pad = g_dbus_message_new_signal(KMX_DBUS_PATH, SCRUB_IFACE, "Scrub");
	g_dbus_message_set_destination(pad, self_name);
	/* a body that long: the signal's header makes it longer still */
	zeros = g_bytes_new_take(g_malloc0(size), size);
	g_dbus_message_set_body(
	    pad,
	    g_variant_new("(@ay)",
			  g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, zeros, TRUE)));
	g_dbus_connection_send_message(connection, pad, G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, NULL);
}

/**
 * kmx_dbus_device_path:
 *
 * Returns: (transfer full): the object path of @device
 */
char *
kmx_dbus_device_path(KmxDevice *device)
{
	g_autofree char *escaped = g_dbus_escape_object_path(kmx_device_get_id(device));
	return g_strconcat(KMX_DBUS_DEVICES_PATH "/", escaped, NULL);
}

/**
 * kmx_dbus_key_path:
 *
 * Returns: (transfer full): the object path of @key
 */
char *
kmx_dbus_key_path(KmxKey *key)
{
	g_autofree char *device_path = kmx_dbus_device_path(kmx_key_get_device(key));
	return g_strconcat(device_path, "/", kmx_key_get_id(key), NULL);
}

/* ---- callers and the authorisation hook ---------------------------------- */

typedef struct {
	KmxDBusService *self;
	KmxCaller *caller;
} KmxDBusResolving;

static void kmx_dbus_forget_caller(KmxDBusService *self, const char *sender);

static void
kmx_dbus_credentials_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxDBusResolving *r = user_data;
	g_autoptr(KmxDBusService) self = r->self;
	g_autoptr(KmxCaller) caller = r->caller;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autoptr(GVariant) creds = NULL;
	guint32 uid = G_MAXUINT32, pid = 0;
	gboolean known = FALSE;

	g_free(r);
	if (reply == NULL) {
		g_autofree char *remote = g_dbus_error_get_remote_error(error);

		g_debug("cannot identify %s: %s", kmx_caller_get_name(caller), error->message);
		/* it left before we knew it: GDBus dispatches a call on a
		 * subtree after the NameOwnerChanged that followed it, which
		 * made this caller anew; no NameOwnerChanged comes for it */
		if (g_strcmp0(remote, "org.freedesktop.DBus.Error.NameHasNoOwner") == 0 &&
		    g_hash_table_lookup(self->callers, kmx_caller_get_name(caller)) == caller)
			kmx_dbus_forget_caller(self, kmx_caller_get_name(caller));
	} else {
		creds = g_variant_get_child_value(reply, 0);
		known = g_variant_lookup(creds, "UnixUserID", "u", &uid);
		(void)g_variant_lookup(creds, "ProcessID", "u", &pid);
	}
	kmx_caller_resolved(caller, known, uid, pid);
}

/* asks the bus who a unique name is, once per connection */
static void
kmx_dbus_resolve_caller(KmxCaller *caller, gpointer user_data)
{
	KmxDBusService *self = user_data;
	KmxDBusResolving *r = g_new0(KmxDBusResolving, 1);

	r->self = g_object_ref(self);
	r->caller = kmx_caller_ref(caller);
	g_dbus_connection_call(self->connection,
			       "org.freedesktop.DBus",
			       "/org/freedesktop/DBus",
			       "org.freedesktop.DBus",
			       "GetConnectionCredentials",
			       g_variant_new("(s)", kmx_caller_get_name(caller)),
			       G_VARIANT_TYPE("(a{sv})"),
			       G_DBUS_CALL_FLAGS_NONE,
			       -1,
			       self->cancellable,
			       kmx_dbus_credentials_cb,
			       r);
}

/**
 * kmx_dbus_service_get_caller:
 * @connection: the connection a call came in on
 * @sender: its sender; %NULL on a peer connection
 *
 * Returns: (transfer none): the caller behind @sender on the bus, made on
 * first contact, or the one caller of a peer connection (one that is gone
 * if the connection closed meanwhile)
 */
KmxCaller *
kmx_dbus_service_get_caller(KmxDBusService *self, GDBusConnection *connection, const char *sender)
{
	KmxCaller *caller;

	if (connection != self->connection) {
		KmxDBusLink *peer = g_hash_table_lookup(self->peers, connection);
		return peer != NULL ? peer->caller : self->nobody;
	}
	if (sender == NULL)
		sender = "";
	caller = g_hash_table_lookup(self->callers, sender);
	if (caller != NULL)
		return caller;
	caller = kmx_caller_new(sender, kmx_dbus_resolve_caller, self);
	g_hash_table_insert(self->callers, g_strdup(sender), caller);
	return caller;
}

typedef struct {
	KmxDBusService *self;
	GDBusMethodInvocation *invocation;
	KmxDBusAuthorized callback;
	gpointer user_data;
	GDestroyNotify destroy;
} KmxDBusAuthorizing;

static void
kmx_dbus_authorized_cb(KmxCaller *caller, const GError *error, gpointer user_data)
{
	KmxDBusAuthorizing *a = user_data;

	/* a caller that left gets no reply: nobody would read it, and the
	 * calls of a flood that left at once would all wait for the bus to
	 * take their replies */
	if (error != NULL && kmx_caller_is_gone(caller))
		g_object_unref(a->invocation);
	else if (error != NULL)
		g_dbus_method_invocation_return_gerror(a->invocation, error);
	else
		a->callback(a->self, a->invocation, a->user_data);
	if (a->destroy != NULL)
		a->destroy(a->user_data);
	g_object_unref(a->self);
	g_free(a);
}

/**
 * kmx_dbus_service_authorize:
 * @callback: runs once the caller may go on; it owns @invocation
 *
 * Passes @invocation through the manager's authorisation hook; a refused
 * caller gets Denied.
 */
void
kmx_dbus_service_authorize(KmxDBusService *self,
			   GDBusMethodInvocation *invocation,
			   KmxDBusAuthorized callback,
			   gpointer user_data,
			   GDestroyNotify destroy)
{
	KmxDBusAuthorizing *a = g_new0(KmxDBusAuthorizing, 1);
	KmxCaller *caller =
	    kmx_dbus_service_get_caller(self,
					g_dbus_method_invocation_get_connection(invocation),
					g_dbus_method_invocation_get_sender(invocation));

	a->self = g_object_ref(self);
	a->invocation = invocation;
	a->callback = callback;
	a->user_data = user_data;
	a->destroy = destroy;
	kmx_manager_authorize(self->manager, caller, kmx_dbus_authorized_cb, a);
}

/* the prompters of @sender on @connection (every one of a peer connection) */
static void
kmx_dbus_drop_prompters(KmxDBusService *self, GDBusConnection *connection, const char *sender)
{
	g_autoptr(GPtrArray) prompters = kmx_manager_get_prompters(self->manager);

	for (guint i = 0; i < prompters->len; i++) {
		KmxRemotePrompter *p = g_ptr_array_index(prompters, i);
		if (kmx_remote_prompter_get_connection(p) == connection &&
		    (sender == NULL || g_strcmp0(kmx_remote_prompter_get_sender(p), sender) == 0)) {
			g_debug("prompter %s %s left",
				sender != NULL ? sender : "of a peer connection",
				kmx_remote_prompter_get_path(p));
			kmx_manager_remove_prompter(self->manager, KMX_PROMPTER(p));
		}
	}
}

static void
kmx_dbus_forget_caller(KmxDBusService *self, const char *sender)
{
	KmxCaller *caller = g_hash_table_lookup(self->callers, sender);

	kmx_dbus_drop_prompters(self, self->connection, sender);
	if (caller == NULL)
		return;
	/* its requests are pointless now: stop them where they wait */
	kmx_caller_gone(caller);
	g_hash_table_remove(self->callers, sender);
}

static void
kmx_dbus_name_owner_changed_cb(GDBusConnection *connection,
			       const char *sender_name,
			       const char *object_path,
			       const char *interface_name,
			       const char *signal_name,
			       GVariant *parameters,
			       gpointer user_data)
{
	KmxDBusService *self = user_data;
	const char *name, *old_owner, *new_owner;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sss)")))
		return;
	g_variant_get(parameters, "(&s&s&s)", &name, &old_owner, &new_owner);
	if (name[0] == ':' && new_owner[0] == '\0')
		kmx_dbus_forget_caller(self, name);
}

/* ---- the Manager interface ------------------------------------------------------ */

static GVariant *
kmx_dbus_manager_property(gpointer object, const char *name)
{
	KmxDBusService *self = object;

	if (g_str_equal(name, "Version"))
		return g_variant_new_string(PACKAGE_VERSION);
	if (g_str_equal(name, "Backends"))
		return g_variant_new_strv(kmx_manager_get_backend_names(self->manager), -1);
	return NULL;
}

static void
kmx_dbus_list_devices(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GPtrArray) devices = kmx_manager_get_devices(self->manager);
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
	for (guint i = 0; i < devices->len; i++) {
		g_autofree char *path = kmx_dbus_device_path(devices->pdata[i]);
		g_variant_builder_add(&b, "o", path);
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", &b));
}

/**
 * kmx_dbus_service_keys_changed:
 *
 * A device's keys, or the devices, changed: ListKeys' reply is built anew.
 */
void
kmx_dbus_service_keys_changed(KmxDBusService *self)
{
	g_clear_pointer(&self->key_paths, g_variant_unref);
}

/* an (ao) as sent: a tree whose elements are the serialised array's own
 * elements, each a small GVariant pointing into its buffer.  GDBus writes a
 * reply element by element: from a serialised array it makes (and frees) a
 * GVariant per path on every call, from a tree it takes the one it has, a
 * quarter of its work for 10,000 paths.  The paths' bytes are not copied:
 * ~70 bytes a path more at rest than the array alone, not ~200 as a tree
 * of copied strings */
/* from this many keys ListKeys' reply is large enough to trim after */
#define KMX_LARGE_LIST 1000

static GVariant *
kmx_dbus_paths_reply(GVariant *paths)
{
	gsize n = g_variant_n_children(paths);
	g_autofree GVariant **elements = g_new(GVariant *, MAX(n, 1));
	GVariant *array;

	for (gsize i = 0; i < n; i++)
		elements[i] = g_variant_get_child_value(paths, i);
	array = g_variant_new_array(G_VARIANT_TYPE_OBJECT_PATH, elements, n);
	for (gsize i = 0; i < n; i++)
		g_variant_unref(elements[i]);
	return g_variant_ref_sink(g_variant_new_tuple(&array, 1));
}

/* ListKeys' reply, the same on every connection: built when the keys change,
 * not per call, since GLib checks every object path of an (ao) it is given,
 * 10,000 of them for a large store.  With the keys on one device (the usual
 * case: a large store is the soft-key store) its elements are those of that
 * device's Keys, not a copy; else of the devices' arrays joined */
static GVariant *
kmx_dbus_key_paths(KmxDBusService *self)
{
	g_autoptr(GPtrArray) devices = NULL;
	g_autoptr(GPtrArray) all = NULL;
	g_autoptr(GVariant) joined = NULL;
	KmxExportedDevice *only = NULL;
	guint with_keys = 0;

	if (self->key_paths != NULL)
		return self->key_paths;
	devices = kmx_manager_get_devices(self->manager);
	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev =
		    g_hash_table_lookup(self->exported, kmx_device_get_id(devices->pdata[i]));

		if (edev != NULL && kmx_exported_device_get_n_keys(edev) > 0) {
			only = edev;
			with_keys++;
		}
	}
	if (with_keys == 1) {
		self->key_paths =
		    kmx_dbus_paths_reply(kmx_exported_device_get_key_paths_variant(only));
		return self->key_paths;
	}
	all = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev =
		    g_hash_table_lookup(self->exported, kmx_device_get_id(devices->pdata[i]));
		g_autoptr(GPtrArray) keys = NULL;

		if (edev == NULL)
			continue;
		keys = kmx_exported_device_get_key_paths(edev);
		g_ptr_array_extend_and_steal(all, g_steal_pointer(&keys));
	}
	g_ptr_array_add(all, NULL);
	joined = g_variant_ref_sink(g_variant_new_objv((const char *const *)all->pdata, -1));
	/* one flat buffer, not a string and a GVariant per path */
	(void)g_variant_get_data(joined);
	self->key_paths = kmx_dbus_paths_reply(joined);
	return self->key_paths;
}

static void
kmx_dbus_list_keys(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	GVariant *reply = kmx_dbus_key_paths(self);
	g_autoptr(GVariant) paths = g_variant_get_child_value(reply, 0);

	g_dbus_method_invocation_return_value(invocation, reply);
	/* a large store's reply is a megabyte, written and freed on GDBus's
	 * thread: give what it leaves in the heap back once it is sent */
	if (g_variant_n_children(paths) >= KMX_LARGE_LIST)
		kmx_manager_trim_later(self->manager);
}

static void
kmx_dbus_find_key(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	const char *id = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) found = NULL;
	GVariantBuilder b;

	g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&s)", &id);
	found = kmx_manager_find_keys(self->manager, id, &error);
	if (found == NULL) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return;
	}
	g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
	for (guint i = 0; i < found->len; i++) {
		g_autofree char *path = kmx_dbus_key_path(found->pdata[i]);
		g_variant_builder_add(&b, "o", path);
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", &b));
}

static void
kmx_dbus_locked_all(gpointer user_data, gpointer unused)
{
	g_dbus_method_invocation_return_value(user_data, NULL);
}

/* the reply waits for every device's lock and its Locked: a caller that
 * reads Locked after it sees true (and PropertiesChanged came first) */
static void
kmx_dbus_lock_all(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	kmx_manager_lock_all_then(self->manager, kmx_dbus_locked_all, invocation);
}

/* the prompter the caller of @invocation registered at @path */
static KmxPrompter *
kmx_dbus_find_prompter(KmxDBusService *self, GDBusMethodInvocation *invocation, const char *path)
{
	GDBusConnection *connection = g_dbus_method_invocation_get_connection(invocation);
	const char *sender = g_dbus_method_invocation_get_sender(invocation);
	g_autoptr(GPtrArray) prompters = kmx_manager_get_prompters(self->manager);

	for (guint i = 0; i < prompters->len; i++) {
		KmxRemotePrompter *p = g_ptr_array_index(prompters, i);
		if (kmx_remote_prompter_get_connection(p) == connection &&
		    g_strcmp0(kmx_remote_prompter_get_sender(p), sender) == 0 &&
		    g_str_equal(kmx_remote_prompter_get_path(p), path))
			return KMX_PROMPTER(p);
	}
	return NULL;
}

static void
kmx_dbus_register_prompter(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	const char *sender = g_dbus_method_invocation_get_sender(invocation);
	const char *path = NULL;
	KmxPrompter *old;
	g_autoptr(KmxRemotePrompter) p = NULL;

	g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&o)", &path);
	old = kmx_dbus_find_prompter(self, invocation, path);
	if (old != NULL)
		kmx_manager_remove_prompter(self->manager, old);
	p = kmx_remote_prompter_new(g_dbus_method_invocation_get_connection(invocation),
				    sender,
				    path);
	kmx_manager_add_prompter(self->manager, KMX_PROMPTER(p));
	g_debug("prompter %s %s registered", sender != NULL ? sender : "(peer)", path);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static void
kmx_dbus_unregister_prompter(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	const char *path = NULL;
	KmxPrompter *p;

	g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&o)", &path);
	p = kmx_dbus_find_prompter(self, invocation, path);
	if (p == NULL) {
		g_dbus_method_invocation_return_error(
		    invocation,
		    KMX_ERROR,
		    KMX_ERROR_NOT_FOUND,
		    "%s is not a prompter this connection registered",
		    path);
		return;
	}
	kmx_manager_remove_prompter(self->manager, p);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static void
kmx_dbus_sign_by_id(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	kmx_dbus_call_key_by_id(self,
				KMX_REQUEST_SIGN,
				g_dbus_method_invocation_get_parameters(invocation),
				invocation);
}

static void
kmx_dbus_decrypt_by_id(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	kmx_dbus_call_key_by_id(self,
				KMX_REQUEST_DECRYPT,
				g_dbus_method_invocation_get_parameters(invocation),
				invocation);
}

static void
kmx_dbus_manager_properties(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	kmx_dbus_return_property(invocation,
				 kmx_dbus_manager_interface_info(),
				 kmx_dbus_manager_property,
				 self);
}

static void kmx_dbus_open_connection(KmxDBusService *self,
				     GDBusMethodInvocation *invocation,
				     gpointer data);

static const struct {
	const char *name;
	KmxDBusAuthorized handler;
} kmx_dbus_manager_methods[] = {
    {"ListDevices", kmx_dbus_list_devices},
    {"ListKeys", kmx_dbus_list_keys},
    {"FindKey", kmx_dbus_find_key},
    {"Sign", kmx_dbus_sign_by_id},
    {"Decrypt", kmx_dbus_decrypt_by_id},
    {"LockAll", kmx_dbus_lock_all},
    {"RegisterPrompter", kmx_dbus_register_prompter},
    {"UnregisterPrompter", kmx_dbus_unregister_prompter},
    {"OpenConnection", kmx_dbus_open_connection},
};

static void
kmx_dbus_manager_method_call(GDBusConnection *connection,
			     const char *sender,
			     const char *object_path,
			     const char *interface_name,
			     const char *method_name,
			     GVariant *parameters,
			     GDBusMethodInvocation *invocation,
			     gpointer user_data)
{
	KmxDBusService *self = user_data;

	kmx_dbus_scrub_arrived(connection, invocation);
	if (g_str_equal(interface_name, PROPERTIES_IFACE)) {
		kmx_dbus_service_authorize(self,
					   invocation,
					   kmx_dbus_manager_properties,
					   NULL,
					   NULL);
		return;
	}
	for (guint i = 0; i < G_N_ELEMENTS(kmx_dbus_manager_methods); i++) {
		if (g_str_equal(kmx_dbus_manager_methods[i].name, method_name)) {
			kmx_dbus_service_authorize(self,
						   invocation,
						   kmx_dbus_manager_methods[i].handler,
						   NULL,
						   NULL);
			return;
		}
	}
	g_dbus_method_invocation_return_error(invocation,
					      G_DBUS_ERROR,
					      G_DBUS_ERROR_UNKNOWN_METHOD,
					      "no method %s",
					      method_name);
}

static const GDBusInterfaceVTable kmx_dbus_manager_vtable = {
    .method_call = kmx_dbus_manager_method_call,
};

/* ---- the ObjectManager --------------------------------------------------------- */

static GDBusInterfaceInfo *
kmx_object_manager_info(void)
{
	static GDBusNodeInfo *node = NULL;

	if (g_once_init_enter(&node)) {
		GDBusNodeInfo *n = g_dbus_node_info_new_for_xml(
		    "<node><interface name='org.freedesktop.DBus.ObjectManager'>"
		    "<method name='GetManagedObjects'>"
		    "<arg type='a{oa{sa{sv}}}' name='objects' direction='out'/></method>"
		    "<signal name='InterfacesAdded'><arg type='o' name='object_path'/>"
		    "<arg type='a{sa{sv}}' name='interfaces_and_properties'/></signal>"
		    "<signal name='InterfacesRemoved'><arg type='o' name='object_path'/>"
		    "<arg type='as' name='interfaces'/></signal>"
		    "</interface></node>",
		    NULL);
		g_once_init_leave(&node, n);
	}
	return node->interfaces[0];
}

/**
 * kmx_dbus_service_foreach_managed_object:
 * @func: gets each {oa{sa{sv}}} entry, floating
 *
 * The entries of GetManagedObjects, in the order of the reply: each
 * device's, then its keys'.
 */
void
kmx_dbus_service_foreach_managed_object(KmxDBusService *self,
					void (*func)(GVariant *entry, gpointer user_data),
					gpointer user_data)
{
	g_autoptr(GPtrArray) devices = kmx_manager_get_devices(self->manager);

	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev =
		    g_hash_table_lookup(self->exported, kmx_device_get_id(devices->pdata[i]));
		if (edev != NULL)
			kmx_exported_device_foreach_managed_object(edev, func, user_data);
	}
}

static void
kmx_dbus_append_entry(GVariant *entry, gpointer user_data)
{
	kmx_variant_array_append(user_data, entry);
}

/**
 * kmx_dbus_service_build_managed_objects:
 *
 * GetManagedObjects' reply, an (a{oa{sa{sv}}}) serialised as it is built:
 * one buffer of the reply's size, not a tree of an entry per key.
 *
 * Returns: (transfer full): the reply, not floating
 */
GVariant *
kmx_dbus_service_build_managed_objects(KmxDBusService *self)
{
	KmxVariantArray *objects = kmx_variant_array_new(G_VARIANT_TYPE("{oa{sa{sv}}}"));

	kmx_dbus_service_foreach_managed_object(self, kmx_dbus_append_entry, objects);
	return kmx_variant_array_end(objects, TRUE);
}

static void
kmx_dbus_managed_objects(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GVariant) reply = kmx_dbus_service_build_managed_objects(self);

	g_dbus_method_invocation_return_value(invocation, reply);
	/* a large store's reply is megabytes: give them back to the system
	 * once GDBus has sent it (on its own thread) */
	if (g_hash_table_size(self->exported) > 0)
		kmx_manager_trim_later(self->manager);
}

static void
kmx_object_manager_method_call(GDBusConnection *connection,
			       const char *sender,
			       const char *object_path,
			       const char *interface_name,
			       const char *method_name,
			       GVariant *parameters,
			       GDBusMethodInvocation *invocation,
			       gpointer user_data)
{
	kmx_dbus_service_authorize(user_data, invocation, kmx_dbus_managed_objects, NULL, NULL);
}

static const GDBusInterfaceVTable kmx_object_manager_vtable = {
    .method_call = kmx_object_manager_method_call,
};

/* ---- devices ---------------------------------------------------------------------- */

static void
kmx_dbus_attach_device(KmxExportedDevice *edev, GDBusConnection *connection)
{
	g_autoptr(GError) error = NULL;

	if (!kmx_exported_device_attach(edev, connection, &error))
		g_warning("cannot serve %s: %s",
			  kmx_exported_device_get_path(edev),
			  error->message);
}

static void
kmx_dbus_device_added_cb(KmxManager *manager, KmxDevice *device, KmxDBusService *self)
{
	KmxExportedDevice *edev = kmx_exported_device_new(self, device);
	GHashTableIter iter;
	gpointer connection;

	g_hash_table_insert(self->exported, g_strdup(kmx_device_get_id(device)), edev);
	kmx_dbus_service_keys_changed(self);
	if (self->bus == NULL)
		return;
	kmx_dbus_attach_device(edev, self->connection);
	g_hash_table_iter_init(&iter, self->peers);
	while (g_hash_table_iter_next(&iter, &connection, NULL))
		kmx_dbus_attach_device(edev, connection);
	kmx_exported_device_announce(edev);
}

static void
kmx_dbus_device_removed_cb(KmxManager *manager, KmxDevice *device, KmxDBusService *self)
{
	g_hash_table_remove(self->exported, kmx_device_get_id(device));
	kmx_dbus_service_keys_changed(self);
}

static void
kmx_dbus_device_replaced_cb(KmxManager *manager,
			    KmxDevice *old,
			    KmxDevice *device,
			    KmxDBusService *self)
{
	KmxExportedDevice *edev = g_hash_table_lookup(self->exported, kmx_device_get_id(device));

	if (edev != NULL)
		kmx_exported_device_rebind(edev, device);
	kmx_dbus_service_keys_changed(self);
}

/* ---- Introspect below the devices, behind the hook -------------------------- */

/* GDBus answers Introspect of a subtree itself, synchronously and for
 * anybody, and a subtree's nodes are key ids.  So Introspect calls below
 * the devices path are taken off the connection's worker thread by a
 * filter and answered here, once the caller passed the authorisation hook
 * like every other call. */
typedef struct {
	KmxDBusService *self;
	GDBusConnection *connection;
	GDBusMessage *message;
} KmxIntrospect;

static void
kmx_introspect_free(KmxIntrospect *in)
{
	g_object_unref(in->message);
	g_object_unref(in->connection);
	g_object_unref(in->self);
	g_free(in);
}

static void
kmx_dbus_send_reply(GDBusConnection *connection, GDBusMessage *reply)
{
	g_autoptr(GError) error = NULL;

	if (g_dbus_connection_is_closed(connection))
		return;
	if (!g_dbus_connection_send_message(connection,
					    reply,
					    G_DBUS_SEND_MESSAGE_FLAGS_NONE,
					    NULL,
					    &error))
		g_debug("cannot answer Introspect: %s", error->message);
}

static void
kmx_introspect_node(GString *xml, const char *name)
{
	g_string_append_printf(xml, "  <node name=\"%s\"/>\n", name);
}

static char *
kmx_dbus_introspect_xml(KmxDBusService *self, const char *path)
{
	static const char *standard =
	    "  <interface name=\"org.freedesktop.DBus.Properties\"/>\n"
	    "  <interface name=\"org.freedesktop.DBus.Introspectable\"/>\n"
	    "  <interface name=\"org.freedesktop.DBus.Peer\"/>\n";
	GString *xml = g_string_new(
	    "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
	    "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n");
	GHashTableIter iter;
	gpointer edev;

	if (g_str_equal(path, KMX_DBUS_DEVICES_PATH)) {
		g_hash_table_iter_init(&iter, self->exported);
		while (g_hash_table_iter_next(&iter, NULL, &edev))
			kmx_introspect_node(xml,
					    kmx_exported_device_get_path(edev) +
						strlen(KMX_DBUS_DEVICES_PATH "/"));
		g_string_append(xml, "</node>\n");
		return g_string_free(xml, FALSE);
	}
	g_hash_table_iter_init(&iter, self->exported);
	while (g_hash_table_iter_next(&iter, NULL, &edev)) {
		const char *dev_path = kmx_exported_device_get_path(edev);
		gsize n = strlen(dev_path);
		g_autoptr(GPtrArray) keys = NULL;

		if (strncmp(path, dev_path, n) != 0 || (path[n] != '\0' && path[n] != '/'))
			continue;
		keys = kmx_exported_device_get_key_paths(edev);
		g_string_append(xml, standard);
		if (path[n] == '\0') {
			g_dbus_interface_info_generate_xml(kmx_dbus_device_interface_info(),
							   2,
							   xml);
			for (guint i = 0; i < keys->len; i++)
				kmx_introspect_node(xml, (const char *)keys->pdata[i] + n + 1);
		} else {
			gboolean found = FALSE;
			for (guint i = 0; i < keys->len && !found; i++)
				found = g_str_equal(keys->pdata[i], path);
			if (!found)
				break;
			g_dbus_interface_info_generate_xml(kmx_dbus_key_interface_info(), 2, xml);
		}
		g_string_append(xml, "</node>\n");
		return g_string_free(xml, FALSE);
	}
	g_string_free(xml, TRUE);
	return NULL;
}

static void
kmx_dbus_introspect_authorized(KmxCaller *caller, const GError *error, gpointer user_data)
{
	KmxIntrospect *in = user_data;
	g_autoptr(GDBusMessage) reply = NULL;
	g_autofree char *xml = NULL;

	if (error != NULL) {
		g_autofree char *name = g_dbus_error_encode_gerror(error);
		reply = g_dbus_message_new_method_error_literal(in->message, name, error->message);
	} else if ((xml = kmx_dbus_introspect_xml(in->self,
						  g_dbus_message_get_path(in->message))) == NULL) {
		reply = g_dbus_message_new_method_error(in->message,
							"org.freedesktop.DBus.Error.UnknownObject",
							"no object at %s",
							g_dbus_message_get_path(in->message));
	} else {
		reply = g_dbus_message_new_method_reply(in->message);
		g_dbus_message_set_body(reply, g_variant_new("(s)", xml));
	}
	kmx_dbus_send_reply(in->connection, reply);
	kmx_introspect_free(in);
}

static gboolean
kmx_dbus_introspect_cb(gpointer user_data)
{
	KmxIntrospect *in = user_data;
	KmxCaller *caller;

	if (in->self->bus == NULL) {
		kmx_introspect_free(in);
		return G_SOURCE_REMOVE;
	}
	caller = kmx_dbus_service_get_caller(in->self,
					     in->connection,
					     g_dbus_message_get_sender(in->message));
	kmx_manager_authorize(in->self->manager, caller, kmx_dbus_introspect_authorized, in);
	return G_SOURCE_REMOVE;
}

/* on GDBus's worker thread: every message of the connection passes here */
static GDBusMessage *
kmx_dbus_filter(GDBusConnection *connection,
		GDBusMessage *message,
		gboolean incoming,
		gpointer user_data)
{
	KmxDBusService *self = user_data;
	const char *path = g_dbus_message_get_path(message);
	KmxIntrospect *in;

	if (!incoming ||
	    g_dbus_message_get_message_type(message) != G_DBUS_MESSAGE_TYPE_METHOD_CALL ||
	    path == NULL || !g_str_has_prefix(path, KMX_DBUS_DEVICES_PATH) ||
	    (path[strlen(KMX_DBUS_DEVICES_PATH)] != '\0' &&
	     path[strlen(KMX_DBUS_DEVICES_PATH)] != '/') ||
	    g_strcmp0(g_dbus_message_get_interface(message),
		      "org.freedesktop.DBus.Introspectable") != 0 ||
	    g_strcmp0(g_dbus_message_get_member(message), "Introspect") != 0)
		return message;
	in = g_new0(KmxIntrospect, 1);
	in->self = g_object_ref(self);
	in->connection = g_object_ref(connection);
	in->message = message; /* ours now: GDBus will not dispatch it */
	g_main_context_invoke(self->main_context, kmx_dbus_introspect_cb, in);
	return NULL;
}

/* ---- the connections the objects are served on ----------------------------------- */

static void
kmx_dbus_link_free(KmxDBusLink *link)
{
	KmxDBusService *self = link->self;
	GHashTableIter iter;
	gpointer edev;

	if (link->closed_id != 0)
		g_signal_handler_disconnect(link->connection, link->closed_id);
	if (link->filter_id != 0)
		g_dbus_connection_remove_filter(link->connection, link->filter_id);
	/* going away as a whole: no InterfacesRemoved for every key */
	g_hash_table_iter_init(&iter, self->exported);
	while (g_hash_table_iter_next(&iter, NULL, &edev))
		kmx_exported_device_detach(edev, link->connection);
	if (link->object_manager_id != 0)
		g_dbus_connection_unregister_object(link->connection, link->object_manager_id);
	if (link->manager_id != 0)
		g_dbus_connection_unregister_object(link->connection, link->manager_id);
	if (link->caller != NULL)
		kmx_caller_unref(link->caller);
	g_object_unref(link->connection);
	g_free(link);
}

/**
 * kmx_dbus_link_new:
 * @caller: (nullable): the one caller of a peer connection
 *
 * Serves the root object, every device and key, and Introspect below the
 * devices on @connection: the same code for the bus and a peer.
 */
static KmxDBusLink *
kmx_dbus_link_new(KmxDBusService *self,
		  GDBusConnection *connection,
		  KmxCaller *caller,
		  GError **error)
{
	KmxDBusLink *link = g_new0(KmxDBusLink, 1);
	GHashTableIter iter;
	gpointer edev;

	link->self = self;
	link->connection = g_object_ref(connection);
	link->caller = caller != NULL ? kmx_caller_ref(caller) : NULL;
	link->manager_id = g_dbus_connection_register_object(connection,
							     KMX_DBUS_PATH,
							     kmx_dbus_manager_interface_info(),
							     &kmx_dbus_manager_vtable,
							     self,
							     NULL,
							     error);
	if (link->manager_id == 0)
		goto failed;
	link->object_manager_id = g_dbus_connection_register_object(connection,
								    KMX_DBUS_PATH,
								    kmx_object_manager_info(),
								    &kmx_object_manager_vtable,
								    self,
								    NULL,
								    error);
	if (link->object_manager_id == 0)
		goto failed;
	g_hash_table_iter_init(&iter, self->exported);
	while (g_hash_table_iter_next(&iter, NULL, &edev)) {
		if (!kmx_exported_device_attach(edev, connection, error))
			goto failed;
	}
	link->filter_id = g_dbus_connection_add_filter(connection, kmx_dbus_filter, self, NULL);
	return link;
failed:
	kmx_dbus_link_free(link);
	return NULL;
}

/* a peer connection closed: what its caller had in flight is pointless */
static void
kmx_dbus_peer_closed_cb(GDBusConnection *connection,
			gboolean remote_peer_vanished,
			GError *error,
			gpointer user_data)
{
	KmxDBusLink *link = user_data;
	KmxDBusService *self = link->self;

	g_debug("peer connection of %s closed", kmx_caller_get_name(link->caller));
	kmx_dbus_drop_prompters(self, connection, NULL);
	kmx_caller_gone(link->caller);
	g_hash_table_remove(self->peers, connection);
}

typedef struct {
	KmxDBusService *self;
	KmxCaller *caller;
	GCancellable *cancellable; /* the handshake's */
	gulong stopping_id;	   /* on self->cancellable */
	GSource *deadline;
} KmxDBusOpening;

static void
kmx_dbus_opening_cancel_cb(GCancellable *stopping, gpointer user_data)
{
	g_cancellable_cancel(G_CANCELLABLE(user_data));
}

static gboolean
kmx_dbus_opening_deadline_cb(gpointer user_data)
{
	KmxDBusOpening *o = user_data;

	g_debug("%s did not finish the handshake of its peer connection in %u s",
		kmx_caller_get_name(o->caller),
		KMX_PEER_HANDSHAKE_SECONDS);
	g_cancellable_cancel(o->cancellable);
	return G_SOURCE_REMOVE;
}

static void
kmx_dbus_peer_ready_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxDBusOpening *o = user_data;
	g_autoptr(KmxDBusService) self = o->self;
	g_autoptr(KmxCaller) caller = o->caller;
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) connection = g_dbus_connection_new_finish(res, &error);
	KmxDBusLink *link;

	g_source_destroy(o->deadline);
	g_source_unref(o->deadline);
	g_cancellable_disconnect(self->cancellable, o->stopping_id);
	g_object_unref(o->cancellable);
	g_free(o);
	self->peers_opening--;
	if (connection == NULL) {
		g_debug("no peer connection for %s: %s",
			kmx_caller_get_name(caller),
			error->message);
		return;
	}
	/* the daemon is stopping, or the peer left during the handshake */
	if (self->bus == NULL || g_dbus_connection_is_closed(connection) ||
	    (link = kmx_dbus_link_new(self, connection, caller, &error)) == NULL) {
		if (error != NULL)
			g_warning("cannot serve a peer connection: %s", error->message);
		g_dbus_connection_close(connection, NULL, NULL, NULL);
		return;
	}
	link->closed_id =
	    g_signal_connect(connection, "closed", G_CALLBACK(kmx_dbus_peer_closed_cb), link);
	g_hash_table_insert(self->peers, connection, link);
	g_dbus_connection_start_message_processing(connection);
}

static gboolean
kmx_dbus_peer_mechanism_cb(GDBusAuthObserver *observer, const char *mechanism, gpointer data)
{
	return g_str_equal(mechanism, "EXTERNAL");
}

/* whoever holds the caller's end is the caller (it may pass it on, as it
 * may pass on anything it can do); the handshake checks its user again */
static gboolean
kmx_dbus_peer_authorize_cb(GDBusAuthObserver *observer,
			   GIOStream *stream,
			   GCredentials *credentials,
			   gpointer data)
{
	return credentials != NULL && g_credentials_get_unix_user(credentials, NULL) == getuid();
}

/* Manager.OpenConnection() -> (h) */
static void
kmx_dbus_open_connection(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	GDBusConnection *via = g_dbus_method_invocation_get_connection(invocation);
	KmxCaller *caller =
	    kmx_dbus_service_get_caller(self, via, g_dbus_method_invocation_get_sender(invocation));
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketConnection) stream = NULL;
	g_autoptr(GDBusAuthObserver) observer = NULL;
	g_autoptr(GUnixFDList) fds = NULL;
	g_autofree char *guid = NULL;
	g_autofree char *name = NULL;
	KmxDBusOpening *o;
	int pair[2];

	if ((g_dbus_connection_get_capabilities(via) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING) ==
	    0) {
		g_dbus_method_invocation_return_error_literal(
		    invocation,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "this connection cannot pass file descriptors");
		return;
	}
	if (g_hash_table_size(self->peers) + self->peers_opening >= KMX_MAX_PEERS) {
		g_dbus_method_invocation_return_error(
		    invocation,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "too many peer connections (%u): close some first",
		    KMX_MAX_PEERS);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
		int err = errno;
		g_dbus_method_invocation_return_error(invocation,
						      KMX_ERROR,
						      KMX_ERROR_FAILED,
						      "cannot make a connection: %s",
						      g_strerror(err));
		return;
	}
	socket = g_socket_new_from_fd(pair[0], &error);
	if (socket == NULL) {
		close(pair[0]);
		close(pair[1]);
		g_dbus_method_invocation_return_gerror(invocation, error);
		return;
	}
	fds = g_unix_fd_list_new_from_array(&pair[1], 1); /* takes it */
	stream = g_socket_connection_factory_create_connection(socket);
	observer = g_dbus_auth_observer_new();
	g_signal_connect(observer, "allow-mechanism", G_CALLBACK(kmx_dbus_peer_mechanism_cb), NULL);
	g_signal_connect(observer,
			 "authorize-authenticated-peer",
			 G_CALLBACK(kmx_dbus_peer_authorize_cb),
			 NULL);
	guid = g_dbus_generate_guid();
	name = g_strdup_printf("%s/peer%u", kmx_caller_get_name(caller), ++self->peer_serial);
	o = g_new0(KmxDBusOpening, 1);
	o->self = g_object_ref(self);
	o->caller = kmx_caller_new_as(name, caller);
	o->cancellable = g_cancellable_new();
	o->stopping_id = g_cancellable_connect(self->cancellable,
					       G_CALLBACK(kmx_dbus_opening_cancel_cb),
					       o->cancellable,
					       NULL);
	o->deadline = g_timeout_source_new_seconds(KMX_PEER_HANDSHAKE_SECONDS);
	g_source_set_callback(o->deadline, kmx_dbus_opening_deadline_cb, o, NULL);
	g_source_attach(o->deadline, self->main_context);
	self->peers_opening++;
	g_dbus_connection_new(G_IO_STREAM(stream),
			      guid,
			      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER |
				  G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
			      observer,
			      o->cancellable,
			      kmx_dbus_peer_ready_cb,
			      o);
	g_dbus_method_invocation_return_value_with_unix_fd_list(invocation,
								g_variant_new("(h)", 0),
								fds);
}

/* ---- life ---------------------------------------------------------------------------- */

static void
kmx_dbus_service_dispose(GObject *object)
{
	KmxDBusService *self = KMX_DBUS_SERVICE(object);

	kmx_dbus_service_unexport(self);
	if (self->manager != NULL)
		g_signal_handlers_disconnect_by_data(self->manager, self);
	G_OBJECT_CLASS(kmx_dbus_service_parent_class)->dispose(object);
}

static void
kmx_dbus_service_finalize(GObject *object)
{
	KmxDBusService *self = KMX_DBUS_SERVICE(object);

	g_hash_table_unref(self->peers);
	g_hash_table_unref(self->exported);
	g_clear_pointer(&self->key_paths, g_variant_unref);
	g_hash_table_unref(self->callers);
	kmx_caller_unref(self->nobody);
	g_clear_object(&self->manager);
	g_clear_object(&self->connection);
	g_clear_object(&self->locks);
	g_clear_object(&self->cancellable);
	g_main_context_unref(self->main_context);
	G_OBJECT_CLASS(kmx_dbus_service_parent_class)->finalize(object);
}

static void
kmx_dbus_service_class_init(KmxDBusServiceClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	object_class->dispose = kmx_dbus_service_dispose;
	object_class->finalize = kmx_dbus_service_finalize;
}

static void
kmx_dbus_service_init(KmxDBusService *self)
{
	self->exported = g_hash_table_new_full(g_str_hash,
					       g_str_equal,
					       g_free,
					       (GDestroyNotify)kmx_exported_device_free);
	self->callers = g_hash_table_new_full(g_str_hash,
					      g_str_equal,
					      g_free,
					      (GDestroyNotify)kmx_caller_unref);
	self->peers = g_hash_table_new_full(g_direct_hash,
					    g_direct_equal,
					    NULL,
					    (GDestroyNotify)kmx_dbus_link_free);
	self->nobody = kmx_caller_new("(closed peer connection)", NULL, NULL);
	kmx_caller_gone(self->nobody);
	self->cancellable = g_cancellable_new();
	self->main_context = g_main_context_ref_thread_default();
}

/**
 * kmx_dbus_service_new:
 *
 * Returns: (transfer full): the frontend of @manager, not yet on a bus
 */
KmxDBusService *
kmx_dbus_service_new(KmxManager *manager)
{
	KmxDBusService *self = g_object_new(KMX_TYPE_DBUS_SERVICE, NULL);
	g_autoptr(GPtrArray) devices = kmx_manager_get_devices(manager);

	self->manager = g_object_ref(manager);
	for (guint i = 0; i < devices->len; i++)
		g_hash_table_insert(self->exported,
				    g_strdup(kmx_device_get_id(devices->pdata[i])),
				    kmx_exported_device_new(self, devices->pdata[i]));
	g_signal_connect(manager, "device-added", G_CALLBACK(kmx_dbus_device_added_cb), self);
	g_signal_connect(manager, "device-removed", G_CALLBACK(kmx_dbus_device_removed_cb), self);
	g_signal_connect(manager, "device-replaced", G_CALLBACK(kmx_dbus_device_replaced_cb), self);
	return self;
}

/* asked when no registered prompter answers; [daemon] system-prompter
 * names another bus name than GNOME's, or "none" */
static void
kmx_dbus_service_set_system_prompter(KmxDBusService *self, GDBusConnection *connection)
{
	g_autofree char *name = kmx_context_get_string(kmx_manager_get_context(self->manager),
						       "daemon",
						       "system-prompter",
						       KMX_GCR_DEFAULT_PROMPTER);
	g_autoptr(KmxGcrPrompter) prompter = NULL;

	if (g_str_equal(name, "none") || !g_dbus_is_name(name)) {
		if (!g_str_equal(name, "none"))
			g_warning(
			    "[daemon] system-prompter=%s is not a bus name; no system prompter",
			    name);
		kmx_manager_set_system_prompter(self->manager, NULL);
		return;
	}
	prompter = kmx_gcr_prompter_new(connection, name);
	kmx_manager_set_system_prompter(self->manager, KMX_PROMPTER(prompter));
}

/**
 * kmx_dbus_service_export:
 * @connection: the bus
 *
 * Puts the object tree on @connection and starts following callers, the
 * session's lock and the system's sleep.
 */
gboolean
kmx_dbus_service_export(KmxDBusService *self, GDBusConnection *connection, GError **error)
{
	g_return_val_if_fail(KMX_IS_DBUS_SERVICE(self), FALSE);
	g_return_val_if_fail(self->bus == NULL, FALSE);
	self->bus = kmx_dbus_link_new(self, connection, NULL, error);
	if (self->bus == NULL)
		return FALSE;
	g_set_object(&self->connection, connection);
	self->name_owner_changed_id =
	    g_dbus_connection_signal_subscribe(connection,
					       "org.freedesktop.DBus",
					       "org.freedesktop.DBus",
					       "NameOwnerChanged",
					       "/org/freedesktop/DBus",
					       NULL,
					       G_DBUS_SIGNAL_FLAGS_NONE,
					       kmx_dbus_name_owner_changed_cb,
					       self,
					       NULL);
	kmx_dbus_service_set_system_prompter(self, connection);
	if (self->locks == NULL) {
		self->locks = kmx_dbus_locks_new(self->manager);
		kmx_dbus_locks_start(self->locks, connection);
	}
	return TRUE;
}

/**
 * kmx_dbus_service_unexport:
 *
 * Takes everything off the bus without a word: the daemon is stopping.
 */
void
kmx_dbus_service_unexport(KmxDBusService *self)
{
	GHashTableIter iter;
	gpointer connection;

	g_return_if_fail(KMX_IS_DBUS_SERVICE(self));
	g_cancellable_cancel(self->cancellable);
	if (self->locks != NULL)
		kmx_dbus_locks_stop(self->locks);
	/* peer connections end with the daemon */
	g_hash_table_iter_init(&iter, self->peers);
	while (g_hash_table_iter_next(&iter, &connection, NULL))
		g_dbus_connection_close(connection, NULL, NULL, NULL);
	g_hash_table_remove_all(self->peers);
	if (self->connection == NULL)
		return;
	if (self->name_owner_changed_id != 0) {
		g_dbus_connection_signal_unsubscribe(self->connection, self->name_owner_changed_id);
		self->name_owner_changed_id = 0;
	}
	g_clear_pointer(&self->bus, kmx_dbus_link_free);
}
