/* keymux: devices and keys on the bus
 *
 * Each KmxDevice is a KmxDBusObjectSkeleton at devices/<escaped id> with the
 * Device interface, and each of its keys a child object with the Key
 * interface, in the root GDBusObjectManagerServer: clients see them come and
 * go as InterfacesAdded/InterfacesRemoved and follow PropertiesChanged.  The
 * model is the source of truth; the skeletons mirror it on the main thread.
 */
#include "config.h"

#include <string.h>

#include "kmx-daemon-private.h"
#include "kmx-error.h"
#include "kmx-names.h"

struct _KmxExportedDevice {
	KmxDaemon *daemon; /* borrowed: the daemon owns us */
	KmxDevice *device;
	GDBusObjectManagerServer *server;
	KmxDBusObjectSkeleton *object;
	KmxDBusDevice *iface;
	char *path;
	GHashTable *keys; /* key id -> KmxExportedKey */
	gulong notify_id;
	gulong keys_changed_id;
};

typedef struct {
	KmxExportedDevice *edev;
	KmxKey *key;
	KmxDBusObjectSkeleton *object;
	KmxDBusKey *iface;
	char *path;
	gulong notify_id;
} KmxExportedKey;

/**
 * kmx_daemon_device_path:
 *
 * Returns: (transfer full): the object path of @device
 */
char *
kmx_daemon_device_path(KmxDevice *device)
{
	g_autofree char *escaped = g_dbus_escape_object_path(kmx_device_get_id(device));
	return g_strconcat(KMX_DBUS_DEVICES_PATH "/", escaped, NULL);
}

/**
 * kmx_daemon_key_path:
 *
 * Returns: (transfer full): the object path of @key
 */
char *
kmx_daemon_key_path(KmxKey *key)
{
	g_autofree char *device_path = kmx_daemon_device_path(kmx_key_get_device(key));
	return g_strconcat(device_path, "/", kmx_key_get_id(key), NULL);
}

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

static void
kmx_key_op_work(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	GBytes *result = NULL;
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
		result = kmx_key_sign(req->key, req->mechanism, input, req->cancellable, &error);
		break;
	case KMX_OPERATION_DECRYPT:
		result = kmx_key_decrypt(req->key, req->mechanism, input, req->cancellable, &error);
		break;
	case KMX_OPERATION_DERIVE:
		result = kmx_key_derive(req->key, req->mechanism, input, req->cancellable, &error);
		break;
	default:
		g_set_error(&error, KMX_ERROR, KMX_ERROR_FAILED, "unknown operation");
	}
	if (result == NULL) {
		if (error == NULL)
			g_set_error(&error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "the %s backend failed without saying why",
				    kmx_device_get_backend_name(req->device));
		g_task_return_error(task, error);
		return;
	}
	g_task_return_pointer(task, result, (GDestroyNotify)g_bytes_unref);
}

