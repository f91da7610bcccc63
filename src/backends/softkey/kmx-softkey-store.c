/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the soft-key files (store.info, <id>.info, <id>.pem), read and written
 *
 * docs/softkey-format.md is the reference for every byte written here.
 * Every file is hostile input: sizes are bounded before anything is read,
 * every field is checked, and a bad file is an error naming the file, never
 * a crash or a silently wrong key.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmx-encoding.h"
#include "kmx-file.h"
#include "kmx-key.h"
#include "kmx-softkey-ossl.h"
#include "kmx-softkey-store.h"

/**
 * kmx_softkey_gnutls_error:
 *
 * Sets @error from a gnutls return code, keeping the library's text.
 *
 * Returns: %FALSE
 */
gboolean
kmx_softkey_gnutls_error(GError **error, int rc, KmxError code, const char *what)
{
	g_set_error(error, KMX_ERROR, code, "%s: %s", what, gnutls_strerror(rc));
	return FALSE;
}

/* read a whole small file into secret memory, refusing anything too big to
 * be ours before a byte is read */
static KmxSecret *
kmx_softkey_read_secret_file(const char *path, GError **error)
{
	g_autoptr(KmxSecret) buf = NULL;
	struct stat st;
	gsize done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		int errsv = errno;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot open %s: %s",
			    path,
			    g_strerror(errsv));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > KMX_SOFTKEY_MAX_FILE_SIZE) {
		close(fd);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "%s is empty, too large or not a regular file",
			    path);
		return NULL;
	}
	buf = kmx_secret_new((gsize)st.st_size);
	while (done < (gsize)st.st_size) {
		ssize_t n = read(fd, kmx_secret_get_data(buf) + done, (gsize)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int errsv = n < 0 ? errno : EIO;
			close(fd);
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "cannot read %s: %s",
				    path,
				    g_strerror(errsv));
			return NULL;
		}
		done += (gsize)n;
	}
	close(fd);
	return g_steal_pointer(&buf);
}

static gboolean kmx_softkey_store_fix_mode_stat(int dir_fd,
						int fd,
						const struct stat *st,
						const char *dir,
						const char *name,
						guint *old_mode,
						GError **error);

/**
 * kmx_softkey_store_fix_mode:
 * @dir_fd: a directory, or %AT_FDCWD
 * @dir: (nullable): the path of @dir_fd, for messages; %NULL when @name is
 *   a full path
 * @name: a file or directory in @dir_fd ("." for @dir_fd itself)
 * @follow: follow a symbolic link (a store directory may be one)
 * @old_mode: (out): the mode it had when it was changed, else 0
 *
 * Key files and file keys must be private (an unprotected store.info holds
 * its file key in clear): a directory or a regular file that other users
 * may read, write or enter is made 0700 or 0600.  Symbolic links and
 * special files are left to the readers, which refuse them.
 *
 * Returns: %FALSE, with an error that says which chmod to run, when the
 * mode is loose and cannot be changed (another user owns it)
 */
gboolean
kmx_softkey_store_fix_mode(int dir_fd,
			   const char *dir,
			   const char *name,
			   gboolean follow,
			   guint *old_mode,
			   GError **error)
{
	struct stat st;

	*old_mode = 0;
	/* gone or unreadable: the reader of the file reports it */
	if (fstatat(dir_fd, name, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0)
		return TRUE;
	return kmx_softkey_store_fix_mode_stat(dir_fd, -1, &st, dir, name, old_mode, error);
}

/**
 * kmx_softkey_store_fix_mode_fd:
 * @fd: a file of the store, open
 * @st: what fstat() says of @fd
 * @dir: the store directory, for messages
 * @name: the name of @fd in @dir, for messages
 * @old_mode: (out): the mode it had when it was changed, else 0
 *
 * kmx_softkey_store_fix_mode() for a file the caller has open already:
 * no second walk of its path (the loader does this for every key)
 */
gboolean
kmx_softkey_store_fix_mode_fd(int fd,
			      const struct stat *st,
			      const char *dir,
			      const char *name,
			      guint *old_mode,
			      GError **error)
{
	*old_mode = 0;
	return kmx_softkey_store_fix_mode_stat(AT_FDCWD, fd, st, dir, name, old_mode, error);
}

static gboolean
kmx_softkey_store_fix_mode_stat(int dir_fd,
				int fd,
				const struct stat *st_in,
				const char *dir,
				const char *name,
				guint *old_mode,
				GError **error)
{
	const struct stat st = *st_in;
	mode_t want;

	if (S_ISDIR(st.st_mode))
		want = 0700;
	else if (S_ISREG(st.st_mode))
		want = 0600;
	else
		return TRUE;
	if ((st.st_mode & 0077) == 0)
		return TRUE;
	if ((fd >= 0 ? fchmod(fd, want) : fchmodat(dir_fd, name, want, 0)) != 0) {
		int errsv = errno;
		g_autofree char *path = dir == NULL ? g_strdup(name)
					: g_str_equal(name, ".")
					    ? g_strdup(dir)
					    : g_build_filename(dir, name, NULL);
		g_autofree char *quoted = NULL;
		/* a command to paste: quoted only when the shell needs it */
		for (const char *p = path; *p != '\0' && quoted == NULL; p++) {
			if (!g_ascii_isalnum(*p) && strchr("/._-+,:=@%", *p) == NULL)
				quoted = g_shell_quote(path);
		}
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "%s can be read or changed by other users (mode %04o, owner uid %u) and "
		    "keymux cannot change that (%s): as its owner, run chmod %04o %s and "
		    "restart keymuxd",
		    path,
		    (guint)(st.st_mode & 07777),
		    (guint)st.st_uid,
		    g_strerror(errsv),
		    (guint)want,
		    quoted != NULL ? quoted : path);
		return FALSE;
	}
	*old_mode = st.st_mode & 07777;
	return TRUE;
}

