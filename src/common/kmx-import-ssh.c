/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: passphrase-protected OpenSSH keys, through libssh
 *
 * An "openssh-key-v1" file with a passphrase derives its key with
 * bcrypt-pbkdf, which neither gnutls nor libcrypto has.  libssh decrypts
 * it and writes the key out again without a passphrase (an unencrypted
 * OpenSSH key for Ed25519, a PKCS#8 PEM for ECDSA with libssh 0.10), which
 * the import parser then reads like any key it is given.  libssh and its
 * Kerberos chain are loaded only here, on first use, from the keymux-ssh
 * module (src/modules/kmx-module-ssh.c).
 *
 * The caller has checked the container (cipher, kdf options, one key), so
 * libssh only sees files it decrypts safely; libssh 0.10 crashes on the
 * AEAD ciphers, which the caller refuses.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-import-ssh.h"
#include "kmx-module.h"

static KmxModule kmx_import_ssh_module = {
    .name = "keymux-ssh",
    .symbol = "kmx_module_ssh_get",
    .needs = "importing a passphrase-protected OpenSSH key needs libssh (package libssh-4)",
};

/**
 * kmx_import_ssh_decrypt:
 * @text: an encrypted "openssh-key-v1" key as PEM text, checked by the caller
 * @passphrase: its passphrase, not empty
 * @public_blob: the public key the file holds in clear
 * @public_len: its length
 *
 * Returns: (transfer full): the same key without a passphrase, as PEM text
 * (OpenSSH or PKCS#8), NUL-terminated in secret memory; or %NULL with
 * %KMX_ERROR_BAD_SECRET (wrong passphrase), %KMX_ERROR_INVALID_ARGUMENT or
 * %KMX_ERROR_NOT_SUPPORTED (also when libssh cannot be loaded)
 */
KmxSecret *
kmx_import_ssh_decrypt(KmxSecret *text,
		       KmxSecret *passphrase,
		       const guint8 *public_blob,
		       gsize public_len,
		       GError **error)
{
	const KmxModuleSsh *ssh;
	g_autofree char *public_b64 = NULL;
	const char *type_name = NULL;
	KmxSecret *plain = NULL;
	char *pem = NULL;

	g_return_val_if_fail(!kmx_secret_is_empty(passphrase), NULL);

	ssh = kmx_module_load(&kmx_import_ssh_module, error);
	if (ssh == NULL)
		return NULL;
	public_b64 = g_base64_encode(public_blob, public_len);
	switch (ssh->decrypt(kmx_secret_get_string(text),
			     kmx_secret_get_string(passphrase),
			     public_b64,
			     &type_name,
			     &pem)) {
	case KMX_MODULE_SSH_OK:
		plain = kmx_secret_new_from_string(pem);
		ssh->free_pem(pem);
		return plain;
	case KMX_MODULE_SSH_BAD_PASSPHRASE:
		/* the container was checked, so what fails is the check of the
		 * decrypted bytes: a wrong passphrase, as ssh-keygen says too */
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "wrong passphrase for the OpenSSH key");
		return NULL;
	case KMX_MODULE_SSH_UNSUPPORTED_TYPE:
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "OpenSSH keys of type %s are not supported: use ssh-ed25519, ssh-rsa or "
		    "ecdsa-sha2-nistp256/384",
		    type_name != NULL ? type_name : "?");
		return NULL;
	case KMX_MODULE_SSH_MISMATCH:
		g_set_error_literal(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "cannot read the key (the OpenSSH private key does not match its "
		    "public key)");
		return NULL;
	case KMX_MODULE_SSH_CANNOT_EXPORT:
	default:
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
}
