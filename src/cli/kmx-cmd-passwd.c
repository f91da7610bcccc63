/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl passwd: set, change or remove the password of a device */
#include "config.h"

#include <unistd.h>

#include "keymuxctl.h"

/* on a terminal, what the choice means, before anything is asked */
static void
kmx_cli_passwd_explain(KeymuxDevice *device, gboolean protected)
{
	const char *id = keymux_device_get_id(device);

	if (!protected)
		g_printerr("%s is unprotected (no password): any program of yours can use its\n"
			   "keys while keymuxd runs, and anyone who can read its files can\n"
			   "decrypt them. With a password, the keys are encrypted with it on\n"
			   "disk, and the store locks (keymuxctl lock, the idle timeout, the\n"
			   "screen lock, suspend) until the password is given again. Leave the\n"
			   "new password empty to keep it unprotected.\n",
			   id);
	else
		g_printerr("Changing the password or PIN of %s. Where the device allows it,\n"
			   "an empty new password removes the protection: its keys become\n"
			   "usable by any program of yours without asking.\n",
			   id);
}

static void
kmx_cli_passwd_done(KeymuxDevice *device, gboolean was_protected, KmxSecret *new)
{
	const char *id = keymux_device_get_id(device);
	gboolean now_protected = !kmx_secret_is_empty(new);

	if (!was_protected && now_protected)
		g_printerr("%s is now protected by a password.\n", id);
	else if (was_protected && !now_protected)
		g_printerr("%s is now unprotected (no password).\n", id);
	else
		g_printerr("The password or PIN of %s is changed.\n", id);
}

gboolean
kmx_cmd_passwd(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KmxSecret) old = NULL;
	g_autoptr(KmxSecret) new = NULL;
	g_autofree char *prompt = NULL;
	gboolean interactive;
	gboolean protected;
	int secret_fd = -1;
	const GOptionEntry entries[] = {
	    {"secret-fd",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &secret_fd,
	     "Read the old and the new secret, one a line, from this fd",
	     "N"},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(
		cli,
		"passwd",
		"DEVICE",
		"Set or change the password or PIN of a device. On a terminal it "
		"asks for the current one (unless there is none), the new one and "
		"the new one again; else it reads two lines from stdin or "
		"--secret-fd: the current one (empty if none) and the new one.",
		entries,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("passwd", argc, 1, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	device = kmx_cli_find_device(cli, argv[1], error);
	if (device == NULL)
		return FALSE;

	interactive = isatty(secret_fd >= 0 ? secret_fd : STDIN_FILENO);
	protected = kmx_cli_device_is_protected(device);
	if (interactive)
		kmx_cli_passwd_explain(device, protected);
	if (!interactive || protected) {
		prompt = g_strdup_printf("Current password or PIN of %s: ",
					 keymux_device_get_id(device));
		old = kmx_cli_read_secret(secret_fd, prompt, error);
		if (old == NULL)
			return FALSE;
	} else {
		old = kmx_secret_new_from_string("");
	}
	g_free(prompt);
	prompt = g_strdup_printf("New password or PIN of %s: ", keymux_device_get_id(device));
	new = kmx_cli_read_secret(secret_fd, prompt, error);
	if (new == NULL)
		return FALSE;
	if (interactive) {
		g_autoptr(KmxSecret)
		    again = kmx_cli_read_secret(secret_fd, "Repeat the new one: ", error);
		if (again == NULL)
			return FALSE;
		if (!kmx_secret_equal(new, again)) {
			g_set_error_literal(error,
					    KEYMUX_ERROR,
					    KEYMUX_ERROR_INVALID_ARGUMENT,
					    "the two new passwords differ: nothing changed");
			return FALSE;
		}
		if (!protected && kmx_secret_is_empty(new)) {
			g_printerr("%s stays unprotected (no password).\n",
				   keymux_device_get_id(device));
			return TRUE;
		}
	}

	/* a card may want its PIN pad or a touch */
	kmx_cli_may_prompt(cli, device);
	if (!keymux_device_change_secret_sync(device,
					      kmx_secret_get_string(old),
					      kmx_secret_get_string(new),
					      NULL,
					      error))
		return FALSE;
	if (interactive)
		kmx_cli_passwd_done(device, protected, new);
	return TRUE;
}
