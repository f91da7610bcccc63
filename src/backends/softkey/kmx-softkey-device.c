/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a soft-key store, one directory of key files
 *
 * Files and the order they are written in (docs/softkey-format.md):
 * - a new key: <id>.info first, then <id>.pem, each atomically; a crash in
 *   between leaves an .info without key material: provably a write that
 *   was never acknowledged (nothing of the key exists but public facts),
 *   which the next start removes;
 * - a deletion: <id>.pem first, then <id>.info; a crash in between leaves an
 *   .info without key material too, which the next start removes;
 * - a password change: store.info only, atomically; the file key, and so
 *   every .pem, stays the same.
 * A .pem without .info is then never an interrupted write of this version:
 * it is a key whose .info was lost (or one written by an older version,
 * which wrote the .pem first).  It may be the only copy of a key in use, so
 * it is never removed: start-up rebuilds its .info from the key itself when
 * the file key is at hand (an unprotected store), and otherwise keeps it,
 * reported as incomplete, until the same key is imported again.
 * Temporary files of kmx_file_write_atomic() ("<name>.XXXXXX") were never
 * acknowledged and are removed at start.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "kmx-error.h"
#include "kmx-file.h"
#include "kmx-import.h"
#include "kmx-key-table.h"
#include "kmx-softkey-device.h"
#include "kmx-softkey-store.h"

struct _KmxSoftkeyDevice {
	KmxDevice parent_instance;
	char *name;
	char *dir;
	GMutex secret_mutex; /* serialises unlock and change_secret (slow KDFs) */
	GMutex mutex;	     /* everything below */
	char *broken;	     /* why the store is unusable, or NULL */
	gboolean protected;
	KmxSecret *file_key; /* NULL when locked (or not needed yet) */
	KmxKeyTable *keys;   /* the KmxSoftkeyKeys on disk */
	GHashTable *pending; /* ids being written by an import or generate */
	guint broken_keys;
	guint incomplete_keys;
};

G_DEFINE_TYPE(KmxSoftkeyDevice, kmx_softkey_device, KMX_TYPE_DEVICE)

static gboolean
kmx_softkey_device_is_key_id(const char *s, gsize len)
{
	if (len != 64)
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isdigit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return FALSE;
	}
	return TRUE;
}

/* the temp file of an atomic write of store.info, <id>.pem or <id>.info:
 * "<name>.XXXXXX" as g_file_set_contents_full() names it, or
 * "<name>.tmp-XXXXXX" as earlier versions did */
static gboolean
kmx_softkey_device_is_temp_file(const char *name, gsize len)
{
	gsize stem;

	if (strstr(name, ".tmp-") != NULL)
		return TRUE;
	if (len < 8 || name[len - 7] != '.')
		return FALSE;
	stem = len - 7;
	for (gsize i = stem + 1; i < len; i++) {
		if (!g_ascii_isalnum(name[i]))
			return FALSE;
	}
	if (stem == strlen(KMX_SOFTKEY_STORE_INFO))
		return strncmp(name, KMX_SOFTKEY_STORE_INFO, stem) == 0;
	return ((stem == 68 && strncmp(name + 64, ".pem", 4) == 0) ||
		(stem == 69 && strncmp(name + 64, ".info", 5) == 0)) &&
	       kmx_softkey_device_is_key_id(name, 64);
}

/**
 * kmx_softkey_device_get_key_path:
 * @suffix: ".pem" or ".info"
 *
 * Returns: (transfer full): the path of a key file of the store
 */
char *
kmx_softkey_device_get_key_path(KmxSoftkeyDevice *self, const char *id, const char *suffix)
{
	g_autofree char *name = g_strconcat(id, suffix, NULL);
	return g_build_filename(self->dir, name, NULL);
}

/* called with self->mutex held */
static GVariant *
kmx_softkey_device_build_details(KmxSoftkeyDevice *self)
{
	GVariantDict dict;

	g_variant_dict_init(&dict, NULL);
	g_variant_dict_insert(&dict, "store", "s", self->name);
	g_variant_dict_insert(&dict, "path", "s", self->dir);
	g_variant_dict_insert(&dict, "protected", "b", self->protected);
	g_variant_dict_insert(&dict, "key-count", "u", kmx_key_table_size(self->keys));
	g_variant_dict_insert(&dict, "broken-keys", "u", self->broken_keys);
	g_variant_dict_insert(&dict, "incomplete-keys", "u", self->incomplete_keys);
	g_variant_dict_insert(&dict, "key-file-format", "s", "pkcs8-pbes2-aes-256-cbc");
	if (self->protected) {
		g_variant_dict_insert(&dict, "kdf", "s", "pbkdf2-sha256");
		g_variant_dict_insert(&dict,
				      "kdf-iterations",
				      "u",
				      (guint32)KMX_SOFTKEY_KDF_ITERATIONS);
	}
	if (self->broken != NULL)
		g_variant_dict_insert(&dict, "error", "s", self->broken);
	return g_variant_dict_end(&dict);
}

static void
kmx_softkey_device_update_details(KmxSoftkeyDevice *self)
{
	GVariant *details;

	g_mutex_lock(&self->mutex);
	details = kmx_softkey_device_build_details(self);
	g_mutex_unlock(&self->mutex);
	kmx_device_set_details(KMX_DEVICE(self), details);
}

static void
kmx_softkey_device_set_broken(KmxSoftkeyDevice *self, const char *why)
{
	g_warning("soft-key store %s is unavailable: %s", self->name, why);
	g_mutex_lock(&self->mutex);
	g_free(self->broken);
	self->broken = g_strdup(why);
	g_mutex_unlock(&self->mutex);
	kmx_device_set_flags(KMX_DEVICE(self), KMX_DEVICE_FLAG_REGISTERED);
}

