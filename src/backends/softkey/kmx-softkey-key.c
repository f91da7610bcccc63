/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a soft-key store
 *
 * The private key is decrypted on its first use after an unlock and kept,
 * as a plain PKCS#8 DER in secret memory, until the store locks.  gnutls
 * key handles are not safe to share between threads, so each key keeps a
 * small stack of idle handles: an operation pops one (or makes one from the
 * cached DER), uses it alone, and pushes it back.  Locking bumps a
 * generation counter and frees everything idle; a handle still in use by an
 * operation in flight is freed, not pushed back, when that operation ends.
 */
#include "config.h"

#include "kmx-error.h"
#include "kmx-softkey-device.h"
#include "kmx-softkey-key.h"
#include "kmx-softkey-ossl.h"

/* more idle handles than threads in the pool is never useful */
#define KMX_SOFTKEY_MAX_IDLE_HANDLES 64

struct _KmxSoftkeyKey {
	KmxKey parent_instance;
	char *dir;
	char *created;
	GMutex load_mutex; /* one thread decrypts; the others wait for it */
	GMutex file_mutex; /* serialises SetLabel and Delete, and guards deleted */
	gboolean deleted;
	GMutex mutex; /* everything below */
	guint generation;
	KmxSecret *der;
	GPtrArray *handles; /* idle gnutls_privkey_t */
	KmxSoftkeyOsslKey *ossl;
};

G_DEFINE_TYPE(KmxSoftkeyKey, kmx_softkey_key, KMX_TYPE_KEY)

/**
 * kmx_softkey_key_drop_secrets:
 *
 * Wipes and frees the decrypted key and every idle handle; any thread.
 */
void
kmx_softkey_key_drop_secrets(KmxSoftkeyKey *self)
{
	g_autoptr(KmxSecret) der = NULL;
	g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;
	g_autoptr(GPtrArray) handles = NULL;

	g_mutex_lock(&self->mutex);
	self->generation++;
	der = g_steal_pointer(&self->der);
	ossl = g_steal_pointer(&self->ossl);
	handles = g_steal_pointer(&self->handles);
	self->handles = g_ptr_array_new();
	g_mutex_unlock(&self->mutex);
	for (guint i = 0; i < handles->len; i++)
		gnutls_privkey_deinit(g_ptr_array_index(handles, i));
}

static void
kmx_softkey_key_finalize(GObject *object)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(object);

	kmx_softkey_key_drop_secrets(self);
	g_ptr_array_unref(self->handles);
	g_free(self->dir);
	g_free(self->created);
	g_mutex_clear(&self->mutex);
	g_mutex_clear(&self->load_mutex);
	g_mutex_clear(&self->file_mutex);
	G_OBJECT_CLASS(kmx_softkey_key_parent_class)->finalize(object);
}

char *
kmx_softkey_key_get_path(KmxSoftkeyKey *self, const char *suffix)
{
	g_autofree char *name = g_strconcat(kmx_key_get_id(KMX_KEY(self)), suffix, NULL);
	return g_build_filename(self->dir, name, NULL);
}

static KmxSoftkeyDevice *
kmx_softkey_key_get_store(KmxSoftkeyKey *self, GError **error)
{
	KmxDevice *device = kmx_key_get_device(KMX_KEY(self));
	if (device == NULL) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_UNAVAILABLE,
				    "the key's store is gone");
		return NULL;
	}
	return KMX_SOFTKEY_DEVICE(device);
}

