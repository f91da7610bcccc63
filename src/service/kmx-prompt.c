/* keymux: asking a prompter for a device's secret
 *
 * When a locked device is used, the most recently registered prompter still
 * on the bus is asked for the secret, once, and the device is unlocked with
 * the answer, once: a wrong PIN is never retried by the service.  Requests
 * that need the same device while a question is on screen wait for that
 * answer instead of asking again, so a person sees one dialog.  A prompter
 * that left the bus is dropped and the next one asked.  A request whose
 * caller left meanwhile gets Cancelled, and an answer that no waiting
 * caller wants anymore unlocks nothing.
 */
#include "config.h"

#include "kmx-daemon-private.h"
#include "kmx-error.h"
#include "kmx-names.h"

typedef struct {
	KmxRequest *req;
	KmxPromptDone done;
} KmxPromptWaiter;

typedef struct {
	KmxDaemon *daemon;
	KmxDevice *device;
	char *operation;       /* of the request that asked first */
	KmxPrompter *prompter; /* a copy: the list may change meanwhile */
	KmxSecret *secret;
	GPtrArray *waiters; /* KmxPromptWaiter */
} KmxPrompt;

static void
kmx_prompt_free(KmxPrompt *prompt)
{
	kmx_prompter_free(prompt->prompter);
	g_clear_pointer(&prompt->secret, kmx_secret_unref);
	g_ptr_array_unref(prompt->waiters);
	g_object_unref(prompt->device);
	g_free(prompt->operation);
	g_free(prompt);
}

/* every waiter gets the result: callers that left get Cancelled */
static void
kmx_prompt_finish(KmxPrompt *prompt, GError *error)
{
	g_hash_table_remove(kmx_daemon_get_prompts(prompt->daemon), prompt->device);
	for (guint i = 0; i < prompt->waiters->len; i++) {
		KmxPromptWaiter *w = g_ptr_array_index(prompt->waiters, i);

		if (g_cancellable_is_cancelled(w->req->cancellable))
			w->done(
			    w->req,
			    g_error_new(KMX_ERROR,
					KMX_ERROR_CANCELLED,
					"the request was cancelled while waiting for the secret"));
		else
			w->done(w->req, error != NULL ? g_error_copy(error) : NULL);
		g_free(w);
	}
	g_ptr_array_set_size(prompt->waiters, 0);
	g_clear_error(&error);
	kmx_prompt_free(prompt);
}

static gboolean
kmx_prompt_anyone_waiting(KmxPrompt *prompt)
{
	for (guint i = 0; i < prompt->waiters->len; i++) {
		KmxPromptWaiter *w = g_ptr_array_index(prompt->waiters, i);
		if (!g_cancellable_is_cancelled(w->req->cancellable))
			return TRUE;
	}
	return FALSE;
}

static void
kmx_prompt_unlock_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	GError *error = NULL;

	if (!g_task_propagate_boolean(G_TASK(res), &error))
		kmx_prompt_finish(user_data, error);
	else
		kmx_prompt_finish(user_data, NULL);
}

static void
kmx_prompt_unlock_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
	KmxPrompt *prompt = data;
	GError *error = NULL;

	if (!kmx_device_unlock(prompt->device, prompt->secret, cancellable, &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static gboolean
kmx_prompter_is_gone(const GError *error)
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

static void kmx_prompt_ask(KmxPrompt *prompt);

static void
kmx_prompt_ask_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxPrompt *prompt = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autoptr(GTask) task = NULL;
	g_autoptr(GVariant) secret = NULL;
	const char *s;
	gsize len = 0;

	if (reply == NULL) {
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			kmx_prompt_finish(
			    prompt,
			    g_error_new(KMX_ERROR, KMX_ERROR_CANCELLED, "keymuxd is stopping"));
			return;
		}
		if (kmx_prompter_is_gone(error)) {
			g_debug("prompter %s %s is gone (%s); trying the next one",
				prompt->prompter->sender,
				prompt->prompter->path,
				error->message);
			kmx_daemon_drop_prompter(prompt->daemon, prompt->prompter);
			kmx_prompt_ask(prompt);
			return;
		}
		g_dbus_error_strip_remote_error(error);
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_CANCELLED,
					      "no secret was given for %s: %s",
					      kmx_device_get_id(prompt->device),
					      error->message));
		return;
	}
	secret = g_variant_get_child_value(reply, 0);
	s = g_variant_get_string(secret, &len);
	prompt->secret = kmx_secret_new_from_data(s, len);
	/* our copy is in secret memory now; wipe the message's */
	kmx_secure_zero((gpointer)s, len);
	if (kmx_secret_is_empty(prompt->secret)) {
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_CANCELLED,
					      "the prompter gave no secret for %s",
					      kmx_device_get_id(prompt->device)));
		return;
	}
	if (!kmx_prompt_anyone_waiting(prompt)) {
		/* whoever asked is gone: the answer opens nothing */
		kmx_prompt_finish(prompt, NULL);
		return;
	}
	/* one try only: a wrong PIN is never retried by the service */
	task = g_task_new(NULL, NULL, kmx_prompt_unlock_done, prompt);
	g_task_set_task_data(task, prompt, NULL);
	kmx_executor_run(kmx_device_get_executor(prompt->device), task, kmx_prompt_unlock_thread);
}

