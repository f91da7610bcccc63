/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: who is asked for a secret, and when (DESIGN.md §5)
 *
 * When a request needs a locked device, a secret remembered for it in the
 * login keyring is tried first (one that the device rejects is deleted at
 * once).  Otherwise the most recently registered prompter is asked for its
 * secret, once, then the older ones, then the desktop's system prompter
 * (gcr), if one is on the session bus at that moment; with nobody to ask,
 * the request fails with Locked.  The device is unlocked with the answer,
 * once: a wrong PIN is never retried by the service.  Requests that need
 * the same device while the question is on screen wait for that answer
 * instead of asking again.  A prompter that went away is dropped and the
 * next one asked.  The question is withdrawn (the prompter's Cancel, the
 * gcr prompt closed) as soon as nobody waits for it any more (its callers
 * left), when the device was unlocked another way (the waiters then go
 * on), when the device went away, and after the configured time ([daemon]
 * prompt-timeout), when the waiters get Cancelled.  An answer that has
 * arrived still unlocks the device, whether or not its callers still wait.
 * When the person ticked "remember", the secret goes into the login
 * keyring once the device took it.  Admin secrets (generating a key on a
 * card) are asked for each request on its own and never kept.
 */
#include "config.h"

#include "kmx-error.h"
#include "kmx-manager-private.h"
#include "kmx-remembered.h"

typedef struct {
	KmxRequest *req;
	KmxPromptDone done;
	gulong cancelled_id;
} KmxPromptWaiter;

typedef struct {
	gatomicrefcount ref; /* the question's own, and one per pending callback */
	KmxManager *manager;
	KmxDevice *device;
	KmxPromptInfo info;
	GPtrArray *tried;	   /* KmxPrompter asked already */
	KmxPrompter *prompter;	   /* the one being asked */
	GCancellable *cancellable; /* withdraws the question */
	GPtrArray *waiters;	   /* KmxPromptWaiter */
	KmxSecret *secret;
	guint timeout_id;
	gboolean unlocking;
	gboolean finished;
	gboolean from_keyring; /* the secret is the remembered one */
	gboolean remember;     /* the person asked to remember it */
	char *key_label;       /* of the key to be used, if any */
} KmxPrompt;

static KmxPrompt *
kmx_prompt_ref(KmxPrompt *prompt)
{
	g_atomic_ref_count_inc(&prompt->ref);
	return prompt;
}

static void
kmx_prompt_unref(KmxPrompt *prompt)
{
	if (!g_atomic_ref_count_dec(&prompt->ref))
		return;
	g_clear_pointer(&prompt->secret, kmx_secret_unref);
	g_ptr_array_unref(prompt->waiters);
	g_ptr_array_unref(prompt->tried);
	g_clear_object(&prompt->prompter);
	g_object_unref(prompt->cancellable);
	g_free(prompt->info.caller);
	g_free(prompt->info.operation);
	g_free(prompt->info.key_id);
	g_free(prompt->info.message);
	g_free(prompt->info.description);
	g_free(prompt->key_label);
	g_object_unref(prompt->device);
	g_object_unref(prompt->manager);
	g_free(prompt);
}

/* every waiter gets the result; callers that left get Cancelled */
static void
kmx_prompt_finish(KmxPrompt *prompt, GError *error)
{
	g_autoptr(GPtrArray) waiters = NULL;

	if (prompt->finished) {
		g_clear_error(&error);
		return;
	}
	prompt->finished = TRUE;
	if (prompt->info.kind == KMX_PROMPT_USER &&
	    g_hash_table_lookup(kmx_manager_get_prompts(prompt->manager), prompt->device) == prompt)
		g_hash_table_remove(kmx_manager_get_prompts(prompt->manager), prompt->device);
	g_clear_handle_id(&prompt->timeout_id, g_source_remove);
	/* withdraw the question if it is still asked */
	g_cancellable_cancel(prompt->cancellable);
	waiters = g_steal_pointer(&prompt->waiters);
	prompt->waiters = g_ptr_array_new();
	for (guint i = 0; i < waiters->len; i++) {
		KmxPromptWaiter *w = g_ptr_array_index(waiters, i);
		GCancellable *c = kmx_request_get_cancellable(w->req);

		g_signal_handler_disconnect(c, w->cancelled_id);
		if (g_cancellable_is_cancelled(c))
			w->done(
			    w->req,
			    NULL,
			    g_error_new(KMX_ERROR,
					KMX_ERROR_CANCELLED,
					"the request was cancelled while waiting for the secret"));
		else
			w->done(w->req, prompt->secret, error != NULL ? g_error_copy(error) : NULL);
		g_free(w);
	}
	g_clear_error(&error);
	/* a callback still pending (the prompter's answer, the unlock) holds
	 * its own reference */
	kmx_prompt_unref(prompt);
}

