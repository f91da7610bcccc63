/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a TSS2 key file, used by the TPM
 *
 * <state dir>/<key id>.pem is the TSS2 PRIVATE KEY file (kmx-tpm-keyfile.c),
 * <key id>.info its label and creation time (a GKeyFile, like a soft
 * key's).  The public facts come from the key file's public area, so
 * listing needs no TPM.  Every operation runs on the device's executor.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>

#include "kmx-crypto.h"
#include "kmx-error.h"
#include "kmx-file.h"
#include "kmx-tpm-key.h"

struct _KmxTpmKey {
	KmxKey parent_instance;
	char *created;
};

G_DEFINE_TYPE(KmxTpmKey, kmx_tpm_key, KMX_TYPE_KEY)

static char *
kmx_tpm_key_path(KmxTpmKey *self, const char *suffix)
{
	KmxTpmDevice *device = KMX_TPM_DEVICE(kmx_key_get_device(KMX_KEY(self)));
	g_autofree char *name = g_strconcat(kmx_key_get_id(KMX_KEY(self)), suffix, NULL);

	return g_build_filename(kmx_tpm_device_get_dir(device), name, NULL);
}

static TPMI_ALG_HASH
kmx_tpm_hash_alg(KmxHash hash)
{
	switch (hash) {
	case KMX_HASH_SHA256:
		return TPM2_ALG_SHA256;
	case KMX_HASH_SHA384:
		return TPM2_ALG_SHA384;
	case KMX_HASH_SHA512:
		return TPM2_ALG_SHA512;
	default:
		return TPM2_ALG_NULL;
	}
}

static gboolean
kmx_tpm_key_not_supported(KmxKey *key, KmxMechanism mechanism, const char *why, GError **error)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "the TPM cannot do %s with key %s: %s",
		    kmx_mechanism_to_string(mechanism),
		    kmx_key_get_id(key),
		    why);
	return FALSE;
}

/* a TPM2B value left-padded to @size bytes */
static void
kmx_tpm_append_padded(GByteArray *out, const guint8 *data, gsize len, gsize size)
{
	static const guint8 zeros[64] = {0};

	if (len < size)
		g_byte_array_append(out, zeros, (guint)MIN(size - len, sizeof(zeros)));
	g_byte_array_append(out, data, (guint)len);
}

/* rsa-pkcs1 as given: TPM2_Sign takes a digest of a named hash only, so
 * the host pads the data with PKCS#1 v1.5 type 1 and the TPM applies the
 * private key to it with TPM2_RSA_Decrypt and no scheme.  That needs a key
 * with the decrypt attribute and no scheme of its own, which is what
 * keymux makes and imports (TPM.md); any other key is NotSupported. */
static GBytes *
kmx_tpm_key_sign_rsa_raw(KmxKey *key, GBytes *data, GCancellable *cancellable, GError **error)
{
	KmxTpmDevice *device = KMX_TPM_DEVICE(kmx_key_get_device(key));
	gsize k = kmx_key_type_get_bits(kmx_key_get_key_type(key)) / 8;
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(data, &len);
	TPM2B_PUBLIC_KEY_RSA in = {0};
	TPMT_RSA_DECRYPT scheme = {.scheme = TPM2_ALG_NULL};
	TPM2B_DATA label = {0};
	TPM2B_PUBLIC_KEY_RSA *sig = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	GBytes *out;
	TSS2_RC rc;

	if (!(kmx_key_get_usage(key) & KMX_KEY_USAGE_DECRYPT)) {
		kmx_tpm_key_not_supported(key,
					  KMX_MECHANISM_RSA_PKCS1_RAW,
					  "the TPM signs raw RSA data only with TPM2_RSA_Decrypt, "
					  "and this key file does not allow decryption",
					  error);
		return NULL;
	}
	/* the core checked the length; a wrong one must never reach the TPM */
	if (k > sizeof(in.buffer) || len + 11 > k) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the data is too long for the modulus");
		return NULL;
	}
	/* EM = 00 01 FF..FF 00 data (RFC 8017 9.2), as long as the modulus */
	in.size = (UINT16)k;
	in.buffer[1] = 0x01;
	memset(in.buffer + 2, 0xFF, k - len - 3);
	if (len > 0)
		memcpy(in.buffer + k - len, p, len);
	if (g_cancellable_set_error_if_cancelled(cancellable, error)) {
		kmx_error_normalize(error);
		return NULL;
	}
	if (!kmx_tpm_device_load_key(device, kmx_key_get_id(key), &handle, error))
		return NULL;
	rc = Esys_RSA_Decrypt(kmx_tpm_device_get_esys(device, NULL),
			      handle,
			      ESYS_TR_PASSWORD,
			      ESYS_TR_NONE,
			      ESYS_TR_NONE,
			      &in,
			      &scheme,
			      &label,
			      &sig);
	/* the key's own scheme is in the way: a signing one (RSA-PSS) makes
	 * the TPM refuse the key, a decryption one (RSAES, OAEP) fails to
	 * unpad our block, which is below any modulus, so nothing else is wrong */
	if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) &&
	    ((rc & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_ATTRIBUTES ||
	     (rc & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_SCHEME ||
	     (rc & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_VALUE)) {
		g_debug("TPM2_RSA_Decrypt for a raw signature: %s", Tss2_RC_Decode(rc));
		kmx_tpm_key_not_supported(
		    key,
		    KMX_MECHANISM_RSA_PKCS1_RAW,
		    "the key file gives the key a scheme of its own, and then "
		    "TPM2_RSA_Decrypt will not apply the bare private key",
		    error);
		return NULL;
	}
	if (!kmx_tpm_device_check_rc(device, rc, "signing", error))
		return NULL;
	if (sig->size != k) {
		Esys_Free(sig);
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "the TPM returned an RSA signature of the wrong size");
		return NULL;
	}
	out = g_bytes_new(sig->buffer, sig->size);
	Esys_Free(sig);
	return out;
}

