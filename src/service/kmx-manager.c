/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the manager: devices, the request pipeline, prompting, locking,
 * audit — with no D-Bus in it
 *
 * The main thread owns all of this.  Backends are started here and their
 * devices collected; frontends (D-Bus, ssh-agent) see devices and keys only
 * through the manager, pass every call through one authorisation hook
 * (kmx_manager_authorize()), and turn calls into KmxRequests
 * (kmx-request.c).  Locking: Lock/LockAll, an idle timeout per device, and
 * whatever a frontend hears of (suspend) through kmx_manager_lock_all().
 *
 * The work in flight is bounded: a caller may have so many requests
 * between kmx_request_start() and their reply, and all callers together
 * so many ([daemon] max-requests-per-caller, max-requests); one more is
 * refused at once, never queued.  When a burst of calls is over (a
 * second without one, none in flight), the heap it left is given back to
 * the system.
 */
#include "config.h"

#include <malloc.h>
#include <string.h>
#include <unistd.h>

#include "kmx-backend.h"
#include "kmx-backends.h"
#include "kmx-error.h"
#include "kmx-manager-private.h"

struct _KmxManager {
	GObject parent_instance;
	KmxContext *context;
	GPtrArray *backends;
	GStrv backend_names;
	GHashTable *devices; /* id -> KmxDevice */
	GPtrArray *prompters;
	KmxPrompter *system_prompter; /* asked after the prompters */
	GHashTable *prompts;	      /* KmxDevice -> KmxPrompt of its user secret */
	GHashTable *idle_timers;      /* KmxDevice -> source id */
	guint idle_timeout_s;
	guint prompt_timeout_s;
	gboolean shut_down;
	GMainContext *main_context;
	guint max_requests;	       /* 0: no limit */
	guint max_requests_per_caller; /* 0: no limit */
	gint requests;		       /* in flight; atomic: they end on workers */
	guint calls;		       /* calls authorised since the last trim */
	gint64 last_call;	       /* when the last one was */
	gint64 refused_total_at;       /* when the total limit was last logged */
	GSource *trim_source;
	gint trim_waits; /* atomic: a trim waits for the requests in flight */
	uid_t uid;	 /* ours, asked once: it does not change */
};

/* the defaults of [daemon] max-requests-per-caller and max-requests: a
 * caller that pipelines signatures over a few connections never meets them */
#define KMX_MAX_REQUESTS_PER_CALLER 64
#define KMX_MAX_REQUESTS	    4096
/* a burst of this many calls leaves heap behind: trim it once it is over */
#define KMX_TRIM_AFTER_CALLS 256
/* ... and over means this long without a call, and none in flight */
#define KMX_TRIM_QUIET_MS 1000
#define KMX_TRIM_AGAIN_MS 5000

G_DEFINE_TYPE(KmxManager, kmx_manager, G_TYPE_OBJECT)

enum { SIGNAL_DEVICE_ADDED, SIGNAL_DEVICE_REMOVED, SIGNAL_DEVICE_REPLACED, N_SIGNALS };
static guint signals[N_SIGNALS];

GHashTable *
kmx_manager_get_prompts(KmxManager *self)
{
	return self->prompts;
}

guint
kmx_manager_get_prompt_timeout(KmxManager *self)
{
	return self->prompt_timeout_s;
}

KmxContext *
kmx_manager_get_context(KmxManager *self)
{
	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	return self->context;
}

/**
 * kmx_manager_get_backend_names:
 *
 * Returns: (transfer none): the backends that started
 */
const char *const *
kmx_manager_get_backend_names(KmxManager *self)
{
	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	return (const char *const *)self->backend_names;
}

/* ---- the authorisation hook ------------------------------------------------ */

typedef struct {
	KmxManager *self;
	KmxAuthorized callback;
	gpointer user_data;
} KmxAuthorizing;

static void
kmx_manager_caller_ready(KmxCaller *caller, gpointer user_data)
{
	KmxAuthorizing *a = user_data;
	g_autoptr(KmxManager) self = a->self;
	g_autoptr(GError) error = NULL;
	guint32 uid = G_MAXUINT32;

	/* a burst of calls, granted or not, leaves heap to give back; it
	 * ends when they are decided (a caller that left is found out late) */
	self->last_call = g_get_monotonic_time();
	if (++self->calls >= KMX_TRIM_AFTER_CALLS)
		kmx_manager_trim_later(self);

	if (!kmx_caller_get_uid(caller, &uid))
		g_set_error(&error,
			    KMX_ERROR,
			    KMX_ERROR_DENIED,
			    "cannot identify the caller %s",
			    kmx_caller_get_name(caller));
	else if (uid != (guint32)self->uid)
		g_set_error(&error,
			    KMX_ERROR,
			    KMX_ERROR_DENIED,
			    "only the user who runs this keymuxd (uid %u) may use it",
			    (guint)self->uid);
	a->callback(caller, error, a->user_data);
	g_free(a);
}

