/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: public-key encodings every backend needs, done by gnutls
 *
 * A card or a TPM hands out raw key material (an RSA modulus and exponent,
 * an EC point, a raw Curve25519 key) and raw r||s signatures, and wants a
 * DigestInfo to sign; keymux speaks DER SubjectPublicKeyInfo and DER
 * signatures.  gnutls does every encoding and every check of a key here,
 * except one: gnutls 3.7 imports no raw X25519 public key
 * (gnutls_pubkey_import_ecc_raw() takes the EdDSA curves only), so libcrypto
 * encodes that one SubjectPublicKeyInfo.
 *
 * Every input may come from a hostile peer or a broken device: each length
 * is checked before a byte is read, and every error says what was expected.
 */
#include "config.h"

#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "kmx-crypto.h"
#include "kmx-error.h"

/* what a keymux RSA key may be; cards have 2048 to 4096 bits */
#define KMX_RSA_MIN_BYTES (1024 / 8)
#define KMX_RSA_MAX_BYTES (8192 / 8)
/* a public exponent of more than 64 bits is no RSA key anyone made */
#define KMX_RSA_MAX_EXPONENT_BYTES 8
#define KMX_RAW_KEY_SIZE	   32

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_pubkey_t, gnutls_pubkey_deinit, NULL)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)

static gpointer
kmx_crypto_gnutls_error(GError **error, int rc, KmxError code, const char *what)
{
	g_set_error(error, KMX_ERROR, code, "%s: %s", what, gnutls_strerror(rc));
	return NULL;
}

static gnutls_ecc_curve_t
kmx_crypto_curve(KmxKeyType type)
{
	switch (type) {
	case KMX_KEY_TYPE_ECDSA_P256:
		return GNUTLS_ECC_CURVE_SECP256R1;
	case KMX_KEY_TYPE_ECDSA_P384:
		return GNUTLS_ECC_CURVE_SECP384R1;
	case KMX_KEY_TYPE_ED25519:
		return GNUTLS_ECC_CURVE_ED25519;
	case KMX_KEY_TYPE_X25519:
		return GNUTLS_ECC_CURVE_X25519;
	default:
		return GNUTLS_ECC_CURVE_INVALID;
	}
}

/* the names people know the curves by, for messages */
static const char *
kmx_crypto_curve_name(KmxKeyType type)
{
	switch (type) {
	case KMX_KEY_TYPE_ECDSA_P256:
		return "P-256";
	case KMX_KEY_TYPE_ECDSA_P384:
		return "P-384";
	case KMX_KEY_TYPE_ED25519:
		return "Ed25519";
	case KMX_KEY_TYPE_X25519:
		return "X25519";
	default:
		return kmx_key_type_to_string(type);
	}
}

/* the size of a coordinate (or of a raw key) of @type's curve */
static gsize
kmx_crypto_field_size(KmxKeyType type)
{
	return gnutls_ecc_curve_get_size(kmx_crypto_curve(type));
}

/* a view of bytes for gnutls; every caller has bounded the size */
static gnutls_datum_t
kmx_crypto_datum(const guint8 *data, gsize len)
{
	gnutls_datum_t d = {(unsigned char *)data, (unsigned int)len};
	return d;
}

/* an unsigned big-endian integer without its leading zero bytes */
static void
kmx_crypto_strip_zeros(const guint8 **data, gsize *len)
{
	while (*len > 0 && (*data)[0] == 0) {
		(*data)++;
		(*len)--;
	}
}

static GBytes *
kmx_crypto_take_datum(gnutls_datum_t *d)
{
	GBytes *bytes = g_bytes_new(d->data, d->size);
	gnutls_free(d->data);
	d->data = NULL;
	d->size = 0;
	return bytes;
}

/* the DER SubjectPublicKeyInfo of a key gnutls has read and checked */
static GBytes *
kmx_crypto_export_spki(gnutls_pubkey_t key, GError **error)
{
	gnutls_datum_t out = {NULL, 0};
	int rc = gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &out);

	if (rc < 0)
		return kmx_crypto_gnutls_error(error,
					       rc,
					       KMX_ERROR_FAILED,
					       "cannot encode the public key");
	return kmx_crypto_take_datum(&out);
}

