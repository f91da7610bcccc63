/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the test backend: hardware-like devices driven by a directory */
#pragma once

#include "kmx-backend.h"

G_BEGIN_DECLS

#define KMX_TYPE_TEST_BACKEND (kmx_test_backend_get_type())
G_DECLARE_FINAL_TYPE(KmxTestBackend, kmx_test_backend, KMX, TEST_BACKEND, KmxBackend)

G_END_DECLS
