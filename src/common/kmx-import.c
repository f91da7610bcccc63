/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: key files a user brings, parsed into one canonical form
 *
 * One parser for every backend that takes a private key from a file: the
 * soft-key store keeps what it returns, the TPM wraps it with TPM2_Import.
 *
 * Accepted: PKCS#8 (plain and encrypted), PKCS#1 RSA, SEC1 EC, each PEM or
 * DER; PKCS#12 (DER or PEM) with its passphrase; OpenSSH "openssh-key-v1",
 * plain or with a passphrase.  gnutls parses all but the OpenSSH format, which
 * is parsed here (gnutls decodes its base64) through the bounds-checked SSH
 * wire reader of kmx-ssh.c; an encrypted one is checked here too, then
 * decrypted by libssh (kmx-import-ssh.c) and read again in the form libssh
 * writes it.
 * Everything ends as a gnutls_x509_privkey_t whose consistency gnutls
 * checks, then as a plain PKCS#8 DER in secret memory.
 */
#include "config.h"

#include <string.h>

#include "kmx-encoding.h"
#include "kmx-error.h"
#include "kmx-import-ssh.h"
#include "kmx-import.h"
#include "kmx-ssh.h"

#define KMX_IMPORT_FORMATS                                                                         \
	"PKCS#8 (plain or encrypted), PKCS#1 RSA, SEC1 EC, PKCS#12 or an OpenSSH key, as PEM or "  \
	"DER"

static gboolean
kmx_import_gnutls_error(GError **error, int rc, const char *what)
{
	g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "%s: %s", what, gnutls_strerror(rc));
	return FALSE;
}

/**
 * kmx_import_x509_to_pkcs8:
 *
 * Returns: (transfer full): @key as a plain PKCS#8 PrivateKeyInfo DER, in
 * secret memory; gnutls's own copy is wiped
 */
KmxSecret *
kmx_import_x509_to_pkcs8(gnutls_x509_privkey_t key, GError **error)
{
	gnutls_datum_t out = {NULL, 0};
	int rc;

	rc = gnutls_x509_privkey_export2_pkcs8(key,
					       GNUTLS_X509_FMT_DER,
					       NULL,
					       GNUTLS_PKCS_PLAIN,
					       &out);
	if (rc < 0) {
		kmx_import_gnutls_error(error, rc, "cannot encode the key");
		return NULL;
	}
	return kmx_secret_new_take(out.data, out.size, gnutls_free);
}

/**
 * kmx_import_privkey_get_spki:
 *
 * Returns: (transfer full): the DER SubjectPublicKeyInfo of @key
 */
GBytes *
kmx_import_privkey_get_spki(gnutls_privkey_t key, GError **error)
{
	g_auto(gnutls_pubkey_t) pub = NULL;
	gnutls_datum_t out = {NULL, 0};
	GBytes *spki;
	int rc;

	gnutls_pubkey_init(&pub);
	rc = gnutls_pubkey_import_privkey(pub, key, 0, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &out);
	if (rc < 0) {
		kmx_import_gnutls_error(error, rc, "cannot get the public key");
		return NULL;
	}
	spki = g_bytes_new(out.data, out.size);
	gnutls_free(out.data);
	return spki;
}

/**
 * kmx_import_x509_get_spki:
 *
 * Returns: (transfer full): the DER SubjectPublicKeyInfo of @key
 */
GBytes *
kmx_import_x509_get_spki(gnutls_x509_privkey_t key, GError **error)
{
	g_auto(gnutls_privkey_t) pk = NULL;
	int rc;

	gnutls_privkey_init(&pk);
	rc = gnutls_privkey_import_x509(pk, key, 0);
	if (rc < 0) {
		kmx_import_gnutls_error(error, rc, "cannot read the key");
		return NULL;
	}
	return kmx_import_privkey_get_spki(pk, error);
}

/**
 * kmx_import_x509_get_key_type:
 *
 * Returns: the keymux type of @key, or %KMX_KEY_TYPE_UNKNOWN with
 * %KMX_ERROR_NOT_SUPPORTED set
 */
