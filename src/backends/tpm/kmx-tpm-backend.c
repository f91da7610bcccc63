/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the TPM 2.0 backend (tpm2-tss ESAPI)
 *
 * One device, tpm:0, whose keys are TSS2 key files in the backend's state
 * dir (see README.md).  start() reads the key files and lists the device
 * (unavailable) if there are any; a watcher thread then queues a probe on
 * the device's executor every poll interval: the probe connects to the
 * TPM through the configured TCTI ([tpm] tcti= in keymux.conf) and reports
 * the device available, or notices that it went away.  Nothing here
 * blocks on the TPM, and a TPM that appears later is picked up.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>

#include "kmx-error.h"
#include "kmx-tpm-backend.h"
#include "kmx-tpm-device.h"

/* how often the watcher checks the TPM ([tpm] poll-interval-ms) */
#define KMX_TPM_POLL_MS_DEFAULT 2000
/* how often at least while it does not answer */
#define KMX_TPM_POLL_MAX_MS 30000

struct _KmxTpmBackend {
	KmxBackend parent_instance;
	KmxTpmDevice *device;
	GThread *watcher;
	GMutex mutex;
	GCond cond;
	gboolean stopping; /* mutex */
	gint64 poll_us;
};

G_DEFINE_TYPE(KmxTpmBackend, kmx_tpm_backend, KMX_TYPE_BACKEND)

static gpointer
kmx_tpm_backend_watch(gpointer data)
{
	KmxTpmBackend *self = data;

	gint64 interval = self->poll_us;

	g_mutex_lock(&self->mutex);
	while (!self->stopping) {
		gint64 until;

		g_mutex_unlock(&self->mutex);
		kmx_tpm_device_probe(self->device);
		/* a TPM that does not answer is asked less and less often (up to
		 * KMX_TPM_POLL_MAX_MS): tss2 logs every failed attempt */
		if (kmx_tpm_device_is_connected(self->device))
			interval = self->poll_us;
		else
			interval =
			    MIN(interval * 2, MAX(self->poll_us, KMX_TPM_POLL_MAX_MS * 1000));
		until = g_get_monotonic_time() + interval;
		g_mutex_lock(&self->mutex);
		while (!self->stopping && g_cond_wait_until(&self->cond, &self->mutex, until))
			;
	}
	g_mutex_unlock(&self->mutex);
	return NULL;
}

static gboolean
kmx_tpm_backend_start(KmxBackend *backend, GError **error)
{
	KmxTpmBackend *self = KMX_TPM_BACKEND(backend);
	KmxContext *context = kmx_backend_get_context(backend);
	g_autofree char *dir = kmx_backend_get_state_dir(backend);
	g_autofree char *tcti = kmx_context_get_string(context, "tpm", "tcti", NULL);
	g_autoptr(GPtrArray) keys = NULL;

	if (g_mkdir_with_parents(dir, 0700) != 0) {
		int errsv = errno;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot create %s: %s",
			    dir,
			    g_strerror(errsv));
		return FALSE;
	}
	self->poll_us =
	    1000 *
	    CLAMP(kmx_context_get_int(context, "tpm", "poll-interval-ms", KMX_TPM_POLL_MS_DEFAULT),
		  10,
		  3600 * 1000);
	self->device = kmx_tpm_device_new(kmx_backend_get_name(backend),
					  dir,
					  tcti != NULL && tcti[0] != '\0' ? tcti : NULL);
	kmx_tpm_device_set_backend(self->device, backend);
	/* not available until the TPM answers; locked if it has a secret */
	kmx_device_set_flags(KMX_DEVICE(self->device), KMX_DEVICE_FLAG_NONE);
	kmx_tpm_device_recover(self->device);
	/* the probes run there, before the device is listed */
	if (!kmx_device_start_executor(KMX_DEVICE(self->device), error))
		return FALSE;
	keys = kmx_tpm_device_load_keys(self->device);
	for (guint i = 0; i < keys->len; i++)
		kmx_device_add_key(KMX_DEVICE(self->device), g_ptr_array_index(keys, i));
	/* with keys, the device is listed even while the TPM is away; without,
	 * it shows up when the TPM first answers */
	if (keys->len > 0)
		kmx_backend_add_device(backend, KMX_DEVICE(self->device));
	self->stopping = FALSE;
	self->watcher = g_thread_try_new("kmx-tpm-watch", kmx_tpm_backend_watch, self, error);
	return self->watcher != NULL;
}

static void
kmx_tpm_backend_stop(KmxBackend *backend)
{
	KmxTpmBackend *self = KMX_TPM_BACKEND(backend);

	g_mutex_lock(&self->mutex);
	self->stopping = TRUE;
	g_cond_signal(&self->cond);
	g_mutex_unlock(&self->mutex);
	g_clear_pointer(&self->watcher, g_thread_join);
	/* the connection ends on the executor, after the work queued there */
	if (self->device != NULL)
		kmx_tpm_device_close(self->device);
}

static void
kmx_tpm_backend_finalize(GObject *object)
{
	KmxTpmBackend *self = KMX_TPM_BACKEND(object);

	g_clear_object(&self->device);
	g_mutex_clear(&self->mutex);
	g_cond_clear(&self->cond);
	G_OBJECT_CLASS(kmx_tpm_backend_parent_class)->finalize(object);
}

static void
kmx_tpm_backend_class_init(KmxTpmBackendClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = kmx_tpm_backend_finalize;
	KMX_BACKEND_CLASS(klass)->start = kmx_tpm_backend_start;
	KMX_BACKEND_CLASS(klass)->stop = kmx_tpm_backend_stop;
}

static void
kmx_tpm_backend_init(KmxTpmBackend *self)
{
	g_mutex_init(&self->mutex);
	g_cond_init(&self->cond);
}
