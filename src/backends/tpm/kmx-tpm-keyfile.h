/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: TPM key files: the TSS2 PEM (TPMKey ASN.1) and the public facts */
#pragma once

#include <glib.h>
#include <tss2/tss2_tpm2_types.h>

#include "kmx-algorithm.h"

G_BEGIN_DECLS

/* the parent of every key keymux writes: the owner hierarchy's standard
 * storage primary (draft-bottomley-tpm2-keys) */
#define KMX_TPM_PARENT_OWNER 0x40000001u

/* no TSS2 key file is anywhere near this long */
#define KMX_TPM_KEYFILE_MAX_SIZE 65536

/**
 * KmxTpmKeyFile:
 * @sealed: a sealed data object (type 2.23.133.10.1.5), not a key
 * @empty_auth: the key has no auth value of its own
 * @parent: the parent handle, %KMX_TPM_PARENT_OWNER for ours
 * @pub: the public area, as Create returned it
 * @priv: the TPM-wrapped private area
 *
 * A loadable key or sealed object: what a `TSS2 PRIVATE KEY` file holds.
 */
typedef struct {
	gboolean sealed;
	gboolean empty_auth;
	guint32 parent;
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
} KmxTpmKeyFile;

gboolean kmx_tpm_keyfile_decode(const char *pem, gsize len, KmxTpmKeyFile *key, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;
GBytes *kmx_tpm_keyfile_encode(const KmxTpmKeyFile *key, GError **error) G_GNUC_WARN_UNUSED_RESULT;

GBytes *kmx_tpm_public_to_spki(const TPMT_PUBLIC *pub,
			       KmxKeyType *type,
			       GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxKeyUsage kmx_tpm_public_get_usage(const TPMT_PUBLIC *pub);
guint kmx_tpm_public_get_ecc_size(const TPMT_PUBLIC *pub);

G_END_DECLS
