/* keymux: the methods of the Device and Key interfaces
 *
 * Each method checks its arguments on the main thread, then becomes a
 * KmxRequest whose work runs on the device's executor; the result is
 * applied to the model on the main thread (which the export mirrors on the
 * bus) before the reply.
 */
#include "config.h"

#include <string.h>

#include "kmx-daemon-private.h"
#include "kmx-error.h"

/* ---- options ---------------------------------------------------------- */

/**
 * kmx_options_get_boolean:
 *
 * Reads an optional boolean from an a{sv}; a value of another type is
 * InvalidArgument.  Returns %FALSE on error only.
 */
gboolean
kmx_options_get_boolean(GVariant *options, const char *name, gboolean *value, GError **error)
{
	g_autoptr(GVariant) v = g_variant_lookup_value(options, name, NULL);

	if (v == NULL)
		return TRUE;
	if (!g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "option '%s' must be a boolean (b), not '%s'",
			    name,
			    g_variant_get_type_string(v));
		return FALSE;
	}
	*value = g_variant_get_boolean(v);
	return TRUE;
}

/* ---- key operations (Sign, Decrypt, Derive) ---------------------------- */

/* on the executor: hash if needed, then the private-key operation */
static GBytes *
kmx_key_op_compute(KmxRequest *req, GError **error)
{
	KmxOperation op = kmx_mechanism_get_operation(req->mechanism);
	KmxHash hash = kmx_mechanism_get_hash(req->mechanism);
	g_autoptr(GBytes) input = g_bytes_ref(req->data);

	/* hash here, on the executor: a large message must not stall the
	 * main thread, and every backend gets a digest */
	if (op == KMX_OPERATION_SIGN && hash != KMX_HASH_NONE && !req->prehashed) {
		GChecksumType type = hash == KMX_HASH_SHA256   ? G_CHECKSUM_SHA256
				     : hash == KMX_HASH_SHA384 ? G_CHECKSUM_SHA384
							       : G_CHECKSUM_SHA512;
		g_autoptr(GChecksum) checksum = g_checksum_new(type);
		guint8 digest[64];
		gsize digest_len = sizeof(digest);

		g_checksum_update(checksum,
				  g_bytes_get_data(req->data, NULL),
				  (gssize)g_bytes_get_size(req->data));
		g_checksum_get_digest(checksum, digest, &digest_len);
		g_bytes_unref(input);
		input = g_bytes_new(digest, digest_len);
	}
	switch (op) {
	case KMX_OPERATION_SIGN:
		return kmx_key_sign(req->key, req->mechanism, input, req->cancellable, error);
	case KMX_OPERATION_DECRYPT:
		return kmx_key_decrypt(req->key, req->mechanism, input, req->cancellable, error);
	case KMX_OPERATION_DERIVE:
		return kmx_key_derive(req->key, req->mechanism, input, req->cancellable, error);
	default:
		g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "unknown operation");
		return NULL;
	}
}

/**
 * kmx_request_start_key_operation:
 * @req: a request with its key and device set
 *
 * Checks the algorithm and options against the key, then runs it.
 */