static gboolean
kmx_prompt_anyone_waiting(KmxPrompt *prompt)
{
	for (guint i = 0; i < prompt->waiters->len; i++) {
		KmxPromptWaiter *w = g_ptr_array_index(prompt->waiters, i);
		if (!g_cancellable_is_cancelled(kmx_request_get_cancellable(w->req)))
			return TRUE;
	}
	return FALSE;
}

static gboolean
kmx_prompt_nobody_waits_cb(gpointer user_data)
{
	KmxPrompt *prompt = user_data;

	if (!prompt->finished && !prompt->unlocking && !kmx_prompt_anyone_waiting(prompt))
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_CANCELLED,
					      "nobody waits for the secret any more"));
	return G_SOURCE_REMOVE;
}

static void
kmx_prompt_waiter_cancelled_cb(GCancellable *cancellable, KmxPrompt *prompt)
{
	/* may run on any thread: look at it on the main thread */
	g_idle_add_full(G_PRIORITY_DEFAULT,
			kmx_prompt_nobody_waits_cb,
			kmx_prompt_ref(prompt),
			(GDestroyNotify)kmx_prompt_unref);
}

static void kmx_prompt_ask(KmxPrompt *prompt);
static void kmx_prompt_describe(KmxPrompt *prompt);

static void
kmx_prompt_unlock_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxPrompt *prompt = user_data;
	GError *error = NULL;

	prompt->unlocking = FALSE;
	kmx_device_flush_state(prompt->device);
	if (!g_task_propagate_boolean(G_TASK(res), &error)) {
		/* a remembered secret the device rejects is deleted at once, and
		 * the person asked */
		if (prompt->from_keyring &&
		    g_error_matches(error, KMX_ERROR, KMX_ERROR_BAD_SECRET) && !prompt->finished) {
			g_message("the secret of %s remembered in the login keyring was rejected: "
				  "forgetting it",
				  kmx_device_get_id(prompt->device));
			kmx_remembered_clear(kmx_device_get_id(prompt->device));
			g_clear_error(&error);
			g_clear_pointer(&prompt->secret, kmx_secret_unref);
			prompt->from_keyring = FALSE;
			kmx_prompt_describe(prompt); /* a try less on a card */
			kmx_prompt_ask(prompt);
		} else {
			kmx_prompt_finish(prompt, error);
		}
	} else {
		if (!kmx_device_is_locked(prompt->device)) {
			kmx_device_keep_secret(prompt->device, prompt->secret);
			if (prompt->remember && !prompt->from_keyring) {
				g_autofree char *label = kmx_device_dup_label(prompt->device);
				kmx_remembered_store(kmx_device_get_id(prompt->device),
						     label,
						     prompt->secret);
			}
		}
		kmx_prompt_finish(prompt, NULL);
	}
	kmx_prompt_unref(prompt);
}

