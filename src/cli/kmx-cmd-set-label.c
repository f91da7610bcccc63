/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl set-label: rename a key */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_set_label(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxKey) key = NULL;
	g_autofree char *device_name = NULL;
	const GOptionEntry entries[] = {
	    {"device",
	     'd',
	     0,
	     G_OPTION_ARG_STRING,
	     &device_name,
	     "The device, when the key is on several",
	     "DEVICE"},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(cli,
				   "set-label",
				   "KEY LABEL",
				   "Change the label of a key; works while its device is locked.",
				   entries,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("set-label", argc, 2, 2, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	key = kmx_cli_find_one_key(cli, argv[1], device_name, error);
	if (key == NULL)
		return FALSE;
	return keymux_key_set_label_sync(key, argv[2], NULL, error);
}
