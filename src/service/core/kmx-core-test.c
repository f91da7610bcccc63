/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: unit tests of the service core: executors, files, context,
 * the device and key base classes */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kmx-context.h"
#include "kmx-device-cache.h"
#include "kmx-device.h"
#include "kmx-error.h"
#include "kmx-executor.h"
#include "kmx-file.h"
#include "kmx-key-table.h"
#include "kmx-key.h"
#include "kmx-options.h"

/* ---- executors ---- */

typedef struct {
	GMutex mutex;
	GPtrArray *order;
	gint running;
	gint max_running;
	guint done;
} ExecState;

static void
exec_work(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
	ExecState *st = *(ExecState **)g_task_get_task_data(task);
	int n = g_atomic_int_add(&st->running, 1) + 1;

	g_mutex_lock(&st->mutex);
	st->max_running = MAX(st->max_running, n);
	g_ptr_array_add(st->order, GINT_TO_POINTER(g_task_get_priority(task)));
	g_mutex_unlock(&st->mutex);
	g_usleep(20000);
	g_atomic_int_add(&st->running, -1);
	g_task_return_boolean(task, TRUE);
}

static void
exec_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	ExecState *st = user_data;
	g_assert_true(g_task_propagate_boolean(G_TASK(res), NULL));
	st->done++;
}

static void
run_executor(KmxExecutor *ex, ExecState *st, guint n, GCancellable *cancellable)
{
	for (guint i = 0; i < n; i++) {
		g_autoptr(GTask) task = g_task_new(NULL, cancellable, exec_done, st);
		ExecState **p = g_new(ExecState *, 1);
		*p = st;
		g_task_set_task_data(task, p, g_free);
		g_task_set_priority(task, (int)i);
		kmx_executor_run(ex, task, exec_work);
	}
}

static void
test_executor_serial(void)
{
	g_autoptr(KmxExecutor) ex = kmx_executor_new(KMX_EXECUTOR_SERIAL, 8, NULL);
	ExecState st = {0};

	g_mutex_init(&st.mutex);
	st.order = g_ptr_array_new();
	run_executor(ex, &st, 6, NULL);
	while (st.done < 6)
		g_main_context_iteration(NULL, TRUE);
	/* one at a time, in the order they came */
	g_assert_cmpint(st.max_running, ==, 1);
	for (guint i = 0; i < 6; i++)
		g_assert_cmpint(GPOINTER_TO_INT(st.order->pdata[i]), ==, (int)i);
	g_ptr_array_unref(st.order);
	g_mutex_clear(&st.mutex);
}

static void
test_executor_pool(void)
{
	g_autoptr(KmxExecutor) ex = kmx_executor_new(KMX_EXECUTOR_POOL, 4, NULL);
	ExecState st = {0};

	g_mutex_init(&st.mutex);
	st.order = g_ptr_array_new();
	run_executor(ex, &st, 8, NULL);
	while (st.done < 8)
		g_main_context_iteration(NULL, TRUE);
	/* the pool really runs work side by side */
	g_assert_cmpint(st.max_running, >, 1);
	g_assert_cmpint(st.max_running, <=, 4);
	g_ptr_array_unref(st.order);
	g_mutex_clear(&st.mutex);
}

static void
cancelled_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GError) error = NULL;
	gboolean *done = user_data;

	g_assert_false(g_task_propagate_boolean(G_TASK(res), &error));
	/* GTask reports its own cancellation; replies map it to ours */
	kmx_error_normalize(&error);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_CANCELLED);
	*done = TRUE;
}

static void
never_run(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
	g_assert_not_reached();
}

static void
test_executor_cancelled_before_start(void)
{
	g_autoptr(KmxExecutor) ex = kmx_executor_new(KMX_EXECUTOR_SERIAL, 1, NULL);
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	g_autoptr(GTask) task = NULL;
	gboolean done = FALSE;

	g_cancellable_cancel(cancellable);
	task = g_task_new(NULL, cancellable, cancelled_done, &done);
	kmx_executor_run(ex, task, never_run);
	while (!done)
		g_main_context_iteration(NULL, TRUE);
}

/* ---- files ---- */

static void
test_file_atomic_write(void)
{
	g_autofree char *dir = g_dir_make_tmp("kmx-core-test-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "f", NULL);
	g_autofree char *content = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GDir) d = NULL;
	GStatBuf st;

	g_assert_true(kmx_file_write_atomic(path, "one", 3, 0600, &error));
	g_assert_no_error(error);
	g_assert_true(kmx_file_write_atomic(path, "two!", 4, 0600, &error));
	g_assert_true(g_file_get_contents(path, &content, NULL, NULL));
	g_assert_cmpstr(content, ==, "two!");
	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0600);
	/* no temp file is left behind */
	d = g_dir_open(dir, 0, NULL);
	g_assert_cmpstr(g_dir_read_name(d), ==, "f");
	g_assert_null(g_dir_read_name(d));

	g_assert_true(kmx_file_remove_durable(path, &error));
	g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
	g_assert_true(kmx_file_remove_durable(path, &error)); /* already gone: fine */
	g_rmdir(dir);
}

