/* keymux: unit tests of what the daemon and the CLI share */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "kmx-algorithm.h"
#include "kmx-error.h"
#include "kmx-secret.h"

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

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/kmx/secret/basics", test_secret_basics);
	g_test_add_func("/kmx/secret/bytes-keep-memory", test_secret_bytes_keep_memory);
	g_test_add_func("/kmx/secret/wiped-on-truncate", test_secret_wiped_on_truncate);
	g_test_add_func("/kmx/secret/small-ones-share-locked-memory",
			test_secret_small_ones_share_locked_memory);
	g_test_add_func("/kmx/algorithm/names", test_algorithm_names);
	g_test_add_func("/kmx/algorithm/usage", test_algorithm_usage);
	g_test_add_func("/kmx/error/dbus-names", test_error_dbus_names);
	g_test_add_func("/kmx/error/normalize", test_error_normalize);
	return g_test_run();
}
