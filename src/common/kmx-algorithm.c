/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: key algorithms and operation algorithms, by name */
#include "config.h"

#include <string.h>

#include "kmx-algorithm.h"

static const struct {
	KmxKeyType type;
	const char *name;
	guint bits;
	KmxKeyUsage usage;
} key_types[] = {
    {KMX_KEY_TYPE_RSA2048, "rsa2048", 2048, KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DECRYPT},
    {KMX_KEY_TYPE_RSA3072, "rsa3072", 3072, KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DECRYPT},
    {KMX_KEY_TYPE_RSA4096, "rsa4096", 4096, KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DECRYPT},
    {KMX_KEY_TYPE_ECDSA_P256, "ecdsa-p256", 256, KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DERIVE},
    {KMX_KEY_TYPE_ECDSA_P384, "ecdsa-p384", 384, KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DERIVE},
    {KMX_KEY_TYPE_ED25519, "ed25519", 256, KMX_KEY_USAGE_SIGN},
    {KMX_KEY_TYPE_X25519, "x25519", 256, KMX_KEY_USAGE_DERIVE},
};

static const struct {
	KmxMechanism mech;
	const char *name;
	KmxOperation op;
	KmxHash hash;
} mechanisms[] = {
    {KMX_MECHANISM_RSA_PKCS1_SHA256, "rsa-pkcs1-sha256", KMX_OPERATION_SIGN, KMX_HASH_SHA256},
    {KMX_MECHANISM_RSA_PKCS1_SHA384, "rsa-pkcs1-sha384", KMX_OPERATION_SIGN, KMX_HASH_SHA384},
    {KMX_MECHANISM_RSA_PKCS1_SHA512, "rsa-pkcs1-sha512", KMX_OPERATION_SIGN, KMX_HASH_SHA512},
    {KMX_MECHANISM_RSA_PSS_SHA256, "rsa-pss-sha256", KMX_OPERATION_SIGN, KMX_HASH_SHA256},
    {KMX_MECHANISM_RSA_PSS_SHA384, "rsa-pss-sha384", KMX_OPERATION_SIGN, KMX_HASH_SHA384},
    {KMX_MECHANISM_RSA_PSS_SHA512, "rsa-pss-sha512", KMX_OPERATION_SIGN, KMX_HASH_SHA512},
    {KMX_MECHANISM_ECDSA_SHA256, "ecdsa-sha256", KMX_OPERATION_SIGN, KMX_HASH_SHA256},
    {KMX_MECHANISM_ECDSA_SHA384, "ecdsa-sha384", KMX_OPERATION_SIGN, KMX_HASH_SHA384},
    {KMX_MECHANISM_ED25519, "ed25519", KMX_OPERATION_SIGN, KMX_HASH_NONE},
    {KMX_MECHANISM_RSA_PKCS1, "rsa-pkcs1", KMX_OPERATION_DECRYPT, KMX_HASH_NONE},
    {KMX_MECHANISM_RSA_OAEP_SHA256, "rsa-oaep-sha256", KMX_OPERATION_DECRYPT, KMX_HASH_SHA256},
    {KMX_MECHANISM_ECDH, "ecdh", KMX_OPERATION_DERIVE, KMX_HASH_NONE},
    {KMX_MECHANISM_X25519, "x25519", KMX_OPERATION_DERIVE, KMX_HASH_NONE},
    /* lookups are per operation: Sign's "rsa-pkcs1" is not Decrypt's */
    {KMX_MECHANISM_RSA_PKCS1_RAW, "rsa-pkcs1", KMX_OPERATION_SIGN, KMX_HASH_NONE},
    {KMX_MECHANISM_ECDSA_RAW, "ecdsa", KMX_OPERATION_SIGN, KMX_HASH_NONE},
};

KmxKeyType
kmx_key_type_from_string(const char *name)
{
	for (guint i = 0; name != NULL && i < G_N_ELEMENTS(key_types); i++) {
		if (g_strcmp0(key_types[i].name, name) == 0)
			return key_types[i].type;
	}
	return KMX_KEY_TYPE_UNKNOWN;
}

