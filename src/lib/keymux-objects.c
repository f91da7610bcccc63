/* libkeymux: devices and keys
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each is a GDBusProxy of the client's object manager: its properties are
 * the proxy's cache, kept current by PropertiesChanged, and every change
 * is a GObject notify:: signal.
 */
#include "config.h"

#include "keymux-private.h"

/**
 * KeymuxDevice:
 *
 * Something that holds keys: a soft-key store, an OpenPGP card, the TPM.
 */
struct _KeymuxDevice {
	GDBusProxy parent_instance;
	GWeakRef client;
};

/**
 * KeymuxKey:
 *
 * An asymmetric private key on a device.
 */
struct _KeymuxKey {
	GDBusProxy parent_instance;
	GWeakRef client;
};

G_DEFINE_TYPE(KeymuxDevice, keymux_device, G_TYPE_DBUS_PROXY)
G_DEFINE_TYPE(KeymuxKey, keymux_key, G_TYPE_DBUS_PROXY)

static GWeakRef *
keymux_object_client_ref(GDBusProxy *proxy)
{
	if (KEYMUX_IS_DEVICE(proxy))
		return &KEYMUX_DEVICE(proxy)->client;
	return &KEYMUX_KEY(proxy)->client;
}

void
_keymux_object_set_client(GDBusProxy *proxy, KeymuxClient *client)
{
	g_weak_ref_set(keymux_object_client_ref(proxy), client);
}

KeymuxClient *
_keymux_object_dup_client(GDBusProxy *proxy)
{
	return g_weak_ref_get(keymux_object_client_ref(proxy));
}

/* ---- properties: D-Bus name, GObject name ------------------------------------------ */

typedef struct {
	const char *dbus;
	const char *name;
	const GVariantType *type;
} KeymuxProp;

static const KeymuxProp device_props[] = {
    {"Id", "id", G_VARIANT_TYPE_STRING},
    {"Backend", "backend", G_VARIANT_TYPE_STRING},
    {"Label", "label", G_VARIANT_TYPE_STRING},
    {"Locked", "locked", G_VARIANT_TYPE_BOOLEAN},
    {"Registered", "registered", G_VARIANT_TYPE_BOOLEAN},
    {"Available", "available", G_VARIANT_TYPE_BOOLEAN},
    {"PinRetries", "pin-retries", G_VARIANT_TYPE_INT32},
    {"Keys", "keys", G_VARIANT_TYPE_OBJECT_PATH_ARRAY},
    {"Details", "details", G_VARIANT_TYPE_VARDICT},
};

static const KeymuxProp key_props[] = {
    {"Id", "id", G_VARIANT_TYPE_STRING},
    {"Device", "device-path", G_VARIANT_TYPE_OBJECT_PATH},
    {"Label", "label", G_VARIANT_TYPE_STRING},
    {"Algorithm", "algorithm", G_VARIANT_TYPE_STRING},
    {"Usage", "usage", G_VARIANT_TYPE_STRING_ARRAY},
    {"PublicKey", "public-key", G_VARIANT_TYPE_BYTESTRING},
    {"Locked", "locked", G_VARIANT_TYPE_BOOLEAN},
    {"Available", "available", G_VARIANT_TYPE_BOOLEAN},
    {"Exportable", "exportable", G_VARIANT_TYPE_BOOLEAN},
};

/* a cached property of the right type, or NULL (a hostile or newer daemon) */
static GVariant *
keymux_cached(gpointer proxy, const char *name, const GVariantType *type)
{
	GVariant *v = g_dbus_proxy_get_cached_property(G_DBUS_PROXY(proxy), name);

	if (v != NULL && !g_variant_is_of_type(v, type)) {
		g_variant_unref(v);
		return NULL;
	}
	return v;
}

/* a string property: the cache keeps it alive while the proxy lives and
 * the value does not change; the string is interned so that it outlives
 * a change too */
static const char *
keymux_cached_string(gpointer proxy, const char *name, const GVariantType *type)
{
	g_autoptr(GVariant) v = keymux_cached(proxy, name, type);
	return v != NULL ? g_intern_string(g_variant_get_string(v, NULL)) : NULL;
}

static char *
keymux_cached_dup_string(gpointer proxy, const char *name)
{
	g_autoptr(GVariant) v = keymux_cached(proxy, name, G_VARIANT_TYPE_STRING);
	return v != NULL ? g_variant_dup_string(v, NULL) : NULL;
}

