/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a kind of key storage (softkey, card, tpm)
 *
 * The core knows backends only through this class.  Devices come and go on
 * the main thread; a backend that learns of a hot-plug on a thread of its
 * own reports it with kmx_backend_device_present() or
 * kmx_backend_device_absent(), which hand it over to the main thread.
 *
 * Registered devices are the core's business too: their description and
 * their keys' public facts are cached (kmx-device-cache.c), restored at
 * start as registered but absent, replaced by the backend's object when
 * the device appears, kept listed when it goes away again, and the cache
 * follows every change of label or key list.
 */
#include "config.h"

#include "kmx-backend.h"
#include "kmx-device-cache.h"
#include "kmx-error.h"
#include "kmx-key.h"

typedef struct {
	char *name;
	KmxContext *context;
	GPtrArray *devices;
	GMainContext *main_context;
	gboolean started;
} KmxBackendPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE(KmxBackend, kmx_backend, G_TYPE_OBJECT)
#define GET_PRIVATE(o) ((KmxBackendPrivate *)kmx_backend_get_instance_private(o))

enum { PROP_0, PROP_NAME, PROP_CONTEXT, N_PROPS };
static GParamSpec *props[N_PROPS];

enum { SIGNAL_DEVICE_ADDED, SIGNAL_DEVICE_REMOVED, SIGNAL_DEVICE_REPLACED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void kmx_backend_follow(KmxBackend *self, KmxDevice *device);
static void kmx_backend_unfollow(KmxBackend *self, KmxDevice *device);

static void
kmx_backend_finalize(GObject *object)
{
	KmxBackend *self = KMX_BACKEND(object);
	KmxBackendPrivate *priv = GET_PRIVATE(self);

	for (guint i = 0; i < priv->devices->len; i++)
		kmx_backend_unfollow(self, g_ptr_array_index(priv->devices, i));
	g_free(priv->name);
	g_clear_object(&priv->context);
	g_ptr_array_unref(priv->devices);
	g_main_context_unref(priv->main_context);
	G_OBJECT_CLASS(kmx_backend_parent_class)->finalize(object);
}

static void
kmx_backend_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	KmxBackendPrivate *priv = GET_PRIVATE(KMX_BACKEND(object));

