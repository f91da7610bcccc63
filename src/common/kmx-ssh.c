/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: OpenSSH wire types and key encodings
 *
 * The SSH wire types (RFC 4251 §5: byte, uint32, string, mpint) are plain
 * framing, read here with a bounds check before every byte; the reader
 * serves the ssh-agent's messages and the import of OpenSSH key files
 * (kmx-import.c) alike.  What is ASN.1
 * or arithmetic is left to the libraries: gnutls reads a DER
 * SubjectPublicKeyInfo and hands out its numbers, and kmx-crypto.c (gnutls)
 * turns a DER ECDSA signature into r and s.  A private key an ssh client
 * sends is not interpreted here at all: its fields are checked for shape
 * and wrapped, byte for byte, into an unencrypted "openssh-key-v1" file,
 * the format OpenSSH writes, which the soft-key import reads and checks
 * like any key file a user gives it.
 */
#include "config.h"

#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "kmx-crypto.h"
#include "kmx-encoding.h"
#include "kmx-error.h"
#include "kmx-ssh.h"

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_pubkey_t, gnutls_pubkey_deinit, NULL)

/* the longest mpint in an OpenSSH key keymux takes: an 8192-bit modulus */
#define KMX_SSH_MPINT_MAX 1025

/* ---- reading --------------------------------------------------------------- */

void
kmx_ssh_reader_init(KmxSshReader *r, const guint8 *data, gsize len)
{
	r->p = data;
	r->left = data != NULL ? len : 0;
}

gboolean
kmx_ssh_read_byte(KmxSshReader *r, guint8 *v)
{
	if (r->left < 1)
		return FALSE;
	*v = r->p[0];
	r->p++;
	r->left--;
	return TRUE;
}

gboolean
kmx_ssh_read_u32(KmxSshReader *r, guint32 *v)
{
	if (r->left < 4)
		return FALSE;
	*v = ((guint32)r->p[0] << 24) | ((guint32)r->p[1] << 16) | ((guint32)r->p[2] << 8) |
	     (guint32)r->p[3];
	r->p += 4;
	r->left -= 4;
	return TRUE;
}

/**
 * kmx_ssh_read_bytes:
 * @len: how many bytes
 * @s: (out): points into the reader's bytes
 *
 * Reads @len bytes that have no length before them (a file's magic).
 *
 * Returns: whether there were @len bytes
 */
gboolean
kmx_ssh_read_bytes(KmxSshReader *r, gsize len, const guint8 **s)
{
	if (len > r->left)
		return FALSE;
	*s = r->p;
	r->p += len;
	r->left -= len;
	return TRUE;
}

/**
 * kmx_ssh_read_string:
 * @s: (out): points into the reader's bytes
 *
 * Returns: whether a whole string was there
 */
gboolean
kmx_ssh_read_string(KmxSshReader *r, const guint8 **s, gsize *len)
{
	KmxSshReader save = *r;
	guint32 l = 0;

	if (!kmx_ssh_read_u32(r, &l) || !kmx_ssh_read_bytes(r, l, s)) {
		*r = save;
		return FALSE;
	}
	*len = l;
	return TRUE;
}

/**
 * kmx_ssh_read_mpint_unsigned:
 *
 * Reads an mpint that must not be negative, of 1 to 1025 bytes (at most
 * 8193 bits); leading zero bytes are allowed, as OpenSSH allows them in
 * the key files it reads.  @s is its bytes as they stand.
 */