/**
 * kmx_spki_new_from_rsa:
 * @modulus: the modulus n, unsigned big-endian (leading zero bytes allowed)
 * @exponent: the public exponent e, unsigned big-endian
 * @error: return location for a #GError
 *
 * Encodes an RSA public key as a card returns it.  The modulus must be odd
 * and 1024 to 8192 bits long, the exponent odd, at least 3 and at most
 * 64 bits long.
 *
 * Returns: (transfer full): the DER SubjectPublicKeyInfo, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_spki_new_from_rsa(GBytes *modulus, GBytes *exponent, GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	const guint8 *n;
	const guint8 *e;
	gsize n_len = 0;
	gsize e_len = 0;
	gnutls_datum_t dn;
	gnutls_datum_t de;
	int rc;

	g_return_val_if_fail(modulus != NULL, NULL);
	g_return_val_if_fail(exponent != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	n = g_bytes_get_data(modulus, &n_len);
	e = g_bytes_get_data(exponent, &e_len);
	kmx_crypto_strip_zeros(&n, &n_len);
	kmx_crypto_strip_zeros(&e, &e_len);
	if (n_len < KMX_RSA_MIN_BYTES || n_len > KMX_RSA_MAX_BYTES || (n[n_len - 1] & 1) == 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "an RSA modulus is an odd number of %d to %d bits; this one has "
			    "%" G_GSIZE_FORMAT " significant bytes%s",
			    KMX_RSA_MIN_BYTES * 8,
			    KMX_RSA_MAX_BYTES * 8,
			    n_len,
			    n_len > 0 && (n[n_len - 1] & 1) == 0 ? " and is even" : "");
		return NULL;
	}
	if (e_len == 0 || e_len > KMX_RSA_MAX_EXPONENT_BYTES || (e[e_len - 1] & 1) == 0 ||
	    (e_len == 1 && e[0] < 3)) {
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "an RSA public exponent is an odd number from 3 to 2^%d; this one is not",
		    KMX_RSA_MAX_EXPONENT_BYTES * 8);
		return NULL;
	}
	dn = kmx_crypto_datum(n, n_len);
	de = kmx_crypto_datum(e, e_len);
	gnutls_pubkey_init(&key);
	rc = gnutls_pubkey_import_rsa_raw(key, &dn, &de);
	if (rc < 0)
		return kmx_crypto_gnutls_error(error,
					       rc,
					       KMX_ERROR_INVALID_ARGUMENT,
					       "cannot read the RSA public key");
	return kmx_crypto_export_spki(key, error);
}

/* @what (e.g. "the peer's EC point") as a key of @type, on the curve */
static gnutls_pubkey_t
kmx_crypto_import_ec_point(KmxKeyType type,
			   const guint8 *p,
			   gsize len,
			   const char *what,
			   GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	gsize size = kmx_crypto_field_size(type);
	gnutls_datum_t x;
	gnutls_datum_t y;
	int rc;

	if (len == 1 + size && (p[0] == 0x02 || p[0] == 0x03)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is compressed, which keymux does not take: give the uncompressed "
			    "point (0x04||X||Y, %" G_GSIZE_FORMAT " bytes on %s)",
			    what,
			    1 + 2 * size,
			    kmx_crypto_curve_name(type));
		return NULL;
	}
	if (len != 1 + 2 * size || p[0] != 0x04) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s must be uncompressed, 0x04||X||Y, %" G_GSIZE_FORMAT
			    " bytes on %s (%" G_GSIZE_FORMAT " bytes given)",
			    what,
			    1 + 2 * size,
			    kmx_crypto_curve_name(type),
			    len);
		return NULL;
	}
	x = kmx_crypto_datum(p + 1, size);
	y = kmx_crypto_datum(p + 1 + size, size);
	gnutls_pubkey_init(&key);
	/* gnutls stores the coordinates as it reads them (zero it refuses);
	 * verify_params checks x, y < p and that the point is on the curve */
	rc = gnutls_pubkey_import_ecc_raw(key, kmx_crypto_curve(type), &x, &y);
	if (rc >= 0)
		rc = gnutls_pubkey_verify_params(key);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not on %s",
			    what,
			    kmx_crypto_curve_name(type));
		return NULL;
	}
	return g_steal_pointer(&key);
}

