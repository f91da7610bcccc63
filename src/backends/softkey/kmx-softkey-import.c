/* keymux: key files a user brings, parsed into one canonical form
 *
 * Accepted: PKCS#8 (plain and encrypted), PKCS#1 RSA, SEC1 EC, each PEM or
 * DER; PKCS#12 (DER or PEM) with its passphrase; OpenSSH "openssh-key-v1",
 * plain or with a passphrase.  gnutls parses all but the OpenSSH format, which
 * is parsed here (gnutls decodes its base64) with a bounds check on every
 * length; an encrypted one is checked here too, then decrypted by libssh
 * (kmx-softkey-ssh.c) and read again in the form libssh writes it.
 * Everything ends as a gnutls_x509_privkey_t whose consistency gnutls
 * checks, then as a plain PKCS#8 DER in secret memory.
 */
#include "config.h"

#include <string.h>

#include "kmx-encoding.h"
#include "kmx-error.h"
#include "kmx-softkey-import.h"
#include "kmx-softkey-ssh.h"
#include "kmx-softkey-store.h"

#define KMX_SOFTKEY_FORMATS                                                                        \
	"PKCS#8 (plain or encrypted), PKCS#1 RSA, SEC1 EC, PKCS#12 or an OpenSSH key, as PEM or "  \
	"DER"

void
kmx_softkey_parsed_key_free(KmxSoftkeyParsedKey *key)
{
	if (key == NULL)
		return;
	g_clear_pointer(&key->pkcs8, kmx_secret_unref);
	g_clear_pointer(&key->spki, g_bytes_unref);
	g_free(key->comment);
	g_free(key);
}

static gpointer
kmx_softkey_import_unparseable(GError **error, const char *why)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "cannot read the key (%s): give %s",
		    why,
		    KMX_SOFTKEY_FORMATS);
	return NULL;
}

/* the common end of every format: check, classify, canonicalise */
static KmxSoftkeyParsedKey *
kmx_softkey_import_finish(gnutls_x509_privkey_t x, const char *comment, GError **error)
{
	g_autoptr(KmxSoftkeyParsedKey) key = g_new0(KmxSoftkeyParsedKey, 1);
	int rc;

	key->type = kmx_softkey_x509_get_key_type(x, error);
	if (key->type == KMX_KEY_TYPE_UNKNOWN)
		return NULL;
	/* hostile input: an RSA key whose n != p*q or an EC key whose public
	 * point is not d*G would sign wrongly or leak; gnutls checks both */
	rc = gnutls_x509_privkey_verify_params(x);
	if (rc < 0)
		return kmx_softkey_import_unparseable(error, "the key is inconsistent");
	key->pkcs8 = kmx_softkey_x509_to_pkcs8(x, error);
	if (key->pkcs8 == NULL)
		return NULL;
	key->spki = kmx_softkey_x509_get_spki(x, error);
	if (key->spki == NULL)
		return NULL;
	if (comment != NULL && comment[0] != '\0' && strlen(comment) <= 256 &&
	    g_utf8_validate(comment, -1, NULL))
		key->comment = g_strdup(comment);
	return g_steal_pointer(&key);
}

/* ---- OpenSSH "openssh-key-v1" ---- */

typedef struct {
	const guint8 *p;
	gsize left;
} KmxSshReader;

static gboolean
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

static gboolean
kmx_ssh_read_string(KmxSshReader *r, const guint8 **s, gsize *len)
{
	guint32 l = 0;

	if (!kmx_ssh_read_u32(r, &l) || l > r->left)
		return FALSE;
	*s = r->p;
	*len = l;
	r->p += l;
	r->left -= l;
	return TRUE;
}