gboolean
kmx_ssh_read_mpint_unsigned(KmxSshReader *r, const guint8 **s, gsize *len)
{
	KmxSshReader save = *r;

	if (!kmx_ssh_read_string(r, s, len) || *len == 0 || *len > KMX_SSH_MPINT_MAX ||
	    ((*s)[0] & 0x80) != 0) {
		*r = save;
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_ssh_read_mpint:
 *
 * Reads an mpint that must be positive, non-zero, minimally encoded and of
 * at most 8193 bits; @s is its two's-complement bytes (maybe a leading 0).
 */
gboolean
kmx_ssh_read_mpint(KmxSshReader *r, const guint8 **s, gsize *len)
{
	KmxSshReader save = *r;

	if (!kmx_ssh_read_mpint_unsigned(r, s, len) ||
	    ((*s)[0] == 0 && (*len < 2 || ((*s)[1] & 0x80) == 0))) {
		*r = save;
		return FALSE;
	}
	return TRUE;
}

gboolean
kmx_ssh_string_is(const guint8 *s, gsize len, const char *want)
{
	return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* ---- writing --------------------------------------------------------------- */

void
kmx_ssh_put_byte(GByteArray *b, guint8 v)
{
	g_byte_array_append(b, &v, 1);
}

void
kmx_ssh_put_u32(GByteArray *b, guint32 v)
{
	guint8 be[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
	g_byte_array_append(b, be, 4);
}

void
kmx_ssh_put_string(GByteArray *b, const void *s, gsize len)
{
	g_return_if_fail(len <= G_MAXUINT32);
	kmx_ssh_put_u32(b, (guint32)len);
	if (len > 0)
		g_byte_array_append(b, s, (guint)len);
}

void
kmx_ssh_put_cstring(GByteArray *b, const char *s)
{
	kmx_ssh_put_string(b, s, strlen(s));
}

/**
 * kmx_ssh_put_mpint:
 * @unsigned_be: an unsigned big-endian number, leading zeros allowed
 *
 * Writes it as a positive mpint: no leading zero bytes, one zero byte
 * before a first byte with its high bit set.
 */
void
kmx_ssh_put_mpint(GByteArray *b, const guint8 *unsigned_be, gsize len)
{
	guint8 zero = 0;

	while (len > 0 && unsigned_be[0] == 0) {
		unsigned_be++;
		len--;
	}
	if (len > 0 && (unsigned_be[0] & 0x80) != 0) {
		kmx_ssh_put_u32(b, (guint32)len + 1);
		g_byte_array_append(b, &zero, 1);
		g_byte_array_append(b, unsigned_be, (guint)len);
		return;
	}
	kmx_ssh_put_string(b, unsigned_be, len);
}

/* ---- public keys ----------------------------------------------------------- */

/**
 * kmx_ssh_key_type_name:
 *
 * Returns: (nullable): the OpenSSH name of keys of @type, %NULL for a type
 * OpenSSH cannot use
 */
const char *
kmx_ssh_key_type_name(KmxKeyType type)
{
	switch (type) {
	case KMX_KEY_TYPE_ED25519:
		return "ssh-ed25519";
	case KMX_KEY_TYPE_ECDSA_P256:
		return "ecdsa-sha2-nistp256";
	case KMX_KEY_TYPE_ECDSA_P384:
		return "ecdsa-sha2-nistp384";
	case KMX_KEY_TYPE_RSA2048:
	case KMX_KEY_TYPE_RSA3072:
	case KMX_KEY_TYPE_RSA4096:
		return "ssh-rsa";
	case KMX_KEY_TYPE_X25519:
	case KMX_KEY_TYPE_UNKNOWN:
	default:
		return NULL;
	}
}

static gpointer
kmx_ssh_not_supported(GError **error, const char *what)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "%s: OpenSSH takes Ed25519, ECDSA P-256/P-384 and RSA keys",
		    what);
	return NULL;
}

static void
kmx_ssh_put_datum_mpint(GByteArray *b, gnutls_datum_t *d)
{
	kmx_ssh_put_mpint(b, d->data, d->size);
	gnutls_free(d->data);
	d->data = NULL;
}

static GBytes *
kmx_ssh_public_rsa(gnutls_pubkey_t key, unsigned int bits, KmxKeyType *type, GError **error)
{
	gnutls_datum_t n = {NULL, 0};
	gnutls_datum_t e = {NULL, 0};
	GByteArray *b;
	int rc;

	*type = bits == 2048   ? KMX_KEY_TYPE_RSA2048
		: bits == 3072 ? KMX_KEY_TYPE_RSA3072
		: bits == 4096 ? KMX_KEY_TYPE_RSA4096
			       : KMX_KEY_TYPE_UNKNOWN;
	if (*type == KMX_KEY_TYPE_UNKNOWN)
		return kmx_ssh_not_supported(error, "an RSA key of an unusual size");
	rc = gnutls_pubkey_export_rsa_raw2(key, &n, &e, GNUTLS_EXPORT_FLAG_NO_LZ);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot read the RSA key: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	b = g_byte_array_new();
	kmx_ssh_put_cstring(b, "ssh-rsa");
	kmx_ssh_put_datum_mpint(b, &e);
	kmx_ssh_put_datum_mpint(b, &n);
	return g_byte_array_free_to_bytes(b);
}

static GBytes *
kmx_ssh_public_ec(gnutls_pubkey_t key, KmxKeyType *type, GError **error)
{
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	gnutls_datum_t x = {NULL, 0};
	gnutls_datum_t y = {NULL, 0};
	g_autofree guint8 *point = NULL;
	GByteArray *b;
	gsize size;
	int rc;

	rc = gnutls_pubkey_export_ecc_raw2(key, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot read the EC key: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	*type = curve == GNUTLS_ECC_CURVE_SECP256R1   ? KMX_KEY_TYPE_ECDSA_P256
		: curve == GNUTLS_ECC_CURVE_SECP384R1 ? KMX_KEY_TYPE_ECDSA_P384
		: curve == GNUTLS_ECC_CURVE_ED25519   ? KMX_KEY_TYPE_ED25519
						      : KMX_KEY_TYPE_UNKNOWN;
	size = *type == KMX_KEY_TYPE_UNKNOWN ? 0 : gnutls_ecc_curve_get_size(curve);
	b = g_byte_array_new();
	if (*type == KMX_KEY_TYPE_ED25519 && x.size == size) {
		kmx_ssh_put_cstring(b, "ssh-ed25519");
		kmx_ssh_put_string(b, x.data, x.size);
	} else if (*type != KMX_KEY_TYPE_UNKNOWN && *type != KMX_KEY_TYPE_ED25519 &&
		   x.size <= size && y.size <= size) {
		/* coordinates right-aligned in the uncompressed point */
		point = g_malloc0(1 + 2 * size);
		point[0] = 0x04;
		memcpy(point + 1 + size - x.size, x.data, x.size);
		memcpy(point + 1 + 2 * size - y.size, y.data, y.size);
		kmx_ssh_put_cstring(b, kmx_ssh_key_type_name(*type));
		kmx_ssh_put_cstring(b, *type == KMX_KEY_TYPE_ECDSA_P256 ? "nistp256" : "nistp384");
		kmx_ssh_put_string(b, point, 1 + 2 * size);
	} else {
		g_byte_array_unref(b);
		b = NULL;
	}
	gnutls_free(x.data);
	gnutls_free(y.data);
	if (b == NULL)
		return kmx_ssh_not_supported(error, "a key on a curve OpenSSH does not use");
	return g_byte_array_free_to_bytes(b);
}

/**
 * kmx_ssh_public_key_from_spki:
 * @spki: a DER SubjectPublicKeyInfo
 * @type: (out) (optional): the key's type
 *
 * Returns: (transfer full): the key as an OpenSSH public key blob, or %NULL
 * with %KMX_ERROR_NOT_SUPPORTED for a key OpenSSH cannot use
 */
GBytes *
kmx_ssh_public_key_from_spki(GBytes *spki, KmxKeyType *type, GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	KmxKeyType dummy = KMX_KEY_TYPE_UNKNOWN;
	gnutls_datum_t d;
	unsigned int bits = 0;
	gsize len = 0;
	int algo;
	int rc;

	g_return_val_if_fail(spki != NULL, NULL);
	if (type == NULL)
		type = &dummy;
	*type = KMX_KEY_TYPE_UNKNOWN;
	d.data = (unsigned char *)g_bytes_get_data(spki, &len);
	if (len == 0 || len > 4096) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the public key is empty or too large");
		return NULL;
	}
	d.size = (unsigned int)len;
	gnutls_pubkey_init(&key);
	rc = gnutls_pubkey_import(key, &d, GNUTLS_X509_FMT_DER);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "not a DER public key: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	algo = gnutls_pubkey_get_pk_algorithm(key, &bits);
	if (algo == GNUTLS_PK_RSA)
		return kmx_ssh_public_rsa(key, bits, type, error);
	if (algo == GNUTLS_PK_ECDSA || algo == GNUTLS_PK_EDDSA_ED25519)
		return kmx_ssh_public_ec(key, type, error);
	return kmx_ssh_not_supported(error, "a key of another kind");
}

static gboolean
kmx_ssh_bad_blob(GError **error, const char *why)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "not an OpenSSH public key: %s",
		    why);
	return FALSE;
}

