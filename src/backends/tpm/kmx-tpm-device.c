/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the TPM, as the device tpm:0
 *
 * The ESYS context lives on the device's executor (one thread of its own)
 * and nowhere else.  The backend's watcher thread only queues probes: a
 * probe connects when the TPM is not connected (and reports the device
 * available), or asks the connected TPM for its lockout state (and notices
 * a TPM that went away).  A command that finds the TPM gone drops the
 * connection and reports the device unavailable at once, so a caller gets
 * Unavailable, never a hang.
 *
 * The storage primary (the owner hierarchy's, from the template every
 * TSS2-key tool uses for parent 0x40000001) is created once per connection
 * and kept loaded; keys are loaded under it on first use and kept, the
 * least recently used flushed first: without a resource manager (swtpm) a
 * TPM has three transient slots.
 */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "kmx-error.h"
#include "kmx-file.h"
#include "kmx-tpm-device-private.h"
#include "kmx-tpm-import.h"
#include "kmx-tpm-key.h"

G_DEFINE_TYPE(KmxTpmDevice, kmx_tpm_device, KMX_TYPE_DEVICE)

static void
kmx_tpm_loaded_free(KmxTpmLoaded *l)
{
	g_free(l->key_id);
	g_free(l);
}

/* ---- the connection (executor) ------------------------------------------- */

static void
kmx_tpm_device_disconnect(KmxTpmDevice *self)
{
	KmxTpmLoaded *l;

	while ((l = g_queue_pop_head(&self->loaded)) != NULL) {
		if (self->esys != NULL)
			Esys_FlushContext(self->esys, l->handle);
		kmx_tpm_loaded_free(l);
	}
	if (self->esys != NULL && self->session != ESYS_TR_NONE)
		Esys_FlushContext(self->esys, self->session);
	self->session = ESYS_TR_NONE;
	if (self->esys != NULL && self->primary != ESYS_TR_NONE)
		Esys_FlushContext(self->esys, self->primary);
	self->primary = ESYS_TR_NONE;
	if (self->esys != NULL)
		Esys_Finalize(&self->esys);
	if (self->tcti != NULL)
		Tss2_TctiLdr_Finalize(&self->tcti);
	g_clear_pointer(&self->tcti_used, g_free);
	/* a TPM that starts again starts its self-healing timer again */
	self->da_counter = 0;
	self->da_mark = 0;
	g_atomic_int_set(&self->connected, FALSE);
}

/* details, and whether the device can be used; executor */
void
kmx_tpm_device_report(KmxTpmDevice *self, GVariant *lockout)
{
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	g_variant_builder_add(&b,
			      "{sv}",
			      "protected",
			      g_variant_new_boolean(g_atomic_int_get(&self->protected)));
	if (self->tcti_used != NULL)
		g_variant_builder_add(&b, "{sv}", "tcti", g_variant_new_string(self->tcti_used));
	else if (self->last_error != NULL)
		g_variant_builder_add(&b, "{sv}", "error", g_variant_new_string(self->last_error));
	if (lockout != NULL) {
		GVariantIter iter;
		const char *k;
		GVariant *v;

		g_variant_iter_init(&iter, lockout);
		while (g_variant_iter_next(&iter, "{&sv}", &k, &v)) {
			g_variant_builder_add(&b, "{sv}", k, v);
			g_variant_unref(v);
		}
	}
	/* PinRetries: the dictionary-attack tries left, for a device secret */
	if (g_atomic_int_get(&self->protected) && lockout != NULL) {
		guint32 counter = 0, max = 0;
		g_variant_lookup(lockout, "lockout-counter", "u", &counter);
		g_variant_lookup(lockout, "max-auth-fail", "u", &max);
		kmx_device_set_pin_retries(KMX_DEVICE(self),
					   (int)(max > counter ? max - counter : 0));
	} else if (!g_atomic_int_get(&self->protected)) {
		kmx_device_set_pin_retries(KMX_DEVICE(self), -1);
	}
	kmx_device_set_details(KMX_DEVICE(self), g_variant_builder_end(&b));
	if (self->esys != NULL)
		kmx_device_change_flags(KMX_DEVICE(self), KMX_DEVICE_FLAG_AVAILABLE, 0);
	else
		kmx_device_change_flags(KMX_DEVICE(self), 0, KMX_DEVICE_FLAG_AVAILABLE);
}

static gboolean
kmx_tpm_rc_is_connection(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
	TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;

	if (layer == TSS2_TCTI_RC_LAYER)
		return TRUE;
	if (layer == TSS2_TPM_RC_LAYER)
		return FALSE;
	return base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_NO_CONNECTION ||
	       base == TSS2_BASE_RC_MALFORMED_RESPONSE ||
	       base == TSS2_BASE_RC_INSUFFICIENT_RESPONSE || base == TSS2_BASE_RC_BAD_SEQUENCE;
}

/* the TPM's own response code, without the parameter/handle number */
static TSS2_RC
kmx_tpm_rc_code(TSS2_RC rc)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER &&
	    (rc & TSS2_RC_LAYER_MASK) != TSS2_RESMGR_TPM_RC_LAYER)
		return rc;
	rc &= ~TSS2_RC_LAYER_MASK;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc & 0xfff;
}

/**
 * kmx_tpm_device_check_rc:
 * @rc: what a tss2 call returned
 * @what: the operation, for the message
 *
 * Translates a TSS2 response code at the backend's edge; a lost
 * connection also drops it and reports the device unavailable; executor.
 *
 * Returns: whether @rc is success
 */