/**
 * kmx_spki_new_from_ec_point:
 * @type: %KMX_KEY_TYPE_ECDSA_P256 or %KMX_KEY_TYPE_ECDSA_P384
 * @point: the uncompressed point, 0x04||X||Y
 * @error: return location for a #GError
 *
 * Encodes an EC public key as a card or a TPM returns it, after checking
 * that the point is on the curve.
 *
 * Returns: (transfer full): the DER SubjectPublicKeyInfo, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_spki_new_from_ec_point(KmxKeyType type, GBytes *point, GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	gsize len = 0;
	const guint8 *p;

	g_return_val_if_fail(kmx_key_type_is_ec(type), NULL);
	g_return_val_if_fail(point != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	p = g_bytes_get_data(point, &len);
	key = kmx_crypto_import_ec_point(type, p, len, "the EC point", error);
	if (key == NULL)
		return NULL;
	return kmx_crypto_export_spki(key, error);
}

/* gnutls 3.7 cannot import a raw X25519 key: libcrypto encodes it */
static GBytes *
kmx_crypto_x25519_spki(const guint8 *p, GError **error)
{
	g_autoptr(EVP_PKEY) pkey = NULL;
	unsigned char *der = NULL;
	GBytes *spki;
	int len;

	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, p, KMX_RAW_KEY_SIZE);
	len = pkey != NULL ? i2d_PUBKEY(pkey, &der) : -1;
	if (len <= 0) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "cannot encode the X25519 public key");
		return NULL;
	}
	spki = g_bytes_new(der, (gsize)len);
	OPENSSL_free(der);
	return spki;
}

/**
 * kmx_spki_new_from_raw:
 * @type: %KMX_KEY_TYPE_ED25519 or %KMX_KEY_TYPE_X25519
 * @key: the raw 32-byte public key (RFC 8032, RFC 7748)
 * @error: return location for a #GError
 *
 * Encodes a raw Curve25519 public key (RFC 8410).
 *
 * Returns: (transfer full): the DER SubjectPublicKeyInfo, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_spki_new_from_raw(KmxKeyType type, GBytes *key, GError **error)
{
	g_auto(gnutls_pubkey_t) pub = NULL;
	gsize len = 0;
	const guint8 *p;
	gnutls_datum_t x;
	int rc;

	g_return_val_if_fail(type == KMX_KEY_TYPE_ED25519 || type == KMX_KEY_TYPE_X25519, NULL);
	g_return_val_if_fail(key != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	p = g_bytes_get_data(key, &len);
	if (len != KMX_RAW_KEY_SIZE) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a raw %s public key is %d bytes, not %" G_GSIZE_FORMAT,
			    kmx_crypto_curve_name(type),
			    KMX_RAW_KEY_SIZE,
			    len);
		return NULL;
	}
	if (type == KMX_KEY_TYPE_X25519)
		return kmx_crypto_x25519_spki(p, error);
	x = kmx_crypto_datum(p, len);
	gnutls_pubkey_init(&pub);
	rc = gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &x, NULL);
	if (rc < 0)
		return kmx_crypto_gnutls_error(error,
					       rc,
					       KMX_ERROR_INVALID_ARGUMENT,
					       "cannot read the Ed25519 public key");
	return kmx_crypto_export_spki(pub, error);
}

/* the raw form of a checked key: 0x04||X||Y, or the 32-byte X25519 key */
static GBytes *
kmx_crypto_export_raw(KmxKeyType type, gnutls_pubkey_t key, GError **error)
{
	gsize size = kmx_crypto_field_size(type);
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	gnutls_datum_t x = {NULL, 0};
	gnutls_datum_t y = {NULL, 0};
	g_autofree guint8 *point = NULL;
	int rc;

	if (type == KMX_KEY_TYPE_X25519) {
		rc = gnutls_pubkey_export_ecc_raw2(key, &curve, &x, NULL, 0);
		if (rc < 0)
			return kmx_crypto_gnutls_error(error,
						       rc,
						       KMX_ERROR_FAILED,
						       "cannot read the X25519 key");
		if (x.size != size) {
			gnutls_free(x.data);
			g_set_error_literal(error,
					    KMX_ERROR,
					    KMX_ERROR_INVALID_ARGUMENT,
					    "the X25519 key is not 32 bytes");
			return NULL;
		}
		return kmx_crypto_take_datum(&x);
	}
	/* coordinates without leading zeros, right-aligned in the point */
	rc = gnutls_pubkey_export_ecc_raw2(key, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ);
	if (rc < 0)
		return kmx_crypto_gnutls_error(error,
					       rc,
					       KMX_ERROR_FAILED,
					       "cannot read the EC point");
	if (x.size <= size && y.size <= size) {
		point = g_malloc0(1 + 2 * size);
		point[0] = 0x04;
		memcpy(point + 1 + size - x.size, x.data, x.size);
		memcpy(point + 1 + 2 * size - y.size, y.data, y.size);
	}
	gnutls_free(x.data);
	gnutls_free(y.data);
	if (point == NULL) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the EC point is larger than its curve");
		return NULL;
	}
	return g_bytes_new_take(g_steal_pointer(&point), 1 + 2 * size);
}