KmxKeyType
kmx_import_x509_get_key_type(gnutls_x509_privkey_t key, GError **error)
{
	unsigned int bits = 0;
	int pk = gnutls_x509_privkey_get_pk_algorithm2(key, &bits);

	switch (pk) {
	case GNUTLS_PK_RSA:
		if (bits == 2048)
			return KMX_KEY_TYPE_RSA2048;
		if (bits == 3072)
			return KMX_KEY_TYPE_RSA3072;
		if (bits == 4096)
			return KMX_KEY_TYPE_RSA4096;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "RSA keys of %u bits are not supported: use 2048, 3072 or 4096",
			    bits);
		return KMX_KEY_TYPE_UNKNOWN;
	case GNUTLS_PK_ECDSA: {
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
		gnutls_datum_t x = {NULL, 0}, y = {NULL, 0}, k = {NULL, 0};
		if (gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y, &k) < 0)
			curve = GNUTLS_ECC_CURVE_INVALID;
		gnutls_free(x.data);
		gnutls_free(y.data);
		if (k.data != NULL)
			gnutls_memset(k.data, 0, k.size);
		gnutls_free(k.data);
		if (curve == GNUTLS_ECC_CURVE_SECP256R1)
			return KMX_KEY_TYPE_ECDSA_P256;
		if (curve == GNUTLS_ECC_CURVE_SECP384R1)
			return KMX_KEY_TYPE_ECDSA_P384;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "EC keys on %s are not supported: use P-256 or P-384",
			    gnutls_ecc_curve_get_name(curve) ?: "this curve");
		return KMX_KEY_TYPE_UNKNOWN;
	}
	case GNUTLS_PK_EDDSA_ED25519:
		return KMX_KEY_TYPE_ED25519;
	case GNUTLS_PK_ECDH_X25519:
		return KMX_KEY_TYPE_X25519;
	default:
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "%s keys are not supported: use RSA, P-256, P-384, Ed25519 or X25519",
			    gnutls_pk_get_name(pk) ?: "these");
		return KMX_KEY_TYPE_UNKNOWN;
	}
}

void
kmx_imported_key_free(KmxImportedKey *key)
{
	if (key == NULL)
		return;
	g_clear_pointer(&key->pkcs8, kmx_secret_unref);
	g_clear_pointer(&key->spki, g_bytes_unref);
	g_free(key->comment);
	g_free(key);
}

static gpointer
kmx_import_unparseable(GError **error, const char *why)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "cannot read the key (%s): give %s",
		    why,
		    KMX_IMPORT_FORMATS);
	return NULL;
}

/* the common end of every format: check, classify, canonicalise */
static KmxImportedKey *
kmx_import_finish(gnutls_x509_privkey_t x, const char *comment, GError **error)
{
	g_autoptr(KmxImportedKey) key = g_new0(KmxImportedKey, 1);
	int rc;

	key->type = kmx_import_x509_get_key_type(x, error);
	if (key->type == KMX_KEY_TYPE_UNKNOWN)
		return NULL;
	/* hostile input: an RSA key whose n != p*q or an EC key whose public
	 * point is not d*G would sign wrongly or leak; gnutls checks both */
	rc = gnutls_x509_privkey_verify_params(x);
	if (rc < 0)
		return kmx_import_unparseable(error, "the key is inconsistent");
	key->pkcs8 = kmx_import_x509_to_pkcs8(x, error);
	if (key->pkcs8 == NULL)
		return NULL;
	key->spki = kmx_import_x509_get_spki(x, error);
	if (key->spki == NULL)
		return NULL;
	if (comment != NULL && comment[0] != '\0' && strlen(comment) <= 256 &&
	    g_utf8_validate(comment, -1, NULL))
		key->comment = g_strdup(comment);
	return g_steal_pointer(&key);
}

/* ---- OpenSSH "openssh-key-v1" ---- */

/* an mpint of a private key as a gnutls datum: not negative, leading zero
 * bytes allowed (gnutls reads them) */
static gboolean
kmx_import_read_mpint(KmxSshReader *r, gnutls_datum_t *d)
{
	const guint8 *s = NULL;
	gsize len = 0;

	if (!kmx_ssh_read_mpint_unsigned(r, &s, &len))
		return FALSE;
	d->data = (guint8 *)s;
	d->size = (guint)len;
	return TRUE;
}

/* a name from the file (a key type, cipher or KDF) for a message: its first
 * 64 bytes if they are UTF-8 without a NUL, else "?" */
static char *
kmx_import_ssh_shown(const guint8 *name, gsize len)
{
	gsize n = MIN(len, 64);

	if (!g_utf8_validate((const char *)name, (gssize)n, NULL))
		return g_strdup("?");
	return g_strndup((const char *)name, n);
}

