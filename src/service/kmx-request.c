/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: one request of a caller on its way through authorisation, maybe
 * a prompt, a device's executor, and back
 *
 * The pipeline, the same for every frontend (D-Bus, ssh-agent):
 *   1. the arguments are checked (the key's type and usage, digests,
 *      labels), but a refusal is told only after
 *   2. the authorisation hook (kmx_manager_authorize()), then
 *   3. the device must be present, its retry counters not at zero
 *      (Blocked, and nobody is prompted), and it is unlocked through a
 *      prompt when needed (unless the caller said `interactive`=false),
 *      the admin secret asked for when the kind of request needs it;
 *   4. the work runs on the device's executor (slow storage work on the
 *      storage executor), and
 *   5. its result is applied to the model on the main thread (which the
 *      frontends mirror), then the caller gets the reply and the audit
 *      record is written.  Private-key operations change no state: they
 *      reply from the executor, unless the device reported a change, which
 *      the main thread applies first.
 * A request is cancelled when its caller leaves: one that waits for a
 * prompt is withdrawn from it, one queued on an executor is dropped there
 * before its work starts (it only replies Cancelled).
 *
 * The work in flight is bounded (kmx_manager_admit_request()): a request
 * is counted from kmx_request_start() to its reply, and one over the
 * caller's or the daemon's limit is refused at once, before step 1, with
 * Failed ("too many requests in flight"): the refusal tells nothing about
 * keys, every frontend has authorised its caller before it makes a
 * request, and a refusal that waited would be queued work itself.  It has
 * no audit record: a flood of them would flood the journal; the log says
 * once per caller that it was refused.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-manager-private.h"
#include "kmx-request.h"

typedef enum {
	KMX_REQUEST_FLAG_NONE = 0,
	KMX_REQUEST_FLAG_NEEDS_AVAILABLE = 1 << 0,
	KMX_REQUEST_FLAG_NEEDS_UNLOCKED = 1 << 1,
	KMX_REQUEST_FLAG_NEEDS_ADMIN = 1 << 2,
	KMX_REQUEST_FLAG_AUDIT = 1 << 3,
	KMX_REQUEST_FLAG_STORAGE = 1 << 4,
	KMX_REQUEST_FLAG_DIRECT = 1 << 5,
	KMX_REQUEST_FLAG_MAIN = 1 << 6,
} KmxRequestFlags;

struct _KmxRequest {
	KmxManager *manager;
	KmxCaller *caller;
	KmxRequestKind kind;
	KmxDevice *device;
	KmxKey *key;
	KmxRequestArgs args;
	KmxOptions options;
	GCancellable *cancellable;
	GError *refusal;	 /* told once the caller is authorised */
	KmxSecret *secret;	 /* the kept user secret, for the operation */
	KmxSecret *admin_secret; /* for generation and import */
	gboolean prompted;	 /* never prompt twice for one request */
	gboolean must_unlock;	 /* the work found the device locked */
	gboolean admitted;	 /* counted in flight by the manager */
	KmxRequestResult result;
	GMainContext *main_context;
	KmxRequestReply reply;
	gpointer reply_data;
	GDestroyNotify reply_destroy;
};

typedef struct {
	const char *name;
	KmxRequestFlags flags;
	KmxOptionFlags options;
	gboolean (*check)(KmxRequest *req, GError **error);
	/* on the executor (or the main thread with FLAG_MAIN) */
	gboolean (*work)(KmxRequest *req, GError **error);
	/* on the main thread, after the work succeeded */
	void (*apply)(KmxRequest *req);
} KmxRequestClass;

static const KmxRequestClass *kmx_request_class(KmxRequestKind kind);

/* ---- the work of each kind ------------------------------------------------- */

static gboolean
kmx_label_check(const char *label, GError **error)
{
	if (label == NULL || strlen(label) > 1024 || !g_utf8_validate(label, -1, NULL)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a label is UTF-8 of at most 1024 bytes");
		return FALSE;
	}
	return TRUE;
}

