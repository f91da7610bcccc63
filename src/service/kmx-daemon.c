/* keymux: the daemon: backends, the D-Bus export, callers, prompting
 *
 * The main thread owns all of this.  Backends are started here, their
 * devices exported (kmx-export.c), and every method call becomes a
 * KmxRequest (kmx-request.c) that is authorised against the caller's
 * credentials, which we fetch once per connection and forget when it leaves
 * the bus, cancelling whatever it still had in flight.
 */
#include "config.h"

#include <malloc.h>
#include <unistd.h>

#include "kmx-backend.h"
#include "kmx-backends.h"
#include "kmx-daemon-private.h"
#include "kmx-error.h"
#include "kmx-names.h"

struct _KmxDaemon {
	GObject parent_instance;
	KmxContext *context;
	GPtrArray *backends;
	GHashTable *devices; /* KmxDevice -> KmxExportedDevice */
	GDBusConnection *connection;
	guint object_manager_id;
	KmxDBusManager *manager;
	GHashTable *callers;  /* sender -> KmxCaller */
	GPtrArray *prompters; /* KmxPrompter, most recent last */
	guint name_owner_changed_id;
	GHashTable *idle_timers; /* KmxDevice -> source id */
	guint idle_timeout_s;
	GDBusConnection *system_bus;
	guint sleep_signal_id;
	GCancellable *cancellable;
	GHashTable *prompts; /* KmxDevice -> KmxPrompt in progress */
	guint trim_source;
	gboolean shut_down;
};

G_DEFINE_TYPE(KmxDaemon, kmx_daemon, G_TYPE_OBJECT)

GHashTable *
kmx_daemon_get_prompts(KmxDaemon *self)
{
	return self->prompts;
}

GCancellable *
kmx_daemon_get_cancellable(KmxDaemon *self)
{
	return self->cancellable;
}

/* ---- callers ------------------------------------------------------------- */

KmxCaller *
kmx_caller_ref(KmxCaller *caller)
{
	g_atomic_ref_count_inc(&caller->ref);
	return caller;
}

void
kmx_caller_unref(KmxCaller *caller)
{
	if (caller == NULL || !g_atomic_ref_count_dec(&caller->ref))
		return;
	g_free(caller->sender);
	g_free(caller->exe);
	g_ptr_array_unref(caller->waiting);
	g_ptr_array_unref(caller->cancellables);
	g_mutex_clear(&caller->mutex);
	g_free(caller);
}

/**
 * kmx_daemon_get_caller:
 *
 * Returns: (transfer none): the record of @sender, made on first contact
 */
KmxCaller *
kmx_daemon_get_caller(KmxDaemon *self, const char *sender)
{
	KmxCaller *caller;

	if (sender == NULL)
		sender = "";
	caller = g_hash_table_lookup(self->callers, sender);
	if (caller != NULL)
		return caller;
	caller = g_new0(KmxCaller, 1);
	g_atomic_ref_count_init(&caller->ref);
	caller->sender = g_strdup(sender);
	caller->waiting = g_ptr_array_new();
	caller->cancellables = g_ptr_array_new();
	g_mutex_init(&caller->mutex);
	g_hash_table_insert(self->callers, caller->sender, caller);
	return caller;
}

typedef struct {
	KmxRequest *req;
	KmxCallerReady ready;
} KmxWaiting;

static void
kmx_daemon_credentials_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxCaller *caller = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
	g_autoptr(GPtrArray) waiting = NULL;

	if (reply != NULL) {
		g_autoptr(GVariant) creds = g_variant_get_child_value(reply, 0);
		guint32 uid = G_MAXUINT32, pid = 0;

		if (g_variant_lookup(creds, "UnixUserID", "u", &uid)) {
			caller->uid = uid;
			caller->resolved = TRUE;
		}
		if (g_variant_lookup(creds, "ProcessID", "u", &pid)) {
			g_autofree char *link = g_strdup_printf("/proc/%u/exe", pid);
			caller->pid = pid;
			caller->exe = g_file_read_link(link, NULL);
		}
	}
	waiting = g_steal_pointer(&caller->waiting);
	caller->waiting = g_ptr_array_new();
	for (guint i = 0; i < waiting->len; i++) {
		KmxWaiting *w = g_ptr_array_index(waiting, i);
		if (caller->resolved)
			w->ready(w->req, NULL);
		else
			w->ready(w->req,
				 g_error_new(KMX_ERROR,
					     KMX_ERROR_DENIED,
					     "cannot identify the caller: %s",
					     error != NULL ? error->message : "no user id"));
		g_free(w);
	}
	kmx_caller_unref(caller);
}

/**
 * kmx_daemon_resolve_caller:
 *
 * Calls @ready once the caller's credentials are known (at once when they
 * are cached).
 */
void
kmx_daemon_resolve_caller(KmxDaemon *self, KmxRequest *req, KmxCallerReady ready)
{
	KmxCaller *caller = req->caller;
	KmxWaiting *w;

	if (caller->resolved) {
		ready(req, NULL);
		return;
	}
	w = g_new0(KmxWaiting, 1);
	w->req = req;
	w->ready = ready;
	g_ptr_array_add(caller->waiting, w);
	if (caller->waiting->len > 1)
		return; /* a query is on its way */
	g_dbus_connection_call(self->connection,
			       "org.freedesktop.DBus",
			       "/org/freedesktop/DBus",
			       "org.freedesktop.DBus",
			       "GetConnectionCredentials",
			       g_variant_new("(s)", caller->sender),
			       G_VARIANT_TYPE("(a{sv})"),
			       G_DBUS_CALL_FLAGS_NONE,
			       -1,
			       NULL,
			       kmx_daemon_credentials_cb,
			       kmx_caller_ref(caller));
}

