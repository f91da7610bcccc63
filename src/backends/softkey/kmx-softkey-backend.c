/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the soft-key backend: keys in files, one store per directory
 *
 * <data dir>/softkey/<store>/ is a store, exported as the device
 * "softkey:<store>"; "login" is created on first start.  start() reads only
 * the small public .info files, so it stays fast with many keys.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>

#include "kmx-error.h"
#include "kmx-softkey-backend.h"
#include "kmx-softkey-device.h"
#include "kmx-softkey-store.h"

struct _KmxSoftkeyBackend {
	KmxBackend parent_instance;
};

G_DEFINE_TYPE(KmxSoftkeyBackend, kmx_softkey_backend, KMX_TYPE_BACKEND)

static gint
kmx_softkey_backend_store_cmp(gconstpointer a, gconstpointer b)
{
	const char *sa = *(const char *const *)a;
	const char *sb = *(const char *const *)b;

	/* the login store first, the rest by name */
	if (g_str_equal(sa, "login"))
		return -1;
	if (g_str_equal(sb, "login"))
		return 1;
	return g_strcmp0(sa, sb);
}

static gboolean
kmx_softkey_backend_start(KmxBackend *backend, GError **error)
{
	g_autofree char *dir = kmx_backend_get_state_dir(backend);
	g_autofree char *login = g_build_filename(dir, "login", NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *data_dir = g_path_get_dirname(dir);
	const char *parents[] = {data_dir, dir};
	g_autofree char *unsafe = NULL;
	g_autoptr(GDir) gdir = NULL;
	const char *name;

	if (g_mkdir_with_parents(login, 0700) != 0) {
		int errsv = errno;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot create %s: %s; check the data directory is writable",
			    login,
			    g_strerror(errsv));
		return FALSE;
	}
	/* the data dir and ours hold every store: others must not enter them */
	for (guint i = 0; i < G_N_ELEMENTS(parents) && unsafe == NULL; i++) {
		g_autoptr(GError) error_local = NULL;
		guint old_mode = 0;
		if (!kmx_softkey_store_fix_mode(AT_FDCWD,
						NULL,
						parents[i],
						TRUE,
						&old_mode,
						&error_local)) {
			unsafe = g_strdup(error_local->message);
			g_warning("every soft-key store is unavailable: %s", unsafe);
		} else if (old_mode != 0) {
			g_warning(
			    "other users could enter %s (mode %04o), which holds the soft-key "
			    "stores; it is private now (0700)",
			    parents[i],
			    old_mode);
		}
	}
	gdir = g_dir_open(dir, 0, error);
	if (gdir == NULL)
		return FALSE;
	while ((name = g_dir_read_name(gdir)) != NULL) {
		g_autofree char *path = NULL;
		if (name[0] == '.' || !g_utf8_validate(name, -1, NULL))
			continue;
		path = g_build_filename(dir, name, NULL);
		if (g_file_test(path, G_FILE_TEST_IS_DIR))
			g_ptr_array_add(names, g_strdup(name));
	}
	g_ptr_array_sort(names, kmx_softkey_backend_store_cmp);
	for (guint i = 0; i < names->len; i++) {
		const char *store = g_ptr_array_index(names, i);
		g_autofree char *path = g_build_filename(dir, store, NULL);
		g_autoptr(KmxSoftkeyDevice)
		    device = kmx_softkey_device_new(kmx_backend_get_name(backend), store, path);
		g_autoptr(GPtrArray) keys = kmx_softkey_device_load(device, unsafe);

		/* keys before the device, so nobody sees 10,000 keys-changed */
		for (guint j = 0; j < keys->len; j++)
			kmx_device_add_key(KMX_DEVICE(device), g_ptr_array_index(keys, j));
		g_debug("soft-key store %s: %u keys", store, keys->len);
		kmx_backend_add_device(backend, KMX_DEVICE(device));
	}
	return TRUE;
}

static void
kmx_softkey_backend_stop(KmxBackend *backend)
{
	GPtrArray *devices = kmx_backend_get_devices(backend);

	/* daemon exit drops every secret, even if a device outlives us */
	for (guint i = 0; i < devices->len; i++)
		kmx_softkey_device_drop_secrets(g_ptr_array_index(devices, i));
}

static void
kmx_softkey_backend_class_init(KmxSoftkeyBackendClass *klass)
{
	KmxBackendClass *backend_class = KMX_BACKEND_CLASS(klass);

	backend_class->start = kmx_softkey_backend_start;
	backend_class->stop = kmx_softkey_backend_stop;
}

static void
kmx_softkey_backend_init(KmxSoftkeyBackend *self)
{
}