/* the public key in an OpenSSH blob (RFC 4253 §6.6, RFC 5656 §3.1,
 * RFC 8709 §4), into @key, read by gnutls */
static gboolean
kmx_ssh_import_blob(gnutls_pubkey_t key, GBytes *blob, KmxKeyType *type, GError **error)
{
	KmxSshReader r;
	const guint8 *name = NULL, *a = NULL, *b = NULL;
	gsize name_len = 0, a_len = 0, b_len = 0, len = 0;
	const guint8 *p = g_bytes_get_data(blob, &len);
	int rc = GNUTLS_E_INVALID_REQUEST;

	*type = KMX_KEY_TYPE_UNKNOWN;
	kmx_ssh_reader_init(&r, p, len);
	if (!kmx_ssh_read_string(&r, &name, &name_len))
		return kmx_ssh_bad_blob(error, "no key type");
	if (kmx_ssh_string_is(name, name_len, "ssh-ed25519")) {
		if (!kmx_ssh_read_string(&r, &a, &a_len) || a_len != 32 || r.left != 0)
			return kmx_ssh_bad_blob(error, "a malformed Ed25519 key");
		gnutls_datum_t x = {(unsigned char *)a, (unsigned int)a_len};
		*type = KMX_KEY_TYPE_ED25519;
		rc = gnutls_pubkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &x, NULL);
	} else if (kmx_ssh_string_is(name, name_len, "ecdsa-sha2-nistp256") ||
		   kmx_ssh_string_is(name, name_len, "ecdsa-sha2-nistp384")) {
		gboolean p256 = kmx_ssh_string_is(name, name_len, "ecdsa-sha2-nistp256");
		gnutls_ecc_curve_t curve = p256 ? GNUTLS_ECC_CURVE_SECP256R1
						: GNUTLS_ECC_CURVE_SECP384R1;
		gsize size = p256 ? 32 : 48;

		/* the curve's name, the uncompressed point */
		if (!kmx_ssh_read_string(&r, &a, &a_len) ||
		    !kmx_ssh_string_is(a, a_len, p256 ? "nistp256" : "nistp384") ||
		    !kmx_ssh_read_string(&r, &b, &b_len) || b_len != 1 + 2 * size || b[0] != 0x04 ||
		    r.left != 0)
			return kmx_ssh_bad_blob(error, "a malformed ECDSA key");
		gnutls_datum_t x = {(unsigned char *)b + 1, (unsigned int)size};
		gnutls_datum_t y = {(unsigned char *)b + 1 + size, (unsigned int)size};
		*type = p256 ? KMX_KEY_TYPE_ECDSA_P256 : KMX_KEY_TYPE_ECDSA_P384;
		rc = gnutls_pubkey_import_ecc_raw(key, curve, &x, &y);
	} else if (kmx_ssh_string_is(name, name_len, "ssh-rsa")) {
		unsigned int bits = 0;

		/* e, then n */
		if (!kmx_ssh_read_mpint(&r, &a, &a_len) || !kmx_ssh_read_mpint(&r, &b, &b_len) ||
		    r.left != 0)
			return kmx_ssh_bad_blob(error, "a malformed RSA key");
		gnutls_datum_t e = {(unsigned char *)a, (unsigned int)a_len};
		gnutls_datum_t n = {(unsigned char *)b, (unsigned int)b_len};
		rc = gnutls_pubkey_import_rsa_raw(key, &n, &e);
		if (rc >= 0) {
			(void)gnutls_pubkey_get_pk_algorithm(key, &bits);
			*type = bits == 2048   ? KMX_KEY_TYPE_RSA2048
				: bits == 3072 ? KMX_KEY_TYPE_RSA3072
				: bits == 4096 ? KMX_KEY_TYPE_RSA4096
					       : KMX_KEY_TYPE_UNKNOWN;
		}
	} else {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "not a key type keymux reads: ssh-ed25519, "
				    "ecdsa-sha2-nistp256/384 and ssh-rsa, without certificates");
		return FALSE;
	}
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "not a valid public key: %s",
			    gnutls_strerror(rc));
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_ssh_public_key_to_spki:
 * @blob: an OpenSSH public key blob
 * @type: (out) (optional): the key's type (%KMX_KEY_TYPE_UNKNOWN for an
 *   RSA key of a size keymux does not make)
 *
 * The inverse of kmx_ssh_public_key_from_spki().
 *
 * Returns: (transfer full): the key as a DER SubjectPublicKeyInfo, or %NULL
 */