static GBytes *
kmx_tpm_key_sign(KmxKey *key,
		 KmxMechanism mechanism,
		 GBytes *data,
		 KmxSecret *secret,
		 GCancellable *cancellable,
		 GError **error)
{
	KmxTpmDevice *device = KMX_TPM_DEVICE(kmx_key_get_device(key));
	TPMT_SIG_SCHEME scheme = {0};
	TPMT_TK_HASHCHECK check = {.tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL};
	TPM2B_DIGEST digest = {0};
	TPMT_SIGNATURE *sig = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	KmxKeyType type = kmx_key_get_key_type(key);
	g_autoptr(GBytes) fitted = NULL;
	GBytes *out = NULL;
	TSS2_RC rc;

	switch (mechanism) {
	case KMX_MECHANISM_RSA_PKCS1_RAW:
		return kmx_tpm_key_sign_rsa_raw(key, data, cancellable, error);
	case KMX_MECHANISM_ECDSA_RAW:
		/* the digest as long as the curve's hash (P-256 with SHA-256,
		 * P-384 with SHA-384), which is the order's length */
		fitted = kmx_ecdsa_digest_fit(type, data, error);
		if (fitted == NULL)
			return NULL;
		data = fitted;
		scheme.scheme = TPM2_ALG_ECDSA;
		break;
	case KMX_MECHANISM_ECDSA_SHA256:
	case KMX_MECHANISM_ECDSA_SHA384:
		scheme.scheme = TPM2_ALG_ECDSA;
		break;
	case KMX_MECHANISM_RSA_PKCS1_SHA256:
	case KMX_MECHANISM_RSA_PKCS1_SHA384:
	case KMX_MECHANISM_RSA_PKCS1_SHA512:
		scheme.scheme = TPM2_ALG_RSASSA;
		break;
	case KMX_MECHANISM_RSA_PSS_SHA256:
	case KMX_MECHANISM_RSA_PSS_SHA384:
	case KMX_MECHANISM_RSA_PSS_SHA512:
		scheme.scheme = TPM2_ALG_RSAPSS;
		break;
	default:
		kmx_tpm_key_not_supported(key,
					  mechanism,
					  "TPM2_Sign signs a digest with a named hash",
					  error);
		return NULL;
	}
	/* every scheme's details start with the hash */
	scheme.details.any.hashAlg = kmx_tpm_hash_alg(kmx_mechanism_get_hash(mechanism));
	if (mechanism == KMX_MECHANISM_ECDSA_RAW)
		scheme.details.any.hashAlg = type == KMX_KEY_TYPE_ECDSA_P384 ? TPM2_ALG_SHA384
									     : TPM2_ALG_SHA256;
	if (g_bytes_get_size(data) > sizeof(digest.buffer)) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "digest too long");
		return NULL;
	}
	digest.size = (UINT16)g_bytes_get_size(data);
	memcpy(digest.buffer, g_bytes_get_data(data, NULL), digest.size);
	if (g_cancellable_set_error_if_cancelled(cancellable, error)) {
		kmx_error_normalize(error);
		return NULL;
	}
	if (!kmx_tpm_device_load_key(device, kmx_key_get_id(key), &handle, error))
		return NULL;
	rc = Esys_Sign(kmx_tpm_device_get_esys(device, NULL),
		       handle,
		       kmx_tpm_device_session(device, 0),
		       ESYS_TR_NONE,
		       ESYS_TR_NONE,
		       &digest,
		       &scheme,
		       &check,
		       &sig);
	if (!kmx_tpm_device_check_rc(device, rc, "signing", error))
		return NULL;
	if (scheme.scheme == TPM2_ALG_ECDSA) {
		guint size = type == KMX_KEY_TYPE_ECDSA_P384 ? 48 : 32;
		g_autoptr(GByteArray) rs = g_byte_array_new();
		g_autoptr(GBytes) raw = NULL;
		TPMS_SIGNATURE_ECC *ecc = &sig->signature.ecdsa;

		if (ecc->signatureR.size > size || ecc->signatureS.size > size) {
			Esys_Free(sig);
			g_set_error_literal(
			    error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the TPM returned an ECDSA signature too long for the curve");
			return NULL;
		}
		kmx_tpm_append_padded(rs, ecc->signatureR.buffer, ecc->signatureR.size, size);
		kmx_tpm_append_padded(rs, ecc->signatureS.buffer, ecc->signatureS.size, size);
		raw = g_byte_array_free_to_bytes(g_steal_pointer(&rs));
		out = kmx_ecdsa_signature_to_der(type, raw, error);
	} else {
		/* RSASSA and RSAPSS share the layout */
		out = g_bytes_new(sig->signature.rsassa.sig.buffer, sig->signature.rsassa.sig.size);
	}
	Esys_Free(sig);
	return out;
}

