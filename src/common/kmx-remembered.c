/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: secrets remembered in the login keyring
 *
 * When a person ticks "remember" in the desktop's prompt, keymuxd keeps the
 * device's secret in the login keyring through libsecret (the Secret
 * Service on the session bus): schema org.keymux.Keystore1.Secret, one
 * attribute, "device", the device id.  The secret travels as a binary
 * SecretValue, which libsecret keeps in its own locked memory; our copy is
 * a KmxSecret.  Nothing here logs a secret.
 */
#include "config.h"

#include <libsecret/secret.h>

#include "kmx-remembered.h"

static const SecretSchema *
kmx_remembered_schema(void)
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
kmx_remembered_lookup_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	g_autoptr(GError) error = NULL;
	GList *items = secret_service_search_finish(NULL, res, &error);
	SecretValue *value = NULL;
	gsize len = 0;
	const gchar *data;

	if (error != NULL) {
		g_task_return_error(task, g_steal_pointer(&error));
		return;
	}
	if (items != NULL)
		value = secret_item_get_secret(items->data);
	g_list_free_full(items, g_object_unref);
	if (value == NULL) {
		g_task_return_pointer(task, NULL, NULL);
		return;
	}
	data = secret_value_get(value, &len);
	g_task_return_pointer(task,
			      kmx_secret_new_from_data(data, len),
			      (GDestroyNotify)kmx_secret_unref);
	secret_value_unref(value);
}

/**
 * kmx_remembered_lookup_async:
 *
 * Looks for the remembered secret of @device_id in the login keyring,
 * unlocking the keyring if it must (its own prompt).
 */
void
kmx_remembered_lookup_async(const char *device_id,
			    GCancellable *cancellable,
			    GAsyncReadyCallback callback,
			    gpointer user_data)
{
	GTask *task = g_task_new(NULL, cancellable, callback, user_data);
	g_autoptr(GHashTable) attributes =
	    secret_attributes_build(kmx_remembered_schema(), "device", device_id, NULL);

	secret_service_search(NULL,
			      kmx_remembered_schema(),
			      attributes,
			      SECRET_SEARCH_UNLOCK | SECRET_SEARCH_LOAD_SECRETS,
			      cancellable,
			      kmx_remembered_lookup_cb,
			      task);
}

/**
 * kmx_remembered_lookup_finish:
 *
 * Returns: (transfer full) (nullable): the secret, or %NULL when none is
 * remembered (then @error is not set) or the keyring cannot be reached
 */
KmxSecret *
kmx_remembered_lookup_finish(GAsyncResult *result, GError **error)
{
	return g_task_propagate_pointer(G_TASK(result), error);
}

static void
kmx_remembered_store_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autofree char *device_id = user_data;
	g_autoptr(GError) error = NULL;

	if (!secret_password_store_finish(res, &error))
		g_warning("cannot remember the secret of %s in the login keyring: %s",
			  device_id,
			  error->message);
	else
		g_debug("the secret of %s is remembered in the login keyring", device_id);
}

/**
 * kmx_remembered_store:
 * @label: the device's label, for the keyring's item
 *
 * Remembers @secret for @device_id in the login keyring, in the
 * background; a failure is logged.
 */
void
kmx_remembered_store(const char *device_id, const char *label, KmxSecret *secret)
{
	g_autofree char *item_label =
	    g_strdup_printf("keymux: secret of “%s” (%s)", label, device_id);
	SecretValue *value = secret_value_new((const gchar *)kmx_secret_get_data(secret),
					      (gssize)kmx_secret_get_length(secret),
					      "application/octet-stream");

	secret_password_store_binary(kmx_remembered_schema(),
				     SECRET_COLLECTION_DEFAULT,
				     item_label,
				     value,
				     NULL,
				     kmx_remembered_store_cb,
				     g_strdup(device_id),
				     "device",
				     device_id,
				     NULL);
	secret_value_unref(value);
}

static void
kmx_remembered_clear_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autofree char *device_id = user_data;
	g_autoptr(GError) error = NULL;

	if (!secret_password_clear_finish(res, &error) && error != NULL)
		g_warning("cannot forget the secret of %s in the login keyring: %s",
			  device_id,
			  error->message);
	else
		g_debug("the remembered secret of %s is forgotten", device_id);
}

/**
 * kmx_remembered_clear:
 *
 * Forgets the remembered secret of @device_id, in the background.
 */
void
kmx_remembered_clear(const char *device_id)
{
	secret_password_clear(kmx_remembered_schema(),
			      NULL,
			      kmx_remembered_clear_cb,
			      g_strdup(device_id),
			      "device",
			      device_id,
			      NULL);
}

/**
 * kmx_remembered_clear_sync:
 *
 * Returns: whether a remembered secret was deleted; %FALSE without @error
 * set when there was none
 */
gboolean
kmx_remembered_clear_sync(const char *device_id, GError **error)
{
	return secret_password_clear_sync(kmx_remembered_schema(),
					  NULL,
					  error,
					  "device",
					  device_id,
					  NULL);
}