static gboolean
kmx_softkey_device_check_usable(KmxSoftkeyDevice *self, GError **error)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->mutex);
	if (self->broken != NULL) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "the soft-key store %s is unavailable: %s",
			    self->name,
			    self->broken);
		return FALSE;
	}
	return TRUE;
}

/* the store.info part of loading; returns FALSE when the store is unusable */
static gboolean
kmx_softkey_device_load_store_info(KmxSoftkeyDevice *self, gboolean has_keys)
{
	g_autofree char *path = g_build_filename(self->dir, KMX_SOFTKEY_STORE_INFO, NULL);
	g_autoptr(KmxSoftkeyStoreInfo) info = NULL;
	g_autoptr(GError) error = NULL;

	if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_autoptr(KmxSecret) file_key = NULL;
		/* never make a new file key for a directory that has key files:
		 * they would be lost under a key nobody has */
		if (has_keys) {
			kmx_softkey_device_set_broken(
			    self,
			    "store.info is missing, so the key files "
			    "cannot be decrypted: restore it from a backup");
			return FALSE;
		}
		file_key = kmx_softkey_file_key_new(&error);
		if (file_key == NULL ||
		    !kmx_softkey_store_info_save(path, file_key, NULL, &error)) {
			kmx_softkey_device_set_broken(self, error->message);
			return FALSE;
		}
		g_debug("created soft-key store %s", self->dir);
	}
	info = kmx_softkey_store_info_load(path, &error);
	if (info == NULL) {
		kmx_softkey_device_set_broken(self, error->message);
		return FALSE;
	}
	g_mutex_lock(&self->mutex);
	self->protected = info->protected;
	g_mutex_unlock(&self->mutex);
	/* the clear file key of an unprotected store is read again on first
	 * use, so that nothing secret is held before a key is used */
	kmx_device_set_flags(KMX_DEVICE(self),
			     KMX_DEVICE_FLAG_AVAILABLE | KMX_DEVICE_FLAG_REGISTERED |
				 (info->protected ? KMX_DEVICE_FLAG_LOCKED : 0));
	return TRUE;
}

/* a .pem whose .info is missing: its .info rebuilt from the key itself,
 * with what only the lost .info knew (label, creation time, exportable)
 * set to defaults */
static KmxSoftkeyKey *
kmx_softkey_device_recover_key(KmxSoftkeyDevice *self,
			       KmxSecret *file_key,
			       const char *id,
			       GError **error)
{
	g_autofree char *pem = kmx_softkey_device_get_key_path(self, id, ".pem");
	g_autofree char *info_path = kmx_softkey_device_get_key_path(self, id, ".info");
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_autoptr(KmxSecret) der = NULL;
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GDateTime) mtime = NULL;
	g_autofree char *spki_id = NULL;
	g_autofree char *label = NULL;
	g_autofree char *created = NULL;
	KmxSoftkeyKeyInfo info = {0};
	gnutls_datum_t d;
	GStatBuf st;
	int rc;

	der = kmx_softkey_pem_decrypt(pem, file_key, error);
	if (der == NULL)
		return NULL;
	d.data = kmx_secret_get_data(der);
	d.size = (guint)kmx_secret_get_length(der);
	gnutls_x509_privkey_init(&x);
	rc = gnutls_x509_privkey_import_pkcs8(x, &d, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN);
	if (rc < 0) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "cannot read the key");
		return NULL;
	}
	info.type = kmx_import_x509_get_key_type(x, error);
	if (info.type == KMX_KEY_TYPE_UNKNOWN)
		return NULL;
	spki = kmx_import_x509_get_spki(x, error);
	if (spki == NULL)
		return NULL;
	spki_id = kmx_key_compute_id(spki);
	if (!g_str_equal(spki_id, id)) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_FAILED, "%s holds key %s", pem, spki_id);
		return NULL;
	}
	if (g_stat(pem, &st) == 0)
		mtime = g_date_time_new_from_unix_utc(st.st_mtime);
	if (mtime != NULL)
		created = g_date_time_format_iso8601(mtime);
	label = g_strdup_printf("recovered %s key", kmx_key_type_to_string(info.type));
	info.label = label;
	info.usage = kmx_key_type_get_usage(info.type);
	info.spki = spki;
	info.created = created;
	info.exportable = FALSE;
	if (!kmx_softkey_key_info_save(info_path, &info, error))
		return NULL;
	return kmx_softkey_key_new(KMX_DEVICE(self), id, &info);
}

/* rebuild the .info of the .pem files in @pems, which keeps those that
 * cannot be; a protected store has no file key at start, so all are kept */
static void
kmx_softkey_device_recover_keys(KmxSoftkeyDevice *self, GHashTable *pems, GPtrArray *keys)
{
	g_autofree char *path = g_build_filename(self->dir, KMX_SOFTKEY_STORE_INFO, NULL);
	g_autoptr(KmxSoftkeyStoreInfo) store_info = NULL;
	g_autoptr(GPtrArray) ids = NULL;
	GHashTableIter iter;
	gpointer id_ptr;

	if (self->broken != NULL || self->protected)
		return;
	store_info = kmx_softkey_store_info_load(path, NULL);
	if (store_info == NULL || store_info->protected)
		return;
	ids = g_ptr_array_new_with_free_func(g_free);
	g_hash_table_iter_init(&iter, pems);
	while (g_hash_table_iter_next(&iter, &id_ptr, NULL))
		g_ptr_array_add(ids, g_strdup(id_ptr));
	g_hash_table_remove_all(pems);
	for (guint i = 0; i < ids->len; i++) {
		const char *id = g_ptr_array_index(ids, i);
		g_autoptr(GError) error = NULL;
		g_autofree char *label = NULL;
		KmxSoftkeyKey *key =
		    kmx_softkey_device_recover_key(self, store_info->file_key, id, &error);
		if (key == NULL) {
			g_warning("store %s: cannot rebuild the .info of key file %s.pem, kept: %s",
				  self->name,
				  id,
				  error->message);
			g_hash_table_add(pems, g_strdup(id));
			continue;
		}
		label = kmx_key_dup_label(KMX_KEY(key));
		g_warning("store %s: key %s had no .info (lost, or an older keymux was "
			  "interrupted): rebuilt from its key file, labelled '%s'",
			  self->name,
			  id,
			  label);
		kmx_key_table_insert(self->keys, KMX_KEY(key));
		g_ptr_array_add(keys, key);
	}
}

