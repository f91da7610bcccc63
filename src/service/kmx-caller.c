/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: who asks
 *
 * A caller is a bus connection or an ssh client.  Its frontend finds out
 * its user and process (GetConnectionCredentials, SO_PEERCRED) once, the
 * first time it is needed, and the authorisation hook waits for that.  A
 * caller that leaves cancels whatever it still has in flight.  The manager
 * counts its requests in flight here, to bound them.
 */
#include "config.h"

#include "kmx-caller.h"

struct _KmxCaller {
	gatomicrefcount ref;
	char *name;
	KmxCallerResolve resolve;
	gpointer resolve_data;
	gboolean resolving;
	gboolean resolved;
	gboolean known;
	guint32 uid;
	guint32 pid;
	char *exe;
	GPtrArray *waiting; /* KmxCallerWaiter */
	GMutex mutex;	    /* below: requests end on workers too */
	GPtrArray *cancellables;
	gboolean gone;
	gint requests;	  /* in flight; atomic: they end on workers */
	gboolean refused; /* once told it has too many */
};

typedef struct {
	KmxCallerReady ready;
	gpointer user_data;
} KmxCallerWaiter;

/**
 * kmx_caller_new:
 * @name: how logs and prompts name it (a unique bus name, "ssh-agent")
 * @resolve: called once, on the main thread, to find out who it is
 */
KmxCaller *
kmx_caller_new(const char *name, KmxCallerResolve resolve, gpointer resolve_data)
{
	KmxCaller *self = g_new0(KmxCaller, 1);

	g_atomic_ref_count_init(&self->ref);
	self->name = g_strdup(name != NULL ? name : "");
	self->resolve = resolve;
	self->resolve_data = resolve_data;
	self->waiting = g_ptr_array_new_with_free_func(g_free);
	self->cancellables = g_ptr_array_new_with_free_func(g_object_unref);
	g_mutex_init(&self->mutex);
	return self;
}

/**
 * kmx_caller_new_as:
 * @name: how logs and prompts name it
 * @other: a resolved caller
 *
 * A caller known by the credentials @other had, with no bus name to ask
 * again: a peer connection @other opened is that process, whoever holds
 * its end later.
 */
KmxCaller *
kmx_caller_new_as(const char *name, KmxCaller *other)
{
	KmxCaller *self = kmx_caller_new(name, NULL, NULL);

	g_return_val_if_fail(other != NULL && other->resolved, self);
	self->resolved = TRUE;
	self->known = other->known;
	self->uid = other->uid;
	self->pid = other->pid;
	self->exe = g_strdup(other->exe);
	return self;
}

/**
 * kmx_caller_new_for_peer:
 * @name: how logs and prompts name it
 * @uid: the peer's user, as the kernel told it (SO_PEERCRED)
 * @pid: its process
 *
 * A caller whose credentials are known when it arrives: the peer of a
 * socket, with no bus name.  Its executable is read at once.
 */
KmxCaller *
kmx_caller_new_for_peer(const char *name, guint32 uid, guint32 pid)
{
	KmxCaller *self = kmx_caller_new(name, NULL, NULL);

	kmx_caller_resolved(self, TRUE, uid, pid);
	return self;
}

KmxCaller *
kmx_caller_ref(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	g_atomic_ref_count_inc(&self->ref);
	return self;
}

void
kmx_caller_unref(KmxCaller *self)
{
	if (self == NULL || !g_atomic_ref_count_dec(&self->ref))
		return;
	g_free(self->name);
	g_free(self->exe);
	g_ptr_array_unref(self->waiting);
	g_ptr_array_unref(self->cancellables);
	g_mutex_clear(&self->mutex);
	g_free(self);
}

const char *
kmx_caller_get_name(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	return self->name;
}

gboolean
kmx_caller_is_resolved(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, FALSE);
	return self->resolved;
}

/**
 * kmx_caller_get_uid:
 *
 * Returns: whether the caller's user is known; it is in @uid then
 */
gboolean
kmx_caller_get_uid(KmxCaller *self, guint32 *uid)
{
	g_return_val_if_fail(self != NULL, FALSE);
	if (!self->known)
		return FALSE;
	*uid = self->uid;
	return TRUE;
}

guint32
kmx_caller_get_pid(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, 0);
	return self->pid;
}

/**
 * kmx_caller_get_exe:
 *
 * Returns: the caller's executable, with control characters escaped,
 * or "unknown"
 */
const char *
kmx_caller_get_exe(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	return self->exe != NULL ? self->exe : "unknown";
}

/**
 * kmx_caller_when_resolved:
 *
 * Calls @ready once the caller's credentials are known, or known to be
 * unknowable; at once when they are.  Main thread.
 */
