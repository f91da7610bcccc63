/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the D-Bus frontend of the manager
 *
 * Puts the manager on the bus: the root object (Manager and the
 * ObjectManager), one subtree per device (kmx-dbus-export.c), callers
 * identified by their unique name and forgotten when they leave the bus,
 * prompters registered by clients, and the session's lock and the
 * system's sleep (kmx-dbus-locks.c).  Every
 * method call and property read of every object goes through
 * kmx_dbus_service_authorize(), the manager's one authorisation hook,
 * asynchronously: no vtable here has a get_property, so GDBus hands
 * property reads to method_call as well.
 */
#include "config.h"

#include <string.h>

#include "kmx-dbus-private.h"
#include "kmx-error.h"
#include "kmx-names.h"

#define PROPERTIES_IFACE     "org.freedesktop.DBus.Properties"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"
/* not part of the API: a signal keymuxd sends only to itself */
#define SCRUB_IFACE "org.keymux.Keystore1.Private"

struct _KmxDBusService {
	GObject parent_instance;
	KmxManager *manager;
	GDBusConnection *connection;
	GHashTable *exported; /* device id -> KmxExportedDevice */
	GHashTable *callers;  /* unique name -> KmxCaller */
	guint manager_id;
	guint object_manager_id;
	guint name_owner_changed_id;
	KmxDBusLocks *locks;
	GCancellable *cancellable;
	guint filter_id;
	GMainContext *main_context;
};

G_DEFINE_TYPE(KmxDBusService, kmx_dbus_service, G_TYPE_OBJECT)

KmxManager *
kmx_dbus_service_get_manager(KmxDBusService *self)
{
	return self->manager;
}