GBytes *
kmx_ssh_public_key_to_spki(GBytes *blob, KmxKeyType *type, GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	KmxKeyType dummy = KMX_KEY_TYPE_UNKNOWN;
	gnutls_datum_t der = {NULL, 0};
	GBytes *spki;
	int rc;

	g_return_val_if_fail(blob != NULL, NULL);
	gnutls_pubkey_init(&key);
	if (!kmx_ssh_import_blob(key, blob, type != NULL ? type : &dummy, error))
		return NULL;
	rc = gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &der);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot write the public key: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	spki = g_bytes_new(der.data, der.size);
	gnutls_free(der.data);
	return spki;
}

/**
 * kmx_ssh_verify_signature:
 * @blob: the signer's OpenSSH public key blob
 * @signature: an OpenSSH signature blob (its algorithm, its bytes)
 *
 * Verifies @signature over @data with gnutls, as OpenSSH's sshkey_verify()
 * does: Ed25519, ECDSA with the curve's hash, RSA with rsa-sha2-256/512.
 * A SHA-1 ssh-rsa signature is refused: it is forgeable.
 *
 * Returns: whether it verifies; %KMX_ERROR_INVALID_ARGUMENT if not
 */
gboolean
kmx_ssh_verify_signature(GBytes *blob,
			 const guint8 *data,
			 gsize data_len,
			 const guint8 *signature,
			 gsize signature_len,
			 GError **error)
{
	g_auto(gnutls_pubkey_t) key = NULL;
	KmxKeyType type = KMX_KEY_TYPE_UNKNOWN;
	KmxSshReader r, rs;
	const guint8 *alg = NULL, *sig = NULL, *sr = NULL, *ss = NULL;
	gsize alg_len = 0, sig_len = 0, sr_len = 0, ss_len = 0;
	gnutls_sign_algorithm_t algo = GNUTLS_SIGN_UNKNOWN;
	gnutls_datum_t d = {(unsigned char *)data, (unsigned int)data_len};
	gnutls_datum_t s = {NULL, 0};
	gnutls_datum_t der = {NULL, 0};
	int rc;

	g_return_val_if_fail(blob != NULL, FALSE);
	if (data_len > G_MAXUINT32) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "too much data");
		return FALSE;
	}
	gnutls_pubkey_init(&key);
	if (!kmx_ssh_import_blob(key, blob, &type, error))
		return FALSE;
	kmx_ssh_reader_init(&r, signature, signature_len);
	if (!kmx_ssh_read_string(&r, &alg, &alg_len) || !kmx_ssh_read_string(&r, &sig, &sig_len) ||
	    r.left != 0) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a malformed signature");
		return FALSE;
	}
	s.data = (unsigned char *)sig;
	s.size = (unsigned int)sig_len;
	if (type == KMX_KEY_TYPE_ED25519 && kmx_ssh_string_is(alg, alg_len, "ssh-ed25519")) {
		algo = GNUTLS_SIGN_EDDSA_ED25519;
	} else if ((type == KMX_KEY_TYPE_ECDSA_P256 || type == KMX_KEY_TYPE_ECDSA_P384) &&
		   kmx_ssh_string_is(alg, alg_len, kmx_ssh_key_type_name(type))) {
		/* mpint r, mpint s: DER for gnutls */
		kmx_ssh_reader_init(&rs, sig, sig_len);
		if (!kmx_ssh_read_mpint(&rs, &sr, &sr_len) ||
		    !kmx_ssh_read_mpint(&rs, &ss, &ss_len) || rs.left != 0) {
			g_set_error_literal(error,
					    KMX_ERROR,
					    KMX_ERROR_INVALID_ARGUMENT,
					    "a malformed ECDSA signature");
			return FALSE;
		}
		gnutls_datum_t dr = {(unsigned char *)sr, (unsigned int)sr_len};
		gnutls_datum_t ds = {(unsigned char *)ss, (unsigned int)ss_len};
		rc = gnutls_encode_rs_value(&der, &dr, &ds);
		if (rc < 0) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a malformed ECDSA signature: %s",
				    gnutls_strerror(rc));
			return FALSE;
		}
		s = der;
		algo = type == KMX_KEY_TYPE_ECDSA_P256 ? GNUTLS_SIGN_ECDSA_SHA256
						       : GNUTLS_SIGN_ECDSA_SHA384;
	} else if (gnutls_pubkey_get_pk_algorithm(key, NULL) == GNUTLS_PK_RSA &&
		   kmx_ssh_string_is(alg, alg_len, "rsa-sha2-256")) {
		algo = GNUTLS_SIGN_RSA_SHA256;
	} else if (gnutls_pubkey_get_pk_algorithm(key, NULL) == GNUTLS_PK_RSA &&
		   kmx_ssh_string_is(alg, alg_len, "rsa-sha2-512")) {
		algo = GNUTLS_SIGN_RSA_SHA512;
	} else {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a signature of an algorithm that is not the key's, or SHA-1");
		return FALSE;
	}
	rc = gnutls_pubkey_verify_data2(key, algo, 0, &d, &s);
	gnutls_free(der.data);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the signature does not verify: %s",
			    gnutls_strerror(rc));
		return FALSE;
	}
	return TRUE;
}