gboolean
kmx_tpm_device_check_rc(KmxTpmDevice *self, TSS2_RC rc, const char *what, GError **error)
{
	TSS2_RC code;

	if (rc == TSS2_RC_SUCCESS)
		return TRUE;
	if (kmx_tpm_rc_is_connection(rc)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "the TPM does not answer (%s: %s)",
			    what,
			    Tss2_RC_Decode(rc));
		if (self->esys != NULL) {
			g_free(self->last_error);
			self->last_error = g_strdup_printf("the TPM at %s stopped answering: %s",
							   self->tcti_used,
							   Tss2_RC_Decode(rc));
			kmx_tpm_device_disconnect(self);
			/* a TPM that comes back is locked again, like a card */
			g_clear_pointer(&self->pin, kmx_secret_unref);
			if (g_atomic_int_get(&self->protected))
				kmx_device_change_flags(KMX_DEVICE(self),
							KMX_DEVICE_FLAG_LOCKED,
							0);
			kmx_tpm_device_report(self, NULL);
		}
		return FALSE;
	}
	code = kmx_tpm_rc_code(rc);
	if (code == TPM2_RC_LOCKOUT) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_BLOCKED,
			    "the TPM is in dictionary-attack lockout; wait for it to recover "
			    "(see the device's details) or reset it with its lockout password");
		return FALSE;
	}
	if (code == TPM2_RC_VALUE || code == TPM2_RC_SIZE) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "the TPM refused the input (%s): %s",
			    what,
			    Tss2_RC_Decode(rc));
		return FALSE;
	}
	if (code == TPM2_RC_AUTH_FAIL || code == TPM2_RC_BAD_AUTH) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_BAD_SECRET,
			    "the TPM refused the key's password (%s: %s)",
			    what,
			    Tss2_RC_Decode(rc));
		return FALSE;
	}
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "TPM %s failed: %s",
		    what,
		    Tss2_RC_Decode(rc));
	return FALSE;
}

/* the storage primary of draft-bottomley-tpm2-keys' parent 0x40000001:
 * owner hierarchy, ECC P-256, AES-128-CFB, a restricted decryption key
 * that cannot leave this TPM, no DA; the same template gives the same key
 * on every boot, so it is created, never stored */
static void
kmx_tpm_storage_template(TPM2B_PUBLIC *t)
{
	memset(t, 0, sizeof(*t));
	t->publicArea.type = TPM2_ALG_ECC;
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	t->publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
					 TPMA_OBJECT_DECRYPT | TPMA_OBJECT_NODA |
					 TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					 TPMA_OBJECT_SENSITIVEDATAORIGIN;
	t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	t->publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	t->publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	t->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

static gboolean
kmx_tpm_device_create_primary(KmxTpmDevice *self, GError **error)
{
	TPM2B_SENSITIVE_CREATE sensitive = {0};
	TPM2B_PUBLIC template;
	TPM2B_DATA outside = {0};
	TPML_PCR_SELECTION pcrs = {0};
	TPM2B_PUBLIC *out_public = NULL;
	TPM2B_CREATION_DATA *creation_data = NULL;
	TPM2B_DIGEST *creation_hash = NULL;
	TPMT_TK_CREATION *ticket = NULL;
	TSS2_RC rc;

	kmx_tpm_storage_template(&template);
	rc = Esys_CreatePrimary(self->esys,
				ESYS_TR_RH_OWNER,
				ESYS_TR_PASSWORD,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				&sensitive,
				&template,
				&outside,
				&pcrs,
				&self->primary,
				&out_public,
				&creation_data,
				&creation_hash,
				&ticket);
	if (rc == TSS2_RC_SUCCESS)
		self->primary_point = out_public->publicArea.unique.ecc;
	Esys_Free(out_public);
	Esys_Free(creation_data);
	Esys_Free(creation_hash);
	Esys_Free(ticket);
	if (rc != TSS2_RC_SUCCESS) {
		self->primary = ESYS_TR_NONE;
		if (kmx_tpm_rc_code(rc) == TPM2_RC_BAD_AUTH ||
		    kmx_tpm_rc_code(rc) == TPM2_RC_AUTH_FAIL) {
			g_set_error_literal(
			    error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the TPM's owner hierarchy has a password: keymux needs "
			    "it empty to create the storage key");
			return FALSE;
		}
		return kmx_tpm_device_check_rc(self, rc, "creating the storage key", error);
	}
	return TRUE;
}

/* TPM2_TRANSIENT_FIRST shifts a signed 0x80 by 24 bits: undefined behaviour */
#define KMX_TPM_TRANSIENT_FIRST ((TPM2_HANDLE)0x80000000u)

/* flushes the handles of one type (the type of @first) */
static void
kmx_tpm_device_flush_range(KmxTpmDevice *self, TPM2_HANDLE first)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	rc = Esys_GetCapability(self->esys,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				TPM2_CAP_HANDLES,
				first,
				TPM2_MAX_CAP_HANDLES,
				&more,
				&cap);
	if (rc != TSS2_RC_SUCCESS)
		return;
	for (guint i = 0; i < cap->data.handles.count; i++) {
		ESYS_TR tr = ESYS_TR_NONE;
		if (Esys_TR_FromTPMPublic(self->esys,
					  cap->data.handles.handle[i],
					  ESYS_TR_NONE,
					  ESYS_TR_NONE,
					  ESYS_TR_NONE,
					  &tr) == TSS2_RC_SUCCESS) {
			g_debug("flushing %s 0x%08x left in the TPM",
				first == KMX_TPM_TRANSIENT_FIRST ? "transient object" : "session",
				cap->data.handles.handle[i]);
			Esys_FlushContext(self->esys, tr);
		}
	}
	Esys_Free(cap);
}

/* without a resource manager (swtpm), objects and sessions a client left
 * loaded (one that crashed, or a tool) fill the three transient slots and
 * the three session slots: the TPM is ours alone while we are connected,
 * so they go.  Behind a resource manager we see only our own handles:
 * none yet. */
static void
kmx_tpm_device_flush_stale(KmxTpmDevice *self)
{
	kmx_tpm_device_flush_range(self, KMX_TPM_TRANSIENT_FIRST);
	kmx_tpm_device_flush_range(self, TPM2_LOADED_SESSION_FIRST);
}

