/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: something that holds keys (a soft-key store, a card, the TPM)
 *
 * Threading: the main thread owns the device's state and its key list.
 * Backend work runs on the device's executor and reports what changed
 * (flags, retry counters, label, details, keys gone) with the setters, from any
 * thread: off the main thread a change is queued, and the main thread
 * applies the queue, in order, either from an idle callback or, before a
 * request's reply, from kmx_device_flush_state().  So "notify" (and
 * PropertiesChanged on the bus) always comes from the main thread, and a
 * client that receives a reply already sees the state that reply implies.
 */
#include "config.h"

#include "kmx-device.h"
#include "kmx-error.h"
#include "kmx-key-table.h"
#include "kmx-key.h"

typedef enum {
	KMX_STATE_LABEL = 1 << 0,
	KMX_STATE_FLAGS = 1 << 1,
	KMX_STATE_PIN_RETRIES = 1 << 2,
	KMX_STATE_ADMIN_RETRIES = 1 << 3,
	KMX_STATE_DETAILS = 1 << 4,
	KMX_STATE_KEYS_REMOVED = 1 << 5,
} KmxStateField;

typedef struct {
	guint fields; /* KmxStateField */
	char *label;
	KmxDeviceFlags flags_set;
	KmxDeviceFlags flags_clear;
	int pin_retries;
	int admin_retries;
	GVariant *details;
	GPtrArray *keys_removed; /* key ids */
} KmxPendingState;

typedef struct {
	char *id;
	char *backend_name;
	/* applied state: main thread (flags also read atomically elsewhere) */
	char *label;
	gint flags;
	int pin_retries;
	int admin_retries;
	GVariant *details;
	KmxSecret *kept_secret;
	/* changes reported off the main thread */
	GMutex mutex;
	KmxPendingState pending;
	gboolean flush_scheduled;
	GMainContext *main_context;

	GPtrArray *keys;
	KmxKeyTable *keys_by_id; /* borrowed from keys */
	KmxExecutor *executor;
	gint64 last_used; /* monotonic µs, atomic */
	KmxDeviceAnchor *anchor;
} KmxDevicePrivate;

/* what a device's keys hold to find it: one weak reference for all of
 * them, not one each (a weak reference is a list node on the device: 32
 * bytes a key) */
struct _KmxDeviceAnchor {
	gatomicrefcount ref_count;
	GWeakRef device;
};

G_DEFINE_TYPE_WITH_PRIVATE(KmxDevice, kmx_device, G_TYPE_OBJECT)
#define GET_PRIVATE(o) ((KmxDevicePrivate *)kmx_device_get_instance_private(o))

enum {
	PROP_0,
	PROP_ID,
	PROP_BACKEND,
	PROP_LABEL,
	PROP_FLAGS,
	PROP_PIN_RETRIES,
	PROP_ADMIN_RETRIES,
	PROP_DETAILS,
	N_PROPS
};
static GParamSpec *props[N_PROPS];

