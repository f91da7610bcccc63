/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a soft key, as an OpenPGP card's key import template
 *
 * gnutls reads the key file (PKCS#8 plain or encrypted, PKCS#1, SEC1; PEM
 * or DER) and exports its parts; they go to the card in the extended
 * header list of PUT DATA 3FFF (OpenPGP card 3.4, 4.4.3.12):
 *   4D { CRT, 7F48 { tag len ... }, 5F48 { the parts, concatenated } }
 * RSA as e, p, q (the standard format); ECC as the private scalar (92).
 * Everything holding key material is in secret memory.
 */
#include "config.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#include "kmx-card-import.h"
#include "kmx-card-tlv.h"
#include "kmx-error.h"

static void
kmx_card_datum_free(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		kmx_secure_zero(d->data, d->size);
		gnutls_free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/**
 * kmx_card_import_parse:
 * @passphrase: (nullable): the file's passphrase
 * @type: (out): the key's algorithm
 *
 * Returns: (transfer full): the private key, or %NULL with
 *   %KMX_ERROR_BAD_SECRET (wrong passphrase), %KMX_ERROR_INVALID_ARGUMENT
 *   (not a key gnutls reads) or %KMX_ERROR_NOT_SUPPORTED (no card holds it)
 */
gnutls_privkey_t
kmx_card_import_parse(GBytes *data, KmxSecret *passphrase, KmxKeyType *type, GError **error)
{
	gnutls_privkey_t key = NULL;
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(data, &len);
	gnutls_datum_t d = {(unsigned char *)p, (unsigned int)len};
	const char *pw = passphrase != NULL && !kmx_secret_is_empty(passphrase)
			     ? kmx_secret_get_string(passphrase)
			     : NULL;
	unsigned int bits = 0;
	int rc;

	if (len == 0 || len > 64 * 1024) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "no key in the data");
		return NULL;
	}
	gnutls_privkey_init(&key);
	rc = gnutls_privkey_import_x509_raw(key, &d, GNUTLS_X509_FMT_PEM, pw, 0);
	if (rc < 0 && rc != GNUTLS_E_DECRYPTION_FAILED)
		rc = gnutls_privkey_import_x509_raw(key, &d, GNUTLS_X509_FMT_DER, pw, 0);
	if (rc < 0) {
		gnutls_privkey_deinit(key);
		g_set_error(error,
			    KMX_ERROR,
			    rc == GNUTLS_E_DECRYPTION_FAILED ? KMX_ERROR_BAD_SECRET
							     : KMX_ERROR_INVALID_ARGUMENT,
			    rc == GNUTLS_E_DECRYPTION_FAILED
				? "wrong passphrase for the key file"
				: "not a private key keymux can put on a card: %s",
			    gnutls_strerror(rc));
		return NULL;
	}
	switch (gnutls_privkey_get_pk_algorithm(key, &bits)) {
	case GNUTLS_PK_RSA:
		*type = bits == 2048   ? KMX_KEY_TYPE_RSA2048
			: bits == 3072 ? KMX_KEY_TYPE_RSA3072
			: bits == 4096 ? KMX_KEY_TYPE_RSA4096
				       : KMX_KEY_TYPE_UNKNOWN;
		break;
	case GNUTLS_PK_ECDSA: {
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
		gnutls_privkey_export_ecc_raw2(key, &curve, NULL, NULL, NULL, 0);
		*type = curve == GNUTLS_ECC_CURVE_SECP256R1   ? KMX_KEY_TYPE_ECDSA_P256
			: curve == GNUTLS_ECC_CURVE_SECP384R1 ? KMX_KEY_TYPE_ECDSA_P384
							      : KMX_KEY_TYPE_UNKNOWN;
		break;
	}
	case GNUTLS_PK_EDDSA_ED25519:
		*type = KMX_KEY_TYPE_ED25519;
		break;
	case GNUTLS_PK_ECDH_X25519:
		*type = KMX_KEY_TYPE_X25519;
		break;
	default:
		*type = KMX_KEY_TYPE_UNKNOWN;
	}
	if (*type == KMX_KEY_TYPE_UNKNOWN) {
		gnutls_privkey_deinit(key);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "an OpenPGP card holds no key of this algorithm");
		return NULL;
	}
	return key;
}

