/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl: the command-line client of keymuxd
 *
 * main(), the table of subcommands, option parsing, the connection to the
 * bus and the lookup of devices and keys by id, prefix or label.  Each
 * subcommand lives in its own kmx-cmd-<name>.c.
 */
#include "config.h"

#include <locale.h>
#include <string.h>

#include "keymuxctl.h"

typedef struct {
	const char *name;
	KmxCliCommandFunc func;
	const char *summary;
} KmxCliCommand;

static const KmxCliCommand kmx_cli_commands[] = {
    {"devices", kmx_cmd_devices, "List devices"},
    {"keys", kmx_cmd_keys, "List keys, of every device or of one"},
    {"info", kmx_cmd_info, "Show everything about a key or a device"},
    {"unlock", kmx_cmd_unlock, "Unlock a device with its password or PIN"},
    {"lock", kmx_cmd_lock, "Lock a device"},
    {"lock-all", kmx_cmd_lock_all, "Lock every device"},
    {"generate", kmx_cmd_generate, "Generate a key on a device"},
    {"import", kmx_cmd_import, "Import a private key file to a device"},
    {"sign", kmx_cmd_sign, "Sign a file or stdin"},
    {"decrypt", kmx_cmd_decrypt, "Decrypt a file or stdin"},
    {"derive", kmx_cmd_derive, "Derive a shared secret with a peer's public key"},
    {"export-public", kmx_cmd_export_public, "Print the public key (PEM)"},
    {"set-label", kmx_cmd_set_label, "Change the label of a key"},
    {"delete", kmx_cmd_delete, "Delete a key"},
    {"passwd", kmx_cmd_passwd, "Set or change the password of a device"},
    {"forget", kmx_cmd_forget, "Delete a secret remembered in the login keyring"},
    {"monitor", kmx_cmd_monitor, "Print changes as they happen, until Ctrl-C"},
    {"version", kmx_cmd_version, "Print the versions of keymuxctl and keymuxd"},
    {"help", NULL, "Show the help of keymuxctl, or of a command"},
};

static gboolean
kmx_cli_is_hex(const char *str)
{
	for (const char *p = str; *p != '\0'; p++) {
		if (!g_ascii_isxdigit(*p))
			return FALSE;
	}
	return *str != '\0';
}

/**
 * kmx_cli_parse_options:
 * @cli: the client
 * @command: the subcommand, for the usage line
 * @params: what follows the options, e.g. "KEY [FILE|-]"
 * @summary: one sentence for --help
 * @entries: (nullable): the subcommand's own options
 *
 * Parses the options of a subcommand; --json and --address are accepted
 * after the subcommand too, since people put them anywhere.
 */
gboolean
kmx_cli_parse_options(KmxCli *cli,
		      const char *command,
		      const char *params,
		      const char *summary,
		      const GOptionEntry *entries,
		      int *argc,
		      char ***argv,
		      GError **error)
{
	g_autofree char *address = NULL;
	g_autofree char *usage = g_strdup_printf("%s %s", command, params);
	g_autoptr(GOptionContext) context = g_option_context_new(usage);
	gboolean json = FALSE;
	const GOptionEntry common[] = {
	    {"json", 'j', 0, G_OPTION_ARG_NONE, &json, "Print JSON for scripts", NULL},
	    {"address", 0, 0, G_OPTION_ARG_STRING, &address, "Use this bus", "ADDRESS"},
	    G_OPTION_ENTRY_NULL,
	};

	g_option_context_set_summary(context, summary);
	if (entries != NULL)
		g_option_context_add_main_entries(context, entries, NULL);
	g_option_context_add_main_entries(context, common, NULL);
	if (!g_option_context_parse(context, argc, argv, error)) {
		g_prefix_error(error, "%s: ", command);
		return FALSE;
	}
	if (json)
		cli->json = TRUE;
	if (address != NULL) {
		g_free(cli->address);
		cli->address = g_steal_pointer(&address);
	}
	/* GOption keeps "--" when an argument after it starts with "-"; the
	 * first one left is the separator, any later one a real argument */
	for (int i = 1; i < *argc; i++) {
		if (g_strcmp0((*argv)[i], "--") != 0)
			continue;
		memmove(&(*argv)[i], &(*argv)[i + 1], sizeof(char *) * (gsize)(*argc - i));
		(*argc)--;
		break;
	}
	return TRUE;
}

