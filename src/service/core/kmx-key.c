/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: an asymmetric private key on a device
 *
 * The public facts (id, type, usage, SPKI) are fixed at construction; the
 * label may change.  The id is the lowercase hex SHA-256 of the DER
 * SubjectPublicKeyInfo, so one key has one id on every backend.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-key.h"

/* A store holds thousands of keys, each of them one of these: what never
 * changes is in one block, and the device is found through an anchor all of
 * its keys share (kmx_device_ref_anchor()). */
typedef struct {
	/* the SPKI (spki_len bytes) then the id and its NUL; NULL with neither */
	guint8 *facts;
	guint32 spki_len;
	guint key_type : 16;
	guint usage : 8;
	guint exportable : 1;
	guint made_with_facts : 1; /* the construct properties are defaults: ignored */
	KmxDeviceAnchor *anchor;   /* NULL without a device */
	GMutex mutex;		   /* label */
	char *label;
	char *locator;
} KmxKeyPrivate;

/* the id and public key given as construct properties, until constructed()
 * puts them in the block */
typedef struct {
	char *id;
	GBytes *public_key;
} KmxKeyConstruct;

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
	PROP_LOCATOR,
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

/**
 * kmx_key_id_hash:
 * @id: a key id (any string)
 *
 * A #GHashFunc for tables keyed by key id, with g_str_equal().  A key id is
 * the hex SHA-256 of a public key: its first 32 characters (128 bits) are
 * as good a hash input as all 64, and are read as four words instead of
 * one character at a time (g_str_hash(), 8 instructions a character, was
 * a good part of loading 10,000 keys).  Shorter strings, which are no key
 * ids, hash with g_str_hash().
 */
guint
kmx_key_id_hash(gconstpointer id)
{
	const char *s = id;
	guint64 w[4];
	guint64 h;

	if (strnlen(s, sizeof(w)) < sizeof(w))
		return g_str_hash(s);
	memcpy(w, s, sizeof(w));
	h = (w[0] ^ (w[1] * G_GUINT64_CONSTANT(0x9e3779b97f4a7c15))) +
	    (w[2] ^ (w[3] * G_GUINT64_CONSTANT(0xc2b2ae3d27d4eb4f)));
	h ^= h >> 29;
	h *= G_GUINT64_CONSTANT(0xbf58476d1ce4e5b9);
	return (guint)(h ^ (h >> 32));
}

/* the facts of the key kmx_key_new_with_facts() is making on this thread,
 * read by its instance init before any constructed() runs */
static __thread KmxKeyFacts *kmx_key_pending_facts;

/* the key's block from its id (any case; none or empty: the public key's)
 * and public key */
static void
kmx_key_set_facts(KmxKeyPrivate *priv, const char *id, GBytes *public_key)
{
	gsize spki_len = public_key != NULL ? g_bytes_get_size(public_key) : 0;
	g_autofree char *computed = NULL;
	gsize id_len;

	g_free(priv->facts);
	priv->facts = NULL;
	priv->spki_len = 0;
	if (id == NULL || id[0] == '\0') {
		if (public_key == NULL)
			return;
		id = computed = kmx_key_compute_id(public_key);
	}
	g_return_if_fail(spki_len <= G_MAXUINT32);
	id_len = strlen(id);
	priv->facts = g_malloc(spki_len + id_len + 1);
	if (spki_len > 0)
		memcpy(priv->facts, g_bytes_get_data(public_key, NULL), spki_len);
	/* ids are lowercase hex, whoever gave this one */
	for (gsize i = 0; i <= id_len; i++)
		priv->facts[spki_len + i] = (guint8)g_ascii_tolower(id[i]);
	priv->spki_len = (guint32)spki_len;
}

static GQuark
kmx_key_construct_quark(void)
{
	static gsize quark;

	if (g_once_init_enter(&quark))
		g_once_init_leave(&quark, g_quark_from_static_string("kmx-key-construct"));
	return (GQuark)quark;
}

static void
kmx_key_construct_free(gpointer data)
{
	KmxKeyConstruct *c = data;

	if (c == NULL)
		return;
	g_free(c->id);
	g_clear_pointer(&c->public_key, g_bytes_unref);
	g_free(c);
}

