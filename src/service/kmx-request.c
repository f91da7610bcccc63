/* keymux: one method call on its way through authorisation, a device
 * executor, maybe a prompt, and back to its caller
 *
 * Requests start on the main thread, which owns the state.  The work runs
 * on the device's executor: req->work returns its result to the main
 * thread, which applies it to the model and replies; req->compute (sign,
 * decrypt, derive: no state changes) replies from the executor itself.  A
 * request owns a GCancellable that is cancelled when its caller leaves the
 * bus.  Every reply goes through kmx_request_return_*(), which also writes
 * the audit record and frees the request; both are safe on any thread.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "kmx-daemon-private.h"
#include "kmx-error.h"

KmxRequest *
kmx_request_new(KmxDaemon *daemon,
		GDBusMethodInvocation *invocation,
		const char *operation,
		KmxRequestFlags flags,
		KmxDevice *device,
		KmxKey *key)
{
	KmxRequest *req = g_new0(KmxRequest, 1);

	req->daemon = g_object_ref(daemon);
	req->invocation = invocation; /* ours to answer, as the handler's was */
	req->cancellable = g_cancellable_new();
	req->main_context = g_main_context_ref_thread_default();
	req->operation = operation;
	req->flags = flags;
	req->device = device != NULL ? g_object_ref(device) : NULL;
	req->key = key != NULL ? g_object_ref(key) : NULL;
	req->caller = kmx_caller_ref(
	    kmx_daemon_get_caller(daemon, g_dbus_method_invocation_get_sender(invocation)));
	g_mutex_lock(&req->caller->mutex);
	g_ptr_array_add(req->caller->cancellables, req->cancellable);
	g_mutex_unlock(&req->caller->mutex);
	return req;
}

void
kmx_request_free(KmxRequest *req)
{
	g_mutex_lock(&req->caller->mutex);
	g_ptr_array_remove_fast(req->caller->cancellables, req->cancellable);
	g_mutex_unlock(&req->caller->mutex);
	kmx_caller_unref(req->caller);
	g_clear_object(&req->cancellable);
	g_clear_pointer(&req->main_context, g_main_context_unref);
	g_clear_object(&req->invocation);
	g_clear_object(&req->device);
	g_clear_object(&req->key);
	g_clear_object(&req->daemon);
	g_clear_pointer(&req->data, g_bytes_unref);
	g_clear_pointer(&req->secret, kmx_secret_unref);
	g_clear_pointer(&req->secret2, kmx_secret_unref);
	g_clear_pointer(&req->options, g_variant_unref);
	g_free(req->label);
	g_clear_error(&req->error);
	g_free(req);
}

/* where audit records go: the journal's native protocol when stderr is
 * the journal (a systemd service), else one line on stderr; this is on
 * every signature's path, so it avoids GLib's general log formatting */
