/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a soft key wrapped for the TPM (TPM2_Import's duplication blob) */
#pragma once

#include <glib.h>
#include <tss2/tss2_tpm2_types.h>

#include "kmx-secret.h"

G_BEGIN_DECLS

gboolean kmx_tpm_import_parse(GBytes *data,
			      KmxSecret *passphrase,
			      KmxSecret *auth,
			      TPM2B_PUBLIC *pub,
			      TPMT_SENSITIVE *sensitive,
			      GError **error);
gboolean kmx_tpm_import_wrap(const TPM2B_PUBLIC *pub,
			     const TPMT_SENSITIVE *sensitive,
			     const TPMS_ECC_POINT *parent,
			     const TPMS_ECC_POINT *ephemeral,
			     const TPM2B_ECC_PARAMETER *z,
			     TPM2B_PRIVATE *duplicate,
			     TPM2B_ENCRYPTED_SECRET *seed,
			     GError **error);

G_END_DECLS