/* a field of a key file is base64 alone, without white space */
static gboolean
kmx_softkey_base64_is_field(const char *s)
{
	return s != NULL && s[strcspn(s, " \t\n\v\f\r")] == '\0';
}

static GBytes *
kmx_softkey_base64_decode(const char *s, gsize want_min, gsize want_max)
{
	g_autoptr(GBytes) bytes = NULL;

	if (!kmx_softkey_base64_is_field(s))
		return NULL;
	bytes = kmx_base64_decode(s, strlen(s), NULL);
	if (bytes == NULL || g_bytes_get_size(bytes) < want_min ||
	    g_bytes_get_size(bytes) > want_max)
		return NULL;
	return g_steal_pointer(&bytes);
}

/* A key file's public key, read at every start for every key: strict
 * base64 as kmx_base64_decode() takes it (the alphabet, '=' padding to a
 * multiple of four, nothing else), decoded by GLib in place, in the
 * field's own buffer, then copied once into the bytes.  GLib's decoder
 * skips what is not base64, so the text is checked first. */
static GBytes *
kmx_softkey_base64_decode_field(char *s, gsize want_min, gsize want_max)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	gsize len, n, pad = 0;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	n = strspn(s, alphabet);
	while (n + pad < len && s[n + pad] == '=')
		pad++;
	if (len == 0 || len % 4 != 0 || n + pad != len || pad > 2)
		return NULL;
	g_base64_decode_inplace(s, &len);
	if (len < want_min || len > want_max)
		return NULL;
	return g_bytes_new(s, len);
}

void
kmx_softkey_store_info_free(KmxSoftkeyStoreInfo *info)
{
	if (info == NULL)
		return;
	g_clear_pointer(&info->file_key, kmx_secret_unref);
	g_clear_pointer(&info->salt, g_bytes_unref);
	g_clear_pointer(&info->nonce, g_bytes_unref);
	g_clear_pointer(&info->wrapped, g_bytes_unref);
	g_free(info);
}

typedef struct {
	const char *version;
	const char *protected;
	const char *key;
	const char *kdf;
	const char *iterations;
	const char *salt;
	const char *cipher;
	const char *nonce;
	const char *wrapped;
} KmxSoftkeyStoreFields;

/* store.info is parsed by hand, in place, so that the clear file key of an
 * unprotected store is never copied out of secret memory (GKeyFile would
 * keep copies in the ordinary heap) */
static gboolean
kmx_softkey_store_info_parse_fields(char *text, gsize len, KmxSoftkeyStoreFields *f)
{
	const char *group = "";
	char *line = text;

	if (strlen(text) != len)
		return FALSE;
	while (line != NULL && *line != '\0') {
		char *next = strchr(line, '\n');
		char *eq;
		if (next != NULL)
			*next++ = '\0';
		if (line[0] == '#' || line[0] == '\0') {
			line = next;
			continue;
		}
		if (line[0] == '[') {
			gsize l = strlen(line);
			if (l < 3 || line[l - 1] != ']')
				return FALSE;
			line[l - 1] = '\0';
			group = line + 1;
			line = next;
			continue;
		}
		eq = strchr(line, '=');
		if (eq == NULL)
			return FALSE;
		*eq = '\0';
		if (g_str_equal(group, "store")) {
			if (g_str_equal(line, "version"))
				f->version = eq + 1;
			else if (g_str_equal(line, "protected"))
				f->protected = eq + 1;
		} else if (g_str_equal(group, "file-key")) {
			if (g_str_equal(line, "key"))
				f->key = eq + 1;
			else if (g_str_equal(line, "kdf"))
				f->kdf = eq + 1;
			else if (g_str_equal(line, "iterations"))
				f->iterations = eq + 1;
			else if (g_str_equal(line, "salt"))
				f->salt = eq + 1;
			else if (g_str_equal(line, "cipher"))
				f->cipher = eq + 1;
			else if (g_str_equal(line, "nonce"))
				f->nonce = eq + 1;
			else if (g_str_equal(line, "wrapped"))
				f->wrapped = eq + 1;
		}
		line = next;
	}
	return TRUE;
}

