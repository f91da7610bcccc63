/*
 * kmx-bench-p11: a PKCS#11 module (p11-kit-client.so remoting softhsm2
 * through "p11-kit server"), C_SignInit + C_Sign or C_DecryptInit + C_Decrypt
 * per operation
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <p11-kit/pkcs11.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static gchar *opt_module;
static gchar *opt_pin;
static gchar *opt_object;

typedef struct {
	KbAlg alg;
	GBytes *input;
} P11Cfg;

typedef struct {
	P11Cfg *cfg;
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	CK_MECHANISM mech;
	CK_RSA_PKCS_OAEP_PARAMS oaep;
} P11State;

static gboolean
ck_check(CK_RV rv, const gchar *what, GError **error)
{
	if (rv == CKR_OK)
		return TRUE;
	/* softhsm 2.6.1 answers an oaep hash other than sha-1 with CKR_ARGUMENTS_BAD */
	g_set_error(error,
		    KB_ERROR,
		    rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID ||
			    (rv == CKR_ARGUMENTS_BAD && g_str_has_suffix(what, "Init"))
			? KB_ERROR_UNSUPPORTED
			: KB_ERROR_PEER,
		    "pkcs#11 %s: CKR 0x%08lx%s",
		    what,
		    (unsigned long)rv,
		    rv == CKR_MECHANISM_INVALID ? " (mechanism not supported)"
		    : rv == CKR_ARGUMENTS_BAD	? " (parameters not supported)"
						: "");
	return FALSE;
}

static void p11_close(gpointer state_ptr);
static gpointer p11_open_locked(gpointer cfg_ptr, guint index, GError **error);

/*
 * softhsm's file object store does not survive several processes opening the
 * token at the same moment (CKR_TOKEN_NOT_RECOGNIZED, "no token"): clients
 * take turns to set up, then run concurrently
 */
static gpointer
p11_open(gpointer cfg_ptr, guint index, GError **error)
{
	gpointer state;
	int fd = open(opt_module, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		flock(fd, LOCK_EX);
	state = p11_open_locked(cfg_ptr, index, error);
	if (fd >= 0)
		close(fd);
	return state;
}

static gpointer
p11_open_locked(gpointer cfg_ptr, guint index, GError **error)
{
	g_autofree P11State *state = g_new0(P11State, 1);
	CK_C_GetFunctionList get_list;
	CK_SLOT_ID slots[16];
	CK_ULONG n_slots = G_N_ELEMENTS(slots), found = 0;
	CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &klass, sizeof klass},
	    {CKA_LABEL, opt_object, strlen(opt_object)},
	};
	CK_RV rv;

	state->cfg = cfg_ptr;
	/* loaded here, in the client's own process: one connection to the server each */
	state->dl = dlopen(opt_module, RTLD_NOW | RTLD_LOCAL);
	if (state->dl == NULL) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "dlopen %s: %s",
			    opt_module,
			    dlerror());
		return NULL;
	}
	get_list = (CK_C_GetFunctionList)dlsym(state->dl, "C_GetFunctionList");
	if (get_list == NULL || get_list(&state->f) != CKR_OK) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "%s is not a pkcs#11 module",
			    opt_module);
		dlclose(state->dl);
		return NULL;
	}
	rv = state->f->C_Initialize(NULL);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ck_check(rv, "C_Initialize", error);
		dlclose(state->dl);
		return NULL;
	}
	if (!ck_check(state->f->C_GetSlotList(CK_TRUE, slots, &n_slots), "C_GetSlotList", error))
		goto fail;
	if (n_slots == 0) {
		g_set_error_literal(error, KB_ERROR, KB_ERROR_PEER, "pkcs#11: no token present");
		goto fail;
	}
	if (!ck_check(
		state->f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &state->session),
		"C_OpenSession",
		error))
		goto fail;
	rv = state->f->C_Login(state->session, CKU_USER, (CK_UTF8CHAR_PTR)opt_pin, strlen(opt_pin));
	/* the server may hold one login for every client */
	if (rv != CKR_USER_ALREADY_LOGGED_IN && !ck_check(rv, "C_Login", error))
		goto fail;
	if (!ck_check(state->f->C_FindObjectsInit(state->session, tmpl, G_N_ELEMENTS(tmpl)),
		      "C_FindObjectsInit",
		      error) ||
	    !ck_check(state->f->C_FindObjects(state->session, &state->key, 1, &found),
		      "C_FindObjects",
		      error) ||
	    !ck_check(state->f->C_FindObjectsFinal(state->session), "C_FindObjectsFinal", error))
		goto fail;
	if (found != 1) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PEER,
			    "pkcs#11: no private key labelled '%s'",
			    opt_object);
		goto fail;
	}
	switch (state->cfg->alg) {
	case KB_ALG_ED25519:
		state->mech.mechanism = CKM_EDDSA;
		break;
	case KB_ALG_ECDSA_SHA256:
		/* softhsm 2.6.1 has no CKM_ECDSA_SHA256: the client hashes */
		state->mech.mechanism = CKM_ECDSA;
		break;
	case KB_ALG_RSA_PKCS1_SHA256:
		state->mech.mechanism = CKM_SHA256_RSA_PKCS;
		break;
	case KB_ALG_RSA_OAEP_SHA256:
		state->oaep.hashAlg = CKM_SHA256;
		state->oaep.mgf = CKG_MGF1_SHA256;
		state->oaep.source = CKZ_DATA_SPECIFIED;
		state->oaep.pSourceData = NULL;
		state->oaep.ulSourceDataLen = 0;
		state->mech.mechanism = CKM_RSA_PKCS_OAEP;
		state->mech.pParameter = &state->oaep;
		state->mech.ulParameterLen = sizeof state->oaep;
		break;
	}
	return g_steal_pointer(&state);