void
kmx_request_start_key_operation(KmxRequest *req,
				KmxOperation op,
				const char *algorithm,
				GVariant *data,
				GVariant *options)
{
	KmxKeyType type = kmx_key_get_key_type(req->key);
	KmxKeyUsage need = op == KMX_OPERATION_SIGN	 ? KMX_KEY_USAGE_SIGN
			   : op == KMX_OPERATION_DECRYPT ? KMX_KEY_USAGE_DECRYPT
							 : KMX_KEY_USAGE_DERIVE;
	GError *error = NULL;
	gsize len = 0;
	const guint8 *bytes;

	req->mechanism = kmx_mechanism_from_string(op, algorithm);
	if (req->mechanism == KMX_MECHANISM_UNKNOWN) {
		kmx_request_fail_new(req,
				     KMX_ERROR_INVALID_ARGUMENT,
				     "unknown %s algorithm '%s'; see the Key interface's "
				     "documentation for the names",
				     kmx_operation_to_string(op),
				     algorithm);
		return;
	}
	if (!(kmx_key_get_usage(req->key) & need) ||
	    !kmx_mechanism_supports_key_type(req->mechanism, type)) {
		kmx_request_fail_new(req,
				     KMX_ERROR_NOT_SUPPORTED,
				     "key %s is %s and cannot do %s",
				     kmx_key_get_id(req->key),
				     kmx_key_type_to_string(type),
				     algorithm);
		return;
	}
	if (!kmx_options_get_boolean(options, "prehashed", &req->prehashed, &error)) {
		kmx_request_fail(req, error);
		return;
	}
	bytes = g_variant_get_fixed_array(data, &len, 1);
	if (req->prehashed) {
		gsize want = kmx_hash_get_length(kmx_mechanism_get_hash(req->mechanism));
		if (op != KMX_OPERATION_SIGN || want == 0) {
			kmx_request_fail_new(req,
					     KMX_ERROR_NOT_SUPPORTED,
					     "%s signs the message itself; drop the "
					     "'prehashed' option",
					     algorithm);
			return;
		}
		if (len != want) {
			kmx_request_fail_new(req,
					     KMX_ERROR_INVALID_ARGUMENT,
					     "a prehashed %s digest is %" G_GSIZE_FORMAT
					     " bytes, not %" G_GSIZE_FORMAT,
					     algorithm,
					     want,
					     len);
			return;
		}
	}
	if (op != KMX_OPERATION_SIGN && len == 0) {
		kmx_request_fail_new(req,
				     KMX_ERROR_INVALID_ARGUMENT,
				     "%s needs non-empty input",
				     kmx_operation_to_string(op));
		return;
	}
	/* the message stays in the D-Bus message: reference it, do not copy */
	req->data = g_bytes_new_with_free_func(bytes,
					       len,
					       (GDestroyNotify)g_variant_unref,
					       g_variant_ref(data));
	req->compute = kmx_key_op_compute;
	kmx_request_start(req);
}

static gboolean
kmx_label_is_valid(KmxRequest *req, const char *label)
{
	if (strlen(label) > 1024 || !g_utf8_validate(label, -1, NULL)) {
		kmx_request_fail_new(req,
				     KMX_ERROR_INVALID_ARGUMENT,
				     "a label is UTF-8 of at most 1024 bytes");
		return FALSE;
	}
	return TRUE;
}

/* ---- Key methods ------------------------------------------------------- */

#define KEY_OP_FLAGS                                                                               \
	(KMX_REQUEST_FLAG_NEEDS_UNLOCKED | KMX_REQUEST_FLAG_NEEDS_AVAILABLE |                      \
	 KMX_REQUEST_FLAG_AUDIT)

static void
kmx_set_label_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!kmx_key_save_label(req->key, req->label, req->cancellable, &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void
kmx_set_label_done(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!g_task_propagate_boolean(task, &error)) {
		kmx_request_return_error(req, error);
		return;
	}
	kmx_key_set_label(req->key, req->label);
	kmx_request_return_value(req, NULL);
}

static void
kmx_method_key_set_label(KmxDaemon *daemon,
			 KmxDevice *device,
			 KmxKey *key,
			 GDBusMethodInvocation *invocation,
			 const char *label)
{
	KmxRequest *req =
	    kmx_request_new(daemon, invocation, "set-label", KMX_REQUEST_FLAG_NONE, device, key);

	if (!kmx_label_is_valid(req, label))
		return;
	req->label = g_strdup(label);
	req->work = kmx_set_label_work;
	req->done = kmx_set_label_done;
	kmx_request_start(req);
}

static void
kmx_delete_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!kmx_key_delete(req->key, req->cancellable, &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void
kmx_delete_done(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!g_task_propagate_boolean(task, &error)) {
		kmx_request_return_error(req, error);
		return;
	}
	kmx_device_remove_key(req->device, req->key);
	kmx_request_return_value(req, NULL);
}

static void
kmx_method_key_delete(KmxDaemon *daemon,
		      KmxDevice *device,
		      KmxKey *key,
		      GDBusMethodInvocation *invocation)
{
	KmxRequest *req =
	    kmx_request_new(daemon, invocation, "delete", KMX_REQUEST_FLAG_AUDIT, device, key);
	req->work = kmx_delete_work;
	req->done = kmx_delete_done;
	kmx_request_start(req);
}