/* ---- loading ------------------------------------------------------------ */

/* a store this large or larger is read by several threads at start-up */
#define KMX_SOFTKEY_LOAD_PARALLEL_MIN 256
#define KMX_SOFTKEY_LOAD_THREADS_MAX  4

/* the modes made private by one loading thread, for the summary */
typedef struct {
	guint n_fixed;
	char *first_fixed; /* the first of them, "<name> was <mode>" */
	GError *error;	   /* the first that cannot be made private */
} KmxSoftkeyModeFix;

static void
kmx_softkey_mode_fix_add(KmxSoftkeyModeFix *fix,
			 KmxSoftkeyDevice *self,
			 const char *name,
			 gboolean ok,
			 guint old_mode,
			 GError *error)
{
	if (!ok) {
		if (fix->error == NULL)
			fix->error = error;
		else
			g_error_free(error);
		return;
	}
	if (old_mode == 0)
		return;
	g_debug("store %s: %s was mode %04o, made private", self->name, name, old_mode);
	if (fix->n_fixed++ == 0)
		fix->first_fixed = g_strdup_printf("%s was %04o", name, old_mode);
}

/* what follows @fix in the order of the files joins @fix */
static void
kmx_softkey_mode_fix_merge(KmxSoftkeyModeFix *fix, KmxSoftkeyModeFix *next)
{
	if (fix->n_fixed == 0)
		fix->first_fixed = g_steal_pointer(&next->first_fixed);
	fix->n_fixed += next->n_fixed;
	if (fix->error == NULL)
		fix->error = g_steal_pointer(&next->error);
	g_free(next->first_fixed);
	g_clear_error(&next->error);
}

/* make one of the store's files private, by name */
static void
kmx_softkey_device_fix_mode(KmxSoftkeyDevice *self,
			    int dir_fd,
			    const char *name,
			    KmxSoftkeyModeFix *fix)
{
	GError *error = NULL;
	guint old_mode = 0;
	gboolean ok = kmx_softkey_store_fix_mode(dir_fd,
						 self->dir,
						 name,
						 g_str_equal(name, "."),
						 &old_mode,
						 &error);

	kmx_softkey_mode_fix_add(fix, self, name, ok, old_mode, error);
}

/* one thread's share of the start-up: files [begin, end) of @names */
typedef struct {
	KmxSoftkeyDevice *self;
	int dir_fd;
	GPtrArray *names;     /* "<id>.pem" (made private) and "<id>.info" (read too) */
	KmxSoftkeyKey **keys; /* a key per .info read, else NULL; shared, by index */
	guint begin;
	guint end;
	KmxSoftkeyModeFix fix; /* this share's */
	guint broken_keys;     /* this share's */
} KmxSoftkeyLoadShare;

/* an <id>.info whose <id>.pem is there: opened once, made private through
 * the open file, read, and its key made */
static KmxSoftkeyKey *
kmx_softkey_device_load_key(KmxSoftkeyLoadShare *share, const char *name)
{
	KmxSoftkeyDevice *self = share->self;
	g_autofree char *path = g_build_filename(self->dir, name, NULL);
	g_autoptr(KmxSoftkeyKeyInfo) info = NULL;
	g_autoptr(GError) error = NULL;
	GError *mode_error = NULL;
	guint old_mode = 0;
	char id[65];
	struct stat st;
	int fd;

	memcpy(id, name, 64);
	id[64] = '\0';
	/* O_NONBLOCK: a FIFO planted under the name must not stall start-up */
	fd = openat(share->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int errsv = errno;
		g_set_error(&error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot open %s: %s",
			    path,
			    g_strerror(errsv));
	} else if (fstat(fd, &st) != 0) {
		int errsv = errno;
		g_set_error(&error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot read %s: %s",
			    path,
			    g_strerror(errsv));
	} else {
		gboolean ok =
		    kmx_softkey_store_fix_mode_fd(fd, &st, self->dir, name, &old_mode, &mode_error);

		kmx_softkey_mode_fix_add(&share->fix, self, name, ok, old_mode, mode_error);
		info = kmx_softkey_key_info_read(fd, &st, path, id, &error);
	}
	if (fd >= 0)
		close(fd);
	if (info == NULL) {
		g_warning("ignoring a key of store %s: %s", self->name, error->message);
		share->broken_keys++;
		return NULL;
	}
	return kmx_softkey_key_new_take(KMX_DEVICE(self), id, info);
}

static gpointer
kmx_softkey_device_load_share(gpointer data)
{
	KmxSoftkeyLoadShare *share = data;

	for (guint i = share->begin; i < share->end; i++) {
		const char *name = g_ptr_array_index(share->names, i);

		if (g_str_has_suffix(name, ".info"))
			share->keys[i] = kmx_softkey_device_load_key(share, name);
		else
			kmx_softkey_device_fix_mode(share->self, share->dir_fd, name, &share->fix);
	}
	return NULL;
}