/**
 * kmx_manager_authorize:
 * @callback: gets %NULL, or the reason for the refusal (Denied)
 *
 * The one authorisation hook every method and property read of every
 * frontend passes, before anything else happens (prompting included).  It
 * waits for the caller's credentials and denies by default: only processes
 * of the user who owns this daemon may use it.  Main thread; @callback may
 * run before this returns.
 */
void
kmx_manager_authorize(KmxManager *self,
		      KmxCaller *caller,
		      KmxAuthorized callback,
		      gpointer user_data)
{
	KmxAuthorizing *a;

	g_return_if_fail(KMX_IS_MANAGER(self));
	g_return_if_fail(caller != NULL);
	g_return_if_fail(callback != NULL);
	a = g_new0(KmxAuthorizing, 1);
	a->self = g_object_ref(self);
	a->callback = callback;
	a->user_data = user_data;
	kmx_caller_when_resolved(caller, kmx_manager_caller_ready, a);
}

/* ---- the work in flight ------------------------------------------------------- */

static void kmx_manager_trim_arm(KmxManager *self, guint delay_ms);

static gboolean
kmx_manager_trim_cb(gpointer user_data)
{
	KmxManager *self = user_data;
	gint64 quiet_ms = (g_get_monotonic_time() - self->last_call) / 1000;

	g_clear_pointer(&self->trim_source, g_source_unref);
	/* not while calls keep coming: a second after the last */
	if (quiet_ms < KMX_TRIM_QUIET_MS) {
		kmx_manager_trim_arm(self, (guint)(KMX_TRIM_QUIET_MS - quiet_ms));
		return G_SOURCE_REMOVE;
	}
	/* not while requests are in flight: the last one to end calls
	 * kmx_manager_trim_later() again.  The flag goes up before the count
	 * is read, so that a request ending meanwhile sees it */
	g_atomic_int_set(&self->trim_waits, 1);
	if (g_atomic_int_get(&self->requests) > 0) {
		g_debug("not trimming the heap yet: %d requests in flight",
			g_atomic_int_get(&self->requests));
		return G_SOURCE_REMOVE;
	}
	/* a request that ended just now may still call back: one trim more */
	g_atomic_int_set(&self->trim_waits, 0);
	/* glibc keeps freed memory in its arenas; this gives the free pages
	 * of every arena back to the system */
	malloc_trim(0);
	g_debug("returned free heap to the system");
	/* after a burst, once more a little later: by then GDBus has written
	 * the replies it still held (on its own thread, as fast as the bus
	 * reads them) and freed them */
	if (self->calls >= KMX_TRIM_AFTER_CALLS)
		kmx_manager_trim_arm(self, KMX_TRIM_AGAIN_MS);
	self->calls = 0;
	return G_SOURCE_REMOVE;
}

static void
kmx_manager_trim_arm(KmxManager *self, guint delay_ms)
{
	self->trim_source = g_timeout_source_new(delay_ms);
	/* after whatever else the main loop has to do: the calls of a flood
	 * wait there in GDBus's queue, where no request counts them yet */
	g_source_set_priority(self->trim_source, G_PRIORITY_LOW);
	g_source_set_callback(self->trim_source, kmx_manager_trim_cb, self, NULL);
	g_source_attach(self->trim_source, self->main_context);
}

/**
 * kmx_manager_trim_later:
 *
 * Gives free heap back to the system once what used it (a burst of calls,
 * a large reply that GDBus sends on its own thread) is gone: when a second
 * has passed without a call, no request is in flight and the main loop
 * has nothing else to do.  Calls meanwhile share one trim.  Main thread.
 */
void
kmx_manager_trim_later(KmxManager *self)
{
	g_return_if_fail(KMX_IS_MANAGER(self));
	if (self->trim_source != NULL || self->shut_down)
		return;
	kmx_manager_trim_arm(self, KMX_TRIM_QUIET_MS);
}

/* main thread: nothing is in flight any more */
static gboolean
kmx_manager_drained_cb(gpointer user_data)
{
	KmxManager *self = user_data;

	if (g_atomic_int_get(&self->requests) == 0 && self->calls >= KMX_TRIM_AFTER_CALLS)
		kmx_manager_trim_later(self);
	return G_SOURCE_REMOVE;
}

