/*
 * keymux benchmarks: keys, in-process crypto and the load generator
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"
#include "kb-wire.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

/* every key also gets a libcrypto view: keymuxd's soft-key backend does its
 * private-key operations with libcrypto (kmx-softkey-ossl.c), and gnutls 3.7
 * has no rsa-oaep */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)

/* which library kb_key_sign() uses; libcrypto, as keymuxd */
static KbLib kb_sign_lib = KB_LIB_LIBCRYPTO;

gboolean
kb_set_sign_lib(const gchar *name, GError **error)
{
	if (g_strcmp0(name, "gnutls") == 0)
		kb_sign_lib = KB_LIB_GNUTLS;
	else if (g_strcmp0(name, "libcrypto") == 0)
		kb_sign_lib = KB_LIB_LIBCRYPTO;
	else {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "unknown library '%s' (gnutls, libcrypto)",
			    name ? name : "(none)");
		return FALSE;
	}
	return TRUE;
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BIGNUM, BN_clear_free)

G_DEFINE_QUARK(kb - error - quark, kb_error)

static const gchar *alg_names[] = {
    [KB_ALG_ED25519] = "ed25519",
    [KB_ALG_ECDSA_SHA256] = "ecdsa-sha256",
    [KB_ALG_RSA_PKCS1_SHA256] = "rsa-pkcs1-sha256",
    [KB_ALG_RSA_OAEP_SHA256] = "rsa-oaep-sha256",
};

gboolean
kb_alg_from_string(const gchar *name, KbAlg *alg, GError **error)
{
	for (guint i = 0; i < G_N_ELEMENTS(alg_names); i++) {
		if (g_strcmp0(name, alg_names[i]) == 0) {
			*alg = i;
			return TRUE;
		}
	}
	g_set_error(error,
		    KB_ERROR,
		    KB_ERROR_FAILED,
		    "unknown algorithm '%s' (ed25519, ecdsa-sha256, rsa-pkcs1-sha256, "
		    "rsa-oaep-sha256)",
		    name ? name : "(none)");
	return FALSE;
}

const gchar *
kb_alg_to_string(KbAlg alg)
{
	return alg_names[alg];
}

gboolean
kb_alg_is_decrypt(KbAlg alg)
{
	return alg == KB_ALG_RSA_OAEP_SHA256;
}

GBytes *
kb_message(void)
{
	/* 64 bytes: a typical size for what is signed (a hash-sized token plus context) */
	static const gchar msg[] =
	    "keymux bench message: the same 64 bytes on every path, ok!!!!!!!";
	G_STATIC_ASSERT(sizeof(msg) - 1 == 64);
	return g_bytes_new_static(msg, 64);
}

GBytes *
kb_message_digest(void)
{
	g_autoptr(GBytes) msg = kb_message();
	guint8 digest[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256,
			 g_bytes_get_data(msg, NULL),
			 g_bytes_get_size(msg),
			 digest);
	return g_bytes_new(digest, sizeof digest);
}

/* ---- keys ---- */

typedef struct {
	KbKey parent;
	EVP_PKEY *ossl; /* the same key in libcrypto */
} KbKeyReal;

void
kb_key_free(KbKey *key)
{
	KbKeyReal *real = (KbKeyReal *)key;
	if (key == NULL)
		return;
	g_clear_pointer(&real->ossl, EVP_PKEY_free);
	if (key->priv != NULL)
		gnutls_privkey_deinit(key->priv);
	if (key->pub != NULL)
		gnutls_pubkey_deinit(key->pub);
	g_clear_pointer(&key->spki, g_bytes_unref);
	g_free(key->id);
	g_free(real);
}

gchar *
kb_spki_id(const guint8 *spki, gsize len)
{
	return g_compute_checksum_for_data(G_CHECKSUM_SHA256, spki, len);
}

static gboolean
gnutls_check(int rc, const gchar *what, GError **error)
{
	if (rc >= 0)
		return TRUE;
	g_set_error(error, KB_ERROR, KB_ERROR_FAILED, "%s: %s", what, gnutls_strerror(rc));
	return FALSE;
}

/* the same key in libcrypto, from gnutls's plain pkcs#8 export */
static gboolean
key_prepare_ossl(KbKeyReal *real, gnutls_x509_privkey_t xkey, GError **error)
{
	gnutls_datum_t der = {NULL, 0};
	const unsigned char *p;
	int rc;

	rc = gnutls_x509_privkey_export2_pkcs8(xkey,
					       GNUTLS_X509_FMT_DER,
					       NULL,
					       GNUTLS_PKCS_PLAIN,
					       &der);
	if (!gnutls_check(rc, "exporting the rsa key as pkcs#8", error))
		return FALSE;
	p = der.data;
	real->ossl = d2i_AutoPrivateKey(NULL, &p, der.size);
	gnutls_memset(der.data, 0, der.size);
	gnutls_free(der.data);
	if (real->ossl == NULL) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "libcrypto cannot read the key gnutls exported");
		return FALSE;
	}
	return TRUE;
}

