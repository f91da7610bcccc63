/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: unit tests of what the daemon and the CLI share */
#include "config.h"

#include <gio/gio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <string.h>

#include "kmx-algorithm.h"
#include "kmx-crypto.h"
#include "kmx-encoding.h"
#include "kmx-error.h"
#include "kmx-secret.h"
#include "kmx-ssh.h"

static void
test_secret_basics(void)
{
	g_autoptr(KmxSecret) s = kmx_secret_new_from_string("hunter2");
	g_autoptr(KmxSecret) t = kmx_secret_new_from_data("hunter2", 7);
	g_autoptr(KmxSecret) e = kmx_secret_new_from_string(NULL);

	g_assert_cmpuint(kmx_secret_get_length(s), ==, 7);
	g_assert_cmpstr(kmx_secret_get_string(s), ==, "hunter2");
	g_assert_true(kmx_secret_equal(s, t));
	g_assert_true(kmx_secret_is_empty(e));
	g_assert_cmpstr(kmx_secret_get_string(e), ==, "");
	kmx_secret_truncate(t, 3);
	g_assert_cmpstr(kmx_secret_get_string(t), ==, "hun");
	g_assert_false(kmx_secret_equal(s, t));
}

static void
test_secret_bytes_keep_memory(void)
{
	KmxSecret *s = kmx_secret_new_from_data("\x00\x01\x02", 3);
	GBytes *b = kmx_secret_to_bytes(s);
	gsize len = 0;
	const guint8 *p;

	/* the bytes hold the secret alive after its owner let go */
	kmx_secret_unref(s);
	p = g_bytes_get_data(b, &len);
	g_assert_cmpuint(len, ==, 3);
	g_assert_cmpint(p[0], ==, 0);
	g_assert_cmpint(p[2], ==, 2);
	g_bytes_unref(b);
}

static void
test_secret_wiped_on_truncate(void)
{
	g_autoptr(KmxSecret) s = kmx_secret_new_from_string("abcdef");
	guint8 *p = kmx_secret_get_data(s);

	kmx_secret_truncate(s, 2);
	/* the cut-off bytes are zero, not just out of range */
	g_assert_cmpint(p[2], ==, 0);
	g_assert_cmpint(p[5], ==, 0);
}

static void
free_wiped_hunter2(gpointer data)
{
	for (guint i = 0; i < 7; i++)
		g_assert_cmpint(((guint8 *)data)[i], ==, 0);
	g_free(data);
}

static void
test_secret_new_take(void)
{
	/* a library's copy is wiped before the library frees it */
	g_autoptr(KmxSecret) s = kmx_secret_new_take(g_strdup("hunter2"), 7, free_wiped_hunter2);

	g_assert_cmpstr(kmx_secret_get_string(s), ==, "hunter2");
}

static void
free_wiped_block(gpointer data)
{
	for (gsize i = 0; i < malloc_usable_size(data); i++)
		g_assert_cmpint(((guint8 *)data)[i], ==, 0);
	g_free(data);
}

static void
test_secret_new_take_whole_block(void)
{
	/* the library worked in a larger block than what it returned: all
	 * of it is wiped */
	guint8 *block = g_malloc(256);
	g_autoptr(KmxSecret) s = NULL;

	memset(block, 0x5a, 256);
	memcpy(block, "hunter2", 7);
	s = kmx_secret_new_take(block, 7, free_wiped_block);
	g_assert_cmpstr(kmx_secret_get_string(s), ==, "hunter2");
}

static void
test_secure_heap(void)
{
	g_autoptr(GPtrArray) blocks = g_ptr_array_new();

	kmx_secure_memory_init();
	if (!CRYPTO_secure_malloc_initialized()) {
		g_test_skip("no secure heap in an AddressSanitizer build");
		return;
	}
	g_assert_true(kmx_secure_heap_can_keep());
	/* keys stop being kept at three quarters of the heap */
	while (kmx_secure_heap_can_keep()) {
		void *p = OPENSSL_secure_malloc(16 * 1024);
		g_assert_nonnull(p);
		g_assert_true(CRYPTO_secure_allocated(p));
		g_ptr_array_add(blocks, p);
		g_assert_cmpuint(blocks->len, <=, 1024 * 1024 / (16 * 1024));
	}
	/* the last quarter is still there, for keys used once */
	g_assert_cmpuint(blocks->len, >=, 3);
	{
		void *p = OPENSSL_secure_malloc(16 * 1024);
		g_assert_nonnull(p);
		OPENSSL_secure_clear_free(p, 16 * 1024);
	}
	for (guint i = 0; i < blocks->len; i++)
		OPENSSL_secure_clear_free(blocks->pdata[i], 16 * 1024);
	g_assert_true(kmx_secure_heap_can_keep());
}

static gsize
locked_kib(void)
{
	g_autofree char *status = NULL;
	const char *p;

	g_assert_true(g_file_get_contents("/proc/self/status", &status, NULL, NULL));
	p = strstr(status, "VmLck:");
	g_assert_nonnull(p);
	return (gsize)g_ascii_strtoull(p + strlen("VmLck:"), NULL, 10);
}

static void
test_secret_small_ones_share_locked_memory(void)
{
	g_autoptr(GPtrArray)
	    secrets = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_secret_unref);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
	gsize before = locked_kib();
	KmxSecret *s;
	guint8 *p;

	for (guint i = 0; i < 2000; i++) {
		s = kmx_secret_new_from_data("0123456789abcdef0123456789abcdef", 32);
		g_assert_false(g_hash_table_contains(seen, kmx_secret_get_data(s)));
		g_hash_table_add(seen, kmx_secret_get_data(s));
		g_ptr_array_add(secrets, s);
	}
	/* 2000 secrets of 32 bytes fit in two 64 KiB chunks, not 2000 pages */
	if (kmx_secure_memory_is_locked())
		g_assert_cmpuint(locked_kib() - before, <=, 192);
	/* a freed slot comes back zeroed */
	s = g_ptr_array_steal_index(secrets, secrets->len - 1);
	p = kmx_secret_get_data(s);
	kmx_secret_unref(s);
	s = kmx_secret_new(40);
	g_assert_true(kmx_secret_get_data(s) == p);
	for (guint i = 0; i < 41; i++)
		g_assert_cmpint(p[i], ==, 0);
	kmx_secret_unref(s);
	/* a large secret has its own mapping */
	s = kmx_secret_new(100000);
	kmx_secret_get_data(s)[99999] = 1;
	kmx_secret_unref(s);
}