/**
 * kmx_cli_check_args:
 *
 * Checks the number of arguments left after the options (argv[0] is the
 * subcommand itself), so every subcommand says the same thing.
 */
gboolean
kmx_cli_check_args(const char *command, int argc, int min, int max, GError **error)
{
	int n = argc - 1;

	if (n < min) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_FAILED,
			    "%s: missing argument (see 'keymuxctl %s --help')",
			    command,
			    command);
		return FALSE;
	}
	if (max >= 0 && n > max) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_FAILED,
			    "%s: too many arguments (see 'keymuxctl %s --help')",
			    command,
			    command);
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_cli_connect:
 * @cli: the client
 * @need_daemon: fail when keymuxd is not on the bus (instead of waiting for it)
 *
 * Connects to the bus and, through libkeymux, to keymuxd: a connection of
 * its own when keymuxd gives one.  A command that waits for keymuxd
 * (monitor) stays on the bus, where it sees keymuxd stop and start again.
 */
gboolean
kmx_cli_connect(KmxCli *cli, gboolean need_daemon, GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (cli->bus == NULL) {
		if (cli->address != NULL) {
			cli->bus = g_dbus_connection_new_for_address_sync(
			    cli->address,
			    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
				G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
			    NULL,
			    NULL,
			    &error_local);
		} else {
			cli->bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error_local);
		}
		if (cli->bus == NULL) {
			g_set_error(error,
				    KEYMUX_ERROR,
				    KEYMUX_ERROR_UNAVAILABLE,
				    "cannot connect to the session bus: %s",
				    error_local->message);
			return FALSE;
		}
		/* a vanished bus must end the command with an error, not the process */
		g_dbus_connection_set_exit_on_close(cli->bus, FALSE);
	}
	if (cli->client != NULL)
		return TRUE;
	cli->client = keymux_client_new_for_bus_sync(
	    cli->bus,
	    need_daemon ? KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE : KEYMUX_CLIENT_FLAGS_BUS_ONLY,
	    NULL,
	    error);
	return cli->client != NULL;
}

static int
kmx_cli_compare_devices(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(keymux_device_get_id((KeymuxDevice *)a),
			 keymux_device_get_id((KeymuxDevice *)b));
}

/**
 * kmx_cli_list_devices:
 *
 * Returns: (transfer full) (element-type KeymuxDevice): the devices, sorted by id
 */
GList *
kmx_cli_list_devices(KmxCli *cli)
{
	return g_list_sort(keymux_client_get_devices(cli->client), kmx_cli_compare_devices);
}

static int
kmx_cli_compare_keys(gconstpointer a, gconstpointer b, gpointer user_data)
{
	KmxCli *cli = user_data;
	KeymuxKey *ka = (KeymuxKey *)a;
	KeymuxKey *kb = (KeymuxKey *)b;
	int rc = g_strcmp0(kmx_cli_key_device_id(cli, ka), kmx_cli_key_device_id(cli, kb));

	if (rc != 0)
		return rc;
	return g_strcmp0(keymux_key_get_id(ka), keymux_key_get_id(kb));
}

/**
 * kmx_cli_list_keys:
 *
 * Returns: (transfer full) (element-type KeymuxKey): the keys, sorted by device and id
 */
GList *
kmx_cli_list_keys(KmxCli *cli)
{
	return g_list_sort_with_data(keymux_client_get_keys(cli->client),
				     kmx_cli_compare_keys,
				     cli);
}

/**
 * kmx_cli_get_device_at:
 * @path: an object path
 *
 * Returns: (transfer full) (nullable): the device exported at @path
 */