/**
 * kmx_manager_admit_request:
 *
 * Counts a request of @caller in flight, or refuses it (Failed, saying
 * why) when the caller, or everyone together, has as many as allowed.
 * Main thread; each admitted request is released with
 * kmx_manager_release_request().
 */
gboolean
kmx_manager_admit_request(KmxManager *self, KmxCaller *caller, GError **error)
{
	guint total, mine;

	g_return_val_if_fail(KMX_IS_MANAGER(self), FALSE);
	g_return_val_if_fail(caller != NULL, FALSE);
	total = (guint)g_atomic_int_get(&self->requests);
	mine = kmx_caller_get_requests(caller);
	if (self->max_requests_per_caller > 0 && mine >= self->max_requests_per_caller) {
		if (kmx_caller_note_refused(caller))
			g_warning("%s (pid %u, %s) has %u requests in flight: refusing more "
				  "until it has replies",
				  kmx_caller_get_name(caller),
				  kmx_caller_get_pid(caller),
				  kmx_caller_get_exe(caller),
				  mine);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "too many requests in flight (%u of this caller); wait for replies "
			    "before sending more",
			    mine);
		return FALSE;
	}
	if (self->max_requests > 0 && total >= self->max_requests) {
		gint64 now = g_get_monotonic_time();

		if (self->refused_total_at == 0 ||
		    now - self->refused_total_at > 10 * G_USEC_PER_SEC) {
			g_warning("%u requests in flight from all callers: refusing more until "
				  "there are replies (the last caller refused: %s, pid %u)",
				  total,
				  kmx_caller_get_name(caller),
				  kmx_caller_get_pid(caller));
			self->refused_total_at = now;
		}
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "too many requests in flight (%u in all, from every caller); wait for "
			    "replies and try again",
			    total);
		return FALSE;
	}
	kmx_caller_add_request(caller);
	g_atomic_int_inc(&self->requests);
	return TRUE;
}

/**
 * kmx_manager_release_request:
 *
 * A request admitted by kmx_manager_admit_request() is about to reply;
 * any thread.  The last one of a burst has the heap trimmed after it, if
 * the trim found it still in flight.
 */
void
kmx_manager_release_request(KmxManager *self, KmxCaller *caller)
{
	GSource *source;

	kmx_caller_remove_request(caller);
	if (!g_atomic_int_dec_and_test(&self->requests))
		return;
	/* the main thread is woken only when a trim waits for this: not
	 * after every reply of a client that has one call in flight */
	if (!g_atomic_int_compare_and_exchange(&self->trim_waits, 1, 0))
		return;
	source = g_idle_source_new();
	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source, kmx_manager_drained_cb, g_object_ref(self), g_object_unref);
	g_source_attach(source, self->main_context);
	g_source_unref(source);
}

/**
 * kmx_manager_get_requests:
 *
 * Returns: the requests in flight, of every caller
 */
guint
kmx_manager_get_requests(KmxManager *self)
{
	g_return_val_if_fail(KMX_IS_MANAGER(self), 0);
	return (guint)g_atomic_int_get(&self->requests);
}

/* ---- prompters ----------------------------------------------------------------- */

/**
 * kmx_manager_add_prompter:
 *
 * Adds a prompter; the most recently added is asked first.
 */
void
kmx_manager_add_prompter(KmxManager *self, KmxPrompter *prompter)
{
	g_return_if_fail(KMX_IS_MANAGER(self));
	g_return_if_fail(KMX_IS_PROMPTER(prompter));
	g_ptr_array_remove(self->prompters, prompter);
	g_ptr_array_add(self->prompters, g_object_ref(prompter));
}

void
kmx_manager_remove_prompter(KmxManager *self, KmxPrompter *prompter)
{
	g_return_if_fail(KMX_IS_MANAGER(self));
	g_ptr_array_remove(self->prompters, prompter);
}

/**
 * kmx_manager_get_prompters:
 *
 * Returns: (transfer container): the prompters, the most recent last
 */
GPtrArray *
kmx_manager_get_prompters(KmxManager *self)
{
	GPtrArray *copy;

	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	copy = g_ptr_array_new_full(self->prompters->len, g_object_unref);
	for (guint i = 0; i < self->prompters->len; i++)
		g_ptr_array_add(copy, g_object_ref(g_ptr_array_index(self->prompters, i)));
	return copy;
}

