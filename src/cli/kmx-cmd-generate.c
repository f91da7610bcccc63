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
 * @paths: the object paths keymuxd answered
 *
 * Prints the ids of new keys, one a line, or them as JSON objects.
 */
void
kmx_cli_print_new_keys(KmxCli *cli, const char *const *paths)
{
	g_autoptr(KmxJson) json = kmx_json_new();

	kmx_cli_settle(cli);
	kmx_json_begin_array(json);
	for (guint i = 0; paths[i] != NULL; i++) {
		KmxDBusKey *key = kmx_cli_get_key_at(cli, paths[i]);
		/* the last path element is the key id, should the signal be late */
		g_autofree char *id = g_path_get_basename(paths[i]);

		if (cli->json && key != NULL) {
			kmx_cli_json_key(cli, json, key);
		} else if (cli->json) {
			kmx_json_begin_object(json);
			kmx_json_key(json, "id");
			kmx_json_string(json, id);
			kmx_json_key(json, "object_path");
			kmx_json_string(json, paths[i]);
			kmx_json_end_object(json);
		} else {
			g_print("%s\n", key != NULL ? kmx_dbus_key_get_id(key) : id);
		}
	}
	kmx_json_end_array(json);
	if (cli->json)
		kmx_json_print(json);
}

gboolean
kmx_cmd_generate(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KmxDBusDevice) device = NULL;
	g_autofree char *device_name = NULL;
	g_autofree char *label = NULL;
	g_autofree char *path = NULL;
	g_autofree char *slot = NULL;
	gboolean replace = FALSE;
	int admin_fd = -1;
	g_autoptr(KmxSecret) admin = NULL;
	GVariantBuilder options;
	const char *paths[2] = {NULL, NULL};
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
	kmx_cli_use_long_timeout(device);
	g_variant_builder_init(&options, G_VARIANT_TYPE_VARDICT);
	if (slot != NULL)
		g_variant_builder_add(&options, "{sv}", "slot", g_variant_new_string(slot));
	if (replace)
		g_variant_builder_add(&options, "{sv}", "replace", g_variant_new_boolean(TRUE));
	if (admin_fd >= 0) {
		admin = kmx_cli_read_secret(admin_fd, "Admin PIN: ", error);
		if (admin == NULL) {
			g_variant_builder_clear(&options);
			return FALSE;
		}
		g_variant_builder_add(&options,
				      "{sv}",
				      "admin-secret",
				      g_variant_new_string(kmx_secret_get_string(admin)));
	}
	if (!kmx_dbus_device_call_generate_key_sync(device,
						    argv[1],
						    label != NULL ? label : "",
						    g_variant_builder_end(&options),
						    &path,
						    NULL,
						    error))
		return FALSE;
	paths[0] = path;
	kmx_cli_print_new_keys(cli, paths);
	return TRUE;
}
