/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: where the daemon keeps things and what it was configured to do
 *
 * Data dir: $KEYMUX_DATA_DIR, else $XDG_DATA_HOME/keymux.
 * Config:   $KEYMUX_CONFIG, else $XDG_CONFIG_HOME/keymux/keymux.conf
 * (a GKeyFile; a missing file means defaults).  Tests override both.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>

#include "kmx-context.h"
#include "kmx-error.h"

struct _KmxContext {
	GObject parent_instance;
	char *data_dir;
	char *config_path;
	GKeyFile *config;
};

G_DEFINE_TYPE(KmxContext, kmx_context, G_TYPE_OBJECT)

static void
kmx_context_finalize(GObject *object)
{
	KmxContext *self = KMX_CONTEXT(object);

	g_free(self->data_dir);
	g_free(self->config_path);
	g_key_file_unref(self->config);
	G_OBJECT_CLASS(kmx_context_parent_class)->finalize(object);
}

static void
kmx_context_class_init(KmxContextClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = kmx_context_finalize;
}

static void
kmx_context_init(KmxContext *self)
{
	self->config = g_key_file_new();
}

/**
 * kmx_context_new:
 * @data_dir: the data directory; created (mode 0700) when missing
 * @config_path: the config file; a missing one means defaults
 *
 * Returns: (transfer full): a context, or %NULL when the data dir cannot be
 * created or the config file cannot be parsed
 */
KmxContext *
kmx_context_new(const char *data_dir, const char *config_path, GError **error)
{
	g_autoptr(KmxContext) self = g_object_new(KMX_TYPE_CONTEXT, NULL);
	g_autoptr(GError) error_local = NULL;

	self->data_dir = g_strdup(data_dir);
	self->config_path = g_strdup(config_path);
	if (g_mkdir_with_parents(data_dir, 0700) != 0) {
		int errsv = errno;
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "cannot create the data directory %s: %s; check its parent's permissions "
		    "or set KEYMUX_DATA_DIR",
		    data_dir,
		    g_strerror(errsv));
		return NULL;
	}
	if (!g_key_file_load_from_file(self->config, config_path, G_KEY_FILE_NONE, &error_local)) {
		if (!g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "cannot read the configuration %s: %s; fix or remove it",
				    config_path,
				    error_local->message);
			return NULL;
		}
	}
	return g_steal_pointer(&self);
}

/**
 * kmx_context_new_default:
 *
 * Returns: (transfer full): the context from the environment
 */
KmxContext *
kmx_context_new_default(GError **error)
{
	const char *env_data = g_getenv("KEYMUX_DATA_DIR");
	const char *env_config = g_getenv("KEYMUX_CONFIG");
	g_autofree char *data_dir = NULL;
	g_autofree char *config_path = NULL;

	if (env_data != NULL && env_data[0] != '\0')
		data_dir = g_strdup(env_data);
	else
		data_dir = g_build_filename(g_get_user_data_dir(), "keymux", NULL);
	if (env_config != NULL && env_config[0] != '\0')
		config_path = g_strdup(env_config);
	else
		config_path =
		    g_build_filename(g_get_user_config_dir(), "keymux", "keymux.conf", NULL);
	return kmx_context_new(data_dir, config_path, error);
}

const char *
kmx_context_get_data_dir(KmxContext *self)
{
	return self->data_dir;
}

const char *
kmx_context_get_config_path(KmxContext *self)
{
	return self->config_path;
}

/**
 * kmx_context_get_backend_dir:
 *
 * Returns: (transfer full): the state directory of a backend, data dir/name
 */
char *
kmx_context_get_backend_dir(KmxContext *self, const char *backend_name)
{
	return g_build_filename(self->data_dir, backend_name, NULL);
}

char *
kmx_context_get_string(KmxContext *self, const char *group, const char *key, const char *fallback)
{
	char *v = g_key_file_get_string(self->config, group, key, NULL);
	return v != NULL ? v : g_strdup(fallback);
}

gint64
kmx_context_get_int(KmxContext *self, const char *group, const char *key, gint64 fallback)
{
	g_autoptr(GError) error = NULL;
	gint64 v = g_key_file_get_int64(self->config, group, key, &error);

	if (error != NULL) {
		if (!g_error_matches(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND) &&
		    !g_error_matches(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND))
			g_warning("%s: [%s] %s: %s; using %" G_GINT64_FORMAT,
				  self->config_path,
				  group,
				  key,
				  error->message,
				  fallback);
		return fallback;
	}
	return v;
}

gboolean
kmx_context_get_boolean(KmxContext *self, const char *group, const char *key, gboolean fallback)
{
	g_autoptr(GError) error = NULL;
	gboolean v = g_key_file_get_boolean(self->config, group, key, &error);

	if (error != NULL) {
		if (!g_error_matches(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND) &&
		    !g_error_matches(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND))
			g_warning("%s: [%s] %s: %s; using %s",
				  self->config_path,
				  group,
				  key,
				  error->message,
				  fallback ? "true" : "false");
		return fallback;
	}
	return v;
}