static gboolean
keymux_cached_boolean(gpointer proxy, const char *name)
{
	g_autoptr(GVariant) v = keymux_cached(proxy, name, G_VARIANT_TYPE_BOOLEAN);
	return v != NULL && g_variant_get_boolean(v);
}

static void
keymux_props_changed(GDBusProxy *proxy,
		     GVariant *changed,
		     const char *const *invalidated,
		     const KeymuxProp *table,
		     gsize n)
{
	GVariantIter iter;
	const char *name;

	g_object_freeze_notify(G_OBJECT(proxy));
	g_variant_iter_init(&iter, changed);
	while (g_variant_iter_next(&iter, "{&sv}", &name, NULL)) {
		for (gsize i = 0; i < n; i++) {
			if (g_str_equal(table[i].dbus, name))
				g_object_notify(G_OBJECT(proxy), table[i].name);
		}
	}
	for (gsize j = 0; invalidated != NULL && invalidated[j] != NULL; j++) {
		for (gsize i = 0; i < n; i++) {
			if (g_str_equal(table[i].dbus, invalidated[j]))
				g_object_notify(G_OBJECT(proxy), table[i].name);
		}
	}
	g_object_thaw_notify(G_OBJECT(proxy));
}

static void
keymux_get_property(GObject *object,
		    guint id,
		    GValue *value,
		    GParamSpec *pspec,
		    const KeymuxProp *table,
		    gsize n)
{
	g_autoptr(GVariant) v = NULL;

	if (id == 0 || id > n) {
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
		return;
	}
	v = keymux_cached(object, table[id - 1].dbus, table[id - 1].type);
	if (v == NULL)
		return;
	if (G_VALUE_HOLDS_STRING(value))
		g_value_set_string(value, g_variant_get_string(v, NULL));
	else if (G_VALUE_HOLDS_BOOLEAN(value))
		g_value_set_boolean(value, g_variant_get_boolean(v));
	else if (G_VALUE_HOLDS_INT(value))
		g_value_set_int(value, g_variant_get_int32(v));
	else if (G_VALUE_HOLDS(value, G_TYPE_STRV))
		g_value_take_boxed(value, g_variant_dup_strv(v, NULL));
	else if (G_VALUE_HOLDS(value, G_TYPE_BYTES))
		g_value_take_boxed(value, g_variant_get_data_as_bytes(v));
	else if (G_VALUE_HOLDS_VARIANT(value))
		g_value_set_variant(value, v);
}

static void
keymux_install_properties(GObjectClass *klass, const KeymuxProp *table, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		const GVariantType *t = table[i].type;
		GParamFlags f = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
		GParamSpec *p;

		if (g_variant_type_equal(t, G_VARIANT_TYPE_BOOLEAN))
			p = g_param_spec_boolean(table[i].name, NULL, NULL, FALSE, f);
		else if (g_variant_type_equal(t, G_VARIANT_TYPE_INT32))
			p = g_param_spec_int(table[i].name, NULL, NULL, -1, G_MAXINT, -1, f);
		else if (g_variant_type_equal(t, G_VARIANT_TYPE_STRING_ARRAY) ||
			 g_variant_type_equal(t, G_VARIANT_TYPE_OBJECT_PATH_ARRAY))
			p = g_param_spec_boxed(table[i].name, NULL, NULL, G_TYPE_STRV, f);
		else if (g_variant_type_equal(t, G_VARIANT_TYPE_BYTESTRING))
			p = g_param_spec_boxed(table[i].name, NULL, NULL, G_TYPE_BYTES, f);
		else if (g_variant_type_equal(t, G_VARIANT_TYPE_VARDICT))
			p = g_param_spec_variant(table[i].name, NULL, NULL, t, NULL, f);
		else
			p = g_param_spec_string(table[i].name, NULL, NULL, NULL, f);
		g_object_class_install_property(klass, (guint)i + 1, p);
	}
}

/* ---- KeymuxDevice -------------------------------------------------------------------- */

static void
keymux_device_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
	if (id == 8) { /* keys: object paths */
		g_autoptr(GVariant) v = keymux_cached(object, "Keys", G_VARIANT_TYPE("ao"));
		g_value_take_boxed(value, v != NULL ? g_variant_dup_objv(v, NULL) : NULL);
		return;
	}
	keymux_get_property(object, id, value, pspec, device_props, G_N_ELEMENTS(device_props));
}