static KmxImportedKey *
kmx_import_ssh_key(KmxSshReader *r, GError **error)
{
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_autofree char *comment = NULL;
	const guint8 *type = NULL;
	const guint8 *c = NULL;
	gsize type_len = 0;
	gsize c_len = 0;
	int rc = GNUTLS_E_INVALID_REQUEST;

	if (!kmx_ssh_read_string(r, &type, &type_len))
		return kmx_import_unparseable(error, "truncated OpenSSH key");
	gnutls_x509_privkey_init(&x);
	if (kmx_ssh_string_is(type, type_len, "ssh-ed25519")) {
		const guint8 *pk = NULL, *sk = NULL;
		gsize pk_len = 0, sk_len = 0;
		gnutls_datum_t pub, seed;
		if (!kmx_ssh_read_string(r, &pk, &pk_len) || pk_len != 32 ||
		    !kmx_ssh_read_string(r, &sk, &sk_len) || sk_len != 64 ||
		    memcmp(sk + 32, pk, 32) != 0)
			return kmx_import_unparseable(error, "bad OpenSSH Ed25519 key");
		pub.data = (guint8 *)pk;
		pub.size = 32;
		seed.data = (guint8 *)sk;
		seed.size = 32;
		rc = gnutls_x509_privkey_import_ecc_raw(x,
							GNUTLS_ECC_CURVE_ED25519,
							&pub,
							NULL,
							&seed);
	} else if (kmx_ssh_string_is(type, type_len, "ssh-rsa")) {
		gnutls_datum_t n, e, d, iqmp, p, q;
		if (!kmx_import_read_mpint(r, &n) || !kmx_import_read_mpint(r, &e) ||
		    !kmx_import_read_mpint(r, &d) || !kmx_import_read_mpint(r, &iqmp) ||
		    !kmx_import_read_mpint(r, &p) || !kmx_import_read_mpint(r, &q))
			return kmx_import_unparseable(error, "bad OpenSSH RSA key");
		/* iqmp is q^-1 mod p, the PKCS#1 coefficient gnutls calls u */
		rc = gnutls_x509_privkey_import_rsa_raw2(x, &n, &e, &d, &p, &q, &iqmp, NULL, NULL);
	} else if (kmx_ssh_string_is(type, type_len, "ecdsa-sha2-nistp256") ||
		   kmx_ssh_string_is(type, type_len, "ecdsa-sha2-nistp384")) {
		gboolean p256 = kmx_ssh_string_is(type, type_len, "ecdsa-sha2-nistp256");
		gsize coord = p256 ? 32 : 48;
		const guint8 *curve = NULL, *q = NULL;
		gsize curve_len = 0, q_len = 0;
		gnutls_datum_t px, py, k;
		if (!kmx_ssh_read_string(r, &curve, &curve_len) ||
		    !kmx_ssh_string_is(curve, curve_len, p256 ? "nistp256" : "nistp384") ||
		    !kmx_ssh_read_string(r, &q, &q_len) || q_len != 1 + 2 * coord || q[0] != 0x04 ||
		    !kmx_import_read_mpint(r, &k) || k.size > coord + 1)
			return kmx_import_unparseable(error, "bad OpenSSH ECDSA key");
		px.data = (guint8 *)q + 1;
		px.size = (guint)coord;
		py.data = (guint8 *)q + 1 + coord;
		py.size = (guint)coord;
		rc = gnutls_x509_privkey_import_ecc_raw(x,
							p256 ? GNUTLS_ECC_CURVE_SECP256R1
							     : GNUTLS_ECC_CURVE_SECP384R1,
							&px,
							&py,
							&k);
	} else {
		g_autofree char *shown = kmx_import_ssh_shown(type, type_len);
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "OpenSSH keys of type %s are not supported: use ssh-ed25519, ssh-rsa or "
		    "ecdsa-sha2-nistp256/384",
		    shown);
		return NULL;
	}
	if (rc < 0)
		return kmx_import_unparseable(error, "bad OpenSSH key values");
	if (!kmx_ssh_read_string(r, &c, &c_len))
		return kmx_import_unparseable(error, "truncated OpenSSH key");
	comment = g_strndup((const char *)c, c_len);
	if (strlen(comment) != c_len)
		g_clear_pointer(&comment, g_free);
	return kmx_import_finish(x, comment, error);
}

static GPtrArray *kmx_import_ssh(const char *text,
				 gsize len,
				 KmxSecret *passphrase,
				 GError **error);

/* the ciphers libssh 0.10 decrypts OpenSSH keys with; it calls a NULL
 * function for the AEAD ones (aes*-gcm@openssh.com,
 * chacha20-poly1305@openssh.com), so those never reach it */
static const char *const kmx_ssh_ciphers[] = {
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
    "aes256-cbc",
    "aes192-cbc",
    "aes128-cbc",
};

