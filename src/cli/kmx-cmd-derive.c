/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl derive: agree on a shared secret with a peer's public key */
#include "config.h"

#include "kmx-algorithm.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_derive(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxKey) key = NULL;
	g_autoptr(GBytes) file = NULL;
	g_autoptr(GBytes) peer = NULL;
	g_autoptr(GBytes) shared = NULL;
	g_autofree char *algorithm = NULL;
	gboolean base64 = FALSE;
	gboolean hex = FALSE;
	const GOptionEntry entries[] = {
	    {"algorithm",
	     'a',
	     0,
	     G_OPTION_ARG_STRING,
	     &algorithm,
	     "ecdh or x25519 (default: by key type)",
	     "ALGORITHM"},
	    {"base64", 0, 0, G_OPTION_ARG_NONE, &base64, "Print the secret in base64", NULL},
	    {"hex", 0, 0, G_OPTION_ARG_NONE, &hex, "Print the secret in hex", NULL},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(cli,
				   "derive",
				   "KEY PEER_PUBLIC_FILE",
				   "Derive the raw shared secret of KEY and a peer public key "
				   "(PEM or DER SubjectPublicKeyInfo) and write it to stdout.",
				   entries,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("derive", argc, 2, 2, error))
		return FALSE;
	if (!kmx_cli_check_output_format("derive", base64, hex, error))
		return FALSE;
	file = kmx_cli_read_file(argv[2], error);
	if (file == NULL)
		return FALSE;
	peer = kmx_cli_pem_decode(file, "PUBLIC KEY", error);
	if (peer == NULL) {
		g_prefix_error(error, "%s: ", argv[2]);
		return FALSE;
	}
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	key = kmx_cli_find_key(cli, argv[1], NULL, error);
	if (key == NULL)
		return FALSE;
	if (algorithm == NULL) {
		KmxKeyType type = kmx_key_type_from_string(keymux_key_get_algorithm(key));
		algorithm = g_strdup(type == KMX_KEY_TYPE_X25519 ? "x25519" : "ecdh");
	}

	kmx_cli_may_prompt(cli, key);
	shared = keymux_key_derive_sync(key, algorithm, peer, KEYMUX_CALL_FLAGS_NONE, NULL, error);
	if (shared == NULL)
		return FALSE;
	return kmx_cli_write_binary(shared, base64, hex, TRUE, error);
}
