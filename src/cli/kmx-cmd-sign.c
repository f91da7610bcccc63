/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl sign: sign a file or stdin with a key */
#include "config.h"

#include "kmx-algorithm.h"

#include "keymuxctl.h"

/* the usual choice for each key type; RSA gets PSS, the modern padding */
static const char *
kmx_cli_default_sign_algorithm(const char *key_algorithm)
{
	switch (kmx_key_type_from_string(key_algorithm)) {
	case KMX_KEY_TYPE_ED25519:
		return "ed25519";
	case KMX_KEY_TYPE_ECDSA_P256:
		return "ecdsa-sha256";
	case KMX_KEY_TYPE_ECDSA_P384:
		return "ecdsa-sha384";
	case KMX_KEY_TYPE_RSA2048:
	case KMX_KEY_TYPE_RSA3072:
	case KMX_KEY_TYPE_RSA4096:
		return "rsa-pss-sha256";
	default:
		return NULL;
	}
}

gboolean
kmx_cmd_sign(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxKey) key = NULL;
	g_autoptr(GBytes) data = NULL;
	g_autoptr(GBytes) signature = NULL;
	g_autofree char *algorithm = NULL;
	gboolean prehashed = FALSE;
	gboolean base64 = FALSE;
	gboolean hex = FALSE;
	const GOptionEntry entries[] = {
	    {"algorithm",
	     'a',
	     0,
	     G_OPTION_ARG_STRING,
	     &algorithm,
	     "The signature algorithm (default: by key type)",
	     "ALGORITHM"},
	    {"prehashed",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &prehashed,
	     "The input is already the digest",
	     NULL},
	    {"base64", 0, 0, G_OPTION_ARG_NONE, &base64, "Print the signature in base64", NULL},
	    {"hex", 0, 0, G_OPTION_ARG_NONE, &hex, "Print the signature in hex", NULL},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(
		cli,
		"sign",
		"KEY [FILE|-]",
		"Sign FILE (default: stdin) and write the signature to stdout. "
		"The default algorithm is ed25519, ecdsa-sha256, ecdsa-sha384 or "
		"rsa-pss-sha256, by key type. The raw algorithms rsa-pkcs1 and ecdsa "
		"sign FILE as given: a DigestInfo (or any string up to the modulus "
		"length minus 11 bytes), or a digest.",
		entries,
		&argc,
		&argv,
		error))
		return FALSE;
	if (!kmx_cli_check_args("sign", argc, 1, 2, error))
		return FALSE;
	if (!kmx_cli_check_output_format("sign", base64, hex, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	key = kmx_cli_find_key(cli, argv[1], NULL, error);
	if (key == NULL)
		return FALSE;
	if (algorithm == NULL) {
		const char *fallback =
		    kmx_cli_default_sign_algorithm(keymux_key_get_algorithm(key));
		if (fallback == NULL) {
			g_set_error(error,
				    KEYMUX_ERROR,
				    KEYMUX_ERROR_NOT_SUPPORTED,
				    "key %.16s is an %s key, which cannot sign",
				    keymux_key_get_id(key),
				    keymux_key_get_algorithm(key));
			return FALSE;
		}
		algorithm = g_strdup(fallback);
	}
	data = kmx_cli_read_file(argc > 2 ? argv[2] : NULL, error);
	if (data == NULL)
		return FALSE;
	/* the key may have to be unlocked through a prompt first */
	kmx_cli_may_prompt(cli, key);
	signature =
	    keymux_key_sign_sync(key,
				 algorithm,
				 data,
				 prehashed ? KEYMUX_CALL_FLAGS_PREHASHED : KEYMUX_CALL_FLAGS_NONE,
				 NULL,
				 error);
	if (signature == NULL)
		return FALSE;
	return kmx_cli_write_binary(signature, base64, hex, FALSE, error);
}
