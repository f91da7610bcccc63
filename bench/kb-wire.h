/*
 * keymux benchmarks: small helpers for the peers' wire formats
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "kb-common.h"

G_BEGIN_DECLS

/* a connected unix stream socket, or -1 */
int kb_unix_connect(const gchar *path, GError **error);

/* the raw parts of a key, exported once, with the sizes the protocols want */
typedef struct {
	gnutls_pk_algorithm_t pk;
	/* ed25519: pub (32), seed (32); ecdsa p-256: x, y, d (32 each) */
	GByteArray *x, *y, *d;
	/* rsa, without leading zeros */
	GByteArray *n, *e, *rd, *p, *q, *iqmp; /* iqmp = q^-1 mod p */
} KbRawKey;

KbRawKey *kb_raw_key_export(KbKey *key, GError **error);
void kb_raw_key_free(KbRawKey *raw);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KbRawKey, kb_raw_key_free)

G_END_DECLS