KeymuxDevice *
kmx_cli_get_device_at(KmxCli *cli, const char *path)
{
	g_autolist(KeymuxDevice) devices = NULL;

	if (path == NULL)
		return NULL;
	devices = keymux_client_get_devices(cli->client);
	for (GList *l = devices; l != NULL; l = l->next) {
		if (g_strcmp0(g_dbus_proxy_get_object_path(l->data), path) == 0)
			return g_object_ref(l->data);
	}
	return NULL;
}

/**
 * kmx_cli_label:
 * @object: a #KeymuxDevice or a #KeymuxKey
 *
 * Returns: (nullable): its label, interned: it stays valid whatever changes
 */
const char *
kmx_cli_label(gpointer object)
{
	g_autofree char *label = KEYMUX_IS_DEVICE(object) ? keymux_device_dup_label(object)
							  : keymux_key_dup_label(object);

	return g_intern_string(label);
}

/**
 * kmx_cli_key_device_id:
 *
 * Returns: the id of the device holding @key, or its object path when that
 * device is not (yet) known
 */
const char *
kmx_cli_key_device_id(KmxCli *cli, KeymuxKey *key)
{
	const char *path = keymux_key_get_device_path(key);
	g_autoptr(KeymuxDevice) device = kmx_cli_get_device_at(cli, path);

	/* ids and paths are interned: they outlive the device */
	if (device != NULL)
		return keymux_device_get_id(device);
	return path != NULL ? path : "";
}

/**
 * kmx_cli_find_device:
 * @name: a device id, a unique prefix of one (at least 4 characters) or a label
 *
 * Returns: (transfer full): the device, or %NULL with NotFound or, when
 * @name fits several, InvalidArgument listing them
 */
KeymuxDevice *
kmx_cli_find_device(KmxCli *cli, const char *name, GError **error)
{
	g_autolist(KeymuxDevice) devices = kmx_cli_list_devices(cli);
	g_autoptr(GPtrArray) found = g_ptr_array_new();
	g_autoptr(GString) names = g_string_new(NULL);

	for (GList *l = devices; l != NULL; l = l->next) {
		if (g_strcmp0(keymux_device_get_id(l->data), name) == 0)
			return g_object_ref(l->data);
	}
	for (GList *l = devices; l != NULL; l = l->next) {
		KeymuxDevice *device = l->data;
		if (g_strcmp0(kmx_cli_label(device), name) == 0 ||
		    (strlen(name) >= KMX_CLI_MIN_PREFIX &&
		     g_str_has_prefix(keymux_device_get_id(device), name)))
			g_ptr_array_add(found, device);
	}
	if (found->len == 1)
		return g_object_ref(g_ptr_array_index(found, 0));
	if (found->len == 0) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_FOUND,
			    "no device '%s' (see 'keymuxctl devices')",
			    name);
		return NULL;
	}
	for (guint i = 0; i < found->len; i++) {
		KeymuxDevice *device = g_ptr_array_index(found, i);
		g_string_append_printf(names,
				       "%s%s (%s)",
				       i > 0 ? ", " : "",
				       keymux_device_get_id(device),
				       kmx_cli_label(device));
	}
	g_set_error(error,
		    KEYMUX_ERROR,
		    KEYMUX_ERROR_INVALID_ARGUMENT,
		    "'%s' matches several devices, use the full id: %s",
		    name,
		    names->str);
	return NULL;
}

static gboolean
kmx_cli_key_matches(KeymuxKey *key, const char *name, const char *lower)
{
	const char *id = keymux_key_get_id(key);

	if (g_strcmp0(kmx_cli_label(key), name) == 0)
		return TRUE;
	return lower != NULL && id != NULL && g_str_has_prefix(id, lower);
}

/**
 * kmx_cli_find_key_holders:
 * @name: a key id, a unique prefix of one (at least 4 hex digits) or a label
 *
 * The same key (same id) may sit on several devices, e.g. a card and its
 * backup; that is no ambiguity.
 *
 * Returns: (transfer full) (element-type KeymuxKey): every object of the one
 * key @name means, or %NULL with NotFound or InvalidArgument
 */