	switch (prop_id) {
	case PROP_NAME:
		g_value_set_string(value, priv->name);
		break;
	case PROP_CONTEXT:
		g_value_set_object(value, priv->context);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_backend_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
	KmxBackendPrivate *priv = GET_PRIVATE(KMX_BACKEND(object));

	switch (prop_id) {
	case PROP_NAME:
		priv->name = g_value_dup_string(value);
		break;
	case PROP_CONTEXT:
		priv->context = g_value_dup_object(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_backend_class_init(KmxBackendClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags co = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

	object_class->finalize = kmx_backend_finalize;
	object_class->get_property = kmx_backend_get_property;
	object_class->set_property = kmx_backend_set_property;

	props[PROP_NAME] = g_param_spec_string("name", NULL, NULL, NULL, co);
	props[PROP_CONTEXT] = g_param_spec_object("context", NULL, NULL, KMX_TYPE_CONTEXT, co);
	g_object_class_install_properties(object_class, N_PROPS, props);

	signals[SIGNAL_DEVICE_ADDED] = g_signal_new("device-added",
						    G_TYPE_FROM_CLASS(klass),
						    G_SIGNAL_RUN_LAST,
						    0,
						    NULL,
						    NULL,
						    NULL,
						    G_TYPE_NONE,
						    1,
						    KMX_TYPE_DEVICE);
	signals[SIGNAL_DEVICE_REMOVED] = g_signal_new("device-removed",
						      G_TYPE_FROM_CLASS(klass),
						      G_SIGNAL_RUN_LAST,
						      0,
						      NULL,
						      NULL,
						      NULL,
						      G_TYPE_NONE,
						      1,
						      KMX_TYPE_DEVICE);
	/**
	 * KmxBackend::device-replaced:
	 * @old: the object that stood for the device
	 * @device: the one that stands for it from now on, with the same id
	 *
	 * A registered device came back: the backend's fresh object takes the
	 * place of the cached or stale one.
	 */
	signals[SIGNAL_DEVICE_REPLACED] = g_signal_new("device-replaced",
						       G_TYPE_FROM_CLASS(klass),
						       G_SIGNAL_RUN_LAST,
						       0,
						       NULL,
						       NULL,
						       NULL,
						       G_TYPE_NONE,
						       2,
						       KMX_TYPE_DEVICE,
						       KMX_TYPE_DEVICE);
}

static void
kmx_backend_init(KmxBackend *self)
{
	KmxBackendPrivate *priv = GET_PRIVATE(self);
	priv->devices = g_ptr_array_new_with_free_func(g_object_unref);
	priv->main_context = g_main_context_ref_thread_default();
}

const char *
kmx_backend_get_name(KmxBackend *self)
{
	g_return_val_if_fail(KMX_IS_BACKEND(self), NULL);
	return GET_PRIVATE(self)->name;
}

KmxContext *
kmx_backend_get_context(KmxBackend *self)
{
	g_return_val_if_fail(KMX_IS_BACKEND(self), NULL);
	return GET_PRIVATE(self)->context;
}

/**
 * kmx_backend_get_state_dir:
 *
 * Returns: (transfer full): the backend's own directory in the data dir
 */
char *
kmx_backend_get_state_dir(KmxBackend *self)
{
	KmxBackendPrivate *priv;

	g_return_val_if_fail(KMX_IS_BACKEND(self), NULL);
	priv = GET_PRIVATE(self);
	return kmx_context_get_backend_dir(priv->context, priv->name);
}

/* ---- the registration cache ---------------------------------------------- */

static void
kmx_backend_save_cache(KmxBackend *self, KmxDevice *device)
{
	g_autofree char *dir = NULL;
	g_autoptr(GError) error = NULL;

	if (!kmx_device_is_registered(device) || kmx_device_is_persistent(device))
		return;
	dir = kmx_backend_get_state_dir(self);
	if (!kmx_device_cache_save(dir, device, &error))
		g_warning("cannot update the registration of %s: %s",
			  kmx_device_get_id(device),
			  error->message);
}

static void
kmx_backend_key_label_cb(KmxKey *key, GParamSpec *pspec, KmxBackend *self)
{
	KmxDevice *device = kmx_key_get_device(key);
	if (device != NULL)
		kmx_backend_save_cache(self, device);
}

static void
kmx_backend_follow_keys(KmxBackend *self, KmxDevice *device)
{
	GPtrArray *keys = kmx_device_get_keys(device);

	for (guint i = 0; i < keys->len; i++) {
		KmxKey *key = g_ptr_array_index(keys, i);
		g_signal_handlers_disconnect_by_func(key, kmx_backend_key_label_cb, self);
		g_signal_connect(key, "notify::label", G_CALLBACK(kmx_backend_key_label_cb), self);
	}
}

static void
kmx_backend_device_changed_cb(KmxDevice *device, KmxBackend *self)
{
	kmx_backend_follow_keys(self, device);
	kmx_backend_save_cache(self, device);
}

static void
kmx_backend_device_label_cb(KmxDevice *device, GParamSpec *pspec, KmxBackend *self)
{
	kmx_backend_save_cache(self, device);
}

/* keep the cache in step with the device while it is ours; a persistent
 * device (a soft-key store of 10,000 keys) has no cache: nothing to follow,
 * and nothing to walk on every key added */
static void
kmx_backend_follow(KmxBackend *self, KmxDevice *device)
{
	if (kmx_device_is_persistent(device))
		return;
	g_signal_connect(device, "keys-changed", G_CALLBACK(kmx_backend_device_changed_cb), self);
	g_signal_connect(device, "notify::label", G_CALLBACK(kmx_backend_device_label_cb), self);
	kmx_backend_follow_keys(self, device);
}

static void
kmx_backend_unfollow(KmxBackend *self, KmxDevice *device)
{
	GPtrArray *keys = kmx_device_get_keys(device);

	if (kmx_device_is_persistent(device))
		return;
	g_signal_handlers_disconnect_by_data(device, self);
	for (guint i = 0; i < keys->len; i++)
		g_signal_handlers_disconnect_by_data(g_ptr_array_index(keys, i), self);
}

/**
 * kmx_backend_register_device:
 *
 * Caches @device's description and keys, so that they stay listed while it
 * is absent; main thread.
 */
gboolean
kmx_backend_register_device(KmxBackend *self, KmxDevice *device, GError **error)
{
	g_autofree char *dir = NULL;

	g_return_val_if_fail(KMX_IS_BACKEND(self), FALSE);
	g_return_val_if_fail(KMX_IS_DEVICE(device), FALSE);
	if (kmx_device_is_persistent(device) || kmx_device_is_registered(device))
		return TRUE;
	dir = kmx_backend_get_state_dir(self);
	kmx_device_change_flags(device, KMX_DEVICE_FLAG_REGISTERED, 0);
	if (!kmx_device_cache_save(dir, device, error)) {
		kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_REGISTERED);
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_backend_unregister_device:
 *
 * Forgets the cached description; an absent device goes away; main thread.
 */
gboolean
kmx_backend_unregister_device(KmxBackend *self, KmxDevice *device, GError **error)
{
	g_autofree char *dir = NULL;

	g_return_val_if_fail(KMX_IS_BACKEND(self), FALSE);
	g_return_val_if_fail(KMX_IS_DEVICE(device), FALSE);
	if (kmx_device_is_persistent(device)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "device %s is kept by its backend and is always registered; "
			    "delete its keys instead",
			    kmx_device_get_id(device));
		return FALSE;
	}
	dir = kmx_backend_get_state_dir(self);
	if (!kmx_device_cache_remove(dir, kmx_device_get_id(device), error))
		return FALSE;
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_REGISTERED);
	if (!kmx_device_is_available(device))
		kmx_backend_remove_device(self, device);
	return TRUE;
}

/* ---- devices ------------------------------------------------------------- */

gboolean
kmx_backend_start(KmxBackend *self, GError **error)
{
	KmxBackendClass *klass;
	KmxBackendPrivate *priv;
	g_autofree char *dir = NULL;
	g_autoptr(GPtrArray) registered = NULL;

	g_return_val_if_fail(KMX_IS_BACKEND(self), FALSE);
	klass = KMX_BACKEND_GET_CLASS(self);
	priv = GET_PRIVATE(self);
	if (priv->started)
		return TRUE;
	dir = kmx_backend_get_state_dir(self);
	registered = kmx_device_cache_load(dir, priv->name);
	for (guint i = 0; i < registered->len; i++)
		kmx_backend_add_device(self, g_ptr_array_index(registered, i));
	if (klass->start != NULL && !klass->start(self, error)) {
		while (priv->devices->len > 0)
			kmx_backend_remove_device(self, g_ptr_array_index(priv->devices, 0));
		return FALSE;
	}
	priv->started = TRUE;
	return TRUE;
}

void
kmx_backend_stop(KmxBackend *self)
{
	KmxBackendClass *klass;
	KmxBackendPrivate *priv;

	g_return_if_fail(KMX_IS_BACKEND(self));
	klass = KMX_BACKEND_GET_CLASS(self);
	priv = GET_PRIVATE(self);
	if (!priv->started)
		return;
	if (klass->stop != NULL)
		klass->stop(self);
	while (priv->devices->len > 0)
		kmx_backend_remove_device(self, g_ptr_array_index(priv->devices, 0));
	priv->started = FALSE;
}

/**
 * kmx_backend_get_devices:
 *
 * Returns: (transfer none) (element-type KmxDevice): the backend's devices
 */
GPtrArray *
kmx_backend_get_devices(KmxBackend *self)
{
	g_return_val_if_fail(KMX_IS_BACKEND(self), NULL);
	return GET_PRIVATE(self)->devices;
}

/**
 * kmx_backend_find_device:
 *
 * Returns: (transfer none) (nullable): the device with this id; main thread
 */
KmxDevice *
kmx_backend_find_device(KmxBackend *self, const char *device_id)
{
	GPtrArray *devices;

	g_return_val_if_fail(KMX_IS_BACKEND(self), NULL);
	g_return_val_if_fail(device_id != NULL, NULL);
	devices = GET_PRIVATE(self)->devices;
	for (guint i = 0; i < devices->len; i++) {
		KmxDevice *device = g_ptr_array_index(devices, i);
		if (g_strcmp0(kmx_device_get_id(device), device_id) == 0)
			return device;
	}
	return NULL;
}

/**
 * kmx_backend_add_device:
 *
 * A device is present: adds it, or replaces the object that stood for a
 * device with the same id (a registered device that came back); main
 * thread.  A device whose worker thread cannot start is not added.
 */
void
kmx_backend_add_device(KmxBackend *self, KmxDevice *device)
{
	KmxBackendPrivate *priv;
	g_autoptr(GError) error = NULL;
	KmxDevice *old;
	guint index;

	g_return_if_fail(KMX_IS_BACKEND(self));
	g_return_if_fail(KMX_IS_DEVICE(device));
	g_return_if_fail(kmx_core_is_main_thread());
	priv = GET_PRIVATE(self);
	kmx_device_flush_state(device);
	old = kmx_backend_find_device(self, kmx_device_get_id(device));
	if (old == device) {
		kmx_device_change_flags(device, KMX_DEVICE_FLAG_AVAILABLE, 0);
		return;
	}
	if (!kmx_device_start_executor(device, &error)) {
		g_warning("cannot use device %s: %s", kmx_device_get_id(device), error->message);
		return;
	}
	if (old == NULL) {
		g_ptr_array_add(priv->devices, g_object_ref(device));
		kmx_backend_follow(self, device);
		g_signal_emit(self, signals[SIGNAL_DEVICE_ADDED], 0, device);
		return;
	}
	/* it came back: the fresh object keeps its registration */
	g_object_ref(old);
	g_ptr_array_find(priv->devices, old, &index);
	priv->devices->pdata[index] = g_object_ref(device);
	kmx_backend_unfollow(self, old);
	if (kmx_device_is_registered(old))
		kmx_device_change_flags(device, KMX_DEVICE_FLAG_REGISTERED, 0);
	kmx_device_forget_secret(old);
	kmx_device_change_flags(old, 0, KMX_DEVICE_FLAG_AVAILABLE);
	kmx_backend_follow(self, device);
	g_signal_emit(self, signals[SIGNAL_DEVICE_REPLACED], 0, old, device);
	kmx_backend_save_cache(self, device);
	g_object_unref(old); /* the array's reference */
	g_object_unref(old);
}

/**
 * kmx_backend_remove_device:
 *
 * Removes a device; main thread.
 */
void
kmx_backend_remove_device(KmxBackend *self, KmxDevice *device)
{
	KmxBackendPrivate *priv;
	guint index;

	g_return_if_fail(KMX_IS_BACKEND(self));
	g_return_if_fail(KMX_IS_DEVICE(device));
	priv = GET_PRIVATE(self);
	if (!g_ptr_array_find(priv->devices, device, &index))
		return;
	kmx_backend_unfollow(self, device);
	/* our reference keeps it alive through the signal */
	device = g_ptr_array_steal_index(priv->devices, index);
	g_signal_emit(self, signals[SIGNAL_DEVICE_REMOVED], 0, device);
	g_object_unref(device);
}

/* a device went away: a registered one stays listed, locked and absent */
static void
kmx_backend_apply_absent(KmxBackend *self, const char *device_id)
{
	KmxDevice *device = kmx_backend_find_device(self, device_id);

	if (device == NULL)
		return;
	kmx_device_flush_state(device);
	kmx_device_forget_secret(device);
	if (!kmx_device_is_registered(device)) {
		kmx_backend_remove_device(self, device);
		return;
	}
	kmx_device_change_flags(device,
				kmx_device_has_secret(device) ? KMX_DEVICE_FLAG_LOCKED : 0,
				KMX_DEVICE_FLAG_AVAILABLE);
}

typedef struct {
	KmxBackend *backend;
	KmxDevice *device; /* present, or NULL */
	char *device_id;   /* absent */
} KmxHotplug;

static gboolean
kmx_backend_hotplug_cb(gpointer user_data)
{
	KmxHotplug *h = user_data;

	if (GET_PRIVATE(h->backend)->started) {
		if (h->device != NULL)
			kmx_backend_add_device(h->backend, h->device);
		else
			kmx_backend_apply_absent(h->backend, h->device_id);
	}
	g_clear_object(&h->device);
	g_free(h->device_id);
	g_object_unref(h->backend);
	g_free(h);
	return G_SOURCE_REMOVE;
}

static void
kmx_backend_hotplug(KmxBackend *self, KmxHotplug *h)
{
	GSource *source = g_idle_source_new();

	h->backend = g_object_ref(self);
	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source, kmx_backend_hotplug_cb, h, NULL);
	g_source_attach(source, GET_PRIVATE(self)->main_context);
	g_source_unref(source);
}

/**
 * kmx_backend_device_present:
 * @device: the backend's object for a device that is here now, with its
 *   keys and its state set
 *
 * Reports a device that appeared (or came back); any thread.  The core
 * adds it on the main thread, in place of a registered device's cached
 * entry or an older object with the same id.
 */
void
kmx_backend_device_present(KmxBackend *self, KmxDevice *device)
{
	KmxHotplug *h;

	g_return_if_fail(KMX_IS_BACKEND(self));
	g_return_if_fail(KMX_IS_DEVICE(device));
	h = g_new0(KmxHotplug, 1);
	h->device = g_object_ref(device);
	kmx_backend_hotplug(self, h);
}

/**
 * kmx_backend_device_absent:
 *
 * Reports that a device went away; any thread.  A registered device stays
 * listed (locked, not available); any other one is removed.
 */
void
kmx_backend_device_absent(KmxBackend *self, const char *device_id)
{
	KmxHotplug *h;

	g_return_if_fail(KMX_IS_BACKEND(self));
	g_return_if_fail(device_id != NULL);
	h = g_new0(KmxHotplug, 1);
	h->device_id = g_strdup(device_id);
	kmx_backend_hotplug(self, h);
}