/* decrypt the key file once per unlock, and check it is the key we list */
static gboolean
kmx_softkey_key_load(KmxSoftkeyKey *self, GError **error)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) load_locker = g_mutex_locker_new(&self->load_mutex);
	g_autoptr(KmxSecret) file_key = NULL;
	g_autoptr(KmxSecret) der = NULL;
	g_autoptr(GBytes) spki = NULL;
	g_autofree char *path = NULL;
	KmxSoftkeyDevice *store;
	gnutls_privkey_t handle;
	guint generation;
	gboolean loaded;

	g_mutex_lock(&self->mutex);
	loaded = self->der != NULL;
	generation = self->generation;
	g_mutex_unlock(&self->mutex);
	if (loaded)
		return TRUE;

	store = kmx_softkey_key_get_store(self, error);
	if (store == NULL)
		return FALSE;
	file_key = kmx_softkey_device_dup_file_key(store, error);
	if (file_key == NULL)
		return FALSE;
	path = kmx_softkey_key_get_path(self, ".pem");
	der = kmx_softkey_pem_decrypt(path, file_key, error);
	if (der == NULL)
		return FALSE;
	handle = kmx_softkey_privkey_new(der, error);
	if (handle == NULL)
		return FALSE;
	spki = kmx_softkey_privkey_get_spki(handle, error);
	if (spki == NULL || !g_bytes_equal(spki, kmx_key_get_public_key(KMX_KEY(self)))) {
		gnutls_privkey_deinit(handle);
		if (spki != NULL)
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "%s holds another key than its .info says; remove both files "
				    "and import the key again",
				    path);
		return FALSE;
	}

	g_mutex_lock(&self->mutex);
	if (self->generation != generation) {
		/* the store was locked while we worked: keep nothing */
		g_mutex_unlock(&self->mutex);
		gnutls_privkey_deinit(handle);
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_LOCKED,
				    "the store was locked; unlock it and try again");
		return FALSE;
	}
	self->der = g_steal_pointer(&der);
	g_ptr_array_add(self->handles, handle);
	g_mutex_unlock(&self->mutex);
	return TRUE;
}

static gnutls_privkey_t
kmx_softkey_key_acquire(KmxSoftkeyKey *self, guint *generation, GError **error)
{
	g_autoptr(KmxSecret) der = NULL;

	for (guint tries = 0; tries < 2; tries++) {
		if (!kmx_softkey_key_load(self, error))
			return NULL;
		g_mutex_lock(&self->mutex);
		*generation = self->generation;
		if (self->handles->len > 0) {
			gnutls_privkey_t h =
			    g_ptr_array_steal_index_fast(self->handles, self->handles->len - 1);
			g_mutex_unlock(&self->mutex);
			return h;
		}
		if (self->der != NULL)
			der = kmx_secret_ref(self->der);
		g_mutex_unlock(&self->mutex);
		if (der != NULL)
			return kmx_softkey_privkey_new(der, error);
		/* locked between load and here: load again, which says LOCKED */
	}
	g_set_error_literal(error, KMX_ERROR, KMX_ERROR_LOCKED, "the store is locked");
	return NULL;
}

static void
kmx_softkey_key_release(KmxSoftkeyKey *self, gnutls_privkey_t handle, guint generation)
{
	g_mutex_lock(&self->mutex);
	if (self->generation == generation && self->handles->len < KMX_SOFTKEY_MAX_IDLE_HANDLES) {
		g_ptr_array_add(self->handles, handle);
		handle = NULL;
	}
	g_mutex_unlock(&self->mutex);
	if (handle != NULL)
		gnutls_privkey_deinit(handle);
}