static void
kmx_key_op_done(KmxRequest *req, GTask *task)
{
	GError *error = NULL;
	g_autoptr(GBytes) result = g_task_propagate_pointer(task, &error);

	if (result == NULL) {
		kmx_request_return_error(req, error);
		return;
	}
	/* the reply copies the bytes; our copy (maybe a plaintext in secret
	 * memory) is wiped when result goes */
	kmx_request_return_value(
	    req,
	    g_variant_new("(@ay)",
			  g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE,
						    g_bytes_get_data(result, NULL),
						    g_bytes_get_size(result),
						    1)));
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
		kmx_request_return_new_error(req,
					     KMX_ERROR_INVALID_ARGUMENT,
					     "unknown %s algorithm '%s'; see the Key interface's "
					     "documentation for the names",
					     kmx_operation_to_string(op),
					     algorithm);
		return;
	}
	if (!(kmx_key_get_usage(req->key) & need) ||
	    !kmx_mechanism_supports_key_type(req->mechanism, type)) {
		kmx_request_return_new_error(req,
					     KMX_ERROR_NOT_SUPPORTED,
					     "key %s is %s and cannot do %s",
					     kmx_key_get_id(req->key),
					     kmx_key_type_to_string(type),
					     algorithm);
		return;
	}
	if (!kmx_options_get_boolean(options, "prehashed", &req->prehashed, &error)) {
		kmx_request_return_error(req, error);
		return;
	}
	bytes = g_variant_get_fixed_array(data, &len, 1);
	if (req->prehashed) {
		gsize want = kmx_hash_get_length(kmx_mechanism_get_hash(req->mechanism));
		if (op != KMX_OPERATION_SIGN || want == 0) {
			kmx_request_return_new_error(req,
						     KMX_ERROR_NOT_SUPPORTED,
						     "%s signs the message itself; drop the "
						     "'prehashed' option",
						     algorithm);
			return;
		}
		if (len != want) {
			kmx_request_return_new_error(req,
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
		kmx_request_return_new_error(req,
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
	req->work = kmx_key_op_work;
	req->done = kmx_key_op_done;
	kmx_request_start(req);
}

static gboolean
kmx_label_is_valid(KmxRequest *req, const char *label)
{
	if (strlen(label) > 1024 || !g_utf8_validate(label, -1, NULL)) {
		kmx_request_return_new_error(req,
					     KMX_ERROR_INVALID_ARGUMENT,
					     "a label is UTF-8 of at most 1024 bytes");
		return FALSE;
	}
	return TRUE;
}

/* ---- Key methods ------------------------------------------------------- */

static KmxRequest *
kmx_exported_key_request(KmxExportedKey *ekey,
			 GDBusMethodInvocation *invocation,
			 const char *operation,
			 KmxRequestFlags flags)
{
	return kmx_request_new(ekey->edev->daemon,
			       invocation,
			       operation,
			       flags,
			       ekey->edev->device,
			       ekey->key);
}

#define KEY_OP_FLAGS                                                                               \
	(KMX_REQUEST_FLAG_NEEDS_UNLOCKED | KMX_REQUEST_FLAG_NEEDS_AVAILABLE |                      \
	 KMX_REQUEST_FLAG_AUDIT)

static gboolean
kmx_exported_key_handle_sign(KmxDBusKey *iface,
			     GDBusMethodInvocation *invocation,
			     const char *algorithm,
			     GVariant *data,
			     GVariant *options,
			     KmxExportedKey *ekey)
{
	KmxRequest *req = kmx_exported_key_request(ekey, invocation, "sign", KEY_OP_FLAGS);
	kmx_request_start_key_operation(req, KMX_OPERATION_SIGN, algorithm, data, options);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
kmx_exported_key_handle_decrypt(KmxDBusKey *iface,
				GDBusMethodInvocation *invocation,
				const char *algorithm,
				GVariant *data,
				GVariant *options,
				KmxExportedKey *ekey)
{
	KmxRequest *req = kmx_exported_key_request(ekey, invocation, "decrypt", KEY_OP_FLAGS);
	kmx_request_start_key_operation(req, KMX_OPERATION_DECRYPT, algorithm, data, options);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
kmx_exported_key_handle_derive(KmxDBusKey *iface,
			       GDBusMethodInvocation *invocation,
			       const char *algorithm,
			       GVariant *peer,
			       GVariant *options,
			       KmxExportedKey *ekey)
{
	KmxRequest *req = kmx_exported_key_request(ekey, invocation, "derive", KEY_OP_FLAGS);
	kmx_request_start_key_operation(req, KMX_OPERATION_DERIVE, algorithm, peer, options);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

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

static gboolean
kmx_exported_key_handle_set_label(KmxDBusKey *iface,
				  GDBusMethodInvocation *invocation,
				  const char *label,
				  KmxExportedKey *ekey)
{
	KmxRequest *req =
	    kmx_exported_key_request(ekey, invocation, "set-label", KMX_REQUEST_FLAG_NONE);

	if (!kmx_label_is_valid(req, label))
		return G_DBUS_METHOD_INVOCATION_HANDLED;
	req->label = g_strdup(label);
	req->work = kmx_set_label_work;
	req->done = kmx_set_label_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
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

static gboolean
kmx_exported_key_handle_delete(KmxDBusKey *iface,
			       GDBusMethodInvocation *invocation,
			       KmxExportedKey *ekey)
{
	KmxRequest *req =
	    kmx_exported_key_request(ekey, invocation, "delete", KMX_REQUEST_FLAG_AUDIT);
	req->work = kmx_delete_work;
	req->done = kmx_delete_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- key export -------------------------------------------------------- */

static void
kmx_exported_key_sync_state(KmxExportedKey *ekey)
{
	KmxDeviceFlags flags = kmx_device_get_flags(ekey->edev->device);
	gboolean locked = (flags & KMX_DEVICE_FLAG_LOCKED) != 0;
	gboolean available = (flags & KMX_DEVICE_FLAG_AVAILABLE) != 0;

	if (kmx_dbus_key_get_locked(ekey->iface) != locked)
		kmx_dbus_key_set_locked(ekey->iface, locked);
	if (kmx_dbus_key_get_available(ekey->iface) != available)
		kmx_dbus_key_set_available(ekey->iface, available);
}

static void
kmx_exported_key_notify_cb(KmxKey *key, GParamSpec *pspec, KmxExportedKey *ekey)
{
	g_autofree char *label = kmx_key_dup_label(key);
	kmx_dbus_key_set_label(ekey->iface, label);
}

static KmxExportedKey *
kmx_exported_key_new(KmxExportedDevice *edev, KmxKey *key)
{
	KmxExportedKey *ekey = g_new0(KmxExportedKey, 1);
	g_autofree char *label = kmx_key_dup_label(key);
	g_auto(GStrv) usage = kmx_key_usage_to_strv(kmx_key_get_usage(key));
	GBytes *spki = kmx_key_get_public_key(key);

	ekey->edev = edev;
	ekey->key = g_object_ref(key);
	ekey->path = g_strconcat(edev->path, "/", kmx_key_get_id(key), NULL);
	ekey->object = kmx_dbus_object_skeleton_new(ekey->path);
	ekey->iface = kmx_dbus_key_skeleton_new();
	kmx_dbus_key_set_id(ekey->iface, kmx_key_get_id(key));
	kmx_dbus_key_set_device(ekey->iface, edev->path);
	kmx_dbus_key_set_label(ekey->iface, label);
	kmx_dbus_key_set_algorithm(ekey->iface, kmx_key_type_to_string(kmx_key_get_key_type(key)));
	kmx_dbus_key_set_usage(ekey->iface, (const char *const *)usage);
	kmx_dbus_key_set_public_key(
	    ekey->iface,
	    g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE,
				      spki != NULL ? g_bytes_get_data(spki, NULL) : NULL,
				      spki != NULL ? g_bytes_get_size(spki) : 0,
				      1));
	kmx_dbus_key_set_exportable(ekey->iface, kmx_key_get_exportable(key));
	kmx_exported_key_sync_state(ekey);

	g_signal_connect(ekey->iface,
			 "handle-sign",
			 G_CALLBACK(kmx_exported_key_handle_sign),
			 ekey);
	g_signal_connect(ekey->iface,
			 "handle-decrypt",
			 G_CALLBACK(kmx_exported_key_handle_decrypt),
			 ekey);
	g_signal_connect(ekey->iface,
			 "handle-derive",
			 G_CALLBACK(kmx_exported_key_handle_derive),
			 ekey);
	g_signal_connect(ekey->iface,
			 "handle-set-label",
			 G_CALLBACK(kmx_exported_key_handle_set_label),
			 ekey);
	g_signal_connect(ekey->iface,
			 "handle-delete",
			 G_CALLBACK(kmx_exported_key_handle_delete),
			 ekey);
	ekey->notify_id =
	    g_signal_connect(key, "notify::label", G_CALLBACK(kmx_exported_key_notify_cb), ekey);

	kmx_dbus_object_skeleton_set_key(ekey->object, ekey->iface);
	g_dbus_object_manager_server_export(edev->server, G_DBUS_OBJECT_SKELETON(ekey->object));
	return ekey;
}

static void
kmx_exported_key_free(KmxExportedKey *ekey)
{
	g_signal_handler_disconnect(ekey->key, ekey->notify_id);
	g_signal_handlers_disconnect_by_data(ekey->iface, ekey);
	g_dbus_object_manager_server_unexport(ekey->edev->server, ekey->path);
	g_object_unref(ekey->iface);
	g_object_unref(ekey->object);
	g_object_unref(ekey->key);
	g_free(ekey->path);
	g_free(ekey);
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

static gboolean
kmx_exported_device_handle_unlock(KmxDBusDevice *iface,
				  GDBusMethodInvocation *invocation,
				  const char *secret,
				  GVariant *options,
				  KmxExportedDevice *edev)
{
	KmxRequest *req = kmx_request_new(edev->daemon,
					  invocation,
					  "unlock",
					  KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_AUDIT,
					  edev->device,
					  NULL);
	req->secret = kmx_secret_new_from_string(secret);
	if (kmx_secret_is_empty(req->secret)) {
		/* nothing to give: already open, or ask the prompter */
		if (!kmx_device_is_locked(edev->device)) {
			kmx_request_return_value(req, NULL);
			return G_DBUS_METHOD_INVOCATION_HANDLED;
		}
		req->prompted = TRUE;
		kmx_daemon_prompt_unlock(edev->daemon, req, kmx_unlock_prompted);
		return G_DBUS_METHOD_INVOCATION_HANDLED;
	}
	req->work = kmx_unlock_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
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

static gboolean
kmx_exported_device_handle_lock(KmxDBusDevice *iface,
				GDBusMethodInvocation *invocation,
				KmxExportedDevice *edev)
{
	KmxRequest *req = kmx_request_new(edev->daemon,
					  invocation,
					  "lock",
					  KMX_REQUEST_FLAG_NONE,
					  edev->device,
					  NULL);
	req->work = kmx_lock_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
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

static gboolean
kmx_exported_device_handle_register(KmxDBusDevice *iface,
				    GDBusMethodInvocation *invocation,
				    KmxExportedDevice *edev)
{
	KmxRequest *req = kmx_request_new(edev->daemon,
					  invocation,
					  "register",
					  KMX_REQUEST_FLAG_NEEDS_AVAILABLE,
					  edev->device,
					  NULL);
	req->work = kmx_register_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
kmx_exported_device_handle_unregister(KmxDBusDevice *iface,
				      GDBusMethodInvocation *invocation,
				      KmxExportedDevice *edev)
{
	KmxRequest *req = kmx_request_new(edev->daemon,
					  invocation,
					  "unregister",
					  KMX_REQUEST_FLAG_NONE,
					  edev->device,
					  NULL);
	req->work = kmx_register_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
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

static gboolean
kmx_exported_device_handle_change_secret(KmxDBusDevice *iface,
					 GDBusMethodInvocation *invocation,
					 const char *old_secret,
					 const char *new_secret,
					 KmxExportedDevice *edev)
{
	KmxRequest *req = kmx_request_new(edev->daemon,
					  invocation,
					  "change-secret",
					  KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_AUDIT,
					  edev->device,
					  NULL);
	req->secret = kmx_secret_new_from_string(old_secret);
	req->secret2 = kmx_secret_new_from_string(new_secret);
	req->work = kmx_change_secret_work;
	req->done = kmx_boolean_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
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


static gboolean
kmx_exported_device_handle_generate_key(KmxDBusDevice *iface,
					GDBusMethodInvocation *invocation,
					const char *algorithm,
					const char *label,
					GVariant *options,
					KmxExportedDevice *edev)
{
	KmxRequest *req =
	    kmx_request_new(edev->daemon,
			    invocation,
			    "generate",
			    KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_NEEDS_UNLOCKED |
				KMX_REQUEST_FLAG_AUDIT,
			    edev->device,
			    NULL);

	req->key_type = kmx_key_type_from_string(algorithm);
	if (req->key_type == KMX_KEY_TYPE_UNKNOWN) {
		kmx_request_return_new_error(
		    req,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "unknown key algorithm '%s'; use one of rsa2048, rsa3072, "
		    "rsa4096, ecdsa-p256, ecdsa-p384, ed25519, x25519",
		    algorithm);
		return G_DBUS_METHOD_INVOCATION_HANDLED;
	}
	if (!kmx_label_is_valid(req, label))
		return G_DBUS_METHOD_INVOCATION_HANDLED;
	req->label = g_strdup(label);
	req->options = g_variant_ref(options);
	req->work = kmx_generate_work;
	req->done = kmx_generate_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
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

static gboolean
kmx_exported_device_handle_import_key(KmxDBusDevice *iface,
				      GDBusMethodInvocation *invocation,
				      GVariant *data,
				      const char *passphrase,
				      const char *label,
				      GVariant *options,
				      KmxExportedDevice *edev)
{
	KmxRequest *req =
	    kmx_request_new(edev->daemon,
			    invocation,
			    "import",
			    KMX_REQUEST_FLAG_NEEDS_AVAILABLE | KMX_REQUEST_FLAG_NEEDS_UNLOCKED |
				KMX_REQUEST_FLAG_AUDIT,
			    edev->device,
			    NULL);
	gsize len = 0;
	const guint8 *bytes = g_variant_get_fixed_array(data, &len, 1);

	/* a private key is a secret: copy it into secret memory once */
	req->secret = kmx_secret_new_from_string(passphrase);
	if (len == 0) {
		kmx_request_return_new_error(req,
					     KMX_ERROR_INVALID_ARGUMENT,
					     "no key data given; pass the content of a key file");
		return G_DBUS_METHOD_INVOCATION_HANDLED;
	}
	if (!kmx_label_is_valid(req, label))
		return G_DBUS_METHOD_INVOCATION_HANDLED;
	{
		g_autoptr(KmxSecret) copy = kmx_secret_new_from_data(bytes, len);
		req->data = kmx_secret_to_bytes(copy);
	}
	req->label = g_strdup(label);
	req->options = g_variant_ref(options);
	req->work = kmx_import_work;
	req->done = kmx_import_done;
	kmx_request_start(req);
	return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- device export ------------------------------------------------------ */

static void
kmx_exported_device_sync_keys(KmxExportedDevice *edev)
{
	GPtrArray *keys = kmx_device_get_keys(edev->device);
	g_autoptr(GHashTable) present = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) paths = NULL;
	GHashTableIter iter;
	gpointer value;

	for (guint i = 0; i < keys->len; i++) {
		KmxKey *key = g_ptr_array_index(keys, i);
		const char *id = kmx_key_get_id(key);

		g_hash_table_add(present, (gpointer)id);
		if (!g_hash_table_contains(edev->keys, id))
			g_hash_table_insert(edev->keys,
					    g_strdup(id),
					    kmx_exported_key_new(edev, key));
	}
	g_hash_table_iter_init(&iter, edev->keys);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		KmxExportedKey *ekey = value;
		if (!g_hash_table_contains(present, kmx_key_get_id(ekey->key)))
			g_hash_table_iter_remove(&iter);
	}
	paths = kmx_exported_device_get_key_paths(edev);
	g_ptr_array_add(paths, NULL);
	kmx_dbus_device_set_keys(edev->iface, (const char *const *)paths->pdata);
}

static void
kmx_exported_device_sync_state(KmxExportedDevice *edev)
{
	KmxDeviceFlags flags = kmx_device_get_flags(edev->device);
	g_autofree char *label = kmx_device_dup_label(edev->device);
	g_autoptr(GVariant) details = kmx_device_dup_details(edev->device);
	GHashTableIter iter;
	gpointer value;

	/* one PropertiesChanged for everything that changed together */
	g_object_freeze_notify(G_OBJECT(edev->iface));
	kmx_dbus_device_set_label(edev->iface, label);
	kmx_dbus_device_set_locked(edev->iface, (flags & KMX_DEVICE_FLAG_LOCKED) != 0);
	kmx_dbus_device_set_registered(edev->iface, (flags & KMX_DEVICE_FLAG_REGISTERED) != 0);
	kmx_dbus_device_set_available(edev->iface, (flags & KMX_DEVICE_FLAG_AVAILABLE) != 0);
	kmx_dbus_device_set_pin_retries(edev->iface, kmx_device_get_pin_retries(edev->device));
	if (!g_variant_equal(kmx_dbus_device_get_details(edev->iface), details))
		kmx_dbus_device_set_details(edev->iface, details);
	g_object_thaw_notify(G_OBJECT(edev->iface));

	g_hash_table_iter_init(&iter, edev->keys);
	while (g_hash_table_iter_next(&iter, NULL, &value))
		kmx_exported_key_sync_state(value);
}

static void
kmx_exported_device_notify_cb(KmxDevice *device, GParamSpec *pspec, KmxExportedDevice *edev)
{
	kmx_exported_device_sync_state(edev);
}

static void
kmx_exported_device_keys_changed_cb(KmxDevice *device, KmxExportedDevice *edev)
{
	kmx_exported_device_sync_keys(edev);
}

KmxExportedDevice *
kmx_exported_device_new(KmxDaemon *daemon, KmxDevice *device, GDBusObjectManagerServer *server)
{
	KmxExportedDevice *edev = g_new0(KmxExportedDevice, 1);

	edev->daemon = daemon;
	edev->device = g_object_ref(device);
	edev->server = g_object_ref(server);
	edev->path = kmx_daemon_device_path(device);
	edev->keys = g_hash_table_new_full(g_str_hash,
					   g_str_equal,
					   g_free,
					   (GDestroyNotify)kmx_exported_key_free);
	edev->object = kmx_dbus_object_skeleton_new(edev->path);
	edev->iface = kmx_dbus_device_skeleton_new();
	kmx_dbus_device_set_id(edev->iface, kmx_device_get_id(device));
	kmx_dbus_device_set_backend(edev->iface, kmx_device_get_backend_name(device));
	kmx_dbus_device_set_details(edev->iface, g_variant_new("a{sv}", NULL));

	g_signal_connect(edev->iface,
			 "handle-unlock",
			 G_CALLBACK(kmx_exported_device_handle_unlock),
			 edev);
	g_signal_connect(edev->iface,
			 "handle-lock",
			 G_CALLBACK(kmx_exported_device_handle_lock),
			 edev);
	g_signal_connect(edev->iface,
			 "handle-register",
			 G_CALLBACK(kmx_exported_device_handle_register),
			 edev);
	g_signal_connect(edev->iface,
			 "handle-unregister",
			 G_CALLBACK(kmx_exported_device_handle_unregister),
			 edev);
	g_signal_connect(edev->iface,
			 "handle-change-secret",
			 G_CALLBACK(kmx_exported_device_handle_change_secret),
			 edev);
	g_signal_connect(edev->iface,
			 "handle-generate-key",
			 G_CALLBACK(kmx_exported_device_handle_generate_key),
			 edev);
	g_signal_connect(edev->iface,
			 "handle-import-key",
			 G_CALLBACK(kmx_exported_device_handle_import_key),
			 edev);

	kmx_dbus_object_skeleton_set_device(edev->object, edev->iface);
	g_dbus_object_manager_server_export(server, G_DBUS_OBJECT_SKELETON(edev->object));
	kmx_exported_device_sync_keys(edev);
	kmx_exported_device_sync_state(edev);
	edev->notify_id =
	    g_signal_connect(device, "notify", G_CALLBACK(kmx_exported_device_notify_cb), edev);
	edev->keys_changed_id = g_signal_connect(device,
						 "keys-changed",
						 G_CALLBACK(kmx_exported_device_keys_changed_cb),
						 edev);
	return edev;
}

void
kmx_exported_device_free(KmxExportedDevice *edev)
{
	g_signal_handler_disconnect(edev->device, edev->notify_id);
	g_signal_handler_disconnect(edev->device, edev->keys_changed_id);
	g_hash_table_remove_all(edev->keys);
	g_hash_table_unref(edev->keys);
	g_signal_handlers_disconnect_by_data(edev->iface, edev);
	g_dbus_object_manager_server_unexport(edev->server, edev->path);
	g_object_unref(edev->iface);
	g_object_unref(edev->object);
	g_object_unref(edev->server);
	g_object_unref(edev->device);
	g_free(edev->path);
	g_free(edev);
}

const char *
kmx_exported_device_get_path(KmxExportedDevice *edev)
{
	return edev->path;
}

static gint
kmx_compare_paths(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/**
 * kmx_exported_device_get_key_paths:
 *
 * Returns: (transfer full): the key object paths, sorted
 */
GPtrArray *
kmx_exported_device_get_key_paths(KmxExportedDevice *edev)
{
	GPtrArray *paths = g_ptr_array_new_full(g_hash_table_size(edev->keys) + 1, NULL);
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init(&iter, edev->keys);
	while (g_hash_table_iter_next(&iter, NULL, &value))
		g_ptr_array_add(paths, ((KmxExportedKey *)value)->path);
	g_ptr_array_sort(paths, kmx_compare_paths);
	return paths;
}