fail:
	p11_close(g_steal_pointer(&state));
	return NULL;
}

static gboolean
p11_op(gpointer state_ptr, GByteArray *out, GError **error)
{
	P11State *state = state_ptr;
	guint8 buf[1024];
	CK_ULONG len = sizeof buf;
	gsize in_len;
	const guint8 *in = g_bytes_get_data(state->cfg->input, &in_len);
	guint8 digest[32];

	if (state->cfg->alg == KB_ALG_RSA_OAEP_SHA256) {
		if (!ck_check(state->f->C_DecryptInit(state->session, &state->mech, state->key),
			      "C_DecryptInit",
			      error) ||
		    !ck_check(
			state->f->C_Decrypt(state->session, (CK_BYTE_PTR)in, in_len, buf, &len),
			"C_Decrypt",
			error))
			return FALSE;
	} else {
		if (state->cfg->alg == KB_ALG_ECDSA_SHA256) {
			gnutls_hash_fast(GNUTLS_DIG_SHA256, in, in_len, digest);
			in = digest;
			in_len = sizeof digest;
		}
		if (!ck_check(state->f->C_SignInit(state->session, &state->mech, state->key),
			      "C_SignInit",
			      error) ||
		    !ck_check(state->f->C_Sign(state->session, (CK_BYTE_PTR)in, in_len, buf, &len),
			      "C_Sign",
			      error))
			return FALSE;
	}
	if (len > sizeof buf) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "pkcs#11: a %lu-byte result in a %u-byte buffer",
			    (unsigned long)len,
			    (guint)sizeof buf);
		return FALSE;
	}
	if (state->cfg->alg == KB_ALG_ECDSA_SHA256) {
		if (len != 64) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_PROTOCOL,
				    "pkcs#11: a p-256 signature of %lu bytes",
				    (unsigned long)len);
			return FALSE;
		}
		return kb_ecdsa_rs_to_der(buf, 32, buf + 32, 32, out, error);
	}
	g_byte_array_append(out, buf, len);
	return TRUE;
}

static void
p11_close(gpointer state_ptr)
{
	P11State *state = state_ptr;
	if (state->f != NULL) {
		if (state->session != 0)
			state->f->C_CloseSession(state->session);
		state->f->C_Finalize(NULL);
	}
	if (state->dl != NULL)
		dlclose(state->dl);
	g_free(state);
}

static const KbDriver p11_driver = {p11_open, p11_op, p11_close};

int
main(int argc, char **argv)
{
	KbCommonOptions opts = {0};
	g_autofree GOptionEntry *entries = kb_common_entries(&opts);
	g_autoptr(GOptionContext) ctx = g_option_context_new("- a pkcs#11 module");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) ciphertext = NULL;
	GOptionEntry p11_entries[] = {
	    {"module", 0, 0, G_OPTION_ARG_FILENAME, &opt_module, "PKCS#11 module", "PATH"},
	    {"pin", 0, 0, G_OPTION_ARG_STRING, &opt_pin, "User PIN", "PIN"},
	    {"object", 0, 0, G_OPTION_ARG_STRING, &opt_object, "Private key label", "LABEL"},
	    {NULL}};
	P11Cfg cfg = {0};
	KbRun run = {.driver = &p11_driver, .cfg = &cfg};

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, p11_entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("p11", error);
	if (opt_module == NULL || opt_pin == NULL || opt_object == NULL) {
		g_set_error_literal(&error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "--module, --pin and --object are required");
		return kb_report_error("p11", error);
	}
	if (!kb_common_prepare(&opts, &run, &ciphertext, &error))
		return kb_report_error(opts.label, error);
	cfg.alg = run.alg;
	cfg.input = ciphertext != NULL ? g_bytes_ref(ciphertext) : kb_message();
	if (!kb_run(&run, &error))
		return kb_report_error(opts.label, error);
	return 0;
}
