/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the soft-key operations done by OpenSSL's libcrypto
 *
 * An unlocked key lives in one form, a libcrypto EVP_PKEY, for every
 * private-key operation: signatures (the raw rsa-pkcs1 and ecdsa too, made
 * from the data as given with no digest set: padded, or a digest truncated
 * to the group order as FIPS 186 says), decryption, key agreement.
 * libcrypto is chosen because it is the fastest library here for RSA and
 * ECDSA (2.4-2.5x gnutls/nettle; gnutls is faster only for Ed25519: the
 * figures and the reasons are in bench/README.md).  The EVP_PKEY's private numbers live in
 * libcrypto's secure heap (see kmx_secure_memory_init()): locked, out of
 * core dumps, wiped when the last reference goes, which is at the latest
 * when the store locks.  An EVP_PKEY may be used by many threads at once,
 * one EVP_PKEY_CTX each; signature contexts are kept per mechanism and
 * used again, since setting one up costs about half a P-256 signature.
 *
 * gnutls keeps what it does well: reading and writing the formats, the key
 * files' decryption, store.info's KDF and AEAD.  gnutls 3.7 cannot do these,
 * which is also done here:
 * - write a PKCS#8 EncryptedPrivateKeyInfo with a chosen PBKDF2 iteration
 *   count (gnutls_x509_privkey_export_pkcs8() always uses 600,000, which
 *   costs ~0.75 s per key file for no gain when the passphrase is random);
 * - RSA-OAEP decryption (gnutls has no OAEP before 3.8.4);
 * - ECDH and X25519 key agreement (no public derive API in gnutls); the
 *   peer key is read and checked by the shared kmx_spki_parse_peer().
 * It also empties the error queue libssh leaves behind (kmx-softkey-ssh.c).
 * Keys reach this file as a plain PKCS#8 DER in secret memory.
 */
#include "config.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "kmx-crypto.h"
#include "kmx-error.h"
#include "kmx-softkey-ossl.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(X509_SIG, X509_SIG_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BIO, BIO_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)

/* idle signature contexts kept per mechanism: setting one up (fetching the
 * algorithm from the provider, the padding and digest parameters) costs
 * about half of a P-256 signature; more than the pool's threads is never
 * useful */
#define KMX_SOFTKEY_OSSL_SLOTS	  32
#define KMX_SOFTKEY_OSSL_MAX_IDLE 16

struct _KmxSoftkeyOsslKey {
	gatomicrefcount ref;
	EVP_PKEY *pkey;
	GMutex mutex;
	GPtrArray *idle[KMX_SOFTKEY_OSSL_SLOTS]; /* EVP_PKEY_CTX, by mechanism */
	EVP_MD_CTX *eddsa; /* set up once, copied for each Ed25519 signature */
};

/* libcrypto keeps an error queue per thread: take its first entry for the
 * message and empty it, so that a later call does not report a stale error */
static gpointer
kmx_softkey_ossl_error(GError **error, KmxError code, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	g_set_error(error, KMX_ERROR, code, "%s: %s", what, buf);
	return NULL;
}

static PKCS8_PRIV_KEY_INFO *
kmx_softkey_ossl_parse_pkcs8(KmxSecret *pkcs8_der, GError **error)
{
	const unsigned char *p = kmx_secret_get_data(pkcs8_der);
	gsize len = kmx_secret_get_length(pkcs8_der);
	PKCS8_PRIV_KEY_INFO *p8;

	if (len == 0 || len > G_MAXINT32) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_FAILED, "empty private key");
		return NULL;
	}
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	if (p8 == NULL)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_FAILED,
					      "cannot read the private key");
	if (p != kmx_secret_get_data(pkcs8_der) + len) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "trailing data after the private key");
		return NULL;
	}
	return p8;
}

/**
 * kmx_softkey_ossl_encrypt_pkcs8:
 * @pkcs8_der: a plain PKCS#8 PrivateKeyInfo, DER
 * @passphrase: the passphrase (the hex file key)
 * @len: (out): the length of the result
 *
 * Returns: (transfer full): a PEM "ENCRYPTED PRIVATE KEY": PBES2,
 * PBKDF2-HMAC-SHA256 with %KMX_SOFTKEY_PEM_ITERATIONS iterations and a
 * random salt, AES-256-CBC with a random IV
 */
