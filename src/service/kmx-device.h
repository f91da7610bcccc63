/* keymux: something that holds keys (a soft-key store, a card, the TPM) */
#pragma once

#include <gio/gio.h>

#include "kmx-algorithm.h"
#include "kmx-executor.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

typedef struct _KmxKey KmxKey;

/**
 * KmxDeviceFlags:
 * @KMX_DEVICE_FLAG_NONE: none
 * @KMX_DEVICE_FLAG_LOCKED: a secret must be given before private keys can be used
 * @KMX_DEVICE_FLAG_REGISTERED: description and key list are cached on disk
 * @KMX_DEVICE_FLAG_AVAILABLE: usable right now
 */
typedef enum {
	KMX_DEVICE_FLAG_NONE = 0,
	KMX_DEVICE_FLAG_LOCKED = 1 << 0,
	KMX_DEVICE_FLAG_REGISTERED = 1 << 1,
	KMX_DEVICE_FLAG_AVAILABLE = 1 << 2,
} KmxDeviceFlags;

#define KMX_TYPE_DEVICE (kmx_device_get_type())
G_DECLARE_DERIVABLE_TYPE(KmxDevice, kmx_device, KMX, DEVICE, GObject)

/**
 * KmxDeviceClass:
 * @executor_kind: where the vfuncs run: %KMX_EXECUTOR_SERIAL (one thread of
 *   the device's own) or %KMX_EXECUTOR_POOL (the shared pool)
 * @unlock: check @secret and make the private keys usable; set the flags
 *   with kmx_device_set_flags().  A wrong secret is %KMX_ERROR_BAD_SECRET.
 * @lock: drop every cached secret and decrypted key
 * @register_device: cache description and key list on disk
 * @unregister_device: forget them
 * @change_secret: replace the device's secret
 * @generate_key: make a key; returns it without adding it (the core adds it
 *   on the main thread)
 * @import_key: store keys parsed from @data; returns them without adding
 *
 * Every vfunc is synchronous, runs on the device's executor (never on the
 * main thread), takes a #GCancellable and reports a #KmxError.
 */
struct _KmxDeviceClass {
	GObjectClass parent_class;
	KmxExecutorKind executor_kind;

	gboolean (*unlock)(KmxDevice *self,
			   KmxSecret *secret,
			   GCancellable *cancellable,
			   GError **error);
	gboolean (*lock)(KmxDevice *self, GCancellable *cancellable, GError **error);
	gboolean (*register_device)(KmxDevice *self, GCancellable *cancellable, GError **error);
	gboolean (*unregister_device)(KmxDevice *self, GCancellable *cancellable, GError **error);
	gboolean (*change_secret)(KmxDevice *self,
				  KmxSecret *old_secret,
				  KmxSecret *new_secret,
				  GCancellable *cancellable,
				  GError **error);
	KmxKey *(*generate_key)(KmxDevice *self,
				KmxKeyType type,
				const char *label,
				GVariant *options,
				GCancellable *cancellable,
				GError **error);
	GPtrArray *(*import_key)(KmxDevice *self,
				 GBytes *data,
				 KmxSecret *passphrase,
				 const char *label,
				 GVariant *options,
				 GCancellable *cancellable,
				 GError **error);
	gpointer padding[8];
};

const char *kmx_device_get_id(KmxDevice *self);
const char *kmx_device_get_backend_name(KmxDevice *self);
char *kmx_device_dup_label(KmxDevice *self);
void kmx_device_set_label(KmxDevice *self, const char *label);

KmxDeviceFlags kmx_device_get_flags(KmxDevice *self);
void kmx_device_set_flags(KmxDevice *self, KmxDeviceFlags flags);
void kmx_device_change_flags(KmxDevice *self, KmxDeviceFlags set, KmxDeviceFlags clear);
gboolean kmx_device_is_locked(KmxDevice *self);
gboolean kmx_device_is_available(KmxDevice *self);
gboolean kmx_device_is_registered(KmxDevice *self);

int kmx_device_get_pin_retries(KmxDevice *self);
void kmx_device_set_pin_retries(KmxDevice *self, int retries);

GVariant *kmx_device_dup_details(KmxDevice *self);
void kmx_device_set_details(KmxDevice *self, GVariant *details);

KmxExecutor *kmx_device_get_executor(KmxDevice *self);
void kmx_device_touch(KmxDevice *self);
gint64 kmx_device_get_last_used(KmxDevice *self);

GPtrArray *kmx_device_get_keys(KmxDevice *self);
KmxKey *kmx_device_find_key(KmxDevice *self, const char *key_id);
void kmx_device_add_key(KmxDevice *self, KmxKey *key);
void kmx_device_remove_key(KmxDevice *self, KmxKey *key);

/* the vfunc wrappers; called on the executor by the core */
gboolean kmx_device_unlock(KmxDevice *self,
			   KmxSecret *secret,
			   GCancellable *cancellable,
			   GError **error);
gboolean kmx_device_lock(KmxDevice *self, GCancellable *cancellable, GError **error);
gboolean kmx_device_register(KmxDevice *self, GCancellable *cancellable, GError **error);
gboolean kmx_device_unregister(KmxDevice *self, GCancellable *cancellable, GError **error);
gboolean kmx_device_change_secret(KmxDevice *self,
				  KmxSecret *old_secret,
				  KmxSecret *new_secret,
				  GCancellable *cancellable,
				  GError **error);
KmxKey *kmx_device_generate_key(KmxDevice *self,
				KmxKeyType type,
				const char *label,
				GVariant *options,
				GCancellable *cancellable,
				GError **error);
GPtrArray *kmx_device_import_key(KmxDevice *self,
				 GBytes *data,
				 KmxSecret *passphrase,
				 const char *label,
				 GVariant *options,
				 GCancellable *cancellable,
				 GError **error);

G_END_DECLS