static gboolean
kmx_op_check(KmxRequest *req, GError **error)
{
	if (req->key == NULL || req->args.op.data == NULL) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "no key or no data");
		return FALSE;
	}
	return kmx_key_check_operation(req->key,
				       req->args.op.mechanism,
				       req->options.prehashed,
				       g_bytes_get_size(req->args.op.data),
				       error);
}

static gboolean
kmx_sign_work(KmxRequest *req, GError **error)
{
	req->result.bytes = kmx_key_sign(req->key,
					 req->args.op.mechanism,
					 req->args.op.data,
					 req->options.prehashed,
					 req->secret,
					 req->cancellable,
					 error);
	return req->result.bytes != NULL;
}

static gboolean
kmx_decrypt_work(KmxRequest *req, GError **error)
{
	req->result.bytes = kmx_key_decrypt(req->key,
					    req->args.op.mechanism,
					    req->args.op.data,
					    req->secret,
					    req->cancellable,
					    error);
	return req->result.bytes != NULL;
}

static gboolean
kmx_derive_work(KmxRequest *req, GError **error)
{
	req->result.bytes = kmx_key_derive(req->key,
					   req->args.op.mechanism,
					   req->args.op.data,
					   req->secret,
					   req->cancellable,
					   error);
	return req->result.bytes != NULL;
}

static gboolean
kmx_unlock_work(KmxRequest *req, GError **error)
{
	return kmx_device_unlock(req->device, req->args.unlock.secret, req->cancellable, error);
}

static void
kmx_unlock_apply(KmxRequest *req)
{
	if (!kmx_device_is_locked(req->device))
		kmx_device_keep_secret(req->device, req->args.unlock.secret);
}

static gboolean
kmx_lock_work(KmxRequest *req, GError **error)
{
	return kmx_device_lock(req->device, req->cancellable, error);
}

static gboolean
kmx_register_work(KmxRequest *req, GError **error)
{
	return kmx_manager_register_device(req->manager, req->device, error);
}

static gboolean
kmx_unregister_work(KmxRequest *req, GError **error)
{
	return kmx_manager_unregister_device(req->manager, req->device, error);
}

static gboolean
kmx_change_secret_work(KmxRequest *req, GError **error)
{
	return kmx_device_change_secret(req->device,
					req->args.change_secret.old_secret,
					req->args.change_secret.new_secret,
					req->cancellable,
					error);
}

static void
kmx_change_secret_apply(KmxRequest *req)
{
	kmx_device_forget_secret(req->device);
	if (!kmx_device_is_locked(req->device))
		kmx_device_keep_secret(req->device, req->args.change_secret.new_secret);
}

static gboolean
kmx_generate_check(KmxRequest *req, GError **error)
{
	if (req->args.generate.type == KMX_KEY_TYPE_UNKNOWN) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "unknown key algorithm; use one of rsa2048, rsa3072, rsa4096, "
			    "ecdsa-p256, ecdsa-p384, ed25519, x25519");
		return FALSE;
	}
	return kmx_label_check(req->args.generate.label, error);
}

static gboolean
kmx_generate_work(KmxRequest *req, GError **error)
{
	KmxKey *key = kmx_device_generate_key(req->device,
					      req->args.generate.type,
					      req->args.generate.label,
					      &req->options,
					      req->admin_secret,
					      req->cancellable,
					      error);
	if (key == NULL)
		return FALSE;
	req->result.keys = g_ptr_array_new_with_free_func(g_object_unref);
	g_ptr_array_add(req->result.keys, key);
	return TRUE;
}

static void
kmx_add_keys_apply(KmxRequest *req)
{
	for (guint i = 0; i < req->result.keys->len; i++)
		kmx_device_add_key(req->device, g_ptr_array_index(req->result.keys, i));
	if (req->result.keys->len > 0)
		g_set_object(&req->key, g_ptr_array_index(req->result.keys, 0));
}

