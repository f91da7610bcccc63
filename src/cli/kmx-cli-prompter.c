/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl: a prompter on the terminal, for as long as a command waits
 *
 * When a command is about to use a locked device and stdin is a terminal,
 * keymuxctl registers itself as a prompter (DESIGN.md §5): the most recent
 * one, so keymuxd asks here rather than on the desktop.  The D-Bus side
 * runs on a thread of its own, since the command's call blocks the main
 * one; the secret is read on a third, so that a Cancel from keymuxd or a
 * Ctrl-C can answer while it is being typed.  Echo is off while it is
 * typed and back on whatever way the question ends; Ctrl-C answers
 * Cancelled, and the command then fails with Cancelled.  The prompter goes
 * with the connection when keymuxctl exits.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

#include <glib-unix.h>

#include "keymuxctl.h"

#define KMX_CLI_PROMPTER_PATH "/org/keymux/keymuxctl/Prompter"

typedef struct {
	GMutex lock;
	GCond cond;
	gboolean started;
	GThread *thread;
	GMainContext *context;
	GMainLoop *loop;
	GDBusConnection *bus;
	/* below: the prompter thread only */
	KmxDBusPrompter *skeleton;
	GDBusMethodInvocation *pending; /* the question being typed for */
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
	GDBusMethodInvocation *invocation;
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
	g_object_unref(r->invocation);
	g_atomic_int_dec_and_test(&r->self->readers);
	g_free(r);
}

/* on the prompter thread: what was typed, unless the question ended */
static gboolean
kmx_cli_prompter_read_done(gpointer data)
{
	KmxCliRead *r = data;
	KmxCliPrompter *self = r->self;

	if (self->pending != r->invocation)
		return G_SOURCE_REMOVE;
	if (r->secret == NULL) {
		g_dbus_method_invocation_return_dbus_error(r->invocation,
							   KMX_DBUS_ERROR_PREFIX "Cancelled",
							   r->error != NULL ? r->error->message
									    : "nothing was typed");
	} else if (!g_utf8_validate((const char *)kmx_secret_get_data(r->secret),
				    (gssize)kmx_secret_get_length(r->secret),
				    NULL)) {
		g_dbus_method_invocation_return_dbus_error(r->invocation,
							   KMX_DBUS_ERROR_PREFIX "InvalidArgument",
							   "the secret typed is not UTF-8");
	} else {
		g_dbus_method_invocation_return_value(
		    r->invocation,
		    g_variant_new("(s)", kmx_secret_get_string(r->secret)));
	}
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
		g_dbus_method_invocation_return_dbus_error(self->pending,
							   KMX_DBUS_ERROR_PREFIX "Cancelled",
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
kmx_cli_prompter_handle_ask(KmxDBusPrompter *iface,
			    GDBusMethodInvocation *invocation,
			    const char *device,
			    const char *message,
			    GVariant *hints,
			    gpointer data)
{
	KmxCliPrompter *self = data;
	g_autoptr(GSource) sigint = NULL;
	KmxCliRead *r;

	if (self->pending != NULL) {
		g_dbus_method_invocation_return_dbus_error(invocation,
							   KMX_DBUS_ERROR_PREFIX "Cancelled",
							   "keymuxctl already asks for a secret");
		return TRUE;
	}
	self->pending = g_object_ref(invocation);
	/* on this thread's context: g_unix_signal_add() would attach it to
	 * the main one, blocked in the command's call */
	sigint = g_unix_signal_source_new(SIGINT);
	g_source_set_callback(sigint, kmx_cli_prompter_sigint_cb, self, NULL);
	self->sigint_id = g_source_attach(sigint, self->context);
	r = g_new0(KmxCliRead, 1);
	g_atomic_int_inc(&self->readers);
	r->self = self;
	r->invocation = g_object_ref(invocation);
	r->text = kmx_cli_prompter_text(message, hints);
	g_thread_unref(g_thread_new("kmx-tty", kmx_cli_prompter_read_thread, r));
	return TRUE;
}

/* keymuxd no longer needs the answer (the device was unlocked another way) */
static gboolean
kmx_cli_prompter_handle_cancel(KmxDBusPrompter *iface,
			       GDBusMethodInvocation *invocation,
			       const char *device,
			       gpointer data)
{
	KmxCliPrompter *self = data;

	if (self->pending != NULL) {
		kmx_cli_prompter_echo_on(self);
		fputs("\n(no longer needed)\n", stderr);
		g_dbus_method_invocation_return_dbus_error(self->pending,
							   KMX_DBUS_ERROR_PREFIX "Cancelled",
							   "withdrawn");
		kmx_cli_prompter_end(self);
	}
	kmx_dbus_prompter_complete_cancel(iface, invocation);
	return TRUE;
}

static gpointer
kmx_cli_prompter_thread(gpointer data)
{
	KmxCliPrompter *self = data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;

	g_main_context_push_thread_default(self->context);
	self->skeleton = kmx_dbus_prompter_skeleton_new();
	g_signal_connect(self->skeleton,
			 "handle-ask-secret",
			 G_CALLBACK(kmx_cli_prompter_handle_ask),
			 self);
	g_signal_connect(self->skeleton,
			 "handle-cancel",
			 G_CALLBACK(kmx_cli_prompter_handle_cancel),
			 self);
	if (g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(self->skeleton),
					     self->bus,
					     KMX_CLI_PROMPTER_PATH,
					     &error))
		reply = g_dbus_connection_call_sync(self->bus,
						    KMX_DBUS_NAME,
						    KMX_DBUS_PATH,
						    KMX_DBUS_MANAGER_INTERFACE,
						    "RegisterPrompter",
						    g_variant_new("(o)", KMX_CLI_PROMPTER_PATH),
						    NULL,
						    G_DBUS_CALL_FLAGS_NONE,
						    -1,
						    NULL,
						    &error);
	if (reply == NULL)
		g_debug("cannot ask on the terminal: %s", error->message);
	g_mutex_lock(&self->lock);
	self->started = TRUE;
	g_cond_signal(&self->cond);
	g_mutex_unlock(&self->lock);
	if (reply != NULL)
		g_main_loop_run(self->loop);
	kmx_cli_prompter_end(self);
	g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(self->skeleton));
	g_clear_object(&self->skeleton);
	g_main_context_pop_thread_default(self->context);
	return NULL;
}