static gboolean
kmx_ssh_string_is(const guint8 *s, gsize len, const char *want)
{
	return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* an SSH mpint that must be positive and non-zero, as a gnutls datum */
static gboolean
kmx_ssh_read_mpint(KmxSshReader *r, gnutls_datum_t *d)
{
	const guint8 *s = NULL;
	gsize len = 0;

	if (!kmx_ssh_read_string(r, &s, &len) || len == 0 || len > 1025 || (s[0] & 0x80) != 0)
		return FALSE;
	d->data = (guint8 *)s;
	d->size = (guint)len;
	return TRUE;
}

static KmxSoftkeyParsedKey *
kmx_softkey_import_ssh_key(KmxSshReader *r, GError **error)
{
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_autofree char *comment = NULL;
	const guint8 *type = NULL;
	const guint8 *c = NULL;
	gsize type_len = 0;
	gsize c_len = 0;
	int rc = GNUTLS_E_INVALID_REQUEST;

	if (!kmx_ssh_read_string(r, &type, &type_len))
		return kmx_softkey_import_unparseable(error, "truncated OpenSSH key");
	gnutls_x509_privkey_init(&x);
	if (kmx_ssh_string_is(type, type_len, "ssh-ed25519")) {
		const guint8 *pk = NULL, *sk = NULL;
		gsize pk_len = 0, sk_len = 0;
		gnutls_datum_t pub, seed;
		if (!kmx_ssh_read_string(r, &pk, &pk_len) || pk_len != 32 ||
		    !kmx_ssh_read_string(r, &sk, &sk_len) || sk_len != 64 ||
		    memcmp(sk + 32, pk, 32) != 0)
			return kmx_softkey_import_unparseable(error, "bad OpenSSH Ed25519 key");
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
		if (!kmx_ssh_read_mpint(r, &n) || !kmx_ssh_read_mpint(r, &e) ||
		    !kmx_ssh_read_mpint(r, &d) || !kmx_ssh_read_mpint(r, &iqmp) ||
		    !kmx_ssh_read_mpint(r, &p) || !kmx_ssh_read_mpint(r, &q))
			return kmx_softkey_import_unparseable(error, "bad OpenSSH RSA key");
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
		    !kmx_ssh_read_mpint(r, &k) || k.size > coord + 1)
			return kmx_softkey_import_unparseable(error, "bad OpenSSH ECDSA key");
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
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "OpenSSH keys of type %.*s are not supported: use ssh-ed25519, ssh-rsa or "
		    "ecdsa-sha2-nistp256/384",
		    (int)MIN(type_len, 64),
		    g_utf8_validate((const char *)type, (gssize)MIN(type_len, 64), NULL)
			? (const char *)type
			: "?");
		return NULL;
	}
	if (rc < 0)
		return kmx_softkey_import_unparseable(error, "bad OpenSSH key values");
	if (!kmx_ssh_read_string(r, &c, &c_len))
		return kmx_softkey_import_unparseable(error, "truncated OpenSSH key");
	comment = g_strndup((const char *)c, c_len);
	if (strlen(comment) != c_len)
		g_clear_pointer(&comment, g_free);
	return kmx_softkey_import_finish(x, comment, error);
}