/* a PEM key as libssh writes it without a passphrase (PKCS#8 or SEC1) */
static GPtrArray *
kmx_import_plain_pem(KmxSecret *pem, GError **error)
{
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_imported_key_free);
	g_auto(gnutls_x509_privkey_t) x = NULL;
	gnutls_datum_t d;
	KmxImportedKey *key;

	d.data = kmx_secret_get_data(pem);
	d.size = (guint)kmx_secret_get_length(pem);
	gnutls_x509_privkey_init(&x);
	if (gnutls_x509_privkey_import2(x, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN) < 0)
		return kmx_import_unparseable(error, "bad decrypted OpenSSH key");
	key = kmx_import_finish(x, NULL, error);
	if (key == NULL)
		return NULL;
	g_ptr_array_add(keys, key);
	return g_steal_pointer(&keys);
}

/* an OpenSSH key with a passphrase: check everything readable without it,
 * so that libssh only sees what it handles safely and a failure there is
 * the check of the decrypted bytes, a wrong passphrase; @r is after the key
 * count */
static GPtrArray *
kmx_import_ssh_encrypted(KmxSshReader *r,
			 const guint8 *cipher,
			 gsize cipher_len,
			 const guint8 *kdf,
			 gsize kdf_len,
			 const guint8 *kdfopts,
			 gsize kdfopts_len,
			 guint32 n,
			 KmxSecret *blob,
			 KmxSecret *passphrase,
			 GError **error)
{
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
	static const char end[] = "\n-----END OPENSSH PRIVATE KEY-----\n";
	KmxSshReader opts;
	g_autoptr(KmxSecret) b64 = NULL;
	g_autoptr(KmxSecret) text = NULL;
	g_autoptr(KmxSecret) plain = NULL;
	const guint8 *salt = NULL, *pub = NULL, *priv = NULL;
	gsize salt_len = 0, pub_len = 0, priv_len = 0, b64_len;
	guint32 rounds = 0;
	gboolean known = FALSE;

	kmx_ssh_reader_init(&opts, kdfopts, kdfopts_len);
	for (guint i = 0; i < G_N_ELEMENTS(kmx_ssh_ciphers); i++)
		known = known || kmx_ssh_string_is(cipher, cipher_len, kmx_ssh_ciphers[i]);
	if (!kmx_ssh_string_is(kdf, kdf_len, "bcrypt")) {
		g_autofree char *shown = kmx_import_ssh_shown(kdf, kdf_len);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "OpenSSH keys with the key derivation %s are not supported: re-encrypt "
			    "a copy with 'ssh-keygen -p -Z aes256-ctr -f COPY' and import that",
			    shown);
		return NULL;
	}
	if (!known) {
		g_autofree char *shown = kmx_import_ssh_shown(cipher, cipher_len);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "OpenSSH keys encrypted with %s are not supported: re-encrypt a copy "
			    "with 'ssh-keygen -p -Z aes256-ctr -f COPY' and import that",
			    shown);
		return NULL;
	}
	if (!kmx_ssh_read_string(&opts, &salt, &salt_len) || salt_len == 0 || salt_len > 64 ||
	    !kmx_ssh_read_u32(&opts, &rounds) || rounds == 0 || opts.left != 0)
		return kmx_import_unparseable(error, "bad OpenSSH bcrypt options");
	/* bcrypt-pbkdf costs ~10 ms a round and a hostile file could ask for
	 * 2^32: refused before libssh sees it, with or without a passphrase */
	if (rounds > KMX_IMPORT_MAX_BCRYPT_ROUNDS) {
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "the OpenSSH key asks for %u bcrypt rounds, more than the %u keymux "
		    "accepts: re-encrypt a copy with fewer, 'ssh-keygen -p -a 100 -f COPY', "
		    "and import that",
		    rounds,
		    KMX_IMPORT_MAX_BCRYPT_ROUNDS);
		return NULL;
	}
	if (n != 1) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "passphrase-protected OpenSSH files with several keys are not "
				    "supported");
		return NULL;
	}
	/* the AES ciphers take whole 16-byte blocks and leave no tag after them */
	if (!kmx_ssh_read_string(r, &pub, &pub_len) || pub_len == 0 ||
	    !kmx_ssh_read_string(r, &priv, &priv_len) || priv_len == 0 || priv_len % 16 != 0 ||
	    r->left != 0)
		return kmx_import_unparseable(error, "bad OpenSSH private section");
	if (kmx_secret_is_empty(passphrase)) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "the OpenSSH key is encrypted: give its passphrase");
		return NULL;
	}
	/* libssh wants the text to start with the header: give it the checked
	 * key, encoded again, between a fresh header and footer */
	b64 = kmx_base64_encode_secret(kmx_secret_get_data(blob), kmx_secret_get_length(blob));
	b64_len = kmx_secret_get_length(b64);
	text = kmx_secret_new(strlen(begin) + b64_len + strlen(end));
	memcpy(kmx_secret_get_data(text), begin, strlen(begin));
	memcpy(kmx_secret_get_data(text) + strlen(begin), kmx_secret_get_data(b64), b64_len);
	memcpy(kmx_secret_get_data(text) + strlen(begin) + b64_len, end, strlen(end));
	plain = kmx_import_ssh_decrypt(text, passphrase, pub, pub_len, error);
	if (plain == NULL)
		return NULL;
	if (g_str_has_prefix(kmx_secret_get_string(plain), "-----BEGIN OPENSSH PRIVATE KEY-----"))
		return kmx_import_ssh(kmx_secret_get_string(plain),
				      kmx_secret_get_length(plain),
				      NULL,
				      error);
	return kmx_import_plain_pem(plain, error);
}

