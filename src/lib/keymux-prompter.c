/* libkeymux: a prompter in one signal handler
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A KeymuxPrompter is an org.keymux.Keystore1.Prompter object on the
 * client's connection.  When keymuxd asks it for a secret it emits
 * KeymuxPrompter::ask-secret with a KeymuxPromptRequest; a handler
 * answers it then or later with keymux_prompt_request_reply() or
 * keymux_prompt_request_cancel().  A request nobody answers is cancelled
 * when it is dropped.  When keymuxd withdraws a question nobody waits for
 * any more (Prompter.Cancel) the prompter emits KeymuxPrompter::cancelled
 * so the application can take its dialog down; the requests it withdrew
 * are answered already, a later answer is ignored.
 */
#include "config.h"

#include "keymux-private.h"

#define KEYMUX_PROMPTER_PATH "/org/keymux/Keystore1/Client/prompter"

/**
 * KeymuxPrompter:
 *
 * Asks the user for the secret of a device keymuxd must unlock.
 */
struct _KeymuxPrompter {
	GObject parent_instance;
	KeymuxClient *client;
	char *path;
	guint registration_id;
	GPtrArray *pending; /* the unanswered requests, not owned */
};

/**
 * KeymuxPromptRequest:
 *
 * One question of keymuxd: answer it once.
 */
struct _KeymuxPromptRequest {
	GObject parent_instance;
	KeymuxPrompter *prompter;	   /* not owned, NULL once answered */
	GDBusMethodInvocation *invocation; /* NULL once answered */
	char *device_path;
	char *message;
	GVariant *hints;
};

G_DEFINE_TYPE(KeymuxPrompter, keymux_prompter, G_TYPE_OBJECT)
G_DEFINE_TYPE(KeymuxPromptRequest, keymux_prompt_request, G_TYPE_OBJECT)

