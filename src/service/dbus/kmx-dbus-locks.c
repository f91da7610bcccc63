/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: locking everything when the session locks or the system sleeps
 *
 * Three things lock every device ([daemon] lock-on-suspend and
 * lock-on-screen-lock, both true by default):
 * - logind's PrepareForSleep(true) on the system bus.  keymuxd holds a
 *   "delay" sleep inhibitor (Manager.Inhibit) while the system is awake and
 *   closes it only once every device has locked, so the machine does not
 *   sleep with a key open; on PrepareForSleep(false) it takes a new one.
 * - logind's Session.Lock on the user's session: the one keymuxd runs in
 *   (GetSessionByPID) or, for a daemon started by the user's systemd
 *   manager, which is in no session, the user's display session
 *   (User.Display).
 * - ActiveChanged(true) of the desktop's screen saver on the session bus,
 *   org.gnome.ScreenSaver or org.freedesktop.ScreenSaver, from the owner of
 *   that name, when there is one.
 */
#include "config.h"

#include <gio/gunixfdlist.h>
#include <unistd.h>

#include "kmx-dbus-private.h"

#define LOGIND_NAME		 "org.freedesktop.login1"
#define LOGIND_PATH		 "/org/freedesktop/login1"
#define LOGIND_MANAGER_IFACE	 "org.freedesktop.login1.Manager"
#define LOGIND_SESSION_IFACE	 "org.freedesktop.login1.Session"
#define LOGIND_USER_IFACE	 "org.freedesktop.login1.User"
#define SCREEN_SAVER_GNOME	 "org.gnome.ScreenSaver"
#define SCREEN_SAVER_FREEDESKTOP "org.freedesktop.ScreenSaver"

struct _KmxDBusLocks {
	GObject parent_instance;
	KmxManager *manager;
	GDBusConnection *session_bus;
	GDBusConnection *system_bus;
	GCancellable *cancellable;
	gboolean on_suspend;
	gboolean on_screen_lock;
	int inhibitor;	     /* the delay inhibitor's fd, or -1 */
	gboolean inhibiting; /* an Inhibit call is under way */
	char *session_path;
	guint sleep_id;
	guint session_lock_id;
	guint screen_saver_ids[2];
};

G_DEFINE_TYPE(KmxDBusLocks, kmx_dbus_locks, G_TYPE_OBJECT)

/* ---- the delay inhibitor --------------------------------------------------- */

static void
kmx_dbus_locks_release(KmxDBusLocks *self)
{
	if (self->inhibitor < 0)
		return;
	g_debug("releasing the sleep inhibitor");
	close(self->inhibitor);
	self->inhibitor = -1;
}

static void
kmx_dbus_locks_inhibit_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(KmxDBusLocks) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_with_unix_fd_list_finish(G_DBUS_CONNECTION(source),
								    &fds,
								    res,
								    &error);
	gint32 handle = -1;
	int fd;

	self->inhibiting = FALSE;
	if (reply == NULL) {
		if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			g_info("no sleep inhibitor (%s): the system may sleep before every "
			       "device is locked",
			       error->message);
		return;
	}
	g_variant_get(reply, "(h)", &handle);
	if (fds == NULL || handle < 0 || handle >= g_unix_fd_list_get_length(fds)) {
		g_info("logind's Inhibit returned no file descriptor");
		return;
	}
	fd = g_unix_fd_list_get(fds, handle, &error);
	if (fd < 0) {
		g_info("cannot take the sleep inhibitor: %s", error->message);
		return;
	}
	if (g_cancellable_is_cancelled(self->cancellable)) {
		close(fd);
		return;
	}
	kmx_dbus_locks_release(self);
	self->inhibitor = fd;
	g_debug("holding a sleep inhibitor");
}

static void
kmx_dbus_locks_inhibit(KmxDBusLocks *self)
{
	if (self->inhibitor >= 0 || self->inhibiting)
		return;
	self->inhibiting = TRUE;
	g_dbus_connection_call_with_unix_fd_list(
	    self->system_bus,
	    LOGIND_NAME,
	    LOGIND_PATH,
	    LOGIND_MANAGER_IFACE,
	    "Inhibit",
	    g_variant_new("(ssss)", "sleep", "keymux", "Lock keys before sleep", "delay"),
	    G_VARIANT_TYPE("(h)"),
	    G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    -1,
	    NULL,
	    self->cancellable,
	    kmx_dbus_locks_inhibit_cb,
	    g_object_ref(self));
}

static void
kmx_dbus_locks_slept_cb(gpointer user_data, gpointer unused)
{
	g_autoptr(KmxDBusLocks) self = user_data;

	g_info("every device is locked: the system may sleep");
	kmx_dbus_locks_release(self);
}