static GBytes *
kmx_tpm_key_decrypt(KmxKey *key,
		    KmxMechanism mechanism,
		    GBytes *data,
		    KmxSecret *secret,
		    GCancellable *cancellable,
		    GError **error)
{
	KmxTpmDevice *device = KMX_TPM_DEVICE(kmx_key_get_device(key));
	TPM2B_PUBLIC_KEY_RSA in = {0};
	TPMT_RSA_DECRYPT scheme = {0};
	TPM2B_DATA label = {0};
	TPM2B_PUBLIC_KEY_RSA *plain = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	g_autoptr(KmxSecret) out = NULL;
	TSS2_RC rc;

	if (mechanism == KMX_MECHANISM_RSA_PKCS1) {
		scheme.scheme = TPM2_ALG_RSAES;
	} else if (mechanism == KMX_MECHANISM_RSA_OAEP_SHA256) {
		scheme.scheme = TPM2_ALG_OAEP;
		scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;
	} else {
		kmx_tpm_key_not_supported(key, mechanism, "not an RSA decryption", error);
		return NULL;
	}
	if (g_bytes_get_size(data) > sizeof(in.buffer)) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the ciphertext is longer than the modulus");
		return NULL;
	}
	in.size = (UINT16)g_bytes_get_size(data);
	memcpy(in.buffer, g_bytes_get_data(data, NULL), in.size);
	if (!kmx_tpm_device_load_key(device, kmx_key_get_id(key), &handle, error))
		return NULL;
	rc = Esys_RSA_Decrypt(kmx_tpm_device_get_esys(device, NULL),
			      handle,
			      kmx_tpm_device_session(device, TPMA_SESSION_ENCRYPT),
			      ESYS_TR_NONE,
			      ESYS_TR_NONE,
			      &in,
			      &scheme,
			      &label,
			      &plain);
	if (!kmx_tpm_device_check_rc(device, rc, "decrypting", error))
		return NULL;
	out = kmx_secret_new_from_data(plain->buffer, plain->size);
	kmx_secure_zero(plain->buffer, plain->size);
	Esys_Free(plain);
	return kmx_secret_to_bytes(out);
}