static void
test_algorithm_names(void)
{
	g_assert_cmpint(kmx_key_type_from_string("ed25519"), ==, KMX_KEY_TYPE_ED25519);
	g_assert_cmpint(kmx_key_type_from_string("rsa1024"), ==, KMX_KEY_TYPE_UNKNOWN);
	g_assert_cmpint(kmx_key_type_from_string(NULL), ==, KMX_KEY_TYPE_UNKNOWN);
	g_assert_cmpstr(kmx_key_type_to_string(KMX_KEY_TYPE_ECDSA_P384), ==, "ecdsa-p384");

	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_SIGN, "rsa-pss-sha384"),
			==,
			KMX_MECHANISM_RSA_PSS_SHA384);
	/* a name of another operation is not an algorithm of this one */
	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_SIGN, "rsa-oaep-sha256"),
			==,
			KMX_MECHANISM_UNKNOWN);
	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_DERIVE, "x25519"),
			==,
			KMX_MECHANISM_X25519);
	g_assert_cmpuint(kmx_hash_get_length(kmx_mechanism_get_hash(KMX_MECHANISM_ECDSA_SHA384)),
			 ==,
			 48);
	g_assert_true(kmx_mechanism_supports_key_type(KMX_MECHANISM_ECDH, KMX_KEY_TYPE_ECDSA_P256));
	g_assert_false(
	    kmx_mechanism_supports_key_type(KMX_MECHANISM_RSA_PKCS1, KMX_KEY_TYPE_ED25519));
	g_assert_false(kmx_mechanism_supports_key_type(KMX_MECHANISM_ED25519, KMX_KEY_TYPE_X25519));

	/* the raw sign "rsa-pkcs1" shares its name with decryption, not its mechanism */
	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_SIGN, "rsa-pkcs1"),
			==,
			KMX_MECHANISM_RSA_PKCS1_RAW);
	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_DECRYPT, "rsa-pkcs1"),
			==,
			KMX_MECHANISM_RSA_PKCS1);
	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_SIGN, "ecdsa"),
			==,
			KMX_MECHANISM_ECDSA_RAW);
	g_assert_cmpint(kmx_mechanism_from_string(KMX_OPERATION_DERIVE, "ecdsa"),
			==,
			KMX_MECHANISM_UNKNOWN);
	g_assert_cmpstr(kmx_mechanism_to_string(KMX_MECHANISM_RSA_PKCS1_RAW), ==, "rsa-pkcs1");
	g_assert_cmpint(kmx_mechanism_get_operation(KMX_MECHANISM_RSA_PKCS1_RAW),
			==,
			KMX_OPERATION_SIGN);
	g_assert_cmpint(kmx_mechanism_get_hash(KMX_MECHANISM_ECDSA_RAW), ==, KMX_HASH_NONE);
	g_assert_true(kmx_mechanism_is_raw(KMX_MECHANISM_ECDSA_RAW));
	g_assert_false(kmx_mechanism_is_raw(KMX_MECHANISM_RSA_PKCS1));
	g_assert_true(
	    kmx_mechanism_supports_key_type(KMX_MECHANISM_RSA_PKCS1_RAW, KMX_KEY_TYPE_RSA4096));
	g_assert_false(
	    kmx_mechanism_supports_key_type(KMX_MECHANISM_RSA_PKCS1_RAW, KMX_KEY_TYPE_ED25519));
	g_assert_true(
	    kmx_mechanism_supports_key_type(KMX_MECHANISM_ECDSA_RAW, KMX_KEY_TYPE_ECDSA_P384));
	g_assert_false(
	    kmx_mechanism_supports_key_type(KMX_MECHANISM_ECDSA_RAW, KMX_KEY_TYPE_RSA2048));
}

static void
test_algorithm_usage(void)
{
	g_auto(GStrv)
	    usage = kmx_key_usage_to_strv(kmx_key_type_get_usage(KMX_KEY_TYPE_ECDSA_P256));

	g_assert_cmpuint(g_strv_length(usage), ==, 2);
	g_assert_cmpstr(usage[0], ==, "sign");
	g_assert_cmpstr(usage[1], ==, "derive");
	g_assert_cmpint(kmx_key_usage_from_strv((const char *const *)usage),
			==,
			KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DERIVE);
	g_assert_cmpint(kmx_key_type_get_usage(KMX_KEY_TYPE_X25519), ==, KMX_KEY_USAGE_DERIVE);
}

/* a list read in place means what its g_strsplit() pieces mean */
static void
test_algorithm_usage_list(void)
{
	static const char *const lists[] = {
	    "",
	    "sign",
	    "sign;",
	    ";sign",
	    "sign;;decrypt",
	    ";",
	    "signx",
	    "sig",
	    "Sign",
	    "derive;decrypt;sign",
	    "sign;unknown",
	    "decrypt;derive",
	    ";;;derive;",
	    "sign decrypt",
	    "decrypt;sign;sign",
	};

	for (guint i = 0; i < G_N_ELEMENTS(lists); i++) {
		g_auto(GStrv) names = g_strsplit(lists[i], ";", -1);
		KmxKeyUsage want = kmx_key_usage_from_strv((const char *const *)names);

		g_assert_cmpint(kmx_key_usage_from_list(lists[i], strlen(lists[i]), ';'), ==, want);
	}
	g_assert_cmpint(kmx_key_usage_from_list("sign;decrypt;derive", 19, ';'),
			==,
			KMX_KEY_USAGE_SIGN | KMX_KEY_USAGE_DECRYPT | KMX_KEY_USAGE_DERIVE);
	/* only @len bytes are read */
	g_assert_cmpint(kmx_key_usage_from_list("sign;decrypt", 4, ';'), ==, KMX_KEY_USAGE_SIGN);
	g_assert_cmpint(kmx_key_usage_from_list("signature", 4, ';'), ==, KMX_KEY_USAGE_SIGN);
	g_assert_cmpint(kmx_key_usage_from_list(NULL, 0, ';'), ==, KMX_KEY_USAGE_NONE);
}

static void
test_error_dbus_names(void)
{
	g_autoptr(GError) e = g_error_new(KMX_ERROR, KMX_ERROR_BAD_SECRET, "wrong");
	g_autofree char *name = g_dbus_error_encode_gerror(e);
	g_autoptr(GError) back = NULL;

	g_assert_cmpstr(name, ==, "org.keymux.Keystore1.Error.BadSecret");
	back =
	    g_dbus_error_new_for_dbus_error("org.keymux.Keystore1.Error.Blocked", "no more tries");
	g_assert_error(back, KMX_ERROR, KMX_ERROR_BLOCKED);
	kmx_error_strip_remote(back);
	g_assert_cmpstr(back->message, ==, "no more tries");
}

static void
test_error_normalize(void)
{
	GError *e = g_error_new(G_IO_ERROR, G_IO_ERROR_CANCELLED, "stop");
	GError *f = g_error_new(G_FILE_ERROR, G_FILE_ERROR_IO, "disk");

	kmx_error_normalize(&e);
	g_assert_error(e, KMX_ERROR, KMX_ERROR_CANCELLED);
	g_assert_cmpstr(e->message, ==, "stop");
	kmx_error_normalize(&f);
	g_assert_error(f, KMX_ERROR, KMX_ERROR_FAILED);
	g_error_free(e);
	g_error_free(f);
}

