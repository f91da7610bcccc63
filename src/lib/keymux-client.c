/* libkeymux: the client, its connection and its objects
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A client asks keymuxd for a connection of its own
 * (Manager.OpenConnection): one end of a socketpair on which keymuxd
 * serves the same objects, so that a call is one round trip with no
 * dbus-daemon in between.  When that fails (an older keymuxd, a bus that
 * cannot pass file descriptors) it uses the session bus.  Either way the
 * devices and keys are followed with a GDBusObjectManagerClient on that
 * connection: they stay current from the ObjectManager's and
 * PropertiesChanged signals, with no polling.
 */
#include "config.h"

#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "keymux-private.h"

/**
 * KeymuxClient:
 *
 * The keystore: its devices and keys, kept current from keymuxd's signals.
 * Make one with keymux_client_new() or keymux_client_new_sync().
 */
struct _KeymuxClient {
	GObject parent_instance;
	GDBusConnection *bus; /* given, or NULL for the session bus */
	KeymuxClientFlags flags;
	GDBusConnection *connection;
	gboolean peer_to_peer;
	gboolean running;
	GDBusObjectManager *objects;
	GDBusProxy *manager;
};

enum { PROP_0, PROP_CONNECTION, PROP_PEER_TO_PEER, PROP_BUS, PROP_FLAGS, PROP_RUNNING, N_PROPS };
static GParamSpec *props[N_PROPS];

enum {
	SIGNAL_DEVICE_ADDED,
	SIGNAL_DEVICE_REMOVED,
	SIGNAL_KEY_ADDED,
	SIGNAL_KEY_REMOVED,
	N_SIGNALS
};
static guint signals[N_SIGNALS];

static void keymux_client_initable_iface_init(GInitableIface *iface);

G_DEFINE_TYPE_WITH_CODE(KeymuxClient,
			keymux_client,
			G_TYPE_OBJECT,
			G_IMPLEMENT_INTERFACE(G_TYPE_INITABLE, keymux_client_initable_iface_init))

/* ---- errors ---------------------------------------------------------------------- */

static const GDBusErrorEntry keymux_error_entries[] = {
    {KEYMUX_ERROR_FAILED, "org.keymux.Keystore1.Error.Failed"},
    {KEYMUX_ERROR_NOT_FOUND, "org.keymux.Keystore1.Error.NotFound"},
    {KEYMUX_ERROR_LOCKED, "org.keymux.Keystore1.Error.Locked"},
    {KEYMUX_ERROR_UNAVAILABLE, "org.keymux.Keystore1.Error.Unavailable"},
    {KEYMUX_ERROR_BAD_SECRET, "org.keymux.Keystore1.Error.BadSecret"},
    {KEYMUX_ERROR_BLOCKED, "org.keymux.Keystore1.Error.Blocked"},
    {KEYMUX_ERROR_NOT_SUPPORTED, "org.keymux.Keystore1.Error.NotSupported"},
    {KEYMUX_ERROR_INVALID_ARGUMENT, "org.keymux.Keystore1.Error.InvalidArgument"},
    {KEYMUX_ERROR_EXISTS, "org.keymux.Keystore1.Error.Exists"},
    {KEYMUX_ERROR_CANCELLED, "org.keymux.Keystore1.Error.Cancelled"},
    {KEYMUX_ERROR_DENIED, "org.keymux.Keystore1.Error.Denied"},
};

G_STATIC_ASSERT(G_N_ELEMENTS(keymux_error_entries) == KEYMUX_ERROR_DENIED + 1);

/**
 * keymux_error_quark:
 *
 * Returns: the #GQuark of %KEYMUX_ERROR, whose errors are registered with
 * GDBus under their D-Bus names
 */
GQuark
keymux_error_quark(void)
{
	static gsize quark = 0;

	if (g_once_init_enter(&quark)) {
		GQuark q = g_quark_from_static_string("keymux-error-quark");

		/* a D-Bus name maps to one domain per process: a program that
		 * has keymuxd's own domain too (keymuxctl) may have registered
		 * it first, which is no error: keymux_error_map() maps by name */
		for (gsize i = 0; i < G_N_ELEMENTS(keymux_error_entries); i++)
			(void)g_dbus_error_register_error(q,
							  keymux_error_entries[i].error_code,
							  keymux_error_entries[i].dbus_error_name);
		g_once_init_leave(&quark, q);
	}
	return (GQuark)quark;
}

/* the code of an error that is not keymuxd's own */
static int
keymux_error_code_of(const GError *e)
{
	if (g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
	    g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CLOSED) ||
	    g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	    g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	    g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT))
		return KEYMUX_ERROR_UNAVAILABLE;
	if (g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED) ||
	    g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_AUTH_FAILED))
		return KEYMUX_ERROR_DENIED;
	if (g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD))
		return KEYMUX_ERROR_NOT_SUPPORTED;
	return KEYMUX_ERROR_FAILED;
}

/* every error a caller sees is KEYMUX_ERROR, but a cancelled GCancellable */
static void
keymux_error_map(GError **error)
{
	GError *e;

	(void)KEYMUX_ERROR; /* registered before GDBus maps a reply */
	if (error == NULL || *error == NULL)
		return;
	e = *error;
	if (g_dbus_error_is_remote_error(e)) {
		g_autofree char *name = g_dbus_error_get_remote_error(e);

		g_dbus_error_strip_remote_error(e);
		for (gsize i = 0; i < G_N_ELEMENTS(keymux_error_entries); i++) {
			if (g_strcmp0(name, keymux_error_entries[i].dbus_error_name) == 0) {
				e->domain = KEYMUX_ERROR;
				e->code = keymux_error_entries[i].error_code;
				return;
			}
		}
	}
	if (e->domain == KEYMUX_ERROR || g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	/* keymuxd went away during the call, with the peer connection or
	 * from the bus */
	if (g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
	    g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CLOSED)) {
		g_free(e->message);
		e->message = g_strdup("keymuxd stopped before it answered (did it crash? see "
				      "journalctl --user -u keymuxd); run the command again");
	}
	e->code = keymux_error_code_of(e);
	e->domain = KEYMUX_ERROR;
}