static gboolean
kmx_softkey_store_info_invalid(GError **error, const char *path, const char *why)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "%s is damaged (%s); restore it from a backup: without it the keys of this "
		    "store cannot be decrypted",
		    path,
		    why);
	return FALSE;
}

/**
 * kmx_softkey_store_info_load:
 *
 * Reads and checks store.info; nothing is decrypted.
 */
KmxSoftkeyStoreInfo *
kmx_softkey_store_info_load(const char *path, GError **error)
{
	g_autoptr(KmxSecret) text = kmx_softkey_read_secret_file(path, error);

	if (text == NULL)
		return NULL;
	return kmx_softkey_store_info_parse(text, path, error);
}

/**
 * kmx_softkey_store_info_parse:
 * @text: the content of a store.info, at most %KMX_SOFTKEY_MAX_FILE_SIZE
 *   bytes; parsed in place, so changed
 * @path: the file it came from, for messages
 *
 * Checks store.info; nothing is decrypted.  Also the fuzz target's entry.
 *
 * Returns: (transfer full): what it holds, or %NULL with an error that
 * names @path
 */
KmxSoftkeyStoreInfo *
kmx_softkey_store_info_parse(KmxSecret *text, const char *path, GError **error)
{
	g_autoptr(KmxSoftkeyStoreInfo) info = g_new0(KmxSoftkeyStoreInfo, 1);
	KmxSoftkeyStoreFields f = {0};
	guint64 iter = 0;

	if (!kmx_softkey_store_info_parse_fields((char *)kmx_secret_get_data(text),
						 kmx_secret_get_length(text),
						 &f)) {
		kmx_softkey_store_info_invalid(error, path, "not a key file");
		return NULL;
	}
	if (g_strcmp0(f.version, "1") != 0) {
		kmx_softkey_store_info_invalid(error, path, "missing or unknown version");
		return NULL;
	}
	if (g_strcmp0(f.protected, "false") == 0) {
		if (kmx_softkey_base64_is_field(f.key))
			info->file_key = kmx_base64_decode_secret(f.key, strlen(f.key), NULL);
		if (info->file_key == NULL ||
		    kmx_secret_get_length(info->file_key) != KMX_SOFTKEY_FILE_KEY_LEN) {
			kmx_softkey_store_info_invalid(error, path, "bad file key");
			return NULL;
		}
		return g_steal_pointer(&info);
	}
	if (g_strcmp0(f.protected, "true") != 0) {
		kmx_softkey_store_info_invalid(error, path, "bad 'protected' value");
		return NULL;
	}
	info->protected = TRUE;
	if (g_strcmp0(f.kdf, "pbkdf2-sha256") != 0 || g_strcmp0(f.cipher, "aes-256-gcm") != 0) {
		kmx_softkey_store_info_invalid(error, path, "unknown kdf or cipher");
		return NULL;
	}
	if (f.iterations == NULL || !g_ascii_string_to_unsigned(f.iterations,
								10,
								KMX_SOFTKEY_KDF_ITERATIONS,
								KMX_SOFTKEY_KDF_MAX_ITERATIONS,
								&iter,
								NULL)) {
		kmx_softkey_store_info_invalid(error, path, "bad iteration count");
		return NULL;
	}
	info->iterations = (guint)iter;
	info->salt = kmx_softkey_base64_decode(f.salt, KMX_SOFTKEY_SALT_LEN, 64);
	info->nonce =
	    kmx_softkey_base64_decode(f.nonce, KMX_SOFTKEY_NONCE_LEN, KMX_SOFTKEY_NONCE_LEN);
	info->wrapped = kmx_softkey_base64_decode(f.wrapped,
						  KMX_SOFTKEY_FILE_KEY_LEN + KMX_SOFTKEY_TAG_LEN,
						  KMX_SOFTKEY_FILE_KEY_LEN + KMX_SOFTKEY_TAG_LEN);
	if (info->salt == NULL || info->nonce == NULL || info->wrapped == NULL) {
		kmx_softkey_store_info_invalid(error, path, "bad salt, nonce or wrapped key");
		return NULL;
	}
	return g_steal_pointer(&info);
}