static GBytes *
kmx_tpm_key_derive(KmxKey *key,
		   KmxMechanism mechanism,
		   GBytes *peer_public,
		   KmxSecret *secret,
		   GCancellable *cancellable,
		   GError **error)
{
	KmxTpmDevice *device = KMX_TPM_DEVICE(kmx_key_get_device(key));
	KmxKeyType type = kmx_key_get_key_type(key);
	guint size = type == KMX_KEY_TYPE_ECDSA_P384   ? 48
		     : type == KMX_KEY_TYPE_ECDSA_P256 ? 32
						       : 0;
	TPM2B_ECC_POINT in = {0};
	TPM2B_ECC_POINT *z = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(KmxSecret) out = NULL;
	const guint8 *p;
	gsize len;
	TSS2_RC rc;

	if (mechanism != KMX_MECHANISM_ECDH || size == 0) {
		kmx_tpm_key_not_supported(key, mechanism, "the TPM derives with ECDH", error);
		return NULL;
	}
	spki = kmx_spki_parse_peer(kmx_key_get_key_type(key), peer_public, &raw, error);
	if (spki == NULL)
		return NULL;
	p = g_bytes_get_data(raw, &len);
	if (len != 1 + 2 * (gsize)size || p[0] != 0x04) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the peer's EC point is not uncompressed");
		return NULL;
	}
	in.point.x.size = (UINT16)size;
	memcpy(in.point.x.buffer, p + 1, size);
	in.point.y.size = (UINT16)size;
	memcpy(in.point.y.buffer, p + 1 + size, size);
	if (!kmx_tpm_device_load_key(device, kmx_key_get_id(key), &handle, error))
		return NULL;
	rc = Esys_ECDH_ZGen(kmx_tpm_device_get_esys(device, NULL),
			    handle,
			    kmx_tpm_device_session(device, TPMA_SESSION_ENCRYPT),
			    ESYS_TR_NONE,
			    ESYS_TR_NONE,
			    &in,
			    &z);
	if (!kmx_tpm_device_check_rc(device, rc, "deriving", error))
		return NULL;
	if (z->point.x.size > size) {
		kmx_secure_zero(z, sizeof(*z));
		Esys_Free(z);
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "the TPM's ECDH result is too long");
		return NULL;
	}
	out = kmx_secret_new(size);
	memcpy(kmx_secret_get_data(out) + (size - z->point.x.size),
	       z->point.x.buffer,
	       z->point.x.size);
	kmx_secure_zero(z, sizeof(*z));
	Esys_Free(z);
	return kmx_secret_to_bytes(out);
}

static gboolean
kmx_tpm_key_write_info(KmxTpmKey *self, const char *label, GError **error)
{
	KmxKey *key = KMX_KEY(self);
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_auto(GStrv) usage = kmx_key_usage_to_strv(kmx_key_get_usage(key));
	g_autofree char *path = kmx_tpm_key_path(self, ".info");
	g_autofree char *text = NULL;
	gsize len = 0;

	g_key_file_set_string(kf, "key", "label", label != NULL ? label : "");
	g_key_file_set_string(kf,
			      "key",
			      "algorithm",
			      kmx_key_type_to_string(kmx_key_get_key_type(key)));
	g_key_file_set_string_list(kf,
				   "key",
				   "usage",
				   (const char *const *)usage,
				   g_strv_length(usage));
	if (self->created != NULL)
		g_key_file_set_string(kf, "key", "created", self->created);
	text = g_key_file_to_data(kf, &len, NULL);
	return kmx_file_write_atomic(path, text, len, 0600, error);
}

static gboolean
kmx_tpm_key_set_label(KmxKey *key, const char *label, GCancellable *cancellable, GError **error)
{
	return kmx_tpm_key_write_info(KMX_TPM_KEY(key), label, error);
}

static gboolean
kmx_tpm_key_delete_key(KmxKey *key, GCancellable *cancellable, GError **error)
{
	KmxTpmKey *self = KMX_TPM_KEY(key);
	g_autofree char *pem = kmx_tpm_key_path(self, ".pem");
	g_autofree char *info = kmx_tpm_key_path(self, ".info");

	kmx_tpm_device_unload_key(KMX_TPM_DEVICE(kmx_key_get_device(key)), kmx_key_get_id(key));
	/* the key file first: without it the key is gone, whatever follows */
	if (!kmx_file_remove_durable(pem, error))
		return FALSE;
	return kmx_file_remove_durable(info, error);
}

/**
 * kmx_tpm_key_save:
 *
 * Writes the key's .info, then its key file (which makes it exist), each
 * atomically and durably.
 */
gboolean
kmx_tpm_key_save(KmxTpmKey *self, const KmxTpmKeyFile *file, GError **error)
{
	g_autofree char *label = kmx_key_dup_label(KMX_KEY(self));
	g_autofree char *path = kmx_tpm_key_path(self, ".pem");
	g_autoptr(GBytes) pem = NULL;

	if (!kmx_tpm_key_write_info(self, label, error))
		return FALSE;
	pem = kmx_tpm_keyfile_encode(file, error);
	if (pem == NULL)
		return FALSE;
	return kmx_file_write_atomic(path,
				     g_bytes_get_data(pem, NULL),
				     g_bytes_get_size(pem),
				     0600,
				     error);
}

