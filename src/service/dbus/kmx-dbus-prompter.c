/* keymux: a prompter registered on the bus (org.keymux.Keystore1.Prompter)
 *
 * AskSecret is called with no timeout: a person is typing.  Hints: kind
 * (user, admin), retries, caller, operation, key, and the older device-id,
 * label and pin-retries.
 */
#include "config.h"

#include "kmx-dbus-private.h"
#include "kmx-error.h"
#include "kmx-names.h"

struct _KmxRemotePrompter {
	KmxPrompter parent_instance;
	GDBusConnection *connection;
	char *sender;
	char *path;
};

G_DEFINE_TYPE(KmxRemotePrompter, kmx_remote_prompter, KMX_TYPE_PROMPTER)

static void
kmx_remote_prompter_ask_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autoptr(GVariant) secret = NULL;
	const char *s;
	gsize len = 0;

	if (reply == NULL) {
		g_task_return_error(task, error);
		return;
	}
	secret = g_variant_get_child_value(reply, 0);
	s = g_variant_get_string(secret, &len);
	g_task_return_pointer(task,
			      kmx_secret_new_from_data(s, len),
			      (GDestroyNotify)kmx_secret_unref);
	/* our copy is in secret memory now; wipe the message's */
	kmx_secure_zero((gpointer)s, len);
}

static void
kmx_remote_prompter_ask_async(KmxPrompter *prompter,
			      const KmxPromptInfo *info,
			      GCancellable *cancellable,
			      GAsyncReadyCallback callback,
			      gpointer user_data)
{
	KmxRemotePrompter *self = KMX_REMOTE_PROMPTER(prompter);
	GTask *task = g_task_new(self, cancellable, callback, user_data);
	g_autofree char *device_path = kmx_dbus_device_path(info->device);
	g_autofree char *label = kmx_device_dup_label(info->device);
	GVariantBuilder hints;

	g_variant_builder_init(&hints, G_VARIANT_TYPE_VARDICT);
	g_variant_builder_add(
	    &hints,
	    "{sv}",
	    "kind",
	    g_variant_new_string(info->kind == KMX_PROMPT_ADMIN ? "admin" : "user"));
	g_variant_builder_add(&hints, "{sv}", "retries", g_variant_new_int32(info->retries));
	g_variant_builder_add(&hints, "{sv}", "caller", g_variant_new_string(info->caller));
	g_variant_builder_add(&hints, "{sv}", "operation", g_variant_new_string(info->operation));
	if (info->key_id != NULL)
		g_variant_builder_add(&hints, "{sv}", "key", g_variant_new_string(info->key_id));
	g_variant_builder_add(&hints,
			      "{sv}",
			      "device-id",
			      g_variant_new_string(kmx_device_get_id(info->device)));
	g_variant_builder_add(&hints, "{sv}", "label", g_variant_new_string(label));
	g_variant_builder_add(&hints, "{sv}", "pin-retries", g_variant_new_int32(info->retries));
	g_dbus_connection_call(
	    self->connection,
	    self->sender,
	    self->path,
	    KMX_DBUS_PROMPTER_INTERFACE,
	    "AskSecret",
	    g_variant_new("(os@a{sv})", device_path, info->message, g_variant_builder_end(&hints)),
	    G_VARIANT_TYPE("(s)"),
	    G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    G_MAXINT, /* a person is typing: no timeout */
	    cancellable,
	    kmx_remote_prompter_ask_cb,
	    task);
}

static KmxSecret *
kmx_remote_prompter_ask_finish(KmxPrompter *prompter, GAsyncResult *result, GError **error)
{
	return g_task_propagate_pointer(G_TASK(result), error);
}

static gboolean
kmx_remote_prompter_is_gone(KmxPrompter *prompter, const GError *error)
{
	return g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_INTERFACE) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_DISCONNECTED) ||
	       g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED);
}

static void
kmx_remote_prompter_finalize(GObject *object)
{
	KmxRemotePrompter *self = KMX_REMOTE_PROMPTER(object);

	g_clear_object(&self->connection);
	g_free(self->sender);
	g_free(self->path);
	G_OBJECT_CLASS(kmx_remote_prompter_parent_class)->finalize(object);
}

static void
kmx_remote_prompter_class_init(KmxRemotePrompterClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	KmxPrompterClass *prompter_class = KMX_PROMPTER_CLASS(klass);

	object_class->finalize = kmx_remote_prompter_finalize;
	prompter_class->ask_async = kmx_remote_prompter_ask_async;
	prompter_class->ask_finish = kmx_remote_prompter_ask_finish;
	prompter_class->is_gone = kmx_remote_prompter_is_gone;
}

static void
kmx_remote_prompter_init(KmxRemotePrompter *self)
{
}

KmxRemotePrompter *
kmx_remote_prompter_new(GDBusConnection *connection, const char *sender, const char *path)
{
	KmxRemotePrompter *self = g_object_new(KMX_TYPE_REMOTE_PROMPTER, NULL);

	self->connection = g_object_ref(connection);
	self->sender = g_strdup(sender);
	self->path = g_strdup(path);
	return self;
}

const char *
kmx_remote_prompter_get_sender(KmxRemotePrompter *self)
{
	return self->sender;
}

const char *
kmx_remote_prompter_get_path(KmxRemotePrompter *self)
{
	return self->path;
}
