/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: an asymmetric private key on a device */
#pragma once

#include <gio/gio.h>

#include "kmx-algorithm.h"
#include "kmx-device.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

#define KMX_TYPE_KEY (kmx_key_get_type())
G_DECLARE_DERIVABLE_TYPE(KmxKey, kmx_key, KMX, KEY, GObject)

/**
 * KmxKeyClass:
 * @sign: sign with @mechanism; @secret is the device's user secret when the
 *   device wants it for every operation (#KmxDeviceClass.secret_per_operation),
 *   else %NULL.  For hashed mechanisms (RSA, ECDSA) @data is
 *   the digest, whose length the core has checked; for ed25519 it is the
 *   message; for rsa-pkcs1 (%KMX_MECHANISM_RSA_PKCS1_RAW) what to pad with
 *   PKCS#1 v1.5 type 1, at most the modulus length minus 11 bytes, maybe
 *   empty; for ecdsa (%KMX_MECHANISM_ECDSA_RAW) a non-empty digest of any
 *   length, to be used as FIPS 186 says (kmx_ecdsa_digest_fit()).  ECDSA
 *   signatures are DER.
 * @decrypt: decrypt @data; return the plaintext in secret memory
 *   (kmx_secret_to_bytes())
 * @derive: the raw shared secret with @peer_public, which is a DER
 *   SubjectPublicKeyInfo, a raw 32-byte X25519 key or an uncompressed EC
 *   point, unchecked: treat it as hostile
 * @set_label: persist a new label (the core updates the property)
 * @delete_key: remove every trace of the key from the device
 *
 * Every vfunc runs on the device's executor, never on the main thread.  The
 * core has already checked that @mechanism is one this key's type supports.
 * A locked device is %KMX_ERROR_LOCKED.
 */
struct _KmxKeyClass {
	GObjectClass parent_class;

	GBytes *(*sign)(KmxKey *self,
			KmxMechanism mechanism,
			GBytes *data,
			KmxSecret *secret,
			GCancellable *cancellable,
			GError **error);
	GBytes *(*decrypt)(KmxKey *self,
			   KmxMechanism mechanism,
			   GBytes *data,
			   KmxSecret *secret,
			   GCancellable *cancellable,
			   GError **error);
	GBytes *(*derive)(KmxKey *self,
			  KmxMechanism mechanism,
			  GBytes *peer_public,
			  KmxSecret *secret,
			  GCancellable *cancellable,
			  GError **error);
	gboolean (*set_label)(KmxKey *self,
			      const char *label,
			      GCancellable *cancellable,
			      GError **error);
	gboolean (*delete_key)(KmxKey *self, GCancellable *cancellable, GError **error);
	gpointer padding[8];
};

char *kmx_key_compute_id(GBytes *spki);
guint kmx_key_id_hash(gconstpointer id);

/**
 * KmxKeyFacts:
 * @id: the key id, lowercase hex, already checked against @public_key
 * @device: (nullable): the device
 * @label: (transfer full) (nullable): the label, taken by the key
 * @key_type: the type
 * @usage: what the key may do; 0 for what its type allows
 * @public_key: the DER SubjectPublicKeyInfo (a reference is taken)
 * @exportable: whether the private key may leave the device
 *
 * The public facts of a key a backend makes many of (a soft-key store
 * loading 10,000 keys): kmx_key_new_with_facts() sets them without the
 * property machinery of g_object_new().
 */
typedef struct {
	const char *id;
	KmxDevice *device;
	char *label;
	KmxKeyType key_type;
	KmxKeyUsage usage;
	GBytes *public_key;
	gboolean exportable;
} KmxKeyFacts;

gpointer kmx_key_new_with_facts(GType type, KmxKeyFacts *facts);

const char *kmx_key_get_id(KmxKey *self);
const char *kmx_key_peek_id(KmxKey *self);
KmxDevice *kmx_key_get_device(KmxKey *self);
KmxDevice *kmx_key_dup_device(KmxKey *self);
char *kmx_key_dup_label(KmxKey *self);
void kmx_key_set_label(KmxKey *self, const char *label);
KmxKeyType kmx_key_get_key_type(KmxKey *self);
KmxKeyUsage kmx_key_get_usage(KmxKey *self);
const guint8 *kmx_key_get_public_key_data(KmxKey *self, gsize *len);
GBytes *kmx_key_dup_public_key(KmxKey *self);
gboolean kmx_key_get_exportable(KmxKey *self);
const char *kmx_key_get_locator(KmxKey *self);

gboolean kmx_key_check_operation(KmxKey *self,
				 KmxMechanism mechanism,
				 gboolean prehashed,
				 gsize data_len,
				 GError **error);
GBytes *kmx_key_sign(KmxKey *self,
		     KmxMechanism mechanism,
		     GBytes *data,
		     gboolean prehashed,
		     KmxSecret *secret,
		     GCancellable *cancellable,
		     GError **error);
GBytes *kmx_key_decrypt(KmxKey *self,
			KmxMechanism mechanism,
			GBytes *data,
			KmxSecret *secret,
			GCancellable *cancellable,
			GError **error);
GBytes *kmx_key_derive(KmxKey *self,
		       KmxMechanism mechanism,
		       GBytes *peer_public,
		       KmxSecret *secret,
		       GCancellable *cancellable,
		       GError **error);
gboolean kmx_key_save_label(KmxKey *self,
			    const char *label,
			    GCancellable *cancellable,
			    GError **error);
gboolean kmx_key_delete(KmxKey *self, GCancellable *cancellable, GError **error);

G_END_DECLS
