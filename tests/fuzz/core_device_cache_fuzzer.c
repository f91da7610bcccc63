/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for the registration cache reader
 * (kmx_device_cache_parse(): <backend>/registered/<device>.device files)
 *
 * One input: the content of such a file.  See kmx-fuzz-main.h.
 */
#include "config.h"

#include "kmx-device-cache.h"
#include "kmx-fuzz-main.h"
#include "kmx-key.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(KmxDevice) device = NULL;
	g_autoptr(GError) error = NULL;
	GPtrArray *keys;

	device = kmx_device_cache_parse("card", (const char *)data, size, &error);
	kmx_fuzz_report(error);
	if (device == NULL) {
		g_assert_nonnull(error);
		return 0;
	}
	/* what the core relies on: registered, absent, ids that hash right */
	g_assert_true(g_str_has_prefix(kmx_device_get_id(device), "card:"));
	g_assert_true(kmx_device_is_registered(device));
	g_assert_false(kmx_device_is_available(device));
	keys = kmx_device_get_keys(device);
	for (guint i = 0; i < keys->len; i++) {
		KmxKey *key = g_ptr_array_index(keys, i);
		g_autoptr(GBytes) spki = kmx_key_dup_public_key(key);
		g_autofree char *id = kmx_key_compute_id(spki);
		g_assert_cmpstr(id, ==, kmx_key_get_id(key));
		g_assert_cmpint(kmx_key_get_key_type(key), !=, KMX_KEY_TYPE_UNKNOWN);
	}
	return 0;
}