char *
kmx_softkey_ossl_encrypt_pkcs8(KmxSecret *pkcs8_der,
			       KmxSecret *passphrase,
			       gsize *len,
			       GError **error)
{
	g_autoptr(PKCS8_PRIV_KEY_INFO) p8 = NULL;
	g_autoptr(X509_SIG) enc = NULL;
	g_autoptr(BIO) bio = NULL;
	char *mem = NULL;
	long n;

	p8 = kmx_softkey_ossl_parse_pkcs8(pkcs8_der, error);
	if (p8 == NULL)
		return NULL;
	/* pbe_nid -1 with a cipher selects PBES2; libcrypto 3 defaults the PRF
	 * to hmacWithSHA256 and draws a 16-byte salt and the IV from its DRBG */
	enc = PKCS8_encrypt(-1,
			    EVP_aes_256_cbc(),
			    kmx_secret_get_string(passphrase),
			    (int)kmx_secret_get_length(passphrase),
			    NULL,
			    0,
			    KMX_SOFTKEY_PEM_ITERATIONS,
			    p8);
	if (enc == NULL)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot encrypt the key");
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_PKCS8(bio, enc))
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot encode the key");
	n = BIO_get_mem_data(bio, &mem);
	if (n <= 0)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot encode the key");
	*len = (gsize)n;
	return g_strndup(mem, (gsize)n);
}

/**
 * kmx_softkey_ossl_key_new:
 * @pkcs8_der: a plain PKCS#8 PrivateKeyInfo, DER
 *
 * Returns: (transfer full): the key as libcrypto sees it
 */
KmxSoftkeyOsslKey *
kmx_softkey_ossl_key_new(KmxSecret *pkcs8_der, GError **error)
{
	g_autoptr(PKCS8_PRIV_KEY_INFO) p8 = NULL;
	EVP_PKEY *pkey;

	p8 = kmx_softkey_ossl_parse_pkcs8(pkcs8_der, error);
	if (p8 == NULL)
		return NULL;
	KmxSoftkeyOsslKey *self;

	pkey = EVP_PKCS82PKEY(p8);
	if (pkey == NULL)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot load the key");
	self = g_new0(KmxSoftkeyOsslKey, 1);
	g_atomic_ref_count_init(&self->ref);
	g_mutex_init(&self->mutex);
	self->pkey = pkey;
	return self;
}

KmxSoftkeyOsslKey *
kmx_softkey_ossl_key_ref(KmxSoftkeyOsslKey *self)
{
	g_atomic_ref_count_inc(&self->ref);
	return self;
}

void
kmx_softkey_ossl_key_unref(KmxSoftkeyOsslKey *self)
{
	if (self == NULL || !g_atomic_ref_count_dec(&self->ref))
		return;
	/* each context holds a reference to the key; EVP_PKEY_free() clears
	 * the key material when the last one goes */
	for (guint i = 0; i < KMX_SOFTKEY_OSSL_SLOTS; i++) {
		if (self->idle[i] == NULL)
			continue;
		for (guint j = 0; j < self->idle[i]->len; j++)
			EVP_PKEY_CTX_free(g_ptr_array_index(self->idle[i], j));
		g_ptr_array_unref(self->idle[i]);
	}
	EVP_MD_CTX_free(self->eddsa);
	EVP_PKEY_free(self->pkey);
	g_mutex_clear(&self->mutex);
	g_free(self);
}

/**
 * kmx_softkey_ossl_key_check_public:
 * @spki: the DER SubjectPublicKeyInfo the key's .info lists
 *
 * Checks that the private key is the one listed: a key file swapped for
 * another key's must not sign as this one.
 */
gboolean
kmx_softkey_ossl_key_check_public(KmxSoftkeyOsslKey *self, GBytes *spki, GError **error)
{
	gsize len = 0;
	const unsigned char *p = g_bytes_get_data(spki, &len);
	g_autoptr(EVP_PKEY) pub = NULL;

	if (len == 0 || len > G_MAXINT32) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_FAILED, "no public key");
		return FALSE;
	}
	pub = d2i_PUBKEY(NULL, &p, (long)len);
	if (pub == NULL) {
		kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot read the public key");
		return FALSE;
	}
	/* 1: same type and same public components */
	if (EVP_PKEY_eq(self->pkey, pub) != 1) {
		ERR_clear_error();
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "the private key does not match the public key");
		return FALSE;
	}
	return TRUE;
}

