/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl export-public: print the public key of a key */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "keymuxctl.h"
#include "kmx-ssh.h"

gboolean
kmx_cmd_export_public(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxKey) key = NULL;
	g_autofree char *pem = NULL;
	g_autoptr(GBytes) spki = NULL;
	const guint8 *der;
	gsize len = 0;
	gboolean as_der = FALSE;
	gboolean as_ssh = FALSE;
	const GOptionEntry entries[] = {
	    {"der", 0, 0, G_OPTION_ARG_NONE, &as_der, "Write DER instead of PEM", NULL},
	    {"ssh",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &as_ssh,
	     "Write the OpenSSH authorized_keys line (as ssh-add -L)",
	     NULL},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(
		cli,
		"export-public",
		"KEY",
		"Print the public key (SubjectPublicKeyInfo) as PEM \"PUBLIC KEY\".",
		entries,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("export-public", argc, 1, 1, error))
		return FALSE;
	if (as_der && as_ssh) {
		g_set_error_literal(error,
				    KEYMUX_ERROR,
				    KEYMUX_ERROR_INVALID_ARGUMENT,
				    "--der and --ssh exclude each other");
		return FALSE;
	}
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	key = kmx_cli_find_key(cli, argv[1], NULL, error);
	if (key == NULL)
		return FALSE;
	spki = keymux_key_dup_public_key(key);
	if (spki == NULL) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_FAILED,
			    "keymuxd gave no public key for %s",
			    keymux_key_get_id(key));
		return FALSE;
	}
	der = g_bytes_get_data(spki, &len);
	if (len == 0) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_FAILED,
			    "keymuxd gave an empty public key for %s",
			    keymux_key_get_id(key));
		return FALSE;
	}
	if (as_der)
		return kmx_cli_write_all(STDOUT_FILENO, der, len, error);
	if (as_ssh) {
		g_autoptr(GBytes) blob = kmx_ssh_public_key_from_spki(spki, NULL, error);
		g_autofree char *line = NULL;

		if (blob == NULL) {
			g_prefix_error(error, "key %s: ", keymux_key_get_id(key));
			return FALSE;
		}
		line = kmx_ssh_authorized_key(blob, kmx_cli_label(key));
		pem = g_strconcat(line, "\n", NULL);
		return kmx_cli_write_all(STDOUT_FILENO, pem, strlen(pem), error);
	}
	pem = kmx_cli_pem_encode("PUBLIC KEY", der, len);
	return kmx_cli_write_all(STDOUT_FILENO, pem, strlen(pem), error);
}