static void
kmx_prompt_unlock_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
	KmxPrompt *prompt = data;
	GError *error = NULL;

	if (!kmx_device_unlock(prompt->device, prompt->secret, NULL, &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void kmx_prompt_answered(KmxPrompt *prompt, GAsyncResult *res);

/* one try with prompt->secret: a wrong PIN is never retried by the service */
static void
kmx_prompt_unlock(KmxPrompt *prompt)
{
	g_autoptr(GTask) task = NULL;

	prompt->unlocking = TRUE;
	task = g_task_new(NULL, NULL, kmx_prompt_unlock_done, kmx_prompt_ref(prompt));
	g_task_set_task_data(task, prompt, NULL);
	kmx_executor_run(kmx_device_get_storage_executor(prompt->device),
			 task,
			 kmx_prompt_unlock_thread);
}

static void
kmx_prompt_ask_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxPrompt *prompt = user_data;

	if (!prompt->finished)
		kmx_prompt_answered(prompt, res);
	else
		g_clear_object(&prompt->prompter);
	kmx_prompt_unref(prompt);
}

static void
kmx_prompt_answered(KmxPrompt *prompt, GAsyncResult *res)
{
	g_autoptr(KmxPrompter) prompter = g_steal_pointer(&prompt->prompter);
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxSecret)
	    secret = kmx_prompter_ask_finish(prompter, res, &prompt->remember, &error);

	if (secret == NULL) {
		if (kmx_prompter_is_gone(prompter, error)) {
			g_debug("a prompter is gone (%s); asking the next one", error->message);
			if (prompter != kmx_manager_get_system_prompter(prompt->manager))
				kmx_manager_remove_prompter(prompt->manager, prompter);
			kmx_prompt_ask(prompt);
			return;
		}
		kmx_error_normalize(&error);
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_CANCELLED,
					      "no secret was given for %s: %s",
					      kmx_device_get_id(prompt->device),
					      error->message));
		return;
	}
	if (kmx_secret_is_empty(secret)) {
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_CANCELLED,
					      "the prompter gave no secret for %s",
					      kmx_device_get_id(prompt->device)));
		return;
	}
	prompt->secret = g_steal_pointer(&secret);
	if (prompt->info.kind == KMX_PROMPT_ADMIN) {
		kmx_prompt_finish(prompt, NULL);
		return;
	}
	/* the person answered: the device is unlocked with it even when the
	 * callers gave up meanwhile (DESIGN.md §5) */
	kmx_prompt_unlock(prompt);
}

static void
kmx_prompt_ask(KmxPrompt *prompt)
{
	g_autoptr(GPtrArray) prompters = kmx_manager_get_prompters(prompt->manager);
	const char *id = kmx_device_get_id(prompt->device);

	KmxPrompter *system = kmx_manager_get_system_prompter(prompt->manager);

	if (!kmx_prompt_anyone_waiting(prompt)) {
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_CANCELLED,
					      "nobody waits for the secret any more"));
		return;
	}
	/* the most recent first, each once, then the desktop's */
	for (guint i = prompters->len; i > 0; i--) {
		KmxPrompter *p = g_ptr_array_index(prompters, i - 1);
		if (!g_ptr_array_find(prompt->tried, p, NULL)) {
			prompt->prompter = g_object_ref(p);
			break;
		}
	}
	if (prompt->prompter == NULL && system != NULL &&
	    !g_ptr_array_find(prompt->tried, system, NULL))
		prompt->prompter = g_object_ref(system);
	if (prompt->prompter == NULL) {
		kmx_prompt_finish(
		    prompt,
		    g_error_new(KMX_ERROR,
				KMX_ERROR_LOCKED,
				"%s is locked and nobody can be asked for its secret (no "
				"prompter is registered, no system prompter is on the "
				"session bus): unlock it first (keymuxctl unlock %s, or "
				"Device.Unlock)",
				id,
				id));
		return;
	}
	g_ptr_array_add(prompt->tried, g_object_ref(prompt->prompter));
	kmx_prompter_ask_async(prompt->prompter,
			       &prompt->info,
			       prompt->cancellable,
			       kmx_prompt_ask_cb,
			       kmx_prompt_ref(prompt));
}

static gboolean
kmx_prompt_timeout_cb(gpointer user_data)
{
	KmxPrompt *prompt = user_data;

	prompt->timeout_id = 0;
	if (prompt->unlocking)
		return G_SOURCE_REMOVE; /* the answer came: the unlock decides */
	/* unlocked meanwhile another way: the waiters go on */
	if (prompt->info.kind == KMX_PROMPT_USER && !kmx_device_is_locked(prompt->device)) {
		kmx_prompt_finish(prompt, NULL);
		return G_SOURCE_REMOVE;
	}
	kmx_prompt_finish(prompt,
			  g_error_new(KMX_ERROR,
				      KMX_ERROR_CANCELLED,
				      "nobody answered the question for the secret of %s in %u s",
				      kmx_device_get_id(prompt->device),
				      kmx_manager_get_prompt_timeout(prompt->manager)));
	return G_SOURCE_REMOVE;
}