/* why Peer.Ping of keymuxd failed, as %KEYMUX_ERROR_UNAVAILABLE */
static void
keymux_error_map_service(GError **error)
{
	GError *e = *error;
	GError *out;

	if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	if (g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	    g_error_matches(e, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER)) {
		out = g_error_new(KEYMUX_ERROR,
				  KEYMUX_ERROR_UNAVAILABLE,
				  "keymuxd is not running: nothing owns %s on the bus (start it "
				  "with 'systemctl --user start keymuxd', or check that this is "
				  "the bus it runs on)",
				  KEYMUX_DBUS_NAME);
	} else {
		if (g_dbus_error_is_remote_error(e))
			g_dbus_error_strip_remote_error(e);
		/* activation was tried and failed: the bus says why */
		if (e->domain == G_DBUS_ERROR && e->code >= G_DBUS_ERROR_SPAWN_EXEC_FAILED &&
		    e->code <= G_DBUS_ERROR_SPAWN_NO_MEMORY)
			out = g_error_new(KEYMUX_ERROR,
					  KEYMUX_ERROR_UNAVAILABLE,
					  "keymuxd could not be started: %s",
					  e->message);
		else
			out = g_error_new(KEYMUX_ERROR,
					  KEYMUX_ERROR_UNAVAILABLE,
					  "keymuxd does not answer: %s",
					  e->message);
	}
	g_error_free(e);
	*error = out;
}

/* ---- calls ------------------------------------------------------------------------- */

static void
keymux_call_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	GVariant *reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);

	if (reply == NULL) {
		keymux_error_map(&error);
		g_task_return_error(task, error);
		return;
	}
	g_task_return_pointer(task, reply, (GDestroyNotify)g_variant_unref);
}

/*
 * _keymux_call:
 * @source: the object the result is for
 * @tag: the public function, checked by _keymux_call_finish()
 *
 * Calls @method of @proxy's object on its connection, with no timeout (a
 * person may be asked for a PIN).
 */
void
_keymux_call(GDBusProxy *proxy,
	     const char *method,
	     GVariant *args,
	     const char *reply_type,
	     gpointer source,
	     gpointer tag,
	     GCancellable *cancellable,
	     GAsyncReadyCallback callback,
	     gpointer user_data)
{
	GTask *task = g_task_new(source, cancellable, callback, user_data);

	(void)KEYMUX_ERROR;
	g_task_set_source_tag(task, tag);
	g_dbus_connection_call(g_dbus_proxy_get_connection(proxy),
			       g_dbus_proxy_get_name(proxy),
			       g_dbus_proxy_get_object_path(proxy),
			       g_dbus_proxy_get_interface_name(proxy),
			       method,
			       args,
			       reply_type != NULL ? G_VARIANT_TYPE(reply_type) : NULL,
			       G_DBUS_CALL_FLAGS_NONE,
			       G_MAXINT,
			       cancellable,
			       keymux_call_cb,
			       task);
}