/* PBKDF2-HMAC-SHA256(password, salt, iterations) -> 32-byte key-encryption key */
static gnutls_aead_cipher_hd_t
kmx_softkey_kek_new(KmxSecret *password, GBytes *salt, guint iterations, GError **error)
{
	g_autoptr(KmxSecret) kek = kmx_secret_new(32);
	gnutls_datum_t pw = {kmx_secret_get_data(password), kmx_secret_get_length(password)};
	gnutls_datum_t s = {(void *)g_bytes_get_data(salt, NULL), g_bytes_get_size(salt)};
	gnutls_datum_t k = {kmx_secret_get_data(kek), 32};
	gnutls_aead_cipher_hd_t h = NULL;
	int rc;

	rc = gnutls_pbkdf2(GNUTLS_MAC_SHA256, &pw, &s, iterations, kmx_secret_get_data(kek), 32);
	if (rc < 0) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "cannot derive the key");
		return NULL;
	}
	rc = gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &k);
	if (rc < 0) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "cannot set up AES-GCM");
		return NULL;
	}
	return h;
}

/**
 * kmx_softkey_store_info_unwrap:
 *
 * One PBKDF2 run and an AES-GCM decryption.
 *
 * Returns: (transfer full): the file key, or %NULL with %KMX_ERROR_BAD_SECRET
 */
KmxSecret *
kmx_softkey_store_info_unwrap(KmxSoftkeyStoreInfo *info, KmxSecret *password, GError **error)
{
	g_auto(gnutls_aead_cipher_hd_t) h = NULL;
	g_autoptr(KmxSecret) file_key = NULL;
	size_t outlen = KMX_SOFTKEY_FILE_KEY_LEN + KMX_SOFTKEY_TAG_LEN;
	int rc;

	if (!info->protected)
		return kmx_secret_ref(info->file_key);
	h = kmx_softkey_kek_new(password, info->salt, info->iterations, error);
	if (h == NULL)
		return NULL;
	file_key = kmx_secret_new(outlen);
	rc = gnutls_aead_cipher_decrypt(h,
					g_bytes_get_data(info->nonce, NULL),
					KMX_SOFTKEY_NONCE_LEN,
					KMX_SOFTKEY_AAD,
					strlen(KMX_SOFTKEY_AAD),
					KMX_SOFTKEY_TAG_LEN,
					g_bytes_get_data(info->wrapped, NULL),
					g_bytes_get_size(info->wrapped),
					kmx_secret_get_data(file_key),
					&outlen);
	if (rc == GNUTLS_E_DECRYPTION_FAILED) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_BAD_SECRET, "wrong password");
		return NULL;
	}
	if (rc < 0 || outlen != KMX_SOFTKEY_FILE_KEY_LEN) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "cannot unwrap the file key");
		return NULL;
	}
	kmx_secret_truncate(file_key, outlen);
	return g_steal_pointer(&file_key);
}

static char *
kmx_softkey_base64(const void *data, gsize len)
{
	return g_base64_encode(data, len);
}

/**
 * kmx_softkey_store_info_save:
 * @file_key: the store's file key
 * @password: (nullable): wrap the file key with this, or store it in clear
 *   when %NULL or empty
 *
 * Writes store.info atomically and durably.
 */
