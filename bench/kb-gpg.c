/*
 * kmx-bench-gpg: gpg-agent, spoken to in Assuan on its socket
 *
 *   import  KEYWRAP_KEY + IMPORT_KEY of PEM keys (gpg cannot import a bare
 *           PKCS#8 key; this gives the agent the very same keys), prints
 *           "<file> <keygrip>" per key
 *   bench   SIGKEY / SETHASH / PKSIGN per signature, as gpg does, or
 *           SETKEY / PKDECRYPT (+ INQUIRE CIPHERTEXT) per decryption
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"
#include "kb-wire.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#define ASSUAN_LINE_MAX 1000

static gchar *opt_socket;
static gchar *opt_keygrip;

/* ---- assuan ---- */

typedef struct {
	int fd;
	guint8 buf[4096];
	gsize have;
} Assuan;

static gboolean
read_line(Assuan *a, GString *line, GError **error)
{
	g_string_truncate(line, 0);
	for (;;) {
		guint8 *nl = memchr(a->buf, '\n', a->have);
		ssize_t n;
		if (nl != NULL) {
			gsize len = nl - a->buf;
			g_string_append_len(line, (const gchar *)a->buf, len);
			memmove(a->buf, nl + 1, a->have - len - 1);
			a->have -= len + 1;
			return TRUE;
		}
		if (a->have == sizeof a->buf || line->len > ASSUAN_LINE_MAX) {
			g_set_error_literal(error,
					    KB_ERROR,
					    KB_ERROR_PROTOCOL,
					    "gpg-agent: line too long");
			return FALSE;
		}
		n = read(a->fd, a->buf + a->have, sizeof a->buf - a->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_PROTOCOL,
				    "gpg-agent: %s",
				    n < 0 ? g_strerror(errno) : "connection closed");
			return FALSE;
		}
		a->have += n;
	}
}

static gboolean
unescape_append(GByteArray *out, const gchar *s, gsize len, GError **error)
{
	for (gsize i = 0; i < len; i++) {
		guint8 c = s[i];
		if (c == '%') {
			gint hi, lo;
			if (i + 2 >= len) {
				g_set_error_literal(error,
						    KB_ERROR,
						    KB_ERROR_PROTOCOL,
						    "gpg-agent: bad escape in a D line");
				return FALSE;
			}
			hi = g_ascii_xdigit_value(s[i + 1]);
			lo = g_ascii_xdigit_value(s[i + 2]);
			if (hi < 0 || lo < 0) {
				g_set_error_literal(error,
						    KB_ERROR,
						    KB_ERROR_PROTOCOL,
						    "gpg-agent: bad escape in a D line");
				return FALSE;
			}
			c = hi << 4 | lo;
			i += 2;
		}
		g_byte_array_append(out, &c, 1);
	}
	return TRUE;
}

/* D lines of at most ASSUAN_LINE_MAX bytes, with %, CR and LF escaped */
static gboolean
send_data(Assuan *a, const guint8 *p, gsize len, GError **error)
{
	g_autoptr(GString) line = g_string_new(NULL);
	gsize i = 0;
	while (i < len) {
		g_string_assign(line, "D ");
		while (i < len && line->len < ASSUAN_LINE_MAX - 8) {
			if (p[i] == '%' || p[i] == '\r' || p[i] == '\n')
				g_string_append_printf(line, "%%%02X", p[i]);
			else
				g_string_append_c(line, p[i]);
			i++;
		}
		g_string_append_c(line, '\n');
		if (!kb_write_all(a->fd, line->str, line->len, error))
			return FALSE;
	}
	return kb_write_all(a->fd, "END\n", 4, error);
}

typedef const GByteArray *(*InquireFunc)(const gchar *keyword, gpointer user_data);

