/* keymux: something that holds keys (a soft-key store, a card, the TPM)
 *
 * Threading: the key list belongs to the main thread.  Flags, PIN retries,
 * label and details may be set from the device's executor (an unlock, a
 * card pulled out); the change is stored at once, so a reply sent after the
 * work sees it, and "notify" is emitted on the main thread, where the D-Bus
 * layer turns it into PropertiesChanged.
 */
#include "config.h"

#include "kmx-device.h"
#include "kmx-error.h"
#include "kmx-key.h"

typedef struct {
	char *id;
	char *backend_name;
	GMutex mutex; /* label, details */
	char *label;
	GVariant *details;
	gint flags;
	gint pin_retries;
	GPtrArray *keys;
	GHashTable *keys_by_id; /* id -> KmxKey (borrowed from keys) */
	GMainContext *main_context;
	KmxExecutor *executor;
	gint64 last_used; /* monotonic µs, atomic */
} KmxDevicePrivate;

G_DEFINE_TYPE_WITH_PRIVATE(KmxDevice, kmx_device, G_TYPE_OBJECT)
#define GET_PRIVATE(o) ((KmxDevicePrivate *)kmx_device_get_instance_private(o))

enum {
	PROP_0,
	PROP_ID,
	PROP_BACKEND,
	PROP_LABEL,
	PROP_FLAGS,
	PROP_PIN_RETRIES,
	PROP_DETAILS,
	N_PROPS
};
static GParamSpec *props[N_PROPS];

enum { SIGNAL_KEYS_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

typedef struct {
	GWeakRef device;
	GParamSpec *pspec;
} KmxNotifyIdle;

static gboolean
kmx_device_notify_cb(gpointer user_data)
{
	KmxNotifyIdle *idle = user_data;
	g_autoptr(KmxDevice) self = g_weak_ref_get(&idle->device);

	if (self != NULL)
		g_object_notify_by_pspec(G_OBJECT(self), idle->pspec);
	g_weak_ref_clear(&idle->device);
	g_free(idle);
	return G_SOURCE_REMOVE;
}

/* emit "notify" on the main thread, whatever thread we are on */
static void
kmx_device_notify_main(KmxDevice *self, guint prop)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	KmxNotifyIdle *idle;
	GSource *source;

	if (g_main_context_is_owner(priv->main_context)) {
		g_object_notify_by_pspec(G_OBJECT(self), props[prop]);
		return;
	}
	idle = g_new0(KmxNotifyIdle, 1);
	g_weak_ref_init(&idle->device, self);
	idle->pspec = props[prop];
	/* not g_main_context_invoke(): it would run here when no thread
	 * happens to own the main context at this moment */
	source = g_idle_source_new();
	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source, kmx_device_notify_cb, idle, NULL);
	g_source_attach(source, priv->main_context);
	g_source_unref(source);
}

static void
kmx_device_finalize(GObject *object)
{
	KmxDevice *self = KMX_DEVICE(object);
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	g_free(priv->id);
	g_free(priv->backend_name);
	g_free(priv->label);
	g_clear_pointer(&priv->details, g_variant_unref);
	g_hash_table_unref(priv->keys_by_id);
	g_ptr_array_unref(priv->keys);
	g_main_context_unref(priv->main_context);
	if (priv->executor != NULL && kmx_executor_get_kind(priv->executor) == KMX_EXECUTOR_SERIAL)
		kmx_executor_unref(priv->executor);
	g_mutex_clear(&priv->mutex);
	G_OBJECT_CLASS(kmx_device_parent_class)->finalize(object);
}

