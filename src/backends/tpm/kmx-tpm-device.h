/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the TPM, as the device tpm:0 */
#pragma once

#include <tss2/tss2_esys.h>

#include "kmx-backend.h"
#include "kmx-device.h"
#include "kmx-tpm-keyfile.h"

G_BEGIN_DECLS

#define KMX_TYPE_TPM_DEVICE (kmx_tpm_device_get_type())
G_DECLARE_FINAL_TYPE(KmxTpmDevice, kmx_tpm_device, KMX, TPM_DEVICE, KmxDevice)

KmxTpmDevice *kmx_tpm_device_new(const char *backend_name, const char *dir, const char *tcti);
const char *kmx_tpm_device_get_dir(KmxTpmDevice *self);
void kmx_tpm_device_recover(KmxTpmDevice *self);
GPtrArray *kmx_tpm_device_load_keys(KmxTpmDevice *self);

void kmx_tpm_device_set_backend(KmxTpmDevice *self, KmxBackend *backend);
/* any thread: queue a probe on the device's executor */
void kmx_tpm_device_probe(KmxTpmDevice *self);
gboolean kmx_tpm_device_is_connected(KmxTpmDevice *self);
/* main thread, at stop */
void kmx_tpm_device_close(KmxTpmDevice *self);

/* the device's executor: what its keys use */
ESYS_CONTEXT *kmx_tpm_device_get_esys(KmxTpmDevice *self, GError **error);
gboolean kmx_tpm_device_load_key(KmxTpmDevice *self,
				 const char *key_id,
				 ESYS_TR *handle,
				 GError **error);
void kmx_tpm_device_unload_key(KmxTpmDevice *self, const char *key_id);
ESYS_TR kmx_tpm_device_session(KmxTpmDevice *self, TPMA_SESSION flags);
gboolean kmx_tpm_device_check_rc(KmxTpmDevice *self, TSS2_RC rc, const char *what, GError **error);

G_END_DECLS
