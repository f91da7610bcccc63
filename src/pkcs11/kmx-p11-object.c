/*
 * The PKCS#11 module's objects and their attributes.  The public parts come
 * from the key's SubjectPublicKeyInfo, parsed by libcrypto.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "kmx-p11-object.h"

#include <gio/gio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BIGNUM, BN_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ASN1_OBJECT, ASN1_OBJECT_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free)

static void
kmx_p11_key_clear(gpointer data)
{
	KmxP11Key *key = data;

	g_free(key->path);
	g_free(key->device);
	g_free(key->label);
	g_free(key->algorithm);
	g_clear_pointer(&key->spki, g_bytes_unref);
	g_clear_pointer(&key->modulus, g_bytes_unref);
	g_clear_pointer(&key->exponent, g_bytes_unref);
	g_clear_pointer(&key->ec_params, g_bytes_unref);
	g_clear_pointer(&key->ec_point, g_bytes_unref);
}

void
kmx_p11_key_unref(KmxP11Key *key)
{
	if (key != NULL)
		g_atomic_rc_box_release_full(key, kmx_p11_key_clear);
}

static GBytes *
kmx_p11_bn_param(EVP_PKEY *pkey, const char *name)
{
	g_autoptr(BIGNUM) bn = NULL;
	int len;
	guint8 *buf;

	if (!EVP_PKEY_get_bn_param(pkey, name, &bn))
		return NULL;
	len = BN_num_bytes(bn);
	buf = g_malloc(MAX(len, 1));
	BN_bn2bin(bn, buf);
	return g_bytes_new_take(buf, len);
}

/* what an i2d_* function wrote, as GBytes */
static GBytes *
kmx_p11_der_bytes(unsigned char *der, int len)
{
	GBytes *bytes = len > 0 ? g_bytes_new(der, len) : NULL;

	OPENSSL_free(der);
	return bytes;
}

/* the DER encoding of a curve's OID */
static GBytes *
kmx_p11_oid_der(int nid)
{
	ASN1_OBJECT *obj = OBJ_nid2obj(nid);
	unsigned char *der = NULL;
	int len;

	if (obj == NULL)
		return NULL;
	len = i2d_ASN1_OBJECT(obj, &der);
	return kmx_p11_der_bytes(der, len);
}

/* CKA_EC_POINT: the encoded point as a DER OCTET STRING */
static GBytes *
kmx_p11_ec_point(EVP_PKEY *pkey)
{
	guint8 point[256];
	size_t len = 0;
	g_autoptr(ASN1_OCTET_STRING) os = ASN1_OCTET_STRING_new();
	unsigned char *der = NULL;
	int der_len;

	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
		if (!EVP_PKEY_get_octet_string_param(pkey,
						     OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
						     point,
						     sizeof point,
						     &len))
			return NULL;
	} else {
		len = sizeof point;
		if (!EVP_PKEY_get_raw_public_key(pkey, point, &len))
			return NULL;
	}
	if (os == NULL || !ASN1_OCTET_STRING_set(os, point, (int)len))
		return NULL;
	der_len = i2d_ASN1_OCTET_STRING(os, &der);
	return kmx_p11_der_bytes(der, der_len);
}

