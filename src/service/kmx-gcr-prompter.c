/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the desktop's system prompter, through gcr
 *
 * GcrSystemPrompt talks to org.gnome.keyring.SystemPrompter, which GNOME
 * Shell implements (and gcr-prompter elsewhere), with gcr's secret
 * exchange: the password crosses the bus encrypted.  Whether a system
 * prompter is there is asked at each question (owned on the session bus,
 * or activatable), never decided once at start-up.  The prompt is closed
 * once it is answered, and when the question is withdrawn (gcr closes it
 * when its cancellable fires).  For the user secret it offers "Remember in
 * my login keyring".  gcr (and libgcrypt with it) is loaded at the first
 * question, from the keymux-gcr module (src/modules/kmx-module-gcr.c);
 * without it there is no system prompter and the next prompter is asked.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-gcr-prompter.h"
#include "kmx-module.h"

static KmxModule kmx_gcr_module = {
    .name = "keymux-gcr",
    .symbol = "kmx_module_gcr_get",
    .needs = "the desktop's password prompt needs gcr (package libgcr-base-3-1)",
};

struct _KmxGcrPrompter {
	KmxPrompter parent_instance;
	GDBusConnection *connection;
	char *bus_name;
};

G_DEFINE_TYPE(KmxGcrPrompter, kmx_gcr_prompter, KMX_TYPE_PROMPTER)

typedef struct {
	KmxPromptKind kind;
	char *title;
	char *message;
	char *description;
	char *warning;
	const KmxModuleGcr *gcr;
	GObject *prompt;
	gboolean remember;
} KmxGcrAsk;

static void
kmx_gcr_ask_free(KmxGcrAsk *ask)
{
	if (ask->prompt != NULL) {
		ask->gcr->close(ask->prompt);
		g_object_unref(ask->prompt);
	}
	g_free(ask->title);
	g_free(ask->message);
	g_free(ask->description);
	g_free(ask->warning);
	g_free(ask);
}

static void
kmx_gcr_password_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	KmxGcrAsk *ask = g_task_get_task_data(task);
	GError *error = NULL;
	const char *password = ask->gcr->password_finish(source, res, &error);

	if (error != NULL) {
		g_task_return_error(task, error);
		return;
	}
	if (password == NULL) {
		g_task_return_new_error(task,
					KMX_ERROR,
					KMX_ERROR_CANCELLED,
					"the user cancelled the prompt");
		return;
	}
	ask->remember = ask->kind == KMX_PROMPT_USER && ask->gcr->get_choice_chosen(ask->prompt);
	/* gcr keeps its copy in its own secure memory until the prompt goes */
	g_task_return_pointer(task,
			      kmx_secret_new_from_data(password, strlen(password)),
			      (GDestroyNotify)kmx_secret_unref);
}

static void
kmx_gcr_open_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	KmxGcrAsk *ask = g_task_get_task_data(task);
	GError *error = NULL;

	ask->prompt = ask->gcr->open_finish(res, &error);
	if (ask->prompt == NULL) {
		g_task_return_error(task, error);
		return;
	}
	ask->gcr->set_texts(ask->prompt,
			    ask->title,
			    ask->message,
			    ask->description,
			    ask->warning,
			    "Unlock",
			    ask->kind == KMX_PROMPT_USER ? "Remember in my login keyring" : NULL);
	ask->gcr->password_async(ask->prompt,
				 g_task_get_cancellable(task),
				 kmx_gcr_password_cb,
				 g_object_ref(task));
}

static void
kmx_gcr_open(GTask *task)
{
	KmxGcrPrompter *self = g_task_get_source_object(task);
	KmxGcrAsk *ask = g_task_get_task_data(task);
	GError *error = NULL;

	/* gcr is loaded now, once a system prompter is there to ask; without
	 * it there is none, as when no prompter owns the name */
	ask->gcr = kmx_module_load(&kmx_gcr_module, &error);
	if (ask->gcr == NULL) {
		g_warning("%s", error->message);
		g_task_return_new_error(task,
					G_IO_ERROR,
					G_IO_ERROR_NOT_FOUND,
					"no system prompter: %s",
					error->message);
		g_error_free(error);
		return;
	}
	/* no timeout: wait while another application's prompt is on screen */
	ask->gcr->open_async(self->bus_name,
			     -1,
			     g_task_get_cancellable(task),
			     kmx_gcr_open_cb,
			     g_object_ref(task));
}

static void
kmx_gcr_activatable_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	KmxGcrPrompter *self = g_task_get_source_object(task);
	GError *error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autofree const char **names = NULL;

	if (reply == NULL) {
		g_task_return_error(task, error);
		return;
	}
	g_variant_get(reply, "(^a&s)", &names);
	if (!g_strv_contains(names, self->bus_name)) {
		g_task_return_new_error(task,
					G_IO_ERROR,
					G_IO_ERROR_NOT_FOUND,
					"no system prompter (%s) on the session bus",
					self->bus_name);
		return;
	}
	kmx_gcr_open(task);
}