gboolean
kmx_softkey_store_info_save(const char *path,
			    KmxSecret *file_key,
			    KmxSecret *password,
			    GError **error)
{
	g_autoptr(KmxSecret) text = kmx_secret_new(1024);
	char *buf = (char *)kmx_secret_get_data(text);
	const char *head = "# keymux soft-key store: see docs/softkey-format.md\n"
			   "[store]\nversion=1\n";
	int n;

	if (kmx_secret_is_empty(password)) {
		g_autoptr(KmxSecret)
		    b64 = kmx_base64_encode_secret(kmx_secret_get_data(file_key),
						   kmx_secret_get_length(file_key));

		n = g_snprintf(buf,
			       1024,
			       "%sprotected=false\n[file-key]\nkey=%s\n",
			       head,
			       kmx_secret_get_string(b64));
	} else {
		g_auto(gnutls_aead_cipher_hd_t) h = NULL;
		guint8 salt[KMX_SOFTKEY_SALT_LEN];
		guint8 nonce[KMX_SOFTKEY_NONCE_LEN];
		guint8 wrapped[KMX_SOFTKEY_FILE_KEY_LEN + KMX_SOFTKEY_TAG_LEN];
		size_t wlen = sizeof(wrapped);
		g_autoptr(GBytes) salt_b = NULL;
		g_autofree char *salt_s = NULL;
		g_autofree char *nonce_s = NULL;
		g_autofree char *wrapped_s = NULL;
		int rc;

		if (gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof(salt)) < 0 ||
		    gnutls_rnd(GNUTLS_RND_NONCE, nonce, sizeof(nonce)) < 0) {
			g_set_error_literal(error,
					    KMX_ERROR,
					    KMX_ERROR_FAILED,
					    "no random numbers");
			return FALSE;
		}
		salt_b = g_bytes_new(salt, sizeof(salt));
		h = kmx_softkey_kek_new(password, salt_b, KMX_SOFTKEY_KDF_ITERATIONS, error);
		if (h == NULL)
			return FALSE;
		rc = gnutls_aead_cipher_encrypt(h,
						nonce,
						sizeof(nonce),
						KMX_SOFTKEY_AAD,
						strlen(KMX_SOFTKEY_AAD),
						KMX_SOFTKEY_TAG_LEN,
						kmx_secret_get_data(file_key),
						kmx_secret_get_length(file_key),
						wrapped,
						&wlen);
		if (rc < 0 || wlen != sizeof(wrapped))
			return kmx_softkey_gnutls_error(error,
							rc,
							KMX_ERROR_FAILED,
							"cannot wrap the file key");
		salt_s = kmx_softkey_base64(salt, sizeof(salt));
		nonce_s = kmx_softkey_base64(nonce, sizeof(nonce));
		wrapped_s = kmx_softkey_base64(wrapped, sizeof(wrapped));
		n = g_snprintf(buf,
			       1024,
			       "%sprotected=true\n[file-key]\nkdf=pbkdf2-sha256\niterations=%u\n"
			       "salt=%s\ncipher=aes-256-gcm\nnonce=%s\nwrapped=%s\n",
			       head,
			       (guint)KMX_SOFTKEY_KDF_ITERATIONS,
			       salt_s,
			       nonce_s,
			       wrapped_s);
	}
	if (n <= 0 || n >= 1024) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_FAILED, "store.info too long");
		return FALSE;
	}
	return kmx_file_write_atomic(path, buf, (gsize)n, 0600, error);
}

void
kmx_softkey_key_info_free(KmxSoftkeyKeyInfo *info)
{
	if (info == NULL)
		return;
	g_free(info->label);
	g_free(info->created);
	g_clear_pointer(&info->spki, g_bytes_unref);
	g_free(info);
}

static gpointer
kmx_softkey_key_info_invalid(GError **error, const char *path, const char *why)
{
	g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "%s is damaged: %s", path, why);
	return NULL;
}

/**
 * kmx_softkey_key_info_read:
 * @fd: an <id>.info, open
 * @st: what fstat() says of @fd
 * @path: its path, for messages
 * @id: the id its name says it has
 *
 * Reads the public facts of a key, checking that the public key there has
 * the id of the file name.  This runs for every key at start-up: keep it
 * to one small read (the size is known) and a hash.
 */
KmxSoftkeyKeyInfo *
kmx_softkey_key_info_read(int fd,
			  const struct stat *st,
			  const char *path,
			  const char *id,
			  GError **error)
{
	char contents[KMX_SOFTKEY_KEY_INFO_MAX_SIZE + 1];
	gsize len = 0;

	if (!S_ISREG(st->st_mode))
		return kmx_softkey_key_info_invalid(error, path, "not a regular file");
	if (st->st_size <= 0 || st->st_size > KMX_SOFTKEY_KEY_INFO_MAX_SIZE)
		return kmx_softkey_key_info_invalid(error, path, "empty or too large");
	/* .info files are replaced by rename, never written in place: what
	 * fstat() saw is the whole file.  A shorter read is parsed as it is
	 * (and found damaged) */
	while (len < (gsize)st->st_size) {
		ssize_t n = read(fd, contents + len, (gsize)st->st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (gsize)n;
	}
	if (len == 0)
		return kmx_softkey_key_info_invalid(error, path, "empty or too large");
	contents[len] = '\0';
	return kmx_softkey_key_info_parse(contents, len, path, id, error);
}

/* the fields of an <id>.info, as strings; all may be NULL */
typedef struct {
	char *version;
	char *label;
	char *algorithm;
	char *usage; /* the plain reader's list, or NULL */
	KmxKeyUsage usage_bits;
	char *public_key;
	char *created;
	char *exportable;
} KmxSoftkeyInfoFields;

static void
kmx_softkey_info_fields_clear(KmxSoftkeyInfoFields *f)
{
	g_free(f->version);
	g_free(f->label);
	g_free(f->algorithm);
	g_free(f->usage);
	g_free(f->public_key);
	g_free(f->created);
	g_free(f->exportable);
	memset(f, 0, sizeof(*f));
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KmxSoftkeyInfoFields, kmx_softkey_info_fields_clear)

static char **
kmx_softkey_info_field(KmxSoftkeyInfoFields *f, const char *name, gsize len)
{
	static const struct {
		const char *name;
		gsize offset;
	} fields[] = {
	    {"version", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, version)},
	    {"label", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, label)},
	    {"algorithm", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, algorithm)},
	    {"usage", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, usage)},
	    {"public-key", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, public_key)},
	    {"created", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, created)},
	    {"exportable", G_STRUCT_OFFSET(KmxSoftkeyInfoFields, exportable)},
	};

	for (guint i = 0; i < G_N_ELEMENTS(fields); i++) {
		if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0)
			return G_STRUCT_MEMBER_P(f, fields[i].offset);
	}
	return NULL;
}