static gboolean
kmx_import_check(KmxRequest *req, GError **error)
{
	if (req->args.import.data == NULL || g_bytes_get_size(req->args.import.data) == 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "no key data given; pass the content of a key file");
		return FALSE;
	}
	return kmx_label_check(req->args.import.label, error);
}

static gboolean
kmx_import_work(KmxRequest *req, GError **error)
{
	req->result.keys = kmx_device_import_key(req->device,
						 req->args.import.data,
						 req->args.import.passphrase,
						 req->args.import.label,
						 &req->options,
						 req->admin_secret,
						 req->cancellable,
						 error);
	return req->result.keys != NULL;
}

static gboolean
kmx_set_label_check(KmxRequest *req, GError **error)
{
	return kmx_label_check(req->args.set_label.label, error);
}

static gboolean
kmx_set_label_work(KmxRequest *req, GError **error)
{
	return kmx_key_save_label(req->key, req->args.set_label.label, req->cancellable, error);
}

static void
kmx_set_label_apply(KmxRequest *req)
{
	kmx_key_set_label(req->key, req->args.set_label.label);
}

static gboolean
kmx_delete_work(KmxRequest *req, GError **error)
{
	return kmx_key_delete(req->key, req->cancellable, error);
}

static void
kmx_delete_apply(KmxRequest *req)
{
	kmx_device_remove_key(req->device, req->key);
}

#define KEY_OP_FLAGS                                                                               \
	(KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_NEEDS_UNLOCKED |                      \
	 KMX_REQUEST_FLAG_AUDIT | KMX_REQUEST_FLAG_DIRECT)
#define NEW_KEY_FLAGS                                                                              \
	(KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_NEEDS_UNLOCKED |                      \
	 KMX_REQUEST_FLAG_NEEDS_ADMIN | KMX_REQUEST_FLAG_AUDIT | KMX_REQUEST_FLAG_STORAGE)

static const KmxRequestClass kmx_request_classes[KMX_REQUEST_N_KINDS] = {
    [KMX_REQUEST_SIGN] = {"sign",
			  KEY_OP_FLAGS,
			  KMX_OPTION_INTERACTIVE | KMX_OPTION_PREHASHED,
			  kmx_op_check,
			  kmx_sign_work,
			  NULL},
    [KMX_REQUEST_DECRYPT] =
	{"decrypt", KEY_OP_FLAGS, KMX_OPTION_INTERACTIVE, kmx_op_check, kmx_decrypt_work, NULL},
    [KMX_REQUEST_DERIVE] =
	{"derive", KEY_OP_FLAGS, KMX_OPTION_INTERACTIVE, kmx_op_check, kmx_derive_work, NULL},
    [KMX_REQUEST_UNLOCK] = {"unlock",
			    KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_AUDIT |
				KMX_REQUEST_FLAG_STORAGE,
			    KMX_OPTION_INTERACTIVE,
			    NULL,
			    kmx_unlock_work,
			    kmx_unlock_apply},
    [KMX_REQUEST_LOCK] = {"lock", KMX_REQUEST_FLAG_NONE, 0, NULL, kmx_lock_work, NULL},
    [KMX_REQUEST_REGISTER] = {"register",
			      KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_MAIN,
			      0,
			      NULL,
			      kmx_register_work,
			      NULL},
    [KMX_REQUEST_UNREGISTER] =
	{"unregister", KMX_REQUEST_FLAG_MAIN, 0, NULL, kmx_unregister_work, NULL},
    [KMX_REQUEST_CHANGE_SECRET] = {"change-secret",
				   KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_AUDIT |
				       KMX_REQUEST_FLAG_STORAGE,
				   0,
				   NULL,
				   kmx_change_secret_work,
				   kmx_change_secret_apply},
    [KMX_REQUEST_GENERATE_KEY] = {"generate",
				  NEW_KEY_FLAGS,
				  KMX_OPTION_INTERACTIVE | KMX_OPTION_EXPORTABLE |
				      KMX_OPTION_ADMIN_SECRET | KMX_OPTION_SLOT |
				      KMX_OPTION_REPLACE,
				  kmx_generate_check,
				  kmx_generate_work,
				  kmx_add_keys_apply},
    [KMX_REQUEST_IMPORT_KEY] = {"import",
				NEW_KEY_FLAGS,
				KMX_OPTION_INTERACTIVE | KMX_OPTION_EXPORTABLE |
				    KMX_OPTION_ADMIN_SECRET | KMX_OPTION_SLOT | KMX_OPTION_REPLACE,
				kmx_import_check,
				kmx_import_work,
				kmx_add_keys_apply},
    [KMX_REQUEST_SET_LABEL] = {"set-label",
			       KMX_REQUEST_FLAG_NONE,
			       0,
			       kmx_set_label_check,
			       kmx_set_label_work,
			       kmx_set_label_apply},
    [KMX_REQUEST_DELETE_KEY] =
	{"delete", KMX_REQUEST_FLAG_AUDIT, 0, NULL, kmx_delete_work, kmx_delete_apply},
};