/* one command; D data collected into out; INQUIREs answered by inquire() */
static gboolean
command(Assuan *a,
	const gchar *cmd,
	GByteArray *out,
	InquireFunc inquire,
	gpointer user_data,
	GError **error)
{
	g_autoptr(GString) line = g_string_new(NULL);
	g_autofree gchar *full = g_strconcat(cmd, "\n", NULL);

	if (!kb_write_all(a->fd, full, strlen(full), error))
		return FALSE;
	for (;;) {
		if (!read_line(a, line, error))
			return FALSE;
		if (g_str_has_prefix(line->str, "OK") && (line->len == 2 || line->str[2] == ' '))
			return TRUE;
		if (g_str_has_prefix(line->str, "ERR ")) {
			g_autofree gchar *c = g_strndup(cmd, strcspn(cmd, " "));
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_PEER,
				    "gpg-agent: %s: %s",
				    c,
				    line->str + 4);
			return FALSE;
		}
		if (g_str_has_prefix(line->str, "D ")) {
			if (out != NULL &&
			    !unescape_append(out, line->str + 2, line->len - 2, error))
				return FALSE;
			continue;
		}
		if (g_str_has_prefix(line->str, "INQUIRE ")) {
			const GByteArray *data = NULL;
			g_autofree gchar *kw =
			    g_strndup(line->str + 8, strcspn(line->str + 8, " "));
			if (inquire != NULL)
				data = inquire(kw, user_data);
			if (data == NULL) {
				/* an empty answer: e.g. no passphrase to protect an import */
				if (!kb_write_all(a->fd, "END\n", 4, error))
					return FALSE;
			} else if (!send_data(a, data->data, data->len, error)) {
				return FALSE;
			}
			continue;
		}
		if (line->str[0] == 'S' || line->str[0] == '#')
			continue;
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "gpg-agent: unexpected line '%.40s'",
			    line->str);
		return FALSE;
	}
}

static Assuan *
assuan_connect(GError **error)
{
	g_autoptr(GString) line = g_string_new(NULL);
	Assuan *a;
	int fd = kb_unix_connect(opt_socket, error);
	if (fd < 0)
		return NULL;
	a = g_new0(Assuan, 1);
	a->fd = fd;
	if (!read_line(a, line, error) || !g_str_has_prefix(line->str, "OK")) {
		if (error != NULL && *error == NULL)
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_PROTOCOL,
				    "gpg-agent: greeting was '%.40s'",
				    line->str);
		close(fd);
		g_free(a);
		return NULL;
	}
	return a;
}

static void
assuan_free(Assuan *a)
{
	close(a->fd);
	g_free(a);
}

/* ---- canonical s-expressions ---- */

static void
sx_raw(GString *s, const gchar *text)
{
	g_string_append(s, text);
}

static void
sx_atom(GString *s, const guint8 *p, gsize len)
{
	g_string_append_printf(s, "%" G_GSIZE_FORMAT ":", len);
	g_string_append_len(s, (const gchar *)p, len);
}

static void
sx_str(GString *s, const gchar *text)
{
	sx_atom(s, (const guint8 *)text, strlen(text));
}

/* (name value) with value as a positive mpi: a leading zero if the top bit is set */
static void
sx_mpi(GString *s, const gchar *name, GByteArray *v)
{
	g_autoptr(GByteArray) m = kb_strip_lz(v->data, v->len);
	sx_raw(s, "(");
	sx_str(s, name);
	if (m->len > 0 && (m->data[0] & 0x80)) {
		g_string_append_printf(s, "%u:", m->len + 1);
		g_string_append_c(s, '\0');
		g_string_append_len(s, (const gchar *)m->data, m->len);
	} else {
		sx_atom(s, m->data, m->len);
	}
	sx_raw(s, ")");
}

/* finds "(name value" anywhere in a canonical s-expression */
static gboolean
sx_find(const guint8 *p, gsize len, const gchar *name, const guint8 **val, gsize *val_len)
{
	gsize nlen = strlen(name);
	gsize i = 0;
	gboolean after_open = FALSE;
	while (i < len) {
		if (p[i] == '(') {
			after_open = TRUE;
			i++;
		} else if (p[i] == ')') {
			after_open = FALSE;
			i++;
		} else if (g_ascii_isdigit(p[i])) {
			gsize n = 0, start;
			while (i < len && g_ascii_isdigit(p[i]) && n < 1000000)
				n = n * 10 + (p[i++] - '0');
			if (i >= len || p[i] != ':' || n > len - i - 1)
				return FALSE;
			start = i + 1;
			i = start + n;
			if (after_open && n == nlen && memcmp(p + start, name, n) == 0) {
				/* the next atom is the value */
				gsize m = 0;
				while (i < len && g_ascii_isdigit(p[i]) && m < 1000000)
					m = m * 10 + (p[i++] - '0');
				if (i >= len || p[i] != ':' || m > len - i - 1)
					return FALSE;
				*val = p + i + 1;
				*val_len = m;
				return TRUE;
			}
			after_open = FALSE;
		} else {
			return FALSE;
		}
	}
	return FALSE;
}

/* ---- import ---- */