/* the key files in @names, read by up to one thread per core: with 10,000
 * keys this is most of keymuxd's start-up (a path walk, an open, a read
 * and a SHA-256 per key), and no file depends on another.  The keys come
 * back in the order of @names, and the modes' summary is the one a single
 * pass would give */
static void
kmx_softkey_device_load_files(KmxSoftkeyDevice *self,
			      int dir_fd,
			      GPtrArray *names,
			      GPtrArray *keys,
			      KmxSoftkeyModeFix *fix)
{
	guint n_threads = MIN((guint)g_get_num_processors(), KMX_SOFTKEY_LOAD_THREADS_MAX);
	g_autofree KmxSoftkeyKey **loaded = g_new0(KmxSoftkeyKey *, MAX(names->len, 1));
	g_autofree KmxSoftkeyLoadShare *shares = NULL;
	g_autofree GThread **threads = NULL;

	if (names->len < KMX_SOFTKEY_LOAD_PARALLEL_MIN || n_threads < 2)
		n_threads = 1;
	shares = g_new0(KmxSoftkeyLoadShare, n_threads);
	threads = g_new0(GThread *, n_threads);
	for (guint t = 0; t < n_threads; t++) {
		KmxSoftkeyLoadShare *share = &shares[t];

		share->self = self;
		share->dir_fd = dir_fd;
		share->names = names;
		share->keys = loaded;
		share->begin = (guint)((guint64)names->len * t / n_threads);
		share->end = (guint)((guint64)names->len * (t + 1) / n_threads);
		/* the first share is this thread's own */
		if (t > 0) {
			g_autoptr(GError) error = NULL;

			threads[t] = g_thread_try_new("kmx-load",
						      kmx_softkey_device_load_share,
						      share,
						      &error);
			if (threads[t] == NULL)
				g_debug("loading on fewer threads: %s", error->message);
		}
	}
	for (guint t = 0; t < n_threads; t++) {
		/* a thread that could not start: its share is read here */
		if (t == 0 || threads[t] == NULL)
			kmx_softkey_device_load_share(&shares[t]);
	}
	for (guint t = 0; t < n_threads; t++) {
		if (threads[t] != NULL)
			g_thread_join(threads[t]);
		kmx_softkey_mode_fix_merge(fix, &shares[t].fix);
		self->broken_keys += shares[t].broken_keys;
	}
	for (guint i = 0; i < names->len; i++) {
		if (loaded[i] != NULL)
			g_ptr_array_add(keys, loaded[i]);
	}
}

/**
 * kmx_softkey_device_load:
 * @unsafe: (nullable): why the store must not be used, found by the
 *   backend (a parent directory others can change)
 *
 * Scans the store directory on the main thread at start-up (the key files
 * themselves are read by several threads when there are many): makes the
 * store's files private, reads store.info and every <id>.info, decrypts
 * nothing, tidies what a crash may have left, and never stops on a bad
 * file.  A store whose files others may read or change, and keymux cannot
 * make private, is unavailable.
 *
 * Returns: (transfer full) (element-type KmxSoftkeyKey): the keys to add
 */
