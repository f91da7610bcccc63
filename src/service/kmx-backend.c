/* keymux: a kind of key storage (softkey, card, tpm)
 *
 * The core knows backends only through this class.  Devices are added and
 * removed on the main thread; a backend that learns of a hot-plug on another
 * thread hands it over with g_main_context_invoke().
 */
#include "config.h"

#include "kmx-backend.h"

typedef struct {
	char *name;
	KmxContext *context;
	GPtrArray *devices;
	gboolean started;
} KmxBackendPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE(KmxBackend, kmx_backend, G_TYPE_OBJECT)
#define GET_PRIVATE(o) ((KmxBackendPrivate *)kmx_backend_get_instance_private(o))

enum { PROP_0, PROP_NAME, PROP_CONTEXT, N_PROPS };
static GParamSpec *props[N_PROPS];

enum { SIGNAL_DEVICE_ADDED, SIGNAL_DEVICE_REMOVED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
kmx_backend_finalize(GObject *object)
{
	KmxBackend *self = KMX_BACKEND(object);
	KmxBackendPrivate *priv = GET_PRIVATE(self);

	g_free(priv->name);
	g_clear_object(&priv->context);
	g_ptr_array_unref(priv->devices);
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

	object_class->finalize = kmx_backend_finalize;
	object_class->get_property = kmx_backend_get_property;
	object_class->set_property = kmx_backend_set_property;

	props[PROP_NAME] = g_param_spec_string("name",
					       NULL,
					       NULL,
					       NULL,
					       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
						   G_PARAM_STATIC_STRINGS);
	props[PROP_CONTEXT] = g_param_spec_object("context",
						  NULL,
						  NULL,
						  KMX_TYPE_CONTEXT,
						  G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
						      G_PARAM_STATIC_STRINGS);
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
}

static void
kmx_backend_init(KmxBackend *self)
{
	KmxBackendPrivate *priv = GET_PRIVATE(self);
	priv->devices = g_ptr_array_new_with_free_func(g_object_unref);
}

const char *
kmx_backend_get_name(KmxBackend *self)
{
	return GET_PRIVATE(self)->name;
}

KmxContext *
kmx_backend_get_context(KmxBackend *self)
{
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
	KmxBackendPrivate *priv = GET_PRIVATE(self);
	return kmx_context_get_backend_dir(priv->context, priv->name);
}

gboolean
kmx_backend_start(KmxBackend *self, GError **error)
{
	KmxBackendClass *klass = KMX_BACKEND_GET_CLASS(self);
	KmxBackendPrivate *priv = GET_PRIVATE(self);

	if (priv->started)
		return TRUE;
	if (klass->start != NULL && !klass->start(self, error))
		return FALSE;
	priv->started = TRUE;
	return TRUE;
}

void
kmx_backend_stop(KmxBackend *self)
{
	KmxBackendClass *klass = KMX_BACKEND_GET_CLASS(self);
	KmxBackendPrivate *priv = GET_PRIVATE(self);

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
	return GET_PRIVATE(self)->devices;
}

/**
 * kmx_backend_add_device:
 *
 * Adds a device; main thread only.
 */
void
kmx_backend_add_device(KmxBackend *self, KmxDevice *device)
{
	KmxBackendPrivate *priv = GET_PRIVATE(self);

	if (g_ptr_array_find(priv->devices, device, NULL))
		return;
	g_ptr_array_add(priv->devices, g_object_ref(device));
	g_signal_emit(self, signals[SIGNAL_DEVICE_ADDED], 0, device);
}

/**
 * kmx_backend_remove_device:
 *
 * Removes a device; main thread only.
 */
void
kmx_backend_remove_device(KmxBackend *self, KmxDevice *device)
{
	KmxBackendPrivate *priv = GET_PRIVATE(self);
	guint index;

	if (!g_ptr_array_find(priv->devices, device, &index))
		return;
	/* our reference keeps it alive through the signal */
	device = g_ptr_array_steal_index(priv->devices, index);
	g_signal_emit(self, signals[SIGNAL_DEVICE_REMOVED], 0, device);
	g_object_unref(device);
}
