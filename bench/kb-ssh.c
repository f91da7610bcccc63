/*
 * kmx-bench-ssh: OpenSSH's ssh-agent, spoken to directly on its socket
 *
 *   add    SSH2_AGENTC_ADD_IDENTITY of PEM keys (ssh-add of OpenSSH 9.2 cannot
 *          read an ed25519 PKCS#8 file, and this loads the very same keys)
 *   bench  SSH2_AGENTC_SIGN_REQUEST in a loop, one connection per client
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"
#include "kb-wire.h"

#include <string.h>
#include <unistd.h>

#define SSH_AGENT_FAILURE	 5
#define SSH_AGENT_SUCCESS	 6
#define SSH2_AGENTC_SIGN_REQUEST 13
#define SSH2_AGENT_SIGN_RESPONSE 14
#define SSH2_AGENTC_ADD_IDENTITY 17
#define SSH_AGENT_RSA_SHA2_256	 2
#define MAX_MESSAGE		 (256 * 1024)

static gchar *opt_socket;

/* ---- wire ---- */

static void
put_u32(GByteArray *b, guint32 v)
{
	guint8 be[4] = {v >> 24, v >> 16, v >> 8, v};
	g_byte_array_append(b, be, 4);
}

static void
put_string(GByteArray *b, const guint8 *p, gsize len)
{
	put_u32(b, len);
	g_byte_array_append(b, p, len);
}

static void
put_cstring(GByteArray *b, const gchar *s)
{
	put_string(b, (const guint8 *)s, strlen(s));
}

/* an unsigned integer as an ssh mpint: a leading zero when the top bit is set */
static void
put_mpint(GByteArray *b, GByteArray *v)
{
	g_autoptr(GByteArray) s = kb_strip_lz(v->data, v->len);
	gboolean pad = s->len > 0 && (s->data[0] & 0x80);
	put_u32(b, s->len + pad);
	if (pad)
		g_byte_array_append(b, (const guint8 *)"", 1);
	g_byte_array_append(b, s->data, s->len);
}

typedef struct {
	const guint8 *p;
	gsize len;
} Reader;

static gboolean
get_u32(Reader *r, guint32 *v, GError **error)
{
	if (r->len < 4) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_PROTOCOL,
				    "ssh-agent: truncated reply");
		return FALSE;
	}
	*v = (guint32)r->p[0] << 24 | r->p[1] << 16 | r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->len -= 4;
	return TRUE;
}

static gboolean
get_string(Reader *r, Reader *out, GError **error)
{
	guint32 len;
	if (!get_u32(r, &len, error))
		return FALSE;
	if (len > r->len) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "ssh-agent: a %u-byte string in %u bytes",
			    len,
			    (guint)r->len);
		return FALSE;
	}
	out->p = r->p;
	out->len = len;
	r->p += len;
	r->len -= len;
	return TRUE;
}

static gboolean
reader_equals(Reader *r, const gchar *s)
{
	return r->len == strlen(s) && memcmp(r->p, s, r->len) == 0;
}

/* one request, one reply: both length-prefixed */
static GByteArray *
transact(int fd, GByteArray *msg, GError **error)
{
	guint8 hdr[4] = {msg->len >> 24, msg->len >> 16, msg->len >> 8, msg->len};
	g_autoptr(GByteArray) reply = g_byte_array_new();
	guint32 len;

	if (!kb_write_all(fd, hdr, 4, error) || !kb_write_all(fd, msg->data, msg->len, error) ||
	    !kb_read_all(fd, hdr, 4, error)) {
		g_prefix_error(error, "ssh-agent: ");
		return NULL;
	}
	len = (guint32)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
	if (len == 0 || len > MAX_MESSAGE) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "ssh-agent: reply length %u out of range",
			    len);
		return NULL;
	}
	g_byte_array_set_size(reply, len);
	if (!kb_read_all(fd, reply->data, len, error)) {
		g_prefix_error(error, "ssh-agent: ");
		return NULL;
	}
	return g_steal_pointer(&reply);
}

static const gchar *
ssh_key_type(gnutls_pk_algorithm_t pk)
{
	switch (pk) {
	case GNUTLS_PK_EDDSA_ED25519:
		return "ssh-ed25519";
	case GNUTLS_PK_ECDSA:
		return "ecdsa-sha2-nistp256";
	default:
		return "ssh-rsa";
	}
}