KbKey *
kb_key_new_from_data(const guint8 *data, gsize len, const gchar *passphrase, GError **error)
{
	g_autoptr(KbKey) key = (KbKey *)g_new0(KbKeyReal, 1);
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_datum_t in = {(guint8 *)data, len};
	gnutls_datum_t spki = {NULL, 0};
	gboolean pem = len > 5 && memcmp(data, "-----", 5) == 0;
	int rc;

	rc = gnutls_x509_privkey_init(&xkey);
	if (!gnutls_check(rc, "gnutls_x509_privkey_init", error))
		return NULL;
	rc = gnutls_x509_privkey_import2(xkey,
					 &in,
					 pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
					 passphrase != NULL && passphrase[0] != '\0' ? passphrase
										     : NULL,
					 0);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(xkey);
		return gnutls_check(rc, "reading the private key", error), NULL;
	}
	if (!key_prepare_ossl((KbKeyReal *)key, xkey, error)) {
		gnutls_x509_privkey_deinit(xkey);
		return NULL;
	}
	rc = gnutls_privkey_init(&key->priv);
	if (rc >= 0)
		rc =
		    gnutls_privkey_import_x509(key->priv, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(xkey);
		return gnutls_check(rc, "importing the private key", error), NULL;
	}
	rc = gnutls_pubkey_init(&key->pub);
	if (rc >= 0)
		rc = gnutls_pubkey_import_privkey(key->pub, key->priv, 0, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_export2(key->pub, GNUTLS_X509_FMT_DER, &spki);
	if (!gnutls_check(rc, "deriving the public key", error))
		return NULL;
	key->spki = g_bytes_new(spki.data, spki.size);
	key->id = kb_spki_id(spki.data, spki.size);
	gnutls_free(spki.data);
	key->pk = gnutls_privkey_get_pk_algorithm(key->priv, NULL);
	return g_steal_pointer(&key);
}

GBytes *
kb_read_file(const gchar *path, GError **error)
{
	gchar *data = NULL;
	gsize len = 0;
	if (!g_file_get_contents(path, &data, &len, error))
		return NULL;
	return g_bytes_new_take(data, len);
}

KbKey *
kb_key_load(const gchar *pem_path, GError **error)
{
	g_autoptr(GBytes) data = kb_read_file(pem_path, error);
	KbKey *key;
	if (data == NULL)
		return NULL;
	key =
	    kb_key_new_from_data(g_bytes_get_data(data, NULL), g_bytes_get_size(data), NULL, error);
	if (key == NULL)
		g_prefix_error(error, "%s: ", pem_path);
	return key;
}

gboolean
kb_key_check_compatible(KbKey *key, KbAlg alg, GError **error)
{
	gboolean ok = FALSE;
	switch (alg) {
	case KB_ALG_ED25519:
		ok = key->pk == GNUTLS_PK_EDDSA_ED25519;
		break;
	case KB_ALG_ECDSA_SHA256:
		ok = key->pk == GNUTLS_PK_ECDSA;
		break;
	case KB_ALG_RSA_PKCS1_SHA256:
	case KB_ALG_RSA_OAEP_SHA256:
		ok = key->pk == GNUTLS_PK_RSA;
		break;
	}
	if (!ok)
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "key type %s cannot do %s",
			    gnutls_pk_get_name(key->pk),
			    kb_alg_to_string(alg));
	return ok;
}

static gnutls_sign_algorithm_t
sign_algorithm(KbAlg alg)
{
	switch (alg) {
	case KB_ALG_ED25519:
		return GNUTLS_SIGN_EDDSA_ED25519;
	case KB_ALG_ECDSA_SHA256:
		return GNUTLS_SIGN_ECDSA_SHA256;
	case KB_ALG_RSA_PKCS1_SHA256:
		return GNUTLS_SIGN_RSA_SHA256;
	default:
		return GNUTLS_SIGN_UNKNOWN;
	}
}

/* what keymuxd does for one signature: the core hashes (GChecksum), the
 * soft-key backend signs the digest with a kept EVP_PKEY_CTX on the key
 * shared by all threads; Ed25519 signs the message with EVP_DigestSign */
