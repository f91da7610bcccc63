/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the methods of the Device and Key interfaces, and the manager's
 * Sign and Decrypt by key id
 *
 * Unmarshalling only: each method's arguments become a KmxRequest of the
 * manager's pipeline (kmx-request.c), which checks them, authorises,
 * prompts, runs and replies; the reply is marshalled back here.  Secrets a
 * caller sent are copied into secret memory once and wiped in the message.
 */
#include "config.h"

#include <string.h>

#include "kmx-dbus-private.h"
#include "kmx-error.h"
#include "kmx-names.h"

/* an ImportKey argument larger than this is refused before it is copied */
#define KMX_IMPORT_MAX_BYTES (1024 * 1024)

typedef gboolean (*KmxDBusUnmarshal)(KmxRequest *req, GVariant *parameters, GError **error);

/* ---- replies ------------------------------------------------------------------ */

static void
kmx_dbus_reply(KmxRequest *req,
	       const KmxRequestResult *result,
	       const GError *error,
	       gpointer user_data)
{
	GDBusMethodInvocation *invocation = user_data;
	GVariantBuilder b;

	if (error != NULL) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return;
	}
	switch (kmx_request_get_kind(req)) {
	case KMX_REQUEST_SIGN:
	case KMX_REQUEST_DECRYPT:
	case KMX_REQUEST_DERIVE:
		/* the reply's body is the result itself, no copy: a plaintext or
		 * a shared secret stays in secret memory, wiped when GDBus drops
		 * the reply after sending it; the one copy GDBus makes, the
		 * serialised message, is wiped when freed (kmx-heap-wipe.c);
		 * the tuple is built directly: g_variant_new()'s format parsing
		 * was 5 k instructions of every signature */
		{
			GVariant *body = g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING,
								  result->bytes,
								  TRUE);
			g_dbus_method_invocation_return_value(invocation,
							      g_variant_new_tuple(&body, 1));
		}
		return;
	case KMX_REQUEST_GENERATE_KEY: {
		g_autofree char *path = kmx_dbus_key_path(g_ptr_array_index(result->keys, 0));
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(o)", path));
		return;
	}
	case KMX_REQUEST_IMPORT_KEY:
		g_variant_builder_init(&b, G_VARIANT_TYPE("ao"));
		for (guint i = 0; i < result->keys->len; i++) {
			g_autofree char *path =
			    kmx_dbus_key_path(g_ptr_array_index(result->keys, i));
			g_variant_builder_add(&b, "o", path);
		}
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(ao)", &b));
		return;
	case KMX_REQUEST_UNLOCK:
	case KMX_REQUEST_LOCK:
	case KMX_REQUEST_REGISTER:
	case KMX_REQUEST_UNREGISTER:
	case KMX_REQUEST_CHANGE_SECRET:
	case KMX_REQUEST_SET_LABEL:
	case KMX_REQUEST_DELETE_KEY:
	case KMX_REQUEST_N_KINDS:
	default:
		g_dbus_method_invocation_return_value(invocation, NULL);
		return;
	}
}

/* ---- arguments ------------------------------------------------------------------ */

/* a caller's secret: copied into secret memory, wiped in the message */
static KmxSecret *
kmx_dbus_take_secret(GVariant *string)
{
	gsize len = 0;
	const char *s = g_variant_get_string(string, &len);
	KmxSecret *secret = kmx_secret_new_from_data(s, len);

	kmx_secure_zero((char *)s, len);
	return secret;
}

static gboolean
kmx_dbus_parse_options(KmxRequest *req, GVariant *options, const char *method, GError **error)
{
	return kmx_options_parse(kmx_request_get_options(req),
				 options,
				 kmx_request_kind_get_options(kmx_request_get_kind(req)),
				 method,
				 error);
}

