/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux-secret: the module that links libsecret, for secrets remembered
 * in the login keyring (src/common/kmx-remembered.c is its only user)
 *
 * Schema org.keymux.Keystore1.Secret, one attribute, "device", the device
 * id.  The secret travels as a binary SecretValue, which libsecret keeps in
 * its own locked memory; the caller copies it into a KmxSecret.  Nothing
 * here logs a secret.
 */
#include "config.h"

#include <gmodule.h>
#include <libsecret/secret.h>

#include "kmx-module.h"
#include "kmx-remembered.h"

static const SecretSchema *
kmx_module_secret_schema(void)
{
	static const SecretSchema schema = {
	    KMX_REMEMBERED_SCHEMA,
	    SECRET_SCHEMA_NONE,
	    {
		{"device", SECRET_SCHEMA_ATTRIBUTE_STRING},
		{NULL, 0},
	    },
	    0,
	    NULL,
	    NULL,
	    NULL,
	    NULL,
	    NULL,
	    NULL,
	    NULL,
	};
	return &schema;
}

static void
kmx_module_secret_lookup_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	GList *items = secret_service_search_finish(NULL, res, &error);
	SecretValue *value = NULL;

	if (error != NULL) {
		g_task_return_error(task, error);
		return;
	}
	if (items != NULL)
		value = secret_item_get_secret(items->data);
	g_list_free_full(items, g_object_unref);
	g_task_return_pointer(task,
			      value,
			      value != NULL ? (GDestroyNotify)secret_value_unref : NULL);
}

static void
kmx_module_secret_lookup_async(const char *device_id,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data)
{
	GTask *task = g_task_new(NULL, cancellable, callback, user_data);
	g_autoptr(GHashTable) attributes =
	    secret_attributes_build(kmx_module_secret_schema(), "device", device_id, NULL);

	secret_service_search(NULL,
			      kmx_module_secret_schema(),
			      attributes,
			      SECRET_SEARCH_UNLOCK | SECRET_SEARCH_LOAD_SECRETS,
			      cancellable,
			      kmx_module_secret_lookup_cb,
			      task);
}

static gboolean
kmx_module_secret_lookup_finish(GAsyncResult *result,
				void (*take)(const guint8 *data, gsize len, gpointer take_data),
				gpointer take_data,
				GError **error)
{
	GError *error_local = NULL;
	SecretValue *value = g_task_propagate_pointer(G_TASK(result), &error_local);
	const gchar *data;
	gsize len = 0;

	if (error_local != NULL) {
		g_propagate_error(error, error_local);
		return FALSE;
	}
	if (value == NULL)
		return TRUE;
	data = secret_value_get(value, &len);
	take((const guint8 *)data, len, take_data);
	secret_value_unref(value);
	return TRUE;
}

static void
kmx_module_secret_store(const char *device_id,
			const char *item_label,
			const guint8 *data,
			gsize len,
			GAsyncReadyCallback callback,
			gpointer user_data)
{
	SecretValue *value =
	    secret_value_new((const gchar *)data, (gssize)len, "application/octet-stream");

	secret_password_store_binary(kmx_module_secret_schema(),
				     SECRET_COLLECTION_DEFAULT,
				     item_label,
				     value,
				     NULL,
				     callback,
				     user_data,
				     "device",
				     device_id,
				     NULL);
	secret_value_unref(value);
}

static void
kmx_module_secret_clear(const char *device_id, GAsyncReadyCallback callback, gpointer user_data)
{
	secret_password_clear(kmx_module_secret_schema(),
			      NULL,
			      callback,
			      user_data,
			      "device",
			      device_id,
			      NULL);
}

static gboolean
kmx_module_secret_clear_sync(const char *device_id, GError **error)
{
	return secret_password_clear_sync(kmx_module_secret_schema(),
					  NULL,
					  error,
					  "device",
					  device_id,
					  NULL);
}

static const KmxModuleSecret kmx_module_secret = {
    .lookup_async = kmx_module_secret_lookup_async,
    .lookup_finish = kmx_module_secret_lookup_finish,
    .store = kmx_module_secret_store,
    .store_finish = secret_password_store_finish,
    .clear = kmx_module_secret_clear,
    .clear_finish = secret_password_clear_finish,
    .clear_sync = kmx_module_secret_clear_sync,
};

KMX_MODULE_DEFINE_GET(kmx_module_secret_get, kmx_module_secret)