/**
 * kmx_manager_set_system_prompter:
 * @prompter: (nullable): the desktop's prompter
 *
 * Sets who is asked when no registered prompter answers (DESIGN.md §5).
 */
void
kmx_manager_set_system_prompter(KmxManager *self, KmxPrompter *prompter)
{
	g_return_if_fail(KMX_IS_MANAGER(self));
	g_set_object(&self->system_prompter, prompter);
}

/**
 * kmx_manager_get_system_prompter:
 *
 * Returns: (transfer none) (nullable): the desktop's prompter
 */
KmxPrompter *
kmx_manager_get_system_prompter(KmxManager *self)
{
	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	return self->system_prompter;
}

/* ---- locking -------------------------------------------------------------------- */

static void
kmx_manager_lock_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	g_autoptr(GError) error = NULL;
	KmxDevice *device = KMX_DEVICE(source);

	if (!kmx_device_lock(device, NULL, &error))
		g_warning("cannot lock %s: %s", kmx_device_get_id(device), error->message);
	g_task_return_boolean(task, TRUE);
}

/* the devices kmx_manager_lock_all_then() still waits for */
typedef struct {
	guint pending;
	GFunc done;
	gpointer user_data;
} KmxLockAll;

static void
kmx_lock_all_step(KmxLockAll *all)
{
	if (--all->pending > 0)
		return;
	all->done(all->user_data, NULL);
	g_free(all);
}

static void
kmx_manager_lock_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	kmx_device_flush_state(KMX_DEVICE(source));
	if (user_data != NULL)
		kmx_lock_all_step(user_data);
}

static void
kmx_manager_lock_device_then(KmxManager *self, KmxDevice *device, KmxLockAll *all)
{
	g_autoptr(GTask) task = NULL;

	kmx_device_forget_secret(device);
	task = g_task_new(device, NULL, kmx_manager_lock_done, all);
	kmx_executor_run(kmx_device_get_executor(device), task, kmx_manager_lock_thread);
}

/**
 * kmx_manager_lock_device:
 *
 * Forgets the device's kept secret and locks it on its executor.
 */
void
kmx_manager_lock_device(KmxManager *self, KmxDevice *device)
{
	g_return_if_fail(KMX_IS_MANAGER(self));
	g_return_if_fail(KMX_IS_DEVICE(device));
	kmx_manager_lock_device_then(self, device, NULL);
}

/**
 * kmx_manager_lock_all_then:
 * @done: (nullable): called on the main thread (with @user_data and %NULL)
 *   once every device has locked: behind the work already queued on its
 *   executor, e.g. a signature under way on a card
 *
 * Locks every device, asynchronously, in order on each device's executor.
 */
void
kmx_manager_lock_all_then(KmxManager *self, GFunc done, gpointer user_data)
{
	GHashTableIter iter;
	gpointer device;
	KmxLockAll *all = NULL;

	g_return_if_fail(KMX_IS_MANAGER(self));
	if (done != NULL) {
		all = g_new0(KmxLockAll, 1);
		all->pending = 1; /* until every lock is queued */
		all->done = done;
		all->user_data = user_data;
	}
	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, NULL, &device)) {
		if (all != NULL)
			all->pending++;
		kmx_manager_lock_device_then(self, device, all);
	}
	g_hash_table_remove_all(self->idle_timers);
	if (all != NULL)
		kmx_lock_all_step(all);
}

/**
 * kmx_manager_lock_all:
 *
 * Locks every device, asynchronously, in order on each device's executor.
 */
void
kmx_manager_lock_all(KmxManager *self)
{
	kmx_manager_lock_all_then(self, NULL, NULL);
}

typedef struct {
	KmxManager *self;
	KmxDevice *device;
} KmxIdle;

static void kmx_manager_idle_arm(KmxManager *self, KmxDevice *device, gint64 delay_us);

/* the idle lock: a timer per open device that fires at last use + timeout;
 * uses move the deadline without touching the timer (they may happen on
 * any thread), so the timer checks when it fires */
static gboolean
kmx_manager_idle_lock_cb(gpointer user_data)
{
	KmxIdle *idle = user_data;
	KmxManager *self = idle->self;
	KmxDevice *device = idle->device;
	gint64 timeout = (gint64)self->idle_timeout_s * G_USEC_PER_SEC;
	gint64 left = kmx_device_get_last_used(device) + timeout - g_get_monotonic_time();

	g_hash_table_steal(self->idle_timers, device);
	if (kmx_device_is_locked(device))
		return G_SOURCE_REMOVE;
	if (left > 0) {
		kmx_manager_idle_arm(self, device, left);
		return G_SOURCE_REMOVE;
	}
	g_info("locking %s after %u s unused", kmx_device_get_id(device), self->idle_timeout_s);
	kmx_manager_lock_device(self, device);
	return G_SOURCE_REMOVE;
}

