/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: key algorithms and operation algorithms, by name */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * KmxKeyType:
 *
 * The algorithm of a key (the Key.Algorithm property).
 */
typedef enum {
	KMX_KEY_TYPE_UNKNOWN,
	KMX_KEY_TYPE_RSA2048,
	KMX_KEY_TYPE_RSA3072,
	KMX_KEY_TYPE_RSA4096,
	KMX_KEY_TYPE_ECDSA_P256,
	KMX_KEY_TYPE_ECDSA_P384,
	KMX_KEY_TYPE_ED25519,
	KMX_KEY_TYPE_X25519,
} KmxKeyType;

/**
 * KmxKeyUsage:
 * @KMX_KEY_USAGE_NONE: nothing
 * @KMX_KEY_USAGE_SIGN: Sign
 * @KMX_KEY_USAGE_DECRYPT: Decrypt
 * @KMX_KEY_USAGE_DERIVE: Derive
 */
typedef enum {
	KMX_KEY_USAGE_NONE = 0,
	KMX_KEY_USAGE_SIGN = 1 << 0,
	KMX_KEY_USAGE_DECRYPT = 1 << 1,
	KMX_KEY_USAGE_DERIVE = 1 << 2,
} KmxKeyUsage;

/**
 * KmxOperation:
 *
 * What a request does with a private key.
 */
typedef enum {
	KMX_OPERATION_SIGN,
	KMX_OPERATION_DECRYPT,
	KMX_OPERATION_DERIVE,
} KmxOperation;

/**
 * KmxHash:
 *
 * A digest used by a mechanism.
 */
typedef enum {
	KMX_HASH_NONE,
	KMX_HASH_SHA256,
	KMX_HASH_SHA384,
	KMX_HASH_SHA512,
} KmxHash;

/**
 * KmxMechanism:
 *
 * An operation algorithm (the algorithm argument of Sign, Decrypt, Derive).
 * The raw sign mechanisms take what their caller hashed and encoded itself:
 * %KMX_MECHANISM_RSA_PKCS1_RAW ("rsa-pkcs1" for Sign, distinct from the
 * decryption %KMX_MECHANISM_RSA_PKCS1 of the same name) pads the data with
 * PKCS#1 v1.5 type 1 as given, %KMX_MECHANISM_ECDSA_RAW ("ecdsa") signs a
 * digest of any length as FIPS 186 says.
 */
typedef enum {
	KMX_MECHANISM_UNKNOWN,
	KMX_MECHANISM_RSA_PKCS1_SHA256,
	KMX_MECHANISM_RSA_PKCS1_SHA384,
	KMX_MECHANISM_RSA_PKCS1_SHA512,
	KMX_MECHANISM_RSA_PSS_SHA256,
	KMX_MECHANISM_RSA_PSS_SHA384,
	KMX_MECHANISM_RSA_PSS_SHA512,
	KMX_MECHANISM_ECDSA_SHA256,
	KMX_MECHANISM_ECDSA_SHA384,
	KMX_MECHANISM_ED25519,
	KMX_MECHANISM_RSA_PKCS1,
	KMX_MECHANISM_RSA_OAEP_SHA256,
	KMX_MECHANISM_ECDH,
	KMX_MECHANISM_X25519,
	KMX_MECHANISM_RSA_PKCS1_RAW,
	KMX_MECHANISM_ECDSA_RAW,
} KmxMechanism;

KmxKeyType kmx_key_type_from_string(const char *name);
const char *kmx_key_type_to_string(KmxKeyType type);
KmxKeyUsage kmx_key_type_get_usage(KmxKeyType type);
gboolean kmx_key_type_is_rsa(KmxKeyType type);
gboolean kmx_key_type_is_ec(KmxKeyType type);
guint kmx_key_type_get_bits(KmxKeyType type);

char **kmx_key_usage_to_strv(KmxKeyUsage usage);
KmxKeyUsage kmx_key_usage_from_strv(const char *const *strv);
KmxKeyUsage kmx_key_usage_from_list(const char *list, gsize len, char separator);

KmxMechanism kmx_mechanism_from_string(KmxOperation op, const char *name);
const char *kmx_mechanism_to_string(KmxMechanism mech);
KmxOperation kmx_mechanism_get_operation(KmxMechanism mech);
KmxHash kmx_mechanism_get_hash(KmxMechanism mech);
gboolean kmx_mechanism_supports_key_type(KmxMechanism mech, KmxKeyType type);
gboolean kmx_mechanism_is_raw(KmxMechanism mech);

gsize kmx_hash_get_length(KmxHash hash);
gsize kmx_key_type_get_order_size(KmxKeyType type);
const char *kmx_operation_to_string(KmxOperation op);

G_END_DECLS
