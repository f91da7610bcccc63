/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: something that holds keys (a soft-key store, a card, the TPM) */
#pragma once

#include <gio/gio.h>

#include "kmx-algorithm.h"
#include "kmx-executor.h"
#include "kmx-options.h"
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

#define KMX_DEVICE_FLAGS_ALL                                                                       \
	(KMX_DEVICE_FLAG_LOCKED | KMX_DEVICE_FLAG_REGISTERED | KMX_DEVICE_FLAG_AVAILABLE)

#define KMX_TYPE_DEVICE (kmx_device_get_type())
G_DECLARE_DERIVABLE_TYPE(KmxDevice, kmx_device, KMX, DEVICE, GObject)

/**
 * KmxDeviceClass:
 * @executor_kind: where the vfuncs run: %KMX_EXECUTOR_SERIAL (one thread of
 *   the device's own, the default) or %KMX_EXECUTOR_POOL (the shared pool;
 *   generation and imports then run in a storage pool of their own)
 * @persistent: the backend keeps the device's description itself (a
 *   soft-key store is its directory): Register is a no-op, Unregister is
 *   not supported, and the core writes no cache for it
 * @secret_per_operation: the device wants its user secret for every
 *   private-key operation (a card's PW1): the core keeps the secret while
 *   the device is unlocked and hands it to each operation
 * @admin_secret: generating and importing keys needs the admin secret (a
 *   card's PW3), from option `admin-secret` or a prompt
 * @unblock_hint: what the user does when the user secret is blocked, for
 *   the `Blocked` error (%NULL: "reset it with the device's admin PIN")
 * @unlock: check @secret and make the private keys usable.  A wrong secret
 *   is %KMX_ERROR_BAD_SECRET, and the device reports its retry counter.
 *   Called on an unlocked device too: the secret is checked all the same.
 * @lock: drop every cached secret and decrypted key
 * @change_secret: replace the device's user secret
 * @generate_key: make a key; returns it without adding it (the core adds it
 *   on the main thread)
 * @import_key: store keys parsed from @data; returns them without adding
 *
 * Every vfunc is synchronous, runs on the device's executor (never on the
 * main thread), takes a #GCancellable and reports a #KmxError.  State the
 * work changes is reported with the setters below, from any thread; the
 * core applies it on the main thread before it replies.
 */
struct _KmxDeviceClass {
	GObjectClass parent_class;
	KmxExecutorKind executor_kind;
	gboolean persistent;
	gboolean secret_per_operation;
	gboolean admin_secret;
	const char *unblock_hint;

	gboolean (*unlock)(KmxDevice *self,
			   KmxSecret *secret,
			   GCancellable *cancellable,
			   GError **error);
	gboolean (*lock)(KmxDevice *self, GCancellable *cancellable, GError **error);
	gboolean (*change_secret)(KmxDevice *self,
				  KmxSecret *old_secret,
				  KmxSecret *new_secret,
				  GCancellable *cancellable,
				  GError **error);
	KmxKey *(*generate_key)(KmxDevice *self,
				KmxKeyType type,
				const char *label,
				const KmxOptions *options,
				KmxSecret *admin_secret,
				GCancellable *cancellable,
				GError **error);
	GPtrArray *(*import_key)(KmxDevice *self,
				 GBytes *data,
				 KmxSecret *passphrase,
				 const char *label,
				 const KmxOptions *options,
				 KmxSecret *admin_secret,
				 GCancellable *cancellable,
				 GError **error);
	gpointer padding[8];
};

const char *kmx_device_get_id(KmxDevice *self);
const char *kmx_device_get_backend_name(KmxDevice *self);

/* state: set from any thread, applied and read on the main thread */
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
int kmx_device_get_admin_retries(KmxDevice *self);
void kmx_device_set_admin_retries(KmxDevice *self, int retries);
GVariant *kmx_device_dup_details(KmxDevice *self);
void kmx_device_set_details(KmxDevice *self, GVariant *details);
gboolean kmx_device_has_pending_state(KmxDevice *self);
void kmx_device_flush_state(KmxDevice *self);

gboolean kmx_device_is_persistent(KmxDevice *self);
gboolean kmx_device_has_secret(KmxDevice *self);
gboolean kmx_device_needs_admin_secret(KmxDevice *self);
gboolean kmx_device_wants_secret_per_operation(KmxDevice *self);

/* the user secret, kept while unlocked; main thread */
void kmx_device_keep_secret(KmxDevice *self, KmxSecret *secret);
KmxSecret *kmx_device_dup_kept_secret(KmxDevice *self);
void kmx_device_forget_secret(KmxDevice *self);

gboolean kmx_device_start_executor(KmxDevice *self, GError **error);
KmxExecutor *kmx_device_get_executor(KmxDevice *self);
KmxExecutor *kmx_device_get_storage_executor(KmxDevice *self);
void kmx_device_touch(KmxDevice *self);
gint64 kmx_device_get_last_used(KmxDevice *self);

/* the key list; main thread */
GPtrArray *kmx_device_get_keys(KmxDevice *self);
KmxKey *kmx_device_find_key(KmxDevice *self, const char *key_id);

/**
 * KmxDeviceAnchor:
 *
 * A device's keys find it through this (kmx_key_get_device()): it does not
 * keep the device alive, and tells when the device is gone.
 */
typedef struct _KmxDeviceAnchor KmxDeviceAnchor;
KmxDeviceAnchor *kmx_device_ref_anchor(KmxDevice *self);
KmxDevice *kmx_device_anchor_dup_device(KmxDeviceAnchor *anchor);
void kmx_device_anchor_unref(KmxDeviceAnchor *anchor);
void kmx_device_add_key(KmxDevice *self, KmxKey *key);
void kmx_device_remove_key(KmxDevice *self, KmxKey *key);
/* any thread */
void kmx_device_report_key_removed(KmxDevice *self, const char *key_id);
/* main thread */
void kmx_device_report_key_label_changed(KmxDevice *self, KmxKey *key);

/* the vfunc wrappers; called on the executor by the core */
gboolean kmx_device_unlock(KmxDevice *self,
			   KmxSecret *secret,
			   GCancellable *cancellable,
			   GError **error);
gboolean kmx_device_lock(KmxDevice *self, GCancellable *cancellable, GError **error);
gboolean kmx_device_change_secret(KmxDevice *self,
				  KmxSecret *old_secret,
				  KmxSecret *new_secret,
				  GCancellable *cancellable,
				  GError **error);
KmxKey *kmx_device_generate_key(KmxDevice *self,
				KmxKeyType type,
				const char *label,
				const KmxOptions *options,
				KmxSecret *admin_secret,
				GCancellable *cancellable,
				GError **error);
GPtrArray *kmx_device_import_key(KmxDevice *self,
				 GBytes *data,
				 KmxSecret *passphrase,
				 const char *label,
				 const KmxOptions *options,
				 KmxSecret *admin_secret,
				 GCancellable *cancellable,
				 GError **error);

G_END_DECLS
