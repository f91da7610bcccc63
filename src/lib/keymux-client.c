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
	GDBusConnection *connection;
	gboolean peer_to_peer;
	GDBusObjectManager *objects;
	GDBusProxy *manager;
};

enum { PROP_0, PROP_CONNECTION, PROP_PEER_TO_PEER, N_PROPS };
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

	g_dbus_error_register_error_domain("keymux-error-quark",
					   &quark,
					   keymux_error_entries,
					   G_N_ELEMENTS(keymux_error_entries));
	return (GQuark)quark;
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
	if (g_dbus_error_is_remote_error(e))
		g_dbus_error_strip_remote_error(e);
	if (e->domain == KEYMUX_ERROR || g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	e->domain = KEYMUX_ERROR;
	e->code = KEYMUX_ERROR_FAILED;
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

/* the peer connection could not be had: the bus, unless that was cancelled */
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
}

/* the objects know their client from the start */
static void
keymux_client_adopt(KeymuxClient *self)
{
	g_list_free_full(keymux_client_get_devices(self), g_object_unref);
	g_list_free_full(keymux_client_get_keys(self), g_object_unref);
}

static gboolean
keymux_client_initable_init(GInitable *initable, GCancellable *cancellable, GError **error)
{
	KeymuxClient *self = KEYMUX_CLIENT(initable);
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(GError) p2p_error = NULL;
	GError *e = NULL;

	(void)KEYMUX_ERROR;
	bus = g_bus_get_sync(G_BUS_TYPE_SESSION, cancellable, &e);
	if (bus == NULL)
		goto failed;
	self->connection = keymux_client_open_peer(bus, cancellable, &p2p_error);
	self->peer_to_peer = self->connection != NULL;
	if (!self->peer_to_peer && !keymux_client_fall_back(self, bus, &p2p_error, error))
		return FALSE;
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
	if (self->peer_to_peer && self->connection != NULL)
		g_dbus_connection_close(self->connection, NULL, NULL, NULL);
	g_clear_object(&self->connection);
	G_OBJECT_CLASS(keymux_client_parent_class)->dispose(object);
}

static void
keymux_client_class_init(KeymuxClientClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->get_property = keymux_client_get_property;
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

/* no peer connection: the bus, unless cancelled */
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
	g_object_set_data_full(G_OBJECT(task), "keymux-bus", bus, g_object_unref);
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

/**
 * keymux_client_new:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the client
 * @user_data: for @callback
 *
 * Connects to keymuxd: a connection of its own when keymuxd gives one,
 * else the session bus.  Every step is asynchronous: the caller's main
 * loop runs until @callback.
 */
void
keymux_client_new(GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
	GTask *task = g_task_new(NULL, cancellable, callback, user_data);

	g_task_set_source_tag(task, keymux_client_new);
	/* the client and its objects belong to the caller's main context */
	g_task_set_task_data(task, g_object_new(KEYMUX_TYPE_CLIENT, NULL), g_object_unref);
	g_bus_get(G_BUS_TYPE_SESSION, cancellable, keymux_client_new_bus_cb, task);
}

/**
 * keymux_client_new_finish:
 *
 * Returns: (transfer full): the client, or %NULL with @error set
 */
KeymuxClient *
keymux_client_new_finish(GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
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
	return g_initable_new(KEYMUX_TYPE_CLIENT, cancellable, error, NULL);
}