static void
test_file_write_into_missing_dir(void)
{
	g_autoptr(GError) error = NULL;
	g_assert_false(kmx_file_write_atomic("/nonexistent-kmx/dir/f", "x", 1, 0600, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "/nonexistent-kmx/dir/f"));
}

/* ---- context ---- */

static void
test_context_config(void)
{
	g_autofree char *dir = g_dir_make_tmp("kmx-core-test-XXXXXX", NULL);
	g_autofree char *data = g_build_filename(dir, "data", NULL);
	g_autofree char *conf = g_build_filename(dir, "keymux.conf", NULL);
	g_autofree char *backend_dir = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxContext) ctx = NULL;
	GStatBuf st;

	g_assert_true(g_file_set_contents(conf,
					  "[daemon]\nidle-lock-timeout=30\nlock-on-suspend=false\n"
					  "[backends]\nsoftkey=notabool\n",
					  -1,
					  NULL));
	ctx = kmx_context_new(data, conf, &error);
	g_assert_no_error(error);
	g_assert_cmpint(g_stat(data, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0700);
	g_assert_cmpint(kmx_context_get_int(ctx, "daemon", "idle-lock-timeout", 0), ==, 30);
	g_assert_false(kmx_context_get_boolean(ctx, "daemon", "lock-on-suspend", TRUE));
	g_assert_cmpint(kmx_context_get_int(ctx, "daemon", "missing", 7), ==, 7);
	/* a bad value warns and falls back */
	g_test_expect_message("keymux", G_LOG_LEVEL_WARNING, "*softkey*");
	g_assert_true(kmx_context_get_boolean(ctx, "backends", "softkey", TRUE));
	g_test_assert_expected_messages();
	backend_dir = kmx_context_get_backend_dir(ctx, "softkey");
	g_assert_true(g_str_has_suffix(backend_dir, "/data/softkey"));
}

static void
test_context_bad_config(void)
{
	g_autofree char *dir = g_dir_make_tmp("kmx-core-test-XXXXXX", NULL);
	g_autofree char *conf = g_build_filename(dir, "keymux.conf", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxContext) ctx = NULL;

	g_assert_true(g_file_set_contents(conf, "this is [not a key file\n", -1, NULL));
	ctx = kmx_context_new(dir, conf, &error);
	g_assert_null(ctx);
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_assert_nonnull(strstr(error->message, conf));
}

/* ---- device and key base classes ---- */

static void
count_notify(GObject *obj, GParamSpec *pspec, guint *n)
{
	(*n)++;
}

static gpointer
set_flags_thread(gpointer data)
{
	kmx_device_change_flags(data, KMX_DEVICE_FLAG_LOCKED, 0);
	return NULL;
}

static void
test_device_flags_from_thread(void)
{
	g_autoptr(KmxDevice)
	    dev = g_object_new(KMX_TYPE_DEVICE, "id", "test:0", "backend", "test", NULL);
	guint notified = 0;
	GThread *t;

	g_assert_true(kmx_device_is_available(dev));
	g_assert_false(kmx_device_is_locked(dev));
	g_signal_connect(dev, "notify::flags", G_CALLBACK(count_notify), &notified);
	kmx_core_mark_main_thread();
	t = g_thread_new("flags", set_flags_thread, dev);
	g_thread_join(t);
	/* a change reported off the main thread is applied on it, and only
	 * there: until then the main thread sees the state it had */
	g_assert_true(kmx_device_has_pending_state(dev));
	g_assert_false(kmx_device_is_locked(dev));
	g_assert_cmpuint(notified, ==, 0);
	while (notified == 0)
		g_main_context_iteration(NULL, TRUE);
	g_assert_true(kmx_device_is_locked(dev));
	g_assert_false(kmx_device_has_pending_state(dev));
	g_assert_cmpuint(notified, ==, 1);
	/* a reply path applies it at once, before the idle callback */
	t = g_thread_new("flags", set_flags_thread, dev);
	g_thread_join(t);
	kmx_device_flush_state(dev);
	/* no change, no notification */
	kmx_device_change_flags(dev, KMX_DEVICE_FLAG_LOCKED, 0);
	while (g_main_context_iteration(NULL, FALSE))
		;
	g_assert_cmpuint(notified, ==, 1);
}