static void
keymux_device_properties_changed(GDBusProxy *proxy,
				 GVariant *changed,
				 const char *const *invalidated)
{
	keymux_props_changed(proxy, changed, invalidated, device_props, G_N_ELEMENTS(device_props));
}

static void
keymux_device_finalize(GObject *object)
{
	g_weak_ref_clear(&KEYMUX_DEVICE(object)->client);
	G_OBJECT_CLASS(keymux_device_parent_class)->finalize(object);
}

static void
keymux_device_class_init(KeymuxDeviceClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->get_property = keymux_device_get_property;
	object_class->finalize = keymux_device_finalize;
	G_DBUS_PROXY_CLASS(klass)->g_properties_changed = keymux_device_properties_changed;
	/**
	 * KeymuxDevice:id:
	 *
	 * The device id, e.g. "softkey:login".
	 */
	/**
	 * KeymuxDevice:label:
	 *
	 * A name for people.
	 */
	/**
	 * KeymuxDevice:locked:
	 *
	 * A secret must be given before its private keys can be used.
	 */
	keymux_install_properties(object_class, device_props, G_N_ELEMENTS(device_props));
}

static void
keymux_device_init(KeymuxDevice *self)
{
	g_weak_ref_init(&self->client, NULL);
}

/**
 * keymux_device_get_id:
 *
 * Returns: (nullable): the device id, e.g. "softkey:login"
 */
const char *
keymux_device_get_id(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	return keymux_cached_string(self, "Id", G_VARIANT_TYPE_STRING);
}

/**
 * keymux_device_get_backend:
 *
 * Returns: (nullable): the backend, e.g. "softkey"
 */
const char *
keymux_device_get_backend(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	return keymux_cached_string(self, "Backend", G_VARIANT_TYPE_STRING);
}

/**
 * keymux_device_dup_label:
 *
 * Returns: (transfer full) (nullable): the label
 */
char *
keymux_device_dup_label(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	return keymux_cached_dup_string(self, "Label");
}

gboolean
keymux_device_get_locked(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), FALSE);
	return keymux_cached_boolean(self, "Locked");
}

gboolean
keymux_device_get_registered(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), FALSE);
	return keymux_cached_boolean(self, "Registered");
}

gboolean
keymux_device_get_available(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), FALSE);
	return keymux_cached_boolean(self, "Available");
}

/**
 * keymux_device_get_pin_retries:
 *
 * Returns: PIN tries left, or -1 when not applicable
 */
int
keymux_device_get_pin_retries(KeymuxDevice *self)
{
	g_autoptr(GVariant) v = NULL;

	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), -1);
	v = keymux_cached(self, "PinRetries", G_VARIANT_TYPE_INT32);
	return v != NULL ? g_variant_get_int32(v) : -1;
}

/**
 * keymux_device_dup_details:
 *
 * Returns: (transfer full) (nullable): backend-specific facts, an a{sv}
 */
GVariant *
keymux_device_dup_details(KeymuxDevice *self)
{
	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	return keymux_cached(self, "Details", G_VARIANT_TYPE_VARDICT);
}

/**
 * keymux_device_get_keys:
 *
 * Returns: (transfer full) (element-type KeymuxKey): the keys on the device
 */
GList *
keymux_device_get_keys(KeymuxDevice *self)
{
	g_autoptr(KeymuxClient) client = NULL;
	g_autoptr(GVariant) v = NULL;
	GList *out = NULL;
	GVariantIter iter;
	const char *path;

	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	client = _keymux_object_dup_client(G_DBUS_PROXY(self));
	v = keymux_cached(self, "Keys", G_VARIANT_TYPE("ao"));
	if (client == NULL || v == NULL)
		return NULL;
	g_variant_iter_init(&iter, v);
	while (g_variant_iter_next(&iter, "&o", &path)) {
		KeymuxKey *key = keymux_client_lookup_key(client, path);
		if (key != NULL)
			out = g_list_prepend(out, key);
	}
	return g_list_reverse(out);
}

/* ---- operations that return nothing ---------------------------------------------- */