GPtrArray *
kmx_softkey_device_load(KmxSoftkeyDevice *self, const char *unsafe)
{
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_object_unref);
	/* the file names, all in a few blocks: no malloc and free for each of
	 * 20,000 names on the main thread.  pems: id -> its .pem's name */
	g_autoptr(GStringChunk) chunk = g_string_chunk_new(64 * 1024);
	g_autoptr(GHashTable) pems = g_hash_table_new(kmx_key_id_hash, g_str_equal);
	g_autoptr(GHashTable)
	    orphans = g_hash_table_new_full(kmx_key_id_hash, g_str_equal, g_free, NULL);
	g_autoptr(GPtrArray) infos = g_ptr_array_new();
	g_autoptr(GPtrArray) pem_names = g_ptr_array_new();
	g_autoptr(GPtrArray) names = g_ptr_array_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(GDir) dir = g_dir_open(self->dir, 0, &error);
	KmxSoftkeyModeFix fix = {0};
	gboolean has_store_info = FALSE;
	gboolean has_key_files;
	const char *name;
	int dir_fd;

	if (dir == NULL) {
		kmx_softkey_device_set_broken(self, error->message);
		return g_steal_pointer(&keys);
	}
	dir_fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		int errsv = errno;
		g_autofree char *why =
		    g_strdup_printf("cannot open %s: %s", self->dir, g_strerror(errsv));
		kmx_softkey_device_set_broken(self, why);
		return g_steal_pointer(&keys);
	}
	kmx_softkey_device_fix_mode(self, dir_fd, ".", &fix);
	while ((name = g_dir_read_name(dir)) != NULL) {
		gsize len = strlen(name);
		if (kmx_softkey_device_is_temp_file(name, len)) {
			/* an atomic write that never completed was never acknowledged */
			g_autofree char *path = g_build_filename(self->dir, name, NULL);
			g_message("removing %s, left by an interrupted write", path);
			if (g_unlink(path) != 0)
				g_warning("cannot remove %s: %s", path, g_strerror(errno));
			continue;
		}
		if (len == 68 && g_str_has_suffix(name, ".pem") &&
		    kmx_softkey_device_is_key_id(name, 64)) {
			char *pem_name = g_string_chunk_insert_len(chunk, name, (gssize)len);

			g_hash_table_insert(pems,
					    g_string_chunk_insert_len(chunk, name, 64),
					    pem_name);
			g_ptr_array_add(pem_names, pem_name);
		} else if (len == 69 && g_str_has_suffix(name, ".info") &&
			   kmx_softkey_device_is_key_id(name, 64)) {
			g_ptr_array_add(infos, g_string_chunk_insert_len(chunk, name, (gssize)len));
		} else if (g_str_equal(name, KMX_SOFTKEY_STORE_INFO)) {
			has_store_info = TRUE;
		}
	}
	has_key_files = g_hash_table_size(pems) > 0;
	if (has_store_info)
		kmx_softkey_device_fix_mode(self, dir_fd, KMX_SOFTKEY_STORE_INFO, &fix);
	/* an .info is read when its key material is there; each is followed
	 * by its .pem, so that any run of the list is as much work as another
	 * of the same length */
	for (guint i = 0; i < infos->len; i++) {
		char *info_name = g_ptr_array_index(infos, i);
		gpointer pem_name = NULL;
		char id[65];

		memcpy(id, info_name, 64);
		id[64] = '\0';
		if (!g_hash_table_steal_extended(pems, id, NULL, &pem_name)) {
			/* the key material is gone: a deletion was interrupted */
			g_autofree char *path = g_build_filename(self->dir, info_name, NULL);
			g_message("removing %s: its key file was deleted", path);
			if (g_unlink(path) != 0)
				g_warning("cannot remove %s: %s", path, g_strerror(errno));
			continue;
		}
		g_ptr_array_add(names, info_name);
		g_ptr_array_add(names, pem_name);
	}
	/* and the .pem files without .info, made private too */
	for (guint i = 0; i < pem_names->len && g_hash_table_size(pems) > 0; i++) {
		char *pem_name = g_ptr_array_index(pem_names, i);
		char id[65];

		memcpy(id, pem_name, 64);
		id[64] = '\0';
		if (g_hash_table_remove(pems, id)) {
			g_ptr_array_add(names, pem_name);
			g_hash_table_add(orphans, g_strdup(id));
		}
	}
	kmx_softkey_device_load_files(self, dir_fd, names, keys, &fix);
	close(dir_fd);
	if (fix.n_fixed > 0)
		g_warning("soft-key store %s: other users could read or change %u of its files "
			  "(%s); they are private now (0600, 0700)",
			  self->name,
			  fix.n_fixed,
			  fix.first_fixed);
	if (unsafe != NULL || fix.error != NULL)
		kmx_softkey_device_set_broken(self, unsafe != NULL ? unsafe : fix.error->message);
	else if (!kmx_softkey_device_load_store_info(self, has_key_files))
		g_debug("listing the keys of the unavailable store %s anyway", self->name);
	g_free(fix.first_fixed);
	g_clear_error(&fix.error);
	for (guint i = 0; i < keys->len; i++) {
		KmxSoftkeyKey *key = g_ptr_array_index(keys, i);

		kmx_key_table_insert(self->keys, KMX_KEY(key));
	}
	/* what is left are .pem files without .info (see the top of the file):
	 * never removed, rebuilt when they can be */
	if (g_hash_table_size(orphans) > 0)
		kmx_softkey_device_recover_keys(self, orphans, keys);
	self->incomplete_keys = g_hash_table_size(orphans);
	if (self->incomplete_keys > 0)
		g_warning("store %s has %u key file(s) without .info; they are kept and listed "
			  "again once the same key is imported again",
			  self->name,
			  self->incomplete_keys);
	kmx_softkey_device_update_details(self);
	return g_steal_pointer(&keys);
}

/**
 * kmx_softkey_device_dup_file_key:
 *
 * Returns: (transfer full): the file key, or %NULL with %KMX_ERROR_LOCKED
 * or %KMX_ERROR_UNAVAILABLE
 */
KmxSecret *
kmx_softkey_device_dup_file_key(KmxSoftkeyDevice *self, GError **error)
{
	g_autofree char *path = NULL;
	g_autoptr(KmxSoftkeyStoreInfo) info = NULL;

	if (!kmx_softkey_device_check_usable(self, error))
		return NULL;
	g_mutex_lock(&self->mutex);
	if (self->file_key != NULL) {
		KmxSecret *key = kmx_secret_ref(self->file_key);
		g_mutex_unlock(&self->mutex);
		return key;
	}
	if (self->protected) {
		g_mutex_unlock(&self->mutex);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_LOCKED,
			    "the soft-key store %s is locked: unlock it with its password",
			    self->name);
		return NULL;
	}
	g_mutex_unlock(&self->mutex);

	/* unprotected: the file key is in store.info in clear */
	path = g_build_filename(self->dir, KMX_SOFTKEY_STORE_INFO, NULL);
	info = kmx_softkey_store_info_load(path, error);
	if (info == NULL)
		return NULL;
	if (info->protected) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_LOCKED,
			    "the soft-key store %s is locked: unlock it with its password",
			    self->name);
		return NULL;
	}
	g_mutex_lock(&self->mutex);
	if (self->file_key == NULL)
		self->file_key = kmx_secret_ref(info->file_key);
	g_mutex_unlock(&self->mutex);
	return kmx_secret_ref(info->file_key);
}

/**
 * kmx_softkey_device_drop_secrets:
 *
 * Forgets the file key and every decrypted key; any thread.
 */
void
kmx_softkey_device_drop_secrets(KmxSoftkeyDevice *self)
{
	g_autoptr(GPtrArray) keys = NULL;
	g_autoptr(KmxSecret) file_key = NULL;
	KmxKeyTableIter iter;
	KmxKey *key;

	g_mutex_lock(&self->mutex);
	file_key = g_steal_pointer(&self->file_key);
	keys = g_ptr_array_new_full(kmx_key_table_size(self->keys), g_object_unref);
	kmx_key_table_iter_init(&iter, self->keys);
	while (kmx_key_table_iter_next(&iter, &key))
		g_ptr_array_add(keys, g_object_ref(key));
	g_mutex_unlock(&self->mutex);
	for (guint i = 0; i < keys->len; i++)
		kmx_softkey_key_drop_secrets(g_ptr_array_index(keys, i));
}