static void
kmx_manager_idle_remove(gpointer data)
{
	g_source_remove(GPOINTER_TO_UINT(data));
}

static void
kmx_manager_idle_arm(KmxManager *self, KmxDevice *device, gint64 delay_us)
{
	KmxIdle *idle = g_new0(KmxIdle, 1);
	guint id;

	idle->self = self;
	idle->device = device;
	id = g_timeout_add_full(G_PRIORITY_DEFAULT,
				(guint)MIN(delay_us / 1000 + 1, G_MAXUINT),
				kmx_manager_idle_lock_cb,
				idle,
				g_free);
	g_hash_table_insert(self->idle_timers, device, GUINT_TO_POINTER(id));
}

/* a device that opens starts its idle timer; one that locks drops it; a
 * question waiting for a device that opened another way is withdrawn */
static void
kmx_manager_device_flags_cb(KmxDevice *device, GParamSpec *pspec, KmxManager *self)
{
	kmx_manager_prompts_device_changed(self, device);
	if (self->idle_timeout_s == 0)
		return;
	if (kmx_device_is_locked(device) || !kmx_device_is_available(device)) {
		g_hash_table_remove(self->idle_timers, device);
		return;
	}
	if (!g_hash_table_contains(self->idle_timers, device)) {
		kmx_device_touch(device);
		kmx_manager_idle_arm(self, device, (gint64)self->idle_timeout_s * G_USEC_PER_SEC);
	}
}

/* ---- devices -------------------------------------------------------------------- */

static void
kmx_manager_follow(KmxManager *self, KmxDevice *device)
{
	g_hash_table_insert(self->devices,
			    g_strdup(kmx_device_get_id(device)),
			    g_object_ref(device));
	g_signal_connect(device, "notify::flags", G_CALLBACK(kmx_manager_device_flags_cb), self);
}

static void
kmx_manager_unfollow(KmxManager *self, KmxDevice *device)
{
	g_signal_handlers_disconnect_by_func(device, kmx_manager_device_flags_cb, self);
	g_hash_table_remove(self->idle_timers, device);
	kmx_manager_prompts_device_changed(self, device);
}

static void
kmx_manager_device_added_cb(KmxBackend *backend, KmxDevice *device, KmxManager *self)
{
	g_debug("device %s added", kmx_device_get_id(device));
	kmx_manager_follow(self, device);
	g_signal_emit(self, signals[SIGNAL_DEVICE_ADDED], 0, device);
}

static void
kmx_manager_device_removed_cb(KmxBackend *backend, KmxDevice *device, KmxManager *self)
{
	g_debug("device %s removed", kmx_device_get_id(device));
	kmx_manager_unfollow(self, device);
	g_signal_emit(self, signals[SIGNAL_DEVICE_REMOVED], 0, device);
	g_hash_table_remove(self->devices, kmx_device_get_id(device));
}

static void
kmx_manager_device_replaced_cb(KmxBackend *backend,
			       KmxDevice *old,
			       KmxDevice *device,
			       KmxManager *self)
{
	g_debug("device %s is back", kmx_device_get_id(device));
	kmx_manager_unfollow(self, old);
	kmx_manager_follow(self, device);
	g_signal_emit(self, signals[SIGNAL_DEVICE_REPLACED], 0, old, device);
}

static gint
kmx_compare_devices(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(kmx_device_get_id(*(KmxDevice **)a), kmx_device_get_id(*(KmxDevice **)b));
}

/**
 * kmx_manager_get_devices:
 *
 * Returns: (transfer container): every device, sorted by id
 */
GPtrArray *
kmx_manager_get_devices(KmxManager *self)
{
	GPtrArray *devices;
	GHashTableIter iter;
	gpointer device;

	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	devices = g_ptr_array_new_full(g_hash_table_size(self->devices), NULL);
	g_hash_table_iter_init(&iter, self->devices);
	while (g_hash_table_iter_next(&iter, NULL, &device))
		g_ptr_array_add(devices, device);
	g_ptr_array_sort(devices, kmx_compare_devices);
	return devices;
}

/**
 * kmx_manager_find_device:
 *
 * Returns: (transfer none) (nullable): the device with this id
 */