/* a comment on one line: an authorized_keys line ends at a line break */
static char *
kmx_ssh_one_line(const char *comment)
{
	char *s = g_strdup(comment);

	for (char *c = s; *c != '\0'; c++) {
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	}
	return s;
}

/**
 * kmx_ssh_authorized_key:
 * @blob: an OpenSSH public key blob
 * @comment: (nullable): its comment
 *
 * Returns: (transfer full) (nullable): the key as a line of authorized_keys
 * (the one `ssh-add -L` prints), without its line break; %NULL when the
 * blob names no key type
 */
char *
kmx_ssh_authorized_key(GBytes *blob, const char *comment)
{
	KmxSshReader r;
	const guint8 *name = NULL;
	gsize name_len = 0;
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(blob, &len);
	g_autofree char *b64 = g_base64_encode(p, len);
	g_autofree char *type = NULL;
	g_autofree char *line = NULL;

	kmx_ssh_reader_init(&r, p, len);
	if (!kmx_ssh_read_string(&r, &name, &name_len) || name_len == 0 || name_len > 64)
		return NULL;
	/* a key type is one word: a blob that says otherwise makes no line */
	for (gsize i = 0; i < name_len; i++) {
		if (!g_ascii_isgraph(name[i]))
			return NULL;
	}
	type = g_strndup((const char *)name, name_len);
	if (comment == NULL || comment[0] == '\0')
		return g_strdup_printf("%s %s", type, b64);
	line = kmx_ssh_one_line(comment);
	return g_strdup_printf("%s %s %s", type, b64, line);
}