GVariant *
_keymux_call_finish(gpointer source, GAsyncResult *result, gpointer tag, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, source), NULL);
	g_return_val_if_fail(g_task_get_source_tag(G_TASK(result)) == tag, NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

GVariant *
_keymux_call_sync(GDBusProxy *proxy,
		  const char *method,
		  GVariant *args,
		  const char *reply_type,
		  GCancellable *cancellable,
		  GError **error)
{
	GError *e = NULL;
	GVariant *reply;

	(void)KEYMUX_ERROR;
	reply = g_dbus_connection_call_sync(g_dbus_proxy_get_connection(proxy),
					    g_dbus_proxy_get_name(proxy),
					    g_dbus_proxy_get_object_path(proxy),
					    g_dbus_proxy_get_interface_name(proxy),
					    method,
					    args,
					    reply_type != NULL ? G_VARIANT_TYPE(reply_type) : NULL,
					    G_DBUS_CALL_FLAGS_NONE,
					    G_MAXINT,
					    cancellable,
					    &e);
	if (reply == NULL) {
		keymux_error_map(&e);
		g_propagate_error(error, e);
	}
	return reply;
}

gboolean
_keymux_void_finish(gpointer source, GAsyncResult *result, gpointer tag, GError **error)
{
	g_autoptr(GVariant) reply = _keymux_call_finish(source, result, tag, error);
	return reply != NULL;
}

gboolean
_keymux_void_sync(GDBusProxy *proxy,
		  const char *method,
		  GVariant *args,
		  GCancellable *cancellable,
		  GError **error)
{
	g_autoptr(GVariant)
	    reply = _keymux_call_sync(proxy, method, args, "()", cancellable, error);
	return reply != NULL;
}

/* the ay of a (ay) reply, without a copy */
GBytes *
_keymux_bytes_of(GVariant *reply)
{
	g_autoptr(GVariant) ay = NULL;

	if (reply == NULL)
		return NULL;
	ay = g_variant_get_child_value(reply, 0);
	return g_variant_get_data_as_bytes(ay);
}

/* the a{sv} options of a call */
GVariant *
_keymux_options(KeymuxCallFlags flags)
{
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	if (flags & KEYMUX_CALL_FLAGS_NO_INTERACTION)
		g_variant_builder_add(&b, "{sv}", "interactive", g_variant_new_boolean(FALSE));
	if (flags & KEYMUX_CALL_FLAGS_PREHASHED)
		g_variant_builder_add(&b, "{sv}", "prehashed", g_variant_new_boolean(TRUE));
	if (flags & KEYMUX_CALL_FLAGS_EXPORTABLE)
		g_variant_builder_add(&b, "{sv}", "exportable", g_variant_new_boolean(TRUE));
	return g_variant_builder_end(&b);
}

/* ---- objects ------------------------------------------------------------------------ */

static GType
keymux_client_proxy_type(GDBusObjectManagerClient *manager,
			 const char *object_path,
			 const char *interface_name,
			 gpointer user_data)
{
	if (interface_name == NULL)
		return G_TYPE_DBUS_OBJECT_PROXY;
	if (g_str_equal(interface_name, KEYMUX_DBUS_DEVICE_INTERFACE))
		return KEYMUX_TYPE_DEVICE;
	if (g_str_equal(interface_name, KEYMUX_DBUS_KEY_INTERFACE))
		return KEYMUX_TYPE_KEY;
	return G_TYPE_DBUS_PROXY;
}

const char *
_keymux_client_get_name(KeymuxClient *self)
{
	return self->peer_to_peer ? NULL : KEYMUX_DBUS_NAME;
}

GDBusProxy *
_keymux_client_get_manager(KeymuxClient *self)
{
	return self->manager;
}

/* keymuxd owns its name on the bus, or the peer connection is open */
static void
keymux_client_update_running(KeymuxClient *self, gboolean notify)
{
	gboolean running;

	if (self->peer_to_peer) {
		running = !g_dbus_connection_is_closed(self->connection);
	} else {
		g_autofree char *owner = g_dbus_object_manager_client_get_name_owner(
		    G_DBUS_OBJECT_MANAGER_CLIENT(self->objects));
		running = owner != NULL;
	}
	if (running == self->running)
		return;
	self->running = running;
	if (notify)
		g_object_notify_by_pspec(G_OBJECT(self), props[PROP_RUNNING]);
}

static void
keymux_client_name_owner_cb(GObject *objects, GParamSpec *pspec, KeymuxClient *self)
{
	keymux_client_update_running(self, TRUE);
}

static void
keymux_client_closed_cb(GDBusConnection *connection,
			gboolean remote_peer_vanished,
			GError *error,
			KeymuxClient *self)
{
	keymux_client_update_running(self, TRUE);
}

static void
keymux_client_interface_added_cb(GDBusObjectManager *manager,
				 GDBusObject *object,
				 GDBusInterface *iface,
				 KeymuxClient *self)
{
	if (KEYMUX_IS_DEVICE(iface)) {
		_keymux_object_set_client(G_DBUS_PROXY(iface), self);
		g_signal_emit(self, signals[SIGNAL_DEVICE_ADDED], 0, iface);
	} else if (KEYMUX_IS_KEY(iface)) {
		_keymux_object_set_client(G_DBUS_PROXY(iface), self);
		g_signal_emit(self, signals[SIGNAL_KEY_ADDED], 0, iface);
	}
}

static void
keymux_client_interface_removed_cb(GDBusObjectManager *manager,
				   GDBusObject *object,
				   GDBusInterface *iface,
				   KeymuxClient *self)
{
	if (KEYMUX_IS_DEVICE(iface))
		g_signal_emit(self, signals[SIGNAL_DEVICE_REMOVED], 0, iface);
	else if (KEYMUX_IS_KEY(iface))
		g_signal_emit(self, signals[SIGNAL_KEY_REMOVED], 0, iface);
}

static void
keymux_client_object_added_cb(GDBusObjectManager *manager, GDBusObject *object, KeymuxClient *self)
{
	GList *ifaces = g_dbus_object_get_interfaces(object);

	for (GList *l = ifaces; l != NULL; l = l->next)
		keymux_client_interface_added_cb(manager, object, l->data, self);
	g_list_free_full(ifaces, g_object_unref);
}

static void
keymux_client_object_removed_cb(GDBusObjectManager *manager,
				GDBusObject *object,
				KeymuxClient *self)
{
	GList *ifaces = g_dbus_object_get_interfaces(object);

	for (GList *l = ifaces; l != NULL; l = l->next)
		keymux_client_interface_removed_cb(manager, object, l->data, self);
	g_list_free_full(ifaces, g_object_unref);
}

static gint
keymux_compare_paths(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(g_dbus_proxy_get_object_path((GDBusProxy *)a),
			 g_dbus_proxy_get_object_path((GDBusProxy *)b));
}

/* the proxies of one interface, sorted by object path */
static GList *
keymux_client_collect(KeymuxClient *self, GType type)
{
	GList *objects = g_dbus_object_manager_get_objects(self->objects);
	GList *out = NULL;

	for (GList *l = objects; l != NULL; l = l->next) {
		GList *ifaces = g_dbus_object_get_interfaces(l->data);
		for (GList *i = ifaces; i != NULL; i = i->next) {
			if (G_TYPE_CHECK_INSTANCE_TYPE(i->data, type)) {
				_keymux_object_set_client(i->data, self);
				out = g_list_prepend(out, g_object_ref(i->data));
			}
		}
		g_list_free_full(ifaces, g_object_unref);
	}
	g_list_free_full(objects, g_object_unref);
	return g_list_sort(out, keymux_compare_paths);
}

/**
 * keymux_client_get_devices:
 *
 * The devices as the client knows them now, with no call.
 *
 * Returns: (transfer full) (element-type KeymuxDevice): every device
 */
GList *
keymux_client_get_devices(KeymuxClient *self)
{
	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	return keymux_client_collect(self, KEYMUX_TYPE_DEVICE);
}

/**
 * keymux_client_get_keys:
 *
 * The keys of every device as the client knows them now, with no call.
 *
 * Returns: (transfer full) (element-type KeymuxKey): every key
 */
GList *
keymux_client_get_keys(KeymuxClient *self)
{
	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	return keymux_client_collect(self, KEYMUX_TYPE_KEY);
}

/**
 * keymux_client_lookup_device:
 * @id: a device id, e.g. "softkey:login"
 *
 * Returns: (transfer full) (nullable): the device, or %NULL
 */
KeymuxDevice *
keymux_client_lookup_device(KeymuxClient *self, const char *id)
{
	g_autofree char *escaped = NULL;
	g_autofree char *path = NULL;
	GDBusInterface *iface;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	g_return_val_if_fail(id != NULL, NULL);
	escaped = g_dbus_escape_object_path(id);
	path = g_strconcat(KEYMUX_DBUS_PATH "/devices/", escaped, NULL);
	iface =
	    g_dbus_object_manager_get_interface(self->objects, path, KEYMUX_DBUS_DEVICE_INTERFACE);
	if (iface == NULL)
		return NULL;
	_keymux_object_set_client(G_DBUS_PROXY(iface), self);
	return KEYMUX_DEVICE(iface);
}

/**
 * keymux_client_lookup_key:
 * @object_path: a key's object path
 *
 * Returns: (transfer full) (nullable): the key, or %NULL
 */
KeymuxKey *
keymux_client_lookup_key(KeymuxClient *self, const char *object_path)
{
	GDBusInterface *iface;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	g_return_val_if_fail(object_path != NULL, NULL);
	if (!g_variant_is_object_path(object_path))
		return NULL;
	iface = g_dbus_object_manager_get_interface(self->objects,
						    object_path,
						    KEYMUX_DBUS_KEY_INTERFACE);
	if (iface == NULL)
		return NULL;
	_keymux_object_set_client(G_DBUS_PROXY(iface), self);
	return KEYMUX_KEY(iface);
}

/* the key at @path: the object manager's, or (the reply of a call came
 * before the signal that announced it was handled) a proxy of its own */
KeymuxKey *
_keymux_client_key(KeymuxClient *self, const char *path)
{
	KeymuxKey *key = keymux_client_lookup_key(self, path);
	g_autoptr(GError) error = NULL;

	if (key != NULL)
		return key;
	key = g_initable_new(KEYMUX_TYPE_KEY,
			     NULL,
			     &error,
			     "g-connection",
			     self->connection,
			     "g-name",
			     _keymux_client_get_name(self),
			     "g-object-path",
			     path,
			     "g-interface-name",
			     KEYMUX_DBUS_KEY_INTERFACE,
			     "g-flags",
			     G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
			     NULL);
	if (key == NULL) {
		g_debug("no key at %s: %s", path, error->message);
		return NULL;
	}
	_keymux_object_set_client(G_DBUS_PROXY(key), self);
	return key;
}

/* the keys of an ao */
GList *
_keymux_client_keys(KeymuxClient *self, GVariant *paths)
{
	GList *out = NULL;
	GVariantIter iter;
	const char *path;

	g_variant_iter_init(&iter, paths);
	while (g_variant_iter_next(&iter, "&o", &path)) {
		KeymuxKey *key = _keymux_client_key(self, path);
		if (key != NULL)
			out = g_list_prepend(out, key);
	}
	return g_list_reverse(out);
}

/* ---- the manager's methods ------------------------------------------------------------ */

/**
 * keymux_client_list_keys:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Asks keymuxd for every key (Manager.ListKeys).
 */
void
keymux_client_list_keys(KeymuxClient *self,
			GCancellable *cancellable,
			GAsyncReadyCallback callback,
			gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_CLIENT(self));
	_keymux_call(self->manager,
		     "ListKeys",
		     NULL,
		     "(ao)",
		     self,
		     keymux_client_list_keys,
		     cancellable,
		     callback,
		     user_data);
}