static void
test_device_keys(void)
{
	g_autoptr(KmxDevice)
	    dev = g_object_new(KMX_TYPE_DEVICE, "id", "test:0", "backend", "test", NULL);
	g_autoptr(GBytes) spki = g_bytes_new_static("not really DER", 14);
	g_autofree char *want = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, spki);
	g_autoptr(KmxKey) key = g_object_new(KMX_TYPE_KEY,
					     "device",
					     dev,
					     "public-key",
					     spki,
					     "key-type",
					     (guint)KMX_KEY_TYPE_ED25519,
					     "label",
					     "mine",
					     NULL);
	g_autoptr(KmxKey)
	    same = g_object_new(KMX_TYPE_KEY, "device", dev, "public-key", spki, NULL);
	guint changed = 0;
	g_autoptr(GError) error = NULL;

	g_assert_cmpstr(kmx_key_get_id(key), ==, want);
	g_assert_cmpint(kmx_key_get_usage(key), ==, KMX_KEY_USAGE_SIGN);
	g_assert_true(kmx_key_get_device(key) == dev);
	g_signal_connect(dev, "keys-changed", G_CALLBACK(count_notify), &changed);
	kmx_device_add_key(dev, key);
	kmx_device_add_key(dev, same); /* same id: not added twice */
	g_assert_cmpuint(kmx_device_get_keys(dev)->len, ==, 1);
	g_assert_cmpuint(changed, ==, 1);
	g_assert_true(kmx_device_find_key(dev, want) == key);
	/* a base key can do nothing by itself */
	g_assert_null(kmx_key_sign(key, KMX_MECHANISM_ED25519, spki, FALSE, NULL, NULL, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_NOT_SUPPORTED);
	kmx_device_remove_key(dev, key);
	g_assert_cmpuint(kmx_device_get_keys(dev)->len, ==, 0);
	g_assert_null(kmx_device_find_key(dev, want));
	g_assert_cmpuint(changed, ==, 2);
}

static void
count_label_changed(KmxDevice *device, KmxKey *key, gpointer data)
{
	KmxKey **last = data;
	*last = key;
	/* the number of calls, kept on the device */
	g_object_set_data(
	    G_OBJECT(device),
	    "calls",
	    GUINT_TO_POINTER(GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(device), "calls")) + 1));
}

/* one handler on the device hears every key's new label, and only a change */
static void
test_device_key_label_changed(void)
{
	g_autoptr(KmxDevice)
	    dev = g_object_new(KMX_TYPE_DEVICE, "id", "test:0", "backend", "test", NULL);
	g_autoptr(GBytes) spki = g_bytes_new_static("not really DER", 14);
	g_autoptr(KmxKey) key =
	    g_object_new(KMX_TYPE_KEY, "device", dev, "public-key", spki, "label", "old", NULL);
	g_autoptr(KmxKey) orphan = g_object_new(KMX_TYPE_KEY, "public-key", spki, NULL);
	g_autoptr(KmxKey) fresh = NULL;
	KmxKey *last = NULL;

	kmx_device_add_key(dev, key);
	g_signal_connect(dev, "key-label-changed", G_CALLBACK(count_label_changed), &last);
	/* a key made with a label has not changed it */
	fresh = g_object_new(KMX_TYPE_KEY, "device", dev, "public-key", spki, "label", "x", NULL);
	g_assert_null(g_object_get_data(G_OBJECT(dev), "calls"));
	kmx_key_set_label(key, "new");
	g_assert_true(last == key);
	g_assert_cmpuint(GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(dev), "calls")), ==, 1);
	kmx_key_set_label(key, "new"); /* the same: no signal */
	g_assert_cmpuint(GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(dev), "calls")), ==, 1);
	kmx_key_set_label(orphan, "no device"); /* nobody to tell, no crash */
	g_assert_cmpuint(GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(dev), "calls")), ==, 1);
}

/* the key-id hash: the same for the same string wherever it lives, any
 * string hashes (short ones, ones as long as a word), and ids spread */