/* what a key of @type is, for messages */
static const char *
kmx_crypto_describe(KmxKeyType type)
{
	switch (type) {
	case KMX_KEY_TYPE_ECDSA_P256:
		return "an EC key on P-256";
	case KMX_KEY_TYPE_ECDSA_P384:
		return "an EC key on P-384";
	case KMX_KEY_TYPE_ED25519:
		return "an Ed25519 key";
	case KMX_KEY_TYPE_X25519:
		return "an X25519 key";
	default:
		return NULL;
	}
}

/* the keymux type of a public key gnutls has read, or UNKNOWN */
static KmxKeyType
kmx_crypto_pubkey_type(gnutls_pubkey_t key)
{
	static const KmxKeyType curves[] = {
	    KMX_KEY_TYPE_ECDSA_P256,
	    KMX_KEY_TYPE_ECDSA_P384,
	    KMX_KEY_TYPE_ED25519,
	    KMX_KEY_TYPE_X25519,
	};
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	gnutls_datum_t x = {NULL, 0};
	gnutls_datum_t y = {NULL, 0};

	/* fails for RSA and the other keys without a curve */
	if (gnutls_pubkey_export_ecc_raw2(key, &curve, &x, &y, 0) < 0)
		return KMX_KEY_TYPE_UNKNOWN;
	gnutls_free(x.data);
	gnutls_free(y.data);
	for (guint i = 0; i < G_N_ELEMENTS(curves); i++) {
		if (kmx_crypto_curve(curves[i]) == curve)
			return curves[i];
	}
	return KMX_KEY_TYPE_UNKNOWN;
}

/* a DER SubjectPublicKeyInfo that must be a key of @type */
static gnutls_pubkey_t
kmx_crypto_import_peer_spki(KmxKeyType type, const guint8 *p, gsize len, GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	gnutls_datum_t d = kmx_crypto_datum(p, len);
	KmxKeyType is;
	int rc;

	gnutls_pubkey_init(&key);
	/* gnutls refuses trailing data after the SEQUENCE */
	rc = gnutls_pubkey_import(key, &d, GNUTLS_X509_FMT_DER);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the peer public key is not a valid SubjectPublicKeyInfo (%s)",
			    gnutls_strerror(rc));
		return NULL;
	}
	is = kmx_crypto_pubkey_type(key);
	if (is != type) {
		const char *pk = gnutls_pk_get_name(gnutls_pubkey_get_pk_algorithm(key, NULL));
		g_autofree char *what = is != KMX_KEY_TYPE_UNKNOWN
					    ? g_strdup(kmx_crypto_describe(is))
					    : g_strdup_printf("a key of type %s", pk ?: "unknown");
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "the peer key is %s, not %s: give a peer key of the same kind as this key",
		    what,
		    kmx_crypto_describe(type));
		return NULL;
	}
	if (kmx_key_type_is_ec(type) && gnutls_pubkey_verify_params(key) < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the peer's EC point is not on %s",
			    kmx_crypto_curve_name(type));
		return NULL;
	}
	return g_steal_pointer(&key);
}

