/* keymux: key files a user brings, parsed into one canonical form */
#pragma once

#include <glib.h>

#include "kmx-algorithm.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

/**
 * KmxSoftkeyParsedKey:
 * @type: the keymux key type
 * @pkcs8: the private key as a plain PKCS#8 PrivateKeyInfo DER, secret memory
 * @spki: the DER SubjectPublicKeyInfo
 * @comment: (nullable): a label found in the file (OpenSSH comment)
 */
typedef struct {
	KmxKeyType type;
	KmxSecret *pkcs8;
	GBytes *spki;
	char *comment;
} KmxSoftkeyParsedKey;

void kmx_softkey_parsed_key_free(KmxSoftkeyParsedKey *key);

#define KMX_SOFTKEY_IMPORT_MAX_SIZE (1024 * 1024)

GPtrArray *kmx_softkey_import_parse(GBytes *data, KmxSecret *passphrase, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSoftkeyParsedKey, kmx_softkey_parsed_key_free)

G_END_DECLS