const char *
kmx_key_type_to_string(KmxKeyType type)
{
	for (guint i = 0; i < G_N_ELEMENTS(key_types); i++) {
		if (key_types[i].type == type)
			return key_types[i].name;
	}
	return "unknown";
}

KmxKeyUsage
kmx_key_type_get_usage(KmxKeyType type)
{
	for (guint i = 0; i < G_N_ELEMENTS(key_types); i++) {
		if (key_types[i].type == type)
			return key_types[i].usage;
	}
	return KMX_KEY_USAGE_NONE;
}

guint
kmx_key_type_get_bits(KmxKeyType type)
{
	for (guint i = 0; i < G_N_ELEMENTS(key_types); i++) {
		if (key_types[i].type == type)
			return key_types[i].bits;
	}
	return 0;
}

gboolean
kmx_key_type_is_rsa(KmxKeyType type)
{
	return type == KMX_KEY_TYPE_RSA2048 || type == KMX_KEY_TYPE_RSA3072 ||
	       type == KMX_KEY_TYPE_RSA4096;
}

gboolean
kmx_key_type_is_ec(KmxKeyType type)
{
	return type == KMX_KEY_TYPE_ECDSA_P256 || type == KMX_KEY_TYPE_ECDSA_P384;
}

/**
 * kmx_key_usage_to_strv:
 *
 * Returns: (transfer full): the usage as the Key.Usage property lists it
 */
char **
kmx_key_usage_to_strv(KmxKeyUsage usage)
{
	g_autoptr(GStrvBuilder) b = g_strv_builder_new();

	if (usage & KMX_KEY_USAGE_SIGN)
		g_strv_builder_add(b, "sign");
	if (usage & KMX_KEY_USAGE_DECRYPT)
		g_strv_builder_add(b, "decrypt");
	if (usage & KMX_KEY_USAGE_DERIVE)
		g_strv_builder_add(b, "derive");
	return g_strv_builder_end(b);
}

/* the usage bit of one name, @len bytes; 0 for a name we do not know */
static KmxKeyUsage
kmx_key_usage_from_name(const char *name, gsize len)
{
	static const struct {
		const char *name;
		KmxKeyUsage usage;
	} names[] = {
	    {"sign", KMX_KEY_USAGE_SIGN},
	    {"decrypt", KMX_KEY_USAGE_DECRYPT},
	    {"derive", KMX_KEY_USAGE_DERIVE},
	};

	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
			return names[i].usage;
	}
	return KMX_KEY_USAGE_NONE;
}

KmxKeyUsage
kmx_key_usage_from_strv(const char *const *strv)
{
	KmxKeyUsage usage = KMX_KEY_USAGE_NONE;

	for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
		usage |= kmx_key_usage_from_name(strv[i], strlen(strv[i]));
	return usage;
}

/**
 * kmx_key_usage_from_list:
 * @list: names separated by @separator, @len bytes
 * @separator: e.g. ';'
 *
 * kmx_key_usage_from_strv() of g_strsplit(@list, @separator), without
 * the copies: a soft-key store reads one such list per key at start-up.
 */
KmxKeyUsage
kmx_key_usage_from_list(const char *list, gsize len, char separator)
{
	KmxKeyUsage usage = KMX_KEY_USAGE_NONE;
	const char *end = list + len;

	g_return_val_if_fail(list != NULL || len == 0, KMX_KEY_USAGE_NONE);
	while (list != NULL && list <= end) {
		const char *sep = memchr(list, separator, (gsize)(end - list));
		const char *item_end = sep != NULL ? sep : end;

		usage |= kmx_key_usage_from_name(list, (gsize)(item_end - list));
		if (sep == NULL)
			break;
		list = sep + 1;
	}
	return usage;
}

/**
 * kmx_mechanism_from_string:
 * @op: the operation the name is given for
 * @name: an algorithm name, e.g. "rsa-pss-sha256"
 *
 * Returns: the mechanism, or %KMX_MECHANISM_UNKNOWN when @name is not an
 * algorithm of @op
 */
