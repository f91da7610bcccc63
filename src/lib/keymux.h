/* libkeymux: a GObject client of the keymux keystore
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "keymux-enums.h"

G_BEGIN_DECLS

/**
 * KeymuxError:
 * @KEYMUX_ERROR_FAILED: something failed that has no better code
 * @KEYMUX_ERROR_NOT_FOUND: no such device or key
 * @KEYMUX_ERROR_LOCKED: the device must be unlocked first
 * @KEYMUX_ERROR_UNAVAILABLE: the device cannot be used now (card removed)
 * @KEYMUX_ERROR_BAD_SECRET: wrong password or PIN
 * @KEYMUX_ERROR_BLOCKED: PIN retries exhausted
 * @KEYMUX_ERROR_NOT_SUPPORTED: the key or device cannot do this
 * @KEYMUX_ERROR_INVALID_ARGUMENT: a malformed argument
 * @KEYMUX_ERROR_EXISTS: the object exists already
 * @KEYMUX_ERROR_CANCELLED: the user declined, or the request was cancelled
 * @KEYMUX_ERROR_DENIED: the caller may not do this
 *
 * Errors of the %KEYMUX_ERROR domain: the keystore's errors
 * (org.keymux.Keystore1.Error.NotFound and so on), with the same codes
 * as keymuxd's own KMX_ERROR domain.  Errors of the bus map to the
 * nearest code: keymuxd not there, gone during a call (the connection
 * closed, no reply) or an object gone is %KEYMUX_ERROR_UNAVAILABLE; access
 * denied by the bus %KEYMUX_ERROR_DENIED; a method keymuxd does not have
 * %KEYMUX_ERROR_NOT_SUPPORTED; anything else %KEYMUX_ERROR_FAILED.  A
 * #GCancellable that was cancelled gives %G_IO_ERROR_CANCELLED.
 */
typedef enum {
	KEYMUX_ERROR_FAILED,
	KEYMUX_ERROR_NOT_FOUND,
	KEYMUX_ERROR_LOCKED,
	KEYMUX_ERROR_UNAVAILABLE,
	KEYMUX_ERROR_BAD_SECRET,
	KEYMUX_ERROR_BLOCKED,
	KEYMUX_ERROR_NOT_SUPPORTED,
	KEYMUX_ERROR_INVALID_ARGUMENT,
	KEYMUX_ERROR_EXISTS,
	KEYMUX_ERROR_CANCELLED,
	KEYMUX_ERROR_DENIED,
} KeymuxError;

/**
 * KEYMUX_ERROR:
 *
 * The error domain of libkeymux.
 */
#define KEYMUX_ERROR (keymux_error_quark())
GQuark keymux_error_quark(void);

/**
 * KeymuxCallFlags:
 * @KEYMUX_CALL_FLAGS_NONE: nothing special
 * @KEYMUX_CALL_FLAGS_NO_INTERACTION: never prompt: a locked device fails
 *   with %KEYMUX_ERROR_LOCKED at once (the "interactive" option false)
 * @KEYMUX_CALL_FLAGS_PREHASHED: the data to sign is the digest already
 * @KEYMUX_CALL_FLAGS_EXPORTABLE: a generated key may leave its device
 * @KEYMUX_CALL_FLAGS_REPLACE: a generated key replaces the key in its slot
 *
 * Options of an operation; each is ignored where it means nothing.
 */
typedef enum /*< flags >*/ {
	KEYMUX_CALL_FLAGS_NONE = 0,
	KEYMUX_CALL_FLAGS_NO_INTERACTION = 1 << 0,
	KEYMUX_CALL_FLAGS_PREHASHED = 1 << 1,
	KEYMUX_CALL_FLAGS_EXPORTABLE = 1 << 2,
	KEYMUX_CALL_FLAGS_REPLACE = 1 << 3,
} KeymuxCallFlags;

/**
 * KeymuxClientFlags:
 * @KEYMUX_CLIENT_FLAGS_NONE: a connection of its own to keymuxd when it
 *   gives one, else the bus
 * @KEYMUX_CLIENT_FLAGS_BUS_ONLY: always the bus: the client follows
 *   keymuxd as it stops and starts again (#KeymuxClient:running), which a
 *   peer connection, closed with keymuxd, cannot
 * @KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE: fail with
 *   %KEYMUX_ERROR_UNAVAILABLE when keymuxd is not on the bus and the bus
 *   cannot start it, instead of waiting for it to appear
 *
 * How a client connects.  The environment variable `KEYMUX_PEER_TO_PEER`
 * overrides the choice of connection, for tests and debugging: `0` means
 * the bus only, `1` a connection of its own or failure (no fallback).
 */