/* (s algorithm, ay data, a{sv} options) */
static gboolean
kmx_dbus_unmarshal_op(KmxRequest *req, GVariant *parameters, GError **error)
{
	KmxRequestArgs *args = kmx_request_get_args(req);
	KmxRequestKind kind = kmx_request_get_kind(req);
	KmxOperation op = kind == KMX_REQUEST_SIGN	? KMX_OPERATION_SIGN
			  : kind == KMX_REQUEST_DECRYPT ? KMX_OPERATION_DECRYPT
							: KMX_OPERATION_DERIVE;
	/* GDBus checked the signature; the children one by one cost a
	 * fraction of g_variant_get()'s format parsing, on every call */
	g_autoptr(GVariant) name = g_variant_get_child_value(parameters, 0);
	g_autoptr(GVariant) data = g_variant_get_child_value(parameters, 1);
	g_autoptr(GVariant) options = g_variant_get_child_value(parameters, 2);
	const char *algorithm = g_variant_get_string(name, NULL);
	const guint8 *bytes;
	gsize len = 0;

	/* the data stays in the D-Bus message: reference it, do not copy */
	bytes = g_variant_get_fixed_array(data, &len, 1);
	args->op.data = g_bytes_new_with_free_func(bytes,
						   len,
						   (GDestroyNotify)g_variant_unref,
						   g_variant_ref(data));
	args->op.mechanism = kmx_mechanism_from_string(op, algorithm);
	if (args->op.mechanism == KMX_MECHANISM_UNKNOWN) {
		g_autofree char *shown = g_strescape(algorithm, NULL);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "unknown %s algorithm '%.64s'; see the Key interface's "
			    "documentation for the names",
			    kmx_operation_to_string(op),
			    shown);
		return FALSE;
	}
	return kmx_dbus_parse_options(req, options, kmx_operation_to_string(op), error);
}

/* (s secret, a{sv} options) */
static gboolean
kmx_dbus_unmarshal_unlock(KmxRequest *req, GVariant *parameters, GError **error)
{
	g_autoptr(GVariant) secret = g_variant_get_child_value(parameters, 0);
	g_autoptr(GVariant) options = g_variant_get_child_value(parameters, 1);

	kmx_request_get_args(req)->unlock.secret = kmx_dbus_take_secret(secret);
	return kmx_dbus_parse_options(req, options, "Unlock", error);
}

/* (s old, s new) */
static gboolean
kmx_dbus_unmarshal_change_secret(KmxRequest *req, GVariant *parameters, GError **error)
{
	g_autoptr(GVariant) old_secret = g_variant_get_child_value(parameters, 0);
	g_autoptr(GVariant) new_secret = g_variant_get_child_value(parameters, 1);
	KmxRequestArgs *args = kmx_request_get_args(req);

	args->change_secret.old_secret = kmx_dbus_take_secret(old_secret);
	args->change_secret.new_secret = kmx_dbus_take_secret(new_secret);
	return TRUE;
}

/* (s algorithm, s label, a{sv} options) */
static gboolean
kmx_dbus_unmarshal_generate(KmxRequest *req, GVariant *parameters, GError **error)
{
	KmxRequestArgs *args = kmx_request_get_args(req);
	g_autoptr(GVariant) options = NULL;
	const char *algorithm = NULL, *label = NULL;

	g_variant_get(parameters, "(&s&s@a{sv})", &algorithm, &label, &options);
	args->generate.type = kmx_key_type_from_string(algorithm);
	args->generate.label = g_strdup(label);
	if (args->generate.type == KMX_KEY_TYPE_UNKNOWN) {
		g_autofree char *shown = g_strescape(algorithm, NULL);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "unknown key algorithm '%.64s'; use one of rsa2048, rsa3072, rsa4096, "
			    "ecdsa-p256, ecdsa-p384, ed25519, x25519",
			    shown);
		return FALSE;
	}
	return kmx_dbus_parse_options(req, options, "GenerateKey", error);
}

/* (ay data, s passphrase, s label, a{sv} options) */
static gboolean
kmx_dbus_unmarshal_import(KmxRequest *req, GVariant *parameters, GError **error)
{
	KmxRequestArgs *args = kmx_request_get_args(req);
	g_autoptr(GVariant) data = g_variant_get_child_value(parameters, 0);
	g_autoptr(GVariant) passphrase = g_variant_get_child_value(parameters, 1);
	g_autoptr(GVariant) label = g_variant_get_child_value(parameters, 2);
	g_autoptr(GVariant) options = g_variant_get_child_value(parameters, 3);
	gsize len = 0;
	const guint8 *bytes = g_variant_get_fixed_array(data, &len, 1);

	args->import.passphrase = kmx_dbus_take_secret(passphrase);
	args->import.label = g_variant_dup_string(label, NULL);
	if (len > KMX_IMPORT_MAX_BYTES) {
		kmx_secure_zero((guint8 *)bytes, len);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "a key file is at most %u bytes; this one has %" G_GSIZE_FORMAT,
			    KMX_IMPORT_MAX_BYTES,
			    len);
		return FALSE;
	}
	/* a private key is a secret: into secret memory once, wiped here */
	if (len > 0) {
		g_autoptr(KmxSecret) copy = kmx_secret_new_from_data(bytes, len);
		args->import.data = kmx_secret_to_bytes(copy);
		kmx_secure_zero((guint8 *)bytes, len);
	}
	return kmx_dbus_parse_options(req, options, "ImportKey", error);
}

