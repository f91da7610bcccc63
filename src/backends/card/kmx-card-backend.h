/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: OpenPGP cards over PC/SC (pcsclite) */
#pragma once

#include "kmx-backend.h"

G_BEGIN_DECLS

#define KMX_TYPE_CARD_BACKEND (kmx_card_backend_get_type())
G_DECLARE_FINAL_TYPE(KmxCardBackend, kmx_card_backend, KMX, CARD_BACKEND, KmxBackend)

G_END_DECLS