/* The <id>.info files of a store are read at every start, 10,000 of them in
 * a large store, and GKeyFile took most of that time.  A file exactly as
 * g_key_file_to_data() writes one, with only the fields we write, is read
 * here: "[key]", then one "name=value" line per field, no field twice, no
 * escape, no white space at either end of a value, UTF-8, version 1,
 * exportable true or false.  For such a file
 * GKeyFile would return the same strings.  Anything else (comments, blank
 * lines, other groups, escapes, a hand-edited file) returns FALSE and is
 * read by GKeyFile, which decides what it means. */
static gboolean
kmx_softkey_key_info_read_plain(const char *contents, gsize len, KmxSoftkeyInfoFields *f)
{
	static const char head[] = "[key]\n";
	const char *p = contents + strlen(head);
	const char *end = contents + len;

	if (len < strlen(head) || memcmp(contents, head, strlen(head)) != 0 || end[-1] != '\n')
		return FALSE;
	while (p < end) {
		const char *nl = memchr(p, '\n', (gsize)(end - p));
		const char *eq = memchr(p, '=', (gsize)(nl - p));
		const char *value;
		gsize value_len;
		char **field;

		if (eq == NULL)
			return FALSE;
		field = kmx_softkey_info_field(f, p, (gsize)(eq - p));
		if (field == NULL || *field != NULL)
			return FALSE;
		value = eq + 1;
		value_len = (gsize)(nl - value);
		if (memchr(value, '\\', value_len) != NULL ||
		    memchr(value, '\r', value_len) != NULL ||
		    (value_len > 0 && (g_ascii_isspace(value[0]) || g_ascii_isspace(nl[-1]))) ||
		    !g_utf8_validate(value, (gssize)value_len, NULL))
			return FALSE;
		*field = g_strndup(value, value_len);
		p = nl + 1;
	}
	/* no escapes: the list is the items between the ';' */
	if (f->usage != NULL)
		f->usage_bits = kmx_key_usage_from_list(f->usage, strlen(f->usage), ';');
	/* the numbers and booleans as keymux writes them; other spellings
	 * GKeyFile accepts ("01", "1" for true) are left to it */
	return g_strcmp0(f->version, "1") == 0 &&
	       (f->exportable == NULL || g_str_equal(f->exportable, "true") ||
		g_str_equal(f->exportable, "false"));
}

/* the same fields as GKeyFile reads them */
static gboolean
kmx_softkey_key_info_read_keyfile(const char *contents, gsize len, KmxSoftkeyInfoFields *f)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_auto(GStrv) usage = NULL;
	gint version;
	gboolean exportable;

	if (!g_key_file_load_from_data(kf, contents, len, G_KEY_FILE_NONE, NULL))
		return FALSE;
	version = g_key_file_get_integer(kf, "key", "version", NULL);
	f->version = g_strdup_printf("%d", version);
	f->label = g_key_file_get_string(kf, "key", "label", NULL);
	f->algorithm = g_key_file_get_string(kf, "key", "algorithm", NULL);
	usage = g_key_file_get_string_list(kf, "key", "usage", NULL, NULL);
	f->usage_bits = kmx_key_usage_from_strv((const char *const *)usage);
	f->public_key = g_key_file_get_string(kf, "key", "public-key", NULL);
	f->created = g_key_file_get_string(kf, "key", "created", NULL);
	exportable = g_key_file_get_boolean(kf, "key", "exportable", NULL);
	f->exportable = g_strdup(exportable ? "true" : "false");
	return TRUE;
}