static void
kmx_gcr_has_owner_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	gboolean has_owner = FALSE;

	if (reply == NULL) {
		g_task_return_error(task, error);
		return;
	}
	g_variant_get(reply, "(b)", &has_owner);
	if (has_owner) {
		kmx_gcr_open(task);
		return;
	}
	g_dbus_connection_call(G_DBUS_CONNECTION(source),
			       "org.freedesktop.DBus",
			       "/org/freedesktop/DBus",
			       "org.freedesktop.DBus",
			       "ListActivatableNames",
			       NULL,
			       G_VARIANT_TYPE("(as)"),
			       G_DBUS_CALL_FLAGS_NONE,
			       -1,
			       g_task_get_cancellable(task),
			       kmx_gcr_activatable_cb,
			       g_object_ref(task));
}

static char *
kmx_gcr_title(const KmxPromptInfo *info)
{
	return g_strdup(info->kind == KMX_PROMPT_ADMIN ? "Admin PIN needed" : "Unlock keys");
}

static void
kmx_gcr_prompter_ask_async(KmxPrompter *prompter,
			   const KmxPromptInfo *info,
			   GCancellable *cancellable,
			   GAsyncReadyCallback callback,
			   gpointer user_data)
{
	KmxGcrPrompter *self = KMX_GCR_PROMPTER(prompter);
	g_autoptr(GTask) task = g_task_new(self, cancellable, callback, user_data);
	KmxGcrAsk *ask = g_new0(KmxGcrAsk, 1);

	ask->kind = info->kind;
	ask->title = kmx_gcr_title(info);
	ask->message = g_strdup(info->message);
	ask->description = g_strdup(info->description);
	if (info->retries == 1)
		ask->warning = g_strdup("This is the last try: a wrong one blocks the device.");
	g_task_set_task_data(task, ask, (GDestroyNotify)kmx_gcr_ask_free);
	/* looked up now: a desktop may come and go while keymuxd runs */
	g_dbus_connection_call(self->connection,
			       "org.freedesktop.DBus",
			       "/org/freedesktop/DBus",
			       "org.freedesktop.DBus",
			       "NameHasOwner",
			       g_variant_new("(s)", self->bus_name),
			       G_VARIANT_TYPE("(b)"),
			       G_DBUS_CALL_FLAGS_NONE,
			       -1,
			       cancellable,
			       kmx_gcr_has_owner_cb,
			       g_steal_pointer(&task));
}

static KmxSecret *
kmx_gcr_prompter_ask_finish(KmxPrompter *prompter,
			    GAsyncResult *result,
			    gboolean *remember,
			    GError **error)
{
	KmxGcrAsk *ask = g_task_get_task_data(G_TASK(result));
	KmxSecret *secret = g_task_propagate_pointer(G_TASK(result), error);

	*remember = secret != NULL && ask->remember;
	return secret;
}

/* no system prompter, or it went away while it asked: nobody else to ask */
static gboolean
kmx_gcr_prompter_is_gone(KmxPrompter *prompter, const GError *error)
{
	return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_CHILD_EXITED) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_FAILED) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_DISCONNECTED) ||
	       g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED);
}

static void
kmx_gcr_prompter_finalize(GObject *object)
{
	KmxGcrPrompter *self = KMX_GCR_PROMPTER(object);

	g_clear_object(&self->connection);
	g_free(self->bus_name);
	G_OBJECT_CLASS(kmx_gcr_prompter_parent_class)->finalize(object);
}

static void
kmx_gcr_prompter_class_init(KmxGcrPrompterClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	KmxPrompterClass *prompter_class = KMX_PROMPTER_CLASS(klass);

	object_class->finalize = kmx_gcr_prompter_finalize;
	prompter_class->ask_async = kmx_gcr_prompter_ask_async;
	prompter_class->ask_finish = kmx_gcr_prompter_ask_finish;
	prompter_class->is_gone = kmx_gcr_prompter_is_gone;
}

static void
kmx_gcr_prompter_init(KmxGcrPrompter *self)
{
}

/**
 * kmx_gcr_prompter_new:
 * @connection: the session bus
 * @bus_name: the system prompter's name, %KMX_GCR_DEFAULT_PROMPTER
 */
KmxGcrPrompter *
kmx_gcr_prompter_new(GDBusConnection *connection, const char *bus_name)
{
	KmxGcrPrompter *self = g_object_new(KMX_TYPE_GCR_PROMPTER, NULL);

	self->connection = g_object_ref(connection);
	self->bus_name = g_strdup(bus_name);
	return self;
}