static GPtrArray *
kmx_import_ssh_blob(KmxSecret *blob, KmxSecret *passphrase, GError **error)
{
	static const char magic[] = "openssh-key-v1"; /* with its NUL: 15 bytes */
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_imported_key_free);
	KmxSshReader r;
	KmxSshReader priv;
	const guint8 *head = NULL, *cipher = NULL, *kdf = NULL, *kdfopts = NULL, *s = NULL;
	gsize cipher_len = 0, kdf_len = 0, kdfopts_len = 0, s_len = 0;
	guint32 n = 0, check1 = 0, check2 = 0;

	kmx_ssh_reader_init(&r, kmx_secret_get_data(blob), kmx_secret_get_length(blob));
	if (!kmx_ssh_read_bytes(&r, sizeof(magic), &head) ||
	    memcmp(head, magic, sizeof(magic)) != 0)
		return kmx_import_unparseable(error, "not an openssh-key-v1 key");
	if (!kmx_ssh_read_string(&r, &cipher, &cipher_len) ||
	    !kmx_ssh_read_string(&r, &kdf, &kdf_len) ||
	    !kmx_ssh_read_string(&r, &kdfopts, &kdfopts_len) || !kmx_ssh_read_u32(&r, &n))
		return kmx_import_unparseable(error, "truncated OpenSSH key");
	if (!kmx_ssh_string_is(cipher, cipher_len, "none") ||
	    !kmx_ssh_string_is(kdf, kdf_len, "none"))
		return kmx_import_ssh_encrypted(&r,
						cipher,
						cipher_len,
						kdf,
						kdf_len,
						kdfopts,
						kdfopts_len,
						n,
						blob,
						passphrase,
						error);
	if (n == 0 || n > 16)
		return kmx_import_unparseable(error, "bad number of OpenSSH keys");
	for (guint32 i = 0; i < n; i++) {
		if (!kmx_ssh_read_string(&r, &s, &s_len))
			return kmx_import_unparseable(error, "truncated OpenSSH key");
	}
	if (!kmx_ssh_read_string(&r, &s, &s_len) || r.left != 0)
		return kmx_import_unparseable(error, "bad OpenSSH private section");
	kmx_ssh_reader_init(&priv, s, s_len);
	if (s_len % 8 != 0 || !kmx_ssh_read_u32(&priv, &check1) ||
	    !kmx_ssh_read_u32(&priv, &check2) || check1 != check2)
		return kmx_import_unparseable(error, "bad OpenSSH private section");
	for (guint32 i = 0; i < n; i++) {
		KmxImportedKey *key = kmx_import_ssh_key(&priv, error);
		if (key == NULL)
			return NULL;
		g_ptr_array_add(keys, key);
	}
	/* padding is 1, 2, 3, ... up to the cipher block size; libssh pads to
	 * 16 bytes (AES) even without a cipher, as in the keys it decrypts */
	if (priv.left >= 16)
		return kmx_import_unparseable(error, "bad OpenSSH padding");
	for (gsize i = 0; i < priv.left; i++) {
		if (priv.p[i] != (guint8)(i + 1))
			return kmx_import_unparseable(error, "bad OpenSSH padding");
	}
	return g_steal_pointer(&keys);
}

static GPtrArray *
kmx_import_ssh(const char *text, gsize len, KmxSecret *passphrase, GError **error)
{
	g_autoptr(KmxSecret) blob = NULL;
	g_autoptr(GError) error_local = NULL;

	/* the key itself: decoded by gnutls, into secret memory */
	blob = kmx_pem_decode_secret(text, len, "OPENSSH PRIVATE KEY", &error_local);
	if (blob == NULL)
		return kmx_import_unparseable(error, error_local->message);
	return kmx_import_ssh_blob(blob, passphrase, error);
}