GPtrArray *
kmx_cli_find_key_holders(KmxCli *cli, const char *name, GError **error)
{
	g_autolist(KeymuxKey) keys = kmx_cli_list_keys(cli);
	g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(GHashTable) ids = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GString) names = g_string_new(NULL);
	g_autofree char *lower = NULL;

	if (strlen(name) >= KMX_CLI_MIN_PREFIX && kmx_cli_is_hex(name))
		lower = g_ascii_strdown(name, -1);
	for (GList *l = keys; l != NULL; l = l->next) {
		KeymuxKey *key = l->data;
		if (!kmx_cli_key_matches(key, name, lower))
			continue;
		g_ptr_array_add(found, g_object_ref(key));
		if (!g_hash_table_contains(ids, keymux_key_get_id(key))) {
			g_hash_table_add(ids, (gpointer)keymux_key_get_id(key));
			g_string_append_printf(names,
					       "%s%.16s '%s' (%s)",
					       names->len > 0 ? ", " : "",
					       keymux_key_get_id(key),
					       kmx_cli_label(key),
					       kmx_cli_key_device_id(cli, key));
		}
	}
	if (found->len == 0) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_FOUND,
			    "no key '%s' (see 'keymuxctl keys')",
			    name);
		return NULL;
	}
	if (g_hash_table_size(ids) > 1) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_INVALID_ARGUMENT,
			    "'%s' matches several keys, give more of the id: %s",
			    name,
			    names->str);
		return NULL;
	}
	return g_steal_pointer(&found);
}

static int
kmx_cli_key_preference(KeymuxKey *key)
{
	if (!keymux_key_get_available(key))
		return 2;
	return keymux_key_get_locked(key) ? 1 : 0;
}

/**
 * kmx_cli_find_key:
 * @name: see kmx_cli_find_key_holders()
 * @on_device: (nullable): only look at keys of this device
 *
 * Returns: (transfer full): the key, preferring an available, unlocked holder
 */
KeymuxKey *
kmx_cli_find_key(KmxCli *cli, const char *name, KeymuxDevice *on_device, GError **error)
{
	g_autoptr(GPtrArray) holders = kmx_cli_find_key_holders(cli, name, error);
	KeymuxKey *best = NULL;

	if (holders == NULL)
		return NULL;
	for (guint i = 0; i < holders->len; i++) {
		KeymuxKey *key = g_ptr_array_index(holders, i);
		if (on_device != NULL &&
		    g_strcmp0(keymux_key_get_device_path(key),
			      g_dbus_proxy_get_object_path(G_DBUS_PROXY(on_device))) != 0)
			continue;
		if (best == NULL || kmx_cli_key_preference(key) < kmx_cli_key_preference(best))
			best = key;
	}
	if (best == NULL) {
		g_set_error(error,
			    KEYMUX_ERROR,
			    KEYMUX_ERROR_NOT_FOUND,
			    "key '%s' is not on device %s",
			    name,
			    keymux_device_get_id(on_device));
		return NULL;
	}
	return g_object_ref(best);
}

/**
 * kmx_cli_find_one_key:
 * @name: see kmx_cli_find_key_holders()
 * @device_name: (nullable): the device the key is on, from --device
 *
 * For the commands that change a key: with the same key on two devices,
 * the caller must say which one is meant.
 *
 * Returns: (transfer full): the key
 */
KeymuxKey *
kmx_cli_find_one_key(KmxCli *cli, const char *name, const char *device_name, GError **error)
{
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(GPtrArray) holders = NULL;
	g_autoptr(GString) devices = g_string_new(NULL);

	if (device_name != NULL) {
		device = kmx_cli_find_device(cli, device_name, error);
		if (device == NULL)
			return NULL;
		return kmx_cli_find_key(cli, name, device, error);
	}
	holders = kmx_cli_find_key_holders(cli, name, error);
	if (holders == NULL)
		return NULL;
	if (holders->len == 1)
		return g_object_ref(g_ptr_array_index(holders, 0));
	for (guint i = 0; i < holders->len; i++) {
		g_string_append_printf(devices,
				       "%s%s",
				       i > 0 ? ", " : "",
				       kmx_cli_key_device_id(cli, g_ptr_array_index(holders, i)));
	}
	g_set_error(error,
		    KEYMUX_ERROR,
		    KEYMUX_ERROR_INVALID_ARGUMENT,
		    "key '%s' is on several devices (%s): choose one with --device",
		    name,
		    devices->str);
	return NULL;
}

