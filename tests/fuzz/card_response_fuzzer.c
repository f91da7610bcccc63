/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: fuzz target for what an OpenPGP card answers when it is read:
 * the application related data (GET DATA 6E) and a public key (7F49)
 *
 * One input: a 2-byte big-endian length, that many bytes of application
 * data, then the answer to READ PUBLIC KEY for the SIG slot.  Accepted
 * when both parse.  See kmx-fuzz-main.h.
 */
#include "config.h"

#include "kmx-card-device.h"
#include "kmx-card-tlv.h"
#include "kmx-error.h"
#include "kmx-fuzz-main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(KmxCardDevice) device = NULL;
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GError) error = NULL;
	const guint8 *v = NULL;
	gsize n = 0;
	gsize len;

	if (size < 2) {
		kmx_fuzz_report(NULL);
		return 0;
	}
	len = MIN(((gsize)data[0] << 8) | data[1], size - 2);
	device = g_object_new(KMX_TYPE_CARD_DEVICE, "id", "card:fuzz", "backend", "card", NULL);
	if (kmx_card_device_parse_app_data(device, data + 2, len, &error)) {
		spki = kmx_card_device_parse_public(device,
						    KMX_CARD_SLOT_SIG,
						    data + 2 + len,
						    size - 2 - len,
						    &error);
	}
	/* the parser never points outside what it was given */
	if (kmx_card_tlv_find(data, size, 0x86, TRUE, &v, &n))
		g_assert_true(v >= data && v + n <= data + size);
	if (error != NULL)
		g_assert_true(error->domain == KMX_ERROR);
	kmx_fuzz_report(error);
	return 0;
}