/**
 * kmx_daemon_caller_is_allowed:
 *
 * The one authorisation hook every method passes.  It denies by default:
 * only processes of the user who owns this daemon may use it.
 */
gboolean
kmx_daemon_caller_is_allowed(KmxDaemon *self, KmxCaller *caller, GError **error)
{
	if (caller->resolved && caller->uid == (guint32)getuid())
		return TRUE;
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_DENIED,
		    "only the user who runs this keymuxd (uid %u) may use it",
		    (guint)getuid());
	return FALSE;
}

/**
 * kmx_daemon_authorize_sender_sync:
 *
 * The authorisation hook for property reads, which GDBus answers
 * synchronously: the caller's credentials are fetched once, blocking on
 * the bus daemon (never on a device), then cached like any caller's.
 */
gboolean
kmx_daemon_authorize_sender_sync(KmxDaemon *self, const char *sender, GError **error)
{
	KmxCaller *caller = kmx_daemon_get_caller(self, sender);

	if (!caller->resolved && self->connection != NULL) {
		g_autoptr(GVariant) reply = NULL;
		g_autoptr(GVariant) creds = NULL;
		g_autoptr(GError) error_local = NULL;
		guint32 uid;

		reply = g_dbus_connection_call_sync(self->connection,
						    "org.freedesktop.DBus",
						    "/org/freedesktop/DBus",
						    "org.freedesktop.DBus",
						    "GetConnectionCredentials",
						    g_variant_new("(s)", caller->sender),
						    G_VARIANT_TYPE("(a{sv})"),
						    G_DBUS_CALL_FLAGS_NONE,
						    -1,
						    NULL,
						    &error_local);
		if (reply == NULL)
			g_debug("cannot identify %s: %s", caller->sender, error_local->message);
		if (reply != NULL) {
			creds = g_variant_get_child_value(reply, 0);
			if (g_variant_lookup(creds, "UnixUserID", "u", &uid)) {
				caller->uid = uid;
				caller->resolved = TRUE;
			}
		}
	}
	return kmx_daemon_caller_is_allowed(self, caller, error);
}

static void
kmx_daemon_forget_caller(KmxDaemon *self, const char *sender)
{
	KmxCaller *caller = g_hash_table_lookup(self->callers, sender);

	for (guint i = self->prompters->len; i > 0; i--) {
		KmxPrompter *p = g_ptr_array_index(self->prompters, i - 1);
		if (g_str_equal(p->sender, sender)) {
			g_debug("prompter %s %s left the bus", p->sender, p->path);
			g_ptr_array_remove_index(self->prompters, i - 1);
		}
	}
	if (caller == NULL)
		return;
	/* its requests are pointless now: stop them where they wait */
	g_mutex_lock(&caller->mutex);
	for (guint i = 0; i < caller->cancellables->len; i++)
		g_cancellable_cancel(g_ptr_array_index(caller->cancellables, i));
	g_mutex_unlock(&caller->mutex);
	g_hash_table_remove(self->callers, sender);
}

static void
kmx_daemon_name_owner_changed_cb(GDBusConnection *connection,
				 const char *sender_name,
				 const char *object_path,
				 const char *interface_name,
				 const char *signal_name,
				 GVariant *parameters,
				 gpointer user_data)
{
	KmxDaemon *self = user_data;
	const char *name, *old_owner, *new_owner;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sss)")))
		return;
	g_variant_get(parameters, "(&s&s&s)", &name, &old_owner, &new_owner);
	if (name[0] == ':' && new_owner[0] == '\0')
		kmx_daemon_forget_caller(self, name);
}

/* ---- prompters ------------------------------------------------------------ */

void
kmx_prompter_free(KmxPrompter *p)
{
	if (p == NULL)
		return;
	g_free(p->sender);
	g_free(p->path);
	g_free(p);
}

/**
 * kmx_daemon_get_prompter:
 *
 * Returns: (transfer full) (nullable): a copy of the most recently
 * registered prompter
 */
KmxPrompter *
kmx_daemon_get_prompter(KmxDaemon *self)
{
	KmxPrompter *p, *copy;

	if (self->prompters->len == 0)
		return NULL;
	p = g_ptr_array_index(self->prompters, self->prompters->len - 1);
	copy = g_new0(KmxPrompter, 1);
	copy->sender = g_strdup(p->sender);
	copy->path = g_strdup(p->path);
	return copy;
}

void
kmx_daemon_drop_prompter(KmxDaemon *self, const KmxPrompter *gone)
{
	for (guint i = self->prompters->len; i > 0; i--) {
		KmxPrompter *p = g_ptr_array_index(self->prompters, i - 1);
		if (g_str_equal(p->sender, gone->sender) && g_str_equal(p->path, gone->path))
			g_ptr_array_remove_index(self->prompters, i - 1);
	}
}

/* ---- locking ---------------------------------------------------------------- */

