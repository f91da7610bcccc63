/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: unit tests of the card backend's parsing of what cards send */
#include "config.h"

#include "kmx-card-device.h"
#include "kmx-card-tlv.h"

static void
test_tlv_find(void)
{
	/* 6E { 4F 02 AB CD, 73 { C4 01 03, C5 81 02 11 22 } } */
	const guint8 data[] = {0x6E,
			       0x0F,
			       0x4F,
			       0x02,
			       0xAB,
			       0xCD,
			       0x73,
			       0x09,
			       0xC4,
			       0x01,
			       0x03,
			       0xC5,
			       0x81,
			       0x02,
			       0x11,
			       0x22,
			       0x00};
	const guint8 *v = NULL;
	gsize n = 0;

	g_assert_true(kmx_card_tlv_find(data, 17, 0x6E, FALSE, &v, &n));
	g_assert_cmpuint(n, ==, 15);
	g_assert_false(kmx_card_tlv_find(data, 17, 0x4F, FALSE, &v, &n));
	g_assert_true(kmx_card_tlv_find(data, 17, 0x4F, TRUE, &v, &n));
	g_assert_cmpuint(n, ==, 2);
	g_assert_cmpuint(v[0], ==, 0xAB);
	g_assert_true(kmx_card_tlv_find(data, 17, 0xC5, TRUE, &v, &n));
	g_assert_cmpuint(n, ==, 2);
	g_assert_cmpuint(v[1], ==, 0x22);
	g_assert_true(kmx_card_tlv_find(data, 17, 0xC4, TRUE, &v, &n));
	g_assert_cmpuint(v[0], ==, 3);
	g_assert_false(kmx_card_tlv_find(data, 17, 0xC6, TRUE, &v, &n));
}

static void
test_tlv_hostile(void)
{
	const guint8 *v = NULL;
	gsize n = 0;
	/* a length past the end, at every level */
	const guint8 long_len[] = {0x4F, 0x05, 0x01};
	const guint8 long_inner[] = {0x73, 0x03, 0xC4, 0x09, 0x00};
	const guint8 long_form[] = {0x4F, 0x82, 0xFF};
	const guint8 bad_form[] = {0x4F, 0x84, 0x00, 0x00, 0x00, 0x01, 0x00};
	const guint8 tag_only[] = {0x7F};
	const guint8 long_tag[] = {0x7F, 0x81, 0x49, 0x00};
	/* deeper than any card nests */
	const guint8 deep[] =
	    {0x73, 0x0C, 0x73, 0x0A, 0x73, 0x08, 0x73, 0x06, 0x73, 0x04, 0x73, 0x02, 0xC4, 0x00};

	g_assert_false(kmx_card_tlv_find(long_len, sizeof(long_len), 0x4F, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(long_inner, sizeof(long_inner), 0xC4, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(long_form, sizeof(long_form), 0x4F, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(bad_form, sizeof(bad_form), 0x4F, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(tag_only, sizeof(tag_only), 0x7F49, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(long_tag, sizeof(long_tag), 0x7F49, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(deep, sizeof(deep), 0xC4, TRUE, &v, &n));
	g_assert_false(kmx_card_tlv_find(NULL, 0, 0x4F, TRUE, &v, &n));
	/* every truncation of a good object fails or stays inside it */
	{
		const guint8 good[] = {0x7F, 0x49, 0x05, 0x86, 0x03, 0x04, 0x05, 0x06};
		for (gsize len = 0; len <= sizeof(good); len++) {
			g_autofree guint8 *copy = g_memdup2(good, len);
			if (kmx_card_tlv_find(copy, len, 0x86, TRUE, &v, &n))
				g_assert_true(v + n <= copy + len);
		}
	}
}

static void
test_tlv_append(void)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	guint8 big[300] = {0};
	const guint8 *v = NULL;
	gsize n = 0;

	kmx_card_tlv_append(out, 0x86, big, 32);
	g_assert_cmpuint(out->len, ==, 34);
	kmx_card_tlv_append(out, 0x7F49, big, 200);
	g_assert_cmpuint(out->len, ==, 34 + 2 + 2 + 200);
	kmx_card_tlv_append(out, 0xC5, big, sizeof(big));
	g_assert_true(kmx_card_tlv_find(out->data, out->len, 0xC5, FALSE, &v, &n));
	g_assert_cmpuint(n, ==, sizeof(big));
	g_assert_true(kmx_card_tlv_find(out->data, out->len, 0x7F49, FALSE, &v, &n));
	g_assert_cmpuint(n, ==, 200);
}

static void
test_slot_names(void)
{
	KmxCardSlot slot = KMX_CARD_SLOT_COUNT;

	g_assert_true(kmx_card_slot_from_string("aut", &slot));
	g_assert_cmpint(slot, ==, KMX_CARD_SLOT_AUT);
	g_assert_cmpstr(kmx_card_slot_to_string(KMX_CARD_SLOT_DEC), ==, "dec");
	g_assert_false(kmx_card_slot_from_string("SIG", &slot));
	g_assert_false(kmx_card_slot_from_string(NULL, &slot));
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/kmx/card-tlv/find", test_tlv_find);
	g_test_add_func("/kmx/card-tlv/hostile", test_tlv_hostile);
	g_test_add_func("/kmx/card-tlv/append", test_tlv_append);
	g_test_add_func("/kmx/card-device/slot-names", test_slot_names);
	return g_test_run();
}