static gboolean
kmx_softkey_device_unlock(KmxDevice *device,
			  KmxSecret *secret,
			  GCancellable *cancellable,
			  GError **error)
{
	KmxSoftkeyDevice *self = KMX_SOFTKEY_DEVICE(device);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->secret_mutex);
	g_autofree char *path = g_build_filename(self->dir, KMX_SOFTKEY_STORE_INFO, NULL);
	g_autoptr(KmxSoftkeyStoreInfo) info = NULL;
	g_autoptr(KmxSecret) file_key = NULL;
	gboolean protected;

	if (!kmx_softkey_device_check_usable(self, error))
		return FALSE;
	g_mutex_lock(&self->mutex);
	protected = self->protected;
	g_mutex_unlock(&self->mutex);
	/* a secret given is always checked, even on an open store: a client
	 * must not be told that a wrong password is right */
	if (!protected) {
		if (!kmx_secret_is_empty(secret)) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "the soft-key store %s has no password: unlock it with an "
				    "empty secret, or give it one with keymuxctl passwd",
				    self->name);
			return FALSE;
		}
		kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
		return TRUE;
	}
	if (kmx_secret_is_empty(secret)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_LOCKED,
			    "the soft-key store %s needs its password to unlock",
			    self->name);
		return FALSE;
	}
	info = kmx_softkey_store_info_load(path, error);
	if (info == NULL)
		return FALSE;
	file_key = kmx_softkey_store_info_unwrap(info, secret, error);
	if (file_key == NULL)
		return FALSE;
	g_mutex_lock(&self->mutex);
	g_clear_pointer(&self->file_key, kmx_secret_unref);
	self->file_key = g_steal_pointer(&file_key);
	g_mutex_unlock(&self->mutex);
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
	return TRUE;
}

static gboolean
kmx_softkey_device_lock(KmxDevice *device, GCancellable *cancellable, GError **error)
{
	KmxSoftkeyDevice *self = KMX_SOFTKEY_DEVICE(device);
	gboolean protected;

	kmx_softkey_device_drop_secrets(self);
	g_mutex_lock(&self->mutex);
	protected = self->protected;
	g_mutex_unlock(&self->mutex);
	if (protected)
		kmx_device_change_flags(device, KMX_DEVICE_FLAG_LOCKED, 0);
	return TRUE;
}

static gboolean
kmx_softkey_device_change_secret(KmxDevice *device,
				 KmxSecret *old_secret,
				 KmxSecret *new_secret,
				 GCancellable *cancellable,
				 GError **error)
{
	KmxSoftkeyDevice *self = KMX_SOFTKEY_DEVICE(device);
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->secret_mutex);
	g_autofree char *path = g_build_filename(self->dir, KMX_SOFTKEY_STORE_INFO, NULL);
	g_autoptr(KmxSoftkeyStoreInfo) info = NULL;
	g_autoptr(KmxSecret) file_key = NULL;
	gboolean protect = !kmx_secret_is_empty(new_secret);

	if (!kmx_softkey_device_check_usable(self, error))
		return FALSE;
	info = kmx_softkey_store_info_load(path, error);
	if (info == NULL)
		return FALSE;
	if (info->protected && kmx_secret_is_empty(old_secret)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_BAD_SECRET,
			    "the soft-key store %s has a password: give it as the old secret",
			    self->name);
		return FALSE;
	}
	if (!info->protected && !kmx_secret_is_empty(old_secret)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_BAD_SECRET,
			    "the soft-key store %s has no password: give an empty old secret",
			    self->name);
		return FALSE;
	}
	/* checks the old password (one KDF) for a protected store */
	file_key = kmx_softkey_store_info_unwrap(info, old_secret, error);
	if (file_key == NULL)
		return FALSE;
	if (!kmx_softkey_store_info_save(path, file_key, protect ? new_secret : NULL, error))
		return FALSE;
	g_mutex_lock(&self->mutex);
	self->protected = protect;
	g_clear_pointer(&self->file_key, kmx_secret_unref);
	self->file_key = g_steal_pointer(&file_key);
	g_mutex_unlock(&self->mutex);
	/* whoever knew the old secret may use the store now */
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
	kmx_softkey_device_update_details(self);
	return TRUE;
}