static GList *
keymux_client_keys_of_reply(KeymuxClient *self, GVariant *reply)
{
	g_autoptr(GVariant) paths = NULL;

	if (reply == NULL)
		return NULL;
	paths = g_variant_get_child_value(reply, 0);
	return _keymux_client_keys(self, paths);
}

/**
 * keymux_client_list_keys_finish:
 *
 * Returns: (transfer full) (element-type KeymuxKey): the keys; %NULL with
 * @error set on failure (and when there are none, with @error unset)
 */
GList *
keymux_client_list_keys_finish(KeymuxClient *self, GAsyncResult *result, GError **error)
{
	g_autoptr(GVariant)
	    reply = _keymux_call_finish(self, result, keymux_client_list_keys, error);
	return keymux_client_keys_of_reply(self, reply);
}

/**
 * keymux_client_list_keys_sync:
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full) (element-type KeymuxKey): the keys
 */
GList *
keymux_client_list_keys_sync(KeymuxClient *self, GCancellable *cancellable, GError **error)
{
	g_autoptr(GVariant) reply = NULL;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	reply = _keymux_call_sync(self->manager, "ListKeys", NULL, "(ao)", cancellable, error);
	return keymux_client_keys_of_reply(self, reply);
}

/**
 * keymux_client_find_key:
 * @id: a key id, or a prefix of at least 8 hex digits
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Finds every holder of a key id (Manager.FindKey): %KEYMUX_ERROR_NOT_FOUND
 * if there is none, %KEYMUX_ERROR_INVALID_ARGUMENT for a malformed id.
 */
void
keymux_client_find_key(KeymuxClient *self,
		       const char *id,
		       GCancellable *cancellable,
		       GAsyncReadyCallback callback,
		       gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_CLIENT(self));
	g_return_if_fail(id != NULL);
	_keymux_call(self->manager,
		     "FindKey",
		     g_variant_new("(s)", id),
		     "(ao)",
		     self,
		     keymux_client_find_key,
		     cancellable,
		     callback,
		     user_data);
}

/**
 * keymux_client_find_key_finish:
 *
 * Returns: (transfer full) (element-type KeymuxKey): the keys
 */
GList *
keymux_client_find_key_finish(KeymuxClient *self, GAsyncResult *result, GError **error)
{
	g_autoptr(GVariant)
	    reply = _keymux_call_finish(self, result, keymux_client_find_key, error);
	return keymux_client_keys_of_reply(self, reply);
}

/**
 * keymux_client_find_key_sync:
 * @id: a key id, or a prefix of at least 8 hex digits
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full) (element-type KeymuxKey): the keys
 */
GList *
keymux_client_find_key_sync(KeymuxClient *self,
			    const char *id,
			    GCancellable *cancellable,
			    GError **error)
{
	g_autoptr(GVariant) reply = NULL;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	g_return_val_if_fail(id != NULL, NULL);
	reply = _keymux_call_sync(self->manager,
				  "FindKey",
				  g_variant_new("(s)", id),
				  "(ao)",
				  cancellable,
				  error);
	return keymux_client_keys_of_reply(self, reply);
}

/**
 * keymux_client_lock_all:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Locks every device (Manager.LockAll).
 */
void
keymux_client_lock_all(KeymuxClient *self,
		       GCancellable *cancellable,
		       GAsyncReadyCallback callback,
		       gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_CLIENT(self));
	_keymux_call(self->manager,
		     "LockAll",
		     NULL,
		     "()",
		     self,
		     keymux_client_lock_all,
		     cancellable,
		     callback,
		     user_data);
}

gboolean
keymux_client_lock_all_finish(KeymuxClient *self, GAsyncResult *result, GError **error)
{
	return _keymux_void_finish(self, result, keymux_client_lock_all, error);
}

/**
 * keymux_client_lock_all_sync:
 * @cancellable: (nullable): a #GCancellable
 */