static const KmxRequestClass *
kmx_request_class(KmxRequestKind kind)
{
	g_assert(kind < KMX_REQUEST_N_KINDS);
	return &kmx_request_classes[kind];
}

const char *
kmx_request_kind_to_string(KmxRequestKind kind)
{
	g_return_val_if_fail(kind < KMX_REQUEST_N_KINDS, NULL);
	return kmx_request_class(kind)->name;
}

/**
 * kmx_request_kind_get_options:
 *
 * Returns: the options a request of @kind accepts
 */
KmxOptionFlags
kmx_request_kind_get_options(KmxRequestKind kind)
{
	g_return_val_if_fail(kind < KMX_REQUEST_N_KINDS, 0);
	return kmx_request_class(kind)->options;
}

/* ---- life ------------------------------------------------------------------ */

/**
 * kmx_request_new:
 * @device: the device it is about
 * @key: (nullable): the key it is about
 *
 * Returns: (transfer full): a request; fill its arguments, then start it
 */
KmxRequest *
kmx_request_new(KmxManager *manager,
		KmxCaller *caller,
		KmxRequestKind kind,
		KmxDevice *device,
		KmxKey *key)
{
	KmxRequest *req;

	g_return_val_if_fail(KMX_IS_MANAGER(manager), NULL);
	g_return_val_if_fail(caller != NULL, NULL);
	g_return_val_if_fail(kind < KMX_REQUEST_N_KINDS, NULL);
	g_return_val_if_fail(KMX_IS_DEVICE(device), NULL);
	req = g_new0(KmxRequest, 1);
	req->manager = g_object_ref(manager);
	req->caller = kmx_caller_ref(caller);
	req->kind = kind;
	req->device = g_object_ref(device);
	req->key = key != NULL ? g_object_ref(key) : NULL;
	req->cancellable = g_cancellable_new();
	req->main_context = g_main_context_ref_thread_default();
	kmx_options_init(&req->options);
	kmx_caller_track(caller, req->cancellable);
	return req;
}