static void
kmx_prompt_add_waiter(KmxPrompt *prompt, KmxRequest *req, KmxPromptDone done)
{
	KmxPromptWaiter *w = g_new0(KmxPromptWaiter, 1);

	w->req = req;
	w->done = done;
	w->cancelled_id = g_signal_connect(kmx_request_get_cancellable(req),
					   "cancelled",
					   G_CALLBACK(kmx_prompt_waiter_cancelled_cb),
					   prompt);
	g_ptr_array_add(prompt->waiters, w);
}

/* who asks, for what, and how many tries are left, for a person; again
 * after a try that spent one */
static void
kmx_prompt_describe(KmxPrompt *prompt)
{
	KmxPromptInfo *info = &prompt->info;
	g_autofree char *label = kmx_device_dup_label(info->device);
	GString *str = g_string_new(NULL);

	info->retries = info->kind == KMX_PROMPT_ADMIN ? kmx_device_get_admin_retries(info->device)
						       : kmx_device_get_pin_retries(info->device);
	if (prompt->key_label != NULL)
		g_string_append_printf(str,
				       "%s wants to %s with the key “%s” (%.16s) of “%s” (%s).",
				       info->caller,
				       info->operation,
				       prompt->key_label,
				       info->key_id,
				       label,
				       kmx_device_get_id(info->device));
	else
		g_string_append_printf(str,
				       "%s wants to %s on “%s” (%s).",
				       info->caller,
				       info->operation,
				       label,
				       kmx_device_get_id(info->device));
	if (info->retries == 1)
		g_string_append(str, " 1 try is left.");
	else if (info->retries > 1)
		g_string_append_printf(str, " %d tries are left.", info->retries);
	g_free(info->description);
	info->description = g_string_free(str, FALSE);
}

static void
kmx_prompt_remembered_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxPrompt *prompt = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxSecret) secret = kmx_remembered_lookup_finish(res, &error);

	if (prompt->finished) {
		kmx_prompt_unref(prompt);
		return;
	}
	if (error != NULL)
		g_debug("no remembered secret for %s: %s",
			kmx_device_get_id(prompt->device),
			error->message);
	if (secret != NULL && !kmx_secret_is_empty(secret)) {
		g_debug("unlocking %s with the secret remembered in the login keyring",
			kmx_device_get_id(prompt->device));
		prompt->secret = g_steal_pointer(&secret);
		prompt->from_keyring = TRUE;
		kmx_prompt_unlock(prompt);
	} else {
		kmx_prompt_ask(prompt);
	}
	kmx_prompt_unref(prompt);
}