static gboolean
kmx_p11_key_parse_spki(KmxP11Key *key, GError **error)
{
	gsize len = 0;
	const unsigned char *der = g_bytes_get_data(key->spki, &len);
	const unsigned char *p = der;
	g_autoptr(EVP_PKEY) pkey = NULL;

	if (len == 0 || len > G_MAXINT32)
		return FALSE;
	pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (pkey == NULL || p != der + len) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "%s: bad public key",
			    key->path);
		return FALSE;
	}
	key->bits = EVP_PKEY_get_bits(pkey);
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		key->key_type = CKK_RSA;
		key->modulus = kmx_p11_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N);
		key->exponent = kmx_p11_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E);
		if (key->modulus == NULL || key->exponent == NULL)
			break;
		key->sig_len = g_bytes_get_size(key->modulus);
		return TRUE;
	case EVP_PKEY_EC: {
		char group[64];
		int nid;

		key->key_type = CKK_EC;
		if (!EVP_PKEY_get_utf8_string_param(pkey,
						    OSSL_PKEY_PARAM_GROUP_NAME,
						    group,
						    sizeof group,
						    NULL))
			break;
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		key->ec_params = kmx_p11_oid_der(nid);
		key->ec_point = kmx_p11_ec_point(pkey);
		if (key->ec_params == NULL || key->ec_point == NULL)
			break;
		key->sig_len = 2 * ((key->bits + 7) / 8);
		return TRUE;
	}
	case EVP_PKEY_ED25519:
		/* PKCS#11 3.0: CKA_EC_PARAMS may be the curve's OID */
		key->key_type = CKK_EC_EDWARDS;
		key->ec_params = kmx_p11_oid_der(NID_ED25519);
		key->ec_point = kmx_p11_ec_point(pkey);
		if (key->ec_params == NULL || key->ec_point == NULL)
			break;
		key->sig_len = 64;
		return TRUE;
	default:
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_NOT_SUPPORTED,
			    "%s: no PKCS#11 v2.40 key type for %s",
			    key->path,
			    key->algorithm);
		return FALSE;
	}
	g_set_error(error,
		    G_IO_ERROR,
		    G_IO_ERROR_INVALID_DATA,
		    "%s: cannot read the public key's parameters",
		    key->path);
	return FALSE;
}

static gboolean
kmx_p11_hex_id(const char *hex, guint8 id[32])
{
	if (hex == NULL || strlen(hex) != 64)
		return FALSE;
	for (guint i = 0; i < 32; i++) {
		int hi = g_ascii_xdigit_value(hex[2 * i]);
		int lo = g_ascii_xdigit_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return FALSE;
		id[i] = (guint8)(hi << 4 | lo);
	}
	return TRUE;
}

KmxP11Key *
kmx_p11_key_new(const char *path, GVariant *props, GError **error)
{
	g_autoptr(KmxP11Key) key = g_atomic_rc_box_new0(KmxP11Key);
	const char *id = NULL;
	g_autofree const char **usage = NULL;
	g_autoptr(GVariant) spki = NULL;

	key->path = g_strdup(path);
	if (!g_variant_lookup(props, "Id", "&s", &id) || !kmx_p11_hex_id(id, key->id) ||
	    !g_variant_lookup(props, "Device", "o", &key->device) ||
	    !g_variant_lookup(props, "Label", "s", &key->label) ||
	    !g_variant_lookup(props, "Algorithm", "s", &key->algorithm) ||
	    !g_variant_lookup(props, "Usage", "^a&s", &usage) ||
	    (spki = g_variant_lookup_value(props, "PublicKey", G_VARIANT_TYPE_BYTESTRING)) ==
		NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "%s: the key's properties are incomplete",
			    path);
		return NULL;
	}
	key->can_sign = g_strv_contains(usage, "sign");
	key->can_decrypt = g_strv_contains(usage, "decrypt");
	key->can_derive = g_strv_contains(usage, "derive");
	key->spki = g_variant_get_data_as_bytes(spki);
	if (!kmx_p11_key_parse_spki(key, error))
		return NULL;
	return g_steal_pointer(&key);
}

void
kmx_p11_object_free(KmxP11Object *obj)
{
	if (obj == NULL)
		return;
	kmx_p11_key_unref(obj->key);
	if (obj->value != NULL) {
		explicit_bzero(obj->value, obj->value_len);
		g_free(obj->value);
	}
	g_clear_pointer(&obj->label, g_bytes_unref);
	g_clear_pointer(&obj->id, g_bytes_unref);
	g_free(obj);
}

static GBytes *
kmx_p11_ulong(CK_ULONG value)
{
	return g_bytes_new(&value, sizeof value);
}

static GBytes *
kmx_p11_bool(gboolean value)
{
	CK_BBOOL b = value ? CK_TRUE : CK_FALSE;
	return g_bytes_new(&b, sizeof b);
}

typedef struct {
	guint8 *data;
	gsize len;
} KmxP11Wiped;

static void
kmx_p11_wiped_free(gpointer data)
{
	KmxP11Wiped *w = data;

	explicit_bzero(w->data, w->len);
	g_free(w->data);
	g_free(w);
}