/* ---- Device methods ---------------------------------------------------- */

static void
kmx_boolean_done(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!g_task_propagate_boolean(task, &error)) {
		kmx_request_return_error(req, error);
		return;
	}
	kmx_request_return_value(req, NULL);
}

static void
kmx_unlock_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!kmx_device_unlock(req->device, req->secret, req->cancellable, &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void
kmx_unlock_prompted(KmxRequest *req, GError *error)
{
	if (error != NULL)
		kmx_request_return_error(req, error);
	else
		kmx_request_return_value(req, NULL);
}

static void
kmx_method_device_unlock(KmxDaemon *daemon,
			 KmxDevice *device,
			 KmxKey *key,
			 GDBusMethodInvocation *invocation,
			 const char *secret,
			 GVariant *options)
{
	KmxRequest *req = kmx_request_new(daemon,
					  invocation,
					  "unlock",
					  KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_AUDIT,
					  device,
					  NULL);
	req->secret = kmx_secret_new_from_string(secret);
	if (kmx_secret_is_empty(req->secret)) {
		/* nothing to give: already open, or ask the prompter */
		if (!kmx_device_is_locked(device)) {
			kmx_request_return_value(req, NULL);
			return;
		}
		req->prompted = TRUE;
		kmx_daemon_prompt_unlock(daemon, req, kmx_unlock_prompted);
		return;
	}
	req->work = kmx_unlock_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
}

static void
kmx_lock_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!kmx_device_lock(req->device, req->cancellable, &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void
kmx_method_device_lock(KmxDaemon *daemon,
		       KmxDevice *device,
		       KmxKey *key,
		       GDBusMethodInvocation *invocation)
{
	KmxRequest *req =
	    kmx_request_new(daemon, invocation, "lock", KMX_REQUEST_FLAG_NONE, device, NULL);
	req->work = kmx_lock_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
}

static void
kmx_register_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	gboolean ok = g_str_equal(req->operation, "register")
			  ? kmx_device_register(req->device, req->cancellable, &error)
			  : kmx_device_unregister(req->device, req->cancellable, &error);
	if (!ok)
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void
kmx_method_device_register(KmxDaemon *daemon,
			   KmxDevice *device,
			   KmxKey *key,
			   GDBusMethodInvocation *invocation)
{
	KmxRequest *req = kmx_request_new(daemon,
					  invocation,
					  "register",
					  KMX_REQUEST_FLAG_NEEDS_AVAILABLE,
					  device,
					  NULL);
	req->work = kmx_register_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
}

static void
kmx_method_device_unregister(KmxDaemon *daemon,
			     KmxDevice *device,
			     KmxKey *key,
			     GDBusMethodInvocation *invocation)
{
	KmxRequest *req =
	    kmx_request_new(daemon, invocation, "unregister", KMX_REQUEST_FLAG_NONE, device, NULL);
	req->work = kmx_register_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
}

static void
kmx_change_secret_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	if (!kmx_device_change_secret(req->device,
				      req->secret,
				      req->secret2,
				      req->cancellable,
				      &error))
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

static void
kmx_method_device_change_secret(KmxDaemon *daemon,
				KmxDevice *device,
				KmxKey *key,
				GDBusMethodInvocation *invocation,
				const char *old_secret,
				const char *new_secret)
{
	KmxRequest *req = kmx_request_new(daemon,
					  invocation,
					  "change-secret",
					  KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_AUDIT,
					  device,
					  NULL);
	req->secret = kmx_secret_new_from_string(old_secret);
	req->secret2 = kmx_secret_new_from_string(new_secret);
	req->work = kmx_change_secret_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
}

static void
kmx_generate_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	KmxKey *key = kmx_device_generate_key(req->device,
					      req->key_type,
					      req->label,
					      req->options,
					      req->cancellable,
					      &error);
	if (key == NULL) {
		if (error == NULL)
			g_set_error(&error, KMX_ERROR, KMX_ERROR_FAILED, "key generation failed");
		g_task_return_error(task, error);
	} else {
		g_task_return_pointer(task, key, g_object_unref);
	}
}

static void
kmx_generate_done(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	g_autoptr(KmxKey) key = g_task_propagate_pointer(task, &error);
	g_autofree char *path = NULL;

	if (key == NULL) {
		kmx_request_return_error(req, error);
		return;
	}
	kmx_device_add_key(req->device, key);
	g_set_object(&req->key, key);
	path = kmx_daemon_key_path(key);
	kmx_request_return_value(req, g_variant_new("(o)", path));
}

static void
kmx_method_device_generate_key(KmxDaemon *daemon,
			       KmxDevice *device,
			       KmxKey *key,
			       GDBusMethodInvocation *invocation,
			       const char *algorithm,
			       const char *label,
			       GVariant *options)
{
	KmxRequest *req =
	    kmx_request_new(daemon,
			    invocation,
			    "generate",
			    KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_NEEDS_UNLOCKED |
				KMX_REQUEST_FLAG_AUDIT,
			    device,
			    NULL);

	req->key_type = kmx_key_type_from_string(algorithm);
	if (req->key_type == KMX_KEY_TYPE_UNKNOWN) {
		kmx_request_fail_new(req,
				     KMX_ERROR_INVALID_ARGUMENT,
				     "unknown key algorithm '%s'; use one of rsa2048, rsa3072, "
				     "rsa4096, ecdsa-p256, ecdsa-p384, ed25519, x25519",
				     algorithm);
		return;
	}
	if (!kmx_label_is_valid(req, label))
		return;
	req->label = g_strdup(label);
	req->options = g_variant_ref(options);
	req->work = kmx_generate_work;
	req->done = kmx_generate_done;
	kmx_request_start(req);
}

static void
kmx_import_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	GPtrArray *keys = kmx_device_import_key(req->device,
						req->data,
						req->secret,
						req->label,
						req->options,
						req->cancellable,
						&error);
	if (keys == NULL) {
		if (error == NULL)
			g_set_error(&error, KMX_ERROR, KMX_ERROR_FAILED, "the import failed");
		g_task_return_error(task, error);
	} else {
		g_task_return_pointer(task, keys, (GDestroyNotify)g_ptr_array_unref);
	}
}

