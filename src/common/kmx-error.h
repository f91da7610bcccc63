/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the error domain shared by the daemon and its clients */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * KmxError:
 * @KMX_ERROR_FAILED: something failed that has no better code
 * @KMX_ERROR_NOT_FOUND: no such device or key
 * @KMX_ERROR_LOCKED: the device must be unlocked first
 * @KMX_ERROR_UNAVAILABLE: the device cannot be used now (card removed, TPM gone)
 * @KMX_ERROR_BAD_SECRET: wrong password or PIN
 * @KMX_ERROR_BLOCKED: PIN retries exhausted
 * @KMX_ERROR_NOT_SUPPORTED: the key or device cannot do this
 * @KMX_ERROR_INVALID_ARGUMENT: malformed argument
 * @KMX_ERROR_EXISTS: the object already exists
 * @KMX_ERROR_CANCELLED: the request was cancelled
 * @KMX_ERROR_DENIED: the caller may not do this
 *
 * Error codes of the %KMX_ERROR domain; on the bus they are
 * org.keymux.Keystore1.Error.NotFound and so on.
 */
typedef enum {
	KMX_ERROR_FAILED,
	KMX_ERROR_NOT_FOUND,
	KMX_ERROR_LOCKED,
	KMX_ERROR_UNAVAILABLE,
	KMX_ERROR_BAD_SECRET,
	KMX_ERROR_BLOCKED,
	KMX_ERROR_NOT_SUPPORTED,
	KMX_ERROR_INVALID_ARGUMENT,
	KMX_ERROR_EXISTS,
	KMX_ERROR_CANCELLED,
	KMX_ERROR_DENIED,
} KmxError;

#define KMX_ERROR (kmx_error_quark())
GQuark kmx_error_quark(void);

const char *kmx_error_to_dbus_name(KmxError code);

void kmx_error_normalize(GError **error);

void kmx_error_strip_remote(GError *error);

G_END_DECLS
