/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl keys: list keys */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_keys(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autolist(KeymuxKey) keys = NULL;
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KmxJson) json = kmx_json_new();
	g_autoptr(KmxTable)
	    table = kmx_table_new(5, "KEY ID", "ALGORITHM", "USAGE", "LABEL", "DEVICE");

	if (!kmx_cli_parse_options(cli,
				   "keys",
				   "[DEVICE]",
				   "List the keys of every device, or of DEVICE.",
				   NULL,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("keys", argc, 0, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	if (argc > 1) {
		device = kmx_cli_find_device(cli, argv[1], error);
		if (device == NULL)
			return FALSE;
	}

	keys = kmx_cli_list_keys(cli);
	kmx_json_begin_array(json);
	for (GList *l = keys; l != NULL; l = l->next) {
		KeymuxKey *key = l->data;
		g_autofree char *id = NULL;
		g_autofree char *usage = NULL;
		g_auto(GStrv) usages = NULL;

		if (device != NULL &&
		    g_strcmp0(keymux_key_get_device_path(key),
			      g_dbus_proxy_get_object_path(G_DBUS_PROXY(device))) != 0)
			continue;
		if (cli->json) {
			kmx_cli_json_key(cli, json, key);
			continue;
		}
		id = kmx_cli_short_id(keymux_key_get_id(key));
		usages = keymux_key_dup_usage(key);
		usage = kmx_cli_usage_string((const char *const *)usages);
		kmx_table_add_row(table,
				  id,
				  keymux_key_get_algorithm(key),
				  usage,
				  kmx_cli_label(key),
				  kmx_cli_key_device_id(cli, key));
	}
	kmx_json_end_array(json);
	if (cli->json)
		kmx_json_print(json);
	else
		kmx_table_print(table);
	return TRUE;
}
