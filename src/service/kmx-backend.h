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
 * @start: runs on the main thread at start-up: scan, load registered
 *   devices (kmx_backend_add_device()), begin watching for hot-plug.  Must
 *   be quick; a backend whose hardware is missing starts fine with no device.
 * @stop: stop watching; devices are removed by the base class
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

GPtrArray *kmx_backend_get_devices(KmxBackend *self);
void kmx_backend_add_device(KmxBackend *self, KmxDevice *device);
void kmx_backend_remove_device(KmxBackend *self, KmxDevice *device);

G_END_DECLS