static gboolean
sign_libcrypto(KbKeyReal *real,
	       KbAlg alg,
	       const guint8 *data,
	       gsize len,
	       GByteArray *out,
	       GError **error)
{
	guint start = out->len;
	size_t siglen = (size_t)EVP_PKEY_get_size(real->ossl);
	gboolean ok;

	g_byte_array_set_size(out, start + siglen);
	if (alg == KB_ALG_ED25519) {
		g_autoptr(EVP_MD_CTX) md = EVP_MD_CTX_new();
		ok = md != NULL &&
		     EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, real->ossl, NULL) > 0 &&
		     EVP_DigestSign(md, out->data + start, &siglen, data, len) > 0;
	} else {
		/* keymuxd keeps idle contexts per key and mechanism: one per thread here */
		static __thread EVP_PKEY_CTX *cached;
		static __thread EVP_PKEY *cached_key;
		static __thread KbAlg cached_alg;
		g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
		guint8 digest[32];
		gsize dlen = sizeof digest;

		g_checksum_update(sum, data, (gssize)len);
		g_checksum_get_digest(sum, digest, &dlen);
		if (cached == NULL || cached_key != real->ossl || cached_alg != alg) {
			g_clear_pointer(&cached, EVP_PKEY_CTX_free);
			cached = EVP_PKEY_CTX_new_from_pkey(NULL, real->ossl, NULL);
			if (cached == NULL || EVP_PKEY_sign_init(cached) <= 0 ||
			    (alg == KB_ALG_RSA_PKCS1_SHA256 &&
			     EVP_PKEY_CTX_set_rsa_padding(cached, RSA_PKCS1_PADDING) <= 0) ||
			    EVP_PKEY_CTX_set_signature_md(cached, EVP_sha256()) <= 0)
				g_clear_pointer(&cached, EVP_PKEY_CTX_free);
			cached_key = real->ossl;
			cached_alg = alg;
		}
		ok = cached != NULL &&
		     EVP_PKEY_sign(cached, out->data + start, &siglen, digest, dlen) > 0;
	}
	if (!ok) {
		g_byte_array_set_size(out, start);
		g_set_error_literal(error, KB_ERROR, KB_ERROR_FAILED, "libcrypto cannot sign");
		return FALSE;
	}
	g_byte_array_set_size(out, start + siglen);
	return TRUE;
}

gboolean
kb_key_sign(KbKey *key, KbAlg alg, const guint8 *data, gsize len, GByteArray *out, GError **error)
{
	gnutls_datum_t in = {(guint8 *)data, len};
	gnutls_datum_t sig = {NULL, 0};
	int rc;

	if (kb_alg_is_decrypt(alg)) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "%s is not a signature",
			    kb_alg_to_string(alg));
		return FALSE;
	}
	if (kb_sign_lib == KB_LIB_LIBCRYPTO)
		return sign_libcrypto((KbKeyReal *)key, alg, data, len, out, error);
	rc = gnutls_privkey_sign_data2(key->priv, sign_algorithm(alg), 0, &in, &sig);
	if (!gnutls_check(rc, "signing", error))
		return FALSE;
	g_byte_array_append(out, sig.data, sig.size);
	gnutls_free(sig.data);
	return TRUE;
}

gboolean
kb_key_verify(KbKey *key,
	      KbAlg alg,
	      const guint8 *data,
	      gsize len,
	      const guint8 *sig,
	      gsize sig_len,
	      GError **error)
{
	gnutls_datum_t in = {(guint8 *)data, len};
	gnutls_datum_t s = {(guint8 *)sig, sig_len};
	int rc = gnutls_pubkey_verify_data2(key->pub, sign_algorithm(alg), 0, &in, &s);
	if (rc < 0) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "the %u-byte %s signature does not verify: %s",
			    (guint)sig_len,
			    kb_alg_to_string(alg),
			    gnutls_strerror(rc));
		return FALSE;
	}
	return TRUE;
}

gboolean
kb_key_decrypt(KbKey *key,
	       KbAlg alg,
	       const guint8 *data,
	       gsize len,
	       GByteArray *out,
	       GError **error)
{
	KbKeyReal *real = (KbKeyReal *)key;
	g_autoptr(EVP_PKEY_CTX) ctx = NULL;
	gsize outlen = 0;
	guint start = out->len;

	if (alg != KB_ALG_RSA_OAEP_SHA256 || real->ossl == NULL) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "%s decryption needs an rsa key",
			    kb_alg_to_string(alg));
		return FALSE;
	}
	if (len != (gsize)EVP_PKEY_get_size(real->ossl)) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "oaep ciphertext is %u bytes, the key needs %d",
			    (guint)len,
			    EVP_PKEY_get_size(real->ossl));
		return FALSE;
	}
	/* a context per call, as keymuxd does: the baseline pays what keymuxd pays */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, real->ossl, NULL);
	if (ctx == NULL || EVP_PKEY_decrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_decrypt(ctx, NULL, &outlen, data, len) <= 0) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "libcrypto cannot set up rsa-oaep-sha256 decryption");
		return FALSE;
	}
	g_byte_array_set_size(out, start + outlen);
	if (EVP_PKEY_decrypt(ctx, out->data + start, &outlen, data, len) <= 0) {
		g_byte_array_set_size(out, start);
		g_set_error_literal(error, KB_ERROR, KB_ERROR_FAILED, "rsa-oaep decryption failed");
		return FALSE;
	}
	g_byte_array_set_size(out, start + outlen);
	return TRUE;
}

/* ---- byte helpers ---- */