typedef enum /*< flags >*/ {
	KEYMUX_CLIENT_FLAGS_NONE = 0,
	KEYMUX_CLIENT_FLAGS_BUS_ONLY = 1 << 0,
	KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE = 1 << 1,
} KeymuxClientFlags;

#define KEYMUX_TYPE_DEVICE (keymux_device_get_type())
G_DECLARE_FINAL_TYPE(KeymuxDevice, keymux_device, KEYMUX, DEVICE, GDBusProxy)
#define KEYMUX_TYPE_KEY (keymux_key_get_type())
G_DECLARE_FINAL_TYPE(KeymuxKey, keymux_key, KEYMUX, KEY, GDBusProxy)
#define KEYMUX_TYPE_CLIENT (keymux_client_get_type())
G_DECLARE_FINAL_TYPE(KeymuxClient, keymux_client, KEYMUX, CLIENT, GObject)
#define KEYMUX_TYPE_PROMPTER (keymux_prompter_get_type())
G_DECLARE_FINAL_TYPE(KeymuxPrompter, keymux_prompter, KEYMUX, PROMPTER, GObject)
#define KEYMUX_TYPE_PROMPT_REQUEST (keymux_prompt_request_get_type())
G_DECLARE_FINAL_TYPE(KeymuxPromptRequest, keymux_prompt_request, KEYMUX, PROMPT_REQUEST, GObject)

/* ---- the client ---- */

