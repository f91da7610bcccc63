/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for the option parsing every method's a{sv} goes
 * through (kmx_options_parse())
 *
 * One input: a serialised GVariant, read as a{sv} the way GDBus hands a
 * caller's options over (untrusted, then normalised).  See kmx-fuzz-main.h.
 */
#include "config.h"

#include "kmx-error.h"
#include "kmx-fuzz-main.h"
#include "kmx-options.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GBytes) bytes = g_bytes_new(data, size);
	g_autoptr(GVariant) v = NULL;
	g_autoptr(GVariant) normal = NULL;
	g_autoptr(GError) error = NULL;
	KmxOptions o;

	v = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE_VARDICT, bytes, FALSE));
	normal = g_variant_get_normal_form(v);
	kmx_options_init(&o);
	if (!kmx_options_parse(&o,
			       normal,
			       KMX_OPTION_INTERACTIVE | KMX_OPTION_PREHASHED |
				   KMX_OPTION_EXPORTABLE | KMX_OPTION_ADMIN_SECRET,
			       "Fuzz",
			       &error)) {
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		/* a refusal names the option or the method, never garbage */
		g_assert_true(g_utf8_validate(error->message, -1, NULL));
	}
	kmx_fuzz_report(error);
	/* what the pipeline relies on */
	if (error == NULL && (o.given & KMX_OPTION_ADMIN_SECRET))
		g_assert_nonnull(o.admin_secret);
	kmx_options_clear(&o);
	return 0;
}