GByteArray *
kb_strip_lz(const guint8 *p, gsize len)
{
	GByteArray *out = g_byte_array_new();
	while (len > 0 && *p == 0) {
		p++;
		len--;
	}
	g_byte_array_append(out, p, len);
	return out;
}

GByteArray *
kb_fixed_len(const guint8 *p, gsize n, gsize len)
{
	GByteArray *out = g_byte_array_new();
	while (n > len && *p == 0) {
		p++;
		n--;
	}
	if (n > len)
		n = len; /* caller's problem; keeps us in bounds */
	for (gsize i = n; i < len; i++)
		g_byte_array_append(out, (const guint8 *)"", 1);
	g_byte_array_append(out, p, n);
	return out;
}

gboolean
kb_ecdsa_rs_to_der(const guint8 *r,
		   gsize r_len,
		   const guint8 *s,
		   gsize s_len,
		   GByteArray *out,
		   GError **error)
{
	gnutls_datum_t dr = {(guint8 *)r, r_len}, ds = {(guint8 *)s, s_len};
	gnutls_datum_t der = {NULL, 0};
	int rc = gnutls_encode_rs_value(&der, &dr, &ds);
	if (!gnutls_check(rc, "encoding the ecdsa signature", error))
		return FALSE;
	g_byte_array_append(out, der.data, der.size);
	gnutls_free(der.data);
	return TRUE;
}

gboolean
kb_write_all(int fd, const void *buf, gsize len, GError **error)
{
	const guint8 *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "write: %s",
				    n < 0 ? g_strerror(errno) : "short write");
			return FALSE;
		}
		p += n;
		len -= n;
	}
	return TRUE;
}

gboolean
kb_read_all(int fd, void *buf, gsize len, GError **error)
{
	guint8 *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "read: %s",
				    g_strerror(errno));
			return FALSE;
		}
		if (n == 0) {
			g_set_error_literal(error,
					    KB_ERROR,
					    KB_ERROR_PROTOCOL,
					    "connection closed by the peer");
			return FALSE;
		}
		p += n;
		len -= n;
	}
	return TRUE;
}

/* ---- the load generator ---- */

guint64
kb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (guint64)ts.tv_sec * G_GUINT64_CONSTANT(1000000000) + ts.tv_nsec;
}

gboolean
kb_scale_methods(const gchar *methods, gboolean *listkeys, gboolean *gmo, GError **error)
{
	gboolean both = methods == NULL || g_str_equal(methods, "both");

	*listkeys = both || g_str_equal(methods, "listkeys");
	*gmo = both || g_str_equal(methods, "gmo");
	if (!*listkeys && !*gmo) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "--methods: listkeys, gmo or both, not %s",
			    methods);
		return FALSE;
	}
	return TRUE;
}

gboolean
kb_scale_time(gboolean (*call)(gpointer data, GError **error),
	      gpointer data,
	      guint repeat,
	      gdouble seconds,
	      gdouble *p50_us,
	      gdouble *max_us,
	      GError **error)
{
	g_autoptr(GArray) lat = g_array_new(FALSE, FALSE, sizeof(gdouble));
	guint64 deadline = kb_now_ns() + (guint64)(seconds * 1e9);

	for (guint i = 0; i < MAX(repeat, 1); i++) {
		guint64 t0 = kb_now_ns();
		gdouble us;

		if (!call(data, error))
			return FALSE;
		us = (kb_now_ns() - t0) / 1e3;
		g_array_append_val(lat, us);
		if (kb_now_ns() > deadline)
			break;
	}
	/* a small array: sort by hand, no comparator casts */
	for (guint i = 1; i < lat->len; i++) {
		gdouble v = g_array_index(lat, gdouble, i);
		guint j = i;
		while (j > 0 && g_array_index(lat, gdouble, j - 1) > v) {
			g_array_index(lat, gdouble, j) = g_array_index(lat, gdouble, j - 1);
			j--;
		}
		g_array_index(lat, gdouble, j) = v;
	}
	*p50_us = g_array_index(lat, gdouble, (lat->len - 1) / 2);
	*max_us = g_array_index(lat, gdouble, lat->len - 1);
	return TRUE;
}

void
kb_scale_print(const gchar *label,
	       gsize keys,
	       gsize objects,
	       gdouble lk_p50,
	       gdouble lk_max,
	       gdouble gmo_p50,
	       gdouble gmo_max,
	       gsize gmo_bytes)
{
	g_print("{\"ok\":true,\"label\":\"%s\",\"keys\":%" G_GSIZE_FORMAT
		",\"objects\":%" G_GSIZE_FORMAT ",\"listkeys_p50_us\":%.1f,"
		"\"listkeys_max_us\":%.1f,\"gmo_p50_us\":%.1f,\"gmo_max_us\":%.1f,"
		"\"gmo_bytes\":%" G_GSIZE_FORMAT "}\n",
		label,
		keys,
		objects,
		lk_p50,
		lk_max,
		gmo_p50,
		gmo_max,
		gmo_bytes);
}