static gboolean
kmx_cli_prompter_is_locked(gpointer proxy)
{
	g_autoptr(GVariant)
	    locked = g_dbus_proxy_get_cached_property(G_DBUS_PROXY(proxy), "Locked");

	return locked != NULL && g_variant_is_of_type(locked, G_VARIANT_TYPE_BOOLEAN) &&
	       g_variant_get_boolean(locked);
}

/**
 * kmx_cli_prompter_start:
 * @proxy: the key or device a call is about to use
 *
 * Registers keymuxctl as a prompter when @proxy is locked and stdin is a
 * terminal, before the call is made; once per run.
 */
void
kmx_cli_prompter_start(gpointer proxy)
{
	KmxCliPrompter *self;

	if (kmx_cli_prompter != NULL || !kmx_cli_stdin_is_tty() ||
	    !kmx_cli_prompter_is_locked(proxy))
		return;
	self = g_new0(KmxCliPrompter, 1);
	g_mutex_init(&self->lock);
	g_cond_init(&self->cond);
	self->bus = g_object_ref(g_dbus_proxy_get_connection(G_DBUS_PROXY(proxy)));
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
	/* a reader still blocked on the terminal (after a Ctrl-C or a
	 * Cancel) uses self: it ends with the process */
	if (g_atomic_int_get(&self->readers) > 0)
		return;
	kmx_cli_prompter = NULL;
	g_main_loop_unref(self->loop);
	g_main_context_unref(self->context);
	g_object_unref(self->bus);
	g_mutex_clear(&self->lock);
	g_cond_clear(&self->cond);
	g_free(self);
}