static void
kmx_daemon_lock_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	KmxDevice *device = KMX_DEVICE(source);

	if (!kmx_device_lock(device, NULL, &error))
		g_warning("cannot lock %s: %s", kmx_device_get_id(device), error->message);
	g_task_return_boolean(task, TRUE);
}

static void
kmx_daemon_lock_device(KmxDaemon *self, KmxDevice *device)
{
	g_autoptr(GTask) task = g_task_new(device, NULL, NULL, NULL);
	kmx_executor_run(kmx_device_get_executor(device), task, kmx_daemon_lock_thread);
}

/**
 * kmx_daemon_lock_all:
 *
 * Locks every device, asynchronously, in order on each device's executor.
 */
void
kmx_daemon_lock_all(KmxDaemon *self)
{
	GHashTableIter iter;
	gpointer device;

	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, &device, NULL))
		kmx_daemon_lock_device(self, device);
	g_hash_table_remove_all(self->idle_timers);
}

typedef struct {
	KmxDaemon *self;
	KmxDevice *device;
} KmxIdle;

static void kmx_daemon_idle_arm(KmxDaemon *self, KmxDevice *device, gint64 delay_us);

/* the idle lock: a timer per open device that fires at last use + timeout;
 * uses move the deadline without touching the timer (they may happen on
 * any thread), so the timer checks when it fires */
static gboolean
kmx_daemon_idle_lock_cb(gpointer user_data)
{
	KmxIdle *idle = user_data;
	KmxDaemon *self = idle->self;
	KmxDevice *device = idle->device;
	gint64 timeout = (gint64)self->idle_timeout_s * G_USEC_PER_SEC;
	gint64 left = kmx_device_get_last_used(device) + timeout - g_get_monotonic_time();

	g_hash_table_steal(self->idle_timers, device);
	if (kmx_device_is_locked(device))
		return G_SOURCE_REMOVE;
	if (left > 0) {
		kmx_daemon_idle_arm(self, device, left);
		return G_SOURCE_REMOVE;
	}
	g_info("locking %s after %u s unused", kmx_device_get_id(device), self->idle_timeout_s);
	kmx_daemon_lock_device(self, device);
	return G_SOURCE_REMOVE;
}

static void
kmx_daemon_idle_remove(gpointer data)
{
	g_source_remove(GPOINTER_TO_UINT(data));
}

static void
kmx_daemon_idle_arm(KmxDaemon *self, KmxDevice *device, gint64 delay_us)
{
	KmxIdle *idle = g_new0(KmxIdle, 1);
	guint id;

	idle->self = self;
	idle->device = device;
	id = g_timeout_add_full(G_PRIORITY_DEFAULT,
				(guint)MIN(delay_us / 1000 + 1, G_MAXUINT),
				kmx_daemon_idle_lock_cb,
				idle,
				g_free);
	g_hash_table_insert(self->idle_timers, device, GUINT_TO_POINTER(id));
}

/* a device that opens starts its idle timer; one that locks drops it */
static void
kmx_daemon_idle_update(KmxDevice *device, GParamSpec *pspec, KmxDaemon *self)
{
	gboolean armed = g_hash_table_contains(self->idle_timers, device);

	if (self->idle_timeout_s == 0)
		return;
	if (kmx_device_is_locked(device) || !kmx_device_is_available(device)) {
		g_hash_table_remove(self->idle_timers, device);
		return;
	}
	if (!armed) {
		kmx_device_touch(device);
		kmx_daemon_idle_arm(self, device, (gint64)self->idle_timeout_s * G_USEC_PER_SEC);
	}
}

static void
kmx_daemon_prepare_for_sleep_cb(GDBusConnection *connection,
				const char *sender_name,
				const char *object_path,
				const char *interface_name,
				const char *signal_name,
				GVariant *parameters,
				gpointer user_data)
{
	KmxDaemon *self = user_data;
	gboolean start = FALSE;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(b)")))
		return;
	g_variant_get(parameters, "(b)", &start);
	if (start) {
		g_info("the system is going to sleep: locking every device");
		kmx_daemon_lock_all(self);
	}
}

static void
kmx_daemon_system_bus_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(KmxDaemon) self = user_data;
	g_autoptr(GError) error = NULL;
	GDBusConnection *bus = g_bus_get_finish(res, &error);

	if (bus == NULL) {
		g_debug("no system bus (%s): not locking on suspend", error->message);
		return;
	}
	self->system_bus = bus;
	self->sleep_signal_id = g_dbus_connection_signal_subscribe(bus,
								   "org.freedesktop.login1",
								   "org.freedesktop.login1.Manager",
								   "PrepareForSleep",
								   "/org/freedesktop/login1",
								   NULL,
								   G_DBUS_SIGNAL_FLAGS_NONE,
								   kmx_daemon_prepare_for_sleep_cb,
								   self,
								   NULL);
}

/* ---- devices ---------------------------------------------------------------- */

static void
kmx_daemon_device_added_cb(KmxBackend *backend, KmxDevice *device, KmxDaemon *self)
{
	KmxExportedDevice *edev = kmx_exported_device_new(self, device);
	g_autoptr(GError) error = NULL;

	g_debug("device %s added", kmx_device_get_id(device));
	g_hash_table_insert(self->devices, g_object_ref(device), edev);
	g_signal_connect(device, "notify::flags", G_CALLBACK(kmx_daemon_idle_update), self);
	if (self->connection != NULL &&
	    !kmx_exported_device_attach(edev, self->connection, TRUE, &error))
		g_warning("cannot put %s on the bus: %s",
			  kmx_device_get_id(device),
			  error->message);
}