typedef struct {
	GArray *lat; /* guint64 ns per operation */
	guint64 elapsed_ns;
	GError *error;
} KbResult;

static gboolean
check_output(KbRun *run, GByteArray *out, GError **error)
{
	g_autoptr(GBytes) msg = NULL;
	switch (run->check) {
	case KB_CHECK_NONE:
		return TRUE;
	case KB_CHECK_SIGNATURE:
	case KB_CHECK_SIGNATURE_DIGEST:
		msg = run->check == KB_CHECK_SIGNATURE ? kb_message() : kb_message_digest();
		return kb_key_verify(run->key,
				     run->alg,
				     g_bytes_get_data(msg, NULL),
				     g_bytes_get_size(msg),
				     out->data,
				     out->len,
				     error);
	case KB_CHECK_PLAINTEXT:
		if (out->len != g_bytes_get_size(run->plaintext) ||
		    memcmp(out->data, g_bytes_get_data(run->plaintext, NULL), out->len) != 0) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_PROTOCOL,
				    "decryption returned %u bytes that are not the plaintext",
				    out->len);
			return FALSE;
		}
		return TRUE;
	}
	return TRUE;
}

/* open a client and run one checked operation: proves the path works, warms it up */
static gpointer
client_prepare(KbRun *run, guint index, GError **error)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	gpointer state = run->driver->open(run->cfg, index, error);
	if (state == NULL)
		return NULL;
	if (!run->driver->op(state, out, error) || !check_output(run, out, error)) {
		run->driver->close(state);
		return NULL;
	}
	return state;
}

static void
client_loop(KbRun *run, gpointer state, KbResult *res)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	guint64 start = kb_now_ns();
	guint64 deadline = start + (guint64)(run->seconds * 1e9);

	res->lat = g_array_sized_new(FALSE, FALSE, sizeof(guint64), 4096);
	for (;;) {
		guint64 t0 = kb_now_ns(), t1;
		if (t0 >= deadline || (run->max_ops > 0 && res->lat->len >= run->max_ops))
			break;
		g_byte_array_set_size(out, 0);
		if (!run->driver->op(state, out, &res->error))
			break;
		t1 = kb_now_ns();
		g_array_append_val(res->lat, (guint64){t1 - t0});
	}
	res->elapsed_ns = kb_now_ns() - start;
}

/* threads: for the in-process limit, where a process per client would add nothing */
typedef struct {
	KbRun *run;
	guint index;
	KbResult res;
	GMutex *mutex;
	GCond *cond;
	guint *ready;
	gboolean *go;
} ThreadCtx;

static gpointer
thread_main(gpointer data)
{
	ThreadCtx *ctx = data;
	gpointer state = client_prepare(ctx->run, ctx->index, &ctx->res.error);

	g_mutex_lock(ctx->mutex);
	(*ctx->ready)++;
	g_cond_broadcast(ctx->cond);
	while (!*ctx->go)
		g_cond_wait(ctx->cond, ctx->mutex);
	g_mutex_unlock(ctx->mutex);

	if (state != NULL) {
		client_loop(ctx->run, state, &ctx->res);
		ctx->run->driver->close(state);
	}
	return NULL;
}

static void
run_threads(KbRun *run, KbResult *results)
{
	g_autofree ThreadCtx *ctx = g_new0(ThreadCtx, run->clients);
	g_autofree GThread **threads = g_new0(GThread *, run->clients);
	GMutex mutex;
	GCond cond;
	guint ready = 0;
	gboolean go = FALSE;

	g_mutex_init(&mutex);
	g_cond_init(&cond);
	for (guint i = 0; i < run->clients; i++) {
		ctx[i] = (ThreadCtx){run, i, {NULL, 0, NULL}, &mutex, &cond, &ready, &go};
		threads[i] = g_thread_new("kb-client", thread_main, &ctx[i]);
	}
	g_mutex_lock(&mutex);
	while (ready < run->clients)
		g_cond_wait(&cond, &mutex);
	go = TRUE;
	g_cond_broadcast(&cond);
	g_mutex_unlock(&mutex);
	for (guint i = 0; i < run->clients; i++) {
		g_thread_join(threads[i]);
		results[i] = ctx[i].res;
	}
	g_mutex_clear(&mutex);
	g_cond_clear(&cond);
}

/*
 * processes: one per client, so each has its own socket and, for gdbus, its
 * own i/o thread, as separate applications would. a child reports through a
 * pipe: a header, then the error text or the latencies.
 */
typedef struct {
	guint32 status; /* 0 ok, else 1 + KbError code */
	guint32 msg_len;
	guint64 count;
	guint64 elapsed_ns;
} ChildHeader;

