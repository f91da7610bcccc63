/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl import: bring a private key file to a device */
#include "config.h"

#include "keymuxctl.h"

/* the keys of the file, or NULL with @error set */
static GList *
kmx_cli_import(KeymuxDevice *device,
	       GBytes *bytes,
	       KmxSecret *passphrase,
	       const char *label,
	       GError **error)
{
	return keymux_device_import_key_sync(device,
					     bytes,
					     kmx_secret_get_string(passphrase),
					     label != NULL ? label : "",
					     NULL,
					     error);
}

gboolean
kmx_cmd_import(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KmxSecret) data = NULL;
	g_autoptr(KmxSecret) passphrase = NULL;
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autolist(KeymuxKey) keys = NULL;
	g_autofree char *device_name = NULL;
	g_autofree char *label = NULL;
	int passphrase_fd = -1;
	const GOptionEntry entries[] = {
	    {"device",
	     'd',
	     0,
	     G_OPTION_ARG_STRING,
	     &device_name,
	     "The device (default: " KMX_CLI_DEFAULT_DEVICE ")",
	     "DEVICE"},
	    {"label", 'l', 0, G_OPTION_ARG_STRING, &label, "A name for people", "LABEL"},
	    {"passphrase-fd",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &passphrase_fd,
	     "Read the passphrase of FILE from this fd",
	     "N"},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(
		cli,
		"import",
		"FILE|-",
		"Import a private key (PKCS#8, PKCS#1, SEC1, PKCS#12 or OpenSSH; "
		"PEM or DER) and print its id. The passphrase of an encrypted "
		"file is asked on the terminal, or read from --passphrase-fd.",
		entries,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("import", argc, 1, 1, error))
		return FALSE;
	data = kmx_cli_read_secret_file(argv[1], error);
	if (data == NULL)
		return FALSE;
	bytes = kmx_secret_to_bytes(data);
	if (passphrase_fd >= 0) {
		passphrase = kmx_cli_read_secret(passphrase_fd, "", error);
		if (passphrase == NULL)
			return FALSE;
	} else {
		passphrase = kmx_secret_new_from_string("");
	}
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	device = kmx_cli_find_device(cli,
				     device_name != NULL ? device_name : KMX_CLI_DEFAULT_DEVICE,
				     error);
	if (device == NULL)
		return FALSE;
	kmx_cli_may_prompt(cli, device);

	/* try without a passphrase first: most files have none */
	keys = kmx_cli_import(device, bytes, passphrase, label, &error_local);
	if (error_local == NULL) {
		kmx_cli_print_new_keys(cli, keys);
		return TRUE;
	}
	if (!g_error_matches(error_local, KEYMUX_ERROR, KEYMUX_ERROR_BAD_SECRET) ||
	    passphrase_fd >= 0) {
		g_propagate_error(error, g_steal_pointer(&error_local));
		return FALSE;
	}
	if (!kmx_cli_stdin_is_tty() || g_strcmp0(argv[1], "-") == 0) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_BAD_SECRET,
			    "%s is encrypted: give its passphrase with --passphrase-fd",
			    argv[1]);
		return FALSE;
	}
	g_clear_error(&error_local);
	for (guint attempt = 0; attempt < 3; attempt++) {
		g_autofree char *prompt = g_strdup_printf("Passphrase for %s: ", argv[1]);
		g_clear_pointer(&passphrase, kmx_secret_unref);
		g_clear_error(&error_local);
		passphrase = kmx_cli_read_secret(-1, prompt, error);
		if (passphrase == NULL)
			return FALSE;
		keys = kmx_cli_import(device, bytes, passphrase, label, &error_local);
		if (error_local == NULL) {
			kmx_cli_print_new_keys(cli, keys);
			return TRUE;
		}
		if (!g_error_matches(error_local, KEYMUX_ERROR, KEYMUX_ERROR_BAD_SECRET))
			break;
		g_printerr("keymuxctl: %s\n", error_local->message);
	}
	g_propagate_error(error, g_steal_pointer(&error_local));
	return FALSE;
}
