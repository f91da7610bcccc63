/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl version: the versions of the client and the service */
#include "config.h"

#include "keymuxctl.h"

gboolean
kmx_cmd_version(KmxCli *cli, int argc, char **argv, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	const char *daemon = NULL;
	g_auto(GStrv) backends = NULL;

	if (!kmx_cli_parse_options(cli,
				   "version",
				   "",
				   "Print the versions of keymuxctl and, when it runs, of keymuxd.",
				   NULL,
				   &argc,
				   &argv,
				   error))
		return FALSE;
	if (!kmx_cli_check_args("version", argc, 0, 0, error))
		return FALSE;
	/* the client's version is worth printing even when the service is down */
	if (kmx_cli_connect(cli, TRUE, &error_local)) {
		daemon = keymux_client_get_version(cli->client);
		backends = keymux_client_dup_backends(cli->client);
	}
	if (cli->json) {
		g_autoptr(KmxJson) json = kmx_json_new();
		kmx_json_begin_object(json);
		kmx_json_key(json, "keymuxctl");
		kmx_json_string(json, PACKAGE_VERSION);
		kmx_json_key(json, "keymuxd");
		if (daemon != NULL)
			kmx_json_string(json, daemon);
		else
			kmx_json_null(json);
		kmx_json_key(json, "backends");
		kmx_json_strv(json, (const char *const *)backends);
		kmx_json_end_object(json);
		kmx_json_print(json);
		return TRUE;
	}
	g_print("keymuxctl %s\n", PACKAGE_VERSION);
	if (daemon != NULL) {
		g_autofree char *list = backends != NULL ? g_strjoinv(", ", (char **)backends)
							 : g_strdup("");
		g_print("keymuxd   %s (backends: %s)\n", daemon, list);
	} else {
		g_print("keymuxd   not reachable: %s\n", error_local->message);
	}
	return TRUE;
}
