/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl: a prompter on the terminal, for as long as a command waits
 *
 * When a command is about to use a locked device and stdin is a terminal,
 * keymuxctl registers itself as a prompter (DESIGN.md §5) with libkeymux's
 * KeymuxPrompter: the most recent one, so keymuxd asks here rather than on
 * the desktop.  The prompter runs on a thread of its own, since the
 * command's call blocks the main one; the secret is read on a third, so that a Cancel from keymuxd
 * or a Ctrl-C can answer while it is being typed.  Echo is off while it is typed and back on
 * whatever way the question ends; Ctrl-C answers Cancelled, and the command then fails with
 * Cancelled.  The prompter goes with the connection when keymuxctl exits.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

#include <glib-unix.h>

#include "keymuxctl.h"

typedef struct {
	GMutex lock;
	GCond cond;
	gboolean started;
	GThread *thread;
	GMainContext *context;
	GMainLoop *loop;
	KeymuxClient *client;
	/* below: the prompter thread only */
	KeymuxPrompter *prompter;
	KeymuxPromptRequest *pending; /* the question being typed for */
	guint sigint_id;
	/* the terminal as it was, while echo is off */
	struct termios saved;
	gint echo_off; /* atomic */
	gint readers;  /* atomic: reader threads still on the terminal */
} KmxCliPrompter;

static KmxCliPrompter *kmx_cli_prompter;

static void
kmx_cli_prompter_echo_on(KmxCliPrompter *self)
{
	if (g_atomic_int_compare_and_exchange(&self->echo_off, 1, 0))
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &self->saved);
}

/* the question ends: answered, cancelled, or withdrawn */
static void
kmx_cli_prompter_end(KmxCliPrompter *self)
{
	if (self->sigint_id != 0) {
		g_source_destroy(g_main_context_find_source_by_id(self->context, self->sigint_id));
		self->sigint_id = 0;
	}
	g_clear_object(&self->pending);
}

typedef struct {
	KmxCliPrompter *self;
	KeymuxPromptRequest *request;
	char *text;
	KmxSecret *secret;
	GError *error;
} KmxCliRead;

static void
kmx_cli_read_free(KmxCliRead *r)
{
	g_clear_pointer(&r->secret, kmx_secret_unref);
	g_clear_error(&r->error);
	g_free(r->text);
	g_object_unref(r->request);
	g_atomic_int_dec_and_test(&r->self->readers);
	g_free(r);
}

/* on the prompter thread: what was typed, unless the question ended */
static gboolean
kmx_cli_prompter_read_done(gpointer data)
{
	KmxCliRead *r = data;
	KmxCliPrompter *self = r->self;

	if (self->pending != r->request)
		return G_SOURCE_REMOVE;
	/* libkeymux answers a secret that is not UTF-8 with InvalidArgument */
	if (r->secret == NULL)
		keymux_prompt_request_cancel_with_reason(r->request,
							 r->error != NULL ? r->error->message
									  : "nothing was typed");
	else
		keymux_prompt_request_reply(r->request, kmx_secret_get_string(r->secret));
	kmx_cli_prompter_end(self);
	return G_SOURCE_REMOVE;
}

/* on a thread of its own: the secret, typed without echo */
static gpointer
kmx_cli_prompter_read_thread(gpointer data)
{
	KmxCliRead *r = data;
	KmxCliPrompter *self = r->self;
	struct termios noecho;

	if (tcgetattr(STDIN_FILENO, &self->saved) == 0) {
		noecho = self->saved;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		noecho.c_lflag |= ECHONL;
		g_atomic_int_set(&self->echo_off, 1);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	}
	/* the question only once echo is off */
	fputs(r->text, stderr);
	fflush(stderr);
	r->secret = kmx_cli_read_line(STDIN_FILENO, &r->error);
	kmx_cli_prompter_echo_on(self);
	g_main_context_invoke_full(self->context,
				   G_PRIORITY_DEFAULT,
				   kmx_cli_prompter_read_done,
				   r,
				   (GDestroyNotify)kmx_cli_read_free);
	return NULL;
}

/* Ctrl-C while the secret is typed: Cancelled, the terminal as it was */
static gboolean
kmx_cli_prompter_sigint_cb(gpointer data)
{
	KmxCliPrompter *self = data;

	self->sigint_id = 0;
	kmx_cli_prompter_echo_on(self);
	fputs("\n", stderr);
	if (self->pending != NULL)
		keymux_prompt_request_cancel_with_reason(self->pending,
							 "cancelled with Ctrl-C on the terminal");
	g_clear_object(&self->pending);
	return G_SOURCE_REMOVE;
}

static char *
kmx_cli_prompter_text(const char *message, GVariant *hints)
{
	GString *str = g_string_new(NULL);
	const char *description = NULL;
	const char *kind = NULL;
	gint32 retries = -1;

	g_string_append_printf(str, "%s\n", message);
	if (g_variant_lookup(hints, "description", "&s", &description))
		g_string_append_printf(str, "%s\n", description);
	else if (g_variant_lookup(hints, "retries", "i", &retries) && retries >= 0)
		g_string_append_printf(str, "%d tries left.\n", retries);
	if (g_variant_lookup(hints, "kind", "&s", &kind) && g_str_equal(kind, "admin"))
		g_string_append(str, "Admin PIN: ");
	else if (g_variant_lookup(hints, "pin-retries", "i", &retries) && retries >= 0)
		g_string_append(str, "PIN: ");
	else
		g_string_append(str, "Password: ");
	return g_string_free(str, FALSE);
}

