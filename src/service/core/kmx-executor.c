/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: where a device's blocking work runs
 *
 * A serial executor is one dedicated thread fed in order: PC/SC handles and
 * ESYS contexts stay on one thread and a stuck reader stalls only its own
 * device.  The pool is shared by every pure-CPU device and sized to the
 * cores.  Work arrives as a GTask made on the main thread, so its callback
 * runs there: backends never see the main loop.
 *
 * The last reference to an executor may be dropped on its own thread (a
 * device removed while its worker sends a reply): the thread cannot wait
 * for itself, so the pool is then left to finish its queue and free itself.
 */
#include "config.h"

#include "kmx-error.h"
#include "kmx-executor.h"

struct _KmxExecutor {
	gatomicrefcount ref;
	KmxExecutorKind kind;
	GThreadPool *pool;
};

typedef struct {
	GTask *task;
	GTaskThreadFunc func;
	GFunc plain; /* instead of a task: work that completes itself */
	gpointer data;
} KmxWork;

/* the executor whose work this thread is running, if any */
static GPrivate kmx_current_executor;
static GThread *kmx_main_thread;

/**
 * kmx_core_mark_main_thread:
 *
 * Records the calling thread as the one that owns the model's state.
 */
void
kmx_core_mark_main_thread(void)
{
	g_atomic_pointer_set(&kmx_main_thread, g_thread_self());
}

/**
 * kmx_core_is_main_thread:
 *
 * Returns: whether the caller is the thread that owns the model's state:
 * the one marked with kmx_core_mark_main_thread(), or, before any was, the
 * owner of the default main context (a program that never runs a main
 * loop has its state changes queued, never applied from two threads)
 */
gboolean
kmx_core_is_main_thread(void)
{
	GThread *main_thread = g_atomic_pointer_get(&kmx_main_thread);

	if (main_thread != NULL)
		return main_thread == g_thread_self();
	return g_main_context_is_owner(g_main_context_default());
}

static void
kmx_executor_work(gpointer data, gpointer user_data)
{
	KmxWork *work = data;
	GTask *task = work->task;
	GCancellable *cancellable;

	g_private_set(&kmx_current_executor, user_data);
	if (work->plain != NULL) {
		work->plain(work->data, NULL);
		g_free(work);
		g_private_set(&kmx_current_executor, NULL);
		return;
	}
	cancellable = g_task_get_cancellable(task);
	if (cancellable != NULL && g_cancellable_is_cancelled(cancellable)) {
		g_task_return_new_error(task,
					KMX_ERROR,
					KMX_ERROR_CANCELLED,
					"the request was cancelled before it started");
	} else {
		work->func(task,
			   g_task_get_source_object(task),
			   g_task_get_task_data(task),
			   cancellable);
	}
	g_object_unref(task);
	g_free(work);
	g_private_set(&kmx_current_executor, NULL);
}

/**
 * kmx_executor_new:
 * @kind: serial or pool
 * @max_threads: threads of a pool; 0 for one per core (ignored for serial)
 * @error: why no thread could be started
 *
 * A serial executor starts its thread now: a device that cannot have one
 * is an error, never silently moved to a shared pool.
 *
 * Returns: (transfer full) (nullable): the executor
 */
KmxExecutor *
kmx_executor_new(KmxExecutorKind kind, guint max_threads, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	KmxExecutor *self;
	GThreadPool *pool;

	if (kind == KMX_EXECUTOR_SERIAL)
		max_threads = 1;
	else if (max_threads == 0)
		max_threads = MAX(1, g_get_num_processors());
	self = g_new0(KmxExecutor, 1);
	/* a serial executor keeps its own thread: handles stay on one thread */
	pool = g_thread_pool_new(kmx_executor_work,
				 self,
				 (gint)max_threads,
				 kind == KMX_EXECUTOR_SERIAL,
				 &error_local);
	if (pool == NULL) {
		g_free(self);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot start a worker thread: %s",
			    error_local->message);
		return NULL;
	}
	g_atomic_ref_count_init(&self->ref);
	self->kind = kind;
	self->pool = pool;
	return self;
}

/**
 * kmx_executor_get_shared_pool:
 *
 * Returns: (transfer none): the pool every pure-CPU device shares for its
 * private-key operations
 */
KmxExecutor *
kmx_executor_get_shared_pool(void)
{
	static KmxExecutor *pool = NULL;

	if (g_once_init_enter(&pool)) {
		g_autoptr(GError) error = NULL;
		KmxExecutor *p = kmx_executor_new(KMX_EXECUTOR_POOL, 0, &error);
		/* a non-exclusive pool starts its threads on demand: no error */
		g_assert(p != NULL);
		g_once_init_leave(&pool, p);
	}
	return pool;
}

/**
 * kmx_executor_get_storage_pool:
 *
 * Returns: (transfer none): a small pool for the slow work of pure-CPU
 * devices (key generation, imports with their KDFs, password changes), so
 * that it never holds up signing or locking in the shared pool
 */
KmxExecutor *
kmx_executor_get_storage_pool(void)
{
	static KmxExecutor *pool = NULL;

	if (g_once_init_enter(&pool)) {
		g_autoptr(GError) error = NULL;
		KmxExecutor *p =
		    kmx_executor_new(KMX_EXECUTOR_POOL, MAX(1, g_get_num_processors() / 2), &error);
		g_assert(p != NULL);
		g_once_init_leave(&pool, p);
	}
	return pool;
}

KmxExecutor *
kmx_executor_ref(KmxExecutor *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	g_atomic_ref_count_inc(&self->ref);
	return self;
}

void
kmx_executor_unref(KmxExecutor *self)
{
	if (self == NULL || !g_atomic_ref_count_dec(&self->ref))
		return;
	/* queued work still runs: every task gets its reply.  On our own
	 * thread we cannot wait for ourselves: the pool finishes its queue
	 * and frees itself when this work item returns */
	g_thread_pool_free(self->pool, FALSE, !kmx_executor_is_current(self));
	g_free(self);
}

KmxExecutorKind
kmx_executor_get_kind(KmxExecutor *self)
{
	g_return_val_if_fail(self != NULL, KMX_EXECUTOR_POOL);
	return self->kind;
}

/**
 * kmx_executor_is_current:
 *
 * Returns: whether the calling thread is running work of @self
 */
gboolean
kmx_executor_is_current(KmxExecutor *self)
{
	return self != NULL && g_private_get(&kmx_current_executor) == self;
}

/**
 * kmx_executor_run:
 * @self: an executor
 * @task: a task made on the main thread; its callback runs there
 * @func: the blocking work, which must return a value on @task
 *
 * Queues @func; a task cancelled before it starts returns Cancelled.
 */
void
kmx_executor_run(KmxExecutor *self, GTask *task, GTaskThreadFunc func)
{
	KmxWork *work;

	g_return_if_fail(self != NULL);
	g_return_if_fail(G_IS_TASK(task));
	work = g_new0(KmxWork, 1);
	work->task = g_object_ref(task);
	work->func = func;
	g_thread_pool_push(self->pool, work, NULL);
}

/**
 * kmx_executor_run_func:
 * @self: an executor
 * @func: the work, called with @data on a thread of @self
 * @data: its argument
 *
 * Queues work that reports its result itself (no GTask, no trip back
 * through the main loop).
 */
void
kmx_executor_run_func(KmxExecutor *self, GFunc func, gpointer data)
{
	KmxWork *work;

	g_return_if_fail(self != NULL);
	work = g_new0(KmxWork, 1);
	work->plain = func;
	work->data = data;
	g_thread_pool_push(self->pool, work, NULL);
}