static void G_GNUC_NORETURN
child_main(KbRun *run, guint index, int ready_fd, int go_fd, int res_fd)
{
	KbResult res = {NULL, 0, NULL};
	ChildHeader h = {0};
	gpointer state = client_prepare(run, index, &res.error);
	char c = state != NULL ? 'R' : 'E';
	char buf;

	(void)kb_write_all(ready_fd, &c, 1, NULL);
	close(ready_fd);
	if (state != NULL) {
		/* the parent closes its end to start every client at once */
		while (read(go_fd, &buf, 1) < 0 && errno == EINTR)
			;
		client_loop(run, state, &res);
		run->driver->close(state);
	}
	if (res.error != NULL) {
		h.status = 1 + (res.error->domain == KB_ERROR ? res.error->code : KB_ERROR_FAILED);
		h.msg_len = strlen(res.error->message);
		(void)kb_write_all(res_fd, &h, sizeof h, NULL);
		(void)kb_write_all(res_fd, res.error->message, h.msg_len, NULL);
		_exit(1);
	}
	h.count = res.lat->len;
	h.elapsed_ns = res.elapsed_ns;
	(void)kb_write_all(res_fd, &h, sizeof h, NULL);
	(void)kb_write_all(res_fd, res.lat->data, res.lat->len * sizeof(guint64), NULL);
	_exit(0);
}

static gboolean
run_processes(KbRun *run, KbResult *results, GError **error)
{
	g_autofree pid_t *pids = g_new0(pid_t, run->clients);
	g_autofree int *res_fds = g_new0(int, run->clients);
	int ready_pipe[2], go_pipe[2];
	guint ready = 0;

	fflush(stdout);
	fflush(stderr);
	if (pipe(ready_pipe) < 0 || pipe(go_pipe) < 0) {
		g_set_error(error, KB_ERROR, KB_ERROR_FAILED, "pipe: %s", g_strerror(errno));
		return FALSE;
	}
	for (guint i = 0; i < run->clients; i++) {
		int res_pipe[2];
		if (pipe(res_pipe) < 0) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "pipe: %s",
				    g_strerror(errno));
			return FALSE;
		}
		pids[i] = fork();
		if (pids[i] < 0) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "fork: %s",
				    g_strerror(errno));
			return FALSE;
		}
		if (pids[i] == 0) {
			close(ready_pipe[0]);
			close(go_pipe[1]);
			close(res_pipe[0]);
			for (guint j = 0; j < i; j++)
				close(res_fds[j]);
			child_main(run, i, ready_pipe[1], go_pipe[0], res_pipe[1]);
		}
		close(res_pipe[1]);
		res_fds[i] = res_pipe[0];
	}
	close(ready_pipe[1]);
	close(go_pipe[0]);

	/* every child says ready (or failed) before the clock starts */
	while (ready < run->clients) {
		struct pollfd pfd = {ready_pipe[0], POLLIN, 0};
		char buf[64];
		ssize_t n;
		int rc = poll(&pfd, 1, 120 * 1000);
		if (rc == 0) {
			g_set_error_literal(error,
					    KB_ERROR,
					    KB_ERROR_FAILED,
					    "clients were not ready after 120 s");
			for (guint i = 0; i < run->clients; i++)
				kill(pids[i], SIGKILL);
			break;
		}
		n = read(ready_pipe[0], buf, MIN(sizeof buf, run->clients - ready));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* every child has gone: the results say why */
		ready += n;
	}
	close(ready_pipe[0]);
	close(go_pipe[1]);

	for (guint i = 0; i < run->clients; i++) {
		ChildHeader h;
		g_autoptr(GError) local = NULL;
		int status;
		if (!kb_read_all(res_fds[i], &h, sizeof h, &local)) {
			results[i].error = g_error_new(KB_ERROR,
						       KB_ERROR_FAILED,
						       "client %u died without a result",
						       i);
		} else if (h.status != 0) {
			g_autofree gchar *msg = g_malloc0(MIN(h.msg_len, 65536) + 1);
			(void)kb_read_all(res_fds[i], msg, MIN(h.msg_len, 65536), NULL);
			results[i].error = g_error_new_literal(KB_ERROR, h.status - 1, msg);
		} else {
			results[i].lat = g_array_sized_new(FALSE, FALSE, sizeof(guint64), h.count);
			g_array_set_size(results[i].lat, h.count);
			results[i].elapsed_ns = h.elapsed_ns;
			if (!kb_read_all(res_fds[i],
					 results[i].lat->data,
					 h.count * sizeof(guint64),
					 &local))
				results[i].error = g_error_new(KB_ERROR,
							       KB_ERROR_FAILED,
							       "client %u: short result",
							       i);
		}
		close(res_fds[i]);
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
	}
	return error == NULL || *error == NULL;
}

static gint
cmp_u64(gconstpointer a, gconstpointer b)
{
	guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
	return x < y ? -1 : x > y;
}