static const EVP_MD *
kmx_softkey_ossl_md(KmxHash hash)
{
	switch (hash) {
	case KMX_HASH_SHA256:
		return EVP_sha256();
	case KMX_HASH_SHA384:
		return EVP_sha384();
	case KMX_HASH_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/* a context for EVP_PKEY_sign() over a digest, set up for @mechanism */
static EVP_PKEY_CTX *
kmx_softkey_ossl_sign_ctx(EVP_PKEY *pkey, KmxMechanism mechanism, GError **error)
{
	const EVP_MD *md = kmx_softkey_ossl_md(kmx_mechanism_get_hash(mechanism));
	g_autoptr(EVP_PKEY_CTX) ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	gboolean ok;

	if (ctx == NULL || EVP_PKEY_sign_init(ctx) <= 0)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_FAILED,
					      "cannot set up the signature");
	switch (mechanism) {
	case KMX_MECHANISM_RSA_PKCS1_SHA256:
	case KMX_MECHANISM_RSA_PKCS1_SHA384:
	case KMX_MECHANISM_RSA_PKCS1_SHA512:
		/* with a signature digest libcrypto adds the DigestInfo */
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
		break;
	case KMX_MECHANISM_RSA_PSS_SHA256:
	case KMX_MECHANISM_RSA_PSS_SHA384:
	case KMX_MECHANISM_RSA_PSS_SHA512:
		/* MGF1 with the same digest, salt as long as the digest */
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0;
		break;
	case KMX_MECHANISM_ECDSA_SHA256:
	case KMX_MECHANISM_ECDSA_SHA384:
		/* the digest is signed as given; the signature is DER */
		ok = EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
		break;
	case KMX_MECHANISM_RSA_PKCS1_RAW:
		/* no digest set: the data as given is padded (PKCS#1 v1.5 type 1) */
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
		break;
	case KMX_MECHANISM_ECDSA_RAW:
		/* no digest set: a digest of any length, truncated to the
		 * order's bit length as FIPS 186 says */
		ok = TRUE;
		break;
	default:
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%s is not a signature algorithm",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (!ok)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_FAILED,
					      "cannot set up the signature");
	return g_steal_pointer(&ctx);
}

/* an idle context for @mechanism, or a new one; any thread */
static EVP_PKEY_CTX *
kmx_softkey_ossl_sign_ctx_acquire(KmxSoftkeyOsslKey *self, KmxMechanism mechanism, GError **error)
{
	EVP_PKEY_CTX *ctx = NULL;

	if ((guint)mechanism < KMX_SOFTKEY_OSSL_SLOTS) {
		g_mutex_lock(&self->mutex);
		if (self->idle[mechanism] != NULL && self->idle[mechanism]->len > 0)
			ctx = g_ptr_array_steal_index_fast(self->idle[mechanism],
							   self->idle[mechanism]->len - 1);
		g_mutex_unlock(&self->mutex);
	}
	return ctx != NULL ? ctx : kmx_softkey_ossl_sign_ctx(self->pkey, mechanism, error);
}

/* keeps a context for the next signature with @mechanism (EVP_PKEY_sign()
 * may be called again on the same context), or frees it */
static void
kmx_softkey_ossl_sign_ctx_release(KmxSoftkeyOsslKey *self,
				  KmxMechanism mechanism,
				  EVP_PKEY_CTX *ctx,
				  gboolean reusable)
{
	if (reusable && (guint)mechanism < KMX_SOFTKEY_OSSL_SLOTS) {
		g_mutex_lock(&self->mutex);
		if (self->idle[mechanism] == NULL)
			self->idle[mechanism] = g_ptr_array_new();
		if (self->idle[mechanism]->len < KMX_SOFTKEY_OSSL_MAX_IDLE) {
			g_ptr_array_add(self->idle[mechanism], ctx);
			ctx = NULL;
		}
		g_mutex_unlock(&self->mutex);
	}
	EVP_PKEY_CTX_free(ctx);
}

/* @md set up for a one-shot Ed25519 signature: a copy of a context set up
 * once, since setting one up looks the algorithm up by its names every
 * time (15 k instructions of the signature's 27 k set-up); any thread */
static gboolean
kmx_softkey_ossl_eddsa_ctx(KmxSoftkeyOsslKey *self, EVP_MD_CTX *md)
{
	gboolean ok;

	g_mutex_lock(&self->mutex);
	if (self->eddsa == NULL) {
		EVP_MD_CTX *first = EVP_MD_CTX_new();

		if (first != NULL &&
		    EVP_DigestSignInit_ex(first, NULL, NULL, NULL, NULL, self->pkey, NULL) > 0)
			self->eddsa = first;
		else
			EVP_MD_CTX_free(first);
	}
	/* under the lock: libcrypto does not say that two threads may copy
	 * one context at once */
	ok = self->eddsa != NULL && EVP_MD_CTX_copy_ex(md, self->eddsa) > 0;
	g_mutex_unlock(&self->mutex);
	return ok;
}

/**
 * kmx_softkey_ossl_sign:
 * @mechanism: a signature mechanism the key's type supports
 * @data: the digest for a hashed mechanism (its length checked by the
 *   caller), the message for Ed25519
 *
 * Returns: (transfer full): the signature: PKCS#1 or PSS for RSA, a DER
 * ECDSA-Sig-Value, a 64-byte Ed25519 signature
 */
GBytes *
kmx_softkey_ossl_sign(KmxSoftkeyOsslKey *self, KmxMechanism mechanism, GBytes *data, GError **error)
{
	EVP_PKEY *pkey = self->pkey;
	gsize inlen = 0;
	const guint8 *in = g_bytes_get_data(data, &inlen);
	int max = EVP_PKEY_get_size(pkey);
	size_t siglen = max > 0 ? (size_t)max : 0;
	g_autofree guint8 *sig = NULL;
	/* a pointer libcrypto may read even for empty data */
	static const guint8 empty[1] = {0};

	if (siglen == 0)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot size the signature");
	sig = g_malloc(siglen);
	if (mechanism == KMX_MECHANISM_ED25519) {
		/* EdDSA hashes the message itself: one-shot EVP_DigestSign */
		g_autoptr(EVP_MD_CTX) md = EVP_MD_CTX_new();

		if (md == NULL || !kmx_softkey_ossl_eddsa_ctx(self, md))
			return kmx_softkey_ossl_error(error,
						      KMX_ERROR_FAILED,
						      "cannot set up the signature");
		if (EVP_DigestSign(md, sig, &siglen, in, inlen) <= 0)
			return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "signing failed");
	} else {
		EVP_PKEY_CTX *ctx = kmx_softkey_ossl_sign_ctx_acquire(self, mechanism, error);
		int rc;

		if (ctx == NULL)
			return NULL;
		rc = EVP_PKEY_sign(ctx, sig, &siglen, in != NULL ? in : empty, inlen);
		/* a context that failed is not used again */
		kmx_softkey_ossl_sign_ctx_release(self, mechanism, ctx, rc > 0);
		if (rc <= 0)
			return kmx_softkey_ossl_error(
			    error,
			    kmx_mechanism_is_raw(mechanism) ? KMX_ERROR_INVALID_ARGUMENT
							    : KMX_ERROR_FAILED,
			    kmx_mechanism_is_raw(mechanism)
				? "signing failed (data too long for the key?)"
				: "signing failed");
	}
	return g_bytes_new_take(g_steal_pointer(&sig), siglen);
}

