/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the test backend: hardware-like devices driven by a directory
 *
 * See README.md.  The watcher thread stands in for a PC/SC status loop:
 * it never touches the model, it only reports devices coming and going.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "kmx-crypto.h"
#include "kmx-error.h"
#include "kmx-key.h"
#include "kmx-test-backend.h"

/* ---- the key ---------------------------------------------------------------- */

#define KMX_TYPE_TEST_KEY (kmx_test_key_get_type())
G_DECLARE_FINAL_TYPE(KmxTestKey, kmx_test_key, KMX, TEST_KEY, KmxKey)

#define KMX_TYPE_TEST_DEVICE (kmx_test_device_get_type())
G_DECLARE_FINAL_TYPE(KmxTestDevice, kmx_test_device, KMX, TEST_DEVICE, KmxDevice)

struct _KmxTestKey {
	KmxKey parent_instance;
	char *path; /* the PKCS#8 PEM of the fixture's "card" */
};

G_DEFINE_TYPE(KmxTestKey, kmx_test_key, KMX_TYPE_KEY)

struct _KmxTestDevice {
	KmxDevice parent_instance;
	char *serial;
	char *dir; /* the backend's state dir */
	char *pin;
	char *admin_pin;
	int retries; /* executor */
	int admin_retries;
	guint delay_ms;
	gint present; /* atomic: FALSE once pulled out */
};

G_DEFINE_TYPE(KmxTestDevice, kmx_test_device, KMX_TYPE_DEVICE)

/* every vfunc runs on its device's executor: anything else is a bug of
 * the core, fatal in the tests */
static void
kmx_test_check_thread(KmxDevice *device, const char *what)
{
	if (!kmx_executor_is_current(kmx_device_get_executor(device)))
		g_critical("%s of %s ran off the device's executor",
			   what,
			   kmx_device_get_id(device));
}

static void
kmx_test_log(KmxTestDevice *self, const char *what, gboolean ok)
{
	g_autofree char *path = g_build_filename(self->dir, "log", NULL);
	g_autofree char *line =
	    g_strdup_printf("%s %s %s\n", what, self->serial, ok ? "ok" : "bad");
	FILE *f = fopen(path, "a");

	if (f != NULL) {
		fputs(line, f);
		fclose(f);
	}
}

static gboolean
kmx_test_device_check_present(KmxTestDevice *self, GError **error)
{
	if (g_atomic_int_get(&self->present))
		return TRUE;
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_UNAVAILABLE,
		    "device %s was removed",
		    kmx_device_get_id(KMX_DEVICE(self)));
	return FALSE;
}

static gboolean
kmx_test_gnutls_error(GError **error, int rc, const char *what)
{
	g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "%s: %s", what, gnutls_strerror(rc));
	return FALSE;
}

