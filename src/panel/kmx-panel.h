/* keymux-settings: the settings panel of keymux (DESIGN.md §10)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <adwaita.h>
#include <keymux.h>

G_BEGIN_DECLS

char *kmx_panel_public_key_pem(KeymuxKey *key, GError **error) G_GNUC_WARN_UNUSED_RESULT;
char *kmx_panel_public_key_ssh(KeymuxKey *key, GError **error) G_GNUC_WARN_UNUSED_RESULT;

G_END_DECLS