/* an RSA decryption context with @padding; the ciphertext's length is checked */
static EVP_PKEY_CTX *
kmx_softkey_ossl_decrypt_ctx(EVP_PKEY *pkey, int padding, gsize inlen, GError **error)
{
	g_autoptr(EVP_PKEY_CTX) ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

	if (ctx == NULL || EVP_PKEY_decrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, padding) <= 0)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_FAILED,
					      "cannot set up RSA decryption");
	if (padding == RSA_PKCS1_OAEP_PADDING &&
	    (EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0))
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot set up RSA-OAEP");
	if (inlen != (gsize)EVP_PKEY_get_size(pkey)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "an RSA ciphertext for this key is %d bytes, not %" G_GSIZE_FORMAT,
			    EVP_PKEY_get_size(pkey),
			    inlen);
		return NULL;
	}
	return g_steal_pointer(&ctx);
}

/* runs a decryption set up by kmx_softkey_ossl_decrypt_ctx() */
static KmxSecret *
kmx_softkey_ossl_decrypt(EVP_PKEY_CTX *ctx, GBytes *data, const char *what, GError **error)
{
	g_autoptr(KmxSecret) out = NULL;
	gsize inlen = 0;
	const guint8 *in = g_bytes_get_data(data, &inlen);
	size_t outlen = 0;

	if (EVP_PKEY_decrypt(ctx, NULL, &outlen, in, inlen) <= 0)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "RSA decryption failed");
	/* the plaintext goes straight into secret memory */
	out = kmx_secret_new(outlen);
	if (EVP_PKEY_decrypt(ctx, kmx_secret_get_data(out), &outlen, in, inlen) <= 0) {
		ERR_clear_error();
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "decryption failed: the ciphertext was not made for this key with %s",
			    what);
		return NULL;
	}
	kmx_secret_truncate(out, outlen);
	return g_steal_pointer(&out);
}