/* one method of the object: async, _finish, _sync */
#define KEYMUX_VOID_OP(Type, type, fn, Method, PARAMS, ARGS, ARGV)                                 \
	void keymux_##type##_##fn(Type *self PARAMS,                                               \
				  GCancellable *cancellable,                                       \
				  GAsyncReadyCallback callback,                                    \
				  gpointer user_data)                                              \
	{                                                                                          \
		_keymux_call(G_DBUS_PROXY(self),                                                   \
			     Method,                                                               \
			     ARGV,                                                                 \
			     "()",                                                                 \
			     self,                                                                 \
			     keymux_##type##_##fn,                                                 \
			     cancellable,                                                          \
			     callback,                                                             \
			     user_data);                                                           \
	}                                                                                          \
	gboolean keymux_##type##_##fn##_finish(Type *self, GAsyncResult *result, GError **error)   \
	{                                                                                          \
		return _keymux_void_finish(self, result, keymux_##type##_##fn, error);             \
	}                                                                                          \
	gboolean keymux_##type##_##fn##_sync(Type *self PARAMS,                                    \
					     GCancellable *cancellable,                            \
					     GError **error)                                       \
	{                                                                                          \
		return _keymux_void_sync(G_DBUS_PROXY(self), Method, ARGV, cancellable, error);    \
	}

#define NOARGS
#define COMMA ,

/**
 * keymux_device_unlock:
 * @secret: the password or PIN; "" to have the registered prompter ask
 * @flags: %KEYMUX_CALL_FLAGS_NO_INTERACTION: never prompt
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Unlocks the device; a wrong secret fails with %KEYMUX_ERROR_BAD_SECRET.
 */
/**
 * keymux_device_unlock_sync:
 * @secret: the password or PIN
 * @flags: %KEYMUX_CALL_FLAGS_NO_INTERACTION: never prompt
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxDevice,
	       device,
	       unlock,
	       "Unlock",
	       COMMA const char *secret COMMA KeymuxCallFlags flags,
	       NOARGS,
	       g_variant_new("(s@a{sv})", secret, _keymux_options(flags)))

/**
 * keymux_device_lock:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Locks the device: its cached secret and decrypted keys are dropped.
 */
/**
 * keymux_device_lock_sync:
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxDevice, device, lock, "Lock", NOARGS, NOARGS, NULL)

/**
 * keymux_device_register:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Caches the device's description and keys, so that they are listed while
 * it is absent (a card).
 */
/**
 * keymux_device_register_sync:
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxDevice, device, register, "Register", NOARGS, NOARGS, NULL)

/**
 * keymux_device_unregister:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Forgets what keymux_device_register() cached.
 */
/**
 * keymux_device_unregister_sync:
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxDevice, device, unregister, "Unregister", NOARGS, NOARGS, NULL)

/**
 * keymux_device_change_secret:
 * @old_secret: the current secret ("" for an unprotected store)
 * @new_secret: the new one ("" removes the protection where allowed)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Changes the password or PIN.
 */
/**
 * keymux_device_change_secret_sync:
 * @old_secret: the current secret
 * @new_secret: the new one
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxDevice,
	       device,
	       change_secret,
	       "ChangeSecret",
	       COMMA const char *old_secret COMMA const char *new_secret,
	       NOARGS,
	       g_variant_new("(ss)", old_secret, new_secret))

/**
 * keymux_key_set_label:
 * @label: the new label
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Renames the key; works while its device is locked.
 */
/**
 * keymux_key_set_label_sync:
 * @label: the new label
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxKey,
	       key,
	       set_label,
	       "SetLabel",
	       COMMA const char *label,
	       NOARGS,
	       g_variant_new("(s)", label))

/**
 * keymux_key_delete:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Deletes the key and every file of it.
 */
/**
 * keymux_key_delete_sync:
 * @cancellable: (nullable): a #GCancellable
 */
KEYMUX_VOID_OP(KeymuxKey, key, delete, "Delete", NOARGS, NOARGS, NULL)

/* ---- generating and importing ------------------------------------------------------- */

/* GenerateKey's arguments, with a card's options */
static GVariant *
keymux_generate_args(const char *algorithm,
		     const char *label,
		     const char *slot,
		     const char *admin_secret,
		     KeymuxCallFlags flags)
{
	g_autoptr(GVariant) common = g_variant_ref_sink(_keymux_options(flags));
	GVariantBuilder b;
	GVariantIter iter;
	GVariant *entry;

	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	g_variant_iter_init(&iter, common);
	while ((entry = g_variant_iter_next_value(&iter)) != NULL) {
		g_variant_builder_add_value(&b, entry);
		g_variant_unref(entry);
	}
	if (slot != NULL)
		g_variant_builder_add(&b, "{sv}", "slot", g_variant_new_string(slot));
	if (flags & KEYMUX_CALL_FLAGS_REPLACE)
		g_variant_builder_add(&b, "{sv}", "replace", g_variant_new_boolean(TRUE));
	if (admin_secret != NULL)
		g_variant_builder_add(&b,
				      "{sv}",
				      "admin-secret",
				      g_variant_new_string(admin_secret));
	return g_variant_new("(ss@a{sv})",
			     algorithm,
			     label != NULL ? label : "",
			     g_variant_builder_end(&b));
}

