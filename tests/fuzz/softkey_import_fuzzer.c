/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for the soft-key import parser
 *
 * One input: the first byte's low bit chooses an empty or a fixed
 * passphrase, the rest is the key file.  See kmx-fuzz-main.h for the two
 * ways it is built.
 */
#include "config.h"

#include "kmx-fuzz-main.h"
#include "kmx-softkey-import.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(KmxSecret) pass = NULL;
	g_autoptr(GPtrArray) keys = NULL;
	g_autoptr(GError) error = NULL;

	if (size == 0 || size > 2 * KMX_SOFTKEY_IMPORT_MAX_SIZE)
		return 0;
	pass = kmx_secret_new_from_string((data[0] & 1) ? "fuzz" : "");
	bytes = g_bytes_new(data + 1, size - 1);
	keys = kmx_softkey_import_parse(bytes, pass, &error);
	if (keys == NULL)
		g_assert_nonnull(error);
	else
		g_assert_cmpuint(keys->len, >, 0);
	kmx_fuzz_report(error);
	return 0;
}