static void
put_ec_point(GByteArray *b, KbRawKey *raw)
{
	put_u32(b, 65);
	g_byte_array_append(b, (const guint8 *)"\x04", 1);
	g_byte_array_append(b, raw->x->data, 32);
	g_byte_array_append(b, raw->y->data, 32);
}

/* the public key blob, as in authorized_keys */
static GByteArray *
key_blob(KbRawKey *raw)
{
	GByteArray *b = g_byte_array_new();
	put_cstring(b, ssh_key_type(raw->pk));
	if (raw->pk == GNUTLS_PK_EDDSA_ED25519) {
		put_string(b, raw->x->data, raw->x->len);
	} else if (raw->pk == GNUTLS_PK_ECDSA) {
		put_cstring(b, "nistp256");
		put_ec_point(b, raw);
	} else {
		put_mpint(b, raw->e);
		put_mpint(b, raw->n);
	}
	return b;
}

static gboolean
add_identity(int fd, KbKey *key, const gchar *comment, GError **error)
{
	g_autoptr(KbRawKey) raw = kb_raw_key_export(key, error);
	g_autoptr(GByteArray) msg = g_byte_array_new();
	g_autoptr(GByteArray) reply = NULL;
	guint8 type = SSH2_AGENTC_ADD_IDENTITY;

	if (raw == NULL)
		return FALSE;
	g_byte_array_append(msg, &type, 1);
	put_cstring(msg, ssh_key_type(raw->pk));
	if (raw->pk == GNUTLS_PK_EDDSA_ED25519) {
		g_autoptr(GByteArray) both = g_byte_array_new();
		put_string(msg, raw->x->data, 32);
		/* openssh's ed25519 private key is seed || public */
		g_byte_array_append(both, raw->d->data, 32);
		g_byte_array_append(both, raw->x->data, 32);
		put_string(msg, both->data, both->len);
		memset(both->data, 0, both->len);
	} else if (raw->pk == GNUTLS_PK_ECDSA) {
		put_cstring(msg, "nistp256");
		put_ec_point(msg, raw);
		put_mpint(msg, raw->d);
	} else {
		put_mpint(msg, raw->n);
		put_mpint(msg, raw->e);
		put_mpint(msg, raw->rd);
		put_mpint(msg, raw->iqmp);
		put_mpint(msg, raw->p);
		put_mpint(msg, raw->q);
	}
	put_cstring(msg, comment);
	reply = transact(fd, msg, error);
	memset(msg->data, 0, msg->len);
	if (reply == NULL)
		return FALSE;
	if (reply->data[0] != SSH_AGENT_SUCCESS) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PEER,
			    "ssh-agent refused the key (reply %u)",
			    reply->data[0]);
		return FALSE;
	}
	return TRUE;
}

/* ---- bench ---- */

typedef struct {
	KbAlg alg;
	GByteArray *blob;
} SshCfg;

typedef struct {
	SshCfg *cfg;
	int fd;
	GByteArray *request;
} SshState;

static gpointer
ssh_open(gpointer cfg_ptr, guint index, GError **error)
{
	SshCfg *cfg = cfg_ptr;
	g_autoptr(GBytes) msg = kb_message();
	SshState *state;
	guint8 type = SSH2_AGENTC_SIGN_REQUEST;
	int fd = kb_unix_connect(opt_socket, error);

	if (fd < 0)
		return NULL;
	state = g_new0(SshState, 1);
	state->cfg = cfg;
	state->fd = fd;
	/* the request is the same every time: build it once */
	state->request = g_byte_array_new();
	g_byte_array_append(state->request, &type, 1);
	put_string(state->request, cfg->blob->data, cfg->blob->len);
	put_string(state->request, g_bytes_get_data(msg, NULL), g_bytes_get_size(msg));
	put_u32(state->request, cfg->alg == KB_ALG_RSA_PKCS1_SHA256 ? SSH_AGENT_RSA_SHA2_256 : 0);
	return state;
}

