/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the TPM device's secret (a PIN that is every key's auth value)
 *
 * See the comment below and docs/tpm-format.md.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <tss2/tss2_esys.h>

#include "kmx-error.h"
#include "kmx-file.h"
#include "kmx-tpm-device-private.h"

/* ---- the device secret ------------------------------------------------------
 *
 * Every key keymux makes while the device has a secret takes the secret as
 * its auth value, and so does a sealed check object, secret.pem.  Unlock
 * unseals that object: one TPM command, so a wrong secret costs exactly one
 * dictionary-attack try and a right one none; the TPM's DA counter is the
 * PIN retry counter.  The secret is kept (executor) until Lock.
 *
 * ChangeSecret re-wraps every key with TPM2_ObjectChangeAuth, which gives a
 * new private blob for the new secret.  The files change in three steps:
 *   1. stage: secret.pem.new (an empty file when the new secret is empty),
 *      then <id>.pem.new for every key, each atomic and durable;
 *   2. commit: rename secret.pem.new over secret.pem;
 *   3. roll forward: rename every <id>.pem.new over <id>.pem.
 * At start-up, a secret.pem.new means the change never committed: the
 * staged key files are removed, then secret.pem.new (in that order); staged
 * key files without it mean it did: they are renamed into place.  So after
 * a crash at any point every key opens with the old secret or every key
 * with the new one.  A copy of an old key file still opens with the old
 * secret: the TPM cannot revoke a blob.
 */

static gboolean
kmx_tpm_device_remove(const char *path, GError **error)
{
	if (g_unlink(path) != 0 && errno != ENOENT) {
		int errsv = errno;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot remove %s: %s",
			    path,
			    g_strerror(errsv));
		return FALSE;
	}
	return TRUE;
}

/* the staged key files, by name */
static GPtrArray *
kmx_tpm_device_list(KmxTpmDevice *self, const char *suffix)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GDir) gdir = g_dir_open(self->dir, 0, NULL);
	const char *name;

	while (gdir != NULL && (name = g_dir_read_name(gdir)) != NULL) {
		if (kmx_tpm_is_key_file(name, suffix))
			g_ptr_array_add(names, g_strdup(name));
	}
	return names;
}

/* step 3, and recovery after step 2 */
static gboolean
kmx_tpm_device_roll_forward(KmxTpmDevice *self, GError **error)
{
	g_autoptr(GPtrArray) staged = kmx_tpm_device_list(self, KMX_TPM_STAGED);

	for (guint i = 0; i < staged->len; i++) {
		const char *name = g_ptr_array_index(staged, i);
		g_autofree char *from = g_build_filename(self->dir, name, NULL);
		g_autofree char *to = g_strndup(from, strlen(from) - strlen(KMX_TPM_STAGED));

		if (g_rename(from, to) != 0) {
			int errsv = errno;
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_FAILED,
				    "cannot rename %s: %s",
				    from,
				    g_strerror(errsv));
			return FALSE;
		}
	}
	return kmx_file_fsync_dir(self->dir, error);
}

/* undoes step 1: the staged keys first, the staged secret last */
static gboolean
kmx_tpm_device_roll_back(KmxTpmDevice *self, GError **error)
{
	g_autoptr(GPtrArray) staged = kmx_tpm_device_list(self, KMX_TPM_STAGED);
	g_autofree char *secret = kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, KMX_TPM_STAGED);

	for (guint i = 0; i < staged->len; i++) {
		g_autofree char *path =
		    g_build_filename(self->dir, g_ptr_array_index(staged, i), NULL);
		if (!kmx_tpm_device_remove(path, error))
			return FALSE;
	}
	if (!kmx_file_fsync_dir(self->dir, error))
		return FALSE;
	return kmx_file_remove_durable(secret, error) ||
	       g_file_test(secret, G_FILE_TEST_EXISTS) == FALSE;
}

/**
 * kmx_tpm_device_recover:
 *
 * Finishes or undoes a secret change a crash interrupted, and reads
 * whether the device has a secret; at start-up, before the keys are read.
 */