static KmxKeyConstruct *
kmx_key_construct_get(GObject *object)
{
	KmxKeyConstruct *c = g_object_get_qdata(object, kmx_key_construct_quark());

	if (c == NULL) {
		c = g_new0(KmxKeyConstruct, 1);
		g_object_set_qdata_full(object,
					kmx_key_construct_quark(),
					c,
					kmx_key_construct_free);
	}
	return c;
}

static void
kmx_key_constructed(GObject *object)
{
	KmxKey *self = KMX_KEY(object);
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	G_OBJECT_CLASS(kmx_key_parent_class)->constructed(object);
	if (!priv->made_with_facts) {
		KmxKeyConstruct *c = g_object_steal_qdata(object, kmx_key_construct_quark());

		if (c != NULL)
			kmx_key_set_facts(priv, c->id, c->public_key);
		kmx_key_construct_free(c);
	}
	if (priv->usage == 0)
		priv->usage = kmx_key_type_get_usage(priv->key_type);
	g_warn_if_fail(priv->facts != NULL);
}

static void
kmx_key_finalize(GObject *object)
{
	KmxKey *self = KMX_KEY(object);
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	g_free(priv->facts);
	kmx_device_anchor_unref(priv->anchor);
	g_free(priv->label);
	g_free(priv->locator);
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
		g_value_set_string(value, kmx_key_get_id(self));
		break;
	case PROP_DEVICE:
		g_value_take_object(value, kmx_key_dup_device(self));
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
		g_value_take_boxed(value, kmx_key_dup_public_key(self));
		break;
	case PROP_EXPORTABLE:
		g_value_set_boolean(value, priv->exportable);
		break;
	case PROP_LOCATOR:
		g_value_set_string(value, priv->locator);
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
	KmxKeyConstruct *c;

	/* g_object_new() sets every construct property, to its default when
	 * not given; a key made by kmx_key_new_with_facts() has its facts */
	if (priv->made_with_facts && (pspec->flags & G_PARAM_CONSTRUCT_ONLY) != 0)
		return;
	switch (prop_id) {
	case PROP_ID:
		c = kmx_key_construct_get(object);
		g_free(c->id);
		c->id = g_value_dup_string(value);
		break;
	case PROP_DEVICE:
		kmx_device_anchor_unref(priv->anchor);
		priv->anchor = g_value_get_object(value) != NULL
				   ? kmx_device_ref_anchor(g_value_get_object(value))
				   : NULL;
		break;
	case PROP_LABEL:
		/* the label a key is made with: nobody follows the key yet, and
		 * it is not on its device's list, so nothing is announced (10,000
		 * times at start-up); kmx_key_set_label() announces a change */
		g_mutex_lock(&priv->mutex);
		g_free(priv->label);
		priv->label = g_value_dup_string(value);
		g_mutex_unlock(&priv->mutex);
		break;
	case PROP_KEY_TYPE:
		priv->key_type = g_value_get_uint(value);
		break;
	case PROP_USAGE:
		priv->usage = g_value_get_uint(value);
		break;
	case PROP_PUBLIC_KEY:
		c = kmx_key_construct_get(object);
		g_clear_pointer(&c->public_key, g_bytes_unref);
		c->public_key = g_value_dup_boxed(value);
		break;
	case PROP_EXPORTABLE:
		priv->exportable = g_value_get_boolean(value);
		break;
	case PROP_LOCATOR:
		priv->locator = g_value_dup_string(value);
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
	/* what the backend needs to find the key again (a card slot); cached
	 * with the key's public facts for a registered device */
	props[PROP_LOCATOR] = g_param_spec_string("locator", NULL, NULL, NULL, co);
	g_object_class_install_properties(object_class, N_PROPS, props);
}

static void
kmx_key_init(KmxKey *self)
{
	KmxKeyPrivate *priv = GET_PRIVATE(self);
	KmxKeyFacts *facts = kmx_key_pending_facts;

	g_mutex_init(&priv->mutex);
	if (facts == NULL)
		return;
	kmx_key_pending_facts = NULL;
	priv->made_with_facts = TRUE;
	kmx_key_set_facts(priv, facts->id, facts->public_key);
	if (facts->device != NULL)
		priv->anchor = kmx_device_ref_anchor(facts->device);
	/* made with its label: nothing announced (see PROP_LABEL) */
	priv->label = g_steal_pointer(&facts->label);
	priv->key_type = facts->key_type;
	priv->usage = facts->usage;
	priv->exportable = facts->exportable;
}

/**
 * kmx_key_new_with_facts:
 * @type: a #KmxKey type whose construction needs no property
 * @facts: the key's public facts; its label is taken (set to %NULL)
 *
 * Makes a key as g_object_new() with the "id", "device", "label",
 * "key-type", "usage", "public-key" and "exportable" properties would,
 * without their #GValue round trips and notify queue: a soft-key store
 * makes 10,000 keys at start-up.  The id is trusted to be @public_key's;
 * when it is %NULL it is computed, as for a key made with properties.
 *
 * Returns: (transfer full) (type KmxKey): the key
 */
gpointer
kmx_key_new_with_facts(GType type, KmxKeyFacts *facts)
{
	gpointer key;

	g_return_val_if_fail(g_type_is_a(type, KMX_TYPE_KEY), NULL);
	g_return_val_if_fail(facts != NULL, NULL);
	g_return_val_if_fail(kmx_key_pending_facts == NULL, NULL);
	kmx_key_pending_facts = facts;
	key = g_object_new(type, NULL);
	/* taken by the instance init; cleared whatever happened */
	kmx_key_pending_facts = NULL;
	return key;
}

const char *
kmx_key_get_id(KmxKey *self)
{
	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	return kmx_key_peek_id(self);
}

/**
 * kmx_key_peek_id:
 * @self: (not nullable): a key, not checked
 *
 * kmx_key_get_id() without its type check, for the key tables, which look
 * at several keys for each of 10,000 ids at start-up.
 */
const char *
kmx_key_peek_id(KmxKey *self)
{
	KmxKeyPrivate *priv = GET_PRIVATE(self);

	return priv->facts != NULL ? (const char *)priv->facts + priv->spki_len : NULL;
}

/**
 * kmx_key_dup_device:
 *
 * Returns: (transfer full) (nullable): the device, %NULL once it is gone;
 * any thread
 */
KmxDevice *
kmx_key_dup_device(KmxKey *self)
{
	KmxKeyPrivate *priv;

	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	priv = GET_PRIVATE(self);
	return priv->anchor != NULL ? kmx_device_anchor_dup_device(priv->anchor) : NULL;
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
	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	g_autoptr(KmxDevice) device = kmx_key_dup_device(self);
	return device;
}

char *
kmx_key_dup_label(KmxKey *self)
{
	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
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
	if (changed) {
		g_autoptr(KmxDevice) device = kmx_key_dup_device(self);

		g_object_notify_by_pspec(G_OBJECT(self), props[PROP_LABEL]);
		if (device != NULL)
			kmx_device_report_key_label_changed(device, self);
	}
}

KmxKeyType
kmx_key_get_key_type(KmxKey *self)
{
	g_return_val_if_fail(KMX_IS_KEY(self), KMX_KEY_TYPE_UNKNOWN);
	return (KmxKeyType)GET_PRIVATE(self)->key_type;
}

KmxKeyUsage
kmx_key_get_usage(KmxKey *self)
{
	g_return_val_if_fail(KMX_IS_KEY(self), KMX_KEY_USAGE_NONE);
	return (KmxKeyUsage)GET_PRIVATE(self)->usage;
}

/**
 * kmx_key_get_public_key_data:
 * @len: (out): its length
 *
 * Returns: (nullable): the DER SubjectPublicKeyInfo, as long as the key lives
 */
const guint8 *
kmx_key_get_public_key_data(KmxKey *self, gsize *len)
{
	KmxKeyPrivate *priv;

	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	priv = GET_PRIVATE(self);
	*len = priv->spki_len;
	return priv->spki_len > 0 ? priv->facts : NULL;
}

/**
 * kmx_key_dup_public_key:
 *
 * Returns: (transfer full) (nullable): the DER SubjectPublicKeyInfo
 */
GBytes *
kmx_key_dup_public_key(KmxKey *self)
{
	const guint8 *spki;
	gsize len;

	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	spki = kmx_key_get_public_key_data(self, &len);
	return spki != NULL ? g_bytes_new(spki, len) : NULL;
}

/**
 * kmx_key_get_locator:
 *
 * Returns: (nullable): what the backend needs to find the key again
 */
const char *
kmx_key_get_locator(KmxKey *self)
{
	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	return GET_PRIVATE(self)->locator;
}

gboolean
kmx_key_get_exportable(KmxKey *self)
{
	g_return_val_if_fail(KMX_IS_KEY(self), FALSE);
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

/* the raw sign mechanisms take the data as their caller encoded it: its
 * length is all there is to check ("prehashed" says what the data is
 * anyway, so it is accepted and means nothing) */
static gboolean
kmx_key_check_raw_sign(KmxKey *self, KmxMechanism mechanism, gsize data_len, GError **error)
{
	KmxKeyType type = kmx_key_get_key_type(self);

	if (mechanism == KMX_MECHANISM_RSA_PKCS1_RAW) {
		/* PKCS#1 type 1 padding takes at least 11 bytes of the modulus;
		 * empty data is a valid (if useless) message */
		gsize max = kmx_key_type_get_bits(type) / 8 - 11;
		if (data_len > max) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "rsa-pkcs1 signs at most %" G_GSIZE_FORMAT
				    " bytes with this %s key (the modulus length minus 11), not "
				    "%" G_GSIZE_FORMAT,
				    max,
				    kmx_key_type_to_string(type),
				    data_len);
			return FALSE;
		}
		return TRUE;
	}
	if (data_len == 0) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "ecdsa signs a digest, and the data is empty");
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_key_check_operation:
 * @mechanism: what to do
 * @prehashed: for a signature, @data_len is the digest's
 * @data_len: the length of the input
 *
 * Checks an operation against the key before anything runs (and before
 * anybody is prompted): the key's type and usage, the digest length of a
 * prehashed signature, the data length of a raw signature, non-empty input.
 */