static void
kmx_prompt_ask(KmxPrompt *prompt)
{
	KmxDevice *device = prompt->device;
	g_autofree char *device_path = kmx_daemon_device_path(device);
	g_autofree char *label = kmx_device_dup_label(device);
	g_autofree char *message = NULL;
	g_autoptr(GVariantBuilder) hints = g_variant_builder_new(G_VARIANT_TYPE_VARDICT);

	kmx_prompter_free(prompt->prompter);
	prompt->prompter = kmx_daemon_get_prompter(prompt->daemon);
	if (prompt->prompter == NULL) {
		kmx_prompt_finish(
		    prompt,
		    g_error_new(KMX_ERROR,
				KMX_ERROR_LOCKED,
				"%s is locked and no prompter is registered: unlock it "
				"first (keymuxctl unlock %s, or Device.Unlock)",
				kmx_device_get_id(device),
				kmx_device_get_id(device)));
		return;
	}
	message = g_strdup_printf("Enter the %s to unlock “%s”",
				  kmx_device_get_pin_retries(device) >= 0 ? "PIN" : "password",
				  label);
	g_variant_builder_add(hints,
			      "{sv}",
			      "device-id",
			      g_variant_new_string(kmx_device_get_id(device)));
	g_variant_builder_add(hints, "{sv}", "label", g_variant_new_string(label));
	g_variant_builder_add(hints,
			      "{sv}",
			      "pin-retries",
			      g_variant_new_int32(kmx_device_get_pin_retries(device)));
	g_variant_builder_add(hints, "{sv}", "operation", g_variant_new_string(prompt->operation));
	g_dbus_connection_call(
	    kmx_daemon_get_connection(prompt->daemon),
	    prompt->prompter->sender,
	    prompt->prompter->path,
	    KMX_DBUS_PROMPTER_INTERFACE,
	    "AskSecret",
	    g_variant_new("(os@a{sv})", device_path, message, g_variant_builder_end(hints)),
	    G_VARIANT_TYPE("(s)"),
	    G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    G_MAXINT, /* a person is typing: no timeout */
	    kmx_daemon_get_cancellable(prompt->daemon),
	    kmx_prompt_ask_cb,
	    prompt);
}

/**
 * kmx_daemon_prompt_unlock:
 * @req: a request on a locked device
 * @done: gets the result, on the main thread
 *
 * Unlocks req->device through the prompter, or joins the question already
 * asked for it.
 */
void
kmx_daemon_prompt_unlock(KmxDaemon *self, KmxRequest *req, KmxPromptDone done)
{
	GHashTable *prompts = kmx_daemon_get_prompts(self);
	KmxPrompt *prompt = g_hash_table_lookup(prompts, req->device);
	KmxPromptWaiter *w = g_new0(KmxPromptWaiter, 1);

	w->req = req;
	w->done = done;
	if (prompt != NULL) {
		g_ptr_array_add(prompt->waiters, w);
		return;
	}
	prompt = g_new0(KmxPrompt, 1);
	prompt->daemon = self;
	prompt->device = g_object_ref(req->device);
	prompt->operation = g_strdup(req->operation);
	prompt->waiters = g_ptr_array_new();
	g_ptr_array_add(prompt->waiters, w);
	g_hash_table_insert(prompts, prompt->device, prompt);
	kmx_prompt_ask(prompt);
}