enum { SIGNAL_KEYS_CHANGED, SIGNAL_KEY_LABEL_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
kmx_pending_state_clear(KmxPendingState *p)
{
	g_clear_pointer(&p->label, g_free);
	g_clear_pointer(&p->details, g_variant_unref);
	g_clear_pointer(&p->keys_removed, g_ptr_array_unref);
	p->fields = 0;
	p->flags_set = 0;
	p->flags_clear = 0;
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
	g_clear_pointer(&priv->kept_secret, kmx_secret_unref);
	kmx_pending_state_clear(&priv->pending);
	kmx_key_table_free(priv->keys_by_id);
	g_ptr_array_unref(priv->keys);
	g_main_context_unref(priv->main_context);
	if (priv->executor != NULL && kmx_executor_get_kind(priv->executor) == KMX_EXECUTOR_SERIAL)
		kmx_executor_unref(priv->executor);
	g_mutex_clear(&priv->mutex);
	kmx_device_anchor_unref(priv->anchor);
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
		g_value_set_int(value, priv->pin_retries);
		break;
	case PROP_ADMIN_RETRIES:
		g_value_set_int(value, priv->admin_retries);
		break;
	case PROP_DETAILS:
		g_value_set_variant(value, priv->details);
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
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_device_class_init(KmxDeviceClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;
	GParamFlags construct = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

	object_class->finalize = kmx_device_finalize;
	object_class->get_property = kmx_device_get_property;
	object_class->set_property = kmx_device_set_property;
	klass->executor_kind = KMX_EXECUTOR_SERIAL;

	props[PROP_ID] = g_param_spec_string("id", NULL, NULL, NULL, construct);
	props[PROP_BACKEND] = g_param_spec_string("backend", NULL, NULL, NULL, construct);
	props[PROP_LABEL] = g_param_spec_string("label",
						NULL,
						NULL,
						NULL,
						G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
						    G_PARAM_EXPLICIT_NOTIFY);
	props[PROP_FLAGS] = g_param_spec_uint("flags", NULL, NULL, 0, G_MAXUINT, 0, ro);
	props[PROP_PIN_RETRIES] = g_param_spec_int("pin-retries", NULL, NULL, -1, G_MAXINT, -1, ro);
	props[PROP_ADMIN_RETRIES] =
	    g_param_spec_int("admin-retries", NULL, NULL, -1, G_MAXINT, -1, ro);
	props[PROP_DETAILS] =
	    g_param_spec_variant("details", NULL, NULL, G_VARIANT_TYPE_VARDICT, NULL, ro);
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

	/**
	 * KmxDevice::key-label-changed:
	 * @key: the key whose label changed
	 *
	 * Emitted on the main thread after a key of the device got a new
	 * label: one handler on the device follows every key's label, instead
	 * of a notify::label handler on each of 10,000 keys.
	 */
	signals[SIGNAL_KEY_LABEL_CHANGED] = g_signal_new("key-label-changed",
							 G_TYPE_FROM_CLASS(klass),
							 G_SIGNAL_RUN_LAST,
							 0,
							 NULL,
							 NULL,
							 NULL,
							 G_TYPE_NONE,
							 1,
							 KMX_TYPE_KEY);
}

/**
 * kmx_device_report_key_label_changed:
 *
 * @key's label changed (kmx_key_set_label()); main thread.
 */
void
kmx_device_report_key_label_changed(KmxDevice *self, KmxKey *key)
{
	g_return_if_fail(KMX_IS_DEVICE(self));
	g_signal_emit(self, signals[SIGNAL_KEY_LABEL_CHANGED], 0, key);
}

static void
kmx_device_init(KmxDevice *self)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	g_mutex_init(&priv->mutex);
	priv->pin_retries = -1;
	priv->admin_retries = -1;
	priv->flags = KMX_DEVICE_FLAG_AVAILABLE;
	priv->keys = g_ptr_array_new_with_free_func(g_object_unref);
	priv->keys_by_id = kmx_key_table_new(FALSE);
	priv->main_context = g_main_context_ref_thread_default();
	priv->details = g_variant_ref_sink(g_variant_new("a{sv}", NULL));
	priv->anchor = g_new0(KmxDeviceAnchor, 1);
	g_atomic_ref_count_init(&priv->anchor->ref_count);
	g_weak_ref_init(&priv->anchor->device, self);
}

/**
 * kmx_device_ref_anchor:
 *
 * What a key of the device keeps to find it again without keeping it
 * alive; any thread.
 *
 * Returns: (transfer full): the device's anchor
 */
KmxDeviceAnchor *
kmx_device_ref_anchor(KmxDevice *self)
{
	KmxDeviceAnchor *anchor;

	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	anchor = GET_PRIVATE(self)->anchor;
	g_atomic_ref_count_inc(&anchor->ref_count);
	return anchor;
}

/**
 * kmx_device_anchor_dup_device:
 *
 * Returns: (transfer full) (nullable): the device, or %NULL once it is gone
 */
KmxDevice *
kmx_device_anchor_dup_device(KmxDeviceAnchor *anchor)
{
	g_return_val_if_fail(anchor != NULL, NULL);
	return g_weak_ref_get(&anchor->device);
}

void
kmx_device_anchor_unref(KmxDeviceAnchor *anchor)
{
	if (anchor == NULL || !g_atomic_ref_count_dec(&anchor->ref_count))
		return;
	g_weak_ref_clear(&anchor->device);
	g_free(anchor);
}

const char *
kmx_device_get_id(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	return GET_PRIVATE(self)->id;
}

const char *
kmx_device_get_backend_name(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	return GET_PRIVATE(self)->backend_name;
}

/* ---- state ------------------------------------------------------------- */

/* main thread: apply one change, notify if it changed anything */
static void
kmx_device_apply(KmxDevice *self, KmxPendingState *p)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	GObject *object = G_OBJECT(self);

