/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for the store.info reader
 *
 * One input: the content of a store.info.  See kmx-fuzz-main.h for the
 * two ways it is built.
 */
#include "config.h"

#include "kmx-fuzz-main.h"
#include "kmx-softkey-store.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(KmxSecret) text = NULL;
	g_autoptr(KmxSoftkeyStoreInfo) info = NULL;
	g_autoptr(GError) error = NULL;

	/* what the file reader lets through */
	if (size == 0 || size > KMX_SOFTKEY_MAX_FILE_SIZE)
		return 0;
	text = kmx_secret_new_from_data(data, size);
	info = kmx_softkey_store_info_parse(text, "store.info", &error);
	kmx_fuzz_report(error);
	if (info == NULL) {
		g_assert_nonnull(error);
		return 0;
	}
	/* what the rest of the store relies on; unwrapping a protected one
	 * costs 600,000 PBKDF2 iterations, too slow for a fuzzer */
	if (info->protected) {
		g_assert_null(info->file_key);
		g_assert_cmpuint(info->iterations, >=, KMX_SOFTKEY_KDF_ITERATIONS);
		g_assert_cmpuint(info->iterations, <=, KMX_SOFTKEY_KDF_MAX_ITERATIONS);
		g_assert_cmpuint(g_bytes_get_size(info->nonce), ==, KMX_SOFTKEY_NONCE_LEN);
		g_assert_cmpuint(g_bytes_get_size(info->wrapped),
				 ==,
				 KMX_SOFTKEY_FILE_KEY_LEN + KMX_SOFTKEY_TAG_LEN);
		g_assert_cmpuint(g_bytes_get_size(info->salt), >=, KMX_SOFTKEY_SALT_LEN);
	} else {
		g_autoptr(KmxSecret) file_key = kmx_softkey_store_info_unwrap(info, NULL, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(kmx_secret_get_length(file_key), ==, KMX_SOFTKEY_FILE_KEY_LEN);
	}
	return 0;
}