KmxDevice *
kmx_manager_find_device(KmxManager *self, const char *device_id)
{
	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	g_return_val_if_fail(device_id != NULL, NULL);
	return g_hash_table_lookup(self->devices, device_id);
}

static KmxBackend *
kmx_manager_backend_of(KmxManager *self, KmxDevice *device)
{
	for (guint i = 0; i < self->backends->len; i++) {
		KmxBackend *backend = g_ptr_array_index(self->backends, i);
		if (kmx_backend_find_device(backend, kmx_device_get_id(device)) == device)
			return backend;
	}
	return NULL;
}

gboolean
kmx_manager_register_device(KmxManager *self, KmxDevice *device, GError **error)
{
	KmxBackend *backend = kmx_manager_backend_of(self, device);

	if (backend == NULL) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_NOT_FOUND, "the device is gone");
		return FALSE;
	}
	return kmx_backend_register_device(backend, device, error);
}

gboolean
kmx_manager_unregister_device(KmxManager *self, KmxDevice *device, GError **error)
{
	KmxBackend *backend = kmx_manager_backend_of(self, device);

	if (backend == NULL) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_NOT_FOUND, "the device is gone");
		return FALSE;
	}
	return kmx_backend_unregister_device(backend, device, error);
}

/* ---- keys ------------------------------------------------------------------------ */

static char *
kmx_key_id_normalize(const char *id, GError **error)
{
	gsize n = strlen(id);

	if (n < 8 || n > 64) {
		g_autofree char *shown = g_strescape(id, NULL);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a key id is 64 hex digits, or a prefix of at least 8; '%.80s' is not",
			    shown);
		return NULL;
	}
	for (gsize i = 0; i < n; i++) {
		if (!g_ascii_isxdigit(id[i])) {
			g_autofree char *shown = g_strescape(id, NULL);
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a key id is hexadecimal; '%.80s' is not",
				    shown);
			return NULL;
		}
	}
	return g_ascii_strdown(id, -1);
}

/**
 * kmx_manager_find_keys:
 * @id: a key id or a prefix of at least 8 hex digits, either case
 *
 * Returns: (transfer container) (element-type KmxKey): the keys whose id
 * starts with @id, by device; %NULL with InvalidArgument or NotFound
 */
GPtrArray *
kmx_manager_find_keys(KmxManager *self, const char *id, GError **error)
{
	g_autoptr(GPtrArray) devices = NULL;
	g_autoptr(GPtrArray) found = NULL;
	g_autofree char *prefix = NULL;
	gsize n;

	g_return_val_if_fail(KMX_IS_MANAGER(self), NULL);
	g_return_val_if_fail(id != NULL, NULL);
	prefix = kmx_key_id_normalize(id, error);
	if (prefix == NULL)
		return NULL;
	n = strlen(prefix);
	devices = kmx_manager_get_devices(self);
	found = g_ptr_array_new();
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
	if (found->len == 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_FOUND,
			    "no key with id %s; list them with keymuxctl keys",
			    prefix);
		return NULL;
	}
	return g_steal_pointer(&found);
}

/**
 * kmx_manager_pick_key:
 *
 * Picks the holder of a key id (or of an unambiguous prefix) for an
 * operation by id: an available, unlocked one first, then an available
 * one (which may prompt).
 *
 * Returns: (transfer none): the key, or %NULL
 */