/* write one key's files and list it; @pkcs8 must be in secret memory */
static KmxSoftkeyKey *
kmx_softkey_device_store_key(KmxSoftkeyDevice *self,
			     KmxSecret *file_key,
			     KmxImportedKey *parsed,
			     const char *label,
			     gboolean exportable,
			     GError **error)
{
	g_autofree char *id = kmx_key_compute_id(parsed->spki);
	g_autofree char *pem = kmx_softkey_device_get_key_path(self, id, ".pem");
	g_autofree char *info_path = kmx_softkey_device_get_key_path(self, id, ".info");
	g_autoptr(GDateTime) now = g_date_time_new_now_utc();
	g_autofree char *created = g_date_time_format_iso8601(now);
	g_autofree char *fallback = NULL;
	gboolean had_pem = g_file_test(pem, G_FILE_TEST_EXISTS);
	KmxSoftkeyKeyInfo info = {0};
	KmxSoftkeyKey *key;

	if (label == NULL || label[0] == '\0')
		label = parsed->comment;
	if (label == NULL || label[0] == '\0') {
		fallback = g_strdup_printf("%s key", kmx_key_type_to_string(parsed->type));
		label = fallback;
	}
	/* .info first: a crash before the .pem leaves only public facts,
	 * which start-up removes, never a key file nobody can list */
	info.label = (char *)label;
	info.type = parsed->type;
	info.usage = kmx_key_type_get_usage(parsed->type);
	info.spki = parsed->spki;
	info.created = created;
	info.exportable = exportable;
	if (!kmx_softkey_key_info_save(info_path, &info, error))
		return NULL;
	if (!kmx_softkey_pem_write(pem, parsed->pkcs8, file_key, error)) {
		/* an old .pem of this key (had_pem) stays, complete again */
		if (!had_pem)
			(void)kmx_file_remove_durable(info_path, NULL);
		return NULL;
	}
	key = kmx_softkey_key_new(KMX_DEVICE(self), id, &info);
	g_mutex_lock(&self->mutex);
	kmx_key_table_insert(self->keys, KMX_KEY(key));
	if (had_pem && self->incomplete_keys > 0)
		self->incomplete_keys--;
	g_mutex_unlock(&self->mutex);
	return key;
}

/* reserve ids so that two concurrent imports of one key cannot both win */
static gboolean
kmx_softkey_device_reserve(KmxSoftkeyDevice *self, GPtrArray *parsed, GError **error)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->mutex);

	for (guint i = 0; i < parsed->len; i++) {
		KmxImportedKey *p = g_ptr_array_index(parsed, i);
		g_autofree char *id = kmx_key_compute_id(p->spki);
		gboolean twice = FALSE;
		for (guint j = 0; j < i; j++) {
			KmxImportedKey *q = g_ptr_array_index(parsed, j);
			twice = twice || g_bytes_equal(p->spki, q->spki);
		}
		if (twice || kmx_key_table_contains(self->keys, id) ||
		    g_hash_table_contains(self->pending, id)) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_EXISTS,
				    "key %s is already in the soft-key store %s",
				    id,
				    self->name);
			return FALSE;
		}
	}
	for (guint i = 0; i < parsed->len; i++) {
		KmxImportedKey *p = g_ptr_array_index(parsed, i);
		g_hash_table_add(self->pending, kmx_key_compute_id(p->spki));
	}
	return TRUE;
}

static void
kmx_softkey_device_unreserve(KmxSoftkeyDevice *self, GPtrArray *parsed)
{
	G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&self->mutex);

	for (guint i = 0; i < parsed->len; i++) {
		KmxImportedKey *p = g_ptr_array_index(parsed, i);
		g_autofree char *id = kmx_key_compute_id(p->spki);
		g_hash_table_remove(self->pending, id);
	}
}

static GPtrArray *
kmx_softkey_device_store_keys(KmxSoftkeyDevice *self,
			      KmxSecret *file_key,
			      GPtrArray *parsed,
			      const char *label,
			      const KmxOptions *options,
			      GError **error)
{
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_object_unref);
	gboolean exportable = options->exportable;

	if (!kmx_softkey_device_reserve(self, parsed, error))
		return NULL;
	for (guint i = 0; i < parsed->len; i++) {
		KmxSoftkeyKey *key = kmx_softkey_device_store_key(self,
								  file_key,
								  g_ptr_array_index(parsed, i),
								  label,
								  exportable,
								  error);
		if (key == NULL) {
			/* the keys written so far stay: they are complete and listed */
			kmx_softkey_device_unreserve(self, parsed);
			kmx_softkey_device_update_details(self);
			return NULL;
		}
		g_ptr_array_add(keys, key);
	}
	kmx_softkey_device_unreserve(self, parsed);
	kmx_softkey_device_update_details(self);
	return g_steal_pointer(&keys);
}

static KmxKey *
kmx_softkey_device_generate_key(KmxDevice *device,
				KmxKeyType type,
				const char *label,
				const KmxOptions *options,
				KmxSecret *admin_secret,
				GCancellable *cancellable,
				GError **error)
{
	KmxSoftkeyDevice *self = KMX_SOFTKEY_DEVICE(device);
	g_autoptr(KmxSecret) file_key = NULL;
	g_auto(gnutls_x509_privkey_t) x = NULL;
	g_autoptr(GPtrArray)
	    parsed = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_imported_key_free);
	g_autoptr(GPtrArray) keys = NULL;
	KmxImportedKey *p;
	gnutls_pk_algorithm_t pk;
	unsigned int bits;
	int rc;

	switch (type) {
	case KMX_KEY_TYPE_RSA2048:
	case KMX_KEY_TYPE_RSA3072:
	case KMX_KEY_TYPE_RSA4096:
		pk = GNUTLS_PK_RSA;
		bits = kmx_key_type_get_bits(type);
		break;
	case KMX_KEY_TYPE_ECDSA_P256:
		pk = GNUTLS_PK_ECDSA;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
		break;
	case KMX_KEY_TYPE_ECDSA_P384:
		pk = GNUTLS_PK_ECDSA;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1);
		break;
	case KMX_KEY_TYPE_ED25519:
		pk = GNUTLS_PK_EDDSA_ED25519;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519);
		break;
	case KMX_KEY_TYPE_X25519:
		pk = GNUTLS_PK_ECDH_X25519;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_X25519);
		break;
	case KMX_KEY_TYPE_UNKNOWN:
	default:
		g_set_error_literal(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_INVALID_ARGUMENT,
		    "unknown key algorithm: use rsa2048, rsa3072, rsa4096, ecdsa-p256, "
		    "ecdsa-p384, ed25519 or x25519");
		return NULL;
	}
	file_key = kmx_softkey_device_dup_file_key(self, error);
	if (file_key == NULL)
		return NULL;
	gnutls_x509_privkey_init(&x);
	rc = gnutls_x509_privkey_generate(x, pk, bits, 0);
	if (rc < 0) {
		kmx_softkey_gnutls_error(error, rc, KMX_ERROR_FAILED, "cannot generate the key");
		return NULL;
	}
	p = g_new0(KmxImportedKey, 1);
	g_ptr_array_add(parsed, p);
	p->type = type;
	p->pkcs8 = kmx_import_x509_to_pkcs8(x, error);
	if (p->pkcs8 == NULL)
		return NULL;
	p->spki = kmx_import_x509_get_spki(x, error);
	if (p->spki == NULL)
		return NULL;
	keys = kmx_softkey_device_store_keys(self, file_key, parsed, label, options, error);
	if (keys == NULL)
		return NULL;
	return g_object_ref(g_ptr_array_index(keys, 0));
}