static GPtrArray *kmx_softkey_import_ssh(const char *text,
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

/* bcrypt-pbkdf costs ~5 ms a round; ssh-keygen writes 16 and a hostile file
 * could ask for 2^32 */
#define KMX_SSH_MAX_ROUNDS 1000u

/* a PEM key as libssh writes it without a passphrase (PKCS#8 or SEC1) */
static GPtrArray *
kmx_softkey_import_plain_pem(KmxSecret *pem, GError **error)
{
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_softkey_parsed_key_free);
	g_auto(gnutls_x509_privkey_t) x = NULL;
	gnutls_datum_t d;
	KmxSoftkeyParsedKey *key;

	d.data = kmx_secret_get_data(pem);
	d.size = (guint)kmx_secret_get_length(pem);
	gnutls_x509_privkey_init(&x);
	if (gnutls_x509_privkey_import2(x, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN) < 0)
		return kmx_softkey_import_unparseable(error, "bad decrypted OpenSSH key");
	key = kmx_softkey_import_finish(x, NULL, error);
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
kmx_softkey_import_ssh_encrypted(KmxSshReader *r,
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
	KmxSshReader opts = {kdfopts, kdfopts_len};
	g_autoptr(KmxSecret) b64 = NULL;
	g_autoptr(KmxSecret) text = NULL;
	g_autoptr(KmxSecret) plain = NULL;
	const guint8 *salt = NULL, *pub = NULL, *priv = NULL;
	gsize salt_len = 0, pub_len = 0, priv_len = 0, b64_len;
	guint32 rounds = 0;
	gboolean known = FALSE;

	for (guint i = 0; i < G_N_ELEMENTS(kmx_ssh_ciphers); i++)
		known = known || kmx_ssh_string_is(cipher, cipher_len, kmx_ssh_ciphers[i]);
	if (!kmx_ssh_string_is(kdf, kdf_len, "bcrypt")) {
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "OpenSSH keys with the key derivation %.*s are not supported: re-encrypt "
		    "a copy with 'ssh-keygen -p -Z aes256-ctr -f COPY' and import that",
		    (int)MIN(kdf_len, 64),
		    g_utf8_validate((const char *)kdf, (gssize)MIN(kdf_len, 64), NULL)
			? (const char *)kdf
			: "?");
		return NULL;
	}
	if (!known) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "OpenSSH keys encrypted with %.*s are not supported: re-encrypt a copy "
			    "with 'ssh-keygen -p -Z aes256-ctr -f COPY' and import that",
			    (int)MIN(cipher_len, 64),
			    g_utf8_validate((const char *)cipher, (gssize)MIN(cipher_len, 64), NULL)
				? (const char *)cipher
				: "?");
		return NULL;
	}
	if (!kmx_ssh_read_string(&opts, &salt, &salt_len) || salt_len == 0 || salt_len > 64 ||
	    !kmx_ssh_read_u32(&opts, &rounds) || rounds == 0 || opts.left != 0)
		return kmx_softkey_import_unparseable(error, "bad OpenSSH bcrypt options");
	if (rounds > KMX_SSH_MAX_ROUNDS) {
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "OpenSSH keys with more than %u bcrypt rounds (this one has %u) are not "
		    "supported: re-encrypt a copy with 'ssh-keygen -p -a 100 -f COPY'",
		    KMX_SSH_MAX_ROUNDS,
		    rounds);
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
		return kmx_softkey_import_unparseable(error, "bad OpenSSH private section");
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
	plain = kmx_softkey_ssh_decrypt(text, passphrase, pub, pub_len, error);
	if (plain == NULL)
		return NULL;
	if (g_str_has_prefix(kmx_secret_get_string(plain), "-----BEGIN OPENSSH PRIVATE KEY-----"))
		return kmx_softkey_import_ssh(kmx_secret_get_string(plain),
					      kmx_secret_get_length(plain),
					      NULL,
					      error);
	return kmx_softkey_import_plain_pem(plain, error);
}