void
kmx_tpm_device_recover(KmxTpmDevice *self)
{
	g_autofree char *staged = kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, KMX_TPM_STAGED);
	g_autofree char *secret = kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, "");
	g_autoptr(GError) error = NULL;
	GStatBuf st;
	gboolean protected;

	if (g_file_test(staged, G_FILE_TEST_EXISTS)) {
		g_info("a change of the TPM secret did not complete: undoing it");
		if (!kmx_tpm_device_roll_back(self, &error))
			g_warning("cannot undo the interrupted secret change: %s", error->message);
	} else if (!kmx_tpm_device_roll_forward(self, &error)) {
		g_warning("cannot complete the interrupted secret change: %s", error->message);
	}
	protected = g_stat(secret, &st) == 0 && st.st_size > 0;
	g_atomic_int_set(&self->protected, protected);
	kmx_device_set_flags(KMX_DEVICE(self), protected ? KMX_DEVICE_FLAG_LOCKED : 0);
	kmx_device_set_pin_retries(KMX_DEVICE(self), -1);
}

/* unseals the check object with @secret: one TPM command, one DA try if
 * the secret is wrong */
static gboolean
kmx_tpm_device_check_secret(KmxTpmDevice *self, KmxSecret *secret, GError **error)
{
	g_autofree char *path = kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, "");
	TPM2B_SENSITIVE_DATA *data = NULL;
	TPM2B_AUTH auth;
	KmxTpmKeyFile file;
	ESYS_TR handle = ESYS_TR_NONE;
	gboolean ok;
	TSS2_RC rc;

	if (!kmx_tpm_device_read_file(path, &file, FALSE, error))
		return FALSE;
	if (!kmx_tpm_auth_from_secret(secret, &auth, error)) {
		/* longer than any secret we set: wrong, without a DA try */
		g_clear_error(error);
		g_set_error(error, KMX_ERROR, KMX_ERROR_BAD_SECRET, "wrong TPM secret");
		return FALSE;
	}
	ok = kmx_tpm_device_load_file(self, &file, &auth, &handle, error);
	kmx_secure_zero(&auth, sizeof(auth));
	if (!ok)
		return FALSE;
	rc = Esys_Unseal(self->esys,
			 handle,
			 kmx_tpm_device_session(self, TPMA_SESSION_ENCRYPT),
			 ESYS_TR_NONE,
			 ESYS_TR_NONE,
			 &data);
	if (data != NULL) {
		kmx_secure_zero(data, sizeof(*data));
		Esys_Free(data);
	}
	if (self->esys != NULL)
		Esys_FlushContext(self->esys, handle);
	ok = kmx_tpm_device_check_rc(self, rc, "checking the secret", error);
	if (!ok && g_error_matches(*error, KMX_ERROR, KMX_ERROR_BAD_SECRET)) {
		g_autoptr(GError) error_local = NULL;
		g_autoptr(GVariant) lockout = kmx_tpm_device_read_lockout(self, &error_local);
		g_clear_error(error);
		g_set_error(error, KMX_ERROR, KMX_ERROR_BAD_SECRET, "wrong TPM secret");
		if (lockout != NULL)
			kmx_tpm_device_report(self, g_variant_ref_sink(lockout));
	}
	return ok;
}

gboolean
kmx_tpm_device_unlock(KmxDevice *device,
		      KmxSecret *secret,
		      GCancellable *cancellable,
		      GError **error)
{
	KmxTpmDevice *self = KMX_TPM_DEVICE(device);

	if (!g_atomic_int_get(&self->protected)) {
		if (!kmx_secret_is_empty(secret)) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_BAD_SECRET,
				    "%s has no secret: unlock it with an empty one, or set one "
				    "with ChangeSecret",
				    kmx_device_get_id(device));
			return FALSE;
		}
		kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
		return TRUE;
	}
	if (kmx_secret_is_empty(secret))
		return kmx_tpm_device_fail_locked(self, error);
	if (!kmx_tpm_device_check_secret(self, secret, error))
		return FALSE;
	g_clear_pointer(&self->pin, kmx_secret_unref);
	self->pin = kmx_secret_ref(secret);
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
	return TRUE;
}