/* (s label) */
static gboolean
kmx_dbus_unmarshal_set_label(KmxRequest *req, GVariant *parameters, GError **error)
{
	g_variant_get(parameters, "(s)", &kmx_request_get_args(req)->set_label.label);
	return TRUE;
}

/* ---- dispatch -------------------------------------------------------------------- */

typedef struct {
	const char *method;
	KmxRequestKind kind;
	KmxDBusUnmarshal unmarshal;
	gboolean secret_in; /* its arguments carry a secret */
} KmxDBusMethod;

static const KmxDBusMethod kmx_dbus_key_methods[] = {
    {"Sign", KMX_REQUEST_SIGN, kmx_dbus_unmarshal_op, FALSE},
    {"Decrypt", KMX_REQUEST_DECRYPT, kmx_dbus_unmarshal_op, FALSE},
    {"Derive", KMX_REQUEST_DERIVE, kmx_dbus_unmarshal_op, FALSE},
    {"SetLabel", KMX_REQUEST_SET_LABEL, kmx_dbus_unmarshal_set_label, FALSE},
    {"Delete", KMX_REQUEST_DELETE_KEY, NULL, FALSE},
};

static const KmxDBusMethod kmx_dbus_device_methods[] = {
    {"Unlock", KMX_REQUEST_UNLOCK, kmx_dbus_unmarshal_unlock, TRUE},
    {"Lock", KMX_REQUEST_LOCK, NULL, FALSE},
    {"Register", KMX_REQUEST_REGISTER, NULL, FALSE},
    {"Unregister", KMX_REQUEST_UNREGISTER, NULL, FALSE},
    {"ChangeSecret", KMX_REQUEST_CHANGE_SECRET, kmx_dbus_unmarshal_change_secret, TRUE},
    {"GenerateKey", KMX_REQUEST_GENERATE_KEY, kmx_dbus_unmarshal_generate, FALSE},
    {"ImportKey", KMX_REQUEST_IMPORT_KEY, kmx_dbus_unmarshal_import, TRUE},
};

static void
kmx_dbus_start(KmxDBusService *service,
	       const KmxDBusMethod *m,
	       KmxDevice *device,
	       KmxKey *key,
	       GVariant *parameters,
	       GDBusMethodInvocation *invocation)
{
	KmxCaller *caller =
	    kmx_dbus_service_get_caller(service,
					g_dbus_method_invocation_get_connection(invocation),
					g_dbus_method_invocation_get_sender(invocation));
	KmxRequest *req =
	    kmx_request_new(kmx_dbus_service_get_manager(service), caller, m->kind, device, key);
	GError *error = NULL;

	if (m->unmarshal != NULL && !m->unmarshal(req, parameters, &error))
		kmx_request_refuse(req, error);
	kmx_request_start(req, kmx_dbus_reply, invocation, NULL);
}

static const KmxDBusMethod *
kmx_dbus_lookup(const KmxDBusMethod *methods, gsize n, const char *method)
{
	for (gsize i = 0; i < n; i++) {
		if (g_str_equal(methods[i].method, method))
			return &methods[i];
	}
	return NULL;
}

/* an admin secret in the trailing options of any call */
static gboolean
kmx_dbus_options_carry_secret(GVariant *parameters)
{
	gsize n = g_variant_n_children(parameters);
	g_autoptr(GVariant) options = NULL;
	g_autoptr(GVariant) admin = NULL;

	if (n == 0)
		return FALSE;
	options = g_variant_get_child_value(parameters, n - 1);
	if (!g_variant_is_of_type(options, G_VARIANT_TYPE_VARDICT))
		return FALSE;
	admin = g_variant_lookup_value(options, "admin-secret", NULL);
	return admin != NULL;
}