static KmxSoftkeyOsslKey *
kmx_softkey_key_acquire_ossl(KmxSoftkeyKey *self, GError **error)
{
	g_autoptr(KmxSecret) der = NULL;
	KmxSoftkeyOsslKey *ossl = NULL;
	guint generation;

	if (!kmx_softkey_key_load(self, error))
		return NULL;
	g_mutex_lock(&self->mutex);
	if (self->ossl != NULL)
		ossl = kmx_softkey_ossl_key_ref(self->ossl);
	else if (self->der != NULL)
		der = kmx_secret_ref(self->der);
	generation = self->generation;
	g_mutex_unlock(&self->mutex);
	if (ossl != NULL)
		return ossl;
	if (der == NULL) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_LOCKED, "the store is locked");
		return NULL;
	}
	/* libcrypto's EVP_PKEY may be used by many threads at once, one
	 * EVP_PKEY_CTX each, so one per key is enough; it lives in libcrypto's
	 * secure heap, so it is kept only while that has room, else it is
	 * freed after this operation */
	ossl = kmx_softkey_ossl_key_new(der, error);
	if (ossl == NULL)
		return NULL;
	g_mutex_lock(&self->mutex);
	if (self->generation == generation && self->ossl == NULL && kmx_secure_heap_can_keep())
		self->ossl = kmx_softkey_ossl_key_ref(ossl);
	g_mutex_unlock(&self->mutex);
	return ossl;
}

static gnutls_sign_algorithm_t
kmx_softkey_key_sign_algorithm(KmxMechanism mechanism)
{
	switch (mechanism) {
	case KMX_MECHANISM_RSA_PKCS1_SHA256:
		return GNUTLS_SIGN_RSA_SHA256;
	case KMX_MECHANISM_RSA_PKCS1_SHA384:
		return GNUTLS_SIGN_RSA_SHA384;
	case KMX_MECHANISM_RSA_PKCS1_SHA512:
		return GNUTLS_SIGN_RSA_SHA512;
	case KMX_MECHANISM_RSA_PSS_SHA256:
		return GNUTLS_SIGN_RSA_PSS_SHA256;
	case KMX_MECHANISM_RSA_PSS_SHA384:
		return GNUTLS_SIGN_RSA_PSS_SHA384;
	case KMX_MECHANISM_RSA_PSS_SHA512:
		return GNUTLS_SIGN_RSA_PSS_SHA512;
	case KMX_MECHANISM_ECDSA_SHA256:
		return GNUTLS_SIGN_ECDSA_SHA256;
	case KMX_MECHANISM_ECDSA_SHA384:
		return GNUTLS_SIGN_ECDSA_SHA384;
	case KMX_MECHANISM_ED25519:
		return GNUTLS_SIGN_EDDSA_ED25519;
	default:
		return GNUTLS_SIGN_UNKNOWN;
	}
}

static gboolean
kmx_softkey_key_check_mechanism(KmxKey *key, KmxMechanism mechanism, GError **error)
{
	if (!kmx_mechanism_supports_key_type(mechanism, kmx_key_get_key_type(key))) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "a %s key cannot do %s",
			    kmx_key_type_to_string(kmx_key_get_key_type(key)),
			    kmx_mechanism_to_string(mechanism));
		return FALSE;
	}
	return TRUE;
}

static GBytes *
kmx_softkey_key_sign(KmxKey *key,
		     KmxMechanism mechanism,
		     GBytes *data,
		     KmxSecret *device_secret,
		     GCancellable *cancellable,
		     GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	gnutls_sign_algorithm_t algo = kmx_softkey_key_sign_algorithm(mechanism);
	KmxHash hash = kmx_mechanism_get_hash(mechanism);
	gnutls_datum_t in = {(void *)g_bytes_get_data(data, NULL), g_bytes_get_size(data)};
	gnutls_datum_t sig = {NULL, 0};
	gnutls_privkey_t handle;
	guint generation = 0;
	GBytes *out;
	int rc;

	if (kmx_mechanism_is_raw(mechanism)) {
		g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;
		if (!kmx_softkey_key_check_mechanism(key, mechanism, error))
			return NULL;
		ossl = kmx_softkey_key_acquire_ossl(self, error);
		return ossl != NULL ? kmx_softkey_ossl_sign_raw(ossl, mechanism, data, error)
				    : NULL;
	}
	if (algo == GNUTLS_SIGN_UNKNOWN ||
	    kmx_mechanism_get_operation(mechanism) != KMX_OPERATION_SIGN) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not a signature algorithm",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (!kmx_softkey_key_check_mechanism(key, mechanism, error))
		return NULL;
	/* the core checks this too; a wrong length must never reach gnutls */
	if (hash != KMX_HASH_NONE && g_bytes_get_size(data) != kmx_hash_get_length(hash)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s needs a %" G_GSIZE_FORMAT "-byte digest",
			    kmx_mechanism_to_string(mechanism),
			    kmx_hash_get_length(hash));
		return NULL;
	}
	handle = kmx_softkey_key_acquire(self, &generation, error);
	if (handle == NULL)
		return NULL;
	/* sign_hash2 adds the DigestInfo for PKCS#1 v1.5; PSS salt = digest length */
	if (hash == KMX_HASH_NONE)
		rc = gnutls_privkey_sign_data2(handle, algo, 0, &in, &sig);
	else
		rc = gnutls_privkey_sign_hash2(handle, algo, 0, &in, &sig);
	kmx_softkey_key_release(self, handle, generation);
	if (rc < 0) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "signing failed");
		return NULL;
	}
	out = g_bytes_new(sig.data, sig.size);
	gnutls_free(sig.data);
	return out;
}