	g_object_freeze_notify(object);
	if ((p->fields & KMX_STATE_LABEL) && g_strcmp0(priv->label, p->label) != 0) {
		g_free(priv->label);
		priv->label = g_steal_pointer(&p->label);
		g_object_notify_by_pspec(object, props[PROP_LABEL]);
	}
	if (p->fields & KMX_STATE_FLAGS) {
		gint old = g_atomic_int_get(&priv->flags);
		gint new = (old | (gint)p->flags_set) & ~(gint)p->flags_clear;
		if (new != old) {
			g_atomic_int_set(&priv->flags, new);
			/* a secret is kept only while the device is unlocked */
			if (new &KMX_DEVICE_FLAG_LOCKED)
				g_clear_pointer(&priv->kept_secret, kmx_secret_unref);
			g_object_notify_by_pspec(object, props[PROP_FLAGS]);
		}
	}
	if ((p->fields & KMX_STATE_PIN_RETRIES) && priv->pin_retries != p->pin_retries) {
		priv->pin_retries = p->pin_retries;
		g_object_notify_by_pspec(object, props[PROP_PIN_RETRIES]);
	}
	if ((p->fields & KMX_STATE_ADMIN_RETRIES) && priv->admin_retries != p->admin_retries) {
		priv->admin_retries = p->admin_retries;
		g_object_notify_by_pspec(object, props[PROP_ADMIN_RETRIES]);
	}
	if ((p->fields & KMX_STATE_DETAILS) && !g_variant_equal(priv->details, p->details)) {
		g_variant_unref(priv->details);
		priv->details = g_steal_pointer(&p->details);
		g_object_notify_by_pspec(object, props[PROP_DETAILS]);
	}
	g_object_thaw_notify(object);
	for (guint i = 0; (p->fields & KMX_STATE_KEYS_REMOVED) && i < p->keys_removed->len; i++) {
		KmxKey *key =
		    kmx_key_table_lookup(priv->keys_by_id, g_ptr_array_index(p->keys_removed, i));
		if (key != NULL)
			kmx_device_remove_key(self, key);
	}
	kmx_pending_state_clear(p);
}

/**
 * kmx_device_flush_state:
 *
 * Applies the changes reported from other threads; main thread.
 */
void
kmx_device_flush_state(KmxDevice *self)
{
	KmxDevicePrivate *priv;
	KmxPendingState p = {0};

	g_return_if_fail(KMX_IS_DEVICE(self));
	priv = GET_PRIVATE(self);
	g_mutex_lock(&priv->mutex);
	p = priv->pending;
	memset(&priv->pending, 0, sizeof(priv->pending));
	g_mutex_unlock(&priv->mutex);
	if (p.fields != 0)
		kmx_device_apply(self, &p);
}

/**
 * kmx_device_has_pending_state:
 *
 * Returns: whether a change reported off the main thread waits to be applied
 */
gboolean
kmx_device_has_pending_state(KmxDevice *self)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&priv->mutex);
	return priv->pending.fields != 0;
}

static gboolean
kmx_device_flush_cb(gpointer user_data)
{
	KmxDevice *self = user_data;
	KmxDevicePrivate *priv = GET_PRIVATE(self);

	g_mutex_lock(&priv->mutex);
	priv->flush_scheduled = FALSE;
	g_mutex_unlock(&priv->mutex);
	kmx_device_flush_state(self);
	return G_SOURCE_REMOVE;
}

