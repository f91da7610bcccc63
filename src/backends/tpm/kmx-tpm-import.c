/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a soft key wrapped for the TPM
 *
 * TPM2_Import takes a key made outside the TPM as a duplication blob for a
 * new parent (TPM 2.0 Part 1, "Protected Storage" and "Object
 * Duplication"): the key's sensitive area, encrypted and integrity-
 * protected with keys derived from a seed that only the parent can
 * recover.  The parent is our ECC storage primary, so the seed comes from
 * an ephemeral ECDH with its public point; the TPM does that ECDH itself
 * (TPM2_ECDH_KeyGen) and gives us Z and the ephemeral point.  Then:
 *
 *   seed    = KDFe(SHA-256, Z, "DUPLICATE", ephemeral.x, parent.x, 256)
 *   name    = nameAlg || SHA-256(TPMT_PUBLIC)
 *   symKey  = KDFa(SHA-256, seed, "STORAGE", name, "", 128)
 *   hmacKey = KDFa(SHA-256, seed, "INTEGRITY", "", "", 256)
 *   enc     = AES-128-CFB(symKey, IV 0, TPM2B_SENSITIVE)
 *   blob    = TPM2B_DIGEST(HMAC-SHA-256(hmacKey, enc || name)) || enc
 *
 * The primitives are gnutls' (SHA-256, HMAC, AES); CFB with a full block
 * is built from single-block AES, since gnutls has only CFB8.  Everything
 * in clear is wiped.
 */
#include "config.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "kmx-error.h"
#include "kmx-tpm-import.h"

#define KMX_TPM_SHA256_LEN 32

static gboolean
kmx_tpm_import_gnutls_failed(GError **error, int rc, const char *what)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "cannot wrap the key for the TPM (%s): %s",
		    what,
		    gnutls_strerror(rc));
	return FALSE;
}

static void
kmx_tpm_datum_wipe(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		kmx_secure_zero(d->data, d->size);
		gnutls_free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/* copies @d, without leading zeros, left-padded to @size (0: as it is) */
static gboolean
kmx_tpm_copy_number(const gnutls_datum_t *d, guint8 *out, UINT16 *out_len, gsize size, gsize max)
{
	const guint8 *p = d->data;
	gsize len = d->size;

	while (len > 0 && p[0] == 0) {
		p++;
		len--;
	}
	if (size == 0)
		size = len;
	if (len > size || size > max)
		return FALSE;
	memset(out, 0, size - len);
	memcpy(out + (size - len), p, len);
	*out_len = (UINT16)size;
	return TRUE;
}

static gboolean
kmx_tpm_import_rsa(gnutls_privkey_t key,
		   TPM2B_PUBLIC *pub,
		   TPMT_SENSITIVE *sensitive,
		   GError **error)
{
	gnutls_datum_t m = {0}, e = {0}, p = {0};
	TPMS_RSA_PARMS *parms = &pub->publicArea.parameters.rsaDetail;
	guint32 exponent = 0;
	gboolean ok;
	int rc;

	rc = gnutls_privkey_export_rsa_raw2(key,
					    &m,
					    &e,
					    NULL,
					    &p,
					    NULL,
					    NULL,
					    NULL,
					    NULL,
					    GNUTLS_EXPORT_FLAG_NO_LZ);
	if (rc < 0)
		return kmx_tpm_import_gnutls_failed(error, rc, "RSA key");
	for (guint i = 0; i < e.size; i++)
		exponent = (exponent << 8) | e.data[i];
	ok = e.size <= 4 && (m.size == 256 || m.size == 384) && p.size * 2 == m.size;
	if (ok) {
		pub->publicArea.type = TPM2_ALG_RSA;
		parms->symmetric.algorithm = TPM2_ALG_NULL;
		parms->scheme.scheme = TPM2_ALG_NULL;
		parms->keyBits = (TPMI_RSA_KEY_BITS)(m.size * 8);
		parms->exponent = exponent == 65537 ? 0 : exponent;
		sensitive->sensitiveType = TPM2_ALG_RSA;
		ok = kmx_tpm_copy_number(&m,
					 pub->publicArea.unique.rsa.buffer,
					 &pub->publicArea.unique.rsa.size,
					 m.size,
					 sizeof(pub->publicArea.unique.rsa.buffer)) &&
		     kmx_tpm_copy_number(&p,
					 sensitive->sensitive.rsa.buffer,
					 &sensitive->sensitive.rsa.size,
					 m.size / 2,
					 sizeof(sensitive->sensitive.rsa.buffer));
	}
	gnutls_free(m.data);
	gnutls_free(e.data);
	kmx_tpm_datum_wipe(&p);
	if (!ok) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "the TPM takes RSA keys of 2048 or 3072 bits (two primes, an "
				    "exponent of at most 32 bits)");
		return FALSE;
	}
	return TRUE;
}

