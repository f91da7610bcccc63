/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kmx-bench-lib: keymuxd through libkeymux, the way an application calls it:
 * keymux_client_new_sync() per client (its peer connection from
 * Manager.OpenConnection, else the bus), the key found by id,
 * keymux_key_sign_sync() / keymux_key_decrypt_sync() in a loop
 *
 *   kmx-bench-lib --alg ALG --key PEM --clients N --seconds S [--bus-ok]
 *
 * Prints the bench's json line (kb-common).  Fails when keymuxd gives no
 * peer connection, unless --bus-ok.  Needs keymuxd on the session bus with
 * the key imported.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "kb-common.h"

#include <stdio.h>

#include "keymux.h"

static gboolean opt_bus_ok;

typedef struct {
	const gchar *id;
	KbAlg alg;
	GBytes *input;
} LibCfg;

typedef struct {
	LibCfg *cfg;
	KeymuxClient *client;
	KeymuxKey *key;
} LibState;

static gpointer
lib_open(gpointer cfg_ptr, guint index, GError **error)
{
	LibCfg *cfg = cfg_ptr;
	g_autoptr(KeymuxClient) client = keymux_client_new_sync(NULL, error);
	GList *found;
	LibState *state;

	if (client == NULL)
		return NULL;
	if (!opt_bus_ok && !keymux_client_get_peer_to_peer(client)) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_PEER,
				    "keymuxd gave no peer connection");
		return NULL;
	}
	found = keymux_client_find_key_sync(client, cfg->id, NULL, error);
	if (found == NULL)
		return NULL;
	state = g_new0(LibState, 1);
	state->cfg = cfg;
	state->key = g_object_ref(found->data);
	state->client = g_steal_pointer(&client);
	g_list_free_full(found, g_object_unref);
	return state;
}

static gboolean
lib_op(gpointer state_ptr, GByteArray *out, GError **error)
{
	LibState *state = state_ptr;
	const gchar *alg = kb_alg_to_string(state->cfg->alg);
	g_autoptr(GBytes) result = kb_alg_is_decrypt(state->cfg->alg)
				       ? keymux_key_decrypt_sync(state->key,
								 alg,
								 state->cfg->input,
								 KEYMUX_CALL_FLAGS_NONE,
								 NULL,
								 error)
				       : keymux_key_sign_sync(state->key,
							      alg,
							      state->cfg->input,
							      KEYMUX_CALL_FLAGS_NONE,
							      NULL,
							      error);
	gsize len = 0;
	const guint8 *p;

	if (result == NULL)
		return FALSE;
	p = g_bytes_get_data(result, &len);
	g_byte_array_append(out, p, len);
	return TRUE;
}

static void
lib_close(gpointer state_ptr)
{
	LibState *state = state_ptr;

	g_object_unref(state->key);
	g_object_unref(state->client);
	g_free(state);
}

static const KbDriver lib_driver = {lib_open, lib_op, lib_close};

int
main(int argc, char **argv)
{
	KbCommonOptions opts = {0};
	g_autofree GOptionEntry *entries = kb_common_entries(&opts);
	g_autoptr(GOptionContext) ctx = g_option_context_new("- keymuxd through libkeymux");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) ciphertext = NULL;
	GOptionEntry lib_entries[] = {{"bus-ok",
				       0,
				       0,
				       G_OPTION_ARG_NONE,
				       &opt_bus_ok,
				       "Accept the bus if no peer connection",
				       NULL},
				      {NULL}};
	LibCfg cfg = {0};
	KbRun run = {.driver = &lib_driver, .cfg = &cfg};

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, lib_entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("lib", error);
	if (!kb_common_prepare(&opts, &run, &ciphertext, &error))
		return kb_report_error(opts.label, error);
	cfg.id = run.key->id;
	cfg.alg = run.alg;
	cfg.input = ciphertext != NULL ? g_bytes_ref(ciphertext) : kb_message();
	if (!kb_run(&run, &error))
		return kb_report_error(opts.label, error);
	return 0;
}
