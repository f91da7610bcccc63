/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl forget: delete a device's secret remembered in the login keyring */
#include "config.h"

#include <string.h>

#include "kmx-remembered.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_forget(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree char *id = NULL;

	if (!kmx_cli_parse_options(
		cli,
		"forget",
		"DEVICE",
		"Delete the secret of DEVICE remembered in the login keyring (the \"Remember\" "
		"choice of the desktop's prompt); the device is then prompted for again. "
		"DEVICE may also be the id of a device that is not connected.",
		NULL,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("forget", argc, 1, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	device = kmx_cli_find_device(cli, argv[1], &error_local);
	if (device != NULL) {
		id = g_strdup(keymux_device_get_id(device));
	} else if (g_error_matches(error_local, KEYMUX_ERROR, KEYMUX_ERROR_NOT_FOUND) &&
		   strchr(argv[1], ':') != NULL) {
		/* a card that is not inserted: its id as given */
		id = g_strdup(argv[1]);
	} else {
		g_propagate_error(error, g_steal_pointer(&error_local));
		return FALSE;
	}
	g_clear_error(&error_local);
	if (!kmx_remembered_clear_sync(id, &error_local)) {
		if (error_local != NULL) {
			g_set_error(error,
				    KEYMUX_ERROR,
				    KEYMUX_ERROR_UNAVAILABLE,
				    "cannot reach the login keyring: %s",
				    error_local->message);
			return FALSE;
		}
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_FOUND,
			    "no secret of %s is remembered in the login keyring",
			    id);
		return FALSE;
	}
	g_print("The secret of %s is forgotten: it will be asked for again.\n", id);
	return TRUE;
}