static gboolean
kmx_tpm_import_ecc(gnutls_privkey_t key,
		   TPM2B_PUBLIC *pub,
		   TPMT_SENSITIVE *sensitive,
		   GError **error)
{
	gnutls_datum_t x = {0}, y = {0}, k = {0};
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	TPMS_ECC_PARMS *parms = &pub->publicArea.parameters.eccDetail;
	gsize size;
	gboolean ok;
	int rc;

	rc = gnutls_privkey_export_ecc_raw2(key, &curve, &x, &y, &k, GNUTLS_EXPORT_FLAG_NO_LZ);
	if (rc < 0)
		return kmx_tpm_import_gnutls_failed(error, rc, "EC key");
	size = curve == GNUTLS_ECC_CURVE_SECP256R1   ? 32
	       : curve == GNUTLS_ECC_CURVE_SECP384R1 ? 48
						     : 0;
	ok = size != 0;
	if (ok) {
		pub->publicArea.type = TPM2_ALG_ECC;
		parms->symmetric.algorithm = TPM2_ALG_NULL;
		parms->scheme.scheme = TPM2_ALG_NULL;
		parms->curveID = size == 32 ? TPM2_ECC_NIST_P256 : TPM2_ECC_NIST_P384;
		parms->kdf.scheme = TPM2_ALG_NULL;
		sensitive->sensitiveType = TPM2_ALG_ECC;
		ok = kmx_tpm_copy_number(&x,
					 pub->publicArea.unique.ecc.x.buffer,
					 &pub->publicArea.unique.ecc.x.size,
					 size,
					 sizeof(pub->publicArea.unique.ecc.x.buffer)) &&
		     kmx_tpm_copy_number(&y,
					 pub->publicArea.unique.ecc.y.buffer,
					 &pub->publicArea.unique.ecc.y.size,
					 size,
					 sizeof(pub->publicArea.unique.ecc.y.buffer)) &&
		     kmx_tpm_copy_number(&k,
					 sensitive->sensitive.ecc.buffer,
					 &sensitive->sensitive.ecc.size,
					 size,
					 sizeof(sensitive->sensitive.ecc.buffer));
	}
	gnutls_free(x.data);
	gnutls_free(y.data);
	kmx_tpm_datum_wipe(&k);
	if (!ok) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "the TPM takes EC keys on P-256 and P-384");
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_tpm_import_parse:
 * @data: a private key gnutls reads (PKCS#8, encrypted or not, PKCS#1,
 *   SEC1; PEM or DER), hostile
 * @passphrase: (nullable): its passphrase
 * @auth: (nullable): the auth value the key gets in the TPM
 * @pub: (out): its public area, for an unrestricted sign + decrypt key
 * @sensitive: (out): its sensitive area (wipe it)
 */