/* ---- KDF limits ---- */

/* the KDF work of one import so far, so that many bags at the limit cannot
 * add up to minutes */
typedef struct {
	guint64 spent;
} KmxKdfBudget;

/* check an iteration count read from the file before gnutls runs that KDF */
static gboolean
kmx_import_kdf_allowed(KmxKdfBudget *budget,
		       guint iterations,
		       const char *what,
		       const char *fix,
		       GError **error)
{
	if (iterations > KMX_IMPORT_MAX_ITERATIONS) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s asks for %u KDF iterations, more than the %u keymux accepts: %s",
			    what,
			    iterations,
			    KMX_IMPORT_MAX_ITERATIONS,
			    fix);
		return FALSE;
	}
	if (budget->spent + iterations > KMX_IMPORT_MAX_TOTAL_ITERATIONS) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the file asks for more than %" G_GUINT64_FORMAT
			    " KDF iterations in all: %s",
			    (guint64)KMX_IMPORT_MAX_TOTAL_ITERATIONS,
			    fix);
		return FALSE;
	}
	budget->spent += iterations;
	return TRUE;
}

#define KMX_IMPORT_PKCS8_FIX                                                                       \
	"re-encrypt a copy with fewer, e.g. 'openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 100000 "   \
	"-in KEY -out COPY', and import that"
#define KMX_IMPORT_PKCS12_FIX                                                                      \
	"export the key again with fewer, e.g. 'openssl pkcs12 -export -iter 100000', and import " \
	"that"

/* the iteration count of an EncryptedPrivateKeyInfo; a gnutls error when
 * @d is none (GNUTLS_E_INVALID_REQUEST, or an ASN.1 error), or one whose KDF
 * gnutls cannot read and so cannot run either */
static int
kmx_import_pkcs8_iterations(const gnutls_datum_t *d,
			    gnutls_x509_crt_fmt_t format,
			    guint *iterations)
{
	unsigned int schema = 0, cipher = 0, salt_size = 0, iter = 0;
	char *oid = NULL;
	int rc = gnutls_pkcs8_info(d, format, &schema, &cipher, NULL, &salt_size, &iter, &oid);

	gnutls_free(oid);
	*iterations = iter;
	return rc;
}

/* encryption gnutls cannot describe: parameters it refuses, such as more
 * iterations than its own limit, or a scheme it does not know */
static gboolean
kmx_import_kdf_unreadable(int rc, const char *what, const char *fix, GError **error)
{
	g_set_error(error,
		    KMX_ERROR,
		    rc == GNUTLS_E_ILLEGAL_PARAMETER ? KMX_ERROR_INVALID_ARGUMENT
						     : KMX_ERROR_NOT_SUPPORTED,
		    "%s is encrypted with parameters keymux cannot use (%s): %s",
		    what,
		    gnutls_strerror(rc),
		    fix);
	return FALSE;
}

/* ---- PKCS#12 ---- */

/* gnutls decodes the whole file again for each bag: real files have 2 or 3 */
#define KMX_IMPORT_PKCS12_MAX_BAGS 32

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_pkcs12_bag_t, gnutls_pkcs12_bag_deinit, NULL)

static gboolean
kmx_import_pkcs12_bad_secret(GError **error)
{
	g_set_error_literal(error,
			    KMX_ERROR,
			    KMX_ERROR_BAD_SECRET,
			    "wrong passphrase for the PKCS#12 file");
	return FALSE;
}