static GPtrArray *
kmx_softkey_import_ssh_blob(KmxSecret *blob, KmxSecret *passphrase, GError **error)
{
	static const char magic[] = "openssh-key-v1"; /* with its NUL: 15 bytes */
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_softkey_parsed_key_free);
	KmxSshReader r = {kmx_secret_get_data(blob), kmx_secret_get_length(blob)};
	KmxSshReader priv;
	const guint8 *cipher = NULL, *kdf = NULL, *kdfopts = NULL, *s = NULL;
	gsize cipher_len = 0, kdf_len = 0, kdfopts_len = 0, s_len = 0;
	guint32 n = 0, check1 = 0, check2 = 0;

	if (r.left < sizeof(magic) || memcmp(r.p, magic, sizeof(magic)) != 0)
		return kmx_softkey_import_unparseable(error, "not an openssh-key-v1 key");
	r.p += sizeof(magic);
	r.left -= sizeof(magic);
	if (!kmx_ssh_read_string(&r, &cipher, &cipher_len) ||
	    !kmx_ssh_read_string(&r, &kdf, &kdf_len) ||
	    !kmx_ssh_read_string(&r, &kdfopts, &kdfopts_len) || !kmx_ssh_read_u32(&r, &n))
		return kmx_softkey_import_unparseable(error, "truncated OpenSSH key");
	if (!kmx_ssh_string_is(cipher, cipher_len, "none") ||
	    !kmx_ssh_string_is(kdf, kdf_len, "none"))
		return kmx_softkey_import_ssh_encrypted(&r,
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
		return kmx_softkey_import_unparseable(error, "bad number of OpenSSH keys");
	for (guint32 i = 0; i < n; i++) {
		if (!kmx_ssh_read_string(&r, &s, &s_len))
			return kmx_softkey_import_unparseable(error, "truncated OpenSSH key");
	}
	if (!kmx_ssh_read_string(&r, &s, &s_len) || r.left != 0)
		return kmx_softkey_import_unparseable(error, "bad OpenSSH private section");
	priv.p = s;
	priv.left = s_len;
	if (s_len % 8 != 0 || !kmx_ssh_read_u32(&priv, &check1) ||
	    !kmx_ssh_read_u32(&priv, &check2) || check1 != check2)
		return kmx_softkey_import_unparseable(error, "bad OpenSSH private section");
	for (guint32 i = 0; i < n; i++) {
		KmxSoftkeyParsedKey *key = kmx_softkey_import_ssh_key(&priv, error);
		if (key == NULL)
			return NULL;
		g_ptr_array_add(keys, key);
	}
	/* padding is 1, 2, 3, ... up to the cipher block size; libssh pads to
	 * 16 bytes (AES) even without a cipher, as in the keys it decrypts */
	if (priv.left >= 16)
		return kmx_softkey_import_unparseable(error, "bad OpenSSH padding");
	for (gsize i = 0; i < priv.left; i++) {
		if (priv.p[i] != (guint8)(i + 1))
			return kmx_softkey_import_unparseable(error, "bad OpenSSH padding");
	}
	return g_steal_pointer(&keys);
}

static GPtrArray *
kmx_softkey_import_ssh(const char *text, gsize len, KmxSecret *passphrase, GError **error)
{
	g_autoptr(KmxSecret) blob = NULL;
	g_autoptr(GError) error_local = NULL;

	/* the key itself: decoded by gnutls, into secret memory */
	blob = kmx_pem_decode_secret(text, len, "OPENSSH PRIVATE KEY", &error_local);
	if (blob == NULL)
		return kmx_softkey_import_unparseable(error, error_local->message);
	return kmx_softkey_import_ssh_blob(blob, passphrase, error);
}

/* ---- PKCS#12 ---- */

static GPtrArray *
kmx_softkey_import_pkcs12(gnutls_pkcs12_t p12, KmxSecret *passphrase, GError **error)
{
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_softkey_parsed_key_free);
	g_auto(gnutls_x509_privkey_t) x = NULL;
	gnutls_x509_crt_t *chain = NULL;
	unsigned int chain_len = 0;
	const char *pass = kmx_secret_get_string(passphrase);
	KmxSoftkeyParsedKey *key;
	int rc;

	rc = gnutls_pkcs12_verify_mac(p12, pass);
	if (rc == GNUTLS_E_MAC_VERIFY_FAILED) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "wrong passphrase for the PKCS#12 file");
		return NULL;
	}
	rc = gnutls_pkcs12_simple_parse(p12, pass, &x, &chain, &chain_len, NULL, NULL, NULL, 0);
	for (guint i = 0; i < chain_len; i++)
		gnutls_x509_crt_deinit(chain[i]);
	gnutls_free(chain);
	if (rc == GNUTLS_E_DECRYPTION_FAILED || rc == GNUTLS_E_MAC_VERIFY_FAILED) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "wrong passphrase for the PKCS#12 file");
		return NULL;
	}
	if (rc < 0 || x == NULL)
		return kmx_softkey_import_unparseable(error, "no private key in the PKCS#12 file");
	key = kmx_softkey_import_finish(x, NULL, error);
	if (key == NULL)
		return NULL;
	g_ptr_array_add(keys, key);
	return g_steal_pointer(&keys);
}