/* a copy of a secret value, zeroed when the last reference goes */
static GBytes *
kmx_p11_secret_copy(const guint8 *value, gsize len)
{
	KmxP11Wiped *w = g_new0(KmxP11Wiped, 1);

	w->data = g_memdup2(value, len);
	w->len = len;
	return g_bytes_new_with_free_func(w->data, len, kmx_p11_wiped_free, w);
}

static GBytes *
kmx_p11_empty(void)
{
	return g_bytes_new(NULL, 0);
}

/* attributes every key object has */
static GBytes *
kmx_p11_key_common(KmxP11Object *obj, CK_ATTRIBUTE_TYPE type)
{
	KmxP11Key *key = obj->key;

	switch (type) {
	case CKA_TOKEN:
		return kmx_p11_bool(TRUE);
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
	case CKA_LOCAL:
		return kmx_p11_bool(FALSE);
	case CKA_LABEL:
		return g_bytes_new(key->label, strlen(key->label));
	case CKA_ID:
		return g_bytes_new(key->id, sizeof key->id);
	case CKA_KEY_TYPE:
		return kmx_p11_ulong(key->key_type);
	case CKA_START_DATE:
	case CKA_END_DATE:
	case CKA_SUBJECT:
		return kmx_p11_empty();
	case CKA_KEY_GEN_MECHANISM:
		return kmx_p11_ulong(CK_UNAVAILABLE_INFORMATION);
	case CKA_DERIVE:
		return kmx_p11_bool(key->can_derive);
	case CKA_PUBLIC_KEY_INFO:
		return g_bytes_ref(key->spki);
	case CKA_MODULUS:
		return key->modulus != NULL ? g_bytes_ref(key->modulus) : NULL;
	case CKA_PUBLIC_EXPONENT:
		return key->exponent != NULL ? g_bytes_ref(key->exponent) : NULL;
	case CKA_MODULUS_BITS:
		return key->key_type == CKK_RSA ? kmx_p11_ulong(key->bits) : NULL;
	case CKA_EC_PARAMS:
		return key->ec_params != NULL ? g_bytes_ref(key->ec_params) : NULL;
	case CKA_EC_POINT:
		return key->ec_point != NULL ? g_bytes_ref(key->ec_point) : NULL;
	default:
		return NULL;
	}
}

