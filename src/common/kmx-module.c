/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: loading the private modules, as GIO loads its own
 *
 * A module is opened once, on first use, from KMX_MODULEDIR (the build's
 * $libdir/keymux), or from $KMX_MODULE_DIR, which the test suite and
 * run.sh set to the build tree's module directory.  It stays loaded: the
 * libraries it links register GTypes and keep threads.  A module that is
 * missing, or built for another ABI, is an error that says which library
 * the operation needs; a later use tries again, so installing the package
 * helps without a restart.
 */
#include "config.h"

#include <gmodule.h>

#include "kmx-error.h"
#include "kmx-module.h"

static GMutex kmx_module_lock;

/**
 * kmx_module_dup_dir:
 *
 * Returns: (transfer full): the directory modules are loaded from
 */
char *
kmx_module_dup_dir(void)
{
	const char *dir = g_getenv("KMX_MODULE_DIR");

	return g_strdup(dir != NULL && dir[0] != '\0' ? dir : KMX_MODULEDIR);
}

static gconstpointer
kmx_module_open(KmxModule *module, GError **error)
{
	g_autofree char *dir = kmx_module_dup_dir();
	g_autofree char *file = g_strconcat(module->name, ".", G_MODULE_SUFFIX, NULL);
	g_autofree char *path = g_build_filename(dir, file, NULL);
	KmxModuleGetFunc get = NULL;
	gconstpointer table;
	GModule *handle;

	/* local: the module's symbols and its libraries' stay out of the
	 * global namespace, where they could shadow the daemon's */
	handle = g_module_open(path, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
	if (handle == NULL) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "%s: %s",
			    module->needs,
			    g_module_error());
		return NULL;
	}
	if (!g_module_symbol(handle, module->symbol, (gpointer *)&get) || get == NULL ||
	    (table = get(KMX_MODULE_ABI)) == NULL) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "%s: %s is not a keymux %s module of this version",
			    module->needs,
			    path,
			    module->name);
		g_module_close(handle);
		return NULL;
	}
	g_module_make_resident(handle);
	g_debug("loaded %s", path);
	return table;
}

/**
 * kmx_module_load:
 * @module: the module, a static #KmxModule
 *
 * Loads @module on its first use; safe from any thread.
 *
 * Returns: (transfer none): the module's table of functions, or %NULL with
 * %KMX_ERROR_NOT_SUPPORTED and a message that names what is missing
 */
gconstpointer
kmx_module_load(KmxModule *module, GError **error)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&kmx_module_lock);

	if (module->table == NULL)
		module->table = kmx_module_open(module, error);
	return module->table;
}