static void
kmx_daemon_device_removed_cb(KmxBackend *backend, KmxDevice *device, KmxDaemon *self)
{
	g_debug("device %s removed", kmx_device_get_id(device));
	g_signal_handlers_disconnect_by_func(device, kmx_daemon_idle_update, self);
	g_hash_table_remove(self->idle_timers, device);
	g_hash_table_remove(self->devices, device);
}

static gint
kmx_compare_devices(gconstpointer a, gconstpointer b)
{
	KmxDevice *da = *(KmxDevice **)a;
	KmxDevice *db = *(KmxDevice **)b;
	return g_strcmp0(kmx_device_get_id(da), kmx_device_get_id(db));
}

/**
 * kmx_daemon_get_devices:
 *
 * Returns: (transfer container): every device, sorted by id
 */
GPtrArray *
kmx_daemon_get_devices(KmxDaemon *self)
{
	GPtrArray *devices = g_ptr_array_new_full(g_hash_table_size(self->devices), NULL);
	GHashTableIter iter;
	gpointer device;

	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, &device, NULL))
		g_ptr_array_add(devices, device);
	g_ptr_array_sort(devices, kmx_compare_devices);
	return devices;
}

/* find keys by id or id prefix (already validated, lowercase) */
static GPtrArray *
kmx_daemon_find_keys(KmxDaemon *self, const char *prefix)
{
	g_autoptr(GPtrArray) devices = kmx_daemon_get_devices(self);
	GPtrArray *found = g_ptr_array_new();
	gsize n = strlen(prefix);

	for (guint i = 0; i < devices->len; i++) {
		KmxDevice *device = g_ptr_array_index(devices, i);
		GPtrArray *keys;

		if (n == 64) {
			KmxKey *key = kmx_device_find_key(device, prefix);
			if (key != NULL)
				g_ptr_array_add(found, key);
			continue;
		}
		keys = kmx_device_get_keys(device);
		for (guint j = 0; j < keys->len; j++) {
			KmxKey *key = g_ptr_array_index(keys, j);
			if (strncmp(kmx_key_get_id(key), prefix, n) == 0)
				g_ptr_array_add(found, key);
		}
	}
	return found;
}

static char *
kmx_key_id_normalize(const char *id, GError **error)
{
	gsize n = strlen(id);

	if (n < 8 || n > 64) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a key id is 64 hex digits, or a prefix of at least 8; '%.80s' is not",
			    id);
		return NULL;
	}
	for (gsize i = 0; i < n; i++) {
		if (!g_ascii_isxdigit(id[i])) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a key id is hexadecimal; '%.80s' is not",
				    id);
			return NULL;
		}
	}
	return g_ascii_strdown(id, -1);
}

/* ---- Manager methods ------------------------------------------------------ */

static gboolean
kmx_daemon_authorize_sync(KmxDaemon *self, GDBusMethodInvocation *invocation)
{
	/* the cheap list and lookup methods reply at once when the caller is
	 * known; otherwise they go the asynchronous way of a request */
	KmxCaller *caller =
	    kmx_daemon_get_caller(self, g_dbus_method_invocation_get_sender(invocation));
	return caller->resolved && caller->uid == (guint32)getuid();
}

typedef void (*KmxManagerReply)(KmxDaemon *self, GDBusMethodInvocation *invocation, gpointer data);

typedef struct {
	KmxManagerReply reply;
	gpointer data;
	GDestroyNotify destroy;
} KmxDeferred;

static void
kmx_daemon_deferred_ready(KmxRequest *req, GError *error)
{
	KmxDeferred *d = g_object_get_data(G_OBJECT(req->invocation), "kmx-deferred");
	GError *error_local = NULL;

	if (error != NULL) {
		kmx_request_return_error(req, error);
		return;
	}
	if (!kmx_daemon_caller_is_allowed(req->daemon, req->caller, &error_local)) {
		kmx_request_return_error(req, error_local);
		return;
	}
	d->reply(req->daemon, g_steal_pointer(&req->invocation), d->data);
	kmx_request_free(req);
}

/* run @reply now if the caller is known and allowed, else after resolving */
static void
kmx_daemon_call_authorized(KmxDaemon *self,
			   GDBusMethodInvocation *invocation,
			   const char *operation,
			   KmxManagerReply reply,
			   gpointer data,
			   GDestroyNotify destroy)
{
	KmxRequest *req;
	KmxDeferred *d;

	if (kmx_daemon_authorize_sync(self, invocation)) {
		reply(self, invocation, data);
		if (destroy != NULL)
			destroy(data);
		return;
	}
	req = kmx_request_new(self, invocation, operation, KMX_REQUEST_FLAG_NONE, NULL, NULL);
	d = g_new0(KmxDeferred, 1);
	d->reply = reply;
	d->data = data;
	d->destroy = destroy;
	g_object_set_data_full(G_OBJECT(invocation), "kmx-deferred", d, g_free);
	if (destroy != NULL)
		g_object_set_data_full(G_OBJECT(invocation), "kmx-deferred-data", data, destroy);
	kmx_daemon_resolve_caller(self, req, kmx_daemon_deferred_ready);
}

