/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for the <id>.info reader
 *
 * One input: the content of an <id>.info.  The id is taken from the
 * input's own public-key (when it has one), so that inputs get past the
 * id check to the fields after it.  See kmx-fuzz-main.h for the two ways
 * it is built.  Every input is read by both readers (the one for files as
 * keymux writes them, and GKeyFile), which must agree.
 */
#include "config.h"

#include <string.h>

#include "kmx-fuzz-main.h"
#include "kmx-key.h"
#include "kmx-softkey-store.h"

/* the id the reader will accept, found with GLib's lenient parsers */
static char *
fuzz_key_id(const char *contents, gsize len)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *b64 = NULL;
	g_autofree guint8 *raw = NULL;
	g_autoptr(GBytes) spki = NULL;
	gsize raw_len = 0;

	if (!g_key_file_load_from_data(kf, contents, len, G_KEY_FILE_NONE, NULL))
		return NULL;
	b64 = g_key_file_get_string(kf, "key", "public-key", NULL);
	if (b64 == NULL)
		return NULL;
	raw = g_base64_decode(b64, &raw_len);
	spki = g_bytes_new(raw, raw_len);
	return kmx_key_compute_id(spki);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *contents = NULL;
	g_autofree char *id = NULL;
	g_autoptr(KmxSoftkeyKeyInfo) info = NULL;
	g_autoptr(GError) error = NULL;

	if (size == 0 || size > KMX_SOFTKEY_KEY_INFO_MAX_SIZE)
		return 0;
	contents = g_malloc(size + 1);
	memcpy(contents, data, size);
	contents[size] = '\0';
	id = fuzz_key_id(contents, size);
	info = kmx_softkey_key_info_parse(
	    contents,
	    size,
	    "fuzz.info",
	    id != NULL ? id : "0000000000000000000000000000000000000000000000000000000000000000",
	    &error);
	kmx_fuzz_report(error);
	/* the fast reader of files as keymux writes them and GKeyFile agree */
	{
		g_autoptr(GError) error2 = NULL;
		g_autoptr(KmxSoftkeyKeyInfo) other = kmx_softkey_key_info_parse_with(
		    contents,
		    size,
		    "fuzz.info",
		    id != NULL ? id
			       : "0000000000000000000000000000000000000000000000000000000000000000",
		    FALSE,
		    &error2);
		g_assert_true((info == NULL) == (other == NULL));
		if (info == NULL)
			g_assert_cmpstr(error->message, ==, error2->message);
		else {
			g_assert_cmpstr(info->label, ==, other->label);
			g_assert_cmpint(info->type, ==, other->type);
			g_assert_cmpint(info->usage, ==, other->usage);
			g_assert_true(g_bytes_equal(info->spki, other->spki));
			g_assert_cmpstr(info->created, ==, other->created);
			g_assert_cmpint(info->exportable, ==, other->exportable);
		}
	}
	if (info == NULL) {
		g_assert_nonnull(error);
		return 0;
	}
	/* what the store relies on */
	g_assert_nonnull(info->label);
	g_assert_true(g_utf8_validate(info->label, -1, NULL));
	g_assert_cmpint(info->type, !=, KMX_KEY_TYPE_UNKNOWN);
	g_assert_cmpint(info->usage, !=, KMX_KEY_USAGE_NONE);
	g_assert_cmpint(info->usage & ~kmx_key_type_get_usage(info->type), ==, 0);
	g_assert_nonnull(info->spki);
	return 0;
}