/**
 * keymux_device_generate_key:
 * @algorithm: a key algorithm, e.g. "ed25519"
 * @label: a name for people
 * @flags: %KEYMUX_CALL_FLAGS_EXPORTABLE, %KEYMUX_CALL_FLAGS_NO_INTERACTION
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Makes a new key on the device.
 */
void
keymux_device_generate_key(KeymuxDevice *self,
			   const char *algorithm,
			   const char *label,
			   KeymuxCallFlags flags,
			   GCancellable *cancellable,
			   GAsyncReadyCallback callback,
			   gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_DEVICE(self));
	_keymux_call(G_DBUS_PROXY(self),
		     "GenerateKey",
		     keymux_generate_args(algorithm, label, NULL, NULL, flags),
		     "(o)",
		     self,
		     keymux_device_generate_key,
		     cancellable,
		     callback,
		     user_data);
}

static KeymuxKey *
keymux_device_key_of_reply(KeymuxDevice *self, GVariant *reply, GError **error)
{
	g_autoptr(KeymuxClient) client = NULL;
	const char *path = NULL;
	KeymuxKey *key;

	if (reply == NULL)
		return NULL;
	client = _keymux_object_dup_client(G_DBUS_PROXY(self));
	g_variant_get(reply, "(&o)", &path);
	key = client != NULL ? _keymux_client_key(client, path) : NULL;
	if (key == NULL)
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_FAILED,
			    "the new key at %s went away at once",
			    path);
	return key;
}

/**
 * keymux_device_generate_key_finish:
 *
 * Returns: (transfer full): the new key, or %NULL with @error set
 */
KeymuxKey *
keymux_device_generate_key_finish(KeymuxDevice *self, GAsyncResult *result, GError **error)
{
	g_autoptr(GVariant)
	    reply = _keymux_call_finish(self, result, keymux_device_generate_key, error);
	return keymux_device_key_of_reply(self, reply, error);
}

/**
 * keymux_device_generate_key_sync:
 * @algorithm: a key algorithm, e.g. "ed25519"
 * @label: a name for people
 * @flags: %KEYMUX_CALL_FLAGS_EXPORTABLE, %KEYMUX_CALL_FLAGS_NO_INTERACTION
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full): the new key, or %NULL with @error set
 */
KeymuxKey *
keymux_device_generate_key_sync(KeymuxDevice *self,
				const char *algorithm,
				const char *label,
				KeymuxCallFlags flags,
				GCancellable *cancellable,
				GError **error)
{
	g_autoptr(GVariant) reply = NULL;

	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	reply = _keymux_call_sync(G_DBUS_PROXY(self),
				  "GenerateKey",
				  keymux_generate_args(algorithm, label, NULL, NULL, flags),
				  "(o)",
				  cancellable,
				  error);
	return keymux_device_key_of_reply(self, reply, error);
}

/**
 * keymux_device_generate_key_full:
 * @algorithm: a key algorithm, e.g. "ed25519"
 * @label: (nullable): a name for people
 * @slot: (nullable): where a device with slots puts the key (a card's
 *   "sig", "dec" or "aut"); %NULL for the device's choice
 * @admin_secret: (nullable): the device's admin PIN, when generating
 *   needs it (a card); %NULL to be prompted for it
 * @flags: %KEYMUX_CALL_FLAGS_REPLACE (replace the key in @slot),
 *   %KEYMUX_CALL_FLAGS_EXPORTABLE, %KEYMUX_CALL_FLAGS_NO_INTERACTION
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Makes a new key on the device, in a slot of its own choosing.
 */
void
keymux_device_generate_key_full(KeymuxDevice *self,
				const char *algorithm,
				const char *label,
				const char *slot,
				const char *admin_secret,
				KeymuxCallFlags flags,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_DEVICE(self));
	g_return_if_fail(algorithm != NULL);
	_keymux_call(G_DBUS_PROXY(self),
		     "GenerateKey",
		     keymux_generate_args(algorithm, label, slot, admin_secret, flags),
		     "(o)",
		     self,
		     keymux_device_generate_key_full,
		     cancellable,
		     callback,
		     user_data);
}