/* the first private key of a (decrypted) bag into @x, if it has one */
static gboolean
kmx_import_pkcs12_bag_key(gnutls_pkcs12_bag_t bag,
			  const char *pass,
			  KmxKdfBudget *budget,
			  gnutls_x509_privkey_t *x,
			  GError **error)
{
	int count = gnutls_pkcs12_bag_get_count(bag);

	for (int i = 0; i < count && *x == NULL; i++) {
		int type = gnutls_pkcs12_bag_get_type(bag, (unsigned)i);
		gnutls_datum_t d = {NULL, 0};
		guint iter = 0;
		int rc;

		if (type != GNUTLS_BAG_PKCS8_KEY && type != GNUTLS_BAG_PKCS8_ENCRYPTED_KEY)
			continue;
		if (gnutls_pkcs12_bag_get_data(bag, (unsigned)i, &d) < 0) {
			kmx_import_unparseable(error, "bad PKCS#12 key bag");
			return FALSE;
		}
		if (type == GNUTLS_BAG_PKCS8_ENCRYPTED_KEY) {
			rc = kmx_import_pkcs8_iterations(&d, GNUTLS_X509_FMT_DER, &iter);
			if (rc < 0)
				return kmx_import_kdf_unreadable(rc,
								 "the key in the PKCS#12 file",
								 KMX_IMPORT_PKCS12_FIX,
								 error);
			if (!kmx_import_kdf_allowed(budget,
						    iter,
						    "the key in the PKCS#12 file",
						    KMX_IMPORT_PKCS12_FIX,
						    error))
				return FALSE;
		}
		gnutls_x509_privkey_init(x);
		rc = gnutls_x509_privkey_import_pkcs8(
		    *x,
		    &d,
		    GNUTLS_X509_FMT_DER,
		    pass,
		    type == GNUTLS_BAG_PKCS8_KEY ? GNUTLS_PKCS_PLAIN : 0);
		if (rc == GNUTLS_E_DECRYPTION_FAILED)
			return kmx_import_pkcs12_bad_secret(error);
		if (rc < 0) {
			kmx_import_unparseable(error, gnutls_strerror(rc));
			return FALSE;
		}
	}
	return TRUE;
}

/* an encrypted bag, its KDF checked first */
static gboolean
kmx_import_pkcs12_decrypt_bag(gnutls_pkcs12_bag_t bag,
			      const char *pass,
			      KmxKdfBudget *budget,
			      GError **error)
{
	const char *what = "an encrypted bag of the PKCS#12 file";
	unsigned int schema = 0, cipher = 0, salt_size = 0, iter = 0;
	char *oid = NULL;
	int rc;

	rc = gnutls_pkcs12_bag_enc_info(bag, &schema, &cipher, NULL, &salt_size, &iter, &oid);
	gnutls_free(oid);
	if (rc < 0)
		return kmx_import_kdf_unreadable(rc, what, KMX_IMPORT_PKCS12_FIX, error);
	if (!kmx_import_kdf_allowed(budget, iter, what, KMX_IMPORT_PKCS12_FIX, error))
		return FALSE;
	rc = gnutls_pkcs12_bag_decrypt(bag, pass);
	if (rc == GNUTLS_E_DECRYPTION_FAILED)
		return kmx_import_pkcs12_bad_secret(error);
	if (rc < 0) {
		kmx_import_unparseable(error, gnutls_strerror(rc));
		return FALSE;
	}
	return TRUE;
}

/* the key of a PKCS#12 file, walked here rather than by
 * gnutls_pkcs12_simple_parse() so that every iteration count (the MAC's,
 * each encrypted bag's, the shrouded key's) is checked before gnutls runs
 * that KDF, and so that a wrong passphrase costs one KDF */
static GPtrArray *
kmx_import_pkcs12(gnutls_pkcs12_t p12, KmxSecret *passphrase, GError **error)
{
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_imported_key_free);
	g_auto(gnutls_x509_privkey_t) x = NULL;
	const char *pass = passphrase != NULL ? kmx_secret_get_string(passphrase) : "";
	KmxKdfBudget budget = {0};
	unsigned int mac = 0, salt_size = 0, iter = 0;
	char *oid = NULL;
	KmxImportedKey *key;
	int rc;

	/* a MAC gnutls cannot describe is one it cannot check either; the oid
	 * is asked for because gnutls 3.7 leaks it for an unknown algorithm
	 * when it is not */
	rc = gnutls_pkcs12_mac_info(p12, &mac, NULL, &salt_size, &iter, &oid);
	gnutls_free(oid);
	if (rc >= 0) {
		if (!kmx_import_kdf_allowed(&budget,
					    iter,
					    "the MAC of the PKCS#12 file",
					    KMX_IMPORT_PKCS12_FIX,
					    error))
			return NULL;
		if (gnutls_pkcs12_verify_mac(p12, pass) == GNUTLS_E_MAC_VERIFY_FAILED) {
			kmx_import_pkcs12_bad_secret(error);
			return NULL;
		}
	}
	/* the plain bags first: openssl puts the (shrouded) key there, and the
	 * certificates in an encrypted bag that need not be decrypted */
	for (guint round = 0; round < 2 && x == NULL; round++) {
		for (int i = 0; x == NULL; i++) {
			g_auto(gnutls_pkcs12_bag_t) bag = NULL;
			gboolean encrypted;

			if (i == KMX_IMPORT_PKCS12_MAX_BAGS)
				return kmx_import_unparseable(error, "too many PKCS#12 bags");
			gnutls_pkcs12_bag_init(&bag);
			rc = gnutls_pkcs12_get_bag(p12, i, bag);
			if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
				break;
			if (rc < 0)
				return kmx_import_unparseable(error, gnutls_strerror(rc));
			encrypted = gnutls_pkcs12_bag_get_type(bag, 0) == GNUTLS_BAG_ENCRYPTED;
			if (encrypted != (round == 1))
				continue;
			if (encrypted && !kmx_import_pkcs12_decrypt_bag(bag, pass, &budget, error))
				return NULL;
			if (!kmx_import_pkcs12_bag_key(bag, pass, &budget, &x, error))
				return NULL;
		}
	}
	if (x == NULL)
		return kmx_import_unparseable(error, "no private key in the PKCS#12 file");
	key = kmx_import_finish(x, NULL, error);
	if (key == NULL)
		return NULL;
	g_ptr_array_add(keys, key);
	return g_steal_pointer(&keys);
}