static gnutls_privkey_t
kmx_test_key_load(const char *path, GError **error)
{
	g_autofree char *pem = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_datum_t d;
	gsize len = 0;
	int rc;

	if (!g_file_get_contents(path, &pem, &len, error))
		return NULL;
	d.data = (unsigned char *)pem;
	d.size = (unsigned int)len;
	gnutls_privkey_init(&key);
	rc = gnutls_privkey_import_x509_raw(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	memset(pem, 0, len);
	if (rc < 0) {
		gnutls_privkey_deinit(key);
		kmx_test_gnutls_error(error, rc, "cannot load the test key");
		return NULL;
	}
	return key;
}

static GBytes *
kmx_test_key_sign(KmxKey *key,
		  KmxMechanism mechanism,
		  GBytes *data,
		  KmxSecret *secret,
		  GCancellable *cancellable,
		  GError **error)
{
	KmxTestKey *self = KMX_TEST_KEY(key);
	KmxTestDevice *device = KMX_TEST_DEVICE(kmx_key_get_device(key));
	gnutls_privkey_t pk = NULL;
	gnutls_datum_t in = {(unsigned char *)g_bytes_get_data(data, NULL),
			     (unsigned int)g_bytes_get_size(data)};
	gnutls_datum_t sig = {NULL, 0};
	g_autoptr(GBytes) fitted = NULL;
	GBytes *out;
	int rc;

	kmx_test_check_thread(KMX_DEVICE(device), "sign");
	/* a test waits for this line to know a signature is under way */
	kmx_test_log(device, "sign", TRUE);
	/* a slow card: the caller may pull it out meanwhile */
	for (guint waited = 0; waited < device->delay_ms; waited += 10) {
		if (!kmx_test_device_check_present(device, error))
			return NULL;
		g_usleep(10000);
	}
	if (!kmx_test_device_check_present(device, error))
		return NULL;
	/* like an OpenPGP card, the PIN goes with every signature */
	if (secret == NULL || g_strcmp0(kmx_secret_get_string(secret), device->pin) != 0) {
		g_set_error(error,
			    KMX_ERROR,
			    secret == NULL ? KMX_ERROR_LOCKED : KMX_ERROR_BAD_SECRET,
			    "the device wants its PIN");
		return NULL;
	}
	/* an ecdsa digest of any length, as a card takes it */
	if (mechanism == KMX_MECHANISM_ECDSA_RAW) {
		fitted = kmx_ecdsa_digest_fit(kmx_key_get_key_type(key), data, error);
		if (fitted == NULL)
			return NULL;
		in.data = (unsigned char *)g_bytes_get_data(fitted, NULL);
		in.size = (unsigned int)g_bytes_get_size(fitted);
	}
	pk = kmx_test_key_load(self->path, error);
	if (pk == NULL)
		return NULL;
	if (mechanism == KMX_MECHANISM_ED25519)
		rc = gnutls_privkey_sign_data2(pk, GNUTLS_SIGN_EDDSA_ED25519, 0, &in, &sig);
	else
		rc = gnutls_privkey_sign_hash2(pk, GNUTLS_SIGN_ECDSA_SHA256, 0, &in, &sig);
	gnutls_privkey_deinit(pk);
	if (rc < 0) {
		kmx_test_gnutls_error(error, rc, "cannot sign");
		return NULL;
	}
	out = g_bytes_new(sig.data, sig.size);
	gnutls_free(sig.data);
	return out;
}

static void
kmx_test_key_finalize(GObject *object)
{
	g_free(KMX_TEST_KEY(object)->path);
	G_OBJECT_CLASS(kmx_test_key_parent_class)->finalize(object);
}

static void
kmx_test_key_class_init(KmxTestKeyClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = kmx_test_key_finalize;
	KMX_KEY_CLASS(klass)->sign = kmx_test_key_sign;
}

static void
kmx_test_key_init(KmxTestKey *self)
{
}

static KmxKey *
kmx_test_key_new(KmxTestDevice *device, const char *path, GError **error)
{
	gnutls_privkey_t pk = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t der = {NULL, 0};
	g_autoptr(GBytes) spki = NULL;
	KmxTestKey *key;
	KmxKeyType type;
	int rc;

	pk = kmx_test_key_load(path, error);
	if (pk == NULL)
		return NULL;
	type = gnutls_privkey_get_pk_algorithm(pk, NULL) == GNUTLS_PK_EDDSA_ED25519
		   ? KMX_KEY_TYPE_ED25519
		   : KMX_KEY_TYPE_ECDSA_P256;
	gnutls_pubkey_init(&pub);
	rc = gnutls_pubkey_import_privkey(pub, pk, 0, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(pk);
	if (rc < 0) {
		kmx_test_gnutls_error(error, rc, "cannot read the public key");
		return NULL;
	}
	spki = g_bytes_new(der.data, der.size);
	gnutls_free(der.data);
	key = g_object_new(KMX_TYPE_TEST_KEY,
			   "device",
			   device,
			   "public-key",
			   spki,
			   "key-type",
			   (guint)type,
			   "usage",
			   (guint)KMX_KEY_USAGE_SIGN,
			   "label",
			   "test key",
			   "locator",
			   "slot:sig",
			   NULL);
	key->path = g_strdup(path);
	return KMX_KEY(key);
}

/* ---- the device -------------------------------------------------------------- */

static gboolean
kmx_test_device_unlock(KmxDevice *device,
		       KmxSecret *secret,
		       GCancellable *cancellable,
		       GError **error)
{
	KmxTestDevice *self = KMX_TEST_DEVICE(device);
	gboolean ok;

	kmx_test_check_thread(device, "unlock");
	if (!kmx_test_device_check_present(self, error))
		return FALSE;
	if (self->retries == 0) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_BLOCKED, "the PIN is blocked");
		return FALSE;
	}
	ok = g_strcmp0(kmx_secret_get_string(secret), self->pin) == 0;
	kmx_test_log(self, "unlock", ok);
	if (!ok) {
		self->retries--;
		kmx_device_set_pin_retries(device, self->retries);
		g_set_error(error,
			    KMX_ERROR,
			    self->retries == 0 ? KMX_ERROR_BLOCKED : KMX_ERROR_BAD_SECRET,
			    "wrong PIN: %d tries left",
			    self->retries);
		return FALSE;
	}
	self->retries = 3;
	kmx_device_set_pin_retries(device, self->retries);
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
	return TRUE;
}

