/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a slot of an OpenPGP card
 *
 * What a slot allows is its usage (CARD.md): the SIG slot signs with
 * PSO:COMPUTE DIGITAL SIGNATURE, the AUT slot with INTERNAL AUTHENTICATE,
 * the DEC slot decrypts (RSA) or agrees (ECDH, X25519) with PSO:DECIPHER.
 * The card does the padding and the hashing it is asked for; keymux hands
 * it a DigestInfo (RSA), a digest (ECDSA) or the message (EdDSA), and turns
 * an ECDSA r||s into DER with the shared helpers.  The raw rsa-pkcs1 hands
 * the caller's data to the card as it is.
 */
#include "config.h"

#include "kmx-card-key.h"
#include "kmx-card-tlv.h"
#include "kmx-crypto.h"
#include "kmx-error.h"

struct _KmxCardKey {
	KmxKey parent_instance;
	KmxCardSlot slot;
};

G_DEFINE_TYPE(KmxCardKey, kmx_card_key, KMX_TYPE_KEY)

static gsize
kmx_card_key_signature_size(KmxKeyType type)
{
	if (kmx_key_type_is_rsa(type))
		return kmx_key_type_get_bits(type) / 8;
	return 64; /* Ed25519 */
}

static GBytes *
kmx_card_key_bad_signature(KmxKey *key, const char *why, GError **error)
{
	g_message("card %s returned a malformed signature: %s",
		  kmx_device_get_id(kmx_key_get_device(key)),
		  why);
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "the card returned a malformed signature: %s",
		    why);
	return NULL;
}

static GBytes *
kmx_card_key_sign(KmxKey *key,
		  KmxMechanism mechanism,
		  GBytes *data,
		  KmxSecret *secret,
		  GCancellable *cancellable,
		  GError **error)
{
	KmxCardKey *self = KMX_CARD_KEY(key);
	KmxCardDevice *device = KMX_CARD_DEVICE(kmx_key_get_device(key));
	KmxKeyType type = kmx_key_get_key_type(key);
	g_autoptr(GBytes) input = NULL;
	g_autoptr(GBytes) sig = NULL;

	switch (mechanism) {
	case KMX_MECHANISM_RSA_PKCS1_SHA256:
	case KMX_MECHANISM_RSA_PKCS1_SHA384:
	case KMX_MECHANISM_RSA_PKCS1_SHA512:
		/* the card pads a DigestInfo */
		input = kmx_digest_info_new(kmx_mechanism_get_hash(mechanism), data, error);
		if (input == NULL)
			return NULL;
		break;
	case KMX_MECHANISM_RSA_PKCS1_RAW: /* the card pads what it is given */
	case KMX_MECHANISM_ECDSA_SHA256:
	case KMX_MECHANISM_ECDSA_SHA384:
	case KMX_MECHANISM_ED25519:
		input = g_bytes_ref(data);
		break;
	case KMX_MECHANISM_ECDSA_RAW:
		/* a digest of any length, as long as the order: what every card
		 * takes, and the same signature FIPS 186 makes of it */
		input = kmx_ecdsa_digest_fit(type, data, error);
		if (input == NULL)
			return NULL;
		break;
	default:
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "an OpenPGP card cannot sign with %s",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (!kmx_card_device_check_key(device, self->slot, kmx_key_get_id(key), error))
		return NULL;
	sig = kmx_card_device_sign(device, self->slot, input, secret, cancellable, error);
	if (sig == NULL)
		return NULL;
	/* the card's answer is hostile too: a signature of the wrong size is
	 * the card's fault, never the caller's */
	if (kmx_key_type_is_ec(type)) {
		g_autoptr(GError) error_local = NULL;
		GBytes *der = kmx_ecdsa_signature_to_der(type, sig, &error_local);
		if (der == NULL)
			return kmx_card_key_bad_signature(key, error_local->message, error);
		return der;
	}
	if (g_bytes_get_size(sig) != kmx_card_key_signature_size(type))
		return kmx_card_key_bad_signature(key, "it has the wrong size", error);
	return g_steal_pointer(&sig);
}

static GBytes *
kmx_card_key_derive(KmxKey *key,
		    KmxMechanism mechanism,
		    GBytes *peer_public,
		    KmxSecret *secret,
		    GCancellable *cancellable,
		    GError **error)
{
	KmxCardDevice *device = KMX_CARD_DEVICE(kmx_key_get_device(key));
	KmxKeyType type = kmx_key_get_key_type(key);
	g_autoptr(GByteArray) point = g_byte_array_new();
	g_autoptr(GByteArray) pub = g_byte_array_new();
	g_autoptr(GByteArray) cipher = g_byte_array_new();
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(GBytes) input = NULL;
	g_autoptr(GBytes) shared = NULL;
	const guint8 *p;
	gsize len = 0;

	if (!kmx_card_device_check_key(device, KMX_CARD_SLOT_DEC, kmx_key_get_id(key), error))
		return NULL;
	spki = kmx_spki_parse_peer(type, peer_public, &raw, error);
	if (spki == NULL)
		return NULL;
	/* A6 { 7F49 { 86 <the peer's point or X25519 key> } } */
	p = g_bytes_get_data(raw, &len);
	kmx_card_tlv_append(point, 0x86, p, len);
	kmx_card_tlv_append(pub, 0x7F49, point->data, point->len);
	kmx_card_tlv_append(cipher, 0xA6, pub->data, pub->len);
	input = g_bytes_new(cipher->data, cipher->len);
	shared = kmx_card_device_decipher(device, input, secret, cancellable, error);
	if (shared == NULL)
		return NULL;
	/* the x coordinate, or the X25519 result: as long as the field */
	if (g_bytes_get_size(shared) != (type == KMX_KEY_TYPE_ECDSA_P384 ? 48u : 32u)) {
		g_message("card %s returned a shared secret of %" G_GSIZE_FORMAT " bytes",
			  kmx_device_get_id(kmx_key_get_device(key)),
			  g_bytes_get_size(shared));
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the card returned a malformed shared secret");
		return NULL;
	}
	return g_steal_pointer(&shared);
}

static GBytes *
kmx_card_key_decrypt(KmxKey *key,
		     KmxMechanism mechanism,
		     GBytes *data,
		     KmxSecret *secret,
		     GCancellable *cancellable,
		     GError **error)
{
	KmxCardDevice *device = KMX_CARD_DEVICE(kmx_key_get_device(key));
	g_autoptr(GByteArray) cipher = g_byte_array_new();
	g_autoptr(GBytes) input = NULL;
	const guint8 pad = 0x00;
	const guint8 *p;
	gsize len = 0;

	/* the card removes PKCS#1 v1.5 padding, and knows no other */
	if (mechanism != KMX_MECHANISM_RSA_PKCS1) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "an OpenPGP card decrypts rsa-pkcs1 only, not %s",
			    kmx_mechanism_to_string(mechanism));
		return NULL;
	}
	if (!kmx_card_device_check_key(device, KMX_CARD_SLOT_DEC, kmx_key_get_id(key), error))
		return NULL;
	p = g_bytes_get_data(data, &len);
	g_byte_array_append(cipher, &pad, 1);
	g_byte_array_append(cipher, p, (guint)len);
	input = g_bytes_new(cipher->data, cipher->len);
	return kmx_card_device_decipher(device, input, secret, cancellable, error);
}