/* the storage primary's salted HMAC session, kept for the connection */
static gboolean
kmx_tpm_device_start_session(KmxTpmDevice *self, GError **error)
{
	TPMT_SYM_DEF symmetric = {.algorithm = TPM2_ALG_AES,
				  .keyBits = {.aes = 128},
				  .mode = {.aes = TPM2_ALG_CFB}};
	TSS2_RC rc;

	rc = Esys_StartAuthSession(self->esys,
				   self->primary,
				   ESYS_TR_NONE,
				   ESYS_TR_NONE,
				   ESYS_TR_NONE,
				   ESYS_TR_NONE,
				   NULL,
				   TPM2_SE_HMAC,
				   &symmetric,
				   TPM2_ALG_SHA256,
				   &self->session);
	if (rc != TSS2_RC_SUCCESS) {
		self->session = ESYS_TR_NONE;
		return kmx_tpm_device_check_rc(self, rc, "starting a session", error);
	}
	return TRUE;
}

/**
 * kmx_tpm_device_session:
 * @flags: %TPMA_SESSION_DECRYPT: the command's first parameter crosses
 *   encrypted; %TPMA_SESSION_ENCRYPT: the response's
 *
 * The connection's HMAC session, for the next command: salted to the
 * storage primary, so an auth value never crosses to the TPM (an HMAC
 * made with it does), and with @flags a secret parameter crosses
 * AES-128-CFB encrypted with a key only the two ends have; executor,
 * connected.
 *
 * Returns: the session handle
 */
ESYS_TR
kmx_tpm_device_session(KmxTpmDevice *self, TPMA_SESSION flags)
{
	Esys_TRSess_SetAttributes(self->esys,
				  self->session,
				  TPMA_SESSION_CONTINUESESSION | flags,
				  TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT |
				      TPMA_SESSION_ENCRYPT);
	return self->session;
}

static gboolean
kmx_tpm_device_connect_to(KmxTpmDevice *self, const char *conf, GError **error)
{
	TSS2_RC rc;

	/* no device node, no TPM: said here, not by tss2 on stderr at every
	 * probe */
	if (g_str_has_prefix(conf, "device:") && conf[strlen("device:")] == '/' &&
	    !g_file_test(conf + strlen("device:"), G_FILE_TEST_EXISTS)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "no TPM: %s does not exist",
			    conf + strlen("device:"));
		return FALSE;
	}
	rc = Tss2_TctiLdr_Initialize(conf, &self->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		self->tcti = NULL;
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "no TPM answers at %s (%s)",
			    conf,
			    Tss2_RC_Decode(rc));
		return FALSE;
	}
	rc = Esys_Initialize(&self->esys, self->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		self->esys = NULL;
		Tss2_TctiLdr_Finalize(&self->tcti);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "cannot talk to the TPM at %s (%s)",
			    conf,
			    Tss2_RC_Decode(rc));
		return FALSE;
	}
	self->tcti_used = g_strdup(conf);
	kmx_tpm_device_flush_stale(self);
	if (!kmx_tpm_device_create_primary(self, error) ||
	    !kmx_tpm_device_start_session(self, error)) {
		kmx_tpm_device_disconnect(self);
		return FALSE;
	}
	g_atomic_int_set(&self->connected, TRUE);
	return TRUE;
}

/* executor: connect, to the configured TCTI or the usual ones */
static gboolean
kmx_tpm_device_connect(KmxTpmDevice *self, GError **error)
{
	const char *defaults[] = {"device:/dev/tpmrm0", "tabrmd", NULL};
	g_autoptr(GError) first = NULL;

	if (self->esys != NULL)
		return TRUE;
	if (self->tcti_conf != NULL)
		return kmx_tpm_device_connect_to(self, self->tcti_conf, error);
	for (guint i = 0; defaults[i] != NULL; i++) {
		/* the access broker serves a TPM without the kernel's resource
		 * manager: with no TPM device at all, it is not worth a try */
		if (g_str_equal(defaults[i], "tabrmd") && first != NULL &&
		    !g_file_test("/dev/tpm0", G_FILE_TEST_EXISTS))
			break;
		g_autoptr(GError) error_local = NULL;
		if (kmx_tpm_device_connect_to(self, defaults[i], &error_local))
			return TRUE;
		if (first == NULL)
			first = g_steal_pointer(&error_local);
	}
	g_propagate_error(error, g_steal_pointer(&first));
	return FALSE;
}

/**
 * kmx_tpm_device_get_esys:
 *
 * Returns: (transfer none): the ESYS context, connected, with the storage
 * primary loaded; %NULL and Unavailable without a TPM; executor
 */
ESYS_CONTEXT *
kmx_tpm_device_get_esys(KmxTpmDevice *self, GError **error)
{
	if (self->esys == NULL) {
		g_autoptr(GError) error_local = NULL;
		if (!kmx_tpm_device_connect(self, &error_local)) {
			g_free(self->last_error);
			self->last_error = g_strdup(error_local->message);
			kmx_tpm_device_report(self, NULL);
			g_propagate_error(error, g_steal_pointer(&error_local));
			return NULL;
		}
	}
	return self->esys;
}

/* The TPM's self-healing (TPM 2.0 part 1, dictionary attack protection):
 * every DA failure restarts a timer, and each lockout interval after it
 * takes one from the failure counter (and moves the timer on by one
 * interval).  The TPM does not tell the timer; the device keeps its best
 * knowledge of when it started: the moment a probe (or the check of a
 * wrong secret, right after it failed) first sees the counter higher,
 * which is never earlier than the failure, so the time to recovery worked
 * out from it is never too short.  A counter seen lower moves it on by an
 * interval per step.  Executor. */
static void
kmx_tpm_device_track_da(KmxTpmDevice *self, guint32 counter, guint32 interval)
{
	gint64 now = g_get_monotonic_time();

	if (counter == 0) {
		self->da_mark = 0;
	} else if (self->da_mark == 0 || counter > self->da_counter) {
		self->da_mark = now;
	} else if (counter < self->da_counter) {
		/* in seconds, each factor below 2^32: no overflow, whatever the
		 * TPM says */
		guint64 healed = (guint64)(self->da_counter - counter) * interval;
		guint64 elapsed = (guint64)(now - self->da_mark) / G_USEC_PER_SEC;
		self->da_mark = healed >= elapsed ? now
						  : self->da_mark + (gint64)healed * G_USEC_PER_SEC;
	}
	self->da_counter = counter;
}