void keymux_client_new(GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
KeymuxClient *keymux_client_new_finish(GAsyncResult *result, GError **error);
KeymuxClient *keymux_client_new_sync(GCancellable *cancellable, GError **error);
void keymux_client_new_for_bus(GDBusConnection *bus,
			       KeymuxClientFlags flags,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data);
KeymuxClient *keymux_client_new_for_bus_finish(GAsyncResult *result, GError **error);
KeymuxClient *keymux_client_new_for_bus_sync(GDBusConnection *bus,
					     KeymuxClientFlags flags,
					     GCancellable *cancellable,
					     GError **error);

GDBusConnection *keymux_client_get_connection(KeymuxClient *self);
gboolean keymux_client_get_peer_to_peer(KeymuxClient *self);
const char *keymux_client_get_version(KeymuxClient *self);
GStrv keymux_client_dup_backends(KeymuxClient *self);
gboolean keymux_client_get_running(KeymuxClient *self);
GList *keymux_client_get_devices(KeymuxClient *self);
GList *keymux_client_get_keys(KeymuxClient *self);
KeymuxDevice *keymux_client_lookup_device(KeymuxClient *self, const char *id);
KeymuxKey *keymux_client_lookup_key(KeymuxClient *self, const char *object_path);

void keymux_client_list_keys(KeymuxClient *self,
			     GCancellable *cancellable,
			     GAsyncReadyCallback callback,
			     gpointer user_data);
GList *keymux_client_list_keys_finish(KeymuxClient *self, GAsyncResult *result, GError **error);
GList *keymux_client_list_keys_sync(KeymuxClient *self, GCancellable *cancellable, GError **error);

void keymux_client_find_key(KeymuxClient *self,
			    const char *id,
			    GCancellable *cancellable,
			    GAsyncReadyCallback callback,
			    gpointer user_data);
GList *keymux_client_find_key_finish(KeymuxClient *self, GAsyncResult *result, GError **error);
GList *keymux_client_find_key_sync(KeymuxClient *self,
				   const char *id,
				   GCancellable *cancellable,
				   GError **error);

void keymux_client_lock_all(KeymuxClient *self,
			    GCancellable *cancellable,
			    GAsyncReadyCallback callback,
			    gpointer user_data);
gboolean keymux_client_lock_all_finish(KeymuxClient *self, GAsyncResult *result, GError **error);
gboolean keymux_client_lock_all_sync(KeymuxClient *self, GCancellable *cancellable, GError **error);

/* ---- devices ---- */

const char *keymux_device_get_id(KeymuxDevice *self);
const char *keymux_device_get_backend(KeymuxDevice *self);
char *keymux_device_dup_label(KeymuxDevice *self);
gboolean keymux_device_get_locked(KeymuxDevice *self);
gboolean keymux_device_get_registered(KeymuxDevice *self);
gboolean keymux_device_get_available(KeymuxDevice *self);
int keymux_device_get_pin_retries(KeymuxDevice *self);
GVariant *keymux_device_dup_details(KeymuxDevice *self);
GList *keymux_device_get_keys(KeymuxDevice *self);

void keymux_device_unlock(KeymuxDevice *self,
			  const char *secret,
			  KeymuxCallFlags flags,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data);
gboolean keymux_device_unlock_finish(KeymuxDevice *self, GAsyncResult *result, GError **error);
gboolean keymux_device_unlock_sync(KeymuxDevice *self,
				   const char *secret,
				   KeymuxCallFlags flags,
				   GCancellable *cancellable,
				   GError **error);

void keymux_device_lock(KeymuxDevice *self,
			GCancellable *cancellable,
			GAsyncReadyCallback callback,
			gpointer user_data);
gboolean keymux_device_lock_finish(KeymuxDevice *self, GAsyncResult *result, GError **error);
gboolean keymux_device_lock_sync(KeymuxDevice *self, GCancellable *cancellable, GError **error);

void keymux_device_register(KeymuxDevice *self,
			    GCancellable *cancellable,
			    GAsyncReadyCallback callback,
			    gpointer user_data);
gboolean keymux_device_register_finish(KeymuxDevice *self, GAsyncResult *result, GError **error);
gboolean keymux_device_register_sync(KeymuxDevice *self, GCancellable *cancellable, GError **error);

void keymux_device_unregister(KeymuxDevice *self,
			      GCancellable *cancellable,
			      GAsyncReadyCallback callback,
			      gpointer user_data);
gboolean keymux_device_unregister_finish(KeymuxDevice *self, GAsyncResult *result, GError **error);
gboolean keymux_device_unregister_sync(KeymuxDevice *self,
				       GCancellable *cancellable,
				       GError **error);

void keymux_device_change_secret(KeymuxDevice *self,
				 const char *old_secret,
				 const char *new_secret,
				 GCancellable *cancellable,
				 GAsyncReadyCallback callback,
				 gpointer user_data);
gboolean keymux_device_change_secret_finish(KeymuxDevice *self,
					    GAsyncResult *result,
					    GError **error);
gboolean keymux_device_change_secret_sync(KeymuxDevice *self,
					  const char *old_secret,
					  const char *new_secret,
					  GCancellable *cancellable,
					  GError **error);

void keymux_device_generate_key(KeymuxDevice *self,
				const char *algorithm,
				const char *label,
				KeymuxCallFlags flags,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data);
KeymuxKey *keymux_device_generate_key_finish(KeymuxDevice *self,
					     GAsyncResult *result,
					     GError **error);
KeymuxKey *keymux_device_generate_key_sync(KeymuxDevice *self,
					   const char *algorithm,
					   const char *label,
					   KeymuxCallFlags flags,
					   GCancellable *cancellable,
					   GError **error);

void keymux_device_generate_key_full(KeymuxDevice *self,
				     const char *algorithm,
				     const char *label,
				     const char *slot,
				     const char *admin_secret,
				     KeymuxCallFlags flags,
				     GCancellable *cancellable,
				     GAsyncReadyCallback callback,
				     gpointer user_data);
KeymuxKey *keymux_device_generate_key_full_finish(KeymuxDevice *self,
						  GAsyncResult *result,
						  GError **error);
KeymuxKey *keymux_device_generate_key_full_sync(KeymuxDevice *self,
						const char *algorithm,
						const char *label,
						const char *slot,
						const char *admin_secret,
						KeymuxCallFlags flags,
						GCancellable *cancellable,
						GError **error);

void keymux_device_import_key(KeymuxDevice *self,
			      GBytes *data,
			      const char *passphrase,
			      const char *label,
			      GCancellable *cancellable,
			      GAsyncReadyCallback callback,
			      gpointer user_data);
GList *keymux_device_import_key_finish(KeymuxDevice *self, GAsyncResult *result, GError **error);
GList *keymux_device_import_key_sync(KeymuxDevice *self,
				     GBytes *data,
				     const char *passphrase,
				     const char *label,
				     GCancellable *cancellable,
				     GError **error);

/* ---- keys ---- */

const char *keymux_key_get_id(KeymuxKey *self);
const char *keymux_key_get_device_path(KeymuxKey *self);
char *keymux_key_dup_label(KeymuxKey *self);
const char *keymux_key_get_algorithm(KeymuxKey *self);
GStrv keymux_key_dup_usage(KeymuxKey *self);
GBytes *keymux_key_dup_public_key(KeymuxKey *self);
gboolean keymux_key_get_locked(KeymuxKey *self);
gboolean keymux_key_get_available(KeymuxKey *self);
gboolean keymux_key_get_exportable(KeymuxKey *self);

void keymux_key_sign(KeymuxKey *self,
		     const char *algorithm,
		     GBytes *data,
		     KeymuxCallFlags flags,
		     GCancellable *cancellable,
		     GAsyncReadyCallback callback,
		     gpointer user_data);
GBytes *keymux_key_sign_finish(KeymuxKey *self, GAsyncResult *result, GError **error);
GBytes *keymux_key_sign_sync(KeymuxKey *self,
			     const char *algorithm,
			     GBytes *data,
			     KeymuxCallFlags flags,
			     GCancellable *cancellable,
			     GError **error);

void keymux_key_decrypt(KeymuxKey *self,
			const char *algorithm,
			GBytes *data,
			KeymuxCallFlags flags,
			GCancellable *cancellable,
			GAsyncReadyCallback callback,
			gpointer user_data);
GBytes *keymux_key_decrypt_finish(KeymuxKey *self, GAsyncResult *result, GError **error);
GBytes *keymux_key_decrypt_sync(KeymuxKey *self,
				const char *algorithm,
				GBytes *data,
				KeymuxCallFlags flags,
				GCancellable *cancellable,
				GError **error);

void keymux_key_derive(KeymuxKey *self,
		       const char *algorithm,
		       GBytes *data,
		       KeymuxCallFlags flags,
		       GCancellable *cancellable,
		       GAsyncReadyCallback callback,
		       gpointer user_data);
GBytes *keymux_key_derive_finish(KeymuxKey *self, GAsyncResult *result, GError **error);
GBytes *keymux_key_derive_sync(KeymuxKey *self,
			       const char *algorithm,
			       GBytes *data,
			       KeymuxCallFlags flags,
			       GCancellable *cancellable,
			       GError **error);

void keymux_key_set_label(KeymuxKey *self,
			  const char *label,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data);
gboolean keymux_key_set_label_finish(KeymuxKey *self, GAsyncResult *result, GError **error);
gboolean keymux_key_set_label_sync(KeymuxKey *self,
				   const char *label,
				   GCancellable *cancellable,
				   GError **error);

void keymux_key_delete(KeymuxKey *self,
		       GCancellable *cancellable,
		       GAsyncReadyCallback callback,
		       gpointer user_data);
gboolean keymux_key_delete_finish(KeymuxKey *self, GAsyncResult *result, GError **error);
gboolean keymux_key_delete_sync(KeymuxKey *self, GCancellable *cancellable, GError **error);

/* ---- prompting ---- */

KeymuxPrompter *keymux_prompter_new(KeymuxClient *client);
void keymux_prompter_register(KeymuxPrompter *self,
			      GCancellable *cancellable,
			      GAsyncReadyCallback callback,
			      gpointer user_data);
gboolean keymux_prompter_register_finish(KeymuxPrompter *self,
					 GAsyncResult *result,
					 GError **error);
gboolean keymux_prompter_register_sync(KeymuxPrompter *self,
				       GCancellable *cancellable,
				       GError **error);
void keymux_prompter_unregister(KeymuxPrompter *self,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data);
gboolean keymux_prompter_unregister_finish(KeymuxPrompter *self,
					   GAsyncResult *result,
					   GError **error);
gboolean keymux_prompter_unregister_sync(KeymuxPrompter *self,
					 GCancellable *cancellable,
					 GError **error);

const char *keymux_prompt_request_get_device_path(KeymuxPromptRequest *self);
const char *keymux_prompt_request_get_message(KeymuxPromptRequest *self);
GVariant *keymux_prompt_request_get_hints(KeymuxPromptRequest *self);
void keymux_prompt_request_reply(KeymuxPromptRequest *self, const char *secret);
void keymux_prompt_request_cancel(KeymuxPromptRequest *self);
void keymux_prompt_request_cancel_with_reason(KeymuxPromptRequest *self, const char *reason);

G_END_DECLS
