/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl generate: make a new key on a device */
#include "config.h"

#include "kmx-algorithm.h"

#include "keymuxctl.h"

static const char *const kmx_cli_key_types[] = {
    "rsa2048",
    "rsa3072",
    "rsa4096",
    "ecdsa-p256",
    "ecdsa-p384",
    "ed25519",
    "x25519",
    NULL,
};

/**
 * kmx_cli_print_new_keys:
 * @keys: (element-type KeymuxKey): the keys keymuxd made
 *
 * Prints the ids of new keys, one a line, or them as JSON objects.
 */
void
kmx_cli_print_new_keys(KmxCli *cli, GList *keys)
{
	g_autoptr(KmxJson) json = kmx_json_new();

	kmx_json_begin_array(json);
	for (GList *l = keys; l != NULL; l = l->next) {
		if (cli->json)
			kmx_cli_json_key(cli, json, l->data);
		else
			g_print("%s\n", keymux_key_get_id(l->data));
	}
	kmx_json_end_array(json);
	if (cli->json)
		kmx_json_print(json);
}

gboolean
kmx_cmd_generate(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autofree char *device_name = NULL;
	g_autofree char *label = NULL;
	g_autoptr(KeymuxKey) key = NULL;
	g_autolist(KeymuxKey) keys = NULL;
	g_autofree char *slot = NULL;
	gboolean replace = FALSE;
	int admin_fd = -1;
	g_autoptr(KmxSecret) admin = NULL;
	const GOptionEntry entries[] = {
	    {"device",
	     'd',
	     0,
	     G_OPTION_ARG_STRING,
	     &device_name,
	     "The device (default: " KMX_CLI_DEFAULT_DEVICE ")",
	     "DEVICE"},
	    {"label", 'l', 0, G_OPTION_ARG_STRING, &label, "A name for people", "LABEL"},
	    {"slot",
	     's',
	     0,
	     G_OPTION_ARG_STRING,
	     &slot,
	     "Where a device with slots puts the key (a card's sig, dec or aut)",
	     "SLOT"},
	    {"replace", 0, 0, G_OPTION_ARG_NONE, &replace, "Replace the key in that slot", NULL},
	    {"admin-pin-fd",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &admin_fd,
	     "Read the device's admin PIN from one line of this fd",
	     "N"},
	    G_OPTION_ENTRY_NULL,
	};

	if (!kmx_cli_parse_options(cli,
				   "generate",
				   "ALGORITHM",
				   "Generate a key and print its id. ALGORITHM is one of rsa2048, "
				   "rsa3072, rsa4096, ecdsa-p256, ecdsa-p384, ed25519, x25519.",
				   entries,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("generate", argc, 1, 1, error))
		return FALSE;
	if (kmx_key_type_from_string(argv[1]) == KMX_KEY_TYPE_UNKNOWN) {
		g_autofree char *known = g_strjoinv(", ", (char **)kmx_cli_key_types);
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    "generate: unknown algorithm '%s', use one of %s",
			    argv[1],
			    known);
		return FALSE;
	}
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	device = kmx_cli_find_device(cli,
				     device_name != NULL ? device_name : KMX_CLI_DEFAULT_DEVICE,
				     error);
	if (device == NULL)
		return FALSE;
	/* a card may ask for its PIN or a touch */
	kmx_cli_may_prompt(cli, device);
	if (admin_fd >= 0) {
		admin = kmx_cli_read_secret(admin_fd, "Admin PIN: ", error);
		if (admin == NULL)
			return FALSE;
	}
	key = keymux_device_generate_key_full_sync(
	    device,
	    argv[1],
	    label != NULL ? label : "",
	    slot,
	    admin != NULL ? kmx_secret_get_string(admin) : NULL,
	    replace ? KEYMUX_CALL_FLAGS_REPLACE : KEYMUX_CALL_FLAGS_NONE,
	    NULL,
	    error);
	if (key == NULL)
		return FALSE;
	keys = g_list_prepend(NULL, g_steal_pointer(&key));
	kmx_cli_print_new_keys(cli, keys);
	return TRUE;
}
