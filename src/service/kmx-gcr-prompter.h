/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the desktop's system prompter, through gcr */
#pragma once

#include "kmx-prompter.h"

G_BEGIN_DECLS

#define KMX_GCR_DEFAULT_PROMPTER "org.gnome.keyring.SystemPrompter"

#define KMX_TYPE_GCR_PROMPTER (kmx_gcr_prompter_get_type())
G_DECLARE_FINAL_TYPE(KmxGcrPrompter, kmx_gcr_prompter, KMX, GCR_PROMPTER, KmxPrompter)

KmxGcrPrompter *kmx_gcr_prompter_new(GDBusConnection *connection, const char *bus_name);

G_END_DECLS
