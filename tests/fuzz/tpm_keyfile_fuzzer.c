/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for the TSS2 key file reader (kmx_tpm_keyfile_decode())
 *
 * One input: the text of a <key id>.pem (or secret.pem) in the TPM's state
 * dir, or of a file given to ImportKey.  What decodes must encode again to
 * a file that decodes to the same key, and its public area is read the
 * way listing reads it.  See kmx-fuzz-main.h.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-fuzz-main.h"
#include "kmx-tpm-keyfile.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;
	KmxTpmKeyFile key, again;

	if (kmx_tpm_keyfile_decode((const char *)data, size, &key, &error)) {
		g_autoptr(GBytes) pem = kmx_tpm_keyfile_encode(&key, NULL);
		g_autoptr(GBytes) spki = NULL;
		g_autoptr(GError) error_spki = NULL;
		KmxKeyType type = KMX_KEY_TYPE_UNKNOWN;

		g_assert_nonnull(pem);
		g_assert_true(kmx_tpm_keyfile_decode(g_bytes_get_data(pem, NULL),
						     g_bytes_get_size(pem),
						     &again,
						     NULL));
		g_assert_cmpint(again.sealed, ==, key.sealed);
		g_assert_cmpint(again.empty_auth, ==, key.empty_auth);
		g_assert_cmpuint(again.parent, ==, key.parent);
		g_assert_cmpmem(&again.pub, sizeof(again.pub), &key.pub, sizeof(key.pub));
		g_assert_cmpmem(&again.priv, sizeof(again.priv), &key.priv, sizeof(key.priv));
		spki = kmx_tpm_public_to_spki(&key.pub.publicArea, &type, &error_spki);
		if (spki != NULL)
			g_assert_cmpint(type, !=, KMX_KEY_TYPE_UNKNOWN);
	} else {
		g_assert_true(error->domain == KMX_ERROR);
		g_assert_true(g_utf8_validate(error->message, -1, NULL));
	}
	kmx_fuzz_report(error);
	return 0;
}
