/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a key in a TSS2 key file, used by the TPM */
#pragma once

#include "kmx-key.h"
#include "kmx-tpm-device.h"
#include "kmx-tpm-keyfile.h"

G_BEGIN_DECLS

#define KMX_TYPE_TPM_KEY (kmx_tpm_key_get_type())
G_DECLARE_FINAL_TYPE(KmxTpmKey, kmx_tpm_key, KMX, TPM_KEY, KmxKey)

KmxKey *kmx_tpm_key_new(KmxTpmDevice *device,
			const KmxTpmKeyFile *file,
			const char *label,
			GError **error) G_GNUC_WARN_UNUSED_RESULT;
KmxKey *kmx_tpm_key_load(KmxTpmDevice *device,
			 const char *pem_path,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean kmx_tpm_key_save(KmxTpmKey *self, const KmxTpmKeyFile *file, GError **error);

G_END_DECLS