enum { SIGNAL_ASK_SECRET, SIGNAL_CANCELLED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* ---- KeymuxPromptRequest ---------------------------------------------------------- */

/* the invocation to answer, once: NULL if the request was answered or
 * withdrawn */
static GDBusMethodInvocation *
keymux_prompt_request_take_invocation(KeymuxPromptRequest *self)
{
	if (self->prompter != NULL)
		g_ptr_array_remove_fast(self->prompter->pending, self);
	self->prompter = NULL;
	return g_steal_pointer(&self->invocation);
}

/**
 * keymux_prompt_request_get_device_path:
 *
 * Returns: the object path of the device to unlock
 */
const char *
keymux_prompt_request_get_device_path(KeymuxPromptRequest *self)
{
	g_return_val_if_fail(KEYMUX_IS_PROMPT_REQUEST(self), NULL);
	return self->device_path;
}

/**
 * keymux_prompt_request_get_message:
 *
 * Returns: what to show the user
 */
const char *
keymux_prompt_request_get_message(KeymuxPromptRequest *self)
{
	g_return_val_if_fail(KEYMUX_IS_PROMPT_REQUEST(self), NULL);
	return self->message;
}

/**
 * keymux_prompt_request_get_hints:
 *
 * Returns: (transfer none): the hints, an a{sv}: "device-id" (s),
 * "label" (s), "kind" ("user" or "admin"), "retries" (i), "caller" (s),
 * "operation" (s), "key" (s)
 */
GVariant *
keymux_prompt_request_get_hints(KeymuxPromptRequest *self)
{
	g_return_val_if_fail(KEYMUX_IS_PROMPT_REQUEST(self), NULL);
	return self->hints;
}

/**
 * keymux_prompt_request_reply:
 * @secret: what the user typed
 *
 * Answers the question; a second answer, or one after keymuxd withdrew
 * the question (#KeymuxPrompter::cancelled), is ignored.  A @secret that
 * is not UTF-8 (a D-Bus string must be) answers
 * org.keymux.Keystore1.Error.InvalidArgument instead.
 */
void
keymux_prompt_request_reply(KeymuxPromptRequest *self, const char *secret)
{
	GDBusMethodInvocation *invocation;

	g_return_if_fail(KEYMUX_IS_PROMPT_REQUEST(self));
	g_return_if_fail(secret != NULL);
	invocation = keymux_prompt_request_take_invocation(self);
	if (invocation == NULL)
		return;
	if (!g_utf8_validate(secret, -1, NULL)) {
		g_dbus_method_invocation_return_dbus_error(
		    invocation,
		    "org.keymux.Keystore1.Error.InvalidArgument",
		    "the secret typed is not UTF-8");
		return;
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(s)", secret));
}

/**
 * keymux_prompt_request_cancel:
 *
 * The user declined: keymuxd's caller gets %KEYMUX_ERROR_CANCELLED.
 */
void
keymux_prompt_request_cancel(KeymuxPromptRequest *self)
{
	g_return_if_fail(KEYMUX_IS_PROMPT_REQUEST(self));
	keymux_prompt_request_cancel_with_reason(self, NULL);
}

/**
 * keymux_prompt_request_cancel_with_reason:
 * @reason: (nullable): why, for the caller's error message, e.g.
 *   "cancelled with Ctrl-C"; %NULL for "the user declined to give the
 *   secret"
 *
 * Like keymux_prompt_request_cancel(), saying why: keymuxd's caller gets
 * %KEYMUX_ERROR_CANCELLED with @reason in its message.
 */
void
keymux_prompt_request_cancel_with_reason(KeymuxPromptRequest *self, const char *reason)
{
	GDBusMethodInvocation *invocation;

	g_return_if_fail(KEYMUX_IS_PROMPT_REQUEST(self));
	invocation = keymux_prompt_request_take_invocation(self);
	if (invocation == NULL)
		return;
	g_dbus_method_invocation_return_dbus_error(
	    invocation,
	    "org.keymux.Keystore1.Error.Cancelled",
	    reason != NULL ? reason : "the user declined to give the secret");
}

static void
keymux_prompt_request_finalize(GObject *object)
{
	KeymuxPromptRequest *self = KEYMUX_PROMPT_REQUEST(object);

	keymux_prompt_request_cancel(self);
	g_free(self->device_path);
	g_free(self->message);
	g_clear_pointer(&self->hints, g_variant_unref);
	G_OBJECT_CLASS(keymux_prompt_request_parent_class)->finalize(object);
}

static void
keymux_prompt_request_class_init(KeymuxPromptRequestClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = keymux_prompt_request_finalize;
}

static void
keymux_prompt_request_init(KeymuxPromptRequest *self)
{
}

/* ---- KeymuxPrompter --------------------------------------------------------------------- */

/* Cancel(o device): keymuxd withdraws its question for @device.  Only the
 * connection that asked may withdraw it; each request it withdraws is
 * declined now (keymuxd ignores the answer), then ::cancelled is emitted
 * once. */
static void
keymux_prompter_cancel_call(KeymuxPrompter *self,
			    GVariant *parameters,
			    GDBusMethodInvocation *invocation)
{
	const char *sender = g_dbus_method_invocation_get_sender(invocation);
	const char *device_path = NULL;
	g_autoptr(GPtrArray) withdrawn = g_ptr_array_new_with_free_func(g_object_unref);

	g_variant_get(parameters, "(&o)", &device_path);
	for (guint i = 0; i < self->pending->len; i++) {
		KeymuxPromptRequest *request = g_ptr_array_index(self->pending, i);

		if (g_str_equal(request->device_path, device_path) &&
		    g_strcmp0(g_dbus_method_invocation_get_sender(request->invocation), sender) ==
			0)
			g_ptr_array_add(withdrawn, g_object_ref(request));
	}
	for (guint i = 0; i < withdrawn->len; i++)
		keymux_prompt_request_cancel(g_ptr_array_index(withdrawn, i));
	if (withdrawn->len > 0)
		g_signal_emit(self, signals[SIGNAL_CANCELLED], 0, device_path);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static void
keymux_prompter_method_call(GDBusConnection *connection,
			    const char *sender,
			    const char *object_path,
			    const char *interface_name,
			    const char *method_name,
			    GVariant *parameters,
			    GDBusMethodInvocation *invocation,
			    gpointer user_data)
{
	KeymuxPrompter *self = user_data;
	g_autoptr(KeymuxPromptRequest) request = NULL;
	gboolean handled = FALSE;

	if (g_str_equal(method_name, "Cancel")) {
		keymux_prompter_cancel_call(self, parameters, invocation);
		return;
	}
	request = g_object_new(KEYMUX_TYPE_PROMPT_REQUEST, NULL);
	request->invocation = invocation;
	request->prompter = self;
	g_ptr_array_add(self->pending, request);
	g_variant_get(parameters,
		      "(os@a{sv})",
		      &request->device_path,
		      &request->message,
		      &request->hints);
	g_signal_emit(self, signals[SIGNAL_ASK_SECRET], 0, request, &handled);
	/* a request nobody took is declined now; one a handler keeps is
	 * answered by it, or declined when it drops the request */
	if (!handled)
		keymux_prompt_request_cancel(request);
}

static GDBusInterfaceInfo *
keymux_prompter_info(void)
{
	static GDBusNodeInfo *node = NULL;

	if (g_once_init_enter(&node)) {
		GDBusNodeInfo *n = g_dbus_node_info_new_for_xml(
		    "<node><interface name='org.keymux.Keystore1.Prompter'>"
		    "<method name='AskSecret'><arg type='o' name='device' direction='in'/>"
		    "<arg type='s' name='message' direction='in'/>"
		    "<arg type='a{sv}' name='hints' direction='in'/>"
		    "<arg type='s' name='secret' direction='out'/></method>"
		    "<method name='Cancel'><arg type='o' name='device' direction='in'/></method>"
		    "</interface></node>",
		    NULL);
		g_once_init_leave(&node, n);
	}
	return node->interfaces[0];
}

static const GDBusInterfaceVTable keymux_prompter_vtable = {
    .method_call = keymux_prompter_method_call,
};

/* exports the object once; FALSE with @error set if it cannot */
static gboolean
keymux_prompter_export(KeymuxPrompter *self, GError **error)
{
	if (self->registration_id != 0)
		return TRUE;
	self->registration_id =
	    g_dbus_connection_register_object(keymux_client_get_connection(self->client),
					      self->path,
					      keymux_prompter_info(),
					      &keymux_prompter_vtable,
					      self,
					      NULL,
					      error);
	return self->registration_id != 0;
}

/**
 * keymux_prompter_register:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Puts the prompter on the client's connection and registers it with
 * keymuxd (Manager.RegisterPrompter): the most recently registered
 * prompter is asked.
 */
void
keymux_prompter_register(KeymuxPrompter *self,
			 GCancellable *cancellable,
			 GAsyncReadyCallback callback,
			 gpointer user_data)
{
	GError *error = NULL;

	g_return_if_fail(KEYMUX_IS_PROMPTER(self));
	if (!keymux_prompter_export(self, &error)) {
		g_task_report_error(self, callback, user_data, keymux_prompter_register, error);
		return;
	}
	_keymux_call(_keymux_client_get_manager(self->client),
		     "RegisterPrompter",
		     g_variant_new("(o)", self->path),
		     "()",
		     self,
		     keymux_prompter_register,
		     cancellable,
		     callback,
		     user_data);
}

gboolean
keymux_prompter_register_finish(KeymuxPrompter *self, GAsyncResult *result, GError **error)
{
	return _keymux_void_finish(self, result, keymux_prompter_register, error);
}

/**
 * keymux_prompter_register_sync:
 * @cancellable: (nullable): a #GCancellable
 */
gboolean
keymux_prompter_register_sync(KeymuxPrompter *self, GCancellable *cancellable, GError **error)
{
	g_return_val_if_fail(KEYMUX_IS_PROMPTER(self), FALSE);
	if (!keymux_prompter_export(self, error))
		return FALSE;
	return _keymux_void_sync(_keymux_client_get_manager(self->client),
				 "RegisterPrompter",
				 g_variant_new("(o)", self->path),
				 cancellable,
				 error);
}

/**
 * keymux_prompter_unregister:
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: for @callback
 *
 * Tells keymuxd to ask this prompter no more.
 */
void
keymux_prompter_unregister(KeymuxPrompter *self,
			   GCancellable *cancellable,
			   GAsyncReadyCallback callback,
			   gpointer user_data)
{
	g_return_if_fail(KEYMUX_IS_PROMPTER(self));
	_keymux_call(_keymux_client_get_manager(self->client),
		     "UnregisterPrompter",
		     g_variant_new("(o)", self->path),
		     "()",
		     self,
		     keymux_prompter_unregister,
		     cancellable,
		     callback,
		     user_data);
}

gboolean
keymux_prompter_unregister_finish(KeymuxPrompter *self, GAsyncResult *result, GError **error)
{
	return _keymux_void_finish(self, result, keymux_prompter_unregister, error);
}

/**
 * keymux_prompter_unregister_sync:
 * @cancellable: (nullable): a #GCancellable
 */
gboolean
keymux_prompter_unregister_sync(KeymuxPrompter *self, GCancellable *cancellable, GError **error)
{
	g_return_val_if_fail(KEYMUX_IS_PROMPTER(self), FALSE);
	return _keymux_void_sync(_keymux_client_get_manager(self->client),
				 "UnregisterPrompter",
				 g_variant_new("(o)", self->path),
				 cancellable,
				 error);
}

static void
keymux_prompter_dispose(GObject *object)
{
	KeymuxPrompter *self = KEYMUX_PROMPTER(object);

	if (self->registration_id != 0)
		g_dbus_connection_unregister_object(keymux_client_get_connection(self->client),
						    self->registration_id);
	self->registration_id = 0;
	/* requests the application still holds outlive the prompter */
	for (guint i = 0; i < self->pending->len; i++)
		((KeymuxPromptRequest *)g_ptr_array_index(self->pending, i))->prompter = NULL;
	g_ptr_array_set_size(self->pending, 0);
	g_clear_object(&self->client);
	G_OBJECT_CLASS(keymux_prompter_parent_class)->dispose(object);
}

static void
keymux_prompter_finalize(GObject *object)
{
	g_free(KEYMUX_PROMPTER(object)->path);
	g_ptr_array_unref(KEYMUX_PROMPTER(object)->pending);
	G_OBJECT_CLASS(keymux_prompter_parent_class)->finalize(object);
}

static void
keymux_prompter_class_init(KeymuxPrompterClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = keymux_prompter_dispose;
	object_class->finalize = keymux_prompter_finalize;
	/**
	 * KeymuxPrompter::ask-secret:
	 * @self: the prompter
	 * @request: the question
	 *
	 * keymuxd needs a secret.  Return %TRUE and answer @request (now or
	 * later, with keymux_prompt_request_reply() or
	 * keymux_prompt_request_cancel()); %FALSE lets the next handler try.
	 *
	 * Returns: whether the handler took the request
	 */
	signals[SIGNAL_ASK_SECRET] = g_signal_new("ask-secret",
						  G_TYPE_FROM_CLASS(klass),
						  G_SIGNAL_RUN_LAST,
						  0,
						  g_signal_accumulator_true_handled,
						  NULL,
						  NULL,
						  G_TYPE_BOOLEAN,
						  1,
						  KEYMUX_TYPE_PROMPT_REQUEST);
	/**
	 * KeymuxPrompter::cancelled:
	 * @self: the prompter
	 * @device_path: the object path of the device whose question was
	 *   withdrawn
	 *
	 * keymuxd withdrew its question for @device_path: nobody waits for
	 * the answer any more (the callers left or were cancelled, the
	 * device was unlocked another way or went away).  Close the dialog
	 * asking it.  The requests for @device_path are answered already: a
	 * later keymux_prompt_request_reply() or
	 * keymux_prompt_request_cancel() on them does nothing.
	 */
	signals[SIGNAL_CANCELLED] = g_signal_new("cancelled",
						 G_TYPE_FROM_CLASS(klass),
						 G_SIGNAL_RUN_LAST,
						 0,
						 NULL,
						 NULL,
						 NULL,
						 G_TYPE_NONE,
						 1,
						 G_TYPE_STRING);
}

static void
keymux_prompter_init(KeymuxPrompter *self)
{
	static gint serial = 0;

	self->path = g_strdup_printf(KEYMUX_PROMPTER_PATH "%d", g_atomic_int_add(&serial, 1));
	self->pending = g_ptr_array_new();
}

/**
 * keymux_prompter_new:
 * @client: the client whose connection the prompter is on
 *
 * Returns: (transfer full): a prompter; connect to
 * #KeymuxPrompter::ask-secret, then keymux_prompter_register()
 */
KeymuxPrompter *
keymux_prompter_new(KeymuxClient *client)
{
	KeymuxPrompter *self;

	g_return_val_if_fail(KEYMUX_IS_CLIENT(client), NULL);
	self = g_object_new(KEYMUX_TYPE_PROMPTER, NULL);
	self->client = g_object_ref(client);
	return self;
}
