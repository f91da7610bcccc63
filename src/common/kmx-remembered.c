/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: secrets remembered in the login keyring
 *
 * When a person ticks "remember" in the desktop's prompt, keymuxd keeps the
 * device's secret in the login keyring through libsecret (the Secret
 * Service on the session bus): schema org.keymux.Keystore1.Secret, one
 * attribute, "device", the device id.  libsecret is loaded on first use,
 * from the keymux-secret module (src/modules/kmx-module-secret.c); without
 * it nothing is remembered and the user is prompted.  Our copy of a secret
 * is a KmxSecret.  Nothing here logs a secret.
 */
#include "config.h"

#include "kmx-module.h"
#include "kmx-remembered.h"

static KmxModule kmx_remembered_module = {
    .name = "keymux-secret",
    .symbol = "kmx_module_secret_get",
    .needs = "remembering secrets in the login keyring needs libsecret (package libsecret-1-0)",
};

static const KmxModuleSecret *
kmx_remembered_load(GError **error)
{
	return kmx_module_load(&kmx_remembered_module, error);
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
	GError *error = NULL;
	const KmxModuleSecret *secret = kmx_remembered_load(&error);

	if (secret == NULL) {
		g_task_report_error(NULL, callback, user_data, kmx_remembered_lookup_async, error);
		return;
	}
	secret->lookup_async(device_id, cancellable, callback, user_data);
}

static void
kmx_remembered_take(const guint8 *data, gsize len, gpointer take_data)
{
	KmxSecret **out = take_data;

	*out = kmx_secret_new_from_data(data, len);
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
	KmxSecret *out = NULL;

	if (g_async_result_is_tagged(result, kmx_remembered_lookup_async))
		return g_task_propagate_pointer(G_TASK(result), error);
	/* a result with no tag comes from the module, loaded by then */
	if (!kmx_remembered_load(NULL)->lookup_finish(result, kmx_remembered_take, &out, error))
		return NULL;
	return out;
}

static void
kmx_remembered_store_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autofree char *device_id = user_data;
	g_autoptr(GError) error = NULL;

	if (!kmx_remembered_load(NULL)->store_finish(res, &error))
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
	g_autoptr(GError) error = NULL;
	const KmxModuleSecret *module = kmx_remembered_load(&error);
	g_autofree char *item_label = NULL;

	if (module == NULL) {
		g_warning("cannot remember the secret of %s: %s", device_id, error->message);
		return;
	}
	item_label = g_strdup_printf("keymux: secret of “%s” (%s)", label, device_id);
	module->store(device_id,
		      item_label,
		      kmx_secret_get_data(secret),
		      kmx_secret_get_length(secret),
		      kmx_remembered_store_cb,
		      g_strdup(device_id));
}

static void
kmx_remembered_clear_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autofree char *device_id = user_data;
	g_autoptr(GError) error = NULL;

	if (!kmx_remembered_load(NULL)->clear_finish(res, &error) && error != NULL)
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
	g_autoptr(GError) error = NULL;
	const KmxModuleSecret *module = kmx_remembered_load(&error);

	if (module == NULL) {
		g_warning("cannot forget the secret of %s: %s", device_id, error->message);
		return;
	}
	module->clear(device_id, kmx_remembered_clear_cb, g_strdup(device_id));
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
	const KmxModuleSecret *module = kmx_remembered_load(error);

	return module != NULL && module->clear_sync(device_id, error);
}