/* ---- public-key encodings ---- */

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_privkey_t, gnutls_privkey_deinit, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_pubkey_t, gnutls_pubkey_deinit, NULL)

static GBytes *
bytes_from_hex(const char *hex)
{
	gsize len = strlen(hex) / 2;
	guint8 *data = g_malloc(len);

	for (gsize i = 0; i < len; i++)
		data[i] = (guint8)(g_ascii_xdigit_value(hex[2 * i]) << 4 |
				   g_ascii_xdigit_value(hex[2 * i + 1]));
	return g_bytes_new_take(data, len);
}

static GBytes *
bytes_take_datum(gnutls_datum_t *d)
{
	GBytes *b = g_bytes_new(d->data, d->size);
	gnutls_free(d->data);
	return b;
}

/* a fresh key pair from gnutls and its own SubjectPublicKeyInfo */
static gnutls_pubkey_t
generate_key(gnutls_pk_algorithm_t pk, unsigned int bits, gnutls_privkey_t *priv, GBytes **spki)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t der = {NULL, 0};

	g_assert_cmpint(gnutls_privkey_init(priv), ==, 0);
	g_assert_cmpint(gnutls_privkey_generate2(*priv, pk, bits, 0, NULL, 0), ==, 0);
	g_assert_cmpint(gnutls_pubkey_init(&pub), ==, 0);
	g_assert_cmpint(gnutls_pubkey_import_privkey(pub, *priv, 0, 0), ==, 0);
	g_assert_cmpint(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der), ==, 0);
	*spki = bytes_take_datum(&der);
	return pub;
}

/* the uncompressed point of an EC key gnutls made */
static GBytes *
ec_point_of(gnutls_pubkey_t pub, gsize size)
{
	gnutls_ecc_curve_t curve;
	gnutls_datum_t x = {NULL, 0};
	gnutls_datum_t y = {NULL, 0};
	guint8 *pt = g_malloc0(1 + 2 * size);

	g_assert_cmpint(
	    gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ),
	    ==,
	    0);
	pt[0] = 0x04;
	memcpy(pt + 1 + size - x.size, x.data, x.size);
	memcpy(pt + 1 + 2 * size - y.size, y.data, y.size);
	gnutls_free(x.data);
	gnutls_free(y.data);
	return g_bytes_new_take(pt, 1 + 2 * size);
}

static void
test_spki_rsa(void)
{
	g_auto(gnutls_privkey_t) priv = NULL;
	g_auto(gnutls_pubkey_t) pub = NULL;
	g_autoptr(GBytes) want = NULL;
	g_autoptr(GBytes) n = NULL;
	g_autoptr(GBytes) e = NULL;
	g_autoptr(GBytes) got = NULL;
	g_autoptr(GError) error = NULL;
	gnutls_datum_t dn = {NULL, 0};
	gnutls_datum_t de = {NULL, 0};

	pub = generate_key(GNUTLS_PK_RSA, 2048, &priv, &want);
	/* with the leading zero byte gnutls puts before a high bit */
	g_assert_cmpint(gnutls_pubkey_export_rsa_raw2(pub, &dn, &de, 0), ==, 0);
	n = bytes_take_datum(&dn);
	e = bytes_take_datum(&de);
	got = kmx_spki_new_from_rsa(n, e, &error);
	g_assert_no_error(error);
	g_assert_true(g_bytes_equal(got, want));

	/* hostile: too short, even, a bad exponent */
	{
		g_autoptr(GBytes) small = g_bytes_new_from_bytes(n, 0, 64);
		g_autoptr(GBytes) out = kmx_spki_new_from_rsa(small, e, &error);
		g_assert_null(out);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
	{
		gsize len = 0;
		guint8 *even = g_bytes_unref_to_data(g_bytes_ref(n), &len);
		g_autoptr(GBytes) bad = NULL;
		g_autoptr(GBytes) out = NULL;
		even[len - 1] &= 0xfe;
		bad = g_bytes_new_take(even, len);
		out = kmx_spki_new_from_rsa(bad, e, &error);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_assert_nonnull(strstr(error->message, "even"));
		g_clear_error(&error);
	}
	for (guint i = 0; i < 4; i++) {
		static const char *const exps[] = {"", "01", "010000", "010000000000000001"};
		g_autoptr(GBytes) bad = bytes_from_hex(exps[i]);
		g_autoptr(GBytes) out = kmx_spki_new_from_rsa(n, bad, &error);
		g_assert_null(out);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
}

static void
check_spki_ec(KmxKeyType type, gnutls_pk_algorithm_t pk, unsigned int bits, gsize size)
{
	g_auto(gnutls_privkey_t) priv = NULL;
	g_auto(gnutls_pubkey_t) pub = NULL;
	g_autoptr(GBytes) want = NULL;
	g_autoptr(GBytes) point = NULL;
	g_autoptr(GBytes) got = NULL;
	g_autoptr(GError) error = NULL;

	pub = generate_key(pk, bits, &priv, &want);
	point = ec_point_of(pub, size);
	got = kmx_spki_new_from_ec_point(type, point, &error);
	g_assert_no_error(error);
	g_assert_true(g_bytes_equal(got, want));
}

static void
check_ec_point_fails(KmxKeyType type, guint8 first, guint8 fill, gsize len, const char *words)
{
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *pt = g_malloc(len + 1);
	g_autoptr(GBytes) in = NULL;
	g_autoptr(GBytes) out = NULL;

	memset(pt, fill, len + 1);
	pt[0] = first;
	in = g_bytes_new(pt, len);
	out = kmx_spki_new_from_ec_point(type, in, &error);
	g_assert_null(out);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_test_message("%s", error->message);
	if (words != NULL)
		g_assert_nonnull(strstr(error->message, words));
}

static void
test_spki_ec(void)
{
	check_spki_ec(KMX_KEY_TYPE_ECDSA_P256,
		      GNUTLS_PK_ECDSA,
		      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
		      32);
	check_spki_ec(KMX_KEY_TYPE_ECDSA_P384,
		      GNUTLS_PK_ECDSA,
		      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1),
		      48);

	/* hostile: off the curve, compressed, the other curve's length,
	 * coordinates past the field prime, (0, 0), nothing */
	check_ec_point_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x11, 65, "not on P-256");
	check_ec_point_fails(KMX_KEY_TYPE_ECDSA_P256, 0x02, 0x11, 33, "compressed");
	check_ec_point_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x11, 97, "65 bytes");
	check_ec_point_fails(KMX_KEY_TYPE_ECDSA_P384, 0x04, 0xff, 97, "not on P-384");
	check_ec_point_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x00, 65, "not on P-256");
	check_ec_point_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x00, 0, "0 bytes given");
}