static void
kmx_dbus_locks_sleep_cb(GDBusConnection *connection,
			const char *sender_name,
			const char *object_path,
			const char *interface_name,
			const char *signal_name,
			GVariant *parameters,
			gpointer user_data)
{
	KmxDBusLocks *self = user_data;
	gboolean start = FALSE;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(b)")))
		return;
	g_variant_get(parameters, "(b)", &start);
	if (!start) {
		/* awake again: hold the system back before the next sleep */
		kmx_dbus_locks_inhibit(self);
		return;
	}
	g_info("the system is going to sleep: locking every device");
	kmx_manager_lock_all_then(self->manager, kmx_dbus_locks_slept_cb, g_object_ref(self));
}

/* ---- the session's lock ---------------------------------------------------- */

static void
kmx_dbus_locks_session_lock_cb(GDBusConnection *connection,
			       const char *sender_name,
			       const char *object_path,
			       const char *interface_name,
			       const char *signal_name,
			       GVariant *parameters,
			       gpointer user_data)
{
	KmxDBusLocks *self = user_data;

	g_info("the session %s is locking: locking every device", object_path);
	kmx_manager_lock_all(self->manager);
}

static void
kmx_dbus_locks_follow_session(KmxDBusLocks *self, const char *path)
{
	if (self->session_lock_id != 0 || !g_variant_is_object_path(path) || g_str_equal(path, "/"))
		return;
	g_free(self->session_path);
	self->session_path = g_strdup(path);
	g_debug("following the lock of the session %s", path);
	self->session_lock_id = g_dbus_connection_signal_subscribe(self->system_bus,
								   LOGIND_NAME,
								   LOGIND_SESSION_IFACE,
								   "Lock",
								   path,
								   NULL,
								   G_DBUS_SIGNAL_FLAGS_NONE,
								   kmx_dbus_locks_session_lock_cb,
								   g_object_ref(self),
								   g_object_unref);
}

static void
kmx_dbus_locks_display_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(KmxDBusLocks) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autoptr(GVariant) display = NULL;
	const char *path = NULL;

	if (reply == NULL) {
		if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			g_info("no display session (%s): not locking with the session",
			       error->message);
		return;
	}
	g_variant_get(reply, "(v)", &display);
	if (!g_variant_is_of_type(display, G_VARIANT_TYPE("(so)"))) {
		g_info("logind's User.Display is not (so): not locking with the session");
		return;
	}
	g_variant_get(display, "(&s&o)", NULL, &path);
	if (g_str_equal(path, "/")) {
		g_info("the user has no display session: not locking with the session");
		return;
	}
	kmx_dbus_locks_follow_session(self, path);
}

static void
kmx_dbus_locks_user_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(KmxDBusLocks) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	const char *path = NULL;

	if (reply == NULL) {
		if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			g_info("logind does not know this user (%s): not locking with the "
			       "session",
			       error->message);
		return;
	}
	g_variant_get(reply, "(&o)", &path);
	g_dbus_connection_call(self->system_bus,
			       LOGIND_NAME,
			       path,
			       "org.freedesktop.DBus.Properties",
			       "Get",
			       g_variant_new("(ss)", LOGIND_USER_IFACE, "Display"),
			       G_VARIANT_TYPE("(v)"),
			       G_DBUS_CALL_FLAGS_NO_AUTO_START,
			       -1,
			       self->cancellable,
			       kmx_dbus_locks_display_cb,
			       g_object_ref(self));
}

static void
kmx_dbus_locks_session_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(KmxDBusLocks) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	const char *path = NULL;

	if (reply != NULL) {
		g_variant_get(reply, "(&o)", &path);
		kmx_dbus_locks_follow_session(self, path);
		return;
	}
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	/* started by the user's service manager: in no session of its own */
	g_debug("in no session (%s): following the user's display session", error->message);
	g_dbus_connection_call(self->system_bus,
			       LOGIND_NAME,
			       LOGIND_PATH,
			       LOGIND_MANAGER_IFACE,
			       "GetUser",
			       g_variant_new("(u)", (guint32)getuid()),
			       G_VARIANT_TYPE("(o)"),
			       G_DBUS_CALL_FLAGS_NO_AUTO_START,
			       -1,
			       self->cancellable,
			       kmx_dbus_locks_user_cb,
			       g_object_ref(self));
}

/* ---- the screen saver ------------------------------------------------------ */

static void
kmx_dbus_locks_screen_saver_cb(GDBusConnection *connection,
			       const char *sender_name,
			       const char *object_path,
			       const char *interface_name,
			       const char *signal_name,
			       GVariant *parameters,
			       gpointer user_data)
{
	KmxDBusLocks *self = user_data;
	gboolean active = FALSE;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(b)")))
		return;
	g_variant_get(parameters, "(b)", &active);
	if (!active)
		return;
	g_info("the screen saver (%s) is active: locking every device", interface_name);
	kmx_manager_lock_all(self->manager);
}

/* ---- life ------------------------------------------------------------------ */