/* seconds until the counter is below @max again (one try back); executor */
static guint32
kmx_tpm_da_recovery_seconds(KmxTpmDevice *self, guint32 counter, guint32 max, guint32 interval)
{
	guint64 steps = counter >= max ? (guint64)(counter - max) + 1 : 1;
	guint64 total = MIN(steps, G_MAXUINT32) * interval;
	guint64 elapsed = (guint64)MAX(0, g_get_monotonic_time() - self->da_mark) / G_USEC_PER_SEC;

	/* the TPM said it is locked out: at least a moment more */
	if (total <= elapsed)
		return 1;
	return (guint32)MIN(total - elapsed, G_MAXUINT32);
}

/* the dictionary-attack state, for Details */
GVariant *
kmx_tpm_device_read_lockout(KmxTpmDevice *self, GError **error)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	GVariantBuilder b;
	guint32 counter = 0, max = 0, interval = 0;
	gboolean in_lockout = FALSE;
	TSS2_RC rc;

	/* TPM2_PT_PERMANENT is a fixed property, the DA ones variable: two
	 * reads */
	rc = Esys_GetCapability(self->esys,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				TPM2_CAP_TPM_PROPERTIES,
				TPM2_PT_PERMANENT,
				1,
				&more,
				&cap);
	if (!kmx_tpm_device_check_rc(self, rc, "reading the lockout state", error))
		return NULL;
	if (cap->data.tpmProperties.count == 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_PERMANENT)
		in_lockout =
		    (cap->data.tpmProperties.tpmProperty[0].value & TPMA_PERMANENT_INLOCKOUT) != 0;
	Esys_Free(cap);
	cap = NULL;
	rc = Esys_GetCapability(self->esys,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				ESYS_TR_NONE,
				TPM2_CAP_TPM_PROPERTIES,
				TPM2_PT_LOCKOUT_COUNTER,
				4,
				&more,
				&cap);
	if (!kmx_tpm_device_check_rc(self, rc, "reading the lockout state", error))
		return NULL;
	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	for (guint i = 0; i < cap->data.tpmProperties.count; i++) {
		TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];
		const char *name = p->property == TPM2_PT_LOCKOUT_COUNTER    ? "lockout-counter"
				   : p->property == TPM2_PT_MAX_AUTH_FAIL    ? "max-auth-fail"
				   : p->property == TPM2_PT_LOCKOUT_INTERVAL ? "lockout-interval"
				   : p->property == TPM2_PT_LOCKOUT_RECOVERY ? "lockout-recovery"
									     : NULL;
		if (name != NULL)
			g_variant_builder_add(&b, "{sv}", name, g_variant_new_uint32(p->value));
		if (p->property == TPM2_PT_LOCKOUT_COUNTER)
			counter = p->value;
		else if (p->property == TPM2_PT_MAX_AUTH_FAIL)
			max = p->value;
		else if (p->property == TPM2_PT_LOCKOUT_INTERVAL)
			interval = p->value;
	}
	Esys_Free(cap);
	/* inLockout is failedTries >= maxTries (TPM 2.0 Part 2, TPMA_PERMANENT),
	 * but read a command earlier: the TPM may heal one try between the two
	 * reads, and the flag said "in lockout" beside a counter below the
	 * limit.  The counter and the limit come from one read; the flag
	 * decides only when there is no limit to compare with */
	if (max > 0)
		in_lockout = counter >= max;
	g_variant_builder_add(&b, "{sv}", "in-lockout", g_variant_new_boolean(in_lockout));
	kmx_tpm_device_track_da(self, counter, interval);
	if (in_lockout)
		g_variant_builder_add(
		    &b,
		    "{sv}",
		    "lockout-recovery-seconds",
		    g_variant_new_uint32(
			kmx_tpm_da_recovery_seconds(self, counter, max, interval)));
	return g_variant_builder_end(&b);
}

static void
kmx_tpm_device_probe_cb(gpointer data, gpointer user_data)
{
	KmxTpmDevice *self = data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) lockout = NULL;
	gboolean was_connected = self->esys != NULL;

	g_atomic_int_set(&self->probe_pending, FALSE);
	if (kmx_tpm_device_get_esys(self, &error) != NULL) {
		lockout = kmx_tpm_device_read_lockout(self, &error);
		if (lockout != NULL)
			g_variant_ref_sink(lockout);
	}
	if (self->esys != NULL) {
		g_clear_pointer(&self->last_error, g_free);
		kmx_tpm_device_report(self, lockout);
		if (!was_connected) {
			g_autoptr(KmxBackend) backend = g_weak_ref_get(&self->backend);
			g_debug("TPM at %s answers", self->tcti_used);
			/* listed from now on, keys or not */
			if (backend != NULL)
				kmx_backend_device_present(backend, KMX_DEVICE(self));
		}
	} else if (was_connected) {
		g_debug("TPM gone: %s", error != NULL ? error->message : "?");
	}
	g_object_unref(self);
}

/**
 * kmx_tpm_device_is_connected:
 *
 * Returns: whether the last look found the TPM; any thread
 */
gboolean
kmx_tpm_device_is_connected(KmxTpmDevice *self)
{
	return g_atomic_int_get(&self->connected);
}

/**
 * kmx_tpm_device_probe:
 *
 * Queues a check of the TPM on the device's executor, unless one waits
 * there already; any thread.
 */
void
kmx_tpm_device_probe(KmxTpmDevice *self)
{
	if (!g_atomic_int_compare_and_exchange(&self->probe_pending, FALSE, TRUE))
		return;
	kmx_executor_run_func(kmx_device_get_executor(KMX_DEVICE(self)),
			      kmx_tpm_device_probe_cb,
			      g_object_ref(self));
}

typedef struct {
	KmxTpmDevice *device;
	GMutex mutex;
	GCond cond;
	gboolean done;
	gint refs; /* atomic: the waiter's and the job's */
} KmxTpmClose;

static void
kmx_tpm_close_unref(KmxTpmClose *c)
{
	if (!g_atomic_int_dec_and_test(&c->refs))
		return;
	g_object_unref(c->device);
	g_mutex_clear(&c->mutex);
	g_cond_clear(&c->cond);
	g_free(c);
}