static void
test_spki_raw(void)
{
	static const struct {
		KmxKeyType type;
		gnutls_pk_algorithm_t pk;
	} kinds[] = {
	    {KMX_KEY_TYPE_ED25519, GNUTLS_PK_EDDSA_ED25519},
	    {KMX_KEY_TYPE_X25519, GNUTLS_PK_ECDH_X25519},
	};
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
		g_auto(gnutls_privkey_t) priv = NULL;
		g_auto(gnutls_pubkey_t) pub = NULL;
		g_autoptr(GBytes) want = NULL;
		g_autoptr(GBytes) raw = NULL;
		g_autoptr(GBytes) got = NULL;
		g_autoptr(GBytes) shorter = NULL;
		gnutls_ecc_curve_t curve;
		gnutls_datum_t x = {NULL, 0};

		pub = generate_key(kinds[i].pk, 0, &priv, &want);
		g_assert_cmpint(gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0), ==, 0);
		raw = bytes_take_datum(&x);
		g_assert_cmpuint(g_bytes_get_size(raw), ==, 32);
		got = kmx_spki_new_from_raw(kinds[i].type, raw, &error);
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(got, want));

		shorter = g_bytes_new_from_bytes(raw, 0, 31);
		g_clear_pointer(&got, g_bytes_unref);
		got = kmx_spki_new_from_raw(kinds[i].type, shorter, &error);
		g_assert_null(got);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
	/* RFC 8410, 10.1: the X25519 example key */
	{
		g_autoptr(GBytes) raw = bytes_from_hex(
		    "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1");
		g_autoptr(GBytes) want = bytes_from_hex("302a300506032b656e03210019bf44096984cdfe85"
							"41bac167dc3b96c85086aa30b6b6cb0c5c38ad7031"
							"66e1");
		g_autoptr(GBytes) got = kmx_spki_new_from_raw(KMX_KEY_TYPE_X25519, raw, &error);
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(got, want));
	}
}

static void
check_peer_fails(KmxKeyType type, GBytes *in, const char *words)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(GBytes) out = kmx_spki_parse_peer(type, in, &raw, &error);

	g_assert_null(out);
	g_assert_null(raw);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_test_message("%s", error->message);
	if (words != NULL)
		g_assert_nonnull(strstr(error->message, words));
}

/* @len bytes of @fill after @first */
static void
check_peer_bytes_fails(KmxKeyType type, guint8 first, guint8 fill, gsize len, const char *words)
{
	g_autofree guint8 *data = g_malloc(len + 1);
	g_autoptr(GBytes) in = NULL;

	memset(data, fill, len + 1);
	data[0] = first;
	in = g_bytes_new(data, len);
	check_peer_fails(type, in, words);
}

/* a peer key of @pk for a key of @type, as SPKI and as the raw form */
static void
check_peer(KmxKeyType type, gnutls_pk_algorithm_t pk, unsigned int bits, gsize raw_len)
{
	g_auto(gnutls_privkey_t) priv = NULL;
	g_auto(gnutls_pubkey_t) pub = NULL;
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GBytes) want_raw = NULL;
	gsize len;

	pub = generate_key(pk, bits, &priv, &spki);
	len = g_bytes_get_size(spki);
	want_raw = g_bytes_new_from_bytes(spki, len - raw_len, raw_len);
	for (guint form = 0; form < 2; form++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) raw = NULL;
		g_autoptr(GBytes)
		    out = kmx_spki_parse_peer(type, form == 0 ? spki : want_raw, &raw, &error);
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(out, spki));
		g_assert_true(g_bytes_equal(raw, want_raw));
	}
	/* trailing data, a truncated SPKI, garbage DER */
	{
		g_autoptr(GByteArray) longer = g_byte_array_new();
		g_autoptr(GBytes) in = NULL;
		g_byte_array_append(longer, g_bytes_get_data(spki, NULL), (guint)len);
		g_byte_array_append(longer, (const guint8 *)"", 1);
		in = g_byte_array_free_to_bytes(g_steal_pointer(&longer));
		check_peer_fails(type, in, "SubjectPublicKeyInfo");
	}
	{
		g_autoptr(GBytes) in = g_bytes_new_from_bytes(spki, 0, len - 1);
		check_peer_fails(type, in, NULL);
	}
	{
		g_autoptr(GBytes) in = g_bytes_new_static("\x30\x03\x02\x01\x00", 5);
		check_peer_fails(type, in, "SubjectPublicKeyInfo");
	}
}

static void
test_spki_parse_peer(void)
{
	g_auto(gnutls_privkey_t) priv = NULL;
	g_auto(gnutls_pubkey_t) pub = NULL;
	g_autoptr(GBytes) p384 = NULL;
	g_autoptr(GBytes) x25519 = NULL;
	g_autoptr(GBytes) ed25519 = NULL;
	g_autoptr(GBytes) rsa = NULL;

	check_peer(KMX_KEY_TYPE_ECDSA_P256,
		   GNUTLS_PK_ECDSA,
		   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
		   65);
	check_peer(KMX_KEY_TYPE_ECDSA_P384,
		   GNUTLS_PK_ECDSA,
		   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1),
		   97);
	check_peer(KMX_KEY_TYPE_X25519, GNUTLS_PK_ECDH_X25519, 0, 32);

	/* keys of another kind */
	pub = generate_key(GNUTLS_PK_ECDSA,
			   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1),
			   &priv,
			   &p384);
	g_clear_pointer(&pub, gnutls_pubkey_deinit);
	g_clear_pointer(&priv, gnutls_privkey_deinit);
	pub = generate_key(GNUTLS_PK_ECDH_X25519, 0, &priv, &x25519);
	g_clear_pointer(&pub, gnutls_pubkey_deinit);
	g_clear_pointer(&priv, gnutls_privkey_deinit);
	pub = generate_key(GNUTLS_PK_EDDSA_ED25519, 0, &priv, &ed25519);
	g_clear_pointer(&pub, gnutls_pubkey_deinit);
	g_clear_pointer(&priv, gnutls_privkey_deinit);
	pub = generate_key(GNUTLS_PK_RSA, 1024, &priv, &rsa);
	check_peer_fails(KMX_KEY_TYPE_ECDSA_P256,
			 p384,
			 "an EC key on P-384, not an EC key on P-256");
	check_peer_fails(KMX_KEY_TYPE_ECDSA_P256, x25519, "an X25519 key");
	check_peer_fails(KMX_KEY_TYPE_X25519, p384, "not an X25519 key");
	check_peer_fails(KMX_KEY_TYPE_X25519, ed25519, "an Ed25519 key");
	check_peer_fails(KMX_KEY_TYPE_ECDSA_P384, rsa, "type RSA");

	/* points: off the curve, compressed, truncated, the wrong curve's;
	 * wrong lengths for X25519, nothing at all, too much */
	check_peer_bytes_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x11, 65, "not on P-256");
	check_peer_bytes_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x11, 64, "uncompressed");
	check_peer_bytes_fails(KMX_KEY_TYPE_ECDSA_P384, 0x04, 0x11, 65, "97 bytes");
	check_peer_bytes_fails(KMX_KEY_TYPE_ECDSA_P256, 0x03, 0x11, 33, "compressed");
	check_peer_bytes_fails(KMX_KEY_TYPE_X25519, 0x11, 0x11, 31, "raw 32-byte X25519 key");
	check_peer_bytes_fails(KMX_KEY_TYPE_ECDSA_P256, 0x04, 0x00, 0, "0 bytes given");
	check_peer_bytes_fails(KMX_KEY_TYPE_X25519,
			       0x30,
			       0x00,
			       KMX_SPKI_PEER_MAX_SIZE + 1,
			       "DER SubjectPublicKeyInfo");
}

