/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: one request of a caller on its way through authorisation, maybe
 * a prompt, a device's executor, and back */
#pragma once

#include <gio/gio.h>

#include "kmx-caller.h"
#include "kmx-device.h"
#include "kmx-key.h"
#include "kmx-options.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

typedef struct _KmxManager KmxManager;
typedef struct _KmxRequest KmxRequest;

/**
 * KmxRequestKind:
 *
 * What a request does; each kind has its own arguments in #KmxRequestArgs.
 */
typedef enum {
	KMX_REQUEST_SIGN,
	KMX_REQUEST_DECRYPT,
	KMX_REQUEST_DERIVE,
	KMX_REQUEST_UNLOCK,
	KMX_REQUEST_LOCK,
	KMX_REQUEST_REGISTER,
	KMX_REQUEST_UNREGISTER,
	KMX_REQUEST_CHANGE_SECRET,
	KMX_REQUEST_GENERATE_KEY,
	KMX_REQUEST_IMPORT_KEY,
	KMX_REQUEST_SET_LABEL,
	KMX_REQUEST_DELETE_KEY,
	KMX_REQUEST_N_KINDS,
} KmxRequestKind;

/**
 * KmxRequestArgs:
 *
 * The arguments of a request, by kind.  Bytes that are secret (an imported
 * key file) are in secret memory; every member is freed with the request.
 */
typedef union {
	struct {
		KmxMechanism mechanism;
		GBytes *data; /* the message, digest or peer public key */
	} op;		      /* SIGN, DECRYPT, DERIVE */
	struct {
		KmxSecret *secret;
	} unlock;
	struct {
		KmxSecret *old_secret;
		KmxSecret *new_secret;
	} change_secret;
	struct {
		KmxKeyType type;
		char *label;
	} generate;
	struct {
		GBytes *data;
		KmxSecret *passphrase;
		char *label;
	} import;
	struct {
		char *label;
	} set_label;
} KmxRequestArgs;

/**
 * KmxRequestResult:
 * @bytes: a signature, plaintext (in secret memory) or shared secret
 * @keys: (element-type KmxKey): the keys a generation or import added
 */
typedef struct {
	GBytes *bytes;
	GPtrArray *keys;
} KmxRequestResult;

/* the end of a request: on the main thread, or on the executor for a
 * private-key operation that changed no state */
typedef void (*KmxRequestReply)(KmxRequest *req,
				const KmxRequestResult *result,
				const GError *error,
				gpointer user_data);

KmxRequest *kmx_request_new(KmxManager *manager,
			    KmxCaller *caller,
			    KmxRequestKind kind,
			    KmxDevice *device,
			    KmxKey *key);
KmxRequestArgs *kmx_request_get_args(KmxRequest *self);
KmxOptions *kmx_request_get_options(KmxRequest *self);
KmxOptionFlags kmx_request_kind_get_options(KmxRequestKind kind);
const char *kmx_request_kind_to_string(KmxRequestKind kind);
KmxRequestKind kmx_request_get_kind(KmxRequest *self);
KmxDevice *kmx_request_get_device(KmxRequest *self);
KmxKey *kmx_request_get_key(KmxRequest *self);
KmxCaller *kmx_request_get_caller(KmxRequest *self);
GCancellable *kmx_request_get_cancellable(KmxRequest *self);
void kmx_request_refuse(KmxRequest *self, GError *error);
void kmx_request_start(KmxRequest *self,
		       KmxRequestReply reply,
		       gpointer user_data,
		       GDestroyNotify destroy);

G_END_DECLS
