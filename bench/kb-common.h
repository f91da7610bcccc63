/*
 * keymux benchmarks: what every bench client shares
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

G_BEGIN_DECLS

#define KB_ERROR (kb_error_quark())
GQuark kb_error_quark(void);

typedef enum {
	KB_ERROR_FAILED,   /* our own mistake or a local failure */
	KB_ERROR_PROTOCOL, /* the peer broke its protocol or returned a wrong result */
	KB_ERROR_PEER,	   /* the peer refused the operation (error reply) */
	KB_ERROR_UNSUPPORTED,
} KbError;

typedef enum {
	KB_ALG_ED25519,
	KB_ALG_ECDSA_SHA256,
	KB_ALG_RSA_PKCS1_SHA256,
	KB_ALG_RSA_OAEP_SHA256,
} KbAlg;

typedef enum {
	KB_LIB_GNUTLS,
	KB_LIB_LIBCRYPTO,
} KbLib;

/* the library kb_key_sign() uses: "gnutls" or "libcrypto" (the default, as
 * keymuxd's soft-key backend) */
gboolean kb_set_sign_lib(const gchar *name, GError **error);

gboolean kb_alg_from_string(const gchar *name, KbAlg *alg, GError **error);
const gchar *kb_alg_to_string(KbAlg alg);
gboolean kb_alg_is_decrypt(KbAlg alg);

/* the message every client signs; the same bytes everywhere */
GBytes *kb_message(void);
/* sha-256 of the message, for peers that want the digest */
GBytes *kb_message_digest(void);

typedef struct {
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
	gnutls_pk_algorithm_t pk;
	GBytes *spki; /* DER SubjectPublicKeyInfo */
	gchar *id;    /* lowercase hex sha-256 of the SPKI */
} KbKey;

KbKey *kb_key_load(const gchar *pem_path, GError **error);
KbKey *kb_key_new_from_data(const guint8 *data, gsize len, const gchar *passphrase, GError **error);
void kb_key_free(KbKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KbKey, kb_key_free)

gchar *kb_spki_id(const guint8 *spki, gsize len);

/* in-process operations, the "limit" */
gboolean kb_key_sign(KbKey *key,
		     KbAlg alg,
		     const guint8 *data,
		     gsize len,
		     GByteArray *out,
		     GError **error);
gboolean kb_key_decrypt(KbKey *key,
			KbAlg alg,
			const guint8 *data,
			gsize len,
			GByteArray *out,
			GError **error);
gboolean kb_key_verify(KbKey *key,
		       KbAlg alg,
		       const guint8 *data,
		       gsize len,
		       const guint8 *sig,
		       gsize sig_len,
		       GError **error);
gboolean kb_key_check_compatible(KbKey *key, KbAlg alg, GError **error);

/* unsigned big-endian integer without leading zeros, as a fresh array */
GByteArray *kb_strip_lz(const guint8 *p, gsize len);
/* left-pad or strip to exactly len bytes */
GByteArray *kb_fixed_len(const guint8 *p, gsize n, gsize len);
/* r and s as big-endian integers to a DER ECDSA-Sig-Value */
gboolean kb_ecdsa_rs_to_der(const guint8 *r,
			    gsize r_len,
			    const guint8 *s,
			    gsize s_len,
			    GByteArray *out,
			    GError **error);

GBytes *kb_read_file(const gchar *path, GError **error);

/*
 * the load generator: one driver opens a connection per client, then calls
 * op() in a loop for a fixed time; latencies of every call are kept
 */
typedef struct {
	/* in the client (thread or process): connect, look the key up */
	gpointer (*open)(gpointer cfg, guint index, GError **error);
	/* one operation; out receives the result (signature or plaintext);
	 * FALSE without an error: this client has nothing more to do */
	gboolean (*op)(gpointer state, GByteArray *out, GError **error);
	void (*close)(gpointer state);
} KbDriver;

typedef enum {
	KB_CHECK_NONE,
	KB_CHECK_SIGNATURE,	   /* out must verify over the message */
	KB_CHECK_SIGNATURE_DIGEST, /* out must verify over the message's digest (gpg eddsa) */
	KB_CHECK_PLAINTEXT,	   /* out must equal the expected plaintext */
} KbCheck;

typedef struct {
	const KbDriver *driver;
	gpointer cfg;
	KbAlg alg;
	KbCheck check;
	KbKey *key;	   /* for the check; may be NULL with KB_CHECK_NONE/PLAINTEXT */
	GBytes *plaintext; /* for KB_CHECK_PLAINTEXT */
	guint clients;
	gdouble seconds;
	guint64 max_ops;      /* per client; 0: only the time limit */
	gboolean use_threads; /* threads in this process, or one process per client */
	const gchar *label;   /* echoed in the json */
} KbRun;

/* runs, prints one json line on stdout; FALSE on any client's error */
gboolean kb_run(KbRun *run, GError **error);
/* prints {"ok":false,...} and returns the exit code to use */
int kb_report_error(const gchar *label, GError *error);

guint64 kb_now_ns(void);

/* the scale command (kmx-bench-dbus, kmx-bench-dbus1): which listing methods
 * --methods asks for; call() made repeat times or until seconds have passed,
 * the median and maximum latency in µs; the one json line */
gboolean kb_scale_methods(const gchar *methods, gboolean *listkeys, gboolean *gmo, GError **error);
gboolean kb_scale_time(gboolean (*call)(gpointer data, GError **error),
		       gpointer data,
		       guint repeat,
		       gdouble seconds,
		       gdouble *p50_us,
		       gdouble *max_us,
		       GError **error);
void kb_scale_print(const gchar *label,
		    gsize keys,
		    gsize objects,
		    gdouble lk_p50,
		    gdouble lk_max,
		    gdouble gmo_p50,
		    gdouble gmo_max,
		    gsize gmo_bytes);

/* common command-line options */
typedef struct {
	gchar *alg;
	gchar *key;
	gchar *ciphertext;
	gchar *plaintext;
	gint clients;
	gdouble seconds;
	gchar *label;
} KbCommonOptions;

GOptionEntry *kb_common_entries(KbCommonOptions *opts);
gboolean kb_common_prepare(KbCommonOptions *opts, KbRun *run, GBytes **ciphertext, GError **error);
gboolean kb_write_all(int fd, const void *buf, gsize len, GError **error);
gboolean kb_read_all(int fd, void *buf, gsize len, GError **error);

G_END_DECLS