static GBytes *
kmx_softkey_key_decrypt(KmxKey *key,
			KmxMechanism mechanism,
			GBytes *data,
			KmxSecret *device_secret,
			GCancellable *cancellable,
			GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	g_autoptr(KmxSecret) plain = NULL;
	gnutls_datum_t in = {(void *)g_bytes_get_data(data, NULL), g_bytes_get_size(data)};
	gnutls_datum_t out = {NULL, 0};
	gnutls_privkey_t handle;
	guint generation = 0;
	gsize modulus = kmx_key_type_get_bits(kmx_key_get_key_type(key)) / 8;
	int rc;

	if (!kmx_softkey_key_check_mechanism(key, mechanism, error))
		return NULL;
	if (mechanism == KMX_MECHANISM_RSA_OAEP_SHA256) {
		g_autoptr(KmxSoftkeyOsslKey) ossl = kmx_softkey_key_acquire_ossl(self, error);
		if (ossl == NULL)
			return NULL;
		plain = kmx_softkey_ossl_decrypt_oaep_sha256(ossl, data, error);
		return plain != NULL ? kmx_secret_to_bytes(plain) : NULL;
	}
	if (mechanism != KMX_MECHANISM_RSA_PKCS1) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not a decryption algorithm",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (g_bytes_get_size(data) != modulus) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "an RSA ciphertext for this key is %" G_GSIZE_FORMAT
			    " bytes, not %" G_GSIZE_FORMAT,
			    modulus,
			    g_bytes_get_size(data));
		return NULL;
	}
	handle = kmx_softkey_key_acquire(self, &generation, error);
	if (handle == NULL)
		return NULL;
	rc = gnutls_privkey_decrypt_data(handle, 0, &in, &out);
	kmx_softkey_key_release(self, handle, generation);
	if (rc < 0) {
		kmx_softkey_gnutls_error(
		    error,
		    rc,
		    KMX_ERROR_FAILED,
		    "decryption failed (not a PKCS#1 v1.5 ciphertext for this key?)");
		return NULL;
	}
	plain = kmx_secret_new_take(out.data, out.size, gnutls_free);
	return kmx_secret_to_bytes(plain);
}

static GBytes *
kmx_softkey_key_derive(KmxKey *key,
		       KmxMechanism mechanism,
		       GBytes *peer_public,
		       KmxSecret *device_secret,
		       GCancellable *cancellable,
		       GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;
	g_autoptr(KmxSecret) secret = NULL;

	if (mechanism != KMX_MECHANISM_ECDH && mechanism != KMX_MECHANISM_X25519) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not a key agreement algorithm",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (!kmx_softkey_key_check_mechanism(key, mechanism, error))
		return NULL;
	ossl = kmx_softkey_key_acquire_ossl(self, error);
	if (ossl == NULL)
		return NULL;
	secret = kmx_softkey_ossl_derive(ossl, kmx_key_get_key_type(key), peer_public, error);
	return secret != NULL ? kmx_secret_to_bytes(secret) : NULL;
}