/**
 * kmx_cli_may_prompt:
 * @object: the #KeymuxKey or #KeymuxDevice a call is about to use
 *
 * A call that may wait for a person (a prompt, a PIN pad, a touch) has no
 * timeout in libkeymux.  On a terminal, keymuxctl asks for the secret of a
 * locked device itself while the call waits.
 */
void
kmx_cli_may_prompt(KmxCli *cli, gpointer object)
{
	kmx_cli_prompter_start(cli->client, object);
}

static int
kmx_cli_exit_code(const GError *error)
{
	/* libkeymux's codes are keymuxd's, which common code uses too */
	if (error->domain == KEYMUX_ERROR || error->domain == KMX_ERROR) {
		switch (error->code) {
		case KEYMUX_ERROR_NOT_FOUND:
			return KMX_CLI_EXIT_NOT_FOUND;
		case KEYMUX_ERROR_LOCKED:
		case KEYMUX_ERROR_BAD_SECRET:
		case KEYMUX_ERROR_BLOCKED:
			return KMX_CLI_EXIT_LOCKED;
		case KEYMUX_ERROR_UNAVAILABLE:
			return KMX_CLI_EXIT_UNAVAILABLE;
		case KEYMUX_ERROR_DENIED:
			return KMX_CLI_EXIT_DENIED;
		case KEYMUX_ERROR_NOT_SUPPORTED:
			return KMX_CLI_EXIT_NOT_SUPPORTED;
		case KEYMUX_ERROR_INVALID_ARGUMENT:
			return KMX_CLI_EXIT_USAGE;
		case KEYMUX_ERROR_EXISTS:
			return KMX_CLI_EXIT_EXISTS;
		case KEYMUX_ERROR_CANCELLED:
			return KMX_CLI_EXIT_CANCELLED;
		default:
			return KMX_CLI_EXIT_FAILED;
		}
	}
	if (error->domain == G_OPTION_ERROR)
		return KMX_CLI_EXIT_USAGE;
	if (g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT) ||
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		return KMX_CLI_EXIT_NOT_FOUND;
	/* data that cannot be a key: not a file, too large, unparsable */
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA) ||
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE) ||
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE) ||
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT))
		return KMX_CLI_EXIT_USAGE;
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return KMX_CLI_EXIT_CANCELLED;
	if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED))
		return KMX_CLI_EXIT_UNAVAILABLE;
	if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_AUTH_FAILED))
		return KMX_CLI_EXIT_DENIED;
	if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD))
		return KMX_CLI_EXIT_NOT_SUPPORTED;
	return KMX_CLI_EXIT_FAILED;
}

static void
kmx_cli_print_error(GError *error)
{
	g_autofree char *message = NULL;

	kmx_error_strip_remote(error);
	/* one line, so scripts can log it as it is */
	if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY))
		message = g_strdup("keymuxd stopped before it answered (did it crash? see "
				   "journalctl --user -u keymuxd); run the command again");
	else
		message = g_strdelimit(g_strdup(error->message), "\r\n", ' ');
	g_strchomp(message);
	g_printerr("keymuxctl: %s\n", message);
}

static char *
kmx_cli_commands_description(void)
{
	GString *str = g_string_new("Commands:\n");

	for (guint i = 0; i < G_N_ELEMENTS(kmx_cli_commands); i++) {
		g_string_append_printf(str,
				       "  %-15s %s\n",
				       kmx_cli_commands[i].name,
				       kmx_cli_commands[i].summary);
	}
	g_string_append(str,
			"\nRun 'keymuxctl help COMMAND' for the options of a command.\n"
			"Exit status: 0 ok, 1 failure, 2 usage, 3 not found, "
			"4 locked or bad secret,\n5 unavailable, 6 denied, 7 not supported, "
			"8 exists, 9 cancelled.");
	return g_string_free(str, FALSE);
}

