/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl delete: remove a key for good */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_delete(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxKey) key = NULL;
	g_autofree char *device_name = NULL;
	gboolean yes = FALSE;
	const GOptionEntry entries[] = {
	    {"device",
	     'd',
	     0,
	     G_OPTION_ARG_STRING,
	     &device_name,
	     "The device, when the key is on several",
	     "DEVICE"},
	    {"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "Do not ask for confirmation", NULL},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(cli,
				   "delete",
				   "KEY",
				   "Delete a key and every file of it. On a terminal, asks first "
				   "unless --yes is given.",
				   entries,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("delete", argc, 1, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	key = kmx_cli_find_one_key(cli, argv[1], device_name, error);
	if (key == NULL)
		return FALSE;
	if (!yes && kmx_cli_stdin_is_tty()) {
		g_autofree char *question =
		    g_strdup_printf("Delete %s key %s '%s' from %s? This cannot be undone.",
				    keymux_key_get_algorithm(key),
				    keymux_key_get_id(key),
				    kmx_cli_label(key),
				    kmx_cli_key_device_id(cli, key));
		if (!kmx_cli_confirm(question)) {
			g_set_error_literal(error,
					    KEYMUX_ERROR,
					    KEYMUX_ERROR_CANCELLED,
					    "nothing deleted");
			return FALSE;
		}
	}
	return keymux_key_delete_sync(key, NULL, error);
}