static void
kmx_tpm_device_close_cb(gpointer data, gpointer user_data)
{
	KmxTpmClose *c = data;

	kmx_tpm_device_disconnect(c->device);
	g_mutex_lock(&c->mutex);
	c->done = TRUE;
	g_cond_signal(&c->cond);
	g_mutex_unlock(&c->mutex);
	kmx_tpm_close_unref(c);
}

/**
 * kmx_tpm_device_close:
 *
 * Ends the connection on the device's executor, after the work queued
 * there, and waits for it a few seconds at most: a TPM without a resource
 * manager (swtpm) keeps the objects a client leaves loaded; main thread.
 */
void
kmx_tpm_device_close(KmxTpmDevice *self)
{
	KmxTpmClose *c = g_new0(KmxTpmClose, 1);
	gint64 until = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;

	c->device = g_object_ref(self);
	g_mutex_init(&c->mutex);
	g_cond_init(&c->cond);
	c->refs = 2;
	kmx_executor_run_func(kmx_device_get_executor(KMX_DEVICE(self)),
			      kmx_tpm_device_close_cb,
			      c);
	g_mutex_lock(&c->mutex);
	while (!c->done && g_cond_wait_until(&c->cond, &c->mutex, until))
		;
	g_mutex_unlock(&c->mutex);
	kmx_tpm_close_unref(c);
}

/* ---- key files and loaded keys (executor) --------------------------------- */

char *
kmx_tpm_device_path(KmxTpmDevice *self, const char *name, const char *suffix)
{
	g_autofree char *file = g_strconcat(name, suffix, NULL);
	return g_build_filename(self->dir, file, NULL);
}

/* "<64 hex digits>.pem" (with @suffix after it): a key file's name */
gboolean
kmx_tpm_is_key_file(const char *name, const char *suffix)
{
	gsize len = strlen(name);
	gsize want = 64 + strlen(".pem") + strlen(suffix);

	if (len != want || !g_str_has_suffix(name, suffix))
		return FALSE;
	for (guint i = 0; i < 64; i++) {
		if (!g_ascii_isxdigit(name[i]) || g_ascii_isupper(name[i]))
			return FALSE;
	}
	return strncmp(name + 64, ".pem", 4) == 0;
}

/* reads and decodes a TSS2 file; an absent or empty one is FALSE with no
 * error when @missing_ok */
gboolean
kmx_tpm_device_read_file(const char *path, KmxTpmKeyFile *file, gboolean missing_ok, GError **error)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	gboolean ok;

	if (!g_file_get_contents(path, &text, &len, error)) {
		if (missing_ok && g_error_matches(*error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			g_clear_error(error);
		else
			kmx_error_normalize(error);
		return FALSE;
	}
	if (len == 0 && missing_ok)
		return FALSE;
	ok = kmx_tpm_keyfile_decode(text, len, file, error);
	kmx_secure_zero(text, len);
	return ok;
}

gboolean
kmx_tpm_auth_from_secret(KmxSecret *secret, TPM2B_AUTH *auth, GError **error)
{
	gsize len = secret != NULL ? kmx_secret_get_length(secret) : 0;

	memset(auth, 0, sizeof(*auth));
	/* an auth value is at most the size of the object's name hash */
	if (len > 32) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "a TPM secret is at most 32 bytes long");
		return FALSE;
	}
	auth->size = (UINT16)len;
	if (len > 0)
		memcpy(auth->buffer, kmx_secret_get_data(secret), len);
	return TRUE;
}

/* makes room for one more transient object: the primary and the loaded
 * keys fill swtpm's three slots */
void
kmx_tpm_device_evict(KmxTpmDevice *self, guint keep)
{
	KmxTpmLoaded *l;

	while (self->loaded.length > keep && (l = g_queue_pop_tail(&self->loaded)) != NULL) {
		if (self->esys != NULL)
			Esys_FlushContext(self->esys, l->handle);
		kmx_tpm_loaded_free(l);
	}
}

/* loads @file under the primary with @auth; not cached: flush it after */
gboolean
kmx_tpm_device_load_file(KmxTpmDevice *self,
			 const KmxTpmKeyFile *file,
			 const TPM2B_AUTH *auth,
			 ESYS_TR *handle,
			 GError **error)
{
	ESYS_CONTEXT *esys = kmx_tpm_device_get_esys(self, error);
	TSS2_RC rc;

	if (esys == NULL)
		return FALSE;
	if (file->parent != KMX_TPM_PARENT_OWNER) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "the key's parent is 0x%08x, not the owner's storage key",
			    file->parent);
		return FALSE;
	}
	kmx_tpm_device_evict(self, KMX_TPM_MAX_LOADED - 1);
	rc = Esys_Load(esys,
		       self->primary,
		       ESYS_TR_PASSWORD,
		       ESYS_TR_NONE,
		       ESYS_TR_NONE,
		       &file->priv,
		       &file->pub,
		       handle);
	if (!kmx_tpm_device_check_rc(self, rc, "loading the key", error))
		return FALSE;
	Esys_TR_SetAuth(esys, *handle, auth);
	return TRUE;
}

gboolean
kmx_tpm_device_fail_locked(KmxTpmDevice *self, GError **error)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_LOCKED,
		    "%s is locked: unlock it with its secret",
		    kmx_device_get_id(KMX_DEVICE(self)));
	return FALSE;
}

/**
 * kmx_tpm_device_load_key:
 * @handle: (out): the key's handle, valid until the next load
 *
 * Loads a key (its file, `<key id>.pem`) under the storage primary, or
 * finds it loaded; a key with an auth value gets the device secret, and
 * is %KMX_ERROR_LOCKED without it; executor.
 */
