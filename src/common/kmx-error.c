/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the error domain, registered with GDBus */
#include "config.h"

#include <gio/gio.h>

#include "kmx-error.h"
#include "kmx-names.h"

static const GDBusErrorEntry kmx_error_entries[] = {
    {KMX_ERROR_FAILED, KMX_DBUS_ERROR_PREFIX "Failed"},
    {KMX_ERROR_NOT_FOUND, KMX_DBUS_ERROR_PREFIX "NotFound"},
    {KMX_ERROR_LOCKED, KMX_DBUS_ERROR_PREFIX "Locked"},
    {KMX_ERROR_UNAVAILABLE, KMX_DBUS_ERROR_PREFIX "Unavailable"},
    {KMX_ERROR_BAD_SECRET, KMX_DBUS_ERROR_PREFIX "BadSecret"},
    {KMX_ERROR_BLOCKED, KMX_DBUS_ERROR_PREFIX "Blocked"},
    {KMX_ERROR_NOT_SUPPORTED, KMX_DBUS_ERROR_PREFIX "NotSupported"},
    {KMX_ERROR_INVALID_ARGUMENT, KMX_DBUS_ERROR_PREFIX "InvalidArgument"},
    {KMX_ERROR_EXISTS, KMX_DBUS_ERROR_PREFIX "Exists"},
    {KMX_ERROR_CANCELLED, KMX_DBUS_ERROR_PREFIX "Cancelled"},
    {KMX_ERROR_DENIED, KMX_DBUS_ERROR_PREFIX "Denied"},
};

G_STATIC_ASSERT(G_N_ELEMENTS(kmx_error_entries) == KMX_ERROR_DENIED + 1);

GQuark
kmx_error_quark(void)
{
	static gsize quark = 0;

	g_dbus_error_register_error_domain("kmx-error-quark",
					   &quark,
					   kmx_error_entries,
					   G_N_ELEMENTS(kmx_error_entries));
	return (GQuark)quark;
}

/**
 * kmx_error_to_dbus_name:
 * @code: a #KmxError
 *
 * Returns: the D-Bus error name of @code
 */
const char *
kmx_error_to_dbus_name(KmxError code)
{
	if ((guint)code >= G_N_ELEMENTS(kmx_error_entries))
		code = KMX_ERROR_FAILED;
	return kmx_error_entries[code].dbus_error_name;
}

/**
 * kmx_error_normalize:
 * @error: (inout): an error, or a pointer to %NULL
 *
 * Maps a stray error of another domain to a %KMX_ERROR code, keeping its
 * message: every error that leaves the daemon is one callers can act on.
 */
void
kmx_error_normalize(GError **error)
{
	GError *e;
	int code = KMX_ERROR_FAILED;

	if (error == NULL || *error == NULL)
		return;
	e = *error;
	if (e->domain == KMX_ERROR)
		return;
	if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		code = KMX_ERROR_CANCELLED;
	else if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		code = KMX_ERROR_NOT_FOUND;
	else if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_EXISTS))
		code = KMX_ERROR_EXISTS;
	else if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) ||
		 g_error_matches(e, G_IO_ERROR, G_IO_ERROR_INVALID_DATA))
		code = KMX_ERROR_INVALID_ARGUMENT;
	else if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
		code = KMX_ERROR_NOT_SUPPORTED;
	else if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED))
		code = KMX_ERROR_DENIED;
	e->domain = KMX_ERROR;
	e->code = code;
}

/**
 * kmx_error_strip_remote:
 * @error: an error received over D-Bus
 *
 * Removes the "GDBus.Error:org.keymux..." prefix so a person sees only the
 * message.
 */
void
kmx_error_strip_remote(GError *error)
{
	if (error != NULL && g_dbus_error_is_remote_error(error))
		g_dbus_error_strip_remote_error(error);
}
