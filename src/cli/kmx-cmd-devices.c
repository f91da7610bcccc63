/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl devices: list devices */
#include "config.h"

#include "keymuxctl.h"

/**
 * kmx_cli_device_is_protected:
 *
 * Returns: %FALSE for a store that has no password (Details "protected"
 * false); a device that does not say (a card always has a PIN) is protected
 */
gboolean
kmx_cli_device_is_protected(KeymuxDevice *device)
{
	g_autoptr(GVariant) details = keymux_device_dup_details(device);
	gboolean protected = TRUE;

	if (details != NULL)
		g_variant_lookup(details, "protected", "b", &protected);
	return protected;
}

/**
 * kmx_cli_device_state:
 *
 * Returns: (transfer full): "locked", "unlocked" or "unprotected (no
 * password)", with ", absent" when the device cannot be used now
 */
char *
kmx_cli_device_state(KeymuxDevice *device)
{
	int retries = keymux_device_get_pin_retries(device);
	g_autofree char *tries = retries < 0	? g_strdup("")
				 : retries == 0 ? g_strdup(", PIN blocked")
						: g_strdup_printf(", %d PIN tries", retries);
	const char *state = keymux_device_get_locked(device)	   ? "locked"
			    : !kmx_cli_device_is_protected(device) ? "unprotected (no password)"
								   : "unlocked";

	return g_strdup_printf("%s%s%s",
			       state,
			       keymux_device_get_available(device) ? "" : ", absent",
			       tries);
}

gboolean
kmx_cmd_devices(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autolist(KeymuxDevice) devices = NULL;

	if (!kmx_cli_parse_options(cli, "devices", "", "List devices.", NULL, &argc, &argv, error))
		return FALSE;
	if (!kmx_cli_check_args("devices", argc, 0, 0, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;
	devices = kmx_cli_list_devices(cli);

	if (cli->json) {
		g_autoptr(KmxJson) json = kmx_json_new();
		kmx_json_begin_array(json);
		for (GList *l = devices; l != NULL; l = l->next)
			kmx_cli_json_device(cli, json, l->data);
		kmx_json_end_array(json);
		kmx_json_print(json);
	} else {
		g_autoptr(KmxTable) table = kmx_table_new(4, "DEVICE ID", "LABEL", "STATE", "KEYS");
		for (GList *l = devices; l != NULL; l = l->next) {
			KeymuxDevice *device = l->data;
			g_autofree char *state = kmx_cli_device_state(device);
			g_autofree char *count =
			    g_strdup_printf("%u", kmx_cli_device_key_count(device));
			kmx_table_add_row(table,
					  keymux_device_get_id(device),
					  kmx_cli_label(device),
					  state,
					  count);
		}
		kmx_table_print(table);
	}
	return TRUE;
}
