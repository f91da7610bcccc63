/*
 * kmx-bench-seed: fills a soft-key store for the scale part of the bench
 *
 *   kmx-bench-seed [--threads N] DATA_DIR COUNT
 *
 * Adds COUNT fresh Ed25519 keys to the store "login" under DATA_DIR (what
 * keymuxd sees with KEYMUX_DATA_DIR=DATA_DIR), through the real soft-key
 * backend: the files are exactly the ones GenerateKey writes, without a
 * D-Bus round trip per key.  Each key write fsyncs twice; run it under
 * eatmydata to seed 10,000 keys in seconds.  Prints one JSON line.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <stdio.h>
#include <stdlib.h>

#include "kmx-backend.h"
#include "kmx-context.h"
#include "kmx-device.h"
#include "kmx-key.h"
#include "kmx-softkey-backend.h"

#define SEED_DEVICE_ID "softkey:login"

typedef struct {
	KmxDevice *device;
	gint count;
	gint next;   /* the next key to make, shared by the workers */
	gint failed; /* set by the first worker that fails: the others stop */
	GMutex mutex;
	GError *error; /* the first failure */
} SeedJob;

static gpointer
seed_worker(gpointer data)
{
	SeedJob *job = data;
	gint i;

	while (!g_atomic_int_get(&job->failed) &&
	       (i = g_atomic_int_add(&job->next, 1)) < job->count) {
		g_autoptr(GError) error = NULL;
		g_autofree char *label = g_strdup_printf("bench key %d", i);
		const KmxOptions options = {.interactive = TRUE};
		g_autoptr(KmxKey) key = kmx_device_generate_key(job->device,
								KMX_KEY_TYPE_ED25519,
								label,
								&options,
								NULL,
								NULL,
								&error);
		if (key == NULL) {
			g_mutex_lock(&job->mutex);
			if (job->error == NULL)
				job->error = g_steal_pointer(&error);
			g_mutex_unlock(&job->mutex);
			g_atomic_int_set(&job->failed, TRUE);
		}
	}
	return NULL;
}

static KmxDevice *
find_device(KmxBackend *backend, const char *id, GError **error)
{
	GPtrArray *devices = kmx_backend_get_devices(backend);

	for (guint i = 0; i < devices->len; i++) {
		KmxDevice *device = g_ptr_array_index(devices, i);
		if (g_strcmp0(kmx_device_get_id(device), id) == 0)
			return device;
	}
	g_set_error(error,
		    G_IO_ERROR,
		    G_IO_ERROR_NOT_FOUND,
		    "the soft-key backend has no device %s (%u devices)",
		    id,
		    devices->len);
	return NULL;
}

static int
seed_fail(const char *what, GError *error)
{
	g_autofree char *msg = g_strdup_printf("%s: %s", what, error->message);
	g_autoptr(GString) json = g_string_new("{\"ok\":false,\"error\":\"");

	/* the message goes into json: escape what json needs escaped */
	for (const char *p = msg; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(json, '\\');
		if ((guchar)*p < 0x20)
			g_string_append_printf(json, "\\u%04x", (guchar)*p);
		else
			g_string_append_c(json, *p);
	}
	g_string_append(json, "\"}");
	printf("%s\n", json->str);
	g_printerr("kmx-bench-seed: %s\n", msg);
	return 1;
}

int
main(int argc, char **argv)
{
	gint threads = 0;
	const GOptionEntry entries[] = {
	    {"threads",
	     't',
	     0,
	     G_OPTION_ARG_INT,
	     &threads,
	     "Worker threads (default: one per core)",
	     "N"},
	    {NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("DATA_DIR COUNT");
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxContext) context = NULL;
	g_autoptr(KmxBackend) backend = NULL;
	g_autoptr(GPtrArray) workers = g_ptr_array_new();
	g_autofree char *config = NULL;
	SeedJob job = {0};
	KmxDevice *device;
	guint before;
	gint64 t0;
	gdouble seconds;
	char *end = NULL;
	gint64 count;

	g_option_context_set_summary(
	    options,
	    "Adds COUNT Ed25519 keys to the soft-key store \"login\" under "
	    "DATA_DIR,\nthrough the soft-key backend, one thread per core.");
	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return seed_fail("arguments", error);
	if (argc != 3) {
		g_set_error_literal(&error,
				    G_OPTION_ERROR,
				    G_OPTION_ERROR_FAILED,
				    "usage: kmx-bench-seed [--threads N] DATA_DIR COUNT");
		return seed_fail("arguments", error);
	}
	count = g_ascii_strtoll(argv[2], &end, 10);
	if (end == argv[2] || *end != '\0' || count < 0 || count > G_MAXINT / 2) {
		g_set_error(&error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    "COUNT must be a number of keys, not '%s'",
			    argv[2]);
		return seed_fail("arguments", error);
	}
	if (threads <= 0)
		threads = (gint)g_get_num_processors();

	/* a config that does not exist: the backend's defaults, as in the bench's keymuxd */
	config = g_build_filename(argv[1], "kmx-bench-seed-no-such.conf", NULL);
	/* this thread owns the model; the generating threads report to it */
	kmx_core_mark_main_thread();
	context = kmx_context_new(argv[1], config, &error);
	if (context == NULL)
		return seed_fail("context", error);
	backend = g_object_new(kmx_softkey_backend_get_type(),
			       "name",
			       "softkey",
			       "context",
			       context,
			       NULL);
	if (!kmx_backend_start(backend, &error))
		return seed_fail("starting the soft-key backend", error);
	device = find_device(backend, SEED_DEVICE_ID, &error);
	if (device == NULL)
		return seed_fail("soft-key backend", error);
	before = kmx_device_get_keys(device)->len;

	job.device = device;
	job.count = (gint)count;
	g_mutex_init(&job.mutex);
	t0 = g_get_monotonic_time();
	/* generate_key runs on a pool in the daemon: it is safe from many threads */
	for (gint i = 0; i < threads; i++)
		g_ptr_array_add(workers, g_thread_new("kmx-bench-seed", seed_worker, &job));
	for (guint i = 0; i < workers->len; i++)
		g_thread_join(g_ptr_array_index(workers, i));
	seconds = (g_get_monotonic_time() - t0) / 1e6;
	g_mutex_clear(&job.mutex);
	if (job.error != NULL) {
		g_autoptr(GError) failure = job.error;
		return seed_fail("generating a key", failure);
	}
	kmx_backend_stop(backend);
	printf("{\"ok\":true,\"added\":%d,\"before\":%u,\"threads\":%d,\"seconds\":%.3f}\n",
	       job.count,
	       before,
	       threads,
	       seconds);
	return 0;
}