gboolean
keymux_client_lock_all_sync(KeymuxClient *self, GCancellable *cancellable, GError **error)
{
	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), FALSE);
	return _keymux_void_sync(self->manager, "LockAll", NULL, cancellable, error);
}

/* ---- properties ------------------------------------------------------------------- */

/**
 * keymux_client_get_connection:
 *
 * Returns: (transfer none): the connection the client uses: its own peer
 * connection to keymuxd, or the session bus
 */
GDBusConnection *
keymux_client_get_connection(KeymuxClient *self)
{
	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	return self->connection;
}

/**
 * keymux_client_get_peer_to_peer:
 *
 * Returns: whether the client talks to keymuxd on a connection of its own
 * (Manager.OpenConnection), not through the bus
 */
gboolean
keymux_client_get_peer_to_peer(KeymuxClient *self)
{
	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), FALSE);
	return self->peer_to_peer;
}

/**
 * keymux_client_get_running:
 *
 * Returns: whether keymuxd is there: it owns its name on the bus, or the
 * client's connection of its own is open.  See #KeymuxClient:running.
 */
gboolean
keymux_client_get_running(KeymuxClient *self)
{
	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), FALSE);
	return self->running;
}

/**
 * keymux_client_dup_backends:
 *
 * Returns: (transfer full) (nullable): the backends keymuxd has, e.g.
 * "softkey", "card", "tpm"; %NULL when keymuxd is not there
 */
GStrv
keymux_client_dup_backends(KeymuxClient *self)
{
	g_autoptr(GVariant) v = NULL;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	v = g_dbus_proxy_get_cached_property(self->manager, "Backends");
	if (v == NULL || !g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY))
		return NULL;
	return g_variant_dup_strv(v, NULL);
}

/**
 * keymux_client_get_version:
 *
 * Returns: (nullable): the version of keymuxd
 */
const char *
keymux_client_get_version(KeymuxClient *self)
{
	g_autoptr(GVariant) v = NULL;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(self), NULL);
	v = g_dbus_proxy_get_cached_property(self->manager, "Version");
	if (v == NULL || !g_variant_is_of_type(v, G_VARIANT_TYPE_STRING))
		return NULL;
	/* the cache holds it as long as the proxy lives */
	return g_variant_get_string(v, NULL);
}

/* ---- construction ------------------------------------------------------------------ */

/* the stream of the fd an OpenConnection @reply carries in @fds */
static GSocketConnection *
keymux_client_peer_stream(GVariant *reply, GUnixFDList *fds, GError **error)
{
	g_autoptr(GSocket) socket = NULL;
	gint32 handle = -1;
	int fd;

	g_variant_get(reply, "(h)", &handle);
	if (fds == NULL || handle < 0 || handle >= g_unix_fd_list_get_length(fds)) {
		g_set_error_literal(error,
				    KEYMUX_ERROR,
				    KEYMUX_ERROR_FAILED,
				    "OpenConnection returned no file descriptor");
		return NULL;
	}
	fd = g_unix_fd_list_get(fds, handle, error);
	if (fd < 0)
		return NULL;
	socket = g_socket_new_from_fd(fd, error);
	if (socket == NULL) {
		close(fd);
		return NULL;
	}
	return g_socket_connection_factory_create_connection(socket);
}

/* a peer connection over the fd keymuxd gave */
static GDBusConnection *
keymux_client_open_peer(GDBusConnection *bus, GCancellable *cancellable, GError **error)
{
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GSocketConnection) stream = NULL;

	reply = g_dbus_connection_call_with_unix_fd_list_sync(bus,
							      KEYMUX_DBUS_NAME,
							      KEYMUX_DBUS_PATH,
							      KEYMUX_DBUS_MANAGER_INTERFACE,
							      "OpenConnection",
							      NULL,
							      G_VARIANT_TYPE("(h)"),
							      G_DBUS_CALL_FLAGS_NONE,
							      -1,
							      NULL,
							      &fds,
							      cancellable,
							      error);
	if (reply == NULL)
		return NULL;
	stream = keymux_client_peer_stream(reply, fds, error);
	if (stream == NULL)
		return NULL;
	return g_dbus_connection_new_sync(G_IO_STREAM(stream),
					  NULL,
					  G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
					  NULL,
					  cancellable,
					  error);
}

typedef enum {
	KEYMUX_PEER_TRY,
	KEYMUX_PEER_NEVER,
	KEYMUX_PEER_ONLY,
} KeymuxPeerMode;

/* the flags, or KEYMUX_PEER_TO_PEER in the environment */
static KeymuxPeerMode
keymux_client_peer_mode(KeymuxClient *self)
{
	const char *env = g_getenv("KEYMUX_PEER_TO_PEER");

	if (g_strcmp0(env, "0") == 0)
		return KEYMUX_PEER_NEVER;
	if (g_strcmp0(env, "1") == 0)
		return KEYMUX_PEER_ONLY;
	return (self->flags & KEYMUX_CLIENT_FLAGS_BUS_ONLY) ? KEYMUX_PEER_NEVER : KEYMUX_PEER_TRY;
}

/* the peer connection could not be had: the bus, unless that was
 * cancelled or the peer connection is required */