/**
 * keymux_device_generate_key_full_finish:
 *
 * Returns: (transfer full): the new key, or %NULL with @error set
 */
KeymuxKey *
keymux_device_generate_key_full_finish(KeymuxDevice *self, GAsyncResult *result, GError **error)
{
	g_autoptr(GVariant)
	    reply = _keymux_call_finish(self, result, keymux_device_generate_key_full, error);
	return keymux_device_key_of_reply(self, reply, error);
}

/**
 * keymux_device_generate_key_full_sync:
 * @algorithm: a key algorithm, e.g. "ed25519"
 * @label: (nullable): a name for people
 * @slot: (nullable): where a device with slots puts the key
 * @admin_secret: (nullable): the device's admin PIN
 * @flags: as for keymux_device_generate_key_full()
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full): the new key, or %NULL with @error set
 */
KeymuxKey *
keymux_device_generate_key_full_sync(KeymuxDevice *self,
				     const char *algorithm,
				     const char *label,
				     const char *slot,
				     const char *admin_secret,
				     KeymuxCallFlags flags,
				     GCancellable *cancellable,
				     GError **error)
{
	g_autoptr(GVariant) reply = NULL;

	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	g_return_val_if_fail(algorithm != NULL, NULL);
	reply = _keymux_call_sync(G_DBUS_PROXY(self),
				  "GenerateKey",
				  keymux_generate_args(algorithm, label, slot, admin_secret, flags),
				  "(o)",
				  cancellable,
				  error);
	return keymux_device_key_of_reply(self, reply, error);
}

static GVariant *
keymux_import_args(GBytes *data, const char *passphrase, const char *label)
{
	return g_variant_new("(@ayss@a{sv})",
			     g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, data, TRUE),
			     passphrase != NULL ? passphrase : "",
			     label != NULL ? label : "",
			     _keymux_options(KEYMUX_CALL_FLAGS_NONE));
}

/**
 * keymux_device_import_key:
 * @data: a private key: PKCS#8, PKCS#1, SEC1, PKCS#12 or OpenSSH, PEM or DER
 * @passphrase: (nullable): its passphrase
 * @label: (nullable): a name for people, or %NULL to keep the file's own
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Imports a private key: %KEYMUX_ERROR_BAD_SECRET on a wrong passphrase,
 * %KEYMUX_ERROR_EXISTS when the key is on the device already.
 */
void
keymux_device_import_key(KeymuxDevice *self,
			 GBytes *data,
			 const char *passphrase,
			 const char *label,
			 GCancellable *cancellable,
			 GAsyncReadyCallback callback,
			 gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_DEVICE(self));
	g_return_if_fail(data != NULL);
	_keymux_call(G_DBUS_PROXY(self),
		     "ImportKey",
		     keymux_import_args(data, passphrase, label),
		     "(ao)",
		     self,
		     keymux_device_import_key,
		     cancellable,
		     callback,
		     user_data);
}

static GList *
keymux_device_keys_of_reply(KeymuxDevice *self, GVariant *reply)
{
	g_autoptr(KeymuxClient) client = NULL;
	g_autoptr(GVariant) paths = NULL;

	if (reply == NULL)
		return NULL;
	client = _keymux_object_dup_client(G_DBUS_PROXY(self));
	if (client == NULL)
		return NULL;
	paths = g_variant_get_child_value(reply, 0);
	return _keymux_client_keys(client, paths);
}

/**
 * keymux_device_import_key_finish:
 *
 * Returns: (transfer full) (element-type KeymuxKey): the new keys
 */
GList *
keymux_device_import_key_finish(KeymuxDevice *self, GAsyncResult *result, GError **error)
{
	g_autoptr(GVariant)
	    reply = _keymux_call_finish(self, result, keymux_device_import_key, error);
	return keymux_device_keys_of_reply(self, reply);
}

/**
 * keymux_device_import_key_sync:
 * @data: a private key
 * @passphrase: (nullable): its passphrase
 * @label: (nullable): a name for people
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full) (element-type KeymuxKey): the new keys
 */