/**
 * kmx_ssh_fingerprint:
 *
 * Returns: (transfer full): the SHA256 fingerprint OpenSSH shows for @blob
 */
char *
kmx_ssh_fingerprint(GBytes *blob)
{
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize len = sizeof(digest);
	g_autofree char *b64 = NULL;
	char *end;

	g_checksum_update(sum, g_bytes_get_data(blob, NULL), (gssize)g_bytes_get_size(blob));
	g_checksum_get_digest(sum, digest, &len);
	b64 = g_base64_encode(digest, len);
	end = strchr(b64, '=');
	if (end != NULL)
		*end = '\0';
	return g_strdup_printf("SHA256:%s", b64);
}

/* ---- signatures ------------------------------------------------------------ */

/**
 * kmx_ssh_signature_new:
 * @type: the signing key's type
 * @mechanism: what it signed with
 * @signature: the signature as keymux makes it (raw Ed25519, DER ECDSA,
 *   PKCS#1 v1.5 RSA)
 *
 * Returns: (transfer full): the OpenSSH signature blob (RFC 4253 §6.6,
 * RFC 5656 §3.1.2, RFC 8332, RFC 8709), or %NULL
 */
GBytes *
kmx_ssh_signature_new(KmxKeyType type, KmxMechanism mechanism, GBytes *signature, GError **error)
{
	g_autoptr(GByteArray) b = g_byte_array_new();
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(signature, &len);

	switch (mechanism) {
	case KMX_MECHANISM_ED25519:
		if (len != 64)
			break;
		kmx_ssh_put_cstring(b, "ssh-ed25519");
		kmx_ssh_put_string(b, p, len);
		return g_byte_array_free_to_bytes(g_steal_pointer(&b));
	case KMX_MECHANISM_ECDSA_SHA256:
	case KMX_MECHANISM_ECDSA_SHA384: {
		g_autoptr(GBytes) rs = kmx_ecdsa_signature_from_der(type, signature, error);
		g_autoptr(GByteArray) inner = g_byte_array_new();
		const guint8 *q;
		gsize half;

		if (rs == NULL)
			return NULL;
		q = g_bytes_get_data(rs, &len);
		half = len / 2;
		kmx_ssh_put_mpint(inner, q, half);
		kmx_ssh_put_mpint(inner, q + half, half);
		kmx_ssh_put_cstring(b, kmx_ssh_key_type_name(type));
		kmx_ssh_put_string(b, inner->data, inner->len);
		return g_byte_array_free_to_bytes(g_steal_pointer(&b));
	}
	case KMX_MECHANISM_RSA_PKCS1_SHA256:
	case KMX_MECHANISM_RSA_PKCS1_SHA512:
		kmx_ssh_put_cstring(b,
				    mechanism == KMX_MECHANISM_RSA_PKCS1_SHA256 ? "rsa-sha2-256"
										: "rsa-sha2-512");
		kmx_ssh_put_string(b, p, len);
		return g_byte_array_free_to_bytes(g_steal_pointer(&b));
	default:
		/* the raw PKCS#1 v1.5 signature of a SHA-1 DigestInfo: legacy
		 * ssh-rsa (by name: the raw signing mechanism is "rsa-pkcs1") */
		if (kmx_key_type_is_rsa(type) &&
		    g_strcmp0(kmx_mechanism_to_string(mechanism), "rsa-pkcs1") == 0) {
			kmx_ssh_put_cstring(b, "ssh-rsa");
			kmx_ssh_put_string(b, p, len);
			return g_byte_array_free_to_bytes(g_steal_pointer(&b));
		}
		break;
	}
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "a %s signature of %" G_GSIZE_FORMAT " bytes has no OpenSSH form",
		    kmx_mechanism_to_string(mechanism),
		    len);
	return NULL;
}

