/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a prompter registered on the bus (org.keymux.Keystore1.Prompter)
 *
 * AskSecret is called with no timeout: a person is typing.  Hints: kind
 * (user, admin), retries, caller, operation, key, description, and the
 * older device-id, label and pin-retries.  A question withdrawn while it is
 * asked (nobody waits for it any more) is followed by Cancel(device), so
 * the prompter can take its dialog down.
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

/* one AskSecret in flight */
typedef struct {
	KmxRemotePrompter *self;
	char *device_path;
	GCancellable *cancellable;
	gulong cancelled_id;
} KmxRemoteAsk;

static void
kmx_remote_ask_free(KmxRemoteAsk *ask)
{
	g_free(ask->device_path);
	g_clear_object(&ask->cancellable);
	g_object_unref(ask->self);
	g_free(ask);
}

/* the question was withdrawn: tell the prompter, expecting no reply */
static void
kmx_remote_prompter_withdrawn_cb(GCancellable *cancellable, KmxRemoteAsk *ask)
{
	g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call(ask->self->sender,
								      ask->self->path,
								      KMX_DBUS_PROMPTER_INTERFACE,
								      "Cancel");

	g_dbus_message_set_flags(call,
				 G_DBUS_MESSAGE_FLAGS_NO_AUTO_START |
				     G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED);
	g_dbus_message_set_body(call, g_variant_new("(o)", ask->device_path));
	g_debug("withdrawing the question for %s from prompter %s",
		ask->device_path,
		ask->self->sender);
	g_dbus_connection_send_message(ask->self->connection,
				       call,
				       G_DBUS_SEND_MESSAGE_FLAGS_NONE,
				       NULL,
				       NULL);
}

/* the reply itself, not g_dbus_connection_call()'s copy of its body: the
 * secret is wiped in the message, then in GDBus's read buffer */
static void
kmx_remote_prompter_ask_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GDBusConnection *connection = G_DBUS_CONNECTION(source);
	g_autoptr(GTask) task = user_data;
	KmxRemoteAsk *ask = g_task_get_task_data(task);
	GError *error = NULL;
	g_autoptr(GDBusMessage) reply = NULL;
	g_autoptr(GVariant) secret = NULL;
	GVariant *body;
	const char *s;
	gsize len = 0;
	gsize size;

	/* not from within the handler: it may be running this very moment */
	if (ask->cancelled_id != 0) {
		g_cancellable_disconnect(ask->cancellable, ask->cancelled_id);
		ask->cancelled_id = 0;
	}
	reply = g_dbus_connection_send_message_with_reply_finish(connection, res, &error);
	if (reply == NULL || g_dbus_message_to_gerror(reply, &error)) {
		g_task_return_error(task, error);
		return;
	}
	body = g_dbus_message_get_body(reply);
	if (body == NULL || !g_variant_is_of_type(body, G_VARIANT_TYPE("(s)"))) {
		g_task_return_new_error(task,
					G_IO_ERROR,
					G_IO_ERROR_INVALID_ARGUMENT,
					"the prompter's AskSecret returned type '%s', not '(s)'",
					body != NULL ? g_variant_get_type_string(body) : "()");
		return;
	}
	size = kmx_dbus_received_size(connection, reply);
	secret = g_variant_get_child_value(body, 0);
	s = g_variant_get_string(secret, &len);
	g_task_return_pointer(task,
			      kmx_secret_new_from_data(s, len),
			      (GDestroyNotify)kmx_secret_unref);
	/* our copy is in secret memory now; wipe the message's */
	kmx_secure_zero((gpointer)s, len);
	kmx_dbus_scrub_received(connection, size);
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
	g_autoptr(GDBusMessage) call = NULL;
	KmxRemoteAsk *ask = g_new0(KmxRemoteAsk, 1);
	GVariantBuilder hints;

	ask->self = g_object_ref(self);
	ask->device_path = g_strdup(device_path);
	g_task_set_task_data(task, ask, (GDestroyNotify)kmx_remote_ask_free);

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
	if (info->description != NULL)
		g_variant_builder_add(&hints,
				      "{sv}",
				      "description",
				      g_variant_new_string(info->description));
	g_variant_builder_add(&hints,
			      "{sv}",
			      "device-id",
			      g_variant_new_string(kmx_device_get_id(info->device)));
	g_variant_builder_add(&hints, "{sv}", "label", g_variant_new_string(label));
	g_variant_builder_add(&hints, "{sv}", "pin-retries", g_variant_new_int32(info->retries));
	call = g_dbus_message_new_method_call(self->sender,
					      self->path,
					      KMX_DBUS_PROMPTER_INTERFACE,
					      "AskSecret");
	g_dbus_message_set_flags(call, G_DBUS_MESSAGE_FLAGS_NO_AUTO_START);
	g_dbus_message_set_body(
	    call,
	    g_variant_new("(os@a{sv})", device_path, info->message, g_variant_builder_end(&hints)));
	if (cancellable != NULL) {
		ask->cancellable = g_object_ref(cancellable);
		ask->cancelled_id =
		    g_cancellable_connect(cancellable,
					  G_CALLBACK(kmx_remote_prompter_withdrawn_cb),
					  ask,
					  NULL);
	}
	g_dbus_connection_send_message_with_reply(self->connection,
						  call,
						  G_DBUS_SEND_MESSAGE_FLAGS_NONE,
						  G_MAXINT, /* a person is typing: no timeout */
						  NULL,
						  cancellable,
						  kmx_remote_prompter_ask_cb,
						  task);
}

static KmxSecret *
kmx_remote_prompter_ask_finish(KmxPrompter *prompter,
			       GAsyncResult *result,
			       gboolean *remember,
			       GError **error)
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

GDBusConnection *
kmx_remote_prompter_get_connection(KmxRemotePrompter *self)
{
	return self->connection;
}

/* the prompter's unique name on the bus, %NULL on a peer connection */
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