gboolean
kmx_key_check_operation(KmxKey *self,
			KmxMechanism mechanism,
			gboolean prehashed,
			gsize data_len,
			GError **error)
{
	KmxOperation op;
	KmxKeyUsage need;
	KmxKeyType type;

	g_return_val_if_fail(KMX_IS_KEY(self), FALSE);
	op = kmx_mechanism_get_operation(mechanism);
	type = kmx_key_get_key_type(self);
	need = op == KMX_OPERATION_SIGN	     ? KMX_KEY_USAGE_SIGN
	       : op == KMX_OPERATION_DECRYPT ? KMX_KEY_USAGE_DECRYPT
					     : KMX_KEY_USAGE_DERIVE;
	if (mechanism == KMX_MECHANISM_UNKNOWN) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "unknown algorithm");
		return FALSE;
	}
	if (!(kmx_key_get_usage(self) & need) ||
	    !kmx_mechanism_supports_key_type(mechanism, type)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "key %s is %s and cannot do %s",
			    kmx_key_get_id(self),
			    kmx_key_type_to_string(type),
			    kmx_mechanism_to_string(mechanism));
		return FALSE;
	}
	if (kmx_mechanism_is_raw(mechanism))
		return kmx_key_check_raw_sign(self, mechanism, data_len, error);
	if (prehashed) {
		gsize want = kmx_hash_get_length(kmx_mechanism_get_hash(mechanism));
		if (op != KMX_OPERATION_SIGN || want == 0) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "%s signs the message itself; drop the 'prehashed' option",
				    kmx_mechanism_to_string(mechanism));
			return FALSE;
		}
		if (data_len != want) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a prehashed %s digest is %" G_GSIZE_FORMAT
				    " bytes, not %" G_GSIZE_FORMAT,
				    kmx_mechanism_to_string(mechanism),
				    want,
				    data_len);
			return FALSE;
		}
	}
	if (op != KMX_OPERATION_SIGN && data_len == 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s needs non-empty input",
			    kmx_operation_to_string(op));
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_key_sign:
 * @data: the message, or its digest when @prehashed
 * @secret: (nullable): the device's user secret, for a device that wants it
 *
 * Hashes the message here, on the executor, for the hashed mechanisms (a
 * large message must not stall the main thread, and every backend gets a
 * digest), then signs.  The raw mechanisms (kmx_mechanism_is_raw()) and
 * ed25519 hash nothing: the backend gets @data as it is.  The operation was
 * checked with kmx_key_check_operation().
 */
