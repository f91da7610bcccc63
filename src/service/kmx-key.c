/* keymux: an asymmetric private key on a device
 *
 * The public facts (id, type, usage, SPKI) are fixed at construction; the
 * label may change.  The id is the lowercase hex SHA-256 of the DER
 * SubjectPublicKeyInfo, so one key has one id on every backend.
 */
#include "config.h"

#include "kmx-error.h"
#include "kmx-key.h"

typedef struct {
	char *id;
	GWeakRef device;
	GMutex mutex; /* label */
	char *label;
	guint key_type;
	guint usage;
	GBytes *public_key;
	gboolean exportable;
	GMainContext *main_context;
} KmxKeyPrivate;

G_DEFINE_TYPE_WITH_PRIVATE(KmxKey, kmx_key, G_TYPE_OBJECT)
#define GET_PRIVATE(o) ((KmxKeyPrivate *)kmx_key_get_instance_private(o))

enum {
	PROP_0,
	PROP_ID,
	PROP_DEVICE,
	PROP_LABEL,
	PROP_KEY_TYPE,
	PROP_USAGE,
	PROP_PUBLIC_KEY,
	PROP_EXPORTABLE,
	N_PROPS
};
static GParamSpec *props[N_PROPS];

/**
 * kmx_key_compute_id:
 * @spki: a DER SubjectPublicKeyInfo
 *
 * Returns: (transfer full): the key id of @spki
 */
char *
kmx_key_compute_id(GBytes *spki)
{
	return g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, spki);
}

static void
kmx_key_constructed(GObject *object)
{
	KmxKey *self = KMX_KEY(object);
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	G_OBJECT_CLASS(kmx_key_parent_class)->constructed(object);
	if (priv->id == NULL && priv->public_key != NULL)
		priv->id = kmx_key_compute_id(priv->public_key);
	if (priv->usage == 0)
		priv->usage = kmx_key_type_get_usage(priv->key_type);
	g_warn_if_fail(priv->id != NULL);
}

static void
kmx_key_finalize(GObject *object)
{
	KmxKey *self = KMX_KEY(object);
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	g_free(priv->id);
	g_weak_ref_clear(&priv->device);
	g_free(priv->label);
	g_clear_pointer(&priv->public_key, g_bytes_unref);
	g_main_context_unref(priv->main_context);
	g_mutex_clear(&priv->mutex);
	G_OBJECT_CLASS(kmx_key_parent_class)->finalize(object);
}