/* records a change: applied now on the main thread, else queued for it */
static void
kmx_device_report(KmxDevice *self, KmxPendingState *change)
{
	KmxDevicePrivate *priv = GET_PRIVATE(self);
	KmxPendingState *p = &priv->pending;
	gboolean schedule;

	g_mutex_lock(&priv->mutex);
	if (change->fields & KMX_STATE_LABEL) {
		g_free(p->label);
		p->label = g_steal_pointer(&change->label);
	}
	if (change->fields & KMX_STATE_FLAGS) {
		p->flags_set = (p->flags_set | change->flags_set) & ~change->flags_clear;
		p->flags_clear = (p->flags_clear | change->flags_clear) & ~change->flags_set;
	}
	if (change->fields & KMX_STATE_PIN_RETRIES)
		p->pin_retries = change->pin_retries;
	if (change->fields & KMX_STATE_ADMIN_RETRIES)
		p->admin_retries = change->admin_retries;
	if (change->fields & KMX_STATE_DETAILS) {
		g_clear_pointer(&p->details, g_variant_unref);
		p->details = g_steal_pointer(&change->details);
	}
	if (change->fields & KMX_STATE_KEYS_REMOVED) {
		if (p->keys_removed == NULL)
			p->keys_removed = g_ptr_array_new_with_free_func(g_free);
		for (guint i = 0; i < change->keys_removed->len; i++)
			g_ptr_array_add(p->keys_removed,
					g_strdup(g_ptr_array_index(change->keys_removed, i)));
		g_clear_pointer(&change->keys_removed, g_ptr_array_unref);
	}
	p->fields |= change->fields;
	schedule = !priv->flush_scheduled && !kmx_core_is_main_thread();
	if (schedule)
		priv->flush_scheduled = TRUE;
	g_mutex_unlock(&priv->mutex);

	if (kmx_core_is_main_thread()) {
		kmx_device_flush_state(self);
	} else if (schedule) {
		GSource *source = g_idle_source_new();
		g_source_set_priority(source, G_PRIORITY_DEFAULT);
		g_source_set_callback(source,
				      kmx_device_flush_cb,
				      g_object_ref(self),
				      g_object_unref);
		g_source_attach(source, priv->main_context);
		g_source_unref(source);
	}
}

char *
kmx_device_dup_label(KmxDevice *self)
{
	KmxDevicePrivate *priv;

	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	priv = GET_PRIVATE(self);
	return g_strdup(priv->label != NULL ? priv->label : priv->id);
}

void
kmx_device_set_label(KmxDevice *self, const char *label)
{
	KmxPendingState change = {.fields = KMX_STATE_LABEL, .label = g_strdup(label)};

	g_return_if_fail(KMX_IS_DEVICE(self));
	kmx_device_report(self, &change);
}

KmxDeviceFlags
kmx_device_get_flags(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), KMX_DEVICE_FLAG_NONE);
	return (KmxDeviceFlags)g_atomic_int_get(&GET_PRIVATE(self)->flags);
}

/**
 * kmx_device_set_flags:
 *
 * Sets the flags; any thread (applied on the main thread).
 */
void
kmx_device_set_flags(KmxDevice *self, KmxDeviceFlags flags)
{
	kmx_device_change_flags(self, flags, ~flags & KMX_DEVICE_FLAGS_ALL);
}

/**
 * kmx_device_change_flags:
 *
 * Sets the flags in @set and clears those in @clear; any thread.
 */
void
kmx_device_change_flags(KmxDevice *self, KmxDeviceFlags set, KmxDeviceFlags clear)
{
	KmxPendingState change = {.fields = KMX_STATE_FLAGS,
				  .flags_set = set,
				  .flags_clear = clear};

	g_return_if_fail(KMX_IS_DEVICE(self));
	kmx_device_report(self, &change);
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
	g_return_val_if_fail(KMX_IS_DEVICE(self), -1);
	return GET_PRIVATE(self)->pin_retries;
}

/**
 * kmx_device_set_pin_retries:
 * @retries: tries left for the user secret, -1 if not applicable
 *
 * Any thread.
 */
void
kmx_device_set_pin_retries(KmxDevice *self, int retries)
{
	KmxPendingState change = {.fields = KMX_STATE_PIN_RETRIES, .pin_retries = retries};

	g_return_if_fail(KMX_IS_DEVICE(self));
	kmx_device_report(self, &change);
}

int
kmx_device_get_admin_retries(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), -1);
	return GET_PRIVATE(self)->admin_retries;
}

/**
 * kmx_device_set_admin_retries:
 * @retries: tries left for the admin secret, -1 if not applicable
 *
 * Any thread.
 */
void
kmx_device_set_admin_retries(KmxDevice *self, int retries)
{
	KmxPendingState change = {.fields = KMX_STATE_ADMIN_RETRIES, .admin_retries = retries};

	g_return_if_fail(KMX_IS_DEVICE(self));
	kmx_device_report(self, &change);
}

/**
 * kmx_device_dup_details:
 *
 * Returns: (transfer full): the Details dictionary (a{sv}); main thread
 */
GVariant *
kmx_device_dup_details(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	return g_variant_ref(GET_PRIVATE(self)->details);
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
	KmxPendingState change = {.fields = KMX_STATE_DETAILS};

	g_return_if_fail(KMX_IS_DEVICE(self));
	g_return_if_fail(details != NULL);
	g_return_if_fail(g_variant_is_of_type(details, G_VARIANT_TYPE_VARDICT));
	change.details = g_variant_ref_sink(details);
	kmx_device_report(self, &change);
}

