/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl lock, lock-all: drop cached secrets and unlocked keys */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_lock(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;

	if (!kmx_cli_parse_options(
		cli,
		"lock",
		"DEVICE",
		"Lock a device: its cached secret and unlocked keys are dropped.",
		NULL,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("lock", argc, 1, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	device = kmx_cli_find_device(cli, argv[1], error);
	if (device == NULL)
		return FALSE;
	return keymux_device_lock_sync(device, NULL, error);
}

gboolean
kmx_cmd_lock_all(KmxCli *cli, int argc, char **argv, GError **error)
{
	if (!kmx_cli_parse_options(cli,
				   "lock-all",
				   "",
				   "Lock every device.",
				   NULL,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("lock-all", argc, 0, 0, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	return keymux_client_lock_all_sync(cli->client, NULL, error);
}