static gboolean
kmx_test_device_lock(KmxDevice *device, GCancellable *cancellable, GError **error)
{
	kmx_test_check_thread(device, "lock");
	kmx_test_log(KMX_TEST_DEVICE(device), "lock", TRUE);
	kmx_device_change_flags(device, KMX_DEVICE_FLAG_LOCKED, 0);
	return TRUE;
}

static KmxKey *
kmx_test_device_generate_key(KmxDevice *device,
			     KmxKeyType type,
			     const char *label,
			     const KmxOptions *options,
			     KmxSecret *admin_secret,
			     GCancellable *cancellable,
			     GError **error)
{
	KmxTestDevice *self = KMX_TEST_DEVICE(device);
	g_autofree char *keydir = g_build_filename(self->dir, "keys", self->serial, NULL);
	g_autofree char *path = NULL;
	gnutls_x509_privkey_t x = NULL;
	gnutls_datum_t pem = {NULL, 0};
	gboolean ok;
	int rc;

	kmx_test_check_thread(device, "generate_key");
	if (!kmx_test_device_check_present(self, error))
		return NULL;
	if (type != KMX_KEY_TYPE_ECDSA_P256 && type != KMX_KEY_TYPE_ED25519) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "the test device makes ecdsa-p256 and ed25519 keys");
		return NULL;
	}
	ok = admin_secret != NULL &&
	     g_strcmp0(kmx_secret_get_string(admin_secret), self->admin_pin) == 0;
	kmx_test_log(self, "admin", ok);
	if (!ok) {
		self->admin_retries = MAX(0, self->admin_retries - 1);
		kmx_device_set_admin_retries(device, self->admin_retries);
		g_set_error(error, KMX_ERROR, KMX_ERROR_BAD_SECRET, "wrong admin PIN");
		return NULL;
	}
	gnutls_x509_privkey_init(&x);
	rc = gnutls_x509_privkey_generate(
	    x,
	    type == KMX_KEY_TYPE_ED25519 ? GNUTLS_PK_EDDSA_ED25519 : GNUTLS_PK_ECDSA,
	    type == KMX_KEY_TYPE_ED25519 ? GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519)
					 : GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
	    0);
	if (rc >= 0)
		rc = gnutls_x509_privkey_export2_pkcs8(x,
						       GNUTLS_X509_FMT_PEM,
						       NULL,
						       GNUTLS_PKCS_PLAIN,
						       &pem);
	gnutls_x509_privkey_deinit(x);
	if (rc < 0) {
		kmx_test_gnutls_error(error, rc, "cannot generate");
		return NULL;
	}
	g_mkdir_with_parents(keydir, 0700);
	path = g_build_filename(keydir, "key.tmp", NULL);
	ok = g_file_set_contents_full(path,
				      (const char *)pem.data,
				      pem.size,
				      G_FILE_SET_CONTENTS_CONSISTENT,
				      0600,
				      error);
	gnutls_free(pem.data);
	if (!ok)
		return NULL;
	{
		g_autoptr(KmxKey) key = kmx_test_key_new(self, path, error);
		g_autofree char *final = NULL;
		g_autofree char *name = NULL;

		if (key == NULL)
			return NULL;
		name = g_strconcat(kmx_key_get_id(key), ".pem", NULL);
		final = g_build_filename(keydir, name, NULL);
		if (g_rename(path, final) != 0) {
			g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "%s", g_strerror(errno));
			return NULL;
		}
		g_free(KMX_TEST_KEY(key)->path);
		KMX_TEST_KEY(key)->path = g_strdup(final);
		return g_steal_pointer(&key);
	}
}

