/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux-ssh: the module that links libssh (src/common/kmx-import-ssh.c
 * is its only user)
 *
 * An "openssh-key-v1" file with a passphrase derives its key with
 * bcrypt-pbkdf, which neither gnutls nor libcrypto has.  libssh decrypts
 * it and writes the key out again without a passphrase.  Only the libssh
 * calls live here; the caller checks the container before and words the
 * errors after.
 */
#include "config.h"

#include <string.h>

#include <gmodule.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <openssl/err.h>

#include "kmx-module.h"

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(ssh_key, ssh_key_free, NULL)

static void
kmx_module_ssh_drop_log(int priority, const char *function, const char *buffer, void *userdata)
{
}

/* at its trace level libssh prints the passphrase: it must log nothing.
 * its log level and callback are per thread, so they are set on the
 * calling pool thread before each use */
static void
kmx_module_ssh_prepare(void)
{
	static gsize initialised = 0;

	if (g_once_init_enter(&initialised)) {
		/* libssh initialises itself when loaded; this only counts a user */
		ssh_init();
		g_once_init_leave(&initialised, 1);
	}
	ssh_set_log_callback(kmx_module_ssh_drop_log);
	ssh_set_log_level(SSH_LOG_NOLOG);
}

static gboolean
kmx_module_ssh_type_supported(enum ssh_keytypes_e type)
{
	return type == SSH_KEYTYPE_ED25519 || type == SSH_KEYTYPE_RSA ||
	       type == SSH_KEYTYPE_ECDSA_P256 || type == SSH_KEYTYPE_ECDSA_P384;
}

/* the decrypted key must be the one the file names in clear: the key id is
 * computed from the private key, and a user checks the public one */
static gboolean
kmx_module_ssh_public_matches(ssh_key key, const char *public_b64)
{
	char *have = NULL;
	gboolean same;

	if (ssh_pki_export_pubkey_base64(key, &have) != SSH_OK || have == NULL)
		return FALSE;
	same = strcmp(have, public_b64) == 0;
	ssh_string_free_char(have);
	return same;
}

static void
kmx_module_ssh_free_pem(char *pem)
{
	if (pem == NULL)
		return;
	explicit_bzero(pem, strlen(pem));
	ssh_string_free_char(pem);
}

static KmxModuleSshStatus
kmx_module_ssh_decrypt(const char *text,
		       const char *passphrase,
		       const char *public_b64,
		       const char **type_name,
		       char **pem)
{
	g_auto(ssh_key) key = NULL;
	enum ssh_keytypes_e type;
	char *out = NULL;
	int rc;

	*type_name = NULL;
	*pem = NULL;
	kmx_module_ssh_prepare();
	/* with a passphrase and no callback libssh never prompts; the text
	 * starts with the OpenSSH header, so it never reaches libcrypto's PEM
	 * reader, which would */
	rc = ssh_pki_import_privkey_base64(text, passphrase, NULL, NULL, &key);
	ERR_clear_error();
	if (rc != SSH_OK || key == NULL)
		return KMX_MODULE_SSH_BAD_PASSPHRASE;
	type = ssh_key_type(key);
	if (!kmx_module_ssh_type_supported(type)) {
		*type_name = ssh_key_type_to_char(type);
		return KMX_MODULE_SSH_UNSUPPORTED_TYPE;
	}
	if (!kmx_module_ssh_public_matches(key, public_b64))
		return KMX_MODULE_SSH_MISMATCH;
	rc = ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &out);
	ERR_clear_error();
	if (rc != SSH_OK || out == NULL) {
		kmx_module_ssh_free_pem(out);
		return KMX_MODULE_SSH_CANNOT_EXPORT;
	}
	*pem = out;
	return KMX_MODULE_SSH_OK;
}

static const KmxModuleSsh kmx_module_ssh = {
    .decrypt = kmx_module_ssh_decrypt,
    .free_pem = kmx_module_ssh_free_pem,
};

KMX_MODULE_DEFINE_GET(kmx_module_ssh_get, kmx_module_ssh)