gboolean
kmx_tpm_import_parse(GBytes *data,
		     KmxSecret *passphrase,
		     KmxSecret *auth,
		     TPM2B_PUBLIC *pub,
		     TPMT_SENSITIVE *sensitive,
		     GError **error)
{
	gnutls_datum_t in = {(unsigned char *)g_bytes_get_data(data, NULL),
			     (unsigned int)g_bytes_get_size(data)};
	const char *password = passphrase != NULL && !kmx_secret_is_empty(passphrase)
				   ? kmx_secret_get_string(passphrase)
				   : NULL;
	gnutls_privkey_t key = NULL;
	gsize auth_len = auth != NULL ? kmx_secret_get_length(auth) : 0;
	gboolean ok;
	int rc;

	memset(pub, 0, sizeof(*pub));
	memset(sensitive, 0, sizeof(*sensitive));
	rc = gnutls_privkey_init(&key);
	if (rc < 0)
		return kmx_tpm_import_gnutls_failed(error, rc, "init");
	rc = gnutls_privkey_import_x509_raw(key, &in, GNUTLS_X509_FMT_PEM, password, 0);
	if (rc < 0 && rc != GNUTLS_E_DECRYPTION_FAILED)
		rc = gnutls_privkey_import_x509_raw(key, &in, GNUTLS_X509_FMT_DER, password, 0);
	if (rc < 0) {
		gnutls_privkey_deinit(key);
		g_set_error(error,
			    KMX_ERROR,
			    rc == GNUTLS_E_DECRYPTION_FAILED ? KMX_ERROR_BAD_SECRET
							     : KMX_ERROR_INVALID_ARGUMENT,
			    rc == GNUTLS_E_DECRYPTION_FAILED
				? "wrong passphrase for the key file"
				: "not a TSS2 key file nor a private key the TPM can import: %s",
			    gnutls_strerror(rc));
		return FALSE;
	}
	switch (gnutls_privkey_get_pk_algorithm(key, NULL)) {
	case GNUTLS_PK_RSA:
		ok = kmx_tpm_import_rsa(key, pub, sensitive, error);
		break;
	case GNUTLS_PK_ECDSA:
		ok = kmx_tpm_import_ecc(key, pub, sensitive, error);
		break;
	default:
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_NOT_SUPPORTED,
				    "the TPM imports RSA and P-256/P-384 keys: Ed25519 and X25519 "
				    "are not TPM 2.0 algorithms");
		ok = FALSE;
	}
	gnutls_privkey_deinit(key);
	if (!ok)
		return FALSE;
	/* a duplicated object may not be fixedTPM or fixedParent */
	pub->publicArea.nameAlg = TPM2_ALG_SHA256;
	pub->publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT |
					   TPMA_OBJECT_DECRYPT;
	if (auth_len > KMX_TPM_SHA256_LEN) {
		kmx_secure_zero(sensitive, sizeof(*sensitive));
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a TPM secret is at most 32 bytes long");
		return FALSE;
	}
	sensitive->authValue.size = (UINT16)auth_len;
	if (auth_len > 0)
		memcpy(sensitive->authValue.buffer, kmx_secret_get_data(auth), auth_len);
	/* the obfuscation value of an asymmetric key: random, the digest's size */
	sensitive->seedValue.size = KMX_TPM_SHA256_LEN;
	if (gnutls_rnd(GNUTLS_RND_KEY, sensitive->seedValue.buffer, KMX_TPM_SHA256_LEN) < 0) {
		kmx_secure_zero(sensitive, sizeof(*sensitive));
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_FAILED, "no random bytes");
		return FALSE;
	}
	return TRUE;
}

static void
kmx_tpm_be32(guint8 *out, guint32 v)
{
	out[0] = (guint8)(v >> 24);
	out[1] = (guint8)(v >> 16);
	out[2] = (guint8)(v >> 8);
	out[3] = (guint8)v;
}

/* KDFa (Part 1, 11.4.10.2) with HMAC-SHA-256, for at most 256 bits: one
 * round, counter 1 */
static gboolean
kmx_tpm_kdfa(const guint8 *key,
	     gsize key_len,
	     const char *label,
	     const guint8 *context_u,
	     gsize u_len,
	     guint bits,
	     guint8 out[KMX_TPM_SHA256_LEN])
{
	gnutls_hmac_hd_t h = NULL;
	guint8 counter[4], length[4];
	guint8 digest[KMX_TPM_SHA256_LEN];

	g_return_val_if_fail(bits <= 8 * KMX_TPM_SHA256_LEN, FALSE);
	kmx_tpm_be32(counter, 1);
	kmx_tpm_be32(length, bits);
	if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, key, key_len) < 0)
		return FALSE;
	/* the label with its terminating zero */
	if (gnutls_hmac(h, counter, 4) < 0 || gnutls_hmac(h, label, strlen(label) + 1) < 0 ||
	    (u_len > 0 && gnutls_hmac(h, context_u, u_len) < 0) || gnutls_hmac(h, length, 4) < 0) {
		gnutls_hmac_deinit(h, NULL);
		return FALSE;
	}
	gnutls_hmac_deinit(h, digest);
	memcpy(out, digest, KMX_TPM_SHA256_LEN);
	kmx_secure_zero(digest, sizeof(digest));
	return TRUE;
}

