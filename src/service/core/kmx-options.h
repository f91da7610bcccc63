/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the a{sv} options of a method, parsed into typed values */
#pragma once

#include <gio/gio.h>

#include "kmx-secret.h"

G_BEGIN_DECLS

/**
 * KmxOptionFlags:
 * @KMX_OPTION_NONE: none
 * @KMX_OPTION_INTERACTIVE: `interactive` (b): false never prompts
 * @KMX_OPTION_PREHASHED: `prehashed` (b): the data is the digest (Sign)
 * @KMX_OPTION_EXPORTABLE: `exportable` (b): the new key may be exported
 * @KMX_OPTION_ADMIN_SECRET: `admin-secret` (s): the device's admin secret
 *   for GenerateKey and ImportKey, for scripts that cannot be prompted
 * @KMX_OPTION_SLOT: `slot` (s): where a device with slots (a card's `sig`,
 *   `dec`, `aut`) puts a new key; the backend checks the name
 * @KMX_OPTION_REPLACE: `replace` (b): a new key may take the place of the
 *   one in its slot (default false: a used slot is %KMX_ERROR_EXISTS)
 *
 * Which options a method accepts, and which ones a caller gave.
 */
typedef enum {
	KMX_OPTION_NONE = 0,
	KMX_OPTION_INTERACTIVE = 1 << 0,
	KMX_OPTION_PREHASHED = 1 << 1,
	KMX_OPTION_EXPORTABLE = 1 << 2,
	KMX_OPTION_ADMIN_SECRET = 1 << 3,
	KMX_OPTION_SLOT = 1 << 4,
	KMX_OPTION_REPLACE = 1 << 5,
} KmxOptionFlags;

/**
 * KmxOptions:
 * @given: the options the caller gave
 * @interactive: whether the call may prompt (default %TRUE)
 * @prehashed: @data is a digest
 * @exportable: the new key may be exported
 * @admin_secret: the admin secret, in secret memory, or %NULL
 * @slot: the slot the caller named, or %NULL
 * @replace: whether a key in that slot may be replaced
 */
typedef struct {
	KmxOptionFlags given;
	gboolean interactive;
	gboolean prehashed;
	gboolean exportable;
	KmxSecret *admin_secret;
	char *slot;
	gboolean replace;
} KmxOptions;

void kmx_options_init(KmxOptions *self);
gboolean kmx_options_parse(KmxOptions *self,
			   GVariant *dict,
			   KmxOptionFlags accepted,
			   const char *method,
			   GError **error);
void kmx_options_clear(KmxOptions *self);

G_END_DECLS