/**
 * kmx_spki_parse_peer:
 * @type: the type of our key: %KMX_KEY_TYPE_ECDSA_P256,
 *   %KMX_KEY_TYPE_ECDSA_P384 or %KMX_KEY_TYPE_X25519
 * @peer: hostile bytes: a DER SubjectPublicKeyInfo, an uncompressed EC point
 *   (0x04||X||Y) or a raw 32-byte X25519 key
 * @raw: (out) (optional) (transfer full): the peer key in raw form, the
 *   uncompressed point or the 32-byte X25519 key, as a card or a TPM wants it
 * @error: return location for a #GError
 *
 * Reads the peer public key of a key agreement (Derive) and checks that it
 * is a key of the same kind as ours: on the same curve, and for an EC key,
 * a point on that curve.  A small-order X25519 key passes; the agreement
 * itself must refuse its all-zero result.
 *
 * Returns: (transfer full): the peer key as a DER SubjectPublicKeyInfo, or
 * %NULL with %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_spki_parse_peer(KmxKeyType type, GBytes *peer, GBytes **raw, GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	g_autoptr(GBytes) spki = NULL;
	gsize size = kmx_crypto_field_size(type);
	gsize len = 0;
	const guint8 *p;

	g_return_val_if_fail(kmx_key_type_is_ec(type) || type == KMX_KEY_TYPE_X25519, NULL);
	g_return_val_if_fail(peer != NULL, NULL);
	g_return_val_if_fail(raw == NULL || *raw == NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	p = g_bytes_get_data(peer, &len);
	if (type == KMX_KEY_TYPE_X25519 && len == KMX_RAW_KEY_SIZE) {
		spki = kmx_crypto_x25519_spki(p, error);
		if (spki == NULL)
			return NULL;
		if (raw != NULL)
			*raw = g_bytes_ref(peer);
		return g_steal_pointer(&spki);
	}
	/* a DER SEQUENCE starts 0x30, a point 0x02, 0x03 or 0x04 */
	if (kmx_key_type_is_ec(type) && len > 0 && len <= 1 + 2 * size && p[0] != 0x30) {
		key = kmx_crypto_import_ec_point(type, p, len, "the peer's EC point", error);
		if (key == NULL)
			return NULL;
		spki = kmx_crypto_export_spki(key, error);
		if (spki == NULL)
			return NULL;
		if (raw != NULL)
			*raw = g_bytes_ref(peer);
		return g_steal_pointer(&spki);
	}
	if (len == 0 || len > KMX_SPKI_PEER_MAX_SIZE || p[0] != 0x30) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the peer public key must be a DER SubjectPublicKeyInfo or %s "
			    "(%" G_GSIZE_FORMAT " bytes given)",
			    type == KMX_KEY_TYPE_X25519 ? "a raw 32-byte X25519 key"
							: "an uncompressed EC point (0x04||X||Y)",
			    len);
		return NULL;
	}
	key = kmx_crypto_import_peer_spki(type, p, len, error);
	if (key == NULL)
		return NULL;
	spki = kmx_crypto_export_spki(key, error);
	if (spki == NULL)
		return NULL;
	if (raw != NULL) {
		*raw = kmx_crypto_export_raw(type, key, error);
		if (*raw == NULL)
			return NULL;
	}
	return g_steal_pointer(&spki);
}