static void
kmx_device_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	KmxDevice *self = KMX_DEVICE(object);
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	switch (prop_id) {
	case PROP_ID:
		g_value_set_string(value, priv->id);
		break;
	case PROP_BACKEND:
		g_value_set_string(value, priv->backend_name);
		break;
	case PROP_LABEL:
		g_value_take_string(value, kmx_device_dup_label(self));
		break;
	case PROP_FLAGS:
		g_value_set_uint(value, kmx_device_get_flags(self));
		break;
	case PROP_PIN_RETRIES:
		g_value_set_int(value, kmx_device_get_pin_retries(self));
		break;
	case PROP_DETAILS:
		g_value_take_variant(value, kmx_device_dup_details(self));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_device_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
	KmxDevice *self = KMX_DEVICE(object);
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	switch (prop_id) {
	case PROP_ID:
		priv->id = g_value_dup_string(value);
		break;
	case PROP_BACKEND:
		priv->backend_name = g_value_dup_string(value);
		break;
	case PROP_LABEL:
		kmx_device_set_label(self, g_value_get_string(value));
		break;
	case PROP_FLAGS:
		kmx_device_set_flags(self, g_value_get_uint(value));
		break;
	case PROP_PIN_RETRIES:
		kmx_device_set_pin_retries(self, g_value_get_int(value));
		break;
	case PROP_DETAILS:
		kmx_device_set_details(self, g_value_get_variant(value));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_device_class_init(KmxDeviceClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;

	object_class->finalize = kmx_device_finalize;
	object_class->get_property = kmx_device_get_property;
	object_class->set_property = kmx_device_set_property;
	klass->executor_kind = KMX_EXECUTOR_SERIAL;

	props[PROP_ID] = g_param_spec_string("id",
					     NULL,
					     NULL,
					     NULL,
					     G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
						 G_PARAM_STATIC_STRINGS);
	props[PROP_BACKEND] = g_param_spec_string("backend",
						  NULL,
						  NULL,
						  NULL,
						  G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
						      G_PARAM_STATIC_STRINGS);
	props[PROP_LABEL] = g_param_spec_string("label", NULL, NULL, NULL, rw);
	props[PROP_FLAGS] = g_param_spec_uint("flags", NULL, NULL, 0, G_MAXUINT, 0, rw);
	props[PROP_PIN_RETRIES] = g_param_spec_int("pin-retries", NULL, NULL, -1, G_MAXINT, -1, rw);
	props[PROP_DETAILS] =
	    g_param_spec_variant("details", NULL, NULL, G_VARIANT_TYPE_VARDICT, NULL, rw);
	g_object_class_install_properties(object_class, N_PROPS, props);

	/**
	 * KmxDevice::keys-changed:
	 *
	 * Emitted on the main thread when a key was added or removed.
	 */
	signals[SIGNAL_KEYS_CHANGED] = g_signal_new("keys-changed",
						    G_TYPE_FROM_CLASS(klass),
						    G_SIGNAL_RUN_LAST,
						    0,
						    NULL,
						    NULL,
						    NULL,
						    G_TYPE_NONE,
						    0);
}

static void
kmx_device_init(KmxDevice *self)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	g_mutex_init(&priv->mutex);
	priv->pin_retries = -1;
	priv->flags = KMX_DEVICE_FLAG_AVAILABLE;
	priv->keys = g_ptr_array_new_with_free_func(g_object_unref);
	priv->keys_by_id = g_hash_table_new(g_str_hash, g_str_equal);
	priv->main_context = g_main_context_ref_thread_default();
	priv->details = g_variant_ref_sink(g_variant_new("a{sv}", NULL));
}

const char *
kmx_device_get_id(KmxDevice *self)
{
	return GET_PRIVATE(self)->id;
}

const char *
kmx_device_get_backend_name(KmxDevice *self)
{
	return GET_PRIVATE(self)->backend_name;
}

char *
kmx_device_dup_label(KmxDevice *self)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&priv->mutex);
	return g_strdup(priv->label != NULL ? priv->label : priv->id);
}

void
kmx_device_set_label(KmxDevice *self, const char *label)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	gboolean changed;

	g_mutex_lock(&priv->mutex);
	changed = g_strcmp0(priv->label, label) != 0;
	if (changed) {
		g_free(priv->label);
		priv->label = g_strdup(label);
	}
	g_mutex_unlock(&priv->mutex);
	if (changed)
		kmx_device_notify_main(self, PROP_LABEL);
}

KmxDeviceFlags
kmx_device_get_flags(KmxDevice *self)
{
	return (KmxDeviceFlags)g_atomic_int_get(&GET_PRIVATE(self)->flags);
}