/* KDFe (Part 1, 11.4.10.3) with SHA-256, for 256 bits: one round */
static gboolean
kmx_tpm_kdfe(const TPM2B_ECC_PARAMETER *z,
	     const char *label,
	     const TPM2B_ECC_PARAMETER *party_u,
	     const TPM2B_ECC_PARAMETER *party_v,
	     guint8 out[KMX_TPM_SHA256_LEN])
{
	gnutls_hash_hd_t h = NULL;
	guint8 counter[4];

	kmx_tpm_be32(counter, 1);
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return FALSE;
	if (gnutls_hash(h, counter, 4) < 0 || gnutls_hash(h, z->buffer, z->size) < 0 ||
	    gnutls_hash(h, label, strlen(label) + 1) < 0 ||
	    gnutls_hash(h, party_u->buffer, party_u->size) < 0 ||
	    gnutls_hash(h, party_v->buffer, party_v->size) < 0) {
		gnutls_hash_deinit(h, NULL);
		return FALSE;
	}
	gnutls_hash_deinit(h, out);
	return TRUE;
}

/* AES-128 in CFB mode with a full-block feedback and a zero IV, in place:
 * each keystream block is the AES of the previous ciphertext block, one
 * block of AES-CBC over zeros with that block as its IV */
static gboolean
kmx_tpm_aes128_cfb_encrypt(const guint8 key[16], guint8 *data, gsize len)
{
	guint8 feedback[16] = {0};
	guint8 stream[16];
	gnutls_datum_t k = {(unsigned char *)key, 16};

	for (gsize off = 0; off < len; off += 16) {
		gnutls_cipher_hd_t h = NULL;
		gnutls_datum_t iv = {feedback, 16};
		gsize n = MIN(16, len - off);

		memset(stream, 0, sizeof(stream));
		if (gnutls_cipher_init(&h, GNUTLS_CIPHER_AES_128_CBC, &k, &iv) < 0)
			return FALSE;
		if (gnutls_cipher_encrypt(h, stream, sizeof(stream)) < 0) {
			gnutls_cipher_deinit(h);
			return FALSE;
		}
		gnutls_cipher_deinit(h);
		for (gsize i = 0; i < n; i++)
			data[off + i] ^= stream[i];
		if (n == 16)
			memcpy(feedback, data + off, 16);
	}
	kmx_secure_zero(stream, sizeof(stream));
	return TRUE;
}

/* the keys and buffers of one wrap, wiped together */
typedef struct {
	guint8 area[sizeof(TPMT_PUBLIC)];
	guint8 name[2 + KMX_TPM_SHA256_LEN];
	guint8 seed[KMX_TPM_SHA256_LEN];
	guint8 sym_key[KMX_TPM_SHA256_LEN];
	guint8 hmac_key[KMX_TPM_SHA256_LEN];
	guint8 enc[sizeof(TPM2B_SENSITIVE)];
	size_t enc_len;
	TPM2B_SENSITIVE clear;
	TPM2B_DIGEST outer;
} KmxTpmWrap;