static void
kmx_import_done(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	g_autoptr(GPtrArray) keys = g_task_propagate_pointer(task, &error);
	g_autoptr(GVariantBuilder) paths = NULL;

	if (keys == NULL) {
		kmx_request_return_error(req, error);
		return;
	}
	paths = g_variant_builder_new(G_VARIANT_TYPE("ao"));
	for (guint i = 0; i < keys->len; i++) {
		KmxKey *key = g_ptr_array_index(keys, i);
		g_autofree char *path = NULL;

		kmx_device_add_key(req->device, key);
		path = kmx_daemon_key_path(key);
		g_variant_builder_add(paths, "o", path);
		if (i == 0)
			g_set_object(&req->key, key);
	}
	kmx_request_return_value(req, g_variant_new("(ao)", paths));
}

static void
kmx_method_device_import_key(KmxDaemon *daemon,
			     KmxDevice *device,
			     KmxKey *key,
			     GDBusMethodInvocation *invocation,
			     GVariant *data,
			     const char *passphrase,
			     const char *label,
			     GVariant *options)
{
	KmxRequest *req =
	    kmx_request_new(daemon,
			    invocation,
			    "import",
			    KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_NEEDS_UNLOCKED |
				KMX_REQUEST_FLAG_AUDIT,
			    device,
			    NULL);
	gsize len = 0;
	const guint8 *bytes = g_variant_get_fixed_array(data, &len, 1);

	/* a private key is a secret: copy it into secret memory once */
	req->secret = kmx_secret_new_from_string(passphrase);
	if (len == 0) {
		kmx_request_fail_new(req,
				     KMX_ERROR_INVALID_ARGUMENT,
				     "no key data given; pass the content of a key file");
		return;
	}
	if (!kmx_label_is_valid(req, label))
		return;
	{
		g_autoptr(KmxSecret) copy = kmx_secret_new_from_data(bytes, len);
		req->data = kmx_secret_to_bytes(copy);
	}
	req->label = g_strdup(label);
	req->options = g_variant_ref(options);
	req->work = kmx_import_work;
	req->done = kmx_import_done;
	kmx_request_start(req);
}

/* ---- dispatch ------------------------------------------------------------ */