KmxMechanism
kmx_mechanism_from_string(KmxOperation op, const char *name)
{
	for (guint i = 0; name != NULL && i < G_N_ELEMENTS(mechanisms); i++) {
		if (mechanisms[i].op == op && g_str_equal(mechanisms[i].name, name))
			return mechanisms[i].mech;
	}
	return KMX_MECHANISM_UNKNOWN;
}

const char *
kmx_mechanism_to_string(KmxMechanism mech)
{
	for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++) {
		if (mechanisms[i].mech == mech)
			return mechanisms[i].name;
	}
	return "unknown";
}

KmxOperation
kmx_mechanism_get_operation(KmxMechanism mech)
{
	for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++) {
		if (mechanisms[i].mech == mech)
			return mechanisms[i].op;
	}
	return KMX_OPERATION_SIGN;
}

KmxHash
kmx_mechanism_get_hash(KmxMechanism mech)
{
	for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++) {
		if (mechanisms[i].mech == mech)
			return mechanisms[i].hash;
	}
	return KMX_HASH_NONE;
}

/**
 * kmx_mechanism_supports_key_type:
 *
 * Returns: whether a key of @type can be used with @mech at all
 */
gboolean
kmx_mechanism_supports_key_type(KmxMechanism mech, KmxKeyType type)
{
	switch (mech) {
	case KMX_MECHANISM_RSA_PKCS1_SHA256:
	case KMX_MECHANISM_RSA_PKCS1_SHA384:
	case KMX_MECHANISM_RSA_PKCS1_SHA512:
	case KMX_MECHANISM_RSA_PSS_SHA256:
	case KMX_MECHANISM_RSA_PSS_SHA384:
	case KMX_MECHANISM_RSA_PSS_SHA512:
	case KMX_MECHANISM_RSA_PKCS1:
	case KMX_MECHANISM_RSA_OAEP_SHA256:
	case KMX_MECHANISM_RSA_PKCS1_RAW:
		return kmx_key_type_is_rsa(type);
	case KMX_MECHANISM_ECDSA_SHA256:
	case KMX_MECHANISM_ECDSA_SHA384:
	case KMX_MECHANISM_ECDSA_RAW:
	case KMX_MECHANISM_ECDH:
		return kmx_key_type_is_ec(type);
	case KMX_MECHANISM_ED25519:
		return type == KMX_KEY_TYPE_ED25519;
	case KMX_MECHANISM_X25519:
		return type == KMX_KEY_TYPE_X25519;
	case KMX_MECHANISM_UNKNOWN:
	default:
		return FALSE;
	}
}

/**
 * kmx_mechanism_is_raw:
 *
 * Returns: whether @mech signs what its caller hashed and encoded itself
 * (a DigestInfo or any short string for RSA, a digest for ECDSA), so that
 * nothing is hashed and the "prehashed" option means nothing
 */
gboolean
kmx_mechanism_is_raw(KmxMechanism mech)
{
	return mech == KMX_MECHANISM_RSA_PKCS1_RAW || mech == KMX_MECHANISM_ECDSA_RAW;
}

/**
 * kmx_key_type_get_order_size:
 *
 * Returns: the byte length of the group order of an EC key type (its bit
 * length is a multiple of 8 on both curves, so FIPS 186's truncation of a
 * digest keeps whole bytes), or 0
 */
gsize
kmx_key_type_get_order_size(KmxKeyType type)
{
	switch (type) {
	case KMX_KEY_TYPE_ECDSA_P256:
		return 32;
	case KMX_KEY_TYPE_ECDSA_P384:
		return 48;
	default:
		return 0;
	}
}

gsize
kmx_hash_get_length(KmxHash hash)
{
	switch (hash) {
	case KMX_HASH_SHA256:
		return 32;
	case KMX_HASH_SHA384:
		return 48;
	case KMX_HASH_SHA512:
		return 64;
	case KMX_HASH_NONE:
	default:
		return 0;
	}
}

const char *
kmx_operation_to_string(KmxOperation op)
{
	switch (op) {
	case KMX_OPERATION_SIGN:
		return "sign";
	case KMX_OPERATION_DECRYPT:
		return "decrypt";
	case KMX_OPERATION_DERIVE:
		return "derive";
	default:
		return "unknown";
	}
}
