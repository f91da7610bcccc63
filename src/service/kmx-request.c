/* keymux: one method call on its way through authorisation, a device
 * executor, maybe a prompt, and back to its caller
 *
 * All of this runs on the main thread except req->work, which runs on the
 * device's executor.  A request owns a GCancellable that is cancelled when
 * its caller leaves the bus.  Every reply goes through
 * kmx_request_return_*(), which also writes the audit record and frees the
 * request.
 */
#include "config.h"

#include <stdarg.h>

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
	req->operation = operation;
	req->flags = flags;
	req->device = device != NULL ? g_object_ref(device) : NULL;
	req->key = key != NULL ? g_object_ref(key) : NULL;
	req->caller = kmx_caller_ref(
	    kmx_daemon_get_caller(daemon, g_dbus_method_invocation_get_sender(invocation)));
	g_ptr_array_add(req->caller->cancellables, req->cancellable);
	return req;
}

void
kmx_request_free(KmxRequest *req)
{
	g_ptr_array_remove_fast(req->caller->cancellables, req->cancellable);
	kmx_caller_unref(req->caller);
	g_clear_object(&req->cancellable);
	g_clear_object(&req->invocation);
	g_clear_object(&req->device);
	g_clear_object(&req->key);
	g_clear_object(&req->daemon);
	g_clear_pointer(&req->data, g_bytes_unref);
	g_clear_pointer(&req->secret, kmx_secret_unref);
	g_clear_pointer(&req->secret2, kmx_secret_unref);
	g_clear_pointer(&req->options, g_variant_unref);
	g_free(req->label);
	g_free(req);
}

/* the journal record of a private-key operation: who, which key, what, and
 * how it ended; never an argument */
static void
kmx_request_audit(KmxRequest *req, const GError *error)
{
	const char *result = "ok";
	g_autofree char *pid = NULL;
	const char *key_id = req->key != NULL ? kmx_key_get_id(req->key) : "";
	const char *device_id = req->device != NULL ? kmx_device_get_id(req->device) : "";
	g_autofree char *message = NULL;

	if (!(req->flags & KMX_REQUEST_FLAG_AUDIT))
		return;
	if (error != NULL)
		result = error->domain == KMX_ERROR ? kmx_error_to_dbus_name(error->code)
						    : "org.keymux.Keystore1.Error.Failed";
	pid = g_strdup_printf("%u", req->caller->pid);
	message = g_strdup_printf("%s %s%s by pid %s (%s): %s",
				  req->operation,
				  key_id[0] != '\0' ? "key " : "device ",
				  key_id[0] != '\0' ? key_id : device_id,
				  pid,
				  req->caller->exe != NULL ? req->caller->exe : "unknown",
				  error == NULL ? "ok" : error->message);
	g_log_structured(
	    "keymux-audit",
	    G_LOG_LEVEL_MESSAGE,
	    "MESSAGE_ID",
	    "5d0f3c0e1b7a4e0c9f2a6b8d4c3e2a10",
	    "KEYMUX_OPERATION",
	    req->operation,
	    "KEYMUX_KEY_ID",
	    key_id,
	    "KEYMUX_DEVICE_ID",
	    device_id,
	    "KEYMUX_ALGORITHM",
	    req->mechanism != KMX_MECHANISM_UNKNOWN ? kmx_mechanism_to_string(req->mechanism) : "",
	    "KEYMUX_CALLER_PID",
	    pid,
	    "KEYMUX_CALLER_EXE",
	    req->caller->exe != NULL ? req->caller->exe : "",
	    "KEYMUX_CALLER",
	    req->caller->sender,
	    "KEYMUX_RESULT",
	    result,
	    "MESSAGE",
	    "%s",
	    message);
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
	/* the idle timer runs from the last use of an open device */
	if (req->device != NULL && !kmx_device_is_locked(req->device))
		kmx_daemon_device_used(req->daemon, req->device);
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
		g_autoptr(GBytes) unused = g_task_propagate_pointer(task, &error);
		if (g_error_matches(error, KMX_ERROR, KMX_ERROR_LOCKED)) {
			kmx_request_prompt(req);
			return;
		}
		kmx_request_return_error(req, g_steal_pointer(&error));
		return;
	}
	req->done(req, task);
}

static void
kmx_request_run(KmxRequest *req)
{
	g_autoptr(GTask) task = g_task_new(NULL, req->cancellable, kmx_request_task_done, req);

	g_task_set_task_data(task, req, NULL);
	g_task_set_source_tag(task, kmx_request_run);
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
	if ((req->flags & KMX_REQUEST_FLAG_NEEDS_AVAILABLE) &&
	    !kmx_device_is_available(req->device)) {
		kmx_request_return_new_error(
		    req,
		    KMX_ERROR_UNAVAILABLE,
		    "device %s is not available now; connect it (insert the "
		    "card) and try again",
		    kmx_device_get_id(req->device));
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