GBytes *
kmx_key_sign(KmxKey *self,
	     KmxMechanism mechanism,
	     GBytes *data,
	     gboolean prehashed,
	     KmxSecret *secret,
	     GCancellable *cancellable,
	     GError **error)
{
	KmxHash hash = kmx_mechanism_get_hash(mechanism);
	KmxKeyClass *klass;
	g_autoptr(GBytes) digest = NULL;

	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	g_return_val_if_fail(data != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	klass = KMX_KEY_GET_CLASS(self);
	if (klass->sign == NULL) {
		kmx_key_not_supported(self, "sign", error);
		return NULL;
	}
	if (hash != KMX_HASH_NONE && !prehashed) {
		GChecksumType type = hash == KMX_HASH_SHA256   ? G_CHECKSUM_SHA256
				     : hash == KMX_HASH_SHA384 ? G_CHECKSUM_SHA384
							       : G_CHECKSUM_SHA512;
		g_autoptr(GChecksum) checksum = g_checksum_new(type);
		guint8 buf[64];
		gsize len = sizeof(buf);

		g_checksum_update(checksum,
				  g_bytes_get_data(data, NULL),
				  (gssize)g_bytes_get_size(data));
		g_checksum_get_digest(checksum, buf, &len);
		digest = g_bytes_new(buf, len);
		data = digest;
	}
	return klass->sign(self, mechanism, data, secret, cancellable, error);
}

GBytes *
kmx_key_decrypt(KmxKey *self,
		KmxMechanism mechanism,
		GBytes *data,
		KmxSecret *secret,
		GCancellable *cancellable,
		GError **error)
{
	KmxKeyClass *klass;

	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	g_return_val_if_fail(data != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	klass = KMX_KEY_GET_CLASS(self);
	if (klass->decrypt == NULL) {
		kmx_key_not_supported(self, "decrypt", error);
		return NULL;
	}
	return klass->decrypt(self, mechanism, data, secret, cancellable, error);
}

GBytes *
kmx_key_derive(KmxKey *self,
	       KmxMechanism mechanism,
	       GBytes *peer_public,
	       KmxSecret *secret,
	       GCancellable *cancellable,
	       GError **error)
{
	KmxKeyClass *klass;

	g_return_val_if_fail(KMX_IS_KEY(self), NULL);
	g_return_val_if_fail(peer_public != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	klass = KMX_KEY_GET_CLASS(self);
	if (klass->derive == NULL) {
		kmx_key_not_supported(self, "derive", error);
		return NULL;
	}
	return klass->derive(self, mechanism, peer_public, secret, cancellable, error);
}

/**
 * kmx_key_save_label:
 *
 * Persists a new label through the backend; executor thread.
 */
gboolean
kmx_key_save_label(KmxKey *self, const char *label, GCancellable *cancellable, GError **error)
{
	KmxKeyClass *klass;

	g_return_val_if_fail(KMX_IS_KEY(self), FALSE);
	g_return_val_if_fail(label != NULL, FALSE);
	klass = KMX_KEY_GET_CLASS(self);
	if (klass->set_label == NULL)
		return TRUE;
	return klass->set_label(self, label, cancellable, error);
}

gboolean
kmx_key_delete(KmxKey *self, GCancellable *cancellable, GError **error)
{
	KmxKeyClass *klass;

	g_return_val_if_fail(KMX_IS_KEY(self), FALSE);
	klass = KMX_KEY_GET_CLASS(self);
	if (klass->delete_key == NULL) {
		kmx_key_not_supported(self, "be deleted", error);
		return FALSE;
	}
	return klass->delete_key(self, cancellable, error);
}