GList *
keymux_device_import_key_sync(KeymuxDevice *self,
			      GBytes *data,
			      const char *passphrase,
			      const char *label,
			      GCancellable *cancellable,
			      GError **error)
{
	g_autoptr(GVariant) reply = NULL;

	g_return_val_if_fail(KEYMUX_IS_DEVICE(self), NULL);
	g_return_val_if_fail(data != NULL, NULL);
	reply = _keymux_call_sync(G_DBUS_PROXY(self),
				  "ImportKey",
				  keymux_import_args(data, passphrase, label),
				  "(ao)",
				  cancellable,
				  error);
	return keymux_device_keys_of_reply(self, reply);
}

/* ---- KeymuxKey ------------------------------------------------------------------------ */

static void
keymux_key_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
	keymux_get_property(object, id, value, pspec, key_props, G_N_ELEMENTS(key_props));
}

static void
keymux_key_properties_changed(GDBusProxy *proxy, GVariant *changed, const char *const *invalidated)
{
	keymux_props_changed(proxy, changed, invalidated, key_props, G_N_ELEMENTS(key_props));
}

static void
keymux_key_finalize(GObject *object)
{
	g_weak_ref_clear(&KEYMUX_KEY(object)->client);
	G_OBJECT_CLASS(keymux_key_parent_class)->finalize(object);
}

static void
keymux_key_class_init(KeymuxKeyClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->get_property = keymux_key_get_property;
	object_class->finalize = keymux_key_finalize;
	G_DBUS_PROXY_CLASS(klass)->g_properties_changed = keymux_key_properties_changed;
	keymux_install_properties(object_class, key_props, G_N_ELEMENTS(key_props));
}

static void
keymux_key_init(KeymuxKey *self)
{
	g_weak_ref_init(&self->client, NULL);
}

/**
 * keymux_key_get_id:
 *
 * Returns: (nullable): the key id: lowercase hex SHA-256 of its public key
 */
const char *
keymux_key_get_id(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);
	return keymux_cached_string(self, "Id", G_VARIANT_TYPE_STRING);
}

/**
 * keymux_key_get_device_path:
 *
 * Returns: (nullable): the object path of the key's device
 */
const char *
keymux_key_get_device_path(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);
	return keymux_cached_string(self, "Device", G_VARIANT_TYPE_OBJECT_PATH);
}

/**
 * keymux_key_dup_label:
 *
 * Returns: (transfer full) (nullable): the label
 */
char *
keymux_key_dup_label(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);
	return keymux_cached_dup_string(self, "Label");
}

/**
 * keymux_key_get_algorithm:
 *
 * Returns: (nullable): the key algorithm, e.g. "rsa2048"
 */
const char *
keymux_key_get_algorithm(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);
	return keymux_cached_string(self, "Algorithm", G_VARIANT_TYPE_STRING);
}

/**
 * keymux_key_dup_usage:
 *
 * Returns: (transfer full) (nullable): what the key can do: "sign", "decrypt", "derive"
 */
GStrv
keymux_key_dup_usage(KeymuxKey *self)
{
	g_autoptr(GVariant) v = NULL;

	g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);
	v = keymux_cached(self, "Usage", G_VARIANT_TYPE_STRING_ARRAY);
	return v != NULL ? g_variant_dup_strv(v, NULL) : NULL;
}

/**
 * keymux_key_dup_public_key:
 *
 * Returns: (transfer full) (nullable): the DER SubjectPublicKeyInfo
 */
GBytes *
keymux_key_dup_public_key(KeymuxKey *self)
{
	g_autoptr(GVariant) v = NULL;

	g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);
	v = keymux_cached(self, "PublicKey", G_VARIANT_TYPE_BYTESTRING);
	return v != NULL ? g_variant_get_data_as_bytes(v) : NULL;
}

gboolean
keymux_key_get_locked(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), FALSE);
	return keymux_cached_boolean(self, "Locked");
}

gboolean
keymux_key_get_available(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), FALSE);
	return keymux_cached_boolean(self, "Available");
}

gboolean
keymux_key_get_exportable(KeymuxKey *self)
{
	g_return_val_if_fail(KEYMUX_IS_KEY(self), FALSE);
	return keymux_cached_boolean(self, "Exportable");
}

/* ---- private-key operations: (s algorithm, ay data, a{sv} options) -> (ay) ---------- */

