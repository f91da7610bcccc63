/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the TPM 2.0 backend (tpm2-tss ESAPI) */
#pragma once

#include "kmx-backend.h"

G_BEGIN_DECLS

#define KMX_TYPE_TPM_BACKEND (kmx_tpm_backend_get_type())
G_DECLARE_FINAL_TYPE(KmxTpmBackend, kmx_tpm_backend, KMX, TPM_BACKEND, KmxBackend)

G_END_DECLS