static void
test_digest_info(void)
{
	/* the DigestInfo prefixes of RFC 8017, 9.2, note 1 */
	static const struct {
		KmxHash hash;
		const char *prefix;
	} vectors[] = {
	    {KMX_HASH_SHA256, "3031300d060960864801650304020105000420"},
	    {KMX_HASH_SHA384, "3041300d060960864801650304020205000430"},
	    {KMX_HASH_SHA512, "3051300d060960864801650304020305000440"},
	};
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < G_N_ELEMENTS(vectors); i++) {
		gsize len = kmx_hash_get_length(vectors[i].hash);
		g_autofree guint8 *digest = g_malloc(len);
		g_autoptr(GBytes) d = NULL;
		g_autoptr(GBytes) prefix = bytes_from_hex(vectors[i].prefix);
		g_autoptr(GBytes) got = NULL;
		g_autoptr(GBytes) shorter = NULL;
		const guint8 *p;

		for (gsize j = 0; j < len; j++)
			digest[j] = (guint8)(j * 7 + i);
		d = g_bytes_new(digest, len);
		got = kmx_digest_info_new(vectors[i].hash, d, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(g_bytes_get_size(got), ==, g_bytes_get_size(prefix) + len);
		p = g_bytes_get_data(got, NULL);
		g_assert_cmpmem(p,
				g_bytes_get_size(prefix),
				g_bytes_get_data(prefix, NULL),
				g_bytes_get_size(prefix));
		g_assert_cmpmem(p + g_bytes_get_size(prefix), len, digest, len);

		shorter = g_bytes_new(digest, len - 1);
		g_clear_pointer(&got, g_bytes_unref);
		got = kmx_digest_info_new(vectors[i].hash, shorter, &error);
		g_assert_null(got);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}

	/* a raw PKCS#1 v1.5 signature of the DigestInfo is the RSA-SHA256
	 * signature gnutls makes itself */
	{
		g_auto(gnutls_privkey_t) priv = NULL;
		g_auto(gnutls_pubkey_t) pub = NULL;
		g_autoptr(GBytes) spki = NULL;
		g_autoptr(GBytes) d = g_bytes_new_static("0123456789abcdef0123456789abcdef", 32);
		g_autoptr(GBytes) info = kmx_digest_info_new(KMX_HASH_SHA256, d, &error);
		gnutls_datum_t hash = {(guint8 *)g_bytes_get_data(d, NULL), 32};
		gnutls_datum_t raw = {(guint8 *)g_bytes_get_data(info, NULL),
				      (unsigned int)g_bytes_get_size(info)};
		gnutls_datum_t a = {NULL, 0};
		gnutls_datum_t b = {NULL, 0};
		g_autoptr(GBytes) sa = NULL;
		g_autoptr(GBytes) sb = NULL;

		g_assert_no_error(error);
		pub = generate_key(GNUTLS_PK_RSA, 2048, &priv, &spki);
		g_assert_cmpint(
		    gnutls_privkey_sign_hash2(priv, GNUTLS_SIGN_RSA_SHA256, 0, &hash, &a),
		    ==,
		    0);
		g_assert_cmpint(
		    gnutls_privkey_sign_hash(priv, 0, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &raw, &b),
		    ==,
		    0);
		sa = bytes_take_datum(&a);
		sb = bytes_take_datum(&b);
		g_assert_true(g_bytes_equal(sa, sb));
	}
}

static void
check_ecdsa_der_fails(KmxKeyType type, const char *hex)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) in = bytes_from_hex(hex);
	g_autoptr(GBytes) out = kmx_ecdsa_signature_from_der(type, in, &error);

	g_assert_null(out);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
}