static GString *
private_key_sexp(KbRawKey *raw)
{
	GString *s = g_string_new("(11:private-key");
	if (raw->pk == GNUTLS_PK_RSA) {
		/* libgcrypt wants u = p^-1 mod q: swap p and q, and iqmp fits */
		sx_raw(s, "(3:rsa");
		sx_mpi(s, "n", raw->n);
		sx_mpi(s, "e", raw->e);
		sx_mpi(s, "d", raw->rd);
		sx_mpi(s, "p", raw->q);
		sx_mpi(s, "q", raw->p);
		sx_mpi(s, "u", raw->iqmp);
		sx_raw(s, ")");
	} else if (raw->pk == GNUTLS_PK_ECDSA) {
		g_autoptr(GByteArray) q = g_byte_array_new();
		g_byte_array_append(q, (const guint8 *)"\x04", 1);
		g_byte_array_append(q, raw->x->data, 32);
		g_byte_array_append(q, raw->y->data, 32);
		sx_raw(s, "(3:ecc(5:curve10:NIST P-256)(1:q");
		sx_atom(s, q->data, q->len);
		sx_raw(s, ")");
		sx_mpi(s, "d", raw->d);
		sx_raw(s, ")");
	} else {
		g_autoptr(GByteArray) q = g_byte_array_new();
		/* 0x40: gnupg's prefix for a native (compressed) eddsa point */
		g_byte_array_append(q, (const guint8 *)"\x40", 1);
		g_byte_array_append(q, raw->x->data, 32);
		sx_raw(s, "(3:ecc(5:curve7:Ed25519)(5:flags5:eddsa)(1:q");
		sx_atom(s, q->data, q->len);
		sx_raw(s, ")");
		sx_mpi(s, "d", raw->d);
		sx_raw(s, ")");
	}
	sx_raw(s, ")");
	return s;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free)

/* rfc 3394 aes key wrap, as libgcrypt's GCRY_CIPHER_MODE_AESWRAP, from libcrypto */
static GByteArray *
aes_key_wrap(const guint8 *kek, gsize kek_len, const guint8 *in, gsize len, GError **error)
{
	const EVP_CIPHER *cipher = kek_len == 16   ? EVP_aes_128_wrap()
				   : kek_len == 24 ? EVP_aes_192_wrap()
						   : EVP_aes_256_wrap();
	g_autoptr(EVP_CIPHER_CTX) ctx = EVP_CIPHER_CTX_new();
	g_autoptr(GByteArray) out = g_byte_array_new();
	int n = 0, fin = 0;

	/* wrapped = 8-byte integrity block + input, plus room for a final block */
	g_byte_array_set_size(out, len + 16);
	if (ctx != NULL)
		EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (ctx == NULL || !EVP_EncryptInit_ex(ctx, cipher, NULL, kek, NULL) ||
	    !EVP_EncryptUpdate(ctx, out->data, &n, in, (int)len) ||
	    !EVP_EncryptFinal_ex(ctx, out->data + n, &fin)) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "libcrypto aes key wrap of %u bytes failed",
			    (guint)len);
		return NULL;
	}
	g_byte_array_set_size(out, n + fin);
	return g_steal_pointer(&out);
}

static const GByteArray *
import_inquire(const gchar *keyword, gpointer user_data)
{
	/* the wrapped key; nothing (an empty passphrase) for anything else */
	return g_strcmp0(keyword, "KEYDATA") == 0 ? user_data : NULL;
}

static GPtrArray *
list_keygrips(Assuan *a, GError **error)
{
	g_autoptr(GString) line = g_string_new(NULL);
	GPtrArray *grips = g_ptr_array_new_with_free_func(g_free);
	/* KEYINFO --list answers in status lines: read them here rather than in command() */
	if (!kb_write_all(a->fd, "KEYINFO --list\n", 15, error))
		return NULL;
	for (;;) {
		if (!read_line(a, line, error)) {
			g_ptr_array_unref(grips);
			return NULL;
		}
		if (g_str_has_prefix(line->str, "S KEYINFO ")) {
			g_auto(GStrv) f = g_strsplit(line->str, " ", 4);
			if (g_strv_length(f) >= 3)
				g_ptr_array_add(grips, g_strdup(f[2]));
		} else if (g_str_has_prefix(line->str, "OK")) {
			return grips;
		} else if (g_str_has_prefix(line->str, "ERR")) {
			g_set_error(error,
				    KB_ERROR,
				    KB_ERROR_PEER,
				    "gpg-agent: KEYINFO: %s",
				    line->str);
			g_ptr_array_unref(grips);
			return NULL;
		}
	}
}

