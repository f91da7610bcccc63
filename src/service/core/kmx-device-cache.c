/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the registration cache of devices that come and go
 *
 * A registered device (a card in a drawer) stays listed while it is absent:
 * the core keeps its description and its keys' public facts in
 * <backend state dir>/registered/<escaped device id>.device, a GKeyFile:
 *
 *   [device]
 *   id=card:000512345678
 *   label=OpenPGP card 000512345678
 *   locked=true            # the device has a secret: listed as locked
 *
 *   [key <key id>]         # one group per key
 *   label=…
 *   algorithm=ecdsa-p256   # DESIGN §4 key algorithm names
 *   usage=sign;derive
 *   public-key=<base64 DER SubjectPublicKeyInfo>
 *   exportable=false
 *   locator=…              # opaque, for the backend (optional)
 *
 * At start-up each file becomes a plain KmxDevice with plain KmxKeys,
 * registered but not available; the backend's own object replaces it when
 * the device shows up.  Files are written atomically and durably, and read
 * as hostile input: a key whose id is not the hash of its public key, or
 * anything else malformed, is skipped with a warning.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "kmx-device-cache.h"
#include "kmx-error.h"
#include "kmx-file.h"
#include "kmx-key.h"

#define KMX_CACHE_SUBDIR    "registered"
#define KMX_CACHE_SUFFIX    ".device"
#define KMX_CACHE_MAX_BYTES (4 * 1024 * 1024)
#define KMX_CACHE_MAX_KEYS  4096

static char *
kmx_device_cache_path(const char *dir, const char *device_id)
{
	g_autofree char *escaped = g_uri_escape_string(device_id, NULL, FALSE);
	g_autofree char *name = g_strconcat(escaped, KMX_CACHE_SUFFIX, NULL);
	return g_build_filename(dir, KMX_CACHE_SUBDIR, name, NULL);
}

/**
 * kmx_device_cache_save:
 * @dir: the backend's state dir
 *
 * Writes @device's description and its keys' public facts; main thread.
 */
gboolean
kmx_device_cache_save(const char *dir, KmxDevice *device, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *path = NULL;
	g_autofree char *subdir = NULL;
	g_autofree char *label = NULL;
	g_autofree char *data = NULL;
	GPtrArray *keys;
	gsize len = 0;

	g_return_val_if_fail(dir != NULL, FALSE);
	g_return_val_if_fail(KMX_IS_DEVICE(device), FALSE);

	label = kmx_device_dup_label(device);
	g_key_file_set_string(kf, "device", "id", kmx_device_get_id(device));
	g_key_file_set_string(kf, "device", "label", label);
	g_key_file_set_boolean(kf,
			       "device",
			       "locked",
			       kmx_device_has_secret(device) || kmx_device_is_locked(device));
	keys = kmx_device_get_keys(device);
	for (guint i = 0; i < keys->len; i++) {
		KmxKey *key = g_ptr_array_index(keys, i);
		g_autofree char *group = g_strconcat("key ", kmx_key_get_id(key), NULL);
		g_autofree char *key_label = kmx_key_dup_label(key);
		g_auto(GStrv) usage = kmx_key_usage_to_strv(kmx_key_get_usage(key));
		gsize spki_len;
		const guint8 *spki = kmx_key_get_public_key_data(key, &spki_len);
		g_autofree char *b64 = g_base64_encode(spki, spki_len);

		g_key_file_set_string(kf, group, "label", key_label);
		g_key_file_set_string(kf,
				      group,
				      "algorithm",
				      kmx_key_type_to_string(kmx_key_get_key_type(key)));
		g_key_file_set_string_list(kf,
					   group,
					   "usage",
					   (const char *const *)usage,
					   g_strv_length(usage));
		g_key_file_set_string(kf, group, "public-key", b64);
		g_key_file_set_boolean(kf, group, "exportable", kmx_key_get_exportable(key));
		if (kmx_key_get_locator(key) != NULL)
			g_key_file_set_string(kf, group, "locator", kmx_key_get_locator(key));
	}
	data = g_key_file_to_data(kf, &len, NULL);
	subdir = g_build_filename(dir, KMX_CACHE_SUBDIR, NULL);
	if (g_mkdir_with_parents(subdir, 0700) != 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot create %s: %s",
			    subdir,
			    g_strerror(errno));
		return FALSE;
	}
	path = kmx_device_cache_path(dir, kmx_device_get_id(device));
	return kmx_file_write_atomic(path, data, len, 0600, error);
}

/**
 * kmx_device_cache_remove:
 *
 * Forgets a registered device; a device that was not registered is fine.
 */
gboolean
kmx_device_cache_remove(const char *dir, const char *device_id, GError **error)
{
	g_autofree char *path = NULL;

	g_return_val_if_fail(dir != NULL, FALSE);
	g_return_val_if_fail(device_id != NULL, FALSE);
	path = kmx_device_cache_path(dir, device_id);
	return kmx_file_remove_durable(path, error);
}