static void
kmx_audit_write(const GLogField *fields, gsize n_fields, const char *message)
{
	static gsize to_journal = 0; /* 1: no, 2: yes */
	char line[1200];
	int len;

	if (g_once_init_enter(&to_journal))
		g_once_init_leave(&to_journal, g_log_writer_is_journald(fileno(stderr)) ? 2 : 1);
	if (to_journal == 2) {
		g_log_writer_journald(G_LOG_LEVEL_MESSAGE, fields, n_fields, NULL);
		return;
	}
	len = g_snprintf(line, sizeof(line), "keymux-audit: %s\n", message);
	if (len >= (int)sizeof(line)) {
		len = sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	/* one write: lines of concurrent workers do not mix */
	if (write(STDERR_FILENO, line, (size_t)len) < 0)
		return;
}

/* the journal record of a private-key operation: who, which key, what, and
 * how it ended; never an argument */
static void
kmx_request_audit(KmxRequest *req, const GError *error)
{
	const char *key_id = req->key != NULL ? kmx_key_get_id(req->key) : "";
	const char *device_id = req->device != NULL ? kmx_device_get_id(req->device) : "";
	const char *exe = req->caller->exe != NULL ? req->caller->exe : "unknown";
	const char *result = "ok";
	char pid[16];
	char message[1024];
	GLogField fields[] = {
	    {"MESSAGE_ID", "5d0f3c0e1b7a4e0c9f2a6b8d4c3e2a10", -1},
	    {"PRIORITY", "5", -1},
	    {"GLIB_DOMAIN", "keymux-audit", -1},
	    {"KEYMUX_OPERATION", req->operation, -1},
	    {"KEYMUX_KEY_ID", key_id, -1},
	    {"KEYMUX_DEVICE_ID", device_id, -1},
	    {"KEYMUX_ALGORITHM",
	     req->mechanism != KMX_MECHANISM_UNKNOWN ? kmx_mechanism_to_string(req->mechanism) : "",
	     -1},
	    {"KEYMUX_CALLER_PID", pid, -1},
	    {"KEYMUX_CALLER_EXE", exe, -1},
	    {"KEYMUX_CALLER", req->caller->sender, -1},
	    {"KEYMUX_RESULT", NULL, -1},
	    {"MESSAGE", message, -1},
	};

	if (!(req->flags & KMX_REQUEST_FLAG_AUDIT))
		return;
	if (error != NULL)
		result = error->domain == KMX_ERROR ? kmx_error_to_dbus_name(error->code)
						    : "org.keymux.Keystore1.Error.Failed";
	fields[10].value = result;
	g_snprintf(pid, sizeof(pid), "%u", req->caller->pid);
	g_snprintf(message,
		   sizeof(message),
		   "%s %s%s by pid %s (%s): %s",
		   req->operation,
		   key_id[0] != '\0' ? "key " : "device ",
		   key_id[0] != '\0' ? key_id : device_id,
		   pid,
		   exe,
		   error == NULL ? "ok" : error->message);
	kmx_audit_write(fields, G_N_ELEMENTS(fields), message);
}

/**
 * kmx_request_return_value:
 * @value: (transfer floating): the reply tuple, or %NULL for ()
 *
 * Replies, records and frees @req.
 */
void
kmx_request_return_value(KmxRequest *req, GVariant *value)
{
	kmx_request_audit(req, NULL);
	/* the idle lock counts from the last use */
	if (req->device != NULL)
		kmx_device_touch(req->device);
	g_dbus_method_invocation_return_value(g_steal_pointer(&req->invocation), value);
	kmx_request_free(req);
}

/**
 * kmx_request_return_error:
 * @error: (transfer full): the error
 *
 * Replies with @error (mapped into the keymux domain), records and frees @req.
 */
void
kmx_request_return_error(KmxRequest *req, GError *error)
{
	kmx_error_normalize(&error);
	kmx_request_audit(req, error);
	g_debug("%s failed: %s", req->operation, error->message);
	g_dbus_method_invocation_return_gerror(g_steal_pointer(&req->invocation), error);
	g_error_free(error);
	kmx_request_free(req);
}

void
kmx_request_return_new_error(KmxRequest *req, int code, const char *format, ...)
{
	va_list args;
	GError *error;

	va_start(args, format);
	error = g_error_new_valist(KMX_ERROR, code, format, args);
	va_end(args);
	kmx_request_return_error(req, error);
}

static void kmx_request_run(KmxRequest *req);
static void kmx_request_run_task(KmxRequest *req);
static void kmx_request_prompt(KmxRequest *req);

static void
kmx_request_prompt_done(KmxRequest *req, GError *error)
{
	if (error != NULL) {
		kmx_request_return_error(req, error);
		return;
	}
	kmx_request_run(req);
}

static void
kmx_request_prompt(KmxRequest *req)
{
	req->prompted = TRUE;
	kmx_daemon_prompt_unlock(req->daemon, req, kmx_request_prompt_done);
}

static void
kmx_request_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	KmxRequest *req = task_data;
	req->work(req, task);
}

static void
kmx_request_task_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	KmxRequest *req = user_data;
	GTask *task = G_TASK(res);

	/* the device locked itself between our check and the work (an idle
	 * lock, a card reset): unlock once through the prompter, then retry */
	if (g_task_had_error(task) && (req->flags & KMX_REQUEST_FLAG_NEEDS_UNLOCKED) &&
	    !req->prompted) {
		g_autoptr(GError) error = NULL;
		G_GNUC_UNUSED g_autoptr(GBytes) unused = g_task_propagate_pointer(task, &error);
		if (g_error_matches(error, KMX_ERROR, KMX_ERROR_LOCKED)) {
			kmx_request_prompt(req);
			return;
		}
		kmx_request_return_error(req, g_steal_pointer(&error));
		return;
	}
	req->done(req, task);
}

/* hands @req back to the main thread, into @func */
static void
kmx_request_invoke_main(KmxRequest *req, GSourceFunc func)
{
	GSource *source = g_idle_source_new();

	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source, func, req, NULL);
	g_source_attach(source, req->main_context);
	g_source_unref(source);
}

static gboolean
kmx_request_prompt_cb(gpointer user_data)
{
	kmx_request_prompt(user_data);
	return G_SOURCE_REMOVE;
}