/* whether the SHA-256 of @spki, in lowercase hex, is @id */
static gboolean
kmx_softkey_id_matches(GBytes *spki, const char *id)
{
	static const char hex[] = "0123456789abcdef";
	guint8 digest[32];
	char text[2 * sizeof(digest) + 1];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256,
			     g_bytes_get_data(spki, NULL),
			     g_bytes_get_size(spki),
			     digest) < 0)
		return FALSE;
	for (guint i = 0; i < sizeof(digest); i++) {
		text[2 * i] = hex[digest[i] >> 4];
		text[2 * i + 1] = hex[digest[i] & 0xf];
	}
	text[sizeof(text) - 1] = '\0';
	return id != NULL && strcmp(text, id) == 0;
}

/**
 * kmx_softkey_key_info_parse_with:
 * @plain: read a file as written by keymux without GKeyFile
 *   (kmx_softkey_key_info_read_plain()); %FALSE: always with GKeyFile
 *
 * kmx_softkey_key_info_parse(), with the choice of reader: the tests and
 * the fuzz target check that both give the same result.
 */
KmxSoftkeyKeyInfo *
kmx_softkey_key_info_parse_with(const char *contents,
				gsize len,
				const char *path,
				const char *id,
				gboolean plain,
				GError **error)
{
	g_auto(KmxSoftkeyInfoFields) f = {0};
	g_autoptr(KmxSoftkeyKeyInfo) info = g_new0(KmxSoftkeyKeyInfo, 1);

	if (len == 0 || len > KMX_SOFTKEY_KEY_INFO_MAX_SIZE)
		return kmx_softkey_key_info_invalid(error, path, "empty or too large");
	if (strlen(contents) != len)
		return kmx_softkey_key_info_invalid(error, path, "binary data");
	if (!plain || !kmx_softkey_key_info_read_plain(contents, len, &f)) {
		kmx_softkey_info_fields_clear(&f);
		if (!kmx_softkey_key_info_read_keyfile(contents, len, &f))
			return kmx_softkey_key_info_invalid(error, path, "not a key file");
	}
	if (g_strcmp0(f.version, "1") != 0)
		return kmx_softkey_key_info_invalid(error, path, "missing or unknown version");
	info->type = kmx_key_type_from_string(f.algorithm);
	if (info->type == KMX_KEY_TYPE_UNKNOWN)
		return kmx_softkey_key_info_invalid(error, path, "unknown algorithm");
	info->spki = kmx_softkey_base64_decode_field(f.public_key, 32, 4096);
	if (info->spki == NULL)
		return kmx_softkey_key_info_invalid(error, path, "bad public key");
	if (!kmx_softkey_id_matches(info->spki, id))
		return kmx_softkey_key_info_invalid(error, path, "the public key has another id");
	info->label = g_steal_pointer(&f.label);
	if (info->label == NULL || !g_utf8_validate(info->label, -1, NULL)) {
		g_free(info->label);
		info->label = g_strdup(f.algorithm);
	}
	/* a key can never do more than its type allows, whatever the file says */
	info->usage = f.usage_bits & kmx_key_type_get_usage(info->type);
	if (info->usage == KMX_KEY_USAGE_NONE)
		info->usage = kmx_key_type_get_usage(info->type);
	info->created = g_steal_pointer(&f.created);
	/* as g_key_file_get_boolean() reads it */
	info->exportable = g_strcmp0(f.exportable, "true") == 0 ||
			   g_strcmp0(f.exportable, "1") == 0;
	return g_steal_pointer(&info);
}

/**
 * kmx_softkey_key_info_parse:
 * @contents: the content of an <id>.info, @len bytes and a NUL after them
 * @path: the file it came from, for messages
 * @id: the id its name says it has
 *
 * Checks the public facts of a key, and that the public key there has
 * @id.  Also the fuzz target's entry.
 *
 * Returns: (transfer full): the facts, or %NULL with an error that names
 * @path
 */
KmxSoftkeyKeyInfo *
kmx_softkey_key_info_parse(const char *contents,
			   gsize len,
			   const char *path,
			   const char *id,
			   GError **error)
{
	return kmx_softkey_key_info_parse_with(contents, len, path, id, TRUE, error);
}