static CK_RV
kmx_p11_private_attribute(KmxP11Object *obj, CK_ATTRIBUTE_TYPE type, GBytes **value)
{
	KmxP11Key *key = obj->key;

	switch (type) {
	case CKA_PRIVATE:
		*value = kmx_p11_bool(obj->needs_login);
		return CKR_OK;
	case CKA_SIGN:
		*value = kmx_p11_bool(key->can_sign);
		return CKR_OK;
	case CKA_DECRYPT:
		*value = kmx_p11_bool(key->can_decrypt);
		return CKR_OK;
	case CKA_SENSITIVE:
	case CKA_ALWAYS_SENSITIVE:
	case CKA_NEVER_EXTRACTABLE:
		*value = kmx_p11_bool(TRUE);
		return CKR_OK;
	case CKA_EXTRACTABLE:
	case CKA_SIGN_RECOVER:
	case CKA_UNWRAP:
	case CKA_WRAP_WITH_TRUSTED:
	case CKA_ALWAYS_AUTHENTICATE:
		*value = kmx_p11_bool(FALSE);
		return CKR_OK;
	case CKA_VALUE:
	case CKA_PRIVATE_EXPONENT:
	case CKA_PRIME_1:
	case CKA_PRIME_2:
	case CKA_EXPONENT_1:
	case CKA_EXPONENT_2:
	case CKA_COEFFICIENT:
		if (key->key_type == CKK_RSA ? type != CKA_VALUE : type == CKA_VALUE)
			return CKR_ATTRIBUTE_SENSITIVE;
		return CKR_ATTRIBUTE_TYPE_INVALID;
	default:
		*value = kmx_p11_key_common(obj, type);
		return *value != NULL ? CKR_OK : CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

static CK_RV
kmx_p11_public_attribute(KmxP11Object *obj, CK_ATTRIBUTE_TYPE type, GBytes **value)
{
	KmxP11Key *key = obj->key;

	switch (type) {
	case CKA_PRIVATE:
	case CKA_TRUSTED:
	case CKA_WRAP:
	case CKA_VERIFY_RECOVER:
		*value = kmx_p11_bool(FALSE);
		return CKR_OK;
	case CKA_VERIFY:
		*value = kmx_p11_bool(key->can_sign);
		return CKR_OK;
	case CKA_ENCRYPT:
		*value = kmx_p11_bool(key->can_decrypt);
		return CKR_OK;
	default:
		*value = kmx_p11_key_common(obj, type);
		return *value != NULL ? CKR_OK : CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

static CK_RV
kmx_p11_secret_attribute(KmxP11Object *obj, CK_ATTRIBUTE_TYPE type, GBytes **value)
{
	switch (type) {
	case CKA_TOKEN:
	case CKA_PRIVATE:
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_LOCAL:
	case CKA_ALWAYS_SENSITIVE:
	case CKA_DERIVE:
	case CKA_ENCRYPT:
	case CKA_DECRYPT:
	case CKA_SIGN:
	case CKA_VERIFY:
	case CKA_WRAP:
	case CKA_UNWRAP:
		*value = kmx_p11_bool(FALSE);
		return CKR_OK;
	case CKA_DESTROYABLE:
		*value = kmx_p11_bool(TRUE);
		return CKR_OK;
	case CKA_NEVER_EXTRACTABLE:
		*value = kmx_p11_bool(!obj->extractable);
		return CKR_OK;
	case CKA_SENSITIVE:
		*value = kmx_p11_bool(obj->sensitive);
		return CKR_OK;
	case CKA_EXTRACTABLE:
		*value = kmx_p11_bool(obj->extractable);
		return CKR_OK;
	case CKA_KEY_TYPE:
		*value = kmx_p11_ulong(obj->secret_type);
		return CKR_OK;
	case CKA_VALUE_LEN:
		*value = kmx_p11_ulong(obj->value_len);
		return CKR_OK;
	case CKA_KEY_GEN_MECHANISM:
		*value = kmx_p11_ulong(CKM_ECDH1_DERIVE);
		return CKR_OK;
	case CKA_LABEL:
		*value = obj->label != NULL ? g_bytes_ref(obj->label) : kmx_p11_empty();
		return CKR_OK;
	case CKA_ID:
		*value = obj->id != NULL ? g_bytes_ref(obj->id) : kmx_p11_empty();
		return CKR_OK;
	case CKA_START_DATE:
	case CKA_END_DATE:
		*value = kmx_p11_empty();
		return CKR_OK;
	case CKA_VALUE:
		if (obj->sensitive || !obj->extractable)
			return CKR_ATTRIBUTE_SENSITIVE;
		*value = kmx_p11_secret_copy(obj->value, obj->value_len);
		return CKR_OK;
	default:
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

CK_RV
kmx_p11_object_attribute(KmxP11Object *obj, CK_ATTRIBUTE_TYPE type, GBytes **value)
{
	*value = NULL;
	if (type == CKA_CLASS) {
		*value = kmx_p11_ulong(obj->klass);
		return CKR_OK;
	}
	switch (obj->klass) {
	case CKO_PRIVATE_KEY:
		return kmx_p11_private_attribute(obj, type, value);
	case CKO_PUBLIC_KEY:
		return kmx_p11_public_attribute(obj, type, value);
	default:
		return kmx_p11_secret_attribute(obj, type, value);
	}
}

void
kmx_p11_pad(CK_UTF8CHAR *field, gsize size, const char *text)
{
	gsize len = text != NULL ? strlen(text) : 0;

	memset(field, ' ', size);
	if (len > size) {
		/* cut at the last whole UTF-8 character that fits */
		const char *end = g_utf8_find_prev_char(text, text + size + 1);
		len = end != NULL ? (gsize)(end - text) : 0;
		if (!g_utf8_validate(text, len, NULL))
			len = 0;
	}
	memcpy(field, text, len);
}