KmxKey *
kmx_manager_pick_key(KmxManager *self, const char *id, GError **error)
{
	g_autoptr(GPtrArray) found = kmx_manager_find_keys(self, id, error);
	KmxKey *best = NULL;
	int best_rank = -1;

	if (found == NULL)
		return NULL;
	for (guint i = 1; i < found->len; i++) {
		if (!g_str_equal(kmx_key_get_id(found->pdata[0]),
				 kmx_key_get_id(found->pdata[i]))) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "key id prefix %.64s is ambiguous: it matches %s and %s; give "
				    "more digits",
				    id,
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

/* ---- life ------------------------------------------------------------------------- */

static void
kmx_manager_dispose(GObject *object)
{
	kmx_manager_shutdown(KMX_MANAGER(object));
	G_OBJECT_CLASS(kmx_manager_parent_class)->dispose(object);
}

static void
kmx_manager_finalize(GObject *object)
{
	KmxManager *self = KMX_MANAGER(object);

	g_main_context_unref(self->main_context);
	g_hash_table_unref(self->idle_timers);
	g_hash_table_unref(self->devices);
	g_hash_table_unref(self->prompts);
	g_ptr_array_unref(self->prompters);
	g_clear_object(&self->system_prompter);
	g_ptr_array_unref(self->backends);
	g_strfreev(self->backend_names);
	g_clear_object(&self->context);
	G_OBJECT_CLASS(kmx_manager_parent_class)->finalize(object);
}

static void
kmx_manager_class_init(KmxManagerClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = kmx_manager_dispose;
	object_class->finalize = kmx_manager_finalize;
	signals[SIGNAL_DEVICE_ADDED] = g_signal_new("device-added",
						    G_TYPE_FROM_CLASS(klass),
						    G_SIGNAL_RUN_LAST,
						    0,
						    NULL,
						    NULL,
						    NULL,
						    G_TYPE_NONE,
						    1,
						    KMX_TYPE_DEVICE);
	signals[SIGNAL_DEVICE_REMOVED] = g_signal_new("device-removed",
						      G_TYPE_FROM_CLASS(klass),
						      G_SIGNAL_RUN_LAST,
						      0,
						      NULL,
						      NULL,
						      NULL,
						      G_TYPE_NONE,
						      1,
						      KMX_TYPE_DEVICE);
	signals[SIGNAL_DEVICE_REPLACED] = g_signal_new("device-replaced",
						       G_TYPE_FROM_CLASS(klass),
						       G_SIGNAL_RUN_LAST,
						       0,
						       NULL,
						       NULL,
						       NULL,
						       G_TYPE_NONE,
						       2,
						       KMX_TYPE_DEVICE,
						       KMX_TYPE_DEVICE);
}

static void
kmx_manager_init(KmxManager *self)
{
	self->backends = g_ptr_array_new_with_free_func(g_object_unref);
	self->devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_object_unref);
	self->prompters = g_ptr_array_new_with_free_func(g_object_unref);
	self->prompts = g_hash_table_new(g_direct_hash, g_direct_equal);
	self->idle_timers =
	    g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, kmx_manager_idle_remove);
	self->main_context = g_main_context_ref_thread_default();
	self->uid = getuid();
}

/* [daemon] KEY: a number of requests, 0 for no limit */
static guint
kmx_manager_get_limit(KmxContext *context, const char *key, guint fallback)
{
	gint64 v = kmx_context_get_int(context, "daemon", key, fallback);

	if (v < 0) {
		g_warning("%s: [daemon] %s must be 0 (no limit) or more; using %u",
			  kmx_context_get_config_path(context),
			  key,
			  fallback);
		return fallback;
	}
	return (guint)MIN(v, G_MAXINT);
}

/**
 * kmx_manager_new:
 * @context: paths and configuration
 *
 * Starts every enabled backend, on the calling thread, which becomes the
 * main thread.
 *
 * Returns: (transfer full): the manager
 */
KmxManager *
kmx_manager_new(KmxContext *context, GError **error)
{
	g_autoptr(KmxManager) self = g_object_new(KMX_TYPE_MANAGER, NULL);
	g_autoptr(GArray) types = kmx_backends_get_types();
	g_autoptr(GStrvBuilder) names = g_strv_builder_new();

	g_return_val_if_fail(KMX_IS_CONTEXT(context), NULL);
	kmx_core_mark_main_thread();
	self->context = g_object_ref(context);
	self->idle_timeout_s =
	    (guint)CLAMP(kmx_context_get_int(context, "daemon", "idle-lock-timeout", 0),
			 0,
			 G_MAXINT / 1000);
	self->prompt_timeout_s =
	    (guint)CLAMP(kmx_context_get_int(context, "daemon", "prompt-timeout", 300),
			 0,
			 G_MAXINT / 1000);
	self->max_requests_per_caller =
	    kmx_manager_get_limit(context, "max-requests-per-caller", KMX_MAX_REQUESTS_PER_CALLER);
	self->max_requests = kmx_manager_get_limit(context, "max-requests", KMX_MAX_REQUESTS);
	for (guint i = 0; i < types->len; i++) {
		GType type = g_array_index(types, GType, i);
		g_autoptr(GError) error_local = NULL;
		g_autoptr(KmxBackend) backend = NULL;
		g_autofree char *name = g_ascii_strdown(g_type_name(type) + strlen("Kmx"), -1);

		/* KmxSoftkeyBackend -> softkey */
		if (g_str_has_suffix(name, "backend"))
			name[strlen(name) - strlen("backend")] = '\0';
		/* the test backend is there for the test suite only */
		if (!kmx_context_get_boolean(context,
					     "backends",
					     name,
					     !g_str_equal(name, "test"))) {
			g_info("backend %s is disabled in %s",
			       name,
			       kmx_context_get_config_path(context));
			continue;
		}
		backend = g_object_new(type, "name", name, "context", context, NULL);
		g_signal_connect(backend,
				 "device-added",
				 G_CALLBACK(kmx_manager_device_added_cb),
				 self);
		g_signal_connect(backend,
				 "device-removed",
				 G_CALLBACK(kmx_manager_device_removed_cb),
				 self);
		g_signal_connect(backend,
				 "device-replaced",
				 G_CALLBACK(kmx_manager_device_replaced_cb),
				 self);
		if (!kmx_backend_start(backend, &error_local)) {
			g_warning("backend %s did not start: %s", name, error_local->message);
			g_signal_handlers_disconnect_by_data(backend, self);
			continue;
		}
		g_strv_builder_add(names, name);
		g_ptr_array_add(self->backends, g_steal_pointer(&backend));
	}
	self->backend_names = g_strv_builder_end(names);
	/* loading a large store on several threads leaves free heap in their
	 * arenas (0.9 MB at 10,000 keys): given back once the daemon is up */
	kmx_manager_trim_later(self);
	return g_steal_pointer(&self);
}