/**
 * kmx_import_parse:
 * @data: hostile bytes: a key file in one of the accepted formats
 * @passphrase: (nullable): its passphrase, if encrypted
 *
 * Returns: (transfer full) (element-type KmxImportedKey): the keys
 * found, or %NULL with %KMX_ERROR_BAD_SECRET (wrong passphrase),
 * %KMX_ERROR_INVALID_ARGUMENT (unparseable) or %KMX_ERROR_NOT_SUPPORTED
 * (a key type or format keymux does not take)
 */
GPtrArray *
kmx_import_parse(GBytes *data, KmxSecret *passphrase, GError **error)
{
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_imported_key_free);
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_auto(gnutls_pkcs12_t) p12 = NULL;
	gsize len = 0;
	const char *text = g_bytes_get_data(data, &len);
	const char *pass = NULL;
	gnutls_datum_t d;
	gboolean pem;
	KmxImportedKey *key;
	guint iter = 0;
	int rc;

	if (text == NULL || len == 0)
		return kmx_import_unparseable(error, "no data");
	if (len > KMX_IMPORT_MAX_SIZE)
		return kmx_import_unparseable(error, "larger than 1 MiB");
	if (!kmx_secret_is_empty(passphrase))
		pass = kmx_secret_get_string(passphrase);
	pem = g_strstr_len(text, (gssize)len, "-----BEGIN ") != NULL;
	if (pem && g_strstr_len(text, (gssize)len, "-----BEGIN OPENSSH PRIVATE KEY-----") != NULL)
		return kmx_import_ssh(text, len, passphrase, error);
	d.data = (guint8 *)text;
	d.size = (guint)len;

	gnutls_pkcs12_init(&p12);
	if ((!pem || g_strstr_len(text, (gssize)len, "-----BEGIN PKCS12-----") != NULL) &&
	    gnutls_pkcs12_import(p12, &d, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER, 0) >= 0)
		return kmx_import_pkcs12(p12, passphrase, error);

	/* an EncryptedPrivateKeyInfo: without a passphrase nothing is tried,
	 * with one its iteration count is checked before gnutls runs the KDF */
	rc =
	    kmx_import_pkcs8_iterations(&d, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER, &iter);
	if (rc == GNUTLS_E_ILLEGAL_PARAMETER) {
		kmx_import_kdf_unreadable(rc, "the key", KMX_IMPORT_PKCS8_FIX, error);
		return NULL;
	}
	if (rc >= 0) {
		KmxKdfBudget budget = {0};
		if (pass == NULL) {
			g_set_error_literal(error,
					    KMX_ERROR,
					    KMX_ERROR_BAD_SECRET,
					    "the key is encrypted: give its passphrase");
			return NULL;
		}
		if (!kmx_import_kdf_allowed(&budget,
					    iter,
					    "the encrypted key",
					    KMX_IMPORT_PKCS8_FIX,
					    error))
			return NULL;
	}
	gnutls_x509_privkey_init(&x);
	rc = gnutls_x509_privkey_import2(x,
					 &d,
					 pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
					 pass,
					 pass == NULL ? GNUTLS_PKCS_PLAIN : 0);
	/* without a passphrase gnutls tries no decryption: an encrypted key it
	 * knows (legacy "Proc-Type: 4,ENCRYPTED" PEM) fails at once */
	if (rc == GNUTLS_E_DECRYPTION_FAILED) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    pass == NULL ? "the key is encrypted: give its passphrase"
						 : "wrong passphrase for the key");
		return NULL;
	}
	if (rc < 0)
		return kmx_import_unparseable(error, gnutls_strerror(rc));
	key = kmx_import_finish(x, NULL, error);
	if (key == NULL)
		return NULL;
	g_ptr_array_add(keys, key);
	return g_steal_pointer(&keys);
}