static void
kmx_request_args_clear(KmxRequest *req)
{
	KmxRequestArgs *a = &req->args;

	switch (req->kind) {
	case KMX_REQUEST_SIGN:
	case KMX_REQUEST_DECRYPT:
	case KMX_REQUEST_DERIVE:
		g_clear_pointer(&a->op.data, g_bytes_unref);
		break;
	case KMX_REQUEST_UNLOCK:
		g_clear_pointer(&a->unlock.secret, kmx_secret_unref);
		break;
	case KMX_REQUEST_CHANGE_SECRET:
		g_clear_pointer(&a->change_secret.old_secret, kmx_secret_unref);
		g_clear_pointer(&a->change_secret.new_secret, kmx_secret_unref);
		break;
	case KMX_REQUEST_GENERATE_KEY:
		g_clear_pointer(&a->generate.label, g_free);
		break;
	case KMX_REQUEST_IMPORT_KEY:
		g_clear_pointer(&a->import.data, g_bytes_unref);
		g_clear_pointer(&a->import.passphrase, kmx_secret_unref);
		g_clear_pointer(&a->import.label, g_free);
		break;
	case KMX_REQUEST_SET_LABEL:
		g_clear_pointer(&a->set_label.label, g_free);
		break;
	case KMX_REQUEST_LOCK:
	case KMX_REQUEST_REGISTER:
	case KMX_REQUEST_UNREGISTER:
	case KMX_REQUEST_DELETE_KEY:
	case KMX_REQUEST_N_KINDS:
	default:
		break;
	}
}

static void
kmx_request_free(KmxRequest *req)
{
	kmx_caller_untrack(req->caller, req->cancellable);
	if (req->reply_destroy != NULL)
		req->reply_destroy(req->reply_data);
	kmx_request_args_clear(req);
	kmx_options_clear(&req->options);
	g_clear_pointer(&req->result.bytes, g_bytes_unref);
	g_clear_pointer(&req->result.keys, g_ptr_array_unref);
	g_clear_pointer(&req->secret, kmx_secret_unref);
	g_clear_pointer(&req->admin_secret, kmx_secret_unref);
	g_clear_error(&req->refusal);
	g_clear_object(&req->cancellable);
	g_clear_object(&req->key);
	g_clear_object(&req->device);
	kmx_caller_unref(req->caller);
	g_main_context_unref(req->main_context);
	g_object_unref(req->manager);
	g_free(req);
}

KmxRequestArgs *
kmx_request_get_args(KmxRequest *self)
{
	return &self->args;
}

KmxOptions *
kmx_request_get_options(KmxRequest *self)
{
	return &self->options;
}

KmxRequestKind
kmx_request_get_kind(KmxRequest *self)
{
	return self->kind;
}

KmxDevice *
kmx_request_get_device(KmxRequest *self)
{
	return self->device;
}

/**
 * kmx_request_get_key:
 *
 * Returns: (nullable): the key; for a generation or an import, the first
 * new key once it succeeded
 */
KmxKey *
kmx_request_get_key(KmxRequest *self)
{
	return self->key;
}

KmxCaller *
kmx_request_get_caller(KmxRequest *self)
{
	return self->caller;
}

GCancellable *
kmx_request_get_cancellable(KmxRequest *self)
{
	return self->cancellable;
}

/**
 * kmx_request_refuse:
 * @error: (transfer full): why
 *
 * Refuses the request, but tells the caller only once the authorisation
 * hook let it through: a caller that may not use the keystore learns
 * nothing about its keys from the error.
 */
void
kmx_request_refuse(KmxRequest *self, GError *error)
{
	g_return_if_fail(self != NULL);
	g_return_if_fail(error != NULL);
	if (self->refusal == NULL)
		self->refusal = error;
	else
		g_error_free(error);
}

/* ---- the end ------------------------------------------------------------------- */

static void
kmx_request_finish(KmxRequest *req, GError *error)
{
	if (error != NULL)
		kmx_error_normalize(&error);
	/* a request refused as one too many never started: no record */
	if ((kmx_request_class(req->kind)->flags & KMX_REQUEST_FLAG_AUDIT) && req->admitted)
		kmx_audit_record(req, error);
	if (error != NULL)
		g_debug("%s failed: %s", kmx_request_class(req->kind)->name, error->message);
	else
		kmx_device_touch(req->device); /* the idle lock counts from the last use */
	/* before the reply: a caller that keeps exactly its limit in flight
	 * may send the next one as soon as it has this reply */
	if (req->admitted) {
		kmx_manager_release_request(req->manager, req->caller);
		req->admitted = FALSE;
	}
	req->reply(req, error == NULL ? &req->result : NULL, error, req->reply_data);
	g_clear_error(&error);
	kmx_request_free(req);
}

