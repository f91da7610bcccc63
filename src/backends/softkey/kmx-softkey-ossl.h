/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the soft-key operations done by OpenSSL's libcrypto */
#pragma once

#include <glib.h>

#include "kmx-algorithm.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

typedef struct _KmxSoftkeyOsslKey KmxSoftkeyOsslKey;

/* the PBKDF2 iteration count of the key files: the passphrase is a random 256-bit
 * file key, so the count adds nothing to its strength and only costs time */
#define KMX_SOFTKEY_PEM_ITERATIONS 2048

char *kmx_softkey_ossl_encrypt_pkcs8(KmxSecret *pkcs8_der,
				     KmxSecret *passphrase,
				     gsize *len,
				     GError **error);

KmxSoftkeyOsslKey *kmx_softkey_ossl_key_new(KmxSecret *pkcs8_der, GError **error);
KmxSoftkeyOsslKey *kmx_softkey_ossl_key_ref(KmxSoftkeyOsslKey *self);
void kmx_softkey_ossl_key_unref(KmxSoftkeyOsslKey *self);

gboolean kmx_softkey_ossl_key_check_public(KmxSoftkeyOsslKey *self,
					   GBytes *spki,
					   GError **error);
GBytes *kmx_softkey_ossl_sign(KmxSoftkeyOsslKey *self,
			      KmxMechanism mechanism,
			      GBytes *data,
			      GError **error);
KmxSecret *kmx_softkey_ossl_decrypt_pkcs1(KmxSoftkeyOsslKey *self,
					  GBytes *data,
					  GError **error);
KmxSecret *kmx_softkey_ossl_decrypt_oaep_sha256(KmxSoftkeyOsslKey *self,
						GBytes *data,
						GError **error);
KmxSecret *kmx_softkey_ossl_derive(KmxSoftkeyOsslKey *self,
				   KmxKeyType type,
				   GBytes *peer_public,
				   GError **error);

void kmx_softkey_ossl_clear_errors(void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSoftkeyOsslKey, kmx_softkey_ossl_key_unref)

G_END_DECLS
