/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a soft-key store
 *
 * The private key is decrypted on its first use after an unlock and kept
 * until the store locks, in one form: a libcrypto EVP_PKEY in libcrypto's
 * secure heap, which every private-key operation uses, from any number of
 * pool threads at once (kmx-softkey-ossl.c).  Only when that heap is three
 * quarters full is the key kept instead as its plain PKCS#8 DER in secret
 * memory (KmxSecret), and an EVP_PKEY made from it for each operation, so
 * that a store with more keys than the secure heap holds keeps working.
 * Locking bumps a generation counter and drops the form; an EVP_PKEY still
 * in use by an operation in flight is freed (and wiped) when that
 * operation lets go of it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmx-error.h"
#include "kmx-softkey-device.h"
#include "kmx-softkey-key.h"
#include "kmx-softkey-ossl.h"

struct _KmxSoftkeyKey {
	KmxKey parent_instance;
	GMutex load_mutex; /* one thread decrypts; the others wait for it */
	GMutex file_mutex; /* serialises SetLabel and Delete, and guards deleted */
	GMutex mutex;	   /* generation, ossl, der */
	gboolean deleted;
	guint generation;
	KmxSoftkeyOsslKey *ossl; /* the unlocked key, or */
	KmxSecret *der;		 /* it, when the secure heap is (nearly) full */
};

G_DEFINE_TYPE(KmxSoftkeyKey, kmx_softkey_key, KMX_TYPE_KEY)

/**
 * kmx_softkey_key_drop_secrets:
 *
 * Drops the unlocked key, whichever form it has; any thread.  The
 * EVP_PKEY is wiped by libcrypto when the last operation using it ends.
 */
void
kmx_softkey_key_drop_secrets(KmxSoftkeyKey *self)
{
	g_autoptr(KmxSecret) der = NULL;
	g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;

	g_mutex_lock(&self->mutex);
	self->generation++;
	der = g_steal_pointer(&self->der);
	ossl = g_steal_pointer(&self->ossl);
	g_mutex_unlock(&self->mutex);
}

static void
kmx_softkey_key_finalize(GObject *object)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(object);

	kmx_softkey_key_drop_secrets(self);
	g_mutex_clear(&self->mutex);
	g_mutex_clear(&self->load_mutex);
	g_mutex_clear(&self->file_mutex);
	G_OBJECT_CLASS(kmx_softkey_key_parent_class)->finalize(object);
}

/**
 * kmx_softkey_key_get_path:
 * @suffix: ".pem" or ".info"
 *
 * Returns: (transfer full) (nullable): the path of one of the key's files
 * in its store's directory; %NULL once the store is gone
 */
/* the key's store, held while it is used, or NULL once it is gone */
static KmxSoftkeyDevice *
kmx_softkey_key_dup_store(KmxSoftkeyKey *self, GError **error)
{
	KmxDevice *device = kmx_key_dup_device(KMX_KEY(self));

	if (device == NULL) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_UNAVAILABLE,
				    "the key's store is gone");
		return NULL;
	}
	return KMX_SOFTKEY_DEVICE(device);
}

char *
kmx_softkey_key_get_path(KmxSoftkeyKey *self, const char *suffix, GError **error)
{
	g_autoptr(KmxSoftkeyDevice) store = kmx_softkey_key_dup_store(self, error);

	if (store == NULL)
		return NULL;
	return kmx_softkey_device_get_key_path(store, kmx_key_get_id(KMX_KEY(self)), suffix);
}

/* decrypt the key file once per unlock, check it is the key we list, and
 * keep it in its one form */