static void kmx_request_finish_new(KmxRequest *req, int code, const char *format, ...)
    G_GNUC_PRINTF(3, 4);

static void
kmx_request_finish_new(KmxRequest *req, int code, const char *format, ...)
{
	va_list args;
	GError *error;

	va_start(args, format);
	error = g_error_new_valist(KMX_ERROR, code, format, args);
	va_end(args);
	kmx_request_finish(req, error);
}

/* ---- the flow ---------------------------------------------------------------- */

static void kmx_request_proceed(KmxRequest *req);

static gboolean
kmx_request_is_locked_error(KmxRequest *req, const GError *error)
{
	return g_error_matches(error, KMX_ERROR, KMX_ERROR_LOCKED) &&
	       (kmx_request_class(req->kind)->flags & KMX_REQUEST_FLAG_NEEDS_UNLOCKED) &&
	       !req->prompted && req->options.interactive;
}

/* main thread: the work's result goes into the model, then the reply */
static void
kmx_request_complete(KmxRequest *req, GError *error)
{
	const KmxRequestClass *klass = kmx_request_class(req->kind);

	kmx_device_flush_state(req->device);
	if (error == NULL) {
		if (klass->apply != NULL)
			klass->apply(req);
		kmx_request_finish(req, NULL);
		return;
	}
	/* the device locked itself between our check and the work (an idle
	 * lock, a card reset): unlock once through the prompter, then retry */
	if (kmx_request_is_locked_error(req, error)) {
		g_error_free(error);
		req->must_unlock = TRUE;
		kmx_request_proceed(req);
		return;
	}
	/* a secret the device rejected is forgotten at once, never sent again */
	if (req->secret != NULL && g_error_matches(error, KMX_ERROR, KMX_ERROR_BAD_SECRET)) {
		kmx_device_forget_secret(req->device);
		kmx_device_change_flags(req->device, KMX_DEVICE_FLAG_LOCKED, 0);
	}
	kmx_request_finish(req, error);
}

typedef struct {
	KmxRequest *req;
	GError *error;
} KmxRequestHandover;

static gboolean
kmx_request_complete_cb(gpointer user_data)
{
	KmxRequestHandover *h = user_data;
	kmx_request_complete(h->req, h->error);
	g_free(h);
	return G_SOURCE_REMOVE;
}

/* from an executor to the main thread, into kmx_request_complete() */
static void
kmx_request_complete_on_main(KmxRequest *req, GError *error)
{
	KmxRequestHandover *h = g_new0(KmxRequestHandover, 1);
	GSource *source = g_idle_source_new();

	h->req = req;
	h->error = error;
	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source, kmx_request_complete_cb, h, NULL);
	g_source_attach(source, req->main_context);
	g_source_unref(source);
}

/* on the executor */
static void
kmx_request_execute(gpointer data, gpointer unused)
{
	KmxRequest *req = data;
	const KmxRequestClass *klass = kmx_request_class(req->kind);
	GError *error = NULL;

	if (g_cancellable_is_cancelled(req->cancellable)) {
		error = g_error_new(KMX_ERROR,
				    KMX_ERROR_CANCELLED,
				    "the request was cancelled before it started");
	} else if (!klass->work(req, &error) && error == NULL) {
		error = g_error_new(KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "the %s backend failed without saying why",
				    kmx_device_get_backend_name(req->device));
	}
	/* a stateless result goes straight back, unless the main thread has
	 * state to apply first (or a locked device, a rejected secret) */
	if ((klass->flags & KMX_REQUEST_FLAG_DIRECT) &&
	    !kmx_device_has_pending_state(req->device) &&
	    (error == NULL || (!kmx_request_is_locked_error(req, error) &&
			       !g_error_matches(error, KMX_ERROR, KMX_ERROR_BAD_SECRET)))) {
		kmx_request_finish(req, error);
		return;
	}
	kmx_request_complete_on_main(req, error);
}