static void
test_ecdsa_signature(void)
{
	g_autoptr(GError) error = NULL;

	/* RFC 6979, A.2.5: P-256, SHA-256, "sample" */
	{
		g_autoptr(GBytes) rs = bytes_from_hex(
		    "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
		    "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8");
		g_autoptr(GBytes) x = bytes_from_hex(
		    "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6");
		g_autoptr(GBytes) y = bytes_from_hex(
		    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299");
		g_autoptr(GBytes)
		    der = kmx_ecdsa_signature_to_der(KMX_KEY_TYPE_ECDSA_P256, rs, &error);
		g_autoptr(GBytes) back = NULL;
		g_auto(gnutls_pubkey_t) pub = NULL;
		g_autofree char *digest =
		    g_compute_checksum_for_string(G_CHECKSUM_SHA256, "sample", 6);
		g_autoptr(GBytes) hash = bytes_from_hex(digest);
		gnutls_datum_t dx = {(guint8 *)g_bytes_get_data(x, NULL), 32};
		gnutls_datum_t dy = {(guint8 *)g_bytes_get_data(y, NULL), 32};
		gnutls_datum_t dh = {(guint8 *)g_bytes_get_data(hash, NULL), 32};
		gnutls_datum_t ds = {(guint8 *)g_bytes_get_data(der, NULL),
				     (unsigned int)g_bytes_get_size(der)};

		g_assert_no_error(error);
		/* both r and s have the high bit set: 0x00 before each */
		g_assert_cmpuint(g_bytes_get_size(der), ==, 72);
		gnutls_pubkey_init(&pub);
		g_assert_cmpint(
		    gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_SECP256R1, &dx, &dy),
		    ==,
		    0);
		g_assert_cmpint(
		    gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &dh, &ds),
		    >=,
		    0);
		back = kmx_ecdsa_signature_from_der(KMX_KEY_TYPE_ECDSA_P256, der, &error);
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(back, rs));
	}

	/* signatures gnutls makes, on both curves, there and back */
	for (guint i = 0; i < 2; i++) {
		KmxKeyType type = i == 0 ? KMX_KEY_TYPE_ECDSA_P256 : KMX_KEY_TYPE_ECDSA_P384;
		gnutls_ecc_curve_t curve = i == 0 ? GNUTLS_ECC_CURVE_SECP256R1
						  : GNUTLS_ECC_CURVE_SECP384R1;
		gsize size = i == 0 ? 32 : 48;
		g_auto(gnutls_privkey_t) priv = NULL;
		g_auto(gnutls_pubkey_t) pub = NULL;
		g_autoptr(GBytes) spki = NULL;
		guint8 digest[48] = {1, 2, 3};
		gnutls_datum_t dh = {digest, (unsigned int)size};

		pub = generate_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(curve), &priv, &spki);
		for (guint n = 0; n < 16; n++) {
			gnutls_datum_t sig = {NULL, 0};
			g_autoptr(GBytes) der = NULL;
			g_autoptr(GBytes) rs = NULL;
			g_autoptr(GBytes) again = NULL;

			digest[size - 1] = (guint8)n;
			g_assert_cmpint(gnutls_privkey_sign_hash2(priv,
								  i == 0 ? GNUTLS_SIGN_ECDSA_SHA256
									 : GNUTLS_SIGN_ECDSA_SHA384,
								  0,
								  &dh,
								  &sig),
					==,
					0);
			der = bytes_take_datum(&sig);
			rs = kmx_ecdsa_signature_from_der(type, der, &error);
			g_assert_no_error(error);
			g_assert_cmpuint(g_bytes_get_size(rs), ==, 2 * size);
			again = kmx_ecdsa_signature_to_der(type, rs, &error);
			g_assert_no_error(error);
			g_assert_true(g_bytes_equal(again, der));
		}
	}

	/* short r and s: padded on the way back */
	{
		g_autoptr(GBytes) rs = bytes_from_hex(
		    "0000000000000000000000000000000000000000000000000000000000000001"
		    "007f000000000000000000000000000000000000000000000000000000000002");
		g_autoptr(GBytes)
		    der = kmx_ecdsa_signature_to_der(KMX_KEY_TYPE_ECDSA_P256, rs, &error);
		g_autoptr(GBytes) want = bytes_from_hex("3024020101021f7f00000000000000000000"
							"0000000000000000000000000000000000000002");
		g_autoptr(GBytes) back = NULL;
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(der, want));
		back = kmx_ecdsa_signature_from_der(KMX_KEY_TYPE_ECDSA_P256, der, &error);
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(back, rs));
	}

	/* hostile r||s: wrong length, r zero */
	{
		g_autoptr(GBytes) rs = g_bytes_new_static("\x01\x02", 2);
		g_autoptr(GBytes)
		    der = kmx_ecdsa_signature_to_der(KMX_KEY_TYPE_ECDSA_P384, rs, &error);
		g_assert_null(der);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_assert_nonnull(strstr(error->message, "96 bytes"));
		g_clear_error(&error);
	}
	{
		g_autofree guint8 *zero = g_malloc0(64);
		g_autoptr(GBytes) rs = NULL;
		g_autoptr(GBytes) der = NULL;
		zero[63] = 1;
		rs = g_bytes_new(zero, 64);
		der = kmx_ecdsa_signature_to_der(KMX_KEY_TYPE_ECDSA_P256, rs, &error);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}

	/* hostile DER: nothing, garbage, trailing data, negative, zero,
	 * needless leading zero, long-form length, too large for the curve */
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "3000");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "deadbeef");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "300602010102010200");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "3006020181020102");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "3006020100020102");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "300702020001020102");
	check_ecdsa_der_fails(KMX_KEY_TYPE_ECDSA_P256, "308106020101020102");
	check_ecdsa_der_fails(
	    KMX_KEY_TYPE_ECDSA_P256,
	    "302602210101000000000000000000000000000000000000000000000000000000000000"
	    "00020101");
}

/* ---- base64 and PEM ---- */

/* FIPS 186 takes the leftmost bits of a long digest, a short one as its integer */
static void
test_ecdsa_digest_fit(void)
{
	guint8 d[64];
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < sizeof(d); i++)
		d[i] = (guint8)(i + 1);
	{
		g_autoptr(GBytes) in = g_bytes_new(d, 64);
		g_autoptr(GBytes) out = kmx_ecdsa_digest_fit(KMX_KEY_TYPE_ECDSA_P384, in, &error);
		g_assert_no_error(error);
		g_assert_cmpmem(g_bytes_get_data(out, NULL), g_bytes_get_size(out), d, 48);
	}
	{
		guint8 want[32] = {0};
		g_autoptr(GBytes) in = g_bytes_new(d, 20);
		g_autoptr(GBytes) out = kmx_ecdsa_digest_fit(KMX_KEY_TYPE_ECDSA_P256, in, &error);
		g_assert_no_error(error);
		memcpy(want + 12, d, 20);
		g_assert_cmpmem(g_bytes_get_data(out, NULL), g_bytes_get_size(out), want, 32);
	}
	{
		g_autoptr(GBytes) in = g_bytes_new(d, 32);
		g_autoptr(GBytes) out = kmx_ecdsa_digest_fit(KMX_KEY_TYPE_ECDSA_P256, in, &error);
		g_assert_no_error(error);
		g_assert_true(g_bytes_equal(in, out));
	}
	{
		g_autoptr(GBytes) in = g_bytes_new(NULL, 0);
		g_autoptr(GBytes) out = kmx_ecdsa_digest_fit(KMX_KEY_TYPE_ECDSA_P256, in, &error);
		g_assert_null(out);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
	{
		g_autoptr(GBytes) in = g_bytes_new(d, 32);
		g_autoptr(GBytes) out = kmx_ecdsa_digest_fit(KMX_KEY_TYPE_RSA2048, in, &error);
		g_assert_null(out);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	}
}

static void
test_base64(void)
{
	/* not strict base64: a short group, padding that does not fit, bits
	 * left over, a stray character, data after the padding, a '-' (where
	 * gnutls would stop reading), nothing but white space */
	static const char *const bad[] =
	    {"QUJ", "QQ=", "QQ===", "QR==", "QUJD!", "QQ==QUJD", "QUJD-QUJD", "", " \n\t"};
	g_autoptr(GError) error = NULL;

	/* white space between the characters is fine */
	{
		g_autoptr(KmxSecret) s = kmx_base64_decode_secret("QU JD\r\nRA==\n", 12, &error);
		g_autoptr(GBytes) b = kmx_base64_decode("QUJDRA==", 8, &error);
		g_assert_no_error(error);
		g_assert_cmpstr(kmx_secret_get_string(s), ==, "ABCD");
		g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), "ABCD", 4);
	}
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(KmxSecret) s = kmx_base64_decode_secret(bad[i], strlen(bad[i]), &error);
		g_autoptr(GBytes) b = NULL;
		g_assert_null(s);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
		b = kmx_base64_decode(bad[i], strlen(bad[i]), &error);
		g_assert_null(b);
		g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
	/* and back, for every length class, against GLib's encoder */
	for (gsize len = 0; len < 8; len++) {
		static const guint8 data[] = {0xff, 0x00, 0x10, 0x83, 0xfe, 0x7f, 0x01, 0x99};
		g_autoptr(KmxSecret) enc = kmx_base64_encode_secret(data, len);
		g_autofree char *want = g_base64_encode(data, len);
		g_assert_cmpstr(kmx_secret_get_string(enc), ==, want);
		if (len > 0) {
			g_autoptr(KmxSecret)
			    dec = kmx_base64_decode_secret(kmx_secret_get_string(enc),
							   kmx_secret_get_length(enc),
							   &error);
			g_assert_no_error(error);
			g_assert_cmpmem(kmx_secret_get_data(dec),
					kmx_secret_get_length(dec),
					data,
					len);
		}
	}
}

