/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the TPM device's insides, shared by kmx-tpm-device.c and
 * kmx-tpm-secret.c; nothing else includes this */
#pragma once

#include "kmx-tpm-device.h"

G_BEGIN_DECLS

/* keys kept loaded besides the primary: 3 transient slots on swtpm */
#define KMX_TPM_MAX_LOADED 2

/* the device secret's check object: sealed data whose auth value is the
 * secret; absent or empty, the device has no secret */
#define KMX_TPM_SECRET_FILE "secret.pem"
/* a staged secret change (see kmx-tpm-secret.c) */
#define KMX_TPM_STAGED ".new"

typedef struct {
	char *key_id;
	ESYS_TR handle;
} KmxTpmLoaded;

struct _KmxTpmDevice {
	KmxDevice parent_instance;
	char *dir;
	char *tcti_conf; /* NULL: the kernel's resource manager, then tabrmd */
	GWeakRef backend;
	gint probe_pending; /* atomic */
	gint protected;	    /* atomic: a device secret is set (secret.pem) */
	gint connected;	    /* atomic: the executor holds a connection */
	/* the executor's */
	KmxSecret *pin; /* the device secret, while unlocked */
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	char *tcti_used;
	ESYS_TR primary;
	ESYS_TR session;	      /* kmx_tpm_device_session() */
	TPMS_ECC_POINT primary_point; /* its public key, for TPM2_Import */
	GQueue loaded;		      /* KmxTpmLoaded, most recently used first */
	/* dictionary attack: the counter last seen, and when (monotonic) the
	 * TPM's self-healing timer last started, as far as we know (0: the
	 * counter was 0) */
	guint32 da_counter;
	gint64 da_mark;
	char *last_error;
};

/* kmx-tpm-device.c: the connection, key files, loading (executor) */
void kmx_tpm_device_report(KmxTpmDevice *self, GVariant *lockout);
GVariant *kmx_tpm_device_read_lockout(KmxTpmDevice *self, GError **error);
char *kmx_tpm_device_path(KmxTpmDevice *self, const char *name, const char *suffix);
gboolean kmx_tpm_is_key_file(const char *name, const char *suffix);
gboolean kmx_tpm_device_read_file(const char *path,
				  KmxTpmKeyFile *file,
				  gboolean missing_ok,
				  GError **error);
gboolean kmx_tpm_auth_from_secret(KmxSecret *secret, TPM2B_AUTH *auth, GError **error);
void kmx_tpm_device_evict(KmxTpmDevice *self, guint keep);
gboolean kmx_tpm_device_load_file(KmxTpmDevice *self,
				  const KmxTpmKeyFile *file,
				  const TPM2B_AUTH *auth,
				  ESYS_TR *handle,
				  GError **error);
gboolean kmx_tpm_device_fail_locked(KmxTpmDevice *self, GError **error);
gboolean kmx_tpm_device_rewrap(KmxTpmDevice *self,
			       KmxTpmKeyFile *file,
			       const TPM2B_AUTH *old,
			       const TPM2B_AUTH *new,
			       GError **error);

/* kmx-tpm-secret.c: the device secret's vfuncs (executor) */
gboolean kmx_tpm_device_unlock(KmxDevice *device,
			       KmxSecret *secret,
			       GCancellable *cancellable,
			       GError **error);
gboolean kmx_tpm_device_lock(KmxDevice *device, GCancellable *cancellable, GError **error);
gboolean kmx_tpm_device_change_secret(KmxDevice *device,
				      KmxSecret *old_secret,
				      KmxSecret *new_secret,
				      GCancellable *cancellable,
				      GError **error);

G_END_DECLS
