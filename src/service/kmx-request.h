/* keymux: one method call on its way through authorisation, a device
 * executor, maybe a prompt, and back to its caller */
#pragma once

#include <gio/gio.h>

#include "kmx-device.h"
#include "kmx-key.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

typedef struct _KmxDaemon KmxDaemon;
typedef struct _KmxRequest KmxRequest;
typedef struct _KmxCaller KmxCaller;

/* runs on the device's executor; returns its result on the task */
typedef void (*KmxRequestWork)(KmxRequest *req, GTask *task);
/* runs on the main thread with the task's result; replies */
typedef void (*KmxRequestDone)(KmxRequest *req, GTask *task);
/* runs on the device's executor for requests that change no state
 * (sign, decrypt, derive): the reply is sent from there */
typedef GBytes *(*KmxRequestCompute)(KmxRequest *req, GError **error);

/**
 * KmxRequestFlags:
 * @KMX_REQUEST_FLAG_NONE: none
 * @KMX_REQUEST_FLAG_NEEDS_UNLOCKED: unlock the device first (prompting)
 * @KMX_REQUEST_FLAG_NEEDS_AVAILABLE: fail with Unavailable when absent
 * @KMX_REQUEST_FLAG_AUDIT: record in the journal (private-key operations)
 */
typedef enum {
	KMX_REQUEST_FLAG_NONE = 0,
	KMX_REQUEST_FLAG_NEEDS_UNLOCKED = 1 << 0,
	KMX_REQUEST_FLAG_NEEDS_AVAILABLE = 1 << 1,
	KMX_REQUEST_FLAG_AUDIT = 1 << 2,
} KmxRequestFlags;

struct _KmxRequest {
	KmxDaemon *daemon;
	GDBusMethodInvocation *invocation;
	GCancellable *cancellable;
	KmxCaller *caller;
	const char *operation;
	KmxRequestFlags flags;
	KmxDevice *device;
	KmxKey *key;
	gboolean prompted;

	KmxRequestWork work;
	KmxRequestDone done;
	KmxRequestCompute compute;
	GMainContext *main_context;
	GError *error; /* a refusal, given once the caller is authorised */

	/* arguments, by operation */
	KmxMechanism mechanism;
	GBytes *data;
	gboolean prehashed;
	KmxSecret *secret;
	KmxSecret *secret2;
	char *label;
	KmxKeyType key_type;
	GVariant *options;
};

KmxRequest *kmx_request_new(KmxDaemon *daemon,
			    GDBusMethodInvocation *invocation,
			    const char *operation,
			    KmxRequestFlags flags,
			    KmxDevice *device,
			    KmxKey *key);
void kmx_request_start(KmxRequest *req);
void kmx_request_return_value(KmxRequest *req, GVariant *value);
void kmx_request_return_error(KmxRequest *req, GError *error);
void kmx_request_return_new_error(KmxRequest *req, int code, const char *format, ...)
    G_GNUC_PRINTF(3, 4);
void kmx_request_fail(KmxRequest *req, GError *error);
void kmx_request_fail_new(KmxRequest *req, int code, const char *format, ...) G_GNUC_PRINTF(3, 4);
void kmx_request_free(KmxRequest *req);

G_END_DECLS