static void
kmx_request_run(KmxRequest *req)
{
	const KmxRequestClass *klass = kmx_request_class(req->kind);
	KmxExecutor *executor;

	if (klass->flags & KMX_REQUEST_FLAG_MAIN) {
		GError *error = NULL;
		if (!klass->work(req, &error))
			kmx_request_complete(req, error);
		else
			kmx_request_complete(req, NULL);
		return;
	}
	if (kmx_device_wants_secret_per_operation(req->device)) {
		g_clear_pointer(&req->secret, kmx_secret_unref);
		req->secret = kmx_device_dup_kept_secret(req->device);
	}
	executor = (klass->flags & KMX_REQUEST_FLAG_STORAGE)
		       ? kmx_device_get_storage_executor(req->device)
		       : kmx_device_get_executor(req->device);
	kmx_executor_run_func(executor, kmx_request_execute, req);
}

static void
kmx_request_unlocked(KmxRequest *req, KmxSecret *secret, GError *error)
{
	if (error != NULL) {
		kmx_request_finish(req, error);
		return;
	}
	if (req->kind == KMX_REQUEST_UNLOCK) {
		kmx_request_finish(req, NULL);
		return;
	}
	req->must_unlock = FALSE;
	kmx_request_proceed(req);
}

static void
kmx_request_got_admin_secret(KmxRequest *req, KmxSecret *secret, GError *error)
{
	if (error != NULL) {
		kmx_request_finish(req, error);
		return;
	}
	req->admin_secret = kmx_secret_ref(secret);
	kmx_request_proceed(req);
}

static gboolean
kmx_request_check_blocked(KmxRequest *req, gboolean admin)
{
	int retries = admin ? kmx_device_get_admin_retries(req->device)
			    : kmx_device_get_pin_retries(req->device);
	const char *hint = KMX_DEVICE_GET_CLASS(req->device)->unblock_hint;

	if (retries != 0)
		return TRUE;
	if (admin)
		hint = "reset it with the device's reset code (or reset the device)";
	else if (hint == NULL)
		hint = "reset it with the device's admin PIN";
	kmx_request_finish_new(req,
			       KMX_ERROR_BLOCKED,
			       "the %s of %s is blocked: no tries are left; %s",
			       admin ? "admin PIN" : "PIN",
			       kmx_device_get_id(req->device),
			       hint);
	return FALSE;
}

static void
kmx_request_fail_locked(KmxRequest *req, const char *what)
{
	kmx_request_finish_new(req,
			       KMX_ERROR_LOCKED,
			       "%s %s and the caller asked not to be prompted: unlock it first "
			       "(keymuxctl unlock %s)",
			       kmx_device_get_id(req->device),
			       what,
			       kmx_device_get_id(req->device));
}