static void
kmx_daemon_reply_list_devices(KmxDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GPtrArray) devices = kmx_daemon_get_devices(self);
	g_autoptr(GVariantBuilder) b = g_variant_builder_new(G_VARIANT_TYPE("ao"));

	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev = g_hash_table_lookup(self->devices, devices->pdata[i]);
		g_variant_builder_add(b, "o", kmx_exported_device_get_path(edev));
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", b));
}

static gboolean
kmx_daemon_handle_list_devices(KmxDBusManager *iface,
			       GDBusMethodInvocation *invocation,
			       KmxDaemon *self)
{
	kmx_daemon_call_authorized(self,
				   invocation,
				   "list-devices",
				   kmx_daemon_reply_list_devices,
				   NULL,
				   NULL);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
kmx_daemon_reply_list_keys(KmxDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GPtrArray) devices = kmx_daemon_get_devices(self);
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
	for (guint i = 0; i < devices->len; i++) {
		KmxExportedDevice *edev = g_hash_table_lookup(self->devices, devices->pdata[i]);
		g_autoptr(GPtrArray) paths = kmx_exported_device_get_key_paths(edev);
		for (guint j = 0; j < paths->len; j++)
			g_variant_builder_add(&b, "o", paths->pdata[j]);
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", &b));
}

static gboolean
kmx_daemon_handle_list_keys(KmxDBusManager *iface,
			    GDBusMethodInvocation *invocation,
			    KmxDaemon *self)
{
	kmx_daemon_call_authorized(self,
				   invocation,
				   "list-keys",
				   kmx_daemon_reply_list_keys,
				   NULL,
				   NULL);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
kmx_daemon_reply_find_key(KmxDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	const char *id = data;
	g_autoptr(GError) error = NULL;
	g_autofree char *prefix = kmx_key_id_normalize(id, &error);
	g_autoptr(GPtrArray) found = NULL;
	g_autoptr(GVariantBuilder) b = NULL;

	if (prefix == NULL) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return;
	}
	found = kmx_daemon_find_keys(self, prefix);
	if (found->len == 0) {
		g_dbus_method_invocation_return_error(invocation,
						      KMX_ERROR,
						      KMX_ERROR_NOT_FOUND,
						      "no key with id %s; list them with "
						      "keymuxctl keys",
						      prefix);
		return;
	}
	b = g_variant_builder_new(G_VARIANT_TYPE("ao"));
	for (guint i = 0; i < found->len; i++) {
		g_autofree char *path = kmx_daemon_key_path(found->pdata[i]);
		g_variant_builder_add(b, "o", path);
	}
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", b));
}

static gboolean
kmx_daemon_handle_find_key(KmxDBusManager *iface,
			   GDBusMethodInvocation *invocation,
			   const char *id,
			   KmxDaemon *self)
{
	kmx_daemon_call_authorized(self,
				   invocation,
				   "find-key",
				   kmx_daemon_reply_find_key,
				   g_strdup(id),
				   g_free);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* pick the holder of a key id for Manager.Sign/Decrypt: an available,
 * unlocked one first, then an available one (which may prompt) */
static KmxKey *
kmx_daemon_pick_key(KmxDaemon *self, const char *id, GError **error)
{
	g_autofree char *prefix = kmx_key_id_normalize(id, error);
	g_autoptr(GPtrArray) found = NULL;
	KmxKey *best = NULL;
	int best_rank = -1;

	if (prefix == NULL)
		return NULL;
	found = kmx_daemon_find_keys(self, prefix);
	if (found->len == 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_FOUND,
			    "no key with id %s; list them with keymuxctl keys",
			    prefix);
		return NULL;
	}
	for (guint i = 1; i < found->len; i++) {
		if (!g_str_equal(kmx_key_get_id(found->pdata[0]),
				 kmx_key_get_id(found->pdata[i]))) {
			g_set_error(
			    error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "key id prefix %s is ambiguous: it matches %s and %s; give more "
			    "digits",
			    prefix,
			    kmx_key_get_id(found->pdata[0]),
			    kmx_key_get_id(found->pdata[i]));
			return NULL;
		}
	}
	for (guint i = 0; i < found->len; i++) {
		KmxKey *key = found->pdata[i];
		KmxDeviceFlags flags = kmx_device_get_flags(kmx_key_get_device(key));
		int rank = 0;
		if (flags & KMX_DEVICE_FLAG_AVAILABLE)
			rank += 2;
		if (!(flags & KMX_DEVICE_FLAG_LOCKED))
			rank += 1;
		if (rank > best_rank) {
			best = key;
			best_rank = rank;
		}
	}
	return best;
}

static void
kmx_daemon_manager_key_operation(KmxDaemon *self,
				 GDBusMethodInvocation *invocation,
				 KmxOperation op,
				 const char *id,
				 const char *algorithm,
				 GVariant *data,
				 GVariant *options)
{
	GError *error = NULL;
	KmxKey *key = kmx_daemon_pick_key(self, id, &error);
	KmxRequest *req;
	KmxRequestFlags flags = KMX_REQUEST_FLAG_NEEDS_UNLOCKED | KMX_REQUEST_FLAG_NEEDS_AVAILABLE |
				KMX_REQUEST_FLAG_AUDIT;

	req = kmx_request_new(self,
			      invocation,
			      kmx_operation_to_string(op),
			      flags,
			      key != NULL ? kmx_key_get_device(key) : NULL,
			      key);
	if (key == NULL) {
		/* no key to record; authorise before telling anything */
		req->flags = KMX_REQUEST_FLAG_NONE;
		kmx_request_fail(req, error);
		return;
	}
	kmx_request_start_key_operation(req, op, algorithm, data, options);
}

static gboolean
kmx_daemon_handle_sign(KmxDBusManager *iface,
		       GDBusMethodInvocation *invocation,
		       const char *id,
		       const char *algorithm,
		       GVariant *data,
		       GVariant *options,
		       KmxDaemon *self)
{
	kmx_daemon_manager_key_operation(self,
					 invocation,
					 KMX_OPERATION_SIGN,
					 id,
					 algorithm,
					 data,
					 options);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
kmx_daemon_handle_decrypt(KmxDBusManager *iface,
			  GDBusMethodInvocation *invocation,
			  const char *id,
			  const char *algorithm,
			  GVariant *data,
			  GVariant *options,
			  KmxDaemon *self)
{
	kmx_daemon_manager_key_operation(self,
					 invocation,
					 KMX_OPERATION_DECRYPT,
					 id,
					 algorithm,
					 data,
					 options);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
kmx_daemon_reply_lock_all(KmxDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	kmx_daemon_lock_all(self);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static gboolean
kmx_daemon_handle_lock_all(KmxDBusManager *iface,
			   GDBusMethodInvocation *invocation,
			   KmxDaemon *self)
{
	kmx_daemon_call_authorized(self,
				   invocation,
				   "lock-all",
				   kmx_daemon_reply_lock_all,
				   NULL,
				   NULL);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
kmx_daemon_reply_register_prompter(KmxDaemon *self,
				   GDBusMethodInvocation *invocation,
				   gpointer data)
{
	const char *path = data;
	const char *sender = g_dbus_method_invocation_get_sender(invocation);
	KmxPrompter *p;

	kmx_daemon_drop_prompter(self,
				 &(KmxPrompter){.sender = (char *)sender, .path = (char *)path});
	p = g_new0(KmxPrompter, 1);
	p->sender = g_strdup(sender);
	p->path = g_strdup(path);
	g_ptr_array_add(self->prompters, p);
	g_debug("prompter %s %s registered", sender, path);
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static gboolean
kmx_daemon_handle_register_prompter(KmxDBusManager *iface,
				    GDBusMethodInvocation *invocation,
				    const char *path,
				    KmxDaemon *self)
{
	kmx_daemon_call_authorized(self,
				   invocation,
				   "register-prompter",
				   kmx_daemon_reply_register_prompter,
				   g_strdup(path),
				   g_free);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
kmx_daemon_reply_unregister_prompter(KmxDaemon *self,
				     GDBusMethodInvocation *invocation,
				     gpointer data)
{
	const char *path = data;
	const char *sender = g_dbus_method_invocation_get_sender(invocation);
	guint before = self->prompters->len;

	kmx_daemon_drop_prompter(self,
				 &(KmxPrompter){.sender = (char *)sender, .path = (char *)path});
	if (self->prompters->len == before) {
		g_dbus_method_invocation_return_error(
		    invocation,
		    KMX_ERROR,
		    KMX_ERROR_NOT_FOUND,
		    "%s is not a prompter this connection registered",
		    path);
		return;
	}
	g_dbus_method_invocation_return_value(invocation, NULL);
}

static gboolean
kmx_daemon_handle_unregister_prompter(KmxDBusManager *iface,
				      GDBusMethodInvocation *invocation,
				      const char *path,
				      KmxDaemon *self)
{
	kmx_daemon_call_authorized(self,
				   invocation,
				   "unregister-prompter",
				   kmx_daemon_reply_unregister_prompter,
				   g_strdup(path),
				   g_free);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- the ObjectManager ---------------------------------------------------- */

static GDBusInterfaceInfo *
kmx_object_manager_info(void)
{
	static GDBusNodeInfo *node = NULL;

	if (g_once_init_enter(&node)) {
		GDBusNodeInfo *n = g_dbus_node_info_new_for_xml(
		    "<node><interface name='org.freedesktop.DBus.ObjectManager'>"
		    "<method name='GetManagedObjects'>"
		    "<arg type='a{oa{sa{sv}}}' name='objects' direction='out'/></method>"
		    "<signal name='InterfacesAdded'><arg type='o' name='object_path'/>"
		    "<arg type='a{sa{sv}}' name='interfaces_and_properties'/></signal>"
		    "<signal name='InterfacesRemoved'><arg type='o' name='object_path'/>"
		    "<arg type='as' name='interfaces'/></signal>"
		    "</interface></node>",
		    NULL);
		g_once_init_leave(&node, n);
	}
	return node->interfaces[0];
}

static gboolean
kmx_daemon_trim_cb(gpointer user_data)
{
	KmxDaemon *self = user_data;

	malloc_trim(0);
	self->trim_source = 0;
	return G_SOURCE_REMOVE;
}

static void
kmx_daemon_reply_managed_objects(KmxDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GPtrArray) devices = kmx_daemon_get_devices(self);
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("a{oa{sa{sv}}}"));
	for (guint i = 0; i < devices->len; i++)
		kmx_exported_device_add_managed_objects(
		    g_hash_table_lookup(self->devices, devices->pdata[i]),
		    &b);
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(a{oa{sa{sv}}})", &b));
	/* a large store's reply is megabytes: give them back to the system
	 * once GDBus has sent it (on its own thread) */
	if (devices->len > 0 && self->trim_source == 0)
		self->trim_source = g_timeout_add_seconds(1, kmx_daemon_trim_cb, self);
}

static void
kmx_object_manager_method_call(GDBusConnection *connection,
			       const char *sender,
			       const char *object_path,
			       const char *interface_name,
			       const char *method_name,
			       GVariant *parameters,
			       GDBusMethodInvocation *invocation,
			       gpointer user_data)
{
	kmx_daemon_call_authorized(user_data,
				   invocation,
				   "get-managed-objects",
				   kmx_daemon_reply_managed_objects,
				   NULL,
				   NULL);
}

static const GDBusInterfaceVTable kmx_object_manager_vtable = {
    .method_call = kmx_object_manager_method_call,
};

/* ---- life --------------------------------------------------------------------- */

static void
kmx_daemon_dispose(GObject *object)
{
	KmxDaemon *self = KMX_DAEMON(object);

	kmx_daemon_shutdown(self);
	G_OBJECT_CLASS(kmx_daemon_parent_class)->dispose(object);
}

static void
kmx_daemon_finalize(GObject *object)
{
	KmxDaemon *self = KMX_DAEMON(object);

	g_hash_table_unref(self->idle_timers);
	g_hash_table_unref(self->devices);
	g_hash_table_unref(self->callers);
	g_ptr_array_unref(self->prompters);
	g_ptr_array_unref(self->backends);
	g_clear_object(&self->manager);
	g_clear_object(&self->connection);
	g_clear_object(&self->system_bus);
	g_clear_object(&self->cancellable);
	g_hash_table_unref(self->prompts);
	g_clear_object(&self->context);
	G_OBJECT_CLASS(kmx_daemon_parent_class)->finalize(object);
}

static void
kmx_daemon_class_init(KmxDaemonClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	object_class->dispose = kmx_daemon_dispose;
	object_class->finalize = kmx_daemon_finalize;
}

static void
kmx_daemon_init(KmxDaemon *self)
{
	self->backends = g_ptr_array_new_with_free_func(g_object_unref);
	self->devices = g_hash_table_new_full(g_direct_hash,
					      g_direct_equal,
					      g_object_unref,
					      (GDestroyNotify)kmx_exported_device_free);
	self->callers =
	    g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)kmx_caller_unref);
	self->prompters = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_prompter_free);
	self->idle_timers =
	    g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, kmx_daemon_idle_remove);
	self->cancellable = g_cancellable_new();
	self->prompts = g_hash_table_new(g_direct_hash, g_direct_equal);
}

/**
 * kmx_daemon_new:
 * @context: paths and configuration
 *
 * Starts every enabled backend and builds the object tree, not yet on a bus.
 *
 * Returns: (transfer full): the daemon, or %NULL if no backend could start
 */
KmxDaemon *
kmx_daemon_new(KmxContext *context, GError **error)
{
	g_autoptr(KmxDaemon) self = g_object_new(KMX_TYPE_DAEMON, NULL);
	g_autoptr(GArray) types = kmx_backends_get_types();
	g_autoptr(GStrvBuilder) names = g_strv_builder_new();
	g_auto(GStrv) backend_names = NULL;

	self->context = g_object_ref(context);
	self->idle_timeout_s =
	    (guint)CLAMP(kmx_context_get_int(context, "daemon", "idle-lock-timeout", 0),
			 0,
			 G_MAXINT / 1000);
	self->manager = kmx_dbus_manager_skeleton_new();

	for (guint i = 0; i < types->len; i++) {
		GType type = g_array_index(types, GType, i);
		g_autoptr(GError) error_local = NULL;
		g_autoptr(KmxBackend) backend = NULL;
		g_autofree char *name = g_ascii_strdown(g_type_name(type) + strlen("Kmx"), -1);

		/* KmxSoftkeyBackend -> softkey */
		if (g_str_has_suffix(name, "backend"))
			name[strlen(name) - strlen("backend")] = '\0';
		if (!kmx_context_get_boolean(context, "backends", name, TRUE)) {
			g_info("backend %s is disabled in %s",
			       name,
			       kmx_context_get_config_path(context));
			continue;
		}
		backend = g_object_new(type, "name", name, "context", context, NULL);
		g_signal_connect(backend,
				 "device-added",
				 G_CALLBACK(kmx_daemon_device_added_cb),
				 self);
		g_signal_connect(backend,
				 "device-removed",
				 G_CALLBACK(kmx_daemon_device_removed_cb),
				 self);
		if (!kmx_backend_start(backend, &error_local)) {
			g_warning("backend %s did not start: %s", name, error_local->message);
			g_signal_handlers_disconnect_by_data(backend, self);
			continue;
		}
		g_strv_builder_add(names, name);
		g_ptr_array_add(self->backends, g_steal_pointer(&backend));
	}
	backend_names = g_strv_builder_end(names);
	kmx_dbus_manager_set_version(self->manager, PACKAGE_VERSION);
	kmx_dbus_manager_set_backends(self->manager, (const char *const *)backend_names);

	g_signal_connect(self->manager,
			 "handle-list-devices",
			 G_CALLBACK(kmx_daemon_handle_list_devices),
			 self);
	g_signal_connect(self->manager,
			 "handle-list-keys",
			 G_CALLBACK(kmx_daemon_handle_list_keys),
			 self);
	g_signal_connect(self->manager,
			 "handle-find-key",
			 G_CALLBACK(kmx_daemon_handle_find_key),
			 self);
	g_signal_connect(self->manager, "handle-sign", G_CALLBACK(kmx_daemon_handle_sign), self);
	g_signal_connect(self->manager,
			 "handle-decrypt",
			 G_CALLBACK(kmx_daemon_handle_decrypt),
			 self);
	g_signal_connect(self->manager,
			 "handle-lock-all",
			 G_CALLBACK(kmx_daemon_handle_lock_all),
			 self);
	g_signal_connect(self->manager,
			 "handle-register-prompter",
			 G_CALLBACK(kmx_daemon_handle_register_prompter),
			 self);
	g_signal_connect(self->manager,
			 "handle-unregister-prompter",
			 G_CALLBACK(kmx_daemon_handle_unregister_prompter),
			 self);
	return g_steal_pointer(&self);
}

/**
 * kmx_daemon_export:
 * @connection: the bus
 *
 * Puts the object tree on @connection and starts following callers and
 * the system's sleep.
 */
gboolean
kmx_daemon_export(KmxDaemon *self, GDBusConnection *connection, GError **error)
{
	GHashTableIter iter;
	gpointer edev;

	g_set_object(&self->connection, connection);
	if (!g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(self->manager),
					      connection,
					      KMX_DBUS_PATH,
					      error))
		return FALSE;
	self->object_manager_id = g_dbus_connection_register_object(connection,
								    KMX_DBUS_PATH,
								    kmx_object_manager_info(),
								    &kmx_object_manager_vtable,
								    self,
								    NULL,
								    error);
	if (self->object_manager_id == 0)
		return FALSE;
	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, NULL, &edev)) {
		if (!kmx_exported_device_attach(edev, connection, FALSE, error))
			return FALSE;
	}
	self->name_owner_changed_id =
	    g_dbus_connection_signal_subscribe(connection,
					       "org.freedesktop.DBus",
					       "org.freedesktop.DBus",
					       "NameOwnerChanged",
					       "/org/freedesktop/DBus",
					       NULL,
					       G_DBUS_SIGNAL_FLAGS_NONE,
					       kmx_daemon_name_owner_changed_cb,
					       self,
					       NULL);
	if (!kmx_context_get_boolean(self->context, "daemon", "lock-on-suspend", TRUE))
		return TRUE;
	g_bus_get(G_BUS_TYPE_SYSTEM,
		  self->cancellable,
		  kmx_daemon_system_bus_cb,
		  g_object_ref(self));
	return TRUE;
}

