/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl info: everything about a key or a device */
#include "config.h"

#include "keymuxctl.h"

static const char *
kmx_cli_yes_no(gboolean value)
{
	return value ? "yes" : "no";
}

static void
kmx_cli_print_key(KmxCli *cli, KeymuxKey *key)
{
	g_autoptr(KeymuxDevice)
	    device = kmx_cli_get_device_at(cli, keymux_key_get_device_path(key));
	g_auto(GStrv) usages = keymux_key_dup_usage(key);
	g_autofree char *usage = kmx_cli_usage_string((const char *const *)usages);
	g_autoptr(GBytes) spki = keymux_key_dup_public_key(key);

	g_print("Key %s\n", keymux_key_get_id(key));
	g_print("  Label:      %s\n", kmx_cli_label(key));
	g_print("  Algorithm:  %s\n", keymux_key_get_algorithm(key));
	g_print("  Usage:      %s\n", usage);
	if (device != NULL) {
		g_print("  Device:     %s (%s)\n",
			keymux_device_get_id(device),
			kmx_cli_label(device));
	} else {
		g_print("  Device:     %s\n", kmx_cli_key_device_id(cli, key));
	}
	g_print("  Locked:     %s\n", kmx_cli_yes_no(keymux_key_get_locked(key)));
	g_print("  Available:  %s\n", kmx_cli_yes_no(keymux_key_get_available(key)));
	g_print("  Exportable: %s\n", kmx_cli_yes_no(keymux_key_get_exportable(key)));
	g_print("  Public key: %" G_GSIZE_FORMAT " bytes (see 'keymuxctl export-public')\n",
		spki != NULL ? g_bytes_get_size(spki) : 0);
	g_print("  Object:     %s\n", g_dbus_proxy_get_object_path(G_DBUS_PROXY(key)));
}

static void
kmx_cli_print_device(KmxCli *cli, KeymuxDevice *device)
{
	g_autoptr(GVariant) details = keymux_device_dup_details(device);
	g_autolist(KeymuxKey) keys = keymux_device_get_keys(device);
	g_autofree char *state = kmx_cli_device_state(device);
	gint retries = keymux_device_get_pin_retries(device);

	g_print("Device %s\n", keymux_device_get_id(device));
	g_print("  Label:       %s\n", kmx_cli_label(device));
	g_print("  Backend:     %s\n", keymux_device_get_backend(device));
	g_print("  State:       %s\n", state);
	g_print("  Registered:  %s\n", kmx_cli_yes_no(keymux_device_get_registered(device)));
	g_print("  Available:   %s\n", kmx_cli_yes_no(keymux_device_get_available(device)));
	if (retries >= 0)
		g_print("  PIN retries: %d\n", retries);
	if (details != NULL && g_variant_n_children(details) > 0) {
		GVariantIter iter;
		const char *name;
		GVariant *value;
		g_print("  Details:\n");
		g_variant_iter_init(&iter, details);
		while (g_variant_iter_next(&iter, "{&sv}", &name, &value)) {
			g_autofree char *text = g_variant_print(value, FALSE);
			g_print("    %s: %s\n", name, text);
			g_variant_unref(value);
		}
	}
	g_print("  Keys:        %u\n", kmx_cli_device_key_count(device));
	for (GList *l = keys; l != NULL; l = l->next) {
		KeymuxKey *key = l->data;
		const char *label = kmx_cli_label(key);
		g_autofree char *id = kmx_cli_short_id(keymux_key_get_id(key));

		g_print("    %s  %-10s  %s\n",
			id,
			keymux_key_get_algorithm(key),
			label != NULL && *label != '\0' ? label : "-");
	}
	g_print("  Object:      %s\n", g_dbus_proxy_get_object_path(G_DBUS_PROXY(device)));
}

gboolean
kmx_cmd_info(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(GPtrArray) holders = NULL;
	g_autoptr(GError) device_error = NULL;
	g_autoptr(GError) key_error = NULL;

	if (!kmx_cli_parse_options(cli,
				   "info",
				   "KEY|DEVICE",
				   "Show everything about a key or a device.",
				   NULL,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("info", argc, 1, 1, error))
		return FALSE;
	if (!kmx_cli_connect(cli, TRUE, error))
		return FALSE;

	device = kmx_cli_find_device(cli, argv[1], &device_error);
	holders = kmx_cli_find_key_holders(cli, argv[1], &key_error);
	if (device != NULL && holders != NULL) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_INVALID_ARGUMENT,
			    "'%s' names both device %s and key %s: use the full id",
			    argv[1],
			    keymux_device_get_id(device),
			    keymux_key_get_id(g_ptr_array_index(holders, 0)));
		return FALSE;
	}
	if (device == NULL && holders == NULL) {
		/* an ambiguous name says more than "not found" */
		if (g_error_matches(key_error, KEYMUX_ERROR, KEYMUX_ERROR_INVALID_ARGUMENT)) {
			g_propagate_error(error, g_steal_pointer(&key_error));
			return FALSE;
		}
		if (g_error_matches(device_error, KEYMUX_ERROR, KEYMUX_ERROR_INVALID_ARGUMENT)) {
			g_propagate_error(error, g_steal_pointer(&device_error));
			return FALSE;
		}
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_FOUND,
			    "no key or device '%s' (see 'keymuxctl keys' and 'keymuxctl devices')",
			    argv[1]);
		return FALSE;
	}

	if (cli->json) {
		g_autoptr(KmxJson) json = kmx_json_new();
		kmx_json_begin_object(json);
		kmx_json_key(json, "kind");
		kmx_json_string(json, device != NULL ? "device" : "key");
		if (device != NULL) {
			g_autolist(KeymuxKey) keys = kmx_cli_list_keys(cli);
			const char *path = g_dbus_proxy_get_object_path(G_DBUS_PROXY(device));
			kmx_json_key(json, "device");
			kmx_cli_json_device(cli, json, device);
			kmx_json_key(json, "keys");
			kmx_json_begin_array(json);
			for (GList *l = keys; l != NULL; l = l->next) {
				if (g_strcmp0(keymux_key_get_device_path(l->data), path) == 0)
					kmx_cli_json_key(cli, json, l->data);
			}
			kmx_json_end_array(json);
		} else {
			kmx_json_key(json, "keys");
			kmx_json_begin_array(json);
			for (guint i = 0; i < holders->len; i++)
				kmx_cli_json_key(cli, json, g_ptr_array_index(holders, i));
			kmx_json_end_array(json);
		}
		kmx_json_end_object(json);
		kmx_json_print(json);
		return TRUE;
	}
	if (device != NULL) {
		kmx_cli_print_device(cli, device);
		return TRUE;
	}
	for (guint i = 0; i < holders->len; i++) {
		if (i > 0)
			g_print("\n");
		kmx_cli_print_key(cli, g_ptr_array_index(holders, i));
	}
	return TRUE;
}