static void
kmx_key_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	KmxKey *self = KMX_KEY(object);
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	switch (prop_id) {
	case PROP_ID:
		g_value_set_string(value, priv->id);
		break;
	case PROP_DEVICE:
		g_value_take_object(value, g_weak_ref_get(&priv->device));
		break;
	case PROP_LABEL:
		g_value_take_string(value, kmx_key_dup_label(self));
		break;
	case PROP_KEY_TYPE:
		g_value_set_uint(value, priv->key_type);
		break;
	case PROP_USAGE:
		g_value_set_uint(value, priv->usage);
		break;
	case PROP_PUBLIC_KEY:
		g_value_set_boxed(value, priv->public_key);
		break;
	case PROP_EXPORTABLE:
		g_value_set_boolean(value, priv->exportable);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_key_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
	KmxKey *self = KMX_KEY(object);
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	switch (prop_id) {
	case PROP_ID:
		priv->id = g_ascii_strdown(g_value_get_string(value) ?: "", -1);
		if (priv->id[0] == '\0')
			g_clear_pointer(&priv->id, g_free);
		break;
	case PROP_DEVICE:
		g_weak_ref_set(&priv->device, g_value_get_object(value));
		break;
	case PROP_LABEL:
		kmx_key_set_label(self, g_value_get_string(value));
		break;
	case PROP_KEY_TYPE:
		priv->key_type = g_value_get_uint(value);
		break;
	case PROP_USAGE:
		priv->usage = g_value_get_uint(value);
		break;
	case PROP_PUBLIC_KEY:
		priv->public_key = g_value_dup_boxed(value);
		break;
	case PROP_EXPORTABLE:
		priv->exportable = g_value_get_boolean(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
kmx_key_class_init(KmxKeyClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GParamFlags co = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

	object_class->constructed = kmx_key_constructed;
	object_class->finalize = kmx_key_finalize;
	object_class->get_property = kmx_key_get_property;
	object_class->set_property = kmx_key_set_property;

	props[PROP_ID] = g_param_spec_string("id", NULL, NULL, NULL, co);
	props[PROP_DEVICE] = g_param_spec_object("device", NULL, NULL, KMX_TYPE_DEVICE, co);
	props[PROP_LABEL] = g_param_spec_string("label",
						NULL,
						NULL,
						NULL,
						G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
						    G_PARAM_EXPLICIT_NOTIFY);
	props[PROP_KEY_TYPE] = g_param_spec_uint("key-type", NULL, NULL, 0, G_MAXUINT, 0, co);
	props[PROP_USAGE] = g_param_spec_uint("usage", NULL, NULL, 0, G_MAXUINT, 0, co);
	props[PROP_PUBLIC_KEY] = g_param_spec_boxed("public-key", NULL, NULL, G_TYPE_BYTES, co);
	props[PROP_EXPORTABLE] = g_param_spec_boolean("exportable", NULL, NULL, FALSE, co);
	g_object_class_install_properties(object_class, N_PROPS, props);
}

static void
kmx_key_init(KmxKey *self)
{
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	g_mutex_init(&priv->mutex);
	g_weak_ref_init(&priv->device, NULL);
	priv->main_context = g_main_context_ref_thread_default();
}

const char *
kmx_key_get_id(KmxKey *self)
{
	return GET_PRIVATE(self)->id;
}

/**
 * kmx_key_get_device:
 *
 * Returns: (transfer none) (nullable): the device; the device holds its keys,
 * so this is valid as long as the key is on it
 */
KmxDevice *
kmx_key_get_device(KmxKey *self)
{
	g_autoptr(KmxDevice) device = g_weak_ref_get(&GET_PRIVATE(self)->device);
	return device;
}

char *
kmx_key_dup_label(KmxKey *self)
{
	KmxKeyPrivate *priv = GET_PRIVATE(self);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&priv->mutex);
	return g_strdup(priv->label != NULL ? priv->label : "");
}

/**
 * kmx_key_set_label:
 *
 * Sets the label property (no storage); main thread.
 */
void
kmx_key_set_label(KmxKey *self, const char *label)
{
	KmxKeyPrivate *priv = GET_PRIVATE(self);
	gboolean changed;

	g_mutex_lock(&priv->mutex);
	changed = g_strcmp0(priv->label, label) != 0;
	if (changed) {
		g_free(priv->label);
		priv->label = g_strdup(label);
	}
	g_mutex_unlock(&priv->mutex);
	if (changed)
		g_object_notify_by_pspec(G_OBJECT(self), props[PROP_LABEL]);
}

KmxKeyType
kmx_key_get_key_type(KmxKey *self)
{
	return (KmxKeyType)GET_PRIVATE(self)->key_type;
}

KmxKeyUsage
kmx_key_get_usage(KmxKey *self)
{
	return (KmxKeyUsage)GET_PRIVATE(self)->usage;
}

/**
 * kmx_key_get_public_key:
 *
 * Returns: (transfer none): the DER SubjectPublicKeyInfo
 */
GBytes *
kmx_key_get_public_key(KmxKey *self)
{
	return GET_PRIVATE(self)->public_key;
}

gboolean
kmx_key_get_exportable(KmxKey *self)
{
	return GET_PRIVATE(self)->exportable;
}

static void
kmx_key_not_supported(KmxKey *self, const char *what, GError **error)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "key %.16s… (%s) cannot %s",
		    kmx_key_get_id(self),
		    kmx_key_type_to_string(kmx_key_get_key_type(self)),
		    what);
}

GBytes *
kmx_key_sign(KmxKey *self,
	     KmxMechanism mechanism,
	     GBytes *data,
	     GCancellable *cancellable,
	     GError **error)
{
	KmxKeyClass *klass = KMX_KEY_GET_CLASS(self);
	if (klass->sign == NULL) {
		kmx_key_not_supported(self, "sign", error);
		return NULL;
	}
	return klass->sign(self, mechanism, data, cancellable, error);
}

GBytes *
kmx_key_decrypt(KmxKey *self,
		KmxMechanism mechanism,
		GBytes *data,
		GCancellable *cancellable,
		GError **error)
{
	KmxKeyClass *klass = KMX_KEY_GET_CLASS(self);
	if (klass->decrypt == NULL) {
		kmx_key_not_supported(self, "decrypt", error);
		return NULL;
	}
	return klass->decrypt(self, mechanism, data, cancellable, error);
}

GBytes *
kmx_key_derive(KmxKey *self,
	       KmxMechanism mechanism,
	       GBytes *peer_public,
	       GCancellable *cancellable,
	       GError **error)
{
	KmxKeyClass *klass = KMX_KEY_GET_CLASS(self);
	if (klass->derive == NULL) {
		kmx_key_not_supported(self, "derive", error);
		return NULL;
	}
	return klass->derive(self, mechanism, peer_public, cancellable, error);
}

/**
 * kmx_key_save_label:
 *
 * Persists a new label through the backend; executor thread.
 */
gboolean
kmx_key_save_label(KmxKey *self, const char *label, GCancellable *cancellable, GError **error)
{
	KmxKeyClass *klass = KMX_KEY_GET_CLASS(self);
	if (klass->set_label == NULL)
		return TRUE;
	return klass->set_label(self, label, cancellable, error);
}

gboolean
kmx_key_delete(KmxKey *self, GCancellable *cancellable, GError **error)
{
	KmxKeyClass *klass = KMX_KEY_GET_CLASS(self);
	if (klass->delete_key == NULL) {
		kmx_key_not_supported(self, "be deleted", error);
		return FALSE;
	}
	return klass->delete_key(self, cancellable, error);
}