gboolean
kmx_softkey_key_info_save(const char *path, const KmxSoftkeyKeyInfo *info, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *spki = NULL;
	g_autofree char *data = NULL;
	g_auto(GStrv) usage = kmx_key_usage_to_strv(info->usage);
	gsize len = 0;

	spki = g_base64_encode(g_bytes_get_data(info->spki, NULL), g_bytes_get_size(info->spki));
	g_key_file_set_integer(kf, "key", "version", 1);
	g_key_file_set_string(kf, "key", "label", info->label != NULL ? info->label : "");
	g_key_file_set_string(kf, "key", "algorithm", kmx_key_type_to_string(info->type));
	g_key_file_set_string_list(kf,
				   "key",
				   "usage",
				   (const char *const *)usage,
				   g_strv_length(usage));
	g_key_file_set_string(kf, "key", "public-key", spki);
	if (info->created != NULL)
		g_key_file_set_string(kf, "key", "created", info->created);
	g_key_file_set_boolean(kf, "key", "exportable", info->exportable);
	data = g_key_file_to_data(kf, &len, NULL);
	return kmx_file_write_atomic(path, data, len, 0600, error);
}

/**
 * kmx_softkey_file_key_new:
 *
 * Returns: (transfer full): 32 random bytes from gnutls's key-grade generator
 */
KmxSecret *
kmx_softkey_file_key_new(GError **error)
{
	g_autoptr(KmxSecret) key = kmx_secret_new(KMX_SOFTKEY_FILE_KEY_LEN);
	int rc = gnutls_rnd(GNUTLS_RND_KEY, kmx_secret_get_data(key), KMX_SOFTKEY_FILE_KEY_LEN);
	if (rc < 0) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "no random numbers");
		return NULL;
	}
	return g_steal_pointer(&key);
}

/**
 * kmx_softkey_file_key_to_passphrase:
 *
 * Returns: (transfer full): the PKCS#8 passphrase of the key files: the file
 * key as 64 lowercase hex digits
 */
KmxSecret *
kmx_softkey_file_key_to_passphrase(KmxSecret *file_key)
{
	gnutls_datum_t in = {kmx_secret_get_data(file_key),
			     (unsigned int)kmx_secret_get_length(file_key)};
	g_autoptr(KmxSecret) pass = kmx_secret_new(2 * (gsize)in.size);
	/* gnutls ends the string with a NUL: a secret has room for one */
	size_t size = 2 * (gsize)in.size + 1;

	if (gnutls_hex_encode(&in, (char *)kmx_secret_get_data(pass), &size) < 0)
		g_return_val_if_reached(NULL);
	return g_steal_pointer(&pass);
}

/**
 * kmx_softkey_pem_decrypt:
 * @path: an <id>.pem
 * @file_key: the store's file key
 *
 * Returns: (transfer full): the plain PKCS#8 DER of the key, in secret memory
 */
KmxSecret *
kmx_softkey_pem_decrypt(const char *path, KmxSecret *file_key, GError **error)
{
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_autoptr(KmxSecret) pass = kmx_softkey_file_key_to_passphrase(file_key);
	g_autofree char *pem = NULL;
	g_autoptr(GError) error_local = NULL;
	gnutls_datum_t d;
	gsize len = 0;
	int rc;

	if (!g_file_get_contents(path, &pem, &len, &error_local)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot read the key file: %s",
			    error_local->message);
		return NULL;
	}
	if (len == 0 || len > KMX_SOFTKEY_MAX_FILE_SIZE) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "%s is empty or too large", path);
		return NULL;
	}
	d.data = (guint8 *)pem;
	d.size = (guint)len;
	gnutls_x509_privkey_init(&x);
	rc = gnutls_x509_privkey_import_pkcs8(x,
					      &d,
					      GNUTLS_X509_FMT_PEM,
					      kmx_secret_get_string(pass),
					      0);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot decrypt %s with the store's file key (%s): the file is "
			    "damaged or belongs to another store",
			    path,
			    gnutls_strerror(rc));
		return NULL;
	}
	return kmx_import_x509_to_pkcs8(x, error);
}

/**
 * kmx_softkey_pem_write:
 *
 * Encrypts @pkcs8_der under the file key and writes it atomically.
 */
gboolean
kmx_softkey_pem_write(const char *path, KmxSecret *pkcs8_der, KmxSecret *file_key, GError **error)
{
	g_autoptr(KmxSecret) pass = kmx_softkey_file_key_to_passphrase(file_key);
	g_autofree char *pem = NULL;
	gsize len = 0;

	pem = kmx_softkey_ossl_encrypt_pkcs8(pkcs8_der, pass, &len, error);
	if (pem == NULL)
		return FALSE;
	return kmx_file_write_atomic(path, pem, len, 0600, error);
}