/**
 * kmx_device_set_flags:
 *
 * Sets the flags; any thread.
 */
void
kmx_device_set_flags(KmxDevice *self, KmxDeviceFlags flags)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	gint old = g_atomic_int_exchange(&priv->flags, (gint)flags);

	if (old != (gint)flags)
		kmx_device_notify_main(self, PROP_FLAGS);
}

/**
 * kmx_device_change_flags:
 *
 * Sets the flags in @set and clears those in @clear, atomically; any thread.
 */
void
kmx_device_change_flags(KmxDevice *self, KmxDeviceFlags set, KmxDeviceFlags clear)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	gint old, new;

	do {
		old = g_atomic_int_get(&priv->flags);
		new = (old | (gint)set) & ~(gint)clear;
	} while (!g_atomic_int_compare_and_exchange(&priv->flags, old, new));
	if (old != new)
		kmx_device_notify_main(self, PROP_FLAGS);
}

gboolean
kmx_device_is_locked(KmxDevice *self)
{
	return (kmx_device_get_flags(self) & KMX_DEVICE_FLAG_LOCKED) != 0;
}

gboolean
kmx_device_is_available(KmxDevice *self)
{
	return (kmx_device_get_flags(self) & KMX_DEVICE_FLAG_AVAILABLE) != 0;
}

gboolean
kmx_device_is_registered(KmxDevice *self)
{
	return (kmx_device_get_flags(self) & KMX_DEVICE_FLAG_REGISTERED) != 0;
}

int
kmx_device_get_pin_retries(KmxDevice *self)
{
	return g_atomic_int_get(&GET_PRIVATE(self)->pin_retries);
}

void
kmx_device_set_pin_retries(KmxDevice *self, int retries)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	if (g_atomic_int_exchange(&priv->pin_retries, retries) != retries)
		kmx_device_notify_main(self, PROP_PIN_RETRIES);
}

/**
 * kmx_device_dup_details:
 *
 * Returns: (transfer full): the Details dictionary (a{sv})
 */
GVariant *
kmx_device_dup_details(KmxDevice *self)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&priv->mutex);
	return g_variant_ref(priv->details);
}

/**
 * kmx_device_set_details:
 * @details: an a{sv}; a floating reference is sunk
 *
 * Any thread.
 */
void
kmx_device_set_details(KmxDevice *self, GVariant *details)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	g_autoptr(GVariant) old = NULL;
	gboolean changed;

	g_return_if_fail(details != NULL);
	g_return_if_fail(g_variant_is_of_type(details, G_VARIANT_TYPE_VARDICT));
	g_variant_ref_sink(details);
	g_mutex_lock(&priv->mutex);
	changed = !g_variant_equal(priv->details, details);
	old = priv->details;
	priv->details = details;
	g_mutex_unlock(&priv->mutex);
	if (changed)
		kmx_device_notify_main(self, PROP_DETAILS);
}

/**
 * kmx_device_get_executor:
 *
 * Returns: (transfer none): where this device's vfuncs run
 */
KmxExecutor *
kmx_device_get_executor(KmxDevice *self)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	if (priv->executor == NULL) {
		if (KMX_DEVICE_GET_CLASS(self)->executor_kind == KMX_EXECUTOR_POOL)
			priv->executor = kmx_executor_get_shared_pool();
		else
			priv->executor = kmx_executor_new(KMX_EXECUTOR_SERIAL, 1);
	}
	return priv->executor;
}

/**
 * kmx_device_touch:
 *
 * Records that the device was used now; any thread.  The idle lock runs
 * from the last use.
 */
void
kmx_device_touch(KmxDevice *self)
{
	__atomic_store_n(&GET_PRIVATE(self)->last_used, g_get_monotonic_time(), __ATOMIC_RELAXED);
}

/**
 * kmx_device_get_last_used:
 *
 * Returns: when the device was last used (g_get_monotonic_time()), or 0
 */
gint64
kmx_device_get_last_used(KmxDevice *self)
{
	return __atomic_load_n(&GET_PRIVATE(self)->last_used, __ATOMIC_RELAXED);
}