static gboolean
keymux_client_fall_back(KeymuxClient *self,
			GDBusConnection *bus,
			GError **p2p_error,
			GError **error)
{
	if (g_error_matches(*p2p_error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		g_propagate_error(error, g_steal_pointer(p2p_error));
		return FALSE;
	}
	if (keymux_client_peer_mode(self) == KEYMUX_PEER_ONLY) {
		keymux_error_map(p2p_error);
		g_prefix_error(p2p_error,
			       "no connection of its own to keymuxd (KEYMUX_PEER_TO_PEER=1): ");
		g_propagate_error(error, g_steal_pointer(p2p_error));
		return FALSE;
	}
	g_debug("no connection of its own (%s): using the bus", (*p2p_error)->message);
	self->connection = g_object_ref(bus);
	self->peer_to_peer = FALSE;
	return TRUE;
}

/* follows the object manager's objects */
static void
keymux_client_watch(KeymuxClient *self)
{
	g_signal_connect(self->objects,
			 "interface-added",
			 G_CALLBACK(keymux_client_interface_added_cb),
			 self);
	g_signal_connect(self->objects,
			 "interface-removed",
			 G_CALLBACK(keymux_client_interface_removed_cb),
			 self);
	g_signal_connect(self->objects,
			 "object-added",
			 G_CALLBACK(keymux_client_object_added_cb),
			 self);
	g_signal_connect(self->objects,
			 "object-removed",
			 G_CALLBACK(keymux_client_object_removed_cb),
			 self);
	g_signal_connect(self->objects,
			 "notify::name-owner",
			 G_CALLBACK(keymux_client_name_owner_cb),
			 self);
	g_signal_connect(self->connection, "closed", G_CALLBACK(keymux_client_closed_cb), self);
}

/* the objects know their client from the start */
static void
keymux_client_adopt(KeymuxClient *self)
{
	g_list_free_full(keymux_client_get_devices(self), g_object_unref);
	g_list_free_full(keymux_client_get_keys(self), g_object_unref);
	keymux_client_update_running(self, FALSE);
}

static GVariant *
keymux_client_ping_sync(GDBusConnection *bus, GCancellable *cancellable, GError **error)
{
	/* Peer.Ping starts keymuxd through D-Bus activation when it can, and
	 * fails at once with ServiceUnknown when nothing provides the name */
	return g_dbus_connection_call_sync(bus,
					   KEYMUX_DBUS_NAME,
					   KEYMUX_DBUS_PATH,
					   "org.freedesktop.DBus.Peer",
					   "Ping",
					   NULL,
					   NULL,
					   G_DBUS_CALL_FLAGS_NONE,
					   -1,
					   cancellable,
					   error);
}

static gboolean
keymux_client_initable_init(GInitable *initable, GCancellable *cancellable, GError **error)
{
	KeymuxClient *self = KEYMUX_CLIENT(initable);
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(GError) p2p_error = NULL;
	GError *e = NULL;

	(void)KEYMUX_ERROR;
	if (self->bus != NULL)
		bus = g_object_ref(self->bus);
	else
		bus = g_bus_get_sync(G_BUS_TYPE_SESSION, cancellable, &e);
	if (bus == NULL)
		goto failed;
	if (self->flags & KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE) {
		g_autoptr(GVariant) pong = keymux_client_ping_sync(bus, cancellable, &e);
		if (pong == NULL) {
			keymux_error_map_service(&e);
			goto failed;
		}
	}
	if (keymux_client_peer_mode(self) == KEYMUX_PEER_NEVER) {
		self->connection = g_object_ref(bus);
	} else {
		self->connection = keymux_client_open_peer(bus, cancellable, &p2p_error);
		self->peer_to_peer = self->connection != NULL;
		if (!self->peer_to_peer && !keymux_client_fall_back(self, bus, &p2p_error, error))
			return FALSE;
	}
	self->objects = g_dbus_object_manager_client_new_sync(
	    self->connection,
	    G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
	    _keymux_client_get_name(self),
	    KEYMUX_DBUS_PATH,
	    keymux_client_proxy_type,
	    NULL,
	    NULL,
	    cancellable,
	    &e);
	if (self->objects == NULL)
		goto failed;
	keymux_client_watch(self);
	self->manager = g_dbus_proxy_new_sync(self->connection,
					      G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
					      NULL,
					      _keymux_client_get_name(self),
					      KEYMUX_DBUS_PATH,
					      KEYMUX_DBUS_MANAGER_INTERFACE,
					      cancellable,
					      &e);
	if (self->manager == NULL)
		goto failed;
	keymux_client_adopt(self);
	return TRUE;
failed:
	keymux_error_map(&e);
	g_propagate_error(error, e);
	return FALSE;
}

static void
keymux_client_initable_iface_init(GInitableIface *iface)
{
	iface->init = keymux_client_initable_init;
}

static void
keymux_client_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
	KeymuxClient *self = KEYMUX_CLIENT(object);

	switch (id) {
	case PROP_CONNECTION:
		g_value_set_object(value, self->connection);
		break;
	case PROP_PEER_TO_PEER:
		g_value_set_boolean(value, self->peer_to_peer);
		break;
	case PROP_BUS:
		g_value_set_object(value, self->bus);
		break;
	case PROP_FLAGS:
		g_value_set_flags(value, self->flags);
		break;
	case PROP_RUNNING:
		g_value_set_boolean(value, self->running);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
	}
}

static void
keymux_client_set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
	KeymuxClient *self = KEYMUX_CLIENT(object);

	switch (id) {
	case PROP_BUS:
		g_set_object(&self->bus, g_value_get_object(value));
		break;
	case PROP_FLAGS:
		self->flags = g_value_get_flags(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
	}
}

static void
keymux_client_dispose(GObject *object)
{
	KeymuxClient *self = KEYMUX_CLIENT(object);

	if (self->objects != NULL)
		g_signal_handlers_disconnect_by_data(self->objects, self);
	g_clear_object(&self->objects);
	g_clear_object(&self->manager);
	if (self->connection != NULL)
		g_signal_handlers_disconnect_by_data(self->connection, self);
	if (self->peer_to_peer && self->connection != NULL)
		g_dbus_connection_close(self->connection, NULL, NULL, NULL);
	g_clear_object(&self->connection);
	g_clear_object(&self->bus);
	G_OBJECT_CLASS(keymux_client_parent_class)->dispose(object);
}