typedef struct {
	GMutex mutex;
	GCond cond;
	guint pending;
} KmxShutdownWait;

static void
kmx_manager_shutdown_lock(gpointer data, gpointer user_data)
{
	KmxDevice *device = KMX_DEVICE(g_object_get_data(G_OBJECT(data), "kmx-device"));
	KmxShutdownWait *wait = g_object_get_data(G_OBJECT(data), "kmx-wait");
	g_autoptr(GError) error = NULL;

	if (!kmx_device_lock(device, NULL, &error))
		g_warning("cannot lock %s: %s", kmx_device_get_id(device), error->message);
	g_mutex_lock(&wait->mutex);
	wait->pending--;
	g_cond_signal(&wait->cond);
	g_mutex_unlock(&wait->mutex);
	g_object_unref(data);
}

/**
 * kmx_manager_shutdown:
 *
 * Withdraws every question, locks every device on its executor, waits for
 * the locks (a few seconds at most: a stuck reader must not keep the
 * daemon alive) and stops the backends.  Secrets are gone afterwards.
 */
void
kmx_manager_shutdown(KmxManager *self)
{
	KmxShutdownWait *wait = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	gboolean timed_out;

	g_return_if_fail(KMX_IS_MANAGER(self));
	if (self->shut_down)
		return;
	self->shut_down = TRUE;
	if (self->trim_source != NULL) {
		g_source_destroy(self->trim_source);
		g_clear_pointer(&self->trim_source, g_source_unref);
	}
	kmx_manager_prompts_cancel_all(self);
	g_hash_table_remove_all(self->idle_timers);
	wait = g_new0(KmxShutdownWait, 1);
	g_mutex_init(&wait->mutex);
	g_cond_init(&wait->cond);
	devices = kmx_manager_get_devices(self);
	for (guint i = 0; i < devices->len; i++) {
		KmxDevice *device = g_ptr_array_index(devices, i);
		GObject *token = g_object_new(G_TYPE_OBJECT, NULL);

		kmx_device_forget_secret(device);
		g_object_set_data_full(token, "kmx-device", g_object_ref(device), g_object_unref);
		g_object_set_data(token, "kmx-wait", wait);
		g_mutex_lock(&wait->mutex);
		wait->pending++;
		g_mutex_unlock(&wait->mutex);
		kmx_executor_run_func(kmx_device_get_executor(device),
				      kmx_manager_shutdown_lock,
				      token);
	}
	g_mutex_lock(&wait->mutex);
	while (wait->pending > 0) {
		if (!g_cond_wait_until(&wait->cond, &wait->mutex, deadline)) {
			g_warning("%u device(s) did not lock in time; exiting anyway",
				  wait->pending);
			break;
		}
	}
	timed_out = wait->pending > 0;
	g_mutex_unlock(&wait->mutex);
	for (guint i = 0; i < self->backends->len; i++) {
		KmxBackend *backend = g_ptr_array_index(self->backends, i);
		kmx_backend_stop(backend);
		g_signal_handlers_disconnect_by_data(backend, self);
	}
	g_ptr_array_set_size(self->backends, 0);
	g_ptr_array_set_size(self->prompters, 0);
	/* a lock still running when we gave up uses wait later: keep it */
	if (timed_out)
		return;
	g_mutex_clear(&wait->mutex);
	g_cond_clear(&wait->cond);
	g_free(wait);
}