gboolean
kmx_tpm_device_lock(KmxDevice *device, GCancellable *cancellable, GError **error)
{
	KmxTpmDevice *self = KMX_TPM_DEVICE(device);

	g_clear_pointer(&self->pin, kmx_secret_unref);
	/* ESYS keeps a copy of each loaded key's auth value */
	kmx_tpm_device_evict(self, 0);
	if (g_atomic_int_get(&self->protected))
		kmx_device_change_flags(device, KMX_DEVICE_FLAG_LOCKED, 0);
	return TRUE;
}

/* the check object of a new secret: sealed random bytes, DA-protected */
static gboolean
kmx_tpm_device_create_check(KmxTpmDevice *self,
			    const TPM2B_AUTH *auth,
			    KmxTpmKeyFile *file,
			    GError **error)
{
	TPM2B_SENSITIVE_CREATE sensitive = {0};
	TPM2B_PUBLIC template = {0};
	TPM2B_DATA outside = {0};
	TPML_PCR_SELECTION pcrs = {0};
	TPM2B_PRIVATE *out_private = NULL;
	TPM2B_PUBLIC *out_public = NULL;
	TPM2B_CREATION_DATA *creation_data = NULL;
	TPM2B_DIGEST *creation_hash = NULL;
	TPMT_TK_CREATION *ticket = NULL;
	TSS2_RC rc;

	sensitive.sensitive.userAuth = *auth;
	sensitive.sensitive.data.size = 32;
	if (gnutls_rnd(GNUTLS_RND_KEY, sensitive.sensitive.data.buffer, 32) < 0) {
		g_set_error_literal(error, KMX_ERROR, KMX_ERROR_FAILED, "no random bytes");
		return FALSE;
	}
	template.publicArea.type = TPM2_ALG_KEYEDHASH;
	template.publicArea.nameAlg = TPM2_ALG_SHA256;
	template.publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_FIXEDTPM |
					       TPMA_OBJECT_FIXEDPARENT;
	template.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
	rc = Esys_Create(self->esys,
			 self->primary,
			 kmx_tpm_device_session(self, TPMA_SESSION_DECRYPT),
			 ESYS_TR_NONE,
			 ESYS_TR_NONE,
			 &sensitive,
			 &template,
			 &outside,
			 &pcrs,
			 &out_private,
			 &out_public,
			 &creation_data,
			 &creation_hash,
			 &ticket);
	kmx_secure_zero(&sensitive, sizeof(sensitive));
	if (rc == TSS2_RC_SUCCESS) {
		memset(file, 0, sizeof(*file));
		file->sealed = TRUE;
		file->parent = KMX_TPM_PARENT_OWNER;
		file->pub = *out_public;
		file->priv = *out_private;
	}
	Esys_Free(out_private);
	Esys_Free(out_public);
	Esys_Free(creation_data);
	Esys_Free(creation_hash);
	Esys_Free(ticket);
	return kmx_tpm_device_check_rc(self, rc, "creating the secret's check object", error);
}

static gboolean
kmx_tpm_device_write_file(const char *path, const KmxTpmKeyFile *file, GError **error)
{
	g_autoptr(GBytes) pem = kmx_tpm_keyfile_encode(file, error);

	if (pem == NULL)
		return FALSE;
	return kmx_file_write_atomic(path,
				     g_bytes_get_data(pem, NULL),
				     g_bytes_get_size(pem),
				     0600,
				     error);
}