static gboolean
kmx_softkey_key_load(KmxSoftkeyKey *self, GError **error)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) load_locker = g_mutex_locker_new(&self->load_mutex);
	g_autoptr(KmxSecret) file_key = NULL;
	g_autoptr(KmxSecret) der = NULL;
	g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;
	g_autoptr(GBytes) spki = NULL;
	g_autofree char *path = NULL;
	g_autoptr(KmxSoftkeyDevice) store = NULL;
	guint generation;
	gboolean loaded;

	g_mutex_lock(&self->mutex);
	loaded = self->ossl != NULL || self->der != NULL;
	generation = self->generation;
	g_mutex_unlock(&self->mutex);
	if (loaded)
		return TRUE;

	store = kmx_softkey_key_dup_store(self, error);
	if (store == NULL)
		return FALSE;
	file_key = kmx_softkey_device_dup_file_key(store, error);
	if (file_key == NULL)
		return FALSE;
	path = kmx_softkey_key_get_path(self, ".pem", error);
	if (path == NULL)
		return FALSE;
	der = kmx_softkey_pem_decrypt(path, file_key, error);
	if (der == NULL)
		return FALSE;
	ossl = kmx_softkey_ossl_key_new(der, error);
	if (ossl == NULL)
		return FALSE;
	spki = kmx_key_dup_public_key(KMX_KEY(self));
	if (!kmx_softkey_ossl_key_check_public(ossl, spki, NULL)) {
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
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_LOCKED,
				    "the store was locked; unlock it and try again");
		return FALSE;
	}
	/* the EVP_PKEY lives in the secure heap: kept while that has room */
	if (kmx_secure_heap_can_keep())
		self->ossl = g_steal_pointer(&ossl);
	else
		self->der = g_steal_pointer(&der);
	g_mutex_unlock(&self->mutex);
	return TRUE;
}

/* the unlocked key for one operation; unref it when done */
static KmxSoftkeyOsslKey *
kmx_softkey_key_acquire(KmxSoftkeyKey *self, GError **error)
{
	for (guint tries = 0; tries < 2; tries++) {
		g_autoptr(KmxSecret) der = NULL;
		KmxSoftkeyOsslKey *ossl = NULL;

		if (!kmx_softkey_key_load(self, error))
			return NULL;
		g_mutex_lock(&self->mutex);
		if (self->ossl != NULL)
			ossl = kmx_softkey_ossl_key_ref(self->ossl);
		else if (self->der != NULL)
			der = kmx_secret_ref(self->der);
		g_mutex_unlock(&self->mutex);
		if (ossl != NULL)
			return ossl;
		if (der != NULL)
			return kmx_softkey_ossl_key_new(der, error);
		/* locked between load and here: load again, which says LOCKED */
	}
	g_set_error_literal(error, KMX_ERROR, KMX_ERROR_LOCKED, "the store is locked");
	return NULL;
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
	KmxHash hash = kmx_mechanism_get_hash(mechanism);
	g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;

	if (kmx_mechanism_get_operation(mechanism) != KMX_OPERATION_SIGN) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not a signature algorithm",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (!kmx_softkey_key_check_mechanism(key, mechanism, error))
		return NULL;
	/* the core checks this too; a wrong length must never reach libcrypto */
	if (hash != KMX_HASH_NONE && g_bytes_get_size(data) != kmx_hash_get_length(hash)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s needs a %" G_GSIZE_FORMAT "-byte digest",
			    kmx_mechanism_to_string(mechanism),
			    kmx_hash_get_length(hash));
		return NULL;
	}
	ossl = kmx_softkey_key_acquire(self, error);
	if (ossl == NULL)
		return NULL;
	return kmx_softkey_ossl_sign(ossl, mechanism, data, error);
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
	g_autoptr(KmxSoftkeyOsslKey) ossl = NULL;

	if (!kmx_softkey_key_check_mechanism(key, mechanism, error))
		return NULL;
	if (mechanism != KMX_MECHANISM_RSA_PKCS1 && mechanism != KMX_MECHANISM_RSA_OAEP_SHA256) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not a decryption algorithm",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	/* a ciphertext of the wrong length is refused before the key is loaded */
	if (g_bytes_get_size(data) != kmx_key_type_get_bits(kmx_key_get_key_type(key)) / 8) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "an RSA ciphertext for this key is %u bytes, not %" G_GSIZE_FORMAT,
			    kmx_key_type_get_bits(kmx_key_get_key_type(key)) / 8,
			    g_bytes_get_size(data));
		return NULL;
	}
	ossl = kmx_softkey_key_acquire(self, error);
	if (ossl == NULL)
		return NULL;
	if (mechanism == KMX_MECHANISM_RSA_OAEP_SHA256)
		plain = kmx_softkey_ossl_decrypt_oaep_sha256(ossl, data, error);
	else
		plain = kmx_softkey_ossl_decrypt_pkcs1(ossl, data, error);
	return plain != NULL ? kmx_secret_to_bytes(plain) : NULL;
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
	ossl = kmx_softkey_key_acquire(self, error);
	if (ossl == NULL)
		return NULL;
	secret = kmx_softkey_ossl_derive(ossl, kmx_key_get_key_type(key), peer_public, error);
	return secret != NULL ? kmx_secret_to_bytes(secret) : NULL;
}