/* ---- private keys ---------------------------------------------------------- */

/* the private fields after the key type, as OpenSSH serialises them in the
 * agent protocol and in "openssh-key-v1" alike; the public blob is written
 * to @pub from the same bytes */
static gboolean
kmx_ssh_private_fields(KmxSshReader *r,
		       const guint8 *type,
		       gsize type_len,
		       GByteArray *pub,
		       GError **error)
{
	const guint8 *a = NULL, *b = NULL, *c = NULL, *skip = NULL;
	gsize a_len = 0, b_len = 0, c_len = 0, skip_len = 0;

	kmx_ssh_put_string(pub, type, type_len);
	if (kmx_ssh_string_is(type, type_len, "ssh-ed25519")) {
		/* the public key, then seed || public key */
		if (kmx_ssh_read_string(r, &a, &a_len) && a_len == 32 &&
		    kmx_ssh_read_string(r, &b, &b_len) && b_len == 64) {
			kmx_ssh_put_string(pub, a, a_len);
			return TRUE;
		}
	} else if (kmx_ssh_string_is(type, type_len, "ecdsa-sha2-nistp256") ||
		   kmx_ssh_string_is(type, type_len, "ecdsa-sha2-nistp384")) {
		/* curve, point, private scalar */
		if (kmx_ssh_read_string(r, &a, &a_len) && kmx_ssh_read_string(r, &b, &b_len) &&
		    b_len > 0 && b_len <= 97 && kmx_ssh_read_mpint(r, &c, &c_len)) {
			kmx_ssh_put_string(pub, a, a_len);
			kmx_ssh_put_string(pub, b, b_len);
			return TRUE;
		}
	} else if (kmx_ssh_string_is(type, type_len, "ssh-rsa")) {
		/* n, e, d, iqmp, p, q */
		if (kmx_ssh_read_mpint(r, &a, &a_len) && kmx_ssh_read_mpint(r, &b, &b_len) &&
		    kmx_ssh_read_mpint(r, &skip, &skip_len) &&
		    kmx_ssh_read_mpint(r, &skip, &skip_len) &&
		    kmx_ssh_read_mpint(r, &skip, &skip_len) &&
		    kmx_ssh_read_mpint(r, &skip, &skip_len)) {
			kmx_ssh_put_string(pub, b, b_len);
			kmx_ssh_put_string(pub, a, a_len);
			return TRUE;
		}
	} else {
		g_autofree char *name =
		    g_utf8_validate((const char *)type, (gssize)MIN(type_len, 64), NULL)
			? g_strndup((const char *)type, MIN(type_len, 64))
			: g_strdup("?");
		g_autofree char *shown = g_strescape(name, NULL);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "keys of type %s are not supported: keymux takes ssh-ed25519, "
			    "ecdsa-sha2-nistp256/384 and ssh-rsa keys, without certificates",
			    shown);
		return FALSE;
	}
	g_set_error_literal(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "malformed private key");
	return FALSE;
}