static gchar *
import_key(Assuan *a, KbKey *key, GError **error)
{
	g_autoptr(KbRawKey) raw = kb_raw_key_export(key, error);
	g_autoptr(GByteArray) kek = g_byte_array_new();
	g_autoptr(GByteArray) wrapped = NULL;
	g_autoptr(GPtrArray) before = NULL;
	g_autoptr(GPtrArray) after = NULL;
	g_autoptr(GString) sexp = NULL;

	if (raw == NULL)
		return NULL;
	before = list_keygrips(a, error);
	if (before == NULL)
		return NULL;
	if (!command(a, "OPTION pinentry-mode=loopback", NULL, NULL, NULL, error) ||
	    !command(a, "KEYWRAP_KEY --import", kek, NULL, NULL, error))
		return NULL;
	if (kek->len != 16 && kek->len != 24 && kek->len != 32) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "gpg-agent: a %u-byte key-wrapping key",
			    kek->len);
		return NULL;
	}
	sexp = private_key_sexp(raw);
	/* key wrap works on 64-bit blocks; the parser stops at the last paren */
	while (sexp->len % 8 != 0)
		g_string_append_c(sexp, '\0');
	wrapped = aes_key_wrap(kek->data, kek->len, (const guint8 *)sexp->str, sexp->len, error);
	memset(sexp->str, 0, sexp->len);
	if (wrapped == NULL)
		return NULL;
	if (!command(a, "IMPORT_KEY", NULL, import_inquire, wrapped, error))
		return NULL;
	after = list_keygrips(a, error);
	if (after == NULL)
		return NULL;
	for (guint i = 0; i < after->len; i++) {
		const gchar *g = g_ptr_array_index(after, i);
		gboolean old = FALSE;
		for (guint j = 0; j < before->len && !old; j++)
			old = g_strcmp0(g, g_ptr_array_index(before, j)) == 0;
		if (!old)
			return g_strdup(g);
	}
	g_set_error_literal(
	    error,
	    KB_ERROR,
	    KB_ERROR_PROTOCOL,
	    "gpg-agent: IMPORT_KEY said OK but no new key is listed (imported twice?)");
	return NULL;
}

/* ---- bench ---- */

typedef struct {
	KbAlg alg;
	gchar *sigkey_cmd;
	gchar *sethash_cmd;
	GByteArray *enc_val; /* decrypt: the ciphertext s-expression */
	gsize modulus_len;
} GpgCfg;

typedef struct {
	GpgCfg *cfg;
	Assuan *a;
	GByteArray *reply;
} GpgState;

static gpointer
gpg_open(gpointer cfg_ptr, guint index, GError **error)
{
	GpgState *state;
	Assuan *a = assuan_connect(error);
	if (a == NULL)
		return NULL;
	state = g_new0(GpgState, 1);
	state->cfg = cfg_ptr;
	state->a = a;
	state->reply = g_byte_array_new();
	return state;
}

static const GByteArray *
decrypt_inquire(const gchar *keyword, gpointer user_data)
{
	GpgCfg *cfg = user_data;
	return g_strcmp0(keyword, "CIPHERTEXT") == 0 ? cfg->enc_val : NULL;
}

static gboolean
gpg_op(gpointer state_ptr, GByteArray *out, GError **error)
{
	GpgState *state = state_ptr;
	GpgCfg *cfg = state->cfg;
	const guint8 *r, *s;
	gsize r_len, s_len;

	g_byte_array_set_size(state->reply, 0);
	if (kb_alg_is_decrypt(cfg->alg)) {
		if (!command(state->a, cfg->sigkey_cmd, NULL, NULL, NULL, error) ||
		    !command(state->a, "PKDECRYPT", state->reply, decrypt_inquire, cfg, error))
			return FALSE;
		if (!sx_find(state->reply->data, state->reply->len, "value", &r, &r_len)) {
			g_set_error_literal(error,
					    KB_ERROR,
					    KB_ERROR_PROTOCOL,
					    "gpg-agent: PKDECRYPT returned no value");
			return FALSE;
		}
		g_byte_array_append(out, r, r_len);
		return TRUE;
	}
	if (!command(state->a, cfg->sigkey_cmd, NULL, NULL, NULL, error) ||
	    !command(state->a, cfg->sethash_cmd, NULL, NULL, NULL, error) ||
	    !command(state->a, "PKSIGN", state->reply, NULL, NULL, error))
		return FALSE;
	if (cfg->alg == KB_ALG_RSA_PKCS1_SHA256) {
		g_autoptr(GByteArray) sig = NULL;
		if (!sx_find(state->reply->data, state->reply->len, "s", &s, &s_len))
			goto bad;
		sig = kb_fixed_len(s, s_len, cfg->modulus_len);
		g_byte_array_append(out, sig->data, sig->len);
		return TRUE;
	}
	if (!sx_find(state->reply->data, state->reply->len, "r", &r, &r_len) ||
	    !sx_find(state->reply->data, state->reply->len, "s", &s, &s_len))
		goto bad;
	if (cfg->alg == KB_ALG_ECDSA_SHA256)
		return kb_ecdsa_rs_to_der(r, r_len, s, s_len, out, error);
	{
		g_autoptr(GByteArray) rr = kb_fixed_len(r, r_len, 32);
		g_autoptr(GByteArray) ss = kb_fixed_len(s, s_len, 32);
		g_byte_array_append(out, rr->data, 32);
		g_byte_array_append(out, ss->data, 32);
	}
	return TRUE;
bad:
	g_set_error_literal(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "gpg-agent: PKSIGN returned no usable sig-val");
	return FALSE;
}

