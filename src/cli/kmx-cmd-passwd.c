/* keymuxctl passwd: set, change or remove the password of a device */
#include "config.h"

#include <unistd.h>

#include "keymuxctl.h"

/* a store that never had a password says so in Details; a card always has a PIN */
static gboolean
kmx_cli_device_is_protected(KmxDBusDevice *device)
{
	GVariant *details = kmx_dbus_device_get_details(device);
	gboolean protected = TRUE;

	if (details != NULL)
		g_variant_lookup(details, "protected", "b", &protected);
	return protected;
}

gboolean
kmx_cmd_passwd(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KmxDBusDevice) device = NULL;
	g_autoptr(KmxSecret) old = NULL;
	g_autoptr(KmxSecret) new = NULL;
	g_autofree char *prompt = NULL;
	gboolean interactive;
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
	if (!interactive || kmx_cli_device_is_protected(device)) {
		prompt = g_strdup_printf("Current password or PIN of %s: ",
					 kmx_dbus_device_get_id(device));
		old = kmx_cli_read_secret(secret_fd, prompt, error);
		if (old == NULL)
			return FALSE;
	} else {
		old = kmx_secret_new_from_string("");
	}
	g_free(prompt);
	prompt = g_strdup_printf("New password or PIN of %s: ", kmx_dbus_device_get_id(device));
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
					    KMX_ERROR,
					    KMX_ERROR_INVALID_ARGUMENT,
					    "the two new passwords differ: nothing changed");
			return FALSE;
		}
	}

	/* a card may want its PIN pad or a touch */
	kmx_cli_use_long_timeout(device);
	return kmx_dbus_device_call_change_secret_sync(device,
						       kmx_secret_get_string(old),
						       kmx_secret_get_string(new),
						       NULL,
						       error);
}