static void
kmx_cli_clear(KmxCli *cli)
{
	kmx_cli_prompter_stop();
	g_clear_object(&cli->client);
	g_clear_object(&cli->bus);
	g_clear_pointer(&cli->address, g_free);
}

int
main(int argc, char **argv)
{
	KmxCli cli = {0};
	g_autoptr(GError) error = NULL;
	g_autoptr(GOptionContext) context = NULL;
	g_autofree char *description = NULL;
	g_autofree char *address = NULL;
	gboolean json = FALSE;
	gboolean version = FALSE;
	const KmxCliCommand *command = NULL;
	gboolean ok;
	const GOptionEntry entries[] = {
	    {"json", 'j', 0, G_OPTION_ARG_NONE, &json, "Print JSON for scripts", NULL},
	    {"address", 0, 0, G_OPTION_ARG_STRING, &address, "Use this bus", "ADDRESS"},
	    {"version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL},
	    G_OPTION_ENTRY_NULL,
	};
	char *help_argv[] = {NULL, "--help", NULL};
	char **cmd_argv;
	int cmd_argc;

	setlocale(LC_ALL, "");
	g_set_prgname("keymuxctl");

	/* registers the org.keymux.Keystore1.Error names before any reply:
	 * keymuxd's domain, which common code uses, then libkeymux's, whose
	 * errors are mapped by name */
	(void)KMX_ERROR;
	(void)KEYMUX_ERROR;

	context = g_option_context_new("COMMAND [ARGS…]");
	description = kmx_cli_commands_description();
	g_option_context_set_summary(context, "Use and manage the keys of keymuxd.");
	g_option_context_set_description(context, description);
	g_option_context_add_main_entries(context, entries, NULL);
	/* options after the command belong to the command */
	g_option_context_set_strict_posix(context, TRUE);
	if (!g_option_context_parse(context, &argc, &argv, &error)) {
		kmx_cli_print_error(error);
		return KMX_CLI_EXIT_USAGE;
	}
	if (version) {
		g_print("keymuxctl %s\n", PACKAGE_VERSION);
		return KMX_CLI_EXIT_OK;
	}
	if (argc < 2 ||
	    (g_str_equal(argv[1], "help") && (argc == 2 || g_str_equal(argv[2], "help")))) {
		g_autofree char *help = g_option_context_get_help(context, TRUE, NULL);
		if (argc < 2) {
			g_printerr("%s", help);
			return KMX_CLI_EXIT_USAGE;
		}
		g_print("%s", help);
		return KMX_CLI_EXIT_OK;
	}
	cmd_argv = argv + 1;
	cmd_argc = argc - 1;
	/* help COMMAND: the command's --help */
	if (g_str_equal(argv[1], "help")) {
		if (argc > 3) {
			g_printerr("keymuxctl: help takes one command (see 'keymuxctl help')\n");
			return KMX_CLI_EXIT_USAGE;
		}
		help_argv[0] = argv[2];
		cmd_argv = help_argv;
		cmd_argc = 2;
	}
	for (guint i = 0; i < G_N_ELEMENTS(kmx_cli_commands); i++) {
		if (kmx_cli_commands[i].func != NULL &&
		    g_strcmp0(kmx_cli_commands[i].name, cmd_argv[0]) == 0)
			command = &kmx_cli_commands[i];
	}
	if (command == NULL) {
		g_printerr("keymuxctl: unknown command '%s' (see 'keymuxctl help')\n", cmd_argv[0]);
		return KMX_CLI_EXIT_USAGE;
	}
	cli.json = json;
	cli.address = g_steal_pointer(&address);

	ok = command->func(&cli, cmd_argc, cmd_argv, &error);
	kmx_cli_clear(&cli);
	if (!ok) {
		int code = kmx_cli_exit_code(error);
		kmx_cli_print_error(error);
		return code;
	}
	return KMX_CLI_EXIT_OK;
}