/**
 * kmx_digest_info_new:
 * @hash: %KMX_HASH_SHA256, %KMX_HASH_SHA384 or %KMX_HASH_SHA512
 * @digest: the digest, exactly as long as @hash makes them
 * @error: return location for a #GError
 *
 * Encodes the DER DigestInfo (RFC 8017, 9.2) that an RSA PKCS#1 v1.5
 * signature signs, for a device that pads but does not hash.
 *
 * Returns: (transfer full): the DigestInfo, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_digest_info_new(KmxHash hash, GBytes *digest, GError **error)
{
	gnutls_digest_algorithm_t algo = GNUTLS_DIG_UNKNOWN;
	gnutls_datum_t out = {NULL, 0};
	gnutls_datum_t d;
	gsize len = 0;
	const guint8 *p;
	int rc;

	if (hash == KMX_HASH_SHA256)
		algo = GNUTLS_DIG_SHA256;
	else if (hash == KMX_HASH_SHA384)
		algo = GNUTLS_DIG_SHA384;
	else if (hash == KMX_HASH_SHA512)
		algo = GNUTLS_DIG_SHA512;
	g_return_val_if_fail(algo != GNUTLS_DIG_UNKNOWN, NULL);
	g_return_val_if_fail(digest != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	p = g_bytes_get_data(digest, &len);
	/* gnutls encodes a digest of any length */
	if (len != kmx_hash_get_length(hash)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a %s digest is %" G_GSIZE_FORMAT " bytes, not %" G_GSIZE_FORMAT,
			    gnutls_digest_get_name(algo),
			    kmx_hash_get_length(hash),
			    len);
		return NULL;
	}
	d = kmx_crypto_datum(p, len);
	rc = gnutls_encode_ber_digest_info(algo, &d, &out);
	if (rc < 0)
		return kmx_crypto_gnutls_error(error,
					       rc,
					       KMX_ERROR_FAILED,
					       "cannot encode the DigestInfo");
	return kmx_crypto_take_datum(&out);
}

/**
 * kmx_ecdsa_signature_to_der:
 * @type: %KMX_KEY_TYPE_ECDSA_P256 or %KMX_KEY_TYPE_ECDSA_P384
 * @rs: r||s, each as long as a coordinate of the curve (32 or 48 bytes)
 * @error: return location for a #GError
 *
 * Encodes an ECDSA signature as a card or a TPM returns it in the DER
 * Ecdsa-Sig-Value (RFC 3279) that keymux replies with.
 *
 * Returns: (transfer full): the DER signature, or %NULL with
 * %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_ecdsa_signature_to_der(KmxKeyType type, GBytes *rs, GError **error)
{
	gnutls_datum_t out = {NULL, 0};
	gnutls_datum_t dr;
	gnutls_datum_t ds;
	gsize size;
	gsize len = 0;
	gsize r_len;
	gsize s_len;
	const guint8 *r;
	const guint8 *s;
	int rc;

	g_return_val_if_fail(kmx_key_type_is_ec(type), NULL);
	g_return_val_if_fail(rs != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	size = kmx_crypto_field_size(type);
	r = g_bytes_get_data(rs, &len);
	if (len != 2 * size) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "an ECDSA signature on %s is r||s, %" G_GSIZE_FORMAT
			    " bytes, not %" G_GSIZE_FORMAT,
			    kmx_crypto_curve_name(type),
			    2 * size,
			    len);
		return NULL;
	}
	s = r + size;
	r_len = size;
	s_len = size;
	kmx_crypto_strip_zeros(&r, &r_len);
	kmx_crypto_strip_zeros(&s, &s_len);
	if (r_len == 0 || s_len == 0) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the ECDSA signature has r or s zero: it is no signature");
		return NULL;
	}
	dr = kmx_crypto_datum(r, r_len);
	ds = kmx_crypto_datum(s, s_len);
	rc = gnutls_encode_rs_value(&out, &dr, &ds);
	if (rc < 0)
		return kmx_crypto_gnutls_error(error,
					       rc,
					       KMX_ERROR_FAILED,
					       "cannot encode the ECDSA signature");
	return kmx_crypto_take_datum(&out);
}

/**
 * kmx_ecdsa_digest_fit:
 * @digest: a digest of any length, to be signed as FIPS 186 says
 *
 * For a signer that wants a digest exactly as long as the group order
 * (a TPM, a card): a longer digest keeps its leftmost bytes, a shorter one
 * is left-padded with zeros.  Both keep the integer FIPS 186 derives from
 * the digest (the orders of P-256 and P-384 are whole bytes long), so the
 * signature verifies against the digest as given.
 *
 * Returns: (transfer full): the digest as long as the order of @type's group
 */