static void
test_key_id_hash(void)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
	g_autoptr(GHashTable)
	    table = g_hash_table_new_full(kmx_key_id_hash, g_str_equal, g_free, NULL);
	const char *shorts[] = {"", "a", "0123456789abcdef", "0123456789abcdef0123456789abcde"};
	const guint n = 20000;

	for (guint i = 0; i < G_N_ELEMENTS(shorts); i++) {
		g_autofree char *copy = g_strdup(shorts[i]);
		g_assert_cmpuint(kmx_key_id_hash(shorts[i]), ==, kmx_key_id_hash(copy));
		g_assert_cmpuint(kmx_key_id_hash(shorts[i]), ==, g_str_hash(shorts[i]));
	}
	for (guint i = 0; i < n; i++) {
		guint8 spki[8];
		g_autoptr(GBytes) b = NULL;
		g_autofree char *id = NULL;
		g_autofree char *copy = NULL;

		memcpy(spki, &i, sizeof(i));
		memset(spki + sizeof(i), 0x5a, sizeof(spki) - sizeof(i));
		b = g_bytes_new(spki, sizeof(spki));
		id = kmx_key_compute_id(b);
		copy = g_strdup(id);
		g_assert_cmpuint(kmx_key_id_hash(id), ==, kmx_key_id_hash(copy));
		/* only the first 32 characters count, so the rest may differ */
		copy[40] = copy[40] == 'a' ? 'b' : 'a';
		g_assert_cmpuint(kmx_key_id_hash(id), ==, kmx_key_id_hash(copy));
		g_hash_table_add(seen, GUINT_TO_POINTER(kmx_key_id_hash(id)));
		g_assert_true(g_hash_table_insert(table, g_steal_pointer(&id), NULL));
	}
	/* 20,000 random 32-bit values: a few collisions at most */
	g_assert_cmpuint(g_hash_table_size(seen), >=, n - 20);
	g_assert_cmpuint(g_hash_table_size(table), ==, n);
}

/* a key with this id (any string; key ids are hex, but the table must not
 * care) */
static KmxKey *
table_key_new(const char *id)
{
	return g_object_new(KMX_TYPE_KEY, "id", id, NULL);
}

/* the key table against a GHashTable doing the same, over thousands of
 * random inserts, replacements, removals and walks that remove; many of the
 * ids share their first 32 characters, so they hash alike and probe past
 * each other and past tombstones; the table holds and drops references */
static void
test_key_table(void)
{
	g_autoptr(GHashTable)
	    model = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_object_unref);
	g_autoptr(KmxKeyTable) table = kmx_key_table_new(TRUE);
	g_autoptr(GRand) rand = g_rand_new_with_seed(14);
	const guint n_ids = 3000;
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
	KmxKey *gone = table_key_new("gone");
	KmxKeyTableIter iter;
	KmxKey *key;
	guint walked;

	for (guint i = 0; i < n_ids; i++) {
		if (i % 3 == 0) /* one hash for all of these */
			g_ptr_array_add(ids, g_strdup_printf("%032d%032u", 0, i));
		else if (i % 3 == 1)
			g_ptr_array_add(ids, g_strdup_printf("%064u", i));
		else
			g_ptr_array_add(ids, g_strdup_printf("k%u", i));
	}
	g_assert_null(kmx_key_table_lookup(table, "anything"));
	g_object_add_weak_pointer(G_OBJECT(gone), (gpointer *)&gone);
	kmx_key_table_insert(table, gone);
	g_object_unref(gone);
	g_assert_nonnull(gone); /* held by the table */
	g_assert_true(kmx_key_table_remove(table, "gone"));
	g_assert_null(gone); /* and let go */
	g_assert_false(kmx_key_table_remove(table, "gone"));

	for (guint round = 0; round < 40000; round++) {
		const char *id = ids->pdata[g_rand_int_range(rand, 0, n_ids)];
		guint op = g_rand_int_range(rand, 0, 10);

		if (op < 6) {
			/* insert, or put a new key in place of one of the same id */
			g_autoptr(KmxKey) k = table_key_new(id);
			kmx_key_table_insert(table, k);
			g_hash_table_replace(model, g_strdup(id), g_object_ref(k));
		} else {
			g_assert_cmpint(kmx_key_table_remove(table, id),
					==,
					g_hash_table_remove(model, id));
		}
		if (round % 1000 == 0) {
			g_assert_cmpuint(kmx_key_table_size(table), ==, g_hash_table_size(model));
			for (guint i = 0; i < n_ids; i++)
				g_assert_true(kmx_key_table_lookup(table, ids->pdata[i]) ==
					      g_hash_table_lookup(model, ids->pdata[i]));
		}
	}

	/* a walk sees each key once; one that removes every other key */
	walked = 0;
	kmx_key_table_iter_init(&iter, table);
	while (kmx_key_table_iter_next(&iter, &key)) {
		g_assert_true(g_hash_table_lookup(model, kmx_key_get_id(key)) == key);
		if (walked++ % 2 == 0) {
			g_assert_true(g_hash_table_remove(model, kmx_key_get_id(key)));
			kmx_key_table_iter_remove(&iter);
		}
	}
	g_assert_cmpuint(walked, >, 1000);
	g_assert_cmpuint(kmx_key_table_size(table), ==, g_hash_table_size(model));
	for (guint i = 0; i < n_ids; i++)
		g_assert_true(kmx_key_table_lookup(table, ids->pdata[i]) ==
			      g_hash_table_lookup(model, ids->pdata[i]));
	/* the same key again changes nothing; a table that does not own its
	 * keys takes no reference */
	kmx_key_table_iter_init(&iter, table);
	g_assert_true(kmx_key_table_iter_next(&iter, &key));
	kmx_key_table_insert(table, key);
	g_assert_cmpuint(kmx_key_table_size(table), ==, g_hash_table_size(model));
	{
		g_autoptr(KmxKeyTable) borrowed = kmx_key_table_new(FALSE);
		g_autoptr(KmxKey) k = table_key_new("borrowed");

		kmx_key_table_insert(borrowed, k);
		g_assert_cmpuint(G_OBJECT(k)->ref_count, ==, 1);
		g_assert_true(kmx_key_table_lookup(borrowed, "borrowed") == k);
	}
	kmx_key_table_remove_all(table);
	g_assert_cmpuint(kmx_key_table_size(table), ==, 0);
	g_assert_null(kmx_key_table_lookup(table, ids->pdata[1]));
}

