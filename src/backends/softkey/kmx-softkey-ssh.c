/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the only libssh user: passphrase-protected OpenSSH keys
 *
 * An "openssh-key-v1" file with a passphrase derives its key with
 * bcrypt-pbkdf, which neither gnutls nor libcrypto has.  libssh decrypts
 * it and writes the key out again without a passphrase (an unencrypted
 * OpenSSH key for Ed25519, a PKCS#8 PEM for ECDSA with libssh 0.10), which
 * the import parser then reads like any key it is given.
 *
 * The caller has checked the container (cipher, kdf options, one key), so
 * libssh only sees files it decrypts safely; libssh 0.10 crashes on the
 * AEAD ciphers, which the caller refuses.
 */
#include "config.h"

#include <string.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "kmx-error.h"
#include "kmx-softkey-ossl.h"
#include "kmx-softkey-ssh.h"

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(ssh_key, ssh_key_free, NULL)

static void
kmx_softkey_ssh_drop_log(int priority, const char *function, const char *buffer, void *userdata)
{
}

/* at its trace level libssh prints the passphrase: it must log nothing.
 * its log level and callback are per thread, so they are set on the
 * calling pool thread before each use */
static void
kmx_softkey_ssh_prepare(void)
{
	static gsize initialised = 0;

	if (g_once_init_enter(&initialised)) {
		/* libssh initialises itself when loaded; this only counts a user */
		ssh_init();
		g_once_init_leave(&initialised, 1);
	}
	ssh_set_log_callback(kmx_softkey_ssh_drop_log);
	ssh_set_log_level(SSH_LOG_NOLOG);
}

static gboolean
kmx_softkey_ssh_type_supported(enum ssh_keytypes_e type)
{
	return type == SSH_KEYTYPE_ED25519 || type == SSH_KEYTYPE_RSA ||
	       type == SSH_KEYTYPE_ECDSA_P256 || type == SSH_KEYTYPE_ECDSA_P384;
}

/* the decrypted key must be the one the file names in clear: the key id is
 * computed from the private key, and a user checks the public one */
static gboolean
kmx_softkey_ssh_public_matches(ssh_key key, const guint8 *public_blob, gsize public_len)
{
	g_autofree char *want = g_base64_encode(public_blob, public_len);
	char *have = NULL;
	gboolean same;

	if (ssh_pki_export_pubkey_base64(key, &have) != SSH_OK || have == NULL)
		return FALSE;
	same = strcmp(have, want) == 0;
	ssh_string_free_char(have);
	return same;
}

/**
 * kmx_softkey_ssh_decrypt:
 * @text: an encrypted "openssh-key-v1" key as PEM text, checked by the caller
 * @passphrase: its passphrase, not empty
 * @public_blob: the public key the file holds in clear
 * @public_len: its length
 *
 * Returns: (transfer full): the same key without a passphrase, as PEM text
 * (OpenSSH or PKCS#8), NUL-terminated in secret memory; or %NULL with
 * %KMX_ERROR_BAD_SECRET (wrong passphrase), %KMX_ERROR_INVALID_ARGUMENT or
 * %KMX_ERROR_NOT_SUPPORTED
 */
KmxSecret *
kmx_softkey_ssh_decrypt(KmxSecret *text,
			KmxSecret *passphrase,
			const guint8 *public_blob,
			gsize public_len,
			GError **error)
{
	g_auto(ssh_key) key = NULL;
	KmxSecret *plain = NULL;
	enum ssh_keytypes_e type;
	char *out = NULL;
	int rc;

	g_return_val_if_fail(!kmx_secret_is_empty(passphrase), NULL);

	kmx_softkey_ssh_prepare();
	/* with a passphrase and no callback libssh never prompts; the text
	 * starts with the OpenSSH header, so it never reaches libcrypto's PEM
	 * reader, which would */
	rc = ssh_pki_import_privkey_base64(kmx_secret_get_string(text),
					   kmx_secret_get_string(passphrase),
					   NULL,
					   NULL,
					   &key);
	kmx_softkey_ossl_clear_errors();
	if (rc != SSH_OK || key == NULL) {
		/* the container was checked, so what fails is the check of the
		 * decrypted bytes: a wrong passphrase, as ssh-keygen says too */
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "wrong passphrase for the OpenSSH key");
		return NULL;
	}
	type = ssh_key_type(key);
	if (!kmx_softkey_ssh_type_supported(type)) {
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "OpenSSH keys of type %s are not supported: use ssh-ed25519, ssh-rsa or "
		    "ecdsa-sha2-nistp256/384",
		    ssh_key_type_to_char(type) != NULL ? ssh_key_type_to_char(type) : "?");
		return NULL;
	}
	if (!kmx_softkey_ssh_public_matches(key, public_blob, public_len)) {
		g_set_error_literal(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "cannot read the key (the OpenSSH private key does not match its "
		    "public key)");
		return NULL;
	}
	rc = ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &out);
	kmx_softkey_ossl_clear_errors();
	if (out != NULL) {
		if (rc == SSH_OK)
			plain = kmx_secret_new_from_string(out);
		kmx_secure_zero(out, strlen(out));
		ssh_string_free_char(out);
	}
	if (plain == NULL) {
		/* libssh 0.10 with OpenSSL 3 keeps no CRT values for an RSA key
		 * read from an OpenSSH file and cannot write it out again */
		g_set_error_literal(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "this passphrase-protected OpenSSH key cannot be converted here: "
		    "convert a copy first with 'ssh-keygen -p -m PKCS8 -f COPY' "
		    "(encrypted PKCS#8) and import that with its passphrase");
		return NULL;
	}
	return plain;
}