static void
check_pem_fails(const char *text, const char *words)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxSecret) s = kmx_pem_decode_secret(text, strlen(text), "PUBLIC KEY", &error);

	g_assert_null(s);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_test_message("%s", error->message);
	g_assert_nonnull(strstr(error->message, words));
}

static void
test_pem(void)
{
	static const char good[] = "explanatory text\n"
				   "-----BEGIN PRIVATE KEY-----\nQkFE\n-----END PRIVATE KEY-----\n"
				   "-----BEGIN PUBLIC KEY-----\r\nQUJD\r\nRA==\r\n"
				   "-----END PUBLIC KEY-----\r\n";
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxSecret) s = kmx_pem_decode_secret(good, strlen(good), "PUBLIC KEY", &error);

	g_assert_no_error(error);
	g_assert_cmpstr(kmx_secret_get_string(s), ==, "ABCD");
	check_pem_fails("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n",
			"no '-----BEGIN PUBLIC KEY-----' line");
	check_pem_fails("-----BEGIN PUBLIC KEY-----\nQUJD\n", "truncated PEM");
	check_pem_fails("-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PRIVATE KEY-----\n",
			"no '-----END PUBLIC KEY-----' line");
	check_pem_fails(
	    "-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n",
	    "bad PEM 'PUBLIC KEY': not valid base64");
	check_pem_fails("-----BEGIN PUBLIC KEY-----\nQUJD-QUJD\n-----END PUBLIC KEY-----\n",
			"unexpected '-'");
	check_pem_fails("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n", "bad PEM");
	check_pem_fails("", "no '-----BEGIN PUBLIC KEY-----' line");
}

/* the SSH wire reader: every short or non-canonical field is refused, and
 * a refused read consumes nothing */
static void
test_ssh_wire(void)
{
	static const guint8 long_string[] = {0, 0, 0, 9, 'a', 'b'};
	static const guint8 negative[] = {0, 0, 0, 1, 0x80};
	static const guint8 needless_zero[] = {0, 0, 0, 2, 0, 0x01};
	static const guint8 zero[] = {0, 0, 0, 0};
	static const guint8 good[] = {0, 0, 0, 2, 0, 0x80};
	static const guint8 high[] = {0, 0, 0x80};
	static const guint8 want_high[] = {0, 0, 0, 2, 0, 0x80};
	static const guint8 zero_byte[] = {0, 0, 0, 1, 0};
	static const guint8 magic[] = {'k', 'm', 'x'};
	g_autoptr(GByteArray) b = g_byte_array_new();
	KmxSshReader r;
	const guint8 *s = NULL;
	gsize len = 0;
	guint32 v = 0;

	kmx_ssh_reader_init(&r, long_string, sizeof(long_string));
	g_assert_false(kmx_ssh_read_string(&r, &s, &len));
	g_assert_cmpuint(r.left, ==, sizeof(long_string));
	kmx_ssh_reader_init(&r, long_string, 3);
	g_assert_false(kmx_ssh_read_u32(&r, &v));
	kmx_ssh_reader_init(&r, negative, sizeof(negative));
	g_assert_false(kmx_ssh_read_mpint(&r, &s, &len));
	g_assert_cmpuint(r.left, ==, sizeof(negative));
	kmx_ssh_reader_init(&r, needless_zero, sizeof(needless_zero));
	g_assert_false(kmx_ssh_read_mpint(&r, &s, &len));
	kmx_ssh_reader_init(&r, zero, sizeof(zero));
	g_assert_false(kmx_ssh_read_mpint(&r, &s, &len));
	kmx_ssh_reader_init(&r, good, sizeof(good));
	g_assert_true(kmx_ssh_read_mpint(&r, &s, &len));
	g_assert_cmpuint(len, ==, 2);
	g_assert_cmpuint(r.left, ==, 0);

	/* the unsigned mpints of key files: leading zeros and zero itself are
	 * taken as they stand, negative and empty ones are not */
	kmx_ssh_reader_init(&r, needless_zero, sizeof(needless_zero));
	g_assert_true(kmx_ssh_read_mpint_unsigned(&r, &s, &len));
	g_assert_cmpmem(s, len, needless_zero + 4, 2);
	g_assert_cmpuint(r.left, ==, 0);
	kmx_ssh_reader_init(&r, zero_byte, sizeof(zero_byte));
	g_assert_true(kmx_ssh_read_mpint_unsigned(&r, &s, &len));
	g_assert_cmpuint(len, ==, 1);
	kmx_ssh_reader_init(&r, zero, sizeof(zero));
	g_assert_false(kmx_ssh_read_mpint_unsigned(&r, &s, &len));
	g_assert_cmpuint(r.left, ==, sizeof(zero));
	kmx_ssh_reader_init(&r, negative, sizeof(negative));
	g_assert_false(kmx_ssh_read_mpint_unsigned(&r, &s, &len));
	g_assert_cmpuint(r.left, ==, sizeof(negative));

	/* bytes with no length before them: all there, or nothing consumed */
	kmx_ssh_reader_init(&r, magic, sizeof(magic));
	g_assert_false(kmx_ssh_read_bytes(&r, sizeof(magic) + 1, &s));
	g_assert_cmpuint(r.left, ==, sizeof(magic));
	g_assert_true(kmx_ssh_read_bytes(&r, 2, &s));
	g_assert_cmpmem(s, 2, "km", 2);
	g_assert_cmpuint(r.left, ==, 1);
	g_assert_true(kmx_ssh_read_bytes(&r, 1, &s));
	g_assert_true(s[0] == 'x');
	g_assert_false(kmx_ssh_read_bytes(&r, 1, &s));

	kmx_ssh_put_mpint(b, high, sizeof(high));
	g_assert_cmpmem(b->data, b->len, want_high, sizeof(want_high));
}

/* public keys and signatures in OpenSSH's form, and private keys that are
 * not what they claim */