/* the creation time in the key's .info, or NULL if there is none or the
 * file cannot be read (a damaged .info is written afresh without it) */
static char *
kmx_softkey_key_read_created(const char *path, const char *id)
{
	g_autoptr(KmxSoftkeyKeyInfo) info = NULL;
	struct stat st;
	int fd;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0)
		info = kmx_softkey_key_info_read(fd, &st, path, id, NULL);
	close(fd);
	return info != NULL ? g_steal_pointer(&info->created) : NULL;
}

static gboolean
kmx_softkey_key_set_label(KmxKey *key, const char *label, GCancellable *cancellable, GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	g_autofree char *path = NULL;
	g_autofree char *created = NULL;
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = NULL;
	g_autoptr(GBytes) spki = kmx_key_dup_public_key(key);
	KmxSoftkeyKeyInfo info = {
	    .label = (char *)label,
	    .type = kmx_key_get_key_type(key),
	    .usage = kmx_key_get_usage(key),
	    .spki = spki,
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
	path = kmx_softkey_key_get_path(self, ".info", error);
	if (path == NULL)
		return FALSE;
	/* the creation time stays as the file has it (a store of 10,000 keys
	 * does not keep 10,000 of them in memory for a relabel) */
	created = kmx_softkey_key_read_created(path, kmx_key_get_id(key));
	info.created = created;
	return kmx_softkey_key_info_save(path, &info, error);
}

static gboolean
kmx_softkey_key_delete_key(KmxKey *key, GCancellable *cancellable, GError **error)
{
	KmxSoftkeyKey *self = KMX_SOFTKEY_KEY(key);
	g_autoptr(KmxSoftkeyDevice) store = kmx_softkey_key_dup_store(self, error);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->file_mutex);

	if (store == NULL)
		return FALSE;
	if (self->deleted)
		return TRUE;
	if (!kmx_softkey_device_delete_key(store, self, error)) {
		/* the key file went but its .info stayed: no label either */
		g_autofree char *pem =
		    kmx_softkey_device_get_key_path(store, kmx_key_get_id(key), ".pem");
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
}

/**
 * kmx_softkey_key_new:
 * @device: the store
 * @id: the key id, already checked against @info's public key
 * @info: the key's public facts
 *
 * Returns: (transfer full): a key; nothing is decrypted
 */
KmxSoftkeyKey *
kmx_softkey_key_new(KmxDevice *device, const char *id, const KmxSoftkeyKeyInfo *info)
{
	KmxSoftkeyKeyInfo copy = *info;

	copy.label = g_strdup(info->label);
	return kmx_softkey_key_new_take(device, id, &copy);
}

/**
 * kmx_softkey_key_new_take:
 *
 * kmx_softkey_key_new(), taking @info's label (set to %NULL) instead of
 * copying it: the loader's, once per key.  The creation time stays in the
 * .info, read again when the label changes.
 */
KmxSoftkeyKey *
kmx_softkey_key_new_take(KmxDevice *device, const char *id, KmxSoftkeyKeyInfo *info)
{
	/* the id is given: the base class need not hash the public key again */
	KmxKeyFacts facts = {
	    .id = id,
	    .device = device,
	    .label = g_steal_pointer(&info->label),
	    .key_type = info->type,
	    .usage = info->usage,
	    .public_key = info->spki,
	    .exportable = info->exportable,
	};
	return kmx_key_new_with_facts(KMX_TYPE_SOFTKEY_KEY, &facts);
}