gboolean
kb_run(KbRun *run, GError **error)
{
	g_autofree KbResult *results = g_new0(KbResult, run->clients);
	g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(guint64));
	guint64 max_elapsed = 0;
	gdouble sum = 0, secs, p50, p99;
	gboolean ok = TRUE;

	if (run->use_threads)
		run_threads(run, results);
	else if (!run_processes(run, results, error))
		ok = FALSE;

	for (guint i = 0; i < run->clients; i++) {
		if (results[i].error != NULL) {
			if (ok) {
				g_propagate_prefixed_error(error,
							   g_steal_pointer(&results[i].error),
							   "client %u: ",
							   i);
				ok = FALSE;
			}
			g_clear_error(&results[i].error);
		}
		if (results[i].lat != NULL) {
			g_array_append_vals(all, results[i].lat->data, results[i].lat->len);
			max_elapsed = MAX(max_elapsed, results[i].elapsed_ns);
			g_array_unref(results[i].lat);
		}
	}
	if (!ok)
		return FALSE;
	if (all->len == 0) {
		g_set_error_literal(error, KB_ERROR, KB_ERROR_FAILED, "no operation completed");
		return FALSE;
	}

	g_array_sort(all, cmp_u64);
	for (guint i = 0; i < all->len; i++)
		sum += g_array_index(all, guint64, i);
	secs = max_elapsed / 1e9;
	p50 = g_array_index(all, guint64, (all->len - 1) / 2) / 1e3;
	p99 = g_array_index(all, guint64, (guint)ceil(all->len * 0.99) - 1) / 1e3;
	g_print("{\"ok\":true,\"label\":\"%s\",\"alg\":\"%s\",\"clients\":%u,\"ops\":%u,"
		"\"seconds\":%.3f,\"ops_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
		"\"mean_us\":%.1f}\n",
		run->label ? run->label : "",
		kb_alg_to_string(run->alg),
		run->clients,
		all->len,
		secs,
		all->len / secs,
		p50,
		p99,
		sum / all->len / 1e3);
	return TRUE;
}

int
kb_report_error(const gchar *label, GError *error)
{
	g_autoptr(GString) s = g_string_new(NULL);
	const gchar *kind = "failed";
	int code = 1;

	if (error->domain == KB_ERROR) {
		switch (error->code) {
		case KB_ERROR_PROTOCOL:
			kind = "protocol";
			code = 2;
			break;
		case KB_ERROR_PEER:
			kind = "peer";
			code = 3;
			break;
		case KB_ERROR_UNSUPPORTED:
			kind = "unsupported";
			code = 4;
			break;
		default:
			break;
		}
	}
	/* json-escape the message: it may carry a peer's text */
	for (const gchar *p = error->message; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_printf(s, "\\%c", *p);
		else if ((guchar)*p < 0x20)
			g_string_append_printf(s, "\\u%04x", (guchar)*p);
		else
			g_string_append_c(s, *p);
	}
	g_print("{\"ok\":false,\"label\":\"%s\",\"kind\":\"%s\",\"error\":\"%s\"}\n",
		label ? label : "",
		kind,
		s->str);
	g_printerr("%s: %s\n", label ? label : g_get_prgname(), error->message);
	return code;
}

/* ---- options ---- */

GOptionEntry *
kb_common_entries(KbCommonOptions *opts)
{
	GOptionEntry entries[] = {
	    {"alg", 'a', 0, G_OPTION_ARG_STRING, &opts->alg, "Operation algorithm", "ALG"},
	    {"key",
	     'k',
	     0,
	     G_OPTION_ARG_FILENAME,
	     &opts->key,
	     "Private key (PEM), for checks",
	     "FILE"},
	    {"ciphertext",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &opts->ciphertext,
	     "Ciphertext to decrypt",
	     "FILE"},
	    {"plaintext",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &opts->plaintext,
	     "Expected plaintext",
	     "FILE"},
	    {"clients", 'c', 0, G_OPTION_ARG_INT, &opts->clients, "Concurrent clients", "N"},
	    {"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &opts->seconds, "Run time", "S"},
	    {"label", 'l', 0, G_OPTION_ARG_STRING, &opts->label, "Label for the json", "TEXT"},
	    {NULL}};
	opts->clients = 1;
	opts->seconds = 1.0;
	return g_memdup2(entries, sizeof entries);
}

gboolean
kb_common_prepare(KbCommonOptions *opts, KbRun *run, GBytes **ciphertext, GError **error)
{
	if (!kb_alg_from_string(opts->alg, &run->alg, error))
		return FALSE;
	if (opts->key == NULL) {
		g_set_error_literal(error, KB_ERROR, KB_ERROR_FAILED, "--key is required");
		return FALSE;
	}
	run->key = kb_key_load(opts->key, error);
	if (run->key == NULL)
		return FALSE;
	if (!kb_key_check_compatible(run->key, run->alg, error))
		return FALSE;
	if (opts->clients < 1 || opts->clients > 1024 || !(opts->seconds > 0)) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "--clients must be 1..1024 and --seconds positive");
		return FALSE;
	}
	run->clients = opts->clients;
	run->seconds = opts->seconds;
	run->label = opts->label;
	run->check = KB_CHECK_SIGNATURE;
	if (kb_alg_is_decrypt(run->alg)) {
		if (opts->ciphertext == NULL || opts->plaintext == NULL) {
			g_set_error_literal(error,
					    KB_ERROR,
					    KB_ERROR_FAILED,
					    "decryption needs --ciphertext and --plaintext");
			return FALSE;
		}
		*ciphertext = kb_read_file(opts->ciphertext, error);
		if (*ciphertext == NULL)
			return FALSE;
		run->plaintext = kb_read_file(opts->plaintext, error);
		if (run->plaintext == NULL)
			return FALSE;
		run->check = KB_CHECK_PLAINTEXT;
	}
	return TRUE;
}