static KmxKey *
kmx_device_cache_parse_key(KmxDevice *device, GKeyFile *kf, const char *group, GError **error)
{
	const char *id = group + strlen("key ");
	g_autofree char *label = g_key_file_get_string(kf, group, "label", NULL);
	g_autofree char *algorithm = g_key_file_get_string(kf, group, "algorithm", NULL);
	g_autofree char *b64 = g_key_file_get_string(kf, group, "public-key", NULL);
	g_autofree char *locator = g_key_file_get_string(kf, group, "locator", NULL);
	g_auto(GStrv) usage_strv = g_key_file_get_string_list(kf, group, "usage", NULL, NULL);
	g_autoptr(GBytes) spki = NULL;
	g_autofree char *computed = NULL;
	g_autofree guint8 *der = NULL;
	KmxKeyType type;
	KmxKeyUsage usage;
	gsize der_len = 0;

	type = algorithm != NULL ? kmx_key_type_from_string(algorithm) : KMX_KEY_TYPE_UNKNOWN;
	if (type == KMX_KEY_TYPE_UNKNOWN) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "no known algorithm");
		return NULL;
	}
	if (b64 == NULL || strlen(b64) > 8192) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "no public key");
		return NULL;
	}
	der = g_base64_decode(b64, &der_len);
	spki = g_bytes_new(der, der_len);
	computed = kmx_key_compute_id(spki);
	if (strcmp(computed, id) != 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "its public key does not match its id");
		return NULL;
	}
	usage = usage_strv != NULL ? kmx_key_usage_from_strv((const char *const *)usage_strv) : 0;
	usage &= kmx_key_type_get_usage(type);
	if (usage == KMX_KEY_USAGE_NONE)
		usage = kmx_key_type_get_usage(type);
	if (label != NULL && (!g_utf8_validate(label, -1, NULL) || strlen(label) > 1024))
		g_clear_pointer(&label, g_free);
	return g_object_new(KMX_TYPE_KEY,
			    "id",
			    id,
			    "device",
			    device,
			    "label",
			    label,
			    "key-type",
			    (guint)type,
			    "usage",
			    (guint)usage,
			    "public-key",
			    spki,
			    "exportable",
			    g_key_file_get_boolean(kf, group, "exportable", NULL),
			    "locator",
			    locator,
			    NULL);
}

/**
 * kmx_device_cache_parse:
 * @backend_name: the backend the file belongs to
 * @data: the file's content (hostile)
 *
 * Returns: (transfer full): a registered, unavailable device with its keys
 */
KmxDevice *
kmx_device_cache_parse(const char *backend_name, const char *data, gsize len, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(KmxDevice) device = NULL;
	g_autofree char *id = NULL;
	g_autofree char *label = NULL;
	g_autofree char *prefix = g_strconcat(backend_name, ":", NULL);
	g_auto(GStrv) groups = NULL;
	gboolean locked;

	if (len > KMX_CACHE_MAX_BYTES) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_INVALID_ARGUMENT, "the file is too large");
		return NULL;
	}
	if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, error))
		return NULL;
	id = g_key_file_get_string(kf, "device", "id", error);
	if (id == NULL)
		return NULL;
	if (!g_str_has_prefix(id, prefix) || strlen(id) > 256 || !g_utf8_validate(id, -1, NULL)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "device id '%.64s' is not one of backend %s",
			    id,
			    backend_name);
		return NULL;
	}
	label = g_key_file_get_string(kf, "device", "label", NULL);
	if (label != NULL && (!g_utf8_validate(label, -1, NULL) || strlen(label) > 1024))
		g_clear_pointer(&label, g_free);
	locked = g_key_file_get_boolean(kf, "device", "locked", NULL);
	device =
	    g_object_new(KMX_TYPE_DEVICE, "id", id, "backend", backend_name, "label", label, NULL);
	kmx_device_set_flags(device,
			     KMX_DEVICE_FLAG_REGISTERED | (locked ? KMX_DEVICE_FLAG_LOCKED : 0));
	kmx_device_flush_state(device);
	groups = g_key_file_get_groups(kf, NULL);
	for (guint i = 0, n = 0; groups[i] != NULL && n < KMX_CACHE_MAX_KEYS; i++) {
		g_autoptr(GError) error_local = NULL;
		g_autoptr(KmxKey) key = NULL;

		if (!g_str_has_prefix(groups[i], "key "))
			continue;
		key = kmx_device_cache_parse_key(device, kf, groups[i], &error_local);
		if (key == NULL) {
			g_warning("registered device %s: ignoring key %.80s: %s",
				  id,
				  groups[i] + 4,
				  error_local->message);
			continue;
		}
		kmx_device_add_key(device, key);
		n++;
	}
	return g_steal_pointer(&device);
}

/**
 * kmx_device_cache_load:
 * @dir: the backend's state dir
 *
 * Returns: (transfer full) (element-type KmxDevice): the registered devices
 */
GPtrArray *
kmx_device_cache_load(const char *dir, const char *backend_name)
{
	g_autofree char *subdir = g_build_filename(dir, KMX_CACHE_SUBDIR, NULL);
	GPtrArray *devices = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(GDir) gdir = g_dir_open(subdir, 0, NULL);
	const char *name;

	if (gdir == NULL)
		return devices;
	while ((name = g_dir_read_name(gdir)) != NULL) {
		g_autofree char *path = g_build_filename(subdir, name, NULL);
		g_autofree char *data = NULL;
		g_autoptr(GError) error = NULL;
		KmxDevice *device;
		gsize len = 0;

		if (!g_str_has_suffix(name, KMX_CACHE_SUFFIX))
			continue;
		if (!g_file_get_contents(path, &data, &len, &error)) {
			g_warning("cannot read %s: %s", path, error->message);
			continue;
		}
		device = kmx_device_cache_parse(backend_name, data, len, &error);
		if (device == NULL) {
			g_warning("ignoring the registered device in %s: %s", path, error->message);
			continue;
		}
		g_ptr_array_add(devices, device);
	}
	return devices;
}