/* a key finds its device while the device lives, and knows when it is
 * gone, whether made with properties or with its facts, on any thread */
static gpointer
device_of_key_thread(gpointer key)
{
	return kmx_key_dup_device(key);
}

static void
test_key_device_gone(void)
{
	KmxDevice *dev = g_object_new(KMX_TYPE_DEVICE, "id", "test:0", "backend", "test", NULL);
	g_autoptr(GBytes) spki = g_bytes_new_static("not really DER", 14);
	KmxKeyFacts facts = {.device = dev, .public_key = spki, .key_type = KMX_KEY_TYPE_ED25519};
	g_autoptr(KmxKey) made = kmx_key_new_with_facts(KMX_TYPE_KEY, &facts);
	g_autoptr(KmxKey) with_props = g_object_new(KMX_TYPE_KEY, "device", dev, "id", "ab", NULL);
	g_autoptr(KmxDevice) from_thread = NULL;
	g_autoptr(KmxDevice) prop = NULL;

	kmx_device_add_key(dev, made);
	g_assert_true(kmx_key_get_device(made) == dev);
	g_assert_true(kmx_key_get_device(with_props) == dev);
	from_thread = g_thread_join(g_thread_new("key", device_of_key_thread, with_props));
	g_assert_true(from_thread == dev);
	g_clear_object(&from_thread);
	g_object_get(made, "device", &prop, NULL);
	g_assert_true(prop == dev);
	g_clear_object(&prop);

	g_object_add_weak_pointer(G_OBJECT(dev), (gpointer *)&dev);
	g_object_unref(dev);
	g_assert_null(dev); /* the keys did not keep it */
	g_assert_null(kmx_key_get_device(made));
	g_assert_null(kmx_key_dup_device(with_props));
	g_object_get(with_props, "device", &prop, NULL);
	g_assert_null(prop);
	g_assert_cmpstr(kmx_key_get_id(with_props), ==, "ab");
}

/* a key made from its facts is the key g_object_new() with the same
 * properties makes: the construct properties' defaults do not undo them */