static void
test_ssh_keys(void)
{
	guint8 raw[32];
	g_autoptr(GBytes) key = NULL;
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GBytes) blob = NULL;
	g_autoptr(GBytes) junk = g_bytes_new_static("junk", 4);
	g_autoptr(GBytes) short_sig = g_bytes_new_static("short", 5);
	g_autoptr(GByteArray) want = g_byte_array_new();
	g_autoptr(GByteArray) priv = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	g_autofree char *line = NULL;
	g_autofree char *comment = NULL;
	g_autoptr(KmxSecret) pem = NULL;
	KmxKeyType type = KMX_KEY_TYPE_UNKNOWN;
	KmxSshReader r;

	for (guint i = 0; i < sizeof(raw); i++)
		raw[i] = (guint8)(i + 1);
	key = g_bytes_new(raw, sizeof(raw));
	spki = kmx_spki_new_from_raw(KMX_KEY_TYPE_ED25519, key, &error);
	g_assert_no_error(error);
	blob = kmx_ssh_public_key_from_spki(spki, &type, &error);
	g_assert_no_error(error);
	g_assert_cmpint(type, ==, KMX_KEY_TYPE_ED25519);
	kmx_ssh_put_cstring(want, "ssh-ed25519");
	kmx_ssh_put_string(want, raw, sizeof(raw));
	g_assert_cmpmem(g_bytes_get_data(blob, NULL),
			g_bytes_get_size(blob),
			want->data,
			want->len);
	line = kmx_ssh_authorized_key(blob, "two\nlines");
	g_assert_true(g_str_has_prefix(line, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
	g_assert_true(g_str_has_suffix(line, " two lines"));
	{
		/* the way back, to the same SPKI; a key type with a line break in
		 * it makes no authorized_keys line */
		g_autoptr(GBytes) back = kmx_ssh_public_key_to_spki(blob, &type, &error);
		g_autoptr(GByteArray) odd = g_byte_array_new();
		g_autoptr(GBytes) odd_blob = NULL;

		g_assert_no_error(error);
		g_assert_cmpint(type, ==, KMX_KEY_TYPE_ED25519);
		g_assert_true(g_bytes_equal(back, spki));
		kmx_ssh_put_cstring(odd, "ssh-ed25519\nevil");
		kmx_ssh_put_string(odd, raw, sizeof(raw));
		odd_blob = g_byte_array_free_to_bytes(g_steal_pointer(&odd));
		g_assert_null(kmx_ssh_authorized_key(odd_blob, NULL));
		g_assert_null(kmx_ssh_public_key_to_spki(odd_blob, NULL, &error));
		g_assert_error(error, KMX_ERROR, KMX_ERROR_NOT_SUPPORTED);
		g_clear_error(&error);
	}

	g_assert_null(kmx_ssh_public_key_from_spki(junk, NULL, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	g_assert_null(
	    kmx_ssh_signature_new(KMX_KEY_TYPE_ED25519, KMX_MECHANISM_ED25519, short_sig, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_FAILED);
	g_clear_error(&error);

	/* an Ed25519 key whose public half is a byte short */
	kmx_ssh_put_cstring(priv, "ssh-ed25519");
	kmx_ssh_put_string(priv, raw, 31);
	kmx_ssh_reader_init(&r, priv->data, priv->len);
	pem = kmx_ssh_private_key_to_pem(&r, &comment, &error);
	g_assert_null(pem);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_assert_cmpuint(r.left, ==, priv->len);
	g_clear_error(&error);
	/* a whole one, but no comment */
	g_byte_array_set_size(priv, 0);
	kmx_ssh_put_cstring(priv, "ssh-ed25519");
	kmx_ssh_put_string(priv, raw, 32);
	kmx_ssh_put_u32(priv, 64);
	g_byte_array_append(priv, raw, 32);
	g_byte_array_append(priv, raw, 32);
	kmx_ssh_reader_init(&r, priv->data, priv->len);
	g_assert_null(kmx_ssh_private_key_to_pem(&r, &comment, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	/* with its comment: an OpenSSH key file */
	kmx_ssh_put_cstring(priv, "a comment");
	kmx_ssh_reader_init(&r, priv->data, priv->len);
	pem = kmx_ssh_private_key_to_pem(&r, &comment, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(comment, ==, "a comment");
	g_assert_cmpuint(r.left, ==, 0);
	g_assert_true(
	    g_str_has_prefix(kmx_secret_get_string(pem), "-----BEGIN OPENSSH PRIVATE KEY-----\n"));
	g_clear_pointer(&comment, g_free);
	/* a type keymux has not */
	g_byte_array_set_size(priv, 0);
	kmx_ssh_put_cstring(priv, "ssh-dss");
	kmx_ssh_reader_init(&r, priv->data, priv->len);
	g_assert_null(kmx_ssh_private_key_to_pem(&r, &comment, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_NOT_SUPPORTED);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/kmx/secret/basics", test_secret_basics);
	g_test_add_func("/kmx/secret/bytes-keep-memory", test_secret_bytes_keep_memory);
	g_test_add_func("/kmx/secret/wiped-on-truncate", test_secret_wiped_on_truncate);
	g_test_add_func("/kmx/secret/new-take", test_secret_new_take);
	g_test_add_func("/kmx/secret/new-take-whole-block", test_secret_new_take_whole_block);
	g_test_add_func("/kmx/secret/secure-heap", test_secure_heap);
	g_test_add_func("/kmx/secret/small-ones-share-locked-memory",
			test_secret_small_ones_share_locked_memory);
	g_test_add_func("/kmx/algorithm/names", test_algorithm_names);
	g_test_add_func("/kmx/algorithm/usage", test_algorithm_usage);
	g_test_add_func("/kmx/algorithm/usage-list", test_algorithm_usage_list);
	g_test_add_func("/kmx/error/dbus-names", test_error_dbus_names);
	g_test_add_func("/kmx/error/normalize", test_error_normalize);
	g_test_add_func("/kmx/common/spki/rsa", test_spki_rsa);
	g_test_add_func("/kmx/common/spki/ec", test_spki_ec);
	g_test_add_func("/kmx/common/spki/raw", test_spki_raw);
	g_test_add_func("/kmx/common/spki/parse-peer", test_spki_parse_peer);
	g_test_add_func("/kmx/common/digest-info", test_digest_info);
	g_test_add_func("/kmx/common/ecdsa-signature", test_ecdsa_signature);
	g_test_add_func("/kmx/common/ecdsa-digest-fit", test_ecdsa_digest_fit);
	g_test_add_func("/kmx/common/base64", test_base64);
	g_test_add_func("/kmx/common/pem", test_pem);
	g_test_add_func("/kmx/common/ssh/wire", test_ssh_wire);
	g_test_add_func("/kmx/common/ssh/keys", test_ssh_keys);
	return g_test_run();
}
