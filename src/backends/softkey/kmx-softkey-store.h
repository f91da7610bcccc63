/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the soft-key files (store.info, <id>.info, <id>.pem), read and written */
#pragma once

#include <sys/stat.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs12.h>
#include <gnutls/x509.h>

#include "kmx-algorithm.h"
#include "kmx-error.h"
#include "kmx-import.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

#define KMX_SOFTKEY_STORE_INFO	       "store.info"
#define KMX_SOFTKEY_FILE_KEY_LEN       32
#define KMX_SOFTKEY_KDF_ITERATIONS     600000
#define KMX_SOFTKEY_KDF_MAX_ITERATIONS 20000000
#define KMX_SOFTKEY_SALT_LEN	       16
#define KMX_SOFTKEY_NONCE_LEN	       12
#define KMX_SOFTKEY_TAG_LEN	       16
#define KMX_SOFTKEY_AAD		       "keymux-softkey-file-key-v1"
#define KMX_SOFTKEY_MAX_FILE_SIZE      (64 * 1024)
#define KMX_SOFTKEY_KEY_INFO_MAX_SIZE  8192

/**
 * KmxSoftkeyStoreInfo:
 * @protected: the file key is wrapped by a password
 * @file_key: the file key of an unprotected store, else %NULL
 * @iterations: PBKDF2 iterations of a protected store
 * @salt: PBKDF2 salt
 * @nonce: AES-GCM nonce
 * @wrapped: the AES-GCM ciphertext of the file key, tag appended
 */
typedef struct {
	gboolean protected;
	KmxSecret *file_key;
	guint iterations;
	GBytes *salt;
	GBytes *nonce;
	GBytes *wrapped;
} KmxSoftkeyStoreInfo;

void kmx_softkey_store_info_free(KmxSoftkeyStoreInfo *info);
KmxSoftkeyStoreInfo *kmx_softkey_store_info_load(const char *path, GError **error);
KmxSoftkeyStoreInfo *kmx_softkey_store_info_parse(KmxSecret *text,
						  const char *path,
						  GError **error);
gboolean kmx_softkey_store_info_save(const char *path,
				     KmxSecret *file_key,
				     KmxSecret *password,
				     GError **error);
KmxSecret *kmx_softkey_store_info_unwrap(KmxSoftkeyStoreInfo *info,
					 KmxSecret *password,
					 GError **error);

/**
 * KmxSoftkeyKeyInfo:
 *
 * The public facts of one key, from its <id>.info.
 */
typedef struct {
	char *label;
	KmxKeyType type;
	KmxKeyUsage usage;
	GBytes *spki;
	char *created;
	gboolean exportable;
} KmxSoftkeyKeyInfo;

void kmx_softkey_key_info_free(KmxSoftkeyKeyInfo *info);
KmxSoftkeyKeyInfo *kmx_softkey_key_info_read(int fd,
					     const struct stat *st,
					     const char *path,
					     const char *id,
					     GError **error);
KmxSoftkeyKeyInfo *kmx_softkey_key_info_parse(const char *contents,
					      gsize len,
					      const char *path,
					      const char *id,
					      GError **error);
KmxSoftkeyKeyInfo *kmx_softkey_key_info_parse_with(const char *contents,
						   gsize len,
						   const char *path,
						   const char *id,
						   gboolean plain,
						   GError **error);
gboolean kmx_softkey_key_info_save(const char *path, const KmxSoftkeyKeyInfo *info, GError **error);

gboolean kmx_softkey_store_fix_mode(int dir_fd,
				    const char *dir,
				    const char *name,
				    gboolean follow,
				    guint *old_mode,
				    GError **error);
gboolean kmx_softkey_store_fix_mode_fd(int fd,
				       const struct stat *st,
				       const char *dir,
				       const char *name,
				       guint *old_mode,
				       GError **error);

KmxSecret *kmx_softkey_file_key_new(GError **error);
KmxSecret *kmx_softkey_file_key_to_passphrase(KmxSecret *file_key);
KmxSecret *kmx_softkey_pem_decrypt(const char *path, KmxSecret *file_key, GError **error);
gboolean kmx_softkey_pem_write(const char *path,
			       KmxSecret *pkcs8_der,
			       KmxSecret *file_key,
			       GError **error);

gboolean kmx_softkey_gnutls_error(GError **error, int rc, KmxError code, const char *what);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSoftkeyStoreInfo, kmx_softkey_store_info_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSoftkeyKeyInfo, kmx_softkey_key_info_free)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_aead_cipher_hd_t, gnutls_aead_cipher_deinit, NULL)

G_END_DECLS