static gboolean
kmx_cli_prompter_ask_cb(KeymuxPrompter *prompter, KeymuxPromptRequest *request, gpointer data)
{
	KmxCliPrompter *self = data;
	g_autoptr(GSource) sigint = NULL;
	KmxCliRead *r;

	if (self->pending != NULL) {
		keymux_prompt_request_cancel_with_reason(request,
							 "keymuxctl already asks for a secret");
		return TRUE;
	}
	self->pending = g_object_ref(request);
	/* on this thread's context: g_unix_signal_add() would attach it to
	 * the main one, blocked in the command's call */
	sigint = g_unix_signal_source_new(SIGINT);
	g_source_set_callback(sigint, kmx_cli_prompter_sigint_cb, self, NULL);
	self->sigint_id = g_source_attach(sigint, self->context);
	r = g_new0(KmxCliRead, 1);
	g_atomic_int_inc(&self->readers);
	r->self = self;
	r->request = g_object_ref(request);
	r->text = kmx_cli_prompter_text(keymux_prompt_request_get_message(request),
					keymux_prompt_request_get_hints(request));
	g_thread_unref(g_thread_new("kmx-tty", kmx_cli_prompter_read_thread, r));
	return TRUE;
}

/* keymuxd no longer needs the answer (the device was unlocked another
 * way); libkeymux has answered the request already */
static void
kmx_cli_prompter_cancelled_cb(KeymuxPrompter *prompter, const char *device_path, gpointer data)
{
	KmxCliPrompter *self = data;

	if (self->pending == NULL ||
	    g_strcmp0(keymux_prompt_request_get_device_path(self->pending), device_path) != 0)
		return;
	kmx_cli_prompter_echo_on(self);
	fputs("\n(no longer needed)\n", stderr);
	kmx_cli_prompter_end(self);
}

static gpointer
kmx_cli_prompter_thread(gpointer data)
{
	KmxCliPrompter *self = data;
	g_autoptr(GError) error = NULL;
	gboolean registered;

	/* the prompter's calls are dispatched on this thread's context */
	g_main_context_push_thread_default(self->context);
	self->prompter = keymux_prompter_new(self->client);
	g_signal_connect(self->prompter, "ask-secret", G_CALLBACK(kmx_cli_prompter_ask_cb), self);
	g_signal_connect(self->prompter,
			 "cancelled",
			 G_CALLBACK(kmx_cli_prompter_cancelled_cb),
			 self);
	registered = keymux_prompter_register_sync(self->prompter, NULL, &error);
	if (!registered)
		g_debug("cannot ask on the terminal: %s", error->message);
	g_mutex_lock(&self->lock);
	self->started = TRUE;
	g_cond_signal(&self->cond);
	g_mutex_unlock(&self->lock);
	if (registered)
		g_main_loop_run(self->loop);
	kmx_cli_prompter_end(self);
	g_signal_handlers_disconnect_by_data(self->prompter, self);
	g_clear_object(&self->prompter);
	g_main_context_pop_thread_default(self->context);
	return NULL;
}

static gboolean
kmx_cli_prompter_is_locked(gpointer object)
{
	if (KEYMUX_IS_KEY(object))
		return keymux_key_get_locked(object);
	return KEYMUX_IS_DEVICE(object) && keymux_device_get_locked(object);
}

/**
 * kmx_cli_prompter_start:
 * @client: the client whose connection keymuxd asks on
 * @object: the #KeymuxKey or #KeymuxDevice a call is about to use
 *
 * Registers keymuxctl as a prompter when @object is locked and stdin is a
 * terminal, before the call is made; once per run.
 */
void
kmx_cli_prompter_start(KeymuxClient *client, gpointer object)
{
	KmxCliPrompter *self;

	if (kmx_cli_prompter != NULL || !kmx_cli_stdin_is_tty() ||
	    !kmx_cli_prompter_is_locked(object))
		return;
	self = g_new0(KmxCliPrompter, 1);
	g_mutex_init(&self->lock);
	g_cond_init(&self->cond);
	self->client = g_object_ref(client);
	self->context = g_main_context_new();
	self->loop = g_main_loop_new(self->context, FALSE);
	kmx_cli_prompter = self;
	self->thread = g_thread_new("kmx-prompter", kmx_cli_prompter_thread, self);
	/* registered before the call that may need it goes out */
	g_mutex_lock(&self->lock);
	while (!self->started)
		g_cond_wait(&self->cond, &self->lock);
	g_mutex_unlock(&self->lock);
}

/**
 * kmx_cli_prompter_stop:
 *
 * The command is done: the terminal as it was, the prompter gone.
 */
void
kmx_cli_prompter_stop(void)
{
	KmxCliPrompter *self = kmx_cli_prompter;

	if (self == NULL || self->thread == NULL)
		return;
	kmx_cli_prompter_echo_on(self);
	g_main_loop_quit(self->loop);
	g_thread_join(g_steal_pointer(&self->thread));
	/* the client goes with the command, whatever a reader still does */
	g_clear_object(&self->client);
	/* a reader still blocked on the terminal (after a Ctrl-C or a
	 * Cancel) uses self: it ends with the process */
	if (g_atomic_int_get(&self->readers) > 0)
		return;
	kmx_cli_prompter = NULL;
	g_main_loop_unref(self->loop);
	g_main_context_unref(self->context);
	g_mutex_clear(&self->lock);
	g_cond_clear(&self->cond);
	g_free(self);
}