static GPtrArray *
kmx_softkey_device_import_key(KmxDevice *device,
			      GBytes *data,
			      KmxSecret *passphrase,
			      const char *label,
			      const KmxOptions *options,
			      KmxSecret *admin_secret,
			      GCancellable *cancellable,
			      GError **error)
{
	KmxSoftkeyDevice *self = KMX_SOFTKEY_DEVICE(device);
	g_autoptr(KmxSecret) file_key = NULL;
	g_autoptr(GPtrArray) parsed = NULL;

	file_key = kmx_softkey_device_dup_file_key(self, error);
	if (file_key == NULL)
		return NULL;
	parsed = kmx_import_parse(data, passphrase, error);
	if (parsed == NULL)
		return NULL;
	return kmx_softkey_device_store_keys(self, file_key, parsed, label, options, error);
}

/**
 * kmx_softkey_device_delete_key:
 *
 * Removes the key's files: the .pem first, so that a crash leaves at most
 * an .info without key material, which start-up removes.
 */
gboolean
kmx_softkey_device_delete_key(KmxSoftkeyDevice *self, KmxSoftkeyKey *key, GError **error)
{
	const char *id = kmx_key_get_id(KMX_KEY(key));
	g_autofree char *pem = kmx_softkey_device_get_key_path(self, id, ".pem");
	g_autofree char *info = kmx_softkey_device_get_key_path(self, id, ".info");
	gboolean ok;

	/* the id stays reserved until both files are gone: an import of the
	 * same key meanwhile would write files this deletion then removes */
	g_mutex_lock(&self->mutex);
	g_hash_table_add(self->pending, g_strdup(id));
	g_mutex_unlock(&self->mutex);
	ok = kmx_file_remove_durable(pem, error);
	g_mutex_lock(&self->mutex);
	if (ok)
		kmx_key_table_remove(self->keys, id);
	g_mutex_unlock(&self->mutex);
	ok = ok && kmx_file_remove_durable(info, error);
	g_mutex_lock(&self->mutex);
	g_hash_table_remove(self->pending, id);
	g_mutex_unlock(&self->mutex);
	if (!ok)
		return FALSE;
	kmx_softkey_device_update_details(self);
	return TRUE;
}

static void
kmx_softkey_device_finalize(GObject *object)
{
	KmxSoftkeyDevice *self = KMX_SOFTKEY_DEVICE(object);

	kmx_softkey_device_drop_secrets(self);
	kmx_key_table_free(self->keys);
	g_hash_table_unref(self->pending);
	g_free(self->broken);
	g_free(self->name);
	g_free(self->dir);
	g_mutex_clear(&self->mutex);
	g_mutex_clear(&self->secret_mutex);
	G_OBJECT_CLASS(kmx_softkey_device_parent_class)->finalize(object);
}

static void
kmx_softkey_device_class_init(KmxSoftkeyDeviceClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	KmxDeviceClass *device_class = KMX_DEVICE_CLASS(klass);

	object_class->finalize = kmx_softkey_device_finalize;
	device_class->executor_kind = KMX_EXECUTOR_POOL;
	device_class->unlock = kmx_softkey_device_unlock;
	device_class->lock = kmx_softkey_device_lock;
	/* a store is its directory: it is always registered */
	device_class->persistent = TRUE;
	device_class->change_secret = kmx_softkey_device_change_secret;
	device_class->generate_key = kmx_softkey_device_generate_key;
	device_class->import_key = kmx_softkey_device_import_key;
}

static void
kmx_softkey_device_init(KmxSoftkeyDevice *self)
{
	g_mutex_init(&self->mutex);
	g_mutex_init(&self->secret_mutex);
	self->keys = kmx_key_table_new(TRUE);
	self->pending = g_hash_table_new_full(kmx_key_id_hash, g_str_equal, g_free, NULL);
}

/**
 * kmx_softkey_device_new:
 * @store_name: the directory name, e.g. "login"
 * @dir: the store's directory
 *
 * Returns: (transfer full): the store; call kmx_softkey_device_load() next
 */
KmxSoftkeyDevice *
kmx_softkey_device_new(const char *backend_name, const char *store_name, const char *dir)
{
	g_autofree char *id = g_strdup_printf("%s:%s", backend_name, store_name);
	KmxSoftkeyDevice *self;

	self = g_object_new(KMX_TYPE_SOFTKEY_DEVICE,
			    "id",
			    id,
			    "backend",
			    backend_name,
			    "label",
			    g_str_equal(store_name, "login") ? "Login keys" : store_name,
			    NULL);
	self->name = g_strdup(store_name);
	self->dir = g_strdup(dir);
	kmx_device_set_flags(KMX_DEVICE(self), KMX_DEVICE_FLAG_REGISTERED);
	return self;
}