/* a part of the key, left-padded with zeros to @width bytes (0: as it is) */
static gboolean
kmx_card_import_add(GByteArray *header, GByteArray *body, guint tag, gnutls_datum_t *d, gsize width)
{
	gsize pad = width > d->size ? width - d->size : 0;
	const guint8 zero = 0;

	if (width != 0 && d->size > width)
		return FALSE;
	/* the template has the tag and the length, the value goes to @body */
	{
		guint8 t = (guint8)tag;
		gsize n = d->size + pad;
		g_byte_array_append(header, &t, 1);
		if (n < 0x80) {
			guint8 l = (guint8)n;
			g_byte_array_append(header, &l, 1);
		} else if (n <= 0xFF) {
			const guint8 l[] = {0x81, (guint8)n};
			g_byte_array_append(header, l, 2);
		} else {
			const guint8 l[] = {0x82, (guint8)(n >> 8), (guint8)n};
			g_byte_array_append(header, l, 3);
		}
	}
	for (gsize i = 0; i < pad; i++)
		g_byte_array_append(body, &zero, 1);
	g_byte_array_append(body, d->data, d->size);
	return TRUE;
}

/**
 * kmx_card_import_template:
 * @crt_tag: B6, B8 or A4: the slot
 *
 * Returns: (transfer full): the data of PUT DATA 3FFF, in secret memory
 */
KmxSecret *
kmx_card_import_template(gnutls_privkey_t key, KmxKeyType type, guint8 crt_tag, GError **error)
{
	/* sized for RSA-4096 so that no copy of a part is left behind by a
	 * reallocation */
	g_autoptr(GByteArray) header = g_byte_array_new();
	g_autoptr(GByteArray) body = g_byte_array_sized_new(2048);
	g_autoptr(GByteArray) inner = g_byte_array_sized_new(2048 + 64);
	g_autoptr(GByteArray) out = g_byte_array_sized_new(2048 + 128);
	gnutls_datum_t e = {NULL, 0}, p = {NULL, 0}, q = {NULL, 0}, k = {NULL, 0};
	const guint8 crt[] = {crt_tag, 0x00};
	gboolean ok;
	KmxSecret *secret;
	int rc;

	if (kmx_key_type_is_rsa(type)) {
		rc = gnutls_privkey_export_rsa_raw2(key,
						    NULL,
						    &e,
						    NULL,
						    &p,
						    &q,
						    NULL,
						    NULL,
						    NULL,
						    GNUTLS_EXPORT_FLAG_NO_LZ);
		ok =
		    rc >= 0 && kmx_card_import_add(header, body, 0x91, &e, 0) &&
		    kmx_card_import_add(header, body, 0x92, &p, kmx_key_type_get_bits(type) / 16) &&
		    kmx_card_import_add(header, body, 0x93, &q, kmx_key_type_get_bits(type) / 16);
	} else {
		gsize width = type == KMX_KEY_TYPE_ECDSA_P384 ? 48 : 32;
		rc = gnutls_privkey_export_ecc_raw2(key,
						    NULL,
						    NULL,
						    NULL,
						    &k,
						    GNUTLS_EXPORT_FLAG_NO_LZ);
		ok = rc >= 0 && kmx_card_import_add(header, body, 0x92, &k, width);
	}
	kmx_card_datum_free(&e);
	kmx_card_datum_free(&p);
	kmx_card_datum_free(&q);
	kmx_card_datum_free(&k);
	if (!ok) {
		kmx_secure_zero(body->data, body->len);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "cannot take the key apart: %s",
			    rc < 0 ? gnutls_strerror(rc) : "a part is too long");
		return NULL;
	}
	g_byte_array_append(inner, crt, sizeof(crt));
	kmx_card_tlv_append(inner, 0x7F48, header->data, header->len);
	kmx_card_tlv_append(inner, 0x5F48, body->data, body->len);
	kmx_card_tlv_append(out, 0x4D, inner->data, inner->len);
	secret = kmx_secret_new_from_data(out->data, out->len);
	kmx_secure_zero(body->data, body->len);
	kmx_secure_zero(inner->data, inner->len);
	kmx_secure_zero(out->data, out->len);
	return secret;
}