static gboolean
ssh_op(gpointer state_ptr, GByteArray *out, GError **error)
{
	SshState *state = state_ptr;
	g_autoptr(GByteArray) reply = transact(state->fd, state->request, error);
	Reader r, sig, name, blob;
	const gchar *want;

	if (reply == NULL)
		return FALSE;
	if (reply->data[0] == SSH_AGENT_FAILURE) {
		g_set_error_literal(error, KB_ERROR, KB_ERROR_PEER, "ssh-agent refused to sign");
		return FALSE;
	}
	if (reply->data[0] != SSH2_AGENT_SIGN_RESPONSE) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "ssh-agent: unexpected reply %u",
			    reply->data[0]);
		return FALSE;
	}
	r = (Reader){reply->data + 1, reply->len - 1};
	if (!get_string(&r, &sig, error) || !get_string(&sig, &name, error) ||
	    !get_string(&sig, &blob, error))
		return FALSE;
	want = state->cfg->alg == KB_ALG_RSA_PKCS1_SHA256
		   ? "rsa-sha2-256"
		   : ssh_key_type(state->cfg->alg == KB_ALG_ED25519 ? GNUTLS_PK_EDDSA_ED25519
								    : GNUTLS_PK_ECDSA);
	if (!reader_equals(&name, want)) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "ssh-agent: signature type is not %s",
			    want);
		return FALSE;
	}
	if (state->cfg->alg == KB_ALG_ECDSA_SHA256) {
		Reader rr, ss;
		if (!get_string(&blob, &rr, error) || !get_string(&blob, &ss, error))
			return FALSE;
		return kb_ecdsa_rs_to_der(rr.p, rr.len, ss.p, ss.len, out, error);
	}
	g_byte_array_append(out, blob.p, blob.len);
	return TRUE;
}

static void
ssh_close(gpointer state_ptr)
{
	SshState *state = state_ptr;
	close(state->fd);
	g_byte_array_unref(state->request);
	g_free(state);
}

static const KbDriver ssh_driver = {ssh_open, ssh_op, ssh_close};

int
main(int argc, char **argv)
{
	KbCommonOptions opts = {0};
	g_autofree GOptionEntry *entries = kb_common_entries(&opts);
	g_autoptr(GOptionContext) ctx = g_option_context_new("add KEY.pem...|bench - ssh-agent");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) ciphertext = NULL;
	g_autoptr(KbRawKey) raw = NULL;
	GOptionEntry ssh_entries[] = {
	    {"socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_socket, "SSH_AUTH_SOCK", "PATH"},
	    {NULL}};
	SshCfg cfg = {0};
	KbRun run = {.driver = &ssh_driver, .cfg = &cfg};

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, ssh_entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("ssh", error);
	if (opt_socket == NULL)
		opt_socket = g_strdup(g_getenv("SSH_AUTH_SOCK"));
	if (opt_socket == NULL) {
		g_set_error_literal(&error, KB_ERROR, KB_ERROR_FAILED, "--socket is required");
		return kb_report_error("ssh", error);
	}

	if (argc > 1 && g_strcmp0(argv[1], "add") == 0) {
		int fd = kb_unix_connect(opt_socket, &error);
		if (fd < 0)
			return kb_report_error("ssh add", error);
		for (int i = 2; i < argc; i++) {
			g_autoptr(KbKey) key = kb_key_load(argv[i], &error);
			if (key == NULL || !add_identity(fd, key, argv[i], &error)) {
				close(fd);
				return kb_report_error("ssh add", error);
			}
		}
		close(fd);
		return 0;
	}
	if (argc < 2 || g_strcmp0(argv[1], "bench") != 0) {
		g_printerr("usage: %s add KEY.pem...|bench [OPTIONS]\n", argv[0]);
		return 1;
	}
	if (!kb_common_prepare(&opts, &run, &ciphertext, &error))
		return kb_report_error(opts.label, error);
	if (kb_alg_is_decrypt(run.alg)) {
		g_set_error_literal(&error,
				    KB_ERROR,
				    KB_ERROR_UNSUPPORTED,
				    "ssh-agent does not decrypt");
		return kb_report_error(opts.label, error);
	}
	raw = kb_raw_key_export(run.key, &error);
	if (raw == NULL)
		return kb_report_error(opts.label, error);
	cfg.alg = run.alg;
	cfg.blob = key_blob(raw);
	if (!kb_run(&run, &error))
		return kb_report_error(opts.label, error);
	return 0;
}
