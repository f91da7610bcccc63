/*
 * kmx-bench-inproc: the limit, the same operation in this process, with
 * libcrypto (as keymuxd's soft-key backend: one key shared by every thread,
 * a context per call) or gnutls (a key per thread)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"

#include <openssl/crypto.h>

typedef struct {
	const gchar *key_path;
	KbAlg alg;
	GBytes *input; /* the message, or the ciphertext */
	KbKey *shared; /* libcrypto: the one key every thread uses */
} InprocCfg;

typedef struct {
	InprocCfg *cfg;
	KbKey *key;
} InprocState;

static gpointer
inproc_open(gpointer cfg_ptr, guint index, GError **error)
{
	InprocCfg *cfg = cfg_ptr;
	InprocState *state;
	/* each thread its own key object: gnutls keys are not meant to be shared */
	KbKey *key = cfg->shared != NULL ? cfg->shared : kb_key_load(cfg->key_path, error);
	if (key == NULL)
		return NULL;
	state = g_new0(InprocState, 1);
	state->cfg = cfg;
	state->key = key;
	return state;
}

static gboolean
inproc_op(gpointer state_ptr, GByteArray *out, GError **error)
{
	InprocState *state = state_ptr;
	gsize len;
	const guint8 *data = g_bytes_get_data(state->cfg->input, &len);
	if (kb_alg_is_decrypt(state->cfg->alg))
		return kb_key_decrypt(state->key, state->cfg->alg, data, len, out, error);
	return kb_key_sign(state->key, state->cfg->alg, data, len, out, error);
}

static void
inproc_close(gpointer state_ptr)
{
	InprocState *state = state_ptr;
	if (state->key != state->cfg->shared)
		kb_key_free(state->key);
	g_free(state);
}

static const KbDriver inproc_driver = {inproc_open, inproc_op, inproc_close};

int
main(int argc, char **argv)
{
	KbCommonOptions opts = {0};
	g_autofree GOptionEntry *entries = kb_common_entries(&opts);
	g_autoptr(GOptionContext) ctx = g_option_context_new("- in-process baseline");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) ciphertext = NULL;
	g_autofree gchar *lib = NULL;
	GOptionEntry lib_entries[] = {{"lib",
				       0,
				       0,
				       G_OPTION_ARG_STRING,
				       &lib,
				       "Library for signatures: libcrypto (default) or gnutls",
				       "LIB"},
				      {NULL}};
	InprocCfg cfg = {0};
	KbRun run = {.driver = &inproc_driver, .cfg = &cfg, .use_threads = TRUE};

	/* the versions this binary runs with, for the report's header */
	if (argc == 2 && g_strcmp0(argv[1], "--versions") == 0) {
		g_print("{\"gnutls\":\"%s\",\"libcrypto\":\"%s\",\"glib\":\"%u.%u.%u\"}\n",
			gnutls_check_version(NULL),
			OpenSSL_version(OPENSSL_VERSION_STRING),
			glib_major_version,
			glib_minor_version,
			glib_micro_version);
		return 0;
	}
	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, lib_entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("inproc", error);
	if (!kb_set_sign_lib(lib != NULL ? lib : "libcrypto", &error))
		return kb_report_error("inproc", error);
	if (!kb_common_prepare(&opts, &run, &ciphertext, &error))
		return kb_report_error(opts.label, error);
	cfg.key_path = opts.key;
	cfg.alg = run.alg;
	cfg.input = ciphertext != NULL ? g_bytes_ref(ciphertext) : kb_message();
	if (lib == NULL || g_strcmp0(lib, "libcrypto") == 0) {
		cfg.shared = kb_key_load(cfg.key_path, &error);
		if (cfg.shared == NULL)
			return kb_report_error(opts.label, error);
	}
	if (!kb_run(&run, &error))
		return kb_report_error(opts.label, error);
	return 0;
}