static void
kmx_tpm_key_finalize(GObject *object)
{
	KmxTpmKey *self = KMX_TPM_KEY(object);

	g_free(self->created);
	G_OBJECT_CLASS(kmx_tpm_key_parent_class)->finalize(object);
}

static void
kmx_tpm_key_class_init(KmxTpmKeyClass *klass)
{
	KmxKeyClass *key_class = KMX_KEY_CLASS(klass);

	G_OBJECT_CLASS(klass)->finalize = kmx_tpm_key_finalize;
	key_class->sign = kmx_tpm_key_sign;
	key_class->decrypt = kmx_tpm_key_decrypt;
	key_class->derive = kmx_tpm_key_derive;
	key_class->set_label = kmx_tpm_key_set_label;
	key_class->delete_key = kmx_tpm_key_delete_key;
}

static void
kmx_tpm_key_init(KmxTpmKey *self)
{
}

static KmxKey *
kmx_tpm_key_new_full(KmxTpmDevice *device,
		     const KmxTpmKeyFile *file,
		     const char *label,
		     const char *created,
		     GError **error)
{
	g_autoptr(GBytes) spki = NULL;
	KmxKeyType type = KMX_KEY_TYPE_UNKNOWN;
	KmxKeyUsage usage;
	KmxTpmKey *self;

	if (file->parent != KMX_TPM_PARENT_OWNER) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "the key's parent is 0x%08x; keymux loads keys under the owner's "
			    "storage primary, 0x%08x",
			    file->parent,
			    KMX_TPM_PARENT_OWNER);
		return NULL;
	}
	if (file->sealed) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "the file holds sealed data, not a key");
		return NULL;
	}
	spki = kmx_tpm_public_to_spki(&file->pub.publicArea, &type, error);
	if (spki == NULL)
		return NULL;
	usage = kmx_tpm_public_get_usage(&file->pub.publicArea) & kmx_key_type_get_usage(type);
	self = g_object_new(KMX_TYPE_TPM_KEY,
			    "device",
			    device,
			    "public-key",
			    spki,
			    "key-type",
			    (guint)type,
			    "usage",
			    (guint)usage,
			    "label",
			    label,
			    "locator",
			    "file",
			    NULL);
	self->created = g_strdup(created);
	return KMX_KEY(self);
}

/**
 * kmx_tpm_key_new:
 *
 * Returns: (transfer full): a new key (not saved yet) from what TPM2_Create
 * returned
 */
KmxKey *
kmx_tpm_key_new(KmxTpmDevice *device, const KmxTpmKeyFile *file, const char *label, GError **error)
{
	g_autoptr(GDateTime) now = g_date_time_new_now_utc();
	g_autofree char *created = g_date_time_format_iso8601(now);

	return kmx_tpm_key_new_full(device, file, label, created, error);
}

/**
 * kmx_tpm_key_load:
 * @pem_path: a `<key id>.pem`
 *
 * Reads a key file and the .info beside it.
 *
 * Returns: (transfer full): the key
 */
KmxKey *
kmx_tpm_key_load(KmxTpmDevice *device, const char *pem_path, GError **error)
{
	g_autofree char *pem = NULL;
	g_autofree char *base = NULL;
	g_autofree char *info_path = NULL;
	g_autofree char *label = NULL;
	g_autofree char *created = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(KmxKey) key = NULL;
	KmxTpmKeyFile file;
	gsize len = 0;
	gboolean ok;

	if (!g_file_get_contents(pem_path, &pem, &len, error))
		return NULL;
	ok = kmx_tpm_keyfile_decode(pem, len, &file, error);
	kmx_secure_zero(pem, len);
	if (!ok)
		return NULL;
	base = g_strndup(pem_path, strlen(pem_path) - strlen(".pem"));
	info_path = g_strconcat(base, ".info", NULL);
	if (g_key_file_load_from_file(kf, info_path, G_KEY_FILE_NONE, NULL)) {
		label = g_key_file_get_string(kf, "key", "label", NULL);
		created = g_key_file_get_string(kf, "key", "created", NULL);
	}
	key = kmx_tpm_key_new_full(device, &file, label, created, error);
	kmx_secure_zero(&file, sizeof(file));
	if (key == NULL)
		return NULL;
	if (!g_str_has_suffix(base, kmx_key_get_id(key))) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the file holds key %s, not the one its name says",
			    kmx_key_get_id(key));
		return NULL;
	}
	return g_steal_pointer(&key);
}