static void
keymux_client_class_init(KeymuxClientClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->get_property = keymux_client_get_property;
	object_class->set_property = keymux_client_set_property;
	object_class->dispose = keymux_client_dispose;
	/**
	 * KeymuxClient:connection:
	 *
	 * The connection to keymuxd: a peer connection or the bus.
	 */
	props[PROP_CONNECTION] = g_param_spec_object("connection",
						     NULL,
						     NULL,
						     G_TYPE_DBUS_CONNECTION,
						     G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
	/**
	 * KeymuxClient:peer-to-peer:
	 *
	 * Whether the client has a connection of its own to keymuxd.
	 */
	props[PROP_PEER_TO_PEER] = g_param_spec_boolean("peer-to-peer",
							NULL,
							NULL,
							FALSE,
							G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
	/**
	 * KeymuxClient:bus:
	 *
	 * The message bus to find keymuxd on; %NULL for the session bus.
	 */
	props[PROP_BUS] = g_param_spec_object("bus",
					      NULL,
					      NULL,
					      G_TYPE_DBUS_CONNECTION,
					      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
						  G_PARAM_STATIC_STRINGS);
	/**
	 * KeymuxClient:flags:
	 *
	 * How the client connects.
	 */
	props[PROP_FLAGS] =
	    g_param_spec_flags("flags",
			       NULL,
			       NULL,
			       KEYMUX_TYPE_CLIENT_FLAGS,
			       KEYMUX_CLIENT_FLAGS_NONE,
			       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	/**
	 * KeymuxClient:running:
	 *
	 * Whether keymuxd is there: it owns its name on the bus, or the
	 * client's connection of its own is open.  On the bus it changes as
	 * keymuxd stops and starts again, and the client's objects follow.
	 */
	props[PROP_RUNNING] = g_param_spec_boolean("running",
						   NULL,
						   NULL,
						   FALSE,
						   G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
						       G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, props);
	/**
	 * KeymuxClient::device-added:
	 * @self: the client
	 * @device: the new device
	 */
	signals[SIGNAL_DEVICE_ADDED] = g_signal_new("device-added",
						    G_TYPE_FROM_CLASS(klass),
						    G_SIGNAL_RUN_LAST,
						    0,
						    NULL,
						    NULL,
						    NULL,
						    G_TYPE_NONE,
						    1,
						    KEYMUX_TYPE_DEVICE);
	/**
	 * KeymuxClient::device-removed:
	 * @self: the client
	 * @device: the device that went away
	 */
	signals[SIGNAL_DEVICE_REMOVED] = g_signal_new("device-removed",
						      G_TYPE_FROM_CLASS(klass),
						      G_SIGNAL_RUN_LAST,
						      0,
						      NULL,
						      NULL,
						      NULL,
						      G_TYPE_NONE,
						      1,
						      KEYMUX_TYPE_DEVICE);
	/**
	 * KeymuxClient::key-added:
	 * @self: the client
	 * @key: the new key
	 */
	signals[SIGNAL_KEY_ADDED] = g_signal_new("key-added",
						 G_TYPE_FROM_CLASS(klass),
						 G_SIGNAL_RUN_LAST,
						 0,
						 NULL,
						 NULL,
						 NULL,
						 G_TYPE_NONE,
						 1,
						 KEYMUX_TYPE_KEY);
	/**
	 * KeymuxClient::key-removed:
	 * @self: the client
	 * @key: the key that went away
	 */
	signals[SIGNAL_KEY_REMOVED] = g_signal_new("key-removed",
						   G_TYPE_FROM_CLASS(klass),
						   G_SIGNAL_RUN_LAST,
						   0,
						   NULL,
						   NULL,
						   NULL,
						   G_TYPE_NONE,
						   1,
						   KEYMUX_TYPE_KEY);
}

static void
keymux_client_init(KeymuxClient *self)
{
}

/* ---- keymux_client_new(): the same steps as the sync init, each a call
 * that returns to the caller's main loop ---- */

static void
keymux_client_new_fail(GTask *task, GError *error)
{
	keymux_error_map(&error);
	g_task_return_error(task, error);
	g_object_unref(task);
}

static void
keymux_client_new_manager_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	KeymuxClient *self = g_task_get_task_data(task);
	GError *error = NULL;

	self->manager = g_dbus_proxy_new_finish(res, &error);
	if (self->manager == NULL) {
		keymux_client_new_fail(task, error);
		return;
	}
	keymux_client_adopt(self);
	g_task_return_pointer(task, g_object_ref(self), g_object_unref);
	g_object_unref(task);
}

static void
keymux_client_new_objects_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	KeymuxClient *self = g_task_get_task_data(task);
	GError *error = NULL;

	self->objects = g_dbus_object_manager_client_new_finish(res, &error);
	if (self->objects == NULL) {
		keymux_client_new_fail(task, error);
		return;
	}
	keymux_client_watch(self);
	g_dbus_proxy_new(self->connection,
			 G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
			 NULL,
			 _keymux_client_get_name(self),
			 KEYMUX_DBUS_PATH,
			 KEYMUX_DBUS_MANAGER_INTERFACE,
			 g_task_get_cancellable(task),
			 keymux_client_new_manager_cb,
			 task);
}

/* the connection is chosen: its objects */
static void
keymux_client_new_connected(GTask *task)
{
	KeymuxClient *self = g_task_get_task_data(task);

	g_dbus_object_manager_client_new(self->connection,
					 G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
					 _keymux_client_get_name(self),
					 KEYMUX_DBUS_PATH,
					 keymux_client_proxy_type,
					 NULL,
					 NULL,
					 g_task_get_cancellable(task),
					 keymux_client_new_objects_cb,
					 task);
}

/* no peer connection: the bus, unless cancelled or required */
static void
keymux_client_new_fall_back(GTask *task, GError *p2p_error)
{
	KeymuxClient *self = g_task_get_task_data(task);
	GDBusConnection *bus = g_object_get_data(G_OBJECT(task), "keymux-bus");
	GError *error = NULL;

	if (!keymux_client_fall_back(self, bus, &p2p_error, &error)) {
		keymux_client_new_fail(task, error);
		return;
	}
	g_clear_error(&p2p_error);
	keymux_client_new_connected(task);
}

static void
keymux_client_new_peer_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	KeymuxClient *self = g_task_get_task_data(task);
	GError *error = NULL;

	self->connection = g_dbus_connection_new_finish(res, &error);
	if (self->connection == NULL) {
		keymux_client_new_fall_back(task, error);
		return;
	}
	self->peer_to_peer = TRUE;
	keymux_client_new_connected(task);
}

static void
keymux_client_new_open_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	GError *error = NULL;
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_with_unix_fd_list_finish(G_DBUS_CONNECTION(source),
								    &fds,
								    res,
								    &error);
	g_autoptr(GSocketConnection) stream = NULL;

	if (reply != NULL)
		stream = keymux_client_peer_stream(reply, fds, &error);
	if (stream == NULL) {
		keymux_client_new_fall_back(task, error);
		return;
	}
	g_dbus_connection_new(G_IO_STREAM(stream),
			      NULL,
			      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
			      NULL,
			      g_task_get_cancellable(task),
			      keymux_client_new_peer_cb,
			      task);
}