static void
kmx_card_key_class_init(KmxCardKeyClass *klass)
{
	KmxKeyClass *key_class = KMX_KEY_CLASS(klass);

	key_class->sign = kmx_card_key_sign;
	key_class->decrypt = kmx_card_key_decrypt;
	key_class->derive = kmx_card_key_derive;
}

static void
kmx_card_key_init(KmxCardKey *self)
{
}

/**
 * kmx_card_key_new:
 * @spki: the SubjectPublicKeyInfo built from the card's public key
 *
 * Returns: (transfer full): the key in @slot; its usage is what the slot allows
 */
KmxKey *
kmx_card_key_new(KmxCardDevice *device, KmxCardSlot slot, KmxKeyType type, GBytes *spki)
{
	static const char *const labels[] = {"Signature key",
					     "Encryption key",
					     "Authentication key"};
	KmxKeyUsage usage;
	KmxCardKey *self;

	g_return_val_if_fail(slot < KMX_CARD_SLOT_COUNT, NULL);
	if (slot == KMX_CARD_SLOT_DEC)
		usage = kmx_key_type_is_rsa(type) ? KMX_KEY_USAGE_DECRYPT : KMX_KEY_USAGE_DERIVE;
	else
		usage = KMX_KEY_USAGE_SIGN;
	self = g_object_new(KMX_TYPE_CARD_KEY,
			    "device",
			    device,
			    "public-key",
			    spki,
			    "key-type",
			    (guint)type,
			    "usage",
			    (guint)usage,
			    "label",
			    labels[slot],
			    "locator",
			    kmx_card_slot_to_string(slot),
			    NULL);
	self->slot = slot;
	return KMX_KEY(self);
}