/* ---- wire helpers (kb-wire.h) ---- */

int
kb_unix_connect(const gchar *path, GError **error)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		g_set_error(error, KB_ERROR, KB_ERROR_FAILED, "socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "connecting to %s: %s",
			    path,
			    g_strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

void
kb_raw_key_free(KbRawKey *raw)
{
	GByteArray **all[] =
	    {&raw->x, &raw->y, &raw->d, &raw->n, &raw->e, &raw->rd, &raw->p, &raw->q, &raw->iqmp};
	for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
		if (*all[i] != NULL) {
			memset((*all[i])->data, 0, (*all[i])->len);
			g_byte_array_unref(*all[i]);
		}
	}
	g_free(raw);
}

/* one rsa parameter, big-endian without leading zeros */
static GByteArray *
rsa_param(EVP_PKEY *pkey, const char *name, GError **error)
{
	g_autoptr(BIGNUM) bn = NULL;
	GByteArray *out;

	if (!EVP_PKEY_get_bn_param(pkey, name, &bn)) {
		g_set_error(error, KB_ERROR, KB_ERROR_FAILED, "rsa key has no %s", name);
		return NULL;
	}
	out = g_byte_array_sized_new(BN_num_bytes(bn));
	g_byte_array_set_size(out, BN_num_bytes(bn));
	BN_bn2bin(bn, out->data);
	return out;
}

KbRawKey *
kb_raw_key_export(KbKey *key, GError **error)
{
	g_autoptr(KbRawKey) raw = g_new0(KbRawKey, 1);
	KbKeyReal *real = (KbKeyReal *)key;

	raw->pk = key->pk;
	if (key->pk == GNUTLS_PK_RSA) {
		/* coefficient1 is pkcs#1's qInv = q^-1 mod p, with p = factor1 */
		if (real->ossl == NULL ||
		    (raw->n = rsa_param(real->ossl, OSSL_PKEY_PARAM_RSA_N, error)) == NULL ||
		    (raw->e = rsa_param(real->ossl, OSSL_PKEY_PARAM_RSA_E, error)) == NULL ||
		    (raw->rd = rsa_param(real->ossl, OSSL_PKEY_PARAM_RSA_D, error)) == NULL ||
		    (raw->p = rsa_param(real->ossl, OSSL_PKEY_PARAM_RSA_FACTOR1, error)) == NULL ||
		    (raw->q = rsa_param(real->ossl, OSSL_PKEY_PARAM_RSA_FACTOR2, error)) == NULL ||
		    (raw->iqmp = rsa_param(real->ossl, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, error)) ==
			NULL) {
			if (real->ossl == NULL)
				g_set_error_literal(error,
						    KB_ERROR,
						    KB_ERROR_FAILED,
						    "rsa key not prepared");
			return NULL;
		}
	} else if (key->pk == GNUTLS_PK_EDDSA_ED25519 || key->pk == GNUTLS_PK_ECDSA) {
		gnutls_ecc_curve_t curve;
		gnutls_datum_t x = {NULL, 0}, y = {NULL, 0}, k = {NULL, 0};
		int rc = gnutls_privkey_export_ecc_raw2(key->priv, &curve, &x, &y, &k, 0);
		if (!gnutls_check(rc, "exporting the ec key", error))
			return NULL;
		if (key->pk == GNUTLS_PK_ECDSA && curve != GNUTLS_ECC_CURVE_SECP256R1) {
			g_set_error_literal(error,
					    KB_ERROR,
					    KB_ERROR_FAILED,
					    "only p-256 ecdsa keys are benchmarked");
			rc = -1;
		} else {
			raw->x = kb_fixed_len(x.data, x.size, 32);
			raw->d = kb_fixed_len(k.data, k.size, 32);
			if (key->pk == GNUTLS_PK_ECDSA)
				raw->y = kb_fixed_len(y.data, y.size, 32);
		}
		gnutls_free(x.data);
		gnutls_free(y.data);
		gnutls_memset(k.data, 0, k.size);
		gnutls_free(k.data);
		if (rc < 0)
			return NULL;
	} else {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "unsupported key type %s",
			    gnutls_pk_get_name(key->pk));
		return NULL;
	}
	return g_steal_pointer(&raw);
}