static void
gpg_close(gpointer state_ptr)
{
	GpgState *state = state_ptr;
	assuan_free(state->a);
	g_byte_array_unref(state->reply);
	g_free(state);
}

static const KbDriver gpg_driver = {gpg_open, gpg_op, gpg_close};

int
main(int argc, char **argv)
{
	KbCommonOptions opts = {0};
	g_autofree GOptionEntry *entries = kb_common_entries(&opts);
	g_autoptr(GOptionContext) ctx = g_option_context_new("import KEY.pem...|bench - gpg-agent");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) ciphertext = NULL;
	GOptionEntry gpg_entries[] = {
	    {"socket",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &opt_socket,
	     "gpg-agent socket (gpgconf --list-dirs agent-socket)",
	     "PATH"},
	    {"keygrip", 0, 0, G_OPTION_ARG_STRING, &opt_keygrip, "Key to use", "HEX"},
	    {NULL}};
	GpgCfg cfg = {0};
	KbRun run = {.driver = &gpg_driver, .cfg = &cfg};

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, gpg_entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("gpg", error);
	if (opt_socket == NULL) {
		g_set_error_literal(&error, KB_ERROR, KB_ERROR_FAILED, "--socket is required");
		return kb_report_error("gpg", error);
	}

	if (argc > 1 && g_strcmp0(argv[1], "import") == 0) {
		Assuan *a = assuan_connect(&error);
		if (a == NULL)
			return kb_report_error("gpg import", error);
		for (int i = 2; i < argc; i++) {
			g_autoptr(KbKey) key = kb_key_load(argv[i], &error);
			g_autofree gchar *grip = NULL;
			if (key != NULL)
				grip = import_key(a, key, &error);
			if (grip == NULL) {
				assuan_free(a);
				g_prefix_error(&error, "%s: ", argv[i]);
				return kb_report_error("gpg import", error);
			}
			g_print("%s %s\n", argv[i], grip);
		}
		assuan_free(a);
		return 0;
	}
	if (argc < 2 || g_strcmp0(argv[1], "bench") != 0) {
		g_printerr("usage: %s import KEY.pem...|bench [OPTIONS]\n", argv[0]);
		return 1;
	}
	if (!kb_common_prepare(&opts, &run, &ciphertext, &error))
		return kb_report_error(opts.label, error);
	if (opt_keygrip == NULL || strlen(opt_keygrip) != 40) {
		g_set_error_literal(&error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "--keygrip (40 hex) is required");
		return kb_report_error(opts.label, error);
	}
	cfg.alg = run.alg;
	if (kb_alg_is_decrypt(run.alg)) {
		g_autoptr(GString) s = g_string_new("(7:enc-val(5:flags4:oaep)(9:hash-algo6:sha256)"
						    "(3:rsa(1:a");
		sx_atom(s, g_bytes_get_data(ciphertext, NULL), g_bytes_get_size(ciphertext));
		sx_raw(s, ")))");
		cfg.enc_val = g_byte_array_new();
		g_byte_array_append(cfg.enc_val, (const guint8 *)s->str, s->len);
		cfg.sigkey_cmd = g_strdup_printf("SETKEY %s", opt_keygrip);
	} else {
		g_autofree gchar *hex = NULL;
		hex = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, kb_message());
		cfg.sigkey_cmd = g_strdup_printf("SIGKEY %s", opt_keygrip);
		cfg.sethash_cmd = g_strdup_printf("SETHASH --hash=sha256 %s", hex);
		/* gpg's eddsa signs the digest as the message */
		if (run.alg == KB_ALG_ED25519)
			run.check = KB_CHECK_SIGNATURE_DIGEST;
	}
	if (run.key->pk == GNUTLS_PK_RSA) {
		g_autoptr(KbRawKey) raw = kb_raw_key_export(run.key, &error);
		if (raw == NULL)
			return kb_report_error(opts.label, error);
		cfg.modulus_len = raw->n->len;
	}
	if (!kb_run(&run, &error))
		return kb_report_error(opts.label, error);
	return 0;
}