gboolean
kmx_tpm_device_load_key(KmxTpmDevice *self, const char *key_id, ESYS_TR *handle, GError **error)
{
	g_autofree char *path = kmx_tpm_device_path(self, key_id, ".pem");
	TPM2B_AUTH auth = {0};
	KmxTpmKeyFile file;
	KmxTpmLoaded *l;
	gboolean ok;

	for (GList *link = self->loaded.head; link != NULL; link = link->next) {
		l = link->data;
		if (g_str_equal(l->key_id, key_id) && self->esys != NULL) {
			g_queue_unlink(&self->loaded, link);
			g_queue_push_head_link(&self->loaded, link);
			*handle = l->handle;
			return TRUE;
		}
	}
	if (!kmx_tpm_device_read_file(path, &file, FALSE, error))
		return FALSE;
	if (!file.empty_auth) {
		if (self->pin == NULL) {
			kmx_secure_zero(&file, sizeof(file));
			return kmx_tpm_device_fail_locked(self, error);
		}
		if (!kmx_tpm_auth_from_secret(self->pin, &auth, error)) {
			kmx_secure_zero(&file, sizeof(file));
			return FALSE;
		}
	}
	ok = kmx_tpm_device_load_file(self, &file, &auth, handle, error);
	kmx_secure_zero(&file, sizeof(file));
	kmx_secure_zero(&auth, sizeof(auth));
	if (!ok) {
		g_prefix_error(error, "key %s: ", key_id);
		return FALSE;
	}
	l = g_new0(KmxTpmLoaded, 1);
	l->key_id = g_strdup(key_id);
	l->handle = *handle;
	g_queue_push_head(&self->loaded, l);
	return TRUE;
}

/**
 * kmx_tpm_device_unload_key:
 *
 * Flushes a key if it is loaded; executor.
 */
void
kmx_tpm_device_unload_key(KmxTpmDevice *self, const char *key_id)
{
	for (GList *link = self->loaded.head; link != NULL; link = link->next) {
		KmxTpmLoaded *l = link->data;
		if (g_str_equal(l->key_id, key_id)) {
			if (self->esys != NULL)
				Esys_FlushContext(self->esys, l->handle);
			g_queue_delete_link(&self->loaded, link);
			kmx_tpm_loaded_free(l);
			return;
		}
	}
}

/* re-wraps @file (loaded with @old) for @new */
gboolean
kmx_tpm_device_rewrap(KmxTpmDevice *self,
		      KmxTpmKeyFile *file,
		      const TPM2B_AUTH *old,
		      const TPM2B_AUTH *new,
		      GError **error)
{
	TPM2B_PRIVATE *out_private = NULL;
	ESYS_TR handle = ESYS_TR_NONE;
	TSS2_RC rc;

	if (!kmx_tpm_device_load_file(self,
				      file,
				      file->empty_auth ? &(TPM2B_AUTH){0} : old,
				      &handle,
				      error))
		return FALSE;
	rc = Esys_ObjectChangeAuth(self->esys,
				   handle,
				   self->primary,
				   kmx_tpm_device_session(self, TPMA_SESSION_DECRYPT),
				   ESYS_TR_NONE,
				   ESYS_TR_NONE,
				   new,
				   &out_private);
	if (self->esys != NULL)
		Esys_FlushContext(self->esys, handle);
	if (!kmx_tpm_device_check_rc(self, rc, "changing a key's secret", error))
		return FALSE;
	file->priv = *out_private;
	file->empty_auth = new->size == 0;
	Esys_Free(out_private);
	return TRUE;
}

/* ---- vfuncs -------------------------------------------------------------- */

static void
kmx_tpm_key_template(KmxKeyType type, TPM2B_PUBLIC *t)
{
	memset(t, 0, sizeof(*t));
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	/* sign and decrypt (RSA) or derive (ECDH): the scheme is chosen per
	 * operation, so the key's own is NULL */
	t->publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT |
					 TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
					 TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;
	if (kmx_key_type_is_rsa(type)) {
		t->publicArea.type = TPM2_ALG_RSA;
		t->publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		t->publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
		t->publicArea.parameters.rsaDetail.keyBits =
		    (TPMI_RSA_KEY_BITS)kmx_key_type_get_bits(type);
		t->publicArea.parameters.rsaDetail.exponent = 0;
	} else {
		t->publicArea.type = TPM2_ALG_ECC;
		t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
		t->publicArea.parameters.eccDetail.curveID =
		    type == KMX_KEY_TYPE_ECDSA_P384 ? TPM2_ECC_NIST_P384 : TPM2_ECC_NIST_P256;
		t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	}
}

static KmxKey *
kmx_tpm_device_generate_key(KmxDevice *device,
			    KmxKeyType type,
			    const char *label,
			    const KmxOptions *options,
			    KmxSecret *admin_secret,
			    GCancellable *cancellable,
			    GError **error)
{
	KmxTpmDevice *self = KMX_TPM_DEVICE(device);
	TPM2B_SENSITIVE_CREATE sensitive = {0};
	TPM2B_PUBLIC template;
	TPM2B_DATA outside = {0};
	TPML_PCR_SELECTION pcrs = {0};
	TPM2B_PRIVATE *out_private = NULL;
	TPM2B_PUBLIC *out_public = NULL;
	TPM2B_CREATION_DATA *creation_data = NULL;
	TPM2B_DIGEST *creation_hash = NULL;
	TPMT_TK_CREATION *ticket = NULL;
	KmxTpmKeyFile file = {0};
	g_autoptr(KmxKey) key = NULL;
	ESYS_CONTEXT *esys;
	TSS2_RC rc;

	switch (type) {
	case KMX_KEY_TYPE_RSA2048:
	case KMX_KEY_TYPE_RSA3072:
	case KMX_KEY_TYPE_ECDSA_P256:
	case KMX_KEY_TYPE_ECDSA_P384:
		break;
	case KMX_KEY_TYPE_ED25519:
	case KMX_KEY_TYPE_X25519:
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "%s is not a TPM 2.0 algorithm: the TPM makes rsa2048, rsa3072, "
			    "ecdsa-p256 and ecdsa-p384 keys (use a soft key for %s)",
			    kmx_key_type_to_string(type),
			    kmx_key_type_to_string(type));
		return NULL;
	default:
		g_set_error(
		    error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_SUPPORTED,
		    "the TPM makes rsa2048, rsa3072, ecdsa-p256 and ecdsa-p384 keys, not %s",
		    kmx_key_type_to_string(type));
		return NULL;
	}
	if (g_cancellable_set_error_if_cancelled(cancellable, error)) {
		kmx_error_normalize(error);
		return NULL;
	}
	esys = kmx_tpm_device_get_esys(self, error);
	if (esys == NULL)
		return NULL;
	/* a device secret is every new key's auth value */
	if (g_atomic_int_get(&self->protected)) {
		if (self->pin == NULL) {
			kmx_tpm_device_fail_locked(self, error);
			return NULL;
		}
		if (!kmx_tpm_auth_from_secret(self->pin, &sensitive.sensitive.userAuth, error))
			return NULL;
	}
	kmx_tpm_key_template(type, &template);
	rc = Esys_Create(esys,
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
		file.empty_auth = !g_atomic_int_get(&self->protected);
		file.parent = KMX_TPM_PARENT_OWNER;
		file.pub = *out_public;
		file.priv = *out_private;
	}
	Esys_Free(out_private);
	Esys_Free(out_public);
	Esys_Free(creation_data);
	Esys_Free(creation_hash);
	Esys_Free(ticket);
	if (!kmx_tpm_device_check_rc(self, rc, "key generation", error))
		return NULL;
	key = kmx_tpm_key_new(self, &file, label, error);
	if (key == NULL || !kmx_tpm_key_save(KMX_TPM_KEY(key), &file, error))
		return NULL;
	return g_steal_pointer(&key);
}