static void
kmx_dbus_locks_system_bus_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(KmxDBusLocks) self = user_data;
	g_autoptr(GError) error = NULL;
	GDBusConnection *bus = g_bus_get_finish(res, &error);

	if (bus == NULL) {
		g_debug("no system bus (%s): not following logind", error->message);
		return;
	}
	if (g_cancellable_is_cancelled(self->cancellable)) {
		g_object_unref(bus);
		return;
	}
	self->system_bus = bus;
	if (self->on_suspend) {
		self->sleep_id = g_dbus_connection_signal_subscribe(bus,
								    LOGIND_NAME,
								    LOGIND_MANAGER_IFACE,
								    "PrepareForSleep",
								    LOGIND_PATH,
								    NULL,
								    G_DBUS_SIGNAL_FLAGS_NONE,
								    kmx_dbus_locks_sleep_cb,
								    g_object_ref(self),
								    g_object_unref);
		kmx_dbus_locks_inhibit(self);
	}
	if (self->on_screen_lock)
		g_dbus_connection_call(bus,
				       LOGIND_NAME,
				       LOGIND_PATH,
				       LOGIND_MANAGER_IFACE,
				       "GetSessionByPID",
				       g_variant_new("(u)", (guint32)getpid()),
				       G_VARIANT_TYPE("(o)"),
				       G_DBUS_CALL_FLAGS_NO_AUTO_START,
				       -1,
				       self->cancellable,
				       kmx_dbus_locks_session_cb,
				       g_object_ref(self));
}

/**
 * kmx_dbus_locks_start:
 * @session_bus: where the screen saver is
 *
 * Follows the session's lock and the system's sleep, as configured.
 */
void
kmx_dbus_locks_start(KmxDBusLocks *self, GDBusConnection *session_bus)
{
	KmxContext *context = kmx_manager_get_context(self->manager);
	static const char *const screen_savers[] = {SCREEN_SAVER_GNOME, SCREEN_SAVER_FREEDESKTOP};

	g_return_if_fail(KMX_IS_DBUS_LOCKS(self));
	self->on_suspend = kmx_context_get_boolean(context, "daemon", "lock-on-suspend", TRUE);
	self->on_screen_lock =
	    kmx_context_get_boolean(context, "daemon", "lock-on-screen-lock", TRUE);
	g_set_object(&self->session_bus, session_bus);
	if (self->on_screen_lock) {
		for (guint i = 0; i < G_N_ELEMENTS(screen_savers); i++)
			self->screen_saver_ids[i] =
			    g_dbus_connection_signal_subscribe(session_bus,
							       screen_savers[i],
							       screen_savers[i],
							       "ActiveChanged",
							       NULL,
							       NULL,
							       G_DBUS_SIGNAL_FLAGS_NONE,
							       kmx_dbus_locks_screen_saver_cb,
							       g_object_ref(self),
							       g_object_unref);
	}
	if (self->on_suspend || self->on_screen_lock)
		g_bus_get(G_BUS_TYPE_SYSTEM,
			  self->cancellable,
			  kmx_dbus_locks_system_bus_cb,
			  g_object_ref(self));
}

/**
 * kmx_dbus_locks_stop:
 *
 * Stops following anything and lets the system sleep: the daemon is stopping
 * (and locks every device as it does).  The subscriptions hold @self: this
 * is what lets it go.
 */
void
kmx_dbus_locks_stop(KmxDBusLocks *self)
{
	g_return_if_fail(KMX_IS_DBUS_LOCKS(self));
	g_cancellable_cancel(self->cancellable);
	for (guint i = 0; i < G_N_ELEMENTS(self->screen_saver_ids); i++) {
		if (self->screen_saver_ids[i] != 0)
			g_dbus_connection_signal_unsubscribe(self->session_bus,
							     self->screen_saver_ids[i]);
		self->screen_saver_ids[i] = 0;
	}
	if (self->sleep_id != 0)
		g_dbus_connection_signal_unsubscribe(self->system_bus, self->sleep_id);
	if (self->session_lock_id != 0)
		g_dbus_connection_signal_unsubscribe(self->system_bus, self->session_lock_id);
	self->sleep_id = 0;
	self->session_lock_id = 0;
	kmx_dbus_locks_release(self);
}

static void
kmx_dbus_locks_finalize(GObject *object)
{
	KmxDBusLocks *self = KMX_DBUS_LOCKS(object);

	kmx_dbus_locks_stop(self);
	g_clear_object(&self->manager);
	g_clear_object(&self->session_bus);
	g_clear_object(&self->system_bus);
	g_clear_object(&self->cancellable);
	g_free(self->session_path);
	G_OBJECT_CLASS(kmx_dbus_locks_parent_class)->finalize(object);
}

static void
kmx_dbus_locks_class_init(KmxDBusLocksClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = kmx_dbus_locks_finalize;
}

static void
kmx_dbus_locks_init(KmxDBusLocks *self)
{
	self->inhibitor = -1;
	self->cancellable = g_cancellable_new();
}

/**
 * kmx_dbus_locks_new:
 *
 * Returns: (transfer full): what locks @manager's devices with the session
 */
KmxDBusLocks *
kmx_dbus_locks_new(KmxManager *manager)
{
	KmxDBusLocks *self = g_object_new(KMX_TYPE_DBUS_LOCKS, NULL);

	self->manager = g_object_ref(manager);
	return self;
}