/* keymuxd is there: a connection of its own, or the bus */
static void
keymux_client_new_open(GTask *task)
{
	KeymuxClient *self = g_task_get_task_data(task);
	GDBusConnection *bus = g_object_get_data(G_OBJECT(task), "keymux-bus");

	if (keymux_client_peer_mode(self) == KEYMUX_PEER_NEVER) {
		self->connection = g_object_ref(bus);
		keymux_client_new_connected(task);
		return;
	}
	g_dbus_connection_call_with_unix_fd_list(bus,
						 KEYMUX_DBUS_NAME,
						 KEYMUX_DBUS_PATH,
						 KEYMUX_DBUS_MANAGER_INTERFACE,
						 "OpenConnection",
						 NULL,
						 G_VARIANT_TYPE("(h)"),
						 G_DBUS_CALL_FLAGS_NONE,
						 -1,
						 NULL,
						 g_task_get_cancellable(task),
						 keymux_client_new_open_cb,
						 task);
}

static void
keymux_client_new_ping_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	GError *error = NULL;
	g_autoptr(GVariant)
	    pong = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);

	if (pong == NULL) {
		keymux_error_map_service(&error);
		keymux_client_new_fail(task, error);
		return;
	}
	keymux_client_new_open(task);
}

/* the bus: keymuxd on it first when it is required */
static void
keymux_client_new_have_bus(GTask *task, GDBusConnection *bus)
{
	KeymuxClient *self = g_task_get_task_data(task);

	g_object_set_data_full(G_OBJECT(task), "keymux-bus", bus, g_object_unref);
	if ((self->flags & KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE) == 0) {
		keymux_client_new_open(task);
		return;
	}
	g_dbus_connection_call(bus,
			       KEYMUX_DBUS_NAME,
			       KEYMUX_DBUS_PATH,
			       "org.freedesktop.DBus.Peer",
			       "Ping",
			       NULL,
			       NULL,
			       G_DBUS_CALL_FLAGS_NONE,
			       -1,
			       g_task_get_cancellable(task),
			       keymux_client_new_ping_cb,
			       task);
}

static void
keymux_client_new_bus_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	GError *error = NULL;
	GDBusConnection *bus = g_bus_get_finish(res, &error);

	if (bus == NULL) {
		keymux_client_new_fail(task, error);
		return;
	}
	keymux_client_new_have_bus(task, bus);
}

/**
 * keymux_client_new:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the client
 * @user_data: for @callback
 *
 * Connects to keymuxd on the session bus: a connection of its own when
 * keymuxd gives one, else the session bus.  Every step is asynchronous:
 * the caller's main loop runs until @callback.  The same as
 * keymux_client_new_for_bus() with no bus and no flags.
 */
void
keymux_client_new(GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
	keymux_client_new_for_bus(NULL, KEYMUX_CLIENT_FLAGS_NONE, cancellable, callback, user_data);
}

/**
 * keymux_client_new_finish:
 *
 * Returns: (transfer full): the client, or %NULL with @error set
 */
KeymuxClient *
keymux_client_new_finish(GAsyncResult *result, GError **error)
{
	return keymux_client_new_for_bus_finish(result, error);
}

/**
 * keymux_client_new_sync:
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full): the client, or %NULL with @error set
 */
KeymuxClient *
keymux_client_new_sync(GCancellable *cancellable, GError **error)
{
	return keymux_client_new_for_bus_sync(NULL, KEYMUX_CLIENT_FLAGS_NONE, cancellable, error);
}

/**
 * keymux_client_new_for_bus:
 * @bus: (nullable): the message bus keymuxd is on, e.g. a connection made
 *   with g_dbus_connection_new_for_address(); %NULL for the session bus
 * @flags: how to connect
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the client
 * @user_data: for @callback
 *
 * Connects to keymuxd on @bus: a connection of its own when keymuxd gives
 * one (unless @flags has %KEYMUX_CLIENT_FLAGS_BUS_ONLY), else @bus.  With
 * %KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE it fails with
 * %KEYMUX_ERROR_UNAVAILABLE, saying why, when keymuxd is not on @bus and
 * cannot be started.
 */
void
keymux_client_new_for_bus(GDBusConnection *bus,
			  KeymuxClientFlags flags,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data)
{
	GTask *task;

	g_return_if_fail(bus == NULL || G_IS_DBUS_CONNECTION(bus));
	task = g_task_new(NULL, cancellable, callback, user_data);
	g_task_set_source_tag(task, keymux_client_new_for_bus);
	/* the client and its objects belong to the caller's main context */
	g_task_set_task_data(task,
			     g_object_new(KEYMUX_TYPE_CLIENT, "bus", bus, "flags", flags, NULL),
			     g_object_unref);
	if (bus != NULL)
		keymux_client_new_have_bus(task, g_object_ref(bus));
	else
		g_bus_get(G_BUS_TYPE_SESSION, cancellable, keymux_client_new_bus_cb, task);
}

/**
 * keymux_client_new_for_bus_finish:
 *
 * Returns: (transfer full): the client, or %NULL with @error set
 */
KeymuxClient *
keymux_client_new_for_bus_finish(GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

/**
 * keymux_client_new_for_bus_sync:
 * @bus: (nullable): the message bus keymuxd is on; %NULL for the session bus
 * @flags: how to connect
 * @cancellable: (nullable): a #GCancellable
 *
 * See keymux_client_new_for_bus().
 *
 * Returns: (transfer full): the client, or %NULL with @error set
 */
KeymuxClient *
keymux_client_new_for_bus_sync(GDBusConnection *bus,
			       KeymuxClientFlags flags,
			       GCancellable *cancellable,
			       GError **error)
{
	g_return_val_if_fail(bus == NULL || G_IS_DBUS_CONNECTION(bus), NULL);
	return g_initable_new(KEYMUX_TYPE_CLIENT,
			      cancellable,
			      error,
			      "bus",
			      bus,
			      "flags",
			      flags,
			      NULL);
}