static void
test_key_new_with_facts(void)
{
	g_autoptr(KmxDevice)
	    dev = g_object_new(KMX_TYPE_DEVICE, "id", "test:0", "backend", "test", NULL);
	g_autoptr(GBytes) spki = g_bytes_new_static("not really DER", 14);
	g_autofree char *want = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, spki);
	g_autofree char *upper = g_ascii_strup(want, -1);
	g_autofree char *label = NULL;
	g_autofree char *id = NULL;
	g_autoptr(GBytes) got_spki = NULL;
	g_autoptr(KmxKey) key = NULL;
	g_autoptr(KmxKey) computed = NULL;
	g_autoptr(KmxKey) plain = NULL;
	gboolean exportable = FALSE;
	KmxKeyFacts facts = {
	    .id = upper,
	    .device = dev,
	    .label = g_strdup("mine"),
	    .key_type = KMX_KEY_TYPE_ED25519,
	    .public_key = spki,
	    .exportable = TRUE,
	};
	KmxKeyFacts no_id = {.public_key = spki, .key_type = KMX_KEY_TYPE_RSA2048};
	KmxKey *last = NULL;

	g_signal_connect(dev, "key-label-changed", G_CALLBACK(count_label_changed), &last);
	key = kmx_key_new_with_facts(KMX_TYPE_KEY, &facts);
	g_assert_null(facts.label); /* taken */
	g_assert_cmpstr(kmx_key_get_id(key), ==, want);
	g_assert_true(kmx_key_get_device(key) == dev);
	g_assert_cmpint(kmx_key_get_key_type(key), ==, KMX_KEY_TYPE_ED25519);
	g_assert_cmpint(kmx_key_get_usage(key), ==, KMX_KEY_USAGE_SIGN); /* the type's */
	{
		g_autoptr(GBytes) back = kmx_key_dup_public_key(key);
		gsize len;

		g_assert_true(g_bytes_equal(back, spki));
		g_assert_true(kmx_key_get_public_key_data(key, &len) != NULL);
		g_assert_cmpuint(len, ==, g_bytes_get_size(spki));
	}
	g_assert_true(kmx_key_get_exportable(key));
	g_object_get(key,
		     "id",
		     &id,
		     "label",
		     &label,
		     "public-key",
		     &got_spki,
		     "exportable",
		     &exportable,
		     NULL);
	g_assert_cmpstr(id, ==, want);
	g_assert_cmpstr(label, ==, "mine");
	g_assert_true(g_bytes_equal(got_spki, spki));
	g_assert_true(exportable);
	g_assert_null(g_object_get_data(G_OBJECT(dev), "calls")); /* made, not changed */

	/* no id given: it is the public key's, as with properties */
	computed = kmx_key_new_with_facts(KMX_TYPE_KEY, &no_id);
	g_assert_cmpstr(kmx_key_get_id(computed), ==, want);
	g_assert_null(kmx_key_get_device(computed));
	g_assert_cmpint(kmx_key_get_usage(computed),
			==,
			kmx_key_type_get_usage(KMX_KEY_TYPE_RSA2048));
	g_assert_false(kmx_key_get_exportable(computed));

	/* the facts are used once: the next key made with properties has its own */
	plain = g_object_new(KMX_TYPE_KEY, "public-key", spki, "label", "other", NULL);
	g_assert_cmpstr(kmx_key_get_id(plain), ==, want);
	g_assert_null(kmx_key_get_device(plain));
	g_assert_false(kmx_key_get_exportable(plain));
	g_clear_pointer(&label, g_free);
	label = kmx_key_dup_label(plain);
	g_assert_cmpstr(label, ==, "other");
}

static gpointer
report_key_removed_thread(gpointer data)
{
	KmxKey *key = data;
	kmx_device_report_key_removed(kmx_key_get_device(key), kmx_key_get_id(key));
	kmx_device_report_key_removed(kmx_key_get_device(key), "no such key");
	return NULL;
}

static void
test_device_key_removed_from_thread(void)
{
	g_autoptr(KmxDevice)
	    dev = g_object_new(KMX_TYPE_DEVICE, "id", "test:0", "backend", "test", NULL);
	g_autoptr(GBytes) spki = g_bytes_new_static("not really DER", 14);
	g_autoptr(KmxKey) key = g_object_new(KMX_TYPE_KEY, "device", dev, "public-key", spki, NULL);
	guint changed = 0;
	GThread *t;

	kmx_core_mark_main_thread();
	kmx_device_add_key(dev, key);
	g_signal_connect(dev, "keys-changed", G_CALLBACK(count_notify), &changed);
	t = g_thread_new("keys", report_key_removed_thread, key);
	g_thread_join(t);
	/* the key list is the main thread's: still there until it applies */
	g_assert_true(kmx_device_has_pending_state(dev));
	g_assert_cmpuint(kmx_device_get_keys(dev)->len, ==, 1);
	kmx_device_flush_state(dev);
	g_assert_cmpuint(kmx_device_get_keys(dev)->len, ==, 0);
	g_assert_cmpuint(changed, ==, 1);
	while (g_main_context_iteration(NULL, FALSE))
		;
	g_assert_cmpuint(changed, ==, 1);
}

/* the last reference to a serial executor dropped on its own thread (a
 * device removed while its worker replies) must not wait for itself */
static void
unref_on_own_thread(gpointer data, gpointer user_data)
{
	KmxExecutor *ex = data;
	g_assert_true(kmx_executor_is_current(ex));
	kmx_executor_unref(ex);
}

static void
done_on_pool(gpointer data, gpointer user_data)
{
	g_atomic_int_set((gint *)data, 1);
}

