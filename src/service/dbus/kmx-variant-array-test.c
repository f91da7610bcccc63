/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: unit tests of the array written serialised (kmx-variant-array.c)
 * and of GetManagedObjects' reply made with it: byte for byte what GLib's
 * GVariantBuilder makes of the same elements */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "kmx-dbus-private.h"
#include "kmx-executor.h"

/* the bytes of @ours are exactly GLib's serialisation of @ref */
static void
assert_same_bytes(GVariant *ours, GVariant *ref)
{
	g_autoptr(GVariant) untrusted = NULL;

	g_assert_cmpstr(g_variant_get_type_string(ours), ==, g_variant_get_type_string(ref));
	g_assert_cmpmem(g_variant_get_data(ours),
			g_variant_get_size(ours),
			g_variant_get_data(ref),
			g_variant_get_size(ref));
	/* and GLib, reading them as from a stranger, finds them normal */
	untrusted = g_variant_ref_sink(g_variant_new_from_data(g_variant_get_type(ours),
							       g_variant_get_data(ours),
							       g_variant_get_size(ours),
							       FALSE,
							       NULL,
							       NULL));
	g_assert_true(g_variant_is_normal_form(untrusted));
	g_assert_true(g_variant_equal(untrusted, ref));
}

/* element @i of an array of @type: sizes vary, so padding and the
 * offsets do; @big makes the strings long (4-byte offsets) */
static GVariant *
element_new(const char *type, guint i, gboolean big)
{
	g_autofree char *s = g_strnfill((i * 7) % 13 + (big ? 40 : 0), 'a' + i % 26);

	if (g_str_equal(type, "s"))
		return g_variant_new_string(s);
	if (g_str_equal(type, "ay"))
		return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, s, strlen(s), 1);
	if (g_str_equal(type, "(ns)"))
		return g_variant_new("(ns)", (gint16)i, s);
	if (g_str_equal(type, "(si)"))
		return g_variant_new("(si)", s, (gint32)i);
	if (g_str_equal(type, "{sv}"))
		return g_variant_new("{sv}",
				     s,
				     i % 2 ? g_variant_new_uint64(i) : g_variant_new_string(s));
	g_assert_not_reached();
}

static void
test_array_types(void)
{
	/* alignment 1, 1, 2, 4 and 8 */
	const char *types[] = {"s", "ay", "(ns)", "(si)", "{sv}"};
	/* 0, 1, 2 and 4-byte framing offsets */
	const guint counts[] = {0, 1, 2, 3, 17, 300, 3000};

	for (guint t = 0; t < G_N_ELEMENTS(types); t++) {
		for (guint c = 0; c < G_N_ELEMENTS(counts); c++) {
			for (guint big = 0; big < 2; big++) {
				g_autoptr(GVariantType) et = g_variant_type_new(types[t]);
				g_autoptr(GVariantType) at = g_variant_type_new_array(et);
				KmxVariantArray *a = kmx_variant_array_new(et);
				KmxVariantArray *b = kmx_variant_array_new(et);
				g_autoptr(GVariant) ours = NULL;
				g_autoptr(GVariant) ours_tuple = NULL;
				g_autoptr(GVariant) ref = NULL;
				g_autoptr(GVariant) ref_tuple = NULL;
				GVariantBuilder builder;

				g_variant_builder_init(&builder, at);
				for (guint i = 0; i < counts[c]; i++) {
					GVariant *e =
					    g_variant_ref_sink(element_new(types[t], i, big));

					g_variant_builder_add_value(&builder, e);
					kmx_variant_array_append(a, e);
					/* a floating element is taken */
					kmx_variant_array_append(b, element_new(types[t], i, big));
					g_variant_unref(e);
				}
				ref = g_variant_ref_sink(g_variant_builder_end(&builder));
				ref_tuple = g_variant_ref_sink(g_variant_new_tuple(&ref, 1));
				ours = kmx_variant_array_end(a, FALSE);
				ours_tuple = kmx_variant_array_end(b, TRUE);
				g_assert_false(g_variant_is_floating(ours));
				assert_same_bytes(ours, ref);
				assert_same_bytes(ours_tuple, ref_tuple);
				g_assert_cmpuint(g_variant_n_children(ours), ==, counts[c]);
			}
		}
	}
}