static void
kmx_test_device_finalize(GObject *object)
{
	KmxTestDevice *self = KMX_TEST_DEVICE(object);

	g_free(self->serial);
	g_free(self->dir);
	g_free(self->pin);
	g_free(self->admin_pin);
	G_OBJECT_CLASS(kmx_test_device_parent_class)->finalize(object);
}

static void
kmx_test_device_class_init(KmxTestDeviceClass *klass)
{
	KmxDeviceClass *device_class = KMX_DEVICE_CLASS(klass);

	G_OBJECT_CLASS(klass)->finalize = kmx_test_device_finalize;
	device_class->executor_kind = KMX_EXECUTOR_SERIAL;
	device_class->secret_per_operation = TRUE;
	device_class->admin_secret = TRUE;
	device_class->unlock = kmx_test_device_unlock;
	device_class->lock = kmx_test_device_lock;
	device_class->generate_key = kmx_test_device_generate_key;
}

static void
kmx_test_device_init(KmxTestDevice *self)
{
}

/* on the watcher thread: a device that was plugged in */
static KmxTestDevice *
kmx_test_device_new(const char *backend_name, const char *dir, const char *serial, GKeyFile *kf)
{
	g_autofree char *id = g_strdup_printf("%s:%s", backend_name, serial);
	g_autofree char *label = g_strdup_printf("Test card %s", serial);
	g_autofree char *keydir = g_build_filename(dir, "keys", serial, NULL);
	g_autoptr(GDir) gdir = NULL;
	KmxTestDevice *self;
	const char *name;

	self = g_object_new(KMX_TYPE_TEST_DEVICE,
			    "id",
			    id,
			    "backend",
			    backend_name,
			    "label",
			    label,
			    NULL);
	self->serial = g_strdup(serial);
	self->dir = g_strdup(dir);
	self->pin = g_key_file_get_string(kf, "device", "pin", NULL);
	self->admin_pin = g_key_file_get_string(kf, "device", "admin-pin", NULL);
	self->retries = g_key_file_has_key(kf, "device", "retries", NULL)
			    ? g_key_file_get_integer(kf, "device", "retries", NULL)
			    : 3;
	self->admin_retries = g_key_file_has_key(kf, "device", "admin-retries", NULL)
				  ? g_key_file_get_integer(kf, "device", "admin-retries", NULL)
				  : 3;
	self->delay_ms =
	    (guint)CLAMP(g_key_file_get_integer(kf, "device", "delay-ms", NULL), 0, 60000);
	self->present = TRUE;
	kmx_device_set_flags(KMX_DEVICE(self), KMX_DEVICE_FLAG_AVAILABLE | KMX_DEVICE_FLAG_LOCKED);
	kmx_device_set_pin_retries(KMX_DEVICE(self), self->retries);
	kmx_device_set_admin_retries(KMX_DEVICE(self), self->admin_retries);
	gdir = g_dir_open(keydir, 0, NULL);
	while (gdir != NULL && (name = g_dir_read_name(gdir)) != NULL) {
		g_autofree char *path = g_build_filename(keydir, name, NULL);
		g_autoptr(GError) error = NULL;
		g_autoptr(KmxKey) key = NULL;

		if (!g_str_has_suffix(name, ".pem"))
			continue;
		key = kmx_test_key_new(self, path, &error);
		if (key == NULL) {
			g_warning("test device %s: %s", serial, error->message);
			continue;
		}
		/* not on the main thread: the device is not in the model yet */
		kmx_device_add_key(KMX_DEVICE(self), key);
	}
	return self;
}