static void
kmx_ssh_secret_put(guint8 **at, const void *data, gsize len)
{
	memcpy(*at, data, len);
	*at += len;
}

static void
kmx_ssh_secret_put_u32(guint8 **at, guint32 v)
{
	guint8 be[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
	kmx_ssh_secret_put(at, be, 4);
}

/**
 * kmx_ssh_private_key_to_pem:
 * @r: at a private key as the agent protocol carries it (key type, its
 *   private fields, comment); after it on success
 * @comment: (out): the comment, %NULL when it is not UTF-8
 *
 * Wraps the key into an unencrypted OpenSSH private key file, unchanged, in
 * secret memory: what `ssh-keygen` would have written for it.  Nothing but
 * the shape of the fields is checked here; the importer checks the key.
 *
 * Returns: (transfer full): the PEM text, NUL-terminated, or %NULL with
 * %KMX_ERROR_NOT_SUPPORTED (a key type keymux has not) or
 * %KMX_ERROR_INVALID_ARGUMENT (malformed)
 */
KmxSecret *
kmx_ssh_private_key_to_pem(KmxSshReader *r, char **comment, GError **error)
{
	static const char magic[] = "openssh-key-v1"; /* with its NUL */
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
	static const char end[] = "\n-----END OPENSSH PRIVATE KEY-----\n";
	g_autoptr(GByteArray) head = g_byte_array_new();
	g_autoptr(GByteArray) pub = g_byte_array_new();
	g_autoptr(KmxSecret) blob = NULL;
	g_autoptr(KmxSecret) b64 = NULL;
	KmxSecret *pem;
	KmxSshReader save = *r;
	const guint8 *fields = r->p;
	const guint8 *type = NULL, *c = NULL;
	gsize type_len = 0, c_len = 0, fields_len, priv_len, pad, b64_len;
	guint32 check = g_random_int();
	guint8 *at;

	*comment = NULL;
	if (!kmx_ssh_read_string(r, &type, &type_len) ||
	    !kmx_ssh_private_fields(r, type, type_len, pub, error)) {
		if (error != NULL && *error == NULL)
			g_set_error_literal(error,
					    KMX_ERROR,
					    KMX_ERROR_INVALID_ARGUMENT,
					    "malformed private key");
		*r = save;
		return NULL;
	}
	fields_len = (gsize)(r->p - fields);
	if (!kmx_ssh_read_string(r, &c, &c_len)) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "malformed private key: no comment");
		*r = save;
		return NULL;
	}
	if (g_utf8_validate((const char *)c, (gssize)c_len, NULL) && memchr(c, '\0', c_len) == NULL)
		*comment = g_strndup((const char *)c, c_len);

	/* checkints, the key, the comment, padded with 1, 2, 3... to 8 bytes */
	priv_len = 8 + fields_len + 4 + c_len;
	pad = (8 - priv_len % 8) % 8;
	priv_len += pad;
	g_byte_array_append(head, (const guint8 *)magic, sizeof(magic));
	kmx_ssh_put_cstring(head, "none");
	kmx_ssh_put_cstring(head, "none");
	kmx_ssh_put_string(head, NULL, 0);
	kmx_ssh_put_u32(head, 1);
	kmx_ssh_put_string(head, pub->data, pub->len);
	kmx_ssh_put_u32(head, (guint32)priv_len);

	blob = kmx_secret_new(head->len + priv_len);
	at = kmx_secret_get_data(blob);
	kmx_ssh_secret_put(&at, head->data, head->len);
	kmx_ssh_secret_put_u32(&at, check);
	kmx_ssh_secret_put_u32(&at, check);
	kmx_ssh_secret_put(&at, fields, fields_len);
	kmx_ssh_secret_put_u32(&at, (guint32)c_len);
	kmx_ssh_secret_put(&at, c, c_len);
	for (gsize i = 0; i < pad; i++)
		*at++ = (guint8)(i + 1);

	b64 = kmx_base64_encode_secret(kmx_secret_get_data(blob), kmx_secret_get_length(blob));
	b64_len = kmx_secret_get_length(b64);
	pem = kmx_secret_new(strlen(begin) + b64_len + strlen(end));
	at = kmx_secret_get_data(pem);
	kmx_ssh_secret_put(&at, begin, strlen(begin));
	kmx_ssh_secret_put(&at, kmx_secret_get_data(b64), b64_len);
	kmx_ssh_secret_put(&at, end, strlen(end));
	return pem;
}
