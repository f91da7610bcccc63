/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl unlock: give a device its password or PIN */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_unlock(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KmxSecret) secret = NULL;
	g_autofree char *prompt = NULL;
	int secret_fd = -1;
	const GOptionEntry entries[] = {
	    {"secret-fd", 0, 0, G_OPTION_ARG_INT, &secret_fd, "Read the secret from this fd", "N"},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(
		cli,
		"unlock",
		"DEVICE",
		"Unlock a device. The secret is read from the terminal without echo, "
		"else from one line of stdin or of --secret-fd; an empty one asks "
		"the registered prompter.",
		entries,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("unlock", argc, 1, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	device = kmx_cli_find_device(cli, argv[1], error);
	if (device == NULL)
		return FALSE;
	if (!keymux_device_get_locked(device)) {
		g_printerr("keymuxctl: %s is not locked\n", keymux_device_get_id(device));
		return TRUE;
	}

	prompt = g_strdup_printf("Password or PIN for %s (%s): ",
				 kmx_cli_label(device),
				 keymux_device_get_id(device));
	secret = kmx_cli_read_secret(secret_fd, prompt, error);
	if (secret == NULL)
		return FALSE;
	/* an empty secret makes keymuxd ask the prompter, which may take a while */
	kmx_cli_may_prompt(cli, device);
	return keymux_device_unlock_sync(device,
					 kmx_secret_get_string(secret),
					 KEYMUX_CALL_FLAGS_NONE,
					 NULL,
					 error);
}