/* main thread, after authorisation: what must be true before the work */
static void
kmx_request_proceed(KmxRequest *req)
{
	const KmxRequestClass *klass = kmx_request_class(req->kind);
	KmxDevice *device = req->device;
	gboolean admin = (klass->flags & KMX_REQUEST_FLAG_NEEDS_ADMIN) &&
			 kmx_device_needs_admin_secret(device);

	if (g_cancellable_is_cancelled(req->cancellable)) {
		kmx_request_finish_new(req, KMX_ERROR_CANCELLED, "the request was cancelled");
		return;
	}
	if ((klass->flags & KMX_REQUEST_FLAG_NEEDS_AVAILABLE) && !kmx_device_is_available(device)) {
		/* the backend says why in Details["error"] when it knows */
		g_autoptr(GVariant) details = kmx_device_dup_details(device);
		const char *why = NULL;

		if (!g_variant_lookup(details, "error", "&s", &why))
			why = "connect it (insert the card) and try again";
		kmx_request_finish_new(req,
				       KMX_ERROR_UNAVAILABLE,
				       "device %s is not available: %s",
				       kmx_device_get_id(device),
				       why);
		return;
	}
	if (req->kind == KMX_REQUEST_UNLOCK) {
		if (kmx_device_has_secret(device) && !kmx_request_check_blocked(req, FALSE))
			return;
		if (!kmx_secret_is_empty(req->args.unlock.secret)) {
			kmx_request_run(req); /* checked even when already open */
			return;
		}
		if (!kmx_device_is_locked(device)) {
			kmx_request_finish(req, NULL);
			return;
		}
		if (!req->options.interactive) {
			kmx_request_fail_locked(req, "is locked");
			return;
		}
		req->prompted = TRUE;
		kmx_manager_prompt_unlock(req->manager, req, kmx_request_unlocked);
		return;
	}
	/* a device with an admin secret makes keys with that, not the user's */
	if ((klass->flags & KMX_REQUEST_FLAG_NEEDS_UNLOCKED) && !admin &&
	    (kmx_device_is_locked(device) || req->must_unlock)) {
		if (!kmx_request_check_blocked(req, FALSE))
			return;
		if (req->prompted) {
			kmx_request_finish_new(
			    req,
			    KMX_ERROR_LOCKED,
			    "%s locked again while the request waited; try again",
			    kmx_device_get_id(device));
			return;
		}
		if (!req->options.interactive) {
			kmx_request_fail_locked(req, "is locked");
			return;
		}
		req->prompted = TRUE;
		kmx_manager_prompt_unlock(req->manager, req, kmx_request_unlocked);
		return;
	}
	if (admin && req->admin_secret == NULL) {
		if (!kmx_request_check_blocked(req, TRUE))
			return;
		if (req->options.admin_secret != NULL) {
			req->admin_secret = kmx_secret_ref(req->options.admin_secret);
		} else if (!req->options.interactive) {
			kmx_request_fail_locked(req, "needs its admin PIN (option 'admin-secret')");
			return;
		} else {
			kmx_manager_prompt_admin(req->manager, req, kmx_request_got_admin_secret);
			return;
		}
	}
	if (req->kind == KMX_REQUEST_LOCK)
		kmx_device_forget_secret(device);
	kmx_request_run(req);
}

static void
kmx_request_authorized(KmxCaller *caller, const GError *error, gpointer user_data)
{
	KmxRequest *req = user_data;

	if (error != NULL) {
		kmx_request_finish(req, g_error_copy(error));
		return;
	}
	if (req->refusal != NULL) {
		kmx_request_finish(req, g_steal_pointer(&req->refusal));
		return;
	}
	kmx_request_proceed(req);
}

/**
 * kmx_request_start:
 * @reply: gets the result, once, on the main thread or on the executor of
 *   a private-key operation
 *
 * Checks the arguments, passes the authorisation hook, then runs the
 * request; takes ownership of @self.  A request over the limits of the
 * work in flight is refused at once.
 */
void
kmx_request_start(KmxRequest *self,
		  KmxRequestReply reply,
		  gpointer user_data,
		  GDestroyNotify destroy)
{
	const KmxRequestClass *klass;
	GError *error = NULL;

	g_return_if_fail(self != NULL);
	g_return_if_fail(reply != NULL);
	klass = kmx_request_class(self->kind);
	self->reply = reply;
	self->reply_data = user_data;
	self->reply_destroy = destroy;
	if (!kmx_manager_admit_request(self->manager, self->caller, &error)) {
		kmx_request_finish(self, error);
		return;
	}
	self->admitted = TRUE;
	if (self->refusal == NULL && klass->check != NULL && !klass->check(self, &error))
		kmx_request_refuse(self, error);
	kmx_manager_authorize(self->manager, self->caller, kmx_request_authorized, self);
}