/* step 1: the staged files, the check object's first */
static gboolean
kmx_tpm_device_stage(KmxTpmDevice *self,
		     const TPM2B_AUTH *old,
		     const TPM2B_AUTH *new,
		     GError **error)
{
	g_autofree char *secret = kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, "");
	g_autofree char *secret_new =
	    kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, KMX_TPM_STAGED);
	g_autoptr(GPtrArray) keys = kmx_tpm_device_list(self, "");
	KmxTpmKeyFile file;
	gboolean ok;

	if (new->size == 0) {
		ok = kmx_file_write_atomic(secret_new, "", 0, 0600, error);
	} else if (g_atomic_int_get(&self->protected)) {
		ok = kmx_tpm_device_read_file(secret, &file, FALSE, error) &&
		     kmx_tpm_device_rewrap(self, &file, old, new, error) &&
		     kmx_tpm_device_write_file(secret_new, &file, error);
	} else {
		ok = kmx_tpm_device_create_check(self, new, &file, error) &&
		     kmx_tpm_device_write_file(secret_new, &file, error);
	}
	if (!ok)
		return FALSE;
	for (guint i = 0; i < keys->len; i++) {
		const char *name = g_ptr_array_index(keys, i);
		g_autofree char *path = g_build_filename(self->dir, name, NULL);
		g_autofree char *staged = g_strconcat(path, KMX_TPM_STAGED, NULL);

		ok = kmx_tpm_device_read_file(path, &file, FALSE, error) &&
		     kmx_tpm_device_rewrap(self, &file, old, new, error) &&
		     kmx_tpm_device_write_file(staged, &file, error);
		kmx_secure_zero(&file, sizeof(file));
		if (!ok) {
			g_prefix_error(error, "%s: ", name);
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
kmx_tpm_device_change_secret(KmxDevice *device,
			     KmxSecret *old_secret,
			     KmxSecret *new_secret,
			     GCancellable *cancellable,
			     GError **error)
{
	KmxTpmDevice *self = KMX_TPM_DEVICE(device);
	g_autofree char *secret = kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, "");
	g_autofree char *secret_new =
	    kmx_tpm_device_path(self, KMX_TPM_SECRET_FILE, KMX_TPM_STAGED);
	gboolean protected = g_atomic_int_get(&self->protected);
	g_autoptr(GError) error_local = NULL;
	TPM2B_AUTH old, new;
	gboolean ok;

	if (!kmx_tpm_auth_from_secret(new_secret, &new, error))
		return FALSE;
	if (kmx_tpm_device_get_esys(self, error) == NULL)
		return FALSE;
	if (!protected && !kmx_secret_is_empty(old_secret)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_BAD_SECRET,
			    "%s has no secret yet: give an empty old secret",
			    kmx_device_get_id(device));
		return FALSE;
	}
	if (protected && !kmx_tpm_device_check_secret(self, old_secret, error))
		return FALSE;
	if (!kmx_tpm_auth_from_secret(old_secret, &old, error))
		return FALSE;
	/* the old auth values go with the handles that hold them */
	kmx_tpm_device_evict(self, 0);
	ok = kmx_tpm_device_stage(self, &old, &new, &error_local);
	kmx_secure_zero(&old, sizeof(old));
	kmx_secure_zero(&new, sizeof(new));
	if (!ok) {
		g_autoptr(GError) error_undo = NULL;
		if (!kmx_tpm_device_roll_back(self, &error_undo))
			g_warning("cannot undo the staged secret change: %s", error_undo->message);
		g_propagate_prefixed_error(error,
					   g_steal_pointer(&error_local),
					   "the secret is unchanged: ");
		return FALSE;
	}
	/* step 2: from here on, the new secret holds */
	if (g_rename(secret_new, secret) != 0 || !kmx_file_fsync_dir(self->dir, &error_local)) {
		g_autoptr(GError) error_undo = NULL;
		if (!kmx_tpm_device_roll_back(self, &error_undo))
			g_warning("cannot undo the staged secret change: %s", error_undo->message);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the secret is unchanged: cannot commit the change: %s",
			    error_local != NULL ? error_local->message : g_strerror(errno));
		return FALSE;
	}
	g_atomic_int_set(&self->protected, !kmx_secret_is_empty(new_secret));
	g_clear_pointer(&self->pin, kmx_secret_unref);
	if (!kmx_secret_is_empty(new_secret))
		self->pin = kmx_secret_ref(new_secret);
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
	/* step 3: a failure here is finished at the next start */
	if (!kmx_tpm_device_roll_forward(self, error))
		return FALSE;
	if (kmx_secret_is_empty(new_secret) && !kmx_file_remove_durable(secret, error))
		return FALSE;
	{
		g_autoptr(GVariant) lockout = kmx_tpm_device_read_lockout(self, NULL);
		if (lockout != NULL)
			g_variant_ref_sink(lockout);
		kmx_tpm_device_report(self, lockout);
	}
	return TRUE;
}