/* a soft key, wrapped for this TPM with TPM2_Import */
static GPtrArray *
kmx_tpm_device_import_soft(KmxTpmDevice *self,
			   GBytes *data,
			   KmxSecret *passphrase,
			   const char *label,
			   GError **error)
{
	gboolean protected = g_atomic_int_get(&self->protected);
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(KmxKey) key = NULL;
	g_autofree char *path = NULL;
	TPMT_SENSITIVE sensitive;
	TPM2B_ECC_POINT *z = NULL;
	TPM2B_ECC_POINT *ephemeral = NULL;
	TPM2B_PRIVATE duplicate;
	TPM2B_ENCRYPTED_SECRET seed;
	TPM2B_DATA encryption_key = {0};
	TPMT_SYM_DEF_OBJECT inner = {.algorithm = TPM2_ALG_NULL};
	TPM2B_PRIVATE *out_private = NULL;
	KmxTpmKeyFile file = {0};
	ESYS_CONTEXT *esys;
	gboolean ok;
	TSS2_RC rc;

	if (protected && self->pin == NULL) {
		kmx_tpm_device_fail_locked(self, error);
		return NULL;
	}
	if (!kmx_tpm_import_parse(data,
				  passphrase,
				  protected ? self->pin : NULL,
				  &file.pub,
				  &sensitive,
				  error))
		return NULL;
	file.parent = KMX_TPM_PARENT_OWNER;
	key = kmx_tpm_key_new(self, &file, label, error);
	if (key == NULL) {
		kmx_secure_zero(&sensitive, sizeof(sensitive));
		return NULL;
	}
	path = kmx_tpm_device_path(self, kmx_key_get_id(key), ".pem");
	if (g_file_test(path, G_FILE_TEST_EXISTS)) {
		kmx_secure_zero(&sensitive, sizeof(sensitive));
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_EXISTS,
			    "key %s is already on %s",
			    kmx_key_get_id(key),
			    kmx_device_get_id(KMX_DEVICE(self)));
		return NULL;
	}
	esys = kmx_tpm_device_get_esys(self, error);
	if (esys == NULL) {
		kmx_secure_zero(&sensitive, sizeof(sensitive));
		return NULL;
	}
	/* the seed: an ephemeral ECDH with the primary, done by the TPM */
	rc = Esys_ECDH_KeyGen(esys,
			      self->primary,
			      kmx_tpm_device_session(self, TPMA_SESSION_ENCRYPT),
			      ESYS_TR_NONE,
			      ESYS_TR_NONE,
			      &z,
			      &ephemeral);
	if (!kmx_tpm_device_check_rc(self, rc, "making the import seed", error)) {
		kmx_secure_zero(&sensitive, sizeof(sensitive));
		return NULL;
	}
	ok = kmx_tpm_import_wrap(&file.pub,
				 &sensitive,
				 &self->primary_point,
				 &ephemeral->point,
				 &z->point.x,
				 &duplicate,
				 &seed,
				 error);
	kmx_secure_zero(&sensitive, sizeof(sensitive));
	kmx_secure_zero(z, sizeof(*z));
	Esys_Free(z);
	Esys_Free(ephemeral);
	if (!ok)
		return NULL;
	rc = Esys_Import(self->esys,
			 self->primary,
			 ESYS_TR_PASSWORD,
			 ESYS_TR_NONE,
			 ESYS_TR_NONE,
			 &encryption_key,
			 &file.pub,
			 &duplicate,
			 &seed,
			 &inner,
			 &out_private);
	kmx_secure_zero(&duplicate, sizeof(duplicate));
	if (!kmx_tpm_device_check_rc(self, rc, "importing the key", error))
		return NULL;
	file.priv = *out_private;
	Esys_Free(out_private);
	file.empty_auth = !protected;
	file.parent = KMX_TPM_PARENT_OWNER;
	if (!kmx_tpm_key_save(KMX_TPM_KEY(key), &file, error))
		return NULL;
	g_ptr_array_add(keys, g_steal_pointer(&key));
	return g_steal_pointer(&keys);
}