static void
test_array_offset_sizes(void)
{
	g_autoptr(GVariantType) et = g_variant_type_new("s");
	KmxVariantArray *a;
	g_autoptr(GVariant) v = NULL;
	const guint8 *data;
	gsize size;

	/* "ab" and "c" (with their nuls), then 1-byte ends 3 and 5 */
	a = kmx_variant_array_new(et);
	kmx_variant_array_append(a, g_variant_new_string("ab"));
	kmx_variant_array_append(a, g_variant_new_string("c"));
	v = kmx_variant_array_end(a, FALSE);
	data = g_variant_get_data(v);
	size = g_variant_get_size(v);
	g_assert_cmpmem(data, size, "ab\0c\0\3\5", 7);
	g_clear_pointer(&v, g_variant_unref);

	/* 253 bytes of strings + 2 offsets: 255 still fits 1-byte offsets,
	 * one more byte does not (2-byte offsets) */
	for (guint extra = 0; extra < 2; extra++) {
		g_autofree char *s = g_strnfill(200 + extra, 'x');
		g_autofree char *t = g_strnfill(51, 'y');
		g_autoptr(GVariant) first = NULL;

		a = kmx_variant_array_new(et);
		kmx_variant_array_append(a, g_variant_new_string(s));
		kmx_variant_array_append(a, g_variant_new_string(t));
		v = kmx_variant_array_end(a, FALSE);
		g_assert_cmpuint(g_variant_get_size(v), ==, 253 + extra + (extra ? 4 : 2));
		first = g_variant_get_child_value(v, 0);
		g_assert_cmpstr(g_variant_get_string(first, NULL), ==, s);
		g_clear_pointer(&v, g_variant_unref);
	}
}

/* what the writer cannot do it refuses, and the array stays whole */
static void
test_array_refused(void)
{
	g_autoptr(GVariantType) fixed = g_variant_type_new("(iy)");
	g_autoptr(GVariantType) et = g_variant_type_new("s");
	KmxVariantArray *a;
	g_autoptr(GVariant) v = NULL;
	g_autoptr(GVariant) first = NULL;

	/* fixed-size elements have no framing offsets */
	g_test_expect_message("keymux", G_LOG_LEVEL_CRITICAL, "*!fixed*");
	g_assert_null(kmx_variant_array_new(fixed));
	g_test_assert_expected_messages();

	/* an element of another type is not written */
	a = kmx_variant_array_new(et);
	kmx_variant_array_append(a, g_variant_new_string("kept"));
	g_test_expect_message("keymux", G_LOG_LEVEL_CRITICAL, "*g_variant_is_of_type*");
	kmx_variant_array_append(a, g_variant_new_int32(7));
	g_test_assert_expected_messages();
	v = kmx_variant_array_end(a, FALSE);
	g_assert_cmpuint(g_variant_n_children(v), ==, 1);
	first = g_variant_get_child_value(v, 0);
	g_assert_cmpstr(g_variant_get_string(first, NULL), ==, "kept");
	g_assert_cmpmem(g_variant_get_data(v), g_variant_get_size(v), "kept\0\5", 6);
}

/* ---- GetManagedObjects of real soft-key stores ------------------------------ */

typedef struct {
	char *dir;
	char *data;
	char *conf;
} Fixture;

static void
fixture_set_up(Fixture *f, gconstpointer softkey)
{
	g_autofree char *text = NULL;

	f->dir = g_dir_make_tmp("kmx-variant-array-test-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	f->data = g_build_filename(f->dir, "data", NULL);
	f->conf = g_build_filename(f->dir, "keymux.conf", NULL);
	text = g_strdup_printf("[backends]\nsoftkey=%s\ntest=false\ncard=false\ntpm=false\n",
			       (const char *)softkey);
	g_assert_true(g_file_set_contents(f->conf, text, -1, NULL));
}

static void
remove_tree(const char *path)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *child = g_build_filename(path, name, NULL);

		if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
		    !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
			remove_tree(child);
		else
			g_assert_cmpint(g_remove(child), ==, 0);
	}
	g_assert_cmpint(g_rmdir(path), ==, 0);
}

static void
fixture_tear_down(Fixture *f, gconstpointer softkey)
{
	remove_tree(f->dir);
	g_free(f->conf);
	g_free(f->data);
	g_free(f->dir);
}

static KmxManager *
manager_new(Fixture *f)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxContext) context = kmx_context_new(f->data, f->conf, &error);
	KmxManager *manager;

	g_assert_no_error(error);
	manager = kmx_manager_new(context, &error);
	g_assert_no_error(error);
	return manager;
}

/* @n keys in the soft-key store @store, as GenerateKey writes them; FALSE
 * if the soft-key backend is not built */
static gboolean
seed(Fixture *f, const char *store, guint n)
{
	g_autofree char *store_dir = g_build_filename(f->data, "softkey", store, NULL);
	g_autofree char *id = g_strconcat("softkey:", store, NULL);
	g_autoptr(KmxManager) manager = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	KmxDevice *device = NULL;

	g_assert_cmpint(g_mkdir_with_parents(store_dir, 0700), ==, 0);
	manager = manager_new(f);
	devices = kmx_manager_get_devices(manager);
	for (guint i = 0; i < devices->len; i++)
		if (g_str_equal(kmx_device_get_id(devices->pdata[i]), id))
			device = devices->pdata[i];
	if (device == NULL)
		return FALSE;
	for (guint i = 0; i < n; i++) {
		const KmxOptions options = {.interactive = TRUE};
		g_autofree char *label = g_strdup_printf("key %u of %s", i, store);
		g_autoptr(GError) error = NULL;
		g_autoptr(KmxKey) key =
		    kmx_device_generate_key(device,
					    i % 3 ? KMX_KEY_TYPE_ED25519 : KMX_KEY_TYPE_ECDSA_P256,
					    label,
					    &options,
					    NULL,
					    NULL,
					    &error);
		g_assert_no_error(error);
		g_assert_nonnull(key);
	}
	return TRUE;
}

