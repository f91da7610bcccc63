/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a kind of key storage (softkey, card, tpm) */
#pragma once

#include <gio/gio.h>

#include "kmx-context.h"
#include "kmx-device.h"

G_BEGIN_DECLS

#define KMX_TYPE_BACKEND (kmx_backend_get_type())
G_DECLARE_DERIVABLE_TYPE(KmxBackend, kmx_backend, KMX, BACKEND, GObject)

/**
 * KmxBackendClass:
 * @start: runs on the main thread at start-up, after the core restored the
 *   registered devices: add the devices known now, begin watching for
 *   hot-plug (on a thread of the backend's own).  Must be quick and never
 *   block on hardware; a backend whose hardware is missing starts fine with
 *   no device and reports it when it appears.
 * @stop: stop watching (join the watcher thread); the base class then
 *   removes the devices
 */
struct _KmxBackendClass {
	GObjectClass parent_class;
	gboolean (*start)(KmxBackend *self, GError **error);
	void (*stop)(KmxBackend *self);
	gpointer padding[8];
};

const char *kmx_backend_get_name(KmxBackend *self);
KmxContext *kmx_backend_get_context(KmxBackend *self);
char *kmx_backend_get_state_dir(KmxBackend *self);
gboolean kmx_backend_start(KmxBackend *self, GError **error);
void kmx_backend_stop(KmxBackend *self);

/* hot-plug: any thread; the core applies the report on the main thread */
void kmx_backend_device_present(KmxBackend *self, KmxDevice *device);
void kmx_backend_device_absent(KmxBackend *self, const char *device_id);

/* main thread */
GPtrArray *kmx_backend_get_devices(KmxBackend *self);
KmxDevice *kmx_backend_find_device(KmxBackend *self, const char *device_id);
void kmx_backend_add_device(KmxBackend *self, KmxDevice *device);
void kmx_backend_remove_device(KmxBackend *self, KmxDevice *device);
gboolean kmx_backend_register_device(KmxBackend *self, KmxDevice *device, GError **error);
gboolean kmx_backend_unregister_device(KmxBackend *self, KmxDevice *device, GError **error);

G_END_DECLS