/* ---- what kind of device ------------------------------------------------ */

gboolean
kmx_device_is_persistent(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	return KMX_DEVICE_GET_CLASS(self)->persistent;
}

/**
 * kmx_device_has_secret:
 *
 * Returns: whether the device can be locked at all
 */
gboolean
kmx_device_has_secret(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	return KMX_DEVICE_GET_CLASS(self)->unlock != NULL;
}

gboolean
kmx_device_needs_admin_secret(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	return KMX_DEVICE_GET_CLASS(self)->admin_secret;
}

gboolean
kmx_device_wants_secret_per_operation(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	return KMX_DEVICE_GET_CLASS(self)->secret_per_operation;
}

/**
 * kmx_device_keep_secret:
 *
 * Keeps the user secret that unlocked the device, for a device that wants
 * it for every operation; dropped when the device locks.  Main thread.
 */
void
kmx_device_keep_secret(KmxDevice *self, KmxSecret *secret)
{
	KmxDevicePrivate *priv;

	g_return_if_fail(KMX_IS_DEVICE(self));
	priv = GET_PRIVATE(self);
	g_clear_pointer(&priv->kept_secret, kmx_secret_unref);
	if (secret != NULL && KMX_DEVICE_GET_CLASS(self)->secret_per_operation)
		priv->kept_secret = kmx_secret_ref(secret);
}

/**
 * kmx_device_dup_kept_secret:
 *
 * Returns: (transfer full) (nullable): the kept user secret; main thread
 */
KmxSecret *
kmx_device_dup_kept_secret(KmxDevice *self)
{
	KmxDevicePrivate *priv;

	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	priv = GET_PRIVATE(self);
	return priv->kept_secret != NULL ? kmx_secret_ref(priv->kept_secret) : NULL;
}

/**
 * kmx_device_forget_secret:
 *
 * Drops the kept user secret; main thread.
 */
void
kmx_device_forget_secret(KmxDevice *self)
{
	g_return_if_fail(KMX_IS_DEVICE(self));
	g_clear_pointer(&GET_PRIVATE(self)->kept_secret, kmx_secret_unref);
}

/* ---- executor ------------------------------------------------------------ */

/**
 * kmx_device_start_executor:
 *
 * Gives the device its executor: its own thread for a serial device, the
 * shared pool otherwise.  Called by the core when the device is added.
 *
 * Returns: %FALSE if the device's thread cannot be started
 */