/* the handlers copied the caller's secrets into secret memory; the copy in
 * the D-Bus message (our heap, kept until the reply) is wiped too */
static void
kmx_wipe_string(const char *s)
{
	if (s != NULL)
		kmx_secure_zero((char *)s, strlen(s));
}

static void
kmx_wipe_bytes(GVariant *bytes)
{
	gsize len = 0;
	const guint8 *p = g_variant_get_fixed_array(bytes, &len, 1);

	if (p != NULL)
		kmx_secure_zero((guint8 *)p, len);
}

/**
 * kmx_methods_call_key:
 *
 * Runs a method of the Key interface on @key; GDBus has checked the
 * argument types against the introspection data.
 */
void
kmx_methods_call_key(KmxDaemon *daemon,
		     KmxKey *key,
		     const char *method,
		     GVariant *parameters,
		     GDBusMethodInvocation *invocation)
{
	KmxDevice *device = kmx_key_get_device(key);
	g_autoptr(GVariant) bytes = NULL;
	g_autoptr(GVariant) options = NULL;
	const char *s = NULL;

	if (g_str_equal(method, "Sign") || g_str_equal(method, "Decrypt") ||
	    g_str_equal(method, "Derive")) {
		KmxOperation op = method[0] == 'S'   ? KMX_OPERATION_SIGN
				  : method[2] == 'c' ? KMX_OPERATION_DECRYPT
						     : KMX_OPERATION_DERIVE;
		KmxRequest *req = kmx_request_new(daemon,
						  invocation,
						  kmx_operation_to_string(op),
						  KEY_OP_FLAGS,
						  device,
						  key);

		g_variant_get(parameters, "(&s@ay@a{sv})", &s, &bytes, &options);
		kmx_request_start_key_operation(req, op, s, bytes, options);
	} else if (g_str_equal(method, "SetLabel")) {
		g_variant_get(parameters, "(&s)", &s);
		kmx_method_key_set_label(daemon, device, key, invocation, s);
	} else if (g_str_equal(method, "Delete")) {
		kmx_method_key_delete(daemon, device, key, invocation);
	} else {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_UNKNOWN_METHOD,
						      "no method %s on a key",
						      method);
	}
}

/**
 * kmx_methods_call_device:
 *
 * Runs a method of the Device interface on @device.
 */
void
kmx_methods_call_device(KmxDaemon *daemon,
			KmxDevice *device,
			const char *method,
			GVariant *parameters,
			GDBusMethodInvocation *invocation)
{
	g_autoptr(GVariant) bytes = NULL;
	g_autoptr(GVariant) options = NULL;
	const char *s = NULL, *t = NULL;

	if (g_str_equal(method, "Unlock")) {
		g_variant_get(parameters, "(&s@a{sv})", &s, &options);
		kmx_method_device_unlock(daemon, device, NULL, invocation, s, options);
		kmx_wipe_string(s);
	} else if (g_str_equal(method, "Lock")) {
		kmx_method_device_lock(daemon, device, NULL, invocation);
	} else if (g_str_equal(method, "Register")) {
		kmx_method_device_register(daemon, device, NULL, invocation);
	} else if (g_str_equal(method, "Unregister")) {
		kmx_method_device_unregister(daemon, device, NULL, invocation);
	} else if (g_str_equal(method, "ChangeSecret")) {
		g_variant_get(parameters, "(&s&s)", &s, &t);
		kmx_method_device_change_secret(daemon, device, NULL, invocation, s, t);
		kmx_wipe_string(s);
		kmx_wipe_string(t);
	} else if (g_str_equal(method, "GenerateKey")) {
		g_variant_get(parameters, "(&s&s@a{sv})", &s, &t, &options);
		kmx_method_device_generate_key(daemon, device, NULL, invocation, s, t, options);
	} else if (g_str_equal(method, "ImportKey")) {
		g_variant_get(parameters, "(@ay&s&s@a{sv})", &bytes, &s, &t, &options);
		kmx_method_device_import_key(daemon,
					     device,
					     NULL,
					     invocation,
					     bytes,
					     s,
					     t,
					     options);
		kmx_wipe_string(s);
		kmx_wipe_bytes(bytes);
	} else {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_UNKNOWN_METHOD,
						      "no method %s on a device",
						      method);
	}
}
