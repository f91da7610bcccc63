/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl decrypt: decrypt a file or stdin with an RSA key */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_decrypt(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxKey) key = NULL;
	g_autoptr(GBytes) data = NULL;
	g_autoptr(GBytes) plaintext = NULL;
	g_autofree char *algorithm = NULL;
	gboolean base64 = FALSE;
	gboolean hex = FALSE;
	const GOptionEntry entries[] = {
	    {"algorithm",
	     'a',
	     0,
	     G_OPTION_ARG_STRING,
	     &algorithm,
	     "rsa-oaep-sha256 (default) or rsa-pkcs1",
	     "ALGORITHM"},
	    {"base64", 0, 0, G_OPTION_ARG_NONE, &base64, "Print the plaintext in base64", NULL},
	    {"hex", 0, 0, G_OPTION_ARG_NONE, &hex, "Print the plaintext in hex", NULL},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(
		cli,
		"decrypt",
		"KEY [FILE|-]",
		"Decrypt FILE (default: stdin) and write the plaintext to stdout.",
		entries,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("decrypt", argc, 1, 2, error))
		return FALSE;
	if (!kmx_cli_check_output_format("decrypt", base64, hex, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	key = kmx_cli_find_key(cli, argv[1], NULL, error);
	if (key == NULL)
		return FALSE;
	data = kmx_cli_read_file(argc > 2 ? argv[2] : NULL, error);
	if (data == NULL)
		return FALSE;

	kmx_cli_may_prompt(cli, key);
	plaintext = keymux_key_decrypt_sync(key,
					    algorithm != NULL ? algorithm : "rsa-oaep-sha256",
					    data,
					    KEYMUX_CALL_FLAGS_NONE,
					    NULL,
					    error);
	if (plaintext == NULL)
		return FALSE;
	return kmx_cli_write_binary(plaintext, base64, hex, TRUE, error);
}