/**
 * kmx_softkey_import_parse:
 * @data: hostile bytes: a key file in one of the accepted formats
 * @passphrase: (nullable): its passphrase, if encrypted
 *
 * Returns: (transfer full) (element-type KmxSoftkeyParsedKey): the keys
 * found, or %NULL with %KMX_ERROR_BAD_SECRET (wrong passphrase),
 * %KMX_ERROR_INVALID_ARGUMENT (unparseable) or %KMX_ERROR_NOT_SUPPORTED
 * (a key type or format keymux does not take)
 */
GPtrArray *
kmx_softkey_import_parse(GBytes *data, KmxSecret *passphrase, GError **error)
{
	g_autoptr(GPtrArray)
	    keys = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_softkey_parsed_key_free);
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_auto(gnutls_pkcs12_t) p12 = NULL;
	gsize len = 0;
	const char *text = g_bytes_get_data(data, &len);
	const char *pass = NULL;
	gnutls_datum_t d;
	gboolean pem;
	KmxSoftkeyParsedKey *key;
	int rc;

	if (text == NULL || len == 0)
		return kmx_softkey_import_unparseable(error, "no data");
	if (len > KMX_SOFTKEY_IMPORT_MAX_SIZE)
		return kmx_softkey_import_unparseable(error, "larger than 1 MiB");
	if (!kmx_secret_is_empty(passphrase))
		pass = kmx_secret_get_string(passphrase);
	pem = g_strstr_len(text, (gssize)len, "-----BEGIN ") != NULL;
	if (pem && g_strstr_len(text, (gssize)len, "-----BEGIN OPENSSH PRIVATE KEY-----") != NULL)
		return kmx_softkey_import_ssh(text, len, passphrase, error);
	d.data = (guint8 *)text;
	d.size = (guint)len;

	gnutls_pkcs12_init(&p12);
	if ((!pem || g_strstr_len(text, (gssize)len, "-----BEGIN PKCS12-----") != NULL) &&
	    gnutls_pkcs12_import(p12, &d, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER, 0) >= 0)
		return kmx_softkey_import_pkcs12(p12, passphrase, error);

	gnutls_x509_privkey_init(&x);
	rc = gnutls_x509_privkey_import2(x,
					 &d,
					 pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
					 pass,
					 pass == NULL ? GNUTLS_PKCS_PLAIN : 0);
	if (rc < 0 && pass == NULL) {
		/* an encrypted key and no passphrase: retry to tell it from junk */
		gnutls_x509_privkey_deinit(x);
		gnutls_x509_privkey_init(&x);
		rc = gnutls_x509_privkey_import2(x,
						 &d,
						 pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
						 "",
						 0);
		if (rc == GNUTLS_E_DECRYPTION_FAILED) {
			g_set_error_literal(error,
					    KMX_ERROR,
					    KMX_ERROR_BAD_SECRET,
					    "the key is encrypted: give its passphrase");
			return NULL;
		}
	}
	if (rc == GNUTLS_E_DECRYPTION_FAILED) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "wrong passphrase for the key");
		return NULL;
	}
	if (rc < 0)
		return kmx_softkey_import_unparseable(error, gnutls_strerror(rc));
	key = kmx_softkey_import_finish(x, NULL, error);
	if (key == NULL)
		return NULL;
	g_ptr_array_add(keys, key);
	return g_steal_pointer(&keys);
}