static void
test_executor_unref_on_own_thread(void)
{
	if (g_test_subprocess()) {
		g_autoptr(GError) error = NULL;
		KmxExecutor *ex = kmx_executor_new(KMX_EXECUTOR_SERIAL, 1, &error);
		gint done = 0;

		g_assert_no_error(error);
		kmx_executor_run_func(ex, unref_on_own_thread, ex);
		/* the work ran and returned: another executor proves we go on */
		kmx_executor_run_func(kmx_executor_get_shared_pool(), done_on_pool, &done);
		while (!g_atomic_int_get(&done))
			g_usleep(1000);
		g_usleep(100000);
		return;
	}
	/* a deadlock shows as the subprocess timing out */
	g_test_trap_subprocess(NULL, 10 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
}

/* ---- options ---- */

static void
test_options_parse(void)
{
	KmxOptions o;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) good = g_variant_ref_sink(
	    g_variant_new_parsed("{'interactive': <false>, 'admin-secret': <'12345678'>}"));
	g_autoptr(GVariant)
	    unknown = g_variant_ref_sink(g_variant_new_parsed("{'colour': <'red'>}"));
	g_autoptr(GVariant)
	    wrong = g_variant_ref_sink(g_variant_new_parsed("{'exportable': <'yes'>}"));

	kmx_options_init(&o);
	g_assert_true(o.interactive);
	g_assert_true(kmx_options_parse(&o,
					good,
					KMX_OPTION_INTERACTIVE | KMX_OPTION_ADMIN_SECRET,
					"GenerateKey",
					&error));
	g_assert_no_error(error);
	g_assert_false(o.interactive);
	g_assert_cmpstr(kmx_secret_get_string(o.admin_secret), ==, "12345678");
	kmx_options_clear(&o);

	/* an option the method does not take */
	g_assert_false(kmx_options_parse(&o, good, KMX_OPTION_INTERACTIVE, "Sign", &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_assert_nonnull(strstr(error->message, "admin-secret"));
	g_clear_error(&error);
	kmx_options_clear(&o);
	g_assert_false(kmx_options_parse(&o, unknown, KMX_OPTION_INTERACTIVE, "Sign", &error));
	g_assert_nonnull(strstr(error->message, "colour"));
	g_clear_error(&error);
	kmx_options_clear(&o);
	/* the wrong type is named, never ignored */
	g_assert_false(kmx_options_parse(&o, wrong, KMX_OPTION_EXPORTABLE, "ImportKey", &error));
	g_assert_nonnull(strstr(error->message, "exportable"));
	g_assert_nonnull(strstr(error->message, "boolean"));
	g_clear_error(&error);
	kmx_options_clear(&o);
}

static void
test_options_slot(void)
{
	KmxOptions o;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    good = g_variant_ref_sink(g_variant_new_parsed("{'slot': <'aut'>, 'replace': <true>}"));
	g_autoptr(GVariant) wrong = g_variant_ref_sink(g_variant_new_parsed("{'slot': <2>}"));
	g_autoptr(GVariant)
	    wrong_replace = g_variant_ref_sink(g_variant_new_parsed("{'replace': <'yes'>}"));

	kmx_options_init(&o);
	g_assert_null(o.slot);
	g_assert_false(o.replace);
	g_assert_true(kmx_options_parse(&o,
					good,
					KMX_OPTION_SLOT | KMX_OPTION_REPLACE,
					"GenerateKey",
					&error));
	g_assert_no_error(error);
	g_assert_cmpstr(o.slot, ==, "aut");
	g_assert_true(o.replace);
	g_assert_true(o.given & KMX_OPTION_SLOT);
	kmx_options_clear(&o);
	g_assert_null(o.slot);
	g_assert_false(o.replace);

	/* only where a method takes them */
	g_assert_false(kmx_options_parse(&o, good, KMX_OPTION_INTERACTIVE, "Sign", &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	kmx_options_clear(&o);
	g_assert_false(kmx_options_parse(&o, wrong, KMX_OPTION_SLOT, "GenerateKey", &error));
	g_assert_nonnull(strstr(error->message, "'slot'"));
	g_assert_nonnull(strstr(error->message, "string"));
	g_clear_error(&error);
	kmx_options_clear(&o);
	g_assert_false(
	    kmx_options_parse(&o, wrong_replace, KMX_OPTION_REPLACE, "GenerateKey", &error));
	g_assert_nonnull(strstr(error->message, "'replace'"));
	g_assert_nonnull(strstr(error->message, "boolean"));
	kmx_options_clear(&o);
}

/* ---- the registration cache ---- */

static void
test_device_cache(void)
{
	g_autofree char *dir = g_dir_make_tmp("kmx-core-test-XXXXXX", NULL);
	g_autoptr(KmxDevice) dev = g_object_new(KMX_TYPE_DEVICE,
						"id",
						"card:42",
						"backend",
						"card",
						"label",
						"mine",
						NULL);
	g_autoptr(GBytes) spki = g_bytes_new_static("public key bytes", 16);
	g_autoptr(KmxKey) key = g_object_new(KMX_TYPE_KEY,
					     "device",
					     dev,
					     "public-key",
					     spki,
					     "key-type",
					     (guint)KMX_KEY_TYPE_ECDSA_P256,
					     "label",
					     "sig key",
					     "locator",
					     "slot:sig",
					     NULL);
	g_autoptr(GPtrArray) loaded = NULL;
	g_autoptr(GError) error = NULL;
	KmxDevice *back;
	KmxKey *back_key;
	const char *hostile[] = {
	    "",
	    "[device]\nid=softkey:login\n",
	    "[device]\nid=card:1\n[key 00]\nalgorithm=ed25519\npublic-key=AAAA\n",
	    "[device]\nid=card:1\n[key 0011]\nalgorithm=dsa\n",
	    "not a key file at all \x01\x02",
	};

	kmx_device_add_key(dev, key);
	kmx_device_change_flags(dev, KMX_DEVICE_FLAG_REGISTERED, 0);
	g_assert_true(kmx_device_cache_save(dir, dev, &error));
	g_assert_no_error(error);
	loaded = kmx_device_cache_load(dir, "card");
	g_assert_cmpuint(loaded->len, ==, 1);
	back = g_ptr_array_index(loaded, 0);
	g_assert_cmpstr(kmx_device_get_id(back), ==, "card:42");
	g_assert_true(kmx_device_is_registered(back));
	g_assert_false(kmx_device_is_available(back));
	g_assert_cmpuint(kmx_device_get_keys(back)->len, ==, 1);
	back_key = g_ptr_array_index(kmx_device_get_keys(back), 0);
	g_assert_cmpstr(kmx_key_get_id(back_key), ==, kmx_key_get_id(key));
	g_assert_cmpstr(kmx_key_get_locator(back_key), ==, "slot:sig");
	g_assert_cmpint(kmx_key_get_key_type(back_key), ==, KMX_KEY_TYPE_ECDSA_P256);
	{
		g_autoptr(GBytes) back_spki = kmx_key_dup_public_key(back_key);
		g_assert_true(g_bytes_equal(back_spki, spki));
	}
	/* another backend's device is not ours */
	g_assert_null(kmx_device_cache_parse("tpm", "[device]\nid=card:42\n", 18, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);

	/* hostile files: refused or keys skipped (with a warning), never a crash */
	g_log_set_always_fatal(G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL);
	for (guint i = 0; i < G_N_ELEMENTS(hostile); i++) {
		g_autoptr(GError) e = NULL;
		g_autoptr(KmxDevice) d = NULL;

		d = kmx_device_cache_parse("card", hostile[i], strlen(hostile[i]), &e);
		if (d == NULL)
			g_assert_nonnull(e);
		else
			g_assert_cmpuint(kmx_device_get_keys(d)->len, ==, 0);
	}
	g_assert_true(kmx_device_cache_remove(dir, "card:42", &error));
	g_clear_pointer(&loaded, g_ptr_array_unref);
	loaded = kmx_device_cache_load(dir, "card");
	g_assert_cmpuint(loaded->len, ==, 0);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	kmx_core_mark_main_thread();
	(void)KMX_ERROR;
	g_test_add_func("/kmx/executor/serial", test_executor_serial);
	g_test_add_func("/kmx/executor/pool", test_executor_pool);
	g_test_add_func("/kmx/executor/cancelled-before-start",
			test_executor_cancelled_before_start);
	g_test_add_func("/kmx/file/atomic-write", test_file_atomic_write);
	g_test_add_func("/kmx/file/missing-dir", test_file_write_into_missing_dir);
	g_test_add_func("/kmx/context/config", test_context_config);
	g_test_add_func("/kmx/context/bad-config", test_context_bad_config);
	g_test_add_func("/kmx/device/flags-from-thread", test_device_flags_from_thread);
	g_test_add_func("/kmx/device/keys", test_device_keys);
	g_test_add_func("/kmx/device/key-label-changed", test_device_key_label_changed);
	g_test_add_func("/kmx/key/new-with-facts", test_key_new_with_facts);
	g_test_add_func("/kmx/key/id-hash", test_key_id_hash);
	g_test_add_func("/kmx/key/table", test_key_table);
	g_test_add_func("/kmx/key/device-gone", test_key_device_gone);
	g_test_add_func("/kmx/device/key-removed-from-thread", test_device_key_removed_from_thread);
	g_test_add_func("/kmx/executor/unref-on-own-thread", test_executor_unref_on_own_thread);
	g_test_add_func("/kmx/options/parse", test_options_parse);
	g_test_add_func("/kmx/options/slot", test_options_slot);
	g_test_add_func("/kmx/device-cache/round-trip", test_device_cache);
	return g_test_run();
}