/* on the executor: compute, then reply from here; only a device that
 * turned out locked goes back to the main thread, for the prompter */
static void
kmx_request_direct(gpointer data, gpointer unused)
{
	KmxRequest *req = data;
	g_autoptr(GBytes) result = NULL;
	GError *error = NULL;

	if (g_cancellable_is_cancelled(req->cancellable)) {
		kmx_request_return_new_error(req,
					     KMX_ERROR_CANCELLED,
					     "the request was cancelled before it started");
		return;
	}
	result = req->compute(req, &error);
	if (result == NULL) {
		if (error == NULL)
			error = g_error_new(KMX_ERROR,
					    KMX_ERROR_FAILED,
					    "the %s backend failed without saying why",
					    kmx_device_get_backend_name(req->device));
		if (g_error_matches(error, KMX_ERROR, KMX_ERROR_LOCKED) &&
		    (req->flags & KMX_REQUEST_FLAG_NEEDS_UNLOCKED) && !req->prompted) {
			g_error_free(error);
			kmx_request_invoke_main(req, kmx_request_prompt_cb);
			return;
		}
		kmx_request_return_error(req, error);
		return;
	}
	/* the reply copies the bytes; ours (maybe a plaintext in secret
	 * memory) are wiped when result goes */
	kmx_request_return_value(
	    req,
	    g_variant_new("(@ay)",
			  g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE,
						    g_bytes_get_data(result, NULL),
						    g_bytes_get_size(result),
						    1)));
}

static void
kmx_request_run(KmxRequest *req)
{
	if (req->compute != NULL) {
		kmx_executor_run_func(kmx_device_get_executor(req->device),
				      kmx_request_direct,
				      req);
		return;
	}
	kmx_request_run_task(req);
}

static void
kmx_request_run_task(KmxRequest *req)
{
	g_autoptr(GTask) task = g_task_new(NULL, req->cancellable, kmx_request_task_done, req);

	g_task_set_task_data(task, req, NULL);
	g_task_set_source_tag(task, kmx_request_run_task);
	kmx_executor_run(kmx_device_get_executor(req->device), task, kmx_request_thread);
}

static void
kmx_request_authorized(KmxRequest *req, GError *error)
{
	GError *error_local = NULL;

	if (error != NULL) {
		kmx_request_return_error(req, error);
		return;
	}
	if (!kmx_daemon_caller_is_allowed(req->daemon, req->caller, &error_local)) {
		kmx_request_return_error(req, error_local);
		return;
	}
	if (req->error != NULL) {
		kmx_request_return_error(req, g_steal_pointer(&req->error));
		return;
	}
	if ((req->flags & KMX_REQUEST_FLAG_NEEDS_AVAILABLE) &&
	    !kmx_device_is_available(req->device)) {
		/* the backend says why in Details["error"] when it knows */
		g_autoptr(GVariant) details = kmx_device_dup_details(req->device);
		const char *why = NULL;

		if (!g_variant_lookup(details, "error", "&s", &why))
			why = "connect it (insert the card) and try again";
		kmx_request_return_new_error(req,
					     KMX_ERROR_UNAVAILABLE,
					     "device %s is not available: %s",
					     kmx_device_get_id(req->device),
					     why);
		return;
	}
	if ((req->flags & KMX_REQUEST_FLAG_NEEDS_UNLOCKED) && kmx_device_is_locked(req->device)) {
		kmx_request_prompt(req);
		return;
	}
	kmx_request_run(req);
}

/**
 * kmx_request_start:
 *
 * Authorises the caller, then runs the work on the device's executor,
 * unlocking the device through the prompter first when needed.
 */
void
kmx_request_start(KmxRequest *req)
{
	kmx_daemon_resolve_caller(req->daemon, req, kmx_request_authorized);
}

/**
 * kmx_request_fail:
 * @error: (transfer full): why the request is refused
 *
 * Refuses a request whose arguments are wrong, after the authorisation
 * hook: a caller that may not use the keystore learns nothing about its
 * keys from the error.
 */
void
kmx_request_fail(KmxRequest *req, GError *error)
{
	g_clear_error(&req->error);
	req->error = error;
	kmx_request_start(req);
}

void
kmx_request_fail_new(KmxRequest *req, int code, const char *format, ...)
{
	va_list args;
	GError *error;

	va_start(args, format);
	error = g_error_new_valist(KMX_ERROR, code, format, args);
	va_end(args);
	kmx_request_fail(req, error);
}
