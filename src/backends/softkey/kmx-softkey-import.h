/* SPDX-License-Identifier: LGPL-2.1-or-later */
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

/* the KDF work an imported file may ask for (docs/softkey-format.md): gnutls
 * and libssh take any count, and 2^31 iterations cost minutes per attempt */
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
/* iterations of one PBKDF2 or PKCS#12 KDF: ~1.5 s at the limit */
#define KMX_SOFTKEY_IMPORT_MAX_ITERATIONS 10000000u
/* bcrypt rounds of a passphrase-protected OpenSSH key: ssh-keygen writes 16 */
#define KMX_SOFTKEY_IMPORT_MAX_BCRYPT_ROUNDS 1000u
#else
/* a fuzzer needs every input to cost milliseconds */
#define KMX_SOFTKEY_IMPORT_MAX_ITERATIONS    20000u
#define KMX_SOFTKEY_IMPORT_MAX_BCRYPT_ROUNDS 2u
#endif
/* all the KDFs of one file together: a PKCS#12 MAC, an encrypted bag and a
 * key at the limit */
#define KMX_SOFTKEY_IMPORT_MAX_TOTAL_ITERATIONS (3 * (guint64)KMX_SOFTKEY_IMPORT_MAX_ITERATIONS)

GPtrArray *kmx_softkey_import_parse(GBytes *data, KmxSecret *passphrase, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSoftkeyParsedKey, kmx_softkey_parsed_key_free)

G_END_DECLS