gboolean
kmx_device_start_executor(KmxDevice *self, GError **error)
{
	KmxDevicePrivate *priv;

	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	priv = GET_PRIVATE(self);
	if (priv->executor != NULL)
		return TRUE;
	if (KMX_DEVICE_GET_CLASS(self)->executor_kind == KMX_EXECUTOR_POOL) {
		priv->executor = kmx_executor_get_shared_pool();
		return TRUE;
	}
	priv->executor = kmx_executor_new(KMX_EXECUTOR_SERIAL, 1, error);
	if (priv->executor == NULL) {
		g_prefix_error(error, "device %s: ", priv->id);
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_device_get_executor:
 *
 * Returns: (transfer none): where this device's vfuncs run
 */
KmxExecutor *
kmx_device_get_executor(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	g_return_val_if_fail(GET_PRIVATE(self)->executor != NULL, NULL);
	return GET_PRIVATE(self)->executor;
}

/**
 * kmx_device_get_storage_executor:
 *
 * Returns: (transfer none): where key generation, imports and secret
 * changes run: the device's own thread for a serial device, the storage
 * pool for a pooled one, so that slow KDFs never queue ahead of signing
 * and locking
 */
KmxExecutor *
kmx_device_get_storage_executor(KmxDevice *self)
{
	KmxExecutor *executor = kmx_device_get_executor(self);

	if (executor != NULL && kmx_executor_get_kind(executor) == KMX_EXECUTOR_POOL)
		return kmx_executor_get_storage_pool();
	return executor;
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

gint64
kmx_device_get_last_used(KmxDevice *self)
{
	return __atomic_load_n(&GET_PRIVATE(self)->last_used, __ATOMIC_RELAXED);
}

/* ---- keys ------------------------------------------------------------------ */

/**
 * kmx_device_get_keys:
 *
 * Returns: (transfer none) (element-type KmxKey): the keys; main thread
 */
GPtrArray *
kmx_device_get_keys(KmxDevice *self)
{
	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
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
	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	g_return_val_if_fail(key_id != NULL, NULL);
	return kmx_key_table_lookup(GET_PRIVATE(self)->keys_by_id, key_id);
}

/**
 * kmx_device_add_key:
 *
 * Adds a key (ignored if one with its id is there); main thread.
 */
void
kmx_device_add_key(KmxDevice *self, KmxKey *key)
{
	KmxDevicePrivate *priv;
	const char *id;

	g_return_if_fail(KMX_IS_DEVICE(self));
	g_return_if_fail(KMX_IS_KEY(key));
	priv = GET_PRIVATE(self);
	id = kmx_key_get_id(key);
	if (kmx_key_table_contains(priv->keys_by_id, id))
		return;
	g_ptr_array_add(priv->keys, g_object_ref(key));
	kmx_key_table_insert(priv->keys_by_id, key);
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
	KmxDevicePrivate *priv;
	guint index;

	g_return_if_fail(KMX_IS_DEVICE(self));
	g_return_if_fail(KMX_IS_KEY(key));
	priv = GET_PRIVATE(self);
	if (!g_ptr_array_find(priv->keys, key, &index))
		return;
	kmx_key_table_remove(priv->keys_by_id, kmx_key_get_id(key));
	/* our reference keeps it alive through the signal */
	key = g_ptr_array_steal_index_fast(priv->keys, index);
	g_signal_emit(self, signals[SIGNAL_KEYS_CHANGED], 0);
	g_object_unref(key);
}

/**
 * kmx_device_report_key_removed:
 * @key_id: the id of a key that is gone from the device (a card slot that
 *   was given a new key)
 *
 * Any thread: the key leaves the list when the main thread applies the
 * device's changes, before the reply to the request that made them.
 */
void
kmx_device_report_key_removed(KmxDevice *self, const char *key_id)
{
	KmxPendingState change = {.fields = KMX_STATE_KEYS_REMOVED};

	g_return_if_fail(KMX_IS_DEVICE(self));
	g_return_if_fail(key_id != NULL);
	change.keys_removed = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(change.keys_removed, g_strdup(key_id));
	kmx_device_report(self, &change);
}

/* ---- vfunc wrappers ------------------------------------------------------- */

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
	KmxDeviceClass *klass;

	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->unlock == NULL)
		return TRUE; /* nothing to unlock */
	return klass->unlock(self, secret, cancellable, error);
}

gboolean
kmx_device_lock(KmxDevice *self, GCancellable *cancellable, GError **error)
{
	KmxDeviceClass *klass;

	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->lock == NULL)
		return TRUE;
	return klass->lock(self, cancellable, error);
}

gboolean
kmx_device_change_secret(KmxDevice *self,
			 KmxSecret *old_secret,
			 KmxSecret *new_secret,
			 GCancellable *cancellable,
			 GError **error)
{
	KmxDeviceClass *klass;

	g_return_val_if_fail(KMX_IS_DEVICE(self), FALSE);
	g_return_val_if_fail(old_secret != NULL && new_secret != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->change_secret == NULL)
		return kmx_device_not_supported(self, "change its secret", error);
	return klass->change_secret(self, old_secret, new_secret, cancellable, error);
}

KmxKey *
kmx_device_generate_key(KmxDevice *self,
			KmxKeyType type,
			const char *label,
			const KmxOptions *options,
			KmxSecret *admin_secret,
			GCancellable *cancellable,
			GError **error)
{
	KmxDeviceClass *klass;

	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	g_return_val_if_fail(options != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->generate_key == NULL) {
		kmx_device_not_supported(self, "generate keys", error);
		return NULL;
	}
	return klass->generate_key(self, type, label, options, admin_secret, cancellable, error);
}

GPtrArray *
kmx_device_import_key(KmxDevice *self,
		      GBytes *data,
		      KmxSecret *passphrase,
		      const char *label,
		      const KmxOptions *options,
		      KmxSecret *admin_secret,
		      GCancellable *cancellable,
		      GError **error)
{
	KmxDeviceClass *klass;

	g_return_val_if_fail(KMX_IS_DEVICE(self), NULL);
	g_return_val_if_fail(data != NULL, NULL);
	g_return_val_if_fail(options != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	klass = KMX_DEVICE_GET_CLASS(self);
	if (klass->import_key == NULL) {
		kmx_device_not_supported(self, "import keys", error);
		return NULL;
	}
	return klass
	    ->import_key(self, data, passphrase, label, options, admin_secret, cancellable, error);
}