GBytes *
kmx_ecdsa_digest_fit(KmxKeyType type, GBytes *digest, GError **error)
{
	gsize size = kmx_key_type_get_order_size(type);
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(digest, &len);
	guint8 *out;

	if (size == 0 || len == 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    size == 0 ? "not an ECDSA key" : "ECDSA needs a non-empty digest");
		return NULL;
	}
	if (len >= size)
		return g_bytes_new(p, size);
	out = g_malloc0(size);
	memcpy(out + (size - len), p, len);
	return g_bytes_new_take(out, size);
}

/**
 * kmx_ecdsa_signature_from_der:
 * @type: %KMX_KEY_TYPE_ECDSA_P256 or %KMX_KEY_TYPE_ECDSA_P384
 * @der: a DER Ecdsa-Sig-Value (RFC 3279)
 * @error: return location for a #GError
 *
 * Decodes a DER ECDSA signature into the r||s that a device or a wire
 * format takes.  Only strict DER is read: no trailing data, no negative or
 * zero integers, no integer with a needless leading zero byte, none larger
 * than the curve.
 *
 * Returns: (transfer full): r||s, each left-padded to the size of a
 * coordinate, or %NULL with %KMX_ERROR_INVALID_ARGUMENT
 */
GBytes *
kmx_ecdsa_signature_from_der(KmxKeyType type, GBytes *der, GError **error)
{
	gnutls_datum_t in;
	gnutls_datum_t r = {NULL, 0};
	gnutls_datum_t s = {NULL, 0};
	gnutls_datum_t again = {NULL, 0};
	g_autofree guint8 *rs = NULL;
	gsize size;
	gsize len = 0;
	const guint8 *p;
	const guint8 *rp = NULL;
	const guint8 *sp = NULL;
	gsize r_len = 0;
	gsize s_len = 0;
	gboolean ok;
	int rc;

	g_return_val_if_fail(kmx_key_type_is_ec(type), NULL);
	g_return_val_if_fail(der != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	size = kmx_crypto_field_size(type);
	p = g_bytes_get_data(der, &len);
	/* a SEQUENCE of two INTEGERs of at most size + 1 bytes each */
	if (len == 0 || len > 2 * (size + 3) + 3) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a DER ECDSA signature on %s is at most %" G_GSIZE_FORMAT
			    " bytes, not %" G_GSIZE_FORMAT,
			    kmx_crypto_curve_name(type),
			    2 * (size + 3) + 3,
			    len);
		return NULL;
	}
	in = kmx_crypto_datum(p, len);
	rc = gnutls_decode_rs_value(&in, &r, &s);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "not a DER ECDSA signature (%s)",
			    gnutls_strerror(rc));
		return NULL;
	}
	rp = r.data;
	r_len = r.size;
	sp = s.data;
	s_len = s.size;
	kmx_crypto_strip_zeros(&rp, &r_len);
	kmx_crypto_strip_zeros(&sp, &s_len);
	ok = r_len > 0 && s_len > 0 && r_len <= size && s_len <= size;
	if (ok) {
		/* gnutls reads BER integers; what it writes back is DER, so a
		 * signature that differs from its re-encoding was not DER */
		gnutls_datum_t dr = kmx_crypto_datum(rp, r_len);
		gnutls_datum_t ds = kmx_crypto_datum(sp, s_len);
		ok = gnutls_encode_rs_value(&again, &dr, &ds) >= 0 && again.size == len &&
		     memcmp(again.data, p, len) == 0;
		gnutls_free(again.data);
	}
	if (ok) {
		rs = g_malloc0(2 * size);
		memcpy(rs + size - r_len, rp, r_len);
		memcpy(rs + 2 * size - s_len, sp, s_len);
	}
	gnutls_free(r.data);
	gnutls_free(s.data);
	if (!ok) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "not a DER ECDSA signature on %s: r and s must be positive integers of "
			    "at most %" G_GSIZE_FORMAT " bytes, in strict DER",
			    kmx_crypto_curve_name(type),
			    size);
		return NULL;
	}
	return g_bytes_new_take(g_steal_pointer(&rs), 2 * size);
}