GDBusConnection *
kmx_daemon_get_connection(KmxDaemon *self)
{
	return self->connection;
}

/**
 * kmx_daemon_shutdown:
 *
 * Locks every device and stops the backends; secrets are gone afterwards.
 * Blocks until each device's executor ran its lock: this is the exit path.
 */
void
kmx_daemon_shutdown(KmxDaemon *self)
{
	GHashTableIter iter;
	gpointer device, edev;

	if (self->shut_down)
		return;
	self->shut_down = TRUE;
	g_clear_handle_id(&self->trim_source, g_source_remove);
	g_cancellable_cancel(self->cancellable);
	if (self->sleep_signal_id != 0) {
		g_dbus_connection_signal_unsubscribe(self->system_bus, self->sleep_signal_id);
		self->sleep_signal_id = 0;
	}
	if (self->name_owner_changed_id != 0) {
		g_dbus_connection_signal_unsubscribe(self->connection, self->name_owner_changed_id);
		self->name_owner_changed_id = 0;
	}
	g_hash_table_remove_all(self->idle_timers);
	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, &device, NULL)) {
		g_autoptr(GError) error = NULL;
		g_signal_handlers_disconnect_by_func(device, kmx_daemon_idle_update, self);
		if (!kmx_device_lock(device, NULL, &error))
			g_warning("cannot lock %s: %s", kmx_device_get_id(device), error->message);
	}
	/* going away as a whole: no InterfacesRemoved for every key */
	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, NULL, &edev))
		kmx_exported_device_detach(edev);
	for (guint i = 0; i < self->backends->len; i++) {
		KmxBackend *backend = g_ptr_array_index(self->backends, i);
		kmx_backend_stop(backend);
		g_signal_handlers_disconnect_by_data(backend, self);
	}
	g_ptr_array_set_size(self->backends, 0);
	g_hash_table_remove_all(self->devices);
	g_ptr_array_set_size(self->prompters, 0);
	if (self->object_manager_id != 0) {
		g_dbus_connection_unregister_object(self->connection, self->object_manager_id);
		self->object_manager_id = 0;
	}
	if (self->manager != NULL && self->connection != NULL)
		g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(self->manager));
}