#define KEYMUX_BYTES_OP(fn, Method)                                                                \
	void keymux_key_##fn(KeymuxKey *self,                                                      \
			     const char *algorithm,                                                \
			     GBytes *data,                                                         \
			     KeymuxCallFlags flags,                                                \
			     GCancellable *cancellable,                                            \
			     GAsyncReadyCallback callback,                                         \
			     gpointer user_data)                                                   \
	{                                                                                          \
		g_return_if_fail(KEYMUX_IS_KEY(self));                                             \
		g_return_if_fail(algorithm != NULL && data != NULL);                               \
		_keymux_call(G_DBUS_PROXY(self),                                                   \
			     Method,                                                               \
			     keymux_op_args(algorithm, data, flags),                               \
			     "(ay)",                                                               \
			     self,                                                                 \
			     keymux_key_##fn,                                                      \
			     cancellable,                                                          \
			     callback,                                                             \
			     user_data);                                                           \
	}                                                                                          \
	GBytes *keymux_key_##fn##_finish(KeymuxKey *self, GAsyncResult *result, GError **error)    \
	{                                                                                          \
		g_autoptr(GVariant)                                                                \
		    reply = _keymux_call_finish(self, result, keymux_key_##fn, error);             \
		return _keymux_bytes_of(reply);                                                    \
	}                                                                                          \
	GBytes *keymux_key_##fn##_sync(KeymuxKey *self,                                            \
				       const char *algorithm,                                      \
				       GBytes *data,                                               \
				       KeymuxCallFlags flags,                                      \
				       GCancellable *cancellable,                                  \
				       GError **error)                                             \
	{                                                                                          \
		g_autoptr(GVariant) reply = NULL;                                                  \
		g_return_val_if_fail(KEYMUX_IS_KEY(self), NULL);                                   \
		g_return_val_if_fail(algorithm != NULL && data != NULL, NULL);                     \
		reply = _keymux_call_sync(G_DBUS_PROXY(self),                                      \
					  Method,                                                  \
					  keymux_op_args(algorithm, data, flags),                  \
					  "(ay)",                                                  \
					  cancellable,                                             \
					  error);                                                  \
		return _keymux_bytes_of(reply);                                                    \
	}

static GVariant *
keymux_op_args(const char *algorithm, GBytes *data, KeymuxCallFlags flags)
{
	return g_variant_new("(s@ay@a{sv})",
			     algorithm,
			     g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, data, TRUE),
			     _keymux_options(flags));
}

/**
 * keymux_key_sign:
 * @algorithm: a sign algorithm, e.g. "ed25519", "ecdsa-sha256", "rsa-pss-sha256"
 * @data: the message, or its digest with %KEYMUX_CALL_FLAGS_PREHASHED
 * @flags: %KEYMUX_CALL_FLAGS_PREHASHED, %KEYMUX_CALL_FLAGS_NO_INTERACTION
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Signs @data; a locked device is unlocked through the registered
 * prompter first.
 */
/**
 * keymux_key_sign_finish:
 *
 * Returns: (transfer full): the signature (DER for ECDSA)
 */
/**
 * keymux_key_sign_sync:
 * @algorithm: a sign algorithm
 * @data: the message
 * @flags: #KeymuxCallFlags
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full): the signature
 */
KEYMUX_BYTES_OP(sign, "Sign")

/**
 * keymux_key_decrypt:
 * @algorithm: "rsa-pkcs1" or "rsa-oaep-sha256"
 * @data: the ciphertext
 * @flags: %KEYMUX_CALL_FLAGS_NO_INTERACTION
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Decrypts @data.
 */
/**
 * keymux_key_decrypt_finish:
 *
 * Returns: (transfer full): the plaintext
 */
/**
 * keymux_key_decrypt_sync:
 * @algorithm: "rsa-pkcs1" or "rsa-oaep-sha256"
 * @data: the ciphertext
 * @flags: #KeymuxCallFlags
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full): the plaintext
 */
KEYMUX_BYTES_OP(decrypt, "Decrypt")

/**
 * keymux_key_derive:
 * @algorithm: "ecdh" or "x25519"
 * @data: the peer's public key (DER SubjectPublicKeyInfo, a raw X25519
 *   key, or an uncompressed EC point)
 * @flags: %KEYMUX_CALL_FLAGS_NO_INTERACTION
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Agrees on a shared secret with a peer.
 */
/**
 * keymux_key_derive_finish:
 *
 * Returns: (transfer full): the raw shared secret
 */
/**
 * keymux_key_derive_sync:
 * @algorithm: "ecdh" or "x25519"
 * @data: the peer's public key
 * @flags: #KeymuxCallFlags
 * @cancellable: (nullable): a #GCancellable
 *
 * Returns: (transfer full): the raw shared secret
 */
KEYMUX_BYTES_OP(derive, "Derive")