/**
 * kmx_softkey_ossl_decrypt_pkcs1:
 *
 * RSA PKCS#1 v1.5 decryption.
 *
 * Returns: (transfer full): the plaintext, in secret memory
 */
KmxSecret *
kmx_softkey_ossl_decrypt_pkcs1(KmxSoftkeyOsslKey *self, GBytes *data, GError **error)
{
	g_autoptr(EVP_PKEY_CTX) ctx = kmx_softkey_ossl_decrypt_ctx(self->pkey,
								   RSA_PKCS1_PADDING,
								   g_bytes_get_size(data),
								   error);
	if (ctx == NULL)
		return NULL;
	return kmx_softkey_ossl_decrypt(ctx, data, "PKCS#1 v1.5", error);
}

/**
 * kmx_softkey_ossl_decrypt_oaep_sha256:
 *
 * RSA-OAEP with SHA-256, MGF1-SHA-256 and an empty label.
 *
 * Returns: (transfer full): the plaintext, in secret memory
 */
KmxSecret *
kmx_softkey_ossl_decrypt_oaep_sha256(KmxSoftkeyOsslKey *self, GBytes *data, GError **error)
{
	g_autoptr(EVP_PKEY_CTX) ctx = kmx_softkey_ossl_decrypt_ctx(self->pkey,
								   RSA_PKCS1_OAEP_PADDING,
								   g_bytes_get_size(data),
								   error);
	if (ctx == NULL)
		return NULL;
	return kmx_softkey_ossl_decrypt(ctx, data, "OAEP SHA-256", error);
}

/* the peer key, read and checked by the shared parser; libcrypto reads
 * the SubjectPublicKeyInfo that it returns */
static EVP_PKEY *
kmx_softkey_ossl_peer(KmxKeyType type, GBytes *peer_public, GError **error)
{
	g_autoptr(GBytes) spki = kmx_spki_parse_peer(type, peer_public, NULL, error);
	const unsigned char *p;
	gsize len = 0;
	EVP_PKEY *peer;

	if (spki == NULL)
		return NULL;
	p = g_bytes_get_data(spki, &len);
	peer = d2i_PUBKEY(NULL, &p, (long)len);
	if (peer == NULL)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "cannot load the peer key");
	return peer;
}

/**
 * kmx_softkey_ossl_derive:
 * @type: the type of @self: an EC key or X25519
 * @peer_public: hostile bytes: DER SPKI, raw X25519 key or uncompressed point,
 *   as kmx_spki_parse_peer() takes them
 *
 * Returns: (transfer full): the raw shared secret, in secret memory
 */
KmxSecret *
kmx_softkey_ossl_derive(KmxSoftkeyOsslKey *self,
			KmxKeyType type,
			GBytes *peer_public,
			GError **error)
{
	EVP_PKEY *pkey = self->pkey;
	g_autoptr(EVP_PKEY) peer = NULL;
	g_autoptr(EVP_PKEY_CTX) ctx = NULL;
	g_autoptr(KmxSecret) out = NULL;
	size_t outlen = 0;

	peer = kmx_softkey_ossl_peer(type, peer_public, error);
	if (peer == NULL)
		return NULL;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (ctx == NULL || EVP_PKEY_derive_init(ctx) <= 0)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_FAILED,
					      "cannot set up the derivation");
	/* validate_peer=1: a full public-key check of the peer (point on the
	 * curve, not the point at infinity) before it is used */
	if (EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) <= 0)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_INVALID_ARGUMENT,
					      "the peer public key was rejected");
	if (EVP_PKEY_derive(ctx, NULL, &outlen) <= 0)
		return kmx_softkey_ossl_error(error, KMX_ERROR_FAILED, "key derivation failed");
	out = kmx_secret_new(outlen);
	/* X25519 fails here on a small-order peer (an all-zero result) */
	if (EVP_PKEY_derive(ctx, kmx_secret_get_data(out), &outlen) <= 0)
		return kmx_softkey_ossl_error(error,
					      KMX_ERROR_INVALID_ARGUMENT,
					      "key derivation failed (a weak peer key?)");
	kmx_secret_truncate(out, outlen);
	return g_steal_pointer(&out);
}