static gboolean
kmx_softkey_key_set_label(KmxKey *key, const char *label, GCancellable *cancellable, GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	g_autofree char *path = kmx_softkey_key_get_path(self, ".info");
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = NULL;
	KmxSoftkeyKeyInfo info = {
	    .label = (char *)label,
	    .type = kmx_key_get_key_type(key),
	    .usage = kmx_key_get_usage(key),
	    .spki = kmx_key_get_public_key(key),
	    .created = self->created,
	    .exportable = kmx_key_get_exportable(key),
	};

	if (label == NULL || !g_utf8_validate(label, -1, NULL) || strlen(label) > 1024) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a label is UTF-8 text of at most 1024 bytes");
		return FALSE;
	}
	/* a SetLabel racing a Delete on another pool thread must not write
	 * an .info after the deletion removed it: that .info would outlive
	 * its key file */
	locker = g_mutex_locker_new(&self->file_mutex);
	if (self->deleted) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_FOUND,
			    "key %s was deleted",
			    kmx_key_get_id(key));
		return FALSE;
	}
	return kmx_softkey_key_info_save(path, &info, error);
}

static gboolean
kmx_softkey_key_delete_key(KmxKey *key, GCancellable *cancellable, GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	KmxSoftkeyDevice *store = kmx_softkey_key_get_store(self, error);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->file_mutex);

	if (store == NULL)
		return FALSE;
	if (self->deleted)
		return TRUE;
	if (!kmx_softkey_device_delete_key(store, self, error)) {
		/* the key file went but its .info stayed: no label either */
		g_autofree char *pem = kmx_softkey_key_get_path(self, ".pem");
		self->deleted = !g_file_test(pem, G_FILE_TEST_EXISTS);
		return FALSE;
	}
	self->deleted = TRUE;
	kmx_softkey_key_drop_secrets(self);
	return TRUE;
}

static void
kmx_softkey_key_class_init(KmxSoftkeyKeyClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	KmxKeyClass *key_class = KMX_KEY_CLASS(klass);

	object_class->finalize = kmx_softkey_key_finalize;
	key_class->sign = kmx_softkey_key_sign;
	key_class->decrypt = kmx_softkey_key_decrypt;
	key_class->derive = kmx_softkey_key_derive;
	key_class->set_label = kmx_softkey_key_set_label;
	key_class->delete_key = kmx_softkey_key_delete_key;
}

static void
kmx_softkey_key_init(KmxSoftkeyKey *self)
{
	g_mutex_init(&self->mutex);
	g_mutex_init(&self->load_mutex);
	g_mutex_init(&self->file_mutex);
	self->handles = g_ptr_array_new();
}

/**
 * kmx_softkey_key_new:
 * @device: the store
 * @dir: the store's directory
 * @id: the key id, already checked against @info's public key
 * @info: the key's public facts
 *
 * Returns: (transfer full): a key; nothing is decrypted
 */
KmxSoftkeyKey *
kmx_softkey_key_new(KmxDevice *device,
		    const char *dir,
		    const char *id,
		    const KmxSoftkeyKeyInfo *info)
{
	/* the id is given: the base class need not hash the public key again */
	KmxSoftkeyKey *self = g_object_new(KMX_TYPE_SOFTKEY_KEY,
					   "id",
					   id,
					   "device",
					   device,
					   "label",
					   info->label,
					   "key-type",
					   (guint)info->type,
					   "usage",
					   (guint)info->usage,
					   "public-key",
					   info->spki,
					   "exportable",
					   info->exportable,
					   NULL);
	self->dir = g_strdup(dir);
	self->created = g_strdup(info->created);
	return self;
}