/* ---- the backend ------------------------------------------------------------- */

struct _KmxTestBackend {
	KmxBackend parent_instance;
	GThread *watcher;
	gint stopping;
	char *dir;
	GHashTable *plugged; /* serial -> KmxTestDevice, the watcher's */
};

G_DEFINE_TYPE(KmxTestBackend, kmx_test_backend, KMX_TYPE_BACKEND)

static void
kmx_test_backend_scan(KmxTestBackend *self)
{
	g_autofree char *plugdir = g_build_filename(self->dir, "plugged", NULL);
	g_autoptr(GDir) gdir = g_dir_open(plugdir, 0, NULL);
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GHashTableIter iter;
	gpointer serial, device;
	const char *name;

	while (gdir != NULL && (name = g_dir_read_name(gdir)) != NULL) {
		g_autofree char *path = g_build_filename(plugdir, name, NULL);
		g_autoptr(GKeyFile) kf = g_key_file_new();
		KmxTestDevice *dev;

		if (name[0] == '.')
			continue;
		g_hash_table_add(seen, g_strdup(name));
		if (g_hash_table_contains(self->plugged, name))
			continue;
		if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
			continue; /* being written: next round */
		dev = kmx_test_device_new(kmx_backend_get_name(KMX_BACKEND(self)),
					  self->dir,
					  name,
					  kf);
		g_hash_table_insert(self->plugged, g_strdup(name), dev);
		kmx_backend_device_present(KMX_BACKEND(self), KMX_DEVICE(dev));
	}
	g_hash_table_iter_init(&iter, self->plugged);
	while (g_hash_table_iter_next(&iter, &serial, &device)) {
		if (g_hash_table_contains(seen, serial))
			continue;
		g_atomic_int_set(&KMX_TEST_DEVICE(device)->present, FALSE);
		kmx_backend_device_absent(KMX_BACKEND(self), kmx_device_get_id(device));
		g_hash_table_iter_remove(&iter);
	}
}

static gpointer
kmx_test_backend_watch(gpointer data)
{
	KmxTestBackend *self = data;

	while (!g_atomic_int_get(&self->stopping)) {
		kmx_test_backend_scan(self);
		g_usleep(20000);
	}
	return NULL;
}

static gboolean
kmx_test_backend_start(KmxBackend *backend, GError **error)
{
	KmxTestBackend *self = KMX_TEST_BACKEND(backend);

	self->dir = kmx_backend_get_state_dir(backend);
	self->watcher = g_thread_try_new("kmx-test-watch", kmx_test_backend_watch, self, error);
	return self->watcher != NULL;
}

static void
kmx_test_backend_stop(KmxBackend *backend)
{
	KmxTestBackend *self = KMX_TEST_BACKEND(backend);

	g_atomic_int_set(&self->stopping, TRUE);
	g_clear_pointer(&self->watcher, g_thread_join);
}

static void
kmx_test_backend_finalize(GObject *object)
{
	KmxTestBackend *self = KMX_TEST_BACKEND(object);

	g_hash_table_unref(self->plugged);
	g_free(self->dir);
	G_OBJECT_CLASS(kmx_test_backend_parent_class)->finalize(object);
}

static void
kmx_test_backend_class_init(KmxTestBackendClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = kmx_test_backend_finalize;
	KMX_BACKEND_CLASS(klass)->start = kmx_test_backend_start;
	KMX_BACKEND_CLASS(klass)->stop = kmx_test_backend_stop;
}

static void
kmx_test_backend_init(KmxTestBackend *self)
{
	self->plugged = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_object_unref);
}