/**
 * kmx_device_get_keys:
 *
 * Returns: (transfer none) (element-type KmxKey): the keys; main thread
 */
GPtrArray *
kmx_device_get_keys(KmxDevice *self)
{
	return GET_PRIVATE(self)->keys;
}

/**
 * kmx_device_find_key:
 *
 * Returns: (transfer none) (nullable): the key with this full id; main thread
 */
KmxKey *
kmx_device_find_key(KmxDevice *self, const char *key_id)
{
	return g_hash_table_lookup(GET_PRIVATE(self)->keys_by_id, key_id);
}

/**
 * kmx_device_add_key:
 *
 * Adds a key (ignored if one with its id is there); main thread.
 */
void
kmx_device_add_key(KmxDevice *self, KmxKey *key)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	const char *id = kmx_key_get_id(key);

	if (g_hash_table_contains(priv->keys_by_id, id))
		return;
	g_ptr_array_add(priv->keys, g_object_ref(key));
	g_hash_table_insert(priv->keys_by_id, (gpointer)id, key);
	g_signal_emit(self, signals[SIGNAL_KEYS_CHANGED], 0);
}

/**
 * kmx_device_remove_key:
 *
 * Removes a key; main thread.
 */
void
kmx_device_remove_key(KmxDevice *self, KmxKey *key)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	guint index;

	if (!g_ptr_array_find(priv->keys, key, &index))
		return;
	g_hash_table_remove(priv->keys_by_id, kmx_key_get_id(key));
	/* our reference keeps it alive through the signal */
	key = g_ptr_array_steal_index_fast(priv->keys, index);
	g_signal_emit(self, signals[SIGNAL_KEYS_CHANGED], 0);
	g_object_unref(key);
}

static gboolean
kmx_device_not_supported(KmxDevice *self, const char *what, GError **error)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "device %s cannot %s",
		    kmx_device_get_id(self),
		    what);
	return FALSE;
}

gboolean
kmx_device_unlock(KmxDevice *self, KmxSecret *secret, GCancellable *cancellable, GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->unlock == NULL) {
		kmx_device_change_flags(self, 0, KMX_DEVICE_FLAG_LOCKED);
		return TRUE;
	}
	return klass->unlock(self, secret, cancellable, error);
}

gboolean
kmx_device_lock(KmxDevice *self, GCancellable *cancellable, GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->lock == NULL)
		return TRUE;
	return klass->lock(self, cancellable, error);
}

gboolean
kmx_device_register(KmxDevice *self, GCancellable *cancellable, GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->register_device == NULL)
		return kmx_device_not_supported(self, "be registered", error);
	return klass->register_device(self, cancellable, error);
}

gboolean
kmx_device_unregister(KmxDevice *self, GCancellable *cancellable, GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->unregister_device == NULL)
		return kmx_device_not_supported(self, "be unregistered", error);
	return klass->unregister_device(self, cancellable, error);
}

gboolean
kmx_device_change_secret(KmxDevice *self,
			 KmxSecret *old_secret,
			 KmxSecret *new_secret,
			 GCancellable *cancellable,
			 GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->change_secret == NULL)
		return kmx_device_not_supported(self, "change its secret", error);
	return klass->change_secret(self, old_secret, new_secret, cancellable, error);
}

KmxKey *
kmx_device_generate_key(KmxDevice *self,
			KmxKeyType type,
			const char *label,
			GVariant *options,
			GCancellable *cancellable,
			GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->generate_key == NULL) {
		kmx_device_not_supported(self, "generate keys", error);
		return NULL;
	}
	return klass->generate_key(self, type, label, options, cancellable, error);
}

GPtrArray *
kmx_device_import_key(KmxDevice *self,
		      GBytes *data,
		      KmxSecret *passphrase,
		      const char *label,
		      GVariant *options,
		      GCancellable *cancellable,
		      GError **error)
{
	KmxDeviceClass *klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->import_key == NULL) {
		kmx_device_not_supported(self, "import keys", error);
		return NULL;
	}
	return klass->import_key(self, data, passphrase, label, options, cancellable, error);
}
