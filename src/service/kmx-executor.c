/* keymux: where a device's blocking work runs
 *
 * A serial executor is one dedicated thread fed in order: PC/SC handles and
 * ESYS contexts stay on one thread and a stuck reader stalls only its own
 * device.  The pool is shared by every pure-CPU device and sized to the
 * cores.  Work arrives as a GTask made on the main thread, so its callback
 * runs there: backends never see the main loop.
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

static void
kmx_executor_work(gpointer data, gpointer user_data)
{
	KmxWork *work = data;
	GTask *task = work->task;

	if (work->plain != NULL) {
		work->plain(work->data, NULL);
		g_free(work);
		return;
	}
	GCancellable *cancellable = g_task_get_cancellable(task);

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
}

/**
 * kmx_executor_new:
 * @kind: serial or pool
 * @max_threads: threads of a pool; 0 for one per core (ignored for serial)
 */
KmxExecutor *
kmx_executor_new(KmxExecutorKind kind, guint max_threads)
{
	KmxExecutor *self = g_new0(KmxExecutor, 1);
	g_autoptr(GError) error = NULL;

	g_atomic_ref_count_init(&self->ref);
	self->kind = kind;
	if (kind == KMX_EXECUTOR_SERIAL)
		max_threads = 1;
	else if (max_threads == 0)
		max_threads = MAX(1, g_get_num_processors());
	/* a serial executor keeps its own thread: handles stay on one thread */
	self->pool = g_thread_pool_new(kmx_executor_work,
				       self,
				       (gint)max_threads,
				       kind == KMX_EXECUTOR_SERIAL,
				       &error);
	if (self->pool == NULL) {
		g_warning("cannot start a worker thread (%s); retrying on demand", error->message);
		g_clear_error(&error);
		self->pool =
		    g_thread_pool_new(kmx_executor_work, self, (gint)max_threads, FALSE, NULL);
	}
	return self;
}

/**
 * kmx_executor_get_shared_pool:
 *
 * Returns: (transfer none): the pool every pure-CPU device shares
 */
KmxExecutor *
kmx_executor_get_shared_pool(void)
{
	static KmxExecutor *pool = NULL;

	if (g_once_init_enter(&pool))
		g_once_init_leave(&pool, kmx_executor_new(KMX_EXECUTOR_POOL, 0));
	return pool;
}

KmxExecutor *
kmx_executor_ref(KmxExecutor *self)
{
	g_atomic_ref_count_inc(&self->ref);
	return self;
}

void
kmx_executor_unref(KmxExecutor *self)
{
	if (self == NULL || !g_atomic_ref_count_dec(&self->ref))
		return;
	/* finish what was queued: every task must get its reply */
	g_thread_pool_free(self->pool, FALSE, TRUE);
	g_free(self);
}

KmxExecutorKind
kmx_executor_get_kind(KmxExecutor *self)
{
	return self->kind;
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
	KmxWork *work = g_new0(KmxWork, 1);

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
	KmxWork *work = g_new0(KmxWork, 1);

	work->plain = func;
	work->data = data;
	g_thread_pool_push(self->pool, work, NULL);
}