static GPtrArray *
kmx_tpm_device_import_key(KmxDevice *device,
			  GBytes *data,
			  KmxSecret *passphrase,
			  const char *label,
			  const KmxOptions *options,
			  KmxSecret *admin_secret,
			  GCancellable *cancellable,
			  GError **error)
{
	KmxTpmDevice *self = KMX_TPM_DEVICE(device);
	gboolean protected = g_atomic_int_get(&self->protected);
	const char *text = g_bytes_get_data(data, NULL);
	gsize len = g_bytes_get_size(data);
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(KmxKey) key = NULL;
	g_autofree char *path = NULL;
	TPM2B_AUTH from = {0}, to = {0};
	KmxTpmKeyFile file;
	gboolean ok;

	if (text == NULL ||
	    g_strstr_len(text, (gssize)len, "-----BEGIN TSS2 PRIVATE KEY-----") == NULL) {
		return kmx_tpm_device_import_soft(self, data, passphrase, label, error);
	}
	if (!kmx_tpm_keyfile_decode(text, len, &file, error))
		return NULL;
	if (file.sealed) {
		g_set_error_literal(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "the TSS2 file holds sealed data, not a key");
		return NULL;
	}
	key = kmx_tpm_key_new(self, &file, label, error);
	if (key == NULL)
		return NULL;
	path = kmx_tpm_device_path(self, kmx_key_get_id(key), ".pem");
	if (g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_EXISTS,
			    "key %s is already on %s",
			    kmx_key_get_id(key),
			    kmx_device_get_id(device));
		return NULL;
	}
	if (kmx_tpm_device_get_esys(self, error) == NULL)
		return NULL;
	/* a key of its own password is re-wrapped to the device secret (the
	 * passphrase is that password); loading it proves it is this TPM's */
	if (protected && self->pin == NULL) {
		kmx_tpm_device_fail_locked(self, error);
		return NULL;
	}
	if ((!file.empty_auth && !kmx_tpm_auth_from_secret(passphrase, &from, error)) ||
	    (protected && !kmx_tpm_auth_from_secret(self->pin, &to, error)))
		return NULL;
	if (!file.empty_auth || protected) {
		ok = kmx_tpm_device_rewrap(self, &file, &from, &to, error);
	} else {
		ESYS_TR handle = ESYS_TR_NONE;
		ok = kmx_tpm_device_load_file(self, &file, &to, &handle, error);
		if (ok)
			Esys_FlushContext(self->esys, handle);
	}
	kmx_secure_zero(&from, sizeof(from));
	kmx_secure_zero(&to, sizeof(to));
	if (!ok) {
		if (g_error_matches(*error, KMX_ERROR, KMX_ERROR_FAILED))
			g_prefix_error(error,
				       "the key file does not load in this TPM (made for another "
				       "one, or damaged): ");
		return NULL;
	}
	if (!kmx_tpm_key_save(KMX_TPM_KEY(key), &file, error))
		return NULL;
	kmx_secure_zero(&file, sizeof(file));
	g_ptr_array_add(keys, g_steal_pointer(&key));
	return g_steal_pointer(&keys);
}

static void
kmx_tpm_device_finalize(GObject *object)
{
	KmxTpmDevice *self = KMX_TPM_DEVICE(object);

	kmx_tpm_device_disconnect(self);
	g_clear_pointer(&self->pin, kmx_secret_unref);
	g_weak_ref_clear(&self->backend);
	g_free(self->dir);
	g_free(self->tcti_conf);
	g_free(self->last_error);
	G_OBJECT_CLASS(kmx_tpm_device_parent_class)->finalize(object);
}

static void
kmx_tpm_device_class_init(KmxTpmDeviceClass *klass)
{
	KmxDeviceClass *device_class = KMX_DEVICE_CLASS(klass);

	G_OBJECT_CLASS(klass)->finalize = kmx_tpm_device_finalize;
	device_class->executor_kind = KMX_EXECUTOR_SERIAL;
	/* the key files are the device's own: the core caches nothing */
	device_class->persistent = TRUE;
	device_class->unblock_hint =
	    "the TPM is in dictionary-attack lockout: wait for it to recover (the device's "
	    "Details say when) or clear it with its lockout password";
	device_class->unlock = kmx_tpm_device_unlock;
	device_class->lock = kmx_tpm_device_lock;
	device_class->change_secret = kmx_tpm_device_change_secret;
	device_class->generate_key = kmx_tpm_device_generate_key;
	device_class->import_key = kmx_tpm_device_import_key;
}

static void
kmx_tpm_device_init(KmxTpmDevice *self)
{
	self->primary = ESYS_TR_NONE;
	self->session = ESYS_TR_NONE;
	g_queue_init(&self->loaded);
	g_weak_ref_init(&self->backend, NULL);
}

/**
 * kmx_tpm_device_new:
 * @backend: the backend that reports the device when the TPM answers
 * @dir: where the key files are
 * @tcti: (nullable): the TCTI configuration, or %NULL for the defaults
 *
 * Returns: (transfer full): the device, not available until a probe finds
 * the TPM
 */
KmxTpmDevice *
kmx_tpm_device_new(const char *backend_name, const char *dir, const char *tcti)
{
	g_autofree char *id = g_strdup_printf("%s:0", backend_name);
	KmxTpmDevice *self = g_object_new(KMX_TYPE_TPM_DEVICE,
					  "id",
					  id,
					  "backend",
					  backend_name,
					  "label",
					  "TPM",
					  NULL);

	self->dir = g_strdup(dir);
	self->tcti_conf = g_strdup(tcti);
	return self;
}

void
kmx_tpm_device_set_backend(KmxTpmDevice *self, KmxBackend *backend)
{
	g_weak_ref_set(&self->backend, backend);
}

const char *
kmx_tpm_device_get_dir(KmxTpmDevice *self)
{
	return self->dir;
}

/**
 * kmx_tpm_device_load_keys:
 *
 * Reads the key files (public parts only: no TPM needed).
 *
 * Returns: (transfer full) (element-type KmxKey): the keys
 */
GPtrArray *
kmx_tpm_device_load_keys(KmxTpmDevice *self)
{
	GPtrArray *keys = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(GDir) gdir = g_dir_open(self->dir, 0, NULL);
	const char *name;

	while (gdir != NULL && (name = g_dir_read_name(gdir)) != NULL) {
		g_autofree char *path = NULL;
		g_autoptr(GError) error = NULL;
		KmxKey *key;

		if (!kmx_tpm_is_key_file(name, ""))
			continue;
		path = g_build_filename(self->dir, name, NULL);
		key = kmx_tpm_key_load(self, path, &error);
		if (key == NULL) {
			g_warning("TPM key %s is not usable: %s", path, error->message);
			continue;
		}
		g_ptr_array_add(keys, key);
	}
	return keys;
}
