/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the soft-key backend: keys in files, one store per directory */
#pragma once

#include "kmx-backend.h"

G_BEGIN_DECLS

#define KMX_TYPE_SOFTKEY_BACKEND (kmx_softkey_backend_get_type())
G_DECLARE_FINAL_TYPE(KmxSoftkeyBackend, kmx_softkey_backend, KMX, SOFTKEY_BACKEND, KmxBackend)

G_END_DECLS