static gboolean
kmx_tpm_import_wrap_steps(KmxTpmWrap *w,
			  const TPM2B_PUBLIC *pub,
			  const TPMT_SENSITIVE *sensitive,
			  const TPMS_ECC_POINT *parent,
			  const TPMS_ECC_POINT *ephemeral,
			  const TPM2B_ECC_PARAMETER *z,
			  TPM2B_PRIVATE *duplicate,
			  TPM2B_ENCRYPTED_SECRET *seed_out)
{
	gnutls_hmac_hd_t h = NULL;
	size_t area_len = 0, off = 0;

	/* the object's name: its nameAlg, then the hash of its public area */
	if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, w->area, sizeof(w->area), &area_len) !=
		TSS2_RC_SUCCESS ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, w->area, area_len, w->name + 2) < 0)
		return FALSE;
	w->name[0] = (guint8)(TPM2_ALG_SHA256 >> 8);
	w->name[1] = (guint8)TPM2_ALG_SHA256;
	if (!kmx_tpm_kdfe(z, "DUPLICATE", &ephemeral->x, &parent->x, w->seed) ||
	    !kmx_tpm_kdfa(w->seed,
			  sizeof(w->seed),
			  "STORAGE",
			  w->name,
			  sizeof(w->name),
			  128,
			  w->sym_key) ||
	    !kmx_tpm_kdfa(w->seed, sizeof(w->seed), "INTEGRITY", NULL, 0, 256, w->hmac_key))
		return FALSE;
	w->clear.sensitiveArea = *sensitive;
	if (Tss2_MU_TPM2B_SENSITIVE_Marshal(&w->clear, w->enc, sizeof(w->enc), &w->enc_len) !=
		TSS2_RC_SUCCESS ||
	    !kmx_tpm_aes128_cfb_encrypt(w->sym_key, w->enc, w->enc_len))
		return FALSE;
	w->outer.size = KMX_TPM_SHA256_LEN;
	if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, w->hmac_key, sizeof(w->hmac_key)) < 0)
		return FALSE;
	if (gnutls_hmac(h, w->enc, w->enc_len) < 0 ||
	    gnutls_hmac(h, w->name, sizeof(w->name)) < 0) {
		gnutls_hmac_deinit(h, NULL);
		return FALSE;
	}
	gnutls_hmac_deinit(h, w->outer.buffer);
	if (Tss2_MU_TPM2B_DIGEST_Marshal(&w->outer,
					 duplicate->buffer,
					 sizeof(duplicate->buffer),
					 &off) != TSS2_RC_SUCCESS ||
	    off + w->enc_len > sizeof(duplicate->buffer))
		return FALSE;
	memcpy(duplicate->buffer + off, w->enc, w->enc_len);
	duplicate->size = (UINT16)(off + w->enc_len);
	off = 0;
	if (Tss2_MU_TPMS_ECC_POINT_Marshal(ephemeral,
					   seed_out->secret,
					   sizeof(seed_out->secret),
					   &off) != TSS2_RC_SUCCESS)
		return FALSE;
	seed_out->size = (UINT16)off;
	return TRUE;
}

/**
 * kmx_tpm_import_wrap:
 * @parent: the storage primary's public point
 * @ephemeral: the ephemeral point TPM2_ECDH_KeyGen made with it
 * @z: the x coordinate of the shared point TPM2_ECDH_KeyGen returned
 * @duplicate: (out): TPM2_Import's duplicate
 * @seed: (out): TPM2_Import's inSymSeed (the ephemeral point)
 *
 * Builds the outer wrapper of a duplication blob for the storage primary.
 */
gboolean
kmx_tpm_import_wrap(const TPM2B_PUBLIC *pub,
		    const TPMT_SENSITIVE *sensitive,
		    const TPMS_ECC_POINT *parent,
		    const TPMS_ECC_POINT *ephemeral,
		    const TPM2B_ECC_PARAMETER *z,
		    TPM2B_PRIVATE *duplicate,
		    TPM2B_ENCRYPTED_SECRET *seed,
		    GError **error)
{
	KmxTpmWrap *w = g_new0(KmxTpmWrap, 1);
	gboolean ok;

	memset(duplicate, 0, sizeof(*duplicate));
	memset(seed, 0, sizeof(*seed));
	ok = kmx_tpm_import_wrap_steps(w, pub, sensitive, parent, ephemeral, z, duplicate, seed);
	kmx_secure_zero(w, sizeof(*w));
	g_free(w);
	if (!ok)
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "cannot build the duplication blob for the TPM");
	return ok;
}