GDBusConnection *
kmx_dbus_service_get_connection(KmxDBusService *self)
{
	return self->connection;
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
 */
void
kmx_dbus_scrub_received(GDBusConnection *connection, gsize size)
{
	const char *self_name = g_dbus_connection_get_unique_name(connection);
	g_autoptr(GDBusMessage) pad = NULL;
	g_autoptr(GBytes) zeros = NULL;

	if (size == 0 || self_name == NULL || g_dbus_connection_is_closed(connection))
		return;
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
 *
 * Returns: (transfer none): the caller behind @sender, made on first contact
 */
KmxCaller *
kmx_dbus_service_get_caller(KmxDBusService *self, const char *sender)
{
	KmxCaller *caller;

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
	    kmx_dbus_service_get_caller(self, g_dbus_method_invocation_get_sender(invocation));

	a->self = g_object_ref(self);
	a->invocation = invocation;
	a->callback = callback;
	a->user_data = user_data;
	a->destroy = destroy;
	kmx_manager_authorize(self->manager, caller, kmx_dbus_authorized_cb, a);
}

static void
kmx_dbus_forget_caller(KmxDBusService *self, const char *sender)
{
	KmxCaller *caller = g_hash_table_lookup(self->callers, sender);
	g_autoptr(GPtrArray) prompters = kmx_manager_get_prompters(self->manager);

	for (guint i = 0; i < prompters->len; i++) {
		KmxRemotePrompter *p = g_ptr_array_index(prompters, i);
		if (g_str_equal(kmx_remote_prompter_get_sender(p), sender)) {
			g_debug("prompter %s %s left the bus",
				sender,
				kmx_remote_prompter_get_path(p));
			kmx_manager_remove_prompter(self->manager, KMX_PROMPTER(p));
		}
	}
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

static void
kmx_dbus_list_keys(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GPtrArray) devices = kmx_manager_get_devices(self->manager);
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev =
		    g_hash_table_lookup(self->exported, kmx_device_get_id(devices->pdata[i]));
		g_autoptr(GPtrArray) paths = NULL;

		if (edev == NULL)
			continue;
		paths = kmx_exported_device_get_key_paths(edev);
		for (guint j = 0; j < paths->len; j++)
			g_variant_builder_add(&b, "o", paths->pdata[j]);
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", &b));
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
kmx_dbus_lock_all(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	kmx_manager_lock_all(self->manager);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static KmxPrompter *
kmx_dbus_find_prompter(KmxDBusService *self, const char *sender, const char *path)
{
	g_autoptr(GPtrArray) prompters = kmx_manager_get_prompters(self->manager);

	for (guint i = 0; i < prompters->len; i++) {
		KmxRemotePrompter *p = g_ptr_array_index(prompters, i);
		if (g_str_equal(kmx_remote_prompter_get_sender(p), sender) &&
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
	old = kmx_dbus_find_prompter(self, sender, path);
	if (old != NULL)
		kmx_manager_remove_prompter(self->manager, old);
	p = kmx_remote_prompter_new(self->connection, sender, path);
	kmx_manager_add_prompter(self->manager, KMX_PROMPTER(p));
	g_debug("prompter %s %s registered", sender, path);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static void
kmx_dbus_unregister_prompter(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	const char *sender = g_dbus_method_invocation_get_sender(invocation);
	const char *path = NULL;
	KmxPrompter *p;

	g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&o)", &path);
	p = kmx_dbus_find_prompter(self, sender, path);
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

static void
kmx_dbus_managed_objects(KmxDBusService *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GPtrArray) devices = kmx_manager_get_devices(self->manager);
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("a{oa{sa{sv}}}"));
	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev =
		    g_hash_table_lookup(self->exported, kmx_device_get_id(devices->pdata[i]));
		if (edev != NULL)
			kmx_exported_device_add_managed_objects(edev, &b);
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(a{oa{sa{sv}}})", &b));
	/* a large store's reply is megabytes: give them back to the system
	 * once GDBus has sent it (on its own thread) */
	if (devices->len > 0)
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
kmx_dbus_device_added_cb(KmxManager *manager, KmxDevice *device, KmxDBusService *self)
{
	KmxExportedDevice *edev = kmx_exported_device_new(self, device);
	g_autoptr(GError) error = NULL;

	g_hash_table_insert(self->exported, g_strdup(kmx_device_get_id(device)), edev);
	if (self->connection != NULL &&
	    !kmx_exported_device_attach(edev, self->connection, TRUE, &error))
		g_warning("cannot put %s on the bus: %s",
			  kmx_device_get_id(device),
			  error->message);
}

static void
kmx_dbus_device_removed_cb(KmxManager *manager, KmxDevice *device, KmxDBusService *self)
{
	g_hash_table_remove(self->exported, kmx_device_get_id(device));
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
}

/* ---- Introspect below the devices, behind the hook -------------------------- */

/* GDBus answers Introspect of a subtree itself, synchronously and for
 * anybody, and a subtree's nodes are key ids.  So Introspect calls below
 * the devices path are taken off the connection's worker thread by a
 * filter and answered here, once the caller passed the authorisation hook
 * like every other call. */
typedef struct {
	KmxDBusService *self;
	GDBusMessage *message;
} KmxIntrospect;

static void
kmx_introspect_free(KmxIntrospect *in)
{
	g_object_unref(in->message);
	g_object_unref(in->self);
	g_free(in);
}

static void
kmx_dbus_send_reply(KmxDBusService *self, GDBusMessage *reply)
{
	g_autoptr(GError) error = NULL;

	if (self->connection == NULL)
		return;
	if (!g_dbus_connection_send_message(self->connection,
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
	kmx_dbus_send_reply(in->self, reply);
	kmx_introspect_free(in);
}

static gboolean
kmx_dbus_introspect_cb(gpointer user_data)
{
	KmxIntrospect *in = user_data;
	KmxCaller *caller;

	if (in->self->connection == NULL) {
		kmx_introspect_free(in);
		return G_SOURCE_REMOVE;
	}
	caller = kmx_dbus_service_get_caller(in->self, g_dbus_message_get_sender(in->message));
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
	in->message = message; /* ours now: GDBus will not dispatch it */
	g_main_context_invoke(self->main_context, kmx_dbus_introspect_cb, in);
	return NULL;
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

	g_hash_table_unref(self->exported);
	g_hash_table_unref(self->callers);
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
	GHashTableIter iter;
	gpointer edev;

	g_return_val_if_fail(KMX_IS_DBUS_SERVICE(self), FALSE);
	g_set_object(&self->connection, connection);
	self->manager_id = g_dbus_connection_register_object(connection,
							     KMX_DBUS_PATH,
							     kmx_dbus_manager_interface_info(),
							     &kmx_dbus_manager_vtable,
							     self,
							     NULL,
							     error);
	if (self->manager_id == 0)
		return FALSE;
	self->object_manager_id = g_dbus_connection_register_object(connection,
								    KMX_DBUS_PATH,
								    kmx_object_manager_info(),
								    &kmx_object_manager_vtable,
								    self,
								    NULL,
								    error);
	if (self->object_manager_id == 0)
		return FALSE;
	g_hash_table_iter_init(&iter, self->exported);
	while (g_hash_table_iter_next(&iter, NULL, &edev)) {
		if (!kmx_exported_device_attach(edev, connection, FALSE, error))
			return FALSE;
	}
	self->filter_id = g_dbus_connection_add_filter(connection, kmx_dbus_filter, self, NULL);
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
	gpointer edev;

	g_return_if_fail(KMX_IS_DBUS_SERVICE(self));
	g_cancellable_cancel(self->cancellable);
	if (self->locks != NULL)
		kmx_dbus_locks_stop(self->locks);
	if (self->connection == NULL)
		return;
	if (self->filter_id != 0) {
		g_dbus_connection_remove_filter(self->connection, self->filter_id);
		self->filter_id = 0;
	}
	if (self->name_owner_changed_id != 0) {
		g_dbus_connection_signal_unsubscribe(self->connection, self->name_owner_changed_id);
		self->name_owner_changed_id = 0;
	}
	/* going away as a whole: no InterfacesRemoved for every key */
	g_hash_table_iter_init(&iter, self->exported);
	while (g_hash_table_iter_next(&iter, NULL, &edev))
		kmx_exported_device_detach(edev);
	if (self->object_manager_id != 0)
		g_dbus_connection_unregister_object(self->connection, self->object_manager_id);
	if (self->manager_id != 0)
		g_dbus_connection_unregister_object(self->connection, self->manager_id);
	self->object_manager_id = 0;
	self->manager_id = 0;
}