/**
 * kmx_dbus_scrub_arrived:
 * @connection: the connection of @invocation
 * @invocation: a method call, as it arrives
 *
 * A call that carries a secret (Unlock, ChangeSecret, ImportKey, an admin
 * secret in the options of any call) has it wiped in GDBus's read buffer
 * at once, whatever becomes of the call: the unmarshalling wipes the copy
 * GDBus parsed, or it is wiped as it is freed when the call is refused
 * before (kmx-heap-wipe.c).
 */
void
kmx_dbus_scrub_arrived(GDBusConnection *connection, GDBusMethodInvocation *invocation)
{
	const char *iface = g_dbus_method_invocation_get_interface_name(invocation);
	const char *method = g_dbus_method_invocation_get_method_name(invocation);
	GVariant *parameters = g_dbus_method_invocation_get_parameters(invocation);
	const KmxDBusMethod *m = NULL;

	if (g_strcmp0(iface, KMX_DBUS_DEVICE_INTERFACE) == 0)
		m = kmx_dbus_lookup(kmx_dbus_device_methods,
				    G_N_ELEMENTS(kmx_dbus_device_methods),
				    method);
	if ((m != NULL && m->secret_in) || kmx_dbus_options_carry_secret(parameters))
		kmx_dbus_scrub_received(
		    connection,
		    kmx_dbus_received_size(connection,
					   g_dbus_method_invocation_get_message(invocation)));
}

/**
 * kmx_dbus_call_key:
 *
 * Runs a method of the Key interface on @key; GDBus has checked the
 * argument types against the introspection data.
 */
void
kmx_dbus_call_key(KmxDBusService *service,
		  KmxKey *key,
		  const char *method,
		  GVariant *parameters,
		  GDBusMethodInvocation *invocation)
{
	const KmxDBusMethod *m =
	    kmx_dbus_lookup(kmx_dbus_key_methods, G_N_ELEMENTS(kmx_dbus_key_methods), method);

	if (m == NULL) {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_UNKNOWN_METHOD,
						      "no method %s on a key",
						      method);
		return;
	}
	kmx_dbus_start(service, m, kmx_key_get_device(key), key, parameters, invocation);
}

/**
 * kmx_dbus_call_device:
 *
 * Runs a method of the Device interface on @device.
 */
void
kmx_dbus_call_device(KmxDBusService *service,
		     KmxDevice *device,
		     const char *method,
		     GVariant *parameters,
		     GDBusMethodInvocation *invocation)
{
	const KmxDBusMethod *m =
	    kmx_dbus_lookup(kmx_dbus_device_methods, G_N_ELEMENTS(kmx_dbus_device_methods), method);

	if (m == NULL) {
		g_dbus_method_invocation_return_error(invocation,
						      G_DBUS_ERROR,
						      G_DBUS_ERROR_UNKNOWN_METHOD,
						      "no method %s on a device",
						      method);
		return;
	}
	kmx_dbus_start(service, m, device, NULL, parameters, invocation);
}

/**
 * kmx_dbus_call_key_by_id:
 * @parameters: (s id, s algorithm, ay data, a{sv} options)
 *
 * Manager.Sign and Manager.Decrypt: the same as the key's method, on the
 * best holder of the key id.
 */
void
kmx_dbus_call_key_by_id(KmxDBusService *service,
			KmxRequestKind kind,
			GVariant *parameters,
			GDBusMethodInvocation *invocation)
{
	const KmxDBusMethod *m = kmx_dbus_lookup(kmx_dbus_key_methods,
						 G_N_ELEMENTS(kmx_dbus_key_methods),
						 kind == KMX_REQUEST_SIGN ? "Sign" : "Decrypt");
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) id = g_variant_get_child_value(parameters, 0);
	g_autoptr(GVariant) rest = NULL;
	KmxKey *key;

	key = kmx_manager_pick_key(kmx_dbus_service_get_manager(service),
				   g_variant_get_string(id, NULL),
				   &error);
	if (key == NULL) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return;
	}
	{
		g_autoptr(GVariant) a = g_variant_get_child_value(parameters, 1);
		g_autoptr(GVariant) d = g_variant_get_child_value(parameters, 2);
		g_autoptr(GVariant) o = g_variant_get_child_value(parameters, 3);
		GVariant *children[] = {a, d, o};
		rest = g_variant_ref_sink(g_variant_new_tuple(children, 3));
	}
	kmx_dbus_start(service, m, kmx_key_get_device(key), key, rest, invocation);
}