static void
kmx_prompt_start(KmxManager *self, KmxRequest *req, KmxPromptKind kind, KmxPromptDone done)
{
	KmxDevice *device = kmx_request_get_device(req);
	KmxKey *key = kmx_request_get_key(req);
	KmxCaller *caller = kmx_request_get_caller(req);
	g_autofree char *label = kmx_device_dup_label(device);
	KmxPrompt *prompt = g_new0(KmxPrompt, 1);
	guint timeout = kmx_manager_get_prompt_timeout(self);
	const char *secret_name = kmx_device_get_pin_retries(device) >= 0 ? "PIN" : "password";

	g_atomic_ref_count_init(&prompt->ref);
	prompt->manager = g_object_ref(self);
	prompt->device = g_object_ref(device);
	prompt->cancellable = g_cancellable_new();
	prompt->waiters = g_ptr_array_new();
	prompt->tried = g_ptr_array_new_with_free_func(g_object_unref);
	prompt->info.device = device;
	prompt->info.kind = kind;
	prompt->info.retries = kind == KMX_PROMPT_ADMIN ? kmx_device_get_admin_retries(device)
							: kmx_device_get_pin_retries(device);
	prompt->info.caller = g_strdup(kmx_caller_get_exe(caller) != NULL
					   ? kmx_caller_get_exe(caller)
					   : kmx_caller_get_name(caller));
	prompt->info.operation = g_strdup(kmx_request_kind_to_string(kmx_request_get_kind(req)));
	prompt->info.key_id = key != NULL ? g_strdup(kmx_key_get_id(key)) : NULL;
	if (key != NULL && kmx_request_get_kind(req) != KMX_REQUEST_GENERATE_KEY &&
	    kmx_request_get_kind(req) != KMX_REQUEST_IMPORT_KEY)
		prompt->key_label = kmx_key_dup_label(key);
	kmx_prompt_describe(prompt);
	if (kind == KMX_PROMPT_ADMIN)
		prompt->info.message = g_strdup_printf("Enter the admin PIN of “%s” to %s a key",
						       label,
						       prompt->info.operation);
	else
		prompt->info.message =
		    g_strdup_printf("Enter the %s to unlock “%s”", secret_name, label);
	kmx_prompt_add_waiter(prompt, req, done);
	if (kind == KMX_PROMPT_USER)
		g_hash_table_insert(kmx_manager_get_prompts(self), device, prompt);
	if (timeout > 0)
		prompt->timeout_id = g_timeout_add_seconds(timeout, kmx_prompt_timeout_cb, prompt);
	/* admin secrets are never kept, so never remembered */
	if (kind == KMX_PROMPT_USER)
		kmx_remembered_lookup_async(kmx_device_get_id(device),
					    prompt->cancellable,
					    kmx_prompt_remembered_cb,
					    kmx_prompt_ref(prompt));
	else
		kmx_prompt_ask(prompt);
}

/**
 * kmx_manager_prompt_unlock:
 * @done: gets the result on the main thread (the device is unlocked then)
 *
 * Unlocks the request's device through a prompter, or joins the question
 * already asked for it.
 */
void
kmx_manager_prompt_unlock(KmxManager *self, KmxRequest *req, KmxPromptDone done)
{
	KmxPrompt *prompt =
	    g_hash_table_lookup(kmx_manager_get_prompts(self), kmx_request_get_device(req));

	if (prompt != NULL && !prompt->finished) {
		kmx_prompt_add_waiter(prompt, req, done);
		return;
	}
	kmx_prompt_start(self, req, KMX_PROMPT_USER, done);
}

/**
 * kmx_manager_prompt_admin:
 * @done: gets the admin secret; it is not kept
 *
 * Asks for the admin secret for this request alone: a wrong one shared by
 * several requests would be tried several times.
 */
void
kmx_manager_prompt_admin(KmxManager *self, KmxRequest *req, KmxPromptDone done)
{
	kmx_prompt_start(self, req, KMX_PROMPT_ADMIN, done);
}

/**
 * kmx_manager_prompts_device_changed:
 *
 * A device's state changed: a question for a device that was unlocked
 * another way, or that went away, is withdrawn.
 */
void
kmx_manager_prompts_device_changed(KmxManager *self, KmxDevice *device)
{
	KmxPrompt *prompt = g_hash_table_lookup(kmx_manager_get_prompts(self), device);

	if (prompt == NULL || prompt->finished || prompt->unlocking)
		return;
	if (!kmx_device_is_available(device))
		kmx_prompt_finish(prompt,
				  g_error_new(KMX_ERROR,
					      KMX_ERROR_UNAVAILABLE,
					      "device %s went away",
					      kmx_device_get_id(device)));
	else if (!kmx_device_is_locked(device))
		kmx_prompt_finish(prompt, NULL);
}

/**
 * kmx_manager_prompts_cancel_all:
 *
 * The daemon is stopping: every question is withdrawn.
 */
void
kmx_manager_prompts_cancel_all(KmxManager *self)
{
	GHashTable *prompts = kmx_manager_get_prompts(self);
	g_autoptr(GList) values = g_hash_table_get_values(prompts);

	for (GList *l = values; l != NULL; l = l->next)
		kmx_prompt_finish(
		    l->data,
		    g_error_new(KMX_ERROR, KMX_ERROR_CANCELLED, "keymuxd is stopping"));
}