void
kmx_caller_when_resolved(KmxCaller *self, KmxCallerReady ready, gpointer user_data)
{
	KmxCallerWaiter *w;

	g_return_if_fail(self != NULL);
	if (self->resolved || self->resolve == NULL) {
		self->resolved = TRUE;
		ready(self, user_data);
		return;
	}
	w = g_new0(KmxCallerWaiter, 1);
	w->ready = ready;
	w->user_data = user_data;
	g_ptr_array_add(self->waiting, w);
	if (self->resolving)
		return;
	self->resolving = TRUE;
	self->resolve(self, self->resolve_data);
}

/**
 * kmx_caller_resolved:
 * @known: whether the credentials could be found out
 *
 * The frontend's answer to its resolve function; main thread.
 */
void
kmx_caller_resolved(KmxCaller *self, gboolean known, guint32 uid, guint32 pid)
{
	g_autoptr(GPtrArray) waiting = NULL;

	g_return_if_fail(self != NULL);
	self->resolved = TRUE;
	self->resolving = FALSE;
	self->known = known;
	self->uid = uid;
	self->pid = pid;
	if (known && pid != 0) {
		g_autofree char *link = g_strdup_printf("/proc/%u/exe", pid);
		g_autofree char *exe = g_file_read_link(link, NULL);

		/* escaped once: it goes into every audit line and prompt, and a
		 * file name may hold a newline */
		g_free(self->exe);
		self->exe = exe != NULL ? g_strescape(exe, NULL) : NULL;
	}
	waiting = g_steal_pointer(&self->waiting);
	self->waiting = g_ptr_array_new_with_free_func(g_free);
	kmx_caller_ref(self);
	for (guint i = 0; i < waiting->len; i++) {
		KmxCallerWaiter *w = g_ptr_array_index(waiting, i);
		w->ready(self, w->user_data);
	}
	kmx_caller_unref(self);
}

/* requests in flight, cancelled when the caller leaves; any thread */
void
kmx_caller_track(KmxCaller *self, GCancellable *cancellable)
{
	gboolean gone;

	g_mutex_lock(&self->mutex);
	gone = self->gone;
	if (!gone)
		g_ptr_array_add(self->cancellables, g_object_ref(cancellable));
	g_mutex_unlock(&self->mutex);
	if (gone)
		g_cancellable_cancel(cancellable);
}

void
kmx_caller_untrack(KmxCaller *self, GCancellable *cancellable)
{
	g_mutex_lock(&self->mutex);
	g_ptr_array_remove_fast(self->cancellables, cancellable);
	g_mutex_unlock(&self->mutex);
}

/**
 * kmx_caller_gone:
 *
 * The caller left: cancels its requests where they wait.
 */
void
kmx_caller_gone(KmxCaller *self)
{
	g_autoptr(GPtrArray) cancellables = NULL;

	g_mutex_lock(&self->mutex);
	self->gone = TRUE;
	cancellables = g_steal_pointer(&self->cancellables);
	self->cancellables = g_ptr_array_new_with_free_func(g_object_unref);
	g_mutex_unlock(&self->mutex);
	for (guint i = 0; i < cancellables->len; i++)
		g_cancellable_cancel(g_ptr_array_index(cancellables, i));
}

gboolean
kmx_caller_is_gone(KmxCaller *self)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->mutex);
	return self->gone;
}

/**
 * kmx_caller_get_requests:
 *
 * Returns: how many requests of the caller are in flight, as the manager
 * counts them (kmx_caller_add_request()); any thread
 */
guint
kmx_caller_get_requests(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, 0);
	return (guint)g_atomic_int_get(&self->requests);
}

/* one more request in flight; the main thread, which alone adds */
void
kmx_caller_add_request(KmxCaller *self)
{
	g_return_if_fail(self != NULL);
	g_atomic_int_inc(&self->requests);
}

/* a request ended; any thread */
void
kmx_caller_remove_request(KmxCaller *self)
{
	g_return_if_fail(self != NULL);
	g_return_if_fail(g_atomic_int_get(&self->requests) > 0);
	(void)g_atomic_int_dec_and_test(&self->requests);
}

/**
 * kmx_caller_note_refused:
 *
 * Records that a request of the caller was refused because it had too
 * many in flight; main thread.
 *
 * Returns: whether it is the first time, so that the log tells it once
 */
gboolean
kmx_caller_note_refused(KmxCaller *self)
{
	g_return_val_if_fail(self != NULL, FALSE);
	if (self->refused)
		return FALSE;
	self->refused = TRUE;
	return TRUE;
}