static void
add_to_builder(GVariant *entry, gpointer user_data)
{
	g_variant_builder_add_value(user_data, entry);
}

static gint
compare_strings(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* each device's Keys (written by the export) is what GLib makes of the
 * sorted paths of the keys the reply lists under it */
static void
assert_keys(GVariant *objects, guint n_devices_expected)
{
	GVariantIter devices;
	const char *device_path;
	GVariant *interfaces;
	guint n_devices = 0;

	g_variant_iter_init(&devices, objects);
	while (g_variant_iter_next(&devices, "{&o@a{sa{sv}}}", &device_path, &interfaces)) {
		G_GNUC_UNUSED g_autoptr(GVariant) owned = interfaces;
		g_autoptr(GVariant) props = NULL;
		g_autoptr(GVariant) keys = NULL;
		g_autoptr(GVariant) ref = NULL;
		g_autoptr(GPtrArray) paths = g_ptr_array_new();
		g_autofree char *prefix = g_strconcat(device_path, "/", NULL);
		GVariantIter all;
		const char *path;

		props = g_variant_lookup_value(interfaces,
					       "org.keymux.Keystore1.Device",
					       G_VARIANT_TYPE_VARDICT);
		if (props == NULL)
			continue;
		n_devices++;
		keys = g_variant_lookup_value(props, "Keys", G_VARIANT_TYPE("ao"));
		g_assert_nonnull(keys);
		g_variant_iter_init(&all, objects);
		while (g_variant_iter_next(&all, "{&o@a{sa{sv}}}", &path, NULL))
			if (g_str_has_prefix(path, prefix))
				g_ptr_array_add(paths, (gpointer)path);
		g_ptr_array_sort(paths, compare_strings);
		g_ptr_array_add(paths, NULL);
		ref = g_variant_ref_sink(g_variant_new_objv((const char *const *)paths->pdata, -1));
		assert_same_bytes(keys, ref);
	}
	g_assert_cmpuint(n_devices, ==, n_devices_expected);
}

/* GetManagedObjects' reply as it is sent, against the same entries in a
 * GVariantBuilder */
static void
assert_managed_objects(Fixture *f, guint n_devices, guint n_objects)
{
	g_autoptr(KmxManager) manager = manager_new(f);
	g_autoptr(KmxDBusService) service = NULL;
	g_autoptr(GVariant) ours = NULL;
	g_autoptr(GVariant) ref = NULL;
	g_autoptr(GVariant) objects = NULL;
	GVariantBuilder b;

	service = kmx_dbus_service_new(manager);
	ours = kmx_dbus_service_build_managed_objects(service);
	g_variant_builder_init(&b, G_VARIANT_TYPE("a{oa{sa{sv}}}"));
	kmx_dbus_service_foreach_managed_object(service, add_to_builder, &b);
	ref = g_variant_ref_sink(g_variant_new("(a{oa{sa{sv}}})", &b));
	assert_same_bytes(ours, ref);
	objects = g_variant_get_child_value(ours, 0);
	g_assert_cmpuint(g_variant_n_children(objects), ==, n_objects);
	assert_keys(objects, n_devices);
}

static void
test_managed_objects_no_device(Fixture *f, gconstpointer softkey)
{
	assert_managed_objects(f, 0, 0);
}

static void
test_managed_objects(Fixture *f, gconstpointer softkey)
{
	const guint counts[] = {0, 1, 2, 3};

	/* the login store and a second one, "work", with as many keys each */
	for (guint c = 0; c < G_N_ELEMENTS(counts); c++) {
		guint n = c > 0 ? counts[c] - counts[c - 1] : 0;

		if (!seed(f, "login", n) || !seed(f, "work", n)) {
			g_test_skip("the soft-key backend is not built");
			return;
		}
		assert_managed_objects(f, 2, 2 + 2 * counts[c]);
	}
}

static void
test_managed_objects_many(Fixture *f, gconstpointer softkey)
{
	if (!seed(f, "login", 200) || !seed(f, "work", 100)) {
		g_test_skip("the soft-key backend is not built");
		return;
	}
	assert_managed_objects(f, 2, 2 + 300);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* this thread owns the model */
	kmx_core_mark_main_thread();
	g_test_add_func("/kmx/variant-array/types", test_array_types);
	g_test_add_func("/kmx/variant-array/offset-sizes", test_array_offset_sizes);
	g_test_add_func("/kmx/variant-array/refused", test_array_refused);
	g_test_add("/kmx/variant-array/managed-objects-no-device",
		   Fixture,
		   "false",
		   fixture_set_up,
		   test_managed_objects_no_device,
		   fixture_tear_down);
	g_test_add("/kmx/variant-array/managed-objects",
		   Fixture,
		   "true",
		   fixture_set_up,
		   test_managed_objects,
		   fixture_tear_down);
	g_test_add("/kmx/variant-array/managed-objects-300",
		   Fixture,
		   "true",
		   fixture_set_up,
		   test_managed_objects_many,
		   fixture_tear_down);
	return g_test_run();
}
